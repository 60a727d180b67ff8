"""The caller's audio: check each Twilio ``media`` message, forward it, measure it.

Runs on the session's run thread, the only thread that forwards caller audio live. Until the
model session is ready (dialing, or a replacement being dialed) frames are kept, up to
``inbound_buffer_ms``, and sent first once it is: nothing the caller says meanwhile is lost. The
audio sent since the server last committed the input buffer is remembered too (same bound): a
replacement session gets it again before anything newer, so a turn the caller was in the middle
of when a socket dropped is not cut either. Every frame's level feeds the barge-in detector;
with the echo gate on, a frame judged to be the agent's own voice coming back does not count
as the caller and is forwarded ``echo_suppression_db`` quieter, so the model's VAD does not
hear the agent interrupt itself either.
"""
from __future__ import annotations

import base64
import threading
from collections import deque

from . import audio
from . import realtime_protocol as rt
from .echo import EchoGate, Verdict, attenuation_table
from . import twilio_protocol as tw
from .calllog import CallLog
from .interruption import BargeIn
from .metrics import CallMetrics
from .model_link import ModelLink


class InboundAudio:
    """Caller frames -> ``input_audio_buffer.append`` and the barge-in detector."""

    def __init__(self, model: ModelLink, barge_in: BargeIn, metrics: CallMetrics, log: CallLog,
                 buffer_ms: int, detect: bool, echo: EchoGate | None = None, suppression_db: float = 0.0) -> None:
        self._model = model
        self._barge_in = barge_in
        self._echo = echo
        self._quieter = attenuation_table(suppression_db) if echo is not None and suppression_db > 0 else None
        self._metrics = metrics
        self._log = log
        self._detect = detect
        frames = max(1, buffer_ms // audio.FRAME_MS)
        self._waiting: "deque[str]" = deque(maxlen=frames)  # not sent yet: no session ready
        self._uncommitted: "deque[str]" = deque(maxlen=frames)  # sent since the last commit
        self._lock = threading.Lock()  # _uncommitted: appended here, cleared and read by the model thread

    def media(self, event: tw.Media, stream_sid: str | None, now: float, listening: bool) -> None:
        """One caller frame; ``listening`` is False once the call is ending (no barge-in then)."""
        self._metrics.add("inbound_frames")
        self._metrics.add("inbound_bytes", len(event.payload))
        if len(event.payload) != audio.FRAME_BYTES:
            self._metrics.add("inbound_wrong_size")
            self._log.once("size", "inbound media of %d bytes (expected %d): forwarded; further ones only counted",
                           len(event.payload), audio.FRAME_BYTES)
        if not self._for_this_stream(event, stream_sid):
            return
        if not event.payload:
            self._forward(event.b64)
            return
        level = audio.dbfs(event.payload)
        verdict = Verdict.CALLER
        if self._echo is not None:
            verdict = self._echo.judge(level, now, self._barge_in.noise_floor)
        if verdict is Verdict.ECHO and self._quieter is not None:
            self._metrics.add("echo_frames_suppressed")
            self._forward(base64.b64encode(event.payload.translate(self._quieter)).decode("ascii"))
        else:
            self._forward(event.b64)
        if self._detect and listening:
            self._barge_in.frame(level, now, verdict is Verdict.CALLER, event.payload)

    def _for_this_stream(self, event: tw.Media, stream_sid: str | None) -> bool:
        if stream_sid is None:
            self._metrics.protocol_error("twilio", "media_before_start")
            self._log.once("early", "media before start: dropped; further ones only counted")
            return False
        if event.stream_sid and event.stream_sid != stream_sid:
            self._metrics.protocol_error("twilio", "wrong_stream_sid")
            self._log.once("sid", "media for another stream (%s): dropped; further ones only counted",
                           tw.safe_sid(event.stream_sid))
            return False
        if not event.stream_sid:
            self._metrics.protocol_error("twilio", "missing_stream_sid")
            self._log.once("nosid", "media without streamSid: forwarded (one socket carries one stream); "
                           "further ones only counted")
        return True

    def committed(self) -> None:
        """The server committed its input buffer (model thread): that audio is in a conversation item."""
        with self._lock:
            self._uncommitted.clear()

    def backlog(self) -> list[str]:
        """The appends a replacement session must get first (model thread, before it is ready)."""
        with self._lock:
            return [rt.input_audio_append(b64) for b64 in self._uncommitted]

    def flush(self) -> None:
        """Send the frames kept while the model was not ready, once it is (also on the timer)."""
        while self._waiting and self._model.ready and self._send(self._waiting[0]):
            self._waiting.popleft()

    def _send(self, b64: str) -> bool:
        if not self._model.send(rt.input_audio_append(b64)):
            return False  # the session went away under us: the frame waits for the next one
        with self._lock:
            self._uncommitted.append(b64)
        return True

    def _forward(self, b64: str) -> None:
        if self._model.lost:
            return
        self.flush()
        if not self._waiting and self._model.ready and self._send(b64):
            return
        if len(self._waiting) == self._waiting.maxlen:
            self._metrics.add("inbound_frames_dropped")
        self._waiting.append(b64)
