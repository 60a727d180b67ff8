"""A bed switched on, or a caller at the handset? How the line's level falls (sans-IO).

A TV, babble or music switched on mid-answer is loud, voiced (a TV's voices are voices) and, over
a line whose noise floor has not caught up with it yet, as far over that floor as a caller at the
handset: level, voice and length do not tell them apart. What does is how the level *falls*. A
near voice stops at once between syllables and words: its level drops by 10-30 dB within a frame
or two (to the echo, or to the line's noise), or, a soft voice's end into the echo, by 15-20 dB
within five. A sound across a room cannot: the room's reverberation carries it on and lets it decay
at the room's rate (an RT60 of 0.3-0.6 s is 4-8 dB per 40 ms), and a bed of many sources (babble,
music) never stops at all. So an utterance that stands on a step of the line's level (it never
fell back near the floor since its onset) and has not once fallen ``FALL_DB`` within
``FALL_FRAMES`` frames, nor ``LONG_FALL_DB`` within ``LONG_FALL_FRAMES``, is held, not confirmed
on its length, until it does fall (a caller: confirmed then) or ``BED_HOLD_S`` pass (a bed:
released). The bed is then the line's noise: a loud frame no more than ``BED_RISE_DB`` over its
peak is ignored while it goes on (``masks``: until the line has carried nothing that loud for
``BED_MEMORY_S``), so it does not duck the answer again and again; a caller must speak up over it.

``CallerLevel`` (:mod:`voicebridge.audio.detector`) feeds it every frame's level and asks it when
an utterance would confirm on its length.
"""
from __future__ import annotations

from .mulaw import MIN_DBFS


class Steadiness:
    """The current utterance's falls and its lowest level, from every frame of the line."""

    FALL_DB = 9.0  # a frame this far under the loudest of the FALL_FRAMES before it: the sound stopped
    FALL_FRAMES = 2
    LONG_FALL_DB = 15.0  # ... or this far under the loudest of the LONG_FALL_FRAMES before it (a soft end)
    LONG_FALL_FRAMES = 5
    STEP_DB = 12.0  # the utterance's lowest frame this far over the floor: the line stands on a step
    BED_HOLD_S = 0.9  # from the onset: a steady utterance with no fall by then is a bed, released (before
    # the duck's 1 s fuse, which would forget the utterance and let the bed duck on as new ones)
    BED_RISE_DB = 3.0  # a frame this far over a released bed's peak is a new sound (the caller over the TV)
    BED_MEMORY_S = 1.5  # a released bed is forgotten once nothing as loud came for this long (the floor's window)

    def __init__(self) -> None:
        self._recent = [MIN_DBFS] * self.LONG_FALL_FRAMES  # the last frames' levels, a ring ...
        self._at = 0  # ... whose next slot is this
        self._low = MIN_DBFS  # the lowest level since the utterance's onset
        self._fell = True  # the level fell FALL_DB since the utterance's onset
        self._since = float("-inf")  # the utterance's onset
        self._high = MIN_DBFS  # the loudest level since the utterance's onset
        self._bed_peak = MIN_DBFS  # a released bed's peak
        self.bed_until = float("-inf")  # ... its frames are ignored until then (renewed by each of them)

    def feed(self, level_dbfs: float) -> None:
        """One frame's level (counted or not: the echo the caller's words fall to counts too)."""
        recent, at = self._recent, self._at
        if not self._fell:  # (most frames: the utterance fell long ago, or none is going on)
            if level_dbfs <= max(recent[at - 1], recent[at - 2]) - self.FALL_DB \
                    or level_dbfs <= max(recent) - self.LONG_FALL_DB:
                self._fell = True
            if level_dbfs < self._low:
                self._low = level_dbfs
            elif level_dbfs > self._high:
                self._high = level_dbfs
        recent[at] = level_dbfs
        self._at = (at + 1) % self.LONG_FALL_FRAMES

    def began(self, now: float, level_dbfs: float) -> None:
        """An utterance begins at ``now`` with a frame of ``level_dbfs`` (already fed)."""
        self._since, self._low, self._high, self._fell = now, level_dbfs, level_dbfs, False

    def steady(self, floor_dbfs: float) -> bool:
        """The utterance has not fallen once since its onset and stands ``STEP_DB`` over the floor
        throughout: a bed just switched on, or a caller who has not paused yet."""
        return not self._fell and self._low >= floor_dbfs + self.STEP_DB

    def given_up(self, now: float) -> bool:
        """``BED_HOLD_S`` have passed since the onset: a steady utterance is a bed by now."""
        return now - self._since >= self.BED_HOLD_S - 1e-9

    def remember(self, now: float) -> None:
        """The utterance was released as a bed at ``now``: it is the line's noise from here on."""
        self._bed_peak, self.bed_until = self._high, now + self.BED_MEMORY_S

    def masks(self, level_dbfs: float, now: float) -> bool:
        """A loud frame at ``now`` is the released bed going on (ignored: no duck, no run), not
        ``BED_RISE_DB`` over its peak; each such frame keeps the bed in memory ``BED_MEMORY_S`` more."""
        if now > self.bed_until or level_dbfs > self._bed_peak + self.BED_RISE_DB:
            return False
        self.bed_until = now + self.BED_MEMORY_S
        return True
