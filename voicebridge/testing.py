"""Fake sockets for driving MediaSession without a network (for tests and benchmarks).

Users can test their own integration code with these too: a ``MediaSession`` built on a
``FakeTwilio`` and a ``FakeRealtime.connector`` runs its real threads with no sockets.

``FakeTwilio`` is scripted inbound (``push``) and records every outbound message with its
monotonic send time. ``FakeRealtime`` is a programmable Realtime peer: it answers
``session.update`` and records every client event; tests push server events into it.
"""
from __future__ import annotations

import base64
import itertools
import json
import queue
import threading
import time
from typing import Any, Callable

from voicebridge.realtime_client import ConnectionClosed


class Closed(Exception):
    """What flask-sock/simple-websocket raise when the peer is gone."""


class FakeTwilio:
    def __init__(self, stream_sid: str = "MZ0123456789abcdef0123456789abcdef", call_sid: str = "CAtest") -> None:
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
            self.push({"event": "mark", "streamSid": self.stream_sid, "mark": msg["mark"]})
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
    def push(self, msg: "dict[str, Any] | str | bytes") -> None:
        self.inbound.put(json.dumps(msg) if isinstance(msg, dict) else msg)

    def connected_and_start(self, **params: str) -> None:
        self.push({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        self.push({"event": "start", "sequenceNumber": "1", "streamSid": self.stream_sid,
                   "start": {"streamSid": self.stream_sid, "accountSid": "ACtest", "callSid": self.call_sid,
                             "tracks": ["inbound"], "customParameters": params,
                             "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})

    def media(self, payload: bytes, n: int = 1) -> None:
        b64 = base64.b64encode(payload).decode()
        for _ in range(n):
            seq = next(self._seq)
            self.push({"event": "media", "sequenceNumber": str(seq + 1), "streamSid": self.stream_sid,
                       "media": {"track": "inbound", "chunk": str(seq), "timestamp": str(seq * 20),
                                 "payload": b64}})

    def stop(self) -> None:
        self.push({"event": "stop", "sequenceNumber": "999", "streamSid": self.stream_sid,
                   "stop": {"accountSid": "ACtest", "callSid": self.call_sid}})

    def disconnect(self) -> None:
        self.inbound.put(Closed)

    def messages(self, event: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [m for _, m in self.sent if event is None or m.get("event") == event]

    def media_frames(self) -> list[bytes]:
        return [base64.b64decode(m["media"]["payload"]) for m in self.messages("media")]

    def wait_for(self, predicate: Callable[["FakeTwilio"], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.005)
        return predicate(self)


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

    def close(self) -> None:
        self.close_calls += 1
        self.closed.set()

    # ---- scripting helpers
    def push(self, event: "dict[str, Any] | str | bytes") -> None:
        if isinstance(event, dict):
            event = dict(event)
            event.setdefault("event_id", f"event_{next(self._ids)}")
            event = json.dumps(event)
        self.inbound.put(event)

    def drop(self) -> None:
        self.inbound.put(ConnectionClosed)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.client_events if kind is None or e["type"] == kind]

    def response(self, response_id: str, item_id: str, chunks: list[bytes], done: bool = True) -> None:
        """A whole model response: created, item, audio deltas, and (optionally) the closing events."""
        self.push({"type": "response.created", "response": {"id": response_id, "status": "in_progress"}})
        self.push({"type": "response.output_item.added", "response_id": response_id, "output_index": 0,
                   "item": {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress"}})
        for chunk in chunks:
            self.delta(response_id, item_id, chunk)
        if done:
            self.finish(response_id, item_id)

    def delta(self, response_id: str, item_id: str, chunk: bytes) -> None:
        self.push({"type": "response.output_audio.delta", "response_id": response_id, "item_id": item_id,
                   "output_index": 0, "content_index": 0, "delta": base64.b64encode(chunk).decode()})

    def finish(self, response_id: str, item_id: str, status: str = "completed") -> None:
        self.push({"type": "response.output_audio.done", "response_id": response_id, "item_id": item_id,
                   "output_index": 0, "content_index": 0})
        self.push({"type": "response.done", "response": {"id": response_id, "status": status,
                                                          "status_details": None, "output": []}})


def start_session(session: Any) -> threading.Thread:
    """Run ``session.run()`` in a thread (as flask-sock's handler thread would)."""
    thread = threading.Thread(target=session.run, name="test-handler", daemon=True)
    thread.start()
    return thread
