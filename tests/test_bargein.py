"""Barge-in decision pieces, sans-IO: detector, guards, plan, playback."""
import pytest

from voicebridge.audio import mulaw as audio
from voicebridge.dev import tts
from voicebridge.audio.detector import (CallerLevel, Decision, GuardState, LevelDetector, NoiseFloor,
                                  plan, refusal)
from voicebridge.dev.sim.acoustics import cough
from voicebridge.audio.playback import PlaybackTracker

LOUD, QUIET = -10.0, -60.0
SPEAKING = GuardState(ai_speaking=True, response_active=True)


def test_debounce_requires_5_consecutive_frames():
    det = LevelDetector(threshold_dbfs=-35, frames_needed=5, duck=False)
    assert [det.feed(LOUD, True) for _ in range(4)] == [Decision.NONE] * 4
    assert det.feed(LOUD, True) is Decision.CONFIRM


def test_debounce_resets_on_low_rms():
    """(With the duck off the run's end is still said: nothing was paused, but what it was is judged.)"""
    det = LevelDetector(threshold_dbfs=-35, frames_needed=5, duck=False)
    for _ in range(4):
        det.feed(LOUD, True)
    assert det.feed(QUIET, True) is Decision.RELEASE
    assert det.feed(QUIET, True) is Decision.NONE
    assert [det.feed(LOUD, True) for _ in range(4)] == [Decision.NONE] * 4
    assert det.feed(LOUD, True) is Decision.CONFIRM


def test_duck_on_first_loud_frame_then_release_or_confirm():
    det = LevelDetector(frames_needed=5, duck=True)
    assert det.feed(LOUD, True) is Decision.DUCK
    assert det.feed(LOUD, True) is Decision.NONE
    assert det.feed(QUIET, True) is Decision.RELEASE
    assert det.feed(QUIET, True) is Decision.NONE
    assert det.feed(LOUD, True) is Decision.DUCK
    assert [det.feed(LOUD, True) for _ in range(4)][-1] is Decision.CONFIRM


def test_a_first_frame_that_could_be_an_echo_peak_ducks_only_with_the_runs_next_loud_frame():
    det = LevelDetector(frames_needed=5, duck=True, dip_frames=1)
    # alone (the echo under the margin again after it): no duck, so nothing to release either
    assert [det.feed(x, True, tentative=t) for x, t in ((LOUD, True), (QUIET, False), (QUIET, False))] == [
        Decision.NONE] * 3
    assert det.run == 0 and not det.ducking
    # a caller's onset no clearer of the echo: ducked at the second frame, confirmed on the run's fifth
    assert [det.feed(LOUD, True, tentative=t) for t in (True, True, False, False, False)] == [
        Decision.NONE, Decision.DUCK, Decision.NONE, Decision.NONE, Decision.CONFIRM]
    # a dip after the first: the duck waits for the next loud frame of the run
    assert [det.feed(x, True, tentative=True) for x in (LOUD, QUIET, LOUD)] == [
        Decision.NONE, Decision.NONE, Decision.DUCK]


def test_disarming_releases_a_duck_and_resets_the_count():
    det = LevelDetector(frames_needed=5)
    det.feed(LOUD, True)
    assert det.feed(LOUD, False) is Decision.RELEASE
    assert det.run == 0


def test_a_one_frame_dip_inside_a_run_is_tolerated_when_asked():
    det = LevelDetector(frames_needed=5, duck=True, dip_frames=1)
    assert [det.feed(x, True) for x in (LOUD, LOUD, QUIET, LOUD, LOUD)] == [
        Decision.DUCK, Decision.NONE, Decision.NONE, Decision.NONE, Decision.NONE]  # the duck holds
    assert det.feed(LOUD, True) is Decision.CONFIRM  # the fifth loud frame: the dip was not counted
    assert [det.feed(x, True) for x in (LOUD, QUIET, QUIET)] == [Decision.DUCK, Decision.NONE, Decision.RELEASE]
    assert det.feed(QUIET, True) is Decision.NONE and det.run == 0
    det.feed(LOUD, True)
    assert det.feed(QUIET, False) is Decision.RELEASE  # disarmed: no tolerance


def test_the_noise_floor_is_the_quietest_moment_of_the_last_second_and_a_half():
    floor = NoiseFloor(margin_db=12.0)
    for i in range(70):
        floor.update(-45.0 + (i % 3), i * 0.02)  # a fan: -45..-43 dBFS
        assert floor.floor_dbfs == -100.0  # not judged before a whole window (1.5 s) was heard
    for i in range(70, 80):
        floor.update(-45.0 + (i % 3), i * 0.02)
    assert floor.floor_dbfs == -45.0 and floor.threshold(-35.0) == -33.0  # 12 dB above the noise
    t = 1.6
    for i in range(100):  # two seconds of speech at -20 dBFS with a dip to the noise every 300 ms
        floor.update(-45.0 if i % 15 == 0 else -20.0, t)
        t += 0.02
        assert floor.floor_dbfs == -45.0  # speech pauses: it never becomes the floor
    for _ in range(100):  # the caller walks into a street: -42 dBFS steady
        floor.update(-42.0, t)
        t += 0.02
    assert floor.floor_dbfs == -42.0 and floor.threshold(-35.0) == -30.0
    for _ in range(100):  # two seconds without a pause: talk, not a background
        floor.update(-20.0, t)
        t += 0.02
    assert floor.floor_dbfs == -40.0
    floor.update(-60.0, t)
    assert floor.floor_dbfs == -60.0 and floor.threshold(-35.0) == -35.0  # never below the setting


def test_once_measured_the_floor_does_not_rise_on_frames_judged_echo():
    floor = NoiseFloor(margin_db=12.0)
    t = 0.0
    for _ in range(100):  # 2 s of a silent line: measured
        floor.update(-100.0, t)
        t += 0.02
    assert floor.floor_dbfs == -100.0
    for _ in range(150):  # 3 s of echo only at -85 dBFS and up
        floor.update(-85.0, t, rise=False)
        t += 0.02
    assert floor.floor_dbfs == -100.0
    floor.update(-85.0, t)  # the same level not judged echo: the line's own, the floor rises
    assert floor.floor_dbfs == -85.0
    fresh = NoiseFloor(margin_db=12.0)  # not measured yet: a call that begins with the echo learns from it
    for i in range(100):
        fresh.update(-60.0, 0.02 * i, rise=False)
    assert fresh.floor_dbfs == -60.0


def test_the_floor_worked_out_only_when_an_input_moved_is_every_frames_minimum_all_the_same():
    """``NoiseFloor.update`` works the floor out again only at a block's end or a new lowest level
    in the block (every caller frame comes there): over levels that wander, jump, and fall under
    -100 and above the ceiling, with frames late, early and back in time, its floor is after every
    frame the least of the ceiling, the block's minimum and the window's, as the rule says."""
    import random
    from collections import deque

    rng = random.Random(5)
    floor = NoiseFloor()
    blocks, start, block_min, window_min = deque(maxlen=15), None, 0.0, None
    t, level = 0.0, -60.0
    for _ in range(4000):
        t += rng.choice((0.02, 0.02, 0.02, 0.0, 0.035, -0.5 if rng.random() < 0.01 else 0.02))
        level = max(-130.0, min(0.0, level + rng.gauss(0.0, 4.0))) if rng.random() < 0.97 else rng.uniform(-130, 0)
        clamped = max(-100.0, level)
        if start is None or t - start >= 0.1 - 1e-6 or t < start:
            if start is not None:
                blocks.append(block_min)
                if len(blocks) == blocks.maxlen:
                    window_min = min(blocks)
            start, block_min = t, clamped
        else:
            block_min = min(block_min, clamped)
        expected = -100.0 if window_min is None else min(-40.0, block_min, window_min)
        assert floor.update(level, t) == expected == floor.floor_dbfs


def frames_of(data: bytes) -> list[bytes]:
    return [data[i:i + 160] for i in range(0, len(data) - 159, 160)]


def decisions(level: CallerLevel, frames: list[bytes], start: float = 10.0) -> list[Decision]:
    return [level.feed(audio.dbfs(f), start + i * 0.02, True, lambda: True, f) for i, f in enumerate(frames)]


def test_a_cough_ducks_but_never_confirms_a_voice_does():
    level = CallerLevel(frames_needed=5, duck=True, dip_frames=1, voiced_needed=1)
    silence = [audio.SILENCE_FRAME] * 80  # a whole noise-floor window of quiet line first
    decisions(level, silence, 0.0)
    out = decisions(level, frames_of(cough(400, seed=1)) + [audio.SILENCE_FRAME] * 3, 10.0)
    assert out[0] is Decision.DUCK and Decision.CONFIRM not in out  # two bursts: ducked and released twice
    assert out.count(Decision.DUCK) == out.count(Decision.RELEASE) == 2
    assert level.heard_noise(10.5) and not level.heard_noise(12.0)  # remembered for a second
    speech = frames_of(tts.load_prompt("caller_stop"))
    out = decisions(level, speech, 20.0)
    confirmed = out.index(Decision.CONFIRM)
    assert out[:confirmed].count(Decision.DUCK) == 1 and 5 <= confirmed <= 8  # "St-" is voiceless; "o" is not


def test_a_long_voiceless_sound_is_given_up_on_until_the_line_is_quiet():
    level = CallerLevel(frames_needed=5, duck=True, voiced_needed=1)
    decisions(level, [audio.SILENCE_FRAME] * 80, 0.0)
    hiss = frames_of(cough(2000, seed=1))[:45]  # a second of broadband noise, fading
    out = decisions(level, hiss, 10.0)
    assert out[0] is Decision.DUCK and Decision.CONFIRM not in out
    assert out.index(Decision.RELEASE) == 4 + CallerLevel.MAX_UNVOICED  # 400 ms past the debounce
    assert Decision.DUCK not in out[1:]  # the rest of it is ignored
    assert decisions(level, [audio.SILENCE_FRAME, hiss[0]], 60.0)[1] is Decision.DUCK  # quiet again: listening


def test_guards_prevent_cancel_during_greeting():
    state = GuardState(in_greeting=True, ai_speaking=True, response_active=True)
    assert refusal(state) == "greeting is not interruptible"
    assert plan(state) is None
    allowed = GuardState(in_greeting=True, greeting_interruptible=True, ai_speaking=True, response_active=True)
    assert plan(allowed).cancel is True


def test_guards_prevent_cancel_when_ai_not_speaking():
    state = GuardState(ai_speaking=False, response_active=True)
    assert refusal(state) == "AI is not speaking"
    assert plan(state) is None


def test_guards_prevent_cancel_without_active_response():
    # response.done already arrived but the caller still hears queued audio: stop it, no cancel
    after_done = plan(GuardState(ai_speaking=True, response_active=False))
    assert after_done is not None
    assert after_done.stop_audio and after_done.truncate and not after_done.cancel
    assert plan(SPEAKING).cancel is True
    assert plan(GuardState(ai_speaking=False, response_active=False)) is None


def test_guard_blocks_second_trigger_for_same_response_and_when_disabled():
    assert refusal(GuardState(ai_speaking=True, already_handled=True)) == "already handled for this response"
    assert refusal(GuardState(barge_in_enabled=False, ai_speaking=True)) == "barge-in disabled"


def test_stale_marks_after_clear_are_not_taken_as_played():
    pb = PlaybackTracker()
    pb.sent("item", 800, now=0.0)
    m1 = pb.new_mark("item")
    pb.sent("item", 800, now=0.1)
    m2 = pb.new_mark("item")
    assert pb.echoed(m1, now=0.1) == "played"
    assert pb.pending_marks == 1
    pb.cleared()
    assert pb.pending_marks == 0  # nothing of the current generation is playing
    assert pb.echoed(m2, now=0.15) == "stale"  # echoed because of the clear, not played
    assert pb.heard_bytes("item", now=0.1) == 800
    assert pb.echoed("somebody-else", now=0.2) == "foreign"


def test_heard_estimate_advances_in_real_time_and_is_capped_by_sent():
    pb = PlaybackTracker()
    pb.sent("item", 1600, now=1.0)  # 200 ms of audio handed to Twilio at t=1.0
    assert pb.heard_ms("item", now=1.05) == 50
    assert pb.heard_ms("item", now=5.0) == 200  # never beyond what was sent
    assert pb.heard_ms("unknown", now=5.0) == 0


def test_the_rumble_check_is_made_only_where_its_answer_can_matter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pitch analysis behind the rumble check costs more than the rest of a frame's path:
    a caller talking to a quiet agent (no barge-in possible, no false-trigger watch) needs none;
    armed, or watched, every loud onset still gets it."""
    import voicebridge.audio.runvoice as bargein_module  # (where the detector's pitch analysis is asked for)

    asked: list[int] = []
    real = bargein_module.pitch
    monkeypatch.setattr(bargein_module, "pitch", lambda *a: asked.append(1) or real(*a))
    speech = frames_of(tts.load_prompt("caller_stop"))
    level = CallerLevel(frames_needed=5, duck=True, voiced_needed=1)
    decisions(level, [audio.SILENCE_FRAME] * 80, 0.0)
    for i, f in enumerate(speech):
        level.feed(audio.dbfs(f), 10.0 + i * 0.02, True, lambda: False, f)
    assert asked == []
    level.rumble_matters = True
    level.feed(audio.dbfs(speech[10]), 20.0, True, lambda: False, speech[10])
    assert asked == [1]
    level.rumble_matters = False
    decisions(level, [audio.SILENCE_FRAME] * 5 + speech[:1], 30.0)
    assert len(asked) >= 2


def test_the_threshold_follows_the_floor_and_the_setting_from_the_next_frame():
    """The threshold is worked out again only when the floor or the setting moved, not on every
    frame: either change is in force on the very next frame."""
    level = CallerLevel(threshold_dbfs=-35.0, frames_needed=5, duck=True)
    t = 0.0
    for _ in range(100):  # two seconds of a quiet line: the floor is known, the threshold the setting
        assert level.feed(-80.0, t, True, lambda: True) is Decision.NONE
        t += 0.02
    assert level.feed(-34.0, t, True, lambda: True) is Decision.DUCK
    assert level.feed(-80.0, t + 0.02, True, lambda: True) is Decision.RELEASE
    level.threshold_dbfs = -30.0  # the setting raised mid-call
    assert level.feed(-34.0, t + 0.04, True, lambda: True) is Decision.NONE
    level.threshold_dbfs = -35.0
    t += 0.06
    for _ in range(100):  # a fan set in at -45 dBFS: the floor is -45 from 1.5 s on, the threshold -33
        level.feed(-45.0, t, True, lambda: True)
        t += 0.02
    assert level.floor_dbfs == -45.0
    assert level.feed(-34.0, t, True, lambda: True) is Decision.NONE  # under the raised threshold
    assert level.feed(-34.0, t + 0.02, True, lambda: True) is Decision.NONE  # (not loud: no run goes on)
    # over it: loud (over a bed, a first frame this close to the threshold ducks with the run's next)
    assert level.feed(-32.0, t + 0.04, True, lambda: True) is Decision.NONE
    assert level.feed(-32.0, t + 0.06, True, lambda: True) is Decision.DUCK


class _ScriptedListener:
    """The listener's decisions, scripted frame by frame (the barge-in's own bookkeeping is tested)."""

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.level = SimpleNamespace(loud=False, detector=SimpleNamespace(run=0), rumble_matters=False,
                                     reset=lambda: None, impulse=False, breath=False)
        self.holding = False
        self.holds: list = []  # (now, far) of every ``hold``
        self.model_heard = False
        self.floor_dbfs = -60.0

    def frame(self, decision, loud: bool):
        self.level.detector.run = self.level.detector.run + 1 if loud else 0
        self.level.loud = loud
        from voicebridge.audio.listening import Heard

        self._heard = Heard(forward=b"", level_dbfs=-20.0 if loud else -60.0, verdict=None, decision=decision)

    def hear(self, frame, now, armed, timestamp_ms=None):
        return self._heard

    def flush_due(self, now):
        return False  # (no model turn open: nothing to commit at an onset)

    def heard_by_model(self, after_release=False):
        return self.model_heard and after_release  # (a turn that heard a released voice: scripted)

    holds_for_words = True

    def hold(self, now, far=False, strict=False, after_release=False):
        self.holds.append((now, far, strict, after_release))
        self.holding = True

    def server_speech(self, now, audible):
        from voicebridge.audio.listening import ServerSpeech

        return ServerSpeech.LOCAL  # a voice is being heard here: the local detector decides


def test_a_pause_between_words_keeps_the_utterances_onset_for_the_servers_evidence():
    """"Stop ... please": the first word ducks, the pause releases, the server hears speech, the
    second word ducks again and confirms. The procedure's onset is the first word's, so the
    server's speech_started counts for it (the demo's "Stop please" was a false barge-in every time
    the second duck moved the onset past it); after a longer silence a new utterance begins."""
    import logging
    from types import SimpleNamespace

    from voicebridge.audio.detector import Decision
    from voicebridge.audio.false_trigger import Recovery
    from voicebridge.call.bargein import BargeIn
    from voicebridge.call.context import CallContext
    from voicebridge.call.metrics import CallMetrics
    from voicebridge.config import BridgeConfig
    from voicebridge.testing import ManualClock

    clock = ManualClock()
    listener = _ScriptedListener()
    outbound = SimpleNamespace(pause=lambda now: None, resume=lambda: None, audible=True, duck_stopped_audio=False)
    barge_in = BargeIn(CallContext(BridgeConfig(), CallMetrics(), logging.getLogger("t"), clock), outbound, None,
                       None, lambda *a: None, listener)
    onsets = []
    barge_in.run = lambda trigger, now, onset: onsets.append(onset)  # the procedure itself is tested elsewhere

    def frame(at: float, decision=Decision.NONE, loud: bool = False) -> None:
        clock.now = at
        listener.frame(decision, loud)
        barge_in.hear(b"", at)

    frame(1.00, Decision.DUCK, loud=True)  # "stop"
    frame(1.02, loud=True)
    frame(1.04)
    frame(1.06, Decision.RELEASE)
    assert barge_in.server_speech(1.20).value == "local"
    frame(1.30, Decision.DUCK, loud=True)  # "please", 240 ms after "stop" ended
    frame(1.32, Decision.CONFIRM, loud=True)
    assert onsets == [1.00]
    frame(1.34)
    frame(2.00, Decision.DUCK, loud=True)  # 660 ms of quiet later: another utterance
    frame(2.02, Decision.CONFIRM, loud=True)
    assert onsets == [1.00, 2.00]


def test_quiet_frames_after_a_confirmation_on_a_quiet_frame_still_count_for_the_false_trigger_watch():
    """A barge-in confirmed on a frame that was not loud itself (the watch armed, no quiet seen
    yet): the quiet frames after it go the short way through ``hear`` (nothing began or ended)
    and must still tell the watch, or a cough's barge-in would never be recovered from."""
    import logging
    from types import SimpleNamespace

    from voicebridge.audio.detector import Decision
    from voicebridge.audio.false_trigger import Recovery
    from voicebridge.call.bargein import BargeIn
    from voicebridge.call.context import CallContext
    from voicebridge.call.metrics import CallMetrics
    from voicebridge.config import BridgeConfig
    from voicebridge.testing import ManualClock

    clock, listener = ManualClock(), _ScriptedListener()
    outbound = SimpleNamespace(pause=lambda now: None, resume=lambda: None, audible=True, duck_stopped_audio=False)
    config = BridgeConfig()
    barge_in = BargeIn(CallContext(config, CallMetrics(), logging.getLogger("t"), clock), outbound, None,
                       None, lambda *a: None, listener)
    barge_in.run = lambda trigger, now, onset: barge_in._false_trigger.start(now, loud=True, since=onset)
    at = 1.0
    listener.frame(Decision.CONFIRM, loud=False)  # (the run's last frame fell under the threshold)
    barge_in.hear(b"", at)
    watch = barge_in._false_trigger
    assert watch.armed and watch.poll(at) is Recovery.NONE
    while at < 1.0 + config.false_trigger_ms / 1000 + 0.1:
        at = round(at + 0.02, 2)
        listener.frame(Decision.NONE, loud=False)
        barge_in.hear(b"", at)
    assert watch.poll(at) is Recovery.CONTINUE  # quiet for false_trigger_ms: a false trigger


def test_the_noise_floor_is_the_quietest_block_of_the_last_window_as_blocks_come_and_go():
    """The window's quietest block is worked out when a block ends, not on every frame: the floor
    still follows a quiet moment leaving the window, and a quieter frame inside the current block."""
    floor = NoiseFloor(window_s=0.5, block_s=0.1)  # five blocks of five frames
    levels = [-50.0] * 5 + [-70.0] * 5 + [-50.0] * 25 + [-55.0] + [-50.0] * 4
    t, got = 0.0, []
    for level in levels:
        got.append(floor.update(level, t))
        t += 0.02
    assert got[:25] == [-100.0] * 25  # until five whole blocks have been heard: silence assumed
    assert got[25:35] == [-70.0] * 10  # the -70 block is in the window
    assert got[35] == -55.0 and got[36:] == [-55.0] * 4  # it left; the frame at -55 is this block's quietest


def test_the_pitch_is_the_best_lag_of_the_frame_against_the_audio_before_it():
    """The voice check's correlation, worked out lag by lag in plain Python: the periodicity it
    reports is that of one of the lags it searched, the period within half a sample of that lag."""
    import math

    from voicebridge.audio import voicing
    speech = frames_of(tts.load_prompt("caller_question"))
    checked = 0
    for i in range(2, len(speech)):
        previous, frame = speech[i - 2][:5] + speech[i - 1], speech[i]
        got = voicing.pitch(frame, previous)
        if not got.period:
            continue  # silence: nothing to measure
        checked += 1
        x = audio.decode((previous[-voicing.MAX_LAG - 1:] + frame))
        y = [b - 0.95 * a for a, b in zip(x, x[1:])]
        n = len(frame) - 1
        cur = y[-n:]
        energy, end = sum(v * v for v in cur), len(y) - n
        r = {}
        for lag in range(voicing.MIN_LAG, min(voicing.MAX_LAG, end) + 1):
            past = y[end - lag:end - lag + n]
            r[lag] = sum(a * b for a, b in zip(past, cur)) / math.sqrt(energy * sum(v * v for v in past) + 1e-9)
        lag = min(r, key=lambda k: abs(r[k] - got.periodicity))
        assert abs(r[lag] - got.periodicity) < 1e-9 and abs(got.period - lag) <= 0.5 + 1e-9
        assert got.periodicity >= voicing.OCTAVE * max(r.values()) - 1e-9
    assert checked > 30


def _noise_frames(count: int, dbfs: float, seed: int = 3) -> list[bytes]:
    import random
    rnd = random.Random(seed)
    scale = 32768 * 10 ** (dbfs / 20)
    return frames_of(audio.encode([int(max(-32767, min(32767, rnd.gauss(0.0, scale)))) for _ in range(160 * count)]))


def test_a_sustained_voiceless_sound_holds_the_duck_for_a_voice_then_releases_it():
    """"Sh..." (loud, bright, sustained, no voice): the duck waits ``UTTERANCE_GAP_S`` after it for
    the voice that may follow, then is released, on the quiet frames that follow."""
    level = CallerLevel(frames_needed=5, duck=True, dip_frames=1, voiced_needed=1)
    decisions(level, [audio.SILENCE_FRAME] * 80, 0.0)
    out = decisions(level, _noise_frames(10, -15.0) + [audio.SILENCE_FRAME] * 40, 10.0)
    assert out[0] is Decision.DUCK and Decision.RELEASE not in out[:12]
    released = out.index(Decision.RELEASE)
    assert 10 + int(CallerLevel.UTTERANCE_GAP_S / 0.02) <= released <= 10 + int(CallerLevel.UTTERANCE_GAP_S / 0.02) + 3


def test_a_runs_first_frame_is_judged_against_the_audio_just_before_it(monkeypatch: pytest.MonkeyPatch):
    """The voice check of an onset reads the frame before it, however quiet that frame was."""
    import voicebridge.audio.runvoice as detector_module  # (where the detector's pitch analysis is asked for)
    before: list[bytes] = []
    real = detector_module.pitch
    monkeypatch.setattr(detector_module, "pitch", lambda frame, previous=b"": before.append(previous) or real(frame, previous))
    level = CallerLevel(frames_needed=5, duck=True, voiced_needed=1)
    quiet = _noise_frames(81, -70.0, seed=4)
    decisions(level, quiet, 0.0)
    speech = frames_of(tts.load_prompt("caller_stop"))
    loud = next(f for f in speech if audio.dbfs(f) > -30)
    level.feed(audio.dbfs(loud), 10.0, True, lambda: True, loud)
    assert before and before[0] == quiet[-1]


def test_after_a_duck_that_cleared_the_first_release_waits_for_the_word_to_go_on():
    """The duck cleared the caller's buffer: a run that ends unconfirmed ("ex-" of "excuse me")
    resumes the agent only after RELEASE_GRACE_S with no new run; a run within it keeps the agent
    paused. Only the first release waits: noise that keeps ducking does not hold the agent."""
    import logging
    from types import SimpleNamespace

    from voicebridge.audio.detector import Decision
    from voicebridge.call.bargein import BargeIn
    from voicebridge.call.caller_pause import RELEASE_GRACE_S
    from voicebridge.call.context import CallContext
    from voicebridge.call.metrics import CallMetrics
    from voicebridge.config import BridgeConfig
    from voicebridge.testing import ManualClock

    clock, listener, resumes = ManualClock(), _ScriptedListener(), []
    outbound = SimpleNamespace(pause=lambda now: None, resume=lambda: resumes.append(clock.now), audible=True,
                               duck_stopped_audio=True)
    barge_in = BargeIn(CallContext(BridgeConfig(), CallMetrics(), logging.getLogger("t"), clock), outbound, None,
                       None, lambda *a: None, listener)

    def frame(at: float, decision=Decision.NONE, loud: bool = False) -> None:
        clock.now = at
        listener.frame(decision, loud)
        barge_in.hear(b"", at)
        barge_in.poll(at)

    frame(1.00, Decision.DUCK, loud=True)
    frame(1.02, Decision.RELEASE)
    frame(1.02 + RELEASE_GRACE_S - 0.01)
    assert resumes == []  # still paused: the word may go on
    frame(1.02 + RELEASE_GRACE_S + 0.01)
    assert resumes == [pytest.approx(1.43)]  # quiet all along: resumed
    frame(3.00, Decision.DUCK, loud=True)
    frame(3.04, Decision.RELEASE)
    frame(3.30, Decision.DUCK, loud=True)  # within the grace: the same utterance, still paused
    frame(3.34, Decision.RELEASE)  # the second release of this duck: at once
    assert resumes == [pytest.approx(1.43), 3.34]
    outbound.duck_stopped_audio = False
    frame(4.00, Decision.DUCK, loud=True)
    frame(4.02, Decision.RELEASE)  # a duck that stopped nothing the caller heard (none ahead at Twilio): at once
    assert resumes[-1] == 4.02


def test_after_a_duck_that_cleared_an_impulsive_noise_resumes_the_agent_at_once():
    """A click or a knock (``CallerLevel.impulse``) is no onset of words: its release does not wait
    RELEASE_GRACE_S (the caller would hear a gap of the grace's length for a 60 ms click); the
    next run that is no impulse still waits."""
    import logging
    from types import SimpleNamespace

    from voicebridge.audio.detector import Decision
    from voicebridge.call.bargein import BargeIn
    from voicebridge.call.caller_pause import RELEASE_GRACE_S
    from voicebridge.call.context import CallContext
    from voicebridge.call.metrics import CallMetrics
    from voicebridge.config import BridgeConfig
    from voicebridge.testing import ManualClock

    clock, listener, resumes = ManualClock(), _ScriptedListener(), []
    outbound = SimpleNamespace(pause=lambda now: None, resume=lambda: resumes.append(clock.now), audible=True,
                               duck_stopped_audio=True)
    barge_in = BargeIn(CallContext(BridgeConfig(), CallMetrics(), logging.getLogger("t"), clock), outbound, None,
                       None, lambda *a: None, listener)

    def frame(at: float, decision=Decision.NONE, loud: bool = False, impulse: bool = False) -> None:
        clock.now = at
        listener.frame(decision, loud)
        listener.level.impulse = impulse
        barge_in.hear(b"", at)
        barge_in.poll(at)

    frame(1.00, Decision.DUCK, loud=True)  # a click
    frame(1.02, loud=True)
    frame(1.06, Decision.RELEASE, impulse=True)
    assert resumes == [1.06]
    frame(3.00, Decision.DUCK, loud=True)  # "ex-" of "excuse me"
    frame(3.04, Decision.RELEASE)
    frame(3.04 + RELEASE_GRACE_S - 0.01)
    assert resumes == [1.06]
    frame(3.04 + RELEASE_GRACE_S + 0.01)
    assert resumes == [1.06, pytest.approx(3.45)]


def test_a_quiet_lines_soft_attack_clear_of_the_echo_ducks_four_db_sooner():
    """On a quiet line (voice checks on) the threshold reaches -43 dBFS; a frame the echo gate
    puts 6 dB or more over the loudest echo it can hold (or with nothing played) counts from
    -47: the caller's attack ducks a frame or two sooner. At the echo's level it does not (an
    echo peak the gate barely took for the caller would be a false pause, and a clear)."""
    def quiet_line() -> CallerLevel:
        level = CallerLevel(frames_needed=5, duck=True, dip_frames=1, voiced_needed=3)
        for i in range(100):  # two seconds of a digitally silent line: the floor is known
            assert level.feed(-100.0, i * 0.02, False, lambda: True) is Decision.NONE
        return level

    level = quiet_line()
    assert level.feed(-45.0, 2.0, True, lambda: True, headroom_db=10.0) is Decision.DUCK
    assert level.loud and level.feed(-44.0, 2.02, True, lambda: True, headroom_db=9.0) is Decision.NONE  # the run goes on
    level = quiet_line()
    assert level.feed(-45.0, 2.0, True, lambda: True, headroom_db=4.0) is Decision.NONE  # near the echo's level
    assert level.feed(-45.0, 2.02, True, lambda: True) is Decision.NONE  # nothing known of the echo: -43 stands
    assert level.feed(-48.0, 2.04, True, lambda: True, headroom_db=30.0) is Decision.NONE  # under the reach
    assert level.feed(-42.0, 2.06, True, lambda: True, headroom_db=0.0) is Decision.DUCK  # over -43 as before
    level = CallerLevel(frames_needed=5, duck=True, voiced_needed=0)  # no voice checks: no quiet-line reach at all
    for i in range(100):
        level.feed(-100.0, i * 0.02, False, lambda: True)
    assert level.feed(-40.0, 2.0, True, lambda: True, headroom_db=30.0) is Decision.NONE


def _decaying_burst(peak_dbfs: float, frames: int, step_db: float = 1.0) -> list[bytes]:
    """A voiceless burst at ``peak_dbfs`` decaying ``step_db`` per frame (a door's slam and rattle)."""
    return [_noise_frames(1, peak_dbfs - step_db * i, seed=10 + i)[0] for i in range(frames)]


def test_a_slam_is_released_once_it_decays_and_its_tail_is_ignored_but_a_voice_over_it_is_not():
    """A door: loud, voiceless, at its loudest at once, then a rattle decaying about 1 dB per frame
    for half a second. The duck waited ``MAX_UNVOICED`` frames for a voice (480 ms, then the
    release's grace: 0.9 s of answer paused); now it is released as an impulsive noise once three
    loud frames in a row are ``BURST_DECAY_DB`` under its early peak, and the rest of the tail,
    still over the threshold, neither ducks nor counts, until the line rises over it (the caller
    talking over the rattle) or goes quiet."""
    level = CallerLevel(frames_needed=5, duck=True, dip_frames=1, voiced_needed=3)
    decisions(level, [audio.SILENCE_FRAME] * 80, 0.0)
    slam = _decaying_burst(-10.0, 26)
    out = decisions(level, slam, 10.0)
    assert out[0] is Decision.DUCK
    assert 10 <= out.index(Decision.RELEASE) <= 13 and level.impulse  # about 9 dB down: 200-260 ms
    assert Decision.DUCK not in out[1:] and level.heard_noise(10.6)
    rise = decisions(level, _noise_frames(3, -14.0, seed=40), 10.52)  # 12 dB over the tail: a new sound
    assert rise[0] is Decision.DUCK


def test_a_sustained_voiceless_onset_is_not_released_as_a_decaying_burst():
    """"Sss... stop": a fricative rises to its level and holds it; a burst's decay test never fires
    on it, whatever its length (the duck waits for the voice as before)."""
    level = CallerLevel(frames_needed=5, duck=True, dip_frames=1, voiced_needed=3)
    decisions(level, [audio.SILENCE_FRAME] * 80, 0.0)
    hiss = _noise_frames(2, -34.0) + _noise_frames(14, -26.0, seed=5)
    out = decisions(level, hiss, 10.0)
    assert out[0] is Decision.DUCK and Decision.RELEASE not in out and not level.impulse





def _scripted_barge_in(duck_stopped_audio: bool):
    """A ``BargeIn`` over a scripted listener; the clock, what resumed, the metrics."""
    import logging
    from types import SimpleNamespace

    from voicebridge.call.bargein import BargeIn
    from voicebridge.call.context import CallContext
    from voicebridge.call.metrics import CallMetrics
    from voicebridge.config import BridgeConfig
    from voicebridge.testing import ManualClock

    clock, listener, resumed, metrics = ManualClock(), _ScriptedListener(), [], CallMetrics()
    outbound = SimpleNamespace(pause=lambda now: None, resume=lambda: resumed.append(True), audible=True,
                               duck_stopped_audio=duck_stopped_audio)
    barge_in = BargeIn(CallContext(BridgeConfig(), metrics, logging.getLogger("t"), clock), outbound, None,
                       None, lambda *a: None, listener)

    def frames(*script) -> None:
        for at, decision, loud in script:
            clock.now = at
            listener.frame(decision, loud)
            barge_in.hear(b"", at)
    return barge_in, listener, frames, resumed, metrics


@pytest.mark.parametrize("breath", [True, False])
def test_a_release_the_detector_took_for_breath_holds_the_agent_for_its_words_as_a_far_voice(breath):
    """A whispered "stop" over the echo: five loud frames, then the echo's level; the detector
    releases it, and says it was breath (``CallerLevel.breath``). The agent stays paused, held
    like a far voice (only a command's words interrupt); any other release resumes."""
    from voicebridge.audio.detector import Decision

    barge_in, listener, frames, resumed, metrics = _scripted_barge_in(duck_stopped_audio=False)
    frames(*[(1.0 + i * 0.02, Decision.DUCK if i == 0 else Decision.NONE, True) for i in range(5)])
    listener.level.breath = breath
    frames((1.12, Decision.RELEASE, False))
    assert listener.holds == ([(1.12, True, True, False)] if breath else [])
    assert resumed == ([] if breath else [True])
    assert metrics.snapshot()["breath_holds"] == (1 if breath else 0)


@pytest.mark.parametrize("heard", [True, False])
def test_a_released_run_the_model_heard_during_the_grace_is_held_for_its_words(heard):
    """A duck that cleared Twilio's buffer waits ``RELEASE_GRACE_S`` before it resumes (a soft
    onset's first frames end a run before the word does). If the model's VAD started on the run
    meanwhile, the agent stays paused as for a far voice: its words decide."""
    from voicebridge.audio.detector import Decision
    from voicebridge.call.caller_pause import RELEASE_GRACE_S

    barge_in, listener, frames, resumed, metrics = _scripted_barge_in(duck_stopped_audio=True)
    frames((1.0, Decision.DUCK, True), (1.02, Decision.NONE, True), (1.04, Decision.RELEASE, False))
    assert resumed == [] and listener.holds == []  # the grace
    listener.model_heard = heard
    barge_in.poll(1.04 + RELEASE_GRACE_S - 0.01)
    assert resumed == [] and listener.holds == []
    barge_in.poll(1.04 + RELEASE_GRACE_S)
    assert listener.holds == ([(1.04 + RELEASE_GRACE_S, True, True, True)] if heard else [])
    assert resumed == ([] if heard else [True])
    assert metrics.snapshot()["far_holds"] == (1 if heard else 0)
