"""Barge-in decisions (sans-IO): when the caller talks over the AI, what to do and when.

Small pieces, each driven by the session with levels, events and a clock:

* ``LevelDetector``: per inbound frame, loud or not; DUCK on the first loud frame (sending
  pauses at once), CONFIRM after ``frames_needed`` loud frames (a one-frame dip tolerated),
  RELEASE when a loud run ends before confirmation (sending resumes, its lead rebuilt).
* ``NoiseFloor``: the caller's background level, which raises the threshold over steady noise.
* ``refusal`` / ``plan``: why a trigger may not act (or None), and which steps it takes
  (stop the audio, cancel the response, truncate the item).
* ``FalseTriggerMonitor``: after a local barge-in, decide that it was a cough, not speech,
  so the model can be asked to carry on.
"""
from __future__ import annotations

import enum
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable

from .audio import MIN_DBFS
from .voicing import voiced


class Decision(enum.Enum):
    NONE = "none"
    DUCK = "duck"
    CONFIRM = "confirm"
    RELEASE = "release"


class LevelDetector:
    """Debounced RMS trigger: ``frames_needed`` loud frames confirm.

    With ``dip_frames=0`` (the original rule) they must be consecutive and any quiet frame
    ends the run and releases the duck. Speech dips between syllables, so the bridge allows
    ``dip_frames`` (1) quiet frames inside a run: they neither count nor end it, the duck holds
    and the onset stays the run's first loud frame; one more quiet frame ends it.
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

    def feed(self, level_dbfs: float, armed: bool) -> Decision:
        """One inbound frame's level; ``armed`` = the guards currently allow a barge-in."""
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
        if self.run == 1 and self.duck:
            self.ducking = True
            return Decision.DUCK
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

    def update(self, level_dbfs: float, now: float) -> float:
        """One inbound frame's level; returns the floor."""
        level = max(-100.0, level_dbfs)
        if self._block_start is None or now - self._block_start >= self.block_s - 1e-6 or now < self._block_start:
            if self._block_start is not None:
                self._blocks.append(self._block_min)
            self._block_start, self._block_min = now, level
        elif level < self._block_min:
            self._block_min = level
        if len(self._blocks) == self._blocks.maxlen:  # a whole window seen: its quietest moment
            self.floor_dbfs = min(self.ceiling_dbfs, self._block_min, min(self._blocks))
        return self.floor_dbfs

    def threshold(self, configured_dbfs: float) -> float:
        return max(configured_dbfs, self.floor_dbfs + self.margin_db)


class CallerLevel:
    """The local trigger's view of the caller's frames: noise floor, threshold, echo, voice,
    debounce.

    One object per call, fed every inbound frame (sans-IO: the frame, its level, the time,
    whether it counts as the caller's, and how to ask the guards). ``LevelDetector`` ducks and
    counts; when it would confirm, a voice must also have been heard in the run
    (``voiced_needed`` frames, see :mod:`voicebridge.voicing`): a cough or a click is loud for
    a while but never voiced, so the duck holds until a voiced frame confirms, the sound ends
    (release) or ``MAX_UNVOICED`` frames pass without one (release, and loud frames are ignored
    until the line is quiet again). The session's ``BargeIn`` acts on the decisions; the
    barge-in benchmark drives the very same object in virtual time.
    """

    MAX_UNVOICED = 20  # frames past the debounce: 400 ms of loud sound without a voice in it
    NOISE_MEMORY_S = 1.0  # how long a voiceless sound is remembered (see ``heard_noise``)

    def __init__(self, threshold_dbfs: float = -35.0, frames_needed: int = 5, duck: bool = True,
                 dip_frames: int = 0, noise_margin_db: float | None = 12.0, voiced_needed: int = 0) -> None:
        self.threshold_dbfs = threshold_dbfs
        self.voiced_needed = voiced_needed
        self.detector = LevelDetector(threshold_dbfs, frames_needed, duck, dip_frames)
        self.noise = NoiseFloor(noise_margin_db if noise_margin_db is not None else 0.0)
        self._adapt = noise_margin_db is not None
        self.loud = False  # the last frame was loud (and the caller's)
        self._voiced = 0  # voiced loud frames in the current run
        self._previous = b""
        self._waiting = False  # the debounce is met, the voice is not: the duck holds
        self._unvoiced = 0
        self._dips = 0
        self._deaf = False  # gave up on a long unvoiced sound: loud frames ignored until quiet
        self._noise_at = float("-inf")  # when a loud sound without a voice last ended
        self._now = float("-inf")

    @property
    def floor_dbfs(self) -> float:
        return self.noise.floor_dbfs

    def feed(self, level_dbfs: float, now: float, counts: bool, armed: Callable[[], bool],
             frame: bytes = b"") -> Decision:
        """One caller frame. ``counts`` is False for the agent's own echo (quiet to the detector);
        ``armed`` is asked only when the answer can matter (a loud frame, or a dip in a run)."""
        self._now = now
        self.noise.update(level_dbfs, now)
        if self._adapt:
            self.detector.threshold_dbfs = self.noise.threshold(self.threshold_dbfs)
        level = level_dbfs if counts else MIN_DBFS
        self.loud = self.detector.is_loud(level)
        if self._deaf:
            self._deaf = self.loud
            self.loud = False
            level = MIN_DBFS
        try:
            if self._waiting:
                return self._wait_for_voice(frame, armed)
            ok = (self.loud or self.detector.run > 0) and armed()
            if self.loud and ok:
                self._listen(frame)
            decision = self.detector.feed(level, ok)
            if decision is Decision.CONFIRM and self._voiced < self.voiced_needed:
                self._waiting, self._unvoiced, self._dips = True, 0, 0
                return Decision.NONE
            if decision is Decision.RELEASE and self.voiced_needed and not self._voiced:
                self._noise_at = now  # a short loud sound with no voice in it
            if self.detector.run == 0:
                self._voiced = 0
            return decision
        finally:
            self._previous = frame

    def _listen(self, frame: bytes) -> None:
        if self._voiced < self.voiced_needed and frame and voiced(frame, self._previous):
            self._voiced += 1

    def _wait_for_voice(self, frame: bytes, armed: Callable[[], bool]) -> Decision:
        if self.loud and armed():
            self._dips = 0
            self._listen(frame)
            if self._voiced >= self.voiced_needed:
                return self._stop_waiting(Decision.CONFIRM)
            self._unvoiced += 1
            if self._unvoiced < self.MAX_UNVOICED:
                return Decision.NONE
            self._deaf = True
        elif self.loud or self._dips >= self.detector.dip_frames:
            pass  # disarmed, or quiet for longer than a dip: the sound is over
        else:
            self._dips += 1
            return Decision.NONE
        self._noise_at = self._now
        return self._stop_waiting(Decision.RELEASE if self.detector.duck else Decision.NONE)

    def heard_noise(self, now: float) -> bool:
        """A loud sound without a voice is going on, or ended within ``NOISE_MEMORY_S``: the
        model's VAD starting now heard a cough or a knock, not the caller talking (if they do
        talk, their first voiced frame confirms the barge-in here anyway)."""
        return self._waiting or now - self._noise_at < self.NOISE_MEMORY_S

    def _stop_waiting(self, decision: Decision) -> Decision:
        self._waiting, self._voiced = False, 0
        self.detector.reset()
        return decision

    def reset(self) -> None:
        self.detector.reset()
        self._waiting, self._voiced, self._deaf = False, 0, False


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


class FalseTriggerMonitor:
    """Decides that a local barge-in was a false trigger, after ``delay_s`` of quiet.

    A false trigger: no server ``speech_started`` and no caller transcript text since the loud
    run began, and the caller's level has stayed below the threshold for ``delay_s``. The
    evidence is kept with its time, not as flags a later ``start`` would reset: the server may
    report the caller's speech on its own thread before or after the barge-in has armed the
    monitor, and either order means the interruption was real. Thread-safe.
    """

    def __init__(self, delay_s: float = 0.5) -> None:
        self.delay_s = delay_s
        self._lock = threading.Lock()
        self.armed = False
        self._since = 0.0  # evidence at or after this instant counts for the armed barge-in
        self._quiet_since: float | None = None
        self._speech_at = float("-inf")
        self._text_at = float("-inf")
        self._last = float("-inf")  # latest instant seen: the time of evidence given without one

    def start(self, now: float, loud: bool = True, since: float | None = None) -> None:
        """A local barge-in just ran at ``now`` for a loud run that began at ``since``."""
        with self._lock:
            self._seen(now)
            self.armed = True
            self._since = now if since is None else since
            self._quiet_since = None if loud else now

    def level(self, loud: bool, now: float) -> None:
        with self._lock:
            self._seen(now)
            if not loud:
                if self._quiet_since is None:
                    self._quiet_since = now
            else:
                self._quiet_since = None

    def speech_started(self, now: float | None = None) -> None:
        """The server heard the caller speak: a barge-in on that speech was real."""
        with self._lock:
            self._speech_at = self._last if now is None else self._seen(now)

    def user_text(self, text: str, now: float | None = None) -> None:
        if text.strip():
            with self._lock:
                self._text_at = self._last if now is None else self._seen(now)

    def cancel(self) -> None:
        with self._lock:
            self.armed = False

    def poll(self, now: float) -> bool:
        """True exactly once when the barge-in is judged false (time to resume the answer)."""
        with self._lock:
            self._seen(now)
            if not self.armed:
                return False
            if self._speech_at >= self._since or self._text_at >= self._since:
                self.armed = False
                return False
            if self._quiet_since is None or now - self._quiet_since < self.delay_s:
                return False
            self.armed = False
            return True

    def _seen(self, now: float) -> float:
        self._last = max(self._last, now)
        return now
