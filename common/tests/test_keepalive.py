"""The lean keep-alive transport, against a scripted server on a real socket: what it
reuses, what it refuses to reuse, and how every failure surfaces as an httpx error."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from common.http import ServiceClient
from common.keepalive import KeepAliveTransport, encode_head
from common.request_context import set_request_id
from devtools.devservers import free_port, wait_until


class Peer:
    """One accepted connection, read by hand."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def read_request(self) -> tuple[str, dict[str, str], bytes] | None:
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        line, *fields = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (f.split(":", 1) for f in fields)}
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self.buffer += self.sock.recv(65536)
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return line, headers, body

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


Script = Callable[[Peer], None]


class ScriptedServer:
    """Accepts connections on a free loopback port; each runs ``script`` in a thread."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            self.script(Peer(sock))

    def close(self) -> None:
        self.listener.close()


def answer(body: bytes, *extra: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def recording(server_box: list[ScriptedServer], reply: Callable[[str, bytes], bytes]) -> Script:
    def script(peer: Peer) -> None:
        while (request := peer.read_request()) is not None:
            server_box[0].requests.append(request)
            peer.send(reply(request[0], request[2]))

    return script


@pytest.fixture
def serve():
    servers: list[ScriptedServer] = []

    def start(script: Script) -> ScriptedServer:
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def transport():
    with httpx.Client(transport=KeepAliveTransport(max_idle=4), timeout=2) as client:
        yield client


def echo_server(serve) -> ScriptedServer:
    box: list[ScriptedServer] = []
    box.append(serve(recording(box, lambda line, body: answer(line.encode() + b"|" + body))))
    return box[0]


def test_requests_reuse_one_connection_and_arrive_intact(serve, transport):
    server = echo_server(serve)
    first = transport.get(server.url + "/a?x=1", headers={"X-User-Id": "u1"})
    second = transport.post(server.url + "/b", content=b'{"n":1}')
    assert first.text == "GET /a?x=1 HTTP/1.1|"
    assert second.text == 'POST /b HTTP/1.1|{"n":1}'
    assert server.requests[0][1]["x-user-id"] == "u1"
    assert server.requests[1][1]["content-length"] == "7"
    assert server.connections == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_not_reused(serve, transport):
    box: list[ScriptedServer] = []

    def one_request_per_connection(peer: Peer) -> None:
        request = peer.read_request()
        assert request is not None
        box[0].requests.append(request)
        peer.send(answer(b"ok"))  # keep-alive promised, then closed at once

    box.append(serve(one_request_per_connection))
    for method in ("GET", "POST", "GET"):
        response = transport.request(method, box[0].url + "/x", content=b"")
        time.sleep(0.05)  # let the FIN arrive, as after a server's keep-alive timeout
        assert response.text == "ok"
    assert box[0].connections == 3
    assert len(box[0].requests) == 3, "every request reached the server exactly once"


def test_a_request_lost_on_a_dropped_connection_is_retried_only_when_idempotent(serve, transport):
    """The race the readability check cannot close: the server drops a kept-alive
    connection as the request is sent. A GET is sent again on a fresh connection; a
    POST is not (the server might have acted on it) and fails as a transport error."""
    box: list[ScriptedServer] = []
    dropped = {"count": 0}

    def answer_once_then_drop_the_next(peer: Peer) -> None:
        request = peer.read_request()
        assert request is not None
        box[0].requests.append(request)
        peer.send(answer(b"ok"))
        if peer.read_request() is not None:
            dropped["count"] += 1  # read, never answered: closed with no byte sent

    box.append(serve(answer_once_then_drop_the_next))
    url = box[0].url
    assert transport.get(url + "/1").text == "ok"
    assert transport.get(url + "/2").text == "ok"  # dropped once, retried on a new connection
    assert dropped["count"] == 1
    assert box[0].connections == 2
    with pytest.raises(httpx.RemoteProtocolError):
        transport.post(url + "/3", content=b"{}")
    assert dropped["count"] == 2
    assert [r[0].split()[1] for r in box[0].requests] == ["/1", "/2"]


def test_chunked_bodies_are_decoded_and_the_connection_kept(serve, transport):
    box: list[ScriptedServer] = []
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    box.append(serve(recording(box, lambda _line, _body: chunked)))
    assert [transport.get(box[0].url).text for _ in range(2)] == ["hello, world"] * 2
    assert box[0].connections == 1


def test_a_body_delimited_by_close_is_read_whole_and_never_reused(serve, transport):
    def until_close(peer: Peer) -> None:
        if peer.read_request() is not None:
            peer.send(b"HTTP/1.1 200 OK\r\n\r\npart one, ")
            time.sleep(0.05)
            peer.send(b"part two")

    server = serve(until_close)
    assert transport.get(server.url).text == "part one, part two"
    assert transport.get(server.url).text == "part one, part two"
    assert server.connections == 2


@pytest.mark.parametrize(
    "closing",
    [("HTTP/1.1", "Connection: close"), ("HTTP/1.0", "X-Other: 1")],
    ids=["connection-close", "http-1.0"],
)
def test_a_response_that_ends_the_connection_is_honoured(serve, transport, closing):
    version, header = closing
    box: list[ScriptedServer] = []
    reply = f"{version} 200 OK\r\nContent-Length: 2\r\n{header}\r\n\r\nok".encode()
    box.append(serve(recording(box, lambda _line, _body: reply)))
    assert [transport.get(box[0].url).text for _ in range(2)] == ["ok", "ok"]
    assert box[0].connections == 2


def test_bodiless_answers_keep_the_connection(serve, transport):
    box: list[ScriptedServer] = []

    def reply(line: str, _body: bytes) -> bytes:
        if line.startswith("HEAD"):
            return b"HTTP/1.1 200 OK\r\nContent-Length: 120\r\n\r\n"
        return b"HTTP/1.1 204 No Content\r\n\r\n"

    box.append(serve(recording(box, reply)))
    head = transport.head(box[0].url)
    deleted = transport.delete(box[0].url)
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "120")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert box[0].connections == 1


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header: 1\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 4\r\n\r\nokok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # then closed
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
    ],
    ids=[
        "http2",
        "status",
        "header-name",
        "length",
        "two-lengths",
        "truncated",
        "encoding",
        "chunk-size",
        "huge-head",
    ],
)
def test_malformed_answers_are_protocol_errors_and_the_connection_is_dropped(
    serve, transport, reply
):
    box: list[ScriptedServer] = []

    def bad_then_stale(peer: Peer) -> None:
        if peer.read_request() is not None:
            peer.send(reply)
        if b"short" in reply:
            return  # a body cut short by the server going away
        if peer.read_request() is not None:  # reached only if the connection were reused
            peer.send(answer(b"stale"))

    box.append(serve(bad_then_stale))
    with pytest.raises(httpx.RemoteProtocolError):
        transport.get(box[0].url)
    box[0].script = recording(box, lambda _line, _body: answer(b"fresh"))
    assert transport.get(box[0].url).text == "fresh"
    assert box[0].connections == 2


def test_a_silent_server_is_a_read_timeout(serve):
    def silent(peer: Peer) -> None:
        peer.read_request()
        time.sleep(2)

    server = serve(silent)
    with httpx.Client(transport=KeepAliveTransport(), timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            client.get(server.url)
    assert time.monotonic() - started < 1.5


def test_nobody_listening_is_a_connect_error():
    with (
        httpx.Client(transport=KeepAliveTransport(), timeout=1) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get(f"http://127.0.0.1:{free_port()}/")


def test_a_header_that_would_smuggle_a_second_request_is_refused_before_sending(serve, transport):
    server = echo_server(serve)
    smuggled = "x\r\nContent-Length: 0\r\n\r\nGET /admin HTTP/1.1"
    request = httpx.Request("GET", server.url, headers={"X-Request-ID": smuggled})
    with pytest.raises(httpx.LocalProtocolError):
        transport.send(request)
    assert server.requests == []


def test_only_plain_http_is_spoken(transport):
    with pytest.raises(httpx.UnsupportedProtocol):
        transport.get("https://127.0.0.1:1/")


def test_concurrent_callers_each_get_their_own_answer(serve):
    server = echo_server(serve)
    with httpx.Client(transport=KeepAliveTransport(max_idle=8), timeout=5) as client:

        def call(n: int) -> str:
            return client.post(server.url + f"/{n}", content=str(n).encode()).text

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(call, range(400)))
    assert answers == [f"POST /{n} HTTP/1.1|{n}" for n in range(400)]
    assert server.connections <= 8


def test_no_more_idle_connections_are_kept_than_max_idle(serve):
    """Two calls at once open two connections; with ``max_idle=1`` the transport
    keeps one for reuse and closes the other."""
    box: list[ScriptedServer] = []
    both_arrived = threading.Barrier(2, timeout=5)
    closed_by_client = []

    def answer_when_both_are_in(peer: Peer) -> None:
        first = True
        while (request := peer.read_request()) is not None:
            box[0].requests.append(request)
            if first:
                both_arrived.wait()  # the two first requests are in flight together
                first = False
            peer.send(answer(b"ok"))
        closed_by_client.append(peer)

    box.append(serve(answer_when_both_are_in))
    with httpx.Client(transport=KeepAliveTransport(max_idle=1), timeout=5) as client:
        with ThreadPoolExecutor(2) as pool:
            assert list(pool.map(lambda _: client.get(box[0].url).text, range(2))) == ["ok"] * 2
        wait_until(
            lambda: len(closed_by_client) == 1, timeout=5, what="the extra connection closed"
        )
        assert [client.get(box[0].url).text for _ in range(3)] == ["ok"] * 3
    assert box[0].connections == 2


# -- ServiceClient: the bytes it writes itself -------------------------------------------------


def test_service_client_writes_what_httpx_would(serve):
    server = echo_server(serve)
    with ServiceClient(server.url + "/base/", internal_key="k" * 32) as client:
        set_request_id("rid-1")
        client.request("GET", "/a b/ż", params={"flag": True, "q": "x y", "many": [1, 2]})
        client.request("POST", "/json", json={"name": "Zoë", "n": 1})
        client.request("POST", "/empty")
        client.request("GET", "/raw", params="page=2&q=%20a")
    (get, get_headers, _), (post, post_headers, body), (empty, empty_headers, _), (raw, *_) = (
        server.requests
    )
    assert get == "GET /base/a%20b/%C5%BC?flag=true&q=x+y&many=1&many=2 HTTP/1.1"
    assert get_headers["host"] == server.url.removeprefix("http://")
    assert (get_headers["x-request-id"], get_headers["x-internal-key"]) == ("rid-1", "k" * 32)
    assert "content-length" not in get_headers
    assert post == "POST /base/json HTTP/1.1"
    assert body == '{"name":"Zoë","n":1}'.encode()
    assert post_headers["content-type"] == "application/json"
    assert post_headers["content-length"] == str(len(body))
    assert (empty, empty_headers["content-length"]) == ("POST /base/empty HTTP/1.1", "0")
    assert raw == "GET /base/raw?page=2&q=%20a HTTP/1.1"


def test_service_client_refuses_to_smuggle_a_header(serve):
    server = echo_server(serve)
    with ServiceClient(server.url) as client:
        with pytest.raises(httpx.LocalProtocolError):
            client.request("GET", "/x", headers={"X-User-Id": "u\r\nX-Role: admin"})
        assert server.requests == []
        # In the target, CR and LF are escaped like any other byte: data, not a header.
        client.request("GET", "/x", params="a=1 HTTP/1.1\r\nX-Role: admin\r\n")
    [(line, headers, _)] = server.requests
    assert line == "GET /x?a=1%20HTTP/1.1%0D%0AX-Role:%20admin%0D%0A HTTP/1.1"
    assert "x-role" not in headers


def test_service_client_takes_only_plain_http_urls():
    with pytest.raises(ValueError, match="plain http"):
        ServiceClient("https://billing.example.com")


@pytest.mark.parametrize("target", [b"/a b", b"/a\r\nX: y", b"/a\0"])
def test_a_target_that_could_split_the_request_line_is_refused(target):
    with pytest.raises(httpx.LocalProtocolError):
        encode_head("GET", target, [])
