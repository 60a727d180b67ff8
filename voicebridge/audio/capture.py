"""When a caller frame was captured, on the bridge's clock (sans-IO).

The echo gate asks "could this frame be the echo of what played a moment ago?", so it must
place each inbound frame where it belongs on the playout timeline. Its arrival is not that
place: Twilio's media stream bunches frames (protocol.md: "Jitter can bunch frames; gaps in
``timestamp`` are possible"), and a run thread held up by a busy host reads a backlog at once.
A frame 150 ms late was compared with what played 150 ms after its echo, outside the gate's
+-40 ms window: over a pause between the agent's words its echo looked 10 dB too loud for echo,
was judged the caller's, and the agent ducked and was interrupted by its own voice.

Each frame carries its ``timestamp`` (ms from the stream's start, on the carrier's clock). The
least "arrival - timestamp" seen is the path with no queueing on it; a frame's capture time on
the bridge's clock is its timestamp plus that least offset. The least is taken over the last
``BLOCK_S`` to ``2 * BLOCK_S`` of arrivals (two blocks: the current one's least and the one
before it, a few comparisons a frame on the call's busiest path), so a path that really grew
slower (or two clocks that drift apart, ~0.1 ms a second) is followed within two blocks, while
a bunch shorter than one block is undone.
"""
from __future__ import annotations

import math

BLOCK_S = 1.0
"""Arrivals each least offset is taken over: longer than any bunching worth undoing, short
enough to follow drift (stamps 1 % slower than time still place frames up to 2 % of
``2 * BLOCK_S``, 20 ms, early)."""

MAX_HELD_S = 0.5
"""The most a frame is placed before its arrival (bunches seen: 130-400 ms; a longer stall leaves
its frames at their arrival, as before). Stamps that run slower than time (a unit not ms, a
peer's bug) make every frame look later and later than the least offset, 0.5-1 s at half rate,
1-2 s if they stand still: the gate would judge the whole call against the wrong audio."""

STAMP_LIMIT_MS = 10 ** 12
"""Twilio's stamps have at most 12 digits; past this a stamp is not one (its ``/ 1000`` overflows
a float from 309 digits, and from ~1e16 loses the arrival in the rounding)."""


class CaptureClock:
    """``at(arrival, timestamp_ms)``: when the frame would have arrived with no queueing on its path."""

    def __init__(self, block_s: float = BLOCK_S) -> None:
        self._block_s = block_s
        self._block_end = -math.inf  # when the current block of arrivals ends
        self._current = math.inf  # the least offset (arrival - stamp) of the current block
        self._previous = math.inf  # ... and of the block before it (inf: none just before)
        self._last_ms = -1

    def at(self, arrival: float, timestamp_ms: int | None) -> float:
        """The capture time of a frame that arrived at ``arrival`` stamped ``timestamp_ms``
        (``arrival`` itself for a frame without a usable timestamp: none, out of range, or the
        last frame's again, which says nothing of when this one was captured)."""
        if timestamp_ms is None or not -STAMP_LIMIT_MS < timestamp_ms < STAMP_LIMIT_MS or timestamp_ms == self._last_ms:
            return arrival
        if timestamp_ms < self._last_ms:  # the stamps started over: the old offsets say nothing of these
            self._block_end, self._current = -math.inf, math.inf
        self._last_ms = timestamp_ms
        stamp = timestamp_ms / 1000
        offset = arrival - stamp
        if arrival >= self._block_end:  # a new block; the one ending now is the one before it
            self._previous = self._current if arrival < self._block_end + self._block_s else math.inf
            self._current = offset
            self._block_end = arrival + self._block_s
        elif offset < self._current:
            self._current = offset
        least = self._current if self._current < self._previous else self._previous
        at = stamp + least
        return at if arrival - at <= MAX_HELD_S else arrival
