from __future__ import annotations

from pydantic import SecretStr, model_validator

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
    learning_url: str = "http://127.0.0.1:8004"
    upstream_timeout: float = 10.0
    upstream_pool_size: int = 64

    # Empty means an in-process store: allowed only for a single-process local run.
    redis_url: str = ""
    auth_rate_limit: str = "5/minute;30/hour"
    # Per user id, shared by the routes that check a logged-in caller's password.
    account_rate_limit: str = "5/minute;30/hour"

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
