"""A bed switched on mid-answer against a caller at the handset (``Steadiness`` and ``CallerLevel``),
sans-IO: levels and frames fed directly with the time given, no bridge, no clock."""
import math

from voicebridge import BridgeConfig
from voicebridge.audio import mulaw as audio
from voicebridge.audio.detector import CallerLevel, Decision
from voicebridge.audio.evidence import Sound
from voicebridge.audio.listening import Hold, Listener, Turn
from voicebridge.audio.steadiness import Steadiness

FRAME_S = 0.02


def steadiness_over(levels: list[float], floor: float = -100.0) -> Steadiness:
    s = Steadiness()
    for i, level in enumerate(levels):
        s.feed(level)
        if i == 0:
            s.began(10.0, level)
    return s


def test_a_bed_never_falls_a_voice_does_within_two_frames():
    """Babble wanders 5-8 dB from frame to frame and never stops: steady. A near voice stops between
    syllables: a frame ``FALL_DB`` under the loudest of the two before it ends the steadiness."""
    babble = [-28.0, -31.0, -26.0, -33.0, -29.0, -35.0, -30.0, -27.0] * 4  # falls of 5-8 dB at most
    assert steadiness_over(babble).steady(-100.0)
    voice = [-20.0, -18.0, -22.0, -30.0, -19.0, -21.0]  # -30: 8 dB under -22, 12 under -18 two frames before
    assert not steadiness_over(voice).steady(-100.0)
    room = [-20.0, -24.0, -27.0, -23.0, -26.0, -29.0, -25.0, -22.0]  # a room's decay, 3-4 dB a frame, and on
    assert steadiness_over(room).steady(-100.0)  # 7 dB in two frames at most, 7 in five


def test_a_soft_voice_ending_into_the_echo_falls_over_five_frames():
    """A soft "no no" over the echo ends 3-5 dB a frame (never 9 in two frames), 20 dB in 100 ms:
    ``LONG_FALL_DB`` within ``LONG_FALL_FRAMES`` is a fall; a TV's reverberant decay never goes that far."""
    soft = [-30.0, -31.0, -33.0, -35.0, -38.0, -43.0, -46.0, -50.0]
    assert not steadiness_over(soft).steady(-100.0)
    assert steadiness_over(soft[:5]).steady(-100.0)  # 8 dB so far


def test_only_a_step_over_the_floor_is_steady():
    """An utterance whose lowest frame is within ``STEP_DB`` of the floor stands on no step: the
    line's known noise (a caller over a TV that was on from the start) is judged as before."""
    levels = [-30.0, -33.0, -29.0, -31.0]
    assert steadiness_over(levels).steady(-46.0)  # lowest -33: 13 dB over the floor
    assert not steadiness_over(levels).steady(-44.0)  # 11 dB: no step


def test_a_steady_utterance_is_given_up_on_at_the_bound_from_its_onset():
    s = steadiness_over([-30.0])
    assert not s.given_up(10.0 + Steadiness.BED_HOLD_S - 0.02)
    assert s.given_up(10.0 + Steadiness.BED_HOLD_S)


def test_a_released_bed_masks_its_own_level_not_a_louder_sound_and_is_forgotten():
    s = steadiness_over([-30.0, -24.0, -29.0])  # peak -24
    s.remember(11.0)
    assert s.masks(-24.0 + Steadiness.BED_RISE_DB, 11.5)  # the bed going on: renews the memory
    assert not s.masks(-24.0 + Steadiness.BED_RISE_DB + 0.5, 11.6)  # a caller over it
    assert s.masks(-26.0, 11.5 + Steadiness.BED_MEMORY_S)  # renewed at 11.5
    assert not s.masks(-26.0, 11.5 + 2 * Steadiness.BED_MEMORY_S + 0.1)  # nothing that loud for a while


def _glide(frames: int, dbfs: float, dips_every: int = 0, start: int = 0) -> list[bytes]:
    """A voiced sound (a pitch gliding 140 -> 220 Hz, harmonics) at ``dbfs``, steady; with
    ``dips_every`` one frame in so many is 20 dB down (a near voice's syllables)."""
    harmonics = [(h, 1.0 / math.sqrt(h)) for h in range(1, 16)]  # up to 2-3 kHz: bright as a vowel, not rumble
    scale = 32768 * 10 ** (dbfs / 20) / math.sqrt(sum(a * a for _, a in harmonics) / 2)
    out, phase = [], 0.0
    for k in range(start, start + frames):
        gain = 0.1 if dips_every and k % dips_every == dips_every - 1 else 1.0
        samples = []
        for n in range(160):
            phase += 2 * math.pi * (140.0 + 80.0 * (k * 160 + n) / (160 * 100)) / 8000
            samples.append(int(scale * gain * sum(a * math.sin(h * phase) for h, a in harmonics)))
        out.append(audio.encode(samples))
    return out


def _level() -> CallerLevel:
    level = CallerLevel(frames_needed=5, duck=True, dip_frames=1, voiced_needed=3, min_speech_frames=30, near_db=24.0)
    for i in range(80):  # a quiet line first: the floor known, silence
        level.feed(audio.dbfs(audio.SILENCE_FRAME), i * FRAME_S, True, lambda: True, audio.SILENCE_FRAME)
    return level


def _feed(level: CallerLevel, frames: list[bytes], start: float) -> list[Decision]:
    return [level.feed(audio.dbfs(f), start + i * FRAME_S, True, lambda: True, f) for i, f in enumerate(frames)]


def test_a_voice_that_never_falls_is_held_then_released_as_a_bed_and_ignored_after():
    """A TV switched on at -25 dBFS over a quiet line: loud, voiced, a moving pitch, far over the
    floor that has not caught up. It ducks, is not confirmed on its length (600 ms), is released as
    a bed at ``BED_HOLD_S`` and then ignored at its own level; the caller speaking up over it ducks."""
    level = _level()
    out = _feed(level, _glide(100, -25.0), 10.0)
    assert out[0] is Decision.DUCK and Decision.CONFIRM not in out
    released = out.index(Decision.RELEASE)
    assert released == round(Steadiness.BED_HOLD_S / FRAME_S)
    assert level.bed_at == 10.0 + released * FRAME_S
    assert Decision.DUCK not in out[released:]  # the bed goes on: the line's noise now
    assert level.sound(10.0 + 99 * FRAME_S, 1.0) is Sound.BED
    louder = _feed(level, _glide(10, -12.0, start=100), 12.0)  # 13 dB over it: the caller over the TV
    assert louder[0] is Decision.DUCK


def test_a_near_voice_with_syllables_confirms_on_its_length_as_before():
    """The same sound with a frame 20 dB down every 200 ms (syllables) falls: confirmed at 600 ms."""
    level = _level()
    out = _feed(level, _glide(60, -25.0, dips_every=10), 10.0)
    assert out[0] is Decision.DUCK
    assert out.index(Decision.CONFIRM) == 30  # 600 ms, on the loud frame after the dip at 580 ms
    assert Decision.RELEASE not in out[:30]


def test_a_steady_voice_that_falls_late_is_confirmed_when_it_falls():
    """A caller who talks 800 ms without a pause over a quiet line: held past 600 ms (the agent
    stays paused), confirmed on the frame after their first fall."""
    level = _level()
    frames = _glide(40, -25.0) + [_glide(1, -45.0, start=40)[0]] + _glide(10, -25.0, start=41)
    out = _feed(level, frames, 10.0)
    assert Decision.RELEASE not in out[:41]
    assert out.index(Decision.CONFIRM) == 41


def _held_over_a_steady_sound() -> tuple[Listener, float]:
    """A listener (no echo gate: a quiet line) holding the agent for a short utterance while a
    steady voiced sound goes on at -25 dBFS; the model's turn for it committed as a backchannel."""
    listener = Listener(BridgeConfig(echo_gate=False))
    t = 0.0
    for _ in range(80):
        listener.hear(audio.SILENCE_FRAME, t, lambda: True)
        t = round(t + FRAME_S, 6)
    listener.server_speech(t, audible=True)
    for frame in _glide(10, -25.0):
        listener.hear(frame, t, lambda: True)
        t = round(t + FRAME_S, 6)
    listener.hold(t)  # (as the utterance's first short run would have)
    assert listener.committed(t, "item_b") is Turn.BACKCHANNEL
    return listener, t


def test_words_that_take_the_turn_wait_while_a_steady_sound_goes_on_and_a_bed_resumes_the_answer():
    """The model's transcript of a TV or babble held for ("how"...) takes the turn; while the sound
    has not fallen once it decides first: released as a bed, the answer resumes."""
    listener, t = _held_over_a_steady_sound()
    assert listener.transcript("How", t, "item_b", final=False) is False  # deferred, not interrupted
    assert listener.hold_outcome(t) is Hold.WAIT
    decisions = []
    for frame in _glide(60, -25.0, start=10):
        decisions.append(listener.hear(frame, t, lambda: True).decision)
        t = round(t + FRAME_S, 6)
    assert Decision.RELEASE in decisions and Decision.CONFIRM not in decisions
    assert listener.hold_outcome(t) is Hold.RESUME
    assert listener.transcript("How.", t + 0.2, "item_b") is False  # its words no longer take the turn


def test_deferred_words_interrupt_once_the_sound_falls_like_a_voice():
    listener, t = _held_over_a_steady_sound()
    assert listener.transcript("Wait", t, "item_b", final=False) is False
    for frame in [audio.SILENCE_FRAME] * 3:  # the caller stopped: a fall, no bed
        listener.hear(frame, t, lambda: True)
        t = round(t + FRAME_S, 6)
    assert listener.hold_outcome(t) is Hold.CONFIRM
