from __future__ import annotations

from pydantic import SecretStr

from common.settings import BaseServiceSettings


class GatewaySettings(BaseServiceSettings):
    jwt_secret_key: SecretStr = SecretStr("")
    access_token_minutes: int = 15
    refresh_token_idle_hours: int = 24
    refresh_token_absolute_days: int = 14
    cookie_secure: bool = True

    users_url: str = "http://127.0.0.1:8001"
    courses_url: str = "http://127.0.0.1:8002"
    enrolments_url: str = "http://127.0.0.1:8003"
    upstream_timeout: float = 10.0
    upstream_pool_size: int = 64

    # Empty means an in-process store: allowed only for a single-process local run.
    redis_url: str = ""
    auth_rate_limit: str = "5/minute;30/hour"
