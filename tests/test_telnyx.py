"""Telnyx webhooks: TeXML answers, and the Ed25519 signature check with real keys made here."""
from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from voicebridge.carrier.telnyx import adapter as telnyx
from voicebridge.carrier.seam import WebhookRequest
from voicebridge.carrier.telnyx.adapter import Signature

NOW = 1_790_000_000.0
BODY = b"CallSid=v3%3Aabc&From=%2B13122010094&To=%2B13122123456&CallStatus=ringing"


def keypair() -> tuple[Ed25519PrivateKey, str]:
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private, base64.b64encode(raw).decode()


def signed(private: Ed25519PrivateKey, body: bytes, timestamp: float) -> dict[str, str]:
    """The two headers Telnyx sends: a signature of ``timestamp|body``."""
    ts = str(int(timestamp))
    signature = private.sign(ts.encode() + b"|" + body)
    return {"telnyx-signature-ed25519": base64.b64encode(signature).decode(), "telnyx-timestamp": ts}


def request(headers: dict[str, str], body: bytes = BODY) -> WebhookRequest:
    return WebhookRequest(url="https://bridge.example.com/telnyx/voice", method="POST", headers=headers, body=body)


def test_a_signature_by_the_accounts_key_over_timestamp_and_body_is_valid():
    private, public = keypair()
    hooks = telnyx.TelnyxWebhooks(public)
    assert hooks.enabled
    assert hooks.check(request(signed(private, BODY, NOW - 10)), NOW) is Signature.VALID
    assert hooks.verify(request(signed(private, BODY, NOW)), websocket=False, now=NOW)


def test_anything_else_is_refused_with_its_reason():
    private, public = keypair()
    other, _ = keypair()
    hooks = telnyx.TelnyxWebhooks(public)
    good = signed(private, BODY, NOW)
    cases = [
        (request(good, BODY + b"&x=1"), Signature.INVALID),  # body changed
        (request(signed(other, BODY, NOW)), Signature.INVALID),  # another key
        (request({**good, "telnyx-timestamp": str(int(NOW) + 1)}), Signature.INVALID),  # timestamp changed
        (request(signed(private, BODY, NOW - 301)), Signature.STALE),  # a replay, five minutes on
        (request(signed(private, BODY, NOW + 301)), Signature.STALE),
        (request({"telnyx-timestamp": str(int(NOW))}), Signature.MISSING),
        (request({"telnyx-signature-ed25519": good["telnyx-signature-ed25519"]}), Signature.MISSING),
        (request({**good, "telnyx-signature-ed25519": "not base64!"}), Signature.MALFORMED),
        (request({**good, "telnyx-signature-ed25519": base64.b64encode(b"short").decode()}), Signature.MALFORMED),
        (request({**good, "telnyx-timestamp": "12a"}), Signature.MALFORMED),
        (request({**good, "telnyx-timestamp": "\u0661\u0662"}), Signature.MALFORMED),  # non-ASCII digits
    ]
    for req, outcome in cases:
        assert hooks.check(req, NOW) is outcome, (req.headers, outcome)
        assert not hooks.verify(req, websocket=False, now=NOW)


def test_the_key_may_be_given_as_its_der_form_and_a_wrong_key_is_a_startup_error():
    private, public = keypair()
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    hooks = telnyx.TelnyxWebhooks(base64.b64encode(der).decode())
    assert hooks.check(request(signed(private, BODY, NOW)), NOW) is Signature.VALID
    for bad in ("not base64!", base64.b64encode(b"x" * 31).decode()):
        with pytest.raises(ValueError):
            telnyx.TelnyxWebhooks(bad)


def test_without_a_key_nothing_is_checked_and_upgrades_are_left_to_the_stream_token():
    assert telnyx.TelnyxWebhooks(None).verify(request({}), websocket=False, now=NOW)
    _, public = keypair()
    assert telnyx.TelnyxWebhooks(public).verify(request({}), websocket=True, now=NOW)


def test_connect_texml_is_a_bidirectional_pcmu_stream_with_parameters():
    xml = telnyx.connect_texml("wss://bridge.example.com/telnyx/media", {"tenant": "a&b", "vb_token": "1.n.s"},
                               "https://bridge.example.com/telnyx/voice/after")
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?><Response>')
    root = ET.fromstring(xml)
    connect = root.find("Connect")
    assert connect is not None and connect.get("action") == "https://bridge.example.com/telnyx/voice/after"
    stream = connect.find("Stream")
    assert stream is not None and stream.attrib == {"url": "wss://bridge.example.com/telnyx/media",
                                                    "bidirectionalMode": "rtp", "bidirectionalCodec": "PCMU",
                                                    "codec": "PCMU"}
    assert {p.get("name"): p.get("value") for p in stream.findall("Parameter")} == {"tenant": "a&b",
                                                                                    "vb_token": "1.n.s"}


def test_transfer_hangup_and_refusal_texml():
    assert ET.fromstring(telnyx.transfer_texml("+15551234567")).find("Dial/Number").text == "+15551234567"
    assert ET.fromstring(telnyx.transfer_texml("sip:desk@example.com")).find("Dial/Sip").text == "sip:desk@example.com"
    assert [e.tag for e in ET.fromstring(telnyx.hangup_texml())] == ["Hangup"]
    refusal = ET.fromstring(telnyx.refusal_texml("busy <now>"))
    assert [e.tag for e in refusal] == ["Say", "Hangup"] and refusal.find("Say").text == "busy <now>"


def test_stream_parameters_carry_query_args_and_the_calls_context_bounded():
    form = {"CallSid": "v3:abc", "From": "+1312", "To": "+1313", "CallStatus": "ringing"}
    params = telnyx.stream_parameters(form, {"tenant": "acme", "big": "x" * 600})
    assert params == {"tenant": "acme", "CallSid": "v3:abc", "From": "+1312", "To": "+1313"}
