"""Post-call reports to a webhook: spooled to disk first, POSTed signed, retried until taken.

Every report is written to the spool directory (``pending/<report id>.json``, atomically:
a temporary file renamed) before the first attempt, and removed only once the receiver
answered 2xx. So a target that is down, a slow one, or a restart of this process loses
nothing: a new ``ReportSender`` on the same spool picks up what is there and goes on. Each
POST carries the report id as ``Idempotency-Key`` (the same on every retry: a receiver that
got one twice -- its answer lost on the way back -- drops the second) and an HMAC-SHA256
signature (``voicebridge.call.report.sign``). Failures are retried with exponential back-off
(``Backoff``); a 4xx other than 408/425/429 means the receiver will never take it: the file
moves to ``rejected/`` (kept for a person to look at, not retried). A report still not
delivered ``retention_s`` after it was spooled (7 days by default) is deleted with an error
line: the spool is bounded in time, and says so.

One worker thread per sender (``vb-reports``) does the posting: never a call's thread.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Mapping

from .report import (IDEMPOTENCY_HEADER, SIGNATURE_HEADER, Backoff, DeliveryQueue, Outcome, outcome_of, sign)

log = logging.getLogger(__name__)

RETENTION_S = 7 * 24 * 3600.0
"""An undelivered report is kept this long in the spool, then deleted (logged as an error)."""
POST_TIMEOUT_S = 10.0

Post = Callable[[str, bytes, Mapping[str, str], float], "int | None"]
"""(url, body, headers, timeout) -> the HTTP status, or None when there was no answer."""


def http_post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int | None:
    """One POST with the standard library; the status, or None for no answer (refused, timeout)."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the user's URL
            response.read(1024)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, ValueError):
        return None


class Spool:
    """Reports on disk until delivered: ``pending/`` and ``rejected/`` under one directory."""

    def __init__(self, directory: str) -> None:
        self.pending = Path(directory) / "pending"
        self.rejected = Path(directory) / "rejected"
        self.pending.mkdir(parents=True, exist_ok=True)
        self.rejected.mkdir(parents=True, exist_ok=True)

    def put(self, report_id: str, body: bytes) -> None:
        path = self._path(report_id)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def read(self, report_id: str) -> bytes | None:
        try:
            return self._path(report_id).read_bytes()
        except OSError:
            return None

    def remove(self, report_id: str) -> None:
        self._path(report_id).unlink(missing_ok=True)

    def reject(self, report_id: str) -> None:
        try:
            os.replace(self._path(report_id), self.rejected / f"{report_id}.json")
        except OSError:
            pass

    def spooled_at(self, report_id: str) -> float:
        try:
            return self._path(report_id).stat().st_mtime
        except OSError:
            return time.time()

    def ids(self) -> list[str]:
        """What is waiting, oldest first."""
        files = [p for p in self.pending.glob("*.json")]
        files.sort(key=lambda p: p.stat().st_mtime if p.exists() else 0.0)
        return [p.stem for p in files]

    def _path(self, report_id: str) -> Path:
        if not report_id or any(not (c.isalnum() or c in "-_") for c in report_id):
            raise ValueError("bad report id")
        return self.pending / f"{report_id}.json"


class ReportSender:
    """Delivers reports to ``url``: spool, sign, POST, back off, retry, survive restarts."""

    def __init__(self, url: str, spool_dir: str, secret: str | None = None, *, retention_s: float = RETENTION_S,
                 backoff: Backoff = Backoff(), post: Post = http_post, timeout_s: float = POST_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 name: str = "vb-reports") -> None:
        self.url = url
        self.spool = Spool(spool_dir)
        self._secret = secret
        self._retention_s = retention_s
        self._post = post
        self._timeout_s = timeout_s
        self._clock = clock
        self._wall = wall
        self._queue = DeliveryQueue(backoff)
        self._spooled_at: dict[str, float] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._down_since: int | None = None  # retries counted when the current outage began
        self.stats = {"submitted": 0, "attempts": 0, "delivered": 0, "retries": 0, "rejected": 0, "expired": 0,
                      "recovered": 0}
        now = clock()
        for report_id in self.spool.ids():  # what a previous process left: sent first
            self._queue.add(report_id, now)
            self._spooled_at[report_id] = self.spool.spooled_at(report_id)
            self.stats["recovered"] += 1
        if self.stats["recovered"]:
            log.info("%d report(s) left in the spool %s: delivering", self.stats["recovered"], spool_dir)
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, report: Mapping[str, Any]) -> None:
        """Spool ``report`` (its ``id`` is the key) and deliver it in the background. Raises OSError
        only if the spool cannot be written (the caller logs it; the report reached its hook)."""
        report_id = str(report["id"])
        self.spool.put(report_id, json.dumps(report, separators=(",", ":")).encode())
        with self._cond:
            self._queue.add(report_id, self._clock())
            self._spooled_at[report_id] = self._wall()
            self.stats["submitted"] += 1
            self._cond.notify()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing waits (tests, the benchmark, a bridge's close)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending == 0:
                return True
            time.sleep(0.01)
        return self.pending == 0

    def close(self, timeout: float = 5.0) -> bool:
        """Stop the worker; what is undelivered stays in the spool for the next process."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------------ the worker
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    now = self._clock()
                    due = self._queue.due(now)
                    if due:
                        break
                    next_at = self._queue.next_at()
                    self._cond.wait(None if next_at is None else min(1.0, max(0.001, next_at - now)))
                if self._closed:
                    return
            for report_id in due:
                if self._closed:
                    return
                self._attempt(report_id)

    def _attempt(self, report_id: str) -> None:
        spooled_at = self._spooled_at.get(report_id, self._wall())
        body = self.spool.read(report_id)
        if body is None or self._wall() - spooled_at > self._retention_s:
            if body is not None:
                self.spool.remove(report_id)
                self.stats["expired"] += 1
                log.error("report %s not delivered within %.0f s of the call: deleted from the spool", report_id,
                          self._retention_s)
            self._finish(report_id)
            return
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: report_id,
                   "User-Agent": "voicebridge-reports"}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(body, self._secret, int(self._wall()))
        self.stats["attempts"] += 1
        status = self._post(self.url, body, headers, self._timeout_s)
        outcome = outcome_of(status)
        if outcome is Outcome.DELIVERED:
            self.spool.remove(report_id)
            self.stats["delivered"] += 1
            if self._down_since is not None:  # back: what waits out a back-off goes now
                log.warning("report target answers again after %d failed attempt(s): delivering the spool",
                            self.stats["retries"] - self._down_since)
                self._down_since = None
                with self._cond:
                    self._queue.hurry(self._clock())
        elif outcome is Outcome.REJECTED:
            self.spool.reject(report_id)
            self.stats["rejected"] += 1
            log.error("report %s rejected by the receiver (HTTP %s): kept in %s, not retried", report_id, status,
                      self.spool.rejected)
        else:
            if self._down_since is None:  # one line per outage, one when it ends
                self._down_since = self.stats["retries"]
                log.warning("report delivery failed (%s): reports wait in the spool %s, retried with back-off",
                            "no answer" if status is None else f"HTTP {status}", self.spool.pending)
            self.stats["retries"] += 1
        with self._cond:
            self._queue.done(report_id, outcome, self._clock())
            if outcome is not Outcome.RETRY:
                self._spooled_at.pop(report_id, None)

    def _finish(self, report_id: str) -> None:
        with self._cond:
            self._queue.forget(report_id)
            self._spooled_at.pop(report_id, None)
