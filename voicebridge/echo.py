"""Is the caller's audio the agent's own voice coming back? (sans-IO)

On a speakerphone, or a line with weak echo cancellation, the caller's side sends back what it
plays. A level detector hears "speech" and the agent interrupts itself; the model's VAD hears
it too, through our appends. The bridge is the one place that knows what was played and when,
so it can tell echo from the caller.

``EchoGate`` keeps the level of every frame sent to Twilio on the caller's playout timeline
(frames play back to back from when they are sent, so a burst of lead frames plays over
several slots; a ``clear`` drops what had not played). Per inbound frame it answers: could
this level be echo of what played a moment ago? The test is Geigel-style, on levels, with two
quantities learned during the call:

* the **echo delay** (sent -> heard back, 20-800 ms): the lag at which the played level
  envelope best correlates with the inbound one (Pearson r >= 0.5), re-estimated every half
  second until found, then every two seconds;
* the **echo return loss** (how much quieter the echo is than what played): a low percentile
  of "played level - inbound level" over recent frames of agent audio, leaving out frames given
  to the caller and the 300 ms after them (double talk must not teach the gate that echo is
  loud).

A frame is ``ECHO`` when its level is at most the played level (the loudest within +-40 ms of
the delay; within the whole 20-800 ms range while the delay is unknown) minus the loss plus a
margin (3 dB). Louder is the ``CALLER`` (alone, or over the echo: double talk), never
suppressed. An echo-level frame within 300 ms of a caller frame is ``UNSURE``: forwarded as it
is (the tail of a caller's syllable), but not counted as the caller's voice either. Until 20
frames of agent audio have been measured the loss is taken as Geigel's classic 6 dB, which
errs towards echo.

The limit is physics, not code: a caller no louder than their own loudspeaker's echo plus the
margin cannot be told from it by level; they are heard once they speak up, or the agent stops.
"""
from __future__ import annotations

import enum
import math
import threading
from collections import deque
from dataclasses import dataclass
from operator import mul

from .audio import FRAME_MS, MIN_DBFS, ULAW_TABLE, _lin_to_ulaw

SLOT_S = FRAME_MS / 1000
MIN_LAG, MAX_LAG = 1, 40
"""Echo delays searched, in 20 ms slots: 20-800 ms (network both ways, jitter buffers, room)."""
WINDOW = 2
"""Slots either side of the delay whose played level counts (+-40 ms of jitter)."""
HISTORY = 100
"""Slots of levels the delay estimate correlates (2 s)."""
PLAYED_FLOOR_DBFS = -50.0
"""Played audio quieter than this cannot make echo worth judging (pauses, padding)."""
CLAMP_DBFS = -70.0
PRIOR_LOSS_DB = 6.0
LOSS_SAMPLES = 100
LOSS_PERCENTILE = 0.1
MIN_LOSS_SAMPLES = 20
MIN_CORRELATION = 0.5
DOUBLE_TALK_HOLD_S = 0.3
QUIET_DB = 6.0
FAST_ESTIMATES, FAST_EVERY, SLOW_EVERY = 8, 25, 100
"""Delay estimates: every 25 frames for the first 8 tries, then every 100 (a line with no
audible echo never yields one, and must not cost a correlation every half second)."""


class Verdict(enum.Enum):
    CALLER = "caller"  # louder than echo can be: the caller (alone or over the echo)
    ECHO = "echo"  # at echo level with no double talk: the agent's own voice
    UNSURE = "unsure"  # at echo level just after the caller spoke: forward it, do not count it


@dataclass
class EchoStats:
    """What the gate decided (call metrics and the benchmark)."""

    echo_frames: int = 0
    caller_frames: int = 0
    unsure_frames: int = 0
    delay_estimates: int = 0


class EchoGate:
    """Echo or caller, per inbound frame. ``played`` and ``cleared`` come from the sending side,
    ``judge`` from the receiving side; one short lock makes that safe."""

    def __init__(self, margin_db: float = 3.0) -> None:
        self.margin_db = margin_db
        self._lock = threading.Lock()
        self._played: dict[int, float] = {}  # playout slot -> level of the frame playing in it
        self._play_end: float | None = None  # when the audio sent so far ends at the caller
        self._levels: deque[float] = deque(maxlen=HISTORY)  # inbound level per slot, newest last
        self._last_slot: int | None = None
        self._loss_broad = LossEstimate()  # against the loudest played within the whole delay range
        self._loss_aligned = LossEstimate()  # against what played at the estimated delay
        self._lag: int | None = None
        self._frames = 0
        self._estimate_at = HISTORY // 2
        self._caller_until = float("-inf")
        self.stats = EchoStats()

    # ------------------------------------------------------------------ the sending side
    def played(self, level_dbfs: float, now: float) -> None:
        """A frame of ``level_dbfs`` was sent at ``now``: it plays after what is already queued."""
        with self._lock:
            start = now if self._play_end is None else max(now, self._play_end)
            self._play_end = start + SLOT_S
            slot = round(start / SLOT_S)
            self._played[slot] = level_dbfs
            if len(self._played) > 4 * HISTORY:
                oldest = slot - 2 * HISTORY
                self._played = {s: v for s, v in self._played.items() if s >= oldest}

    def cleared(self, now: float) -> None:
        """Twilio was told to clear: what had not played yet never will, so it cannot echo."""
        with self._lock:
            current = round(now / SLOT_S)
            self._played = {s: v for s, v in self._played.items() if s <= current}
            self._play_end = None

    # ------------------------------------------------------------------ the receiving side
    def judge(self, level_dbfs: float, now: float, floor_dbfs: float = MIN_DBFS) -> Verdict:
        """The verdict on a caller frame of ``level_dbfs`` that arrived at ``now``.

        ``floor_dbfs`` is the line's noise floor: a frame within ``QUIET_DB`` of it is never the
        caller's voice, whatever the echo estimate says (it still teaches the loss: what played
        came back no louder than the noise).
        """
        slot = round(now / SLOT_S)
        with self._lock:
            self._record(slot, level_dbfs)
            broad = self._played_max(slot - MAX_LAG - WINDOW, slot - MIN_LAG + WINDOW)
            if broad < PLAYED_FLOOR_DBFS:
                return Verdict.CALLER  # nothing played that could be echoing now
            lag = self._lag
            aligned = (self._played_max(slot - lag - WINDOW, slot - lag + WINDOW)
                       if lag is not None else MIN_DBFS)
            if lag is not None and self._loss_aligned.learned:
                reference, loss = aligned, self._loss_aligned.value
            else:
                reference, loss = broad, self._loss_broad.value
            if (reference >= PLAYED_FLOOR_DBFS and level_dbfs > reference - loss + self.margin_db
                    and level_dbfs > floor_dbfs + QUIET_DB):
                self.stats.caller_frames += 1
                self._caller_until = now + DOUBLE_TALK_HOLD_S
                return Verdict.CALLER
            if now < self._caller_until:
                self.stats.unsure_frames += 1
                return Verdict.UNSURE
            self._loss_broad.add(broad - level_dbfs)
            if aligned >= PLAYED_FLOOR_DBFS:
                self._loss_aligned.add(aligned - level_dbfs)
            self.stats.echo_frames += 1
            return Verdict.ECHO

    @property
    def delay_ms(self) -> int | None:
        """The estimated echo delay (sent -> heard back), once found."""
        lag = self._lag
        return None if lag is None else lag * FRAME_MS

    @property
    def loss_db(self) -> float:
        """The echo return loss in use (the 6 dB prior until learned)."""
        with self._lock:
            if self._lag is not None and self._loss_aligned.learned:
                return self._loss_aligned.value
            return self._loss_broad.value

    # ------------------------------------------------------------------ learning the delay
    def _record(self, slot: int, level: float) -> None:
        """Keep one inbound level per slot (a late frame fills the gap; two in a slot: the louder)."""
        last = self._last_slot
        if last is not None and slot <= last:
            if slot == last and self._levels:
                self._levels[-1] = max(self._levels[-1], level)
            return
        if last is not None:
            for _ in range(min(HISTORY, slot - last - 1)):
                self._levels.append(level)
        self._levels.append(level)
        self._last_slot = slot
        self._frames += 1
        if self._frames >= self._estimate_at:
            fast = self.stats.delay_estimates < FAST_ESTIMATES and self._lag is None
            self._estimate_at = self._frames + (FAST_EVERY if fast else SLOW_EVERY)
            self.stats.delay_estimates += 1
            lag = best_lag(list(self._levels), slot, self._played)
            if lag is not None and lag != self._lag:
                self._lag = lag
                self._loss_aligned = LossEstimate()

    def _played_max(self, first: int, last: int) -> float:
        get = self._played.get
        return max(map(lambda s: get(s, MIN_DBFS), range(first, last + 1)))


def best_lag(levels: "list[float]", last_slot: int, played: "dict[int, float]") -> int | None:
    """The lag (slots) at which played levels best predict the inbound ones, if clearly.

    ``levels`` are the inbound levels of consecutive slots ending at ``last_slot``.
    """
    n = len(levels)
    if n < FAST_EVERY:
        return None
    xs = [max(CLAMP_DBFS, x) for x in levels]
    mean_x = sum(xs) / n
    xc = [x - mean_x for x in xs]
    var_x = sum(map(mul, xc, xc))
    if var_x < n * 4.0:  # the caller's line barely moved (< 2 dB): nothing to correlate
        return None
    first = last_slot - n + 1 - MAX_LAG
    dense = [max(CLAMP_DBFS, played.get(s, CLAMP_DBFS)) for s in range(first, last_slot + 1)]
    best, best_r = None, MIN_CORRELATION
    for lag in range(MIN_LAG, MAX_LAG + 1):
        ys = dense[MAX_LAG - lag: MAX_LAG - lag + n]
        mean_y = sum(ys) / n
        var_y = sum(map(mul, ys, ys)) - n * mean_y * mean_y
        if var_y < n * 4.0:
            continue
        r = sum(map(mul, xc, ys)) / math.sqrt(var_x * var_y)
        if r > best_r:
            best, best_r = lag, r
    return best


class LossEstimate:
    """A low percentile of recent "played - inbound" differences: the echo at its loudest.

    Re-sorted every tenth sample, not every frame. The 6 dB prior until 20 samples are in.
    """

    def __init__(self) -> None:
        self._samples: deque[float] = deque(maxlen=LOSS_SAMPLES)
        self._added = 0
        self.value = PRIOR_LOSS_DB

    @property
    def learned(self) -> bool:
        return len(self._samples) >= MIN_LOSS_SAMPLES

    def add(self, loss_db: float) -> None:
        self._samples.append(loss_db)
        self._added += 1
        if self.learned and (self._added % 10 == 0 or len(self._samples) == MIN_LOSS_SAMPLES):
            ordered = sorted(self._samples)
            self.value = max(0.0, ordered[int(len(ordered) * LOSS_PERCENTILE)])


def attenuation_table(db: float) -> bytes:
    """A ``bytes.translate`` table that lowers mu-law audio by ``db`` (a per-byte lookup, C speed)."""
    gain = 10 ** (-abs(db) / 20)
    return bytes(_lin_to_ulaw(int(ULAW_TABLE[b] * gain)) for b in range(256))
