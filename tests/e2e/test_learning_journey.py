"""The learning journey through nginx's port only: an instructor authors a course, a
learner buys it, reads it, fails the test once, passes it and completes the course."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from .conftest import Mailbox
from .test_journeys import access_token, admin_token, bearer, register_and_activate

pytestmark = pytest.mark.e2e
PDF = b"%PDF-1.4\n% course notes\n" + b"0" * 2048 + b"\n%%EOF\n"


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def author_course(api: httpx.Client, instructor: dict[str, str]) -> dict[str, Any]:
    course = ok(
        api.post(
            "/api/course",
            headers=instructor,
            json={
                "name": f"Learning {uuid.uuid4().hex[:8]}",
                "price": "49.00",
                "start_date": "2031-01-01T09:00:00Z",
                "end_date": "2031-06-01T09:00:00Z",
            },
        ),
        201,
    )
    assert course["status"] == "draft"
    course_id = course["id"]
    first, second = (
        ok(
            api.post(
                f"/api/course/{course_id}/modules",
                headers=instructor,
                json={"title": title, "published": True},
            ),
            201,
        )
        for title in ("Basics", "Check")
    )
    theory = ok(
        api.post(
            f"/api/modules/{first['id']}/lessons",
            headers=instructor,
            json={
                "title": "Read me",
                "lesson_type": "theory",
                "content": "# Notes",
                "published": True,
            },
        ),
        201,
    )
    pdf = ok(
        api.post(
            f"/api/lessons/{theory['id']}/media",
            headers=instructor,
            files={"file": ("notes.pdf", PDF, "application/pdf")},
            data={"title": "Notes"},
        ),
        201,
    )
    quiz_lesson = ok(
        api.post(
            f"/api/modules/{second['id']}/lessons",
            headers=instructor,
            json={"title": "Quiz", "lesson_type": "test", "published": True},
        ),
        201,
    )
    test = ok(
        api.put(
            f"/api/lessons/{quiz_lesson['id']}/test",
            headers=instructor,
            json={"title": "Quiz", "passing_score": "60", "max_attempts": 3},
        ),
        201,
    )
    questions = [
        ok(
            api.post(
                f"/api/tests/{test['id']}/questions",
                headers=instructor,
                json={
                    "text": f"Question {n}",
                    "question_type": "single",
                    "points": "1",
                    "options": [
                        {"text": "right", "is_correct": True},
                        {"text": "wrong", "is_correct": False},
                    ],
                },
            ),
            201,
        )
        for n in range(3)
    ]
    ok(api.patch(f"/api/course/{course_id}", headers=instructor, json={"status": "published"}))
    return {"id": course_id, "theory": theory, "pdf": pdf, "test": test, "questions": questions}


def attempt(api: httpx.Client, learner: dict[str, str], course: dict[str, Any], right: int) -> Any:
    started = ok(api.post(f"/api/tests/{course['test']['id']}/attempts", headers=learner), 201)
    assert "is_correct" not in str(started)
    answers = []
    for n, question in enumerate(course["questions"]):
        wanted = "right" if n < right else "wrong"
        option = next(o for o in question["options"] if o["text"] == wanted)
        answers.append({"question_id": question["id"], "option_ids": [option["id"]]})
    ok(
        api.put(
            f"/api/attempts/{started['attempt_id']}/answers",
            headers=learner,
            json={"answers": answers},
        )
    )
    return ok(api.post(f"/api/attempts/{started['attempt_id']}/submit", headers=learner))


def test_instructor_authors_and_learner_completes(api: httpx.Client, mailbox: Mailbox):
    admin = bearer(admin_token(api))
    teacher = register_and_activate(api, mailbox)
    ok(api.patch(f"/api/users/{teacher['id']}/role", headers=admin, json={"role": "instructor"}))
    instructor = bearer(access_token(api, teacher["email"], teacher["password"]))
    course = author_course(api, instructor)

    outline = ok(api.get(f"/api/course/{course['id']}/outline"))
    assert [m["title"] for m in outline["modules"]] == ["Basics", "Check"]

    student = register_and_activate(api, mailbox)
    learner = bearer(access_token(api, student["email"], student["password"]))
    enrolment = ok(
        api.post("/api/enrolment", headers=learner, json={"course_id": course["id"]}), 201
    )
    lesson_path = f"/api/lessons/{course['theory']['id']}"
    assert api.get(lesson_path, headers=learner).status_code == 403  # not paid yet
    ok(api.patch("/api/enrolment/paid", headers=learner, json={"enrolment_id": enrolment["id"]}))

    lesson = ok(api.get(lesson_path, headers=learner))
    assert lesson["content"] == "# Notes"
    download = api.get(lesson["media"][0]["url"], headers=learner)
    assert download.status_code == 200
    assert download.content == PDF
    assert download.headers["content-type"] == "application/pdf"
    ok(api.put(f"{lesson_path}/completion", headers=learner))

    assert attempt(api, learner, course, right=1)["passed"] is False
    assert (
        ok(api.get(f"/api/course/{course['id']}/progress", headers=learner))["percent"] == "50.00"
    )
    passed = attempt(api, learner, course, right=3)
    assert (passed["passed"], passed["score"]) == (True, "100.00")

    progress = ok(api.get(f"/api/course/{course['id']}/progress", headers=learner))
    assert progress["percent"] == "100.00"
    assert progress["completed_at"] is not None
    details = ok(api.get(f"/api/enrolment/{enrolment['id']}/details", headers=learner))
    assert details["status"] == "completed"
    learners = ok(api.get(f"/api/course/{course['id']}/progress/learners", headers=instructor))
    assert [(row["user_id"], row["percent"]) for row in learners["learners"]] == [
        (student["id"], "100.00")
    ]
