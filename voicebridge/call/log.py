"""Per-call logging: every line names the call, and repeated faults cost one line per kind.

A bad peer can send thousands of broken messages; logging each one would let it flood the
logs (and the disk). ``CallLog.once`` logs the first occurrence of a kind and counts the rest;
``suppressed()`` gives the counts for the call's summary line.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any

MAX_KINDS = 64
"""Distinct kinds remembered per call; beyond this, new kinds are only counted under '*'."""


class CallLog(logging.LoggerAdapter):
    """Prefixes every line with ``[streamSid callSid]``; ``once`` rate-limits by kind."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {"stream_sid": None, "call_sid": None})
        self._lock = threading.Lock()
        self._seen: Counter[str] = Counter()

    def bind(self, stream_sid: str | None, call_sid: str | None) -> None:
        """Name the call in every later line."""
        self.extra = {"stream_sid": stream_sid, "call_sid": call_sid}

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        ctx = self.extra or {}
        return f"[{ctx.get('stream_sid') or '-'} {ctx.get('call_sid') or '-'}] {msg}", kwargs

    def once(self, kind: str, msg: str, *args: Any, level: int = logging.WARNING) -> bool:
        """Log ``msg`` the first time ``kind`` occurs in this call; count later ones. True if logged."""
        with self._lock:
            if kind not in self._seen and len(self._seen) >= MAX_KINDS:
                kind = "*"
            self._seen[kind] += 1
            first = self._seen[kind] == 1
        if first:
            self.log(level, msg, *args)
        return first

    def suppressed(self) -> dict[str, int]:
        """Lines not written, by kind (occurrences after the first)."""
        with self._lock:
            return {kind: n - 1 for kind, n in self._seen.items() if n > 1}
