"""The parts ``CallerLevel`` delegates to, sans-IO: a run's shape, its voice, the utterance, the evidence.

Each is fed levels, frames and instants directly (no bridge, no clock but the numbers given).
"""
import math

import pytest

from voicebridge.audio import mulaw as audio
from voicebridge.audio.detector import CallerLevel, Decision
from voicebridge.audio.evidence import Sound, SoundEvidence
from voicebridge.audio.runshape import RunShape
from voicebridge.audio.runvoice import RunVoice, Voicing
from voicebridge.audio.utterance import Utterance
from voicebridge.dev import tts

THRESHOLD = -35.0


BREATHY = 1.5  # a median brightness over RunShape.WHISPER_BRIGHT


def shape_of(levels: list[float]) -> RunShape:
    shape = RunShape()
    for level in levels:
        shape.follow(True, level)
        shape.loud_frame(level)
    return shape


def test_a_decaying_slam_is_released_on_its_third_frame_well_under_its_early_peak():
    """A door: -10 dBFS at once, then 1 dB down every frame. Its decay is judged frame by frame as
    ``CallerLevel`` asks while it holds the duck: the first frame 9 dB under the peak (-19) is
    the first of ``DECAY_FRAMES``; the third such frame in a row releases it."""
    shape, judged = RunShape(), []
    for i in range(14):
        level = -10.0 - i
        shape.loud_frame(level)
        judged.append(shape.decaying(level, THRESHOLD, spoken=False))
    assert judged.index(True) == 11  # -19, -20, -21: three frames BURST_DECAY_DB under the peak
    assert not any(judged[:11])


def test_a_sustained_sound_or_one_in_a_spoken_utterance_never_decays():
    """"Sss... stop" rises to its level and holds it; a soft burst is no slam; and a run of an
    utterance a voice was already heard in is words, however it decays."""
    held = RunShape()
    levels = [-20.0, -14.0] + [-10.0] * 14
    assert not any(held.loud_frame(lv) and held.decaying(lv, THRESHOLD, spoken=False) for lv in levels)
    soft = RunShape()  # peaks at -25: under IMPULSE_OVER_DB over the threshold
    assert not any(soft.loud_frame(-25.0 - i) and soft.decaying(-25.0 - i, THRESHOLD, spoken=False) for i in range(12))
    spoken = RunShape()
    assert not any(spoken.loud_frame(-10.0 - i) and spoken.decaying(-10.0 - i, THRESHOLD, spoken=True) for i in range(12))


def test_a_released_tail_is_ignored_until_it_rises_or_the_line_goes_quiet():
    shape = RunShape()
    shape.follow_tail(-20.0)
    assert shape.in_tail(True, -21.0) and shape.in_tail(True, -23.0)  # still decaying
    assert shape.in_tail(True, -18.0)  # within TAIL_RISE_DB of its lowest (-23)
    assert not shape.in_tail(True, -16.0) and shape.tail is None  # 7 dB over it: the caller talking over it
    shape.follow_tail(-20.0)
    assert not shape.in_tail(False, -50.0) and shape.tail is None  # quiet: the tail is over
    shape.follow_tail(-20.0)
    shape.clear()  # a run's end does not end the tail ...
    assert shape.tail == -20.0
    shape.reset()  # ... a reset does
    assert shape.tail is None


def test_a_click_followed_by_a_quiet_line_is_impulsive_a_word_that_goes_on_is_not():
    click = shape_of([-10.0, -9.0, -12.0])
    click.follow(False, -60.0)
    assert click.impulsive(THRESHOLD)
    word = shape_of([-10.0, -9.0, -12.0])
    word.follow(False, -15.0)  # the line stays near the run's level: the echo gate did not count the rest of a word
    assert not word.impulsive(THRESHOLD)
    soft = shape_of([-28.0, -27.0])  # "w-" of a soft "wait": near the threshold
    soft.follow(False, -70.0)
    assert not soft.impulsive(THRESHOLD)
    long_held = shape_of([-10.0] * 8)  # long and not decaying: no click
    long_held.follow(False, -70.0)
    assert not long_held.impulsive(THRESHOLD)
    slam = shape_of([-10.0 - i for i in range(12)])  # long, but a burst decaying from its start
    slam.follow(False, -70.0)
    assert slam.impulsive(THRESHOLD)


def test_a_whisper_is_sustained_soft_and_bright():
    assert shape_of([-30.0, -28.0] + [-27.0] * 6).whisper_like(BREATHY)
    assert not shape_of([-27.0] * 5).whisper_like(BREATHY)  # not yet WHISPER_FRAMES long
    assert not shape_of([-27.0] * 8).whisper_like(0.5)  # dull: a door, a TV, a low tone
    assert not shape_of([-12.0] * 8).whisper_like(BREATHY)  # loud: a cough at the handset
    assert not shape_of([-20.0 - 2 * i for i in range(8)]).whisper_like(BREATHY)  # a burst decaying from its start
    assert shape_of([-27.0] * 3).whisper_like(BREATHY, 3)  # the evidence asked for sooner


def test_a_runs_levels_are_kept_for_its_first_frames_only_and_cleared_with_it():
    shape = shape_of([-20.0] * 3)
    assert [shape.loud_frame(-10.0) for _ in range(RunShape.LISTEN_FRAMES)].count(True) == RunShape.LISTEN_FRAMES - 3
    assert shape.run == RunShape.LISTEN_FRAMES + 3 and len(shape.levels) == RunShape.LISTEN_FRAMES
    assert shape.peak() == -10.0
    shape.clear()
    assert shape.run == 0 and shape.peak() == audio.MIN_DBFS


def _frames(data: bytes) -> list[bytes]:
    return [data[i:i + 160] for i in range(0, len(data) - 159, 160)]


def test_a_voice_is_voiced_with_a_moving_pitch_a_held_note_is_not_a_voice():
    voice, previous, heard = RunVoice(), b"", []
    for frame in _frames(tts.load_prompt("caller_stop")):
        if audio.dbfs(frame) > -30:
            heard.append(voice.listen(frame, previous, tones=True))
        previous = frame
    assert heard.count(Voicing.VOICED) >= 3 and Voicing.HELD not in heard
    note = _frames(audio.encode([round(sum(2000 * math.sin(2 * math.pi * 250 * k * n / 8000) for k in range(1, 8)))
                                 for n in range(160 * 12)]))  # a held 250 Hz note, rich in harmonics (an organ, a beep)
    hum, previous, out = RunVoice(), b"", []
    for frame in note:
        out.append(hum.listen(frame, previous, tones=True))
        previous = frame
    assert Voicing.HELD in out[:RunVoice.TONE_FRAMES + 2] and hum.brightness() is not None
    hum.clear()
    assert hum.voiced == 0 and hum.brightness() is None


def test_the_evidence_gives_the_strongest_sound_of_the_window_and_forgets_a_burst():
    evidence = SoundEvidence()
    assert evidence.sound(10.0, 0.5, None, False) is Sound.NOTHING
    evidence.echo(10.0)
    assert evidence.sound(10.1, 0.5, None, False) is Sound.ECHO
    evidence.burst(10.1)
    assert evidence.sound(10.2, 0.5, None, False) is Sound.NOISE and evidence.heard_noise(11.0, None)
    assert not evidence.heard_noise(11.2, None)  # NOISE_MEMORY_S later
    assert evidence.sound(11.2, 0.5, Sound.NOISE, False) is Sound.NOISE  # a burst still going on
    assert evidence.sound(11.2, 0.5, Sound.WHISPER, False) is Sound.WHISPER
    assert evidence.sound(11.2, 0.5, None, True) is Sound.TONE  # deaf to a note still playing
    evidence.voice(12.0)
    assert evidence.sound(12.1, 0.5, Sound.NOISE, False) is Sound.VOICE
    evidence.tone(12.0)  # the same instant's voiced frame was a held note's
    assert evidence.sound(12.1, 0.5, None, False) is Sound.TONE


def test_a_far_voice_is_evidence_of_its_own_under_a_near_one_where_any_voice_was():
    """A voice too little over the floor (a TV's) is FAR, not VOICE; a near voice in the same
    window wins, and a held note at the same instant still makes it a tone."""
    evidence = SoundEvidence()
    evidence.burst(10.0)
    evidence.voice(10.1, far=True)
    assert evidence.sound(10.2, 0.5, Sound.WHISPER, False) is Sound.FAR  # (where a voice was: over a whisper)
    evidence.voice(10.15)
    assert evidence.sound(10.2, 0.5, None, False) is Sound.VOICE
    assert evidence.sound(10.7, 0.5, None, False) is Sound.NOISE  # both left the window; the burst's memory has not
    evidence.voice(12.0, far=True)
    evidence.tone(12.0)
    assert evidence.sound(12.1, 0.5, None, False) is Sound.TONE


def test_an_utterance_is_far_by_its_peak_over_the_floor_not_by_the_thresholds_bar():
    said = Utterance(near_db=24.0, near_clear=True)
    said.run_starts(10.0)
    assert said.far(-30.0, floor_dbfs=-50.0, now=10.1)  # 20 dB over the floor: voices across the room
    assert not said.far(-25.0, floor_dbfs=-50.0, now=10.1)
    # a soft voice on a quiet line: under the threshold's bar, so not near, but no room's voice (rv37)
    assert not said.far(-34.0, floor_dbfs=-70.0, now=10.1)
    assert not said.near(-34.0, -70.0, -35.0, clear_at=10.0, now=10.1)
    assert not said.near(-25.0, -50.0, -35.0, clear_at=9.0)  # never clear of the echo: not near, not far either
    assert not said.far(-25.0, -50.0, now=10.1)
    assert not Utterance().far(-90.0, -50.0, now=10.1)  # near_db off: nothing is far


def test_the_rooms_voices_are_those_of_the_last_seconds_before_the_utterance_began():
    from voicebridge.audio.utterance import RoomVoices
    room = RoomVoices()
    assert not room.like(-60.0, 1.0, before=1.0)  # none heard
    room.heard(-28.0, 1.0)
    room.heard(-31.0, 2.0)
    assert room.like(-26.5, 2.5, before=2.5) and not room.like(-26.0, 2.5, before=2.5)  # 2 dB louder: not theirs
    assert not room.like(-30.0, 2.5, before=1.0)  # (runs from the utterance's own start on are not the room's)
    assert room.like(-27.0, 1.0 + RoomVoices.MEMORY_S, before=9.0)
    assert not room.like(-27.0, 1.1 + RoomVoices.MEMORY_S, before=9.0)  # the loudest forgotten: the softer one's
    assert room.like(-29.5, 1.1 + RoomVoices.MEMORY_S, before=9.0)
    assert not room.like(-60.0, 2.1 + RoomVoices.MEMORY_S, before=9.0)  # all forgotten


def test_an_utterance_as_loud_as_the_rooms_voices_before_it_is_far_but_not_for_its_own_soft_start():
    said = Utterance(near_db=24.0, near_clear=True)
    said.run_starts(10.0)
    said.run_ended(voiced=0, peak=-28.0, now=10.2, floor_dbfs=-50.0)  # a burst: not a voice
    said.run_ended(voiced=3, peak=-20.0, now=10.3, floor_dbfs=-50.0)  # near: the caller's
    assert not said.room.like(-40.0, 10.4, before=11.0)
    said.run_ended(voiced=3, peak=-28.0, now=10.5, floor_dbfs=-50.0)  # 22 dB over: the room's, maybe
    said.forget()
    said.run_starts(11.0)
    assert said.far(-27.0, floor_dbfs=-56.0, now=11.1)  # 29 dB over a dropped floor, as loud as the room was: theirs
    assert not said.near(-27.0, -56.0, -35.0, clear_at=11.0, now=11.1)
    assert said.near(-27.0, -56.0, -35.0, clear_at=11.0)  # (without the time: the floor alone)
    assert not said.far(-25.5, floor_dbfs=-56.0, now=11.1)  # louder than the room by 2.5 dB: judged on the floor
    caller = Utterance(near_db=24.0)  # a caller's first syllable under a near voice's level, the next 1.5 dB louder:
    caller.run_starts(20.0)  # their own, no room's (rv37: its runs had taught the room)
    caller.run_ended(voiced=3, peak=-33.0, now=20.3, floor_dbfs=-56.0)
    assert caller.near(-31.5, -56.0, -35.0, clear_at=20.0, now=20.4) and not caller.far(-31.5, -56.0, now=20.4)


def test_soft_evidence_needs_its_frames_within_the_window():
    evidence = SoundEvidence()
    for i in range(SoundEvidence.SOFT_FRAMES - 1):
        evidence.soft(20.0 + 0.02 * i)
    assert evidence.sound(20.2, 0.5, None, False) is Sound.NOTHING  # one frame short
    evidence.soft(20.1)
    assert evidence.sound(20.2, 0.5, None, False) is Sound.SOFT
    assert evidence.sound(21.0, 0.5, None, False) is Sound.NOTHING  # its first frame left the window


def test_runs_close_together_are_one_utterance_and_a_voice_in_one_counts_for_all():
    said = Utterance()
    said.run_starts(10.0)
    said.run_ended(voiced=2, peak=-20.0, now=10.3)  # "wait"
    said.run_starts(10.5)  # ", hold on": 200 ms later
    assert said.start == 10.0 and said.voiced == 2 and said.spoken
    said.run_ended(voiced=0, peak=-25.0, now=10.6)  # a voiceless run of a spoken utterance goes on with it
    said.run_starts(10.9)
    assert said.start == 10.0
    said.run_starts(11.4)  # (no run ended since 10.6: GAP_S later, a new one)
    assert said.start == 11.4 and said.voiced == 0 and not said.spoken


def test_a_voiceless_run_or_a_forgotten_one_does_not_begin_the_next_runs_utterance():
    knock = Utterance()
    knock.run_starts(20.0)
    knock.run_ended(voiced=0, peak=-10.0, now=20.1)
    knock.run_starts(20.2)
    assert knock.start == 20.2  # its length counts from the words, not from the knock before them
    echo = Utterance()
    echo.run_starts(30.0)
    echo.run_ended(voiced=3, peak=-20.0, now=30.3)
    echo.forget()  # the echo gate judges it echo now
    echo.run_starts(30.4)
    assert echo.start == 30.4 and not echo.spoken


@pytest.mark.parametrize("after, vowel", [
    ([(0.45, -30.0)], True),  # "sure" across a reverberant room: its vowel's core, dull as no whisper is
    ([(0.64, -29.0), (1.0, -31.0), (0.96, -30.0)], True),  # "yeah": three voiced frames under VOWEL_BRIGHT
    ([(0.88, -30.0), (0.94, -30.0)], False),  # a TV's voices under a whispered "hold on" gave two (review rv9)
    ([(1.23, -30.0), (1.5, -29.0), (2.8, -30.0), (1.3, -31.0)], False),  # a whisper's stray periodic frames: bright
    ([(0.3, -34.0), (0.2, -36.0), (0.4, -35.0), (0.3, -38.0)], False),  # a TV's vowels in the whisper's gaps: quieter
])
def test_a_vowel_after_the_whisper_verdict_makes_the_utterance_a_voice(after, vowel):
    said = Utterance()
    said.run_starts(10.0)
    said.heard(-30.0, 10.0)  # the whisper's loudest frame (-30 dBFS)
    said.voiced_frame(0.3, -30.0)  # before any verdict: not counted (the verdict is what it may undo)
    assert not said.whisper_only and not said.vowel
    said.heard_whisper()
    assert said.whisper_only
    for t, (brightness, level) in enumerate(after):
        said.heard(level, 10.2 + t * 0.02)
        said.voiced_frame(brightness, level)
    assert said.whispered and said.whisper_only is not vowel
    said.run_ended(voiced=0, peak=-30.0, now=10.4)
    said.run_starts(11.0)  # GAP_S later: a new utterance, judged afresh
    assert not said.whispered and not said.vowel
    said.heard(-30.0, 11.0)
    said.heard_whisper()
    said.voiced_frame(0.9, -30.0)
    said.voiced_frame(0.9, -30.0)
    assert said.whisper_only  # the last utterance's frames do not count for this one


def test_an_utterance_is_long_enough_from_its_onset_and_near_over_floor_and_threshold():
    said = Utterance(min_speech_frames=30, near_db=24.0)
    said.run_starts(10.0)
    assert not said.long_enough(10.56) and said.long_enough(10.58)  # 29 frames from its onset, then 30
    assert said.near(-30.0, -60.0, -35.0, 0.0) and not said.near(-33.0, -60.0, -35.0, 0.0)  # 3 dB over the threshold asked
    assert not said.near(-43.0, -70.0, -45.0, 0.0)  # 27 dB over a floor that has not caught up with babble, not 3 over -45
    said.run_ended(voiced=3, peak=-20.0, now=10.6)
    said.run_starts(10.7)
    assert said.near(-50.0, -60.0, -35.0, 0.0)  # its earlier run's peak counts


def test_with_near_clear_an_utterance_none_of_whose_frames_stood_clear_of_the_echo_is_not_near():
    said = Utterance(near_db=24.0, near_clear=True)
    said.run_starts(10.0)
    assert not said.near(-10.0, -60.0, -35.0, clear_at=9.0)  # loud, but every frame at the echo's level: its peaks
    assert said.near(-10.0, -60.0, -35.0, clear_at=10.1)


def test_a_run_is_cut_by_the_echo_only_if_the_gate_stopped_counting_it_near_its_level_and_lately():
    """(``breath.EchoCut``) A whispered "stop" over -15 dB echo: its frames after the run are the
    echo's (uncounted) 6-8 dB under its peak. A hiss with no echo: the frame after it is 28 dB
    down, or none was uncounted at all; and a run whose uncounted frames came long before it."""
    from voicebridge.audio.breath import EchoCut

    run = [-24.0, -25.5, -26.5, -27.5, -29.4]
    cut = EchoCut()
    cut.frame(-30.9, 4.08)
    cut.frame(-44.0, 4.10)  # the loudest of the recent ones counts
    assert cut.cut(run, 4.10) and cut.cut(run, 4.14)
    assert not cut.cut(run, 4.20)  # too long after
    hiss = EchoCut()
    hiss.frame(-56.0, 4.24)
    assert not hiss.cut([-32.3, -29.0, -28.2, -31.0], 4.26)  # far under the run: its own fading tail
    assert not EchoCut().cut(run, 4.10)


def test_breath_is_three_to_five_loud_bright_frames():
    from voicebridge.audio.breath import is_breath

    assert is_breath([-25.0] * 3, 1.2) and is_breath([-25.0] * 5, 1.0)
    assert not is_breath([-25.0] * 2, 1.5)  # a tick
    assert not is_breath([-25.0] * 6, 1.5)  # a whisper's length: judged by its shape
    assert not is_breath([-25.0] * 4, 0.4) and not is_breath([-25.0] * 4, None)  # a voice's dull run, unmeasured


def test_loud_frames_no_barge_in_could_follow_count_as_words_five_in_a_row_by_their_numbers():
    """The evidence of a question's rest (``Listener.flush_due``) is five loud frames in a row,
    counted by the frames' numbers: a bunch that arrives at once counts as it was sent, a frame
    that arrives late does not break the run, and a quiet frame between two loud ones does
    (review rv34: counted by arrival, six clicks bunched passed and a late frame restarted it)."""
    in_a_row = SoundEvidence()
    for n in range(10, 15):
        in_a_row.unarmed_loud(1.0, n)  # (a bunch: one arrival time)
    assert in_a_row.unarmed_loud_at == 1.0
    late = SoundEvidence()
    for n, at in zip(range(10, 15), (1.0, 1.02, 1.065, 1.07, 1.08)):
        late.unarmed_loud(at, n)
    assert late.unarmed_loud_at == 1.08
    clicks = SoundEvidence()
    for n in range(10, 22, 2):  # six loud frames, a quiet one between each
        clicks.unarmed_loud(1.0 + n * 0.001, n)
    assert clicks.unarmed_loud_at == float("-inf")
    four = SoundEvidence()
    for n in range(10, 14):
        four.unarmed_loud(1.0, n)
    assert four.unarmed_loud_at == float("-inf")


def _over_a_bed(bed_dbfs: float) -> "tuple[CallerLevel, float]":
    """A CallerLevel that has heard 2 s of a steady bed at ``bed_dbfs`` with the agent quiet."""
    level, now = CallerLevel(), 0.0
    for _ in range(100):
        level.feed(bed_dbfs, now, True, lambda: False)
        now = round(now + 0.02, 6)
    return level, now


@pytest.mark.parametrize("bed_dbfs, first_frame_ducks", [(-45.0, False), (-70.0, True)])
def test_over_a_bed_a_frame_just_over_the_threshold_ducks_only_with_the_runs_next(bed_dbfs, first_frame_ducks):
    """A TV or babble's syllables cross the threshold over its lulls one frame at a time: each
    ducked the answer for 40-200 ms, dozens of times a minute. Over a bed (a noise floor that
    has raised the threshold) a run's first frame less than ``PEAK_DB`` over it ducks only
    with the run's next loud frame; on a quiet line it ducks at once, as does a frame well over
    the threshold anywhere."""
    level, now = _over_a_bed(bed_dbfs)
    assert (level.detector.threshold_dbfs > level.threshold_dbfs) is not first_frame_ducks  # (raised by the bed)
    just_over = level.detector.threshold_dbfs + 2.0
    got = [level.feed(just_over, now, True, lambda: True), level.feed(bed_dbfs, now + 0.02, True, lambda: True)]
    assert (Decision.DUCK in got) is first_frame_ducks
    level, now = _over_a_bed(bed_dbfs)
    assert level.feed(level.detector.threshold_dbfs + 2.0, now, True, lambda: True) is (
        Decision.DUCK if first_frame_ducks else Decision.NONE)
    assert level.feed(level.detector.threshold_dbfs + 2.0, now + 0.02, True, lambda: True) is (
        Decision.NONE if first_frame_ducks else Decision.DUCK)  # (the run's next loud frame)
    level, now = _over_a_bed(bed_dbfs)
    assert level.feed(level.detector.threshold_dbfs + 8.0, now, True, lambda: True) is Decision.DUCK
