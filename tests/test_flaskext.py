"""VoiceBridge as a Flask extension: signatures, TwiML, metrics, the call cap, mounting.

WebSocket tests run the real werkzeug threaded server (``voicebridge.serving.app.serve``) on
127.0.0.1:0 and a websocket-client peer speaking Twilio's messages; the Realtime side is a
scripted ``FakeRealtime`` injected through ``connect=``.
"""
from __future__ import annotations

import base64
import logging
import multiprocessing
import os
import shutil
import socket
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import websocket
from flask import Blueprint, Flask, jsonify
from prometheus_client.parser import text_string_to_metric_families
from twilio.request_validator import RequestValidator

from voicebridge import BridgeConfig, VoiceBridge
from voicebridge.serving.admission import MAX_UNSTARTED
from voicebridge.throttle import LogThrottle
from voicebridge.serving.prometheus import BridgeMetrics
from voicebridge.testing import (FakeRealtime, FakeTwilio, ManualClock, rt_function_call, rt_response_created, rt_response_done,
                                 wait_until)

from peers import TwilioPeer, running

TOKEN = "test-auth-token-0123456789"
CFG = BridgeConfig(api_key="sk-test", lead_ms=0, transcription_model=None, reconnect_attempts=0)
CALL_SID = "CA" + "1" * 32  # TwilioPeer(sid="1") uses this call SID in its start message
FORM = {"CallSid": CALL_SID, "From": "+15550001111", "To": "+15550002222", "AccountSid": "ACabc"}
WAIT_S = 20.0  # bound on waits for spawned processes (each starts a fresh interpreter)


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
    assert len(rejections) == 1  # anyone can cause them: one line per 10 s, every one counted
    values = metric_values(client.get("/metrics").get_data(as_text=True))
    assert values[("voicebridge_signature_rejections_total", (("endpoint", "voice"),))] == 3
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
    """Sockets that never send ``start``: no call slot, no Realtime dial, closed after the timeout."""
    dials: list[BridgeConfig] = []
    app, bridge = make_app(max_calls=2, connect=lambda config: dials.append(config) or FakeRealtime())
    bridge.config = CFG.replace(start_timeout_s=0.4)
    with running(app) as server:
        peers = [TwilioPeer(server.ws_url, sid=str(i)) for i in range(2)]  # connected, silent
        admitted = app.test_client().post("/voice", data=FORM)
        assert twiml(admitted.data).find("Connect/Stream") is not None  # they hold no slot
        assert bridge.active_calls == 0 and bridge.slots.active_all == 0
        for peer in peers:
            peer.read_until_closed()  # closed by the start timeout
            peer.close()
    assert dials == [] and bridge.active_calls == 0


def test_replayed_upgrades_never_use_up_the_cap_and_their_refusals_log_little(
        caplog: pytest.LogCaptureFixture) -> None:
    """With MAX_CALLS=2, sockets re-opened from one signed upgrade (silent, or replaying a used
    token) hold no slot: every genuine webhook is answered and its stream admitted."""
    caplog.set_level(logging.INFO)
    began = time.monotonic()
    app, bridge = make_app(auth_token=TOKEN, max_calls=2)
    bridge.config = CFG.replace(start_timeout_s=0.5)
    used = issue_token(app)
    with running(app) as server:
        url = f"ws://127.0.0.1:{server.port}/media"
        signed = {"x-twilio-signature": sign(url)}
        first = TwilioPeer(url, signed)
        first.start(vb_token=used)
        assert first.wait_media(1)
        first.stop()
        first.read_until_closed()
        first.close()
        silent = [TwilioPeer(url, signed, sid=str(i)) for i in range(3)]  # upgraded, never start
        answered = []
        for n in range(30):
            replay = TwilioPeer(url, signed)
            replay.start(vb_token=used)  # the used token, replayed
            replay.read_until_closed()
            replay.close()
            form = dict(FORM, CallSid="CA" + f"{n:02d}" * 16)
            answered.append(twiml(signed_post(app, "/voice", form).data).find("Connect/Stream") is not None)
            assert bridge.slots.active_all == 0
        assert all(answered)
        call = TwilioPeer(url, signed, sid="7")
        call.start(vb_token=issue_token(app, dict(FORM, CallSid="CA" + "7" * 32)))
        assert call.wait_media(1)  # a genuine stream is admitted beside them
        assert bridge.active_calls == 1
        call.stop()
        call.read_until_closed()
        call.close()
        for peer in silent:
            peer.read_until_closed()
            peer.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    windows = 1 + int((time.monotonic() - began) // 10)  # a loaded machine may take more than one 10 s window
    assert len(warnings) <= 4 * windows, warnings  # one line per kind per 10 s: token replay, no start
    values = metric_values(app.test_client().get("/metrics").get_data(as_text=True))
    assert values[("voicebridge_calls_refused_total", (("stage", "token"),))] == 30
    assert values[("voicebridge_calls_total", ())] == 2


def test_refusals_log_one_line_per_kind_per_interval_with_the_count_left_out(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    throttle = LogThrottle(logging.getLogger("throttle-test"), interval_s=10.0, clock=clock)
    caplog.set_level(logging.INFO, logger="throttle-test")
    written = [throttle.warning("token", "refused %s", n) for n in range(1000)]
    assert written[0] and not any(written[1:])
    assert throttle.warning("cap", "busy")  # another kind has its own line
    clock.advance(10.0)
    assert throttle.warning("token", "refused %s", "again")
    assert [r.getMessage() for r in caplog.records] == [
        "refused 0", "busy", "refused again (and 999 more like it in the last 10 s, not logged)"]


def test_upgrades_waiting_for_their_start_are_bounded_oldest_closed_first() -> None:
    """Sockets that never start cannot pin the server's threads for their start timeout each."""
    app, bridge = make_app()
    bridge.config = CFG.replace(start_timeout_s=30.0)
    with running(app) as server:
        peers = [TwilioPeer(server.ws_url, sid=str(i)) for i in range(MAX_UNSTARTED + 2)]
        closed = closed_by_server(peers, 2, within_s=4.0)  # long before the 30 s start timeout
        assert len(closed) == 2
        call = TwilioPeer(server.ws_url, sid="9")
        call.start()
        assert call.wait_media(1)  # newer upgrades and genuine calls carry on
        call.stop()
        call.read_until_closed()
        call.close()
        for peer in peers:
            peer.close()
        assert wait_until(lambda: not bridge.draining and bridge.slots.active_all == 0)


def closed_by_server(peers: list[TwilioPeer], count: int, within_s: float) -> list[TwilioPeer]:
    """The peers the server closes (a close frame or EOF), polled until ``count`` or the time is up."""
    closed: list[TwilioPeer] = []
    deadline = time.monotonic() + within_s
    while len(closed) < count and time.monotonic() < deadline:
        for peer in peers:
            if peer in closed:
                continue
            peer.ws.settimeout(0.02)
            try:
                opcode, _ = peer.ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketException, OSError):
                opcode = websocket.ABNF.OPCODE_CLOSE
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                closed.append(peer)
    return closed


def test_websocket_signature_with_public_url() -> None:
    app, _ = make_app(auth_token=TOKEN, public_url="https://voice.example.org")
    with running(app) as server:
        url = f"ws://127.0.0.1:{server.port}/media"
        TwilioPeer(url, {"x-twilio-signature": sign("wss://voice.example.org/media")}).close()
        with pytest.raises(websocket.WebSocketBadStatusException):
            TwilioPeer(url, {"x-twilio-signature": sign(url)})


def test_call_runs_hooks_and_moves_metrics() -> None:
    seen: dict[str, Any] = {"params": [], "ends": []}

    def config_for_call(params: dict[str, str]) -> BridgeConfig:
        seen["params"].append(params)
        return CFG.replace(voice="cedar")

    app, bridge = make_app(config_for_call=config_for_call, on_end=lambda s: seen["ends"].append(s.metrics))
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
                                                                  "active_calls_all": 1, "max_calls": None}
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
    app, _ = make_app(connect=failing, on_end=lambda s: ended.append(s.metrics))
    with running(app) as server:
        peer = TwilioPeer(server.ws_url)
        peer.start()  # the Realtime service is dialed once the stream has started
        peer.wait_media(1, timeout=WAIT_S)  # the dial failed: the apology begins
        peer.stop()  # the caller hangs up during it (it would play out in real time)
        peer.read_until_closed(timeout=WAIT_S)
        peer.close()
        assert wait_until(lambda: ended, timeout=WAIT_S)
    values = metric_values(app.test_client().get("/metrics").get_data(as_text=True))
    assert values[("voicebridge_openai_errors_total", (("code", "connect_failed"),))] == 1


def test_transcripts_reach_the_hook_with_the_call_sid() -> None:
    lines: list[tuple[Any, str, str]] = []
    with pytest.warns(DeprecationWarning, match="on_transcript"):  # the old name, still served
        app, _ = make_app(connect=greeting_connector, on_transcript=lambda *a: lines.append(a))
    with running(app) as server:
        peer = TwilioPeer(server.ws_url, sid="7")
        peer.start()
        assert wait_until(lambda: lines)
        peer.stop()
        peer.read_until_closed()
        peer.close()
    assert lines[0] == (peer.call_sid, "agent", "Hello there")


def test_on_end_runs_after_every_transcript_entry_of_the_call() -> None:
    """A slow transcript hook (a database write) still hands the app every entry before on_end,
    where an app closes its record of the call."""
    got: list[str] = []
    writing = threading.Event()

    def slow_entry(session: Any, role: str, text: str) -> None:
        writing.set()
        time.sleep(0.3)
        got.append(f"entry:{text}")

    app, _ = make_app(connect=greeting_connector, on_transcript_entry=slow_entry,
                      on_end=lambda session: got.append("end"))
    with running(app) as server:
        peer = TwilioPeer(server.ws_url, sid="9")
        peer.start()
        assert writing.wait(5)  # the hook is mid-write when the call ends
        peer.stop()
        peer.read_until_closed()
        peer.close()
        assert wait_until(lambda: "end" in got)
    assert got[-1] == "end" and "entry:Hello there" in got


def greeting_connector(config: BridgeConfig) -> FakeRealtime:
    """A Realtime fake whose greeting says "Hello there"."""
    fake = FakeRealtime()

    def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "response.create":
            fake.push(rt_response_created("r", "greeting"))
            fake.push({"type": "response.output_audio_transcript.done", "response_id": "r", "item_id": "i",
                       "output_index": 0, "content_index": 0, "transcript": "Hello there"})
            fake.push(rt_response_done("r"))
    fake.on_client_event = on_event
    return fake


def test_one_hook_family_for_the_bridge_and_the_session_old_names_warn() -> None:
    """VoiceBridge takes MediaSession's hooks, same names and signatures (the session first);
    the old names still work, each with a DeprecationWarning."""
    got: list[tuple[str, Any]] = []
    app, _ = make_app(connect=greeting_connector,
                      on_transcript_entry=lambda session, role, text: got.append(("entry", (session.call_sid, role,
                                                                                            text))),
                      on_end=lambda session: got.append(("end", session.metrics["close_reason"])))
    with running(app) as server:
        peer = TwilioPeer(server.ws_url, sid="8")
        peer.start()
        assert wait_until(lambda: got)
        peer.stop()
        peer.read_until_closed()
        peer.close()
        assert wait_until(lambda: len(got) == 2)
    assert got == [("entry", (peer.call_sid, "agent", "Hello there")), ("end", "twilio stop")]
    import inspect

    from voicebridge import MediaSession
    family = ("on_transcript_entry", "on_keypad", "on_transfer", "on_end")
    session_params, bridge_params = (inspect.signature(cls).parameters for cls in (MediaSession, VoiceBridge))
    assert all(name in session_params and name in bridge_params for name in family)
    for old in ("on_transcript", "on_dtmf", "on_call_end"):
        with pytest.warns(DeprecationWarning, match=f"{old}.* is deprecated: use "):
            VoiceBridge(Flask(old), CFG, **{old: lambda *a: None})
    for old in ("on_transcript", "on_dtmf"):
        with pytest.warns(DeprecationWarning, match=f"MediaSession\\({old}=.* is deprecated"):
            MediaSession(FakeTwilio(), CFG, **{old: lambda *a: None})


def test_cap_refuses_call_n_plus_one_and_admits_after_one_ends() -> None:
    app, bridge = make_app(max_calls=1)
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
        second.start()  # refused at its start: the upgrade alone takes no slot
        _, code, reason = second.read_until_closed()
        second.close()
        assert code == 1013 and "capacity" in reason
        after = twiml(client.post("/voice/after", data={"CallSid": second.call_sid}).data)
        assert [child.tag for child in after] == ["Say", "Hangup"]  # the caller hears why, once
        assert [child.tag for child in twiml(client.post("/voice/after", data={"CallSid": second.call_sid}).data)
                ] == ["Hangup"]
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


def test_the_models_vad_ignored_is_counted_by_reason() -> None:
    metrics = BridgeMetrics(lambda: 0)
    metrics.record_call({"server_speech_ignored": 3, "server_speech_ignored_echo": 2,
                         "server_speech_ignored_backchannel": 1, "backchannels": 4})
    values = metric_values(metrics.exposition().decode())
    assert values[("voicebridge_server_speech_ignored_total", (("reason", "echo"),))] == 2
    assert values[("voicebridge_server_speech_ignored_total", (("reason", "backchannel"),))] == 1
    assert values[("voicebridge_server_speech_ignored_total", (("reason", "tone"),))] == 0
    assert values[("voicebridge_backchannels_total", ())] == 4


def test_the_ducks_clears_and_the_frames_they_took_back_are_counted() -> None:
    metrics = BridgeMetrics(lambda: 0)
    metrics.record_call({"duck_clears": 3, "frames_taken_back": 7, "frames_resent": 5, "duck_releases": 2})
    values = metric_values(metrics.exposition().decode())
    assert values[("voicebridge_duck_clears_total", ())] == 3
    assert values[("voicebridge_frames_taken_back_total", ())] == 7
    assert values[("voicebridge_frames_resent_total", ())] == 5


# ---------------------------------------------------------------------------- shared state (gunicorn -w N)
def transferring_realtime() -> Any:
    """A connector whose fake says one frame, then transfers the caller to "support"."""
    def connector(config: BridgeConfig) -> FakeRealtime:
        fake = FakeRealtime()
        said: list[str] = []

        def on_event(event: dict[str, Any]) -> None:
            if event["type"] == "response.create" and not said:
                said.append("once")
                fake.response("resp_1", "item_1", [b"\x7f" * 160], done=False)
                fake.push({"type": "response.output_audio.done", "response_id": "resp_1", "item_id": "item_1",
                           "output_index": 0, "content_index": 0})
                fake.push(rt_function_call("resp_1", "c1", "transfer_call", {"destination": "support"}))
                fake.push(rt_response_done("resp_1"))
        fake.on_client_event = on_event
        return fake
    return connector


def signed_post(app: Flask, path: str, form: dict[str, str]) -> Any:
    return app.test_client().post(path, data=form, headers={"X-Twilio-Signature": sign(f"http://localhost{path}", form)})


def test_two_apps_sharing_a_state_dir_act_as_one_bridge(tmp_path: Path) -> None:
    """Two apps (as two gunicorn workers would be) on one state_dir: one cap, single-use tokens
    across both, and a transfer decided in one answered by the other."""
    state = str(tmp_path / "state")
    config = CFG.replace(transfer_targets={"support": "+15551234567"}, end_call_timeout_s=0.3)
    app_a, bridge_a = make_app(auth_token=TOKEN, max_calls=1, state_dir=state)
    ended: list[dict[str, Any]] = []
    app_b, bridge_b = make_app(auth_token=TOKEN, max_calls=1, state_dir=state, connect=transferring_realtime(),
                               on_end=lambda s: ended.append(s.metrics))
    bridge_b.config = config
    token = issue_token(app_a)  # the webhook reached worker A ...
    other = issue_token(app_b, dict(FORM, CallSid="CA" + "9" * 32))  # a second call, answered before the first
    with running(app_a) as server_a, running(app_b) as server_b:
        url_a, url_b = (f"ws://127.0.0.1:{s.port}/media" for s in (server_a, server_b))
        call = TwilioPeer(url_b, {"x-twilio-signature": sign(url_b)})  # ... and the stream worker B
        call.start(vb_token=token)
        assert call.wait_media(1)
        assert (bridge_b.active_calls, bridge_a.active_calls, bridge_a.slots.active_all) == (1, 0, 1)
        health = app_a.test_client().get("/healthz").get_json()
        assert health == {"status": "ok", "active_calls": 0, "active_calls_all": 1, "max_calls": 1}
        busy = twiml(signed_post(app_a, "/voice", FORM).data)  # the cap is full on B: A refuses too
        assert [child.tag for child in busy] == ["Say", "Hangup"]
        over = TwilioPeer(url_a, {"x-twilio-signature": sign(url_a)}, sid="9")
        over.start(vb_token=other)  # a valid token, but the cap is full: refused at its start
        _, code, reason = over.read_until_closed()
        over.close()
        assert code == 1013 and "capacity" in reason
        call.read_until_closed()  # the agent transfers; B ends the stream
        call.close()
        assert wait_until(lambda: ended and bridge_a.slots.active_all == 0)
        assert ended[0]["close_reason"] == "transferred to support"
        after = {"CallSid": call.call_sid, "AccountSid": "ACabc", "CallStatus": "in-progress"}
        dial = twiml(signed_post(app_a, "/voice/after", after).data)  # Twilio's next request reaches A
        assert dial.find("Dial").find("Number").text == "+15551234567"
        again = twiml(signed_post(app_b, "/voice/after", after).data)
        assert [child.tag for child in again] == ["Hangup"]  # read once, whichever worker asks
        replay = TwilioPeer(url_a, {"x-twilio-signature": sign(url_a)})  # the same token, now on A
        replay.start(vb_token=token)
        replayed, _, _ = replay.read_until_closed()
        replay.close()
    assert [m["event"] for m in replayed] == []
    values = metric_values(app_a.test_client().get("/metrics").get_data(as_text=True))
    assert values[("voicebridge_calls_refused_total", (("stage", "token"),))] == 1
    assert values[("voicebridge_calls_refused_total", (("stage", "webhook"),))] == 1
    assert values[("voicebridge_calls_refused_total", (("stage", "websocket"),))] == 1


@pytest.mark.parametrize("removed", ["slots", "."])
def test_voice_and_healthz_keep_working_when_the_state_directory_is_deleted_under_a_live_call(
        tmp_path: Path, removed: str) -> None:
    state = tmp_path / "state"
    app, bridge = make_app(max_calls=2, state_dir=str(state))
    client = app.test_client()
    with running(app) as server:
        live = TwilioPeer(server.ws_url, sid="1")
        live.start()
        assert live.wait_media(1)
        shutil.rmtree(state / removed)  # what a temp cleaner's age rule did
        assert twiml(client.post("/voice", data=FORM).data).find("Connect/Stream") is not None
        health = client.get("/healthz")
        assert health.status_code == 200 and health.get_json()["active_calls_all"] == 1  # still counted
        second = TwilioPeer(server.ws_url, sid="2")
        second.start()
        assert second.wait_media(1)
        assert twiml(client.post("/voice", data=FORM).data).find("Say") is not None  # the cap of 2 holds
        for peer in (live, second):
            peer.stop()
            peer.read_until_closed()
            peer.close()
        assert wait_until(lambda: bridge.slots.active_all == 0)
    shutil.rmtree(state / "slots")
    (state / "slots").write_text("not a directory")  # a state that cannot be repaired: still never a 500
    assert client.post("/voice", data=FORM).status_code == 200
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json()["status"] == "state directory failing"


# ---------------------------------------------------------------------------- drain
@pytest.mark.parametrize("trigger", ["drain()", "drain file"])
def test_draining_keeps_the_calls_it_answered_and_refuses_new_ones_after_the_grace(tmp_path: Path,
                                                                                   trigger: str) -> None:
    """A drain drops no call it answered: the stream of a call whose webhook was answered before
    the drain is admitted; webhooks in the grace (the load balancer's time to see /healthz 503)
    are answered normally and their streams admitted; after it, webhooks get the refusal and an
    upgrade that can no longer carry a valid token is closed with 1013."""
    drain_file = tmp_path / "drain"
    ended: list[dict[str, Any]] = []
    app, bridge = make_app(auth_token=TOKEN, connect=speaking_realtime(chunks=200), on_end=lambda s: ended.append(s.metrics),
                           drain_file=str(drain_file))
    client = app.test_client()
    assert client.get("/healthz").status_code == 200 and not bridge.draining
    answered = issue_token(app, dict(FORM, CallSid="CA" + "2" * 32))  # answered before the drain
    with running(app) as server:
        url = f"ws://127.0.0.1:{server.port}/media"
        signed = {"x-twilio-signature": sign(url)}
        live = TwilioPeer(url, signed, sid="1")
        live.start(vb_token=issue_token(app))
        live.wait_media(2)
        if trigger == "drain()":
            bridge.drain()
            bridge.drain()  # idempotent
        else:
            drain_file.touch()
            assert wait_until(lambda: bridge.draining, timeout=3)  # looked for at most once a second
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.get_json() == {"status": "draining", "active_calls": 1, "active_calls_all": 1,
                                     "max_calls": None}
        in_grace = issue_token(app, dict(FORM, CallSid="CA" + "3" * 32))  # answered normally
        late = []
        for sid, token in (("2", answered), ("3", in_grace)):
            peer = TwilioPeer(url, signed, sid=sid)
            peer.start(vb_token=token)
            assert peer.wait_media(1)  # admitted: the caller hears the agent
            late.append(peer)
        bridge.drain_grace_s = -60.0  # as if the grace and every token it issued had long run out
        refused = twiml(signed_post(app, "/voice", dict(FORM, CallSid="CA" + "4" * 32)).data)
        assert [child.tag for child in refused] == ["Say", "Hangup"]
        too_late = TwilioPeer(url, signed, sid="4")
        _, code, reason = too_late.read_until_closed()
        too_late.close()
        assert code == 1013 and "draining" in reason
        live.media(5)
        assert live.wait_media(5)  # the live call goes on
        for peer in (live, *late):
            peer.stop()
            _, code, _ = peer.read_until_closed()
            peer.close()
            assert code == 1000
        assert wait_until(lambda: len(ended) == 3)
    assert all(e["close_reason"] == "twilio stop" and e["accounting_ok"] for e in ended)
    assert bridge.draining and client.get("/healthz").status_code == 503  # one-way
    values = metric_values(client.get("/metrics").get_data(as_text=True))
    assert values[("voicebridge_calls_refused_total", (("stage", "draining"),))] == 2
    assert values[("voicebridge_calls_total", ())] == 3


def test_draining_without_tokens_admits_streams_only_while_their_webhooks_could_be_answered() -> None:
    app, bridge = make_app()  # no auth token: no stream token proves when a call was answered
    with running(app) as server:
        bridge.drain()
        assert twiml(app.test_client().post("/voice", data=FORM).data).find("Connect/Stream") is not None
        peer = TwilioPeer(server.ws_url, sid="1")
        peer.start()
        assert peer.wait_media(1)  # in the grace: admitted
        peer.stop()
        peer.read_until_closed()
        peer.close()
        bridge.drain_grace_s = -60.0
        late = TwilioPeer(server.ws_url, sid="2")
        _, code, reason = late.read_until_closed()
        late.close()
        assert code == 1013 and "draining" in reason


# ---------------------------------------------------------------------------- metrics over processes
def worker_metrics(multiproc_dir: str, calls: int, hold: bool, ready: Any, release: Any, report: Any) -> None:
    """One 'worker': a bridge records ``calls`` finished calls, holds one live call if ``hold``,
    and reports its own /metrics (which, in multiprocess mode, covers every worker)."""
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == multiproc_dir
    app, bridge = make_app()
    for _ in range(calls):
        bridge.metrics.calls.inc()
        bridge.metrics.record_call({"frames_sent": 10, "tx_gap_dev_hist": [3, 1], "openai_errors": {"x": 1}})
    if hold:
        assert bridge.slots.try_enter()
        bridge.metrics.update_active()
    ready.put(os.getpid())
    release.wait(WAIT_S)
    if hold:  # the call ends, then this worker scrapes
        bridge.slots.leave()
        bridge.metrics.update_active()
    report.put(app.test_client().get("/metrics").get_data(as_text=True))


def test_metrics_add_up_over_worker_processes_in_multiprocess_mode(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """prometheus_client picks its mode when first imported, so the workers are fresh (spawned)
    processes started with PROMETHEUS_MULTIPROC_DIR set, as gunicorn.conf.py arranges."""
    from prometheus_client import multiprocess

    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    ctx = multiprocessing.get_context("spawn")
    ready, report = ctx.Queue(), ctx.Queue()
    releases = [ctx.Event(), ctx.Event()]
    workers = [ctx.Process(target=worker_metrics, args=(str(metrics_dir), calls, hold, ready, release, report),
                           daemon=True)
               for calls, hold, release in ((2, True, releases[0]), (3, False, releases[1]))]
    try:
        for worker in workers:
            worker.start()
        pids = [ready.get(timeout=WAIT_S) for _ in workers]
        releases[1].set()  # the second worker scrapes while the first holds a live call
        live = metric_values(report.get(timeout=WAIT_S))
        releases[0].set()
        first = metric_values(report.get(timeout=WAIT_S))
        for worker in workers:
            worker.join(WAIT_S)
            assert worker.exitcode == 0
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
            worker.join(5)
    assert live[("voicebridge_calls_total", ())] == 5
    assert live[("voicebridge_frames_sent_total", ())] == 50
    assert live[("voicebridge_openai_errors_total", (("code", "x"),))] == 5
    assert live[("voicebridge_tx_gap_deviation_seconds_count", ())] == 20
    assert live[("voicebridge_tx_gap_deviation_seconds_bucket", (("le", "0.0001"),))] == 15
    assert live[("voicebridge_active_calls", ())] == 1  # the first worker's live call, seen from the second
    assert first[("voicebridge_active_calls", ())] == 0 and first[("voicebridge_calls_total", ())] == 5
    for pid in pids:
        multiprocess.mark_process_dead(pid, str(metrics_dir))  # what gunicorn.conf.py's child_exit does
    assert not list(metrics_dir.glob("gauge_livesum_*.db"))


def test_a_failing_token_store_refuses_the_stream_rather_than_admit_it_unchecked() -> None:
    class BrokenStore:
        def claim(self, name: str, expires: float, now: float) -> bool:
            raise OSError(28, "No space left on device")

    dials: list[BridgeConfig] = []
    app, bridge = make_app(auth_token=TOKEN, connect=lambda config: dials.append(config) or FakeRealtime())
    bridge.tokens.store = BrokenStore()
    token = issue_token(app)
    with running(app) as server:
        url = f"ws://127.0.0.1:{server.port}/media"
        peer = TwilioPeer(url, {"x-twilio-signature": sign(url)})
        peer.start(vb_token=token)
        messages, _, _ = peer.read_until_closed()
        peer.close()
    assert messages == [] and dials == []
    values = metric_values(app.test_client().get("/metrics").get_data(as_text=True))
    assert values[("voicebridge_calls_refused_total", (("stage", "token"),))] == 1


def test_an_apps_own_healthz_on_the_bridges_path_is_named_not_silent(caplog: pytest.LogCaptureFixture) -> None:
    """Only one of two routes on a path is served: the drain's 503 could silently never reach the
    load balancer. Said once, whether the app's route came before the mount or after it."""
    before = Flask("before")
    before.add_url_rule("/healthz", "my_health", lambda: "fine")
    VoiceBridge(before, CFG)
    assert "own route(s) /healthz (my_health) are on the bridge's path" in caplog.text
    caplog.clear()
    after = Flask("after")
    VoiceBridge(after, CFG)
    after.add_url_rule("/healthz", "late_health", lambda: "fine")
    assert "own route" not in caplog.text
    after.test_client().get("/voice")
    after.test_client().get("/voice")
    assert caplog.text.count("own route(s) /healthz (late_health)") == 1
    caplog.clear()
    prefixed = Flask("prefixed")
    prefixed.add_url_rule("/healthz", "my_health", lambda: "fine")
    VoiceBridge(prefixed, CFG, url_prefix="/phone")  # the fix the warning names: no clash, no warning
    assert "own route" not in caplog.text
    assert prefixed.test_client().get("/phone/healthz").get_json()["status"] == "ok"


def test_an_unsigned_simulated_call_to_a_signing_bridge_says_how_to_sign() -> None:
    from voicebridge.dev.sim import SimulatedCaller

    app, _ = make_app(auth_token=TOKEN)
    with running(app) as server:
        report = SimulatedCaller(server.ws_url, "silence:100", max_seconds=5).run()
    assert report.ended_by == "error"
    assert any("403" in e and "--auth-token" in e for e in report.errors), report.errors


def _upgrade_response(port: int, path: str, extensions: str) -> str:
    """The head of the server's answer to a WebSocket upgrade offering ``extensions``."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: {extensions}\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                break
            head += chunk
    return head.split(b"\r\n\r\n")[0].decode("latin-1")


@pytest.mark.parametrize("path", ["/media", "/telnyx/media"])
def test_media_streams_decline_permessage_deflate(path: str) -> None:
    """A client offering compression (as browsers and the websockets library do; Twilio does not)
    gets a plain stream: the upgrade succeeds and the answer accepts no extension."""
    app, _bridge = make_app(carrier=("twilio", "telnyx"))
    with running(app) as server:
        head = _upgrade_response(server.port, path, "permessage-deflate; client_max_window_bits")
    assert head.startswith("HTTP/1.1 101"), head
    assert "sec-websocket-extensions" not in head.lower(), head


def test_a_bridge_for_the_hosted_service_without_a_key_says_so_when_mounted(caplog: pytest.LogCaptureFixture) -> None:
    """(A new user's first hour: BridgeConfig(api_key="") mounted silently, and the first caller
    got 4 s of silence and the apology.) A local server's URL, a key, a token or a connector of
    one's own: nothing to say."""
    with caplog.at_level(logging.WARNING, logger="voicebridge.serving.flaskext"):
        VoiceBridge(Flask("a"), BridgeConfig(api_key=""))
        VoiceBridge(Flask("b"), BridgeConfig(api_key="sk-test"))
        VoiceBridge(Flask("c"), BridgeConfig(openai_url="ws://127.0.0.1:9/v1/realtime"))
        VoiceBridge(Flask("d"), BridgeConfig(token_provider=lambda: "t", azure_endpoint="https://x.openai.azure.com",
                                             azure_deployment="rt"))
    warned = [r.getMessage() for r in caplog.records if "no api_key" in r.getMessage()]
    assert len(warned) == 1 and "wss://api.openai.com/v1/realtime" in warned[0] and "sk-" not in caplog.text
