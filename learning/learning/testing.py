"""pytest fixtures for the learning service, usable by every test tier.

The courses and enrolments services are stood in by one small Flask app on a real
socket that speaks exactly the internal endpoints learning calls; a test sets what
they answer (a course's author and status, a learner's enrolment) and reads back the
completions learning reported.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, abort, jsonify, request
from flask.testing import FlaskClient

from common.migrations import upgrade_to_head
from devtools.devservers import MariaDB
from devtools.helpers import TEST_INTERNAL_KEY, internal_headers, truncate_all
from devtools.live import LiveServer
from learning import create_app
from learning.adapters.tables import Base
from learning.settings import LearningSettings


class FakeNeighbours:
    """``/internal/courses/<id>`` of courses and ``/internal/enrolments/*`` of enrolments."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.courses: dict[int, dict[str, Any]] = {}
        self.enrolments: dict[tuple[str, int], dict[str, Any]] = {}
        self.completed: list[tuple[str, int]] = []
        self.calls: dict[str, int] = {}
        self.down = False
        self.app = self._build()

    def _build(self) -> Flask:
        app = Flask("fake_neighbours")

        @app.before_request
        def count_and_fail() -> Any:
            with self.lock:
                self.calls[request.path] = self.calls.get(request.path, 0) + 1
                down = self.down
            if request.headers.get("X-Internal-Key") != TEST_INTERNAL_KEY:
                abort(401)
            return (jsonify({"error": "down"}), 503) if down else None

        @app.get("/internal/courses/<int:course_id>")
        def course(course_id: int) -> Any:
            with self.lock:
                found = self.courses.get(course_id)
            return jsonify(found) if found else abort(404)

        @app.get("/internal/enrolments/access")
        def access() -> Any:
            key = (request.args["user_id"], int(request.args["course_id"]))
            with self.lock:
                found = self.enrolments.get(key)
            if found is None or found["status"] not in ("active", "completed"):
                abort(404)
            may_learn = found["payment_status"] == "paid" or Decimal(found["price"]) == 0
            return jsonify({**_public(found), "may_learn": may_learn})

        @app.get("/internal/enrolments/learners")
        def learners() -> Any:
            course_id = int(request.args["course_id"])
            page, per_page = int(request.args["page"]), int(request.args["per_page"])
            with self.lock:
                live = [e for (u, c), e in self.enrolments.items() if c == course_id and _live(e)]
            live.sort(key=lambda e: e["enrolment_id"])
            chosen = live[(page - 1) * per_page : page * per_page]
            return jsonify(
                {
                    "learners": [_public(e) for e in chosen],
                    "page": page,
                    "per_page": per_page,
                    "total": len(live),
                }
            )

        @app.get("/internal/enrolments/by-user")
        def by_user() -> Any:
            user_id = request.args["user_id"]
            page, per_page = int(request.args["page"]), int(request.args["per_page"])
            with self.lock:
                live = [e for (u, c), e in self.enrolments.items() if u == user_id and _live(e)]
            live.sort(key=lambda e: e["enrolment_id"])
            chosen = live[(page - 1) * per_page : page * per_page]
            return jsonify(
                {
                    "enrolments": [_public(e) for e in chosen],
                    "page": page,
                    "per_page": per_page,
                    "total": len(live),
                }
            )

        @app.post("/internal/enrolments/complete")
        def complete() -> Any:
            body = request.get_json()
            key = (body["user_id"], int(body["course_id"]))
            with self.lock:
                found = self.enrolments.get(key)
                if found is None or not _live(found):
                    abort(404)
                found["status"] = "completed"
                self.completed.append(key)
            return jsonify({"enrolment_id": found["enrolment_id"], "status": "completed"})

        return app

    def add_course(
        self,
        course_id: int,
        *,
        author_id: str | None = "author-1",
        status: str = "published",
        price: str = "100.00",
    ) -> None:
        with self.lock:
            self.courses[course_id] = {
                "id": course_id,
                "author_id": author_id,
                "status": status,
                "price": price,
                "currency": "PLN",
            }

    def enrol(
        self,
        user_id: str,
        course_id: int,
        *,
        paid: bool = True,
        status: str = "active",
        price: str = "100.00",
    ) -> None:
        with self.lock:
            self.enrolments[(user_id, course_id)] = {
                "enrolment_id": len(self.enrolments) + 1,
                "user_id": user_id,
                "course_id": course_id,
                "status": status,
                "payment_status": "paid" if paid else "unpaid",
                "price": price,
            }

    def clear(self) -> None:
        with self.lock:
            self.courses.clear()
            self.enrolments.clear()
            self.completed.clear()
            self.calls.clear()
            self.down = False


def _live(enrolment: dict[str, Any]) -> bool:
    return enrolment["status"] in ("active", "completed")


def _public(enrolment: dict[str, Any]) -> dict[str, Any]:
    return {
        key: enrolment[key]
        for key in ("enrolment_id", "user_id", "course_id", "status", "payment_status")
    }


@pytest.fixture(scope="session")
def fake_neighbours_server() -> Iterator[tuple[FakeNeighbours, LiveServer]]:
    fake = FakeNeighbours()
    server = LiveServer(fake.app).start()
    yield fake, server
    server.stop()


@pytest.fixture
def neighbours(fake_neighbours_server: tuple[FakeNeighbours, LiveServer]) -> FakeNeighbours:
    fake, _ = fake_neighbours_server
    fake.clear()
    return fake


def learning_settings(
    database_url: str, neighbours_url: str, media_dir: Path, **overrides: Any
) -> LearningSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "internal_api_key": TEST_INTERNAL_KEY,
        "database_url": database_url,
        "courses_url": neighbours_url,
        "enrolments_url": neighbours_url,
        "media_dir": str(media_dir),
        # Tests change a course or an enrolment between calls and expect it seen at once.
        "access_cache_seconds": 0.0,
        **overrides,
    }
    return LearningSettings(**values)


@pytest.fixture(scope="session")
def learning_database_url(mariadb: MariaDB) -> str:
    return mariadb.create_database("learning_test")


@pytest.fixture(scope="session")
def learning_app(
    learning_database_url: str,
    fake_neighbours_server: tuple[FakeNeighbours, LiveServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Flask]:
    _, server = fake_neighbours_server
    app = create_app(
        learning_settings(learning_database_url, server.url, tmp_path_factory.mktemp("media"))
    )
    upgrade_to_head(app)
    yield app
    app.extensions["container"].database().dispose()


@pytest.fixture
def learning_db(learning_app: Flask) -> None:
    """Each test starts with empty learning tables."""
    truncate_all(learning_app.extensions["container"].database(), Base.metadata)


class LearningClient:
    """The learning app's test client, speaking as one caller at a time."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def call(
        self,
        method: str,
        path: str,
        user: str | None = "learner-1",
        role: str = "user",
        **kwargs: Any,
    ) -> Any:
        headers = {**internal_headers(user, role), **kwargs.pop("headers", {})}
        return self.client.open(path, method=method, headers=headers, **kwargs)


@pytest.fixture
def learning(learning_app: Flask, learning_db: None, neighbours: FakeNeighbours) -> LearningClient:
    return LearningClient(learning_app.test_client())


# ----------------------------------------------------------------------------- builders

AUTHOR = "author-1"
LEARNER = "learner-1"


def staff(learning: LearningClient, method: str, path: str, **kwargs: Any) -> Any:
    response = learning.call(method, path, user=AUTHOR, role="instructor", **kwargs)
    assert response.status_code < 300, response.get_json()
    return response.get_json()


def course_with_lesson(
    learning: LearningClient,
    neighbours: FakeNeighbours,
    course_id: int = 1,
    *,
    lesson_type: str = "theory",
    published: bool = True,
    enrol: bool = True,
) -> dict[str, Any]:
    neighbours.add_course(course_id, author_id=AUTHOR)
    if enrol:
        neighbours.enrol(LEARNER, course_id)
    module = staff(
        learning,
        "POST",
        f"/courses/{course_id}/modules",
        json={"title": "M1", "published": published},
    )
    lesson = staff(
        learning,
        "POST",
        f"/modules/{module['id']}/lessons",
        json={"title": "L1", "lesson_type": lesson_type, "content": "# Hi", "published": published},
    )
    return {"module": module, "lesson": lesson}


def quiz(
    learning: LearningClient,
    neighbours: FakeNeighbours,
    course_id: int = 1,
    **settings: Any,
) -> dict[str, Any]:
    """A published test lesson with three questions: single (1 pt), multiple (3 pt, two
    correct of four), short text (1 pt)."""
    built = course_with_lesson(learning, neighbours, course_id, lesson_type="test")
    lesson_id = built["lesson"]["id"]
    test = staff(
        learning,
        "PUT",
        f"/lessons/{lesson_id}/test",
        json={"title": "Quiz", "passing_score": "60", **settings},
    )
    single = staff(
        learning,
        "POST",
        f"/tests/{test['id']}/questions",
        json={
            "text": "2+2?",
            "question_type": "single",
            "points": "1",
            "options": [{"text": "4", "is_correct": True}, {"text": "5", "is_correct": False}],
        },
    )
    multiple = staff(
        learning,
        "POST",
        f"/tests/{test['id']}/questions",
        json={
            "text": "Primes?",
            "question_type": "multiple",
            "points": "3",
            "options": [
                {"text": "2", "is_correct": True},
                {"text": "3", "is_correct": True},
                {"text": "4", "is_correct": False},
                {"text": "6", "is_correct": False},
            ],
        },
    )
    short = staff(
        learning,
        "POST",
        f"/tests/{test['id']}/questions",
        json={
            "text": "Capital of France?",
            "question_type": "short_text",
            "points": "1",
            "accepted_answers": ["Paris"],
        },
    )
    return {**built, "test": test, "questions": [single, multiple, short]}


def correct_ids(question: dict[str, Any]) -> list[int]:
    return [option["id"] for option in question["options"] if option["is_correct"]]


def wrong_ids(question: dict[str, Any]) -> list[int]:
    return [option["id"] for option in question["options"] if not option["is_correct"]]


def ten_question_test(
    learning: LearningClient, neighbours: FakeNeighbours, course_id: int = 1, **settings: Any
) -> dict[str, Any]:
    """A published test of ten single-choice questions worth one point each, so an
    attempt scores 10 % per right answer."""
    built = course_with_lesson(learning, neighbours, course_id, lesson_type="test")
    test = staff(
        learning,
        "PUT",
        f"/lessons/{built['lesson']['id']}/test",
        json={"title": "Ten", "passing_score": "50", **settings},
    )
    questions = [
        staff(
            learning,
            "POST",
            f"/tests/{test['id']}/questions",
            json={
                "text": f"Q{n}",
                "question_type": "single",
                "points": "1",
                "options": [
                    {"text": "yes", "is_correct": True},
                    {"text": "no", "is_correct": False},
                ],
            },
        )
        for n in range(10)
    ]
    return {**built, "test": test, "questions": questions}


def take_attempt(
    learning: LearningClient, test: dict[str, Any], right: int, user: str = LEARNER
) -> dict[str, Any]:
    """Start an attempt, answer the first ``right`` questions right and the rest wrong, submit."""
    started = learning.call("POST", f"/tests/{test['test']['id']}/attempts", user=user)
    assert started.status_code in (200, 201), started.get_json()
    attempt_id = started.get_json()["attempt_id"]
    answers = [
        {
            "question_id": question["id"],
            "option_ids": (correct_ids(question) if n < right else wrong_ids(question))[:1],
        }
        for n, question in enumerate(test["questions"])
    ]
    saved = learning.call(
        "PUT", f"/attempts/{attempt_id}/answers", user=user, json={"answers": answers}
    )
    assert saved.status_code == 200, saved.get_json()
    submitted = learning.call("POST", f"/attempts/{attempt_id}/submit", user=user)
    assert submitted.status_code == 200, submitted.get_json()
    return dict(submitted.get_json())
