"""Settings shared by every service, read from the environment.

Outside development, a secret that is missing, a placeholder or too short stops
the process at start-up instead of running with a guessable key.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_MARKERS = ("change-me", "changeme", "placeholder", "example", "secret")
MIN_SECRET_LENGTH = 32


class BaseServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    environment: Literal["development", "test", "production"] = "production"
    log_level: str = "INFO"
    # Shared by the gateway and the services: a call without it is not from the gateway.
    internal_api_key: SecretStr = SecretStr("")
    # Secrets issued by someone else (e.g. a SaaS API token): we cannot choose their length.
    third_party_secrets: ClassVar[frozenset[str]] = frozenset()

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    @model_validator(mode="after")
    def _secrets_must_be_real(self) -> BaseServiceSettings:
        if self.environment == "development":
            return self
        for name, value in self:
            if isinstance(value, SecretStr):
                problem = secret_problem(
                    value.get_secret_value(),
                    min_length=0 if name in self.third_party_secrets else MIN_SECRET_LENGTH,
                )
                if problem:
                    raise ValueError(f"{name.upper()} {problem}")
        return self


def secret_problem(secret: str, min_length: int = MIN_SECRET_LENGTH) -> str | None:
    if not secret:
        return "is not set"
    if any(marker in secret.lower() for marker in PLACEHOLDER_MARKERS):
        return "is still a placeholder"
    if len(secret.encode()) < min_length:
        return f"must be at least {min_length} bytes"
    return None
