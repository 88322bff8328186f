"""Users service: accounts, activation, password reset and TOTP (MongoDB via pymongo)."""

from users.app import create_app

__all__ = ["create_app"]
