"""Learning routes through nginx → gateway → a stand-in learning service on a real socket.

The stand-in records every request it gets (method, path, query, headers, raw body) and
answers what a test tells it to, so these tests see exactly what the gateway forwards
and what it relays back. nginx's body caps are checked on the same stack; the last test
runs an upload and its download through the real learning service.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from flask import Flask, Response, request

from contracts.learning import LessonOut, MediaOut, ModuleOut, Outline
from devtools.devservers import Redis
from devtools.helpers import TEST_INTERNAL_KEY
from devtools.live import LiveServer
from gateway.testing import Platform, gateway_settings, start_platform
from learning.testing import FakeNeighbours

MiB = 1024 * 1024


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StandIn:
    """A learning service that records requests and answers canned responses."""

    requests: list[Seen] = field(default_factory=list)
    answers: dict[tuple[str, str], Response] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Flask:
        app = Flask("learning_stand_in")

        @app.route(
            "/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], endpoint="any"
        )
        def anything(path: str) -> Response:
            seen = Seen(
                request.method,
                request.path,
                request.query_string.decode(),
                dict(request.headers),
                request.get_data(),
            )
            with self.lock:
                self.requests.append(seen)
                canned = self.answers.get((request.method, request.path))
            if canned is not None:
                return canned
            return Response('{"ok":true}', status=200, content_type="application/json")

        return app

    def answer(self, method: str, path: str, response: Response) -> None:
        self.answers[(method, path)] = response

    def last(self) -> Seen:
        assert self.requests, "the learning service was not called"
        return self.requests[-1]


@pytest.fixture(scope="module")
def stand_in() -> Iterator[tuple[StandIn, LiveServer]]:
    learning = StandIn()
    server = LiveServer(learning.app()).start()
    yield learning, server
    server.stop()


@pytest.fixture(scope="module")
def platform(stand_in: tuple[StandIn, LiveServer], redis_server: Redis) -> Iterator[Platform]:
    _, server = stand_in
    running = start_platform(gateway_settings(learning_url=server.url, redis_url=redis_server.url))
    yield running
    running.close()


@pytest.fixture
def stub(stand_in: tuple[StandIn, LiveServer]) -> StandIn:
    service, _ = stand_in
    service.requests.clear()
    service.answers.clear()
    return service


def text_parts(boundary: str, fields: dict[str, str]) -> bytes:
    return b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )


def multipart(
    boundary: str, fields: dict[str, str], file: bytes | None, filename: str = "clip.bin"
) -> bytes:
    body = text_parts(boundary, fields)
    if file is not None:
        body += (
            (
                f"--{boundary}\r\n"
                f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + file
            + b"\r\n"
        )
    return body + f"--{boundary}--\r\n".encode()


def awkward_bytes(size: int) -> bytes:
    """Random bytes with what a careless relay would mangle: CRLFs, NULs, and something
    that looks like a boundary line but is not this body's."""
    trap = b"\r\n--not-the-boundary\r\n\x00\xff\r\n\r\n"
    return (trap + os.urandom(size))[:size]


# ----------------------------------------------------------------------------- identity


def test_the_caller_identity_is_forwarded_and_client_copies_are_not(
    platform: Platform, stub: StandIn
):
    spoofed = {
        **platform.token("u-7", "user"),
        "X-User-Id": "1",
        "X-User-Role": "admin",
        "X-Internal-Key": "guess",
    }
    response = platform.http.get("/api/lessons/5", headers=spoofed)
    assert response.status_code == 200, response.text
    seen = stub.last()
    assert (seen.method, seen.path) == ("GET", "/lessons/5")
    assert (seen.headers["X-User-Id"], seen.headers["X-User-Role"]) == ("u-7", "user")
    assert seen.headers["X-Internal-Key"] == TEST_INTERNAL_KEY
    # nginx's request id travels on to the service.
    assert seen.headers["X-Request-Id"] == response.headers["X-Request-ID"]


def test_the_outline_is_open_and_still_knows_a_logged_in_caller(platform: Platform, stub: StandIn):
    anonymous = platform.http.get("/api/course/3/outline")
    assert anonymous.status_code == 200
    assert stub.last().path == "/courses/3/outline"
    assert "X-User-Id" not in stub.last().headers
    known = platform.http.get("/api/course/3/outline", headers=platform.token("u-8", "user"))
    assert known.status_code == 200
    assert stub.last().headers["X-User-Id"] == "u-8"


def _learning_routes(app: Flask) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("gateway_learning."):
            continue
        path = re.sub(r"<int:\w+>", "4", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((method, path))
    return routes


def test_every_route_but_the_outline_refuses_an_anonymous_caller(platform: Platform, stub: StandIn):
    routes = _learning_routes(platform.app)
    assert len(routes) == 30
    for method, path in routes:
        if path == "/api/course/4/outline":
            continue
        response = platform.http.request(method, path, json={})
        where = f"{method} {path}"
        assert response.status_code == 401, where
        assert response.json()["error"] == "unauthorized", where
    assert stub.requests == []


@pytest.mark.parametrize(
    ("method", "path", "upstream"),
    [
        ("GET", "/api/course/2/modules", "/courses/2/modules"),
        ("DELETE", "/api/modules/3", "/modules/3"),
        ("DELETE", "/api/lessons/4", "/lessons/4"),
        ("DELETE", "/api/media/5", "/media/5"),
        ("GET", "/api/tests/6", "/tests/6"),
        ("DELETE", "/api/questions/7", "/questions/7"),
        ("POST", "/api/tests/8/attempts", "/tests/8/attempts"),
        ("GET", "/api/tests/8/attempts/mine", "/tests/8/attempts/mine"),
        ("GET", "/api/attempts/9", "/attempts/9"),
        ("POST", "/api/attempts/9/submit", "/attempts/9/submit"),
        ("PUT", "/api/lessons/4/completion", "/lessons/4/completion"),
        ("DELETE", "/api/lessons/4/completion", "/lessons/4/completion"),
        ("GET", "/api/course/2/progress", "/courses/2/progress"),
    ],
)
def test_routes_without_a_body_map_to_the_service_paths(
    platform: Platform, stub: StandIn, method: str, path: str, upstream: str
):
    response = platform.http.request(method, path, headers=platform.token("u-1", "user"))
    assert response.status_code == 200, response.text
    seen = stub.last()
    assert (seen.method, seen.path, seen.query, seen.body) == (method, upstream, "", b"")


@pytest.mark.parametrize(
    ("method", "path", "body", "upstream"),
    [
        ("POST", "/api/course/2/modules", {"title": "Basics"}, "/courses/2/modules"),
        ("PUT", "/api/course/2/modules/order", {"ids": [2, 1]}, "/courses/2/modules/order"),
        ("PATCH", "/api/modules/3", {"published": True}, "/modules/3"),
        (
            "POST",
            "/api/modules/3/lessons",
            {"title": "Intro", "lesson_type": "theory"},
            "/modules/3/lessons",
        ),
        ("PUT", "/api/modules/3/lessons/order", {"ids": [1]}, "/modules/3/lessons/order"),
        ("PATCH", "/api/lessons/4", {"content": "  # kept as sent\n"}, "/lessons/4"),
        (
            "PUT",
            "/api/lessons/4/test",
            {"title": "Quiz", "passing_score": "50.00"},
            "/lessons/4/test",
        ),
        (
            "POST",
            "/api/tests/6/questions",
            {
                "text": "Yes?",
                "question_type": "true_false",
                "points": "1",
                "options": [
                    {"text": "yes", "is_correct": True},
                    {"text": "no", "is_correct": False},
                ],
            },
            "/tests/6/questions",
        ),
        ("PUT", "/api/tests/6/questions/order", {"ids": [3, 2]}, "/tests/6/questions/order"),
        ("PATCH", "/api/questions/7", {"points": "2.50"}, "/questions/7"),
        (
            "PUT",
            "/api/attempts/9/answers",
            {"answers": [{"question_id": 1, "option_ids": [2]}]},
            "/attempts/9/answers",
        ),
    ],
)
def test_valid_bodies_are_forwarded_as_sent(
    platform: Platform,
    stub: StandIn,
    method: str,
    path: str,
    body: dict[str, Any],
    upstream: str,
):
    raw = httpx.Request(method, "http://x", json=body).read()
    response = platform.http.request(
        method,
        path,
        content=raw,
        headers={**platform.token("u-1", "user"), "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    seen = stub.last()
    assert (seen.method, seen.path, seen.body) == (method, upstream, raw)
    assert seen.headers["Content-Type"] == "application/json"


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/course/2/modules", {"title": ""}),
        ("POST", "/api/course/2/modules", {"title": "Basics", "author": "me"}),
        ("PUT", "/api/course/2/modules/order", {"ids": []}),
        ("POST", "/api/modules/3/lessons", {"title": "Intro", "lesson_type": "lecture"}),
        ("PATCH", "/api/lessons/4", {"title": None}),
        ("PUT", "/api/lessons/4/test", {"title": "Quiz", "passing_score": "101"}),
        (
            "POST",
            "/api/tests/6/questions",
            {
                "text": "Pick one",
                "question_type": "single",
                "points": "1",
                "options": [{"text": "a", "is_correct": True}, {"text": "b", "is_correct": True}],
            },
        ),
        ("PUT", "/api/attempts/9/answers", {"answers": [{"question_id": 0}]}),
        (
            "POST",
            "/api/lessons/4/media",
            {"url": "http://plain.example.org/x", "media_type": "video", "title": "x"},
        ),
    ],
)
def test_a_bad_body_is_a_400_before_anything_is_forwarded(
    platform: Platform, stub: StandIn, method: str, path: str, body: dict[str, Any]
):
    response = platform.http.request(method, path, json=body, headers=platform.token("u-1", "user"))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "validation_error"
    assert stub.requests == []


def test_malformed_json_and_bad_queries_are_refused_at_the_gateway(
    platform: Platform, stub: StandIn
):
    user = platform.token("u-1", "user")
    malformed = platform.http.post(
        "/api/course/2/modules",
        content=b'{"title": ',
        headers={**user, "Content-Type": "application/json"},
    )
    assert (malformed.status_code, malformed.json()["error"]) == (400, "malformed_json")
    for query in ({"per_page": "1000"}, {"page": "0"}, {"sort": "name"}):
        bad = platform.http.get("/api/progress", params=query, headers=user)
        assert (bad.status_code, bad.json()["error"]) == (400, "validation_error"), query
    assert stub.requests == []


def test_a_valid_query_string_is_forwarded_as_given(platform: Platform, stub: StandIn):
    user = platform.token("u-1", "user")
    response = platform.http.get("/api/progress?per_page=5&page=2", headers=user)
    assert response.status_code == 200
    assert (stub.last().path, stub.last().query) == ("/progress", "per_page=5&page=2")
    platform.http.get("/api/course/2/progress/learners?page=3", headers=user)
    assert (stub.last().path, stub.last().query) == (
        "/courses/2/progress/learners",
        "page=3",
    )


def test_a_query_string_on_a_route_without_one_is_not_forwarded(platform: Platform, stub: StandIn):
    platform.http.get("/api/lessons/4?debug=1", headers=platform.token("u-1", "user"))
    assert (stub.last().path, stub.last().query) == ("/lessons/4", "")


# ----------------------------------------------------------------------------- media


def test_a_multipart_upload_is_forwarded_byte_for_byte_with_its_content_type(
    platform: Platform, stub: StandIn
):
    stub.answer(
        "POST",
        "/lessons/4/media",
        Response('{"id":1}', status=201, content_type="application/json"),
    )
    boundary = "----gateway-test-7d1f0c"
    body = multipart(boundary, {"media_type": "video", "title": "Clip"}, awkward_bytes(300_000))
    content_type = f"multipart/form-data; boundary={boundary}"
    response = platform.http.post(
        "/api/lessons/4/media",
        content=body,
        headers={**platform.token("u-1", "user"), "Content-Type": content_type},
    )
    assert (response.status_code, response.json()) == (201, {"id": 1})
    seen = stub.last()
    assert (seen.method, seen.path) == ("POST", "/lessons/4/media")
    assert seen.headers["Content-Type"] == content_type
    assert seen.headers["Content-Length"] == str(len(body))
    assert seen.body == body


def test_a_media_link_is_forwarded_as_json(platform: Platform, stub: StandIn):
    link = {"url": "https://example.org/intro.mp4", "media_type": "video", "title": "Intro"}
    response = platform.http.post(
        "/api/lessons/4/media", json=link, headers=platform.token("u-1", "user")
    )
    assert response.status_code == 200
    seen = stub.last()
    assert seen.headers["Content-Type"] == "application/json"
    assert httpx.Response(200, content=seen.body).json() == link


@pytest.mark.parametrize(
    ("fields", "with_file"),
    [
        ({"media_type": "video", "title": "Clip"}, False),  # no file part
        ({"media_type": "", "title": "Clip"}, True),
        ({"media_type": "hologram", "title": "Clip"}, True),
        ({"media_type": "video", "title": "x" * 201}, True),
        ({"media_type": "video", "title": "Clip", "owner": "someone"}, True),
    ],
)
def test_a_bad_upload_form_is_a_400_before_anything_is_forwarded(
    platform: Platform, stub: StandIn, fields: dict[str, str], with_file: bool
):
    boundary = "b0undary"
    body = multipart(boundary, fields, b"data" if with_file else None)
    response = platform.http.post(
        "/api/lessons/4/media",
        content=body,
        headers={
            **platform.token("u-1", "user"),
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    assert (response.status_code, response.json()["error"]) == (400, "validation_error")
    assert stub.requests == []


@pytest.mark.parametrize("fields", [{"media_type": "pdf"}, {"title": "Notes"}, {}])
def test_an_upload_without_a_title_or_a_media_type_is_forwarded(
    platform: Platform, stub: StandIn, fields: dict[str, str]
):
    """The service names it after the file, and reads its type from its first bytes."""
    body = multipart("bnd", fields, b"%PDF-1.7", filename="notes.pdf")
    response = platform.http.post(
        "/api/lessons/4/media",
        content=body,
        headers={
            **platform.token("u-1", "user"),
            "Content-Type": "multipart/form-data; boundary=bnd",
        },
    )
    assert response.status_code == 200, response.text
    assert stub.last().body == body


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_another_media_body_type_is_a_415(platform: Platform, stub: StandIn, content_type: str):
    response = platform.http.post(
        "/api/lessons/4/media",
        content=b"media_type=video&title=x",
        headers={**platform.token("u-1", "user"), "Content-Type": content_type},
    )
    assert response.status_code == 415
    body = response.json()
    assert body["error"] == "unsupported_media_type"
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert stub.requests == []


def test_a_download_is_relayed_with_its_headers(platform: Platform, stub: StandIn):
    payload = awkward_bytes(70_000)
    stub.answer(
        "GET",
        "/media/3",
        Response(
            payload,
            status=200,
            headers={
                "Content-Type": "image/png",
                "Content-Disposition": "inline; filename=media-3",
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "private, no-store",
                "X-Internal-Detail": "not for clients",
                "Set-Cookie": "service=1",
            },
        ),
    )
    response = platform.http.get("/api/media/3", headers=platform.token("u-1", "user"))
    assert response.status_code == 200
    assert response.content == payload
    headers = response.headers
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Disposition"] == "inline; filename=media-3"
    assert headers["Content-Length"] == str(len(payload))
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "private, no-store"
    assert "X-Internal-Detail" not in headers
    assert "Set-Cookie" not in headers
    assert stub.last().path == "/media/3"


def test_a_download_is_never_sniffed_even_if_the_service_forgot_to_say(
    platform: Platform, stub: StandIn
):
    stub.answer("GET", "/media/4", Response(b"<svg/>", content_type="image/svg+xml"))
    response = platform.http.get("/api/media/4", headers=platform.token("u-1", "user"))
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_service_statuses_and_errors_are_relayed(platform: Platform, stub: StandIn):
    stub.answer(
        "POST",
        "/tests/8/attempts",
        Response('{"attempt_id":1}', status=201, content_type="application/json"),
    )
    user = platform.token("u-1", "user")
    assert platform.http.post("/api/tests/8/attempts", headers=user).status_code == 201
    stub.answer(
        "GET",
        "/tests/9",
        Response(
            '{"message":"No.","error":"not_enrolled","request_id":"x"}',
            status=403,
            content_type="application/json",
        ),
    )
    denied = platform.http.get("/api/tests/9", headers=user)
    assert (denied.status_code, denied.json()["error"]) == (403, "not_enrolled")


# ----------------------------------------------------------------------------- nginx


def _upload(platform: Platform, path: str, size: int, method: str = "POST") -> httpx.Response:
    boundary = "nginx-size-test"
    body = multipart(boundary, {"media_type": "video", "title": "Big"}, awkward_bytes(size))
    return platform.http.request(
        method,
        path,
        content=body,
        headers={
            **platform.token("u-1", "user"),
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
        timeout=30,
    )


NGINX_413 = "The request body is too large."


def test_nginx_lets_a_5_mib_upload_through_on_the_media_path(platform: Platform, stub: StandIn):
    stub.answer(
        "POST", "/lessons/4/media", Response("{}", status=201, content_type="application/json")
    )
    response = _upload(platform, "/api/lessons/4/media", 5 * MiB)
    assert response.status_code == 201, response.text
    seen = stub.last()
    assert len(seen.body) > 5 * MiB
    # Proxied like every /api/ path: nginx's request id, not the client's.
    assert seen.headers["X-Request-Id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/course/4/modules"),
        ("PATCH", "/api/lessons/4"),
        ("POST", "/api/lessons/4/media/extra"),
        ("POST", "/api/lessons/4/mediax"),
        ("POST", "/api/xlessons/4/media"),
        ("POST", "/api/course"),
    ],
)
def test_nginx_refuses_the_same_size_anywhere_else_in_the_envelope(
    platform: Platform, stub: StandIn, method: str, path: str
):
    response = _upload(platform, path, 5 * MiB, method)
    assert response.status_code == 413
    body = response.json()
    assert (body["error"], body["message"]) == ("payload_too_large", NGINX_413)
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert stub.requests == []


def test_nginx_caps_the_media_path_at_21_mib(platform: Platform, stub: StandIn):
    response = _upload(platform, "/api/lessons/4/media", 21 * MiB + 1)
    assert response.status_code == 413
    assert response.json()["message"] == NGINX_413
    assert stub.requests == []


def test_the_gateway_caps_a_json_media_body_at_1_mib(platform: Platform, stub: StandIn):
    """Only an upload gets the larger cap past nginx; a link is small."""
    response = platform.http.post(
        "/api/lessons/4/media",
        content=b'{"title": "' + b"x" * (2 * MiB) + b'"}',
        headers={**platform.token("u-1", "user"), "Content-Type": "application/json"},
    )
    assert (response.status_code, response.json()["error"]) == (413, "payload_too_large")
    assert stub.requests == []


# ----------------------------------------------------------------------------- the real service


@pytest.fixture(scope="module")
def real_platform(learning_app: Flask, redis_server: Redis) -> Iterator[Platform]:
    """nginx → gateway → the learning service (MariaDB), its neighbours stood in."""
    server = LiveServer(learning_app).start()
    running = start_platform(gateway_settings(learning_url=server.url, redis_url=redis_server.url))
    yield running
    running.close()
    server.stop()


def test_an_upload_round_trip_through_the_real_service(
    real_platform: Platform, learning_db: None, neighbours: FakeNeighbours
):
    neighbours.add_course(1, author_id="author-1")
    neighbours.enrol("learner-1", 1)
    author = real_platform.token("author-1", "instructor")
    learner = real_platform.token("learner-1", "user")
    http = real_platform.http

    module = http.post(
        "/api/course/1/modules", json={"title": "M", "published": True}, headers=author
    )
    assert module.status_code == 201, module.text
    ModuleOut.model_validate(module.json())
    lesson = http.post(
        f"/api/modules/{module.json()['id']}/lessons",
        json={"title": "L", "lesson_type": "theory", "published": True},
        headers=author,
    )
    assert lesson.status_code == 201, lesson.text
    lesson_id = LessonOut.model_validate(lesson.json()).id

    png = b"\x89PNG\r\n\x1a\n" + awkward_bytes(5 * MiB)
    boundary = "real-service-upload"
    uploaded = http.post(
        f"/api/lessons/{lesson_id}/media",
        content=multipart(boundary, {"media_type": "image", "title": "Chart"}, png),
        headers={**author, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=30,
    )
    assert uploaded.status_code == 201, uploaded.text
    media = MediaOut.model_validate(uploaded.json())
    assert (media.kind, media.size_bytes, media.content_type) == ("file", len(png), "image/png")

    downloaded = http.get(f"/api/media/{media.id}", headers=learner, timeout=30)
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.content == png
    assert downloaded.headers["Content-Type"] == "image/png"
    assert downloaded.headers["Content-Length"] == str(len(png))
    assert downloaded.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in downloaded.headers["Cache-Control"]
    assert "Content-Disposition" in downloaded.headers

    outline = http.get("/api/course/1/outline")
    assert outline.status_code == 200, outline.text
    assert [m.id for m in Outline.model_validate(outline.json()).modules] == [module.json()["id"]]


@pytest.mark.parametrize("path", ["/api/tests/1/attempts", "/api/attempts/1/submit"])
@pytest.mark.parametrize("body", [{"score": 100}, {"answers": []}, [1]])
def test_starting_or_submitting_takes_no_body(platform: Platform, stub: StandIn, path, body):
    response = platform.http.post(path, json=body, headers=platform.token("u-1", "user"))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "validation_error"
    assert stub.requests == []
