"""The result of a simulated call, as measured at the caller (i.e. as Twilio would see it)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Interruption:
    """One barge-in, measured from the caller's speech onset."""

    onset_ms: float
    """Onset, ms since call start."""
    agent_talking: bool
    """Agent audio was audible at the onset."""
    clear_ms: "float | None"
    """Onset -> first ``clear`` received (None: the bridge never cleared)."""
    last_media_before_ms: "float | None"
    """Last ``media`` received before the onset -> onset."""
    last_media_after_ms: "float | None"
    """Onset -> last ``media`` of the interrupted utterance received after the onset (None: none)."""
    frames_after_onset: int
    """``media`` messages of the interrupted utterance received after the onset."""
    heard_after_ms: float
    """Agent audio the caller still heard after the onset (the talk-over)."""
    clears_after_ms: "list[float]" = field(default_factory=list)
    """Onset -> every ``clear`` received after it, before the agent's next utterance: a bridge
    may clear at its duck (the caller stops hearing it at once) and again when it confirms the
    barge-in; the wire does not say which."""
    heard_again_ms: "float | None" = None
    """Onset -> the agent's next audio the caller heard after the pause (None: none in the call).
    A duck's clear stops the agent at once; soon after, the agent talking again means the
    bridge let the answer go on (a backchannel resumed, or an interruption missed)."""
    heard_3s_ms: float = 0.0
    """Agent audio the caller heard in the 3 s after the onset, pauses and all."""


@dataclass
class MarkRecord:
    """A mark the bridge sent and when the caller echoed it."""

    name: str
    received_ms: float
    echoed_ms: "float | None" = None
    cleared: bool = False
    """Echoed because of a ``clear``, not because its audio played."""


@dataclass
class CallReport:
    """Everything measured during one simulated call; ``to_dict()`` is JSON-ready."""

    url: str
    stream_sid: str
    call_sid: str
    ended_by: str = "script"
    """``script`` | ``bridge`` (closed first) | ``max_duration`` | ``error``."""
    duration_ms: float = 0.0
    frames_sent: int = 0
    frames_received: int = 0
    frame_sizes: dict[int, int] = field(default_factory=dict)
    messages_received: dict[str, int] = field(default_factory=dict)
    invalid_messages: int = 0
    time_to_first_audio_ms: "float | None" = None
    utterances: int = 0
    gap_p50_ms: "float | None" = None
    gap_p99_ms: "float | None" = None
    gap_max_dev_ms: "float | None" = None
    """Largest |gap - 20 ms| between media messages within an utterance (lead excluded)."""
    bursts: int = 0
    """Gaps < 18 ms within utterances, not counting the send-ahead lead."""
    stalls: int = 0
    """Gaps > 40 ms while the agent is talking and the caller is quiet."""
    yields: int = 0
    """Gaps > 40 ms that start while the caller makes sound (the agent paused for the caller)."""
    ahead_frames: int = 0
    """Frames that arrived further ahead of real time than the lead plus 10 ms of jitter."""
    ahead_max_ms: float = 0.0
    """Furthest any frame arrived ahead of a real-time (20 ms per frame) clock."""
    lead_frames: int = 2
    heard_agent_ms: float = 0.0
    cleared_ms: float = 0.0
    """Agent audio discarded by ``clear`` before it played."""
    clears: int = 0
    marks_received: int = 0
    marks_echoed: int = 0
    marks_cleared: int = 0
    hangup_after_audio_ms: "float | None" = None
    """The bridge ended the call: its close -> the end of the agent audio the caller heard last
    (how long the line stayed open after the goodbye was heard)."""
    marks: list[MarkRecord] = field(default_factory=list)
    interruptions: list[Interruption] = field(default_factory=list)
    tone: "dict[str, Any] | None" = None
    events: list[dict[str, Any]] = field(default_factory=list)
    """Timeline: ``{"t": seconds since call start, "name": ..., "detail": {...}}``."""
    level_interval_ms: int = 20
    caller_dbfs: list[float] = field(default_factory=list)
    agent_dbfs: list[float] = field(default_factory=list)
    apologies: int = 0
    """Times the bridge's bundled apology started playing (the model was unavailable)."""
    dead_air: list[dict[str, Any]] = field(default_factory=list)
    """Waits for the agent that heard nothing: ``{"t": s since call start, "ms": how long}``."""
    record_path: "str | None" = None
    after_stream: "str | None" = None
    """What the carrier did once the bridge closed the stream, as the ``<Connect action>`` URL
    answered (``NextVerbs.describe``); None when the call was not placed through the webhook, the
    bridge did not end it, or its markup named no action."""
    next_verbs: "dict[str, Any] | None" = None
    """That answer's verbs, dialed destination and spoken text (``NextVerbs`` as a dict)."""
    errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """What a Twilio-conformant bridge should not do, whatever the machine's load: wrong
        frames or messages, an apology, dead air. Wall-clock pacing is :meth:`timing_problems`."""
        out = list(self.errors)
        odd = {size: n for size, n in self.frame_sizes.items() if size != 160}
        if odd:
            out.append(f"media payloads not 160 bytes: {odd}")
        if self.invalid_messages:
            out.append(f"{self.invalid_messages} invalid message(s) from the bridge")
        if self.apologies:
            out.append("the caller heard the bridge's apology (the model was unavailable)")
        if self.dead_air:
            longest = max(d["ms"] for d in self.dead_air) / 1000
            out.append(f"dead air: {len(self.dead_air)} wait(s) for the agent heard nothing (up to {longest:.1f} s)")
        if self.tone is not None and not self.tone.get("ok"):
            out.append(f"tone check failed: {self.tone}")
        return out

    def timing_problems(self) -> list[str]:
        """Pacing as measured by this machine's clock: stalls and frames ahead of real time.

        Figures, not a verdict on the call: a loaded machine (the simulator shares it with the
        bridge) stalls the caller's own threads too. Benchmarks and the ``timing`` test lane judge them.
        """
        out = []
        if self.stalls:
            out.append(f"{self.stalls} stall(s) > 40 ms while the agent talked")
        if self.ahead_frames:
            out.append(f"{self.ahead_frames} frame(s) ahead of real time beyond the send-ahead lead "
                       f"(up to {self.ahead_max_ms:.0f} ms ahead)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
