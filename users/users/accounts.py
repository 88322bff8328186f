"""Account lifecycle: registration, lookup, profile, roles, deletion and the admin bootstrap."""

from __future__ import annotations

from typing import Any

from users.adapters.repository import Doc
from users.credentials import Credentials
from users.domain import (
    LastAdmin,
    NewUser,
    UserNotFound,
    canonical_email,
    check_password_policy,
)


class Accounts(Credentials):
    """Builds on :class:`Credentials` because registering mails an activation code."""

    def register(
        self,
        *,
        username: str,
        email: str,
        first_name: str,
        last_name: str,
        gender: str,
        password: str,
        role: str = "user",
    ) -> Doc:
        email = canonical_email(email)
        check_password_policy(password, username=username, email=email, field="password")
        code = self._unused_activation_code()
        user = NewUser(
            username=username,
            email=email,
            first_name=first_name,
            last_name=last_name,
            gender=gender,
            role=role,
            password_hash=self.passwords.hash(password),
            is_active=False,
        )
        doc = self.repository.insert(user, now_ms=self.now_ms(), activation=self._activation(code))
        self._send(self._activation_mail(doc, code))
        return doc

    def create_active_user(
        self,
        *,
        username: str,
        email: str,
        password: str,
        role: str = "user",
        first_name: str = "",
        last_name: str = "",
        gender: str = "",
    ) -> Doc:
        """An activated account without mail (admin bootstrap, tests)."""
        email = canonical_email(email)
        check_password_policy(password, username=username, email=email, field="password")
        user = NewUser(
            username=username,
            email=email,
            first_name=first_name or username,
            last_name=last_name,
            gender=gender,
            role=role,
            password_hash=self.passwords.hash(password),
            is_active=True,
        )
        return self.repository.insert(user, now_ms=self.now_ms(), activation=None)

    def get(self, user_id: str) -> Doc:
        return self.repository.get(user_id)

    def get_by_identifier(self, identifier: str) -> Doc:
        doc = self.find(identifier)
        if doc is None:
            raise UserNotFound()
        return doc

    def delete(self, user_id: str) -> str:
        doc = self.repository.get(user_id)
        # Same rule as set_role: deleting the last admin would leave nobody to manage the
        # platform.
        if doc["role"] == "admin" and not self.repository.other_active_admins(doc["_id"]):
            raise LastAdmin()
        if not self.repository.delete(doc["_id"]):
            raise UserNotFound()
        return user_id

    def delete_by_identifier(self, identifier: str) -> str:
        doc = self.get_by_identifier(identifier)
        return self.delete(str(doc["_id"]))

    def search(self, *, page: int, per_page: int, search: str | None) -> tuple[list[Doc], int]:
        return self.repository.search(page=page, per_page=per_page, search=search)

    def update_profile(self, user_id: str, changes: dict[str, Any]) -> Doc:
        allowed = {k: v for k, v in changes.items() if k in ("first_name", "last_name", "gender")}
        if not allowed:
            return self.repository.get(user_id)
        return self.repository.update_fields(user_id, allowed)

    def set_role(self, user_id: str, role: str) -> Doc:
        doc = self.repository.get(user_id)
        demoted = doc["role"] == "admin" and role != "admin"
        if demoted and not self.repository.other_active_admins(doc["_id"]):
            raise LastAdmin()
        return self.repository.set_role(user_id, role, tokens_valid_after=self.now_ms())

    def ensure_admin(self, *, email: str, username: str, password: str) -> tuple[Doc, bool]:
        """Create an active admin, or promote and activate the existing account.

        Returns the account and whether it was created."""
        existing = self.find(email) or self.find(username)
        if existing is not None:
            if existing["role"] != "admin" or not existing["is_active"]:
                self.repository.update_fields(
                    str(existing["_id"]),
                    {"role": "admin", "is_active": True, "tokens_valid_after": self.now_ms()},
                )
            return self.repository.get(str(existing["_id"])), False
        doc = self.create_active_user(
            username=username, email=email, password=password, role="admin"
        )
        return doc, True
