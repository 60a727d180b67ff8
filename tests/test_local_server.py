"""The local Realtime server over real sockets (127.0.0.1, port 0), with websocket-client and the
official openai SDK as clients. Every loop is bounded in count and time; servers always stop.
"""
from __future__ import annotations

import base64
import json
import time

import pytest
import websocket

from voicebridge.audio import mulaw as audio
from voicebridge.dev import tone, tts
from voicebridge.dev.local import LocalRealtimeServer
from realtime_types import server_event

PCMU_SESSION = {"type": "session.update", "session": {
    "type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}},
                                  "output": {"format": {"type": "audio/pcmu"}}}}}
TIMEOUT = 5.0


@pytest.fixture
def server():
    srv = LocalRealtimeServer(speed=20.0, live_tts=False, tone_seconds=0.5).start()
    try:
        yield srv
    finally:
        srv.stop()


def connect(srv: LocalRealtimeServer, **kw) -> websocket.WebSocket:
    return websocket.create_connection(srv.url, timeout=TIMEOUT, **kw)


def recv_event(ws: websocket.WebSocket) -> dict:
    event = json.loads(ws.recv())
    server_event(event)
    return event


def recv_until(ws: websocket.WebSocket, type_: str, limit: int = 2000) -> list[dict]:
    """Events up to and including the first of ``type_`` (bounded by count and the socket timeout)."""
    events = []
    deadline = time.monotonic() + TIMEOUT
    for _ in range(limit):
        assert time.monotonic() < deadline, f"no {type_} in time"
        events.append(recv_event(ws))
        if events[-1]["type"] == type_:
            return events
    raise AssertionError(f"no {type_} within {limit} events")


def send(ws: websocket.WebSocket, event: dict) -> None:
    ws.send(json.dumps(event))


def close_code(ws: websocket.WebSocket) -> int:
    for _ in range(100):
        opcode, frame = ws.recv_data_frame(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big")
    raise AssertionError("no close frame")


def audio_of(events: list[dict]) -> bytes:
    return b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta")


def test_url_port_and_greeting_response_over_the_wire(server):
    assert server.url == f"ws://127.0.0.1:{server.port}/v1/realtime?model=gpt-realtime"
    ws = connect(server)
    try:
        assert [recv_event(ws)["type"] for _ in range(2)] == ["session.created", "conversation.created"]
        send(ws, PCMU_SESSION)
        assert recv_event(ws)["type"] == "session.updated"
        send(ws, {"type": "response.create"})
        events = recv_until(ws, "response.done")
        assert audio_of(events) == tts.load_prompt("greeting")
        sizes = [len(base64.b64decode(e["delta"])) for e in events if e["type"] == "response.output_audio.delta"]
        assert len(set(sizes)) > 3 and not any(s % 160 == 0 for s in sizes[:-1])
    finally:
        ws.close()
    stats = server.stats()
    assert stats["connections"] == 1 and stats["responses"] == {"completed": 1}
    assert stats["client_events"] == {"session.update": 1, "response.create": 1}


def test_errors_and_binary_frames_keep_the_session(server):
    ws = connect(server)
    try:
        recv_until(ws, "conversation.created")
        ws.send_binary(b"\x01\x02")
        assert recv_event(ws)["error"]["code"] == "invalid_value"
        ws.send("{nope")
        assert recv_event(ws)["error"]["code"] == "invalid_json"
        send(ws, {"type": "response.cancel", "event_id": "c1"})
        err = recv_event(ws)["error"]
        assert err["code"] == "response_cancel_not_active" and err["event_id"] == "c1"
        send(ws, PCMU_SESSION)
        assert recv_event(ws)["type"] == "session.updated"
    finally:
        ws.close()
    assert server.stats()["errors"] == {"invalid_value": 1, "invalid_json": 1, "response_cancel_not_active": 1}


def test_barge_in_and_truncate_over_the_wire(server):
    ws = connect(server)
    try:
        recv_until(ws, "conversation.created")
        send(ws, PCMU_SESSION)
        recv_until(ws, "session.updated")
        loud = tts.load_prompt("caller_stop")  # speech: the server's VAD is a voice detector (a tone is no voice)
        quiet = bytes([audio.SILENCE_BYTE]) * 8000
        for chunk in (quiet[:2400], loud, quiet[:5600]):  # 0.3 s silence, speech, 0.7 s silence
            send(ws, {"type": "input_audio_buffer.append", "audio": base64.b64encode(chunk).decode()})
        item = recv_until(ws, "response.output_item.added")[-1]["item"]
        send(ws, {"type": "input_audio_buffer.append", "audio": base64.b64encode(loud).decode()})
        events = recv_until(ws, "response.done")
        assert events[-1]["response"]["status_details"]["reason"] == "turn_detected"
        assert "input_audio_buffer.speech_started" in [e["type"] for e in events]
        send(ws, {"type": "conversation.item.truncate", "item_id": item["id"], "content_index": 0, "audio_end_ms": 80})
        truncated = recv_until(ws, "conversation.item.truncated")[-1]
        assert truncated["audio_end_ms"] == 80
    finally:
        ws.close()
    assert server.stats()["truncations"] == [(item["id"], 80)]


def test_tone_mode_blocks_arrive_in_order():
    with LocalRealtimeServer(mode="tone", speed=0, tone_seconds=0.4) as srv:
        ws = connect(srv)
        try:
            recv_until(ws, "conversation.created")
            send(ws, PCMU_SESSION)
            send(ws, {"type": "response.create"})
            data = audio_of(recv_until(ws, "response.done"))
        finally:
            ws.close()
    assert [tone.identify_block(data[i:i + 160]) for i in range(0, len(data), 160)] == [(0, i) for i in range(20)]


def test_api_key_is_required_on_the_upgrade():
    with LocalRealtimeServer(api_key="sk-local", live_tts=False) as srv:
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            connect(srv)
        assert info.value.status_code == 401
        ws = connect(srv, header=["Authorization: Bearer sk-local"])
        try:
            assert recv_event(ws)["type"] == "session.created"
        finally:
            ws.close()
        assert srv.stats()["rejected_auth"] == 1


def test_beta_header_is_rejected_then_closed_4000(server):
    ws = connect(server, header=["OpenAI-Beta: realtime=v1"])
    try:
        events = [recv_event(ws) for _ in range(3)]
        assert [e["type"] for e in events] == ["session.created", "conversation.created", "error"]
        assert events[2]["error"]["code"] == "beta_api_shape_disabled"
        assert close_code(ws) == 4000
    finally:
        ws.close()


def test_stop_closes_open_connections_and_is_idempotent():
    srv = LocalRealtimeServer(live_tts=False).start()
    ws = connect(srv)
    try:
        recv_until(ws, "conversation.created")
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 3.0
        assert close_code(ws) == 1001
        srv.stop()
    finally:
        ws.close()
        srv.stop()


def test_official_sdk_holds_a_session(server):
    pytest.importorskip("websockets")
    import openai

    client = openai.OpenAI(api_key="x", websocket_base_url=f"ws://127.0.0.1:{server.port}/v1")
    seen = []
    with client.realtime.connect(model="gpt-realtime") as conn:
        conn.session.update(session={"type": "realtime", "audio": {"output": {"format": {"type": "audio/pcmu"}}}})
        conn.response.create()
        for event in conn:
            seen.append(event.type)
            if event.type == "response.done" or len(seen) > 2000:
                break
        conn.response.cancel()
        assert conn.recv().type == "error"
    assert seen[:3] == ["session.created", "conversation.created", "session.updated"]
    assert seen[-1] == "response.done"
