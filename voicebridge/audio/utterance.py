"""The caller's current utterance (sans-IO): loud runs close together, judged as one.

"Wait, hold on" is several loud runs with short gaps between them; a voice heard in one of them
counts for all, its length is counted from its first run's onset, and whether it was spoken at
the handset (near) is judged on its loudest run. ``Utterance`` keeps what the runs of one
utterance left behind and answers those questions (its length is its speech's, not the room's
tail after it); ``CallerLevel``
(:mod:`voicebridge.audio.detector`) tells it when a run starts and ends and asks it before it
confirms.
"""
from __future__ import annotations

from collections import deque

from .mulaw import FRAME_MS, MIN_DBFS

FRAME_S = FRAME_MS / 1000


class Utterance:
    """One utterance's runs: their voice, their peak, its onset and end, a whisper.

    ``min_speech_frames`` (0 = off): how long from its onset an utterance must be to be more than a
    backchannel. ``near_db`` (0 = off): how far over the line's noise floor it must peak to be a
    voice at the handset; with ``near_clear``, one of its loud frames must also have stood clear of
    the agent's echo (the detector, which sees every frame, says when one last did).
    """

    GAP_S = 0.4  # loud runs less than this apart are one utterance
    TAIL_DB = 12.0  # a loud frame this far under the utterance's peak that rises no more than this over the
    # lowest since its last strong one is the room's tail (a speakerphone's reverberation), not speech
    TAIL_S = 0.4  # ... but one this long after the last strong one, not falling, is speech: a room's tail falls
    # steadily and under the threshold sooner (60 dB per RT60), while a speakerphone caller's words after a loud
    # first one never rise out of the valley the room fills, and were held, loud, until the duck fuse (review rv8)
    VOWEL_CORE = 0.5  # a voiced frame this dull after a whisper verdict is a vowel's core: the "whisper" was a
    # voice's breathy onset ("sh-ure", "y-eah" across a reverberant room), and no whisper has one
    VOWEL_BRIGHT, VOWEL_FRAMES = 1.1, 3  # ... as are this many voiced frames under this brightness (a TV's voices
    # under a whispered "hold on" gave two at 0.88 and 0.94: review rv9)
    VOWEL_DB = 3.0  # ... each within this of its loudest frame so far: a word's vowel is its loudest part, while
    # the voices of a TV or babble heard in a whisper's gaps are quieter than the whisper (docs/barge-in.md)
    NEAR_OVER_THRESHOLD_DB = 3.0  # a near one also peaks this far over the configured threshold (a floor that has
    # not caught up with a noise just set in is no measure: babble switched on at -45 dBFS peaks under -35)

    def __init__(self, min_speech_frames: int = 0, near_db: float = 0.0, near_clear: bool = False) -> None:
        self.min_speech_frames = min_speech_frames
        self.near_db = near_db
        self.near_clear = near_clear
        self.voiced = 0  # voiced frames in its earlier runs (a voice heard once counts for it all)
        self.whispered = False  # it was judged a whisper: no voice in it
        self.vowel = False  # a vowel was heard after the whisper verdict: a voice's breathy onset, not a whisper
        self._vowel_frames = 0  # voiced frames under ``VOWEL_BRIGHT`` after the whisper verdict
        self.start = float("-inf")  # its first loud frame
        self._end = float("-inf")  # its last voiced (or whispered) run's end
        self._peak = MIN_DBFS  # its earlier runs' loudest level
        self._loudest = MIN_DBFS  # its loudest frame so far (every loud frame, the current run's too)
        self._valley = MIN_DBFS  # the lowest loud frame since its last strong one
        self._strong_at = float("-inf")  # its last strong loud frame: where its speech (not the room) was last
        self._falling = True  # its latest loud frame was the lowest since the last strong one (the room's tail falls)
        self.room = RoomVoices()  # the voices across the room lately (a TV's): an utterance as loud is theirs

    @property
    def spoken(self) -> bool:
        """A voice or a whisper was heard in its earlier runs: none of its runs is a mere burst."""
        return bool(self.voiced or self.whispered)

    def run_starts(self, now: float) -> None:
        """A loud run begins at ``now``: a new utterance unless the last ended within ``GAP_S``."""
        if now - self._end > self.GAP_S:
            self.voiced = 0
            self.whispered = self.vowel = False
            self._vowel_frames = 0
            self._peak = MIN_DBFS
            self.start = now
            self._loudest = MIN_DBFS

    def heard(self, level: float, now: float) -> None:
        """A loud frame of it at ``level``: strong if within ``TAIL_DB`` of its peak so far or
        ``TAIL_DB`` over the lowest since the last strong one (a new syllable rises out of the
        valley); otherwise the room's tail of what was said (a reverberant room carries a "yeah"
        300 ms on, falling steadily), which is not counted in its length."""
        if level >= self._loudest - self.TAIL_DB or level >= self._valley + self.TAIL_DB:
            self._strong_at, self._valley = now, level
        else:
            self._falling = level <= self._valley
            self._valley = min(self._valley, level)
        self._loudest = max(self._loudest, level)

    def run_ended(self, voiced: int, peak: float, now: float, floor_dbfs: float = MIN_DBFS) -> None:
        """A run with ``voiced`` voiced frames, peaking at ``peak``, ended: a voiced one, or any run
        of an utterance already spoken, is the utterance's, and the next run within ``GAP_S`` goes
        on with it (a voiceless run alone leaves no utterance behind). A voiced one peaking under a
        near voice's level over the floor (``floor_dbfs``) may be the room's (``RoomVoices``)."""
        if voiced and self.near_db and peak < floor_dbfs + self.near_db:
            self.room.heard(peak, now)
        if voiced or self.voiced or self.whispered:
            self.voiced += voiced
            self._peak = max(self._peak, peak)
            self._end = now

    def heard_whisper(self) -> None:
        """A run of it was judged a whisper: like a voice, it makes the utterance spoken."""
        self.whispered = True

    def voiced_frame(self, brightness: float, level: float) -> None:
        """A voiced listened frame of it, at ``brightness`` and ``level`` (told after ``heard``).
        After the whisper verdict, one as dull as a vowel's core (``VOWEL_CORE``), or
        ``VOWEL_FRAMES`` under ``VOWEL_BRIGHT``, within ``VOWEL_DB`` of its loudest, show it was
        a voice after all: "sure" and "yeah" across a reverberant room open with a breathy run
        the verdict takes for a whisper at its sixth frame, and their vowel comes after it."""
        if not self.whispered or self.vowel or level < self._loudest - self.VOWEL_DB:
            return
        self._vowel_frames += brightness < self.VOWEL_BRIGHT
        self.vowel = brightness < self.VOWEL_CORE or self._vowel_frames >= self.VOWEL_FRAMES

    @property
    def whisper_only(self) -> bool:
        """Judged a whisper, and no vowel came after: a whisper, not a voice's breathy onset."""
        return self.whispered and not self.vowel

    @property
    def speech_s(self) -> float:
        """Its speech so far, onset to its last strong frame (not the room's tail): how many words
        it can carry."""
        return max(0.0, self._strong_at - self.start) + FRAME_S if self._strong_at >= self.start else FRAME_S

    def unvoice(self) -> None:
        """A voice heard in its earlier runs no longer counts (the detector was reset)."""
        self.voiced = 0

    def forget(self) -> None:
        """Its runs so far were not the caller: the next loud run begins a new utterance."""
        self.voiced = 0
        self._peak = MIN_DBFS
        self._end = float("-inf")
        self.whispered = self.vowel = False
        self._vowel_frames = 0
        self._loudest = MIN_DBFS

    def long_enough(self, now: float) -> bool:
        """Its speech spans ``min_speech_frames`` from its onset to its last strong frame (``heard``;
        ``now`` if none was told, or if the loud frame at ``now`` came ``TAIL_S`` after it and is
        not falling): more than a backchannel (if near). Not counted: the room's tail after its
        last strong frame, which made reverberant backchannels long enough to cut."""
        speech_again = now - self._strong_at > self.TAIL_S + 1e-9 and not self._falling
        last = now if self._strong_at < self.start or speech_again else min(now, self._strong_at)
        return round((last - self.start) / FRAME_S) + 1 >= self.min_speech_frames  # frames of its speech

    def near(self, run_peak: float, floor_dbfs: float, threshold_dbfs: float, clear_at: float,
             now: float | None = None) -> bool:
        """It (with the current run, peaking at ``run_peak``) peaks ``near_db`` over the line's floor
        and ``NEAR_OVER_THRESHOLD_DB`` over the configured threshold: a voice at the handset, not
        voices across the room (babble, a TV: their own dips set the floor a few dB under them),
        nor as loud as they peaked lately (``RoomVoices``, at ``now``). With ``near_clear``, a loud
        frame must have stood clear of the echo since its onset (``clear_at``: when one last did)."""
        if not self.near_db:
            return True
        if self.near_clear and clear_at < self.start:
            return False  # every frame at the echo's level, a few dB over the gate's margin: its peaks
        return max(self._peak, run_peak) >= threshold_dbfs + self.NEAR_OVER_THRESHOLD_DB \
            and not self.far(run_peak, floor_dbfs, now)

    def far(self, run_peak: float, floor_dbfs: float, now: float | None = None) -> bool:
        """Voices across the room, by its level alone (its peak so far, with the current run's):
        under a near voice's over the line's floor, or no louder than the room's voices before it
        (``RoomVoices``, at ``now``; None: the floor alone). Not a soft voice on a quiet line, which
        is not near (under the configured threshold's bar) but is no room's either; nor one never
        clear of the echo."""
        peak = max(self._peak, run_peak)
        return bool(self.near_db) and (peak < floor_dbfs + self.near_db
                                       or now is not None and self.room.like(peak, now, self.start))


class RoomVoices:
    """The voices across the caller's room lately (a TV, babble): how loud their runs peak.

    A TV's voices peak 18-22 dB over the floor their own lulls set: far. But its pause between
    sentences (music alone) drops the floor 5-8 dB for a moment, and its next sentence then stood
    a near voice's 24 dB over it, held for its words or confirmed. An utterance no louder than the
    room's voices of the last ``MEMORY_S`` before it began (``OVER_DB``) is theirs, whatever the
    floor did meanwhile; a caller at the handset over them peaks louder. (Runs of the utterance
    judged do not count: a caller's own soft first syllables are no room, review rv37.)"""

    MEMORY_S = 4.0  # the room's voices are remembered this long
    OVER_DB = 2.0  # an utterance must peak this much over them to be judged on the floor again

    def __init__(self) -> None:
        self._heard: deque[tuple[float, float]] = deque()  # (when a far voiced run ended, its peak)

    def heard(self, peak: float, now: float) -> None:
        """A voiced run peaking at ``peak`` under a near voice's level ended at ``now``."""
        self._forget(now)
        self._heard.append((now, peak))

    def like(self, peak: float, now: float, before: float) -> bool:
        """An utterance begun at ``before``, peaking at ``peak``, is no louder than the room's voices
        heard in the ``MEMORY_S`` before ``now`` and before it began."""
        self._forget(now)
        return any(peak < loud + self.OVER_DB for at, loud in self._heard if at < before)

    def _forget(self, now: float) -> None:
        heard = self._heard
        while heard and now - heard[0][0] > self.MEMORY_S:
            heard.popleft()
