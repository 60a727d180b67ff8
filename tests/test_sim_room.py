"""The room's sounds and the loudspeaker echo: calibrated, delayed, deterministic."""
from __future__ import annotations

import numpy as np
import pytest

from voicebridge.audio import mulaw as audio
from voicebridge.dev import tts
from voicebridge.dev.sim import room
from voicebridge.dev.sim.acoustics import Acoustics, NoiseBed


def _echo_of(chain: room.LoudspeakerEcho, data: bytes) -> np.ndarray:
    return np.array([v for i in range(0, len(data), 160) for v in chain.echo(data[i:i + 160])], dtype=float)


@pytest.mark.parametrize("echo_db", [-30, -20, -10])
def test_echo_comes_back_at_its_level_after_its_delay(echo_db):
    played = tts.load_prompt("long_answer")[:3 * 8000]
    chain = room.LoudspeakerEcho(echo_db, delay_ms=200, seed=4)
    echo = _echo_of(chain, played)
    assert np.abs(echo[:200 * 8 - 8]).max() == 0  # nothing before the delay
    level = 20 * np.log10(np.std(echo[1600:]) / np.std(room.ulaw_to_float(played)[:len(echo) - 1600]))
    assert level == pytest.approx(echo_db, abs=1.5)


def test_loud_playout_is_compressed_by_the_loudspeaker():
    chain = room.LoudspeakerEcho(-20, delay_ms=0, drive=3.0)
    quiet, loud = np.full(100, 1000.0), np.full(100, 20000.0)
    assert chain._saturate(quiet)[0] == pytest.approx(1000.0, rel=0.01)
    assert chain._saturate(loud)[0] < 0.7 * 20000


@pytest.mark.parametrize("kind", room.EVENT_KINDS)
def test_events_are_seeded_and_loud(kind):
    a, b = room.event(kind, 3), room.event(kind, 3)
    assert a == b and len(a) >= 160
    assert max(audio.dbfs(a[i:i + 160]) for i in range(0, len(a) - 159, 160)) > -20


def test_room_beds_plug_into_the_simulated_microphone():
    mic = Acoustics(None, NoiseBed("hum60", -40, seed=1))
    frames = [mic.frame(audio.SILENCE_FRAME, b"") for _ in range(50)]
    level = 10 * np.log10(np.mean([10 ** (audio.dbfs(f) / 10) for f in frames]))
    assert level == pytest.approx(-40, abs=1.5)
    x = room.bed("hum60", 1)[:8000]
    spectrum = np.abs(np.fft.rfft(x))
    assert spectrum[60] > 20 * np.median(spectrum) and spectrum[180] > 10 * np.median(spectrum)
