"""Placing a simulated call as Twilio does: signed webhook, then the signed stream with its token."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from voicebridge.dev import verify
from voicebridge.serving.app import Settings, create_app, serve
from voicebridge.dev.local.server import LocalRealtimeServer
from voicebridge.dev.sim import caller as sim_caller
from voicebridge.carrier.streamtoken import PARAMETER as TOKEN_PARAMETER
from voicebridge.dev.sim.webhook import parse_connect, signature, webhook_form, webhook_url_for
from voicebridge.carrier.twilio.twiml import connect_twiml, refusal_twiml

TOKEN = "test-auth-token-0123456789"


def test_urls_form_signatures_and_twiml_are_twilios():
    assert webhook_url_for("wss://voice.example.org/bridge/media") == "https://voice.example.org/bridge/voice"
    assert webhook_url_for("ws://127.0.0.1:5050/media") == "http://127.0.0.1:5050/voice"
    form = webhook_form("CA1", "AC1")
    url = "https://voice.example.org/voice?tenant=acme"
    assert RequestValidator(TOKEN).validate(url, form, signature(TOKEN, url, form))
    assert not RequestValidator("another-token").validate(url, form, signature(TOKEN, url, form))
    stream, params = parse_connect(connect_twiml("wss://voice.example.org/media", {"vb_token": "t1", "From": "+1"},
                                                 "https://voice.example.org/voice/after"))
    assert stream == "wss://voice.example.org/media" and params == {"vb_token": "t1", "From": "+1"}
    with pytest.raises(ValueError, match="no <Connect><Stream>.*all of our lines are busy"):
        parse_connect(refusal_twiml())


@pytest.fixture
def signed_app():
    """The example app with a Twilio auth token, on the local server (tone mode); call ends recorded."""
    ended: list[dict[str, Any]] = []
    done = threading.Event()

    def on_end(session: Any) -> None:
        ended.append(session.metrics)
        done.set()

    with LocalRealtimeServer(mode="tone", speed=8.0, tone_seconds=0.6) as local:
        app = create_app(Settings(openai_realtime_url=local.url, twilio_auth_token=TOKEN, greeting="hi"),
                         on_end=on_end)
        handle = serve(app, "127.0.0.1", 0)
        try:
            yield handle, ended, done
        finally:
            handle.shutdown()


def test_voicebridge_call_with_the_auth_token_is_admitted(signed_app, monkeypatch, capsys):
    handle, ended, done = signed_app
    script = ["--script", "wait_agent:3000,silence:100,hangup", "--max-seconds", "10"]
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    assert sim_caller.main([handle.ws_url, *script]) == 2  # unsigned: 403 at the upgrade
    assert "connect failed: Handshake status 403" in capsys.readouterr().out
    assert sim_caller.main([handle.ws_url, *script, "--auth-token", "a-wrong-token"]) == 2
    assert "answered HTTP 403 (wrong auth token" in capsys.readouterr().err
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)  # the flag's default
    assert sim_caller.main([handle.ws_url, *script]) == 0, capsys.readouterr()
    assert done.wait(10)
    [call] = ended
    assert call["close_reason"] == "twilio stop" and call["frames_sent"] > 0  # admitted: stream token redeemed


def test_verify_url_places_its_call_through_the_signed_webhook(signed_app, monkeypatch):
    handle, _, _ = signed_app
    dialed: dict[str, Any] = {}

    class Recorder:  # the call itself is verify's other tests' business: here, how it is placed
        def __init__(self, url: str, script: Any, **options: Any) -> None:
            dialed.update(options, url=url)

        def run(self) -> Any:
            from voicebridge.dev.sim.report import CallReport

            return CallReport(url=dialed["url"], stream_sid="MZ", call_sid=dialed["call_sid"])

    monkeypatch.setattr("voicebridge.dev.sim.SimulatedCaller", Recorder)
    verify.run_remote(handle.ws_url, 20, None, auth_token=TOKEN)
    assert dialed["url"] == handle.ws_url and dialed["custom_parameters"][TOKEN_PARAMETER]
    assert RequestValidator(TOKEN).validate(dialed["url"], {}, dialed["headers"]["X-Twilio-Signature"])
    assert dialed["custom_parameters"]["CallSid"] == dialed["call_sid"]
