"""One benchmark run: every load in rounds, the unloaded hops, mark-paid and logins."""

from __future__ import annotations

import functools
import shutil
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.loads import Load, cpu_per_request, interleaved, python_load, sequential, wrk
from bench.stack import ADMIN, mint_tokens, start_naive_gateway, start_urllib3_gateway
from common.http import INTERNAL_KEY_HEADER
from common.identity import USER_ID_HEADER, USER_ROLE_HEADER
from devtools.launcher import Platform

# More than one load run sends requests, so no token is seen twice within the copy's
# 2 s: every token check misses it and goes to Redis.
MANY_USERS = 10_000


@dataclass
class Figures:
    loads: dict[str, list[Load]]  # one per round
    cpu_ms: dict[str, list[float]]  # the gateway's CPU per request, one per round
    hop_direct: list[float]
    hop_gateway: list[float]
    hop_naive: list[float]
    paid: list[float]
    logins: list[float]
    login_seconds: float
    failures: dict[str, int]

    @property
    def non_2xx(self) -> int:
        return sum(self.failures.values())

    def median(self, name: str, figure: Callable[[Load], float]) -> float:
        """The median over the rounds of one figure of one load run."""
        return statistics.median(figure(load) for load in self.loads[name])

    def ratio(self, name: str) -> float:
        """Median over the rounds of this run's requests/s against the direct run's."""
        pairs = zip(self.loads[name], self.loads["direct"], strict=True)
        return statistics.median(load.rps / direct.rps for load, direct in pairs)

    def cpu_ratio(self, name: str, base: str) -> float:
        """Median over the rounds of this run's CPU per request against ``base``'s."""
        pairs = zip(self.cpu_ms[name], self.cpu_ms[base], strict=True)
        return statistics.median(cpu / base_cpu for cpu, base_cpu in pairs)


def measure(
    platform: Platform, workdir: Path, seconds: int, connections: int, rounds: int
) -> Figures:
    load = wrk if shutil.which("wrk") else python_load
    ports = platform.config.ports
    with httpx.Client(base_url=platform.url, timeout=30) as api, ExitStack() as extra:
        token = login(api)
        auth = {"Authorization": f"Bearer {token}"}
        course_id = create_course(api, auth)
        path = f"/api/course/{course_id}"
        direct = f"http://127.0.0.1:{ports.courses}/courses/{course_id}"
        gateway = f"http://127.0.0.1:{ports.gateway}{path}"
        direct_headers = {
            INTERNAL_KEY_HEADER: platform.config.internal_api_key,
            USER_ID_HEADER: "bench",
            USER_ROLE_HEADER: "admin",
        }
        gateway_pid = platform.child("gateway").process.pid
        naive_process, naive_port = start_naive_gateway(platform, workdir)
        extra.callback(naive_process.stop)
        naive = f"http://127.0.0.1:{naive_port}{path}"
        urllib3_process, urllib3_port = start_urllib3_gateway(platform, workdir)
        extra.callback(urllib3_process.stop)
        urllib3_gateway = f"http://127.0.0.1:{urllib3_port}{path}"
        floor_url = f"http://127.0.0.1:{ports.gateway}/health/live"
        many_users = mint_tokens(platform, workdir / "tokens.txt", MANY_USERS)
        runs: dict[str, tuple[int, str, dict[str, str], Path | None]] = {
            "direct": (platform.child("courses").process.pid, direct, direct_headers, None),
            "via nginx": (gateway_pid, platform.url + path, auth, None),
            "many users": (gateway_pid, platform.url + path, {}, many_users),
            "our gateway": (gateway_pid, gateway, auth, None),
            # Next to "our gateway": the same GET, the transport the only difference.
            "urllib3 gateway": (urllib3_process.process.pid, urllib3_gateway, auth, None),
            "floor": (gateway_pid, floor_url, {}, None),
            "naive gateway": (naive_process.process.pid, naive, auth, None),
        }
        loads: dict[str, list[Load]] = {name: [] for name in runs}
        cpus: dict[str, list[float]] = {name: [] for name in runs}
        for _, url, headers, tokens in runs.values():
            load(url, headers, 2, connections, tokens)  # warm-up
        # Rounds, each running every load once: a slow spell of the machine hits
        # all of them alike instead of one, and the medians drop it.
        for _ in range(rounds):
            for name, (pid, url, headers, tokens) in runs.items():
                result, cpu = cpu_per_request(
                    pid, functools.partial(load, url, headers, seconds, connections, tokens)
                )
                loads[name].append(result)
                cpus[name].append(cpu)
        with httpx.Client(timeout=10) as raw:
            (hop_direct, hop_gateway, hop_naive), bad_hops = interleaved(
                [
                    lambda: raw.get(direct, headers=direct_headers),
                    lambda: raw.get(gateway, headers=auth),
                    lambda: raw.get(naive, headers=auth),
                ],
                400,
            )
        extra.close()  # the extra gateways stop before the remaining measurements
        paid, bad_paid = mark_paid_latencies(api, auth, count=40)
        logins, login_seconds, bad_logins = login_rate(api, count=60)
    failures = {name: sum(x.non_2xx for x in results) for name, results in loads.items()}
    failures.update({"unloaded hops": bad_hops, "mark paid": bad_paid, "logins": bad_logins})
    return Figures(
        loads,
        cpus,
        hop_direct,
        hop_gateway,
        hop_naive,
        paid,
        logins,
        login_seconds,
        failures,
    )


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
