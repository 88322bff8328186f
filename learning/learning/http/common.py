"""What both route modules need: the service and JSON answers."""

from __future__ import annotations

from flask import Response, current_app, jsonify
from pydantic import BaseModel

from learning.service import LearningService


def service() -> LearningService:
    return current_app.extensions["container"].service()


def answer(model: BaseModel, status: int = 200) -> tuple[Response, int]:
    return jsonify(model.model_dump()), status
