"""What the caller has actually heard, from Twilio ``mark`` echoes (sans-IO).

The bridge sends a mark every few frames. Twilio echoes a mark when the audio queued before
it has played, *or* when a ``clear`` discarded it. Mark names carry a generation number
that a clear bumps, so echoes that arrive after a clear for an older generation are known
to be stale and are not taken as "played". Between echoes, playback advances in real time
from the last confirmed position, capped by what was actually sent.
"""
from __future__ import annotations

from dataclasses import dataclass

from .audio import BYTES_PER_MS, SAMPLE_RATE


@dataclass
class _ItemPlayback:
    sent_bytes: int = 0
    anchor_bytes: int = 0  # position confirmed by the last echo (or 0 at first send)
    anchor_time: float | None = None


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
        self._items: dict[str, _ItemPlayback] = {}
        self._pending: dict[str, MarkInfo] = {}
        self.stale_echoes = 0
        self.foreign_echoes = 0

    # --- sending side
    def sent(self, item_id: str, nbytes: int, now: float) -> None:
        """``nbytes`` of ``item_id`` were handed to Twilio at ``now``."""
        item = self._items.setdefault(item_id, _ItemPlayback())
        if item.anchor_time is None:
            item.anchor_time = now
        item.sent_bytes += nbytes

    def new_mark(self, item_id: str) -> str:
        """Name for a mark to send right after the audio sent so far for ``item_id``."""
        self._seq += 1
        name = f"{self.PREFIX}{self.generation}.{self._seq}"
        position = self._items.get(item_id, _ItemPlayback()).sent_bytes
        self._pending[name] = MarkInfo(self.generation, item_id, position)
        return name

    def cleared(self) -> int:
        """A ``clear`` was sent: every pending mark is now stale. Returns the new generation."""
        self.generation += 1
        return self.generation

    # --- echo side
    def echoed(self, name: str, now: float) -> str:
        """Handle an echoed mark; returns ``"played"``, ``"stale"`` or ``"foreign"``."""
        info = self._pending.pop(name, None)
        if info is None:
            self.foreign_echoes += 1
            return "foreign"
        if info.generation != self.generation:
            self.stale_echoes += 1
            return "stale"
        item = self._items.get(info.item_id)
        if item is not None and info.position >= item.anchor_bytes:
            item.anchor_bytes = info.position
            item.anchor_time = now
        return "played"

    # --- queries
    @property
    def pending_marks(self) -> int:
        """Marks of the current generation not yet echoed: Twilio still has audio to play."""
        gen = self.generation
        return sum(1 for m in self._pending.values() if m.generation == gen)

    def heard_bytes(self, item_id: str, now: float) -> int:
        """Best estimate of how much of ``item_id`` the caller has heard by ``now``."""
        item = self._items.get(item_id)
        if item is None or item.anchor_time is None:
            return 0
        elapsed = max(0.0, now - item.anchor_time)
        estimate = item.anchor_bytes + int(elapsed * SAMPLE_RATE)
        return min(item.sent_bytes, estimate)

    def heard_ms(self, item_id: str, now: float) -> int:
        return self.heard_bytes(item_id, now) // BYTES_PER_MS

    def sent_bytes(self, item_id: str) -> int:
        item = self._items.get(item_id)
        return item.sent_bytes if item else 0

    def forget_pending(self) -> int:
        """Drop every pending mark (safety fuse: Twilio stopped echoing). Returns how many."""
        n = len(self._pending)
        self._pending.clear()
        return n
