"""What the shared state costs a call, file backend against Redis backend, in one run.

A call touches the shared state at four moments: **admission** (the webhook's ``full()`` and the
stream's ``try_enter()``), **redemption** (its stream token's ``claim``), **transfer** (``put``
by the stream's host, ``take`` by ``/voice/after``'s) and **end** (``leave``). This script runs
each moment ``--calls`` times against both backends -- the file backend on a private temporary
directory, the Redis backend on a real ``redis-server`` it starts on 127.0.0.1 (or ``--redis-url``)
-- and prints the time per moment (median and p99, microseconds) and, for Redis, the network
round trips per moment (counted at the client's socket writes)::

    python benchmarks/shared_state_cost.py --calls 2000
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis.connection  # noqa: E402

from benchmarks.fleet_parts import RedisServer  # noqa: E402
from voicebridge.serving.sharedstate import SharedState, file_state, open_state  # noqa: E402

MOMENTS = ("admission", "redemption", "transfer", "end")


class RoundTrips:
    """Counts the commands the redis client writes (a pipeline or a script call is one)."""

    count = 0

    @classmethod
    def install(cls) -> None:
        original = redis.connection.AbstractConnection.send_packed_command

        def counted(self: object, command: object, check_health: bool = True) -> None:
            cls.count += 1
            original(self, command, check_health)  # type: ignore[arg-type]
        redis.connection.AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]


def one_call(state: SharedState, index: int) -> dict[str, tuple[float, int]]:
    """The four moments of one call: (seconds, round trips) each."""
    sid = f"CA{index:032d}"
    now = time.time()
    steps: dict[str, Callable[[], object]] = {
        "admission": lambda: (state.slots.full(), state.slots.try_enter()),
        "redemption": lambda: state.used.claim(f"n{index}", now + 30, now),
        "transfer": lambda: (state.transfers.put(sid, "+15551234567", now + 60, now), state.transfers.take(sid, now)),
        "end": state.slots.leave,
    }
    out = {}
    for moment in MOMENTS:
        trips, start = RoundTrips.count, time.perf_counter()
        steps[moment]()
        out[moment] = (time.perf_counter() - start, RoundTrips.count - trips)
    return out


def measure(state: SharedState, calls: int) -> dict[str, list[tuple[float, int]]]:
    for i in range(50):  # warm up: connections, script loading
        one_call(state, 10_000_000 + i)
    results: dict[str, list[tuple[float, int]]] = {m: [] for m in MOMENTS}
    for i in range(calls):
        for moment, value in one_call(state, i).items():
            results[moment].append(value)
    return results


def report(name: str, results: dict[str, list[tuple[float, int]]]) -> None:
    for moment in MOMENTS:
        times = sorted(t for t, _ in results[moment])
        trips = statistics.mean(n for _, n in results[moment])
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"{name:6s} {moment:11s} median {statistics.median(times) * 1e6:8.1f} us   p99 {p99 * 1e6:8.1f} us"
              f"   round trips {trips:.0f}")
    total = sum(statistics.median(t for t, _ in results[m]) for m in MOMENTS)
    print(f"{name:6s} {'per call':11s} median {total * 1e6:8.1f} us   round trips "
          f"{sum(statistics.mean(n for _, n in results[m]) for m in MOMENTS):.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--max-calls", type=int, default=150, help="the cap (slots) of both backends")
    parser.add_argument("--redis-url", help="an existing Redis (default: start a redis-server here)")
    args = parser.parse_args()
    RoundTrips.install()
    server = None if args.redis_url else RedisServer().start()
    try:
        with tempfile.TemporaryDirectory() as directory:
            files = file_state(args.max_calls, directory)
            redis_backend = open_state(args.max_calls, None, args.redis_url or server.url, prefix="bench")
            try:
                print(f"{args.calls} calls per backend, cap {args.max_calls}, one process, redis-server on loopback")
                report("file", measure(files, args.calls))
                report("redis", measure(redis_backend, args.calls))
            finally:
                files.close()
                redis_backend.close()
    finally:
        if server is not None:
            server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
