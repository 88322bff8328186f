from __future__ import annotations

import logging

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from common.app import create_base_app
from common.errors import ApiError
from common.mail import MailSettings
from users.container import Container
from users.http.routes import blueprint, internal
from users.service import UserService
from users.settings import UsersSettings

log = logging.getLogger(__name__)


def create_app(
    settings: UsersSettings | None = None, mail_settings: MailSettings | None = None
) -> Flask:
    settings = settings or UsersSettings()
    mail_settings = mail_settings or MailSettings()
    container = Container(settings=settings, mail_settings=mail_settings)
    repository = container.user_repository()
    repository.ensure_indexes()
    repository.ensure_admin_guard()
    container.outbox().ensure_indexes()
    app = create_base_app("users", settings, {"mongodb": repository.ping})
    app.extensions["container"] = container
    app.register_blueprint(blueprint)
    app.register_blueprint(internal)
    app.cli.add_command(create_admin)
    if settings.is_development:
        _seed_admin(settings, container.user_service())
    if settings.run_mail_relay:
        container.mail_relay().start()
    return app


def _seed_admin(settings: UsersSettings, service: UserService) -> None:
    """Local runs only: make the platform usable at once with the admin from ``.env``."""
    if not (settings.admin_email and settings.admin_username and settings.admin_password):
        return
    if service.find(settings.admin_email) is not None:
        return
    try:
        service.ensure_admin(
            email=settings.admin_email,
            username=settings.admin_username,
            password=settings.admin_password,
        )
    except ApiError as exc:
        log.error("admin_seed_failed", extra={"error": exc.code, "reason": exc.message})
    else:
        log.info("admin_seeded", extra={"email": settings.admin_email})


@click.command("create-admin")
@click.option("--email", required=True)
@click.option("--username", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@with_appcontext
def create_admin(email: str, username: str, password: str) -> None:
    """Create an active admin account (or promote and activate an existing one)."""
    service: UserService = current_app.extensions["container"].user_service()
    try:
        doc, created = service.ensure_admin(email=email, username=username, password=password)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    verb = "created" if created else "promoted"
    click.echo(f"admin {doc['username']} <{doc['email']}> {verb} (id {doc['_id']})")
