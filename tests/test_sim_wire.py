"""The simulated caller's wire formats (sans-IO): each carrier's messages, and its strictness."""
from __future__ import annotations

import base64
import json
import urllib.parse

import pytest
import websocket
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from voicebridge.carrier.telnyx import adapter as telnyx
from voicebridge.carrier.telnyx import protocol as tx
from voicebridge.carrier.twilio import protocol as tw
from voicebridge.carrier.seam import Media, Start, Stop
from voicebridge.dev.sim.caller import _build_parser
from voicebridge.dev.sim.webhook import place_telnyx
from voicebridge.dev.sim.wire import TelnyxWire, TwilioWire

TEXT = websocket.ABNF.OPCODE_TEXT


def test_each_wire_speaks_what_its_carriers_parser_reads():
    for wire, parse in ((TwilioWire(), tw.parse), (TelnyxWire(), tx.parse)):
        start = parse(json.dumps(wire.numbered(1, wire.start({"tenant": "acme"}))))
        assert isinstance(start, Start) and (start.stream_sid, start.call_sid) == (wire.stream_sid, wire.call_sid)
        assert start.custom_parameters == {"tenant": "acme"}
        media = parse(json.dumps(wire.numbered(2, wire.media(3, 20, b"\x01" * 160))))
        assert media == Media(wire.stream_sid, b"\x01" * 160, 60, "inbound")
        assert isinstance(parse(json.dumps(wire.numbered(3, wire.stop()))), Stop)


def test_the_telnyx_wire_accepts_telnyx_outbound_and_refuses_twilios_shape():
    wire, out = TelnyxWire(), tx.Outbound("ignored")
    for message in (out.media(b"\xff" * 160), out.mark("g1:1"), out.clear()):
        msg, problem = wire.check(TEXT, message)
        assert problem is None and msg == json.loads(message)
    twilio_shaped = tw.Outbound(wire.stream_sid)
    for message in (twilio_shaped.media(b"\xff" * 160), twilio_shaped.clear()):
        assert wire.check(TEXT, message)[1].startswith("telnyx:")
    assert wire.check(websocket.ABNF.OPCODE_BINARY, b"\xff")[1] == "telnyx: binary frame"
    assert "not base64" in wire.check(TEXT, '{"event":"media","media":{"payload":"***"}}')[1]


def test_the_twilio_wire_is_as_strict_as_before():
    wire = TwilioWire()
    out = tw.Outbound(wire.stream_sid)
    assert wire.check(TEXT, out.media(b"\xff" * 160))[1] is None
    assert wire.check(TEXT, tw.Outbound("MZother").clear())[1].startswith("31951 wrong streamSid")
    assert wire.check(websocket.ABNF.OPCODE_BINARY, b"x")[1] == "31950 binary frame"


def test_placing_a_telnyx_call_signs_the_webhook_and_wants_a_bidirectional_pcmu_stream():
    private = Ed25519PrivateKey.generate()
    raw = base64.b64encode(private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                 serialization.NoEncryption())).decode()
    public = base64.b64encode(private.public_key().public_bytes(serialization.Encoding.Raw,
                                                                serialization.PublicFormat.Raw)).decode()
    hooks = telnyx.TelnyxWebhooks(public)
    posted = []

    def post(url, body, headers, timeout):
        posted.append((url, body, headers))
        from voicebridge.carrier.seam import WebhookRequest
        assert hooks.verify(WebhookRequest(url, "POST", headers, body), websocket=False, now=1_800_000_000)
        form = dict(urllib.parse.parse_qsl(body.decode()))
        return telnyx.connect_texml("wss://h/telnyx/media", {"vb_token": "t", "CallSid": form["CallSid"]}).encode()

    placed = place_telnyx("wss://h/telnyx/media", raw, "v3:abc", "acct", 1_800_000_000, post=post)
    assert posted[0][0] == "https://h/telnyx/voice"
    assert (placed.stream_url, placed.custom_parameters, placed.headers) == (
        "wss://h/telnyx/media", {"vb_token": "t", "CallSid": "v3:abc"}, {})
    mp3 = telnyx.connect_texml("wss://h/telnyx/media", {}).replace(' bidirectionalMode="rtp"', "")
    with pytest.raises(ValueError, match="bidirectional"):
        place_telnyx("wss://h/telnyx/media", raw, "v3:abc", "acct", 1_800_000_000,
                     post=lambda *a: mp3.encode())


def test_voicebridge_call_takes_a_carrier():
    args = _build_parser().parse_args(["ws://127.0.0.1:5050/telnyx/media", "--carrier", "telnyx",
                                       "--telnyx-private-key", "abc"])
    assert (args.carrier, args.telnyx_private_key) == ("telnyx", "abc")
    assert _build_parser().parse_args(["ws://x/media"]).carrier == "twilio"


def test_verify_places_a_telnyx_call_through_the_signed_texml_webhook(monkeypatch):
    from flask import Flask

    from peers import running
    from voicebridge import BridgeConfig, VoiceBridge
    from voicebridge.dev import verify
    from voicebridge.dev.sim.report import CallReport
    from voicebridge.testing import FakeRealtime

    private = Ed25519PrivateKey.generate()
    raw = base64.b64encode(private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                 serialization.NoEncryption())).decode()
    public = base64.b64encode(private.public_key().public_bytes(serialization.Encoding.Raw,
                                                                serialization.PublicFormat.Raw)).decode()
    app = Flask("verify-telnyx")
    bridge = VoiceBridge(app, BridgeConfig(api_key="sk-test"), connect=FakeRealtime().connector, carrier="telnyx",
                         telnyx_public_key=public, public_url="http://127.0.0.1")
    dialed: dict = {}

    class Recorder:  # how the call is placed; the call itself is verify's other tests' business
        def __init__(self, url, script, **options):
            dialed.update(options, url=url)

        def run(self):
            return CallReport(url=dialed["url"], stream_sid="s", call_sid=dialed["call_sid"])

    monkeypatch.setattr("voicebridge.dev.sim.SimulatedCaller", Recorder)
    with running(app) as handle:
        media_url = handle.ws_url.replace("/media", "/telnyx/media")
        verify.run_remote(media_url, 20, None, auth_token=raw, webhook_url=handle.url + "/telnyx/voice",
                          carrier="telnyx")
    assert dialed["carrier"] == "telnyx" and dialed["url"].endswith("/telnyx/media")
    assert dialed["custom_parameters"]["vb_token"] and dialed["custom_parameters"]["CallSid"] == dialed["call_sid"]
    assert dialed["call_sid"].startswith("v3:")
    bridge.close()
