"""VoiceBridge serving Telnyx beside Twilio: Ed25519-checked TeXML webhooks, /telnyx/media calls."""
from __future__ import annotations

import base64
import json
import logging
import time
import types
import urllib.parse
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import websocket
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask

from voicebridge import BridgeConfig, VoiceBridge
from voicebridge.testing import (TELNYX_STREAM_ID, FakeRealtime, telnyx_start, telnyx_stop, wait_until)

from peers import running

CFG = BridgeConfig(api_key="sk-test", lead_ms=0, transcription_model=None, reconnect_attempts=0, greeting_instructions=None)
CALL_ID = "v3:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ"
FORM = {"CallSid": CALL_ID, "AccountSid": "3e6f995f-85f7-4705-9741-53b116d28237", "From": "+13122010094",
        "To": "+13122123456", "CallStatus": "ringing"}
PRIVATE = Ed25519PrivateKey.generate()
PUBLIC = base64.b64encode(PRIVATE.public_key().public_bytes(serialization.Encoding.Raw,
                                                            serialization.PublicFormat.Raw)).decode()


def signed(body: bytes, at: float | None = None) -> dict[str, str]:
    ts = str(int(time.time() if at is None else at))
    return {"telnyx-signature-ed25519": base64.b64encode(PRIVATE.sign(ts.encode() + b"|" + body)).decode(),
            "telnyx-timestamp": ts, "Content-Type": "application/x-www-form-urlencoded"}


def make_app(**options: Any) -> tuple[Flask, VoiceBridge]:
    """Both carriers, each with its own check (one open beside one checked is refused)."""
    app = Flask("test")
    options.setdefault("connect", FakeRealtime().connector)
    options.setdefault("auth_token", "twilio-token-0123456789")
    bridge = VoiceBridge(app, CFG, carrier=("twilio", "telnyx"), telnyx_public_key=PUBLIC, **options)
    return app, bridge


def test_the_texml_webhook_is_answered_only_when_signed_by_the_account_key():
    app, bridge = make_app(public_url="https://bridge.example.com")
    client = app.test_client()
    body = urllib.parse.urlencode(FORM).encode()
    ok = client.post("/telnyx/voice?tenant=acme", data=body, headers=signed(body))
    assert ok.status_code == 200 and ok.mimetype == "text/xml"
    stream = ET.fromstring(ok.data).find("Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://bridge.example.com/telnyx/media"
    assert (stream.get("bidirectionalMode"), stream.get("bidirectionalCodec")) == ("rtp", "PCMU")
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params["tenant"] == "acme" and params["CallSid"] == CALL_ID and params["vb_token"]
    assert ET.fromstring(ok.data).find("Connect").get("action") == "https://bridge.example.com/telnyx/voice/after"
    refused = [client.post("/telnyx/voice", data=body, headers=headers) for headers in (
        {"Content-Type": "application/x-www-form-urlencoded"},  # unsigned
        signed(body, time.time() - 400),  # a replay
        {**signed(body), "telnyx-timestamp": str(int(time.time()) - 1)},  # its timestamp changed
    )]
    refused.append(client.post("/telnyx/voice", data=body + b"&x=1", headers=signed(body)))  # its body changed
    assert [r.status_code for r in refused] == [403, 403, 403, 403]
    bridge.close()


def test_both_carriers_keep_their_own_routes_and_checks():
    app, bridge = make_app(auth_token="twilio-token-0123456789")
    client = app.test_client()
    body = urllib.parse.urlencode(FORM).encode()
    assert client.post("/voice", data=body, headers=signed(body)).status_code == 403  # Telnyx's check is not Twilio's
    assert client.post("/telnyx/voice", data=body, headers=signed(body)).status_code == 200
    only = Flask("t2")
    VoiceBridge(only, CFG, carrier="telnyx", telnyx_public_key=PUBLIC).close()
    rules = {r.rule for r in only.url_map.iter_rules()}
    assert {"/telnyx/voice", "/telnyx/voice/after", "/telnyx/media"} <= rules
    assert not rules & {"/voice", "/voice/after", "/media"}
    with pytest.raises(ValueError):
        VoiceBridge(Flask("t4"), CFG, carrier="vonage")
    bridge.close()


def test_a_telnyx_call_over_the_media_socket_admitted_by_its_stream_token():
    ended: list[Any] = []
    app, bridge = make_app(public_url="http://127.0.0.1", on_end=ended.append)
    client = app.test_client()
    body = urllib.parse.urlencode(FORM).encode()
    answer = client.post("/telnyx/voice", data=body, headers=signed(body))
    stream = ET.fromstring(answer.data).find("Connect/Stream")
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    with running(app) as handle:
        url = handle.ws_url.replace("/media", "/telnyx/media")
        ws = websocket.create_connection(url, timeout=5)
        ws.send(json.dumps({"event": "connected", "version": "1.0.0"}))
        ws.send(json.dumps(telnyx_start(call_id=CALL_ID, params=params)))
        assert wait_until(lambda: bridge.active_calls == 1)
        ws.send(json.dumps(telnyx_stop(call_id=CALL_ID)))
        assert wait_until(lambda: len(ended) == 1)
        ws.close()
        session = ended[0]
        assert (session.carrier.name, session.call_sid, session.stream_sid) == ("telnyx", CALL_ID, TELNYX_STREAM_ID)
        assert session.custom_parameters == {k: v for k, v in params.items() if k != "vb_token"}  # ours stays ours
        replay = websocket.create_connection(url, timeout=5)  # the same token again: refused at its start
        replay.send(json.dumps(telnyx_start(call_id=CALL_ID, params=params)))
        opcode, data = replay.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        replay.close()
    assert len(ended) == 1 and bridge.active_calls == 0
    bridge.close()


def test_a_transferred_telnyx_call_is_dialed_at_its_after_request():
    app, bridge = make_app()
    client = app.test_client()
    ending = types.SimpleNamespace(call_sid=CALL_ID, log=logging.getLogger("test"))
    bridge._transferring(ending, "+15551234567")  # noqa: SLF001 - the session's on_transfer, as at a call's end
    body = urllib.parse.urlencode({"CallSid": CALL_ID}).encode()
    after = client.post("/telnyx/voice/after", data=body, headers=signed(body))
    assert ET.fromstring(after.data).find("Dial/Number").text == "+15551234567"
    again = client.post("/telnyx/voice/after", data=body, headers=signed(body))
    assert [e.tag for e in ET.fromstring(again.data)] == ["Hangup"]
    bridge.close()


def test_the_example_app_serves_telnyx_with_the_key_from_the_environment():
    from voicebridge.serving.app import Settings, create_app

    settings = Settings.from_env({"OPENAI_REALTIME_URL": "ws://127.0.0.1:1/v1/realtime", "STARTUP_CHECK": "0",
                                  "TELNYX_PUBLIC_KEY": PUBLIC, "VOICEBRIDGE_STREAM_SECRET": "s" * 40})
    assert "s" * 40 not in repr(settings)
    app = create_app(settings)
    client = app.test_client()
    body = urllib.parse.urlencode(FORM).encode()
    assert client.post("/telnyx/voice", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
                       ).status_code == 403
    answer = client.post("/telnyx/voice", data=body, headers=signed(body))
    assert answer.status_code == 200 and ET.fromstring(answer.data).find("Connect/Stream") is not None
    assert client.post("/voice", data=FORM).status_code == 404  # no Twilio token: its routes are not mounted
    app.extensions["voicebridge"].close()


def test_the_example_app_with_only_a_twilio_token_has_no_open_telnyx_routes():
    """A Twilio-only deploy: /telnyx/media unmounted, so no unsigned Telnyx stream runs a call on
    its OpenAI bill (it used to be mounted, unchecked, beside the checked /media)."""
    from voicebridge.serving.app import Settings, create_app

    app = create_app(Settings.from_env({"OPENAI_REALTIME_URL": "ws://127.0.0.1:1/v1/realtime", "STARTUP_CHECK": "0",
                                        "TWILIO_AUTH_TOKEN": "twilio-token-0123456789"}))
    rules = {r.rule for r in app.url_map.iter_rules()}
    assert {"/voice", "/voice/after", "/media"} <= rules and not {r for r in rules if r.startswith("/telnyx")}
    app.extensions["voicebridge"].close()


def test_one_carrier_checked_beside_one_open_is_refused_at_the_mount():
    """Its open routes would admit anyone: a Twilio token without the Telnyx key (or the other
    way round) with both carriers mounted is a ValueError naming the missing key; both open
    (local use) is only warned about."""
    for given, missing in (({"auth_token": "twilio-token-0123456789"}, "TELNYX_PUBLIC_KEY"),
                           ({"telnyx_public_key": PUBLIC}, "TWILIO_AUTH_TOKEN")):
        with pytest.raises(ValueError, match=f"would admit anyone. Give .*{missing}"):
            VoiceBridge(Flask("half"), CFG, carrier=("twilio", "telnyx"), connect=FakeRealtime().connector, **given)
    VoiceBridge(Flask("open"), CFG, carrier=("twilio", "telnyx"), connect=FakeRealtime().connector).close()


def test_each_carriers_stream_is_checked_its_own_way():
    """Both checked: an unsigned Twilio upgrade is refused (403), a Telnyx stream without the
    token its signed webhook issued is closed at its start."""
    app, bridge = make_app()
    with running(app) as handle:
        with pytest.raises(websocket.WebSocketBadStatusException, match="403"):
            websocket.create_connection(handle.ws_url, timeout=5)
        ws = websocket.create_connection(handle.ws_url.replace("/media", "/telnyx/media"), timeout=5)
        ws.send(json.dumps(telnyx_start(call_id=CALL_ID)))
        opcode, _ = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        ws.close()
    assert bridge.active_calls == 0
    bridge.close()
