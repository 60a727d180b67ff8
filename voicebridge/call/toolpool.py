"""The threads a call's tool handlers run on: bounded, never waited for, never holding the call.

A tool is the app's code, and it may never return. Python cannot stop a thread, so the bridge
makes sure a hung handler costs as little as possible:

* **A place per running handler, freed by its time limit.** At most ``places`` handlers of a
  call run at once; the others wait in order. A call that is settled without its handler (it
  timed out) gives its place back at once, so hung handlers never use up the call's budget, and
  a call still waiting for a place when it is settled never starts.
* **Daemon threads.** Nothing waits for a handler: not the call's teardown, not the
  interpreter's exit (``concurrent.futures`` threads are joined at exit, so one hung handler kept
  a stopping process -- a drained gunicorn worker, the dev server on SIGTERM -- alive).
* **Nothing of the call in the thread.** A handler's thread holds its work (the handler and its
  arguments) and a *weak* reference to the pool: once the call is over and gone, its session,
  queues and record are freed even while a hung handler runs on; what it returns then is dropped.
* **Closed with the call.** ``close`` starts nothing more; a handler finishing afterwards finds
  the pool closed (or gone) and its result is dropped.
* **A process-wide bound.** At most :data:`MAX_THREADS` handler threads live at once over every
  call of the process; beyond that a call is refused at once (``on_done`` gets
  :class:`PoolFull`), so tools that hang on every call cannot pile up threads without end.
"""
from __future__ import annotations

import threading
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

MAX_THREADS = 256
"""Handler threads alive at once in this process, over every call (hung ones included)."""

_live_lock = threading.Lock()
_live = 0


class PoolFull(RuntimeError):
    """Too many handler threads are alive in this process (see :data:`MAX_THREADS`)."""


def live_threads() -> int:
    """Handler threads alive now in this process (for tests and diagnostics)."""
    return _live


@dataclass
class _Job:
    key: str
    work: Callable[[], Any]
    started: bool = False
    settled: bool = False  # its place is given back (finished, timed out or dropped)


Done = Callable[[str, Any], None]
"""``on_done(key, outcome)``: what ``work`` returned, or the exception it raised."""


class ToolPool:
    """Runs ``work`` callables on daemon threads, at most ``places`` at once (thread-safe)."""

    def __init__(self, places: int, name: str, on_done: Done) -> None:
        self._places = max(1, places)
        self._name = name
        self._on_done = on_done
        self._lock = threading.Lock()
        self._running: dict[str, _Job] = {}
        self._waiting: "deque[_Job]" = deque()
        self._closed = False

    def submit(self, key: str, work: Callable[[], Any]) -> None:
        """Run ``work`` when a place is free; ``on_done(key, ...)`` gets its outcome."""
        job = _Job(key, work)
        with self._lock:
            if self._closed:
                return
            self._waiting.append(job)
        self._start_waiting()

    def settle(self, key: str) -> None:
        """``key`` no longer needs its handler (it timed out): give its place back, never start it."""
        with self._lock:
            job = self._running.pop(key, None)
            if job is None:
                self._waiting = deque(j for j in self._waiting if j.key != key)
                return
            job.settled = True
        self._start_waiting()

    def close(self) -> tuple[int, int]:
        """Start nothing more; handlers still running are abandoned (their results dropped).
        Returns (handlers abandoned, calls that never started)."""
        with self._lock:
            self._closed = True
            counts = (len(self._running), len(self._waiting))
            self._waiting.clear()
            self._running.clear()
        return counts

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._running)

    # ------------------------------------------------------------------ internals
    def _start_waiting(self) -> None:
        refused: list[_Job] = []
        while True:
            with self._lock:
                if self._closed or not self._waiting or len(self._running) >= self._places:
                    break
                job = self._waiting.popleft()
                if not _reserve_thread():
                    refused.append(job)
                    continue
                job.started = True
                self._running[job.key] = job
            thread = threading.Thread(target=_body, args=(weakref.ref(self), job), name=f"{self._name}-{job.key[:24]}",
                                      daemon=True)
            try:
                thread.start()
            except RuntimeError as exc:  # the system refused a thread
                _release_thread()
                self._finished(job, exc)
        for job in refused:
            self._on_done(job.key, PoolFull(f"{MAX_THREADS} tool handler threads are already running"))

    def _finished(self, job: _Job, outcome: Any) -> None:
        with self._lock:
            if self._running.get(job.key) is job:
                del self._running[job.key]
            job.settled = True
            closed = self._closed
        if closed:
            return
        self._start_waiting()
        self._on_done(job.key, outcome)


def _reserve_thread() -> bool:
    global _live
    with _live_lock:
        if _live >= MAX_THREADS:
            return False
        _live += 1
        return True


def _release_thread() -> None:
    global _live
    with _live_lock:
        _live -= 1


def _body(pool_ref: "weakref.ref[ToolPool]", job: _Job) -> None:
    """A handler thread: run the work, then tell the pool if the call is still there."""
    try:
        outcome: Any = job.work()
    except Exception as exc:  # noqa: BLE001 - a failing tool is an outcome, not a crash
        outcome = exc
    finally:
        _release_thread()
    job.work = _gone  # the handler and its arguments are not kept past their run
    pool = pool_ref()
    if pool is not None:
        pool._finished(job, outcome)


def _gone() -> None:
    return None
