"""A bridge's drain: take no new calls, let live ones run on (docs/deploy.md, "Draining").

One-way and idempotent; safe from a signal handler (two plain fields and a log line). The drain
starts on :meth:`Drain.start` or when the drain file appears (looked for at most once a second,
on requests); ``grace_s`` into it, webhooks are still answered normally.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Callable

log = logging.getLogger(__name__)

DRAIN_FILE_CHECK_S = 1.0  # a drain file is looked for at most this often (on requests)
DRAIN_GRACE_S = 30.0  # webhooks are answered normally this long into a drain (> the preStop sleep, deploy.md)


class Drain:
    """Whether this bridge drains, since when, and the grace it gives requests in flight."""

    def __init__(self, drain_file: str | None, grace_s: float, publish: Callable[[], None],
                 live_calls: Callable[[], int], clock: Callable[[], float] = time.monotonic) -> None:
        self.file = drain_file
        self.grace_s = grace_s
        self._publish = publish  # tells the shared state (other hosts' /healthz, the fleet's view)
        self._live_calls = live_calls
        self._clock = clock
        self._draining = False  # a plain flag: start() may run in a signal handler
        self._started = 0.0  # monotonic; set with _draining
        self._next_check = 0.0

    @property
    def active(self) -> bool:
        """True once :meth:`start` was called or the drain file appeared."""
        if not self._draining and self.file is not None:
            now = self._clock()
            if now >= self._next_check:
                self._next_check = now + DRAIN_FILE_CHECK_S
                if os.path.exists(self.file):
                    log.warning("drain file %s found", self.file)
                    self.start()
        return self._draining

    def in_grace(self, extra_s: float) -> bool:
        """Within ``grace_s`` (+ ``extra_s``) of the drain's start."""
        return self._clock() < self._started + self.grace_s + extra_s

    def start(self) -> None:
        if self._draining:
            return
        self._started = self._clock()
        self._draining = True
        self._publish()  # a flag too: a networked backend publishes it from its own thread
        log.warning("draining: no new calls once the load balancer has seen /healthz 503 (webhooks still answered "
                    "for %.0f s, streams of answered calls admitted); %d live call(s) here run on to their end",
                    self.grace_s, self._live_calls())
