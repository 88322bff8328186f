from __future__ import annotations

from pathlib import Path

from flask import Flask

from common.app import create_base_app
from common.migrations import init_migrations
from learning.adapters.tables import Base
from learning.container import Container
from learning.http import content_routes, quiz_routes
from learning.settings import LearningSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: LearningSettings | None = None) -> Flask:
    settings = settings or LearningSettings()
    container = Container(settings=settings)
    database = container.database()
    app = create_base_app("learning", settings, {"database": database.ping})
    app.extensions["container"] = container
    init_migrations(app, database, Base.metadata, MIGRATIONS)
    app.register_blueprint(content_routes.blueprint)
    app.register_blueprint(quiz_routes.blueprint)
    container.service()  # the pooled clients now, not on a learner's first request
    return app
