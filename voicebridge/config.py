"""One frozen configuration object per call: no globals, nothing shared between sessions."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

DEFAULT_MODEL = "gpt-realtime"
OPENAI_REALTIME_BASE = "wss://api.openai.com/v1/realtime"
DEFAULT_INSTRUCTIONS = (
    "You are a friendly, concise phone assistant. Speak naturally and keep answers short "
    "unless the caller asks for detail."
)
DEFAULT_GREETING = "Greet the caller briefly and ask how you can help."
CONTINUE_INSTRUCTIONS = (
    "You were interrupted by a noise on the line, not by the caller. Continue your previous "
    "answer exactly where it was cut off, without repeating what was already said and "
    "without mentioning the interruption."
)


@dataclass(frozen=True)
class BridgeConfig:
    """Everything a MediaSession needs to know; build one per call (``replace`` is cheap).

    Timing fields are in milliseconds. ``api_key`` is never logged (excluded from repr).
    """

    # OpenAI connection
    model: str = DEFAULT_MODEL
    openai_url: str | None = None  # full ws(s):// URL; default derives from model
    api_key: str | None = field(default=None, repr=False)
    connect_timeout_s: float = 10.0
    # Session behaviour
    instructions: str = DEFAULT_INSTRUCTIONS
    voice: str = "marin"
    greeting: str | None = DEFAULT_GREETING  # instructions for the first response; None = caller speaks first
    greeting_interruptible: bool = False
    transcription_model: str | None = "gpt-4o-mini-transcribe"
    vad_threshold: float = 0.5
    vad_prefix_padding_ms: int = 300
    vad_silence_duration_ms: int = 500
    vad_interrupt_response: bool = True
    # Outbound audio
    lead_ms: int = 40
    late_tolerance_ms: float = 5.0
    mark_every_frames: int = 5
    # Barge-in
    barge_in: bool = True
    barge_in_threshold_dbfs: float = -35.0
    barge_in_frames: int = 5
    duck: bool = True
    false_trigger_ms: int = 500
    continue_instructions: str = CONTINUE_INSTRUCTIONS
    # When the model is unreachable or lost: a spoken apology rather than dead air
    apology: bool = True
    apology_audio: bytes | None = field(default=None, repr=False)  # mu-law; None = bundled prompt
    # Safety and lifecycle
    safety_fuse_ms: int = 30000
    duck_fuse_ms: int = 1000
    twilio_receive_timeout_s: float = 0.2
    # A socket that has not sent Twilio's ``start`` within this is not a call: it is closed (and
    # its call slot freed). The Realtime service is only dialed once ``start`` has arrived.
    start_timeout_s: float = 5.0
    # Caller audio kept while the Realtime connection is not yet configured, then sent in order.
    inbound_buffer_ms: int = 5000
    # A Twilio send blocked longer than this (the peer stopped reading) ends the call; applied as
    # SO_SNDTIMEO on the socket and watched by voicebridge.twilio_link. Taken from the config the
    # session is built with (not from a per-call config). None or 0 = unbounded (not recommended).
    twilio_send_timeout_s: float | None = 2.0
    openai_receive_timeout_s: float = 0.2
    join_timeout_s: float = 5.0

    @property
    def realtime_url(self) -> str:
        """The WebSocket URL to dial: the override if given, else OpenAI's GA endpoint."""
        return self.openai_url or f"{OPENAI_REALTIME_BASE}?model={self.model}"

    @property
    def lead_frames(self) -> int:
        return max(0, round(self.lead_ms / 20))

    def replace(self, **changes: object) -> "BridgeConfig":
        """A copy with ``changes`` applied (per-call overrides)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
