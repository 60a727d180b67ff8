"""The response the local Realtime server is generating, streamed faster than real time.

Like the real service, a response's audio is produced ``speed`` times faster than it plays, in
irregular delta sizes, with its transcript tracking the audio, so a bridge sees
``response.done`` long before the caller has heard the answer.
"""
from __future__ import annotations

import base64
import copy
import json
import logging
import math
import random
from dataclasses import dataclass
from typing import Callable

from ...audio import mulaw as audio
from .agent import ScriptedAgent, Utterance
from .conversation import Conversation, Item
from .events import Event, EventMaker

logger = logging.getLogger(__name__)

FinishHook = Callable[["Response", "str | None"], None]


def chunk_plan(total: int, lo: int, hi: int, rng: random.Random) -> list[int]:
    """Irregular delta sizes covering ``total`` bytes: random in [lo, hi], never a multiple of 160.

    Real deltas do not line up with 20 ms frames, and a bridge that assumes they do is
    wrong; so the local server never sends frame-aligned chunks (except a short tail).
    """
    sizes: list[int] = []
    left = total
    while left > 0:
        size = rng.randint(lo, hi)
        if size % audio.FRAME_BYTES == 0:
            size += 1 if size < hi else -1
        size = max(1, min(size, left))
        sizes.append(size)
        left -= size
    return sizes


def _pcmu_to_pcm24k(data: bytes) -> bytes:
    """mu-law 8 kHz -> int16 LE 24 kHz by sample repetition (enough for a test voice)."""
    out = bytearray()
    for b in data:
        out += audio.ULAW_TABLE[b].to_bytes(2, "little", signed=True) * 3
    return bytes(out)


@dataclass
class Response:
    """The response being generated: what it says and how much is out."""

    id: str
    item: Item
    utterance: Utterance
    started: float
    text_mode: bool
    output_format: dict
    chunks: list[int]
    metadata: "dict | None" = None
    out_of_band: bool = False  # conversation "none": heard, but nothing joins the conversation
    sent: int = 0
    words_sent: int = 0

    @property
    def words(self) -> list[str]:
        return self.utterance.text.split()

    def transcript(self) -> str:
        return " ".join(self.words[: self.words_sent])

    def ids(self) -> dict:
        return {"response_id": self.id, "item_id": self.item.id, "output_index": 0, "content_index": 0}


class Generator:
    """Starts, streams and finishes responses (at most one at a time)."""

    def __init__(self, events: EventMaker, agent: ScriptedAgent, conversation: Conversation,
                 session: Callable[[], dict], conversation_id: str, *, speed: float,
                 chunk_bytes: tuple[int, int], seed: int, on_finish: FinishHook) -> None:
        self._events = events
        self._agent = agent
        self._conversation = conversation
        self._session = session
        self._conversation_id = conversation_id
        self.speed = speed
        self._chunk_bytes = chunk_bytes
        self._rng = random.Random(seed)
        self._on_finish = on_finish
        self.current: "Response | None" = None
        self.count = 0

    def start(self, now: float, instructions: "str | None", modalities: "list | None",
              metadata: "dict | None", out_of_band: bool = False) -> list[Event]:
        session = self._session()
        modalities = modalities or session["output_modalities"]
        rid, item_id = self._events.new_id("resp"), self._events.new_id("item")
        tools = {str(t.get("name")): t.get("parameters") or {} for t in session.get("tools") or ()
                 if isinstance(t, dict) and t.get("name")}  # name -> JSON schema: the agent may call any of them
        utterance = self._agent.respond(item_id, self.count, instructions, tools)
        self.count += 1
        text_mode = modalities == ["text"]
        part_type = "output_text" if text_mode else "output_audio"
        item = Item(item_id, "message", "assistant", [], status="in_progress")
        previous = None if out_of_band else self._conversation.append(item)
        chunks = [] if text_mode else chunk_plan(len(utterance.audio), *self._chunk_bytes, self._rng)
        resp = Response(rid, item, utterance, now, text_mode, copy.deepcopy(session["audio"]["output"]["format"]),
                        chunks, metadata, out_of_band)
        self.current = resp
        item.content = [{"type": part_type, "transcript": ""} if not text_mode else {"type": part_type, "text": ""}]
        added = item.wire()
        added["content"] = []
        event = self._events.event
        out = [
            event("response.created", response=self._response_obj(resp, "in_progress", [], None)),
            event("rate_limits.updated", rate_limits=[
                {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
                {"name": "tokens", "limit": 40000, "remaining": 36000, "reset_seconds": 6.0}]),
            event("response.output_item.added", response_id=rid, output_index=0, item=added),
        ]
        if not out_of_band:
            out.append(event("conversation.item.added", item=added, previous_item_id=previous))
        out.append(event("response.content_part.added", **resp.ids(), part=self._part(resp, final=False)))
        return out

    def next_deadline(self) -> "float | None":
        resp = self.current
        return None if resp is None else self._due_at(resp, resp.sent)

    def _due_at(self, resp: Response, offset: int) -> float:
        if resp.text_mode or not self.speed or math.isinf(self.speed):
            return resp.started
        return resp.started + offset / (audio.SAMPLE_RATE * self.speed)

    def emit_due(self, now: float) -> list[Event]:
        """Deltas due by ``now``; the closing events once all audio is out."""
        resp = self.current
        if resp is None:
            return []
        out: list[Event] = []
        ids = resp.ids()
        if resp.text_mode:
            resp.words_sent = len(resp.words)
            out.append(self._events.event("response.output_text.delta", **ids, delta=resp.utterance.text))
        while resp.chunks and self._due_at(resp, resp.sent) <= now:
            size = resp.chunks.pop(0)
            piece = resp.utterance.audio[resp.sent:resp.sent + size]
            resp.sent += size
            resp.item.audio_ms = audio.ms_of(resp.sent)
            out.append(self._events.event("response.output_audio.delta", **ids, delta=self._encode_out(resp, piece)))
            out += self._transcript_deltas(resp, ids)
        if not resp.chunks:
            out += self.finish("completed", None)
        return out

    def _encode_out(self, resp: Response, piece: bytes) -> str:
        if resp.output_format.get("type") == "audio/pcm":
            piece = _pcmu_to_pcm24k(piece)
        return base64.b64encode(piece).decode("ascii")

    def _transcript_deltas(self, resp: Response, ids: dict) -> list[Event]:
        """Words whose share of the audio has been sent (so transcript tracks the audio)."""
        words = resp.words
        total = max(1, len(resp.utterance.audio))
        due = len(words) if resp.sent >= total else len(words) * resp.sent // total
        if due <= resp.words_sent:
            return []
        delta = " ".join(words[resp.words_sent:due])
        if resp.words_sent:
            delta = " " + delta
        resp.words_sent = due
        return [self._events.event("response.output_audio_transcript.delta", **ids, delta=delta)]

    def finish(self, status: str, reason: "str | None") -> list[Event]:
        """Closing events of the current response (also when it is cancelled)."""
        resp = self.current
        if resp is None:
            return []
        self.current = None
        complete = status == "completed"
        resp.item.status = "completed" if complete else "incomplete"
        transcript = resp.transcript()
        resp.item.content = ([{"type": "output_text", "text": transcript}] if resp.text_mode
                             else [{"type": "output_audio", "transcript": transcript}])
        ids = resp.ids()
        event = self._events.event
        out: list[Event] = []
        if resp.text_mode:
            out.append(event("response.output_text.done", **ids, text=transcript))
        else:
            out.append(event("response.output_audio.done", **ids))
            out.append(event("response.output_audio_transcript.done", **ids, transcript=transcript))
        out += [
            event("response.content_part.done", **ids, part=self._part(resp, final=True)),
            event("response.output_item.done", response_id=resp.id, output_index=0, item=resp.item.wire()),
        ]
        if not resp.out_of_band:
            out.append(event("conversation.item.done", item=resp.item.wire(),
                             previous_item_id=self._conversation.previous_of(resp.item.id)))
        outputs = [resp.item.wire()]
        if complete:  # a cancelled answer never reaches its function calls
            out += self._calls(resp, outputs)
        details = None if complete else {"type": status, "reason": reason}
        out.append(event("response.done", response=self._response_obj(resp, status, outputs, details)))
        if not complete:
            self._agent.interrupted(resp.item.id, resp.item.audio_ms)
        self._on_finish(resp, reason)
        logger.info("response %s %s (%s ms audio)", resp.id, status, resp.item.audio_ms)
        return out

    def _calls(self, resp: Response, outputs: list) -> list[Event]:
        """The function calls the answer ends with, each streamed as the service streams them."""
        event = self._events.event
        out: list[Event] = []
        for index, (name, args) in enumerate(resp.utterance.calls, start=1):
            arguments = json.dumps(args)
            item = Item(self._events.new_id("item"), "function_call", None, [], status="in_progress",
                        extra={"call_id": self._events.new_id("call"), "name": name, "arguments": ""})
            at = {"response_id": resp.id, "output_index": index}
            ids = {**at, "item_id": item.id, "call_id": item.extra["call_id"]}
            previous = None if resp.out_of_band else self._conversation.append(item)
            out.append(event("response.output_item.added", **at, item=item.wire()))
            if not resp.out_of_band:
                out.append(event("conversation.item.added", item=item.wire(), previous_item_id=previous))
            out.append(event("response.function_call_arguments.delta", **ids, delta=arguments))
            item.extra["arguments"], item.status = arguments, "completed"
            out.append(event("response.function_call_arguments.done", **ids, arguments=arguments, name=name))
            out.append(event("response.output_item.done", **at, item=item.wire()))
            if not resp.out_of_band:
                out.append(event("conversation.item.done", item=item.wire(), previous_item_id=previous))
            outputs.append(item.wire())
        return out

    def _part(self, resp: Response, final: bool) -> dict:
        text = resp.transcript() if final else ""
        return {"type": "text", "text": text} if resp.text_mode else {"type": "audio", "transcript": text}

    def _response_obj(self, resp: Response, status: str, output: list, details: "dict | None") -> dict:
        session = self._session()
        obj = {
            "id": resp.id, "object": "realtime.response", "status": status, "status_details": details,
            "output": output,
            "conversation_id": None if resp.out_of_band else self._conversation_id,  # "none": in no conversation
            "output_modalities": ["text"] if resp.text_mode else ["audio"],
            "max_output_tokens": session.get("max_output_tokens", "inf"),
            "audio": {"output": {"format": resp.output_format, "voice": session["audio"]["output"]["voice"]}},
            "metadata": resp.metadata, "usage": None,
        }
        if status != "in_progress":
            obj["usage"] = _usage(resp)
        return obj


def _usage(resp: Response) -> dict:
    """Token usage in the GA shape; numbers are a plausible imitation (1 audio token / 50 ms)."""
    audio_tokens = 0 if resp.text_mode else audio.ms_of(resp.sent) // 50
    text_tokens = resp.words_sent
    output = audio_tokens + text_tokens
    return {"total_tokens": output + 20, "input_tokens": 20, "output_tokens": output,
            "input_token_details": {"text_tokens": 20, "audio_tokens": 0, "cached_tokens": 0},
            "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens}}
