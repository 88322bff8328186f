"""`make run` as a newcomer gets it: scripts/run_local.py on its embedded defaults
(SQLite, the in-process MongoDB stand-in, the in-process gateway store), driven
through the URL its banner prints, then stopped with Ctrl-C."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from devtools.devservers import port_open

from .conftest import Mailbox
from .test_journeys import (
    access_token,
    bearer,
    newest_enrolment_once_invoiced,
    register_and_activate,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PORTS = 7
# Anything pointing at a real server would take the run off its embedded defaults.
OVERRIDES = ("REDIS_URL", "MONGO_URL", "COURSES_DATABASE_URL", "ENROLMENTS_DATABASE_URL")


def free_port_range(size: int) -> int:
    """A base port with ``size`` free ports after it (bounded search)."""
    rng = random.Random()  # noqa: S311 - picking ports, not secrets
    for _ in range(50):
        base = rng.randrange(20_000, 60_000)
        if all(_bindable(base + offset) for offset in range(size)):
            return base
    raise RuntimeError(f"no {size} consecutive free ports found")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class LocalRun:
    process: subprocess.Popen[str]
    var: Path
    ports: range
    output: list[str] = field(default_factory=list)

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.output):
                match = re.search(pattern, line)
                if match:
                    return match
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} in the output:\n{''.join(self.output)}")


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    base = free_port_range(PORTS)
    var = tmp_path_factory.mktemp("var")
    env = {k: v for k, v in os.environ.items() if k not in OVERRIDES}
    env.update(PORT=str(base), COURSE_PLATFORM_VAR=str(var), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "run_local.py")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    run = LocalRun(process, var, range(base, base + PORTS))
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: run.output.extend(process.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    yield run
    if process.poll() is None:
        process.kill()
        process.wait(timeout=30)


def test_make_run_serves_a_purchase_on_embedded_defaults_and_stops_on_ctrl_c(
    local_run: LocalRun,
):
    base_url = local_run.wait_for_line(r"API base URL\s+(http://\S+?)/api/", timeout=120).group(1)
    banner = "".join(local_run.output)
    assert "in-process store, single gateway process" in banner
    assert f"{local_run.var / 'mail'}/*.eml" in banner
    secrets_file = local_run.var / "dev-secrets.json"
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
    admin = json.loads(secrets_file.read_text())
    mailbox = Mailbox(local_run.var / "mail")

    with httpx.Client(base_url=base_url, timeout=15) as api:
        assert api.get("/api/docs").status_code == 200
        staff = bearer(access_token(api, admin["ADMIN_EMAIL"], admin["ADMIN_PASSWORD"]))
        course = api.post(
            "/api/course",
            headers=staff,
            json={
                "name": f"Local {uuid.uuid4().hex[:8]}",
                "price": "49.90",
                "start_date": "2031-01-01T09:00:00Z",
                "end_date": "2031-02-01T09:00:00Z",
            },
        )
        assert course.status_code == 201, course.text
        user = register_and_activate(api, mailbox)
        token = bearer(access_token(api, user["email"], user["password"]))
        enrolment = api.post(
            "/api/enrolment", headers=token, json={"course_id": course.json()["id"]}
        )
        assert enrolment.status_code == 201, enrolment.text
        paid = api.patch(
            "/api/enrolment/paid", headers=token, json={"enrolment_id": enrolment.json()["id"]}
        )
        assert paid.status_code == 200, paid.text
        mine = newest_enrolment_once_invoiced(api, token)
        assert mine["price"] == "49.90"
    assert (local_run.var / "courses.db").exists()
    assert (local_run.var / "enrolments.db").exists()

    local_run.process.send_signal(signal.SIGINT)
    assert local_run.process.wait(timeout=60) == 0
    local_run.wait_for_line("stopped every process", timeout=5)
    assert not [port for port in local_run.ports if port_open(port)]
