from __future__ import annotations

from typing import Any

from dependency_injector import containers, providers

from gateway.adapters.state import GatewayState, connect, in_process
from gateway.adapters.tracked import TrackedReads
from gateway.adapters.upstream import Upstream
from gateway.settings import GatewaySettings


def _upstream(name: str, url: str, settings: GatewaySettings) -> Upstream:
    return Upstream(
        name,
        url,
        timeout=settings.upstream_timeout,
        pool_size=settings.upstream_pool_size,
        internal_key=settings.internal_api_key.get_secret_value(),
    )


def _redis(settings: GatewaySettings) -> Any:
    return connect(settings.redis_url) if settings.redis_url else in_process()


def _tracked(client: Any, settings: GatewaySettings) -> TrackedReads | None:
    # fakeredis (the in-process store) has no CLIENT TRACKING; it is one process anyway.
    return TrackedReads(client) if settings.redis_url else None


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=GatewaySettings)
    users = providers.Singleton(_upstream, "users", settings.provided.users_url, settings)
    courses = providers.Singleton(_upstream, "courses", settings.provided.courses_url, settings)
    enrolments = providers.Singleton(
        _upstream, "enrolments", settings.provided.enrolments_url, settings
    )
    learning = providers.Singleton(_upstream, "learning", settings.provided.learning_url, settings)
    redis = providers.Singleton(_redis, settings)
    tracked = providers.Singleton(_tracked, redis, settings)
    state = providers.Singleton(GatewayState, redis, tracked)
