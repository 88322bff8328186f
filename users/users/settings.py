from __future__ import annotations

from pydantic import Field, SecretStr

from common.settings import BaseServiceSettings


class UsersSettings(BaseServiceSettings):
    # "" or "mongomock://" → the in-process stand-in; anything else is a real MongoDB URL.
    mongo_url: str = ""
    mongo_db: str = "users"
    # Any string of at least 32 bytes; a Fernet key is derived from it (HKDF-SHA256).
    totp_encryption_key: SecretStr = SecretStr("")
    totp_issuer: str = "Course Platform"
    # Links in mails are built from this, never from the request's Host header.
    frontend_url: str = "http://127.0.0.1:8080"
    activation_code_minutes: int = 30
    activation_max_attempts: int = 5
    activation_resend_seconds: int = 60
    # Activation attempts without an identifier ({"code"} alone) whose code matches no
    # pending account are guesses at every pending account at once: at most this many
    # per window, platform-wide; then code-only attempts are refused until the window ends.
    activation_code_only_max_attempts: int = Field(50, ge=0)
    activation_code_only_window_seconds: int = Field(600, ge=1)
    reset_token_minutes: int = 30
    # At most one reset mail per account in this window (like activation_resend_seconds).
    reset_resend_seconds: int = 60
    # Local runs only (environment == "development"): seed this admin at start-up.
    admin_email: str | None = None
    admin_username: str | None = None
    admin_password: str | None = Field(default=None, repr=False)
    # Background mail sender draining the outbox collection.
    run_mail_relay: bool = True
    mail_relay_poll_seconds: float = 1.0
    mail_relay_backoff_base: float = 1.0
    mail_relay_lease_seconds: float = 60.0
    mail_relay_max_attempts: int = 20
    # Days a sent or failed outbox item is kept (then a TTL index removes it).
    mail_retention_days: float = 30.0
