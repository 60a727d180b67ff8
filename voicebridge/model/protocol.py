"""OpenAI Realtime GA codec (sans-IO): client events out, typed server events in.

Only the GA interface is spoken (``audio/pcmu`` both ways, ``response.output_audio.*``).
Server events the bridge does not act on are returned as ``Other`` so they can be counted
without being mistaken for errors; anything unparsable becomes a ``ProtocolError``.
"""
from __future__ import annotations

import base64
import binascii
import functools
import json
import math
from dataclasses import dataclass
from typing import Any, Union

from .. import peerjson
from ..config import BridgeConfig
from ..errors import ProtocolError

SIDE = "openai"

# Events whose absence of handling is deliberate (they carry nothing the bridge needs).
KNOWN_IGNORED = frozenset({
    "conversation.created", "conversation.item.added", "conversation.item.done",
    "conversation.item.created", "conversation.item.deleted", "conversation.item.retrieved",
    "input_audio_buffer.cleared",
    "input_audio_buffer.timeout_triggered", "rate_limits.updated",
    "response.content_part.added", "response.content_part.done",
    "response.output_text.delta", "response.output_text.done", "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "output_audio_buffer.started", "output_audio_buffer.stopped", "output_audio_buffer.cleared",
})

METADATA_KEY = "voicebridge"
"""``response.metadata`` key naming the bridge request behind a response (greeting, tool_result...)."""
ACTIVE_RESPONSE = "conversation_already_has_active_response"
SESSION_EXPIRED = "session_expired"  # the session hit the service's length cap: replaced, the call goes on
FATAL_ERROR_CODES = frozenset({SESSION_EXPIRED, "beta_api_shape_disabled", "invalid_api_key"})
COMMIT_EMPTY = "input_audio_buffer_commit_empty"  # a client commit with under 100 ms buffered
BENIGN_ERROR_CODES = frozenset({"response_cancel_not_active"})


# ---------------------------------------------------------------- client events

def _dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


def session_update(config: BridgeConfig) -> str:
    """GA ``session.update``: mu-law both ways (no transcoding), turn detection, voice, tools."""
    audio_in: dict[str, Any] = {"format": {"type": "audio/pcmu"}, "turn_detection": turn_detection(config)}
    if config.transcription_model:
        transcription: dict[str, Any] = {"model": config.transcription_model}
        if config.transcription_language:
            transcription["language"] = config.transcription_language
        if config.transcription_prompt:
            transcription["prompt"] = config.transcription_prompt
        audio_in["transcription"] = transcription
    audio_in["noise_reduction"] = {"type": config.noise_reduction} if config.noise_reduction else None
    voice: Any = {"id": config.voice} if config.voice.startswith("voice_") else config.voice
    session: dict[str, Any] = {
        "type": "realtime",
        "instructions": config.instructions,
        "output_modalities": ["audio"],
        "audio": {
            "input": audio_in,
            "output": {"format": {"type": "audio/pcmu"}, "voice": voice, "speed": config.speed},
        },
        "max_output_tokens": config.max_output_tokens if config.max_output_tokens is not None else "inf",
    }
    tools = config.all_tools
    if tools:
        session["tools"] = [t.definition() for t in tools]
        choice = config.tool_choice
        session["tool_choice"] = choice if choice in ("auto", "none", "required") else {"type": "function",
                                                                                          "name": choice}
    return _dumps({"type": "session.update", "session": session})


def turn_detection(config: BridgeConfig) -> dict[str, Any] | None:
    """The ``audio.input.turn_detection`` object (None: no VAD)."""
    if config.turn_detection is None:
        return None
    # The bridge asks for the response to a committed turn itself (``ModelEvents``): it knows
    # whether the turn was the caller, a backchannel, or the agent's own echo.
    common = {"create_response": False, "interrupt_response": config.vad_interrupt_response}
    if config.turn_detection == "semantic_vad":
        return {"type": "semantic_vad", "eagerness": config.vad_eagerness, **common}
    vad: dict[str, Any] = {"type": "server_vad", "threshold": config.vad_threshold,
                           "prefix_padding_ms": config.vad_prefix_padding_ms,
                           "silence_duration_ms": config.vad_silence_duration_ms, **common}
    if config.vad_idle_timeout_ms is not None:
        vad["idle_timeout_ms"] = config.vad_idle_timeout_ms
    return vad


def input_audio_append(b64_audio: str) -> str:
    """``input_audio_buffer.append`` with the caller's base64 payload exactly as Twilio sent it."""
    return '{"type":"input_audio_buffer.append","audio":' + json.dumps(b64_audio) + "}"


_APPEND_HEAD = '{"type":"input_audio_buffer.append","audio":"'


def audio_append(audio: bytes) -> str:
    """``input_audio_buffer.append`` of ``audio`` (mu-law), base64-encoded here: the same text as
    ``input_audio_append``, put together without the JSON encoder (base64's alphabet needs no
    escaping), which was two thirds of an append's Python work (ten a second per call)."""
    return _APPEND_HEAD + base64.b64encode(audio).decode("ascii") + '"}'


def response_create(instructions: str | None = None, kind: str | None = None, event_id: str | None = None,
                    out_of_band: bool = False) -> str:
    """``response.create``; ``kind`` is echoed back in ``response.metadata`` (which request made it).

    ``out_of_band`` responses (``conversation: "none"``, no input) are heard but leave nothing in
    the conversation: a filler while a tool runs.
    """
    event: dict[str, Any] = {"type": "response.create"}
    if event_id:
        event["event_id"] = event_id
    response: dict[str, Any] = {}
    if instructions:
        response["instructions"] = instructions
    if kind:
        response["metadata"] = {METADATA_KEY: kind}
    if out_of_band:
        response["conversation"] = "none"
        response["input"] = []
    if response:
        event["response"] = response
    return _dumps(event)


Item = dict[str, Any]
"""A conversation item, as the Realtime interface spells it (the replay builds lists of these)."""


def user_item(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def assistant_item(text: str) -> Item:
    return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}


def function_call_item(call_id: str, name: str, arguments: str) -> Item:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def function_call_output_item(call_id: str, output: str) -> Item:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def item_create(item: Item) -> str:
    """``conversation.item.create`` for ``item``."""
    return _dumps({"type": "conversation.item.create", "item": item})


def function_call_output(call_id: str, output: str) -> str:
    """A tool's result, as the conversation item the model reads."""
    return item_create(function_call_output_item(call_id, output))


def user_text(text: str) -> str:
    """A user message item with text (what the caller typed on the keypad, as words)."""
    return item_create(user_item(text))


def newest_items(items: list[Item], limit: int) -> list[Item]:
    """At most ``limit`` of ``items`` (in their order), chosen newest first: a function call's
    result only together with its call (a result whose call is gone is left out), a call still
    waiting for its result on its own, and tool items no more than half of ``limit``."""
    calls = {item["call_id"]: n for n, item in enumerate(items) if item["type"] == "function_call"}
    answered = {item["call_id"] for item in items if item["type"] == "function_call_output"}
    keep: set[int] = set()
    tool_share = limit // 2
    used = tools = 0
    for n in range(len(items) - 1, -1, -1):
        if used >= limit:
            break
        item = items[n]
        if item["type"] == "function_call_output":
            group = [n, calls[item["call_id"]]] if item["call_id"] in calls else []
        elif item["type"] == "function_call":
            group = [] if item["call_id"] in answered else [n]  # an answered call comes with its result
        else:
            keep.add(n)
            used += 1
            continue
        if group and tools + len(group) <= tool_share and used + len(group) <= limit:
            keep.update(group)
            used += len(group)
            tools += len(group)
    return [items[n] for n in sorted(keep)]


def buffer_commit() -> str:
    """``input_audio_buffer.commit``: the caller's audio so far becomes a user item and is
    transcribed; with server VAD on it is allowed but creates no response (protocol.md A5)."""
    return '{"type":"input_audio_buffer.commit"}'


def response_cancel(response_id: str | None = None) -> str:
    event: dict[str, Any] = {"type": "response.cancel"}
    if response_id:
        event["response_id"] = response_id
    return _dumps(event)


def item_truncate(item_id: str, audio_end_ms: int, content_index: int = 0) -> str:
    return _dumps({
        "type": "conversation.item.truncate",
        "item_id": item_id,
        "content_index": content_index,
        "audio_end_ms": int(audio_end_ms),
    })


# ---------------------------------------------------------------- server events

@dataclass(frozen=True)
class SessionReady:
    """``session.created`` or ``session.updated``."""
    type: str


@dataclass(frozen=True)
class SpeechStarted:
    item_id: str
    audio_start_ms: int


@dataclass(frozen=True)
class SpeechStopped:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True)
class BufferCommitted:
    """``input_audio_buffer.committed``: the caller's audio so far is now a conversation item."""
    item_id: str


@dataclass(frozen=True)
class ResponseCreated:
    response_id: str
    kind: str | None = None  # the bridge request behind it (response.metadata), None = the model's own


@dataclass(frozen=True)
class OutputItemAdded:
    response_id: str
    item_id: str
    item_type: str


@dataclass(frozen=True)
class AudioDelta:
    response_id: str
    item_id: str
    audio: bytes


@dataclass(frozen=True)
class AudioDone:
    response_id: str
    item_id: str


@dataclass(frozen=True)
class ResponseDone:
    response_id: str
    status: str
    reason: str | None
    usage: tuple[tuple[str, int], ...] = ()  # token counts, flattened (see USAGE_FIELDS)


@dataclass(frozen=True)
class FunctionCall:
    """A function call item the model finished (``response.output_item.done``)."""
    response_id: str
    item_id: str
    call_id: str
    name: str
    arguments: str
    status: str  # run it only if "completed"


@dataclass(frozen=True)
class AgentTranscriptDelta:
    """Words of what the model is saying (``response.output_audio_transcript.delta``)."""
    response_id: str
    item_id: str
    text: str


@dataclass(frozen=True)
class Transcript:
    """Caller speech recognised (``input_audio_transcription.delta`` or ``.completed``)."""
    item_id: str
    text: str
    final: bool


@dataclass(frozen=True)
class TranscriptFailed:
    """``input_audio_transcription.failed``: a caller turn that will have no text."""
    item_id: str


@dataclass(frozen=True)
class AgentTranscript:
    """What the model said (``response.output_audio_transcript.done``)."""
    response_id: str
    item_id: str
    text: str


@dataclass(frozen=True)
class ItemTruncated:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True)
class ServerError:
    code: str
    message: str
    error_type: str
    param: str | None
    event_id: str | None

    @property
    def fatal(self) -> bool:
        return self.code in FATAL_ERROR_CODES

    @property
    def benign(self) -> bool:
        return self.code in BENIGN_ERROR_CODES


@dataclass(frozen=True)
class Other:
    """A valid server event the bridge has no use for (counted, not logged as a problem)."""
    type: str
    known: bool


ServerEvent = Union[
    SessionReady, SpeechStarted, SpeechStopped, BufferCommitted, ResponseCreated, OutputItemAdded, AudioDelta,
    AudioDone, ResponseDone, FunctionCall, Transcript, AgentTranscript, AgentTranscriptDelta, ItemTruncated,
    ServerError, Other, ProtocolError,
]

USAGE_FIELDS = (
    ("total_tokens", ("total_tokens",)), ("input_tokens", ("input_tokens",)), ("output_tokens", ("output_tokens",)),
    ("input_text_tokens", ("input_token_details", "text_tokens")),
    ("input_audio_tokens", ("input_token_details", "audio_tokens")),
    ("input_cached_tokens", ("input_token_details", "cached_tokens")),
    ("output_text_tokens", ("output_token_details", "text_tokens")),
    ("output_audio_tokens", ("output_token_details", "audio_tokens")),
)
"""``response.done`` usage, flattened: our name, and the path to it in the GA usage object."""


_error = functools.partial(ProtocolError, SIDE)  # (kind, detail) -> this side's error


def _s(msg: dict[str, Any], key: str) -> str:
    value = msg.get(key)
    return value if isinstance(value, str) else ""


def _i(msg: dict[str, Any], key: str) -> int:
    value = msg.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return int(value) if math.isfinite(value) else 0  # JSON may carry NaN / Infinity / 1e400


def _audio_delta(msg: dict[str, Any]) -> ServerEvent:
    delta = msg.get("delta")
    if not isinstance(delta, str):
        return _error("missing_field", "output_audio.delta without a delta string")
    try:
        audio = base64.b64decode(delta, validate=True)
    except (binascii.Error, ValueError):
        return _error("bad_base64", f"output_audio.delta is not valid base64 ({len(delta)} chars)")
    return AudioDelta(_s(msg, "response_id"), _s(msg, "item_id"), audio)


def _response_done(msg: dict[str, Any]) -> ServerEvent:
    resp = _d(msg, "response")
    reason = _d(resp, "status_details").get("reason")
    return ResponseDone(_s(resp, "id"), _s(resp, "status") or "completed", reason if isinstance(reason, str) else None,
                        _usage(_d(resp, "usage")))


def _usage(usage: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    out = []
    for name, path in USAGE_FIELDS:
        node: Any = usage
        for key in path[:-1]:
            node = _d(node, key)
        value = _i(node, path[-1])
        if value > 0:
            out.append((name, value))
    return tuple(out)


def _d(msg: Any, key: str) -> dict[str, Any]:
    value = msg.get(key) if isinstance(msg, dict) else None
    return value if isinstance(value, dict) else {}


def _output_item_done(msg: dict[str, Any]) -> ServerEvent:
    item = _d(msg, "item")
    if item.get("type") != "function_call":
        return Other("response.output_item.done", True)
    return FunctionCall(_s(msg, "response_id"), _s(item, "id"), _s(item, "call_id"), _s(item, "name"),
                        _s(item, "arguments"), _s(item, "status") or "completed")


def _server_error(msg: dict[str, Any]) -> ServerEvent:
    err = msg.get("error") if isinstance(msg.get("error"), dict) else msg
    return ServerError(
        code=_s(err, "code") or _s(err, "type") or "unknown",
        message=_s(err, "message")[:300],
        error_type=_s(err, "type"),
        param=err.get("param") if isinstance(err.get("param"), str) else None,
        event_id=err.get("event_id") if isinstance(err.get("event_id"), str) else None,
    )


def _output_item_added(msg: dict[str, Any]) -> ServerEvent:
    item = msg.get("item") if isinstance(msg.get("item"), dict) else {}
    return OutputItemAdded(_s(msg, "response_id"), _s(item, "id"), _s(item, "type"))


def _response_created(msg: dict[str, Any]) -> ServerEvent:
    resp = _d(msg, "response")
    kind = _d(resp, "metadata").get(METADATA_KEY)
    return ResponseCreated(_s(resp, "id"), kind if isinstance(kind, str) else None)


_PARSERS = {
    "session.created": lambda m: SessionReady("session.created"),
    "session.updated": lambda m: SessionReady("session.updated"),
    "input_audio_buffer.speech_started": lambda m: SpeechStarted(_s(m, "item_id"), _i(m, "audio_start_ms")),
    "input_audio_buffer.speech_stopped": lambda m: SpeechStopped(_s(m, "item_id"), _i(m, "audio_end_ms")),
    "input_audio_buffer.committed": lambda m: BufferCommitted(_s(m, "item_id")),
    "response.created": _response_created,
    "response.output_item.added": _output_item_added,
    "response.output_audio.delta": _audio_delta,
    "response.output_audio.done": lambda m: AudioDone(_s(m, "response_id"), _s(m, "item_id")),
    "response.output_item.done": _output_item_done,
    "response.output_audio_transcript.delta": lambda m: AgentTranscriptDelta(
        _s(m, "response_id"), _s(m, "item_id"), _s(m, "delta")),
    "response.output_audio_transcript.done": lambda m: AgentTranscript(
        _s(m, "response_id"), _s(m, "item_id"), _s(m, "transcript")),
    "response.done": _response_done,
    "conversation.item.input_audio_transcription.delta": lambda m: Transcript(
        _s(m, "item_id"), _s(m, "delta"), False),
    "conversation.item.input_audio_transcription.completed": lambda m: Transcript(
        _s(m, "item_id"), _s(m, "transcript"), True),
    "conversation.item.input_audio_transcription.failed": lambda m: TranscriptFailed(_s(m, "item_id")),
    "conversation.item.truncated": lambda m: ItemTruncated(_s(m, "item_id"), _i(m, "audio_end_ms")),
    "error": _server_error,
}


def parse(message: "str | bytes | None") -> ServerEvent:
    """Parse one server message; never raises."""
    if isinstance(message, (bytes, bytearray)):
        return _error("binary_frame", f"unexpected binary frame ({len(message)} bytes)")
    if not isinstance(message, str):
        return _error("binary_frame", f"unexpected {type(message).__name__} frame")
    try:
        msg = peerjson.loads(message)
    except ValueError as exc:
        return _error("malformed_json", f"message is not JSON ({len(message)} chars): {str(exc)[:60]}")
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        return _error("missing_field", "message is not an object with a 'type'")
    kind = msg["type"]
    parser = _PARSERS.get(kind)
    if parser is None:
        return Other(kind, kind in KNOWN_IGNORED)
    return parser(msg)
