from learning.testing import LEARNER, quiz


def test_a_learner_takes_a_quiz(learning, neighbours):
    built = quiz(learning, neighbours)
    test_id = built["test"]["id"]
    started = learning.call("POST", f"/tests/{test_id}/attempts")
    assert started.status_code == 201, started.get_json()
    attempt = started.get_json()
    single, multiple, short = built["questions"]
    answers = [
        {"question_id": single["id"], "option_ids": [single["options"][0]["id"]]},
        {"question_id": short["id"], "text": "  paris "},
    ]
    saved = learning.call(
        "PUT", f"/attempts/{attempt['attempt_id']}/answers", json={"answers": answers}
    )
    assert saved.status_code == 200, saved.get_json()
    submitted = learning.call("POST", f"/attempts/{attempt['attempt_id']}/submit")
    assert submitted.status_code == 200, submitted.get_json()
    print(submitted.get_json())
    progress = learning.call("GET", "/courses/1/progress")
    print(progress.get_json())
    assert LEARNER
