"""MediaSession: one phone call bridged to one Realtime session.

The threaded shell around the sans-IO pieces. The caller's thread runs ``run()`` and reads
Twilio; the session owns exactly three more threads, joined by ``queue.Queue``:

* ``openai-rx``: reads server events, routes audio deltas to the audio queue, drives
  response state and server-side barge-in;
* ``audio-out``: audio queue -> ``Framer`` -> TX queue (exact 160-byte frames);
* ``tx``: TX queue -> ``Pacer`` -> Twilio, one frame per message on a 20 ms grid.

Every write to the Twilio socket holds ``_twilio_lock`` (flask-sock's ``send`` is not
thread-safe). A barge-in bumps the generation *under that lock*, and the TX thread checks
the generation under it before each frame, so no media frame can follow the ``clear``.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from . import audio, bargein, realtime_client
from . import tcp
from . import realtime_protocol as rt
from . import twilio_protocol as tw
from .config import BridgeConfig
from .errors import ProtocolError
from .framing import Framer
from .metrics import CallMetrics
from .pacing import Pacer
from .playback import PlaybackTracker

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class TwilioSocket(Protocol):
    """What the session needs of the Twilio WebSocket (flask-sock's ``ws`` fits)."""

    def send(self, data: str) -> None: ...
    def receive(self, timeout: float | None = None) -> "str | bytes | None": ...
    def close(self, reason: int | None = None, message: str | None = None) -> None: ...


class _Wakeup:
    """A self-clearing event for one waiter, built on a bare lock.

    The TX thread waits for every frame's slot, 50 times a second per call. ``Event.wait`` goes
    through a Python-level Condition (~70 us of CPU per timed wait on a VM); a timed
    ``Lock.acquire`` is one C call (~50 us, about a plain sleep: benchmarks/wakeups.py), and
    ``set`` still ends the wait at once for a barge-in flush, a resume or a close.
    """

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


@dataclass(frozen=True)
class _Frame:
    generation: int
    response_id: str
    item_id: str
    data: bytes


@dataclass(frozen=True)
class _EndOfItem:
    """Response audio finished: the TX loop marks it so we learn when playback ends."""
    generation: int
    response_id: str
    item_id: str


@dataclass(frozen=True)
class _Delta:
    generation: int
    response_id: str
    item_id: str
    audio: bytes


_STOP = object()
FUSE_CHECK_S = 0.05
"""The safety fuses are checked on the run thread's receive loop at most this often."""


class _CallLog(logging.LoggerAdapter):
    """Prefixes every line with the call's stream and call SIDs."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        ctx = self.extra or {}
        return f"[{ctx.get('stream_sid') or '-'} {ctx.get('call_sid') or '-'}] {msg}", kwargs


class MediaSession:
    """Bridges one Twilio Media Stream to one OpenAI Realtime session.

    ``run()`` blocks until the call ends; ``close()`` is idempotent and safe from any
    thread. ``metrics`` returns the call's figures as a dict.
    """

    def __init__(
        self,
        twilio_ws: TwilioSocket,
        config: BridgeConfig | None = None,
        connect: realtime_client.Connector | None = None,
        *,
        clock: Clock = time.monotonic,
        on_transcript: Callable[[str, str], None] | None = None,
        on_end: Callable[["MediaSession"], None] | None = None,
        on_start: Callable[["MediaSession", tw.Start], BridgeConfig | None] | None = None,
    ) -> None:
        self.config = config or BridgeConfig()
        self._twilio = twilio_ws
        self._connect = connect or realtime_client.connect
        self._clock = clock
        self._on_transcript = on_transcript
        self._on_end = on_end
        self._on_start = on_start
        self._metrics = CallMetrics()
        self.stream_sid: str | None = None
        self.call_sid: str | None = None
        self.custom_parameters: dict[str, str] = {}
        self.close_reason: str | None = None
        self._ctx: dict[str, Any] = {"stream_sid": None, "call_sid": None}
        self.log = _CallLog(log, self._ctx)
        # queues and threads
        self._audio_q: "queue.Queue[Any]" = queue.Queue()
        self._tx_q: "queue.Queue[Any]" = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._openai: realtime_client.RealtimeConnection | None = None
        self._outbound: tw.Outbound | None = None
        self._stream_ready = threading.Event()
        # locks and flags
        # bounded: a send blocked on a peer that stopped reading must not wedge barge-in or close
        self._twilio_lock = tcp.SendLock(lambda: self.config.twilio_send_timeout_s, self._twilio_stalled)
        self._stalled = False
        self._warned: set[str] = set()  # one log line per kind of repeated fault; the rest are counted
        self._state_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._stop = threading.Event()
        self._tx_wake = _Wakeup()
        self._done = threading.Event()
        self._closing = False
        self._torn_down = False
        self._running = False
        self._run_thread: threading.Thread | None = None
        # outbound audio state (generation and pause are read by TX under _twilio_lock)
        self._generation = 0
        self._paused = False
        self._paused_at: float | None = None
        self._playback = PlaybackTracker()
        self._pacer = Pacer(lead_frames=self.config.lead_frames,
                            late_tolerance_s=self.config.late_tolerance_ms / 1000)  # TX thread only
        # response state, under _state_lock
        self._response_id: str | None = None
        self._response_active = False
        self._item_id: str | None = None
        self._greeting_pending = False
        self._greeting_response_id: str | None = None
        self._handled_response: str | None = None
        self._interrupted: set[str] = set()  # response ids and item ids whose late deltas are dropped
        self._item_bytes: dict[str, int] = {}
        # audio of the current generation still inside the bridge (deltas not yet framed,
        # frames not yet sent); a barge-in zeroes both, older audio is never counted again
        self._live_deltas = 0
        self._live_frames = 0
        self._session_configured = False
        self._model_lost: str | None = None  # set once the model is gone; the run thread apologizes
        self._last_openai_event = clock()
        # barge-in
        cfg = self.config
        self._detector = bargein.LevelDetector(cfg.barge_in_threshold_dbfs, cfg.barge_in_frames, cfg.duck)
        self._false_trigger = bargein.FalseTriggerMonitor(cfg.false_trigger_ms / 1000)
        self._speech_onset: float | None = None
        self._fuse_checked = float("-inf")

    # ------------------------------------------------------------------ public API
    @property
    def metrics(self) -> dict[str, Any]:
        """The call's figures (see ``voicebridge.metrics.COUNTERS``) as a plain dict."""
        snap = self._metrics.snapshot()
        snap["tx_late_frames"] = self._pacer.stats.late_frames
        snap["tx_schedule_resets"] = self._pacer.stats.schedule_resets
        pstats = self._pacer.stats  # send-side gaps (the lead and pauses between responses excluded)
        snap["tx_gaps"] = pstats.gaps
        snap["tx_gap_bursts"] = pstats.gap_bursts
        snap["tx_gap_stalls"] = pstats.gap_stalls
        snap["tx_gap_max_dev_ms"] = round(pstats.gap_max_dev_s * 1000, 3)
        snap["tx_gap_dev_hist"] = list(pstats.gap_dev_hist)  # 0.1 ms bins of |gap - 20 ms|, last = >= 10 ms
        snap["stream_sid"] = self.stream_sid
        snap["call_sid"] = self.call_sid
        snap["close_reason"] = self.close_reason
        return snap

    @property
    def threads(self) -> list[threading.Thread]:
        return list(self._threads)

    def run(self) -> None:
        """Bridge the call until Twilio stops or either side disconnects; then tear down."""
        if self._closing:
            self._teardown()
            return
        self._running = True
        self._run_thread = threading.current_thread()
        tcp.no_delay(self._twilio)
        tcp.bound_sends(self._twilio, self.config.twilio_send_timeout_s)
        try:
            if self._open_openai():
                self._start_threads()
                self._read_twilio()
            if self._model_lost and not self._stop.is_set():
                reason = self._model_lost
                self._watch_sends(lambda: self._apologize(reason))
        except Exception:  # noqa: BLE001 - the call must end cleanly whatever happened
            self.log.exception("session failed")
            self.close("internal error")
        finally:
            self.close(self.close_reason or "twilio loop ended")
            self._teardown()

    def close(self, reason: str = "closed") -> None:
        """End the call. Idempotent; from any thread; returns once torn down (outside threads)."""
        with self._close_lock:
            first = not self._closing
            self._closing = True
        if first:
            self.close_reason = reason
            self.log.info("closing: %s", reason)
            self._stop.set()
            self._tx_wake.set()
            self._audio_q.put(_STOP)
            self._tx_q.put(_STOP)
            conn = self._openai
            if conn is not None:
                self._safe(conn.close, "openai close")
        me = threading.current_thread()
        if me in self._threads or me is self._run_thread:
            return
        if self._running:
            self._done.wait(self.config.join_timeout_s * 2)
        else:
            self._teardown()

    # ------------------------------------------------------------------ setup
    def _open_openai(self) -> bool:
        try:
            self._openai = self._connect(self.config)
        except Exception as exc:  # noqa: BLE001 - refused, timeout, 401...: end the call cleanly
            self.log.error("cannot reach the Realtime endpoint: %s", _describe(exc))
            self._metrics.error("connect_failed")
            self._lose_model("openai unreachable")
            return False
        return True

    def _start_threads(self) -> None:
        for name, target in (("openai-rx", self._openai_loop), ("audio-out", self._audio_loop),
                             ("tx", self._tx_loop)):
            thread = threading.Thread(target=self._guarded(target), name=f"vb-{name}", daemon=True)
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

    def _rename_threads(self) -> None:
        for thread in self._threads:
            base = thread.name.split(":")[0]
            thread.name = f"{base}:{self.stream_sid}"

    # ------------------------------------------------------------------ Twilio side (run thread)
    def _read_twilio(self) -> None:
        timeout = self.config.twilio_receive_timeout_s
        while not self._stop.is_set() and not self._model_lost:
            try:
                message = self._twilio.receive(timeout=timeout)
            except Exception as exc:  # noqa: BLE001 - ConnectionClosed and friends
                self.close(f"twilio disconnected ({type(exc).__name__})")
                return
            now = self._clock()
            if message is not None:
                self._handle_twilio(tw.parse(message), now)
            self._tick(now)

    def _handle_twilio(self, event: tw.TwilioEvent, now: float) -> None:
        if isinstance(event, tw.Media):
            self._on_media(event, now)
        elif isinstance(event, tw.Mark):
            self._on_mark(event, now)
        elif isinstance(event, tw.Start):
            self._on_twilio_start(event)
        elif isinstance(event, tw.Stop):
            self.log.info("twilio stop")
            self.close("twilio stop")
        elif isinstance(event, tw.Dtmf):
            self.log.info("dtmf digit %s", event.digit)
        elif isinstance(event, ProtocolError):
            self._metrics.protocol_error(event.side, event.kind)
            self.log.warning("ignored bad Twilio message: %s", event)

    def _on_twilio_start(self, event: tw.Start) -> None:
        if self.stream_sid is not None:
            self._metrics.protocol_error("twilio", "duplicate_start")
            self.log.warning("ignored duplicate start (stream %s)", event.stream_sid)
            return
        self.stream_sid, self.call_sid = event.stream_sid, event.call_sid
        self.custom_parameters = dict(event.custom_parameters)
        self._ctx.update(stream_sid=event.stream_sid, call_sid=event.call_sid)
        self._outbound = tw.Outbound(event.stream_sid)
        self._metrics.call_started_at = self._clock()
        self._rename_threads()
        self.log.info("call started (params: %s)", sorted(self.custom_parameters))
        if self._on_start is not None:
            self._safe(lambda: self._apply_call_config(self._on_start(self, event)), "on_start hook")
        self._send_openai(rt.session_update(self.config))
        self._stream_ready.set()

    def _apply_call_config(self, config: BridgeConfig | None) -> None:
        """Per-call settings chosen from the call's custom parameters, before any audio flows."""
        if config is None or config == self.config:
            return
        self.config = config
        self._detector = bargein.LevelDetector(config.barge_in_threshold_dbfs, config.barge_in_frames, config.duck)
        self._false_trigger = bargein.FalseTriggerMonitor(config.false_trigger_ms / 1000)
        self._pacer = Pacer(lead_frames=config.lead_frames, late_tolerance_s=config.late_tolerance_ms / 1000)

    def _on_media(self, event: tw.Media, now: float) -> None:
        self._metrics.add("inbound_frames")
        self._metrics.add("inbound_bytes", len(event.payload))
        if len(event.payload) != audio.FRAME_BYTES:
            self._metrics.add("inbound_wrong_size")
            self._warn_once("size", "inbound media of %d bytes (expected %d): forwarded; further ones only counted",
                            len(event.payload), audio.FRAME_BYTES)
        if self.stream_sid is None:
            self._metrics.protocol_error("twilio", "media_before_start")
            self._warn_once("early", "media before start: dropped; further ones only counted")
            return
        if event.stream_sid and event.stream_sid != self.stream_sid:
            self._metrics.protocol_error("twilio", "wrong_stream_sid")
            self._warn_once("sid", "media for another stream (%s): dropped; further ones only counted",
                            event.stream_sid[:40])
            return
        if not event.stream_sid:
            self._metrics.protocol_error("twilio", "missing_stream_sid")
            self._warn_once("nosid", "media without streamSid: forwarded (one socket carries one stream); "
                            "further ones only counted")
        self._send_openai(rt.input_audio_append(event.b64))
        if self.config.barge_in and event.payload:
            self._detect(audio.dbfs(event.payload), now)

    def _on_mark(self, event: tw.Mark, now: float) -> None:
        with self._state_lock:
            outcome = self._playback.echoed(event.name, now)
        self._metrics.add({"played": "marks_echoed", "stale": "marks_stale"}.get(outcome, "marks_echoed"))

    # ------------------------------------------------------------------ barge-in
    def _guard_state(self) -> bargein.GuardState:
        """Sample the guard facts; caller holds ``_state_lock``."""
        return bargein.GuardState(
            barge_in_enabled=self.config.barge_in,
            in_greeting=self._response_id is not None and self._response_id == self._greeting_response_id,
            greeting_interruptible=self.config.greeting_interruptible,
            ai_speaking=self._ai_speaking(),
            response_active=self._response_active,
            already_handled=self._response_id is not None and self._handled_response == self._response_id,
        )

    def _ai_speaking(self) -> bool:
        """Audio of the current generation is queued, being sent, or still playing at Twilio."""
        return self._live_deltas > 0 or self._live_frames > 0 or self._playback.pending_marks > 0

    def _detect(self, level: float, now: float) -> None:
        loud = self._detector.is_loud(level)
        if loud:
            with self._state_lock:
                armed = bargein.guard(self._guard_state()) is None
        else:
            armed = False  # a quiet frame gives the same decision armed or not: skip the guard sample
        self._false_trigger.level(loud, now)
        decision = self._detector.feed(level, armed)
        if decision is bargein.Decision.DUCK:
            self._speech_onset = now
            self._set_paused(True, now)
            self._metrics.add("ducks")
            self.log.info("duck: caller loud (%.1f dBFS), sending paused", level)
        elif decision is bargein.Decision.RELEASE:
            self._set_paused(False, now)
            self._metrics.add("duck_releases")
            self.log.info("duck released: loud run ended before confirmation")
        elif decision is bargein.Decision.CONFIRM:
            onset = self._speech_onset if self._speech_onset is not None else now
            self._barge_in("local", now, onset)
        elif loud and armed and self._detector.run == 1:
            self._speech_onset = now

    def _set_paused(self, paused: bool, now: float) -> None:
        with self._twilio_lock:
            self._paused = paused
            self._paused_at = now if paused else None
        self._tx_wake.set()

    def _barge_in(self, source: str, now: float, onset: float | None = None) -> bool:
        """The interruption procedure; locked by response id so two triggers run it once."""
        with self._state_lock:
            state = self._guard_state()
            steps = bargein.plan(state)
            if steps is None:
                reason = bargein.guard(state)
                self.log.debug("%s barge-in ignored: %s", source, reason)
                return False
            response_id, item_id = self._response_id, self._item_id
            self._handled_response = response_id
            if response_id:
                self._interrupted.add(response_id)
            if item_id:
                self._interrupted.add(item_id)
        self.log.info("barge-in (%s) confirmed on response %s", source, response_id)
        self._stop_audio(now)
        if steps.cancel:
            self._send_openai(rt.response_cancel(response_id))
            self.log.info("response.cancel sent for %s", response_id)
        if steps.truncate and item_id:
            self._truncate(item_id, now)
        with self._state_lock:
            if self._response_id == response_id:
                self._response_active = False
                self._response_id = None
                self._item_id = None
        self._detector.reset()
        self._metrics.add("barge_in_events")
        self._metrics.add(f"barge_in_{source}")
        if onset is not None:
            self._metrics.barge_in_latency((now - onset) * 1000)
        if source == "local":
            self._false_trigger.start(now, loud=True)
        return True

    def _stop_audio(self, now: float, clear: bool = True) -> None:
        """No media frame leaves after this: bump the generation and clear, under the send lock."""
        with self._twilio_lock:
            self._generation += 1
            self._paused = False
            self._paused_at = None
            with self._state_lock:
                self._playback.cleared()
                flushing = self._live_frames
                self._live_deltas = self._live_frames = 0
            if not clear:
                pass
            elif self._outbound is None:
                self.log.warning("clear not sent: no streamSid yet")
            else:
                try:
                    self._twilio.send(self._outbound.clear())
                    self._metrics.add("clears_sent")
                    self.log.info("twilio clear sent")
                except Exception as exc:  # noqa: BLE001
                    self._metrics.add("send_failures")
                    self.log.warning("twilio clear failed: %s", _describe(exc))
                    self._check_stall(exc, "clear")
        # Queued frames and deltas now carry an old generation: the TX and audio-out threads
        # discard them where they find them (counted as flushed), so nothing newer is lost.
        self._tx_wake.set()
        self.log.info("flushing %d queued frames", flushing)

    def _truncate(self, item_id: str, now: float) -> None:
        with self._state_lock:
            heard = self._playback.heard_ms(item_id, now)
            received_ms = self._item_bytes.get(item_id, 0) // audio.BYTES_PER_MS
        audio_end_ms = max(0, min(heard, received_ms))
        self._send_openai(rt.item_truncate(item_id, audio_end_ms))
        self._metrics.add("truncates_sent")
        self.log.info("truncate %s at %d ms (received %d ms)", item_id, audio_end_ms, received_ms)

    # ------------------------------------------------------------------ model unavailable
    def _apologize(self, reason: str) -> None:
        """The model is unreachable or lost: play the apology prompt instead of dead air, then end.

        Runs in the run thread once the TX thread has nothing more to send. Model audio still
        queued is flushed (generation bump + clear) so the apology is not mixed with it.
        """
        cfg = self.config
        prompt = cfg.apology_audio if cfg.apology_audio is not None else _bundled_apology()
        if not cfg.apology or not prompt or not self._await_stream_start(cfg.apology_start_wait_s):
            self.close(reason)
            return
        self.log.warning("model unavailable (%s): playing the apology prompt", reason)
        self._stop_audio(self._clock(), clear=self._metrics.get("frames_sent") > 0)
        framer = Framer()
        frames = framer.push(prompt) + framer.end()
        if not self._send_paced(frames):
            self.close(reason)
            return
        name = "vb-apology"
        with self._twilio_lock:
            self._safe(lambda: self._twilio.send(self._outbound.mark(name)), "apology mark")  # type: ignore[union-attr]
        self._await_mark(name, len(frames) * 0.02 + 2.0)
        self.close(reason)

    def _await_stream_start(self, limit_s: float) -> bool:
        """Read Twilio until ``start`` (the apology needs a streamSid); False if it never comes."""
        deadline = self._clock() + limit_s
        while self._outbound is None and not self._stop.is_set() and self._clock() < deadline:
            try:
                message = self._twilio.receive(timeout=0.05)
            except Exception:  # noqa: BLE001 - caller gone: nothing to apologize to
                return False
            if message is not None:
                event = tw.parse(message)
                if isinstance(event, tw.Start):
                    self._on_twilio_start(event)
        return self._outbound is not None

    def _send_paced(self, frames: list[bytes]) -> bool:
        """Send frames on the 20 ms grid from this thread (the TX thread is idle by now)."""
        pacer = Pacer(lead_frames=self.config.lead_frames)
        self._metrics.add("frames_enqueued", len(frames))
        for i, frame in enumerate(frames):
            delay = pacer.delay(self._clock())
            if delay > 0 and self._stop.wait(delay):
                self._metrics.add("frames_dropped", len(frames) - i)
                return False
            try:
                with self._twilio_lock:
                    self._twilio.send(self._outbound.media(frame))  # type: ignore[union-attr]
            except Exception as exc:  # noqa: BLE001 - caller hung up during the apology
                self.log.info("apology interrupted: %s", _describe(exc))
                self._metrics.add("frames_dropped", len(frames) - i)
                return False
            pacer.sent(self._clock())
            self._metrics.frame_sent(len(frame), self._clock())
        return True

    def _await_mark(self, name: str, limit_s: float) -> None:
        """Wait until Twilio has played the apology (its mark echoes) before hanging up."""
        deadline = self._clock() + limit_s
        while not self._stop.is_set() and self._clock() < deadline:
            try:
                message = self._twilio.receive(timeout=0.05)
            except Exception:  # noqa: BLE001
                return
            event = tw.parse(message) if message is not None else None
            if isinstance(event, tw.Mark) and event.name == name:
                return
            if isinstance(event, tw.Stop):
                return

    # ------------------------------------------------------------------ periodic checks
    def _tick(self, now: float) -> None:
        """Timers: false-trigger recovery and the safety fuses (run thread, every receive)."""
        if self._false_trigger.poll(now):
            self._metrics.add("false_barge_ins")
            self.log.info("false barge-in: no speech followed; asking the model to continue")
            self._send_openai(rt.response_create(self.config.continue_instructions))
        if now - self._fuse_checked >= FUSE_CHECK_S or now < self._fuse_checked:
            self._fuse_checked = now  # two locks per check: at most every FUSE_CHECK_S, not per frame
            self._fuse(now)

    def _fuse(self, now: float) -> None:
        cfg = self.config
        with self._twilio_lock:
            stuck_duck = self._paused and self._paused_at is not None and now - self._paused_at > cfg.duck_fuse_ms / 1000
            if stuck_duck:
                self._paused = False
                self._paused_at = None
        if stuck_duck:
            self._detector.reset()
            self._tx_wake.set()
            self._blow_fuse("duck held with no confirmation")
        with self._state_lock:
            stale = now - self._last_openai_event > cfg.safety_fuse_ms / 1000
            stuck_response = self._response_active and stale
            if stuck_response:
                self._response_active = False
            stuck_marks = stale and self._playback.pending_marks > 0 and self._tx_q.empty() and self._audio_q.empty()
            if stuck_marks:
                self._playback.forget_pending()
        if stuck_response:
            self._blow_fuse("response active with no events")
        if stuck_marks:
            self._blow_fuse("marks never echoed")

    def _blow_fuse(self, what: str) -> None:
        self._metrics.add("safety_fuses")
        self.log.warning("SAFETY_FUSE: %s; state force-cleared", what)

    # ------------------------------------------------------------------ OpenAI side (openai-rx thread)
    def _openai_loop(self) -> None:
        conn = self._openai
        assert conn is not None
        timeout = self.config.openai_receive_timeout_s
        while not self._stop.is_set():
            try:
                message = conn.recv(timeout)
            except Exception as exc:  # noqa: BLE001 - closed or broken
                if not self._stop.is_set() and not self._model_lost:
                    self.log.warning("Realtime connection lost: %s", _describe(exc))
                    self._lose_model("openai disconnected")
                return
            if message is None:
                continue
            now = self._clock()
            with self._state_lock:
                self._last_openai_event = now
            self._handle_openai(rt.parse(message), now)

    def _handle_openai(self, event: rt.ServerEvent, now: float) -> None:
        handler = self._openai_handlers.get(type(event))
        if handler is not None:
            handler(self, event, now)

    def _on_session_ready(self, event: rt.SessionReady, now: float) -> None:
        if event.type != "session.updated" or self._session_configured:
            return
        self._session_configured = True
        if self.config.greeting:
            with self._state_lock:
                self._greeting_pending = True
            self._send_openai(rt.response_create(self.config.greeting))

    def _on_response_created(self, event: rt.ResponseCreated, now: float) -> None:
        with self._state_lock:
            self._response_id = event.response_id
            self._response_active = True
            self._item_id = None
            if self._greeting_pending:
                self._greeting_pending = False
                self._greeting_response_id = event.response_id
        self._false_trigger.cancel()
        self._metrics.add("responses")
        self.log.info("response %s created", event.response_id)

    def _on_output_item(self, event: rt.OutputItemAdded, now: float) -> None:
        with self._state_lock:
            if event.response_id == self._response_id and event.item_type == "message":
                self._item_id = event.item_id

    def _on_audio_delta(self, event: rt.AudioDelta, now: float) -> None:
        with self._state_lock:
            if event.response_id in self._interrupted or event.item_id in self._interrupted:
                late = True
            else:
                late = False
                if self._item_id is None and event.response_id == self._response_id:
                    self._item_id = event.item_id
                self._item_bytes[event.item_id] = self._item_bytes.get(event.item_id, 0) + len(event.audio)
            generation = self._generation
            if not late:
                self._live_deltas += 1
        if late:
            self._metrics.add("late_deltas_dropped")
            return
        self._metrics.add("audio_deltas")
        self._metrics.add("model_audio_bytes", len(event.audio))
        self._metrics.first_delta(now)
        self._audio_q.put(_Delta(generation, event.response_id, event.item_id, event.audio))

    def _on_audio_done(self, event: rt.AudioDone, now: float) -> None:
        self._end_audio(event.response_id, event.item_id)

    def _end_audio(self, response_id: str, item_id: str) -> None:
        """The response's audio is complete: the framer pads its tail (unless interrupted)."""
        with self._state_lock:
            if response_id in self._interrupted:
                return
            generation = self._generation
        self._audio_q.put(_EndOfItem(generation, response_id, item_id))

    def _on_response_done(self, event: rt.ResponseDone, now: float) -> None:
        with self._state_lock:
            if event.response_id == self._response_id:
                self._response_active = False
            item_id = self._item_id or ""
        self._end_audio(event.response_id, item_id)
        self.log.info("response %s done (%s%s)", event.response_id, event.status,
                      f", {event.reason}" if event.reason else "")

    def _on_speech_started(self, event: rt.SpeechStarted, now: float) -> None:
        self._false_trigger.speech_started()
        self.log.info("server VAD: caller speech started")
        onset = self._speech_onset  # set by a local duck on the same speech, if any
        recent = onset is not None and now - onset < 2.0
        self._barge_in("server", now, onset if recent else None)

    def _on_transcript(self, event: rt.Transcript, now: float) -> None:
        self._false_trigger.user_text(event.text)
        if event.final and self._on_transcript is not None:
            self._safe(lambda: self._on_transcript("caller", event.text), "on_transcript hook")

    def _on_agent_transcript(self, event: rt.AgentTranscript, now: float) -> None:
        if self._on_transcript is not None:
            self._safe(lambda: self._on_transcript("agent", event.text), "on_transcript hook")

    def _on_server_error(self, event: rt.ServerError, now: float) -> None:
        self._metrics.error(event.code)
        if event.benign:
            self.log.info("Realtime error %s (benign): %s", event.code, event.message)
        elif event.fatal:
            self.log.error("Realtime fatal error %s: %s", event.code, event.message)
            self._lose_model(f"openai error {event.code}")
        else:
            self.log.warning("Realtime error %s: %s", event.code, event.message)

    def _on_openai_protocol_error(self, event: ProtocolError, now: float) -> None:
        self._metrics.protocol_error(event.side, event.kind)
        self.log.warning("ignored bad Realtime message: %s", event)

    def _on_other(self, event: rt.Other, now: float) -> None:
        if not event.known:
            self._metrics.add("openai_unknown_events")
            if not self._warn_once(f"event:{event.type[:60]}", "unknown Realtime event type %r: ignored; further "
                                   "ones only counted", event.type[:60], level=logging.INFO):
                self.log.debug("unhandled Realtime event %s", event.type[:60])

    _openai_handlers: dict[type, Callable[..., None]] = {
        rt.SessionReady: _on_session_ready,
        rt.ResponseCreated: _on_response_created,
        rt.OutputItemAdded: _on_output_item,
        rt.AudioDelta: _on_audio_delta,
        rt.AudioDone: _on_audio_done,
        rt.ResponseDone: _on_response_done,
        rt.SpeechStarted: _on_speech_started,
        rt.Transcript: _on_transcript,
        rt.AgentTranscript: _on_agent_transcript,
        rt.ServerError: _on_server_error,
        ProtocolError: _on_openai_protocol_error,
        rt.Other: _on_other,
    }

    # ------------------------------------------------------------------ audio-out thread
    def _audio_loop(self) -> None:
        framer = Framer()
        generation = self._generation
        while True:
            item = self._audio_q.get()
            if item is _STOP or self._stop.is_set():
                break
            if item.generation != self._generation:
                if isinstance(item, _Delta):
                    self._metrics.add("framer_bytes_dropped", len(item.audio))
                continue
            if item.generation != generation:
                generation = item.generation
                self._metrics.add("framer_bytes_dropped", framer.drop())
            if isinstance(item, _Delta):
                self._enqueue(framer.push(item.audio), item, from_delta=True)
            else:
                before = framer.padded_bytes
                self._enqueue(framer.end(), item, from_delta=False)
                self._metrics.add("framer_bytes_padded", framer.padded_bytes - before)
                self._tx_q.put(item)
        self._metrics.add("framer_bytes_dropped", framer.drop())

    def _enqueue(self, frames: list[bytes], src: "_Delta | _EndOfItem", from_delta: bool) -> None:
        with self._state_lock:
            if src.generation == self._generation:
                self._live_deltas -= from_delta
                self._live_frames += len(frames)
        for frame in frames:
            self._metrics.add("frames_enqueued")
            self._tx_q.put(_Frame(src.generation, src.response_id, src.item_id, frame))

    # ------------------------------------------------------------------ TX thread
    def _tx_loop(self) -> None:
        while not self._stream_ready.wait(0.05):
            if self._stop.is_set():
                return
        cfg, pacer = self.config, self._pacer  # final once the stream has started
        last_response: str | None = None
        frames_in_item = 0
        while True:
            item = self._tx_q.get()
            if item is _STOP or self._stop.is_set():
                if isinstance(item, _Frame):
                    self._metrics.add("frames_dropped")
                break
            if isinstance(item, _EndOfItem):
                if item.generation == self._generation and frames_in_item:
                    self._send_mark(item.item_id)
                frames_in_item = 0
                pacer.stop()
                last_response = None
                continue
            if item.response_id != last_response:
                last_response = item.response_id
                frames_in_item = 0
                pacer.begin(self._clock())
            outcome = self._pace_and_send(item, pacer)
            if outcome == "sent":
                frames_in_item += 1
                if cfg.mark_every_frames and frames_in_item % cfg.mark_every_frames == 0:
                    self._send_mark(item.item_id)
            elif outcome == "stop":
                break

    def _pace_and_send(self, frame: _Frame, pacer: Pacer) -> str:
        """Wait for the frame's slot, then send it; ``"sent"``, ``"flushed"`` or ``"stop"``."""
        was_paused = False
        while True:
            if self._stop.is_set():
                self._metrics.add("frames_dropped")
                return "stop"
            if frame.generation != self._generation:
                self._metrics.add("frames_flushed")
                return "flushed"
            now = self._clock()
            if self._paused:
                was_paused = True
                self._tx_wake.wait(0.05)
                continue
            if was_paused:
                was_paused = False
                pacer.begin(now, lead=False)
            delay = pacer.delay(now)
            if delay > 0:
                self._tx_wake.wait(delay)
                continue
            result = self._send_frame(frame, pacer)
            if result != "retry":
                return result

    def _send_frame(self, frame: _Frame, pacer: Pacer) -> str:
        assert self._outbound is not None
        if len(frame.data) != audio.FRAME_BYTES:
            self._metrics.add("outbound_bad_size")
            self._metrics.add("frames_dropped")
            self.log.error("frame of %d bytes refused (must be %d)", len(frame.data), audio.FRAME_BYTES)
            return "flushed"
        message = self._outbound.media(frame.data)
        with self._twilio_lock:
            if frame.generation != self._generation:
                self._metrics.add("frames_flushed")
                return "flushed"
            if self._paused:
                return "retry"
            # The frame's send time is taken as it is handed to the socket: after the syscall this
            # thread may wait for the GIL behind a busy neighbour, and a timestamp taken then
            # would call an on-time frame late and push the next ones to catch up.
            now = self._clock()
            try:
                self._twilio.send(message)
            except Exception as exc:  # noqa: BLE001 - peer gone
                self._metrics.add("send_failures")
                self._metrics.add("frames_dropped")
                self.log.warning("twilio send failed: %s", _describe(exc))
                self._check_stall(exc, "media frame")
                self.close("twilio send failed")
                return "stop"
            pacer.sent(now)
            self._metrics.frame_sent(len(frame.data), now)
            with self._state_lock:
                self._playback.sent(frame.item_id, len(frame.data), now)
                self._live_frames -= 1
        return "sent"

    def _send_mark(self, item_id: str) -> None:
        with self._twilio_lock:
            if self._outbound is None:
                return
            with self._state_lock:
                name = self._playback.new_mark(item_id)
            try:
                self._twilio.send(self._outbound.mark(name))
                self._metrics.add("marks_sent")
            except Exception as exc:  # noqa: BLE001
                self._metrics.add("send_failures")
                self.log.warning("twilio mark failed: %s", _describe(exc))
                self._check_stall(exc, "mark")

    # ------------------------------------------------------------------ helpers and teardown
    def _send_openai(self, text: str) -> bool:
        conn = self._openai
        if conn is None or self._stop.is_set():
            return False
        try:
            conn.send(text)
            return True
        except Exception as exc:  # noqa: BLE001
            if not self._stop.is_set() and not self._model_lost:
                self.log.warning("Realtime send failed: %s", _describe(exc))
                self._lose_model("openai send failed")
            return False

    def _lose_model(self, reason: str) -> None:
        """The model side is gone; the run thread apologizes to the caller and ends the call."""
        with self._close_lock:
            if self._model_lost:
                return
            self._model_lost = reason
        conn = self._openai
        if conn is not None:
            self._safe(conn.close, "openai close")

    def _twilio_stalled(self, what: str) -> None:
        """A Twilio send blocked past the timeout: the peer stopped reading. Abort and end the call."""
        with self._close_lock:
            if self._stalled:
                return
            self._stalled = True
        self._metrics.add("twilio_send_timeouts")
        self.log.error("TWILIO_SEND_TIMEOUT: send blocked for more than %s s (%s): the Twilio side stopped "
                       "reading; ending the call", self.config.twilio_send_timeout_s, what)
        tcp.abort(self._twilio)  # unblocks a send stuck in the socket (it holds the send lock)
        self.close("twilio send timeout")

    def _watch_sends(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` (the apology: this thread sends) while a helper polls the send lock.

        Sends from the TX thread are watched by the run thread (it takes the lock every tick);
        during the apology the run thread sends itself, so a short-lived helper takes the lock
        every 50 ms: a send stuck past the timeout trips the stall handling in ``tcp.SendLock``.
        """
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.05):
                with self._twilio_lock:
                    pass

        watcher = threading.Thread(target=watch, name=f"vb-send-watch:{self.stream_sid}", daemon=True)
        watcher.start()
        try:
            fn()
        finally:
            done.set()
            watcher.join(2 * (self.config.twilio_send_timeout_s or 0) + 1)

    def _check_stall(self, exc: BaseException, what: str) -> None:
        if isinstance(exc, (TimeoutError, BlockingIOError)):  # SO_SNDTIMEO expired
            self._twilio_stalled(what)

    def _warn_once(self, key: str, msg: str, *args: Any, level: int = logging.WARNING) -> bool:
        """Log ``msg`` the first time ``key`` occurs in this call (bounded); True if logged."""
        with self._state_lock:
            if key in self._warned or len(self._warned) >= 64:
                return False
            self._warned.add(key)
        self.log.log(level, msg, *args)
        return True

    def _safe(self, fn: Callable[[], Any], what: str) -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - user hooks and best-effort closes must not kill a call
            self.log.exception("%s raised", what)

    def _teardown(self) -> None:
        with self._close_lock:
            if self._torn_down:
                return
            self._torn_down = True
        me = threading.current_thread()
        for thread in self._threads:
            if thread is not me:
                thread.join(self.config.join_timeout_s)
                if thread.is_alive():
                    self._metrics.add("threads_alive_after_close")
                    self.log.error("thread %s did not stop in time", thread.name)
        self._metrics.add("frames_dropped", _drain(self._tx_q, lambda x: isinstance(x, _Frame)))
        _drain(self._audio_q, lambda x: False)
        self._safe(self._close_twilio, "twilio close")
        snap = self.metrics
        if not snap["accounting_ok"]:
            self.log.error("frame accounting mismatch: %s", _accounting(snap))
        self.log.info("call summary: %s", _summary(snap))
        self._done.set()
        if self._on_end is not None:
            self._safe(lambda: self._on_end(self), "on_end hook")

    def _close_twilio(self) -> None:
        with self._twilio_lock:
            try:
                self._twilio.close()
            except Exception:  # noqa: BLE001 - already closed by the peer: nothing to do
                pass
        tcp.linger(self._twilio, self.config.twilio_send_timeout_s or 2.0)


def _bundled_apology() -> bytes:
    try:
        from .tts import load_prompt

        return load_prompt("apology")
    except (OSError, ModuleNotFoundError):
        return b""


def _drain(q: "queue.Queue[Any]", count: Callable[[Any], bool]) -> int:
    """Empty ``q`` now; return how many items ``count`` selects (a _STOP is put back)."""
    n, saw_stop = 0, False
    while True:
        try:
            item = q.get_nowait()
        except queue.Empty:
            break
        if item is _STOP:
            saw_stop = True
        elif count(item):
            n += 1
    if saw_stop:
        q.put(_STOP)
    return n


def _describe(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _accounting(snap: dict[str, Any]) -> str:
    return (f"enqueued={snap['frames_enqueued']} sent={snap['frames_sent']} "
            f"flushed={snap['frames_flushed']} dropped={snap['frames_dropped']}")


def _summary(snap: dict[str, Any]) -> str:
    keys = ("audio_deltas", "model_audio_bytes", "inbound_frames", "tx_late_frames",
            "tx_schedule_resets", "first_frame_bytes", "first_delta_to_frame_ms", "barge_in_events",
            "false_barge_ins", "ducks", "clears_sent", "safety_fuses", "close_reason")
    parts = [_accounting(snap), f"accounting_ok={snap['accounting_ok']}"]
    parts += [f"{k}={snap.get(k)}" for k in keys]
    if snap["openai_errors"]:
        parts.append(f"openai_errors={snap['openai_errors']}")
    if snap["protocol_errors"]:
        parts.append(f"protocol_errors={snap['protocol_errors']}")
    return " ".join(parts)
