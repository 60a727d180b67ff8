"""Is the caller's audio the agent's own voice coming back? (sans-IO)

On a speakerphone, or a line with weak echo cancellation, the caller's side sends back what it
plays. A level detector hears "speech" and the agent interrupts itself; the model's VAD hears
it too, through our appends. The bridge is the one place that knows what was played and when,
so it can tell echo from the caller.

``EchoGate`` keeps the level of every frame sent to Twilio on the caller's playout timeline
(frames play back to back from when they are sent, so a burst of lead frames plays over
several slots; a ``clear`` drops what had not played). Per inbound frame it answers: could
this level be echo of what played a moment ago? The test is Geigel-style, on levels, with the
echo path learned during the call from stretches where the line plainly follows the agent:

* every 400 ms until found (then every 2 s) the last 2 s of inbound levels are correlated with
  the played levels at every lag of 20-800 ms (network both ways, jitter buffers, the room).
  A lag with Pearson r >= 0.7, found twice in a row, is the **echo delay**; such a stretch is
  echo-dominated (the caller talking over it would break the correlation), so it also measures
  the **echo return loss**: a low percentile of "played - heard" over its frames, against the
  loudest played within +-40 ms of the delay, the same reference the test uses.
* if twice in a row the agent spoke and the line followed it nowhere (r < 0.3), any echo is
  under the line's own sound: the loss is at least the agent's median level minus the line's
  loud end (90th percentile), which is what that stretch proves; three times in a row with an
  unclear correlation (0.3-0.7: an echo masked by a car, a room) the same bound holds, since the
  echo is no louder than the line's loud end either (without it the 6 dB prior stayed, and a
  caller over such a line was judged echo).

A frame is ``ECHO`` when its level is at most the reference (the loudest played within +-40 ms
of the delay; within the whole range while the delay is unknown) minus the loss plus a margin
(3 dB). With the delay known, a frame over that is also held against the room's tail of what
played before the window (``TAIL_SLOTS``): the end of a loud syllable goes on echoing over the
quieter audio that follows it. Frames judged the caller's (or unsure) never enter a loss measurement: double talk must
not teach the gate that echo is loud. Louder is the ``CALLER`` (alone, or over the echo: double talk), never suppressed. An
echo-level frame within 300 ms of a caller frame is ``UNSURE``: forwarded as it is (the tail of
a caller's syllable), but not counted as the caller's voice either. A frame within 6 dB of the
line's noise floor is ``QUIET``: nobody's voice, forwarded as it is, and the cheap verdict most
frames of most calls get.

While no delay is found, every estimate also takes what the line proves (``_proven_loss``): at
every delay searched, how far under the agent the line stayed; the least over the delays is a
loss no echo path can have undercut, and the loss in use is never below it (a line silent under
the agent's first words is known to carry no echo before the caller talks).

Until the delay is found the loss is the line's own record (``ProvisionalLoss``): how far under
the reference the frames judged echo have stayed since the agent began (a low percentile of
"reference - heard" over at least ``PROVISIONAL_MIN`` frames above the noise). A line that has
carried the agent's echo 20 dB down for half a second does not suddenly carry it 8 dB down: a
frame that loud is the caller's. Before that record exists (the first echo frames of the
agent's first words, or no sound on the line at all), Geigel's classic 6 dB prior applies,
which errs towards echo. Only frames above the noise build the record, from the echo's arrival
on (a quiet line rising well over what it carried before the agent began, or 0.4 s after it did):
what comes before is the line's own sound and would make the record overstate the loss.

The limit is physics, not code: a caller no louder than their own loudspeaker's echo plus the
margin cannot be told from it by level; they are heard once they speak up, or the agent stops.
"""
from __future__ import annotations

import array
import bisect
import enum
import functools
import random
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from ..locks import state_lock
from .mulaw import FRAME_BYTES, FRAME_MS, MIN_DBFS, SILENCE_FRAME, ULAW_TABLE, _lin_to_ulaw, numeric

FULL_SCALE_INT = 32768

SLOT_S = FRAME_MS / 1000
MIN_LAG, MAX_LAG = 1, 40
"""Echo delays searched, in 20 ms slots: 20-800 ms."""
WINDOW = 2
"""Slots either side of the delay whose played level counts (+-40 ms of jitter)."""
HISTORY = 100
"""Slots of levels the delay estimate correlates (2 s)."""
PLAYED_FLOOR_DBFS = -50.0
"""Played audio quieter than this cannot make echo worth judging (pauses, padding)."""
CLAMP_DBFS = -70.0
PRIOR_LOSS_DB = 6.0
LOSS_PERCENTILE = 0.1
MIN_CORRELATION = 0.7
ABSENT_CORRELATION, ABSENT_VOTES = 0.3, 2
MASKED_VOTES = 3
"""Estimates in a row with an unclear correlation (0.3-0.7) before their loss is believed."""
DOUBLE_TALK_HOLD_S = 0.3
QUIET_DB = 6.0
"""A frame within this of the noise floor is never the caller's voice."""
FAST_ESTIMATES, FAST_EVERY, SLOW_EVERY = 10, 20, 100
"""Estimates: every 20 frames for the first 10 tries that had the agent to go on (the caller's
own question before the first answer does not use them up), then every 100 (a line with no
audible echo never yields a delay, and must not cost a correlation every 400 ms)."""
LAG_SLOTS = 50
"""Inbound slots (1 s, from the agent's first audio on) an estimate needs before its lag may be
believed: over 0.4-0.8 s, babble or a TV correlates with the agent at r > 0.9 at some lag by
chance (the line's own record of its echo, below, serves until then)."""
PROVISIONAL_MIN, PROVISIONAL_KEEP = 10, 100
"""Echo frames above the noise the line's record needs before it stands in for the prior, and
how many of the latest it keeps (2 s of agent speech)."""
PROVISIONAL_PERCENTILE = 0.05
RECORD_AFTER_S, RECORD_MIN_DBFS = 0.4, -50.0
"""The record takes frames from 0.4 s after the agent's audio began (its echo has arrived by
then: what came before is the line's own sound, and would say the echo is far down) and at
-50 dBFS or more (a level that could be an echo worth judging: below it, a line whose noise
floor is not known yet)."""
ARRIVAL_DB, BEFORE_TALK_SLOTS, BEFORE_TALK_MIN, ARRIVAL_GAP_DB = 10.0, 50, 10, 10.0
"""... or from the echo's arrival on a line heard quiet before the agent began (nothing at
``RECORD_MIN_DBFS`` or more in the second before, and at least 200 ms of it heard: a greeting
sent as the call's audio starts has no line before it to judge): the line rising this far over
the loudest it carried then. The first word's echo peaks are often in its first 0.4 s, and
without them the record held only its falling tail and the next word's rise (each far under the
loudest the agent played), overstated the loss by 4-5 dB and took the echo's next peak for the
caller (a reverberant "yeah" joined to it was long enough to cut the answer). Not on a line with a room's
sound on it: a TV rising out of a pause is no echo, and its level against the little the agent
had played yet said the echo was hardly down at all (the caller's "wait" was then judged echo).
Before 0.4 s only frames ``ARRIVAL_GAP_DB`` or more under the reference are recorded: a caller
who began with the agent, near its level, passed the arrival's test, and a record of 3-8 dB had
their later words judged echo (review rv30); an echo that loud waits for the 0.4 s, as before."""
TALK_GAP_S = 1.0
"""Audible agent audio after this much without any begins a new stretch (for the record's start)."""
TAIL_SLOTS, TAIL_DB = 15, 4.0
"""The room's reverberation once the delay is known: what played goes on echoing after it stops,
taken as ``TAIL_DB`` a slot (an RT60 of 0.3 s) beyond the +-40 ms the reference allows, for up to
300 ms. Without it the tail of audio that stopped (a greeting's end, what played before a duck's
clear) was judged the caller's as soon as nothing played in the frame's window; and the tail of a
loud syllable, over the quiet one after it, was judged the caller's at -50..-40 dBFS on long
answers over loud echo (a duck and an underrun each; issue 21).

Under audio at the delay the tail is counted from the window's first slot, so the slot just
before the window is 8 dB down, not 4: with the 4, a soft caller over loud echo, heard only where
the agent dips (a frame a few dB over the echo of what plays at the delay), was judged echo there,
and ducked for late or never (review rv4: tests/test_callers_in_the_agents_dips.py)."""


class Verdict(enum.Enum):
    CALLER = "caller"  # louder than echo can be: the caller (alone or over the echo)
    ECHO = "echo"  # at echo level with no double talk: the agent's own voice
    UNSURE = "unsure"  # at echo level just after the caller spoke: forward it, do not count it
    QUIET = "quiet"  # down at the line's noise: nobody's voice, forwarded as it is


_QUIET = Verdict.QUIET  # (the verdict of most frames: a global, not a class lookup)


@dataclass
class EchoStats:
    """What the gate decided (call metrics and the benchmark)."""

    echo_frames: int = 0
    caller_frames: int = 0
    unsure_frames: int = 0
    delay_estimates: int = 0


@dataclass(frozen=True)
class EchoPath:
    """What one estimate found: the lag, the correlation, the loss (None: not measurable)."""

    lag: int | None
    r: float | None
    loss_db: float | None = None
    proven_db: float | None = None  # with no lag found: the loss the line proves at every delay searched


class EchoGate:
    """Echo or caller, per inbound frame. ``played`` and ``cleared`` come from the sending side,
    ``judge`` from the receiving side; one short lock, taken where the played levels are read,
    makes that safe (not for a frame at the line's noise: the inbound levels are the run thread's)."""

    def __init__(self, margin_db: float = 3.0, room_tail: bool = True) -> None:
        self.margin_db = margin_db
        self.room_tail = room_tail  # the room's tail counts under audio at the delay too (off: only after it stops)
        self._lock = state_lock()
        self._played = PlayedLevels()  # playout slot -> level of the frame playing in it
        self._play_end: float | None = None  # when the audio sent so far ends at the caller
        self._levels: deque[float] = deque(maxlen=HISTORY)  # inbound level per slot, newest last
        self._next_slot: int | None = None  # the slot after the last one recorded (None: no frame yet)
        self._lag: int | None = None
        self._candidate: int | None = None  # the previous estimate's lag
        self._loss = PRIOR_LOSS_DB
        self._absent_votes = 0
        self._frames = 0
        self._informed = 0  # estimates that had the agent's audio to go on
        self._estimate_at = FAST_EVERY
        self._caller_until = float("-inf")
        self._callers: deque[int] = deque(maxlen=HISTORY)  # slots judged the caller's
        self._record_loss = ProvisionalLoss()
        self._audible_at = float("-inf")  # the last audible frame's playout start
        self._talk_start = float("inf")  # when the current stretch of audible agent audio began
        self._arrived_for = float("inf")  # the stretch (its start) whose echo was heard arriving
        self.stats = EchoStats()
        self.headroom_db = 0.0  # the last frame judged: how far over the echo predicted for it (run thread)
        self.over_echo = False  # the last frame judged the caller's was judged against the agent's echo

    # ------------------------------------------------------------------ the sending side
    def played(self, level_dbfs: float, now: float) -> None:
        """A frame of ``level_dbfs`` was sent at ``now``: it plays after what is already queued."""
        with self._lock:
            end = self._play_end
            start = now if end is None or end <= now else end  # (``max`` written out: every frame sent)
            self._play_end = start + SLOT_S
            if level_dbfs >= PLAYED_FLOOR_DBFS:
                if start - self._audible_at > TALK_GAP_S:
                    self._talk_start = start
                self._audible_at = start
            self._played.set(round(start / SLOT_S), level_dbfs)

    def cleared(self, now: float) -> None:
        """Twilio was told to clear: what had not played yet never will, so it cannot echo."""
        with self._lock:
            self._played.clear_after(round(now / SLOT_S))
            self._play_end = None

    # ------------------------------------------------------------------ the receiving side
    def judge(self, level_dbfs: float, now: float, floor_dbfs: float = MIN_DBFS) -> Verdict:
        """The verdict on a caller frame of ``level_dbfs`` captured at ``now`` (its arrival, or with a
        carrier timestamp where ``capture.CaptureClock`` places it); ``floor_dbfs`` is the line's
        noise floor (a frame within ``QUIET_DB`` of it is never the caller)."""
        slot = round(now / SLOT_S)
        if slot == self._next_slot and self._frames + 1 < self._estimate_at:
            self._levels.append(level_dbfs)  # the next slot, no estimate due (nearly every frame): ``_record``'s
            self._next_slot, self._frames = slot + 1, self._frames + 1  # step written out, one call fewer
        else:
            self._record(slot, level_dbfs)  # (the inbound levels are the run thread's: no lock)
        if level_dbfs <= floor_dbfs + QUIET_DB:
            self.headroom_db = 0.0
            return _QUIET  # most frames of most calls: no reference to look up, no lock taken
        with self._lock:  # the played levels: the sending side's too
            lag = self._lag
            if lag is None:  # the loudest played within +-40 ms of the delay (within the whole range while unknown)
                reference = self._played.loudest(slot - MAX_LAG - WINDOW, slot - MIN_LAG + WINDOW)
            else:
                reference = self._played.loudest(slot - lag - WINDOW, slot - lag + WINDOW)
            if reference < PLAYED_FLOOR_DBFS and lag is not None:  # nothing at the delay: its room's tail?
                reference = self._played.tail(slot - lag - WINDOW - 1, TAIL_SLOTS, TAIL_DB)
            if reference < PLAYED_FLOOR_DBFS:
                self.headroom_db, self.over_echo = level_dbfs - floor_dbfs, False
                return Verdict.CALLER  # nothing played that could be echoing now
            echo_dbfs = reference - (self._loss if lag is not None else self._judged_loss(lag))  # the loudest echo it can hold
            if level_dbfs > echo_dbfs + self.margin_db and lag is not None and self.room_tail:
                # over the echo of what plays at the delay: the room's tail of what played before it?
                # (looked up only here: most frames over the noise are judged echo without it) Counted
                # from the window's first slot, one slot less than after audio stops (``TAIL_SLOTS``)
                echo_dbfs = max(reference, self._played.tail(slot - lag - WINDOW, TAIL_SLOTS, TAIL_DB)) - self._loss
            self.headroom_db = level_dbfs - echo_dbfs
            if level_dbfs > echo_dbfs + self.margin_db:
                self.stats.caller_frames += 1
                self.over_echo = True
                self._caller_until = now + DOUBLE_TALK_HOLD_S
                self._callers.append(slot)
                return Verdict.CALLER
            if now < self._caller_until:
                self.stats.unsure_frames += 1
                return Verdict.UNSURE
            self.stats.echo_frames += 1
            gap = reference - level_dbfs
            if lag is None and level_dbfs >= RECORD_MIN_DBFS and self._for_the_record(level_dbfs, gap, now):
                self._record_loss.add(gap)
            return Verdict.ECHO

    def _for_the_record(self, level_dbfs: float, gap_db: float, now: float) -> bool:
        """May a frame of ``level_dbfs``, ``gap_db`` under the reference, judged echo at ``now``,
        enter the line's record? From ``RECORD_AFTER_S`` after the current stretch began, any;
        before that, from the echo's arrival on (the line, quiet in the ``BEFORE_TALK_SLOTS``
        inbound slots before the stretch, at least ``BEFORE_TALK_MIN`` of them heard, rose
        ``ARRIVAL_DB`` over them), those ``ARRIVAL_GAP_DB`` or more under the reference. Under
        the lock; the inbound levels are the run thread's, as this is."""
        start = self._talk_start
        if now >= start + RECORD_AFTER_S:
            return True
        if gap_db < ARRIVAL_GAP_DB:
            return False  # a caller who began with the agent, near its level, is no echo to record
        if self._arrived_for == start:
            return True
        if now < start or self._next_slot is None:
            return False  # (the stretch's audio not playing yet: its first slot is not in the levels)
        levels = self._levels
        end = len(levels) - (self._next_slot - round(start / SLOT_S))  # the stretch's first slot's index
        if end < BEFORE_TALK_MIN:
            return False  # too little heard before the agent to know the line was quiet
        line = max(levels[i] for i in range(max(0, end - BEFORE_TALK_SLOTS), end))
        if line >= RECORD_MIN_DBFS or level_dbfs < line + ARRIVAL_DB:
            return False  # a room's sound on the line before the agent: its rise may be no echo
        self._arrived_for = start
        return True

    def echo_then(self, level_dbfs: float, at: float) -> bool:
        """Would a frame of ``level_dbfs`` that arrived at ``at`` be judged echo now? Asked of a
        frame judged the caller's before the delay was known (against the loudest played over
        the whole 20-800 ms, with a loss not yet measured): with the delay known it is judged
        against what played at that delay. False while the delay is unknown."""
        with self._lock:
            lag = self._lag
            if lag is None:
                return False
            slot = round(at / SLOT_S)
            reference = self._played.loudest(slot - lag - WINDOW, slot - lag + WINDOW)
            return reference >= PLAYED_FLOOR_DBFS and level_dbfs <= reference - self._loss + self.margin_db

    def _judged_loss(self, lag: int | None) -> float:
        """The loss a frame is judged with: the learned one, or while the delay is unknown the line's
        own record of its echo when it has one (never below what was learned otherwise)."""
        if lag is not None:
            return self._loss
        recorded = self._record_loss.loss_db
        return self._loss if recorded is None else max(self._loss, recorded)

    @property
    def delay_ms(self) -> int | None:
        """The estimated echo delay (sent -> heard back), once found."""
        lag = self._lag
        return None if lag is None else lag * FRAME_MS

    @property
    def loss_db(self) -> float:
        """The echo return loss in use (the line's record, or the 6 dB prior, until learned)."""
        return self._judged_loss(self._lag)

    # ------------------------------------------------------------------ learning the echo path
    def _record(self, slot: int, level: float) -> None:
        """Keep one inbound level per slot (a late frame fills the gap; two in a slot: the louder)."""
        last = None if self._next_slot is None else self._next_slot - 1
        if last is not None and slot <= last:
            if slot == last and self._levels:
                self._levels[-1] = max(self._levels[-1], level)
            return
        if last is not None and slot - last > 1:  # slots no frame arrived in: this level stands for them
            self._levels.extend([level] * min(HISTORY, slot - last - 1))
        self._levels.append(level)
        self._next_slot = slot + 1
        self._frames += 1
        if self._frames >= self._estimate_at:
            fast = self._informed < FAST_ESTIMATES and self._lag is None
            self._estimate_at = self._frames + (FAST_EVERY if fast else SLOW_EVERY)
            self.stats.delay_estimates += 1
            with self._lock:
                path = estimate(list(self._levels), slot, self._played, lambda: words(self._callers),
                                unseen=self._lag is None)  # (a delay once found is kept: no use for them)
            self._informed += path.r is not None
            self._learn(path)

    def _learn(self, path: EchoPath) -> None:
        candidate, self._candidate = self._candidate, path.lag
        if path.lag is not None and candidate is not None and abs(candidate - path.lag) <= 1:
            self._lag = path.lag  # twice in a row: a chance match with the caller's voice is not
            self._absent_votes = 0
            if path.loss_db is not None:
                self._loss = path.loss_db
        if path.lag is None and path.proven_db is not None and self._lag is None:
            self._loss = max(self._loss, path.proven_db)  # what the line proves, whoever talks later
        if path.lag is None and path.r is not None and path.loss_db is not None:
            # the agent spoke and the line followed it nowhere (r < 0.3), or not clearly: an echo
            # masked by the line's noise (a car, a room) is no louder than that noise either
            self._absent_votes += 1
            needed = ABSENT_VOTES if path.r < ABSENT_CORRELATION else MASKED_VOTES
            if self._absent_votes >= needed and self._lag is None:
                self._loss = max(self._loss, path.loss_db)


class PlayedLevels:
    """The level of every frame sent, by playout slot (``MIN_DBFS`` where nothing played).

    A list from a base slot rather than a dict: the gate asks for the loudest of up to 44 slots on
    every frame above the noise and the estimate for 140 in a row, which are slices here, not a
    dict lookup per slot. It keeps ``KEEP`` slots behind the newest (the gate looks back at most
    ``HISTORY + MAX_LAG + WINDOW`` from an inbound slot, and sending is paced: the newest played
    slot is a few frames ahead of the inbound one)."""

    KEEP = 4 * HISTORY

    def __init__(self) -> None:
        self._levels: list[float] = []
        self._base = 0  # the slot of _levels[0]

    @classmethod
    def of(cls, played: "Mapping[int, float]") -> "PlayedLevels":
        """The same levels as a ``{slot: level}`` mapping."""
        levels = cls()
        for slot in sorted(played):
            levels.set(slot, played[slot])
        return levels

    def set(self, slot: int, level: float) -> None:
        levels = self._levels
        i = slot - self._base
        if not levels or i != len(levels):  # anything but the next slot (every frame while the agent talks)
            i = self._index(slot)
            if i is None:
                return
            if i < len(levels):
                levels[i] = level
                return
        levels.append(level)
        if len(levels) > 2 * self.KEEP:
            drop = len(levels) - self.KEEP
            del levels[:drop]
            self._base += drop

    def _index(self, slot: int) -> int | None:
        """Where ``slot`` is in the list, the list extended or started over to reach it (None: older
        than anything kept by more than ``KEEP``; sending never goes back in time, kept general)."""
        levels = self._levels
        i = slot - self._base
        if not levels or i - len(levels) > self.KEEP:
            levels.clear()  # the first, or nothing kept is within reach of this slot
            self._base = slot
            return 0
        if i < 0:
            if -i > self.KEEP:
                return None
            levels[:0] = [MIN_DBFS] * -i
            self._base = slot
            return 0
        levels.extend([MIN_DBFS] * (i - len(levels)))
        return i

    def clear_after(self, slot: int) -> None:
        """Forget every slot after ``slot`` (a clear: it will never play)."""
        del self._levels[max(0, slot - self._base + 1):]

    def loudest(self, first: int, last: int) -> float:
        """The loudest played in slots ``first`` .. ``last`` (``MIN_DBFS`` for slots with none).
        (Asked on every caller frame above the noise: the bounds' ``max``/``min`` written out.)"""
        levels, base = self._levels, self._base
        start, stop = first - base, last - base + 1
        if start < 0:
            start = 0
        if stop > len(levels):
            stop = len(levels)
        if stop <= start:
            return MIN_DBFS
        loudest = max(levels[start:stop])
        return loudest if stop - start == last - first + 1 or loudest >= MIN_DBFS else MIN_DBFS

    def tail(self, last: int, slots: int, decay_db: float) -> float:
        """The loudest of slots ``last - slots + 1`` .. ``last``, each ``decay_db`` quieter per slot
        before ``last + 1`` (a reverberating tail; ``MIN_DBFS`` if nothing played)."""
        levels = self.span(last - slots + 1, last)
        return max(level - decay_db * (slots - i) for i, level in enumerate(levels))

    def span(self, first: int, last: int) -> "list[float]":
        """The levels of slots ``first`` .. ``last``, one per slot."""
        lo, count = first - self._base, last - first + 1
        start = max(0, lo)
        inside = self._levels[start:max(start, min(len(self._levels), lo + count))]
        before = min(count, max(0, -lo))
        return [MIN_DBFS] * before + inside + [MIN_DBFS] * (count - before - len(inside))


def estimate(levels: "list[float]", last_slot: int, played: "Mapping[int, float] | PlayedLevels",
             doubted: "set[int] | frozenset[int] | Callable[[], set[int]]" = frozenset(),
             unseen: bool = True) -> EchoPath:
    """The echo path over the inbound ``levels`` (consecutive slots ending at ``last_slot``).

    The lag at which played levels best predict the inbound ones if clearly (r >= 0.7), the best
    correlation (None: the agent was too silent to tell), and the loss: at that lag, a low
    percentile of played-within-the-window minus heard over frames where the agent spoke and
    the gate did not hear the caller talk (``doubted`` slots, see ``words``: a word over the echo still
    correlates well enough, and its frames would say the echo is loud); with no echo to be seen
    (r < 0.3), the loss that proves (see ``_unseen_loss``). ``doubted`` may be a function that
    gives the slots: it is asked only when a lag is found (the gate's costs a pass over its slots).
    With ``unseen`` False no lag found gives no loss (neither ``_unseen_loss`` nor
    ``_proven_loss``): a gate that knows its delay has no use for them, and they are two thirds
    of an estimate's time.

    Every lag at once (numpy correlations of the played levels with the line's, not a Python
    loop over the lags): this runs every 400 ms of every call until the delay is found.
    """
    if not isinstance(played, PlayedLevels):
        played = PlayedLevels.of(played)
    np = numeric()[0]
    # the played levels from MAX_LAG + WINDOW before the first inbound slot to WINDOW after the last
    spanned = played.span(last_slot - len(levels) + 1 - MAX_LAG - WINDOW, last_slot + WINDOW)
    if max(spanned) < PLAYED_FLOOR_DBFS:  # nothing audible played (the caller's turn): no evidence, no proof
        return EchoPath(None, None)  # (what the steps below come to then, without a numpy call)
    span = _floats(np, spanned)
    n = _since_the_agent(len(levels), span >= PLAYED_FLOOR_DBFS)
    raw = span[len(span) - (n + MAX_LAG + 2 * WINDOW):]  # slot first_slot - MAX_LAG - WINDOW on
    heard = _floats(np, levels[len(levels) - n:])
    xs = np.maximum(heard, CLAMP_DBFS)
    if n < LAG_SLOTS:
        return EchoPath(None, None, proven_db=_proven_loss(raw, xs) if unseen else None)
    if int(np.count_nonzero(raw >= PLAYED_FLOOR_DBFS)) < n // 2:
        return EchoPath(None, None)  # the agent hardly spoke: no evidence either way
    xc = xs - xs.sum() / n
    var_x = float(np.dot(xc, xc))
    if var_x < n * 4.0:  # the caller's line barely moved (< 2 dB): it follows nothing
        return _unseen(0.0, raw, xs, unseen)
    # per window start k of n played slots (lag = MAX_LAG + WINDOW - k): its sum, its squares, its
    # product with the line's levels; kept for the lags searched, shortest lag first
    dense = np.maximum(raw, CLAMP_DBFS)
    ones = np.ones(n)
    lags = slice(MAX_LAG + WINDOW - MIN_LAG, WINDOW - 1, -1)
    sum_y = np.correlate(dense, ones)[lags]
    var_y = np.correlate(dense * dense, ones)[lags] - n * (sum_y / n) ** 2
    moving = var_y >= n * 4.0  # a played stretch that barely moved predicts nothing
    if not np.count_nonzero(moving):  # (``moving.any()``, at a fraction of a reduction's cost)
        return EchoPath(None, None)
    r = np.where(moving, np.correlate(dense, xc)[lags] / np.sqrt(var_x * np.where(moving, var_y, 1.0)), -np.inf)
    best = int(r.argmax())  # the shortest lag of the best correlation (the method: no dispatch)
    best_r = float(r[best])
    if best_r < MIN_CORRELATION:
        return _unseen(best_r, raw, xs, unseen)
    best += MIN_LAG
    window = raw[MAX_LAG - best:MAX_LAG - best + n + 2 * WINDOW]  # inbound slot i's played window: [i, i + 2 * WINDOW]
    references = window[:n].copy()
    for shift in range(1, 2 * WINDOW + 1):
        np.maximum(references, window[shift:shift + n], out=references)
    measured = references >= PLAYED_FLOOR_DBFS
    if callable(doubted):
        doubted = doubted()
    if doubted:
        first_slot = last_slot - n + 1
        measured[[s - first_slot for s in doubted if 0 <= s - first_slot < n]] = False
    losses = (references - heard)[measured]
    if len(losses) < FAST_EVERY:
        return EchoPath(best, best_r, None)
    k = int(len(losses) * LOSS_PERCENTILE)
    return EchoPath(best, best_r, max(0.0, float(np.partition(losses, k)[k])))


def _unseen(r: float, raw: "Any", heard: "Any", wanted: bool) -> EchoPath:
    """No lag found: the path with the losses the line proves (if ``wanted``)."""
    if not wanted:
        return EchoPath(None, r)
    return EchoPath(None, r, _unseen_loss(raw, heard), _proven_loss(raw, heard))


WORD_SLOTS, WORD_SPAN = 3, 2
"""A slot judged the caller's with 3 such slots within +-2 of it is inside the caller's word."""


def words(callers: "Iterable[int]") -> "set[int]":
    """The slots of the caller's words (and 40 ms either side), given the slots judged the
    caller's. An echo peak a few dB over the loss in use is one such slot now and then and must
    still be measured (left out, the loss would only ever be measured upwards); a word is a run.
    (One pass over the slots in order: the gate keeps the last 100.)"""
    judged = sorted(set(callers))
    cores = []
    low = high = 0
    for slot in judged:  # judged[low:high]: the slots within WORD_SPAN of this one
        while judged[low] < slot - WORD_SPAN:
            low += 1
        while high < len(judged) and judged[high] <= slot + WORD_SPAN:
            high += 1
        if high - low >= WORD_SLOTS:
            cores.append(slot)
    return {s + d for s in cores for d in range(-WORD_SPAN, WORD_SPAN + 1)}


def _floats(np: "Any", values: "list[float]") -> "Any":
    """A float64 array of ``values`` (the very same floats) through ``array.array``'s buffer: about
    half the cost of ``np.array`` on a list of Python floats."""
    return np.frombuffer(array.array("d", values), dtype=np.float64)


def _since_the_agent(count: int, audible: "Any") -> int:
    """How many of the last ``count`` inbound levels to correlate: those from the agent's first
    audible frame on (plus the shortest delay). What came before (the caller's own question)
    cannot be echo, and correlated with the agent's silence it reads as a line that follows
    nothing. ``audible`` says which played slots were audible, from ``MAX_LAG + WINDOW`` slots
    before the first inbound slot on."""
    before = MAX_LAG + WINDOW
    any_of = numeric()[0].count_nonzero  # (for ``.any()``: a fraction of a reduction's cost)
    if any_of(audible[:before]):
        return count  # the agent was audible before the window: all of it may carry echo
    spoken = audible[before:before + count]
    if not any_of(spoken):
        return count
    return count - max(0, int(spoken.argmax()) + MIN_LAG)


class ProvisionalLoss:
    """The line's record of its echo while the delay is unknown: "reference - heard" of the frames
    judged echo above the noise (the reference is the loudest played anywhere in the delays
    searched, as the judge uses it). A low percentile of the latest ``PROVISIONAL_KEEP`` is what
    the line has shown of the echo's loss; None until ``PROVISIONAL_MIN`` frames are in."""

    def __init__(self) -> None:
        self._gaps: deque[float] = deque()  # arrival order
        self._sorted: list[float] = []  # the same, in order

    def add(self, gap_db: float) -> None:
        self._gaps.append(gap_db)
        bisect.insort(self._sorted, gap_db)
        if len(self._gaps) > PROVISIONAL_KEEP:
            del self._sorted[bisect.bisect_left(self._sorted, self._gaps.popleft())]

    @property
    def loss_db(self) -> float | None:
        gaps = self._sorted
        if len(gaps) < PROVISIONAL_MIN:
            return None
        return max(0.0, gaps[int(len(gaps) * PROVISIONAL_PERCENTILE)])


PROVEN_MIN = 10
"""Frames of the agent's audio every delay searched needs behind it before the line's silence
under it proves a loss (200 ms of the agent at each delay)."""


def _proven_loss(played: "Any", heard: "Any") -> float | None:
    """The loss the line proves before any delay is found: at every delay searched, a low
    percentile of "played (loudest within +-40 ms) - heard" over the frames the agent was
    audible at that delay (the rank of the 10th percentile of the delay with the fewest such
    frames: at most each one's own 10th percentile, one partition for all); the least of them. Whatever the true delay, its echo was no louder
    than what the line carried (an echo ``loss`` down makes that gap at most ``loss`` at its
    delay; the caller, noise and the other delays only lower the figure), so the least over the
    delays never overstates the loss. A line silent under the agent's first words proves a
    large one at once, without waiting for a second of them (``LAG_SLOTS``) and a second vote,
    by which time the caller may be talking (their words were judged echo under the 6 dB prior:
    each fragment a duck and a release, the agent heard again between them). None until each
    delay has ``PROVEN_MIN`` frames. ``played`` and ``heard`` as in ``estimate`` (``heard``
    clamped)."""
    np = numeric()[0]
    n = len(heard)
    if n < PROVEN_MIN:
        return None
    references = played[:n + MAX_LAG].copy()  # slot i: the loudest of played slots i .. i + 2 * WINDOW
    for shift in range(1, 2 * WINDOW + 1):
        np.maximum(references, played[shift:shift + n + MAX_LAG], out=references)
    # row i: references[i:i + n], for lags MAX_LAG .. MIN_LAG (the rows sliding_window_view(references, n)
    # would give, as a view made directly: without its set-up, a third of this function's time)
    rows = np.ndarray((MAX_LAG - MIN_LAG + 1, n), dtype=references.dtype, buffer=references,
                      strides=(references.itemsize, references.itemsize))
    audible = rows >= PLAYED_FLOOR_DBFS
    least = int(audible.sum(axis=1).min())
    if least < PROVEN_MIN:
        return None
    k = int(least * LOSS_PERCENTILE)  # the same rank at every delay: at most its 10th percentile
    gaps = np.partition(np.where(audible, rows - heard, np.inf), k, axis=1)
    return max(0.0, float(gaps[:, k].min()))


def _unseen_loss(played: "Any", heard: "Any") -> float:
    """The loss a line that did not follow the agent proves: the agent's typical level over the
    line's loud end (its echo, if any, was no louder than the line's own sound). Both are numpy
    arrays of levels."""
    np = numeric()[0]
    spoken = np.sort(played[played >= PLAYED_FLOOR_DBFS])
    line = np.sort(heard)
    return max(0.0, float(spoken[len(spoken) // 2] - line[int(len(line) * 0.9)]))


@functools.lru_cache(maxsize=256)
def attenuation_table(db: float) -> bytes:
    """A ``bytes.translate`` table that lowers mu-law audio by ``db`` (a per-byte lookup, C speed).
    Built once per process and level (256 encodes: half a millisecond, which every call's comfort
    noise paid again for each whole dB its floor passed through)."""
    gain = 10 ** (-abs(db) / 20)
    return bytes(_lin_to_ulaw(int(ULAW_TABLE[b] * gain)) for b in range(256))


COMFORT_FRAMES = 50
"""Distinct noise frames cycled through (one second: no audible or detectable period)."""
COMFORT_REFERENCE_DBFS = -20.0
"""The level the noise frames are made at; lower levels are a ``translate`` of them."""
SILENT_FLOOR_DBFS = -70.0
"""A floor below this (nothing measured yet, a digitally silent line, or one whose quietest
frames are the echo's own tails) gets mu-law silence: mu-law cannot draw noise that quiet (it
comes out as sparse steps a few dB louder: a floor of -85 dBFS as -77), and a neural VAD takes
those steps for a voice (Silero, the local server's: 0.45-0.84 over floors of -84..-76 dBFS,
0.2 or less from -70 up, 0.01 on silence; docs/barge-in.md, "Comfort noise mu-law cannot draw")."""


class ComfortNoise:
    """What the model hears instead of an echo-only frame: noise at the call's own noise floor.

    Why not the echo, however far down: a real VAD fires on speech at any level it can resolve,
    and the agent's words 30 dB down are still speech to it. Why not silence: a line that drops to
    digital silence whenever the agent talks is itself a pattern, and the level step in and out
    of it is an onset to a VAD. Noise at the floor the caller's line has anyway carries neither.
    Frames are white noise made once (seeded) and lowered with a cached 256-byte ``translate``
    table per whole dB: C speed, no per-sample Python on the call's busiest path.
    """

    def __init__(self, seed: int = 21) -> None:
        self._frames = _noise_frames(seed)
        self._tables: dict[int, bytes] = {}
        self._next = 0
        self._floor: float | None = None  # the floor of the last frame, and its table
        self._table = b""

    def frame(self, floor_dbfs: float) -> bytes:
        """The next 20 ms of noise at ``floor_dbfs`` (mu-law silence below ``SILENT_FLOOR_DBFS``)."""
        if floor_dbfs < SILENT_FLOOR_DBFS:
            return SILENCE_FRAME
        if floor_dbfs != self._floor:  # (the floor moves every 100 ms at most: most frames reuse the table)
            db = max(0, round(COMFORT_REFERENCE_DBFS - floor_dbfs))
            table = self._tables.get(db)
            if table is None:
                table = self._tables[db] = attenuation_table(db)
            self._floor, self._table = floor_dbfs, table
        table = self._table
        frame = self._frames[self._next]
        self._next = (self._next + 1) % COMFORT_FRAMES
        return frame.translate(table)


@functools.lru_cache(maxsize=4)
def _noise_frames(seed: int) -> "tuple[bytes, ...]":
    """The comfort noise's frames at ``COMFORT_REFERENCE_DBFS``: made once per process (immutable)."""
    rng = random.Random(seed)
    scale = FULL_SCALE_INT * 10 ** (COMFORT_REFERENCE_DBFS / 20)
    return tuple(bytes(_lin_to_ulaw(int(max(-32767, min(32767, rng.gauss(0.0, scale))))) for _ in range(FRAME_BYTES))
                 for _ in range(COMFORT_FRAMES))
