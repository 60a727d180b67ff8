"""A self-clearing event for one waiter, built on a bare lock.

The TX thread waits for every frame's slot, 50 times a second per call, and a barge-in flush,
a resume or a close must end that wait at once. ``threading.Event.wait`` goes through a
Python-level ``Condition``; a timed ``Lock.acquire`` is one C call and costs less CPU per wait
(``benchmarks/wakeups.py`` measures both). Under gevent's monkey-patching the lock is a
gevent lock and the wait yields to other greenlets.
"""
from __future__ import annotations

import threading


class Wakeup:
    """``set()`` from any thread ends the current (or next) ``wait``; one wait consumes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()  # held = not set

    def set(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:
            pass  # already set

    def wait(self, timeout: float) -> bool:
        """True if set (consuming it), False after ``timeout`` seconds."""
        return self._lock.acquire(timeout=timeout)
