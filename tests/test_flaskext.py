"""VoiceBridge as a Flask extension: signatures, TwiML, metrics, the call cap, mounting.

WebSocket tests run the real werkzeug threaded server (``voicebridge.app.serve``) on
127.0.0.1:0 and a websocket-client peer speaking Twilio's messages; the Realtime side is a
scripted ``FakeRealtime`` injected through ``connect=``.
"""
from __future__ import annotations

import base64
import socket
import time
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import websocket
from flask import Blueprint, Flask, jsonify
from prometheus_client.parser import text_string_to_metric_families
from twilio.request_validator import RequestValidator

from voicebridge import BridgeConfig, VoiceBridge
from voicebridge.prometheus import BridgeMetrics
from voicebridge.testing import FakeRealtime, rt_response_created, rt_response_done, wait_until

from peers import TwilioPeer, running

TOKEN = "test-auth-token-0123456789"
CFG = BridgeConfig(api_key="sk-test", lead_ms=0, transcription_model=None, reconnect_attempts=0)
CALL_SID = "CA" + "1" * 32  # TwilioPeer(sid="1") uses this call SID in its start message
FORM = {"CallSid": CALL_SID, "From": "+15550001111", "To": "+15550002222", "AccountSid": "ACabc"}


def sign(url: str, params: Any = None) -> str:
    return RequestValidator(TOKEN).compute_signature(url, params or {})


def speaking_realtime(chunks: int = 10) -> Any:
    """A connector whose fake answers the greeting's response.create with ``chunks`` frames."""
    def connector(config: BridgeConfig) -> FakeRealtime:
        fake = FakeRealtime()

        def on_event(event: dict[str, Any]) -> None:
            if event["type"] == "response.create":
                fake.response("resp_1", "item_1", [b"\x7f" * 160] * chunks)
        fake.on_client_event = on_event
        return fake
    return connector


def make_app(**options: Any) -> tuple[Flask, VoiceBridge]:
    app = Flask("test")
    options.setdefault("connect", speaking_realtime())
    bridge = VoiceBridge(app, CFG, **options)
    return app, bridge


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def twiml(body: bytes) -> ET.Element:
    root = ET.fromstring(body)
    assert root.tag == "Response"
    return root


# ---------------------------------------------------------------------------- webhook
def test_webhook_signature_accepted_and_rejected(caplog: pytest.LogCaptureFixture) -> None:
    app, _ = make_app(auth_token=TOKEN)
    client = app.test_client()
    url = "http://localhost/voice?tenant=acme"
    good = client.post("/voice?tenant=acme", data=FORM, headers={"X-Twilio-Signature": sign(url, FORM)})
    assert good.status_code == 200 and good.mimetype == "text/xml"
    tampered = dict(FORM, From="+15559999999")
    bad = client.post("/voice?tenant=acme", data=tampered, headers={"X-Twilio-Signature": sign(url, FORM)})
    missing = client.post("/voice?tenant=acme", data=FORM)
    wrong_url = client.post("/voice?tenant=evil", data=FORM, headers={"X-Twilio-Signature": sign(url, FORM)})
    assert [r.status_code for r in (bad, missing, wrong_url)] == [403, 403, 403]
    rejections = [r for r in caplog.records if "X-Twilio-Signature" in r.getMessage()]
    assert len(rejections) == 3
    assert TOKEN not in caplog.text


def test_webhook_signature_behind_tls_proxy() -> None:
    app, _ = make_app(auth_token=TOKEN)
    client = app.test_client()
    public = "https://bridge.example.com/voice"
    proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "bridge.example.com"}
    ok = client.post("/voice", base_url="http://10.0.0.5:8000", data=FORM,
                     headers={**proxy, "X-Twilio-Signature": sign(public, FORM)})
    assert ok.status_code == 200
    stream = twiml(ok.data).find("Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://bridge.example.com/media"
    # the same signature without the proxy headers is for a different URL
    direct = client.post("/voice", base_url="http://10.0.0.5:8000", data=FORM,
                         headers={"X-Twilio-Signature": sign(public, FORM)})
    assert direct.status_code == 403


def test_webhook_signature_with_public_url_ignores_request_host() -> None:
    app, _ = make_app(auth_token=TOKEN, public_url="https://voice.example.org/")
    client = app.test_client()
    headers = {"X-Twilio-Signature": sign("https://voice.example.org/voice", FORM),
               "X-Forwarded-Host": "attacker.example.net"}
    ok = client.post("/voice", base_url="http://internal:9000", data=FORM, headers=headers)
    assert ok.status_code == 200
    assert twiml(ok.data).find("Connect/Stream").get("url") == "wss://voice.example.org/media"


def test_twiml_has_stream_and_per_call_parameters() -> None:
    app, _ = make_app()
    resp = app.test_client().post("/voice?tenant=acme", base_url="https://bridge.example.com", data=FORM)
    root = twiml(resp.data)
    connect = root.find("Connect")
    assert connect is not None and len(root) == 1
    stream = connect.find("Stream")
    assert stream.get("url") == "wss://bridge.example.com/media"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"tenant": "acme", "CallSid": CALL_SID, "From": "+15550001111", "To": "+15550002222"}


def test_oversized_parameters_and_body_are_bounded() -> None:
    app, _ = make_app()
    client = app.test_client()
    resp = client.post("/voice?big=" + "x" * 600, data=FORM)
    names = [p.get("name") for p in twiml(resp.data).iter("Parameter")]
    assert "big" not in names and "CallSid" in names
    huge = client.post("/voice", data={"Body": "y" * 100_000})
    assert huge.status_code == 413
    assert app.config["SOCK_SERVER_OPTIONS"]["max_message_size"] == 64 * 1024


def test_app_choice_of_max_message_size_wins() -> None:
    app = Flask("own")
    app.config["SOCK_SERVER_OPTIONS"] = {"max_message_size": 1000, "ping_interval": 5}
    VoiceBridge(app, CFG)
    assert app.config["SOCK_SERVER_OPTIONS"] == {"max_message_size": 1000, "ping_interval": 5}


def test_no_token_warns_loudly(caplog: pytest.LogCaptureFixture) -> None:
    make_app()
    assert any(r.levelname == "WARNING" and "NOT checked" in r.getMessage() for r in caplog.records)
    caplog.clear()
    make_app(auth_token=TOKEN)
    assert not any("NOT checked" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------- WebSocket
def test_websocket_signature_accepted_rejected_and_behind_proxy() -> None:
    app, bridge = make_app(auth_token=TOKEN)
    with running(app) as server:
        url = f"ws://127.0.0.1:{server.port}/media"
        with pytest.raises(websocket.WebSocketBadStatusException) as missing:
            TwilioPeer(url)
        assert missing.value.status_code == 403
        with pytest.raises(websocket.WebSocketBadStatusException) as bad:
            TwilioPeer(url, {"x-twilio-signature": sign(f"ws://127.0.0.1:{server.port}/other")})
        assert bad.value.status_code == 403
        peer = TwilioPeer(url, {"x-twilio-signature": sign(url)})  # lowercase, as Twilio sends it
        peer.start(vb_token=issue_token(app))
        peer.stop()
        peer.read_until_closed()
        peer.close()
        proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "bridge.example.com",
                   "x-twilio-signature": sign("wss://bridge.example.com/media")}
        peer = TwilioPeer(url, proxied)
        peer.close()
        with pytest.raises(websocket.WebSocketBadStatusException):
            TwilioPeer(url, {"x-twilio-signature": sign("wss://bridge.example.com/media")})
    values = metric_values(app.test_client().get("/metrics").get_data(as_text=True))
    assert values[("voicebridge_signature_rejections_total", (("endpoint", "media"),))] == 3


def issue_token(app: Flask, form: dict[str, str] = FORM) -> str:
    """The stream token the signed webhook hands this call (its ``<Parameter name="vb_token">``)."""
    resp = app.test_client().post("/voice", data=form,
                                  headers={"X-Twilio-Signature": sign("http://localhost/voice", form)})
    params = {p.get("name"): p.get("value") for p in twiml(resp.data).iter("Parameter")}
    return params["vb_token"]


def test_a_signed_media_upgrade_cannot_be_replayed() -> None:
    """Twilio signs only the URL: the stream must also redeem the single-use token of its call."""
    dials: list[BridgeConfig] = []

    def connector(config: BridgeConfig) -> FakeRealtime:
        dials.append(config)
        return speaking_realtime()(config)

    app, bridge = make_app(auth_token=TOKEN, connect=connector)
    token = issue_token(app)
    other_call = issue_token(app, dict(FORM, CallSid="CA" + "9" * 32))
    with running(app) as server:
        url = f"ws://127.0.0.1:{server.port}/media"
        signed = {"x-twilio-signature": sign(url)}
        first = TwilioPeer(url, signed)
        first.start(vb_token=token)
        assert first.wait_media(1)  # admitted: the agent speaks
        first.stop()
        first.read_until_closed()
        first.close()
        refused = []
        for params in ({"vb_token": token}, {"vb_token": other_call}, {}, {"vb_token": "1.2.3"}):
            peer = TwilioPeer(url, signed)  # the same signed upgrade, replayed
            peer.start(**params)
            messages, _, _ = peer.read_until_closed()
            peer.close()
            refused.append([m["event"] for m in messages])
    assert refused == [[], [], [], []]
    assert len(dials) == 1  # a refused stream never opens an upstream session
    values = metric_values(app.test_client().get("/metrics").get_data(as_text=True))
    assert values[("voicebridge_calls_refused_total", (("stage", "token"),))] == 4
    assert bridge.active_calls == 0


def test_silent_websockets_hold_no_slot_and_open_no_upstream_session() -> None:
    """Sockets that never send ``start``: no Realtime dial, and the call slots come back."""
    dials: list[BridgeConfig] = []
    app, bridge = make_app(max_calls=2, connect=lambda config: dials.append(config) or FakeRealtime())
    bridge.config = CFG.replace(start_timeout_s=0.4)
    with running(app) as server:
        peers = [TwilioPeer(server.ws_url, sid=str(i)) for i in range(2)]  # connected, silent
        assert wait_until(lambda: bridge.active_calls == 2)
        busy = app.test_client().post("/voice", data=FORM)
        assert twiml(busy.data).find("Hangup") is not None  # "all lines busy" while they hold the slots
        assert wait_until(lambda: bridge.active_calls == 0, timeout=5)
        for peer in peers:
            peer.read_until_closed()
            peer.close()
        admitted = app.test_client().post("/voice", data=FORM)
        assert twiml(admitted.data).find("Connect/Stream") is not None
    assert dials == []


def test_websocket_signature_with_public_url() -> None:
    app, _ = make_app(auth_token=TOKEN, public_url="https://voice.example.org")
    with running(app) as server:
        url = f"ws://127.0.0.1:{server.port}/media"
        TwilioPeer(url, {"x-twilio-signature": sign("wss://voice.example.org/media")}).close()
        with pytest.raises(websocket.WebSocketBadStatusException):
            TwilioPeer(url, {"x-twilio-signature": sign(url)})


@pytest.mark.parametrize("websocket_mode", ["direct", "flask-sock"])
def test_call_runs_hooks_and_moves_metrics(websocket_mode: str) -> None:
    seen: dict[str, Any] = {"params": [], "ends": []}

    def config_for_call(params: dict[str, str]) -> BridgeConfig:
        seen["params"].append(params)
        return CFG.replace(voice="cedar")

    app, bridge = make_app(config_for_call=config_for_call, on_call_end=seen["ends"].append,
                           websocket=websocket_mode)
    with running(app) as server:
        before = metric_values(app.test_client().get("/metrics").get_data(as_text=True))
        assert before[("voicebridge_calls_total", ())] == 0
        peer = TwilioPeer(server.ws_url)
        peer.start(tenant="acme")
        peer.media(3)
        frames = peer.wait_media(10)
        assert all(len(base64.b64decode(m["media"]["payload"])) == 160 for m in frames)
        live = metric_values(app.test_client().get("/metrics").get_data(as_text=True))
        assert live[("voicebridge_active_calls", ())] == 1
        assert app.test_client().get("/healthz").get_json() == {"status": "ok", "active_calls": 1,
                                                                  "max_calls": None}
        peer.stop()
        peer.read_until_closed()
        peer.close()
        assert wait_until(lambda: seen["ends"])
    resp = app.test_client().get("/metrics")
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    after = metric_values(resp.get_data(as_text=True))
    assert after[("voicebridge_calls_total", ())] == 1
    assert after[("voicebridge_frames_sent_total", ())] >= 10
    assert after[("voicebridge_active_calls", ())] == 0
    assert after[("voicebridge_time_to_first_audio_seconds_count", ())] == 1
    assert ("voicebridge_barge_in_latency_seconds_count", ()) in after
    assert seen["params"] == [{"tenant": "acme"}]
    end = seen["ends"][0]
    assert end["call_sid"] == peer.call_sid and end["frames_sent"] >= 10 and end["accounting_ok"]
    assert end["close_reason"] == "twilio stop" and end["duration_s"] > 0


def test_openai_errors_are_counted_by_code() -> None:
    def failing(config: BridgeConfig) -> FakeRealtime:
        raise ConnectionRefusedError("nope")

    ended: list[dict[str, Any]] = []
    app, _ = make_app(connect=failing, on_call_end=ended.append)
    with running(app) as server:
        peer = TwilioPeer(server.ws_url)
        peer.start()  # the Realtime service is dialed once the stream has started
        peer.read_until_closed()
        peer.close()
        assert wait_until(lambda: ended)
    values = metric_values(app.test_client().get("/metrics").get_data(as_text=True))
    assert values[("voicebridge_openai_errors_total", (("code", "connect_failed"),))] == 1


def test_transcripts_reach_the_hook_with_the_call_sid() -> None:
    lines: list[tuple[Any, str, str]] = []

    def connector(config: BridgeConfig) -> FakeRealtime:
        fake = FakeRealtime()

        def on_event(event: dict[str, Any]) -> None:
            if event["type"] == "response.create":
                fake.push(rt_response_created("r", "greeting"))
                fake.push({"type": "response.output_audio_transcript.done", "response_id": "r", "item_id": "i",
                           "output_index": 0, "content_index": 0, "transcript": "Hello there"})
                fake.push(rt_response_done("r"))
        fake.on_client_event = on_event
        return fake

    app, _ = make_app(connect=connector, on_transcript=lambda *a: lines.append(a))
    with running(app) as server:
        peer = TwilioPeer(server.ws_url, sid="7")
        peer.start()
        assert wait_until(lambda: lines)
        peer.stop()
        peer.read_until_closed()
        peer.close()
    assert lines[0] == (peer.call_sid, "agent", "Hello there")


@pytest.mark.parametrize("websocket_mode", ["direct", "flask-sock"])
def test_cap_refuses_call_n_plus_one_and_admits_after_one_ends(websocket_mode: str) -> None:
    app, bridge = make_app(max_calls=1, websocket=websocket_mode)
    client = app.test_client()
    with running(app) as server:
        first = TwilioPeer(server.ws_url, sid="1")
        first.start()
        first.wait_media(1)
        assert bridge.active_calls == 1
        refused = twiml(client.post("/voice", data=FORM).data)
        assert [child.tag for child in refused] == ["Say", "Hangup"]
        assert "busy" in refused.find("Say").text
        second = TwilioPeer(server.ws_url, sid="2")
        _, code, reason = second.read_until_closed()
        second.close()
        assert code == 1013 and "capacity" in reason
        first.stop()
        first.read_until_closed()
        first.close()
        assert wait_until(lambda: bridge.active_calls == 0)
        assert twiml(client.post("/voice", data=FORM).data).find("Connect/Stream") is not None
        third = TwilioPeer(server.ws_url, sid="3")
        third.start()
        third.wait_media(1)
        third.stop()
        third.read_until_closed()
        third.close()
    values = metric_values(client.get("/metrics").get_data(as_text=True))
    assert values[("voicebridge_calls_refused_total", (("stage", "webhook"),))] == 1
    assert values[("voicebridge_calls_refused_total", (("stage", "websocket"),))] == 1
    assert values[("voicebridge_calls_total", ())] == 2


# ---------------------------------------------------------------------------- mounting
def existing_app() -> Flask:
    """A user's app with its own route, blueprint and error handler."""
    app = Flask("existing")
    shop = Blueprint("shop", __name__)

    @app.route("/")
    def index() -> str:
        return "home"

    @shop.route("/items")
    def items() -> Any:
        return jsonify(["a", "b"])

    @app.errorhandler(404)
    def not_found(_exc: Exception) -> Any:
        return jsonify(error="nope"), 404

    app.register_blueprint(shop, url_prefix="/shop")
    return app


def test_mounts_beside_existing_routes_blueprints_and_error_handlers() -> None:
    app = existing_app()
    bridge = VoiceBridge(app, CFG, url_prefix="/twilio/", connect=speaking_realtime())
    assert app.extensions["voicebridge"] is bridge
    client = app.test_client()
    assert client.get("/").data == b"home"
    assert client.get("/shop/items").get_json() == ["a", "b"]
    assert client.get("/missing").get_json() == {"error": "nope"}
    assert client.get("/voice").status_code == 404  # nothing leaks to the root
    resp = client.post("/twilio/voice", base_url="https://pbx.example.com", data=FORM)
    assert twiml(resp.data).find("Connect/Stream").get("url") == "wss://pbx.example.com/twilio/media"
    assert client.get("/twilio/healthz").get_json()["status"] == "ok"
    assert client.get("/twilio/metrics").status_code == 200
    with running(app) as server:
        peer = TwilioPeer(f"ws://127.0.0.1:{server.port}/twilio/media")
        peer.start()
        peer.wait_media(1)
        peer.stop()
        peer.read_until_closed()
        peer.close()


def test_init_app_factory_pattern_and_two_apps_do_not_collide() -> None:
    bridges = [VoiceBridge(config=CFG, connect=speaking_realtime()) for _ in range(2)]
    apps = [Flask(f"app{i}") for i in range(2)]
    for bridge, app in zip(bridges, apps):
        bridge.init_app(app)
    bridges[0].metrics.calls.inc(5)
    counts = [metric_values(app.test_client().get("/metrics").get_data(as_text=True))
              [("voicebridge_calls_total", ())] for app in apps]
    assert counts == [5, 0]


def test_direct_media_refuses_bad_upgrades_and_servers_without_a_socket(caplog: pytest.LogCaptureFixture) -> None:
    app, bridge = make_app(websocket="direct")
    client = app.test_client()
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    bad = client.get("/media", headers={**upgrade, "Sec-WebSocket-Version": "8"})
    assert bad.status_code == 400 and b"Version" in bad.data
    # the test client, like eventlet or gevent, exposes no raw socket: a clear 500, no call started
    no_socket = client.get("/media", headers={**upgrade, "Sec-WebSocket-Version": "13"})
    assert no_socket.status_code == 500 and b"flask-sock" in no_socket.data
    assert bridge.active_calls == 0
    assert any("media upgrade refused (500)" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------- hostile HTTP
def post_chunked(port: int, body: bytes, limit_s: float) -> tuple[bytes, float]:
    """POST /voice with a chunked body; (everything the server sent until it closed, seconds)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=limit_s)
    t0 = time.monotonic()
    try:
        sock.sendall(b"POST /voice HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n\r\n")
        for i in range(0, len(body), 16384):
            part = body[i:i + 16384]
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # refused early: the server may stop reading
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except OSError:
        pass
    sock.close()
    return received, time.monotonic() - t0


def test_chunked_webhook_bodies_are_parsed_or_refused_never_dropped_or_hung() -> None:
    app, _ = make_app()
    form = ("CallSid=" + CALL_SID + "&From=%2B15550001111").encode()
    with running(app, read_timeout_s=1.0) as server:
        small, _ = post_chunked(server.port, form, 5)
        over, _ = post_chunked(server.port, form + b"&Pad=" + b"x" * 70_000, 5)
        huge, took = post_chunked(server.port, form + b"&Pad=" + b"x" * 1_000_000, 8)
    assert small.startswith(b"HTTP/1.1 200") and CALL_SID.encode() in small  # the form was read
    assert over.startswith(b"HTTP/1.1 413") and huge.startswith(b"HTTP/1.1 413")
    assert took < 5  # closed by the server (its read timeout is 1 s), not left hanging


def test_replaced_sessions_are_counted_by_cause_with_their_gaps() -> None:
    metrics = BridgeMetrics(lambda: 0)
    metrics.record_call({"model_lost": 2, "model_rollover": 1, "reconnect_gaps_ms": [120.0, 800.0, 3.0],
                         "items_replayed": 7})
    values = metric_values(metrics.exposition().decode())
    assert values[("voicebridge_realtime_reconnects_total", (("cause", "lost"),))] == 2
    assert values[("voicebridge_realtime_reconnects_total", (("cause", "rollover"),))] == 1
    assert values[("voicebridge_realtime_reconnects_total", (("cause", "expired"),))] == 0
    assert values[("voicebridge_realtime_reconnect_gap_seconds_count", ())] == 3
    assert values[("voicebridge_realtime_reconnect_gap_seconds_bucket", (("le", "0.5"),))] == 2
    assert values[("voicebridge_realtime_items_replayed_total", ())] == 7
