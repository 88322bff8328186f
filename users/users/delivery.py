"""The mail relay's side of the outbox (see :class:`users.domain.AccountJob`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from common.mail import OutgoingMail
from users.adapters.outbox import OutboxItem
from users.domain import AccountJob


class JobRunner(Protocol):
    def run_job(self, job: AccountJob) -> None: ...


class OutboxDelivery:
    """The mail relay's handler: mail goes to SMTP; an account job runs here and
    stores the mail it produces as a new outbox item."""

    def __init__(self, send_mail: Callable[[OutgoingMail], None], service: JobRunner) -> None:
        self.send_mail = send_mail
        self.service = service

    def __call__(self, item: OutboxItem) -> None:
        if isinstance(item, AccountJob):
            self.service.run_job(item)
        else:
            self.send_mail(item)
