"""A whole simulated Telnyx call: the caller speaking Telnyx's frames -> the signed TeXML webhook ->
the example app's /telnyx/media -> MediaSession on the Telnyx carrier -> the local server."""
from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from voicebridge.dev.appcall import simulated_call
from voicebridge.serving.app import Settings
from voicebridge.dev.local.server import LocalRealtimeServer

SCRIPT = ("wait_agent:5000,wait_quiet:400,say:What can you tell me?,wait_agent:6000,interrupt:300:Stop please,"
          "wait_quiet:600,dtmf:5,hangup")


def test_a_telnyx_call_through_the_app_with_a_barge_in():
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    settings = Settings(telnyx_public_key=base64.b64encode(public).decode())
    with LocalRealtimeServer(mode="tone", speed=8.0, tone_seconds=1.2) as local:
        report, bridge = simulated_call(local.url, SCRIPT, settings, carrier="telnyx",
                                        dial_secret=base64.b64encode(raw).decode(), max_seconds=30)
        stats = local.stats()
    assert bridge is not None and report.errors == [] and report.invalid_messages == 0
    assert bridge["call_sid"].startswith("v3:") and bridge["close_reason"] == "twilio stop"
    # greeting heard, then the answer; every frame exactly 160 bytes, in order, none lost or repeated
    assert report.frames_received > 50 and set(report.frame_sizes) == {160}
    tone = report.tone
    assert len(tone["responses"]) >= 2 and tone["gaps"] == 0 and tone["repeats"] == 0
    assert tone["out_of_order"] == 0 and tone["partial"] == 0
    # the interruption: Telnyx's clear, the model told what was heard
    assert len(report.interruptions) == 1 and report.interruptions[0].clear_ms is not None
    assert bridge["barge_in_events"] == 1 and bridge["clears_sent"] == 1 + bridge["duck_clears"] == report.clears
    assert len(stats["truncations"]) == 1 and "invalid_value" not in stats["errors"]
    # marks came back in Telnyx's shape; the keypad digit arrived; nothing malformed either way
    assert bridge["marks_sent"] > 0 and bridge["marks_echoed"] > 0
    assert not bridge["protocol_errors"], bridge["protocol_errors"]
    # every frame accounted for
    assert bridge["accounting_ok"] and bridge["first_frame_bytes"] == 160
    assert bridge["frames_enqueued"] == bridge["frames_sent"] + bridge["frames_flushed"] + bridge["frames_dropped"]
    assert bridge["frames_sent"] == report.frames_received
