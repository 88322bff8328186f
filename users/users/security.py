"""Hashing, secrets at rest and TOTP: the cryptography of the users service."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import secrets

import pyotp
import qrcode
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from users.domain import RECOVERY_ALPHABET, nfkc

TOTP_STEP_SECONDS = 30
TOTP_DIGITS = 6


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


class Passwords:
    """argon2id hashes of NFKC-normalised passwords."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher(type=Type.ID)
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self.hasher.hash(nfkc(password))

    def verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored_hash, nfkc(password))
        except (VerificationError, InvalidHashError):
            return False

    def dummy_verify(self, password: str) -> None:
        """Spend the time of a real verification, so unknown accounts are not faster."""
        self.verify(self._dummy_hash, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self.hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return False


class Secrets:
    """Keyed hashes for codes and tokens, and encryption of TOTP secrets and outbox
    mail at rest.

    Every key is derived from ``TOTP_ENCRYPTION_KEY`` (any string of 32+ bytes)."""

    def __init__(self, master_key: str) -> None:
        material = master_key.encode() or b"development-only-users-key"
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(material, b"users/totp-secret")))
        self._mail = Fernet(base64.urlsafe_b64encode(_derive(material, b"users/outbox-mail")))
        self._pepper = _derive(material, b"users/code-hash")

    def digest(self, value: str) -> str:
        """HMAC-SHA256: a database dump alone cannot brute-force 6-digit codes."""
        return hmac.new(self._pepper, value.encode(), hashlib.sha256).hexdigest()

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str | None:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            return None

    def seal(self, plain: str) -> str:
        """A mail body at rest in the outbox: it carries activation codes and reset
        links, which are stored nowhere else in a usable form."""
        return self._mail.encrypt(plain.encode()).decode()

    def unseal(self, sealed: str) -> str | None:
        try:
            return self._mail.decrypt(sealed.encode()).decode()
        except InvalidToken:
            return None


def activation_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def reset_token() -> str:
    """256 bits from the CSPRNG."""
    return secrets.token_urlsafe(32)


def recovery_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def new_totp_secret() -> str:
    """160 bits, base32 (what authenticator apps expect)."""
    return base64.b32encode(secrets.token_bytes(20)).decode()


def totp_step(now: float) -> int:
    return int(now // TOTP_STEP_SECONDS)


def matching_step(secret: str, code: str, now: float, window: int = 1) -> int | None:
    """The newest step in ``[now - window, now + window]`` whose code is ``code``."""
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS)
    current = totp_step(now)
    found: int | None = None
    for step in range(current - window, current + window + 1):
        expected = totp.at(step * TOTP_STEP_SECONDS)
        if hmac.compare_digest(expected.encode(), code.encode()):
            found = step
    return found


def totp_code(secret: str, now: float) -> str:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS).at(int(now))


def provisioning_uri(secret: str, email: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def qr_png_base64(data: str) -> str:
    image = qrcode.make(data)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()
