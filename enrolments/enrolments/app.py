from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

import click
from flask import Flask

from common.app import create_base_app
from common.migrations import init_migrations
from enrolments.adapters.tables import Base
from enrolments.container import Container
from enrolments.http import internal, routes
from enrolments.settings import EnrolmentsSettings

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


def _launched_by_flask_cli() -> bool:
    """``flask db upgrade`` or ``flask invoice-worker`` build the app too; only
    a served app (gunicorn, tests) starts workers in-process."""
    return os.environ.get("FLASK_RUN_FROM_CLI") == "true"


def create_app(settings: EnrolmentsSettings | None = None) -> Flask:
    settings = settings or EnrolmentsSettings()
    container = Container(settings=settings)
    database = container.database()
    app = create_base_app("enrolments", settings, {"database": database.ping})
    app.extensions["container"] = container
    init_migrations(app, database, Base.metadata, MIGRATIONS)
    app.register_blueprint(routes.blueprint)
    app.register_blueprint(internal.blueprint)
    workers = container.workers()
    container.service().on_work = workers.wake
    app.cli.add_command(invoice_worker_command)
    if settings.run_workers and not _launched_by_flask_cli():
        workers.start()
        atexit.register(workers.stop)
    return app


@click.command("invoice-worker")
def invoice_worker_command() -> None:
    """Run the invoice workers, the mail relay and the daily expiry until SIGTERM/SIGINT."""
    from flask import current_app

    container: Container = current_app.extensions["container"]
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("invoice_worker_stopping", extra={"signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    workers = container.workers().start()
    log.info("invoice_worker_started", extra={"workers": container.settings().invoice_workers})
    while not stop.wait(0.5):
        pass
    workers.stop()
    container.database().dispose()
    log.info("invoice_worker_stopped")
