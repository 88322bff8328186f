"""The learner's hot paths on real MariaDB, through nginx → gateway → learning (which asks
courses and enrolments over the internal clients), on the data of ``bench/learning_seed.py``:

- reading a lesson, ``GET /api/lessons/<id>`` (the access check included);
- a test: ``POST /api/tests/<id>/attempts`` (timed), ``PUT /api/attempts/<id>/answers``
  with 20 answers (untimed), ``POST /api/attempts/<id>/submit`` (timed);
- ``GET /api/progress?per_page=50`` for learners enrolled in 50 courses.

Each client is its own keep-alive connection and a learner no other client is at the
same moment: client k of n takes the learners k, k + n, k + 2n … in turn, one a lesson
read or a test, so that a learner comes back only after seconds, as a real one would
(mostly after the learning service's 5 s access cache has let go of them). Every run is
bounded in requests and time and targets 127.0.0.1 only. Alongside the latencies each
run takes the CPU each process spent per request and MariaDB's statements per request.
"""

from __future__ import annotations

import http.client
import json
import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

from bench.learning_seed import HEAVY_COURSES, LEARNERS, Seeded, seed
from bench.loads import percentile, process_tree_cpu
from bench.stack import mint_tokens
from devtools.devservers import MariaDB
from devtools.launcher import Platform

# How many of the 20 answers a learner gets right: 80 %, above the 60 % to pass.
RIGHT_ANSWERS = 16
MAX_REQUESTS_PER_CLIENT = 20_000
# A test is three requests: its runs last this many times longer, for as many samples.
LONGER = {"test flows": 2}
PROCESSES = ("gateway", "learning", "enrolments", "courses", "nginx")


class Client:
    """One keep-alive connection; every answer that is not 2xx is counted by the caller."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def call(
        self, method: str, path: str, token: str, body: bytes | None = None
    ) -> tuple[int, bytes, float]:
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            return 0, b"", (time.perf_counter() - started) * 1000
        return response.status, data, (time.perf_counter() - started) * 1000


@dataclass
class Run:
    """One load run's samples (milliseconds, by what was timed) and failures."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    units: int = 0
    non_2xx: int = 0
    seconds: float = 0.0
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per unit, by process
    statements: float = 0.0  # MariaDB's, per unit
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, ms: float, status: int) -> bool:
        with self.lock:
            self.samples.setdefault(name, []).append(ms)
            self.non_2xx += not 200 <= status < 300
        return 200 <= status < 300

    def unit(self) -> None:
        with self.lock:
            self.units += 1


Worker = Callable[[Client, int, Run], None]


@dataclass
class Learners:
    seeded: Seeded
    tokens: list[str]  # by learner number
    clients: int

    def of_client(self, k: int) -> list[int]:
        return list(range(k, LEARNERS, self.clients))


def lesson_reads(learners: Learners, budget: Callable[[], bool]) -> Worker:
    def work(client: Client, k: int, run: Run) -> None:
        rng = random.Random(k)
        own = learners.of_client(k)
        index = rng.randrange(len(own))
        while budget():
            n = own[index % len(own)]
            index += 1
            course = learners.seeded.courses[rng.choice(learners.seeded.enrolled[n])]
            lesson = rng.choice(course.lesson_ids)
            status, _, ms = client.call("GET", f"/api/lessons/{lesson}", learners.tokens[n])
            run.add("lesson", ms, status)
            run.unit()

    return work


def test_flows(learners: Learners, budget: Callable[[], bool]) -> Worker:
    def work(client: Client, k: int, run: Run) -> None:
        rng = random.Random(1000 + k)
        own = learners.of_client(k)
        index = rng.randrange(len(own))
        while budget():
            n = own[index % len(own)]
            index += 1
            token = learners.tokens[n]
            course = learners.seeded.courses[rng.choice(learners.seeded.enrolled[n])]
            status, body, ms = client.call("POST", f"/api/tests/{course.test_id}/attempts", token)
            if not run.add("start", ms, status):
                continue
            attempt = json.loads(body)
            answers = [
                {
                    "question_id": q["id"],
                    "option_ids": [course.options[q["id"]][i >= RIGHT_ANSWERS]],
                }
                for i, q in enumerate(attempt["questions"])
            ]
            path = f"/api/attempts/{attempt['attempt_id']}"
            payload = json.dumps({"answers": answers}).encode()
            status, _, ms = client.call("PUT", f"{path}/answers", token, payload)
            if not run.add("answers", ms, status):
                continue
            status, _, ms = client.call("POST", f"{path}/submit", token)
            run.add("submit", ms, status)
            run.unit()

    return work


def progress_reads(learners: Learners, budget: Callable[[], bool]) -> Worker:
    heavy = learners.seeded.heavy

    def work(client: Client, k: int, run: Run) -> None:
        token = learners.tokens[heavy[k % len(heavy)]]
        while budget():
            status, _, ms = client.call("GET", "/api/progress?per_page=50", token)
            run.add("progress", ms, status)
            run.unit()

    return work


FACTORIES = {
    "lesson reads": lesson_reads,
    "test flows": test_flows,
    "progress reads": progress_reads,
}


class Meter:
    """The processes whose CPU a run counts, and MariaDB's count of statements received
    (over one connection of its own, so that each reading adds one statement)."""

    def __init__(self, pids: dict[str, int], mariadb_port: int) -> None:
        self.pids = pids
        self.connection = pymysql.connect(host="127.0.0.1", port=mariadb_port, user="root")

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far by process, this one (the load generator) included."""
        used = {name: process_tree_cpu(pid) for name, pid in self.pids.items()}
        return {**used, "bench client": time.process_time()}

    def statements(self) -> int:
        with self.connection.cursor() as cursor:
            cursor.execute("SHOW GLOBAL STATUS LIKE 'Questions'")
            row = cursor.fetchone()
        return int(row[1]) if row else 0


def run_load(name: str, learners: Learners, port: int, seconds: float, meter: Meter | None) -> Run:
    run = Run()
    deadline = time.monotonic() + seconds
    clients = [Client(port) for _ in range(learners.clients)]
    counts = [0] * len(clients)

    def worker(k: int) -> None:
        def budget() -> bool:
            counts[k] += 1
            return counts[k] <= MAX_REQUESTS_PER_CLIENT and time.monotonic() < deadline

        FACTORIES[name](learners, budget)(clients[k], k, run)

    cpu_before = meter.cpu() if meter else {}
    statements_before = meter.statements() if meter else 0
    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.seconds = time.monotonic() - started
    if meter:
        units = max(run.units, 1)
        after = meter.cpu()
        run.cpu_ms = {p: (after[p] - cpu_before[p]) * 1000 / units for p in after}
        run.cpu_ms["all"] = sum(run.cpu_ms.values())
        run.statements = (meter.statements() - statements_before - 1) / units
    for client in clients:
        client.connection.close()
    return run


@dataclass
class LearningFigures:
    runs: dict[str, list[Run]]  # one per round
    unloaded: dict[str, Run]  # one client, once
    failures: dict[str, int]
    seed_rows: int
    seed_seconds: float

    def ms(self, name: str, timed: str) -> tuple[float, float]:
        """Median over the rounds of the p50 and of the p99 of one timed request."""
        samples = [run.samples.get(timed, []) for run in self.runs[name]]
        return (
            statistics.median(percentile(s, 0.5) for s in samples),
            statistics.median(percentile(s, 0.99) for s in samples),
        )

    def unloaded_ms(self, name: str, timed: str) -> tuple[float, float]:
        samples = self.unloaded[name].samples.get(timed, [])
        return percentile(samples, 0.5), percentile(samples, 0.99)

    def rate(self, name: str) -> float:
        return statistics.median(run.units / run.seconds for run in self.runs[name])

    def cpu(self, name: str, process: str) -> float:
        return statistics.median(run.cpu_ms[process] for run in self.runs[name])

    def statements(self, name: str) -> float:
        return statistics.median(run.statements for run in self.runs[name])


def measure_learning(
    platform: Platform, mariadb: MariaDB, workdir: Path, seconds: int, clients: int, rounds: int
) -> LearningFigures:
    config = platform.config
    seeded = seed(
        config.courses_database_url, config.enrolments_database_url, config.learning_database_url
    )
    count = max(seeded.heavy) + 1
    tokens = mint_tokens(platform, workdir / "learners.txt", count).read_text().split("\n")
    learners = Learners(seeded, tokens, clients)
    port = config.ports.http
    pids = {name: platform.child(name).process.pid for name in PROCESSES}
    pids["MariaDB"] = int((mariadb.workdir / "mysqld.pid").read_text())
    meter = Meter(pids, mariadb.port)
    _check_progress(learners, port)
    failures = {"learning warm-up": 0}
    for name in FACTORIES:
        failures["learning warm-up"] += run_load(name, learners, port, 2, None).non_2xx
    runs: dict[str, list[Run]] = {name: [] for name in FACTORIES}
    for _ in range(rounds):
        for name in FACTORIES:
            length = seconds * LONGER.get(name, 1)
            runs[name].append(run_load(name, learners, port, length, meter))
    meter.connection.close()
    failures.update({name: sum(run.non_2xx for run in done) for name, done in runs.items()})
    # The same requests one at a time: what each costs before any queueing.
    alone = Learners(seeded, tokens, 1)
    unloaded = {name: run_load(name, alone, port, seconds, None) for name in FACTORIES}
    failures["learning, one client"] = sum(run.non_2xx for run in unloaded.values())
    return LearningFigures(runs, unloaded, failures, seeded.rows, seeded.seconds)


def _check_progress(learners: Learners, port: int) -> None:
    """The progress read answers what was seeded: a page of 50 courses."""
    heavy = learners.seeded.heavy[0]
    status, body, _ = Client(port).call("GET", "/api/progress?per_page=50", learners.tokens[heavy])
    courses = json.loads(body).get("courses", []) if status == 200 else []
    if len(courses) != HEAVY_COURSES:
        raise RuntimeError(f"progress read: {status}, {len(courses)} courses, not {HEAVY_COURSES}")
