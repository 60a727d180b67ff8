"""Sans-IO state machine for one local Realtime (GA) connection.

The engine is the whole protocol of the local server without any I/O, so it can be unit
tested with an injected clock and reused by any transport:

* :meth:`RealtimeEngine.open` -> the greeting events (``session.created``, ``conversation.created``);
* :meth:`RealtimeEngine.handle` -> the events answering one client frame (text or bytes);
* :meth:`RealtimeEngine.poll` / :meth:`RealtimeEngine.next_deadline` -> timed output. Audio is
  generated faster than real time (``speed`` x) like the real service, so a response's
  deltas become due over time, and a bridge sees ``response.done`` long before the caller
  has heard the answer;
* :attr:`RealtimeEngine.close_code` -> set when the transport must close the socket (after
  sending the events already returned).

Event names and shapes follow the GA interface (docs/protocol sheet A3-A9), not any
particular client. Choices the public documentation does not pin down are marked "local
choice" below.
"""
from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import math
from typing import Any, Callable

from .agent import ScriptedAgent
from .conversation import Conversation, Item, item_from_client
from .events import ClientError, Event, EventMaker, Observer
from .generator import Generator, Response
from .recognizer import Recognizer
from .vad import VadConfig, input_format, make_vad

logger = logging.getLogger(__name__)

MIN_COMMIT_MS = 100
MAX_TURN_AUDIO = 30 * 8000  # bytes of a turn's mu-law kept for recognition (30 s)
SUPPORTED_FORMATS = ("audio/pcmu", "audio/pcm")
SESSION_KEYS = frozenset({
    "type", "model", "instructions", "output_modalities", "audio", "tools", "tool_choice",
    "max_output_tokens", "tracing", "truncation", "prompt", "include", "reasoning",
    "parallel_tool_calls", "id", "object", "expires_at",
})
DEFAULT_INSTRUCTIONS = (
    "You are the voicebridge local test agent. You greet the caller, give one long answer "
    "that is worth interrupting, then short replies."
)
# semantic_vad is imitated by the energy VAD; eagerness only changes the end-of-turn wait.
SEMANTIC_SILENCE_MS = {"low": 1200, "medium": 700, "auto": 700, "high": 350}


def server_vad_defaults() -> dict:
    """GA server_vad defaults (SDK-documented values)."""
    return {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500,
            "idle_timeout_ms": None, "create_response": True, "interrupt_response": True}


def semantic_vad_defaults() -> dict:
    return {"type": "semantic_vad", "eagerness": "auto", "create_response": True, "interrupt_response": True}


def default_session(session_id: str, model: str) -> dict:
    """The effective config a new connection starts with (what ``session.created`` shows)."""
    return {
        "type": "realtime", "object": "realtime.session", "id": session_id, "model": model,
        "output_modalities": ["audio"], "instructions": DEFAULT_INSTRUCTIONS,
        "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": 24000}, "transcription": None,
                      "noise_reduction": None, "turn_detection": server_vad_defaults()},
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin", "speed": 1.0},
        },
        "tools": [], "tool_choice": "auto", "max_output_tokens": "inf", "tracing": None,
        "truncation": "auto", "prompt": None, "include": None,
    }


class RealtimeEngine:
    """One connection's protocol state. Not thread-safe: drive it from one thread."""

    def __init__(
        self,
        agent: ScriptedAgent,
        *,
        speed: float = 4.0,
        chunk_bytes: tuple[int, int] = (80, 2000),
        seed: int = 0,
        model: str = "gpt-realtime",
        tag: str = "local",
        observer: "Observer | None" = None,
        max_session_seconds: float = 3600.0,
        recognizer: "Recognizer | None" = None,
        vad: str = "energy",
    ) -> None:
        lo, hi = chunk_bytes
        if not 1 <= lo <= hi:
            raise ValueError("chunk_bytes must be (lo, hi) with 1 <= lo <= hi")
        self.agent = agent
        self._events = EventMaker(tag, observer)
        self._max_session = max_session_seconds
        self.session = default_session(self._events.new_id("sess"), model)
        self.conversation_id = self._events.new_id("conv")
        self._conversation = Conversation()
        self._generator = Generator(self._events, agent, self._conversation, lambda: self.session,
                                    self.conversation_id, speed=speed, chunk_bytes=(lo, hi), seed=seed,
                                    on_finish=self._response_finished)
        self._vad = make_vad(self._vad_config() or VadConfig(), input_format(self._input_format()), vad)
        self._buffer_start_ms = 0  # session-audio clock position where the uncommitted buffer starts
        self._speech_item: "str | None" = None  # user item id announced by speech_started
        self._recognizer = recognizer or Recognizer()
        self._turn_audio = bytearray()  # input since the last commit, for recognition (pcmu only)
        self._opened = 0.0
        self._idle_deadline: "float | None" = None  # server_vad idle_timeout_ms, on the `now` clock
        self.close_code: "int | None" = None
        self.close_reason = ""

    # ----------------------------------------------------------------- public API
    def open(self, now: float) -> list[Event]:
        """Events sent as soon as the socket is accepted."""
        self._opened = now
        return [
            self._events.event("session.created", session=copy.deepcopy(self.session)),
            self._events.event("conversation.created",
                        conversation={"id": self.conversation_id, "object": "realtime.conversation"}),
        ]

    def reject(self, code: str, message: str, close_code: int = 4000) -> list[Event]:
        """A fatal error: one ``error`` event, then the transport closes with ``close_code``."""
        self.close_code, self.close_reason = close_code, message[:120]
        return [self._events.error(code, message)]

    def handle(self, message: "str | bytes", now: float) -> list[Event]:
        """Events answering one client frame (plus any output that became due)."""
        if self.close_code is not None:
            return []
        client_event_id = None
        try:
            event = self._parse(message)
            client_event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
            handler = self._handlers().get(event["type"])
            if handler is None:
                raise ClientError("invalid_value", f"Invalid value: '{event['type']}'. Unknown client event type.",
                                  "type")
            out = handler(event, now)
        except ClientError as exc:
            out = [self._events.error(exc.code, exc.message, exc.param, client_event_id)]
        return out + self.poll(now)

    def poll(self, now: float) -> list[Event]:
        """Output that is due at ``now`` (audio deltas, response completion, expiry)."""
        if self.close_code is not None:
            return []
        if now - self._opened >= self._max_session:
            minutes = int(self._max_session // 60)
            return self.reject("session_expired", f"Your session hit the maximum duration of {minutes} minutes.",
                               close_code=1001)
        return self._generator.emit_due(now) + self._idle_timeout(now)

    def next_deadline(self) -> "float | None":
        """Clock value at which :meth:`poll` next has something to do (None = nothing timed)."""
        if self.close_code is not None:
            return None
        deadline = self._opened + self._max_session
        due = self._generator.next_deadline()
        if due is not None:
            deadline = min(deadline, due)
        if self._idle_deadline is not None:
            deadline = min(deadline, self._idle_deadline)
        return None if math.isinf(deadline) else deadline

    @property
    def response_active(self) -> bool:
        return self._generator.current is not None

    @property
    def speed(self) -> float:
        return self._generator.speed

    def _parse(self, message: "str | bytes") -> dict:
        if isinstance(message, (bytes, bytearray)):
            self._events.client("<binary>")
            raise ClientError("invalid_value", "Binary frames are not supported; send JSON text frames.")
        try:
            event = json.loads(message)
        except ValueError as exc:
            self._events.client("<invalid json>")
            raise ClientError("invalid_json", f"The server could not parse the JSON event: {exc}") from None
        if not isinstance(event, dict):
            self._events.client("<not an object>")
            raise ClientError("invalid_value", "Client events must be JSON objects.")
        if not isinstance(event.get("type"), str):
            self._events.client("<missing type>")
            raise ClientError("missing_required_parameter", "Missing required parameter: 'type'.", "type")
        self._events.client(event["type"])
        return event

    def _handlers(self) -> dict[str, Callable[[dict, float], list[Event]]]:
        return {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit_cmd,
            "input_audio_buffer.clear": self._clear,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
            "conversation.item.create": self._item_create,
            "conversation.item.truncate": self._truncate,
            "conversation.item.delete": self._item_delete,
            "conversation.item.retrieve": self._item_retrieve,
            "output_audio_buffer.clear": self._output_buffer_clear,
        }

    # ----------------------------------------------------------------- session
    def _input_format(self) -> dict:
        return self.session["audio"]["input"]["format"]

    def _turn_detection(self) -> "dict | None":
        return self.session["audio"]["input"]["turn_detection"]

    def _vad_config(self) -> "VadConfig | None":
        td = self._turn_detection()
        if td is None:
            return None
        if td["type"] == "semantic_vad":
            return VadConfig(silence_duration_ms=SEMANTIC_SILENCE_MS.get(td.get("eagerness") or "auto", 700))
        values = {**server_vad_defaults(), **{k: v for k, v in td.items() if v is not None}}
        return VadConfig(threshold=float(values["threshold"]), prefix_padding_ms=int(values["prefix_padding_ms"]),
                         silence_duration_ms=int(values["silence_duration_ms"]))

    def _session_update(self, event: dict, now: float) -> list[Event]:
        patch = event.get("session")
        if not isinstance(patch, dict):
            raise ClientError("missing_required_parameter", "Missing required parameter: 'session'.", "session")
        if "type" not in patch:
            raise ClientError("missing_required_parameter", "Missing required parameter: 'session.type'.",
                              "session.type")
        if patch["type"] != "realtime":
            raise ClientError("invalid_value", "The local server only supports session.type 'realtime'.",
                              "session.type")
        for key in patch:
            if key not in SESSION_KEYS:
                raise ClientError("unknown_parameter", f"Unknown parameter: 'session.{key}'.", f"session.{key}")
        merged = copy.deepcopy(self.session)
        for key, value in patch.items():
            if key in ("id", "object", "expires_at", "model", "type"):
                continue  # read-only here (model is fixed by the URL)
            if key == "audio":
                merged["audio"] = _merge_audio(merged["audio"], value)
            else:
                merged[key] = copy.deepcopy(value)
        _validate_session(merged)
        self.session = merged
        self._vad.fmt = input_format(self._input_format())
        vad = self._vad_config()
        if vad is not None:
            self._vad.config = vad
        return [self._events.event("session.updated", session=copy.deepcopy(self.session))]

    # ----------------------------------------------------------------- input audio
    def _append(self, event: dict, now: float) -> list[Event]:
        data = _b64(event.get("audio"), "audio")
        self._turn_audio += data
        if len(self._turn_audio) > MAX_TURN_AUDIO:
            del self._turn_audio[:len(self._turn_audio) - MAX_TURN_AUDIO]
        if self._turn_detection() is None:
            self._vad.advance(data)
            return []
        out: list[Event] = []
        for edge in self._vad.push(data):
            if edge.kind == "start":
                out += self._speech_started(edge.ms, now)
            else:
                out += self._speech_stopped(edge.ms, edge.speech_ms, now)
        return out

    def _speech_started(self, start_ms: int, now: float) -> list[Event]:
        self._speech_item, self._idle_deadline = self._events.new_id("item"), None
        out = [self._events.event("input_audio_buffer.speech_started", audio_start_ms=start_ms, item_id=self._speech_item)]
        td = self._turn_detection() or {}
        if td.get("interrupt_response") and self._generator.current is not None:
            out += self._generator.finish("cancelled", "turn_detected")
        return out

    def _speech_stopped(self, end_ms: int, speech_ms: int, now: float) -> list[Event]:
        item_id = self._speech_item or self._events.new_id("item")
        out = [self._events.event("input_audio_buffer.speech_stopped", audio_end_ms=end_ms, item_id=item_id)]
        out += self._commit(item_id, end_ms, speech_ms)
        td = self._turn_detection() or {}
        if td.get("create_response"):
            if self._generator.current is None:
                out += self._generator.start(now, None, None, None)
            else:
                logger.info("turn ended while %s is active; not starting another response", self._generator.current.id)
        return out

    def _buffered_ms(self) -> int:
        return self._vad.position_ms - self._buffer_start_ms

    def _commit_cmd(self, event: dict, now: float) -> list[Event]:
        buffered = self._buffered_ms()
        if buffered < MIN_COMMIT_MS:
            raise ClientError(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at least {MIN_COMMIT_MS}ms "
                f"of audio, but buffer only has {buffered}ms of audio.")
        item_id = self._speech_item or self._events.new_id("item")
        if not self._vad.speaking:  # (no frame of it speech: a cough, the line; the service writes "")
            heard = self._vad.heard_frames > 0 or self._turn_detection() is None
            self._vad.reset_turn()
            return self._commit(item_id, self._vad.position_ms, buffered, heard=heard)
        # Inside a VAD activation the service goes on with it: the commit takes the turn's item id
        # and the activation's speech_stopped names another ("unless the client manually commits
        # the audio buffer during VAD activation", its reference for speech_started).
        out = self._commit(item_id, self._vad.position_ms, buffered)
        self._speech_item = self._events.new_id("item")
        return out

    def _commit(self, item_id: str, end_ms: int, speech_ms: int, turn: bool = True, heard: bool = True) -> list[Event]:
        """Turn the buffer up to ``end_ms`` into a user audio item (and maybe a transcript).

        ``turn=False`` (idle timeout) commits silence that the agent must not count as speech.
        ``heard=False``: the VAD judged none of it speech; unrecognised, it is transcribed as "".
        """
        self._buffer_start_ms, self._speech_item = end_ms, None
        item = Item(item_id, "message", "user", [{"type": "input_audio", "transcript": None}])
        previous = self._conversation.append(item)
        words = self._recognizer.words(bytes(self._turn_audio)) if input_format(self._input_format()).bytes_per_ms == 8 \
            else None
        self._turn_audio.clear()
        if turn:
            self.agent.user_turn(speech_ms, words)
        out = [
            self._events.event("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous),
            self._events.event("conversation.item.added", item=item.wire(), previous_item_id=previous),
            self._events.event("conversation.item.done", item=item.wire(), previous_item_id=previous),
        ]
        if self.session["audio"]["input"].get("transcription"):
            seconds = round(speech_ms / 1000, 1)
            transcript = words or (f"[speech {seconds:.1f} s]" if heard else "")
            item.content[0]["transcript"] = transcript
            out.append(self._events.event("conversation.item.input_audio_transcription.completed", item_id=item_id,
                                   content_index=0, transcript=transcript, logprobs=None,
                                   usage={"type": "duration", "seconds": seconds}))
        return out

    def _idle_timeout(self, now: float) -> list[Event]:
        """server_vad ``idle_timeout_ms``: silence after the last answer finished playing."""
        if self._idle_deadline is None or now < self._idle_deadline or self._generator.current is not None:
            return []
        self._idle_deadline = None
        td = self._turn_detection() or {}
        if self._vad.speaking or not td.get("idle_timeout_ms"):
            return []
        end_ms = self._vad.position_ms
        start_ms = max(self._buffer_start_ms, end_ms - int(td["idle_timeout_ms"]))
        item_id = self._events.new_id("item")
        out = [self._events.event("input_audio_buffer.timeout_triggered", audio_start_ms=start_ms, audio_end_ms=end_ms,
                           item_id=item_id)]
        out += self._commit(item_id, end_ms, 0, turn=False)
        self.agent.idle()
        return out + self._generator.start(now, None, None, None)

    def _response_finished(self, resp: Response, reason: "str | None") -> None:
        if reason != "turn_detected":  # the caller is talking: no idle timer
            self._arm_idle_timeout(resp)

    def _arm_idle_timeout(self, resp: Response) -> None:
        """Start the idle timer at the time the answer would finish playing in real time."""
        td = self._turn_detection()
        timeout_ms = td.get("idle_timeout_ms") if td and td["type"] == "server_vad" else None
        if timeout_ms:
            self._idle_deadline = resp.started + resp.item.audio_ms / 1000 + timeout_ms / 1000

    def _clear(self, event: dict, now: float) -> list[Event]:
        self._vad.reset_turn()
        self._buffer_start_ms, self._speech_item = self._vad.position_ms, None
        self._turn_audio.clear()
        return [self._events.event("input_audio_buffer.cleared")]

    # ----------------------------------------------------------------- responses
    def _response_create(self, event: dict, now: float) -> list[Event]:
        params = event.get("response") or {}
        if not isinstance(params, dict):
            raise ClientError("invalid_type", "Invalid type for 'response': expected an object.", "response")
        if self._generator.current is not None:
            raise ClientError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self._generator.current.id}. "
                "Wait until the response is finished before creating a new one.")
        instructions = params.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise ClientError("invalid_type", "Invalid type for 'response.instructions': expected a string.",
                              "response.instructions")
        modalities = params.get("output_modalities")
        if modalities is not None and modalities not in (["audio"], ["text"]):
            raise ClientError("invalid_value", "output_modalities must be ['audio'] or ['text'].",
                              "response.output_modalities")
        conversation = params.get("conversation", "auto")
        if conversation not in ("auto", "none"):
            raise ClientError("invalid_value", "response.conversation must be 'auto' or 'none'.",
                              "response.conversation")
        return self._generator.start(now, instructions, modalities, params.get("metadata"),
                                     out_of_band=conversation == "none")

    def _response_cancel(self, event: dict, now: float) -> list[Event]:
        resp = self._generator.current
        wanted = event.get("response_id")
        if resp is None or (wanted is not None and wanted != resp.id):
            raise ClientError("response_cancel_not_active", "Cancellation failed: no active response found")
        return self._generator.finish("cancelled", "client_cancelled")

    def _output_buffer_clear(self, event: dict, now: float) -> list[Event]:
        raise ClientError("invalid_value", "output_audio_buffer.clear is only supported for WebRTC and SIP sessions.",
                          "type")

    # ----------------------------------------------------------------- conversation items
    def _item_create(self, event: dict, now: float) -> list[Event]:
        raw = event.get("item")
        if not isinstance(raw, dict):
            raise ClientError("missing_required_parameter", "Missing required parameter: 'item'.", "item")
        item = item_from_client(raw, raw.get("id") or self._events.new_id("item"))
        if item.id in self._conversation:
            raise ClientError("duplicate_item_id", f"Item with id '{item.id}' already exists.", "item.id")
        previous = event.get("previous_item_id", self._conversation.last_id)
        if previous not in (None, "root") and previous not in self._conversation:
            raise ClientError("invalid_value", f"Previous item with id '{previous}' not found.", "previous_item_id")
        if item.type == "function_call_output":
            call = self._conversation.call(item.extra.get("call_id"))
            if call is None:
                raise ClientError("invalid_value", "No function call with this call_id in the conversation.",
                                  "item.call_id")
            self.agent.tool_output(call.extra.get("name", ""), str(item.extra.get("output", "")))
        self._conversation.add(item, previous)
        text = " ".join(str(c.get("text", "")) for c in item.content if isinstance(c, dict))
        if item.role == "user":
            self.agent.user_text(text)
        elif item.role == "assistant":
            self.agent.assistant_text(text)
        prev = self._conversation.previous_of(item.id)
        return [self._events.event("conversation.item.added", item=item.wire(), previous_item_id=prev),
                self._events.event("conversation.item.done", item=item.wire(), previous_item_id=prev)]

    def _item_delete(self, event: dict, now: float) -> list[Event]:
        item = self._conversation.get(event)
        if self._generator.current is not None and self._generator.current.item is item:
            raise ClientError("invalid_value", "Cannot delete an item that is still being generated.", "item_id")
        self._conversation.remove(item.id)
        return [self._events.event("conversation.item.deleted", item_id=item.id)]

    def _item_retrieve(self, event: dict, now: float) -> list[Event]:
        return [self._events.event("conversation.item.retrieved", item=self._conversation.get(event).wire())]

    def _truncate(self, event: dict, now: float) -> list[Event]:
        item = self._conversation.get(event)
        if item.role != "assistant" or item.type != "message":
            raise ClientError("invalid_value", "Only assistant message items can be truncated.", "item_id")
        if event.get("content_index", 0) != 0:
            raise ClientError("invalid_value", "Invalid content_index: the item has one content part (0).",
                              "content_index")
        end_ms = event.get("audio_end_ms")
        if not isinstance(end_ms, int) or isinstance(end_ms, bool) or end_ms < 0:
            raise ClientError("invalid_value", "audio_end_ms must be a non-negative integer.", "audio_end_ms")
        if end_ms > item.audio_ms:
            raise ClientError("invalid_value",
                              f"Audio content of {item.audio_ms}ms is already shorter than {end_ms}ms",
                              "audio_end_ms")
        out: list[Event] = []
        if self._generator.current is not None and self._generator.current.item is item:
            # Local choice: truncating the item still being generated stops its generation.
            out += self._generator.finish("cancelled", "client_cancelled")
        item.audio_ms = end_ms
        for part in item.content:
            if "transcript" in part:
                part["transcript"] = ""  # the server drops the transcript of a truncated item
        self.agent.interrupted(item.id, end_ms)
        out.append(self._events.event("conversation.item.truncated", item_id=item.id, content_index=0, audio_end_ms=end_ms))
        return out


# ----------------------------------------------------------------- helpers
def _b64(value: Any, param: str) -> bytes:
    if not isinstance(value, str):
        raise ClientError("missing_required_parameter", f"Missing required parameter: '{param}'.", param)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ClientError("invalid_value", f"Invalid '{param}': expected base64-encoded audio.", param) from None


def _merge_audio(current: dict, patch: Any) -> dict:
    """Merge ``session.audio``: nested objects replace, ``null`` clears, absent keeps."""
    if not isinstance(patch, dict):
        raise ClientError("invalid_type", "Invalid type for 'session.audio': expected an object.", "session.audio")
    merged = copy.deepcopy(current)
    for side in ("input", "output"):
        if side not in patch:
            continue
        fields = patch[side]
        if not isinstance(fields, dict):
            raise ClientError("invalid_type", f"Invalid type for 'session.audio.{side}'.", f"session.audio.{side}")
        for key, value in fields.items():
            if side == "input" and key == "turn_detection" and isinstance(value, dict):
                merged[side][key] = _merge_turn_detection(merged[side].get(key), value)
            else:
                merged[side][key] = copy.deepcopy(value)
    return merged


def _merge_turn_detection(current: "dict | None", patch: dict) -> dict:
    kind = patch.get("type", current["type"] if current else "server_vad")
    if current is not None and current.get("type") == kind:
        base = current
    elif kind == "semantic_vad":
        base = semantic_vad_defaults()
    else:
        base = server_vad_defaults()
    return {**base, **patch, "type": kind}


def _validate_session(session: dict) -> None:
    for side in ("input", "output"):
        fmt = session["audio"][side].get("format")
        param = f"session.audio.{side}.format"
        if not isinstance(fmt, dict) or fmt.get("type") not in SUPPORTED_FORMATS:
            raise ClientError("invalid_value", f"Unsupported audio format {fmt!r}: the local server supports "
                              "audio/pcmu and audio/pcm (24 kHz).", param)
        if fmt["type"] == "audio/pcm" and fmt.get("rate", 24000) != 24000:
            raise ClientError("invalid_value", "audio/pcm only supports rate 24000.", param + ".rate")
    td = session["audio"]["input"].get("turn_detection")
    if td is not None:
        if td.get("type") not in ("server_vad", "semantic_vad"):
            raise ClientError("invalid_value", "turn_detection.type must be 'server_vad' or 'semantic_vad'.",
                              "session.audio.input.turn_detection.type")
        threshold = td.get("threshold")
        if threshold is not None and not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
            raise ClientError("invalid_value", "threshold must be between 0.0 and 1.0.",
                              "session.audio.input.turn_detection.threshold")
        for key in ("prefix_padding_ms", "silence_duration_ms"):
            value = td.get(key)
            if value is not None and not (isinstance(value, int) and value >= 0):
                raise ClientError("invalid_value", f"{key} must be a non-negative integer.",
                                  f"session.audio.input.turn_detection.{key}")
    if session.get("output_modalities") not in (["audio"], ["text"]):
        raise ClientError("invalid_value", "output_modalities must be ['audio'] or ['text'].",
                          "session.output_modalities")
