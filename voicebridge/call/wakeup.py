"""A self-clearing event for one waiter, built on a bare lock (or, under gevent, on the hub).

The TX thread waits for every frame's slot, 50 times a second per call, and a barge-in flush,
a resume or a close must end that wait at once. ``threading.Event.wait`` goes through a
Python-level ``Condition``; a timed ``Lock.acquire`` is one C call and costs less CPU per wait
(``benchmarks/wakeups.py`` measures both). Under gevent's monkey-patching that lock is gevent's,
whose timed acquire makes a ``Timeout`` (an exception object), links the waiter and unlinks it
on every wait: there ``Wakeup()`` is a ``GreenWakeup``, one timer in the hub and the waiting
greenlet, no lock.
"""
from __future__ import annotations

import threading
from typing import Any

from ..locks import green


class Wakeup:
    """``set()`` from any thread ends the current (or next) ``wait``; one wait consumes it."""

    def __new__(cls) -> Any:
        if cls is Wakeup and green():
            return GreenWakeup()
        return super().__new__(cls)

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


class GreenWakeup:
    """``Wakeup`` for a greenlet: ``set()`` from any greenlet or thread (rare: a flush, a resume, a close)."""

    def __init__(self) -> None:
        from gevent import get_hub
        from gevent.hub import Waiter

        self._hub = get_hub()
        self._new_waiter = Waiter  # imported once: an import statement per wait costs a lookup each time
        self._set = False
        self._waiter: Any = None  # the current wait's Waiter

    def set(self) -> None:
        self._set = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None:  # the waiter is resumed by the hub (a Waiter's rule)
            self._hub.loop.run_callback_threadsafe(waiter.switch, True)

    def wait(self, timeout: float) -> bool:
        """True if set (consuming it), False after ``timeout`` seconds."""
        if not self._set:
            waiter = self._new_waiter(self._hub)
            timer = self._hub.loop.timer(max(timeout, 0.0))
            timer.start(waiter.switch, False)
            self._waiter = waiter
            try:
                waiter.get()
            finally:
                self._waiter = None
                timer.close()
        was_set, self._set = self._set, False
        return was_set

