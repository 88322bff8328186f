"""Account rules, independent of HTTP and storage."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from common.errors import ApiError, Conflict, NotFound, Unauthorized
from contracts.users import (  # noqa: F401 - the account rules the contract carries
    PASSWORD_MAX,
    PASSWORD_MIN,
    RECOVERY_PATTERN,
    ROLES,
    TOTP_PATTERN,
    USERNAME_PATTERN,
    Role,
    canonical_email,
    canonical_identifier,
    nfkc,
    username_key,
)

OBJECT_ID_PATTERN = re.compile(r"^[0-9a-fA-F]{24}$")
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_CODE_COUNT = 10


def is_object_id(value: str) -> bool:
    return bool(OBJECT_ID_PATTERN.fullmatch(value))


def normalise_recovery_code(code: str) -> str:
    return code.replace("-", "").lower()


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    text = resources.files("users").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(line.strip().casefold() for line in text.splitlines() if line.strip())


def password_problem(password: str, *, username: str, email: str) -> str | None:
    """NIST 800-63B in spirit: length, not the account's own names, not a common one.

    No composition rules."""
    normalised = nfkc(password)
    if len(normalised) < PASSWORD_MIN:
        return f"The password must be at least {PASSWORD_MIN} characters long."
    if len(normalised) > PASSWORD_MAX:
        return f"The password must be at most {PASSWORD_MAX} characters long."
    folded = normalised.casefold()
    if folded in (username_key(username), canonical_email(email).casefold()):
        return "The password must not be your username or email."
    local_part = canonical_email(email).split("@", 1)[0]
    if folded == local_part:
        return "The password must not be your username or email."
    if folded in common_passwords():
        return "This password is too common; choose another one."
    return None


def check_password_policy(password: str, *, username: str, email: str, field: str) -> None:
    problem = password_problem(password, username=username, email=email)
    if problem:
        raise WeakPassword(
            problem, details=[{"loc": [field], "msg": problem, "type": "password_policy"}]
        )


@dataclass(frozen=True)
class AccountJob:
    """Work a public request asks for about an account it may not know exists
    (``password_reset``, ``activation_resend``). The request only stores the job, the
    same single write for every identifier, so neither its answer nor its timing tells
    whether the account exists; the mail relay runs the job in the background."""

    kind: Literal["password_reset", "activation_resend"]
    identifier: str


@dataclass(frozen=True)
class NewUser:
    username: str
    email: str
    first_name: str
    last_name: str
    gender: str
    role: str
    password_hash: str
    is_active: bool


def public_user(doc: dict[str, Any]) -> dict[str, Any]:
    mfa = doc.get("mfa") or {}
    return {
        "id": str(doc["_id"]),
        "username": doc["username"],
        "first_name": doc["first_name"],
        "last_name": doc["last_name"],
        "email": doc["email"],
        "gender": doc["gender"],
        "role": doc["role"],
        "is_active": bool(doc["is_active"]),
        "mfa_enabled": bool(mfa.get("enabled", False)),
    }


def user_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """What the gateway needs to issue or refuse a session."""
    return {
        "id": str(doc["_id"]),
        "role": doc["role"],
        "is_active": bool(doc["is_active"]),
        "mfa_enabled": bool((doc.get("mfa") or {}).get("enabled", False)),
        "tokens_valid_after": int(doc.get("tokens_valid_after", 0)),
    }


def internal_user(doc: dict[str, Any]) -> dict[str, Any]:
    user = public_user(doc)
    user["tokens_valid_after"] = int(doc.get("tokens_valid_after", 0))
    return user


class UserNotFound(NotFound):
    code, message = "user_not_found", "The user was not found."


class EmailTaken(Conflict):
    code, message = "email_taken", "An account with this email already exists."


class UsernameTaken(Conflict):
    code, message = "username_taken", "An account with this username already exists."


class WeakPassword(ApiError):
    status, code, message = 400, "weak_password", "The password does not meet the policy."


class InvalidActivationCode(ApiError):
    status, code = 400, "invalid_activation_code"
    message = "The activation code is invalid or has expired."


class InvalidResetToken(ApiError):
    status, code = 400, "invalid_reset_token"
    message = "The reset link is invalid or has expired."


class InvalidCredentials(Unauthorized):
    code, message = "invalid_credentials", "The credentials are invalid."


class WrongPassword(ApiError):
    status, code, message = 400, "invalid_password", "The current password is wrong."


class InvalidCode(Unauthorized):
    code, message = "invalid_code", "The code is invalid."


class InvalidMfaCode(ApiError):
    """A wrong code from a logged-in user managing MFA (not a login attempt)."""

    status, code, message = 400, "invalid_code", "The code is invalid."


class MfaAlreadyEnabled(Conflict):
    code, message = "mfa_already_enabled", "Multi-factor authentication is already enabled."


class MfaNotEnabled(Conflict):
    code, message = "mfa_not_enabled", "Multi-factor authentication is not enabled."


class MfaNotPending(NotFound):
    code, message = "mfa_not_pending", "There is no pending MFA enrolment."


class LastAdmin(Conflict):
    code, message = "last_admin", "The last admin cannot lose the admin role or be deleted."


class ConcurrentChange(Conflict):
    code, message = "concurrent_change", "The account was changed meanwhile; try again."
