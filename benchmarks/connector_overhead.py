"""How much the connectors framework costs per call, compared with bare ``requests``.

Starts the Calendly sandbox in its own process (so the server does not share this process's
GIL), then runs N ``users/me`` actions through the framework and N bare ``requests`` calls on
the same sandbox, interleaved in rounds so that drift (warm caches, CPU frequency, the
server's state) hits every contender alike. Two like-for-like pairs are measured:

* the framework as configured by default (a session per credential use over a process-wide
  connection pool) against one bare keep-alive ``requests.Session`` reused for every call;
* the framework with ``Runtime(reuse_connections=False)`` against a bare
  ``requests.Session().get`` per call (a new connection each time on both sides).

    .venv/bin/python benchmarks/connector_overhead.py [-n 2000] [--rounds 20] [--json]

Target: framework overhead under 15% of the bare call in both pairs.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from connectors import Credentials, Runtime, TokenBucket, get_connector  # noqa: E402
from connectors.calendly.sandbox import seed  # noqa: E402

TARGET_PERCENT = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_sandbox(port: int) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable, "-m", "connectors.calendly.sandbox",
            "--port", str(port), "--rate-limit", "100000000",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    line = process.stdout.readline() if process.stdout else ""
    prefix = "Calendly sandbox listening on "
    if not line.startswith(prefix):
        process.kill()
        raise RuntimeError(f"the sandbox did not start: {line!r}")
    return process, line[len(prefix) :].strip()


def timed(call: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        call()
    return time.perf_counter() - started


def measure(url: str, n: int, rounds: int) -> dict[str, object]:
    calendly = get_connector("calendly")
    credentials = Credentials(
        type="rest", secrets={"personal_access_token": seed.OWNER_TOKEN}, key="bench:owner"
    )
    # A real limiter with a budget too large to wait: its cost is part of the framework's.
    pooled = Runtime(base_urls={"calendly": url}, rate_limiter=TokenBucket(10**9))
    fresh = pooled.replace(reuse_connections=False)
    headers = {"Authorization": f"Bearer {seed.OWNER_TOKEN}", "Accept": "application/json"}
    me = f"{url}/users/me"
    timeout = (pooled.connect_timeout, pooled.read_timeout)
    keep_alive = requests.Session()

    def framework() -> object:
        return calendly.run_action("users/me", credentials, runtime=pooled).data

    def framework_fresh() -> object:
        return calendly.run_action("users/me", credentials, runtime=fresh).data

    def bare_keep_alive() -> object:
        response = keep_alive.get(me, headers=headers, timeout=timeout)
        response.raise_for_status()
        return response.json()

    def bare_fresh() -> object:
        with requests.Session() as session:
            response = session.get(me, headers=headers, timeout=timeout)
            response.raise_for_status()
            return response.json()

    contenders = {
        "framework": framework,
        "bare_keep_alive": bare_keep_alive,
        "framework_fresh": framework_fresh,
        "bare_fresh": bare_fresh,
    }
    for call in contenders.values():  # warm up connections, imports, the server's threads
        timed(call, 50)

    per_round = max(1, n // rounds)
    totals = dict.fromkeys(contenders, 0.0)
    ratios: dict[str, list[float]] = {"pooled": [], "fresh": []}
    for index in range(rounds):
        order = list(contenders) if index % 2 == 0 else list(reversed(contenders))
        spent = {name: timed(contenders[name], per_round) for name in order}
        for name, seconds in spent.items():
            totals[name] += seconds
        ratios["pooled"].append(spent["framework"] / spent["bare_keep_alive"])
        ratios["fresh"].append(spent["framework_fresh"] / spent["bare_fresh"])
    keep_alive.close()

    calls = per_round * rounds
    per_call_us = {name: seconds / calls * 1e6 for name, seconds in totals.items()}
    pairs = {}
    for pair, (ours, theirs) in {
        "pooled": ("framework", "bare_keep_alive"),
        "fresh": ("framework_fresh", "bare_fresh"),
    }.items():
        overhead_us = per_call_us[ours] - per_call_us[theirs]
        percent = overhead_us / per_call_us[theirs] * 100
        pairs[pair] = {
            "framework": ours,
            "baseline": theirs,
            "overhead_us": overhead_us,
            "overhead_percent": percent,
            "overhead_percent_median_round": (statistics.median(ratios[pair]) - 1) * 100,
            "within_target": percent < TARGET_PERCENT,
        }
    return {
        "calls_each": calls,
        "rounds": rounds,
        "requests_per_second": {name: calls / s for name, s in totals.items()},
        "per_call_us": per_call_us,
        "overhead": pairs,
        "target_percent": TARGET_PERCENT,
        "within_target": all(p["within_target"] for p in pairs.values()),
    }


LABELS = {
    "framework": "framework run_action (default)",
    "bare_keep_alive": "bare requests, one keep-alive Session",
    "framework_fresh": "framework, reuse_connections=False",
    "bare_fresh": "bare requests.Session().get per call",
}


def table(report: dict[str, object]) -> str:
    rps = report["requests_per_second"]
    per_call = report["per_call_us"]
    lines = [
        f"users/me x {report['calls_each']} each, {report['rounds']} interleaved rounds",
        "",
        f"{'client':<40}{'req/s':>9}{'µs/call':>10}",
    ]
    lines += [f"{LABELS[name]:<40}{rps[name]:>9.0f}{per_call[name]:>10.0f}" for name in LABELS]
    lines.append("")
    for pair in report["overhead"].values():
        lines.append(
            f"overhead {pair['framework']} vs {pair['baseline']}: "
            f"{pair['overhead_us']:+.0f} µs/call = {pair['overhead_percent']:+.1f}% "
            f"(median round {pair['overhead_percent_median_round']:+.1f}%)"
        )
    verdict = "met" if report["within_target"] else "NOT met"
    lines.append(f"target < {TARGET_PERCENT:.0f}%: {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="calls per contender (default 2000)")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds (default 20)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    process, url = start_sandbox(free_port())
    try:
        report = measure(url, args.n, args.rounds)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    print(json.dumps(report, indent=2) if args.json else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
