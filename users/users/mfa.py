"""TOTP second factor: enrolment, confirmation with recovery codes, disabling, and the
gateway's second login step."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from users.adapters.repository import Doc
from users.domain import (
    RECOVERY_CODE_COUNT,
    RECOVERY_PATTERN,
    TOTP_PATTERN,
    InvalidCode,
    InvalidMfaCode,
    MfaAlreadyEnabled,
    MfaNotEnabled,
    MfaNotPending,
    UserNotFound,
    WrongPassword,
    normalise_recovery_code,
)
from users.security import (
    matching_step,
    new_totp_secret,
    provisioning_uri,
    qr_png_base64,
    recovery_code,
)
from users.service_base import ServiceBase

# The service's logger, not this module's: the "logger" field of a JSON log line names
# users.service whichever part of the service wrote it.
log = logging.getLogger("users.service")


@dataclass(frozen=True)
class Enrolment:
    provisioning_uri: str
    qr_code_base64: str


class Mfa(ServiceBase):
    def _enrolment(self, secret: str, email: str) -> Enrolment:
        uri = provisioning_uri(secret, email, self.policy.totp_issuer)
        return Enrolment(provisioning_uri=uri, qr_code_base64=qr_png_base64(uri))

    def _check_password(self, doc: Doc, password: str) -> None:
        if not self.passwords.verify(doc["password_hash"], password):
            raise WrongPassword()

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
