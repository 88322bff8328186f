"""Load generation and the statistics taken from it.

``wrk`` when installed, else :func:`python_load`; both return a :class:`Load`.
Every loop is bounded in requests and time and targets 127.0.0.1 only.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

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


def cpu_per_request(pid: int, run: Callable[[], Load]) -> tuple[Load, float]:
    """A load run and the CPU milliseconds the process tree ``pid`` spent per request."""
    before = process_tree_cpu(pid)
    result = run()
    return result, (process_tree_cpu(pid) - before) * 1000 / max(result.requests, 1)
