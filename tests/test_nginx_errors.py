"""nginx's own answers are in the platform's JSON error envelope, over raw sockets.

nginx runs from the production template in front of a stand-in upstream under gunicorn
with gunicorn's default limits (as the gateway's image runs it), so the tests also show
that nginx, not gunicorn, refuses what is too long: the longest request line and header
line nginx lets through are taken by gunicorn, and one byte more is nginx's 414 / 431.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.devservers import ManagedProcess, Nginx, free_port, port_open, wait_until

GUNICORN = Path(sys.executable).parent / "gunicorn"
ALLOWED = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

STAND_IN = """
import json


def app(environ, start_response):
    body = json.dumps({
        "method": environ["REQUEST_METHOD"],
        "path": environ.get("PATH_INFO", ""),
        "query_length": len(environ.get("QUERY_STRING", "")),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
"""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def envelope(self) -> dict[str, str]:
        assert self.headers.get("content-type") == "application/json", self
        body = json.loads(self.body)
        assert set(body) == {"message", "error", "request_id"}, body
        assert all(isinstance(value, str) and value for value in body.values()), body
        assert body["request_id"] == self.headers["x-request-id"]
        return body  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    workdir = tmp_path_factory.mktemp("nginx-errors")
    (workdir / "stand_in.py").write_text(STAND_IN)
    port = free_port()
    upstream = ManagedProcess(
        "gunicorn",
        [str(GUNICORN), "-b", f"127.0.0.1:{port}", "--chdir", str(workdir), "stand_in:app"],
        workdir / "gunicorn.log",
    )

    def ready() -> bool:
        upstream.ensure_alive()
        return port_open(port)

    try:
        wait_until(ready, timeout=20, what="gunicorn")
        server = Nginx(gateway=f"127.0.0.1:{port}", workdir=workdir / "nginx").start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        upstream.stop()


def exchange(nginx: Nginx, data: bytes) -> Answer:
    """Send raw bytes, read one HTTP/1.x answer (nginx closes after each of these)."""
    with socket.create_connection(("127.0.0.1", nginx.port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before an answer: {received!r}"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ")[:2]
        assert version == "HTTP/1.1", lines[0]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection closed mid-body"
            body += chunk
    return Answer(int(status), headers, body)


def request(method: str, target: str, *headers: str, version: str = "HTTP/1.1") -> bytes:
    lines = [f"{method} {target} {version}", "Host: platform.test", *headers, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# -- methods ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/course/", "/api/auth/login", "/health", "/", "/nope"])
@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "FOO", "BREW", "PROPFIND", "TRACK"])
def test_a_method_the_api_does_not_speak_is_a_405_with_allow(nginx: Nginx, method: str, path: str):
    answer = exchange(nginx, request(method, path))
    assert answer.status == 405
    assert answer.envelope()["error"] == "method_not_allowed"
    allow = {m.strip() for m in answer.headers["allow"].split(",")}
    assert allow == ALLOWED


@pytest.mark.parametrize("method", sorted(ALLOWED - {"HEAD"}))
def test_the_api_methods_still_reach_the_gateway(nginx: Nginx, method: str):
    answer = exchange(nginx, request(method, "/api/course/", "Content-Length: 0"))
    assert answer.status == 200
    assert json.loads(answer.body)["method"] == method


def test_connect_with_an_authority_target_is_a_400(nginx: Nginx):
    answer = exchange(nginx, request("CONNECT", "example.com:443"))
    assert answer.status == 400
    assert answer.envelope()["error"] == "bad_request"


# -- malformed requests -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"GET /api/course/ HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        b"GET /api/a b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"get /api/course/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x00\x01\x02 garbage\r\n\r\n",
        b"GET /api/course/ HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"GET /api/course/ HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        b"GET /api/course/ HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    ],
    ids=[
        "extra-token",
        "space-in-target",
        "lowercase-method",
        "binary",
        "no-host",
        "bad-header",
        "two-hosts",
    ],
)
def test_a_malformed_request_is_a_400(nginx: Nginx, data: bytes):
    answer = exchange(nginx, data)
    assert answer.status == 400
    assert answer.envelope()["error"] == "bad_request"


def test_an_unknown_http_version_is_a_505(nginx: Nginx):
    answer = exchange(nginx, request("GET", "/api/course/", version="HTTP/9.9"))
    assert answer.status == 505
    assert answer.envelope()["error"] == "http_version_not_supported"


def test_an_unknown_transfer_encoding_is_a_501(nginx: Nginx):
    answer = exchange(nginx, request("POST", "/api/course/", "Transfer-Encoding: gzip"))
    assert answer.status == 501
    assert answer.envelope()["error"] == "not_implemented"


def test_the_error_pages_are_not_reachable_from_outside(nginx: Nginx):
    answer = exchange(nginx, request("GET", "/_errors/405"))
    assert answer.status == 404
    assert answer.envelope()["error"] == "not_found"


# -- sizes: nginx refuses before gunicorn would --------------------------------------------


def line_of(length: int, method: str = "GET") -> str:
    """A request line of exactly ``length`` bytes (CRLF not counted), a long query."""
    prefix, suffix = f"{method} /api/course/?search=", " HTTP/1.1"
    line = prefix + "a" * (length - len(prefix) - len(suffix)) + suffix
    assert len(line) == length
    return line


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_request_line_over_the_limit_is_nginxs_414(nginx: Nginx, method: str):
    # 4094 bytes is gunicorn's own limit_request_line: the longest nginx passes reaches it.
    longest = exchange(
        nginx, (line_of(4094, method) + "\r\nHost: x\r\nConnection: close\r\n\r\n").encode()
    )
    assert longest.status == 200, longest
    assert json.loads(longest.body)["method"] == method
    for length in (4095, 9000, 70_000):
        answer = exchange(nginx, (line_of(length, method) + "\r\nHost: x\r\n\r\n").encode())
        assert answer.status == 414, length
        assert answer.envelope()["error"] == "uri_too_long"


def header_of(name: str, length: int) -> str:
    """A header line of exactly ``length`` bytes (CRLF not counted)."""
    return f"{name}: " + "b" * (length - len(name) - 2)


@pytest.mark.parametrize("name", ["X-Padding", "Cookie", "Authorization"])
def test_a_header_over_the_limit_is_nginxs_431(nginx: Nginx, name: str):
    longest = header_of(name, 4094)
    answer = exchange(nginx, request("GET", "/api/course/", longest))
    assert answer.status == 200, answer  # gunicorn (limit 8190) takes it
    for length in (4095, 8190, 20_000):
        line = header_of(name, length)
        answer = exchange(nginx, request("GET", "/api/course/", line))
        assert answer.status == 431, length
        assert answer.envelope()["error"] == "header_too_large"
