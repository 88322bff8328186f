"""User storage in MongoDB. Every conditional change is one atomic command.

Only strings built by the service reach a filter; request values never become
operators.
"""

from __future__ import annotations

import re
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from users.adapters.mongo import atomic
from users.domain import (
    EmailTaken,
    NewUser,
    UsernameTaken,
    UserNotFound,
    is_object_id,
    username_key,
)

Doc = dict[str, Any]


def _oid(user_id: str) -> ObjectId:
    if not isinstance(user_id, str) or not is_object_id(user_id):
        raise UserNotFound()
    return ObjectId(user_id)


class UserRepository:
    def __init__(self, database: Any) -> None:
        self.database = database
        self.users = database["users"]

    def ensure_indexes(self) -> None:
        """Idempotent: creating an existing index with the same options is a no-op."""
        self.users.create_index([("email", ASCENDING)], unique=True, name="email_unique")
        self.users.create_index(
            [("username_key", ASCENDING)], unique=True, name="username_key_unique"
        )
        self.users.create_index(
            [("activation.code_hash", ASCENDING)], sparse=True, name="activation_code"
        )
        self.users.create_index([("reset.token_hash", ASCENDING)], sparse=True, name="reset_token")

    def ping(self) -> None:
        self.database.command("ping")

    # -- create / read ----------------------------------------------------------------------

    def insert(self, user: NewUser, *, now_ms: int, activation: Doc | None) -> Doc:
        doc: Doc = {
            "username": user.username,
            "username_key": username_key(user.username),
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "gender": user.gender,
            "role": user.role,
            "is_active": user.is_active,
            "password_hash": user.password_hash,
            "tokens_valid_after": 0,
            "created_at": now_ms,
            "mfa": {"enabled": False},
        }
        if activation is not None:
            doc["activation"] = activation
        try:
            with atomic(self.database):
                result = self.users.insert_one(doc)
        except DuplicateKeyError as exc:
            raise self._which_duplicate(exc, doc) from None
        doc["_id"] = result.inserted_id
        return doc

    def _which_duplicate(self, exc: DuplicateKeyError, doc: Doc) -> Exception:
        pattern = (exc.details or {}).get("keyPattern") or {}
        if "email" in pattern:
            return EmailTaken()
        if "username_key" in pattern:
            return UsernameTaken()
        if self.users.find_one({"email": doc["email"]}, {"_id": 1}) is not None:
            return EmailTaken()
        return UsernameTaken()

    def get(self, user_id: str) -> Doc:
        doc = self.users.find_one({"_id": _oid(user_id)})
        if doc is None:
            raise UserNotFound()
        return doc

    def find_by(self, field: str, value: str) -> Doc | None:
        assert field in ("email", "username_key")
        return self.users.find_one({field: value})

    def find_by_activation_code(self, code_hash: str) -> Doc | None:
        return self.users.find_one({"activation.code_hash": code_hash, "is_active": False})

    def find_by_reset_token(self, token_hash: str) -> Doc | None:
        return self.users.find_one({"reset.token_hash": token_hash})

    def search(self, *, page: int, per_page: int, search: str | None) -> tuple[list[Doc], int]:
        query: Doc = {}
        if search:
            pattern = re.escape(search.casefold())
            query = {
                "$or": [
                    {"username_key": {"$regex": pattern}},
                    {"email": {"$regex": pattern}},
                ]
            }
        total = int(self.users.count_documents(query))
        cursor = (
            self.users.find(query)
            .sort("_id", ASCENDING)
            .skip((page - 1) * per_page)
            .limit(per_page)
        )
        return list(cursor), total

    def other_active_admins(self, user_id: ObjectId) -> int:
        """Admins besides ``user_id`` who can log in: the ones who could take over."""
        query = {"role": "admin", "is_active": True, "_id": {"$ne": user_id}}
        return int(self.users.count_documents(query, limit=1))

    # -- activation -------------------------------------------------------------------------

    def set_activation(self, user_id: ObjectId, activation: Doc, *, sent_before_ms: int) -> bool:
        """Issue a new code (the old one dies) unless one was sent after ``sent_before_ms``."""
        with atomic(self.database):
            result = self.users.update_one(
                {
                    "_id": user_id,
                    "is_active": False,
                    "$or": [
                        {"activation": {"$exists": False}},
                        {"activation.sent_at": {"$lte": sent_before_ms}},
                    ],
                },
                {"$set": {"activation": activation}},
            )
        return result.modified_count == 1

    def claim_activation_attempt(self, field: str, key: str, *, max_attempts: int) -> Doc | None:
        """Count one attempt for the pending account named by ``field``/``key`` before its
        code is judged; None once ``max_attempts`` are used. One atomic command, so
        parallel guesses cannot all be judged before any of them is counted."""
        assert field in ("email", "username_key")
        with atomic(self.database):
            return self.users.find_one_and_update(
                {field: key, "is_active": False, "activation.attempts": {"$lt": max_attempts}},
                {"$inc": {"activation.attempts": 1}},
                return_document=ReturnDocument.AFTER,
            )

    def activate(
        self, user_id: ObjectId, code_hash: str, *, now_ms: int, max_attempts: int
    ) -> Doc | None:
        """Activate with a code whose attempt is not counted yet (the caller sent no
        identifier): every counted attempt must still be below the limit."""
        return self._activate(user_id, code_hash, now_ms, {"$lt": max_attempts})

    def activate_claimed(
        self, user_id: ObjectId, code_hash: str, *, now_ms: int, max_attempts: int
    ) -> Doc | None:
        """Activate after :meth:`claim_activation_attempt` counted this very attempt, so
        the last allowed attempt itself may be the one that succeeds."""
        return self._activate(user_id, code_hash, now_ms, {"$lte": max_attempts})

    def _activate(
        self, user_id: ObjectId, code_hash: str, now_ms: int, attempts: Doc
    ) -> Doc | None:
        # Unsetting the activation in the same command makes the code single-use.
        with atomic(self.database):
            return self.users.find_one_and_update(
                {
                    "_id": user_id,
                    "is_active": False,
                    "activation.code_hash": code_hash,
                    "activation.expires_at": {"$gt": now_ms},
                    "activation.attempts": attempts,
                },
                {"$set": {"is_active": True}, "$unset": {"activation": ""}},
                return_document=ReturnDocument.AFTER,
            )

    def count_failed_activation(self, user_id: ObjectId, *, max_attempts: int) -> None:
        with atomic(self.database):
            self.users.update_one(
                {"_id": user_id, "is_active": False, "activation": {"$exists": True}},
                {"$inc": {"activation.attempts": 1}},
            )
        self.kill_exhausted_activation(user_id, max_attempts=max_attempts)

    def kill_exhausted_activation(self, user_id: ObjectId, *, max_attempts: int) -> None:
        """Once every attempt is used the code is dead: drop its hash so it can never
        match again (not even without an identifier, where the hash finds the account)."""
        with atomic(self.database):
            self.users.update_one(
                {
                    "_id": user_id,
                    "is_active": False,
                    "activation.attempts": {"$gte": max_attempts},
                },
                {"$unset": {"activation.code_hash": ""}},
            )

    # -- passwords --------------------------------------------------------------------------

    def set_reset(self, user_id: ObjectId, reset: Doc, *, sent_before_ms: int) -> bool:
        """Issue a new token (the old one dies) unless one was sent after ``sent_before_ms``,
        so a burst of requests neither floods the mailbox nor kills the link just sent."""
        with atomic(self.database):
            result = self.users.update_one(
                {
                    "_id": user_id,
                    "is_active": True,
                    "$or": [
                        # No token, or one stored before tokens carried ``sent_at``.
                        {"reset.sent_at": {"$exists": False}},
                        {"reset.sent_at": {"$lte": sent_before_ms}},
                    ],
                },
                {"$set": {"reset": reset}},
            )
        return result.modified_count == 1

    def drop_reset(self, user_id: ObjectId, token_hash: str) -> None:
        """Withdraw a reset token (only that one: a newer token stays)."""
        with atomic(self.database):
            self.users.update_one(
                {"_id": user_id, "reset.token_hash": token_hash}, {"$unset": {"reset": ""}}
            )

    def consume_reset(
        self, token_hash: str, *, now_ms: int, password_hash: str, tokens_valid_after: int
    ) -> Doc | None:
        with atomic(self.database):
            return self.users.find_one_and_update(
                {"reset.token_hash": token_hash, "reset.expires_at": {"$gt": now_ms}},
                {
                    "$set": {
                        "password_hash": password_hash,
                        "tokens_valid_after": tokens_valid_after,
                    },
                    "$unset": {"reset": ""},
                },
                return_document=ReturnDocument.AFTER,
            )

    def set_password(
        self, user_id: ObjectId, *, old_hash: str, new_hash: str, tokens_valid_after: int
    ) -> bool:
        """Change the password unless it changed meanwhile; outstanding reset tokens die."""
        with atomic(self.database):
            result = self.users.update_one(
                {"_id": user_id, "password_hash": old_hash},
                {
                    "$set": {"password_hash": new_hash, "tokens_valid_after": tokens_valid_after},
                    "$unset": {"reset": ""},
                },
            )
        return result.modified_count == 1

    def rehash(self, user_id: ObjectId, *, old_hash: str, new_hash: str) -> None:
        with atomic(self.database):
            self.users.update_one(
                {"_id": user_id, "password_hash": old_hash}, {"$set": {"password_hash": new_hash}}
            )

    # -- profile and role -------------------------------------------------------------------

    def update_fields(self, user_id: str, changes: Doc) -> Doc:
        doc = self.users.find_one_and_update(
            {"_id": _oid(user_id)}, {"$set": changes}, return_document=ReturnDocument.AFTER
        )
        if doc is None:
            raise UserNotFound()
        return doc

    def delete(self, user_id: ObjectId) -> bool:
        return bool(self.users.delete_one({"_id": user_id}).deleted_count == 1)

    # -- MFA --------------------------------------------------------------------------------

    def set_pending_mfa(self, user_id: ObjectId, encrypted_secret: str) -> bool:
        with atomic(self.database):
            result = self.users.update_one(
                {"_id": user_id, "mfa.enabled": {"$ne": True}},
                {"$set": {"mfa.pending_secret": encrypted_secret}},
            )
        return result.matched_count == 1

    def confirm_mfa(
        self,
        user_id: ObjectId,
        *,
        pending_secret: str,
        step: int,
        recovery_hashes: list[str],
        tokens_valid_after: int,
    ) -> Doc | None:
        with atomic(self.database):
            return self.users.find_one_and_update(
                {
                    "_id": user_id,
                    "mfa.enabled": {"$ne": True},
                    "mfa.pending_secret": pending_secret,
                },
                {
                    "$set": {
                        "mfa": {
                            "enabled": True,
                            "secret": pending_secret,
                            "last_step": step,
                            "recovery_codes": recovery_hashes,
                        },
                        "tokens_valid_after": tokens_valid_after,
                    }
                },
                return_document=ReturnDocument.AFTER,
            )

    def disable_mfa(self, user_id: ObjectId, *, tokens_valid_after: int) -> Doc | None:
        with atomic(self.database):
            return self.users.find_one_and_update(
                {"_id": user_id, "mfa.enabled": True},
                {"$set": {"mfa": {"enabled": False}, "tokens_valid_after": tokens_valid_after}},
                return_document=ReturnDocument.AFTER,
            )

    def accept_totp_step(self, user_id: ObjectId, step: int) -> bool:
        """Move ``last_step`` forward; refuses (atomically) a step already used or older."""
        with atomic(self.database):
            result = self.users.update_one(
                {"_id": user_id, "mfa.enabled": True, "mfa.last_step": {"$lt": step}},
                {"$set": {"mfa.last_step": step}},
            )
        return result.modified_count == 1

    def use_recovery_code(self, user_id: ObjectId, code_hash: str) -> bool:
        with atomic(self.database):
            result = self.users.update_one(
                {"_id": user_id, "mfa.enabled": True, "mfa.recovery_codes": code_hash},
                {"$pull": {"mfa.recovery_codes": code_hash}},
            )
        return result.modified_count == 1

    def set_role(self, user_id: str, role: str, *, tokens_valid_after: int) -> Doc:
        return self.update_fields(user_id, {"role": role, "tokens_valid_after": tokens_valid_after})
