"""Account lifecycle: registration, lookup, profile, roles, deletion and the admin bootstrap."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from users.adapters.repository import GUARD_RETRIES, Doc
from users.credentials import Credentials
from users.domain import (
    ConcurrentChange,
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
        doc = self.repository.insert(user, now_ms=self.now_ms(), activation=None)
        if role == "admin":
            self._count_if_admin(doc["_id"])
        return doc

    def get(self, user_id: str) -> Doc:
        return self.repository.get(user_id)

    def get_by_identifier(self, identifier: str) -> Doc:
        doc = self.find(identifier)
        if doc is None:
            raise UserNotFound()
        return doc

    def delete(self, user_id: str) -> str:
        # The last-admin rule, as in set_role: deleting the last admin would leave nobody
        # to manage the platform. How it holds under concurrency: the repository's
        # module docstring.
        for _ in range(GUARD_RETRIES):
            doc = self.repository.get(user_id)
            if doc["role"] != "admin":
                if self.repository.delete_unless_admin(doc["_id"]):
                    return user_id
                continue  # promoted (or deleted) meanwhile: judge again
            fence = self.repository.admin_fence()
            if not self.repository.uncount_admin(doc["_id"], fence):
                raise LastAdmin()
            if self.repository.delete_fenced(doc["_id"], fence):
                return user_id
            # Deleted meanwhile (the next read says 404) or changed by a newer request.
        raise ConcurrentChange()

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
        """Demoting the last active admin is refused (409 ``last_admin``), also when two
        admins demote or delete each other at the same moment (see the repository)."""
        for _ in range(GUARD_RETRIES):
            doc = self.repository.get(user_id)
            changes = {"role": role, "tokens_valid_after": self.now_ms()}
            updated: Doc | None
            if role == "admin":
                updated = self._make_admin(doc["_id"], changes)
            elif doc["role"] != "admin":
                updated = self.repository.update_unless_admin(doc["_id"], changes)
            else:
                fence = self.repository.admin_fence()
                if not self.repository.uncount_admin(doc["_id"], fence):
                    raise LastAdmin()
                updated = self.repository.update_fenced(doc["_id"], changes, fence)
            if updated is not None:
                return updated
            # Deleted (the next read says 404) or changed by another request: judge again.
        raise ConcurrentChange()

    def _make_admin(self, user_id: ObjectId, changes: dict[str, Any]) -> Doc | None:
        """The document first, then the guard: the guard may lag, never lead."""
        fence = self.repository.admin_fence()
        updated = self.repository.update_fenced(user_id, changes, fence)
        if updated is not None and updated["role"] == "admin" and updated["is_active"]:
            self.repository.count_admin(user_id, fence)
        return updated

    def ensure_admin(self, *, email: str, username: str, password: str) -> tuple[Doc, bool]:
        """Create an active admin, or promote and activate the existing account.

        Returns the account and whether it was created."""
        existing = self.find(email) or self.find(username)
        if existing is not None:
            if existing["role"] != "admin" or not existing["is_active"]:
                self._make_admin(
                    existing["_id"],
                    {"role": "admin", "is_active": True, "tokens_valid_after": self.now_ms()},
                )
            else:
                self._count_if_admin(existing["_id"])  # heals a guard left one short
            return self.repository.get(str(existing["_id"])), False
        doc = self.create_active_user(
            username=username, email=email, password=password, role="admin"
        )
        return doc, True
