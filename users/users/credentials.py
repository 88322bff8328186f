"""Proving who owns an account: activation codes, password resets and changes, and the
gateway's password check."""

from __future__ import annotations

import hmac

from common.mail import OutgoingMail
from users.adapters.repository import Doc
from users.domain import (
    AccountJob,
    InvalidActivationCode,
    InvalidCredentials,
    InvalidResetToken,
    WrongPassword,
    canonical_identifier,
    check_password_policy,
)
from users.mails import activation_mail, reset_link, reset_mail
from users.security import activation_code, reset_token
from users.service_base import ServiceBase


class Credentials(ServiceBase):
    def run_job(self, job: AccountJob) -> None:
        """Run by the mail relay, off the request path (see :class:`AccountJob`)."""
        if job.kind == "password_reset":
            self.issue_reset(job.identifier)
        else:
            self.issue_activation_code(job.identifier)

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
            activated = self._activate_with_identifier(code_hash, identifier)
        else:
            activated = self._activate_code_only(code_hash)
        if activated["role"] == "admin":
            self._count_if_admin(activated["_id"])  # an admin account created by an admin
        return activated

    def _activate_code_only(self, code_hash: str) -> Doc:
        """The seed's ``{"code"}``: the code alone names the account (codes of pending
        accounts differ, and the hash finds it), so "per account" splits in two:

        * a code that matches a pending account names it, and is judged and counted
          against that account like an attempt with an identifier (its 5 tries);
        * a code that matches none names no account: it is a guess at every pending
          account at once, so it is counted against them all together, in one
          platform-wide budget (``activation_code_only_max_attempts`` per
          ``activation_code_only_window_seconds``). Each attempt takes a unit before
          its code is looked up, so parallel guesses get no more than the budget; one
          whose code matched gives it back. Once the budget is spent, code-only attempts
          are refused unjudged (the same neutral answer) until the window ends; an
          attempt with the identifier is not affected."""
        policy = self.policy
        window = self.repository.take_code_only_attempt(
            now_ms=self.now_ms(),
            window_ms=policy.activation_code_only_window_seconds * 1000,
            max_attempts=policy.activation_code_only_max_attempts,
        )
        if window is None:
            raise InvalidActivationCode()
        doc = self.repository.find_by_activation_code(code_hash)
        if doc is None or doc["is_active"]:
            raise InvalidActivationCode()  # a wrong guess: its unit stays spent
        self.repository.refund_code_only_attempt(window)
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

    # -- credential check for the gateway ---------------------------------------------------

    def login_account(self, identifier: str) -> str:
        """The gateway's back-off key for ``identifier``, asked BEFORE any password is
        checked: the account's id for a known account (so its username and its email
        share one counter), the canonical identifier for an unknown one (so unknown
        accounts back off like real ones). Keyed hashes of one length and one lookup
        either way: the answer does not tell the two apart, and it never leaves the
        platform (the gateway only uses it as a Redis key)."""
        doc = self.find(identifier)
        if doc is not None:
            return self.secrets.digest(f"login-account:{doc['_id']}")[:32]
        kind, key = canonical_identifier(identifier)
        return self.secrets.digest(f"login-identifier:{kind}:{key}")[:32]

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
