"""Soft callers over loud echo are heard in the agent's dips: the cases an outside review (rv4) found
that the echo gate's room tail under later audio (h21l, e35e4db) loses and main's rule catches.

Over -10 dB echo a soft voice (-30 dBFS) or an unvoiced onset ("s... stop") is under the echo of
the agent's syllables; the listener hears it where the agent dips for 100 ms (a frame 6.5 dB over
the echo of what plays at the delay, so clear of it, and ducked for). The tail of the louder
syllable just before the dip raises the prediction there (-4 dB a slot past the +-40 ms window),
so the frame was judged echo and the duck came only at a later dip, or never; counted from the
window's first slot (8 dB down just before the window, not 4) it is the caller's again. Each case
is the corpus's real speech, the answer's real audio through the harness's loudspeaker and room
(``room.LoudspeakerEcho``, RT60 0.3 s), a 250 ms echo delay learned over 3 s first; only
``EchoGate.room_tail`` differs between the two runs (False: main's rule)."""
from __future__ import annotations

import numpy as np
import pytest

from voicebridge import BridgeConfig
from voicebridge.audio import mulaw as audio
from voicebridge.audio.detector import Decision
from voicebridge.audio.listening import Listener
from voicebridge.dev import tts
from voicebridge.dev.sim import corpus, room

AGENT = room.ulaw_to_float(tts.load_prompt("long_answer"))
LEARN = 150  # frames of the answer's echo before the caller may speak (3 s: the delay and the loss learned)
LINE = np.random.default_rng(1).normal(0, 32768 * 10 ** (-60 / 20), len(AGENT))


def first_duck(clip: str, onset: int, room_tail: bool, frames: int = 13) -> int | None:
    """Frames from the caller's onset (``onset`` frames after ``LEARN``) to the first duck, within ``frames``."""
    listener = Listener(BridgeConfig())
    listener.gate.room_tail = room_tail
    echo = room.LoudspeakerEcho(-10.0, 250, seed=3)
    voice = room.ulaw_to_float(corpus.load(clip))
    at = LEARN + onset
    for i in range(at + frames):
        t = round(i * 0.02, 6)
        agent = AGENT[i * 160:(i + 1) * 160]
        listener.played(audio.dbfs(room.float_to_ulaw(agent)), t)
        mic = LINE[i * 160:(i + 1) * 160] + echo.process(agent)
        own = voice[(i - at) * 160:(i - at + 1) * 160] if i >= at else voice[:0]
        mic[:len(own)] += own
        decision = listener.hear(room.float_to_ulaw(mic), t, lambda: i >= LEARN).decision
        if i >= at and decision in (Decision.DUCK, Decision.CONFIRM):
            return i - at
    return None


@pytest.mark.parametrize("room_tail", [False, True])
def test_a_soft_voice_over_loud_echo_is_ducked_for_in_the_agents_dip(room_tail):
    duck = first_duck("soft_01_0", 52, room_tail)
    assert duck is not None and duck <= 12  # main: frame 11 (its lead-in is 140 ms); h21l: none in 1.5 s (rv4_gate_probe)


@pytest.mark.parametrize("room_tail", [False, True])
def test_an_unvoiced_onset_over_loud_echo_is_ducked_for_in_the_agents_dip(room_tail):
    duck = first_duck("unvoiced_03_0", 53, room_tail)
    assert duck is not None and duck <= 12  # main: frame 10; h21l: frame 35 (500 ms more of the agent)
