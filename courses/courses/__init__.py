"""Courses service: the course catalogue (MySQL via SQLAlchemy)."""

from courses.app import create_app

__all__ = ["create_app"]
