"""What one thread wake-up costs on this machine, in CPU time: the floor under the threaded shape.

A bridged call moves at least 100 messages a second (50 frames in, 50 out), and with one thread
per loop each of them is a wake-up: the TX thread's timed sleep before every frame, the run
thread's blocking ``recv`` for every inbound frame. This script measures the CPU (process time,
user + system, of the waiting side) of:

* ``time.sleep(1 ms)``, ``Event.wait(1 ms)`` and a timed ``Lock.acquire(1 ms)`` (the TX thread's
  slot wait: ``MediaSession`` uses the lock, which a barge-in or close can end early);
* a blocking ``recv`` woken by a peer process every 2 ms (the run thread's read);
* a ``queue.Queue`` hand-off to a blocked consumer thread (the audio-out -> TX path);
* one ``select`` call that finds K sockets ready, then K ``recv``: what an event loop pays per
  message when many calls' frames arrive together (no wake-up per message).

Usage: python benchmarks/wakeups.py [--n 2000] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import select
import socket
import sys
import threading
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import machine  # noqa: E402


def per_call_us(fn: Callable[[], None], n: int) -> float:
    """Process CPU time per ``fn()`` call, in microseconds."""
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n * 1e6


def recv_wake_us(n: int, period_s: float = 0.002, size: int = 400) -> float:
    """Blocking recv woken by another process writing every ``period_s``."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the peer: a writer on its own clock
        ours.close()
        for _ in range(n):
            theirs.send(b"x" * size)
            time.sleep(period_s)
        os._exit(0)
    theirs.close()
    got, start = 0, time.process_time()
    while ours.recv(65536):
        got += 1
    cost = (time.process_time() - start) / max(got, 1) * 1e6
    os.waitpid(pid, 0)
    ours.close()
    return cost


def queue_handoff_us(n: int) -> float:
    """Consumer-thread CPU per item when each ``put`` wakes it from ``get``."""
    q: "queue.Queue[object]" = queue.Queue()
    result: list[float] = []

    def consumer() -> None:
        start = time.thread_time()
        for _ in range(n):
            q.get()
        result.append((time.thread_time() - start) / n * 1e6)
    thread = threading.Thread(target=consumer)
    thread.start()
    for _ in range(n):
        q.put(1)
        time.sleep(0.001)  # let the consumer block again, so every put is a wake-up
    thread.join()
    return result[0]


def select_batch_us(n: int, sockets: int) -> float:
    """One select wake that finds ``sockets`` readable, then a recv on each: CPU per message."""
    pairs = [socket.socketpair() for _ in range(sockets)]
    readers = [a for a, _ in pairs]
    start = time.process_time()
    rounds = max(1, n // sockets)
    for _ in range(rounds):
        for _, writer in pairs:
            writer.send(b"x" * 400)
        ready, _, _ = select.select(readers, [], [], 1.0)
        for sock in ready:
            sock.recv(65536)
    cost = (time.process_time() - start) / (rounds * sockets) * 1e6
    for a, b in pairs:
        a.close()
        b.close()
    return cost


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="wake-ups per measurement")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    event, held = threading.Event(), threading.Lock()
    held.acquire()
    figures = {
        "sleep_1ms_us": per_call_us(lambda: time.sleep(0.001), args.n),
        "event_wait_1ms_us": per_call_us(lambda: event.wait(0.001), args.n),
        "lock_acquire_1ms_us": per_call_us(lambda: held.acquire(timeout=0.001), args.n),
        "recv_wake_us": recv_wake_us(args.n),
        "queue_handoff_consumer_us": queue_handoff_us(args.n),
        "select_1_ready_per_msg_us": select_batch_us(args.n, 1),
        "select_50_ready_per_msg_us": select_batch_us(args.n * 10, 50),
    }
    # The threaded shape's floor per call-second: a timed sleep per outbound frame and a
    # blocking recv per inbound frame, before any Python work, model traffic or GIL hand-offs.
    figures["threaded_floor_ms_per_call_s"] = (50 * figures["lock_acquire_1ms_us"] + 50 * figures["recv_wake_us"]) / 1000
    figures = {k: round(v, 2) for k, v in figures.items()}
    out = {"machine": machine(), "n": args.n, "figures": figures}
    for key, value in figures.items():
        print(f"{key:>32}: {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
