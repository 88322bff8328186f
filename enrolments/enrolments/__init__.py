"""Enrolments service: enrolments, payments and exactly-once Fakturownia invoices (MySQL)."""

from enrolments.app import create_app

__all__ = ["create_app"]
