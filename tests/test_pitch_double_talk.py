"""benchmarks/pitch_double_talk.py's per-frame check (the runs themselves take minutes)."""
from __future__ import annotations

import math

from benchmarks.pitch_double_talk import Recorder, flags
from voicebridge.audio import mulaw
from voicebridge.audio.echo import Verdict


def voice(hz: float, n_frames: int, start: int = 0) -> list[bytes]:
    """A buzzy periodic voice at ``hz``: a sawtooth, 160 samples a frame."""
    samples = [int(6000 * (((start + i) * hz / 8000) % 1.0 - 0.5)) for i in range(160 * n_frames)]
    data = mulaw.encode(samples)
    return [data[i:i + 160] for i in range(0, len(data), 160)]


def recorded(played_hz: float, heard_hz: float, delay_ms: int | None = 100) -> Recorder:
    rec = Recorder()
    for slot, frame in enumerate(voice(played_hz, 20)):
        rec.played[100 + slot] = frame
    lag = (delay_ms or 0) // 20
    for k, frame in enumerate(voice(heard_hz, 20)):
        rec.heard.append(((100 + lag + k) * 0.02, frame, Verdict.ECHO, delay_ms))
    return rec


def test_the_agents_own_pitch_at_the_delay_is_no_second_talker_and_another_pitch_is():
    same = [f for _, f in flags(recorded(125.0, 125.0), 0.06, 0.75)][2:]  # (the first frames lack a past)
    assert same and not any(same)
    other = [f for _, f in flags(recorded(125.0, 170.0), 0.06, 0.75)][2:]
    assert other and all(other)
    octave = [f for _, f in flags(recorded(125.0, 250.0), 0.06, 0.75)][2:]  # (a pitch estimate's octave slip)
    assert not any(octave)


def test_nothing_is_judged_before_the_delay_is_known_or_on_a_quiet_frame():
    assert {f for _, f in flags(recorded(125.0, 170.0, delay_ms=None), 0.06, 0.75)} == {None}
    rec = recorded(125.0, 170.0)
    rec.heard = [(at, frame, Verdict.QUIET, delay) for at, frame, _, delay in rec.heard]
    assert {f for _, f in flags(rec, 0.06, 0.75)} == {None}
