"""User hooks run off the call's threads: one worker per bridge, a bounded queue, overflow counted.

A hook is the app's code: a database write, an HTTP request. Run on the model thread it would
hold back the Realtime events behind it (a caller's "stop please" confirmed too late counts as
a false barge-in, and the agent resumes); run on the audio-out or TX thread it would stall the
caller's audio. So a session hands each mid-call hook (``on_transcript_entry``, ``on_keypad``) to a
``HookRunner`` and goes on at once. One worker thread keeps them in order; the queue is bounded,
so a hook slower than the call's events costs dropped hook calls (counted and logged once per
call), never the call's timing. A bridge shares one runner among its calls; a session made on
its own owns one. Under gevent the worker is a greenlet, like the session's threads.
"""
from __future__ import annotations

import logging
import queue
import threading
import warnings
from typing import Any, Callable

MAX_PENDING = 256
"""Hook calls waiting at most (for all the calls of a bridge); beyond it they are dropped and counted."""

Job = tuple[Callable[[], object], str, logging.LoggerAdapter]


class HookRunner:
    """Runs submitted hook calls in order on one worker thread, started on first use."""

    def __init__(self, name: str = "vb-hooks", max_pending: int = MAX_PENDING) -> None:
        self._name = name
        self._queue: "queue.Queue[Job | None]" = queue.Queue(max_pending)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.dropped = 0  # hook calls refused because the queue was full (all calls of the runner)
        self.failed = 0  # hook calls that raised

    def submit(self, fn: Callable[[], object], what: str, log: logging.LoggerAdapter) -> bool:
        """Queue one hook call; False (and counted) if the runner is closed or full. Never blocks."""
        with self._lock:
            if self._closed:
                return False
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
            try:
                self._queue.put_nowait((fn, what, log))
                return True
            except queue.Full:
                self.dropped += 1
                return False

    def flush(self, timeout: float, log: logging.LoggerAdapter) -> bool:
        """Wait until every hook call queued so far has run; False if that took over ``timeout``.

        A call's ``on_end`` waits for this first, so an app that closes its record of a call in
        ``on_end`` has already been handed every transcript entry of it (the queue is one, in order)."""
        done = threading.Event()
        if not self.submit(done.set, "hook flush", log):
            return False
        return done.wait(timeout)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            fn, what, log = job
            try:
                fn()
            except Exception:  # noqa: BLE001 - the app's code: logged with the call's context, never raised
                with self._lock:
                    self.failed += 1
                log.exception("%s raised", what)

    def close(self, timeout: float) -> bool:
        """Refuse new calls, run the queued ones, stop; True if the worker ended within ``timeout``."""
        with self._lock:
            if self._closed:
                thread = self._thread
                return thread is None or not thread.is_alive()
            self._closed = True
            thread = self._thread
        if thread is None:
            return True
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return False
        thread.join(timeout)
        return not thread.is_alive()


def legacy(hook: Callable[..., Any] | None, old: str, new: str,
           adapt: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Callable[..., Any] | None:
    """An old-style hook still works, adapted to the new signature, with a DeprecationWarning."""
    if hook is None:
        return None
    warnings.warn(f"{old} is deprecated: use {new} (every hook now takes the call's MediaSession first)",
                  DeprecationWarning, stacklevel=3)
    return adapt(hook)
