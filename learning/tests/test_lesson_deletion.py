"""A lesson is deleted with its media, links and files alike (found by schemathesis:
deleting a lesson that had media was a 500, SQLAlchemy nulling media.lesson_id)."""

from __future__ import annotations

import io
from pathlib import Path

from learning.testing import AUTHOR, course_with_lesson

PDF = b"%PDF-1.7\n" + b"x" * 64


def as_author(learning, method, path, **kwargs):
    return learning.call(method, path, user=AUTHOR, role="instructor", **kwargs)


def test_a_lesson_with_media_is_deleted_with_them(learning, neighbours, learning_app):
    built = course_with_lesson(learning, neighbours)
    lesson_id = built["lesson"]["id"]
    link = as_author(
        learning,
        "POST",
        f"/lessons/{lesson_id}/media",
        json={"url": "https://example.org/a.mp4", "media_type": "video", "title": "A"},
    )
    assert link.status_code == 201, link.get_json()
    upload = as_author(
        learning,
        "POST",
        f"/lessons/{lesson_id}/media",
        data={"file": (io.BytesIO(PDF), "notes.pdf")},
        content_type="multipart/form-data",
    )
    assert upload.status_code == 201, upload.get_json()
    storage = Path(learning_app.extensions["container"].storage().root)
    assert any(path.read_bytes() == PDF for path in storage.iterdir())

    response = as_author(learning, "DELETE", f"/lessons/{lesson_id}")

    assert response.status_code == 204, response.get_json()
    assert as_author(learning, "GET", f"/lessons/{lesson_id}").status_code == 404
    for media in (link.get_json(), upload.get_json()):
        assert as_author(learning, "GET", f"/media/{media['id']}").status_code == 404
    assert not any(path.read_bytes() == PDF for path in storage.iterdir())
