"""Outside review rv2 of h21h: real interruptions the bed rule misses (these assert the wanted
behaviour, so they FAIL on main at 3e183be and pass on 0cc389e where noted)."""
from voicebridge.audio.detector import Decision
import math

from voicebridge.audio import mulaw as audio
from voicebridge.audio.detector import CallerLevel

FRAME_S = 0.02


def _level() -> CallerLevel:  # (as tests/test_steadiness.py: standalone so it runs on 0cc389e too)
    level = CallerLevel(frames_needed=5, duck=True, dip_frames=1, voiced_needed=3, min_speech_frames=30, near_db=24.0)
    for i in range(80):
        level.feed(audio.dbfs(audio.SILENCE_FRAME), i * FRAME_S, True, lambda: True, audio.SILENCE_FRAME)
    return level


def _feed(level: CallerLevel, frames: list[bytes], start: float) -> list[Decision]:
    return [level.feed(audio.dbfs(f), start + i * FRAME_S, True, lambda: True, f) for i, f in enumerate(frames)]


def _glide(frames: int, dbfs: float, dips_every: int = 0, start: int = 0, levels: list[float] | None = None) -> list[bytes]:
    harmonics = [(h, 1.0 / math.sqrt(h)) for h in range(1, 16)]
    scale = 32768 * 10 ** (dbfs / 20) / math.sqrt(sum(a * a for _, a in harmonics) / 2)
    out, phase = [], 0.0
    for k in range(start, start + frames):
        gain = 0.1 if dips_every and k % dips_every == dips_every - 1 else 1.0
        if levels is not None:
            gain = 10 ** ((levels[k - start] - dbfs) / 20)
        samples = []
        for n in range(160):
            phase += 2 * math.pi * (140.0 + 80.0 * (k * 160 + n) / (160 * 100)) / 8000
            samples.append(int(scale * gain * sum(a * math.sin(h * phase) for h, a in harmonics)))
        out.append(audio.encode(samples))
    return out


def _enveloped(levels: list[float], start: int = 0) -> list[bytes]:
    """A voiced sound whose level follows ``levels`` frame by frame (the _glide voice)."""
    return _glide(len(levels), max(levels), start=start, levels=levels)


def _syllables(frames: int, dbfs: float, depth: float) -> list[float]:
    """Connected speech at ``dbfs`` with syllables 5 a second, each trough ``depth`` dB down over
    100 ms (no 9 dB within 2 frames, no 15 within 5 for depth < 15): a run-on talker, no pause."""
    return [dbfs - depth * (0.5 - 0.5 * math.cos(2 * math.pi * k / 10)) for k in range(frames)]


def test_a_run_on_caller_with_12_db_syllables_is_confirmed_not_released_as_a_bed():
    """Old (0cc389e): CONFIRM at frame 29 (580 ms). New: RELEASE as a bed at 900 ms, then deaf."""
    level = _level()
    out = _feed(level, _enveloped(_syllables(100, -19.0, 12.0)), 10.0)
    assert Decision.CONFIRM in out


def test_a_released_bed_does_not_mask_a_softer_caller_after_the_tv_stopped():
    """TV at -25 released as a bed at 0.9 s, switched off at 2.0 s; 0.5 s later the caller says a
    sentence at -28 with syllable dips of 20 dB (falls like a voice). Old: CONFIRM after 600 ms of
    it. New: every caller frame is under the bed's peak + 3 dB and renews the mask: no DUCK at all."""
    level = _level()
    _feed(level, _glide(100, -25.0), 10.0)  # new: released as a bed at 0.9 s; old: CONFIRM at 0.6 s
    quiet = _feed(level, [_glide(1, -90.0)[0]] * 25, 12.0)  # the TV off, 0.5 s of silence
    caller = _feed(level, _glide(60, -28.0, dips_every=10, start=200), 12.5)
    assert caller[0] is Decision.DUCK
    assert Decision.CONFIRM in caller


def test_the_mask_is_not_renewed_by_frames_far_under_the_bed():
    """The mask's own rule: frames 6+ dB under the bed's lowest level are not the bed going on."""
    from voicebridge.audio.steadiness import Steadiness
    s = Steadiness()
    for i, lv in enumerate([-25.0, -24.0, -26.0]):
        s.feed(lv, 10.0 + 0.02 * i)
        if i == 0:
            s.began(10.0, lv)
    s.remember(11.0)
    assert not s.masks(-34.0, 11.5)
