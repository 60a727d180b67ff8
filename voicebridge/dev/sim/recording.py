"""Stereo call recording: left = what the caller said, right = what the caller heard.

Both channels are sample-aligned on the call clock (the caller sends one 160-byte frame per
20 ms tick from call start; the playout buffer produces heard audio per sample of the same
clock), so listening to the file shows exactly how much the agent talked over a barge-in.
"""
from __future__ import annotations

import array
import sys
import wave
from pathlib import Path

from ...audio.mulaw import SAMPLE_RATE, SILENCE_BYTE, ULAW_TABLE


class CallRecorder:
    """Accumulates both directions as mu-law; :meth:`write` converts to 16-bit PCM once."""

    def __init__(self) -> None:
        self.said = bytearray()
        self.heard = bytearray()

    def add_said(self, frame: bytes) -> None:
        self.said += frame

    def add_heard(self, audio: bytes) -> None:
        self.heard += audio

    def write(self, path: "str | Path") -> None:
        """Write a stereo 16-bit 8 kHz WAV; the shorter channel is padded with silence."""
        n = max(len(self.said), len(self.heard))
        left = bytes(self.said) + bytes([SILENCE_BYTE]) * (n - len(self.said))
        right = bytes(self.heard) + bytes([SILENCE_BYTE]) * (n - len(self.heard))
        pcm = array.array("h", bytes(4 * n))
        pcm[0::2] = array.array("h", (ULAW_TABLE[b] for b in left))
        pcm[1::2] = array.array("h", (ULAW_TABLE[b] for b in right))
        if sys.byteorder == "big":
            pcm.byteswap()
        with wave.open(str(path), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(pcm.tobytes())
