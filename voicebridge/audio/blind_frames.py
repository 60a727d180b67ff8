"""A caller's loud frames judged before the echo gate knew the echo's delay (sans-IO; run thread).

Until the gate has measured the echo path, it judges a frame against the loudest the agent played
over the whole range of delays, and an echo peak may pass as the caller. Such frames are kept with
their utterance and their capture time, and judged again once the delay is known: before a new run
joins the utterance, if half of them or more were echo at their time, they were the agent's (an
echo peak crosses the line on its loudest frame or two, the frames around it fall under; a caller
over the echo is louder throughout), and the utterance begins anew, its length counted from the
caller's own onset (else "I see" 380 ms after an echo peak confirmed on length, as more than a
backchannel). One per call, owned by the ``Listener``.
"""
from __future__ import annotations

from .detector import CallerLevel
from .echo import EchoGate


class BlindFrames:
    """The current utterance's loud caller frames judged with no echo delay known."""

    __slots__ = ("frames", "_of", "_level")

    def __init__(self, level: CallerLevel) -> None:
        self.frames: list[tuple[float, float]] = []  # (level, capture time), read per caller frame
        self._of = float("-inf")  # ... of the utterance that began then
        self._level = level

    def judged(self, level_dbfs: float, at: float) -> None:
        """A loud frame counted as the caller's with no delay known: kept with its utterance."""
        start = self._level.utterance_start
        if start != self._of:
            self._of, self.frames = start, []
        self.frames.append((level_dbfs, at))

    def rejudge(self, level_dbfs: float, gate: EchoGate) -> None:
        """A caller frame between runs (``frames`` not empty): judge the kept ones again by the
        call's gate, if it knows the delay now and the frame is loud; half of them or more echo:
        the utterance begins anew."""
        level = self._level
        if level.hearing or gate.delay_ms is None or not level.would_be_loud(level_dbfs, gate.headroom_db):
            return
        blind, self.frames = self.frames, []
        if level.utterance_start == self._of and 2 * sum(gate.echo_then(lv, at) for lv, at in blind) >= len(blind):
            level.forget_utterance()
