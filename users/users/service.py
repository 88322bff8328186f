"""Account business rules: no Flask, no pymongo (storage is the repository's)."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.mail import OutgoingMail
from users.adapters.outbox import MongoOutbox, OutboxItem
from users.adapters.repository import Doc, UserRepository
from users.domain import (
    RECOVERY_CODE_COUNT,
    RECOVERY_PATTERN,
    TOTP_PATTERN,
    AccountJob,
    InvalidActivationCode,
    InvalidCode,
    InvalidCredentials,
    InvalidMfaCode,
    InvalidResetToken,
    LastAdmin,
    MfaAlreadyEnabled,
    MfaNotEnabled,
    MfaNotPending,
    NewUser,
    UserNotFound,
    WrongPassword,
    canonical_email,
    canonical_identifier,
    check_password_policy,
    normalise_recovery_code,
)
from users.mails import activation_mail, reset_link, reset_mail
from users.security import (
    Passwords,
    Secrets,
    activation_code,
    matching_step,
    new_totp_secret,
    provisioning_uri,
    qr_png_base64,
    recovery_code,
    reset_token,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    activation_code_minutes: int = 30
    activation_max_attempts: int = 5
    activation_resend_seconds: int = 60
    reset_token_minutes: int = 30
    reset_resend_seconds: int = 60
    frontend_url: str = "http://127.0.0.1:8080"
    totp_issuer: str = "Course Platform"


@dataclass(frozen=True)
class Enrolment:
    provisioning_uri: str
    qr_code_base64: str


class UserService:
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

    def run_job(self, job: AccountJob) -> None:
        """Run by the mail relay, off the request path (see :class:`AccountJob`)."""
        if job.kind == "password_reset":
            self.issue_reset(job.identifier)
        else:
            self.issue_activation_code(job.identifier)

    # -- accounts ---------------------------------------------------------------------------

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

    def find(self, identifier: str) -> Doc | None:
        return self.repository.find_by(*self._lookup(identifier))

    @staticmethod
    def _lookup(identifier: str) -> tuple[str, str]:
        """The stored field and value that name the account behind ``identifier``."""
        kind, key = canonical_identifier(identifier)
        return ("email" if kind == "email" else "username_key"), key

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

    # -- activation -------------------------------------------------------------------------

    def _activation(self, code: str) -> Doc:
        now = self.now_ms()
        return {
            "code_hash": self.secrets.digest(code),
            "expires_at": now + self.policy.activation_code_minutes * 60_000,
            "attempts": 0,
            "sent_at": now,
        }

    def _unused_activation_code(self) -> str:
        """Codes of pending accounts differ, so a code alone names one account."""
        while True:
            code = activation_code()
            if self.repository.find_by_activation_code(self.secrets.digest(code)) is None:
                return code

    def _activation_mail(self, doc: Doc, code: str) -> OutgoingMail:
        return activation_mail(
            to=doc["email"],
            first_name=doc["first_name"],
            code=code,
            minutes=self.policy.activation_code_minutes,
        )

    def activate(self, code: str, identifier: str | None = None) -> Doc:
        """Every failure is the same neutral error, whatever went wrong."""
        code_hash = self.secrets.digest(code)
        if identifier is not None:
            return self._activate_with_identifier(code_hash, identifier)
        doc = self.repository.find_by_activation_code(code_hash)
        if doc is None or doc["is_active"]:
            raise InvalidActivationCode()
        activated = self.repository.activate(
            doc["_id"], code_hash, now_ms=self.now_ms(), max_attempts=self.max_attempts
        )
        if activated is None:
            self.repository.count_failed_activation(doc["_id"], max_attempts=self.max_attempts)
            raise InvalidActivationCode()
        return activated

    @property
    def max_attempts(self) -> int:
        return self.policy.activation_max_attempts

    def _activate_with_identifier(self, code_hash: str, identifier: str) -> Doc:
        # Count the attempt before judging the code: parallel guesses then each take one
        # of the limited attempts, instead of all being judged while the count is low.
        field, key = self._lookup(identifier)
        claimed = self.repository.claim_activation_attempt(
            field, key, max_attempts=self.max_attempts
        )
        if claimed is None:
            raise InvalidActivationCode()
        stored_hash = claimed["activation"].get("code_hash") or ""
        activated = None
        if hmac.compare_digest(stored_hash, code_hash):
            activated = self.repository.activate_claimed(
                claimed["_id"], code_hash, now_ms=self.now_ms(), max_attempts=self.max_attempts
            )
        if activated is None:
            # Only the attempt that used up the last try ends the code: a wrong guess
            # counted before a concurrent right one must not void the right one.
            if claimed["activation"]["attempts"] >= self.max_attempts:
                self.repository.kill_exhausted_activation(
                    claimed["_id"], max_attempts=self.max_attempts
                )
            raise InvalidActivationCode()
        return activated

    def resend_activation(self, identifier: str) -> None:
        """The same single write for every identifier; the relay issues the code."""
        self._enqueue(AccountJob("activation_resend", identifier))

    def issue_activation_code(self, identifier: str) -> None:
        """A new code for an inactive account, at most once a minute."""
        doc = self.find(identifier)
        if doc is None or doc["is_active"]:
            return
        code = self._unused_activation_code()
        sent_before = self.now_ms() - self.policy.activation_resend_seconds * 1000
        if self.repository.set_activation(
            doc["_id"], self._activation(code), sent_before_ms=sent_before
        ):
            self._send(self._activation_mail(doc, code))

    # -- passwords --------------------------------------------------------------------------

    def forgot_password(self, identifier: str) -> None:
        """The same single write for every identifier; the relay issues the token."""
        self._enqueue(AccountJob("password_reset", identifier))

    def issue_reset(self, identifier: str) -> None:
        """A reset token for an active account, at most once a minute; it supersedes any
        older one."""
        doc = self.find(identifier)
        if doc is None or not doc["is_active"]:
            return
        token = reset_token()
        now = self.now_ms()
        token_hash = self.secrets.digest(token)
        reset = {
            "token_hash": token_hash,
            "expires_at": now + self.policy.reset_token_minutes * 60_000,
            "sent_at": now,
        }
        sent_before = now - self.policy.reset_resend_seconds * 1000
        if not self.repository.set_reset(doc["_id"], reset, sent_before_ms=sent_before):
            return
        mail = reset_mail(
            to=doc["email"],
            first_name=doc["first_name"],
            link=reset_link(self.policy.frontend_url, token),
            minutes=self.policy.reset_token_minutes,
        )
        try:
            self._send(mail)
        except Exception:
            # The job is retried; a token no mail carries must not hold that retry back
            # for the minute between two reset mails.
            self.repository.drop_reset(doc["_id"], token_hash)
            raise

    def reset_password(self, token: str, new_password: str) -> str:
        token_hash = self.secrets.digest(token)
        doc = self.repository.find_by_reset_token(token_hash)
        if doc is None or doc["reset"]["expires_at"] <= self.now_ms():
            raise InvalidResetToken()
        check_password_policy(
            new_password, username=doc["username"], email=doc["email"], field="new_password"
        )
        updated = self.repository.consume_reset(
            token_hash,
            now_ms=self.now_ms(),
            password_hash=self.passwords.hash(new_password),
            tokens_valid_after=self.now_ms(),
        )
        if updated is None:
            raise InvalidResetToken()
        return str(updated["_id"])

    def change_password(self, user_id: str, current_password: str, new_password: str) -> Doc:
        doc = self.repository.get(user_id)
        if not self.passwords.verify(doc["password_hash"], current_password):
            raise WrongPassword()
        check_password_policy(
            new_password, username=doc["username"], email=doc["email"], field="new_password"
        )
        changed = self.repository.set_password(
            doc["_id"],
            old_hash=doc["password_hash"],
            new_hash=self.passwords.hash(new_password),
            tokens_valid_after=self.now_ms(),
        )
        if not changed:
            raise WrongPassword()
        return self.repository.get(user_id)

    def _check_password(self, doc: Doc, password: str) -> None:
        if not self.passwords.verify(doc["password_hash"], password):
            raise WrongPassword()

    # -- credential check for the gateway ---------------------------------------------------

    def verify_credentials(self, identifier: str, password: str) -> Doc:
        doc = self.find(identifier)
        if doc is None:
            self.passwords.dummy_verify(password)
            raise InvalidCredentials()
        if not self.passwords.verify(doc["password_hash"], password):
            raise InvalidCredentials()
        if not doc["is_active"]:
            raise InvalidCredentials()
        if self.passwords.needs_rehash(doc["password_hash"]):
            self.repository.rehash(
                doc["_id"], old_hash=doc["password_hash"], new_hash=self.passwords.hash(password)
            )
        return doc

    # -- MFA --------------------------------------------------------------------------------

    def _enrolment(self, secret: str, email: str) -> Enrolment:
        uri = provisioning_uri(secret, email, self.policy.totp_issuer)
        return Enrolment(provisioning_uri=uri, qr_code_base64=qr_png_base64(uri))

    def mfa_enable(self, user_id: str, password: str) -> Enrolment:
        doc = self.repository.get(user_id)
        self._check_password(doc, password)
        if doc.get("mfa", {}).get("enabled"):
            raise MfaAlreadyEnabled()
        secret = new_totp_secret()
        if not self.repository.set_pending_mfa(doc["_id"], self.secrets.encrypt(secret)):
            raise MfaAlreadyEnabled()
        return self._enrolment(secret, doc["email"])

    def _pending_secret(self, doc: Doc) -> tuple[str, str]:
        mfa = doc.get("mfa") or {}
        encrypted = mfa.get("pending_secret")
        if mfa.get("enabled") or not encrypted:
            raise MfaNotPending()
        secret = self.secrets.decrypt(encrypted)
        if secret is None:
            raise MfaNotPending()
        return encrypted, secret

    def mfa_qr(self, user_id: str) -> Enrolment:
        doc = self.repository.get(user_id)
        _, secret = self._pending_secret(doc)
        return self._enrolment(secret, doc["email"])

    def mfa_confirm(self, user_id: str, code: str) -> list[str]:
        doc = self.repository.get(user_id)
        encrypted, secret = self._pending_secret(doc)
        step = matching_step(secret, code, self.clock()) if TOTP_PATTERN.fullmatch(code) else None
        if step is None:
            raise InvalidMfaCode()
        codes = [recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
        confirmed = self.repository.confirm_mfa(
            doc["_id"],
            pending_secret=encrypted,
            step=step,
            recovery_hashes=[self.secrets.digest(normalise_recovery_code(c)) for c in codes],
            tokens_valid_after=self.now_ms(),
        )
        if confirmed is None:
            raise MfaNotPending()
        return codes

    def mfa_disable(self, user_id: str, password: str, code: str) -> Doc:
        doc = self.repository.get(user_id)
        self._check_password(doc, password)
        if not doc.get("mfa", {}).get("enabled"):
            raise MfaNotEnabled()
        if not self._accept_second_factor(doc, code):
            raise InvalidMfaCode()
        disabled = self.repository.disable_mfa(doc["_id"], tokens_valid_after=self.now_ms())
        if disabled is None:
            raise MfaNotEnabled()
        return disabled

    def verify_mfa(self, user_id: str, code: str) -> Doc:
        """The gateway's second login step: a TOTP or a recovery code, each usable once."""
        try:
            doc = self.repository.get(user_id)
        except UserNotFound:
            raise InvalidCode() from None
        if not doc["is_active"] or not doc.get("mfa", {}).get("enabled"):
            raise InvalidCode()
        if not self._accept_second_factor(doc, code):
            raise InvalidCode()
        return self.repository.get(user_id)

    def _accept_second_factor(self, doc: Doc, code: str) -> bool:
        mfa = doc.get("mfa") or {}
        if TOTP_PATTERN.fullmatch(code):
            secret = self.secrets.decrypt(mfa.get("secret") or "")
            if secret is None:
                return False
            step = matching_step(secret, code, self.clock())
            if step is None:
                return False
            if not self.repository.accept_totp_step(doc["_id"], step):
                log.warning("totp_replay", extra={"user_id": str(doc["_id"]), "step": step})
                return False
            return True
        if RECOVERY_PATTERN.fullmatch(code):
            digest = self.secrets.digest(normalise_recovery_code(code))
            return self.repository.use_recovery_code(doc["_id"], digest)
        return False

    # -- bootstrap --------------------------------------------------------------------------

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


class OutboxDelivery:
    """The mail relay's handler: mail goes to SMTP; an account job runs here and
    stores the mail it produces as a new outbox item."""

    def __init__(self, send_mail: Callable[[OutgoingMail], None], service: UserService) -> None:
        self.send_mail = send_mail
        self.service = service

    def __call__(self, item: OutboxItem) -> None:
        if isinstance(item, AccountJob):
            self.service.run_job(item)
        else:
            self.send_mail(item)
