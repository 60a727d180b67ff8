"""Barge-in decisions (sans-IO): when the caller talks over the AI, what to do and when.

Small pieces, each driven by the session with levels, events and a clock:

* ``LevelDetector``: per inbound frame, loud or not; DUCK on the first loud frame (sending
  pauses at once), CONFIRM after ``frames_needed`` loud frames (a one-frame dip tolerated),
  RELEASE when a loud run ends before confirmation (sending resumes, its lead rebuilt).
* ``NoiseFloor``: the caller's background level, which raises the threshold over steady noise.
* ``CallerLevel``: the local trigger over a call's frames (threshold, echo, voice, held notes,
  speech length), with its parts in :mod:`.runshape`, :mod:`.runvoice`, :mod:`.utterance` and
  :mod:`.evidence`.
* ``refusal`` / ``plan``: why a trigger may not act (or None), and which steps it takes
  (stop the audio, cancel the response, truncate the item).

After a local barge-in, :mod:`.false_trigger` decides whether it was the caller speaking
(``FalseTriggerMonitor``, named here too: its home before, and that of the 0.1 path
``voicebridge.bargein``).
"""
from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Callable

from .breath import EchoCut, is_breath
from .evidence import Sound, SoundEvidence
from .false_trigger import FalseTriggerMonitor  # noqa: F401  (re-exported: its import path before)
from .mulaw import MIN_DBFS
from .runshape import RunShape
from .runvoice import RunVoice, Voicing
from .utterance import Utterance


class Decision(enum.Enum):
    NONE = "none"
    DUCK = "duck"
    CONFIRM = "confirm"
    RELEASE = "release"
    BACKCHANNEL = "backchannel"  # a short utterance ended before confirmation: release, the answer resumes


_NONE = Decision.NONE  # (the answer for most frames: a global, not a class lookup)


class LevelDetector:
    """Debounced RMS trigger: ``frames_needed`` loud frames confirm.

    With ``dip_frames=0`` (the original rule) they must be consecutive and any quiet frame
    ends the run and releases the duck. Speech dips between syllables, so the bridge allows
    ``dip_frames`` (1) quiet frames inside a run: they neither count nor end it, the duck holds
    and the onset stays the run's first loud frame; one more quiet frame ends it. With ``duck``
    off no DUCK is said, but a run that ends unconfirmed is still a RELEASE: what it was (a short
    "stop" to hold for, a cough) is judged the same, nothing having been paused.
    """

    def __init__(self, threshold_dbfs: float = -35.0, frames_needed: int = 5, duck: bool = True,
                 dip_frames: int = 0) -> None:
        if frames_needed < 1:
            raise ValueError("frames_needed must be >= 1")
        if dip_frames < 0:
            raise ValueError("dip_frames must be >= 0")
        self.threshold_dbfs = threshold_dbfs
        self.frames_needed = frames_needed
        self.duck = duck
        self.dip_frames = dip_frames
        self.run = 0
        self.ducking = False
        self._dips = 0

    def is_loud(self, level_dbfs: float) -> bool:
        return level_dbfs >= self.threshold_dbfs

    def feed(self, level_dbfs: float, armed: bool, tentative: bool = False) -> Decision:
        """One inbound frame's level; ``armed`` = the guards currently allow a barge-in.
        ``tentative``: a loud frame that could be an echo peak; as a run's first it ducks only
        with the run's next loud frame (an echo peak is one frame or two over the echo's margin)."""
        if armed and not self.is_loud(level_dbfs) and self.run and self._dips < self.dip_frames:
            self._dips += 1  # a dip inside a run: neither counted nor the end of it
            return Decision.NONE
        if not armed or not self.is_loud(level_dbfs):
            self.run = 0
            self._dips = 0
            if self.ducking:
                self.ducking = False
                return Decision.RELEASE
            return Decision.NONE
        self._dips = 0
        self.run += 1
        if self.run >= self.frames_needed:
            self.run = 0
            self.ducking = False
            return Decision.CONFIRM
        if not self.ducking and (self.run == 2 or self.run == 1 and not tentative):
            self.ducking = True  # (at the second frame only after a tentative first; with the duck off the
            return Decision.DUCK if self.duck else Decision.NONE  # run's end is judged all the same: RELEASE)
        return Decision.NONE

    def reset(self) -> None:
        self.run = 0
        self.ducking = False
        self._dips = 0


class NoiseFloor:
    """The caller's background level: the quietest 100 ms block level minimum over 1.5 s.

    Minimum statistics: between words (and between the agent's echoes) the level falls back to
    the line's noise, so the lowest level over a second and a half is the noise, while speech,
    which always pauses within that, never is. A noise that sets in (a fan, a street) is the
    floor 1.5 s later. The barge-in threshold is the configured one or ``floor + margin_db``,
    whichever is higher, so steady background at any realistic level does not trigger.

    Until a whole window has been heard the floor is taken as silence (a caller who talks from
    the first frame is not their own noise), and it never rises above ``ceiling_dbfs`` (-40):
    a line whose quietest moment is louder than that is someone talking without pause, not
    a background.
    """

    def __init__(self, margin_db: float = 12.0, window_s: float = 1.5, block_s: float = 0.1,
                 ceiling_dbfs: float = -40.0) -> None:
        self.margin_db = margin_db
        self.block_s = block_s
        self.ceiling_dbfs = ceiling_dbfs
        self.floor_dbfs = -100.0
        self._blocks: deque[float] = deque(maxlen=max(1, round(window_s / block_s)))
        self._block_start: float | None = None
        self._block_min = 0.0
        self._window_min: float | None = None  # the quietest whole block of a full window (None: not full yet)

    def update(self, level_dbfs: float, now: float, rise: bool = True) -> float:
        """One inbound frame's level; returns the floor. (Every caller frame comes here: the floor
        is worked out again only when one of its inputs moved, at a block's end or a new lowest
        level in the block, and ``max``/``min`` are written out as comparisons: the same floats.)
        ``rise`` False (a frame judged the agent's echo): once measured, the floor does not rise
        on it. A long answer's echo, 1.5 s without a pause, would otherwise lift a silent line's
        floor to the echo's own quiet tails, and the comfort noise with it."""
        level = level_dbfs if level_dbfs > -100.0 else -100.0
        start = self._block_start
        if start is None or now - start >= self.block_s - 1e-6 or now < start:
            measured = self._window_min is not None  # (before this frame: a floor already measured)
            if start is not None:
                self._blocks.append(self._block_min)
                if len(self._blocks) == self._blocks.maxlen:  # a whole window seen (a block's end, not every frame)
                    self._window_min = min(self._blocks)
            self._block_start, self._block_min = now, level
        elif level < self._block_min:
            self._block_min, measured = level, True  # (the window unchanged: measured if it is full)
        else:
            return self.floor_dbfs  # (most frames: neither input of the floor moved)
        window_min = self._window_min
        if window_min is not None:  # the window's quietest moment, never above the ceiling
            floor = self._block_min if self._block_min < window_min else window_min
            floor = floor if floor < self.ceiling_dbfs else self.ceiling_dbfs
            if rise or floor < self.floor_dbfs or not measured:
                self.floor_dbfs = floor
        return self.floor_dbfs

    def threshold(self, configured_dbfs: float, reach_db: float = 0.0, quiet_db: float = 0.0) -> float:
        """The configured threshold, raised over steady noise; on a quiet line (a floor more than
        ``quiet_db`` under it) lowered by up to ``reach_db``, never closer than ``quiet_db`` to the
        floor: soft speech at -34 dBFS then makes runs long enough to be judged, not flickers."""
        base = configured_dbfs
        if reach_db > 0:
            base = min(configured_dbfs, max(configured_dbfs - reach_db, self.floor_dbfs + quiet_db))
        return max(base, self.floor_dbfs + self.margin_db)


class Thresholds:
    """The detector's thresholds as the line's noise floor moves (one object per call, fed the
    floor and the configured threshold per frame, ``follow``): the level detector's, raised over
    steady noise and on a quiet line lowered by up to ``QUIET_REACH_DB`` (with the voice checks on),
    and ``clear``: a frame clear of the agent's echo is loud ``CLEAR_REACH_DB`` lower again."""

    QUIET_REACH_DB = 8.0  # with the voice checks on, a quiet line's threshold may be this much lower ...
    QUIET_LINE_DB = 26.0  # ... but no closer to the line's noise floor than this
    CLEAR_REACH_DB = 4.0  # ... and this much lower again for a frame clear of the agent's echo

    def __init__(self, detector: LevelDetector, noise: NoiseFloor, adapt: bool, quiet_line: bool) -> None:
        self._detector, self._noise, self._adapt = detector, noise, adapt
        self._quiet_line = (self.QUIET_REACH_DB, self.QUIET_LINE_DB) if quiet_line else (0.0, 0.0)
        self._floor_of: float | None = None  # the floor the thresholds are for (None: not set yet)
        self._configured_of: float | None = None  # ... and the configured threshold
        self.clear = detector.threshold_dbfs  # the threshold of a frame clear of the echo

    def follow(self, floor: float, configured: float) -> None:
        """The floor now (it moves every 100 ms at most: two float compares on the other frames)."""
        if not self._adapt or (floor == self._floor_of and configured == self._configured_of):
            return
        self._floor_of, self._configured_of = floor, configured
        self._detector.threshold_dbfs = self._noise.threshold(configured, *self._quiet_line)
        reach, quiet = self._quiet_line
        self.clear = self._noise.threshold(configured, reach + self.CLEAR_REACH_DB, quiet) \
            if reach else self._detector.threshold_dbfs


class Linger:
    """After a sustained voiceless run ("sh...", "f...") the duck stays ``gap_s`` for the voice
    that may follow: a loud frame within it starts the utterance's next run, else it releases."""

    def __init__(self, gap_s: float) -> None:
        self.gap_s = gap_s
        self.until: float | None = None  # (None: not lingering)

    def start(self, now: float) -> None:
        self.until = now + self.gap_s

    def step(self, loud: bool, now: float, armed: Callable[[], bool]) -> Decision | None:
        """One frame while lingering: None if a loud frame (guards allowing) goes on to be judged
        as usual, NONE while the gap lasts, RELEASE once it is over (or the guards say no)."""
        if loud and armed():
            self.until = None
            return None
        if self.until is not None and now < self.until and armed():
            return Decision.NONE
        self.until = None
        return Decision.RELEASE


class CallerLevel:
    """The local trigger's view of the caller's frames: noise floor, threshold, echo, voice,
    held notes, speech length, debounce.

    One object per call, fed every inbound frame (sans-IO: the frame, its level, the time,
    whether it counts as the caller's, and how to ask the guards). ``LevelDetector`` ducks and
    counts; when it would confirm, more questions (each holds the duck, nothing is lost):

    * *a voice?* (``voiced_needed`` frames, :mod:`voicebridge.audio.voicing`): a cough or a click is
      loud for a while but never voiced: the duck holds until a voiced frame, the sound ends
      (release) or ``MAX_UNVOICED`` frames pass (release, and loud frames are ignored until the
      line is quiet again);
    * *a moving pitch?* a held note (music, a hum, a beep) is as periodic as a vowel, but its
      pitch stays within ``RunVoice.TONE_SPREAD`` over ``TONE_FRAMES`` voiced frames, which a
      voice's never does: released and ignored like a long voiceless sound;
    * *long enough to be more than a backchannel?* (``min_speech_frames`` from the utterance's
      onset, 0 = off): "mm-hm" or "yeah" while the agent talks is over before it; the duck is
      then released as ``BACKCHANNEL`` (the answer resumes where it paused). Runs less than
      ``UTTERANCE_GAP_S`` apart are one utterance ("wait, hold on"), and a voice heard in one
      of them counts for all;
    * *near?* (``near_db``): the utterance peaks that far over the noise floor; with ``near_clear``
      (the echo gate's headroom is fed), one of its frames also stood ``CLEAR_OF_ECHO_DB`` over
      the loudest echo the gate predicts for it (or was judged before the gate knew its delay,
      against a reference that understates a caller): an echo peak crosses the gate's margin by
      a few dB, a caller's voice over the echo stands well clear of it at least once.

    A whisper (a soft, bright, sustained voiceless run that is no decaying burst) confirms
    without a voice; a run that starts on a dull frame (rumble) does not even duck.

    It also keeps the evidence the model's VAD is weighed against (``sound``). The session's
    ``BargeIn`` acts on the decisions; the barge-in benchmark drives the very same object.

    Its parts, each owning its state: the run's levels and the judgements of its shape (a burst,
    its decay and tail, an impulse, a whisper: ``RunShape``), the voice in the run (``RunVoice``),
    the runs of one utterance (``Utterance``), and what the line carried lately (``SoundEvidence``).
    ``CallerLevel`` owns the per-frame decision: loud or not, the phases of a held duck.
    """

    MAX_UNVOICED = 20  # frames past the debounce: 400 ms of loud sound without a voice in it
    MAX_SIBILANT = 40  # ... if it is a held sibilant ("sss... stop", "f... forget it": their voice comes later)
    SHUSH_FRAMES = 20  # a held sibilant this long is a shush or a hiss; a shorter one may be a whispered word's
    UTTERANCE_GAP_S = Utterance.GAP_S  # (also how long the duck lingers after a sustained voiceless run)
    WHISPER_CONFIRM = 6  # loud frames of a whisper-like run that count as a voice for the utterance
    CLEAR_OF_ECHO_DB = 6.0  # this far over the loudest echo the gate predicts for it (or nothing played)
    PEAK_DB = 5.0  # a run's first loud frame less than this over the echo predicted for it ducks only
    # with the run's next loud frame: the agent's own echo peaks over the gate's 3 dB margin for a frame
    # (a loudspeaker's non-linearity), and each such duck paused the answer ~450 ms (not CLEAR_OF_ECHO_DB:
    # a soft voice over loud echo may have one frame 5-6 dB clear of it in the agent's dip); so too a frame
    # this close to the threshold a bed raised (a TV's, babble's syllables cross it a frame at a time)

    def __init__(self, threshold_dbfs: float = -35.0, frames_needed: int = 5, duck: bool = True,
                 dip_frames: int = 0, noise_margin_db: float | None = 12.0, voiced_needed: int = 0,
                 min_speech_frames: int = 0, tones: bool | None = None, near_db: float = 0.0,
                 near_clear: bool = False) -> None:
        self.threshold_dbfs = threshold_dbfs
        self.voiced_needed = voiced_needed
        self.utterance = Utterance(min_speech_frames, near_db, near_clear)  # the runs close together: one utterance
        self._clear_at = float("-inf")  # when a loud frame last stood clear of the echo (``near_clear``)
        self.tones = voiced_needed > 0 if tones is None else tones
        self.detector = LevelDetector(threshold_dbfs, frames_needed, duck, dip_frames)
        self.noise = NoiseFloor(noise_margin_db if noise_margin_db is not None else 0.0)
        self.thresholds = Thresholds(self.detector, self.noise, noise_margin_db is not None, voiced_needed > 0)
        self.loud = False  # the last frame was loud (and the caller's)
        # Someone outside reads ``loud`` even when no barge-in can start (the false-trigger watch
        # after one): then rumble must read as quiet there too, so the dull check is made anyway.
        self.rumble_matters = False
        self.voice = RunVoice()  # the run's voiced frames, and a held note
        self.shape = RunShape()  # the run's levels: burst, decay, tail, impulse, whisper
        self._previous = b""  # the frame before (the history a frame's pitch is measured on)
        self._waiting = False  # the debounce is met, the voice is not: the duck holds
        self._linger = Linger(self.UTTERANCE_GAP_S)  # a fricative-like run ended: the duck waits for a voice
        self._holding = False  # a voice is heard, not yet long enough: the duck holds
        self._unvoiced = 0
        self._dips = 0
        self._deaf = False  # gave up on a long unvoiced sound or a note: loud frames ignored until quiet
        self._deaf_at = float("-inf")  # ... the last frame it was
        self._level = MIN_DBFS
        self.evidence = SoundEvidence()  # what the line carried lately (``sound``)
        self.backchannel_at = float("-inf")  # when a short utterance was last released as a backchannel
        self.run_start = float("-inf")  # the current (or last) loud run's first frame
        self.impulse = False  # the run that ended last was a click, a knock, a key, a cough: no onset of words
        self.breath = False  # the run released last was short, near, bright breath: a whispered word, maybe
        self.echo_cut = EchoCut()  # the frames the echo gate did not count, lately
        self._now, self.frames_heard = float("-inf"), 0  # (frames fed: ``SoundEvidence.unarmed_loud`` counts them)

    @property
    def floor_dbfs(self) -> float:
        return self.noise.floor_dbfs

    def would_be_loud(self, level_dbfs: float, headroom_db: float) -> bool:
        """Whether a caller frame at ``level_dbfs`` (``headroom_db`` over the predicted echo) is
        loud to ``feed``, asked before it is fed: over the threshold, or a quiet line's soft
        attack clear of the echo (``CLEAR_REACH_DB``)."""
        if level_dbfs >= self.detector.threshold_dbfs:
            return True
        return headroom_db >= self.CLEAR_OF_ECHO_DB and level_dbfs >= self.thresholds.clear

    def feed(self, level_dbfs: float, now: float, counts: bool, armed: Callable[[], bool],
             frame: bytes = b"", echo: bool = False, headroom_db: float = 0.0, blind: bool = False,
             over_echo: bool = False) -> Decision:
        """One caller frame. ``counts`` is False for the agent's own echo (quiet to the detector;
        ``echo`` says it was judged echo rather than unsure); ``armed`` is asked only when the
        answer can matter (a loud frame, or a dip in a run). ``headroom_db``: how far the frame is
        over the loudest echo the echo gate predicts for it (or over the floor, nothing played): a
        quiet line's soft attack that far clear of the echo is loud ``CLEAR_REACH_DB`` sooner.
        ``blind``: the gate judged the frame before it knew the echo's delay (``near_clear``).
        ``over_echo``: the gate judged it against the agent's echo (something played), so a small
        ``headroom_db`` may be an echo peak: it does not duck alone."""
        self._now, self.frames_heard = now, self.frames_heard + 1
        detector = self.detector
        floor = self.noise.update(level_dbfs, now, rise=not echo)
        self.thresholds.follow(floor, self.threshold_dbfs)
        if echo:
            self.evidence.echo(now)
        if not counts and level_dbfs >= floor + 6.0:
            self.echo_cut.frame(level_dbfs, now)
        level = level_dbfs if counts else MIN_DBFS
        self._level = level
        self.loud = loud = level >= detector.threshold_dbfs
        fed = level  # what the level detector is told (a clear soft frame: its threshold)
        if not loud and counts and headroom_db >= self.CLEAR_OF_ECHO_DB and level >= self.thresholds.clear:
            self.loud = loud = True
            fed = detector.threshold_dbfs
        if self._deaf:
            self._deaf, self._deaf_at = loud, now
            self.loud = loud = False
            level = fed = MIN_DBFS
        elif self.shape.tail is not None and self.shape.in_tail(loud, level):
            self.loud = loud = False
            level = fed = MIN_DBFS
        elif counts and level >= detector.threshold_dbfs - SoundEvidence.SOFT_DB and level >= floor + 6.0:
            self.evidence.soft(now)
        if not (loud or detector.run or detector.ducking or self._waiting or self._holding
                or self._linger.until is not None):
            # most frames of every call: nothing going on, nothing to ask. The full path would tell
            # the level detector a quiet unarmed frame, which with no run and no duck changes nothing.
            if self.shape.run:  # (the run's voice and levels are all counted from its loud frames)
                self._end_run()
            self._previous = frame
            return _NONE
        self.shape.follow(loud, level_dbfs)
        if loud and (blind or headroom_db >= self.CLEAR_OF_ECHO_DB):
            self._clear_at = now
        bed = floor + self.noise.margin_db > self.threshold_dbfs  # a bed (a TV, babble) has raised the threshold
        tentative = over_echo and headroom_db < self.PEAK_DB or bed and fed < detector.threshold_dbfs + self.PEAK_DB
        try:
            if self._linger.until is not None:
                lingered = self._linger.step(self.loud, now, armed)
                if lingered is not None:
                    return lingered
                tentative = False  # (the duck is held already: this run must be able to release it, rv14)
            if self._waiting:
                return self._wait_for_voice(frame, armed)
            if self._holding:
                return self._hold(frame, armed)
            may: bool | None = None  # armed(), asked at most once per frame
            if self.loud and not self.detector.run:
                may = armed()
                # the pitch analysis only where a run could start (or the false-trigger watch
                # reads ``loud``): not on every loud frame of a caller speaking to a quiet agent
                if ((may or self.rumble_matters) and self.voiced_needed and frame
                        and self.voice.dull_onset(frame, self._previous)):
                    self.loud, fed = False, MIN_DBFS  # rumble (a car, a truck, a thud) does not duck
            ok = (self.loud or self.detector.run > 0) and (armed() if may is None else may)
            if self.loud and not ok:
                self.evidence.unarmed_loud(now, self.frames_heard)
            if self.loud and ok:
                self._loud_frame(frame)
                if self._deaf:
                    return self._release() if self.detector.ducking else self._stop_waiting(Decision.NONE)
            decision = self.detector.feed(fed, ok, tentative)
            if decision is Decision.CONFIRM:
                decision = self._confirm_or_wait()
            if decision is Decision.RELEASE:
                decision = self._short_run_ended()
            if self.detector.run == 0 and not (self._waiting or self._holding):
                self._end_run()
            return decision
        finally:
            self._previous = frame

    def _confirm_or_wait(self) -> Decision:
        if self.voice.voiced + self.utterance.voiced < self.voiced_needed:
            self._waiting, self._unvoiced, self._dips = True, 0, 0
            return Decision.NONE
        if self._long_enough():
            return self._stop_waiting(Decision.CONFIRM)
        self._holding, self._dips = True, 0
        return Decision.NONE

    def _long_enough(self) -> bool:
        """Speech enough for a barge-in, from a near voice (a held note has made the detector deaf)."""
        return self.utterance.long_enough(self._now) and self._near()

    def _near(self) -> bool:
        """The utterance, with the current run, is a voice at the handset (``Utterance.near``)."""
        return self.utterance.near(self.shape.peak(), self.floor_dbfs, self.threshold_dbfs, self._clear_at, self._now)

    def _loud_frame(self, frame: bytes) -> None:
        if self.shape.run == 0:
            self.impulse = self.breath = False
            self.run_start = self._now
            self.utterance.run_starts(self._now)
        self.utterance.heard(self._level, self._now)
        kept = self.shape.loud_frame(self._level)
        if (kept or self.voice.held_sibilant and self._waiting) and self.voiced_needed and (
                self.voice.voiced + self.utterance.voiced < self.voiced_needed or self.tones):
            self._listen(frame)

    def _listen(self, frame: bytes) -> None:
        """Voice or not, and a held note or not (``RunVoice.listen``): a held note makes the detector deaf."""
        if not frame:
            return
        voicing = self.voice.listen(frame, self._previous, self.tones)
        if voicing is Voicing.UNVOICED:
            return
        if voicing is Voicing.VOICED:
            self.utterance.voiced_frame(self.voice.last_brightness, self._level)  # a vowel after a whisper verdict
        if self.voice.voiced + self.utterance.voiced >= self.voiced_needed:  # (one periodic frame is no voice: coughs)
            self.evidence.voice(self._now, self.utterance.far(self.shape.peak(), self.floor_dbfs, self._now))
        if voicing is Voicing.HELD:  # a held note: music, a hum, a beep
            self._deaf = True
            self.evidence.tone(self._now)

    def _hold(self, frame: bytes, armed: Callable[[], bool]) -> Decision:
        """A voice was heard: confirm once the utterance is long enough, or release it as a backchannel."""
        if self.loud and armed():
            if not self._next_loud(frame):
                return self._release()
            return self._stop_waiting(Decision.CONFIRM) if self._long_enough() else Decision.NONE
        if not self.loud and self._dips < self.detector.dip_frames and armed():
            self._dips += 1
            return Decision.NONE
        self._run_ended()
        if not self._near():  # voices across the room (a TV): not the caller's, nothing to hold for
            return self._release()
        self.backchannel_at = self._now
        return self._stop_waiting(Decision.BACKCHANNEL)  # (with the duck off too: a hold pauses the agent)

    def _short_run_ended(self) -> Decision:
        """A ducked run ended before the debounce: a near voice in it ("stop" whose vowel alone
        was loud) is a short utterance like a backchannel (its words decide), anything else is
        released."""
        voiced = self.voice.voiced + self.utterance.voiced >= self.voiced_needed > 0
        self._run_ended()
        if voiced and self.utterance.min_speech_frames and self._near():
            self.backchannel_at = self._now
            return Decision.BACKCHANNEL
        self.breath = self._short_breath()
        return Decision.RELEASE

    def _run_ended(self) -> None:
        self.impulse = self._impulsive()
        if self.impulse:  # a key's or a knock's one periodic frame by chance is no voice for the utterance:
            self.voice.discount()  # pooled over a run of keys, three made a "voice" held for its words
        self.utterance.run_ended(self.voice.voiced, self.shape.peak(), self._now, self.floor_dbfs)
        if self.voiced_needed and not (self.voice.voiced or self.utterance.voiced):
            self._voiceless_ended()

    def _voiceless_ended(self) -> None:
        """A voiceless loud sound ended: a whisper (or a short held sibilant: "s... stop"), or a burst."""
        if self._whisper_like() or self._short_sibilant():
            self.evidence.whisper(self._now)
        else:
            self.evidence.burst(self._now)

    def _wait_for_voice(self, frame: bytes, armed: Callable[[], bool]) -> Decision:
        if self.loud and armed():
            if not self._next_loud(frame):
                return self._release()
            if self.voice.voiced + self.utterance.voiced >= self.voiced_needed:
                self._waiting = False
                return self._confirm_or_wait()
            self._unvoiced += 1
            if self.shape.decaying(self._level, self.detector.threshold_dbfs, self.utterance.spoken):
                # a slam's rattle, a cough's end: no word goes on from it, resume now
                self.shape.follow_tail(self._level)
                self.impulse = True
                self.evidence.burst(self._now)
                return self._release()
            if self.shape.run >= self.WHISPER_CONFIRM and self._whisper_like() and self._near():
                self.evidence.whisper(self._now)  # a near, sustained, breathy sound that is no burst
                self.utterance.heard_whisper()  # judged like a voice from here on
                self._waiting = False
                if self._long_enough():
                    return self._stop_waiting(Decision.CONFIRM)
                self._holding, self._dips = True, 0
                return Decision.NONE
            if self._unvoiced < (self.MAX_SIBILANT if self.voice.held_sibilant else self.MAX_UNVOICED):
                return Decision.NONE
            self._deaf = True
        elif self.loud or self._dips >= self.detector.dip_frames:
            pass  # disarmed, or quiet for longer than a dip: the sound is over
        else:
            self._dips += 1
            return Decision.NONE
        self.impulse = self._impulsive()
        self._voiceless_ended()
        if self.loud or not self._sustained():
            self.breath = not self.loud and self._short_breath()
            return self._release()
        # (a held sibilant too short for a shush, "s...": held for its words at the release, like breath)
        self.breath = self._short_sibilant() and self._near()
        self._linger.start(self._now)  # "sh... stop": the voice may follow
        return self._stop_waiting(Decision.NONE)

    def _short_sibilant(self) -> bool:
        """The run was a held sibilant (``RunVoice.sibilant``) shorter than a shush, and no tail of
        one given up on (review rv26): the "s..." or "f..." a word may follow, or a whispered "sh"."""
        return (self.voice.held_sibilant and self.shape.run < self.SHUSH_FRAMES
                and self.run_start - self._deaf_at > self.UTTERANCE_GAP_S)

    def _sustained(self, frames: int = 0) -> bool:
        """The current run is voiceless and sustained (``RunShape.sustained``): breath or a fricative."""
        return self.voice.voiced < self.voiced_needed and self.shape.sustained(frames)

    def _whisper_like(self, frames: int = 0) -> bool:
        """The current run is voiceless and like a whisper (``RunShape.whisper_like``), not a held
        sibilant (``RunVoice.sibilant``: a shush, a hiss, or the "s..." before a word)."""
        return (self.voice.voiced < self.voiced_needed and self.shape.whisper_like(self.voice.brightness(), frames)
                and not self.voice.sibilant())

    def _short_breath(self) -> bool:
        """The voiceless run that ended is a whispered word the echo cut short (:mod:`.breath`):
        no impulse, no voice in it or its utterance, near (a frame clear of the echo)."""
        levels = self.shape.levels
        return (not self.impulse and not self.utterance.spoken and self.voice.voiced + self.utterance.voiced == 0
                and is_breath(levels, self.voice.brightness()) and self.echo_cut.cut(levels, self._now)
                and self._near())

    def _impulsive(self) -> bool:
        """The run that is ending was an impulsive noise (``RunShape.impulsive``), judged only with
        the voice checks on and when no voice is in it (one periodic frame by chance allowed) nor
        in its utterance, and no whisper."""
        return (bool(self.voiced_needed) and self.voice.voiced <= 1 and not self.utterance.spoken
                and self.shape.impulsive(self.detector.threshold_dbfs))

    def _next_loud(self, frame: bytes) -> bool:
        """One more loud frame of a held run; False if it showed a held note (the detector is deaf)."""
        self._dips = 0
        self._loud_frame(frame)
        return not self._deaf

    def _release(self) -> Decision:
        return self._stop_waiting(Decision.RELEASE)  # (with the duck off: the holds a release may start)

    @property
    def hearing(self) -> bool:
        """A loud run is going on (ducked, waiting for a voice or for enough speech)."""
        return self._waiting or self._holding or self.detector.run > 0 or self._linger.until is not None

    def heard_noise(self, now: float) -> bool:
        """A loud sound without a voice is going on, or ended lately (``SoundEvidence.heard_noise``)."""
        return self.evidence.heard_noise(now, self._live_sound())

    def sound(self, now: float, window_s: float) -> Sound:
        """What the caller's line carried within ``window_s`` before ``now`` (``SoundEvidence.sound``)."""
        return self.evidence.sound(now, window_s, self._live_sound(), self._deaf)

    def _live_sound(self) -> Sound | None:
        """The run held for a voice, judged so far: a whisper or a noise (None: none is held)."""
        if not self._waiting:
            return None
        return Sound.WHISPER if self._whisper_like(SoundEvidence.WHISPER_EVIDENCE) else Sound.NOISE

    @property
    def utterance_start(self) -> float:
        """When the current (or last) utterance's first loud frame came."""
        return self.utterance.start

    @property
    def whispered(self) -> bool:
        """The current (or last) utterance was judged a whisper and no vowel came after the
        verdict (``Utterance.whisper_only``): no voice in it, not even after a breathy onset."""
        return self.utterance.whisper_only

    def forget_utterance(self) -> None:
        """The utterance's runs so far were not the caller (the echo gate judged them before it
        knew its delay, and judges them echo now): the next loud run begins a new utterance, its
        length counted from its own onset (not from an echo peak's up to 400 ms before it)."""
        self.utterance.forget()

    def _end_run(self) -> None:
        """The run is over: its voice and its shape are forgotten."""
        self.voice.clear()
        self.shape.clear()

    def _stop_waiting(self, decision: Decision) -> Decision:
        self._waiting = self._holding = False
        self._end_run()
        self.detector.reset()
        return decision

    def reset(self) -> None:
        self.detector.reset()
        self._waiting = self._holding = self._deaf = False
        self._linger.until = None
        self._end_run()
        self.shape.reset()
        self.utterance.unvoice()


@dataclass(frozen=True)
class GuardState:
    """The facts the guards look at, sampled from the response tracker and the outbound path."""

    barge_in_enabled: bool = True
    in_greeting: bool = False
    greeting_interruptible: bool = False
    ai_speaking: bool = False  # frames of the current response queued, being sent, or playing at Twilio
    response_active: bool = False  # response.created seen, response.done not yet
    already_handled: bool = False  # the procedure already ran for this response


class Refusal(str, enum.Enum):
    """Why the guards refuse a barge-in (str-valued: it reads as its reason in logs)."""

    DISABLED = "barge-in disabled"
    ALREADY_HANDLED = "already handled for this response"
    GREETING = "greeting is not interruptible"
    NOT_SPEAKING = "AI is not speaking"


@dataclass(frozen=True)
class Plan:
    stop_audio: bool  # clear Twilio and flush our queues
    cancel: bool  # send response.cancel
    truncate: bool  # send conversation.item.truncate


def refusal(state: GuardState) -> Refusal | None:
    """Why a trigger must not act now, or None if it may."""
    if not state.barge_in_enabled:
        return Refusal.DISABLED
    if state.already_handled:
        return Refusal.ALREADY_HANDLED
    if state.in_greeting and not state.greeting_interruptible:
        return Refusal.GREETING
    if not state.ai_speaking:
        return Refusal.NOT_SPEAKING
    return None


def plan(state: GuardState) -> Plan | None:
    """The steps a confirmed barge-in takes, or None when the guards say no.

    Audio is stopped whenever some is still queued or playing, even after ``response.done``
    (the model generates faster than real time). ``response.cancel`` goes only to an
    active response, so it never provokes ``response_cancel_not_active`` needlessly.
    """
    if refusal(state) is not None:
        return None
    return Plan(stop_audio=True, cancel=state.response_active, truncate=True)
