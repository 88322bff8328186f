"""Account business rules: no Flask, no pymongo (storage is the repository's).

:class:`UserService` is assembled from one class per concern; this module is the import
point for the service and the types that go with it."""

from __future__ import annotations

from users.accounts import Accounts
from users.delivery import OutboxDelivery
from users.mfa import Enrolment, Mfa
from users.service_base import Policy

__all__ = ["Enrolment", "OutboxDelivery", "Policy", "UserService"]


class UserService(Accounts, Mfa):
    pass
