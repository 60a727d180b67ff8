"""Sans-IO energy voice-activity detector for the local Realtime server.

OpenAI's ``server_vad`` is a model, but its contract is simple enough to imitate with
frame energy: ``threshold`` (0..1, higher = needs louder audio), ``prefix_padding_ms``
(audio kept before the detected onset) and ``silence_duration_ms`` (quiet time that ends a
turn). All positions are on the clock of *all audio appended this session*, which is what
``audio_start_ms``/``audio_end_ms`` mean on the wire, so the detector never looks at a
wall clock: it only counts bytes.

Threshold mapping (documented contract of the local server)::

    level_dbfs = -60 + 50 * threshold      # 0.0 -> -60 dBFS, 0.5 -> -35 dBFS, 1.0 -> -10 dBFS

A 20 ms frame is *speech* when its level is at or above that. Speech starts after
``start_frames`` consecutive speech frames (default 8 = 160 ms: like the real model-based
VAD, a click or a cough does not barge in) and stops after ``silence_duration_ms`` of consecutive non-speech frames.
"""
from __future__ import annotations

import array
import math
import sys
from dataclasses import dataclass
from typing import Callable, Literal

from .. import audio

FRAME_MS = audio.FRAME_MS


def threshold_to_dbfs(threshold: float) -> float:
    """Map server_vad ``threshold`` (clamped to 0..1) to a frame level in dBFS."""
    t = min(1.0, max(0.0, float(threshold)))
    return -60.0 + 50.0 * t


def _pcm16_dbfs(frame: bytes) -> float:
    """Level of a little-endian int16 frame in dBFS (used for ``audio/pcm`` input)."""
    samples = array.array("h")
    samples.frombytes(frame[: len(frame) - len(frame) % 2])
    if sys.byteorder != "little":
        samples.byteswap()
    if not samples:
        return audio.MIN_DBFS
    level = math.sqrt(sum(s * s for s in samples) / len(samples))
    if level <= 0.0:
        return audio.MIN_DBFS
    return max(audio.MIN_DBFS, 20.0 * math.log10(level / audio.FULL_SCALE))


@dataclass(frozen=True)
class InputFormat:
    """How to cut and measure input audio: bytes per millisecond and a frame level function."""

    bytes_per_ms: int
    level: Callable[[bytes], float]

    @property
    def frame_bytes(self) -> int:
        return self.bytes_per_ms * FRAME_MS


PCMU = InputFormat(bytes_per_ms=audio.BYTES_PER_MS, level=audio.dbfs)
PCM24K = InputFormat(bytes_per_ms=48, level=_pcm16_dbfs)


def input_format(fmt: "dict | None") -> InputFormat:
    """The InputFormat for a GA ``audio.input.format`` object (pcmu unless it says pcm)."""
    if fmt and fmt.get("type") == "audio/pcm":
        return PCM24K
    return PCMU


@dataclass(frozen=True)
class VadConfig:
    """The server_vad knobs this detector honours."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    start_frames: int = 8

    @property
    def level_dbfs(self) -> float:
        return threshold_to_dbfs(self.threshold)


@dataclass(frozen=True)
class VadEvent:
    """A detected edge. ``ms`` is on the session audio clock.

    For ``start`` it is the onset minus prefix padding (never before the session start
    or the last commit); for ``stop`` it is the position where the silence timer ran
    out, so it *includes* ``silence_duration_ms`` as OpenAI documents. ``speech_ms`` (stop
    only) is the duration from the first to the last speech frame of the turn.
    """

    kind: Literal["start", "stop"]
    ms: int
    speech_ms: int = 0


class EnergyVad:
    """Feed it input audio of any size; it frames into 20 ms and reports speech edges."""

    def __init__(self, config: VadConfig = VadConfig(), fmt: InputFormat = PCMU) -> None:
        self.config = config
        self.fmt = fmt
        self._pending = b""
        self._frames = 0  # whole frames measured so far
        self._floor_ms = 0  # start_ms never goes before this (session start / last commit)
        self._run = 0  # consecutive speech frames while not speaking
        self._quiet = 0  # consecutive quiet frames while speaking
        self._onset_ms = 0
        self._last_speech_end_ms = 0
        self.speaking = False

    @property
    def position_ms(self) -> int:
        """Milliseconds of audio measured (whole frames) since the session started."""
        return self._frames * FRAME_MS

    def push(self, data: bytes) -> list[VadEvent]:
        """Append audio; return the edges it completes, in order."""
        buf = self._pending + data
        size = self.fmt.frame_bytes
        events: list[VadEvent] = []
        whole = len(buf) - len(buf) % size
        for off in range(0, whole, size):
            event = self._frame(self.fmt.level(buf[off:off + size]) >= self.config.level_dbfs)
            if event is not None:
                events.append(event)
        self._pending = buf[whole:]
        return events

    def advance(self, data: bytes) -> None:
        """Append audio without detecting (turn detection off): only the clock moves."""
        buf = self._pending + data
        size = self.fmt.frame_bytes
        self._frames += len(buf) // size
        self._pending = buf[len(buf) - len(buf) % size:]
        self.reset_turn()

    def reset_turn(self) -> None:
        """Forget any speech in progress (after a manual commit or clear)."""
        self.speaking = False
        self._run = self._quiet = 0
        self._floor_ms = self.position_ms

    def _frame(self, loud: bool) -> "VadEvent | None":
        start_ms = self.position_ms
        self._frames += 1
        if not self.speaking:
            self._run = self._run + 1 if loud else 0
            if self._run == 1:
                self._onset_ms = start_ms
            if self._run >= self.config.start_frames:
                self.speaking, self._quiet = True, 0
                self._last_speech_end_ms = self.position_ms
                begin = max(self._floor_ms, self._onset_ms - self.config.prefix_padding_ms)
                return VadEvent("start", begin)
            return None
        if loud:
            self._quiet = 0
            self._last_speech_end_ms = self.position_ms
            return None
        self._quiet += 1
        if self._quiet * FRAME_MS >= self.config.silence_duration_ms:
            self.speaking, self._run = False, 0
            self._floor_ms = self.position_ms
            return VadEvent("stop", self.position_ms, self._last_speech_end_ms - self._onset_ms)
        return None
