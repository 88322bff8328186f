"""`make bench`: the platform's speed, measured side by side in one run.

Starts the platform the way `make run` does, but on a real MariaDB and Redis
(throwaway, on free ports), then prints one table:

- authenticated GET /api/course/<id> through nginx → gateway → courses vs GET
  straight to the courses service: requests/s, p50, p99, the ratio, and the
  gateway's CPU time per forwarded request;
- the unloaded latency the gateway hop adds (p50, p99);
- PATCH /api/enrolment/paid p50/p99 while the Fakturownia stand-in answers after 1 s;
- logins per second and login p50.

Every load loop is bounded in requests and time and targets 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from common.devservers import MariaDB, Redis, free_port
from common.http import INTERNAL_KEY_HEADER
from common.identity import USER_ID_HEADER, USER_ROLE_HEADER
from common.launcher import Platform, PlatformConfig, Ports

ADMIN = {
    "email": "bench@bench.example.org",
    "username": "bench-admin",
    "password": "bench password that is long enough",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Load:
    requests: int
    seconds: float
    non_2xx: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, headers: dict[str, str], seconds: int, connections: int) -> Load:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        return float(match.group(1)) * _WRK_UNITS[match.group(2)]

    total = int(re.search(r"(\d+) requests in ([\d.]+)(s|m)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    bad = int(errors.group(1)) if errors else 0
    if socket_errors:
        bad += sum(int(x) for x in socket_errors.groups())
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Load(total, total / rps if rps else seconds, bad, latency("50%"), latency("99%"))


def python_load(url: str, headers: dict[str, str], seconds: int, connections: int) -> Load:
    """Fallback when wrk is not installed: threads, each with one keep-alive client."""
    latencies: list[float] = []
    bad = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        with httpx.Client(headers=headers, timeout=5) as client:
            for _ in range(100_000):
                if time.monotonic() >= deadline:
                    return
                started = time.perf_counter()
                status = client.get(url).status_code
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    bad[0] += status >= 300

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Load(
        len(latencies),
        time.monotonic() - started,
        bad[0],
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
    )


def sequential(call: Callable[[], httpx.Response], count: int) -> tuple[list[float], int]:
    samples, bad = [], 0
    for _ in range(count):
        started = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - started) * 1000)
        bad += response.status_code >= 300
    return samples, bad


def process_tree_cpu(pid: int) -> float:
    """CPU seconds used so far by a process and its children (gunicorn master + workers)."""
    total = 0.0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        pids.extend(int(child) for child in children)
    return total


def start(workdir: Path) -> tuple[Platform, MariaDB, Redis]:
    mariadb = MariaDB(workdir / "mariadb").start()
    try:
        redis = Redis(workdir / "redis").start()
    except BaseException:
        mariadb.stop()
        raise
    config = PlatformConfig(
        ports=Ports(*(free_port() for _ in range(7))),
        run_dir=workdir / "platform",
        internal_api_key=secrets.token_urlsafe(40),
        jwt_secret_key=secrets.token_urlsafe(40),
        totp_encryption_key=secrets.token_urlsafe(40),
        fakturownia_api_token=secrets.token_urlsafe(20),
        courses_database_url=mariadb.create_database("bench_courses"),
        enrolments_database_url=mariadb.create_database("bench_enrolments"),
        redis_url=redis.url,
        admin=ADMIN,
        environment="development",
        extra_env={
            "fakturownia-sandbox": {"SANDBOX_LATENCY": "1.0"},
            "gateway": {"AUTH_RATE_LIMIT": "100000/minute"},
        },
    )
    try:
        return Platform(config).start(require_nginx=True), mariadb, redis
    except BaseException:
        redis.stop()
        mariadb.stop()
        raise


def row(name: str, value: str, target: str = "") -> str:
    return f"| {name:<52} | {value:>16} | {target:<16} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    load = wrk if shutil.which("wrk") else python_load
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    platform, mariadb, redis = start(workdir)
    ports = platform.config.ports
    try:
        with httpx.Client(base_url=platform.url, timeout=30) as api:
            token = login(api)
            auth = {"Authorization": f"Bearer {token}"}
            course_id = create_course(api, auth)
            via_gateway = f"{platform.url}/api/course/{course_id}"
            direct = f"http://127.0.0.1:{ports.courses}/courses/{course_id}"
            direct_headers = {
                INTERNAL_KEY_HEADER: platform.config.internal_api_key,
                USER_ID_HEADER: "bench",
                USER_ROLE_HEADER: "admin",
            }
            gateway_pid = platform.child("gateway").process.pid

            load(direct, direct_headers, 2, args.connections)  # warm-up
            load(via_gateway, auth, 2, args.connections)
            direct_load = load(direct, direct_headers, args.seconds, args.connections)
            cpu_before = process_tree_cpu(gateway_pid)
            gateway_load = load(via_gateway, auth, args.seconds, args.connections)
            cpu_ms = (
                (process_tree_cpu(gateway_pid) - cpu_before) * 1000 / max(gateway_load.requests, 1)
            )

            with httpx.Client(timeout=10) as raw:
                hop_direct, bad1 = sequential(lambda: raw.get(direct, headers=direct_headers), 400)
                gw = f"http://127.0.0.1:{ports.gateway}/api/course/{course_id}"
                hop_gateway, bad2 = sequential(lambda: raw.get(gw, headers=auth), 400)

            paid, bad3 = mark_paid_latencies(api, auth, count=40)
            logins, login_seconds, bad4 = login_rate(api, count=60)
    finally:
        platform.stop()
        redis.stop()
        mariadb.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    ratio = gateway_load.rps / direct_load.rps if direct_load.rps else 0
    non_2xx = direct_load.non_2xx + gateway_load.non_2xx + bad1 + bad2 + bad3 + bad4
    lines = [
        row("measurement", "value", "target"),
        row("-" * 52, "-" * 16, "-" * 16),
        row("direct courses GET: requests/s", f"{direct_load.rps:.0f}"),
        row(
            "direct courses GET: p50 / p99 ms",
            f"{direct_load.p50_ms:.2f} / {direct_load.p99_ms:.2f}",
        ),
        row("nginx→gateway→courses GET: requests/s", f"{gateway_load.rps:.0f}"),
        row(
            "nginx→gateway→courses GET: p50 / p99 ms",
            f"{gateway_load.p50_ms:.2f} / {gateway_load.p99_ms:.2f}",
        ),
        row("gateway throughput / direct", f"{ratio:.1%}", ">= 28%"),
        row("gateway CPU per forwarded request (ms)", f"{cpu_ms:.2f}", "<= 0.8"),
        row(
            "unloaded added latency of the gateway hop p50 (ms)",
            f"{percentile(hop_gateway, 0.5) - percentile(hop_direct, 0.5):.2f}",
            "<= 1.0",
        ),
        row(
            "unloaded added latency of the gateway hop p99 (ms)",
            f"{percentile(hop_gateway, 0.99) - percentile(hop_direct, 0.99):.2f}",
        ),
        row("PATCH /api/enrolment/paid, 1 s Fakturownia: p50 ms", f"{percentile(paid, 0.5):.1f}"),
        row(
            "PATCH /api/enrolment/paid, 1 s Fakturownia: p99 ms",
            f"{percentile(paid, 0.99):.1f}",
            "<= 50",
        ),
        row("logins per second (sequential, argon2id)", f"{len(logins) / login_seconds:.1f}"),
        row("login p50 (ms)", f"{percentile(logins, 0.5):.1f}"),
        row("non-2xx responses during the run", str(non_2xx), "0"),
    ]
    print(
        f"load generator: {load.__name__}, {args.connections} connections, {args.seconds}s per run"
    )
    print("\n".join(lines))


def login(api: httpx.Client) -> str:
    response = api.post(
        "/api/auth/login", json={"identifier": ADMIN["email"], "password": ADMIN["password"]}
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def create_course(
    api: httpx.Client,
    auth: dict[str, str],
    name: str = "Bench Course",
    end: str = "2031-02-01T00:00:00Z",
) -> int:
    response = api.post(
        "/api/course",
        headers=auth,
        json={
            "name": name,
            "price": "199.99",
            "max_participants": None,
            "start_date": "2031-01-01T00:00:00Z",
            "end_date": end,
        },
    )
    response.raise_for_status()
    return int(response.json()["id"])


def mark_paid_latencies(
    api: httpx.Client, auth: dict[str, str], count: int
) -> tuple[list[float], int]:
    samples, bad = [], 0
    for index in range(count):
        course_id = create_course(api, auth, name=f"Paid bench {index}")
        enrolment = api.post("/api/enrolment", headers=auth, json={"course_id": course_id})
        enrolment.raise_for_status()
        started = time.perf_counter()
        response = api.patch(
            "/api/enrolment/paid", headers=auth, json={"enrolment_id": enrolment.json()["id"]}
        )
        samples.append((time.perf_counter() - started) * 1000)
        bad += response.status_code >= 300
    return samples, bad


def login_rate(api: httpx.Client, count: int) -> tuple[list[float], float, int]:
    started = time.perf_counter()
    samples, bad = sequential(
        lambda: api.post(
            "/api/auth/login", json={"identifier": ADMIN["email"], "password": ADMIN["password"]}
        ),
        count,
    )
    return samples, time.perf_counter() - started, bad


if __name__ == "__main__":
    main()
