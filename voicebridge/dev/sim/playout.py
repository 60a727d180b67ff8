"""Sans-IO model of Twilio's outbound playout buffer.

Twilio buffers every outbound ``media`` payload (any size) and plays it in order of receipt
at exactly 8 kHz; a ``mark`` is echoed once all audio queued before it has played (at once if
nothing is queued), and ``clear`` drops the queued audio and echoes every pending mark. A
bridge's barge-in behaviour is only testable against that behaviour, so it lives here without
sockets or sleeps: the caller shell feeds it wall-clock times, tests feed it invented ones.

Playback is tracked per sample from an absolute origin (``start``), so repeated calls never
accumulate rounding drift; when audio arrives into an empty buffer it starts playing at its
arrival time, not at the previous ``advance``.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ...audio.mulaw import SAMPLE_RATE, SILENCE_BYTE


@dataclass
class Played:
    """What the caller heard since the previous :meth:`PlayoutBuffer.advance`."""

    audio: bytes
    """Everything played, agent audio and silence fill, in order (1 byte = 1 sample)."""
    agent_bytes: int
    """How many bytes of ``audio`` came from the buffer (the rest is silence fill)."""
    marks: list[str] = field(default_factory=list)
    """Marks whose preceding audio finished playing, in order: echo these."""


class PlayoutBuffer:
    """Twilio-like playout: real-time drain, mark echoes, ``clear``.

    All methods take ``now`` (seconds, any monotonic origin); times must not go backwards.
    """

    def __init__(self, start: float) -> None:
        self._start = start
        self._clock = 0  # samples of wall time accounted for since start
        self._queue: deque[bytes] = deque()
        self._head = 0  # bytes of _queue[0] already played
        self._queued = 0  # bytes waiting in _queue
        self._enqueued_total = 0  # stream position of the end of the queue
        self._played_total = 0  # stream position of the playhead
        self._marks: deque[tuple[int, str]] = deque()  # (stream position, name)
        self._heard = bytearray()
        self._heard_agent = 0
        self._due: list[str] = []
        self._segments: list[list[float]] = []  # [start, end] seconds of agent audio played
        self.cleared_bytes = 0

    # -- inputs -------------------------------------------------------------------------
    def media(self, payload: bytes, now: float) -> None:
        """Queue one outbound ``media`` payload (any length) behind what is already queued."""
        self._catch_up(now)
        if payload:
            self._queue.append(bytes(payload))
            self._queued += len(payload)
            self._enqueued_total += len(payload)

    def mark(self, name: str, now: float) -> list[str]:
        """Queue a mark; returns marks to echo *now* (this one too if nothing is queued)."""
        self._catch_up(now)
        self._marks.append((self._enqueued_total, name))
        self._collect_due_marks()
        due, self._due = self._due, []
        return due

    def clear(self, now: float) -> list[str]:
        """Drop all queued audio at once; returns every pending mark (Twilio echoes them all)."""
        self._catch_up(now)
        self.cleared_bytes += self._queued
        self._queue.clear()
        self._head = 0
        self._queued = 0
        self._played_total = self._enqueued_total
        due = self._due + [name for _, name in self._marks]
        self._due = []
        self._marks.clear()
        return due

    def advance(self, now: float) -> Played:
        """Play up to ``now``; return the audio heard and the marks due since the last call."""
        self._catch_up(now)
        played = Played(bytes(self._heard), self._heard_agent, self._due)
        self._heard = bytearray()
        self._heard_agent = 0
        self._due = []
        return played

    # -- queries ------------------------------------------------------------------------
    @property
    def buffered_bytes(self) -> int:
        """Agent audio queued but not yet played."""
        return self._queued

    @property
    def pending_marks(self) -> list[str]:
        """Marks not yet echoed."""
        return [name for _, name in self._marks]

    @property
    def segments(self) -> list[tuple[float, float]]:
        """Intervals ``(start, end)`` in ``now`` units during which agent audio was playing."""
        return [(s, e) for s, e in self._segments]

    def heard_between(self, t0: float, t1: float) -> float:
        """Seconds of agent audio played within ``[t0, t1]``."""
        return sum(max(0.0, min(e, t1) - max(s, t0)) for s, e in self._segments)

    # -- internals ----------------------------------------------------------------------
    def _catch_up(self, now: float) -> None:
        """Play the samples of wall time elapsed since the last call: queue first, then silence."""
        # The epsilon keeps float noise (10.2 - 10.0 = 0.19999...) from losing a sample.
        target = int((now - self._start) * SAMPLE_RATE + 1e-6)
        n = target - self._clock
        if n <= 0:
            return
        from_queue = self._take(min(n, self._queued))
        if from_queue:
            self._record_segment(self._clock, len(from_queue))
            self._heard += from_queue
            self._heard_agent += len(from_queue)
        if n > len(from_queue):
            self._heard += bytes([SILENCE_BYTE]) * (n - len(from_queue))
        self._clock = target
        self._collect_due_marks()

    def _take(self, n: int) -> bytes:
        """Pop ``n`` bytes off the front of the queue."""
        out = bytearray()
        while len(out) < n:
            chunk = self._queue[0]
            want = n - len(out)
            piece = chunk[self._head:self._head + want]
            out += piece
            self._head += len(piece)
            if self._head >= len(chunk):
                self._queue.popleft()
                self._head = 0
        self._queued -= n
        self._played_total += n
        return bytes(out)

    def _record_segment(self, at_sample: int, nbytes: int) -> None:
        """Extend the current played-audio interval, or open a new one after a silence."""
        s = self._start + at_sample / SAMPLE_RATE
        e = self._start + (at_sample + nbytes) / SAMPLE_RATE
        if self._segments and abs(self._segments[-1][1] - s) < 0.5 / SAMPLE_RATE:
            self._segments[-1][1] = e
        else:
            self._segments.append([s, e])

    def _collect_due_marks(self) -> None:
        """Move marks whose preceding audio has fully played to the due list."""
        while self._marks and self._marks[0][0] <= self._played_total:
            self._due.append(self._marks.popleft()[1])
