"""The carrier seam: Twilio's adapter is exactly the modules it delegates to, Telnyx's fits the same
interface, and a carrier's events are the bridge's (one set of classes for every carrier)."""
from __future__ import annotations

import json

from twilio.request_validator import RequestValidator

from voicebridge.carrier import seam as carrier
from voicebridge.carrier.telnyx import adapter as telnyx
from voicebridge.carrier.twilio import twiml
from voicebridge.carrier.twilio import protocol as tw
from voicebridge.carrier.seam import Carrier, CarrierWebhooks, WebhookRequest
from voicebridge.testing import twilio_dtmf, twilio_mark, twilio_media, twilio_start, twilio_stop
from voicebridge.carrier.twilio.adapter import TWILIO, TwilioWebhooks

TOKEN = "0123456789abcdef0123456789abcdef"


def test_both_carriers_fit_the_interfaces():
    streams: list[Carrier] = [TWILIO, telnyx.TELNYX]
    hooks: list[CarrierWebhooks] = [TwilioWebhooks(None), telnyx.TelnyxWebhooks(None)]
    assert [s.name for s in streams] == [h.name for h in hooks] == ["twilio", "telnyx"]
    assert tw.Start is carrier.Start and tw.Media is carrier.Media  # old import paths name the same classes


def test_twilio_adapter_parses_and_encodes_as_twilio_protocol():
    for msg in (twilio_start(params={"a": "b"}), twilio_media(b"\x01" * 160), twilio_mark("m1"), twilio_dtmf("5"),
                twilio_stop(), {"event": "nope"}):
        text = json.dumps(msg)
        assert TWILIO.parse(text) == tw.parse(text)
    out, ref = TWILIO.outbound("MZ1"), tw.Outbound("MZ1")
    assert (out.media(b"\xff" * 160), out.mark("g1:2"), out.clear()) == (ref.media(b"\xff" * 160), ref.mark("g1:2"),
                                                                          ref.clear())
    assert TWILIO.safe_id("x" * 100) == tw.safe_sid("x" * 100)


def test_twilio_webhooks_answer_with_the_same_twiml():
    hooks = TwilioWebhooks(TOKEN)
    assert hooks.connect("wss://h/media", {"a": "b"}, "https://h/voice/after") == \
        twiml.connect_twiml("wss://h/media", {"a": "b"}, "https://h/voice/after")
    assert hooks.transfer("+15551234567") == twiml.transfer_twiml("+15551234567")
    assert (hooks.hangup(), hooks.refusal()) == (twiml.hangup_twiml(), twiml.refusal_twiml())
    form = {"CallSid": "CA1", "From": "+1", "To": "+2"}
    assert hooks.stream_parameters(form, {"t": "x"}) == twiml.stream_parameters(form, {"t": "x"})
    assert hooks.call_id(form) == "CA1"


def test_twilio_webhooks_check_x_twilio_signature_over_url_and_form():
    hooks, validator = TwilioWebhooks(TOKEN), RequestValidator(TOKEN)
    url, form = "https://bridge.example.com/voice?tenant=acme", {"CallSid": "CA1", "From": "+1"}
    sig = validator.compute_signature(url, form)
    webhook = WebhookRequest(url, "POST", {"X-Twilio-Signature": sig}, b"", form)
    assert hooks.verify(webhook, websocket=False, now=0)
    assert not hooks.verify(WebhookRequest(url, "POST", {"X-Twilio-Signature": sig}, b"", {**form, "To": "+2"}),
                            websocket=False, now=0)
    assert not hooks.verify(WebhookRequest(url, "POST", {}, b"", form), websocket=False, now=0)
    ws_url = "wss://bridge.example.com/media"
    upgrade = WebhookRequest(ws_url, "GET", {"X-Twilio-Signature": validator.compute_signature(ws_url, {})})
    assert hooks.verify(upgrade, websocket=True, now=0)
    assert TwilioWebhooks(None).verify(WebhookRequest(url, "POST", {}), websocket=False, now=0)


def test_safe_id_passes_every_carriers_ids_and_quotes_anything_else():
    for value in ("MZ0123456789abcdef0123456789abcdef", "32DE0DEA-53CB-4B21-89A4-9E1819C043BC",
                  "v3:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ"):
        assert carrier.safe_id(value) == value
    assert carrier.safe_id("a\nb c" * 50) == repr(("a\nb c" * 50)[:carrier.SAFE_CHARS])
