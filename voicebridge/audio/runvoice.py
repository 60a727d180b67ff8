"""The voice in the caller's current loud run (sans-IO): voiced frames, and a held note.

A cough or a click is loud but never voiced; a held note (music, a hum, a beep) is as periodic as
a vowel but its pitch stays put, which a voice's never does. ``RunVoice`` listens to a run's
frames with :func:`voicebridge.audio.voicing.pitch`, counts the voiced ones and follows their
periods for a held note. ``CallerLevel`` (:mod:`voicebridge.audio.detector`) asks it about a
run's first frames only (each costs a pitch analysis) and keeps the line's history (the frame
before) itself: it is passed in, as it is every frame's.
"""
from __future__ import annotations

import enum

from .voicing import DULL, Pitch, pitch


class Voicing(enum.Enum):
    """What one listened frame of a run was."""

    UNVOICED = "unvoiced"  # not periodic enough, or dull: noise, breath, a thud
    VOICED = "voiced"  # periodic and bright: a vowel
    HELD = "held"  # voiced, the run's last TONE_FRAMES periods within TONE_SPREAD: a held note


class RunVoice:
    """The voiced frames of a run and their periods (a held note), one per ``CallerLevel``."""

    VOICE_PERIODICITY = 0.45  # below voicing.VOICED: three such frames are asked for, not one
    TONE_FRAMES, TONE_SPREAD = 6, 0.005  # voiced frames whose period stays within 0.5 %: a held note
    SIBILANT_BRIGHT, SIBILANT_FRAMES = 2.5, 6
    """Three in four of a run's listened frames at least this bright: a held "shh" or a hiss (2.8-3.2),
    not a whispered word, whose vowels are duller (1.3-2.1: docs/barge-in.md, "A shush is no whisper")."""

    def __init__(self) -> None:
        self.voiced = 0  # voiced loud frames in the current run
        self._bright: list[float] = []  # brightness of the run's listened frames (a whisper is bright)
        self._duller = 0  # ... how many of them are under ``SIBILANT_BRIGHT``
        self.held_sibilant = False  # from its sixth listened frame on, the run was a held sibilant
        self._periods: list[float] = []  # pitch periods of the run's consecutive voiced frames (held notes)
        self._pitch: tuple[bytes, bytes, Pitch] | None = None  # the last onset's frame, the one before, its pitch

    def dull_onset(self, frame: bytes, previous: bytes) -> bool:
        """A run would start on a frame with hardly any energy above a few hundred Hz: road
        noise or a knock's thud, never a voice's onset (its vowels and consonants are brighter).
        Its pitch is kept for ``listen``, which asks about the same frame next."""
        judged = self._pitch = (frame, previous, pitch(frame, previous))
        return judged[2].brightness < DULL

    def listen(self, frame: bytes, previous: bytes, tones: bool) -> Voicing:
        """One loud frame of the run (after ``previous``): voiced or not (periodic, and bright but
        not a sibilant's), with ``tones`` a held note or not (a steady period). Its brightness is kept."""
        r, period, bright = self._pitch_of(frame, previous)
        if not self.held_sibilant and len(self._bright) >= self.SIBILANT_FRAMES - 1 and self.sibilant():
            self.held_sibilant = True  # (no whisper: its voice, if any, comes later; listened to till then)
        self._bright.append(bright)
        self._duller += bright < self.SIBILANT_BRIGHT
        if r < self.VOICE_PERIODICITY or bright < DULL:
            self._periods = []
            return Voicing.UNVOICED
        hiss = bright >= self.SIBILANT_BRIGHT  # as bright as a hiss: periodic by chance (2-5 % of a hiss's frames)
        if not hiss:
            self.voiced += 1
        if tones and self._held_note(period):
            return Voicing.HELD  # music, a hum, a beep (a smoke alarm's too, as bright as a hiss: review rv26)
        return Voicing.UNVOICED if hiss else Voicing.VOICED

    def _held_note(self, period: float) -> bool:
        """The run's last ``TONE_FRAMES`` periodic frames kept one period (``period`` the latest)."""
        self._periods.append(period)
        recent = self._periods[-self.TONE_FRAMES:]
        return len(recent) >= self.TONE_FRAMES and max(recent) - min(recent) <= self.TONE_SPREAD * min(recent)

    def sibilant(self) -> bool:
        """The run's listened frames are a held sibilant: nearly all as bright as a "shh" or a hiss."""
        return bool(self._bright) and self._duller <= len(self._bright) // 4  # (its lower quartile that bright)

    def brightness(self) -> float | None:
        """The median brightness of the run's listened frames (None: none listened to)."""
        bright = sorted(self._bright)
        return bright[len(bright) // 2] if bright else None

    @property
    def last_brightness(self) -> float:
        """The brightness of the frame ``listen`` was told last."""
        return self._bright[-1]

    def discount(self) -> None:
        """The run's voiced frames were chance (an impulsive noise's): no voice for its utterance."""
        self.voiced = 0

    def clear(self) -> None:
        """The run is over: nothing voiced in it any more, nor any brightness measured."""
        self.voiced, self._periods, self._bright, self._duller = 0, [], [], 0
        self.held_sibilant = False

    def _pitch_of(self, frame: bytes, previous: bytes) -> Pitch:
        """``pitch`` of ``frame`` after ``previous``: the run's first frame was measured already
        by ``dull_onset`` (the same bytes after the same bytes: the same answer)."""
        judged, self._pitch = self._pitch, None
        if judged is not None and judged[0] is frame and judged[1] is previous:
            return judged[2]
        return pitch(frame, previous)
