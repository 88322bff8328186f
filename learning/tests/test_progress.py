"""Completions and progress, and the enrolment completed at 100 %."""

from __future__ import annotations

from learning.adapters.tables import CompletionRecord
from learning.testing import (
    AUTHOR,
    LEARNER,
    course_with_lesson,
    staff,
    take_attempt,
    ten_question_test,
)


def add_lesson(learning, module_id, title, lesson_type="theory", published=True):
    return staff(
        learning,
        "POST",
        f"/modules/{module_id}/lessons",
        json={"title": title, "lesson_type": lesson_type, "published": published},
    )


def completions(app) -> int:
    with app.extensions["container"].database().transaction() as session:
        return session.query(CompletionRecord).count()


def test_completing_a_lesson_twice_keeps_one_record(learning, neighbours, learning_app):
    built = course_with_lesson(learning, neighbours)
    add_lesson(learning, built["module"]["id"], "L2")
    lesson_id = built["lesson"]["id"]
    first = learning.call("PUT", f"/lessons/{lesson_id}/completion")
    second = learning.call("PUT", f"/lessons/{lesson_id}/completion")
    assert first.status_code == second.status_code == 200
    assert second.get_json()["completed_lesson_ids"] == [lesson_id]
    assert second.get_json()["percent"] == "50.00"
    assert completions(learning_app) == 1
    undone = learning.call("DELETE", f"/lessons/{lesson_id}/completion").get_json()
    assert (undone["completed_lesson_ids"], undone["percent"]) == ([], "0.00")


def test_a_test_lesson_cannot_be_marked_complete_by_hand(learning, neighbours):
    built = ten_question_test(learning, neighbours)
    response = learning.call("PUT", f"/lessons/{built['lesson']['id']}/completion")
    assert response.status_code == 409
    assert response.get_json()["error"] == "test_lesson_completion"


def test_unpublished_lessons_count_nowhere(learning, neighbours):
    built = course_with_lesson(learning, neighbours)
    add_lesson(learning, built["module"]["id"], "Draft lesson", published=False)
    hidden_module = staff(learning, "POST", "/courses/1/modules", json={"title": "Hidden"})
    add_lesson(learning, hidden_module["id"], "In a hidden module")
    progress = learning.call("PUT", f"/lessons/{built['lesson']['id']}/completion").get_json()
    assert progress["percent"] == "100.00"


def test_failing_then_passing_the_test_completes_the_course_and_the_enrolment_once(
    learning, neighbours
):
    built = ten_question_test(learning, neighbours)
    theory = add_lesson(learning, built["module"]["id"], "Reading")
    learning.call("PUT", f"/lessons/{theory['id']}/completion")
    failed = take_attempt(learning, built, 3)
    assert failed["passed"] is False
    progress = learning.call("GET", "/courses/1/progress").get_json()
    assert (progress["percent"], progress["completed_at"]) == ("50.00", None)
    assert neighbours.completed == []
    assert take_attempt(learning, built, 8)["passed"] is True
    progress = learning.call("GET", "/courses/1/progress").get_json()
    assert progress["percent"] == "100.00"
    assert progress["completed_at"] is not None
    assert progress["tests"][0]["passed"] is True
    assert neighbours.completed == [(LEARNER, 1)]
    learning.call("PUT", f"/lessons/{theory['id']}/completion")
    learning.call("GET", "/courses/1/progress")
    assert neighbours.completed == [(LEARNER, 1)]  # told once


def test_a_lesson_published_later_lowers_the_percent_but_the_enrolment_stays_completed(
    learning, neighbours
):
    built = course_with_lesson(learning, neighbours)
    learning.call("PUT", f"/lessons/{built['lesson']['id']}/completion")
    assert neighbours.enrolments[(LEARNER, 1)]["status"] == "completed"
    add_lesson(learning, built["module"]["id"], "New chapter")
    progress = learning.call("GET", "/courses/1/progress").get_json()
    assert (progress["percent"], progress["completed_at"]) == ("50.00", None)
    assert neighbours.enrolments[(LEARNER, 1)]["status"] == "completed"


def test_the_enrolment_is_completed_later_when_enrolments_was_away(learning, neighbours):
    built = course_with_lesson(learning, neighbours)
    neighbours.down = True
    assert learning.call("PUT", f"/lessons/{built['lesson']['id']}/completion").status_code == 503
    neighbours.down = False
    # The access check failed first: nothing was recorded. Now enrolments is back but
    # goes away just for the completion call.
    calls = {"n": 0}
    original = neighbours.app.view_functions["complete"]

    def flaky():
        calls["n"] += 1
        if calls["n"] <= 2:  # the completion and the progress it answers with
            return {"error": "down"}, 503
        return original()

    neighbours.app.view_functions["complete"] = flaky
    try:
        assert (
            learning.call("PUT", f"/lessons/{built['lesson']['id']}/completion").status_code == 200
        )
        assert neighbours.completed == []
        progress = learning.call("GET", "/courses/1/progress").get_json()
        assert progress["percent"] == "100.00"
        assert neighbours.completed == [(LEARNER, 1)]
    finally:
        neighbours.app.view_functions["complete"] = original


def test_my_progress_lists_every_enrolled_course_with_its_percent(learning, neighbours):
    first = course_with_lesson(learning, neighbours, 1)
    add_lesson(learning, first["module"]["id"], "L2")
    second = course_with_lesson(learning, neighbours, 2)
    course_with_lesson(learning, neighbours, 3)
    learning.call("PUT", f"/lessons/{first['lesson']['id']}/completion")
    learning.call("PUT", f"/lessons/{second['lesson']['id']}/completion")
    listing = learning.call("GET", "/progress?per_page=2").get_json()
    assert listing["total"] == 3
    assert [(c["course_id"], c["percent"]) for c in listing["courses"]] == [
        (1, "50.00"),
        (2, "100.00"),
    ]
    page_two = learning.call("GET", "/progress?page=2&per_page=2").get_json()
    assert [(c["course_id"], c["percent"]) for c in page_two["courses"]] == [(3, "0.00")]


def test_the_learners_list_is_for_staff_only(learning, neighbours):
    built = course_with_lesson(learning, neighbours)
    add_lesson(learning, built["module"]["id"], "L2")
    neighbours.enrol("learner-2", 1)
    learning.call("PUT", f"/lessons/{built['lesson']['id']}/completion")
    assert learning.call("GET", "/courses/1/progress/learners").status_code == 403
    listing = staff(learning, "GET", "/courses/1/progress/learners")
    assert listing["total"] == 2
    by_user = {row["user_id"]: row for row in listing["learners"]}
    assert by_user[LEARNER]["percent"] == "50.00"
    assert by_user[LEARNER]["last_activity_at"] is not None
    assert by_user["learner-2"]["percent"] == "0.00"
    assert by_user["learner-2"]["last_activity_at"] is None
    admin = learning.call("GET", "/courses/1/progress/learners", user="admin-1", role="admin")
    assert admin.status_code == 200
    assert AUTHOR


def test_a_later_failing_grade_undoes_the_test_lessons_completion(learning, neighbours):
    built = ten_question_test(learning, neighbours, grade_method="last")
    add_lesson(learning, built["module"]["id"], "Reading")
    assert take_attempt(learning, built, 9)["passed"] is True
    assert (
        built["lesson"]["id"]
        in learning.call("GET", "/courses/1/progress").get_json()["completed_lesson_ids"]
    )
    assert take_attempt(learning, built, 1)["passed"] is False
    progress = learning.call("GET", "/courses/1/progress").get_json()
    assert built["lesson"]["id"] not in progress["completed_lesson_ids"]
    assert progress["tests"][0]["passed"] is False
