"""A bed switched on, or a caller at the handset? How the line's level falls (sans-IO).

A TV, babble or music switched on mid-answer is loud, voiced (a TV's voices are voices) and, over
a line whose noise floor has not caught up with it yet, as far over that floor as a caller at the
handset: voice and length do not tell them apart. What does is how the level *falls*. A near
voice stops between syllables and words: its level drops 10-30 dB within a frame or two (to the
echo or the line's noise), or, a soft voice's end into the echo, 15-20 dB within five. A sound
across a room cannot: the room's reverberation lets it decay at the room's rate, and a bed of many
sources (babble, music) never stops at all.

So an utterance that stands on a step of the line's level (``STEP_DB`` over the floor throughout),
peaks under ``BED_PEAK_DBFS`` (a near voice louder than that is never taken for a bed, whatever
its dips: a run-on talker's syllables may dip only 8-12 dB) and has not once fallen ``FALL_DB``
within ``FALL_FRAMES`` frames, nor ``LONG_FALL_DB`` within ``LONG_FALL_FRAMES``, is held, not
confirmed on its length, until it falls (a caller: confirmed then) or ``BED_HOLD_S`` pass (a bed:
released).

A released bed is then the line's noise for a short while only, and only at its own level: a loud
frame inside its band (``BED_BAND_DB`` under its lowest to ``BED_BAND_DB`` over its peak) neither
ducks nor starts a run until ``BED_MEMORY_S`` after the release (so it does not pause the answer
again and again as new short runs while the noise floor catches up with it); the memory is never
renewed by the bed's frames (the first attempt's was, and a caller's own frames kept a stopped TV's
mask alive), so a caller inside the band is heard by then at the latest. The bed is forgotten at
once when the line falls ``FALL_DB`` under its lowest level (it stopped: the next sound is new),
falls like a voice (``FALL_DB`` within two frames, ``LONG_FALL_DB`` within five: what was released
may have been a caller after all) or rises over its band (a caller speaking up over it, whose
quieter frames must not be chopped out of the run): what comes next is judged afresh.

``CallerLevel`` (:mod:`voicebridge.audio.detector`) feeds it every frame's level and asks it when
an utterance would confirm on its length.
"""
from __future__ import annotations

from .mulaw import MIN_DBFS

_NEVER = float("-inf")


class Steadiness:
    """The current utterance's falls, its lowest and loudest level; a released bed's band."""

    FALL_DB = 9.0  # a frame this far under the loudest of the FALL_FRAMES before it: the sound stopped
    FALL_FRAMES = 2
    LONG_FALL_DB = 15.0  # ... or this far under the loudest of the LONG_FALL_FRAMES before it (a soft end)
    LONG_FALL_FRAMES = 5
    STEP_DB = 12.0  # the utterance's lowest frame this far over the floor: the line stands on a step
    BED_PEAK_DBFS = -21.0  # an utterance peaking at or over this is a near voice, never a bed
    BED_HOLD_S = 0.9  # from the onset: a steady utterance with no fall by then is a bed, released (before
    # the duck's 1 s fuse, which would forget the utterance and let the bed duck on as new ones)
    BED_BAND_DB = 3.0  # a released bed masks frames from this far under its lowest to this far over its peak
    BED_MEMORY_S = 3.0  # ... until this long after its release, never renewed

    def __init__(self) -> None:
        self._recent = [MIN_DBFS] * self.LONG_FALL_FRAMES  # the last frames' levels, a ring ...
        self._at = 0  # ... whose next slot is this
        self._low = MIN_DBFS  # the lowest level since the utterance's onset
        self._high = MIN_DBFS  # the loudest level since the utterance's onset
        self._fell = True  # the level fell like a voice since the utterance's onset (or none is going on)
        self._since = _NEVER  # the utterance's onset
        self._band = (MIN_DBFS, MIN_DBFS)  # a released bed's band of levels, masked ...
        self.bed_until = _NEVER  # ... until then (fixed at the release)

    def feed(self, level_dbfs: float, now: float) -> None:
        """One frame's level at ``now`` (counted or not: the echo the caller's words fall to counts too)."""
        recent, at = self._recent, self._at
        if not self._fell:  # an utterance is being judged
            if self._falls(level_dbfs):
                self._fell = True
            if level_dbfs < self._low:
                self._low = level_dbfs
            elif level_dbfs > self._high:
                self._high = level_dbfs
        elif now <= self.bed_until and (
                level_dbfs < self._band[0] + self.BED_BAND_DB - self.FALL_DB or self._falls(level_dbfs)):
            self.bed_until = _NEVER  # the bed stopped, or fell like a voice: forget it, judge what comes afresh
        recent[at] = level_dbfs
        self._at = (at + 1) % self.LONG_FALL_FRAMES

    def _falls(self, level_dbfs: float) -> bool:
        """``level_dbfs`` is a voice's fall from the frames before it."""
        recent, at = self._recent, self._at
        return level_dbfs <= max(recent[at - 1], recent[at - 2]) - self.FALL_DB \
            or level_dbfs <= max(recent) - self.LONG_FALL_DB

    def began(self, now: float, level_dbfs: float) -> None:
        """An utterance begins at ``now`` with a frame of ``level_dbfs`` (already fed)."""
        self._since, self._low, self._high, self._fell = now, level_dbfs, level_dbfs, False

    def steady(self, floor_dbfs: float) -> bool:
        """The utterance has not fallen once since its onset, stands ``STEP_DB`` over the floor
        throughout and peaks under ``BED_PEAK_DBFS``: a bed just switched on, or a soft caller who
        has not paused yet (held until it falls or ``BED_HOLD_S`` pass)."""
        return not self._fell and self._low >= floor_dbfs + self.STEP_DB and self._high < self.BED_PEAK_DBFS

    def given_up(self, now: float) -> bool:
        """``BED_HOLD_S`` have passed since the onset: a steady utterance is a bed by now."""
        return now - self._since >= self.BED_HOLD_S - 1e-9

    def remember(self, now: float) -> None:
        """The utterance was released as a bed at ``now``: its band is the line's noise for a while."""
        self._band = (self._low - self.BED_BAND_DB, self._high + self.BED_BAND_DB)
        self.bed_until = now + self.BED_MEMORY_S
        self._fell = True  # the released utterance is over: no fall tracking until the next onset

    def masks(self, level_dbfs: float, now: float) -> bool:
        """A loud frame at ``now`` is the released bed going on (ignored: no duck, no run): within
        its memory and its band of levels. A louder one ends the memory."""
        if now > self.bed_until:
            return False
        low, high = self._band
        if level_dbfs > high:  # a new sound over the bed (a caller speaking up): judged afresh, unchopped
            self.bed_until = _NEVER
            return False
        return level_dbfs >= low
