"""Flask-Migrate wiring shared by the SQL services.

Each service keeps its own ``migrations/`` directory (alembic scripts); its
``env.py`` calls :func:`run_migrations`. Migrations run once per deploy through
``flask --app <service> db upgrade``, never from every worker at start-up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, current_app
from flask_migrate import Migrate
from sqlalchemy import Engine, MetaData

from common.db import Database


@dataclass(frozen=True)
class MigrationTarget:
    """What Flask-Migrate calls ``db``: an engine and the metadata to compare."""

    engine: Engine
    metadata: MetaData


def init_migrations(app: Flask, database: Database, metadata: MetaData, directory: Path) -> None:
    Migrate(app, MigrationTarget(database.engine, metadata), directory=str(directory))


def run_migrations() -> None:
    """Body of every service's alembic ``env.py`` (online mode only)."""
    from alembic import context

    logging.getLogger("alembic").setLevel(logging.INFO)
    target: MigrationTarget = current_app.extensions["migrate"].db
    with target.engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


def upgrade_to_head(app: Flask) -> None:
    """Apply every migration; used by tests and the local runner."""
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()
