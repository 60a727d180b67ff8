"""What the caller has actually heard, from Twilio ``mark`` echoes (sans-IO).

The bridge sends a mark every few frames and after an item's last frame. Twilio echoes a mark
when the audio queued before it has played, *or* when a ``clear`` discarded it. Mark names
carry a generation number that a clear bumps, so echoes that arrive after a clear for an older
generation are known to be stale and are not taken as "played". Between echoes, playback
advances in real time from the last confirmed position, capped by what was actually sent.
Memory is bounded: a few recent items, and pending marks of the last two generations.

What "heard" means here is what the caller will have heard when a ``clear`` sent now reaches
Twilio, one network hop ``d`` later: that is where a barge-in's truncate must cut. Two clocks
give it:

* the send clock: an item's audio starts playing ``d`` after its first frame is sent, so the
  position at the clear's arrival is the time since that frame (``d`` cancels out); exact in
  steady playout, too high when playout fell behind sending (a stall, an item queued behind
  another);
* an echoed mark: the audio before it played ``d`` before the echo arrived, and the clear lands
  ``d`` after the decision, so the position then is the mark's plus the time since the echo plus
  the round trip ``2d``. Without the round trip the estimate sat ``2d`` low after every echo.

The round trip is learned from the echoes themselves: an echo's lag behind the send clock is
``2d`` plus whatever playout fell behind, so the least lag seen on the call is the round trip.
A mark not echoed yet bounds it too: its audio had not played a hop ago, so the clear finds
playout at most a round trip past it (a stall shows there before any echo after it). The
estimate is the lowest of these (each an upper bound of what played), never under the
confirmed position and never over what was sent.
"""
from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass

from .mulaw import BYTES_PER_MS, SAMPLE_RATE

RECENT_ITEMS = 16


class MarkOutcome(str, enum.Enum):
    """What an echoed mark means (str-valued so it logs and compares as its name)."""

    PLAYED = "played"  # the audio before it was heard
    STALE = "stale"  # echoed because a clear discarded it
    FOREIGN = "foreign"  # a name we never sent (or long forgotten)


@dataclass
class _ItemPlayback:
    sent_bytes: int = 0
    anchor_bytes: int = 0  # position confirmed by the last echo (or a duck's rewind; 0 until either)
    echoed_at: float | None = None  # when the echo confirming ``anchor_bytes`` arrived (None: no echo since the origin)
    origin_bytes: int = 0  # the send clock's origin: this position's frame was sent at ``origin_time``
    origin_time: float | None = None  # (None: nothing sent since the start or a rewind)
    ended: bool = False  # its last frame was sent


@dataclass(frozen=True)
class MarkInfo:
    generation: int
    item_id: str
    position: int  # bytes of the item sent when the mark was sent


class PlaybackTracker:
    """Tracks sent audio per item and the caller's confirmed playback position."""

    PREFIX = "vb"

    def __init__(self) -> None:
        self.generation = 0
        self._seq = 0
        self._items: "OrderedDict[str, _ItemPlayback]" = OrderedDict()
        self._pending: dict[str, MarkInfo] = {}
        self._current_pending = 0  # pending marks of the current generation
        self.round_trip_s: float | None = None  # the least lag of an echo behind the send clock (None: no echo yet)

    # --- sending side
    def sent(self, item_id: str, nbytes: int, now: float) -> None:
        """``nbytes`` of ``item_id`` were handed to Twilio at ``now``."""
        item = self._item(item_id)
        if item.origin_time is None:
            item.origin_bytes, item.origin_time = item.sent_bytes, now
        item.sent_bytes += nbytes

    def new_mark(self, item_id: str) -> str:
        """Name for a mark to send right after the audio sent so far for ``item_id``."""
        self._seq += 1
        name = f"{self.PREFIX}{self.generation}.{self._seq}"
        self._pending[name] = MarkInfo(self.generation, item_id, self._item(item_id).sent_bytes)
        self._current_pending += 1
        return name

    def ended(self, item_id: str) -> None:
        """The item's last frame was sent (its final mark, if any, follows it)."""
        self._item(item_id).ended = True

    def cleared(self) -> int:
        """A ``clear`` was sent: every pending mark is now stale. Returns the new generation.

        Marks two generations old are forgotten: their echoes came right after the clear that
        made them stale, or never will.
        """
        self.generation += 1
        self._current_pending = 0
        oldest = self.generation - 1
        for name in [n for n, m in self._pending.items() if m.generation < oldest]:
            del self._pending[name]
        return self.generation

    def rewind(self, item_id: str, position: int) -> None:
        """A duck's clear took back what the caller had not heard of ``item_id`` from ``position``
        on (``voicebridge.audio.unplayed``): the caller stopped there, heard it all before it, and
        its frames from there are sent again (its end too: the item is no longer ended)."""
        item = self._item(item_id)
        item.sent_bytes = min(item.sent_bytes, position)
        item.anchor_bytes = item.sent_bytes
        item.origin_time = item.echoed_at = None  # the position holds until the next frame is sent
        item.ended = False

    # --- echo side
    def echoed(self, name: str, now: float) -> MarkOutcome:
        """Handle an echoed mark."""
        info = self._pending.pop(name, None)
        if info is None:
            return MarkOutcome.FOREIGN
        if info.generation != self.generation:
            return MarkOutcome.STALE
        self._current_pending -= 1
        item = self._items.get(info.item_id)
        if item is not None and info.position >= item.anchor_bytes:
            if item.origin_time is not None and info.position >= item.origin_bytes:
                lag = max(0.0, now - item.origin_time - (info.position - item.origin_bytes) / SAMPLE_RATE)
                if self.round_trip_s is None or lag < self.round_trip_s:
                    self.round_trip_s = lag
            item.anchor_bytes = info.position
            item.echoed_at = now
        return MarkOutcome.PLAYED

    # --- queries
    def sent_bytes(self, item_id: str) -> int:
        """How much of ``item_id`` is at the caller or on its way (taken-back frames not counted)."""
        item = self._items.get(item_id)
        return 0 if item is None else item.sent_bytes

    def confirmed_bytes(self, item_id: str) -> int:
        """How much of ``item_id`` a mark echoed as played says the caller has heard."""
        item = self._items.get(item_id)
        return 0 if item is None else item.anchor_bytes

    @property
    def pending_marks(self) -> int:
        """Marks of the current generation not yet echoed: Twilio still has audio to play."""
        return self._current_pending

    def heard_bytes(self, item_id: str, now: float) -> int:
        """Best estimate of how much of ``item_id`` the caller has heard when a clear sent at
        ``now`` reaches Twilio (see the module docstring: the lower of the two clocks)."""
        item = self._items.get(item_id)
        if item is None:
            return 0
        if item.origin_time is None:  # nothing sent since (the start, or a duck's clear)
            return min(item.sent_bytes, item.anchor_bytes)
        estimate = item.origin_bytes + max(0.0, now - item.origin_time) * SAMPLE_RATE
        rtt = self.round_trip_s
        if rtt is not None:
            if item.echoed_at is not None:
                estimate = min(estimate, item.anchor_bytes + (max(0.0, now - item.echoed_at) + rtt) * SAMPLE_RATE)
            waiting = [m.position for m in self._pending.values()
                       if m.item_id == item_id and m.generation == self.generation]
            if waiting:  # not echoed yet: not played a hop ago, so no further than a round trip past it
                estimate = min(estimate, min(waiting) + rtt * SAMPLE_RATE)
        return min(item.sent_bytes, max(item.anchor_bytes, int(estimate)))

    def heard_ms(self, item_id: str, now: float) -> int:
        return self.heard_bytes(item_id, now) // BYTES_PER_MS

    def played_out(self, item_id: str) -> bool:
        """Every byte of the finished item was confirmed played by a mark echo."""
        item = self._items.get(item_id)
        return item is not None and item.ended and item.sent_bytes > 0 and item.anchor_bytes >= item.sent_bytes

    def forget_pending(self) -> int:
        """Drop every pending mark (safety fuse: Twilio stopped echoing). Returns how many."""
        n = len(self._pending)
        self._pending.clear()
        self._current_pending = 0
        return n

    def _item(self, item_id: str) -> _ItemPlayback:
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = _ItemPlayback()
            while len(self._items) > RECENT_ITEMS:
                self._items.popitem(last=False)
        return item
