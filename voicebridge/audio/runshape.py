"""The shape of the caller's current loud run (sans-IO): how its level goes, not what it sounds like.

A knock, a key, a cough, a slam and the first sounds of words are all loud and voiceless for a
while; what tells them apart before any voice is heard is how the run's level moves: a burst is
at its loudest at once and decays, a whisper or a fricative ("sss... stop") rises to its level and
holds it, a click is over in a few frames and the line falls far under it. ``RunShape`` keeps the
levels that judgement needs (the run's first ``LISTEN_FRAMES``, the line after the run's last
loud frame, the tail of a burst released on its decay) and answers those questions.
``CallerLevel`` (:mod:`voicebridge.audio.detector`) feeds it the frames of a run and asks it; the
voice in a run (periodicity, pitch, brightness: ``RunVoice``) is passed in where it matters.
"""
from __future__ import annotations

from .mulaw import MIN_DBFS


class RunShape:
    """A loud run's levels and the judgements of its shape: burst, decay, tail, impulse, whisper.

    One per ``CallerLevel``: a run's frames are counted with ``loud_frame`` (the first
    ``LISTEN_FRAMES`` of them kept), every frame of an active line is followed (``follow``: the
    line after the run's last loud frame), and ``clear`` forgets the run once it is over. The
    tail of a burst released on its decay (``follow_tail``) outlives the run: it is ignored until
    it rises or the line goes quiet (``in_tail``).
    """

    LISTEN_FRAMES = 12  # frames of a run kept (and listened to for a voice and a held note: CPU)
    BURST_DECAY_DB = 9.0
    IMPULSE_FRAMES = 5  # a voiceless run of at most this many loud frames ...
    IMPULSE_OVER_DB = 15.0  # ... (or a decaying burst) peaking this far over the threshold: a click, a knock
    IMPULSE_DROP_DB = 12.0  # ... after which the line falls this far under its peak: the sound stopped
    DECAY_FRAMES = 3  # loud frames in a row BURST_DECAY_DB under a voiceless burst's early peak: its rattle, released
    TAIL_RISE_DB = 6.0  # ... and its tail ignored while it decays: a frame this far over the tail's lowest is a new sound
    WHISPER_FRAMES = 6  # a voiceless run this long that is not a decaying burst: a whisper
    WHISPER_MAX_DBFS = -18.0
    WHISPER_BRIGHT = 1.28  # ... and bright: breath (a door, a TV, babble and low tones are duller)

    def __init__(self) -> None:
        self.run = 0  # loud frames of the current run
        self.levels: list[float] = []  # the first LISTEN_FRAMES of their levels (a burst decays, a whisper does not)
        self._after = MIN_DBFS  # the loudest frame since the run's last loud one, counted or not
        self._decay = 0  # loud frames in a row of a waiting run that decayed under its early peak (a slam's rattle)
        self.tail: float | None = None  # a burst released on its decay: its tail's lowest level (ignored till it rises)

    def loud_frame(self, level: float) -> bool:
        """One more loud frame of the run at ``level``; True if it is one of the first
        ``LISTEN_FRAMES`` (kept, and worth listening to)."""
        self.run += 1
        if len(self.levels) < self.LISTEN_FRAMES:
            self.levels.append(level)
            return True
        return False

    def follow(self, loud: bool, level_dbfs: float) -> None:
        """A frame of an active line (loud or not, the caller's or not): what the line does after
        the run's last loud frame is how an impulse is told from words that go on."""
        self._after = MIN_DBFS if loud else max(self._after, level_dbfs)

    def clear(self) -> None:
        """The run is over (or given up): its levels and its decay are forgotten, not its tail."""
        self.run, self.levels, self._decay = 0, [], 0

    def reset(self) -> None:
        """Nothing of any run is kept: the tail too is forgotten."""
        self.clear()
        self.tail = None

    def peak(self) -> float:
        """The run's loudest kept level (``MIN_DBFS`` with none)."""
        return max(self.levels, default=MIN_DBFS)

    def follow_tail(self, level: float) -> None:
        """The run was released on its decay at ``level``: the rest of its tail is ignored."""
        self.tail = level

    def in_tail(self, loud: bool, level: float) -> bool:
        """A frame of the tail of a burst released on its decay (ignored): loud, and no more than
        ``TAIL_RISE_DB`` over the tail's lowest level so far. A quiet frame ends the tail; so does
        a rise (the caller speaking over the rattle), which is then judged as a new run."""
        tail = self.tail
        if not loud or tail is None or level > tail + self.TAIL_RISE_DB:
            self.tail = None
            return False
        self.tail = min(tail, level)
        return True

    def decaying(self, level: float, threshold_dbfs: float, spoken: bool) -> bool:
        """The run (no voice yet, nor in its utterance: ``spoken`` False), at a loud frame of
        ``level``, is a burst in its decay: it peaked in its first three frames (none later
        louder by more than 1 dB), ``IMPULSE_OVER_DB`` over the threshold, and its last
        ``DECAY_FRAMES`` loud frames are ``BURST_DECAY_DB`` under that peak: a door's slam and its
        rattle, or a cough's end, which otherwise held the duck for ``MAX_UNVOICED`` frames. The
        unvoiced onset of words ("s... stop", "f... forget it", a whisper) rises to its level and
        holds it, so its frames are never that far under an early peak while it goes on."""
        levels = self.levels
        if not levels:
            return False
        peak = max(levels[:3])
        if spoken or max(levels) > peak + 1.0 or peak < threshold_dbfs + self.IMPULSE_OVER_DB:
            self._decay = 0
            return False
        self._decay = self._decay + 1 if level <= peak - self.BURST_DECAY_DB else 0
        return self._decay >= self.DECAY_FRAMES

    def burst(self) -> bool:
        """The run is at its loudest in its first three frames and its last three are
        ``BURST_DECAY_DB`` down: it decays from its start (a knock, a cough, a slam)."""
        levels = self.levels
        peak = max(levels)
        tail = levels[-3:]
        return levels.index(peak) <= 2 and sum(tail) / len(tail) <= peak - self.BURST_DECAY_DB

    def sustained(self, frames: int = 0) -> bool:
        """The run (voiceless: the caller asks that) is long enough (``frames``, default
        ``WHISPER_FRAMES``) and no burst that decays from its start: breath or a fricative
        ("sh", "f"), not a knock."""
        return len(self.levels) >= (frames or self.WHISPER_FRAMES) and not self.burst()

    def whisper_like(self, brightness: float | None, frames: int = 0) -> bool:
        """The run (voiceless: the caller asks that) is sustained (``frames``), soft, and bright
        (``brightness``: its listened frames' median, ``RunVoice.brightness``; None: unmeasured)."""
        if not self.sustained(frames):
            return False
        if brightness is not None and brightness < self.WHISPER_BRIGHT:
            return False  # rumble, a low tone, a door: not breath
        return max(self.levels) <= self.WHISPER_MAX_DBFS  # a whisper is soft: a cough at the handset is not

    def impulsive(self, threshold_dbfs: float) -> bool:
        """The run that is ending (voiceless, nor in a voiced or whispered utterance: the caller
        asks that) was an impulsive noise (a click, a knock, a key, a cough, a slam), not the
        first sound of words: loud (``IMPULSE_OVER_DB`` over the threshold: a soft or whispered
        onset's first frames, "w-" of a soft "wait", stay near it), either short
        (``IMPULSE_FRAMES``) or a burst that decays from its start ("s...", "f...", "h..." before
        "stop" are sustained), and followed by a line ``IMPULSE_DROP_DB`` under its peak: the sound
        stopped, where a word whose later frames the echo gate did not count (unsure, at the echo's
        level) goes on near it."""
        levels = self.levels
        if not levels:
            return False
        peak = max(levels)
        if peak < threshold_dbfs + self.IMPULSE_OVER_DB or self._after > peak - self.IMPULSE_DROP_DB:
            return False
        return self.run <= self.IMPULSE_FRAMES or self.burst()
