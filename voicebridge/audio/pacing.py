"""The TX schedule: one 20 ms frame per tick on a monotonic clock, never a burst.

Twilio plays what it receives in order and buffers anything early, so the only ways to
sound bad are to starve it (gaps) or to dump audio in bursts (then a ``clear`` has more
to discard and a lost ``clear`` leaves more to hear). The pacer is sans-IO: the TX thread
asks ``delay(now)`` before each frame and reports ``sent(now)`` after it.

Send-ahead lead: at the start of each response (and after a schedule reset) ``lead_frames``
frames go out at once, giving Twilio a small jitter cushion. The cost is that this much
audio is already at Twilio when a barge-in happens: it is discarded by ``clear``, but if a
``clear`` were lost the caller would hear up to ``lead`` more audio. 40 ms is the default.
"""
from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import Any


GAP_BIN_S = 0.0001
"""Width of one bin of the send-gap deviation histogram (0.1 ms)."""
GAP_BINS = 100
"""Bins 0..99 hold |gap - 20 ms| in [k, k+1) x 0.1 ms; the last bin (index 100) holds >= 10 ms."""


@dataclass
class PacerStats:
    late_frames: int = 0
    schedule_resets: int = 0
    # Send-side gaps between consecutive paced frames of one schedule (the lead and the
    # pause before a new response or a resume excluded): a histogram of |gap - 20 ms|,
    # bursts (< 18 ms), stalls (> 40 ms) and the largest deviation. O(1) per frame.
    gaps: int = 0
    gap_bursts: int = 0
    gap_stalls: int = 0
    gap_max_dev_s: float = 0.0
    gap_dev_hist: list = field(default_factory=lambda: [0] * (GAP_BINS + 1))

    def figures(self) -> dict[str, Any]:
        """As the call's figures name them (``MediaSession.metrics``: ``tx_*``)."""
        return dict(tx_late_frames=self.late_frames, tx_schedule_resets=self.schedule_resets, tx_gaps=self.gaps,
                    tx_gap_bursts=self.gap_bursts, tx_gap_stalls=self.gap_stalls,
                    tx_gap_max_dev_ms=round(self.gap_max_dev_s * 1000, 3),
                    tx_gap_dev_hist=list(self.gap_dev_hist))  # 0.1 ms bins of |gap - 20 ms|, last = >= 10 ms


class Pacer:
    """Monotonic 20 ms grid with a minimum spacing for late frames and a reset past a bound."""

    def __init__(
        self,
        frame_s: float = 0.020,
        min_gap_s: float = 0.018,
        max_late_s: float = 0.200,
        lead_frames: int = 2,
        late_tolerance_s: float = 0.005,
    ) -> None:
        self.frame_s = frame_s
        self.min_gap_s = min_gap_s
        self.max_late_s = max_late_s
        self.lead_frames = lead_frames
        self.late_tolerance_s = late_tolerance_s
        self.stats = PacerStats()
        self._due: float | None = None  # scheduled instant of the next frame
        self._last_sent: float | None = None
        self._gap_from: float | None = None  # previous paced frame of this schedule (gap stats)
        self._lead_left = 0
        self._audio_end: float | None = None  # when the audio sent so far ends, played in real time
        self._burst_due: float | None = None  # after a resume's refill: when the grid goes on

    def begin(self, now: float, lead: bool = True) -> None:
        """Start a new schedule at ``now`` (a response starts, or sending resumes)."""
        self._due = now
        self._lead_left = self.lead_frames if lead else 0
        self._gap_from = None
        self._burst_due = None

    def follow_on(self, now: float) -> None:
        """A new item starts: keep the grid if the last one's audio is still playing, else begin.

        Back to back items (a lookup's "let me check" and its answer) are one stream to the
        caller: a second lead on top of the first would put the audio ahead of real time.
        """
        if self._due is None or self._last_sent is None:
            self.begin(now)
        elif now > self._due + self.lead_frames * self.frame_s:  # the caller's buffer has run dry
            self.begin(now)
        elif now > self._due:  # late for the grid, but the lead still plays: restart it, no new lead
            self.begin(now, lead=False)

    def resume(self, now: float) -> None:
        """Sending resumes after a pause (a duck released): refill the caller's buffer to the lead.

        While nothing was sent the caller kept playing what it had; going on at the grid's pace
        from here would leave its buffer that much shorter for good (every later jitter an
        underrun). The frames it is short of go at once, like a lead, then the grid goes on.
        """
        ahead = 0.0 if self._audio_end is None else max(0.0, self._audio_end - now)
        missing = max(0, math.floor((self.lead_frames * self.frame_s - ahead) / self.frame_s + 1e-9))
        # the next paced frame goes when the refilled buffer is down to lead - 1 frames
        due = now + ahead + (missing - self.lead_frames + 1) * self.frame_s
        self._gap_from = None
        self._lead_left = missing
        if missing:
            self._due, self._burst_due = now, due
        else:
            self._due = max(now, due)

    def cleared(self, now: float) -> None:
        """Twilio's buffer was emptied at ``now`` (a duck's clear): the caller has nothing left to
        play, so a resume refills the whole lead."""
        if self._audio_end is not None and self._audio_end > now:
            self._audio_end = now

    def delay(self, now: float) -> float:
        """Seconds to wait before the next frame may go (0.0 = send now)."""
        if self._due is None:
            self.begin(now)
        if self._lead_left > 0:
            return 0.0
        assert self._due is not None
        if now - self._due > self.max_late_s:
            self.stats.schedule_resets += 1
            gap_from = self._gap_from
            self.begin(now)
            self._gap_from = gap_from  # the gap that caused the reset still counts as a stall
            return 0.0
        earliest = self._due
        if self._last_sent is not None:
            earliest = max(earliest, self._last_sent + self.min_gap_s)
        return max(0.0, earliest - now)

    def sent(self, now: float) -> None:
        """Record that a frame left at ``now`` and advance the grid by one tick."""
        assert self._due is not None, "sent() before delay()"
        stats = self.stats
        self._last_sent = now
        self._audio_end = max(now, self._audio_end or now) + self.frame_s
        if self._gap_from is not None:
            gap = now - self._gap_from
            dev = abs(gap - self.frame_s)
            stats.gaps += 1
            stats.gap_dev_hist[min(int(dev / GAP_BIN_S), GAP_BINS)] += 1
            if dev > stats.gap_max_dev_s:
                stats.gap_max_dev_s = dev
            if gap < self.min_gap_s:
                stats.gap_bursts += 1
            elif gap > 2 * self.frame_s:
                stats.gap_stalls += 1
        if self._lead_left > 0:
            self._lead_left -= 1
            self._gap_from = None if self._lead_left else now
            if self._lead_left == 0:
                self._due = now + self.frame_s if self._burst_due is None else max(now, self._burst_due)
                self._burst_due = None
            return
        self._gap_from = now
        if now - self._due > self.late_tolerance_s:
            self.stats.late_frames += 1
        self._due += self.frame_s
