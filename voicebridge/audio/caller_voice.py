"""How loud the caller's own voice is at their handset (sans-IO), learned with the agent quiet.

A voice across the caller's room (a TV, a radio, people talking) switched on while the agent
speaks is "near" by the line's noise floor, which has not caught up with it yet, and long enough
to be confirmed on its length. By the caller's own voice it is not: a caller who asked their
question at -20 dBFS does not interrupt at -32. ``CallerVoice`` keeps the level of what the
caller said while no barge-in could follow (the agent quiet: nothing of theirs is echo then), and
says when an utterance over the agent peaks ``QUIET_DB`` or more under it. Such an utterance is
not confirmed on its length: it is held, as a far voice, for its words (a command interrupts,
anything else resumes; ``Listener.hold``), the caller having stopped hearing the agent at the
duck. Until the caller has said enough (``KNOWN_FRAMES``) nothing is judged so.
"""
from __future__ import annotations

from collections import deque


class CallerVoice:
    """The caller's loud frames heard with the agent quiet, lately, and their level."""

    FRAMES = 250  # the last 5 s of them (a caller who speaks up, or softer, is followed)
    KNOWN_FRAMES = 25  # 0.5 s of them before their level is known
    PERCENTILE = 0.9  # their level: the frames' 90th percentile (the loud part of their words)
    QUIET_DB = 9.0  # an utterance peaking this far under it is no voice of theirs by its level
    # (measured with the caller's question first: an interruption's peak lies within 2 dB of it,
    # a TV or babble switched on mid-answer 3-15 dB under; soft and whispered voices 8-15 dB under
    # are held for their words instead: docs/barge-in.md)

    def __init__(self) -> None:
        self._levels: deque[float] = deque(maxlen=self.FRAMES)
        self._level: float | None = None  # their level, as last worked out (None: to work out again)

    def heard(self, level_dbfs: float) -> None:
        """A loud frame of the caller's, with no barge-in possible (the agent quiet)."""
        self._levels.append(level_dbfs)
        self._level = None

    @property
    def level_dbfs(self) -> float | None:
        """The caller's voice level, or None until ``KNOWN_FRAMES`` were heard."""
        if self._level is None and len(self._levels) >= self.KNOWN_FRAMES:
            ordered = sorted(self._levels)  # (asked on a held utterance's frames, not on every frame)
            self._level = ordered[int(self.PERCENTILE * (len(ordered) - 1))]
        return self._level

    def quiet(self, peak_dbfs: float) -> bool:
        """An utterance peaking at ``peak_dbfs`` is ``QUIET_DB`` or more under the caller's voice."""
        level = self.level_dbfs
        return level is not None and peak_dbfs <= level - self.QUIET_DB
