"""User storage in MongoDB. Every conditional change is one atomic command.

Only strings built by the service reach a filter; request values never become
operators.

The last-admin rule ("at least one active admin") spans documents, and MongoDB applies a
condition atomically within one document only (multi-document transactions need a
replica set; mongomock has none). So the admins who count are kept in ONE guard
document, ``guards/{"_id": "admins"}``, and every change that could remove the last one
is a conditional update of it::

    admins  ids of active admins: a subset of them, never one too many
    seq     hands out a fence token to each change of an admin's role (always growing)
    gone    user id -> token of that user's latest removal from ``admins``

* Removing an admin (demotion, deletion) first pulls the id from ``admins`` with the
  condition that another id stays (``admins.1`` exists), then changes the user document.
  Of two admins removing each other at the same moment, one pull runs first; the other
  then finds a single id left and is refused. A crash in between leaves the set one
  short: stricter, never looser.
* Adding (promotion, activation of an admin account) changes the user document first and
  the set after, so the set can lag behind the documents but never runs ahead of them.
* Stale writes cannot reorder that: a user-document write of this protocol carries its
  token and matches only while the document's ``role_fence`` is older, and an addition
  matches only while no removal with a newer token is recorded in ``gone``. A promotion and
  a demotion of one user racing each other so end with the set and the document agreeing,
  or the set one short; never with an id in the set whose user is not an admin.
* A user who is not an admin is changed or deleted on the condition that they still are
  not one: a promotion landing in between sends the change round the admin path again.
* The guard is built from the users collection when it is missing (first start, an
  upgrade); of concurrent builds the first insert wins, and no change of this protocol
  runs before one has.
"""

from __future__ import annotations

import contextlib
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
ADMIN_GUARD = "admins"
CODE_ONLY_GUARD = "activation_code_only"
# Retries of a conditional step whose condition another request changed meanwhile.
GUARD_RETRIES = 10


def _oid(user_id: str) -> ObjectId:
    if not isinstance(user_id, str) or not is_object_id(user_id):
        raise UserNotFound()
    return ObjectId(user_id)


class UserRepository:
    def __init__(self, database: Any) -> None:
        self.database = database
        self.users = database["users"]
        self.guards = database["guards"]

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

    # -- the last-admin rule (see the module docstring) -------------------------------------

    def ensure_admin_guard(self) -> None:
        if self.guards.find_one({"_id": ADMIN_GUARD}, {"_id": 1}) is not None:
            return
        admins = [
            doc["_id"] for doc in self.users.find({"role": "admin", "is_active": True}, {"_id": 1})
        ]
        # DuplicateKeyError: built by a concurrent request, and that one counts.
        with contextlib.suppress(DuplicateKeyError):
            self.guards.insert_one({"_id": ADMIN_GUARD, "seq": 0, "admins": admins, "gone": {}})

    def admin_fence(self) -> int:
        """A new fence token, greater than every one handed out before."""
        for _ in range(2):
            with atomic(self.database):
                guard = self.guards.find_one_and_update(
                    {"_id": ADMIN_GUARD},
                    {"$inc": {"seq": 1}},
                    projection={"seq": 1},
                    return_document=ReturnDocument.AFTER,
                )
            if guard is not None:
                return int(guard["seq"])
            self.ensure_admin_guard()
        raise RuntimeError("the admin guard document is missing")

    def count_admin(self, user_id: ObjectId, fence: int) -> None:
        """Count an active admin, unless a removal newer than ``fence`` came first."""
        gone = f"gone.{user_id}"
        with atomic(self.database):
            self.guards.update_one(
                {"_id": ADMIN_GUARD, "$or": [{gone: {"$exists": False}}, {gone: {"$lt": fence}}]},
                {"$addToSet": {"admins": user_id}},
            )

    def uncount_admin(self, user_id: ObjectId, fence: int) -> bool:
        """Stop counting ``user_id`` (recording the removal's token); False, and nothing
        changed, when it is the only admin counted."""
        gone = f"gone.{user_id}"
        self._prune_admin_guard()
        for _ in range(GUARD_RETRIES):
            with atomic(self.database):
                not_counted = self.guards.update_one(
                    {"_id": ADMIN_GUARD, "admins": {"$ne": user_id}}, {"$max": {gone: fence}}
                )
                if not_counted.matched_count:
                    return True
                another_stays = self.guards.update_one(
                    {"_id": ADMIN_GUARD, "admins": user_id, "admins.1": {"$exists": True}},
                    {"$pull": {"admins": user_id}, "$max": {gone: fence}},
                )
                if another_stays.matched_count:
                    return True
            alone = {"_id": ADMIN_GUARD, "admins": user_id, "admins.1": {"$exists": False}}
            if self.guards.find_one(alone, {"_id": 1}) is not None:
                return False
            self.ensure_admin_guard()  # gone, or the set changed between the two: again
        return False

    def _prune_admin_guard(self) -> None:
        """Stop counting ids that are no active admin's (a user deleted or demoted behind
        the service's back, e.g. by hand): it only ever shrinks the set, so it cannot
        make a removal pass that should not, whatever runs alongside."""
        guard = self.guards.find_one({"_id": ADMIN_GUARD}, {"admins": 1})
        if guard is None:
            return
        counted = list(guard.get("admins") or [])
        alive = {
            doc["_id"]
            for doc in self.users.find(
                {"_id": {"$in": counted}, "role": "admin", "is_active": True}, {"_id": 1}
            )
        }
        stale = [user_id for user_id in counted if user_id not in alive]
        if stale:
            with atomic(self.database):
                self.guards.update_one({"_id": ADMIN_GUARD}, {"$pull": {"admins": {"$in": stale}}})

    @staticmethod
    def _older_fence(fence: int) -> Doc:
        return {"$or": [{"role_fence": {"$exists": False}}, {"role_fence": {"$lt": fence}}]}

    def update_fenced(
        self, user_id: ObjectId, changes: Doc, fence: int, *, require: Doc | None = None
    ) -> Doc | None:
        """Apply a change of the admin protocol; None if the user is gone, does not match
        ``require``, or a change with a newer token already landed."""
        with atomic(self.database):
            return self.users.find_one_and_update(
                {"_id": user_id, **self._older_fence(fence), **(require or {})},
                {"$set": {**changes, "role_fence": fence}},
                return_document=ReturnDocument.AFTER,
            )

    def delete_fenced(self, user_id: ObjectId, fence: int) -> bool:
        with atomic(self.database):
            result = self.users.delete_one({"_id": user_id, **self._older_fence(fence)})
        return bool(result.deleted_count == 1)

    def update_unless_admin(self, user_id: ObjectId, changes: Doc) -> Doc | None:
        with atomic(self.database):
            return self.users.find_one_and_update(
                {"_id": user_id, "role": {"$ne": "admin"}},
                {"$set": changes},
                return_document=ReturnDocument.AFTER,
            )

    def delete_unless_admin(self, user_id: ObjectId) -> bool:
        with atomic(self.database):
            result = self.users.delete_one({"_id": user_id, "role": {"$ne": "admin"}})
        return bool(result.deleted_count == 1)

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

    def take_code_only_attempt(
        self, *, now_ms: int, window_ms: int, max_attempts: int
    ) -> int | None:
        """Count one activation attempt without an identifier in the platform-wide
        budget of the current fixed window (one guard document, updated with a
        condition, so parallel attempts cannot overdraw it). Returns the window's start,
        or None once ``max_attempts`` are used in it."""
        window = now_ms - now_ms % max(window_ms, 1)
        if max_attempts <= 0:
            return None
        for _ in range(GUARD_RETRIES):
            with atomic(self.database):
                # ``$gte``: a server whose clock lags counts into the newer window.
                same = self.guards.update_one(
                    {
                        "_id": CODE_ONLY_GUARD,
                        "window": {"$gte": window},
                        "attempts": {"$lt": max_attempts},
                    },
                    {"$inc": {"attempts": 1}},
                )
                if same.matched_count:
                    return window
                newer = self.guards.update_one(
                    {"_id": CODE_ONLY_GUARD, "window": {"$lt": window}},
                    {"$set": {"window": window, "attempts": 1}},
                )
                if newer.matched_count:
                    return window
            if self.guards.find_one({"_id": CODE_ONLY_GUARD}, {"_id": 1}) is not None:
                return None  # the window's budget is used
            try:
                self.guards.insert_one({"_id": CODE_ONLY_GUARD, "window": window, "attempts": 1})
            except DuplicateKeyError:
                continue  # a concurrent first attempt made it: count into that one
            return window
        return None

    def refund_code_only_attempt(self, window: int) -> None:
        with atomic(self.database):
            self.guards.update_one(
                {"_id": CODE_ONLY_GUARD, "window": window, "attempts": {"$gt": 0}},
                {"$inc": {"attempts": -1}},
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
