"""Fakes and message builders for driving a bridge without a network (tests, benchmarks, users).

* ``twilio_*`` build the exact JSON messages Twilio sends (``connected``, ``start``, ``media``,
  ``mark``, ``dtmf``, ``stop``); ``rt_*`` build Realtime GA server events.
* ``FakeTwilio`` is a scripted Twilio socket: inbound is pushed, every outbound message is
  recorded with its monotonic send time, marks can be echoed back like Twilio does.
* ``FakeRealtime`` is a programmable Realtime peer: it answers ``session.update`` and records
  every client event; a test pushes server events into it.
* ``BridgeCall`` runs a ``MediaSession`` on the two fakes in a thread, as a server would, and
  checks what every call must keep when it ends (threads joined, frames accounted for).

Users can test their own integration code with these too.
"""
from __future__ import annotations

import base64
import itertools
import json
import math
import queue
import threading
import time
from typing import Any, Callable

from voicebridge.audio.mulaw import FULL_SCALE, encode
from voicebridge.model.client import KEEPALIVE, ConnectionClosed

STREAM_SID = "MZ0123456789abcdef0123456789abcdef"
CALL_SID = "CA0123456789abcdef0123456789abcdef"
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"


def _loud_voice() -> bytes:
    """One 20 ms frame of a held vowel at 200 Hz (15 harmonics, falling 3 dB an octave), about
    -8 dBFS: loud, periodic and as bright as a voice. (A 4 kHz square wave is as loud and
    periodic, but as bright as a hiss: the barge-in detector takes no voice from it.)"""
    x = [sum(math.sin(2 * math.pi * 200 * k * n / 8000) / math.sqrt(k) for k in range(1, 16)) for n in range(160)]
    gain = FULL_SCALE * 10 ** (-6 / 20) / math.sqrt(sum(v * v for v in x) / len(x))
    return encode([max(-32767, min(32767, round(v * gain))) for v in x])


LOUD_VOICE = _loud_voice()
"""A caller talking over the agent, frame by frame (``twilio_media(LOUD_VOICE)``)."""


# ---------------------------------------------------------------------------- Twilio messages
def twilio_connected() -> dict[str, Any]:
    return {"event": "connected", "protocol": "Call", "version": "1.0.0"}


def twilio_start(stream_sid: str = STREAM_SID, call_sid: str = CALL_SID, params: dict[str, str] | None = None,
                 account_sid: str = ACCOUNT_SID) -> dict[str, Any]:
    return {"event": "start", "sequenceNumber": "1", "streamSid": stream_sid,
            "start": {"streamSid": stream_sid, "accountSid": account_sid, "callSid": call_sid,
                      "tracks": ["inbound"], "customParameters": dict(params or {}),
                      "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}


def twilio_media(payload: bytes, seq: int = 1, stream_sid: str = STREAM_SID) -> dict[str, Any]:
    """The ``seq``-th media message (chunk ``seq``, timestamp 20 ms per chunk)."""
    return {"event": "media", "sequenceNumber": str(seq + 1), "streamSid": stream_sid,
            "media": {"track": "inbound", "chunk": str(seq), "timestamp": str((seq - 1) * 20),
                      "payload": base64.b64encode(payload).decode("ascii")}}


def twilio_mark(name: str, stream_sid: str = STREAM_SID) -> dict[str, Any]:
    return {"event": "mark", "sequenceNumber": "0", "streamSid": stream_sid, "mark": {"name": name}}


def twilio_dtmf(digit: str, stream_sid: str = STREAM_SID) -> dict[str, Any]:
    return {"event": "dtmf", "sequenceNumber": "0", "streamSid": stream_sid,
            "dtmf": {"track": "inbound_track", "digit": digit}}


def twilio_stop(stream_sid: str = STREAM_SID, call_sid: str = CALL_SID) -> dict[str, Any]:
    return {"event": "stop", "sequenceNumber": "999", "streamSid": stream_sid,
            "stop": {"accountSid": ACCOUNT_SID, "callSid": call_sid}}


# ---------------------------------------------------------------------------- Realtime events
def rt_response_created(response_id: str, kind: str | None = None) -> dict[str, Any]:
    """``kind``: the bridge request this answers (what a server echoes from ``response.metadata``)."""
    response: dict[str, Any] = {"id": response_id, "status": "in_progress"}
    if kind:
        response["metadata"] = {"voicebridge": kind}
    return {"type": "response.created", "response": response}


def rt_item_added(response_id: str, item_id: str, item_type: str = "message") -> dict[str, Any]:
    return {"type": "response.output_item.added", "response_id": response_id, "output_index": 0,
            "item": {"id": item_id, "type": item_type, "role": "assistant", "status": "in_progress"}}


def rt_audio_delta(response_id: str, item_id: str, chunk: bytes) -> dict[str, Any]:
    return {"type": "response.output_audio.delta", "response_id": response_id, "item_id": item_id,
            "output_index": 0, "content_index": 0, "delta": base64.b64encode(chunk).decode("ascii")}


def rt_audio_done(response_id: str, item_id: str) -> dict[str, Any]:
    return {"type": "response.output_audio.done", "response_id": response_id, "item_id": item_id,
            "output_index": 0, "content_index": 0}


def rt_response_done(response_id: str, status: str = "completed", output: "list | None" = None,
                     usage: "dict | None" = None) -> dict[str, Any]:
    return {"type": "response.done", "response": {"id": response_id, "status": status, "status_details": None,
                                                  "output": list(output or []), "usage": usage}}


def rt_function_call(response_id: str, call_id: str, name: str, arguments: "dict | str",
                     status: str = "completed", output_index: int = 1) -> dict[str, Any]:
    """``response.output_item.done`` for a function call the model finished."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"type": "response.output_item.done", "response_id": response_id, "output_index": output_index,
            "item": {"id": f"item_{call_id}", "type": "function_call", "status": status, "call_id": call_id,
                     "name": name, "arguments": args}}


def rt_speech_started(item_id: str = "item_user", audio_start_ms: int = 0) -> dict[str, Any]:
    return {"type": "input_audio_buffer.speech_started", "audio_start_ms": audio_start_ms, "item_id": item_id}


def rt_speech_stopped(item_id: str = "item_user", audio_end_ms: int = 0) -> dict[str, Any]:
    return {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": audio_end_ms, "item_id": item_id}


def rt_agent_transcript(response_id: str, item_id: str, text: str) -> dict[str, Any]:
    return {"type": "response.output_audio_transcript.done", "response_id": response_id, "item_id": item_id,
            "output_index": 0, "content_index": 0, "transcript": text}


def rt_transcript(text: str, item_id: str = "item_user") -> dict[str, Any]:
    return {"type": "conversation.item.input_audio_transcription.completed", "item_id": item_id,
            "content_index": 0, "transcript": text}


def rt_error(code: str | None, message: str = "error", error_type: str = "invalid_request_error") -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "code": code, "message": message}}


# ---------------------------------------------------------------------------- fake sockets
class Closed(Exception):
    """What flask-sock/simple-websocket raise when the peer is gone."""


class FakeTwilio:
    """A scripted Twilio WebSocket (the interface ``MediaSession`` uses: send, receive, close)."""

    def __init__(self, stream_sid: str = STREAM_SID, call_sid: str = CALL_SID) -> None:
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.inbound: "queue.Queue[Any]" = queue.Queue()
        self.sent: list[tuple[float, dict[str, Any]]] = []
        self.raw_sent: list[str] = []
        self.closed = threading.Event()
        self.close_calls = 0
        self.lock = threading.Lock()
        self.fail_sends = False
        self.echo_marks = False
        self._seq = itertools.count(1)
        self.on_send: Callable[[dict[str, Any]], None] | None = None

    # ---- socket interface used by MediaSession
    def send(self, data: str) -> None:
        if self.fail_sends or self.closed.is_set():
            raise Closed("gone")
        msg = json.loads(data)
        with self.lock:
            self.sent.append((time.monotonic(), msg))
            self.raw_sent.append(data)
        if self.echo_marks and msg.get("event") == "mark":
            self.push(self.mark_echo(msg["mark"]["name"]))
        if self.on_send:
            self.on_send(msg)

    def receive(self, timeout: float | None = None) -> Any:
        try:
            item = self.inbound.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is Closed:
            self.closed.set()
            raise Closed("peer disconnected")
        return item

    def close(self, reason: Any = None, message: Any = None) -> None:
        self.close_calls += 1
        if self.closed.is_set():
            raise Closed("already closed")
        self.closed.set()

    # ---- scripting helpers
    def mark_echo(self, name: str) -> dict[str, Any]:
        """The carrier's echo of a mark we sent (once the audio before it has played)."""
        return twilio_mark(name, self.stream_sid)

    def push(self, msg: "dict[str, Any] | str | bytes") -> None:
        self.inbound.put(json.dumps(msg) if isinstance(msg, dict) else msg)

    def connected_and_start(self, **params: str) -> None:
        self.push(twilio_connected())
        self.push(twilio_start(self.stream_sid, self.call_sid, params))

    def media(self, payload: bytes, n: int = 1) -> None:
        for _ in range(n):
            self.push(twilio_media(payload, next(self._seq), self.stream_sid))
        self.media_pushed = getattr(self, "media_pushed", 0) + n  # what the session's inbound_frames will reach

    def stop(self) -> None:
        self.push(twilio_stop(self.stream_sid, self.call_sid))

    def disconnect(self) -> None:
        self.inbound.put(Closed)

    def messages(self, event: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [m for _, m in self.sent if event is None or m.get("event") == event]

    def media_frames(self) -> list[bytes]:
        return [base64.b64decode(m["media"]["payload"]) for m in self.messages("media")]

    def wait_for(self, predicate: Callable[["FakeTwilio"], bool], timeout: float = 5.0) -> bool:
        return wait_until(lambda: predicate(self), timeout)


# ---------------------------------------------------------------------------- Telnyx messages
TELNYX_STREAM_ID = "32de0dea-53cb-4b21-89a4-9e1819c043bc"
TELNYX_CALL_ID = "v3:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ"


def telnyx_start(stream_id: str = TELNYX_STREAM_ID, call_id: str = TELNYX_CALL_ID,
                 params: dict[str, str] | None = None) -> dict[str, Any]:
    """Telnyx's ``start`` frame for a PCMU stream (docs/carriers.md)."""
    return {"event": "start", "sequence_number": "1", "stream_id": stream_id,
            "start": {"user_id": "3e6f995f-85f7-4705-9741-53b116d28237", "call_control_id": call_id,
                      "call_session_id": "ff55a038-6f5d-11ef-9692-02420aeffb1f", "from": "+13122010094",
                      "to": "+13122123456", "tags": [], "client_state": None,
                      "custom_parameters": dict(params or {}),
                      "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}}}


def telnyx_media(payload: bytes, seq: int = 1, stream_id: str = TELNYX_STREAM_ID) -> dict[str, Any]:
    return {"event": "media", "sequence_number": str(seq + 1), "stream_id": stream_id,
            "media": {"track": "inbound", "chunk": str(seq), "timestamp": str((seq - 1) * 20),
                      "payload": base64.b64encode(payload).decode("ascii")}}


def telnyx_mark(name: str, stream_id: str = TELNYX_STREAM_ID) -> dict[str, Any]:
    return {"event": "mark", "sequence_number": "0", "stream_id": stream_id, "mark": {"name": name}}


def telnyx_dtmf(digit: str, stream_id: str = TELNYX_STREAM_ID) -> dict[str, Any]:
    return {"event": "dtmf", "sequence_number": "0", "stream_id": stream_id, "dtmf": {"digit": digit}}


def telnyx_stop(stream_id: str = TELNYX_STREAM_ID, call_id: str = TELNYX_CALL_ID) -> dict[str, Any]:
    return {"event": "stop", "sequence_number": "999", "stream_id": stream_id,
            "stop": {"user_id": "3e6f995f-85f7-4705-9741-53b116d28237", "call_control_id": call_id}}


class FakeTelnyx(FakeTwilio):
    """A scripted Telnyx media WebSocket: the same fake, speaking Telnyx's frames."""

    def __init__(self, stream_id: str = TELNYX_STREAM_ID, call_id: str = TELNYX_CALL_ID) -> None:
        super().__init__(stream_id, call_id)

    def mark_echo(self, name: str) -> dict[str, Any]:
        return telnyx_mark(name, self.stream_sid)

    def connected_and_start(self, **params: str) -> None:
        self.push({"event": "connected", "version": "1.0.0"})
        self.push(telnyx_start(self.stream_sid, self.call_sid, params))

    def media(self, payload: bytes, n: int = 1) -> None:
        for _ in range(n):
            self.push(telnyx_media(payload, next(self._seq), self.stream_sid))
        self.media_pushed = getattr(self, "media_pushed", 0) + n  # what the session's inbound_frames will reach

    def stop(self) -> None:
        self.push(telnyx_stop(self.stream_sid, self.call_sid))


class FakeRealtime:
    """A scripted Realtime connection (what ``connect(config)`` returns)."""

    def __init__(self, auto_session: bool = True) -> None:
        self.inbound: "queue.Queue[Any]" = queue.Queue()
        self.client_events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.close_calls = 0
        self.auto_session = auto_session
        self._ids = itertools.count(1)
        self.on_client_event: Callable[[dict[str, Any]], None] | None = None
        self.pings = 0
        self.answer_pings = True  # False: a connection gone silent (pings go unanswered)

    def connector(self, config: Any) -> "FakeRealtime":
        return self

    # ---- connection interface
    def send(self, text: str) -> None:
        if self.closed.is_set():
            raise ConnectionClosed("closed")
        event = json.loads(text)
        with self.lock:
            self.client_events.append(event)
        if self.auto_session and event["type"] == "session.update":
            self.push({"type": "session.updated", "session": event["session"]})
        if self.auto_session and event["type"] == "response.cancel" and event.get("response_id"):
            self.push(rt_response_done(event["response_id"], "cancelled"))  # what a server answers
        if self.on_client_event:
            self.on_client_event(event)

    def recv(self, timeout: float) -> Any:
        if self.closed.is_set():
            raise ConnectionClosed("closed")
        try:
            item = self.inbound.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is ConnectionClosed:
            self.closed.set()
            raise ConnectionClosed("peer closed")
        return item

    def ping(self) -> None:
        """A WebSocket ping: answered with a pong (``KEEPALIVE``) unless ``answer_pings`` is off."""
        if self.closed.is_set():
            raise ConnectionClosed("closed")
        self.pings += 1
        if self.answer_pings:
            self.inbound.put(KEEPALIVE)

    def close(self) -> None:
        self.close_calls += 1
        self.closed.set()
        self.inbound.put(ConnectionClosed)  # like a real socket: a reader blocked in recv wakes up

    # ---- scripting helpers
    def mark_echo(self, name: str) -> dict[str, Any]:
        """The carrier's echo of a mark we sent (once the audio before it has played)."""
        return twilio_mark(name, self.stream_sid)

    def push(self, event: "dict[str, Any] | str | bytes") -> None:
        if isinstance(event, dict):
            event = dict(event)
            event.setdefault("event_id", f"event_{next(self._ids)}")
            event = json.dumps(event)
        self.inbound.put(event)

    def drop(self) -> None:
        self.inbound.put(ConnectionClosed)

    def appended(self) -> bytes:
        """The caller audio forwarded so far, in order (appends of any size, joined)."""
        return b"".join(base64.b64decode(e["audio"]) for e in self.events("input_audio_buffer.append"))

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.client_events if kind is None or e["type"] == kind]

    def response(self, response_id: str, item_id: str, chunks: list[bytes], done: bool = True,
                 kind: str | None = None) -> None:
        """A whole model response: created, item, audio deltas, and (optionally) the closing events."""
        self.push(rt_response_created(response_id, kind))
        self.push(rt_item_added(response_id, item_id))
        for chunk in chunks:
            self.delta(response_id, item_id, chunk)
        if done:
            self.finish(response_id, item_id)

    def delta(self, response_id: str, item_id: str, chunk: bytes) -> None:
        self.push(rt_audio_delta(response_id, item_id, chunk))

    def finish(self, response_id: str, item_id: str, status: str = "completed") -> None:
        self.push(rt_audio_done(response_id, item_id))
        self.push(rt_response_done(response_id, status))

    def requested(self, kind: str) -> list[dict[str, Any]]:
        """The bridge's ``response.create`` events of ``kind`` (from their metadata)."""
        return [e for e in self.events("response.create")
                if (e.get("response") or {}).get("metadata", {}).get("voicebridge") == kind]


# ---------------------------------------------------------------------------- running a call
class ManualClock:
    """A clock a test moves by hand (``MediaSession(clock=...)``): decisions made on it are exact.

    Real waits (queue timeouts, the pacer's slot waits) still take real time; only what the
    session decides from ``now`` follows this clock.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self.now += seconds
            return self.now


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.005) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; its final value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def start_session(session: Any) -> threading.Thread:
    """Run ``session.run()`` in a thread (as a server's request thread would)."""
    thread = threading.Thread(target=session.run, name="test-handler", daemon=True)
    thread.start()
    return thread


class BridgeCall:
    """One ``MediaSession`` on a ``FakeTwilio`` and a ``FakeRealtime``, run in a thread."""

    def __init__(self, config: Any = None, twilio: FakeTwilio | None = None, openai: FakeRealtime | None = None,
                 connect: Any = None, **session_options: Any) -> None:
        from voicebridge.call.session import MediaSession

        self.twilio = twilio or FakeTwilio()
        self.openai = openai or FakeRealtime()
        self.session = MediaSession(self.twilio, config, connect or self.openai.connector, **session_options)
        self.thread: threading.Thread | None = None

    def run(self) -> "BridgeCall":
        """Start ``run()`` without sending anything (the test sends ``start`` itself)."""
        self.thread = start_session(self.session)
        return self

    def start(self, **params: str) -> "BridgeCall":
        """Start ``run()`` and send ``connected`` + ``start`` with ``params``."""
        self.run()
        self.twilio.connected_and_start(**params)
        return self

    def finish(self, stop: bool = True, limit: float = 10.0) -> dict[str, Any]:
        """End the call (Twilio ``stop`` unless ``stop=False``), join it and check the invariants."""
        if stop:
            self.twilio.stop()
        assert self.thread is not None, "finish() before start()"
        self.thread.join(limit)
        assert not self.thread.is_alive(), "the call did not end"
        for thread in self.session.threads:
            assert not thread.is_alive(), thread.name
        m = self.session.metrics
        assert m["frames_enqueued"] == m["frames_sent"] + m["frames_flushed"] + m["frames_dropped"], m
        assert m["accounting_ok"]
        return m

    def abandon(self) -> None:
        """Test cleanup: end the call whatever state it is in (bounded)."""
        self.session.close("test cleanup")
        if self.thread is not None:
            self.thread.join(5)
