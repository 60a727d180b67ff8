"""Fault injection: every failure the network can produce, one test each.

Each test checks what the bridge does, the one log line that names the fault, the counter
that counts it, and the frame accounting identity
``frames_enqueued == frames_sent + frames_flushed + frames_dropped``. An autouse fixture fails
any test in which an exception escaped a thread (``threading.excepthook``) or a traceback was
logged. Real-socket tests bind 127.0.0.1 on port 0 and always stop their servers.
"""
from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time

import pytest
import websocket
from flask import Flask, request
from flask_sock import Sock
from werkzeug.serving import make_server

from voicebridge import BridgeConfig, MediaSession, wsserver
from voicebridge.local import LocalRealtimeServer

from fakes import Closed, FakeRealtime, FakeTwilio, start_session

APOLOGY = b"\x11" * 800  # 100 ms = 5 frames stands in for the bundled prompt
CFG = BridgeConfig(greeting=None, barge_in=False, join_timeout_s=2.0, apology_audio=APOLOGY,
                   apology_start_wait_s=1.0, connect_timeout_s=2.0, twilio_send_timeout_s=0.3)
APOLOGY_FRAMES = [APOLOGY[:160]] * 5
FRAME = bytes(range(160))


# ----------------------------------------------------------------------------- guards
@pytest.fixture(autouse=True)
def no_escaped_exceptions(caplog):
    """No exception may escape a thread, and no traceback may reach the logs."""
    escaped = []
    previous = threading.excepthook
    threading.excepthook = lambda args: escaped.append(args)
    caplog.set_level(logging.INFO)
    try:
        yield
    finally:
        threading.excepthook = previous
    assert not escaped, [f"{a.thread.name}: {a.exc_type.__name__}: {a.exc_value}" for a in escaped]
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
    stuck = [r.getMessage() for r in caplog.records
             if "did not stop in time" in r.getMessage() or "accounting mismatch" in r.getMessage()]
    assert not stuck, stuck


def log_lines(caplog, text):
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


# ----------------------------------------------------------------------------- helpers
def session_pair(config=CFG, twilio=None, openai=None):
    twilio = twilio or FakeTwilio()
    openai = openai or FakeRealtime()
    twilio.echo_marks = True  # the apology's mark comes back at once: no 2 s wait
    return MediaSession(twilio, config, openai.connector), twilio, openai


def run_call(session, twilio):
    thread = start_session(session)
    twilio.connected_and_start()
    return thread


def finish(session, thread, twilio=None, limit=10.0):
    """Join the call (bounded) and check the invariants every fault must keep."""
    if twilio is not None:
        twilio.stop()
    thread.join(limit)
    assert not thread.is_alive(), "the call did not end"
    for t in session.threads:
        assert not t.is_alive(), t.name
    m = session.metrics
    assert m["frames_enqueued"] == m["frames_sent"] + m["frames_flushed"] + m["frames_dropped"], m
    assert m["accounting_ok"]
    return m


def real_session(config, twilio=None):
    """A session that dials with the real websocket-client connector."""
    twilio = twilio or FakeTwilio()
    twilio.echo_marks = True
    return MediaSession(twilio, config), twilio


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class RawServer:
    """A TCP server that accepts and then either stays silent or answers one canned reply."""

    def __init__(self, reply: bytes | None = None) -> None:
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.conns: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="raw-server", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.sock.getsockname()[1]}/v1/realtime?model=gpt-realtime"

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)
            if self.reply is not None:
                conn.settimeout(1.0)
                try:
                    conn.recv(4096)
                    conn.sendall(self.reply)
                except OSError:
                    pass

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(2)
        for conn in self.conns:
            conn.close()
        self.sock.close()


class ScriptedRealtime:
    """A real WebSocket Realtime peer (flask-sock on werkzeug) that plays ``script(ws)``."""

    def __init__(self, script) -> None:
        app = Flask("scripted-realtime")
        sock = Sock(app)
        self.done = threading.Event()

        @sock.route("/v1/realtime")
        def realtime(ws):
            try:
                script(ws)
            finally:
                self.done.set()

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="scripted-realtime", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.server_port}/v1/realtime?model=gpt-realtime"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(2)


def send_event(ws, event):
    ws.send(json.dumps(event))


def open_session(ws):
    """session.created, then wait for the bridge's session.update and answer it."""
    send_event(ws, {"type": "session.created", "event_id": "e0", "session": {}})
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        msg = ws.receive(timeout=0.1)
        if msg and json.loads(msg).get("type") == "session.update":
            send_event(ws, {"type": "session.updated", "event_id": "e1", "session": {}})
            return True
    return False


def audio_response(ws, n_frames, rid="resp_1", iid="item_1", done=True):
    send_event(ws, {"type": "response.created", "event_id": "e2", "response": {"id": rid, "status": "in_progress"}})
    send_event(ws, {"type": "response.output_item.added", "event_id": "e3", "response_id": rid,
                    "item": {"id": iid, "type": "message"}})
    for i in range(n_frames):
        send_event(ws, {"type": "response.output_audio.delta", "event_id": f"d{i}", "response_id": rid,
                        "item_id": iid, "delta": base64.b64encode(FRAME).decode()})
    if done:
        send_event(ws, {"type": "response.output_audio.done", "event_id": "e4", "response_id": rid, "item_id": iid})
        send_event(ws, {"type": "response.done", "event_id": "e5", "response": {"id": rid, "status": "completed"}})


def drain_until_closed(ws, limit=5.0):
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            ws.receive(timeout=0.1)
    except Exception:  # noqa: BLE001 - the bridge hung up: the script is over
        pass


def assert_apology_heard(twilio):
    media = twilio.media_frames()
    assert media[-5:] == APOLOGY_FRAMES, "the caller must hear the apology, not dead air"
    assert twilio.messages()[-1]["mark"]["name"] == "vb-apology"


# ============================================================================= OpenAI side
def test_openai_connection_refused_plays_apology(caplog):
    session, twilio = real_session(CFG.replace(openai_url=f"ws://127.0.0.1:{closed_port()}/v1/realtime"))
    thread = run_call(session, twilio)
    m = finish(session, thread)
    assert m["close_reason"] == "openai unreachable"
    assert m["openai_errors"] == {"connect_failed": 1}
    assert log_lines(caplog, "cannot reach the Realtime endpoint: ConnectionRefusedError")
    assert_apology_heard(twilio)
    assert m["frames_sent"] == 5 == m["frames_enqueued"]


def test_openai_handshake_timeout_is_bounded(caplog):
    silent = RawServer()
    try:
        session, twilio = real_session(CFG.replace(openai_url=silent.url, connect_timeout_s=0.3))
        t0 = time.monotonic()
        thread = run_call(session, twilio)
        m = finish(session, thread)
        elapsed = time.monotonic() - t0
    finally:
        silent.stop()
    assert elapsed < 3.0, elapsed
    assert m["close_reason"] == "openai unreachable" and m["openai_errors"] == {"connect_failed": 1}
    assert log_lines(caplog, "cannot reach the Realtime endpoint: WebSocketTimeoutException")
    assert_apology_heard(twilio)


def test_openai_handshake_401_wrong_key(caplog):
    server = LocalRealtimeServer(mode="tone", speed=20.0, api_key="k").start()
    try:
        session, twilio = real_session(CFG.replace(openai_url=server.url, api_key="wrong"))
        thread = run_call(session, twilio)
        m = finish(session, thread)
        assert server.stats()["rejected_auth"] == 1
    finally:
        server.stop()
    assert m["close_reason"] == "openai unreachable" and m["openai_errors"] == {"connect_failed": 1}
    lines = log_lines(caplog, "cannot reach the Realtime endpoint: WebSocketBadStatusException")
    assert lines and "401" in lines[0] and "wrong" not in " ".join(r.getMessage() for r in caplog.records)
    assert_apology_heard(twilio)


def test_openai_handshake_403(caplog):
    body = b'{"error":{"code":"forbidden"}}'
    forbidden = RawServer(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: "
                          + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    try:
        session, twilio = real_session(CFG.replace(openai_url=forbidden.url))
        thread = run_call(session, twilio)
        m = finish(session, thread)
    finally:
        forbidden.stop()
    assert m["close_reason"] == "openai unreachable" and m["openai_errors"] == {"connect_failed": 1}
    lines = log_lines(caplog, "cannot reach the Realtime endpoint: WebSocketBadStatusException")
    assert lines and "403" in lines[0]
    assert_apology_heard(twilio)


def test_openai_abrupt_close_mid_response_real_socket(caplog):
    def script(ws):
        if open_session(ws):
            audio_response(ws, 30, done=False)
            time.sleep(0.15)
            ws.sock.shutdown(socket.SHUT_RDWR)  # no close frame: the TCP connection just ends

    peer = ScriptedRealtime(script)
    try:
        session, twilio = real_session(CFG.replace(openai_url=peer.url))
        thread = run_call(session, twilio)
        m = finish(session, thread)
    finally:
        peer.stop()
    assert m["close_reason"] == "openai disconnected"
    assert len(log_lines(caplog, "Realtime connection lost")) == 1
    assert log_lines(caplog, "model unavailable (openai disconnected): playing the apology prompt")
    assert m["frames_sent"] >= 5 + 1 and m["frames_flushed"] + m["frames_dropped"] >= 0
    sent = twilio.messages()
    clear_at = max(i for i, msg in enumerate(sent) if msg["event"] == "clear")
    after = [base64.b64decode(x["media"]["payload"]) for x in sent[clear_at:] if x["event"] == "media"]
    assert after == APOLOGY_FRAMES  # nothing of the lost response after the clear, then the apology


def test_openai_garbage_over_a_real_socket_is_ignored(caplog):
    def script(ws):
        if open_session(ws):
            ws.send("this is not json")
            ws.send(b"\x00\x01binary")
            send_event(ws, {"type": "response.brand_new_thing", "event_id": "x"})
            audio_response(ws, 3)
            drain_until_closed(ws)

    peer = ScriptedRealtime(script)
    try:
        session, twilio = real_session(CFG.replace(openai_url=peer.url))
        thread = run_call(session, twilio)
        assert twilio.wait_for(lambda t: len(t.messages("media")) == 3)
        m = finish(session, thread, twilio)
        assert peer.done.wait(3)
    finally:
        peer.stop()
    assert m["close_reason"] == "twilio stop"
    assert m["protocol_errors"] == {"openai.malformed_json": 1, "openai.binary_frame": 1}
    assert m["openai_unknown_events"] == 1
    assert twilio.media_frames() == [FRAME] * 3
    assert len(log_lines(caplog, "ignored bad Realtime message")) == 2
    assert log_lines(caplog, "unknown Realtime event type 'response.brand_new_thing'")


@pytest.mark.parametrize("raw, key", [
    ("{not json", "openai.malformed_json"),
    (b"\x89PNG binary", "openai.binary_frame"),
    ('["a", "list"]', "openai.missing_field"),
    ('{"type":"response.output_audio.delta","response_id":"r","item_id":"i","delta":"@@"}', "openai.bad_base64"),
])
def test_openai_bad_message_is_counted_and_call_continues(caplog, raw, key):
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    openai.push(raw)
    openai.response("resp_1", "item_1", [FRAME * 2])
    assert twilio.wait_for(lambda t: len(t.messages("media")) == 2)
    m = finish(session, thread, twilio)
    assert m["protocol_errors"] == {key: 1} and m["openai_protocol_errors"] == 1
    assert len(log_lines(caplog, "ignored bad Realtime message")) == 1
    assert m["close_reason"] == "twilio stop"


def test_openai_unknown_event_types_logged_once_each(caplog):
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    for kind in ["future.event", "future.event", "other.event", "rate_limits.updated"]:
        openai.push({"type": kind})
    openai.response("resp_1", "item_1", [FRAME])
    assert twilio.wait_for(lambda t: len(t.messages("media")) == 1)
    m = finish(session, thread, twilio)
    assert m["openai_unknown_events"] == 3  # rate_limits.updated is known, merely unused
    assert len(log_lines(caplog, "unknown Realtime event type")) == 2
    assert m["openai_protocol_errors"] == 0


NON_FATAL = [
    ("response_cancel_not_active", "invalid_request_error", "Cancellation failed: no active response found"),
    ("conversation_already_has_active_response", "invalid_request_error",
     "Conversation already has an active response in progress: resp_1."),
    ("input_audio_buffer_commit_empty", "invalid_request_error", "Error committing input audio buffer"),
    ("invalid_value", "invalid_request_error", "Audio content of 100ms is already shorter than 900ms"),
    ("missing_required_parameter", "invalid_request_error", "Missing required parameter: 'session.type'."),
    ("unknown_parameter", "invalid_request_error", "Unknown parameter: 'session.temperature'."),
    (None, "server_error", "The server had an error while processing your request."),
]
FATAL = [
    ("session_expired", "invalid_request_error", "Your session hit the maximum duration of 60 minutes."),
    ("beta_api_shape_disabled", "invalid_request_error",
     "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."),
]


@pytest.mark.parametrize("code, kind, message", NON_FATAL, ids=[c or k for c, k, _ in NON_FATAL])
def test_openai_non_fatal_error_leaves_the_call_running(caplog, code, kind, message):
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    openai.push({"type": "error", "error": {"type": kind, "code": code, "message": message, "param": None}})
    openai.response("resp_1", "item_1", [FRAME * 3])
    assert twilio.wait_for(lambda t: len(t.messages("media")) == 3)
    twilio.media(FRAME, n=2)
    assert twilio.wait_for(lambda t: len(openai.events("input_audio_buffer.append")) == 2)
    m = finish(session, thread, twilio)
    label = code or kind
    assert m["close_reason"] == "twilio stop"
    assert m["openai_errors"] == {label: 1}
    assert len(log_lines(caplog, f"Realtime error {label}")) == 1
    assert twilio.media_frames() == [FRAME] * 3 and not openai.close_calls > 1


@pytest.mark.parametrize("code, kind, message", FATAL, ids=[c for c, _, _ in FATAL])
def test_openai_fatal_error_apologizes_and_ends_cleanly(caplog, code, kind, message):
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    openai.response("resp_1", "item_1", [FRAME * 50], done=False)
    assert twilio.wait_for(lambda t: len(t.messages("media")) >= 2)
    openai.push({"type": "error", "error": {"type": kind, "code": code, "message": message}})
    openai.drop()  # the server closes right after (1001 / 4000)
    m = finish(session, thread)
    assert m["close_reason"] == f"openai error {code}"
    assert m["openai_errors"] == {code: 1}
    assert len(log_lines(caplog, f"Realtime fatal error {code}")) == 1
    assert not log_lines(caplog, "Realtime connection lost")  # the close that follows is expected
    assert_apology_heard(twilio)
    assert openai.closed.is_set() and twilio.closed.is_set()


def test_session_expired_from_the_local_server(caplog):
    server = LocalRealtimeServer(mode="tone", speed=20.0, max_session_seconds=0.4).start()
    try:
        session, twilio = real_session(CFG.replace(openai_url=server.url))
        thread = run_call(session, twilio)
        twilio.media(b"\xff" * 160, n=5)
        m = finish(session, thread)
    finally:
        server.stop()
    assert m["close_reason"] == "openai error session_expired"
    assert m["openai_errors"] == {"session_expired": 1}
    assert log_lines(caplog, "Realtime fatal error session_expired: Your session hit the maximum duration")
    assert_apology_heard(twilio)


# ============================================================================= Twilio side
@pytest.mark.parametrize("raw, key", [
    ("{this is not json", "twilio.malformed_json"),
    ('"just a string"', "twilio.malformed_json"),
    ('{"event":"media","streamSid":"MZ0123456789abcdef0123456789abcdef","media":{"payload":"%%%="}}',
     "twilio.bad_base64"),
    ('{"event":"media","streamSid":"MZ0123456789abcdef0123456789abcdef","media":{}}', "twilio.missing_field"),
    ('{"event":"transcription","streamSid":"MZ0123456789abcdef0123456789abcdef"}', "twilio.unknown_event"),
    (b"\x00\x01\x02", "twilio.binary_frame"),
])
def test_twilio_bad_message_is_counted_and_call_continues(caplog, raw, key):
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    twilio.push(raw)
    twilio.media(FRAME, n=2)
    assert twilio.wait_for(lambda t: len(openai.events("input_audio_buffer.append")) == 2)
    openai.response("resp_1", "item_1", [FRAME])
    assert twilio.wait_for(lambda t: len(t.messages("media")) == 1)
    m = finish(session, thread, twilio)
    assert m["protocol_errors"] == {key: 1} and m["twilio_protocol_errors"] == 1
    assert len(log_lines(caplog, "ignored bad Twilio message")) == 1
    assert m["close_reason"] == "twilio stop" and m["inbound_frames"] == 2


def test_twilio_media_of_wrong_size_is_forwarded_and_counted(caplog):
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    for size in (80, 0, 321, 160):
        twilio.media(b"\x7f" * size)
    assert twilio.wait_for(lambda t: len(openai.events("input_audio_buffer.append")) == 4)
    m = finish(session, thread, twilio)
    assert m["inbound_wrong_size"] == 3 and m["inbound_frames"] == 4
    assert len(log_lines(caplog, "inbound media of 80 bytes (expected 160)")) == 1
    assert len(log_lines(caplog, "inbound media of")) == 1  # one line, the rest counted


def test_twilio_media_before_start_is_dropped(caplog):
    session, twilio, openai = session_pair()
    thread = start_session(session)
    twilio.media(FRAME, n=3)
    twilio.connected_and_start()
    twilio.media(FRAME, n=1)
    assert twilio.wait_for(lambda t: len(openai.events("input_audio_buffer.append")) == 1)
    m = finish(session, thread, twilio)
    assert m["protocol_errors"] == {"twilio.media_before_start": 3}
    assert len(log_lines(caplog, "media before start: dropped")) == 1


def test_twilio_wrong_stream_sid_is_dropped(caplog):
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    b64 = base64.b64encode(FRAME).decode()
    for _ in range(3):
        twilio.push({"event": "media", "streamSid": "MZsomeoneelse", "media": {"payload": b64}})
    twilio.media(FRAME)
    assert twilio.wait_for(lambda t: len(openai.events("input_audio_buffer.append")) == 1)
    m = finish(session, thread, twilio)
    assert m["protocol_errors"] == {"twilio.wrong_stream_sid": 3}
    assert len(log_lines(caplog, "media for another stream (MZsomeoneelse): dropped")) == 1


def test_twilio_missing_stream_sid_is_forwarded_and_counted(caplog):
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    b64 = base64.b64encode(FRAME).decode()
    for _ in range(2):
        twilio.push({"event": "media", "media": {"payload": b64}})
    assert twilio.wait_for(lambda t: len(openai.events("input_audio_buffer.append")) == 2)
    m = finish(session, thread, twilio)
    assert m["protocol_errors"] == {"twilio.missing_stream_sid": 2}
    assert len(log_lines(caplog, "media without streamSid: forwarded")) == 1


def test_twilio_duplicate_start_is_ignored(caplog):
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    other = FakeTwilio(stream_sid="MZsecond", call_sid="CAsecond")
    other.connected_and_start()
    while not other.inbound.empty():
        twilio.push(other.inbound.get())
    twilio.media(FRAME)
    assert twilio.wait_for(lambda t: len(openai.events("input_audio_buffer.append")) == 1)
    m = finish(session, thread, twilio)
    assert session.stream_sid == twilio.stream_sid and session.call_sid == "CAtest"
    assert m["protocol_errors"] == {"twilio.duplicate_start": 1}
    assert len(openai.events("session.update")) == 1
    assert len(log_lines(caplog, "ignored duplicate start (stream MZsecond)")) == 1


def test_twilio_messages_after_stop_are_never_processed(caplog):
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    twilio.media(FRAME, n=2)
    twilio.stop()
    twilio.media(FRAME, n=5)
    twilio.push("garbage after stop")
    twilio.connected_and_start()
    m = finish(session, thread)
    assert m["close_reason"] == "twilio stop" and m["inbound_frames"] == 2
    assert len(openai.events("input_audio_buffer.append")) == 2
    assert m["twilio_protocol_errors"] == 0
    assert len(log_lines(caplog, "twilio stop")) >= 1


def test_twilio_abrupt_disconnect_without_stop(caplog):
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    openai.response("resp_1", "item_1", [FRAME * 100], done=False)
    assert twilio.wait_for(lambda t: len(t.messages("media")) >= 3)
    twilio.disconnect()
    m = finish(session, thread)
    assert m["close_reason"] == "twilio disconnected (Closed)"
    assert log_lines(caplog, "closing: twilio disconnected (Closed)")
    assert openai.closed.is_set()
    assert m["frames_dropped"] > 0 and m["frames_sent"] >= 3
    assert twilio.messages("clear") == []  # nobody to apologize to: no apology, no clear


class StallingTwilio(FakeTwilio):
    """A Twilio socket whose peer stops reading: after ``limit`` sends every send blocks until close()."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.unblocked = threading.Event()
        self.blocked = threading.Event()

    def send(self, data: str) -> None:
        if len(self.sent) >= self.limit:
            self.blocked.set()
            self.unblocked.wait(30)  # bounded only so a broken bridge cannot hang the test run
            raise Closed("socket aborted while sending")
        super().send(data)

    def close(self, reason=None, message=None) -> None:
        self.unblocked.set()
        super().close(reason, message)


@pytest.mark.parametrize("trigger", ["barge_in", "twilio_stop", "outside_close"])
def test_twilio_reader_stops_reading_blocked_send_is_bounded(caplog, trigger):
    twilio = StallingTwilio(limit=4)
    session, twilio, openai = session_pair(CFG.replace(barge_in=True), twilio=twilio)
    thread = run_call(session, twilio)
    openai.response("resp_1", "item_1", [FRAME * 60], done=False)
    assert twilio.blocked.wait(5)
    t0 = time.monotonic()
    if trigger == "barge_in":
        openai.push({"type": "input_audio_buffer.speech_started", "item_id": "u1", "audio_start_ms": 10})
    elif trigger == "twilio_stop":
        twilio.stop()
    else:
        session.close("outside close")
    m = finish(session, thread, limit=5)
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0, elapsed  # bounded by twilio_send_timeout_s (0.3 s), not forever
    assert m["twilio_send_timeouts"] == 1
    assert len(log_lines(caplog, "TWILIO_SEND_TIMEOUT")) == 1
    expected = {"barge_in": {"twilio send timeout"}, "outside_close": {"outside close"},
                # stop may be read before the stall is noticed: teardown then meets the stuck lock
                "twilio_stop": {"twilio stop", "twilio send timeout"}}[trigger]
    assert m["close_reason"] in expected
    assert not log_lines(caplog, "did not stop in time")
    assert openai.closed.is_set()


def media_route(app: Flask, mode: str):
    """Register the decorated handler at /media the way ``VoiceBridge(websocket=mode)`` serves it."""
    def register(handler):
        if mode == "flask-sock":
            Sock(app).route("/media")(handler)
            return handler

        @app.route("/media", websocket=True)
        def media_direct():
            return wsserver.run(wsserver.accept(request.environ), handler)
        return handler
    return register


@pytest.mark.parametrize("mode", ["direct", "flask-sock"])
def test_twilio_reader_stops_reading_real_server_socket(caplog, mode):
    """Real server socket (ours or simple-websocket's), real client that stops reading: sends time out."""
    openai = FakeRealtime()
    sessions = []
    app = Flask("bridge")
    config = CFG.replace(lead_ms=60_000)  # 3000 frames go out at once: the small buffers fill quickly

    @media_route(app, mode)
    def media(ws):
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        session = MediaSession(ws, config, openai.connector)
        sessions.append(session)
        session.run()

    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    serving.start()
    client = websocket.WebSocket()
    try:
        client.connect(f"ws://127.0.0.1:{server.server_port}/media", timeout=3,
                       sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
        fake = FakeTwilio()
        fake.connected_and_start()
        while not fake.inbound.empty():
            client.send(fake.inbound.get())
        openai.response("resp_1", "item_1", [FRAME * 3000], done=False)
        # the client now never reads; it keeps sending media like Twilio would
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not (sessions and sessions[0]._done.is_set()):  # noqa: SLF001
            try:
                client.send(json.dumps({"event": "media", "streamSid": fake.stream_sid,
                                        "media": {"payload": base64.b64encode(b"\xff" * 160).decode()}}))
            except Exception:  # noqa: BLE001 - the bridge hung up
                break
            time.sleep(0.02)
        assert sessions and sessions[0]._done.wait(3)  # noqa: SLF001
        m = sessions[0].metrics
    finally:
        client.sock and client.sock.close()
        server.shutdown()
        server.server_close()
        serving.join(2)
    # The call must end, boundedly and with every frame accounted for. Usually the bounded send
    # times out; under load simple-websocket's own reader may notice the stuck peer first and
    # fail the send instead - either way nothing hangs.
    assert m["close_reason"] in ("twilio send timeout", "twilio send failed"), m["close_reason"]
    assert m["accounting_ok"] and m["frames_sent"] > 0 and m["frames_dropped"] > 0
    if m["close_reason"] == "twilio send timeout":
        assert m["twilio_send_timeouts"] == 1
        assert len(log_lines(caplog, "TWILIO_SEND_TIMEOUT")) == 1


@pytest.mark.parametrize("mode", ["direct", "flask-sock"])
def test_twilio_peer_that_never_closes_its_tcp_does_not_pin_a_server_thread(caplog, mode):
    """After the bridge's close frame, werkzeug drains the socket until EOF; the linger timeout
    bounds that read, so a peer that keeps its TCP open cannot pin a thread and a descriptor."""
    openai = FakeRealtime()
    app = Flask("bridge")

    @media_route(app, mode)
    def media(ws):
        MediaSession(ws, CFG, openai.connector).run()

    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    serving.start()
    client = websocket.WebSocket()
    try:
        client.connect(f"ws://127.0.0.1:{server.server_port}/media", timeout=3)
        fake = FakeTwilio()
        fake.connected_and_start()
        fake.stop()
        while not fake.inbound.empty():
            client.send(fake.inbound.get())
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
        server.shutdown()
        server.server_close()
        serving.join(2)
    assert waited < CFG.twilio_send_timeout_s + 1.5, waited


# ============================================================================= isolation
def test_one_faulted_call_never_affects_another(caplog):
    good, twilio_good, openai_good = session_pair()
    bad, twilio_bad, openai_bad = session_pair(CFG, twilio=StallingTwilio(limit=3))
    thread_good, thread_bad = run_call(good, twilio_good), run_call(bad, twilio_bad)
    data = bytes(i % 251 for i in range(160 * 40))
    openai_good.response("resp_g", "item_g", [data[i:i + 333] for i in range(0, len(data), 333)])
    # the bad call gets every fault at once: garbage both ways, a fatal error, a stalled reader
    twilio_bad.push("{garbage")
    twilio_bad.push(b"\x00")
    openai_bad.push("{garbage")
    assert twilio_bad.wait_for(lambda t: len(bad.metrics["protocol_errors"]) == 3)
    openai_bad.response("resp_b", "item_b", [FRAME * 30], done=False)
    openai_bad.push({"type": "error", "error": {"type": "invalid_request_error", "code": "session_expired",
                                                "message": "expired"}})
    openai_bad.drop()
    twilio_good.media(FRAME, n=10)
    m_bad = finish(bad, thread_bad)
    assert twilio_good.wait_for(lambda t: len(t.messages("media")) == 40)
    m_good = finish(good, thread_good, twilio_good)
    assert b"".join(twilio_good.media_frames()) == data
    assert m_good["close_reason"] == "twilio stop"
    assert m_good["protocol_errors"] == {} and m_good["openai_errors"] == {}
    assert m_good["twilio_send_timeouts"] == 0 and m_good["frames_dropped"] == 0
    assert len(openai_good.events("input_audio_buffer.append")) == 10
    assert m_bad["close_reason"] in ("twilio send timeout", "openai error session_expired")
    assert m_bad["protocol_errors"] == {"twilio.malformed_json": 1, "twilio.binary_frame": 1,
                                        "openai.malformed_json": 1}
