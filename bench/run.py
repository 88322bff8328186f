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
import functools
import itertools
import os
import re
import secrets
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from common.devservers import ManagedProcess, MariaDB, Redis, free_port, port_open, wait_until
from common.http import INTERNAL_KEY_HEADER
from common.identity import USER_ID_HEADER, USER_ROLE_HEADER
from common.launcher import Platform, PlatformConfig, Ports, Service, gunicorn_argv

ADMIN = {
    "email": "bench@bench.example.org",
    "username": "bench-admin",
    "password": "bench password that is long enough",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")
# More than one load run sends requests, so no token is seen twice within the copy's
# 2 s: every token check misses it and goes to Redis.
MANY_USERS = 10_000


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


# Each wrk thread walks the token list from its own starting point, one token a request.
_ROTATING_TOKENS_LUA = """
local tokens = {}
for line in io.lines("%s") do tokens[#tokens + 1] = line end
local made = 0
function setup(thread)
  thread:set("offset", made * math.floor(#tokens / 2))
  made = made + 1
end
function request()
  offset = offset + 1
  local token = tokens[(offset %% #tokens) + 1]
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. token})
end
"""


def wrk(
    url: str,
    headers: dict[str, str],
    seconds: int,
    connections: int,
    tokens: Path | None = None,
) -> Load:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    if tokens is not None:
        script = tokens.with_suffix(".lua")
        script.write_text(_ROTATING_TOKENS_LUA % tokens)
        argv += ["-s", str(script)]
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


def python_load(
    url: str,
    headers: dict[str, str],
    seconds: int,
    connections: int,
    tokens: Path | None = None,
) -> Load:
    """Fallback when wrk is not installed: threads, each with one keep-alive client."""
    latencies: list[float] = []
    bad = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    rotation = itertools.cycle(tokens.read_text().split()) if tokens else None

    def worker() -> None:
        with httpx.Client(headers=headers, timeout=5) as client:
            for _ in range(100_000):
                if time.monotonic() >= deadline:
                    return
                extra = {}
                if rotation is not None:
                    with lock:
                        extra = {"Authorization": f"Bearer {next(rotation)}"}
                started = time.perf_counter()
                status = client.get(url, headers=extra).status_code
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


def interleaved(
    calls: list[Callable[[], httpx.Response]], count: int
) -> tuple[list[list[float]], int]:
    """Latencies of each call, taken in turn so that all see the same moments."""
    samples: list[list[float]] = [[] for _ in calls]
    bad = 0
    for _ in range(count):
        for index, call in enumerate(calls):
            started = time.perf_counter()
            response = call()
            samples[index].append((time.perf_counter() - started) * 1000)
            bad += response.status_code >= 300
    return samples, bad


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


def mint_tokens(platform: Platform, path: Path, count: int) -> Path:
    """``count`` access tokens, one per user, each with a live session, as login
    would issue them (written straight to the gateway's Redis: logging in ``count``
    users through argon2 would take minutes)."""
    from gateway import create_app
    from gateway.settings import GatewaySettings
    from gateway.testing import mint_access_token

    config = platform.config
    app = create_app(
        GatewaySettings(
            environment="development",
            jwt_secret_key=config.jwt_secret_key,
            redis_url=config.redis_url,
            internal_api_key=config.internal_api_key,
        )
    )
    path.write_text("\n".join(mint_access_token(app, f"bench-user-{n}") for n in range(count)))
    return path


def start_naive_gateway(platform: Platform, workdir: Path) -> tuple[ManagedProcess, int]:
    """The calibration gateway (bench/naive_gateway.py) under the real one's gunicorn settings."""
    port = free_port()
    config = platform.config
    service = Service(
        "naive-gateway",
        "naive_gateway",
        port,
        env={},
        workers=platform.service("gateway").workers,
    )
    env = {
        **os.environ,
        "JWT_SECRET_KEY": config.jwt_secret_key,
        "REDIS_URL": config.redis_url,
        "COURSES_URL": f"http://127.0.0.1:{config.ports.courses}",
        "INTERNAL_API_KEY": config.internal_api_key,
    }
    argv = [*gunicorn_argv(service), "--pythonpath", str(Path(__file__).parent)]
    child = ManagedProcess("naive-gateway", argv, workdir / "naive-gateway.log", env=env)

    def ready() -> bool:
        child.ensure_alive()
        return port_open(port)

    wait_until(ready, timeout=60, what="naive gateway")
    return child, port


def cpu_per_request(pid: int, run: Callable[[], Load]) -> tuple[Load, float]:
    """A load run and the CPU milliseconds the process tree ``pid`` spent per request."""
    before = process_tree_cpu(pid)
    result = run()
    return result, (process_tree_cpu(pid) - before) * 1000 / max(result.requests, 1)


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


def measure(
    platform: Platform, workdir: Path, seconds: int, connections: int, rounds: int
) -> Figures:
    load = wrk if shutil.which("wrk") else python_load
    ports = platform.config.ports
    with httpx.Client(base_url=platform.url, timeout=30) as api:
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
        naive = f"http://127.0.0.1:{naive_port}{path}"
        floor_url = f"http://127.0.0.1:{ports.gateway}/health/live"
        many_users = mint_tokens(platform, workdir / "tokens.txt", MANY_USERS)
        runs: dict[str, tuple[int, str, dict[str, str], Path | None]] = {
            "direct": (platform.child("courses").process.pid, direct, direct_headers, None),
            "via nginx": (gateway_pid, platform.url + path, auth, None),
            "many users": (gateway_pid, platform.url + path, {}, many_users),
            "our gateway": (gateway_pid, gateway, auth, None),
            "floor": (gateway_pid, floor_url, {}, None),
            "naive gateway": (naive_process.process.pid, naive, auth, None),
        }
        loads: dict[str, list[Load]] = {name: [] for name in runs}
        cpus: dict[str, list[float]] = {name: [] for name in runs}
        try:
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
        finally:
            naive_process.stop()
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


def row(name: str, value: str, target: str = "") -> str:
    return f"| {name:<56} | {value:>15} | {target:<22} |"


def added(hop: list[float], base: list[float], q: float) -> str:
    return f"{percentile(hop, q) - percentile(base, q):.2f}"


def table(f: Figures) -> list[str]:
    def ms(name: str) -> str:
        return (
            f"{f.median(name, lambda x: x.p50_ms):.2f} / {f.median(name, lambda x: x.p99_ms):.2f}"
        )

    def rps(name: str) -> str:
        return f"{f.median(name, lambda x: x.rps):.0f}"

    def cpu(name: str) -> str:
        return f"{statistics.median(f.cpu_ms[name]):.2f}"

    ours_vs_naive = statistics.median(
        a / b for a, b in zip(f.cpu_ms["our gateway"], f.cpu_ms["naive gateway"], strict=True)
    )
    return [
        row("measurement", "value", "target"),
        row("-" * 56, "-" * 15, "-" * 22),
        row("direct courses GET: requests/s", rps("direct")),
        row("direct courses GET: p50 / p99 ms", ms("direct")),
        row("nginx→gateway→courses GET: requests/s", rps("via nginx")),
        row("nginx→gateway→courses GET: p50 / p99 ms", ms("via nginx")),
        row("gateway throughput / direct", f"{f.ratio('via nginx'):.1%}", ">= 28%"),
        row("gateway CPU per forwarded request (ms)", cpu("via nginx"), "<= 0.8"),
        row(f"  the same, a different user each request ({MANY_USERS})", cpu("many users")),
        row("  the same, a different user each request: requests/s", rps("many users")),
        row(
            "unloaded added latency of the gateway hop p50 (ms)",
            added(f.hop_gateway, f.hop_direct, 0.5),
            "<= 1.0",
        ),
        row(
            "unloaded added latency of the gateway hop p99 (ms)",
            added(f.hop_gateway, f.hop_direct, 0.99),
        ),
        row("calibration, loaded on the gateways' own ports:", ""),
        row("  floor: gateway GET /health/live CPU per request (ms)", cpu("floor")),
        row(
            "  naive gateway: requests/s / direct",
            f"{f.ratio('naive gateway'):.1%}",
            "(issue: about 17%)",
        ),
        row("  naive gateway CPU per request (ms)", cpu("naive gateway"), "(issue: about 1.5)"),
        row("  our gateway: requests/s / direct", f"{f.ratio('our gateway'):.1%}"),
        row("  our gateway CPU per request (ms)", cpu("our gateway")),
        row("  our CPU / naive CPU", f"{ours_vs_naive:.0%}", "(0.8 / 1.5 = 53%)"),
        row(
            "  naive gateway unloaded added latency p50 (ms)", added(f.hop_naive, f.hop_direct, 0.5)
        ),
        row("PATCH /api/enrolment/paid, 1 s Fakturownia: p50 ms", f"{percentile(f.paid, 0.5):.1f}"),
        row(
            "PATCH /api/enrolment/paid, 1 s Fakturownia: p99 ms",
            f"{percentile(f.paid, 0.99):.1f}",
            "<= 50",
        ),
        row("logins per second (sequential, argon2id)", f"{len(f.logins) / f.login_seconds:.1f}"),
        row("login p50 (ms)", f"{percentile(f.logins, 0.5):.1f}"),
        row("non-2xx responses during the run", str(f.non_2xx), "0"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=4, help="per load run")
    parser.add_argument("--rounds", type=int, default=3, help="each load runs once a round")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    platform, mariadb, redis = start(workdir)
    try:
        figures = measure(platform, workdir, args.seconds, args.connections, args.rounds)
    finally:
        platform.stop()
        redis.stop()
        mariadb.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    generator = "wrk" if shutil.which("wrk") else "python_load"
    print(
        f"load generator: {generator}, {args.connections} connections, "
        f"{args.rounds} rounds of {args.seconds}s runs (medians)"
    )
    print("\n".join(table(figures)))
    if figures.non_2xx:
        print("non-2xx by run:", ", ".join(f"{k} {v}" for k, v in figures.failures.items() if v))


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
