"""What a call leaves behind: its recording and its post-call report (the session's thin shell).

``MediaSession`` tells ``AfterCall`` three things: the call started (a recording begins if the
config asks for one; the returned tap goes on the carrier link, which reports every frame sent
and every clear under its send lock), a caller frame arrived (run thread: one non-blocking
queue put), and the call ended (teardown). At the end the recording is finished on its writer
thread, and only then is the report built and handed on -- to ``on_report(session, report)``
and to the webhook sender -- on that writer thread, or on the hook worker when there is no
recording. None of it runs on the call's audio, TX or model threads.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from . import report as reports_
from ..config import BridgeConfig
from .delivery import ReportSender
from .recording import CallRecording, RecordingResult, file_name

if TYPE_CHECKING:
    from ..carrier.seam import Media
    from .session import MediaSession

ReportHook = Callable[["MediaSession", dict[str, Any]], None]
Senders = Union[ReportSender, Callable[[BridgeConfig], Optional[ReportSender]]]
"""A sender for every call, or one chosen by the call's config (a bridge keeps one per webhook)."""
OWNED_SENDER_WAIT_S = 5.0
"""A session's own sender (no bridge gave one) tries this long before leaving the rest to the spool."""


def default_spool() -> str:
    return os.path.join(tempfile.gettempdir(), "voicebridge-reports")


class AfterCall:
    """One call's recording and report."""

    def __init__(self, session: "MediaSession", on_report: ReportHook | None, sender: Senders | None) -> None:
        self._session = session
        self._on_report = on_report
        self._sender = sender
        self._config: BridgeConfig | None = None
        self._started_at = 0.0
        self.ended_at: float | None = None  # the session clock at the call's end
        self.recording: CallRecording | None = None
        self.report: dict[str, Any] | None = None  # the last report built (also what on_report got)
        # Set once nothing of the call is left to hand on (its report submitted, or none wanted): a
        # closing bridge waits for it before it stops its report senders.
        self.settled = threading.Event()

    def started(self, config: BridgeConfig, at: float) -> CallRecording | None:
        """The call started (run thread, before its threads): a recording if the config asks."""
        self._config, self._started_at = config, at
        if not (config.recording_dir or config.recording_sink):
            return None
        s = self._session
        directory = config.recording_dir or os.path.join(tempfile.gettempdir(), "voicebridge-recordings")
        path = os.path.join(directory, file_name(s.call_sid, s.stream_sid))
        self.recording = CallRecording(path, at, s._clock, s.log, config.recording_sink)
        return self.recording

    def caller_audio(self, event: "Media", now: float) -> None:
        """A caller frame as received (run thread): into the recording, never blocking."""
        if self.recording is not None and event.stream_sid == self._session.stream_sid:
            self.recording.caller(event.payload, now)

    def ended(self, snapshot: dict[str, Any], now: float) -> None:
        """The call is torn down (request thread): finish the recording, then the report."""
        if self._config is None:
            self.settled.set()
            return
        self.ended_at = now
        wanted = (self._on_report is not None or isinstance(self._sender, ReportSender)
                  or bool(self._config.report_url))
        if not wanted:
            self.settled.set()
        if self.recording is not None:
            self.recording.finish(now, lambda result: wanted and self._deliver(snapshot, now, result))
        elif wanted and not self._session._hooks.submit(lambda: self._deliver(snapshot, now, None), "on_report",
                                                        self._session.log):
            # The hook worker is full (or closed): the report still goes, on a thread of its own.
            threading.Thread(target=self._deliver, args=(snapshot, now, None), name="vb-report", daemon=True).start()

    # ------------------------------------------------------------------ off the call's threads
    def _deliver(self, snapshot: dict[str, Any], now: float, recording: RecordingResult | None) -> None:
        try:
            report = self.build(snapshot, now, recording)
            self.report = report
            s = self._session
            if self._on_report is not None:
                try:
                    self._on_report(s, report)
                except Exception:  # noqa: BLE001 - the app's hook: logged with the call's SIDs
                    s.log.exception("on_report hook raised")
            self._send(report)
        finally:
            self.settled.set()

    def _send(self, report: dict[str, Any]) -> None:
        config = self._config
        assert config is not None
        sender, owned = (self._sender(config) if callable(self._sender) else self._sender), False
        if sender is None and config.report_url:
            sender, owned = ReportSender(config.report_url, config.report_spool_dir or default_spool(),
                                         config.report_secret, retention_s=config.report_retention_s,
                                         name=f"vb-reports:{self._session.stream_sid}"), True
        if sender is None:
            return
        try:
            sender.submit(report)
        except OSError as exc:
            self._session.log.error("report %s not spooled (%s): not sent", report["id"], exc)
        if owned:
            sender.wait_idle(OWNED_SENDER_WAIT_S)
            sender.close()

    def build(self, snapshot: dict[str, Any], now: float, recording: RecordingResult | None) -> dict[str, Any]:
        """The report of the call from its final figures (sans-IO apart from the wall clock)."""
        s, config = self._session, self._config
        assert config is not None
        duration = max(0.0, now - self._started_at)
        params = dict(s.custom_parameters)
        who = {"from": params.get("From"), "to": params.get("To"), "call_sid": s.call_sid,
               "stream_sid": s.stream_sid, "carrier": s.carrier.name, "direction": params.get("Direction"),
               "parameters": params}
        rec = None
        if recording is not None:
            rec = {"location": recording.location, "path": recording.path, "seconds": recording.seconds,
                   "format": "wav: 8 kHz 16-bit stereo (left: caller, right: what the caller heard)",
                   "heard_agent_seconds": recording.heard_agent_seconds,
                   "cleared_seconds": recording.cleared_seconds, "events_dropped": recording.events_dropped}
        return reports_.build(report_id=reports_.new_id(), who=who, started_at=time.time() - (s._clock() - self._started_at),
                              duration_s=duration, end_reason=snapshot.get("close_reason"),
                              entries=snapshot.get("transcript", []), metrics=snapshot,
                              usage=snapshot.get("usage", {}), prices=config.prices, recording=rec, amd=_amd(s),
                              analysis=s.analysis.result)


def _amd(session: Any) -> Any:
    """The report's ``amd``: set by the app, else the opening gate's verdict (``timeout`` when none came)."""
    if session.amd is not None:
        return session.amd
    gate = getattr(session, "opening", None)
    if gate is None or not gate.rules.amd:
        return None
    return gate.verdict.value if gate.verdict is not None else ("timeout" if gate.timed_out else None)
