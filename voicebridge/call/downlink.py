"""The outbound audio path: model audio in, exact 160-byte frames out on a 20 ms grid.

``OutboundAudio`` owns everything between a model delta and a media message: the audio queue,
the ``Framer`` (audio-out thread), the TX queue, the ``Pacer`` and its wake-up (TX thread), the
generation that a barge-in bumps, the duck (pause/resume), the ``PlaybackTracker`` that learns
from marks what the caller heard, and the answer to "is the agent audible?". The session's
audio-out and TX threads run ``frame_loop`` and ``tx_loop``; other threads call ``push``,
``end``, ``play``, ``pause``, ``resume`` and ``interrupt``.

Why a generation: a barge-in must stop every queued byte at once without draining queues from
the wrong thread. Every chunk carries the generation it was made under; ``interrupt`` bumps it
(under the Twilio send lock, together with the ``clear``), and anything older is discarded
where it is found and counted (frames as ``frames_flushed``, unframed bytes as
``framer_bytes_dropped``). Frame accounting: every frame put on the TX queue leaves it exactly
once, as sent, flushed or dropped.

The duck's clear (``duck_clear``): the duck stops sending, and if the caller still has agent
audio buffered at Twilio it is cleared at once; the frames it held that the caller had not
heard (``voicebridge.audio.unplayed``) are taken back and go first after the resume, in order
(a frame the TX loop held when the duck came, and anything it takes while ducked, wait with
them, ordered by the sequence number every chunk gets when framed). Counting: ``frames_sent``
counts a frame once, at its first send; a frame taken back counts ``frames_taken_back``, and
then either ``frames_resent`` (sent again) or ``frames_resend_discarded`` (flushed by the
barge-in the duck turned into, or dropped at the end of the call), never again as sent,
flushed or dropped. So both ``enqueued == sent + flushed + dropped`` and ``taken_back ==
resent + resend_discarded`` hold.
"""
from __future__ import annotations

import bisect
import queue
import threading
from dataclasses import dataclass, replace
from typing import Any

from ..locks import state_lock
from ..audio import mulaw as audio
from ..audio.echo import EchoGate
from ..audio.framing import Framer
from ..audio.pacing import Pacer, PacerStats
from ..audio.playback import MarkOutcome, PlaybackTracker
from ..audio.unplayed import Unplayed
from .carrier_link import CarrierLink, SendOutcome
from .wakeup import Wakeup
from .context import CallContext

PAUSED_POLL_S = 0.05
"""While ducked, the TX thread re-checks at least this often (a resume also wakes it)."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """Audio of one item under one generation; empty ``data`` marks the end of the item."""

    generation: int
    item_id: str
    data: bytes = b""
    seq: int = 0  # order on the TX queue (set when framed): what a duck took back goes in order
    resend: bool = False  # taken back by a duck's clear: already counted as sent
    level_dbfs: float = audio.MIN_DBFS  # the frame's level, for the echo gate (set when framed, if it has one)

    @property
    def end(self) -> bool:
        return not self.data


_STOP: Any = object()
_NUDGE: Any = object()  # wakes a TX loop waiting for the queue: taken-back frames go first


class OutboundAudio:
    """Model audio -> exact frames -> paced media messages; barge-in flush; what was heard."""

    def __init__(self, link: CarrierLink, ctx: CallContext, echo: EchoGate | None = None) -> None:
        config, metrics, clock, log = ctx.config, ctx.metrics, ctx.clock, ctx.log
        self._link = link
        self._echo = echo  # told the level of every frame sent, and of every clear
        self._metrics = metrics
        self._clock = clock
        self._log = log
        self._mark_every = config.mark_every_frames
        self._pacer = Pacer(lead_frames=config.lead_frames, late_tolerance_s=config.late_tolerance_ms / 1000)
        self._audio_q: "queue.Queue[Any]" = queue.Queue()
        self._tx_q: "queue.Queue[Any]" = queue.Queue()
        self._wake = Wakeup()
        self._stopping = threading.Event()
        self._lock = state_lock()  # generation, duck, in-flight count, playback
        self._generation = 0
        self._paused_at: float | None = None  # set while ducked
        self._duck_stopped = False  # this duck stopped the agent's audio at the caller (cleared, or a clear was due)
        self._in_flight = 0  # deltas not yet framed + frames not yet sent, current generation
        self._playback = PlaybackTracker()
        self._duck_clear = config.duck_clear
        self._unplayed = Unplayed()  # sent, maybe not yet heard: what a duck's clear takes back
        self._waiting: list[Chunk] = []  # by seq: taken back, or held by a duck; sent first after it
        self._seq = 0  # audio-out thread only
        self._cleared_at: float | None = None  # a duck's clear, for the TX thread's pacer

    # ------------------------------------------------------------------ producers (any thread)
    def push(self, item_id: str, data: bytes) -> None:
        """A model delta for ``item_id`` (any size)."""
        with self._lock:
            self._in_flight += 1
            generation = self._generation
        self._audio_q.put(Chunk(generation, item_id, data))

    def end(self, item_id: str) -> None:
        """The item's audio is complete: its tail is padded and a final mark follows it."""
        self._audio_q.put(Chunk(self._generation, item_id))

    def play(self, item_id: str, data: bytes) -> None:
        """Audio of our own (the apology, a filler): the same path as model audio."""
        if data:
            self.push(item_id, data)
        self.end(item_id)

    # ------------------------------------------------------------------ barge-in (any thread)
    def pause(self, now: float) -> None:
        """Duck: no frame leaves until ``resume`` (or ``interrupt``); nothing is lost. With
        ``duck_clear``, what the caller has not heard yet is cleared at Twilio and taken back."""
        def set_paused() -> None:
            self._paused_at = now
            self._duck_stopped = self._duck_stopped or due  # (duck_clear off: it stops once Twilio's lead has played)

        def clear_and_take_back() -> None:
            self._paused_at = now
            self._duck_stopped = True
            with self._lock:
                taken = self._unplayed.take_back(now, self._playback)
                for chunk in taken:
                    self._wait(replace(chunk, resend=True) if not chunk.end else chunk)
                    if chunk.generation == self._generation and not chunk.end:
                        self._in_flight += 1
                self._cleared_at = now
            self._metrics.add("frames_taken_back", sum(not c.end for c in taken))

        with self._lock:
            due = self._unplayed.worth_clearing(now)
        clearing = self._duck_clear and due
        if not clearing:
            self._link.hold(set_paused)
            return
        if self._link.clear(clear_and_take_back):
            self._metrics.add("duck_clears")
            if self._echo is not None:
                self._echo.cleared(now)

    def resume(self) -> None:
        now = self._clock()

        def unpause() -> None:
            with self._lock:
                if self._paused_at is not None:
                    self._unplayed.released(now)
            self._paused_at = None
            self._duck_stopped = False

        self._link.hold(unpause)
        self._wake.set()
        with self._lock:
            waiting = bool(self._waiting)
        if waiting:
            self._tx_q.put(_NUDGE)  # a TX loop waiting for the queue takes them now

    def interrupt(self, clear: bool = True) -> int:
        """Stop all queued audio now: bump the generation (and send ``clear``) under the send lock.

        Returns how many frames and deltas were in flight; they are discarded where found.
        """
        flushed: list[int] = []

        def bump() -> None:
            with self._lock:
                self._generation += 1
                self._paused_at = None
                self._duck_stopped = False
                self._playback.cleared()
                self._unplayed.forget()
                waiting, self._waiting = self._waiting, []
                flushed.append(self._in_flight)
                self._in_flight = 0
            for chunk in waiting:
                if not chunk.end:
                    self._discard(chunk, "frames_flushed")

        if clear:
            self._link.clear(bump)
            if self._echo is not None:
                self._echo.cleared(self._clock())
        else:
            self._link.hold(bump)
        self._wake.set()
        return flushed[0] if flushed else 0

    @property
    def duck_stopped_audio(self) -> bool:
        """Ducked while the caller was hearing the agent (``Unplayed.worth_clearing``): the duck
        cleared it, or with ``duck_clear`` off it stops once Twilio's lead has played; either way
        a release is heard as the agent going on."""
        return self._duck_stopped

    # ------------------------------------------------------------------ what the caller heard
    @property
    def audible(self) -> bool:
        """Audio of the current generation is queued, being sent, or still playing at Twilio."""
        with self._lock:
            return self._in_flight > 0 or self._playback.pending_marks > 0

    def mark_echoed(self, name: str, now: float) -> MarkOutcome:
        with self._lock:
            return self._playback.echoed(name, now)

    def heard_ms(self, item_id: str, now: float) -> int:
        with self._lock:
            return self._playback.heard_ms(item_id, now)

    def played_out(self, item_id: str) -> bool:
        """The item was sent in full and its final mark came back as played."""
        with self._lock:
            return self._playback.played_out(item_id)

    @property
    def pacer_stats(self) -> PacerStats:
        return self._pacer.stats

    # ------------------------------------------------------------------ safety fuses
    def release_stuck_duck(self, now: float, limit_s: float) -> bool:
        """Resume if ducked for longer than ``limit_s`` with no confirmation. True if it was."""
        paused_at = self._paused_at
        if paused_at is None or now - paused_at <= limit_s:
            return False
        self.resume()
        return True

    def forget_unechoed_marks(self) -> int:
        """Twilio stopped echoing while nothing is queued: stop counting the agent as audible."""
        if not (self._audio_q.empty() and self._tx_q.empty()):
            return 0
        with self._lock:
            return 0 if self._waiting else self._playback.forget_pending()

    # ------------------------------------------------------------------ lifecycle
    def stop(self) -> None:
        """Make both loops end soon (idempotent)."""
        self._stopping.set()
        self._wake.set()
        self._audio_q.put(_STOP)
        self._tx_q.put(_STOP)

    def drain(self) -> None:
        """After both loops ended: frames still queued were never sent (``frames_dropped``)."""
        with self._lock:
            left, self._waiting = self._waiting, []
        while True:
            try:
                left.append(self._tx_q.get_nowait())
            except queue.Empty:
                break
        for chunk in left:
            if isinstance(chunk, Chunk) and not chunk.end:
                self._discard(chunk, "frames_dropped")

    # ------------------------------------------------------------------ audio-out thread
    def frame_loop(self) -> None:
        """Deltas -> exact 160-byte frames; the tail is padded at the item's end."""
        framer = Framer()
        generation = 0
        while True:
            chunk = self._audio_q.get()
            if chunk is _STOP or self._stopping.is_set():
                break
            if chunk.generation != self._generation:
                self._metrics.add("framer_bytes_dropped", len(chunk.data))
                continue
            if chunk.generation != generation:  # a barge-in happened: its remainder is stale
                generation = chunk.generation
                self._metrics.add("framer_bytes_dropped", framer.drop())
            if chunk.end:
                before = framer.padded_bytes
                self._enqueue(framer.end(), chunk, consumed=0)
                self._metrics.add("framer_bytes_padded", framer.padded_bytes - before)
                self._seq += 1
                self._tx_q.put(replace(chunk, seq=self._seq))
            else:
                self._enqueue(framer.push(chunk.data), chunk, consumed=1)
        self._metrics.add("framer_bytes_dropped", framer.drop())

    def _enqueue(self, frames: list[bytes], src: Chunk, consumed: int) -> None:
        with self._lock:
            if src.generation == self._generation:
                self._in_flight += len(frames) - consumed
        levels = audio.levels(frames) if self._echo is not None else [audio.MIN_DBFS] * len(frames)
        if frames:  # counted before any is put: the TX loop may send one before the loop below ends
            self._metrics.add("frames_enqueued", len(frames))
        for frame, level in zip(frames, levels):
            self._seq += 1
            self._tx_q.put(Chunk(src.generation, src.item_id, frame, self._seq, level_dbfs=level))

    # ------------------------------------------------------------------ TX thread
    def tx_loop(self) -> None:
        """One frame per 20 ms slot; a mark every few frames and after each item's last frame."""
        item: str | None = None
        unmarked = 0  # frames of ``item`` sent since its last mark
        paused = False  # a duck held the loop: the first frame after it refills the caller's buffer
        while True:
            chunk, waited = self._next_chunk()
            paused = paused or waited
            if chunk is _STOP or self._stopping.is_set():
                if isinstance(chunk, Chunk) and not chunk.end:
                    self._discard(chunk, "frames_dropped")
                return
            if chunk.end:
                if self._end_item(chunk, marked=chunk.generation == self._generation and unmarked > 0):
                    item, unmarked = None, 0
                continue
            if chunk.item_id != item:
                item, unmarked = chunk.item_id, 0
                self._pacer.follow_on(self._clock())
            outcome = self._pace_and_send(chunk, paused)
            paused = outcome is SendOutcome.PAUSED
            if outcome is SendOutcome.SENT:
                unmarked += 1
                if self._mark_every and unmarked >= self._mark_every:
                    self._mark(chunk.item_id)
                    unmarked = 0
            elif outcome is SendOutcome.PAUSED:
                with self._lock:
                    self._wait(chunk)  # after what the duck took back, which was sent before it
            elif outcome is SendOutcome.FAILED:
                return

    def _next_chunk(self) -> tuple[Any, bool]:
        """The next chunk in order (what waits from a duck first), and whether a duck held us.

        Nothing is taken while ducked: an item's end handled then would send its final mark
        ahead of frames taken back.
        """
        waited = False
        while True:
            ducked = False
            if self._waiting or self._paused_at is not None:  # only around a duck: else no lock here
                with self._lock:  # (the check after the get below is under it: a duck meanwhile is seen there)
                    if self._paused_at is None and self._waiting:
                        return self._waiting.pop(0), waited
                    ducked = self._paused_at is not None
            if self._stopping.is_set():
                return _STOP, waited
            if ducked:
                self._wake.wait(PAUSED_POLL_S)
                waited = True
                continue
            chunk = self._tx_q.get()
            if chunk is _NUDGE:
                continue
            if chunk is _STOP:
                return chunk, waited
            if self._paused_at is None and not self._waiting:  # no lock: a duck from now on is seen under
                return chunk, waited  # the send lock (``_send``'s check, ``_end_item``'s name), which holds it back
            with self._lock:
                if self._paused_at is None and not self._waiting:
                    return chunk, waited
                self._wait(chunk)  # a duck came meanwhile: in order behind what it took back

    def _wait(self, chunk: Chunk) -> None:
        """Hold ``chunk`` for after the duck, in order (under ``_lock``)."""
        bisect.insort(self._waiting, chunk, key=_seq)

    def _pace_and_send(self, chunk: Chunk, resumed: bool) -> SendOutcome:
        """Wait for the frame's slot, then send it (PAUSED: a duck came first, nothing sent).

        Whether the frame may go is decided under the send lock (``_send``); a flush, duck or
        close ends the wait early, and a frame already stale is discarded without waiting.
        """
        while True:
            if self._stopping.is_set():
                self._discard(chunk, "frames_dropped")
                return SendOutcome.FAILED
            if chunk.generation != self._generation:
                self._discard(chunk, "frames_flushed")
                return SendOutcome.FLUSHED
            now = self._clock()
            if resumed:  # after a duck: the caller's buffer refilled to the lead, then the grid
                with self._lock:
                    cleared_at, self._cleared_at = self._cleared_at, None
                if cleared_at is not None:
                    self._pacer.cleared(cleared_at)
                self._pacer.resume(now)
                resumed = False
            delay = self._pacer.delay(now)
            if delay > 0:
                self._wake.wait(delay)
                continue
            return self._send(chunk)

    def _send(self, chunk: Chunk) -> SendOutcome:
        if len(chunk.data) != audio.FRAME_BYTES:
            self._metrics.add("outbound_bad_size")
            self._discard(chunk, "frames_dropped")
            self._log.error("frame of %d bytes refused (must be %d)", len(chunk.data), audio.FRAME_BYTES)
            return SendOutcome.FLUSHED

        def check() -> SendOutcome | None:  # under the send lock: no flush or duck in between
            if chunk.generation != self._generation:
                return SendOutcome.FLUSHED
            if self._paused_at is not None:
                return SendOutcome.PAUSED
            return self._going(chunk)

        outcome, sent_at = self._link.send_media(chunk.data, check)
        if outcome is SendOutcome.SENT:
            self._pacer.sent(sent_at)
            if chunk.resend:
                self._metrics.add("frames_resent")
            else:
                self._metrics.frame_sent(len(chunk.data), sent_at)
            if self._echo is not None:
                self._echo.played(chunk.level_dbfs, sent_at)
        elif outcome is SendOutcome.FLUSHED:
            self._discard(chunk, "frames_flushed")
        elif outcome is SendOutcome.FAILED:
            self._discard(chunk, "frames_dropped")
        return outcome

    def _going(self, chunk: Chunk) -> SendOutcome | None:
        """The frame is about to be sent (under the send lock: a duck's take-back sees it);
        PAUSED if frames a duck took back (released before this one's slot) must go first."""
        now = self._clock()
        with self._lock:
            if self._waiting and self._waiting[0].seq < chunk.seq:
                return SendOutcome.PAUSED
            position = self._playback.sent_bytes(chunk.item_id)
            self._playback.sent(chunk.item_id, len(chunk.data), now)
            self._unplayed.sent(chunk, chunk.item_id, position, len(chunk.data), now)
            if chunk.generation == self._generation:
                self._in_flight -= 1
        return None

    def _discard(self, chunk: Chunk, how: str) -> None:
        """Count a frame that will not be sent: ``how``, or, if it was sent once already and
        taken back by a duck, ``frames_resend_discarded``."""
        self._metrics.add("frames_resend_discarded" if chunk.resend else how)

    def _end_item(self, chunk: Chunk, marked: bool) -> bool:
        """An item's end: its bookkeeping and final mark under one hold of the send lock, so a
        duck's clear falls before both or after both. False if a duck came since the chunk was
        taken: the end then waits behind the frames the duck took back (a final mark sent ahead
        of them would be echoed at once, and the item never heard to its end)."""
        ended: list[bool] = []

        def name() -> "str | None":
            with self._lock:  # before the final mark: its echo may come back at once
                if self._paused_at is not None or self._waiting:
                    self._wait(chunk)
                    return None
                ended.append(True)
                self._playback.ended(chunk.item_id)
                self._unplayed.ended(chunk, chunk.item_id, self._playback.sent_bytes(chunk.item_id))
                return self._playback.new_mark(chunk.item_id) if marked else None

        self._link.send_mark(name)
        return bool(ended)

    def _mark(self, item_id: str) -> None:
        def name() -> str:
            with self._lock:
                return self._playback.new_mark(item_id)
        self._link.send_mark(name)


def _seq(chunk: Chunk) -> int:
    return chunk.seq
