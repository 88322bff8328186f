"""API gateway: the only public entry of the platform."""

from gateway.app import create_app

__all__ = ["create_app"]
