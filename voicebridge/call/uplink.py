"""The caller's audio: check each Twilio ``media`` message, forward it, measure it.

Runs on the session's run thread, the only thread that forwards caller audio live. Frames are
forwarded in ``input_audio_buffer.append`` messages of ``append_ms`` (a batch goes when it is
full, or on the run thread's timer once its first frame is that old): each message costs the
same Python work whatever its size, so fewer of them is the cheapest saving on the bridge's
busiest path; the model hears the audio at most ``append_ms`` later. Until the model session
is ready (dialing, or a replacement being dialed) frames are kept, up to ``inbound_buffer_ms``,
and sent first once it is: nothing the caller says meanwhile is lost. The audio sent since the
server last committed the input buffer is remembered too (same bound): a replacement session
gets it again before anything newer, so a turn the caller was in the middle of when a socket
dropped is not cut either. Every frame goes through the call's ``Listener`` (via ``BargeIn``)
first: with the echo gate on, a frame judged to be only the agent's own voice coming back does
not count as the caller and reaches the model as comfort noise at the line's noise floor, so the
model's VAD does not hear the agent interrupt itself either (docs/barge-in.md).
"""
from __future__ import annotations

from collections import deque

from ..locks import state_lock
from ..audio import mulaw as audio
from ..model import protocol as rt
from ..carrier import seam
from .bargein import BargeIn
from .model_link import ModelLink
from .context import CallContext


class InboundAudio:
    """Caller frames -> ``input_audio_buffer.append`` and the barge-in detector."""

    def __init__(self, ctx: CallContext, model: ModelLink, barge_in: BargeIn) -> None:
        config, metrics, log = ctx.config, ctx.metrics, ctx.log
        buffer_ms, detect, append_ms = config.inbound_buffer_ms, config.barge_in, config.append_ms
        self._model = model
        self._barge_in = barge_in
        self._metrics = metrics
        self._log = log
        self._detect = detect
        self._batch = max(1, append_ms // audio.FRAME_MS) * audio.FRAME_BYTES
        self._batch_s = append_ms / 1000
        self._limit = max(1, buffer_ms // audio.FRAME_MS) * audio.FRAME_BYTES
        self._pending = bytearray()  # accepted, not sent yet (a batch filling, or no session ready)
        self._pending_since = 0.0  # when the oldest pending byte arrived
        self._uncommitted: deque[tuple[float, bytes]] = deque()  # sent since the last commit, oldest first,
        self._uncommitted_bytes = 0  # ... each with when its first frame was heard
        self._heard_at = float("-inf")  # the last frame heard
        self.resent_from = float("-inf")  # the last replacement session was sent the audio heard from then
        self._lock = state_lock()  # _uncommitted: appended here, cleared and read by the model thread

    def media(self, event: seam.Media, stream_sid: str | None, now: float, listening: bool) -> None:
        """One caller frame; ``listening`` is False once the call is ending (no barge-in then)."""
        payload = event.payload
        self._heard_at = now
        self._metrics.frame_received(len(payload))
        if len(payload) != audio.FRAME_BYTES:
            self._metrics.add("inbound_wrong_size")
            self._log.once("size", "inbound media of %d bytes (expected %d): forwarded; further ones only counted",
                           len(payload), audio.FRAME_BYTES)
        ours = event.stream_sid and event.stream_sid == stream_sid  # the common case: nothing to check or count
        if not ours and not self._for_this_stream(event, stream_sid) or not payload:
            return
        forward = self._barge_in.hear(payload, now, self._detect and listening, event.timestamp_ms)
        if self._barge_in.take_onset_commit():
            self._barge_in.onset_committed(self._commit_before(now))
        self._forward(forward, now)

    def _commit_before(self, now: float) -> bool:
        """Commit the model's input buffer up to the frame just heard: what waits in the batch
        goes first, so the commit falls at the onset (False: not sent, nothing is pending on it)."""
        if self._pending:
            if not self._model.ready or not self._send(bytes(self._pending), self._pending_since):
                return False
            self._pending.clear()
        return self._model.send(rt.buffer_commit())

    def _for_this_stream(self, event: seam.Media, stream_sid: str | None) -> bool:
        if stream_sid is None:
            self._metrics.protocol_error("twilio", "media_before_start")
            self._log.once("early", "media before start: dropped; further ones only counted")
            return False
        if event.stream_sid and event.stream_sid != stream_sid:
            self._metrics.protocol_error("twilio", "wrong_stream_sid")
            self._log.once("sid", "media for another stream (%s): dropped; further ones only counted",
                           seam.safe_id(event.stream_sid))
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
            self._uncommitted_bytes = 0

    def backlog(self) -> list[str]:
        """The appends a replacement session must get first (model thread, before it is ready).
        ``resent_from``: the new session's buffer holds the caller's audio from then on (what is
        pending goes after it; with neither, from the next frame): older audio is in no buffer."""
        with self._lock:
            data = b"".join(chunk for _, chunk in self._uncommitted)
            self.resent_from = (self._uncommitted[0][0] if self._uncommitted else self._pending_since
                                if self._pending else self._heard_at)
        return [rt.audio_append(data)] if data else []

    def flush(self, now: float | None = None) -> None:
        """Send what waits once a session is ready: everything, if a batch is full or (on the
        run thread's timer, with ``now``) the oldest frame has waited ``append_ms``."""
        if not self._pending or not self._model.ready:
            return
        if len(self._pending) < self._batch and (now is None or now - self._pending_since < self._batch_s):
            return
        if self._send(bytes(self._pending), self._pending_since):
            self._pending.clear()

    def _send(self, data: bytes, since: float) -> bool:
        if not self._model.send(rt.audio_append(data)):
            return False  # the session went away under us: the audio waits for the next one
        with self._lock:
            self._uncommitted.append((since, data))
            self._uncommitted_bytes += len(data)
            while self._uncommitted_bytes > self._limit and len(self._uncommitted) > 1:
                self._uncommitted_bytes -= len(self._uncommitted.popleft()[1])
        return True

    def _forward(self, payload: bytes, now: float) -> None:
        if self._model.lost:
            return
        if not self._pending:
            self._pending_since = now
        self._pending += payload
        over = len(self._pending) - self._limit
        if over > 0:  # no session for longer than the bound: the oldest frames go
            whole = -(-over // audio.FRAME_BYTES) * audio.FRAME_BYTES
            del self._pending[:whole]
            self._pending_since += whole // audio.FRAME_BYTES * audio.FRAME_MS / 1000  # (about: 20 ms a frame)
            self._metrics.add("inbound_frames_dropped", whole // audio.FRAME_BYTES)
        self.flush()
