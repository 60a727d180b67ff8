"""Fault injection over real sockets: refused, silent and hostile peers on both sides.

Servers bind 127.0.0.1 on free ports and are always stopped (see ``peers``). The module-wide
guard fails any test in which an exception escaped a thread or a traceback was logged.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest
import websocket
from flask import Flask
from flask_sock import Sock

from voicebridge import BridgeConfig, MediaSession
from voicebridge.model import client as realtime_client
from voicebridge import testing
from voicebridge.dev import tts
from voicebridge.serving.app import order_status
from voicebridge.dev.local.agent import ASK_ORDER, LET_ME_CHECK
from voicebridge.call.tools import tool
from voicebridge.dev.local import LocalRealtimeServer
from voicebridge.testing import BridgeCall, FakeRealtime, wait_until

from peers import (FRAME, RawServer, ScriptedRealtime, audio_response, closed_port, drain_until_closed,
                   open_session, send_event, wsgi_server)

pytestmark = pytest.mark.usefixtures("no_escaped_exceptions")

APOLOGY = b"\x11" * 800  # 100 ms = 5 frames stands in for the bundled prompt
CFG = BridgeConfig(greeting_instructions=None, barge_in=False, join_timeout_s=2.0, apology_audio=APOLOGY, connect_timeout_s=2.0,
                   twilio_send_timeout_s=0.3, reconnect_attempts=0)
APOLOGY_FRAMES = [APOLOGY[:160]] * 5


def real_call(bridge_call, config, **options) -> BridgeCall:
    """A call that dials with the real websocket-client connector."""
    call = bridge_call(config, connect=realtime_client.connect, **options)
    call.twilio.echo_marks = True
    return call


def assert_apology_heard(twilio):
    assert twilio.media_frames()[-5:] == APOLOGY_FRAMES, "the caller must hear the apology, not dead air"
    assert twilio.messages()[-1]["event"] == "mark"


# ============================================================================= OpenAI side
def test_openai_connection_refused_plays_apology(bridge_call, lines):
    call = real_call(bridge_call, CFG.replace(openai_url=f"ws://127.0.0.1:{closed_port()}/v1/realtime")).start()
    twilio = call.twilio
    m = call.finish(stop=False)
    assert m["close_reason"] == "openai unreachable"
    assert m["openai_errors"] == {"connect_failed": 1}
    assert lines("cannot reach the Realtime endpoint ws://127.0.0.1:") and lines("ConnectionRefusedError")
    assert_apology_heard(twilio)
    assert m["frames_sent"] == 5 == m["frames_enqueued"]


def test_openai_handshake_timeout_is_bounded(bridge_call, lines):
    silent = RawServer()
    try:
        call = real_call(bridge_call, CFG.replace(openai_url=silent.url, connect_timeout_s=0.3))
        t0 = time.monotonic()
        call.start()
        twilio = call.twilio
        m = call.finish(stop=False)
        elapsed = time.monotonic() - t0
    finally:
        silent.stop()
    assert elapsed < 3.0, elapsed
    assert m["close_reason"] == "openai unreachable" and m["openai_errors"] == {"connect_failed": 1}
    assert lines("cannot reach the Realtime endpoint ws://127.0.0.1:") and lines("WebSocketTimeoutException")
    assert_apology_heard(twilio)


def test_openai_handshake_401_wrong_key_is_not_retried(bridge_call, lines, caplog):
    """A wrong key is not a network failure: one dial, the server's message, the apology at once."""
    server = LocalRealtimeServer(mode="tone", speed=20.0, api_key="k").start()
    try:
        call = real_call(bridge_call, CFG.replace(openai_url=server.url, api_key="wrong", reconnect_attempts=4,
                                                  reconnect_backoff_ms=2000)).start()
        twilio = call.twilio
        m = call.finish(stop=False)
        assert server.stats()["rejected_auth"] == 1  # not redialed 4 more times
    finally:
        server.stop()
    assert m["close_reason"] == "openai auth failed" and m["openai_errors"] == {"auth_failed": 1}
    lines = lines("the Realtime endpoint refused the credentials (HTTP 401: Incorrect API key provided.)")
    assert lines and "wrong" not in " ".join(r.getMessage() for r in caplog.records)
    assert_apology_heard(twilio)


def test_openai_handshake_404_wrong_url_is_not_retried(bridge_call, lines):
    """(A new user's wrong OPENAI_REALTIME_URL: five dials and 4.2 s of silence before the
    apology.) No redial can change a 404: one dial, what to check, the apology at once."""
    missing = RawServer(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found")
    try:
        call = real_call(bridge_call, CFG.replace(openai_url=missing.url, reconnect_attempts=4,
                                                  reconnect_backoff_ms=2000)).start()
        twilio = call.twilio
        m = call.finish(stop=False)
        dials = len(missing.conns)
    finally:
        missing.stop()
    assert dials == 1 and m["model_redials"] == 0
    assert m["close_reason"] == "openai endpoint refused" and m["openai_errors"] == {"endpoint_refused": 1}
    assert lines("refused the connection (HTTP 404: not found): check OPENAI_REALTIME_URL")
    assert_apology_heard(twilio)


def test_openai_handshake_403(bridge_call, lines):
    body = b'{"error":{"code":"forbidden","message":"' + b"Your organization is not allowed to use this model. " * 6 + b'"}}'
    forbidden = RawServer(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: "
                          + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    try:
        call = real_call(bridge_call, CFG.replace(openai_url=forbidden.url)).start()
        twilio = call.twilio
        m = call.finish(stop=False)
    finally:
        forbidden.stop()
    assert m["close_reason"] == "openai auth failed" and m["openai_errors"] == {"auth_failed": 1}
    lines = lines("refused the credentials (HTTP 403: Your organization")
    assert lines and lines[0].count("not allowed to use this model") == 6  # whole, not cut at 200 characters
    assert_apology_heard(twilio)


def test_openai_abrupt_close_mid_response_is_replaced_over_a_real_socket(bridge_call, lines):
    """The first session's TCP just ends mid-answer; a second one replays, resumes the answer."""
    dials = []

    def script(ws):
        dials.append(ws)
        if not open_session(ws):
            return
        if len(dials) == 1:
            audio_response(ws, 30, done=False)
            time.sleep(0.15)
            ws.sock.shutdown(socket.SHUT_RDWR)  # no close frame: the TCP connection just ends
            return
        while (msg := ws.receive(timeout=3)) is not None:  # the second session: answer the resume
            if json.loads(msg).get("type") == "response.create":
                audio_response(ws, 2, rid="resp_2", iid="item_2")
        drain_until_closed(ws)

    peer = ScriptedRealtime(script)
    try:
        call = real_call(bridge_call, CFG.replace(openai_url=peer.url, reconnect_attempts=1)).start()
        assert call.twilio.wait_for(lambda t: len(t.media_frames()) >= 30 + 2, timeout=8)
        m = call.finish()
    finally:
        peer.stop()
    assert m["close_reason"] == "twilio stop" and m["model_lost"] == 1 and len(dials) == 2
    assert len(lines("Realtime connection lost")) == 1 and not lines("model unavailable")
    assert m["frames_flushed"] == 0  # the first answer, as received, was heard in full


def test_sessions_that_keep_dropping_end_in_the_apology(bridge_call, lines):
    with LocalRealtimeServer(mode="tone", speed=20.0, tone_seconds=0.2) as server:
        call = real_call(bridge_call, CFG.replace(openai_url=server.url, reconnect_attempts=1,
                                                  reconnect_backoff_ms=10)).start()
        assert wait_until(lambda: server.stats()["active_connections"] == 1)
        server.drop_connections()  # lost once: reconnected
        assert wait_until(lambda: call.session.metrics["model_lost"] == 1)
        assert wait_until(lambda: server.stats()["active_connections"] == 1)
        server.drop_connections()  # lost again within the minute: more losses than attempts
        m = call.finish(stop=False)
    assert m["close_reason"] == "openai disconnected" and m["model_lost"] == 1
    assert_apology_heard(call.twilio)


def test_openai_garbage_over_a_real_socket_is_ignored(bridge_call, lines):
    def script(ws):
        if open_session(ws):
            ws.send("this is not json")
            ws.send(b"\x00\x01binary")
            send_event(ws, {"type": "response.brand_new_thing", "event_id": "x"})
            audio_response(ws, 3)
            drain_until_closed(ws)

    peer = ScriptedRealtime(script)
    try:
        call = real_call(bridge_call, CFG.replace(openai_url=peer.url)).start()
        twilio = call.twilio
        assert twilio.wait_for(lambda t: len(t.messages("media")) == 3)
        m = call.finish()
        assert peer.done.wait(3)
    finally:
        peer.stop()
    assert m["close_reason"] == "twilio stop"
    assert m["protocol_errors"] == {"openai.malformed_json": 1, "openai.binary_frame": 1}
    assert m["openai_unknown_events"] == 1
    assert twilio.media_frames() == [FRAME] * 3
    assert len(lines("ignored bad Realtime message")) == 2
    assert lines("unknown Realtime event type 'response.brand_new_thing'")


def test_session_expired_from_the_local_server_is_replaced_and_the_call_goes_on(bridge_call, lines):
    """Replaced, and within bounds (issue 22): one dial per replacement, each after its back-off
    (doubling from the first), at most ``reconnect_budget`` of them, one log line per kind."""
    config = CFG.replace(reconnect_backoff_ms=250, reconnect_budget=5)
    with LocalRealtimeServer(mode="tone", speed=20.0, max_session_seconds=0.5) as server:
        call = real_call(bridge_call, config.replace(openai_url=server.url)).start()
        # the second replacement dialled too (its back-off is 500 ms: a stop before it cuts it short,
        # which a loaded host made happen: 2 dials for 2 expiries)
        assert wait_until(lambda: call.session.metrics["model_expired"] >= 2 and server.stats()["connections"] >= 3,
                          timeout=8)
        call.twilio.media(b"\xff" * 160, n=5)
        m = call.finish()
        dials = server.stats()["connections"]
    assert m["close_reason"] == "twilio stop" and 3 <= dials <= 1 + config.reconnect_budget
    assert dials in (m["model_expired"] + 1, m["model_expired"] + 2)  # + a dial the stop may have cut short
    assert m["openai_errors"]["session_expired"] >= 2 and not lines("model unavailable")
    for n, gap_ms in enumerate(m["reconnect_gaps_ms"]):  # the wait, then the dial: never at once
        assert gap_ms >= 0.75 * config.reconnect_backoff_ms * 2 ** n, m["reconnect_gaps_ms"]
    assert len(lines("Realtime session expired")) == 1 and len(lines("Realtime session replaced")) == 1


def test_a_local_server_that_expires_every_session_at_once_ends_in_the_apology(bridge_call, caplog):
    """Issue 22 (1) over real sockets: the storm is the budget, then the apology."""
    caplog.set_level(logging.INFO)
    with LocalRealtimeServer(mode="tone", speed=20.0, max_session_seconds=0.0) as server:
        call = real_call(bridge_call, CFG.replace(openai_url=server.url, reconnect_backoff_ms=10,
                                                  reconnect_budget=3)).start()
        m = call.finish(stop=False)
        dials = server.stats()["connections"]
    assert m["close_reason"] == "openai session expired" and dials == 4 and m["model_redials"] == 3
    assert_apology_heard(call.twilio)
    assert sum(len(r.getMessage()) for r in caplog.records) < 4000


def agent_said(m: dict) -> list[str]:
    return [e["text"] for e in m["transcript"] if e["role"] == "agent"]


def test_a_drop_while_the_caller_speaks_loses_none_of_their_words(bridge_call):
    """Half a phrase reaches the first session, the rest arrives during the gap: the new session
    gets all of it (the uncommitted turn again, then what was kept) and understands it."""
    phrase = tts.load_prompt("caller_order")
    frames = [phrase[i:i + 160].ljust(160, b"\xff") for i in range(0, len(phrase), 160)]
    heard: list[str] = []
    with LocalRealtimeServer(mode="voice", speed=20.0) as server:
        call = real_call(bridge_call, CFG.replace(openai_url=server.url, reconnect_attempts=2, tools=(order_status,),
                                                  append_ms=20),  # one append per frame: countable below
                         on_transcript_entry=lambda _, role, text: heard.append(text) if role == "agent" else None).start()
        assert wait_until(lambda: server.stats()["server_events"].get("session.updated") == 1)
        half = len(frames) // 2
        for frame in frames[:half]:
            call.twilio.media(frame)
        assert wait_until(lambda: server.stats()["client_events"].get("input_audio_buffer.append") == half)
        server.drop_connections()
        for frame in frames[half:] + [b"\xff" * 160] * 50:  # the rest of the phrase, then a second of quiet
            call.twilio.media(frame)
        assert wait_until(lambda: heard, timeout=8)
        m = call.finish()
    assert m["model_lost"] == 1 and m["accounting_ok"]
    assert [e["text"] for e in m["transcript"] if e["role"] == "caller"] == [tts.CALLER_PHRASES["caller_order"]]
    assert agent_said(m) == [ASK_ORDER[1]]


def test_a_drop_during_a_tool_call_still_answers_with_its_result(bridge_call):
    """The session drops while the tool runs: the new session is given the call and its result."""
    started, release = threading.Event(), threading.Event()

    @tool
    def order_status(order_id: str) -> dict:
        """Look up an order."""
        started.set()
        release.wait(5)
        return {"order_id": order_id, "status": "shipped"}

    heard: list[str] = []
    with LocalRealtimeServer(mode="voice", speed=20.0) as server:
        call = real_call(bridge_call, CFG.replace(openai_url=server.url, reconnect_attempts=2, tools=(order_status,)),
                         on_transcript_entry=lambda _, role, text: heard.append(text) if role == "agent" else None).start()
        assert wait_until(lambda: server.stats()["server_events"].get("session.updated") == 1)
        for digit in "1234#":
            call.twilio.push(testing.twilio_dtmf(digit))
        assert started.wait(5)
        server.drop_connections()
        assert wait_until(lambda: call.session.metrics["model_lost"] == 1
                          and server.stats()["active_connections"] == 1)
        release.set()
        assert wait_until(lambda: any("has shipped" in text for text in heard), timeout=8)
        m = call.finish()
    assert m["model_lost"] == 1 and m["accounting_ok"] and m["tool_calls"] == 1
    said = agent_said(m)
    assert said[0] == LET_ME_CHECK[1] and said[-1] == "Your order one two three four has shipped and arrives tomorrow."


def drop_then_refuse(bridge_call, refused: int, attempts: int):
    """The session drops, then the next ``refused`` dials are turned away with a 503."""
    with LocalRealtimeServer(mode="tone", speed=20.0, tone_seconds=0.2) as server:
        call = real_call(bridge_call, CFG.replace(openai_url=server.url, reconnect_attempts=attempts,
                                                  reconnect_backoff_ms=20)).start()
        assert wait_until(lambda: server.stats()["active_connections"] == 1)
        server.refuse_next(refused)
        server.drop_connections()
        if attempts > refused:
            assert wait_until(lambda: call.session.metrics["model_lost"] == 1
                              and server.stats()["active_connections"] == 1)
        m = call.finish(stop=attempts > refused)
        return call, m, server.stats()


def test_reconnect_refused_twice_then_accepted(bridge_call, lines):
    _, m, stats = drop_then_refuse(bridge_call, refused=2, attempts=3)
    assert stats["refused"] == 2 and m["openai_errors"]["connect_failed"] == 2
    assert m["close_reason"] == "twilio stop" and not lines("model unavailable")


def test_reconnect_refused_for_good_ends_in_the_apology(bridge_call, lines):
    call, m, _ = drop_then_refuse(bridge_call, refused=100, attempts=2)
    assert m["close_reason"] == "openai disconnected" and m["openai_errors"]["connect_failed"] == 2  # two redials
    assert_apology_heard(call.twilio)


def test_twilio_reader_stops_reading_real_server_socket(bridge_call, lines, monkeypatch):
    """Real server socket (simple-websocket's), real client that stops reading: sends time out."""
    openai = FakeRealtime()
    sessions, ended = [], threading.Event()
    app = Flask("bridge")
    # 3000 frames go out at once, a lead no config accepts (at most 1000 ms): the small buffers fill at once
    monkeypatch.setattr(BridgeConfig, "lead_frames", property(lambda self: 3000))
    config = CFG

    @Sock(app).route("/media")
    def media(ws):
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        session = MediaSession(ws, config, openai.connector, on_end=lambda _: ended.set())
        sessions.append(session)
        session.run()

    client = websocket.WebSocket()
    with wsgi_server(app) as port:
        try:
            client.connect(f"ws://127.0.0.1:{port}/media", timeout=3,
                           sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
            client.send(json.dumps(testing.twilio_connected()))
            client.send(json.dumps(testing.twilio_start()))
            openai.response("resp_1", "item_1", [FRAME * 3000], done=False)
            t0 = time.monotonic()  # the burst fills both small buffers at once: the stall starts now
            # the client now never reads; it keeps sending media like Twilio would
            deadline, seq = time.monotonic() + 8, 0
            while time.monotonic() < deadline and not ended.is_set():
                seq += 1
                try:
                    client.send(json.dumps(testing.twilio_media(b"\xff" * 160, seq)))
                except Exception:  # noqa: BLE001 - the bridge hung up
                    break
                time.sleep(0.02)
            assert ended.wait(3)
            elapsed = time.monotonic() - t0
            m = sessions[0].metrics
        finally:
            if client.sock:
                client.sock.close()
    # The call ends within the documented bound (the send timeout, then the close on the call's
    # own thread, itself bounded by the send timeout), with every frame accounted for.
    assert m["close_reason"] == "twilio send timeout" and m["twilio_send_timeouts"] == 1
    assert elapsed < 3 * CFG.twilio_send_timeout_s + 1.5, elapsed
    assert m["accounting_ok"] and m["frames_sent"] > 0 and m["frames_dropped"] > 0
    assert len(lines("TWILIO_SEND_TIMEOUT")) == 1


def test_twilio_peer_that_never_closes_its_tcp_does_not_pin_a_server_thread(bridge_call, lines):
    """After the bridge's close frame, werkzeug drains the socket until EOF; the linger timeout
    bounds that read, so a peer that keeps its TCP open cannot pin a thread and a descriptor."""
    openai = FakeRealtime()
    app = Flask("bridge")

    @Sock(app).route("/media")
    def media(ws):
        MediaSession(ws, CFG, openai.connector).run()

    client = websocket.WebSocket()
    with wsgi_server(app) as port:
        try:
            client.connect(f"ws://127.0.0.1:{port}/media", timeout=3)
            for msg in (testing.twilio_connected(), testing.twilio_start(), testing.twilio_stop()):
                client.send(json.dumps(msg))
            opcode = None
            while opcode != websocket.ABNF.OPCODE_CLOSE:
                opcode, _ = client.recv_data(control_frame=True)
            client.send_close()  # the close handshake completes, but the TCP connection stays open
            raw = client.sock
            raw.settimeout(5)
            t0 = time.monotonic()
            while raw.recv(4096):  # werkzeug's HTTP trailer bytes, then EOF once the server gives up
                pass
            waited = time.monotonic() - t0
        finally:
            client.shutdown()
    assert waited < CFG.twilio_send_timeout_s + 1.5, waited
