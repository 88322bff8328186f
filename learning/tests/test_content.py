"""Modules, lessons, media and the outline: who writes, who reads, and the order kept."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from devtools.helpers import internal_headers
from learning.testing import AUTHOR, LEARNER, course_with_lesson, staff

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.7\n" + b"x" * 64


def as_author(learning, method, path, **kwargs):
    return learning.call(method, path, user=AUTHOR, role="instructor", **kwargs)


@pytest.mark.parametrize(
    ("user", "role", "status"),
    [
        (AUTHOR, "instructor", 201),
        ("admin-1", "admin", 201),
        ("author-2", "instructor", 403),
        (LEARNER, "user", 403),
        (AUTHOR, "user", 403),  # no longer an instructor: authoring rights go with the role
    ],
)
def test_only_the_author_instructor_or_an_admin_writes_content(
    learning, neighbours, user, role, status
):
    neighbours.add_course(1, author_id=AUTHOR)
    response = learning.call(
        "POST", "/courses/1/modules", user=user, role=role, json={"title": "M"}
    )
    assert response.status_code == status, response.get_json()


def test_a_draft_course_does_not_exist_for_anyone_but_its_staff(learning, neighbours):
    built = course_with_lesson(learning, neighbours)
    neighbours.add_course(1, author_id=AUTHOR, status="draft")
    lesson_id = built["lesson"]["id"]
    assert learning.call("GET", f"/lessons/{lesson_id}").status_code == 404
    assert learning.call("GET", "/courses/1/outline", user=None).status_code == 404
    assert as_author(learning, "GET", f"/lessons/{lesson_id}").status_code == 200
    assert as_author(learning, "GET", "/courses/1/outline").status_code == 200


@pytest.mark.parametrize(
    ("enrolment", "price", "status"),
    [
        ({"paid": True}, "100.00", 200),
        ({"paid": True, "status": "completed"}, "100.00", 200),
        ({"paid": False}, "100.00", 403),
        ({"paid": False}, "0.00", 200),  # a free course needs no payment
        ({"paid": True, "status": "cancelled"}, "100.00", 403),
        ({"paid": True, "status": "expired"}, "100.00", 403),
        (None, "100.00", 403),
    ],
)
def test_who_may_read_a_lesson(learning, neighbours, enrolment, price, status):
    built = course_with_lesson(learning, neighbours, enrol=False)
    if enrolment is not None:
        neighbours.enrol(LEARNER, 1, price=price, **enrolment)
    response = learning.call("GET", f"/lessons/{built['lesson']['id']}")
    assert response.status_code == status, response.get_json()
    if status == 403:
        assert response.get_json()["error"] == "not_enrolled"


def test_no_identity_is_a_401(learning, neighbours):
    built = course_with_lesson(learning, neighbours)
    assert learning.call("GET", f"/lessons/{built['lesson']['id']}", user=None).status_code == 401


def test_unpublished_lessons_and_modules_are_404_to_learners(learning, neighbours):
    built = course_with_lesson(learning, neighbours)
    lesson_id, module_id = built["lesson"]["id"], built["module"]["id"]
    as_author(learning, "PATCH", f"/lessons/{lesson_id}", json={"published": False})
    assert learning.call("GET", f"/lessons/{lesson_id}").status_code == 404
    as_author(learning, "PATCH", f"/lessons/{lesson_id}", json={"published": True})
    assert learning.call("GET", f"/lessons/{lesson_id}").status_code == 200
    as_author(learning, "PATCH", f"/modules/{module_id}", json={"published": False})
    assert learning.call("GET", f"/lessons/{lesson_id}").status_code == 404
    assert learning.call("GET", "/courses/1/modules").get_json()["modules"] == []
    assert as_author(learning, "GET", f"/lessons/{lesson_id}").status_code == 200


def test_content_is_stored_exactly_as_sent_and_capped_at_100_kb(learning, neighbours):
    built = course_with_lesson(learning, neighbours)
    markdown = "  <script>alert(1)</script>\n\n# Title  \n\t- ünïcode\n"
    lesson_id = built["lesson"]["id"]
    assert (
        as_author(
            learning, "PATCH", f"/lessons/{lesson_id}", json={"content": markdown}
        ).status_code
        == 200
    )
    assert learning.call("GET", f"/lessons/{lesson_id}").get_json()["content"] == markdown
    fits = "é" * (50 * 1024)  # 100 kB of UTF-8 exactly
    assert (
        as_author(learning, "PATCH", f"/lessons/{lesson_id}", json={"content": fits}).status_code
        == 200
    )
    too_big = as_author(learning, "PATCH", f"/lessons/{lesson_id}", json={"content": fits + "x"})
    assert too_big.status_code == 400
    assert (
        as_author(learning, "PATCH", f"/lessons/{lesson_id}", json={"title": None}).status_code
        == 400
    )
    assert (
        as_author(
            learning, "PATCH", f"/lessons/{lesson_id}", json={"lesson_type": "test"}
        ).status_code
        == 400
    )


# ----------------------------------------------------------------------------- ordering


def positions(items):
    return [(item["id"], item["position"]) for item in items]


def test_modules_keep_positions_one_to_n_through_insert_delete_and_reorder(learning, neighbours):
    neighbours.add_course(1, author_id=AUTHOR)
    neighbours.add_course(2, author_id=AUTHOR)
    ids = [
        staff(learning, "POST", "/courses/1/modules", json={"title": f"M{n}"})["id"]
        for n in range(4)
    ]
    foreign = staff(learning, "POST", "/courses/2/modules", json={"title": "other"})["id"]
    listed = staff(learning, "GET", "/courses/1/modules")["modules"]
    assert positions(listed) == [(ids[n], n + 1) for n in range(4)]
    order = [ids[2], ids[0], ids[3], ids[1]]
    assert positions(
        staff(learning, "PUT", "/courses/1/modules/order", json={"ids": order})["modules"]
    ) == [(module_id, n + 1) for n, module_id in enumerate(order)]
    for bad in (order[:3], [*order, foreign], [*order[:3], foreign], [*order[:3], order[0]]):
        response = as_author(learning, "PUT", "/courses/1/modules/order", json={"ids": bad})
        assert response.status_code == 422, bad
        assert response.get_json()["error"] == "bad_ordering"
    assert as_author(learning, "DELETE", f"/modules/{ids[0]}").status_code == 204
    left = staff(learning, "GET", "/courses/1/modules")["modules"]
    assert positions(left) == [(ids[2], 1), (ids[3], 2), (ids[1], 3)]


def test_two_concurrent_reorders_leave_one_of_them_whole(learning, neighbours, learning_app):
    built = course_with_lesson(learning, neighbours)
    module_id = built["module"]["id"]
    ids = [built["lesson"]["id"]] + [
        staff(
            learning,
            "POST",
            f"/modules/{module_id}/lessons",
            json={"title": f"L{n}", "lesson_type": "theory"},
        )["id"]
        for n in range(5)
    ]
    orders = [list(reversed(ids)), ids[1:] + ids[:1]]
    for _ in range(10):
        barrier = threading.Barrier(2)
        statuses: list[int] = []

        def reorder(
            order: list[int], gate: threading.Barrier = barrier, seen: list[int] = statuses
        ) -> None:
            client = learning_app.test_client()
            gate.wait()
            response = client.put(
                f"/modules/{module_id}/lessons/order",
                json={"ids": order},
                headers=internal_headers(AUTHOR, "instructor"),
            )
            seen.append(response.status_code)

        threads = [threading.Thread(target=reorder, args=(order,)) for order in orders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert statuses == [200, 200]
        lessons = sorted(
            (
                learning.call("GET", f"/lessons/{i}", user=AUTHOR, role="instructor").get_json()
                for i in ids
            ),
            key=lambda lesson: lesson["position"],
        )
        assert [lesson["position"] for lesson in lessons] == [1, 2, 3, 4, 5, 6]
        assert [lesson["id"] for lesson in lessons] in orders


# ----------------------------------------------------------------------------- media


def upload(learning, lesson_id, data: bytes, name: str = "file.bin", **fields):
    return as_author(
        learning,
        "POST",
        f"/lessons/{lesson_id}/media",
        data={"file": (io.BytesIO(data), name), **fields},
        content_type="multipart/form-data",
    )


def test_files_are_recognised_by_their_first_bytes(learning, neighbours):
    built = course_with_lesson(learning, neighbours)
    lesson_id = built["lesson"]["id"]
    png = upload(learning, lesson_id, PNG, "picture.pdf", title="Diagram")
    assert png.status_code == 201, png.get_json()
    assert (png.get_json()["media_type"], png.get_json()["content_type"]) == ("image", "image/png")
    for data, name in [(b"<html>not a pdf</html>", "slides.pdf"), (b"MZ\x90\x00", "song.mp3")]:
        refused = upload(learning, lesson_id, data, name)
        assert refused.status_code == 415, name
    assert upload(learning, lesson_id, PNG, media_type="pdf").status_code == 415  # says pdf, is png
    assert (
        upload(learning, lesson_id, b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 16).get_json()[
            "media_type"
        ]
        == "video"
    )
    assert (
        upload(learning, lesson_id, b"ID3\x04" + b"\x00" * 16).get_json()["media_type"] == "audio"
    )


def test_a_file_is_downloaded_only_by_readers_and_deleted_with_its_row(
    learning, neighbours, learning_app
):
    built = course_with_lesson(learning, neighbours)
    media = upload(learning, built["lesson"]["id"], PDF, title="Notes").get_json()
    assert media["url"] == f"/api/media/{media['id']}"
    download = learning.call("GET", f"/media/{media['id']}")
    assert download.status_code == 200
    assert download.data == PDF
    assert download.headers["Content-Type"] == "application/pdf"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert learning.call("GET", f"/media/{media['id']}", user="stranger").status_code == 403
    storage = learning_app.extensions["container"].storage()
    stored = list(Path(storage.root).iterdir())
    assert any(path.read_bytes() == PDF for path in stored)
    assert as_author(learning, "DELETE", f"/media/{media['id']}").status_code == 204
    assert not any(path.exists() and path.read_bytes() == PDF for path in stored)
    assert learning.call("GET", f"/media/{media['id']}").status_code == 404


def test_an_upload_over_the_limit_is_a_413_and_leaves_nothing(
    learning, neighbours, learning_app, monkeypatch
):
    built = course_with_lesson(learning, neighbours)
    service = learning_app.extensions["container"].service()
    monkeypatch.setattr(service, "media_max_bytes", 1000)
    before = (
        set(Path(service.storage.root).iterdir()) if Path(service.storage.root).exists() else set()
    )
    response = upload(learning, built["lesson"]["id"], PDF + b"x" * 1000)
    assert response.status_code == 413
    assert response.get_json()["error"] in ("payload_too_large", "request_entity_too_large")
    assert set(Path(service.storage.root).iterdir()) == before


def test_links_are_https_only(learning, neighbours):
    built = course_with_lesson(learning, neighbours)
    path = f"/lessons/{built['lesson']['id']}/media"
    good = {"url": "https://video.example/v/1", "media_type": "video", "title": "Intro"}
    assert as_author(learning, "POST", path, json=good).status_code == 201
    for url in ("http://video.example/v/1", "javascript:alert(1)", "https://a b"):
        assert as_author(learning, "POST", path, json={**good, "url": url}).status_code == 400, url


# ----------------------------------------------------------------------------- outline


def test_the_outline_is_public_and_shows_no_content(learning, neighbours):
    built = course_with_lesson(learning, neighbours)
    module_id = built["module"]["id"]
    staff(
        learning,
        "POST",
        f"/modules/{module_id}/lessons",
        json={"title": "Hidden", "lesson_type": "theory"},
    )
    staff(learning, "POST", "/courses/1/modules", json={"title": "Unpublished module"})
    outline = learning.call("GET", "/courses/1/outline", user=None)
    assert outline.status_code == 200
    body = outline.get_json()
    assert [m["title"] for m in body["modules"]] == ["M1"]
    assert [lesson["title"] for lesson in body["modules"][0]["lessons"]] == ["L1"]
    assert "content" not in body["modules"][0]["lessons"][0]
    assert "# Hi" not in outline.get_data(as_text=True)
