"""`make bench`: the platform's speed, measured side by side in one run.

Starts the platform the way `make run` does, but on a real MariaDB and Redis
(throwaway, on free ports), then prints one table:

- authenticated GET /api/course/<id> through nginx → gateway → courses vs GET
  straight to the courses service: requests/s, p50, p99, the ratio, and the
  gateway's CPU time per forwarded request;
- the unloaded latency the gateway hop adds (p50, p99);
- the same GET on the gateway's own port against a naive gateway (the calibration)
  and against the real gateway over urllib3's pool instead of our hand-written
  transport (``common/keepalive.py``): CPU per request, requests/s, p50/p99;
- PATCH /api/enrolment/paid p50/p99 while the Fakturownia stand-in answers after 1 s;
- logins per second and login p50;
- the learner's hot paths on seeded data (``bench/learning_seed.py``), through nginx →
  gateway → learning: reading a lesson, starting and submitting a test, the progress
  read of a learner in 50 courses, with the CPU per request of each process
  (``bench/learning_load.py``).

Every load loop is bounded in requests and time and targets 127.0.0.1 only.
The pieces: ``bench/loads.py`` (load generation, statistics), ``bench/stack.py``
(the platform and the extra gateways), ``bench/measure.py`` (one run), this file
(the table and ``main``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

# `python bench/run.py` puts bench/ itself on the path; the modules import each other
# as the `bench` package, which is how mypy sees them too.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench.learning_load import PROCESSES, LearningFigures, measure_learning  # noqa: E402
from bench.loads import percentile  # noqa: E402
from bench.measure import MANY_USERS, Figures, measure  # noqa: E402
from bench.stack import start  # noqa: E402


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
        row(
            "  our CPU / naive CPU",
            f"{f.cpu_ratio('our gateway', 'naive gateway'):.0%}",
            "(0.8 / 1.5 = 53%)",
        ),
        row(
            "  naive gateway unloaded added latency p50 (ms)", added(f.hop_naive, f.hop_direct, 0.5)
        ),
        row("internal transport, the same GET on the gateways' ports:", ""),
        row("  hand-written (keepalive.py): CPU per request (ms)", cpu("our gateway")),
        row("  hand-written (keepalive.py): requests/s", rps("our gateway")),
        row("  hand-written (keepalive.py): p50 / p99 ms", ms("our gateway")),
        row("  urllib3 HTTPConnectionPool: CPU per request (ms)", cpu("urllib3 gateway")),
        row("  urllib3 HTTPConnectionPool: requests/s", rps("urllib3 gateway")),
        row("  urllib3 HTTPConnectionPool: p50 / p99 ms", ms("urllib3 gateway")),
        row(
            "  hand-written CPU / urllib3 CPU",
            f"{f.cpu_ratio('our gateway', 'urllib3 gateway'):.0%}",
            "< 100%",
        ),
        row("PATCH /api/enrolment/paid, 1 s Fakturownia: p50 ms", f"{percentile(f.paid, 0.5):.1f}"),
        row(
            "PATCH /api/enrolment/paid, 1 s Fakturownia: p99 ms",
            f"{percentile(f.paid, 0.99):.1f}",
            "<= 50",
        ),
        row("logins per second (sequential, argon2id)", f"{len(f.logins) / f.login_seconds:.1f}"),
        row("login p50 (ms)", f"{percentile(f.logins, 0.5):.1f}"),
    ]


def learning_table(f: LearningFigures, clients: int) -> list[str]:
    def ms(p50_p99: tuple[float, float]) -> str:
        return f"{p50_p99[0]:.2f} / {p50_p99[1]:.2f}"

    def cpu(name: str, *processes: str) -> str:
        return " / ".join(f"{f.cpu(name, process):.1f}" for process in processes)

    timed = (
        ("  GET /api/lessons/<id>", "lesson reads", "lesson", "p99 <= 50 ms"),
        ("  POST /api/tests/<id>/attempts", "test flows", "start", "p99 <= 50 ms"),
        ("  POST /api/attempts/<id>/submit (20 answers)", "test flows", "submit", "p99 <= 50 ms"),
        ("  (untimed) PUT /api/attempts/<id>/answers", "test flows", "answers", ""),
        (
            "  GET /api/progress?per_page=50 (50 courses)",
            "progress reads",
            "progress",
            "p99 <= 20 ms",
        ),
    )
    out = [row(f"learner, {clients} at a time via nginx (p50 / p99 ms):", "")]
    out += [row(label, ms(f.ms(name, t)), target) for label, name, t, target in timed]
    out.append(row("  the same, one request at a time (p50 / p99 ms):", ""))
    out += [row(f"  {label}", ms(f.unloaded_ms(name, t))) for label, name, t, _ in timed]
    for name, unit in (
        ("lesson reads", "lesson read"),
        ("test flows", "test (start, answers, submit)"),
        ("progress reads", "progress read"),
    ):
        out += [
            row(f"  {unit}: per second", f"{f.rate(name):.1f}"),
            row("    CPU ms each: gateway / learning / enrolments", cpu(name, *PROCESSES[:3])),
            row(
                "    CPU ms each: courses / nginx / MariaDB",
                cpu(name, "courses", "nginx", "MariaDB"),
            ),
            row("    CPU ms each: bench client / all processes", cpu(name, "bench client", "all")),
            row(
                "    MariaDB statements each (COMMIT, ROLLBACK incl.)", f"{f.statements(name):.1f}"
            ),
        ]
    out.append(row("  seeded rows / seconds", f"{f.seed_rows} / {f.seed_seconds:.1f}"))
    return out


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
        learning = measure_learning(
            platform, mariadb, workdir, args.seconds, args.connections, args.rounds
        )
    finally:
        platform.stop()
        redis.stop()
        mariadb.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    generator = "wrk" if shutil.which("wrk") else "python_load"
    print(
        f"load generator: {generator}, {args.connections} connections, "
        f"{args.rounds} rounds of {args.seconds}s runs (medians); the learner's paths: "
        "Python threads, one keep-alive connection each"
    )
    figures.failures.update(learning.failures)
    lines = [*table(figures), *learning_table(learning, args.connections)]
    lines.append(row("non-2xx responses during the run", str(figures.non_2xx), "0"))
    print("\n".join(lines))
    if figures.non_2xx:
        print("non-2xx by run:", ", ".join(f"{k} {v}" for k, v in figures.failures.items() if v))


if __name__ == "__main__":
    main()
