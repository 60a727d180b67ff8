"""Simulated Twilio caller: test any Media Streams bridge, local or deployed, like Twilio would.

>>> from voicebridge.dev.sim import SimulatedCaller, parse_script
>>> report = SimulatedCaller("ws://127.0.0.1:5050/media", "wait_agent:5000,say:Hello,hangup").run()

A caller on a speakerphone in a noisy room (echo of the agent 20 dB down, office babble):

>>> from voicebridge.dev.sim import Acoustics, NoiseBed, Speakerphone
>>> room = Acoustics(Speakerphone(-20, delay_ms=60), NoiseBed("babble", -45, seed=1))
>>> report = SimulatedCaller("ws://127.0.0.1:5050/media", "wait_agent:5000,cough,hangup", acoustics=room).run()

Real synthetic speech from the committed corpus (``#clip``, ``#category``, ``#category:N``), music in
the room, a knock on the handset, and the echo of what the caller heard through a loudspeaker and a
room (``voicebridge.dev.sim.room``, numpy):

>>> from voicebridge.dev.sim.room import LoudspeakerEcho
>>> room = Acoustics(LoudspeakerEcho(-20, delay_ms=120), NoiseBed("music", -40, seed=1))
>>> script = "wait_agent:5000,interrupt:1200:#backchannel:2,sound:knock,interrupt:1500:#whisper,hangup"
>>> report = SimulatedCaller("ws://127.0.0.1:5050/media", script, acoustics=room).run()
"""
from .acoustics import NOISE_KINDS, Acoustics, NoiseBed, Speakerphone
from .caller import SimulatedCaller, main
from .playout import PlayoutBuffer, Played
from .report import CallReport, Interruption, MarkRecord
from .script import (DEFAULT_SCRIPT, Click, Cough, Dtmf, Hangup, Interrupt, Say, Silence, Sound, Step,
                     WaitForAgent, WaitForAgentSilence, WaitForHangup, click, cough, dtmf, format_script, hangup,
                     interrupt, parse_script, say, silence, sound, wait_for_agent, wait_for_agent_silence,
                     wait_for_hangup)

__all__ = [
    "SimulatedCaller", "main", "CallReport", "Interruption", "MarkRecord", "PlayoutBuffer", "Played",
    "Acoustics", "Speakerphone", "NoiseBed", "NOISE_KINDS",
    "DEFAULT_SCRIPT", "Step", "Silence", "Say", "Click", "Cough", "Sound", "sound", "WaitForAgent", "WaitForAgentSilence",
    "Interrupt", "Hangup", "Dtmf", "WaitForHangup", "silence", "say", "click", "cough", "wait_for_agent",
    "wait_for_agent_silence", "interrupt", "hangup", "dtmf", "wait_for_hangup", "parse_script", "format_script",
]
