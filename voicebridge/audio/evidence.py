"""What the caller's line carried lately (sans-IO): the evidence the model's VAD is weighed against.

The model's VAD says "speech started" for a near voice, but also for a cough, a knock, music, a
TV or the agent's own echo. The local detector (``CallerLevel``, :mod:`voicebridge.audio.detector`)
hears the same line frame by frame; ``SoundEvidence`` remembers when it last heard each kind of
sound, so that the listener can ask, when the model's VAD fires, what the line really carried
(``sound``) and believe the VAD only for a voice or a whisper.
"""
from __future__ import annotations

import enum
from collections import deque


class Sound(enum.Enum):
    """What the caller's line carried over the last moments, as the local detector judged it."""

    NOTHING = "nothing"  # nothing above the noise, or only the agent's own echo
    ECHO = "echo"  # the agent's own voice coming back
    VOICE = "voice"  # a near voice: loud, periodic, with a moving pitch
    FAR = "far"  # a voice too little over the line's floor to be at the handset: a TV, babble
    WHISPER = "whisper"  # a sustained voiceless sound at a near voice's level, not a burst
    NOISE = "noise"  # a voiceless burst: a knock, a click, a cough, a door
    TONE = "tone"  # periodic with a held pitch: music, a hum, a beep
    SOFT = "soft"  # above the noise on the caller's side, neither a voice nor a whisper


class SoundEvidence:
    """When each kind of sound was last heard on the caller's line, and what that makes the line.

    The detector tells it what it heard as it hears it (``echo``, ``soft``, ``voice``, ``tone``,
    and a voiceless run's end: ``burst`` or ``whisper``); the run still going on, if one is held
    for a voice, is passed in when asked (``live``: judged so far a whisper or a noise).
    """

    NOISE_MEMORY_S = 1.0  # how long a voiceless burst is remembered
    SOFT_DB = 8.0  # a caller frame this far under the threshold (and above the noise) still counts as soft evidence
    SOFT_FRAMES = 5  # ... five of them within the window (a stray echo frame judged the caller's is not)
    WHISPER_EVIDENCE = 3  # frames of a whisper-like run enough for the model's VAD to be believed on it
    UNARMED_LOUD_FRAMES = 5  # loud frames in a row no barge-in could follow: someone talked (``unarmed_loud``)

    def __init__(self) -> None:
        self._noise_at = float("-inf")  # when a loud sound without a voice (a burst) last ended
        self._whisper_at = float("-inf")  # when a sustained voiceless sound (a whisper) last ended
        self._tone_at = float("-inf")  # when a held note was last heard
        self._voice_at = float("-inf")  # when a voiced caller frame was last heard (a near voice's)
        self._far_at = float("-inf")  # ... one of a voice too little over the floor to be near (``voice``)
        self._soft: deque[float] = deque(maxlen=self.SOFT_FRAMES)  # the last caller frames above the noise
        self._echo_at = float("-inf")  # when a frame was last judged the agent's echo
        self.unarmed_loud_at = float("-inf")  # the last frame of a stretch ``unarmed_loud`` counts
        self._unarmed_last, self._unarmed_run = -2, 0  # the last such loud frame (its number), and its run so far

    def echo(self, now: float) -> None:
        self._echo_at = now

    def soft(self, now: float) -> None:
        """A caller frame above the noise, if under the threshold (``SOFT_DB``)."""
        self._soft.append(now)

    def voice(self, now: float, far: bool = False) -> None:
        """A voiced frame of the caller's side; ``far``: its utterance peaks too little over the
        line's noise floor to be spoken at the handset (a TV's, babble's voices: their own lulls
        set the floor), which the model's VAD is not believed on alone."""
        if far:
            self._far_at = now
        else:
            self._voice_at = now

    def unarmed_loud(self, now: float, frame: int) -> None:
        """Loud frame number ``frame`` of the line, no barge-in could follow it (the agent quiet,
        or its greeting): the fifth in a row (``UNARMED_LOUD_FRAMES``; counted by the frames'
        numbers, not their arrival, which a network bunches or delays) and those after it are
        sound enough for words, not a click or a knock, and ``unarmed_loud_at`` follows them
        (``Listener.flush_due``: the rest of a turn the model's VAD left in its buffer). A TV, a
        cough or a rumble count too: what they leave in the buffer is no more the held voice's."""
        self._unarmed_run = self._unarmed_run + 1 if frame == self._unarmed_last + 1 else 1
        self._unarmed_last = frame
        if self._unarmed_run >= self.UNARMED_LOUD_FRAMES:
            self.unarmed_loud_at = now

    def tone(self, now: float) -> None:
        """A held note (music, a hum, a beep): a voice heard at the same instant was none."""
        self._tone_at = now

    def burst(self, now: float) -> None:
        """A loud sound without a voice ended (a knock, a cough, a click, a door)."""
        self._noise_at = now

    def whisper(self, now: float) -> None:
        """A sustained voiceless sound at a near voice's level (a whisper) was heard."""
        self._whisper_at = now

    def heard_noise(self, now: float, live: Sound | None) -> bool:
        """A loud sound without a voice is going on (``live`` is NOISE), or ended within
        ``NOISE_MEMORY_S``: the model's VAD starting now heard a cough or a knock, not the caller
        talking (if they do talk, their first voiced frame confirms the barge-in anyway)."""
        return live is Sound.NOISE or now - self._noise_at < self.NOISE_MEMORY_S

    def sound(self, now: float, window_s: float, live: Sound | None, deaf: bool) -> Sound:
        """What the caller's line carried within ``window_s`` before ``now``, the strongest
        evidence first (``live``: the run held for a voice, judged so far; ``deaf``: the detector
        gave up on a held note or a long voiceless sound still going on). The model's VAD is
        believed for a near voice or a whisper; not for echo, a burst, a note, or a soft sound
        that is neither (measured: on the corpus set that rule let a TV, babble, music and hum
        switched on mid-answer through 6 times in 120 calls)."""
        since = now - window_s
        if self._voice_at >= since and self._voice_at > self._tone_at:
            return Sound.VOICE
        if self._far_at >= since and self._far_at > self._tone_at:
            return Sound.FAR  # (where a voice of any level used to be judged: every other order unchanged)
        if live is Sound.WHISPER or self._whisper_at >= since:
            return Sound.WHISPER
        if self._tone_at >= since or deaf:
            return Sound.TONE
        if self.heard_noise(now, live):
            return Sound.NOISE
        if len(self._soft) == self.SOFT_FRAMES and self._soft[0] >= since:
            return Sound.SOFT
        if self._echo_at >= since:
            return Sound.ECHO
        return Sound.NOTHING
