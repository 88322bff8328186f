"""A lean HTTP/1.1 transport for httpx, for calls between the platform's own services.

httpx's default transport (httpcore + h11) costs about 0.35 ms of CPU per call on
a small VM, most of it in h11's pure-Python state machine, and the gateway pays it
on every forwarded request. Our services answer one request at a time per
connection with a Content-Length (or chunked) body over plain HTTP on a private
network; this transport speaks exactly that over persistent sockets, at about a
quarter of the cost. Anything else ends as an :class:`httpx.RemoteProtocolError`
and the connection is dropped, never reused.

Timeouts are the kernel's (``SO_RCVTIMEO``/``SO_SNDTIMEO`` on a blocking socket):
Python's own socket timeouts poll before every read and write, one more system
call each. Calls that leave the platform (Fakturownia, over TLS) keep httpx's
default transport.
"""

from __future__ import annotations

import errno
import re
import socket
import struct
from collections import deque
from collections.abc import Iterable, Mapping

import httpx

MAX_HEAD_BYTES = 64 * 1024
_READ_SIZE = 64 * 1024
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE"})
# A CR, LF or NUL inside a header would let one request smuggle another.
_UNSAFE_HEADER = re.compile(rb"[\r\n\0]")
_UNSAFE_TARGET = re.compile(rb"[\s\0]")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_STALE_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})

Timeouts = tuple[float | None, float | None]
Headers = list[tuple[bytes, bytes]]


class _ServerClosed(Exception):
    """The server closed the connection before sending a byte of the response."""


def _timeval(seconds: float | None) -> bytes:
    if seconds is None:
        return struct.pack("ll", 0, 0)  # zero means "no timeout" to the kernel
    whole = int(seconds)
    return struct.pack("ll", whole, max(1, int((seconds - whole) * 1_000_000)))


class _Connection:
    __slots__ = ("sock", "timeouts")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.timeouts: Timeouts | None = None

    def apply(self, timeouts: Timeouts) -> None:
        """Set the read/write timeouts, with a system call only when they change."""
        if timeouts != self.timeouts:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(timeouts[0]))
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(timeouts[1]))
            self.timeouts = timeouts

    def still_open(self) -> bool:
        """An idle connection has nothing to read: data or EOF means the server is done
        with it (closed after its keep-alive timeout, or restarted)."""
        try:
            self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False

    def close(self) -> None:
        self.sock.close()


class KeepAliveTransport(httpx.BaseTransport):
    """Plain-HTTP/1.1 transport keeping up to ``max_idle`` connections per host.

    Thread-safe: a connection is used by one request at a time, idle ones wait in a
    deque (whose append/pop are atomic). How many are open at once is bounded by
    the callers' threads."""

    def __init__(self, max_idle: int = 64) -> None:
        self._max_idle = max_idle
        self._idle: dict[tuple[str, int], deque[_Connection]] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"{url.scheme!r} is not served by this transport")
        status, headers, body = self.exchange(
            (url.host, url.port or 80),
            request.method,
            _encode(request),
            request.extensions.get("timeout", {}),
        )
        return httpx.Response(
            status,
            headers=headers,
            stream=httpx.ByteStream(body),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    def exchange(
        self,
        address: tuple[str, int],
        method: str,
        payload: bytes,
        timeout: Mapping[str, float | None],
    ) -> tuple[int, Headers, bytes]:
        """Send ``payload`` (a whole encoded request; see :func:`encode_head`) and read
        the answer: status, headers, body. Failures are httpx transport errors."""
        connection, reused = self._checkout(address, timeout.get("connect"))
        try:
            return self._exchange(method, address, connection, payload, timeout)
        except _ServerClosed:
            if not reused or method.encode() not in _IDEMPOTENT:
                raise httpx.RemoteProtocolError("Server disconnected without a response") from None
        # The server dropped a kept-alive connection as we reused it, without a byte of
        # answer (usually its keep-alive timeout): an idempotent request may go again.
        connection, _ = self._checkout(address, timeout.get("connect"), fresh=True)
        try:
            return self._exchange(method, address, connection, payload, timeout)
        except _ServerClosed:
            raise httpx.RemoteProtocolError("Server disconnected without a response") from None

    def _exchange(
        self,
        method: str,
        address: tuple[str, int],
        connection: _Connection,
        payload: bytes,
        timeout: Mapping[str, float | None],
    ) -> tuple[int, Headers, bytes]:
        reusable = False
        try:
            connection.apply((timeout.get("read"), timeout.get("write")))
            _send(connection.sock, payload)
            status, headers, body, reusable = _receive(connection.sock, method)
        finally:
            if reusable:
                self._checkin(address, connection)
            else:
                connection.close()
        return status, headers, body

    def _checkout(
        self, address: tuple[str, int], connect_timeout: float | None, fresh: bool = False
    ) -> tuple[_Connection, bool]:
        idle = self._idle.get(address)
        while idle and not fresh:
            try:
                connection = idle.pop()
            except IndexError:
                break
            if connection.still_open():
                return connection, True
            connection.close()
        try:
            sock = socket.create_connection(address, timeout=connect_timeout)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(sock), False

    def _checkin(self, address: tuple[str, int], connection: _Connection) -> None:
        idle = self._idle.get(address)
        if idle is None:
            idle = self._idle.setdefault(address, deque())
        if len(idle) < self._max_idle:
            idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        for idle in list(self._idle.values()):
            while idle:
                try:
                    idle.pop().close()
                except IndexError:
                    break


def encode_head(method: str, target: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Request line and headers, ending with the empty line; refuses what could smuggle
    a second request (CR, LF or NUL in a header, whitespace in the target)."""
    if _UNSAFE_TARGET.search(target):
        raise httpx.LocalProtocolError("The request target cannot contain whitespace or NUL")
    lines = [b"%s %s HTTP/1.1" % (method.encode(), target)]
    for name, value in headers:
        if _UNSAFE_HEADER.search(name) or _UNSAFE_HEADER.search(value):
            raise httpx.LocalProtocolError("Header names and values cannot contain CR, LF or NUL")
        lines.append(b"%s: %s" % (name, value))
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


def _encode(request: httpx.Request) -> bytes:
    """Head and body as one buffer: one ``send`` per request."""
    body = request.read()
    return encode_head(request.method, request.url.raw_path, request.headers.raw) + body


def _send(sock: socket.socket, payload: bytes) -> None:
    try:
        sock.sendall(payload)
    except BlockingIOError as exc:
        raise httpx.WriteTimeout("Timed out sending the request") from exc
    except OSError as exc:
        if exc.errno in _STALE_ERRNOS:
            raise _ServerClosed() from exc
        raise httpx.WriteError(str(exc)) from exc


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(_READ_SIZE)
    except BlockingIOError as exc:
        raise httpx.ReadTimeout("Timed out waiting for the response") from exc
    except OSError as exc:
        raise httpx.ReadError(str(exc)) from exc


def _receive(sock: socket.socket, method: str) -> tuple[int, Headers, bytes, bool]:
    """Status, headers, body, and whether the connection may carry another request."""
    buffer = b""
    while True:
        version, status, headers, buffer = _read_head(sock, buffer)
        if not 100 <= status < 200:
            break
    fields: dict[bytes, bytes] = {}
    for name, value in headers:
        if fields.setdefault(name.lower(), value) != value and name.lower() == b"content-length":
            raise httpx.RemoteProtocolError("Conflicting Content-Length headers")
    keep_alive = version == b"HTTP/1.1" and b"close" not in fields.get(b"connection", b"").lower()
    if method == "HEAD" or status in (204, 304):
        return status, headers, b"", keep_alive and not buffer
    encoding = fields.get(b"transfer-encoding")
    if encoding is not None:
        if encoding.strip().lower() != b"chunked":
            raise httpx.RemoteProtocolError("Unsupported Transfer-Encoding")
        body, buffer = _read_chunked(sock, buffer)
        return status, headers, body, keep_alive and not buffer
    length = fields.get(b"content-length")
    if length is None:
        return status, headers, _read_to_end(sock, buffer), False
    if not length.isdigit():
        raise httpx.RemoteProtocolError("Malformed Content-Length")
    body = _read_exactly(sock, buffer, int(length))
    return status, headers, body[: int(length)], keep_alive and len(body) == int(length)


def _read_head(sock: socket.socket, buffer: bytes) -> tuple[bytes, int, Headers, bytes]:
    """Version, status, headers, and the bytes read past the head."""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_HEAD_BYTES:
            raise httpx.RemoteProtocolError("Response head too large")
        chunk = _recv(sock)
        if not chunk:
            if buffer:
                raise httpx.RemoteProtocolError("Server disconnected mid-response")
            raise _ServerClosed()
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    if len(head) > MAX_HEAD_BYTES:
        raise httpx.RemoteProtocolError("Response head too large")
    lines = head.split(b"\r\n")
    version, _, remainder = lines[0].partition(b" ")
    code = remainder[:3]
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise httpx.RemoteProtocolError("Malformed status line")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise httpx.RemoteProtocolError("Malformed header line")
        headers.append((name, value.strip(b" \t")))
    return version, int(code), headers, rest


def _read_exactly(sock: socket.socket, buffer: bytes, length: int) -> bytes:
    parts = [buffer]
    have = len(buffer)
    while have < length:
        chunk = _recv(sock)
        if not chunk:
            raise httpx.RemoteProtocolError("Server disconnected mid-body")
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)


def _read_to_end(sock: socket.socket, buffer: bytes) -> bytes:
    parts = [buffer]
    while chunk := _recv(sock):
        parts.append(chunk)
    return b"".join(parts)


def _read_line(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes]:
    while b"\r\n" not in buffer:
        if len(buffer) > MAX_HEAD_BYTES:
            raise httpx.RemoteProtocolError("Chunk header too large")
        chunk = _recv(sock)
        if not chunk:
            raise httpx.RemoteProtocolError("Server disconnected mid-body")
        buffer += chunk
    line, _, rest = buffer.partition(b"\r\n")
    return line, rest


def _read_chunked(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes]:
    """The decoded body and whatever followed it (nothing, from a well-behaved server)."""
    parts = []
    while True:
        line, buffer = _read_line(sock, buffer)
        size_text = line.split(b";", 1)[0].strip(b" \t")
        if not _HEX.fullmatch(size_text):
            raise httpx.RemoteProtocolError("Malformed chunk size")
        size = int(size_text, 16)
        if size == 0:
            break
        data = _read_exactly(sock, buffer, size + 2)
        if data[size : size + 2] != b"\r\n":
            raise httpx.RemoteProtocolError("Malformed chunk")
        parts.append(data[:size])
        buffer = data[size + 2 :]
    while True:  # trailers, up to the empty line
        line, buffer = _read_line(sock, buffer)
        if not line:
            return b"".join(parts), buffer
