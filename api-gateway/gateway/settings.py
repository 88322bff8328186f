from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import SecretStr, field_validator, model_validator

from common.settings import BaseServiceSettings

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """The origin (``scheme://host[:port]``) of an http(s) URL as a browser serialises it:
    lowercase, without a default port. None when there is none (``null``, another scheme,
    no host, credentials in it, a bad port)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def _origin_setting(name: str, value: str) -> str:
    parts = urlsplit(value.strip())
    origin = origin_of(value)
    if origin is None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            f"{name}: {value!r} is not an origin (scheme://host[:port], http or https, no path)"
        )
    return origin


class GatewaySettings(BaseServiceSettings):
    jwt_secret_key: SecretStr = SecretStr("")
    access_token_minutes: int = 15
    refresh_token_idle_hours: int = 24
    refresh_token_absolute_days: int = 14
    cookie_secure: bool = True

    users_url: str = "http://127.0.0.1:8001"
    courses_url: str = "http://127.0.0.1:8002"
    enrolments_url: str = "http://127.0.0.1:8003"
    learning_url: str = "http://127.0.0.1:8004"
    upstream_timeout: float = 10.0
    upstream_pool_size: int = 64

    # Empty means an in-process store: allowed only for a single-process local run.
    redis_url: str = ""
    auth_rate_limit: str = "5/minute;30/hour"
    # Per user id, shared by the routes that check a logged-in caller's password.
    account_rate_limit: str = "5/minute;30/hour"

    # Comma-separated origins (scheme://host[:port]) whose pages may call the API from a
    # browser with the user's credentials (CORS); empty: no cross-origin access.
    cors_allowed_origins: str = ""
    # The platform's own origin as browsers see it (e.g. https://courses.example.com).
    # Empty: the origin each request was addressed to (nginx's scheme and the client's
    # Host); set it when a TLS-terminating proxy in front of nginx changes the scheme.
    public_origin: str = ""

    @field_validator("cors_allowed_origins")
    @classmethod
    def _listed_origins(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        if "*" in entries:
            raise ValueError(
                "CORS_ALLOWED_ORIGINS: '*' cannot be used with credentials; list the origins"
            )
        return ",".join(_origin_setting("CORS_ALLOWED_ORIGINS", entry) for entry in entries)

    @field_validator("public_origin")
    @classmethod
    def _public_origin(cls, value: str) -> str:
        return _origin_setting("PUBLIC_ORIGIN", value) if value.strip() else ""

    @property
    def cors_origins(self) -> frozenset[str]:
        return frozenset(filter(None, self.cors_allowed_origins.split(",")))

    @model_validator(mode="after")
    def _shared_store_outside_development(self) -> GatewaySettings:
        if not self.redis_url and self.environment != "development":
            raise ValueError(
                "REDIS_URL is not set: sessions, blocklist and rate limits need a shared store "
                "(the in-process store is for a single-process development run only)"
            )
        return self

    @model_validator(mode="after")
    def _secure_cookie_outside_development(self) -> GatewaySettings:
        # Without Secure a refresh token can leave the machine over plain HTTP.
        if not self.cookie_secure and self.environment == "production":
            raise ValueError(
                "COOKIE_SECURE=false is for local plain-HTTP runs (ENVIRONMENT=development "
                "or test); browsers keep Secure cookies on http://localhost anyway"
            )
        return self
