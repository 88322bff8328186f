from __future__ import annotations

from pathlib import Path

from flask import Flask

from common.app import create_base_app
from common.migrations import init_migrations
from courses.adapters.tables import Base
from courses.container import Container
from courses.http import internal, routes
from courses.settings import CoursesSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: CoursesSettings | None = None) -> Flask:
    settings = settings or CoursesSettings()
    container = Container(settings=settings)
    database = container.database()
    app = create_base_app("courses", settings, {"database": database.ping})
    app.extensions["container"] = container
    init_migrations(app, database, Base.metadata, MIGRATIONS)
    app.register_blueprint(routes.blueprint)
    app.register_blueprint(internal.blueprint)
    return app
