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
``WINDOW_S`` of arrivals, so a path that really grew slower (or two clocks that drift apart,
~0.1 ms a second) is followed within that window, while a burst shorter than it is undone.
"""
from __future__ import annotations

from collections import deque

WINDOW_S = 2.0
"""Arrivals the least offset is kept over: longer than any bunching worth undoing (a stall
longer than this leaves the frames at their arrival, as before), short enough to follow drift."""


class CaptureClock:
    """``at(arrival, timestamp_ms)``: when the frame would have arrived with no queueing on its path."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self._window_s = window_s
        self._offsets: deque[tuple[float, float]] = deque()  # (arrival, offset), offsets rising: the least first
        self._last_ms: int | None = None

    def at(self, arrival: float, timestamp_ms: int | None) -> float:
        """The capture time of a frame that arrived at ``arrival`` stamped ``timestamp_ms``
        (``arrival`` itself for a frame without a timestamp)."""
        if timestamp_ms is None:
            return arrival
        offsets = self._offsets
        if self._last_ms is not None and timestamp_ms < self._last_ms:
            offsets.clear()  # the stamps started over: the old offsets say nothing of these
        self._last_ms = timestamp_ms
        stamp = timestamp_ms / 1000
        offset = arrival - stamp
        while offsets and offsets[-1][1] >= offset:
            offsets.pop()  # never the least again while this one is in the window
        offsets.append((arrival, offset))
        horizon = arrival - self._window_s
        while offsets[0][0] < horizon:
            offsets.popleft()
        return stamp + offsets[0][1]
