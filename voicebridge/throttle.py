"""Process-wide log throttling: events that anyone on the internet can cause cost bounded log.

A call's own faults are logged once per kind per call (``CallLog.once``). Refusals happen
outside any call -- a replayed ``/media`` upgrade, a webhook at the cap, a socket that never
starts -- and a client can cause them as fast as it can open connections (a replay loop wrote
12,144 WARNING lines). ``LogThrottle`` writes the first of a kind at once and then at most one
line per ``interval_s``, carrying the count of those it did not write.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

INTERVAL_S = 10.0


class LogThrottle:
    """``log(kind, level, msg, *args)``: at most one line per kind per interval (thread-safe)."""

    def __init__(self, logger: "logging.Logger | logging.LoggerAdapter", interval_s: float = INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic, max_kinds: int = 64) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._max_kinds = max_kinds
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}
        self._unwritten: dict[str, int] = {}

    def log(self, kind: str, level: int, msg: str, *args: Any) -> bool:
        """Write ``msg`` unless a line of ``kind`` was written less than the interval ago. True if written."""
        now = self._clock()
        with self._lock:
            if kind not in self._next and len(self._next) >= self._max_kinds:
                kind = "*"
            if now < self._next.get(kind, float("-inf")):
                self._unwritten[kind] = self._unwritten.get(kind, 0) + 1
                return False
            self._next[kind] = now + self._interval_s
            unwritten = self._unwritten.pop(kind, 0)
        if unwritten:
            msg += " (and %d more like it in the last %.0f s, not logged)"
            args = (*args, unwritten, self._interval_s)
        self._logger.log(level, msg, *args)
        return True

    def warning(self, kind: str, msg: str, *args: Any) -> bool:
        return self.log(kind, logging.WARNING, msg, *args)
