"""What every part of :class:`users.service.UserService` shares: its collaborators, its clock,
the outbox it writes mail to and the lookup of an account by username or email."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bson import ObjectId

from common.mail import OutgoingMail
from users.adapters.outbox import MongoOutbox
from users.adapters.repository import Doc, UserRepository
from users.domain import AccountJob, canonical_identifier
from users.security import Passwords, Secrets


@dataclass(frozen=True)
class Policy:
    activation_code_minutes: int = 30
    activation_max_attempts: int = 5
    activation_resend_seconds: int = 60
    # Platform-wide: activation attempts without an identifier whose code matches no
    # pending account (see Credentials._activate_code_only).
    activation_code_only_max_attempts: int = 50
    activation_code_only_window_seconds: int = 600
    reset_token_minutes: int = 30
    reset_resend_seconds: int = 60
    frontend_url: str = "http://127.0.0.1:8080"
    totp_issuer: str = "Course Platform"


class ServiceBase:
    def __init__(
        self,
        repository: UserRepository,
        outbox: MongoOutbox,
        passwords: Passwords,
        secrets: Secrets,
        policy: Policy,
        notify_mail: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.repository = repository
        self.outbox = outbox
        self.passwords = passwords
        self.secrets = secrets
        self.policy = policy
        self.notify_mail = notify_mail
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _send(self, mail: OutgoingMail) -> None:
        self.outbox.add(mail)
        self.notify_mail()

    def _enqueue(self, job: AccountJob) -> None:
        self.outbox.add_job(job)
        self.notify_mail()

    def _count_if_admin(self, user_id: ObjectId) -> None:
        """Count an account that is (now) an active admin: created as one, activated."""
        fence = self.repository.admin_fence()
        touched = self.repository.update_fenced(
            user_id, {}, fence, require={"role": "admin", "is_active": True}
        )
        if touched is not None:
            self.repository.count_admin(user_id, fence)

    def find(self, identifier: str) -> Doc | None:
        return self.repository.find_by(*self._lookup(identifier))

    @staticmethod
    def _lookup(identifier: str) -> tuple[str, str]:
        """The stored field and value that name the account behind ``identifier``."""
        kind, key = canonical_identifier(identifier)
        return ("email" if kind == "email" else "username_key"), key
