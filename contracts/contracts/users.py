"""The users API: its identifier and credential rules, request and response models.

Every field is a plain string/int of bounded size: a JSON object such as
``{"$ne": null}`` where a string is expected is a 400, so request values can
never become MongoDB operators.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictStr, field_validator, model_validator

from common.validation import QuerySchema, Schema

PASSWORD_MIN, PASSWORD_MAX = 12, 128
ADMIN, INSTRUCTOR, USER = "admin", "instructor", "user"
# An instructor has a user's rights plus authoring courses; never an admin's.
Role = Literal["admin", "instructor", "user"]
ROLES: tuple[str, ...] = (ADMIN, INSTRUCTOR, USER)
# Who may create courses (the courses service decides who may change which one).
AUTHOR_ROLES: tuple[str, ...] = (ADMIN, INSTRUCTOR)

USERNAME_PATTERN = re.compile(r"^[\w.-]{3,32}$")
TOTP_PATTERN = re.compile(r"^[0-9]{6}$")
RECOVERY_PATTERN = re.compile(r"^[A-Za-z0-9]{5}-?[A-Za-z0-9]{5}$")


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def canonical_email(email: str) -> str:
    """One account per mailbox: ``Alice@Example.com`` is ``alice@example.com``."""
    return nfkc(email).strip().lower()


def username_key(username: str) -> str:
    """The form under which two usernames count as the same one."""
    return nfkc(username).strip().casefold()


def canonical_identifier(identifier: str) -> tuple[Literal["email", "username"], str]:
    """An identifier with an ``@`` is an email (usernames cannot contain one)."""
    if "@" in identifier:
        return "email", canonical_email(identifier)
    return "username", username_key(identifier)


# What _valid_email takes, as a pattern: one "@", something before it, a "." after it,
# no white space (str.isspace) anywhere. The length limits stay those of Email.
_SPACE = r"\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
EMAIL_PATTERN = rf"^[^@{_SPACE}]+@[^@{_SPACE}]*\.[^@{_SPACE}]*$"


def _email_schema(schema: dict[str, Any]) -> None:
    schema["pattern"] = EMAIL_PATTERN
    schema.pop("minLength", None)  # the pattern needs 3 already


Username = Annotated[StrictStr, Field(min_length=3, max_length=32)]
Email = Annotated[
    StrictStr,
    Field(min_length=3, max_length=254, json_schema_extra=_email_schema),
]
PersonName = Annotated[StrictStr, Field(min_length=1, max_length=64)]
Gender = Annotated[StrictStr, Field(min_length=1, max_length=32)]
# Long enough for the policy to give a precise answer, short enough to bound argon2's work.
Password = Annotated[StrictStr, Field(min_length=1, max_length=PASSWORD_MAX * 4)]
# A password being set: the policy (users.domain.password_problem) answers a length
# outside PASSWORD_MIN..PASSWORD_MAX with its own message, and the published schema says
# what it takes.
NewPassword = Annotated[
    StrictStr,
    Field(
        min_length=1,
        max_length=PASSWORD_MAX * 4,
        json_schema_extra={"minLength": PASSWORD_MIN, "maxLength": PASSWORD_MAX},
    ),
]
Identifier = Annotated[StrictStr, Field(min_length=1, max_length=254)]
ObjectIdStr = Annotated[StrictStr, Field(min_length=1, max_length=64)]
ActivationCode = Annotated[StrictStr, Field(pattern=r"^[0-9]{6}$")]
Token = Annotated[StrictStr, Field(min_length=16, max_length=128)]


def _valid_username(value: str) -> str:
    value = nfkc(value)
    if not USERNAME_PATTERN.fullmatch(value):
        raise ValueError("use 3-32 letters, digits, '.', '_' or '-'")
    return value


def _valid_email(value: str) -> str:
    local, _, domain = value.rpartition("@")
    if not local or "." not in domain or any(ch.isspace() for ch in value) or "@" in local:
        raise ValueError("not a valid email address")
    return value


class UserCreate(Schema):
    """Body of ``POST /users`` (the seed's shape; ``role`` only for admins)."""

    username: Username
    first_name: PersonName
    last_name: PersonName
    email: Email
    password: NewPassword
    password_confirmation: Annotated[NewPassword, Field(description="The password again.")]
    gender: Gender
    role: Role | None = None

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        return _valid_username(value)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return _valid_email(value)

    @model_validator(mode="after")
    def _passwords_match(self) -> UserCreate:
        if self.password != self.password_confirmation:
            raise ValueError("password and password_confirmation differ")
        return self


class ActivationRequest(Schema):
    """Body of ``PATCH /users/activation``. ``identifier`` (email or username) is
    optional; with it, wrong codes count against that account's 5 tries."""

    code: ActivationCode
    identifier: Identifier | None = None


class IdentifierQuery(QuerySchema):
    identifier: Identifier


class IdentifierBody(Schema):
    identifier: Identifier


class ResetRequest(Schema):
    token: Token
    new_password: NewPassword


class ProfileUpdate(Schema):
    first_name: PersonName | None = None
    last_name: PersonName | None = None
    gender: Gender | None = None

    def changes(self) -> dict[str, object]:
        return {
            field: getattr(self, field)
            for field in self.model_fields_set
            if getattr(self, field) is not None
        }


class PasswordChange(Schema):
    current_password: Password
    new_password: NewPassword


class PasswordOnly(Schema):
    password: Password


def _second_factor(value: str) -> str:
    if not (TOTP_PATTERN.fullmatch(value) or RECOVERY_PATTERN.fullmatch(value)):
        raise ValueError("expected 6 digits or a recovery code")
    return value


SecondFactor = Annotated[StrictStr, Field(min_length=6, max_length=11)]


class MfaConfirm(Schema):
    code: Annotated[StrictStr, Field(pattern=r"^[0-9]{6}$")]


class MfaDisable(Schema):
    password: Password
    code: SecondFactor

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        return _second_factor(value)


class UserIdQuery(QuerySchema):
    user_id: ObjectIdStr


# What a search may hold, published as a pattern (the validator below is the rule): 1 to
# 64 characters once trimmed of white space, none of them a control character (Cc).
_WHITE_SPACE = r"\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_SEARCH_CHAR = r"[^\x00-\x1f\x7f-\x9f]"
_SEARCH_EDGE = rf"[^\x00-\x1f\x7f-\x9f{_WHITE_SPACE}]"
SEARCH_PATTERN = (
    rf"^[{_WHITE_SPACE}]*{_SEARCH_EDGE}(?:{_SEARCH_CHAR}{{0,62}}{_SEARCH_EDGE})?[{_WHITE_SPACE}]*$"
)


def _search_schema(schema: dict[str, Any]) -> None:
    schema.pop("minLength", None)
    schema.pop("maxLength", None)
    schema["pattern"] = SEARCH_PATTERN
    schema["description"] = "1 to 64 characters once trimmed, no control character"


class UserListQuery(QuerySchema):
    page: Annotated[int, Field(ge=1, le=100_000)] = 1
    per_page: Annotated[int, Field(ge=1, le=100)] = 20
    search: (
        Annotated[
            str,
            Field(min_length=1, max_length=64, json_schema_extra=_search_schema),
        ]
        | None
    ) = None

    @field_validator("search")
    @classmethod
    def _search(cls, value: str | None) -> str | None:
        # MongoDB refuses a regex holding NUL (a 500), and no username or email holds a
        # control character, so such a search is a client error.
        if value is not None and any(unicodedata.category(ch) == "Cc" for ch in value):
            raise ValueError("must not contain control characters")
        return value


class RoleChange(Schema):
    role: Role


class CredentialsCheck(Schema):
    identifier: Identifier
    password: Password


class LoginAccount(BaseModel):
    """Answer of the internal ``POST /internal/credentials/account``: the key the gateway
    counts an identifier's login failures under. One per account, whichever of its
    identifiers is typed; for an identifier that names no account, one per identifier.
    Both kinds are opaque keyed hashes of the same shape."""

    account: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class MfaCheck(Schema):
    user_id: ObjectIdStr
    code: SecondFactor

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        return _second_factor(value)


class UserOut(BaseModel):
    id: str
    username: str
    first_name: str
    last_name: str
    email: str
    gender: str
    role: str
    is_active: bool
    mfa_enabled: bool


class UserList(BaseModel):
    users: list[UserOut]
    page: int
    per_page: int
    total: int
