"""``state_lock()``: the stdlib's lock with real threads, gevent's compiled semaphore under gevent,
one mutex either way (held by one thread or greenlet; timed and non-blocking acquires fail while held)."""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from voicebridge.locks import state_lock

ROOT = Path(__file__).resolve().parent.parent


def test_with_real_threads_it_is_the_stdlib_lock():
    lock = state_lock()
    assert type(lock) is type(threading.Lock())
    with lock:
        assert not lock.acquire(blocking=False)
        assert not lock.acquire(timeout=0.001)
    assert lock.acquire(blocking=False)


GREEN = """
from gevent import monkey; monkey.patch_all()
import threading, gevent
from gevent.lock import BoundedSemaphore
from voicebridge.locks import state_lock
lock = state_lock()
assert type(lock) is BoundedSemaphore, type(lock)
inside, most = [0], [0]
def worker():
    for _ in range(20):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            gevent.sleep(0)  # a switch while held: the others must wait
            inside[0] -= 1
gevent.joinall([gevent.spawn(worker) for _ in range(5)])
assert most[0] == 1, most
with lock:
    assert not lock.acquire(blocking=False)
    assert not lock.acquire(timeout=0.01)
assert lock.acquire(blocking=False)
print("ok")
"""


def test_under_gevent_it_is_the_compiled_semaphore_and_still_a_mutex():
    pytest.importorskip("gevent")
    done = subprocess.run([sys.executable, "-c", GREEN], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
