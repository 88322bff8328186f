"""A real SMTP server that keeps every message as an ``.eml`` file.

Local runs and tests deliver mail here so a person (or a test) can read the
activation codes and reset links. Run it alone with
``python -m devtools.smtp_sink --port 8025 --dir var/mail``.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import logging
import threading
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

log = logging.getLogger(__name__)


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.sink.refusing:
            return "451 Temporarily refusing mail"
        self.sink.store(envelope.content, list(envelope.rcpt_tos))
        return "250 Message accepted"


class SmtpSink:
    def __init__(self, directory: Path, port: int = 0) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.refusing = False
        self._lock = threading.Lock()
        self._messages: list[EmailMessage] = []
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=port or 0)

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def start(self) -> SmtpSink:
        if self._controller.port == 0:
            from devtools.devservers import free_port

            self._controller.port = free_port()
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def store(self, raw: bytes, recipients: list[str]) -> None:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
        (self.directory / name).write_bytes(raw)
        with self._lock:
            self._messages.append(message)
        log.info(
            "mail_captured",
            extra={"to": recipients, "subject": message["Subject"], "file": name},
        )

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages
            time.sleep(0.02)
        raise AssertionError(f"expected {count} mail(s), got {len(self.messages)}")


def message_text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain", "html"))
    return body.get_content() if body is not None else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--dir", type=Path, default=Path("var/mail"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sink = SmtpSink(args.dir, args.port).start()
    print(f"SMTP sink on 127.0.0.1:{sink.port}, writing to {args.dir}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        sink.stop()


if __name__ == "__main__":
    main()
