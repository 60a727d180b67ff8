"""The call's recording: a stereo WAV, left the caller as received, right what the caller heard.

"What the caller heard" is not what the model said: a barge-in's ``clear`` throws away audio
the carrier had buffered but not yet played. So the right channel is built the way the carrier
plays: every frame handed to the socket joins the caller's playout queue at the instant it was
sent, the queue plays at 8 kHz (silence when empty), and a ``clear`` drops what is still queued
at its instant -- to the sample. ``HeardChannel`` is that model, sans-IO (the same behaviour as
the simulated caller's ``voicebridge.dev.sim.playout.PlayoutBuffer``, which the tests hold it to).

The file is written while the call goes on, never on the call's threads: the call's threads
only put small events on a bounded queue (``CallRecording.caller`` / ``sent`` / ``cleared``,
never blocking; a full queue drops the event, counted), and one writer thread turns them into
PCM and appends it. The heard channel is played up to ``LAG_S`` behind the clock (an event
stamped earlier may still be on its way from another thread), the WAV header's sizes are
rewritten every ``FLUSH_S`` of audio, so a crash loses about the last second; ``repair`` fixes
a file whose header a crash left behind. At the end the file goes to the user's sink (e.g. an
upload) on the writer thread too, and the location reaches the post-call report.
"""
from __future__ import annotations

import array
import os
import queue
import struct
import sys
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

from ..audio.mulaw import SAMPLE_RATE, SILENCE_BYTE, ULAW_TABLE
from ..errors import close_quietly

LAG_S = 0.5
"""The heard channel is played this far behind the clock while the call runs (events in flight)."""
FLUSH_S = 1.0
"""Audio written (and the header's sizes updated, flushed to the OS) at least this often."""
MAX_EVENTS = 3000
"""Recording events waiting at most (60 s of both directions); beyond it they are dropped, counted."""
MAX_SKEW_S = 5.0
"""One channel may run this far ahead of the other; beyond it the late one is filled with silence."""
HEADER_BYTES = 44

Sink = Callable[[str], "str | None"]
"""Given the finished file's path; returns where the recording now is (e.g. a URL), or None to keep the path."""


class HeardChannel:
    """The caller's playout as the bridge placed it (sans-IO): sends, clears, the clock -> audio heard.

    Times are the bridge's clock, in seconds; ``origin`` is the call's start. Sample positions
    are computed from the origin (no drift), and audio arriving into an empty queue starts at
    its arrival instant.
    """

    def __init__(self, origin: float) -> None:
        self._origin = origin
        self._clock = 0  # samples of call time played
        self._queue: deque[bytes] = deque()
        self._head = 0  # bytes of _queue[0] already played
        self._queued = 0
        self.cleared_bytes = 0  # sent, then dropped by a clear before it played
        self.agent_bytes = 0  # agent audio played

    def sent(self, frame: bytes, at: float) -> bytes:
        """A frame was handed to the carrier at ``at``; returns the audio heard before it."""
        heard = self.advance(at)
        if frame:
            self._queue.append(bytes(frame))
            self._queued += len(frame)
        return heard

    def cleared(self, at: float) -> bytes:
        """A ``clear`` at ``at``: the queue is dropped; returns the audio heard before it."""
        heard = self.advance(at)
        self.cleared_bytes += self._queued
        self._queue.clear()
        self._head = self._queued = 0
        return heard

    def advance(self, at: float) -> bytes:
        """The audio played from the last call up to ``at`` (queued audio first, then silence)."""
        target = int((at - self._origin) * SAMPLE_RATE + 1e-6)
        n = target - self._clock
        if n <= 0:
            return b""
        self._clock = target
        out = bytearray()
        while self._queue and len(out) < n:
            chunk = self._queue[0]
            piece = chunk[self._head:self._head + n - len(out)]
            out += piece
            self._head += len(piece)
            if self._head >= len(chunk):
                self._queue.popleft()
                self._head = 0
        self._queued -= len(out)
        self.agent_bytes += len(out)
        out += bytes([SILENCE_BYTE]) * (n - len(out))
        return bytes(out)

    @property
    def samples(self) -> int:
        return self._clock


def pcm16(ulaw: bytes) -> "array.array[int]":
    return array.array("h", (ULAW_TABLE[b] for b in ulaw))


def interleave(left: bytes, right: bytes) -> bytes:
    """Two mu-law channels of one length -> 16-bit little-endian stereo PCM."""
    pcm = array.array("h", bytes(4 * len(left)))
    pcm[0::2] = pcm16(left)
    pcm[1::2] = pcm16(right)
    if sys.byteorder == "big":
        pcm.byteswap()
    return pcm.tobytes()


class StereoMix:
    """Pairs the two channels sample by sample (sans-IO).

    The right (heard) channel follows the clock; the left takes the caller's frames in order. A
    caller channel more than ``max_skew`` behind (its frames stopped coming) is filled with
    silence, so what waits for its other half stays bounded."""

    def __init__(self, max_skew: int = int(MAX_SKEW_S * SAMPLE_RATE)) -> None:
        self._left = bytearray()
        self._right = bytearray()
        self._max_skew = max_skew
        self.filled = 0  # silence samples put into a channel that fell more than max_skew behind

    def add(self, left: bytes = b"", right: bytes = b"") -> bytes:
        """Add audio to either channel; returns the stereo PCM now complete."""
        self._left += left
        self._right += right
        behind = len(self._right) - len(self._left) - self._max_skew  # the caller's frames stopped coming
        if behind > 0:
            self._left += bytes([SILENCE_BYTE]) * behind
            self.filled += behind
        return self._take(min(len(self._left), len(self._right)))

    def finish(self, samples: int) -> bytes:
        """The rest, both channels padded with silence (or cut) to ``samples`` in all."""
        self._left += bytes([SILENCE_BYTE]) * max(0, samples - len(self._left))
        self._right += bytes([SILENCE_BYTE]) * max(0, samples - len(self._right))
        return self._take(samples)

    def _take(self, n: int) -> bytes:
        if n <= 0:
            return b""
        out = interleave(bytes(self._left[:n]), bytes(self._right[:n]))
        del self._left[:n]
        del self._right[:n]
        return out


def wav_header(data_bytes: int, channels: int = 2) -> bytes:
    """A 16-bit PCM WAV header at 8 kHz for ``data_bytes`` of sample data."""
    block = 2 * channels
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, SAMPLE_RATE, SAMPLE_RATE * block, block, 16)
            + b"data" + struct.pack("<I", data_bytes))


class WavStream:
    """A WAV file appended to as audio comes; the header's sizes follow every ``flush``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: BinaryIO = open(path, "wb")
        self._file.write(wav_header(0))
        self.data_bytes = 0

    def write(self, pcm: bytes) -> None:
        self._file.write(pcm)
        self.data_bytes += len(pcm)

    def flush(self) -> None:
        """Sizes into the header, everything to the OS: a crash after this loses nothing before it."""
        self._file.seek(4)
        self._file.write(struct.pack("<I", 36 + self.data_bytes))
        self._file.seek(40)
        self._file.write(struct.pack("<I", self.data_bytes))
        self._file.seek(0, os.SEEK_END)
        self._file.flush()

    def close(self) -> None:
        self.flush()
        self._file.close()


def repair(path: str) -> int:
    """Fix the header of a WAV a crash left behind (sizes from the file's length, whole samples
    only). Returns the data bytes it now declares."""
    size = os.path.getsize(path)
    data = max(0, size - HEADER_BYTES) // 4 * 4
    with open(path, "r+b") as f:
        f.truncate(HEADER_BYTES + data)
        f.seek(4)
        f.write(struct.pack("<I", 36 + data))
        f.seek(40)
        f.write(struct.pack("<I", data))
    return data


@dataclass(frozen=True)
class RecordingResult:
    """A finished recording: where it is, and how long each channel is."""

    path: str
    location: str  # the sink's answer (e.g. a URL), else the path
    seconds: float
    heard_agent_seconds: float
    cleared_seconds: float
    events_dropped: int


_CALLER, _SENT, _CLEARED, _FINISH = range(4)


class CallRecording:
    """One call's recording: the call's threads put events; one writer thread writes the file.

    ``caller`` / ``sent`` / ``cleared`` never block (a full queue drops the event, counted in
    ``events_dropped``). ``finish(at, then)`` ends it at ``at``: the writer pads both channels
    to the call's length, closes the file, hands it to the sink and then calls ``then(result)``,
    all on the writer thread.
    """

    def __init__(self, path: str, origin: float, clock: Callable[[], float], log: Any,
                 sink: Sink | None = None, max_events: int = MAX_EVENTS) -> None:
        self.path = path
        self._origin = origin
        self._clock = clock
        self._log = log
        self._sink = sink
        self._events: "queue.Queue[tuple[int, Any, float]]" = queue.Queue(max_events)
        self._heard = HeardChannel(origin)
        self._mix = StereoMix()
        self._finish_lock = threading.Lock()
        self._finished = False
        self.events_dropped = 0
        self.result: RecordingResult | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"vb-recording:{os.path.basename(path)}",
                                        daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the call's threads
    def caller(self, payload: bytes, at: float) -> None:
        """One caller frame as received (run thread)."""
        self._put(_CALLER, payload, at)

    def sent(self, frame: bytes, at: float) -> None:
        """One frame handed to the carrier at ``at`` (under the carrier's send lock: in send order)."""
        self._put(_SENT, frame, at)

    def cleared(self, at: float) -> None:
        """A ``clear`` went to the carrier at ``at`` (under the same lock)."""
        self._put(_CLEARED, None, at)

    def finish(self, at: float, then: Callable[[RecordingResult | None], None] | None = None) -> None:
        """The call ended at ``at``: write the rest, close, sink, ``then`` (idempotent, never blocks)."""
        with self._finish_lock:
            if self._finished:
                return
            self._finished = True
        while True:  # the end must get through: make room by dropping the oldest event
            try:
                self._events.put_nowait((_FINISH, then, at))
                return
            except queue.Full:
                try:
                    self._events.get_nowait()
                    self.events_dropped += 1
                except queue.Empty:
                    pass

    def wait(self, timeout: float) -> RecordingResult | None:
        self.done.wait(timeout)
        return self.result

    def _put(self, kind: int, data: Any, at: float) -> None:
        try:
            self._events.put_nowait((kind, data, at))
        except queue.Full:
            with self._finish_lock:
                self.events_dropped += 1
            self._log.once("recording_behind", "recording behind (slow disk?): events dropped; further ones only "
                           "counted")

    # ------------------------------------------------------------------ the writer thread
    def _run(self) -> None:
        wav: WavStream | None = None
        then: Callable[[RecordingResult | None], None] | None = None
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            wav = WavStream(self.path)
            then = self._write_until_finish(wav)
        except Exception:  # noqa: BLE001 - a failing disk must not end the call: logged, the report says so
            self._log.exception("recording to %s failed", self.path)
            then = self._drain_to_finish()
            if wav is not None:
                close_quietly(wav)
            wav = None
        self._conclude(wav, then)

    def _write_until_finish(self, wav: WavStream) -> Callable[[RecordingResult | None], None] | None:
        flushed_at = 0
        while True:
            try:
                kind, data, at = self._events.get(timeout=0.2)
            except queue.Empty:
                kind, data, at = -1, None, self._clock() - LAG_S
            if kind == _FINISH:
                wav.write(self._mix.add(right=self._heard.advance(at)))
                total = max(0, int((at - self._origin) * SAMPLE_RATE + 1e-6))
                wav.write(self._mix.finish(max(0, total - wav.data_bytes // 4)))
                wav.close()
                return data
            wav.write(self._event(kind, data, at))
            if wav.data_bytes - flushed_at >= FLUSH_S * SAMPLE_RATE * 4:
                wav.flush()
                flushed_at = wav.data_bytes

    def _event(self, kind: int, data: Any, at: float) -> bytes:
        if kind == _CALLER:
            return self._mix.add(left=data, right=self._heard.advance(at - LAG_S))
        if kind == _SENT:
            return self._mix.add(right=self._heard.sent(data, at))
        if kind == _CLEARED:
            return self._mix.add(right=self._heard.cleared(at))
        return self._mix.add(right=self._heard.advance(at))

    def _drain_to_finish(self) -> Callable[[RecordingResult | None], None] | None:
        while True:
            kind, data, _ = self._events.get()
            if kind == _FINISH:
                return data

    def _conclude(self, wav: WavStream | None, then: Callable[[RecordingResult | None], None] | None) -> None:
        if wav is not None:
            location = self.path
            if self._sink is not None:
                try:
                    location = self._sink(self.path) or self.path
                except Exception:  # noqa: BLE001 - the user's sink: logged, the file stays where it is
                    self._log.exception("recording sink raised; the recording stays at %s", self.path)
            seconds = wav.data_bytes / 4 / SAMPLE_RATE
            self.result = RecordingResult(self.path, location, round(seconds, 3),
                                          round(self._heard.agent_bytes / SAMPLE_RATE, 3),
                                          round(self._heard.cleared_bytes / SAMPLE_RATE, 3), self.events_dropped)
        self.done.set()
        if then is not None:
            try:
                then(self.result)
            except Exception:  # noqa: BLE001 - logged with the call's context
                self._log.exception("after the recording")


def file_name(call_sid: str | None, stream_sid: str | None) -> str:
    """``<call SID>-<stream SID>.wav``: safe characters only (the ids come from the peer)."""
    def safe(text: str | None) -> str:
        return "".join(c for c in (text or "unknown") if c.isalnum() or c in "-_")[:64] or "unknown"
    return f"{safe(call_sid)}-{safe(stream_sid)}.wav"

