"""What a TX slot wait costs under gevent: gevent's timed lock against ``call.wakeup.GreenWakeup``.

Under ``gunicorn -k gevent`` every call's TX loop waits for its frame's slot 50 times a second.
``Wakeup`` was a bare lock there too (gevent's, after monkey-patching): its timed ``acquire``
makes a ``Timeout``, links the waiter and unlinks it on every wait. ``GreenWakeup`` is one timer
in the hub and the waiting greenlet. This runs G greenlets that each wait ``--wait-ms`` N times
(so the hub is never idle between them, as in a busy worker) and prints the process CPU per wait.

Usage: python benchmarks/green_wakeups.py [--greenlets 50] [--n 400] [--wait-ms 2] [--rounds 3]
"""
from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402

import gevent  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from voicebridge.call.wakeup import GreenWakeup  # noqa: E402


class LockWakeup:
    """``Wakeup`` as it was under gevent: a held lock, waited on with a timed acquire."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def wait(self, timeout: float) -> bool:
        return self._lock.acquire(timeout=timeout)


def cpu_per_wait_us(make: Callable[[], Any], greenlets: int, n: int, wait_s: float) -> float:
    def body() -> None:
        wake = make()
        for _ in range(n):
            wake.wait(wait_s)

    t0 = time.process_time()
    gevent.joinall([gevent.spawn(body) for _ in range(greenlets)])
    return (time.process_time() - t0) / (greenlets * n) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--greenlets", type=int, default=50)
    ap.add_argument("--n", type=int, default=400, help="waits per greenlet")
    ap.add_argument("--wait-ms", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for _ in range(args.rounds):
        lock = cpu_per_wait_us(LockWakeup, args.greenlets, args.n, args.wait_ms / 1000)
        green = cpu_per_wait_us(GreenWakeup, args.greenlets, args.n, args.wait_ms / 1000)
        print(f"timed lock acquire {lock:.1f} us per wait, GreenWakeup {green:.1f} us per wait")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
