"""Is a short voiceless run a whispered word the agent's echo cut short? (sans-IO)

Over a loud speakerphone echo (-15 dB) a whispered "stop" shows the detector only its first
4-5 frames: they stand over the echo, the rest falls to the echo's level, where the echo gate
does not count it (echo or unsure). The run ends one frame short of a whisper's verdict, with no
voice in it; released at once like a cough, the interruption was lost, since the model's VAD
seldom starts on a whisper (issue 21, out1). ``EchoCut`` keeps the frames the gate did not count;
``is_breath`` says whether the run that ended is such a word: its words then decide
(``BargeIn`` holds it strictly: only a bare command interrupts).

With no echo a hiss's end is heard (the line goes quiet, or its tail falls far under it): no
word, released at once (review rv22).
"""
from __future__ import annotations

from typing import Sequence

from .mulaw import MIN_DBFS
from .runshape import RunShape

BRIGHT = 1.0
"""A run's median brightness (``RunVoice.brightness``) at least this is breath: the set's whispers
over -15 dB echo measured 1.15-1.63, a car's burst 0.19, soft voices' runs 0.36-0.39."""
FRAMES = 3
"""Loud frames a run needs (a tick's one or two are no word), up to ``RunShape.WHISPER_FRAMES``
(from there it is judged a whisper, or not, by its shape)."""
CUT_S = 0.06
"""The gate's uncounted frames must be this recent when the run ends: the word went on under the
echo ..."""
CUT_DB = 15.0
"""... the loudest of them this near the run's peak."""


class EchoCut:
    """The frames the echo gate did not count (echo or unsure, over the line's quiet), lately."""

    def __init__(self) -> None:
        self._at = float("-inf")  # the last one's time ...
        self._dbfs = MIN_DBFS  # ... and the loudest since CUT_S before it

    def frame(self, level_dbfs: float, now: float) -> None:
        recent = now - self._at <= CUT_S + 1e-9
        self._dbfs = max(self._dbfs, level_dbfs) if recent else level_dbfs
        self._at = now

    def cut(self, levels: Sequence[float], now: float) -> bool:
        """A run of ``levels`` that ends at ``now`` went on under the echo."""
        return now - self._at <= CUT_S + 1e-9 and self._dbfs >= max(levels) - CUT_DB


def is_breath(levels: Sequence[float], brightness: float | None) -> bool:
    """A voiceless run's loud ``levels`` and median ``brightness``: long and bright enough for a
    whispered word (the caller asks the rest: no impulse, no voice, near, cut by the echo)."""
    return FRAMES <= len(levels) < RunShape.WHISPER_FRAMES and brightness is not None and brightness >= BRIGHT
