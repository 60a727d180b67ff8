"""Simulated Twilio caller: test any Media Streams bridge, local or deployed, like Twilio would.

>>> from voicebridge.sim import SimulatedCaller, parse_script
>>> report = SimulatedCaller("ws://127.0.0.1:5050/media", "wait_agent:5000,say:Hello,hangup").run()
"""
from .caller import SimulatedCaller, main
from .playout import PlayoutBuffer, Played
from .report import CallReport, Interruption, MarkRecord
from .script import (DEFAULT_SCRIPT, Click, Dtmf, Hangup, Interrupt, Say, Silence, Step, WaitForAgent,
                     WaitForAgentSilence, WaitForHangup, click, dtmf, format_script, hangup, interrupt,
                     parse_script, say, silence, wait_for_agent, wait_for_agent_silence, wait_for_hangup)

__all__ = [
    "SimulatedCaller", "main", "CallReport", "Interruption", "MarkRecord", "PlayoutBuffer", "Played",
    "DEFAULT_SCRIPT", "Step", "Silence", "Say", "Click", "WaitForAgent", "WaitForAgentSilence",
    "Interrupt", "Hangup", "Dtmf", "WaitForHangup", "silence", "say", "click", "wait_for_agent",
    "wait_for_agent_silence", "interrupt", "hangup", "dtmf", "wait_for_hangup", "parse_script", "format_script",
]
