"""MediaSession: one phone call bridged to one Realtime session.

The threaded shell. The caller's thread runs ``run()`` and reads Twilio; once the stream has
started the session owns exactly three more threads, each running one part's loop:

* ``vb-model``: dials the Realtime service, configures it, reads its events (``ModelLink``,
  ``ModelEvents``);
* ``vb-audio-out``: model deltas -> exact 160-byte frames (``OutboundAudio.frame_loop``);
* ``vb-tx``: frames -> Twilio on a 20 ms grid (``OutboundAudio.tx_loop`` through ``CarrierLink``).

The parts own their state (see docs/architecture.md); this class wires them, reads Twilio,
runs the timers and ends the call: one idempotent ``close``, every thread joined, one summary.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Callable, Protocol

from ..model import client as realtime_client
from ..model import protocol as rt
from ..carrier import seam
from .opening import AnsweredBy, OpeningGate, OpeningRules
from .ending import CallControl
from ..carrier.seam import Carrier
from .flow import CallFlow
from .log import CallLog
from ..config import BridgeConfig
from ..errors import ProtocolError
from .hooks import HookRunner, session_hook
from .uplink import InboundAudio
from .bargein import BargeIn
from ..audio.listening import Listener
from .aftercall import AfterCall
from .analysis import PostCallAnalysis
from .delivery import ReportSender
from .metrics import CallMetrics
from .model_events import ModelEvents
from .continuity import Continuity
from .model_link import Cause, ModelLink
from .downlink import OutboundAudio
from ..audio.playback import MarkOutcome
from .record import CallRecord, Entry
from .turns import Interruption, Turns
from .context import CallContext, CallParts
from .opener import Opener
from .toolcalls import ToolCalls
from .tools import CallInfo
from ..carrier.twilio.adapter import TWILIO
from .carrier_link import CarrierLink

log = logging.getLogger(__name__)

Clock = Callable[[], float]
FUSE_CHECK_S = 0.05
"""The safety fuses and the send-stall check run on the run thread at most this often."""
"""While the opening holds for the AMD verdict, the shared board is asked at most this often."""
TIMERS_EVERY_S = 0.04
"""The run thread's timers (``_timers``) run after a carrier message once this long has passed
on the session's clock since they last ran (or the clock went back), and after every receive
timeout (no message for ``carrier_receive_timeout_s``). Each run asks every part: at 50 caller
frames a second, running them after every message was about a fifth of the run thread's time.
What they decide (deadlines, limits, the fuses, a batch of caller audio that has waited
``append_ms``) is decided up to this much later."""
GIVE_UP_GRACE_S = 0.5
"""A stream told to give up waiting still gets this long for its ``start`` (Twilio sends it right
after ``connected``: a genuine stream in a burst is not closed between the two)."""


class CarrierSocket(Protocol):
    """What the session needs of the Twilio WebSocket (flask-sock's ``ws`` fits)."""

    def send(self, data: str) -> None: ...
    def receive(self, timeout: float | None = None) -> "str | bytes | None": ...
    def close(self, reason: int | None = None, message: str | None = None) -> None: ...


class MediaSession:
    """Bridges one Twilio Media Stream to one OpenAI Realtime session.

    ``run()`` blocks until the call ends; ``close()`` is idempotent and safe from any
    thread. ``metrics`` returns the call's figures as a dict.
    """

    def __init__(
        self,
        twilio_ws: CarrierSocket,
        config: BridgeConfig | None = None,
        connect: realtime_client.Connector | None = None,
        *,
        clock: Clock = time.monotonic,
        on_start: Callable[["MediaSession", seam.Start], BridgeConfig | None] | None = None,
        on_transcript_entry: Callable[["MediaSession", str, str], None] | None = None,
        on_keypad: Callable[["MediaSession", str], None] | None = None,
        on_transfer: Callable[["MediaSession", str], None] | None = None,
        on_end: Callable[["MediaSession"], None] | None = None,
        on_report: Callable[["MediaSession", dict[str, Any]], None] | None = None,
        reports: "ReportSender | Callable[[BridgeConfig], ReportSender | None] | None" = None,
        hooks: HookRunner | None = None,
        on_transcript: Callable[[str, str], None] | None = None,  # deprecated: on_transcript_entry
        on_dtmf: Callable[[str], None] | None = None,  # deprecated: on_keypad
        carrier: Carrier = TWILIO,
    ) -> None:
        self.config = config or BridgeConfig()
        self.carrier = carrier  # whose media stream this is (its wire format, its ids)
        self.stream_sid: str | None = None
        self.call_sid: str | None = None
        self.custom_parameters: dict[str, str] = {}
        # Where the AMD verdict for this call is looked up (set by the Flask integration at start)
        self.answer_source: Callable[[float], AnsweredBy | None] | None = None
        self.close_reason: str | None = None
        self.log = CallLog(log)
        self._connect = connect or realtime_client.connect
        self._clock = clock
        self._transcript_hook = on_transcript_entry or session_hook(on_transcript, "on_transcript", "role, text")
        self._end_hook = on_end
        self._start_hook = on_start
        self._dtmf_hook = on_keypad or session_hook(on_dtmf, "on_dtmf", "digits")
        self._transfer_hook = on_transfer
        # The recording and the post-call report (voicebridge.call.aftercall): off the call's threads
        self.amd: Any = None  # answering-machine detection's result, when the call had one (the report's "amd")
        self.after = AfterCall(self, on_report, reports)
        # Mid-call hooks run on a hook worker, never on this call's threads (voicebridge.call.hooks)
        self._hooks = hooks or HookRunner(f"vb-hooks:{id(self):x}")
        self._owns_hooks = hooks is None
        self._metrics = CallMetrics()
        self._stop = threading.Event()
        self._model_stop = threading.Event()  # the model thread's: later than _stop while an analysis is asked
        self._done = threading.Event()
        self._close_lock = threading.Lock()
        self._closing = self._running = self._torn_down = False
        self._threads: list[threading.Thread] = []
        self._run_thread: threading.Thread | None = None
        self._start_deadline = float("inf")  # set when run() begins
        self._give_up_at = float("inf")  # give_up_waiting_for_start: no start by then, not a call
        self._fuse_checked = float("-inf")
        self._timers_at = float("-inf")  # when _timers last ran
        self._link = CarrierLink(twilio_ws, self._metrics, self.log, self.config.twilio_send_timeout_s,
                                  clock, self.close, carrier)
        self._build(self.config)

    def _build(self, config: BridgeConfig) -> None:
        """The call's parts for ``config`` (again at ``start`` if the app picks another config)."""
        m, log, clock = self._metrics, self.log, self._clock
        ctx = CallContext(config, m, log, clock)
        self.model = model = ModelLink(ctx, self._connect)
        self.listener = Listener(config)
        self.echo = self.listener.gate
        self.outbound = OutboundAudio(self._link, ctx, self.echo)
        self.turns = turns = Turns(model.send, m, log, clock, config.response_created_timeout_s,
                                   lambda kind: model.replace(Cause.UNRESPONSIVE, f"the {kind} request "
                                                              "was never answered"), self.outbound.played_out)
        self.record = CallRecord(clock, self._entry)
        self.control = CallControl(ctx, turns, self.record, self.close)
        self.barge_in = BargeIn(ctx, self.outbound, turns, model, self._interrupted, self.listener)
        self.tools = ToolCalls(ctx, model.send, turns, self.control, self.record, self._call_info)
        self.flow = CallFlow(ctx, model.send, turns, self.control, self.record, self._dtmf, self._busy)
        self._inbound = InboundAudio(ctx, model, self.barge_in)
        parts = CallParts(model, turns, self.outbound, self.barge_in, self.tools, self.control, self.flow,
                          self.record)
        self.continuity = Continuity(ctx, parts, self._quiet, self.close, lambda: self._link.ready,
                                     lambda: self._inbound.resent_from)
        self.analysis = PostCallAnalysis(config.analysis_schema, config.analysis_instructions,
                                         config.analysis_timeout_s, self.record.usage)
        self.opening = OpeningGate(OpeningRules(config.amd, config.amd_timeout_s, config.first_speaker == "callee",
                                                config.callee_silence_ms / 1000))
        # A deferred opening: the gate asks for the greeting, not the first session.updated
        events_config = dataclasses.replace(config, greeting_instructions=None, recording_consent=None) \
            if self.opening.rules.deferred else config
        self._model_events = ModelEvents(CallContext(events_config, m, log, clock), parts, self._inbound.committed)
        self.opener = Opener(ctx, parts, self.opening, lambda: self._model_events.configured,
                             lambda: self.answer_source)

    # ------------------------------------------------------------------ public API
    @property
    def responses(self) -> Turns:
        """The call's agent turns (``turns``; the name before they were one owner)."""
        return self.turns

    @property
    def requests(self) -> Turns:
        """The line of the bridge's own requests, which ``turns`` keeps (the name before)."""
        return self.turns

    @property
    def metrics(self) -> dict[str, Any]:
        """The call's figures (see ``voicebridge.call.metrics.COUNTERS``) as a plain dict."""
        snap = self._metrics.snapshot()
        snap.update(self.outbound.pacer_stats.figures())  # send-side gaps (no lead, no pause between responses)
        snap.update(
            stream_sid=self.stream_sid, call_sid=self.call_sid, close_reason=self.close_reason,
            log_lines_suppressed=self.log.suppressed(), usage=self.record.totals,
            transcript=self.record.entries(), record_entries_dropped=self.record.dropped_entries,
            transfer_to=self.control.transfer_target,
            noise_floor_dbfs=round(self.barge_in.noise_floor, 1),
        )
        if self.echo is not None:
            snap.update(echo_frames=self.echo.stats.echo_frames, echo_caller_frames=self.echo.stats.caller_frames,
                        echo_delay_ms=self.echo.delay_ms, echo_loss_db=round(self.echo.loss_db, 1))
        return snap

    @property
    def threads(self) -> list[threading.Thread]:
        return list(self._threads)

    def run(self) -> None:
        """Bridge the call until Twilio stops or either side disconnects; then tear down."""
        with self._close_lock:
            closed, self._running = self._closing, not self._closing
        if closed:
            self._teardown()
            return
        self._run_thread = threading.current_thread()
        self._start_deadline = self._clock() + self.config.start_timeout_s
        self._link.tune()
        try:
            self._read_carrier()
        except Exception:  # noqa: BLE001 - the call must end cleanly whatever happened
            self.log.exception("session failed")
            self.close("internal error")
        finally:
            self.close(self.close_reason or "twilio loop ended")
            self._teardown()

    @property
    def _call_level(self) -> int:
        """INFO for a call's closing lines; DEBUG for a stream that never became one (never started,
        or refused at its start): anyone can open those, and the refusal is logged where decided."""
        return logging.INFO if self._threads else logging.DEBUG

    def give_up_waiting_for_start(self) -> None:
        """A stream without ``start`` within ``GIVE_UP_GRACE_S`` from now is closed by its own thread
        (never blocks the caller; a stream that has started is not affected)."""
        self._give_up_at = self._clock() + GIVE_UP_GRACE_S

    def close(self, reason: str = "closed") -> None:
        """End the call. Idempotent; from any thread; returns once torn down (outside threads)."""
        with self._close_lock:
            first, running = not self._closing, self._running
            self._closing = True
        if first:
            self.close_reason = reason
            self.log.log(self._call_level, "closing: %s", reason)
            self._stop.set()
            self.outbound.stop()
            if not (self._threads and self.analysis.begin(self.model.send, self.model.ready)):
                self._end_model()  # else after the analysis's answer (teardown)
        me = threading.current_thread()
        if me in self._threads or me is self._run_thread:
            return
        if running:
            self._done.wait(self.config.join_timeout_s * 2 + self.analysis.timeout_s)
        else:
            self._teardown()

    # ------------------------------------------------------------------ Twilio side (run thread)
    def _read_carrier(self) -> None:
        timeout = self.config.twilio_receive_timeout_s
        while not self._stop.is_set():
            try:
                message = self._link.receive(timeout)
            except Exception as exc:  # noqa: BLE001 - ConnectionClosed and friends
                self.close(f"twilio disconnected ({type(exc).__name__})")
                return
            now = self._clock()
            if message is not None:
                self._on_carrier(self.carrier.parse(message), now)
            if message is None or now - self._timers_at >= TIMERS_EVERY_S or now < self._timers_at:
                self._timers_at = now
                self._timers(now)

    def _on_carrier(self, event: seam.CarrierEvent, now: float) -> None:
        if isinstance(event, seam.Media):
            self.after.caller_audio(event, now)  # (a call without a recording: one check there)
            if self.opening.holding:  # a voicemail greeting is not a turn to answer: held back
                self._metrics.add("inbound_frames_held")
                return
            self._inbound.media(event, self.stream_sid, now, listening=self.continuity.ending is None)
        elif isinstance(event, seam.Mark):
            self._on_mark(event, now)
        elif isinstance(event, seam.Start):
            self._on_start(event)
        elif isinstance(event, seam.Stop):
            self.log.info("twilio stop")
            self._inbound.flush(float("inf"))  # the caller's last words still go to the model
            self.close("twilio stop")
        elif isinstance(event, seam.Dtmf):
            self.flow.key(event.digit, now)
        elif isinstance(event, ProtocolError):
            self._metrics.protocol_error(event.side, event.kind)
            self.log.once(f"twilio:{event.kind}", "ignored bad Twilio message: %s; further ones of this kind only "
                          "counted", event)

    def _on_mark(self, event: seam.Mark, now: float) -> None:
        outcome = self.outbound.mark_echoed(event.name, now)
        if outcome is MarkOutcome.FOREIGN:  # never sent by us (or long forgotten): not an echo
            self._metrics.protocol_error(self.carrier.name, "foreign_mark")
            self.log.once("foreign_mark", "mark %r was never sent by this bridge: ignored; further ones only "
                          "counted", event.name[:seam.SAFE_CHARS])
            return
        self._metrics.add("marks_stale" if outcome is MarkOutcome.STALE else "marks_echoed")

    def _on_start(self, event: seam.Start) -> None:
        if self.stream_sid is not None:
            self._metrics.protocol_error(self.carrier.name, "duplicate_start")
            self.log.once("duplicate_start", "ignored duplicate start (stream %s)", event.stream_sid)
            return
        self.stream_sid, self.call_sid = event.stream_sid, event.call_sid
        self.custom_parameters = dict(event.custom_parameters)
        self.log.bind(event.stream_sid, event.call_sid)
        self._metrics.call_started_at = self._clock()
        if self._start_hook is not None:
            chosen = self._safe(lambda: self._start_hook(self, event), "on_start hook")  # type: ignore[misc]
            if chosen is not None and chosen != self.config:
                self.config = chosen  # per-call settings, before any thread or audio exists
                self._build(chosen)
        self.record.started(self._metrics.call_started_at)  # after a rebuild: the record is the call's own
        if self._stop.is_set():  # the hook refused the call (e.g. no valid stream token)
            return
        self.log.info("call started (params: %s)", sorted(name[:seam.SAFE_CHARS] for name in self.custom_parameters))
        self._link.start(event.stream_sid)
        self._link.tap = self.after.started(self.config, self._metrics.call_started_at)
        self.opener.start(self._clock())
        self._start_threads()

    def _start_threads(self) -> None:
        for name, target in (("model", self._model_main), ("audio-out", self.outbound.frame_loop),
                             ("tx", self.outbound.tx_loop)):
            thread = threading.Thread(target=self._guarded(target), name=f"vb-{name}:{self.stream_sid}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()

    def _guarded(self, target: Callable[[], None]) -> Callable[[], None]:
        def body() -> None:
            try:
                target()
            except Exception:  # noqa: BLE001 - logged with call context, then the call ends
                self.log.exception("thread %s failed", threading.current_thread().name)
                self.close("internal error")
        return body

    # ------------------------------------------------------------------ model side (model thread)
    def _model_main(self) -> None:
        try:
            self.model.run(self._model_message, self._model_stop, lambda: rt.session_update(self.config),
                           self.continuity.history, self._inbound.backlog,
                           self.continuity.switched)
        finally:
            self.analysis.model_gone()  # a pending analysis then ends at once, not at its timeout

    def _model_message(self, message: "str | bytes", now: float) -> None:
        if not self.analysis.take(message):  # the post-call analysis's own events, once asked
            self._model_events.handle(message, now)

    def _end_model(self) -> None:
        self._model_stop.set()
        self.model.close()

    # ------------------------------------------------------------------ hooks and part callbacks
    def _entry(self, entry: Entry) -> None:
        hook = self._transcript_hook
        if hook is not None:  # (its text now: a later cut amends the record's entry, not what the hook was given)
            role, text = entry.role, entry.text
            self._submit(lambda: hook(self, role, text), "on_transcript_entry hook")

    def _dtmf(self, digits: str) -> None:
        hook = self._dtmf_hook
        if hook is not None:
            self._submit(lambda: hook(self, digits), "on_keypad hook")

    def _submit(self, call: Callable[[], Any], what: str) -> None:
        """Hand a hook call to the hook worker; a full queue drops it (counted), the call goes on."""
        if not self._hooks.submit(call, what, self.log):
            self._metrics.add("hooks_dropped")
            self.log.once("hooks_dropped", "%s dropped: the hooks are behind (slow hook code?); further ones "
                          "only counted", what)

    def _interrupted(self, locked: Interruption, heard_ms: int) -> None:
        self.record.agent_cut(locked.response_id, heard_ms, locked.received_bytes // 8)
        self.control.interrupted(locked.response_id)

    def _call_info(self) -> CallInfo:
        return CallInfo(self.call_sid, self.stream_sid, dict(self.custom_parameters))

    def _busy(self) -> bool:
        """Someone is talking or about to: the line is not idle."""
        return self.outbound.audible or not self.turns.idle or self.tools.running

    def _quiet(self) -> bool:
        """Nobody talking, nothing on its way, the caller silent: a session can be swapped unheard."""
        return not self._busy() and not self.flow.turn_open(self._clock()) and not self.turns.active

    # ------------------------------------------------------------------ timers (run thread)
    def _timers(self, now: float) -> None:
        """Everything time-driven, checked after a Twilio message or receive timeout (at most every
        ``TIMERS_EVERY_S``)."""
        if self.stream_sid is None and (now > self._start_deadline or now > self._give_up_at):
            # Not a call, and anyone can open such sockets: INFO here; the Flask integration adds one
            # throttled warning for all of them.
            if now > self._give_up_at:
                self.log.info("closed before its start: too many media streams wait for one here")
            else:
                self.log.info("no Twilio start within %.1f s: not a call, closing", self.config.start_timeout_s)
            self.close("no start")
            return
        self.barge_in.poll(now)
        self._inbound.flush(now)
        self.turns.poll(now)  # before the ending's poll: a goodbye heard by now hangs up now
        self.tools.poll(now)
        self.flow.poll(now)
        self.opener.poll(now)
        self.control.poll(now)
        if now - self._fuse_checked >= FUSE_CHECK_S or now < self._fuse_checked:
            self._fuse_checked = now
            self._link.check_stall(now)
            self._fuses(now)
        self.continuity.poll(now)

    def _fuses(self, now: float) -> None:
        if self.barge_in.release_stuck_duck(now):
            self._blow_fuse("duck held with no confirmation")
        if now - self.model.last_event_at <= self.config.safety_fuse_ms / 1000:
            return
        if self.turns.lose_active():
            self._blow_fuse("response active with no events")
        if self.outbound.forget_unechoed_marks():
            self._blow_fuse("marks never echoed")

    def _blow_fuse(self, what: str) -> None:
        self._metrics.add("safety_fuses")
        self.log.warning("SAFETY_FUSE: %s; state force-cleared", what)

    # ------------------------------------------------------------------ teardown
    def _safe(self, fn: Callable[[], Any], what: str) -> Any:
        try:
            return fn()
        except Exception:  # noqa: BLE001 - user hooks must not kill a call
            self.log.exception("%s raised", what)
            return None

    def _teardown(self) -> None:
        with self._close_lock:
            if self._torn_down:
                return
            self._torn_down = True
        if self.analysis.begun:  # the model was kept open for it: its answer (bounded), then close
            self.analysis.wait()
            self._end_model()
        deadline = time.monotonic() + self.config.join_timeout_s
        for thread in self._threads:
            while thread.is_alive() and time.monotonic() < deadline:
                thread.join(FUSE_CHECK_S)
                self._link.check_stall(self._clock())  # a thread stuck in a send is freed by the abort
            if thread.is_alive():
                self._metrics.add("threads_alive_after_close")
                self.log.error("thread %s did not stop in time", thread.name)
        self.outbound.drain()
        self.tools.close()
        target = self.control.transfer_target
        if target is not None and self._transfer_hook is not None:
            # Before the stream closes: closing it is what makes Twilio ask where the caller goes.
            self._safe(lambda: self._transfer_hook(self, target), "on_transfer hook")  # type: ignore[misc]
        self._link.close()
        self._metrics.call_ended_at = self._clock()
        snap = self.metrics
        if not snap["accounting_ok"]:
            self.log.error("frame accounting mismatch: %s", _accounting(snap))
        self.log.log(self._call_level, "call summary: %s", _summary(snap))
        self.after.ended(snap, self._clock())  # a call's recording and report (nothing for a refused stream)
        self._done.set()
        if self._owns_hooks and not self._hooks.close(self.config.join_timeout_s):
            self._metrics.add("threads_alive_after_close")
            self.log.error("a hook did not return within %.1f s of the call's end", self.config.join_timeout_s)
        if self._end_hook is not None:
            self._safe(lambda: self._end_hook(self), "on_end hook")  # type: ignore[misc]


def _accounting(snap: dict[str, Any]) -> str:
    """The frame identity; ``dropped`` is what was never sent (still queued when the call ended, or
    a send failed), not audio the caller lost mid-call (out1 read a hang-up's 600 frames so)."""
    return (f"enqueued={snap['frames_enqueued']} sent={snap['frames_sent']} "
            f"flushed={snap['frames_flushed']} dropped(unsent)={snap['frames_dropped']}")


def _summary(snap: dict[str, Any]) -> str:
    keys = ("audio_deltas", "model_audio_bytes", "inbound_frames", "tx_late_frames",
            "tx_schedule_resets", "first_frame_bytes", "first_delta_to_frame_ms", "barge_in_events",
            "false_barge_ins", "ducks", "clears_sent", "safety_fuses", "model_lost", "model_expired",
            "model_unresponsive", "model_redials", "close_reason")
    parts = [_accounting(snap), f"accounting_ok={snap['accounting_ok']}"]
    parts += [f"{k}={snap.get(k)}" for k in keys]
    for key in ("openai_errors", "protocol_errors", "log_lines_suppressed"):
        if snap[key]:
            parts.append(f"{key}={snap[key]}")
    return " ".join(parts)
