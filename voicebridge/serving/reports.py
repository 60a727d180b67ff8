"""A bridge's post-call reports: one sender per webhook, and the reports still on their way at close.

Every call whose config names a ``report_url`` hands its report to a ``ReportSender``
(:mod:`voicebridge.call.delivery`) for that webhook and spool; the bridge keeps one per webhook,
shared by its calls, so a webhook has one worker and one spool reader however many calls end.
A call's report is built after the call, off its threads (after the recording is written), so a
bridge that closes right after a call ended must give it a moment to be handed on before its
senders stop: ``BridgeReports`` keeps those calls too, and its ``close`` does that, bounded.
"""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Callable, Iterable

from ..call.aftercall import default_spool
from ..call.delivery import ReportSender
from ..config import BridgeConfig

if TYPE_CHECKING:
    from ..call.session import MediaSession


def hand_on_reports(ended: Iterable[MediaSession], senders: Callable[[], list[ReportSender]], within_s: float) -> None:
    """A closing bridge's last reports: calls that just ended hand theirs on (built off the call's
    threads, after the recording), then the senders, taken only once those are handed on (a report
    handed on meanwhile may have made one), deliver what they can, all within ``within_s``; what
    is still undelivered stays in the spool for the next process."""
    deadline = time.monotonic() + within_s
    for session in ended:
        session.after.settled.wait(max(0.0, deadline - time.monotonic()))
    for sender in senders():
        sender.wait_idle(max(0.0, deadline - time.monotonic()))
        sender.close(within_s)


class BridgeReports:
    """The report senders of one bridge (by webhook, spool and secret) and its calls whose report
    may still be on its way. Thread-safe: calls end on their own threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.senders: dict[tuple[str, str, str | None], ReportSender] = {}  # one per webhook and spool
        self._settling: set[MediaSession] = set()  # ended calls whose report may still be on its way
        self._closed = False  # after close a late report's call makes and closes a sender of its own

    def sender(self, config: BridgeConfig) -> ReportSender | None:
        """The bridge's one sender for ``config``'s webhook (its worker delivers every call's report)."""
        if not config.report_url:
            return None
        key = (config.report_url, config.report_spool_dir or default_spool(), config.report_secret)
        with self._lock:
            if self._closed:
                return None
            sender = self.senders.get(key)
            if sender is None:
                sender = self.senders[key] = ReportSender(key[0], key[1], key[2], retention_s=config.report_retention_s)
            return sender

    def ended(self, session: MediaSession) -> None:
        """A call ended: its report may be on its way (the calls whose report was handed on are forgotten)."""
        with self._lock:
            self._settling = {s for s in self._settling if not s.after.settled.is_set()} | {session}

    def close(self, within_s: float, closing: Iterable[MediaSession] = ()) -> None:
        """Let the calls that just ended, and ``closing`` (the calls the bridge itself just closed,
        which may not have reached ``ended`` yet), hand their reports on, the senders deliver them,
        then stop the senders: all within ``within_s`` (``hand_on_reports``). A report handed on
        after that gets no shared sender: its call makes one of its own and closes it."""
        with self._lock:
            settling, self._settling = self._settling | set(closing), set()
        hand_on_reports(settling, self._take_senders, within_s)

    def _take_senders(self) -> list[ReportSender]:
        with self._lock:
            self._closed = True
            senders, self.senders = list(self.senders.values()), {}
        return senders
