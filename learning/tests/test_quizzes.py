"""Tests (quizzes): authoring rules, server-side grading, attempts and what a learner sees."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest

from common.timeutil import db_now
from devtools.helpers import internal_headers
from learning.adapters.tables import AttemptRecord
from learning.testing import (
    AUTHOR,
    LEARNER,
    correct_ids,
    course_with_lesson,
    quiz,
    staff,
    take_attempt,
    ten_question_test,
    wrong_ids,
)


def question_body(**overrides):
    return {
        "text": "Pick",
        "question_type": "single",
        "points": "1",
        "options": [{"text": "a", "is_correct": True}, {"text": "b", "is_correct": False}],
        **overrides,
    }


# ----------------------------------------------------------------------------- authoring


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        (
            {"options": [{"text": "a", "is_correct": True}, {"text": "b", "is_correct": True}]},
            "two right",
        ),
        (
            {"options": [{"text": "a", "is_correct": False}, {"text": "b", "is_correct": False}]},
            "none right",
        ),
        (
            {
                "question_type": "multiple",
                "options": [{"text": "a", "is_correct": False}, {"text": "b", "is_correct": False}],
            },
            "multiple without a right one",
        ),
        (
            {
                "question_type": "true_false",
                "options": [{"text": "a", "is_correct": True}] * 1
                + [{"text": "b", "is_correct": False}] * 2,
            },
            "true_false with three",
        ),
        (
            {"question_type": "short_text", "options": [], "accepted_answers": []},
            "short text without answers",
        ),
        ({"options": [{"text": f"o{n}", "is_correct": n == 0} for n in range(100)]}, "100 options"),
        ({"points": "0"}, "no points"),
        ({"points": "-1"}, "negative points"),
    ],
)
def test_a_question_that_cannot_be_graded_is_refused(learning, neighbours, overrides, why):
    built = quiz(learning, neighbours)
    response = learning.call(
        "POST",
        f"/tests/{built['test']['id']}/questions",
        user=AUTHOR,
        role="instructor",
        json=question_body(**overrides),
    )
    assert response.status_code == 400, why
    assert response.get_json()["error"] == "validation_error"


def test_a_test_holds_at_most_200_questions(learning, neighbours, learning_app):
    built = quiz(learning, neighbours)  # three questions
    test_id = built["test"]["id"]
    for _ in range(197):
        staff(learning, "POST", f"/tests/{test_id}/questions", json=question_body())
    response = learning.call(
        "POST", f"/tests/{test_id}/questions", user=AUTHOR, role="instructor", json=question_body()
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "too_many_questions"


def test_only_a_test_lesson_has_a_test_and_only_staff_write_it(learning, neighbours):
    built = course_with_lesson(learning, neighbours, lesson_type="theory")
    body = {"title": "T", "passing_score": "50"}
    lesson_id = built["lesson"]["id"]
    assert (
        learning.call(
            "PUT", f"/lessons/{lesson_id}/test", user=AUTHOR, role="instructor", json=body
        ).status_code
        == 409
    )
    assert learning.call("PUT", f"/lessons/{lesson_id}/test", json=body).status_code == 403
    other = learning.call(
        "PUT", f"/lessons/{lesson_id}/test", user="author-2", role="instructor", json=body
    )
    assert other.status_code == 403
    assert other.get_json()["error"] == "not_course_author"


# ----------------------------------------------------------------------------- grading


def test_partial_credit_for_multiple_choice_never_goes_below_zero(learning, neighbours):
    built = quiz(learning, neighbours, max_attempts=None)
    single, multiple, short = built["questions"]
    cases = [
        (correct_ids(multiple), "3.00"),  # both right: full
        (correct_ids(multiple)[:1], "1.50"),  # one of two right: half
        (correct_ids(multiple)[:1] + wrong_ids(multiple)[:1], "0.00"),  # +1/2 -1/2
        (wrong_ids(multiple), "0.00"),  # -1 clamped at 0
        (correct_ids(multiple) + wrong_ids(multiple)[:1], "1.50"),  # +1 -1/2
    ]
    for chosen, expected in cases:
        attempt = learning.call("POST", f"/tests/{built['test']['id']}/attempts").get_json()
        answers = [{"question_id": multiple["id"], "option_ids": chosen}]
        learning.call(
            "PUT", f"/attempts/{attempt['attempt_id']}/answers", json={"answers": answers}
        )
        result = learning.call("POST", f"/attempts/{attempt['attempt_id']}/submit").get_json()
        awarded = {r["question_id"]: r["points_awarded"] for r in result["review"]}
        assert awarded[multiple["id"]] == expected, chosen
        assert awarded[single["id"]] == "0.00"


def test_short_text_is_compared_after_trimming_and_case_folding(learning, neighbours):
    built = quiz(learning, neighbours, max_attempts=None)
    short = built["questions"][2]
    for text, expected in [("  PARIS ", "1.00"), ("paris", "1.00"), ("Pariss", "0.00")]:
        attempt = learning.call("POST", f"/tests/{built['test']['id']}/attempts").get_json()
        learning.call(
            "PUT",
            f"/attempts/{attempt['attempt_id']}/answers",
            json={"answers": [{"question_id": short["id"], "text": text}]},
        )
        result = learning.call("POST", f"/attempts/{attempt['attempt_id']}/submit").get_json()
        assert {r["question_id"]: r["points_awarded"] for r in result["review"]}[
            short["id"]
        ] == expected


@pytest.mark.parametrize(
    ("method", "grade"),
    [("highest", "90.00"), ("average", "63.33"), ("first", "40.00"), ("last", "60.00")],
)
def test_each_grade_method_on_attempts_40_90_60(learning, neighbours, method, grade):
    built = ten_question_test(learning, neighbours, grade_method=method)
    scores = [take_attempt(learning, built, right)["score"] for right in (4, 9, 6)]
    assert scores == ["40.00", "90.00", "60.00"]
    mine = learning.call("GET", f"/tests/{built['test']['id']}/attempts/mine").get_json()
    assert mine["grade"] == grade
    progress = learning.call("GET", "/courses/1/progress").get_json()
    assert progress["tests"][0]["grade"] == grade


def test_a_body_carrying_scores_or_correctness_is_refused(learning, neighbours):
    built = quiz(learning, neighbours)
    test_id = built["test"]["id"]
    assert (
        learning.call("POST", f"/tests/{test_id}/attempts", json={"score": 100}).status_code == 400
    )
    attempt = learning.call("POST", f"/tests/{test_id}/attempts").get_json()
    question = built["questions"][0]
    for forged in ({"is_correct": True}, {"points": "1"}, {"score": "100"}):
        body = {"answers": [{"question_id": question["id"], "option_ids": [], **forged}]}
        assert (
            learning.call(
                "PUT", f"/attempts/{attempt['attempt_id']}/answers", json=body
            ).status_code
            == 400
        )
    assert (
        learning.call(
            "POST", f"/attempts/{attempt['attempt_id']}/submit", json={"score": 100}
        ).status_code
        == 400
    )


def test_an_answer_naming_another_tests_option_is_refused(learning, neighbours):
    first = quiz(learning, neighbours, course_id=1)
    second = quiz(learning, neighbours, course_id=2)
    attempt = learning.call("POST", f"/tests/{first['test']['id']}/attempts").get_json()
    foreign = second["questions"][0]
    body = {
        "answers": [
            {"question_id": first["questions"][0]["id"], "option_ids": correct_ids(foreign)}
        ]
    }
    response = learning.call("PUT", f"/attempts/{attempt['attempt_id']}/answers", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"] == "unknown_answer"


# ----------------------------------------------------------------------------- attempts


def concurrent_starts(app, test_id: int, count: int = 20) -> list[tuple[int, dict]]:
    answers: list[tuple[int, dict]] = []
    barrier = threading.Barrier(count)

    def start() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post(f"/tests/{test_id}/attempts", headers=internal_headers(LEARNER))
        answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=start) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return answers


def test_twenty_concurrent_starts_make_one_open_attempt_and_respect_the_cap(
    learning, neighbours, learning_app
):
    built = quiz(learning, neighbours, max_attempts=2)
    test_id = built["test"]["id"]
    for _ in range(2):
        answers = concurrent_starts(learning_app, test_id)
        statuses = sorted(status for status, _ in answers)
        assert statuses == [200] * 19 + [201]
        assert len({body["attempt_id"] for _, body in answers}) == 1
        learning.call("POST", f"/attempts/{answers[0][1]['attempt_id']}/submit")
    answers = concurrent_starts(learning_app, test_id)
    assert [status for status, _ in answers] == [409] * 20
    assert {body["error"] for _, body in answers} == {"no_attempts_left"}
    with learning_app.extensions["container"].database().transaction() as session:
        numbers = session.query(AttemptRecord.attempt_no).filter_by(test_id=test_id).all()
    assert sorted(n for (n,) in numbers) == [1, 2]


def test_a_second_submit_is_a_409_with_the_first_result_and_nothing_regraded(learning, neighbours):
    built = ten_question_test(learning, neighbours)
    first = take_attempt(learning, built, 7)
    attempt_id = first["attempt_id"]
    again = learning.call("POST", f"/attempts/{attempt_id}/submit")
    assert again.status_code == 409
    body = again.get_json()
    assert body["error"] == "attempt_closed"
    assert body["details"][0]["score"] == "70.00"
    stored = learning.call("GET", f"/attempts/{attempt_id}").get_json()
    assert (stored["score"], stored["submitted_at"]) == (first["score"], first["submitted_at"])


def test_answers_after_the_deadline_and_grace_are_refused_and_the_score_unchanged(
    learning, neighbours, learning_app
):
    built = ten_question_test(learning, neighbours, time_limit_seconds=60)
    attempt = learning.call("POST", f"/tests/{built['test']['id']}/attempts").get_json()
    assert attempt["deadline"] is not None
    question = built["questions"][0]
    body = {"answers": [{"question_id": question["id"], "option_ids": correct_ids(question)}]}
    database = learning_app.extensions["container"].database()

    # Inside the grace: the deadline passed 5 s ago, the save still counts.
    with database.transaction() as session:
        session.get(AttemptRecord, attempt["attempt_id"]).deadline = db_now() - timedelta(seconds=5)
    assert (
        learning.call("PUT", f"/attempts/{attempt['attempt_id']}/answers", json=body).status_code
        == 200
    )
    with database.transaction() as session:
        session.get(AttemptRecord, attempt["attempt_id"]).deadline = db_now() - timedelta(
            seconds=11
        )
    late = learning.call("PUT", f"/attempts/{attempt['attempt_id']}/answers", json={"answers": []})
    assert late.status_code == 409
    assert late.get_json()["error"] == "deadline_passed"
    late_submit = learning.call("POST", f"/attempts/{attempt['attempt_id']}/submit")
    assert late_submit.status_code == 409
    # What was saved in time is graded; nothing sent late counts.
    assert late_submit.get_json()["details"][0]["score"] == "10.00"
    stored = learning.call("GET", f"/attempts/{attempt['attempt_id']}").get_json()
    assert (stored["score"], stored["status"]) == ("10.00", "submitted")
    assert len(stored["answers"]) == 1


def test_a_timed_out_last_attempt_is_graded_not_lost(learning, neighbours, learning_app):
    built = ten_question_test(learning, neighbours, time_limit_seconds=60, max_attempts=1)
    attempt = learning.call("POST", f"/tests/{built['test']['id']}/attempts").get_json()
    answers = [{"question_id": q["id"], "option_ids": correct_ids(q)} for q in built["questions"]]
    learning.call("PUT", f"/attempts/{attempt['attempt_id']}/answers", json={"answers": answers})
    database = learning_app.extensions["container"].database()
    with database.transaction() as session:
        session.get(AttemptRecord, attempt["attempt_id"]).deadline = db_now() - timedelta(
            seconds=11
        )
    again = learning.call("POST", f"/tests/{built['test']['id']}/attempts")
    assert again.status_code == 409
    assert again.get_json()["error"] == "no_attempts_left"
    test = learning.call("GET", f"/tests/{built['test']['id']}").get_json()
    assert (test["grade"], test["passed"]) == ("100.00", True)
    assert learning.call("GET", "/courses/1/progress").get_json()["percent"] == "100.00"


def test_submitting_when_every_question_was_deleted_keeps_the_attempt(learning, neighbours):
    built = quiz(learning, neighbours, max_attempts=1)
    attempt = learning.call("POST", f"/tests/{built['test']['id']}/attempts").get_json()
    for question in built["questions"]:
        staff(learning, "DELETE", f"/questions/{question['id']}")
    response = learning.call("POST", f"/attempts/{attempt['attempt_id']}/submit")
    assert response.status_code == 409
    assert response.get_json()["error"] == "test_has_no_questions"
    assert learning.call("GET", f"/attempts/{attempt['attempt_id']}").get_json()["status"] == "open"


def test_long_unicode_answers_and_reviews_fit(learning, neighbours):
    built = course_with_lesson(learning, neighbours, lesson_type="test")
    test = staff(
        learning,
        "PUT",
        f"/lessons/{built['lesson']['id']}/test",
        json={"title": "Long", "passing_score": "50"},
    )
    accepted = ["😀" * 500] * 20
    for _ in range(12):
        staff(
            learning,
            "POST",
            f"/tests/{test['id']}/questions",
            json={
                "text": "Say it",
                "question_type": "short_text",
                "points": "1",
                "accepted_answers": accepted,
            },
        )
    questions = staff(learning, "GET", f"/tests/{test['id']}")["questions"]
    attempt = learning.call("POST", f"/tests/{test['id']}/attempts").get_json()
    answers = [{"question_id": q["id"], "text": "😀" * 500} for q in questions]
    saved = learning.call(
        "PUT", f"/attempts/{attempt['attempt_id']}/answers", json={"answers": answers}
    )
    assert saved.status_code == 200
    submitted = learning.call("POST", f"/attempts/{attempt['attempt_id']}/submit")
    assert submitted.status_code == 200
    assert submitted.get_json()["score"] == "100.00"


def test_someone_elses_attempt_does_not_exist_for_a_learner(learning, neighbours):
    built = quiz(learning, neighbours)
    neighbours.enrol("learner-2", 1)
    attempt = learning.call("POST", f"/tests/{built['test']['id']}/attempts").get_json()
    for method, path in [
        ("GET", f"/attempts/{attempt['attempt_id']}"),
        ("POST", f"/attempts/{attempt['attempt_id']}/submit"),
    ]:
        assert learning.call(method, path, user="learner-2").status_code == 404
    assert (
        learning.call(
            "GET", f"/attempts/{attempt['attempt_id']}", user=AUTHOR, role="instructor"
        ).status_code
        == 200
    )


# ----------------------------------------------------------------------------- what a learner sees


def secrets_of(built) -> tuple[set[int], set[str]]:
    correct = (
        {oid for q in built["questions"] for oid in correct_ids(q)}
        if "options" in built["questions"][0]
        else set()
    )
    accepted = {a for q in built["questions"] for a in q.get("accepted_answers", [])}
    return correct, accepted


def leaks(payload, correct: set[int], accepted: set[str]) -> list[str]:
    """Everything in a learner's payload from which a correct answer follows."""
    found = []
    text = json.dumps(payload)
    for marker in ("is_correct", "accepted_answers", "correct_option_ids"):
        if marker in text:
            found.append(marker)
    for value in accepted:
        if value.casefold() in text.casefold():
            found.append(value)
    return found


@pytest.mark.parametrize("reveal", ["never", "after_submit", "after_all_attempts"])
def test_no_payload_of_an_open_attempt_carries_a_correct_answer(learning, neighbours, reveal):
    built = quiz(learning, neighbours, reveal=reveal, max_attempts=2)
    _, accepted = secrets_of(built)
    test_id = built["test"]["id"]
    lesson_id = built["lesson"]["id"]
    single, multiple, short = built["questions"]
    payloads = [
        learning.call("GET", f"/lessons/{lesson_id}"),
        learning.call("GET", f"/tests/{test_id}"),
        learning.call("POST", f"/tests/{test_id}/attempts"),
    ]
    attempt_id = payloads[-1].get_json()["attempt_id"]
    payloads += [
        learning.call(
            "PUT",
            f"/attempts/{attempt_id}/answers",
            json={"answers": [{"question_id": short["id"], "text": "Lyon"}]},
        ),
        learning.call(
            "PUT", f"/attempts/{attempt_id}/answers", json={"answers": [{"question_id": 10**9}]}
        ),
        learning.call("GET", f"/attempts/{attempt_id}"),
        learning.call("GET", f"/tests/{test_id}/attempts/mine"),
        learning.call("GET", "/courses/1/progress"),
        learning.call("GET", "/courses/1/outline"),
        learning.call("POST", f"/tests/{test_id}/attempts"),
    ]
    for response in payloads:
        assert leaks(response.get_json(), set(), accepted) == [], response.get_json()
    # Option ids alone reveal nothing: they are listed for every option, right or wrong.
    shown = payloads[2].get_json()["questions"][0]["options"]
    assert [o["id"] for o in shown] == [o["id"] for o in single["options"]]


def test_reveal_policies_after_submitting(learning, neighbours):
    for course_id, reveal in enumerate(["never", "after_submit", "after_all_attempts"], start=1):
        built = quiz(learning, neighbours, course_id=course_id, reveal=reveal, max_attempts=2)
        test_id = built["test"]["id"]
        first = learning.call("POST", f"/tests/{test_id}/attempts").get_json()
        first = learning.call("POST", f"/attempts/{first['attempt_id']}/submit").get_json()
        revealed_first = first["review"][0]["correct_option_ids"] is not None
        second = learning.call("POST", f"/tests/{test_id}/attempts").get_json()
        second = learning.call("POST", f"/attempts/{second['attempt_id']}/submit").get_json()
        revealed_last = second["review"][0]["correct_option_ids"] is not None
        assert (revealed_first, revealed_last) == {
            "never": (False, False),
            "after_submit": (True, True),
            "after_all_attempts": (False, True),
        }[reveal], reveal
        # Per-question points and the learner's own choices are always there.
        assert {"points_awarded", "chosen_option_ids"} <= set(first["review"][0])
        if reveal == "after_all_attempts":
            # Once none are left, the first attempt's review opens up too.
            again = learning.call("GET", f"/attempts/{first['attempt_id']}").get_json()
            assert again["review"][0]["correct_option_ids"] == correct_ids(built["questions"][0])


def test_staff_see_everything(learning, neighbours):
    built = quiz(learning, neighbours, reveal="never")
    test = staff(learning, "GET", f"/tests/{built['test']['id']}")
    assert test["questions"][0]["options"][0]["is_correct"] is True
    assert test["questions"][2]["accepted_answers"] == ["Paris"]


def test_after_all_attempts_reveals_nothing_while_the_last_attempt_is_open(learning, neighbours):
    built = quiz(learning, neighbours, reveal="after_all_attempts", max_attempts=2)
    test_id = built["test"]["id"]
    first = learning.call("POST", f"/tests/{test_id}/attempts").get_json()
    learning.call("POST", f"/attempts/{first['attempt_id']}/submit")
    learning.call("POST", f"/tests/{test_id}/attempts")  # the last one, still open
    earlier = learning.call("GET", f"/attempts/{first['attempt_id']}").get_json()
    assert all(
        item["correct_option_ids"] is None and item["accepted_answers"] is None
        for item in earlier["review"]
    )
    assert "paris" not in str(earlier).casefold()
