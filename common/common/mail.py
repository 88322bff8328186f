"""Mail delivery through Flask-Mail, used by the outbox relays of the services.

Requests never talk to SMTP: they store an :class:`OutgoingMail` in their own
outbox, and a background relay (:mod:`common.outbox`) hands it to
:class:`SmtpMailer`, so an SMTP outage delays mail without losing it.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from flask_mail import Mail, Message
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class MailSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_prefix="MAIL_")

    server: str = "127.0.0.1"
    port: int = 8025
    use_tls: bool = False
    use_ssl: bool = False
    username: str | None = None
    password: SecretStr | None = None
    default_sender: str = "Course Platform <no-reply@course-platform.local>"
    timeout: float = 10.0


@dataclass(frozen=True)
class OutgoingMail:
    to: str
    subject: str
    text: str
    html: str | None = None


class SmtpMailer:
    """Sends one message per call over a fresh SMTP session (Flask-Mail's model)."""

    def __init__(self, settings: MailSettings) -> None:
        self._app = Flask("mailer", static_folder=None)
        self._app.config.update(
            MAIL_SERVER=settings.server,
            MAIL_PORT=settings.port,
            MAIL_USE_TLS=settings.use_tls,
            MAIL_USE_SSL=settings.use_ssl,
            MAIL_USERNAME=settings.username,
            MAIL_PASSWORD=settings.password.get_secret_value() if settings.password else None,
            MAIL_DEFAULT_SENDER=settings.default_sender,
        )
        self._mail = Mail(self._app)
        self._timeout = settings.timeout

    def send(self, mail: OutgoingMail) -> None:
        import socket

        previous = socket.getdefaulttimeout()
        with self._app.app_context():
            # Flask-Mail reads the default sender from the current app.
            message = Message(
                subject=mail.subject, recipients=[mail.to], body=mail.text, html=mail.html
            )
            socket.setdefaulttimeout(self._timeout)
            try:
                self._mail.send(message)
            finally:
                socket.setdefaulttimeout(previous)
