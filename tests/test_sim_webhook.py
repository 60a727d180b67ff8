"""Placing a simulated call as Twilio does: signed webhook, then the signed stream with its token."""
from __future__ import annotations

import threading
import urllib.parse
from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from voicebridge.dev import verify
from voicebridge.serving.app import Settings, create_app, serve
from voicebridge.dev.local.server import LocalRealtimeServer
from voicebridge.dev.sim import caller as sim_caller
from voicebridge.serving.streamtoken import PARAMETER as TOKEN_PARAMETER
from voicebridge.dev.sim.webhook import (NextVerbs, Placement, connect_action, follow_action, parse_connect,
                                         parse_next, signature, webhook_form, webhook_url_for)
from voicebridge.carrier.twilio.twiml import connect_twiml, refusal_twiml

TOKEN = "test-auth-token-0123456789"


def test_urls_form_signatures_and_twiml_are_twilios():
    assert webhook_url_for("wss://voice.example.org/bridge/media") == "https://voice.example.org/bridge/voice"
    assert webhook_url_for("ws://127.0.0.1:5050/media") == "http://127.0.0.1:5050/voice"
    assert webhook_url_for("ws://127.0.0.1:5050/voice") == "http://127.0.0.1:5050/voice"  # (not /voice/voice)
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


# -- after the stream: <Connect action> ------------------------------------------------------------
ACTION = "https://voice.example.org/voice/after"


def test_the_after_stream_answer_is_read_verb_by_verb():
    from voicebridge.carrier.twilio.twiml import hangup_twiml, transfer_twiml

    assert parse_next(transfer_twiml("+15005550006")) == NextVerbs(("Dial",), dial="+15005550006")
    assert parse_next(transfer_twiml("sip:desk@pbx.example.org")).dial == "sip:desk@pbx.example.org"
    assert parse_next(hangup_twiml()) == NextVerbs(("Hangup",))
    busy = parse_next(refusal_twiml())
    assert busy.verbs == ("Say", "Hangup") and "busy" in busy.said and "<Say>" in busy.describe()
    assert parse_next("<Response/>").describe() == "the carrier hangs up"
    assert "dials +15005550006" in parse_next("<Response><Dial>+15005550006</Dial></Response>").describe()
    for bad in ("not markup", "<html><body>500</body></html>", "<Response><Dial/></Response>"):
        with pytest.raises(ValueError):
            parse_next(bad)
    assert connect_action(connect_twiml("wss://h/media", {}, ACTION)) == (ACTION, "POST")
    assert connect_action(connect_twiml("wss://h/media", {})) == (None, "POST")
    assert connect_action('<Response><Connect action="/a" method="get"><Stream url="wss://h/m"/></Connect>'
                          '</Response>') == ("/a", "GET")


def test_the_action_is_requested_signed_as_twilio_does_with_post_or_get():
    from voicebridge.carrier.twilio.twiml import hangup_twiml

    seen: list[tuple[str, bytes | None, dict[str, str]]] = []

    def post(url, body, headers, timeout):
        seen.append((url, body, dict(headers)))
        return hangup_twiml().encode()

    def get(url, headers, timeout):
        seen.append((url, None, dict(headers)))
        return hangup_twiml().encode()

    placed = Placement("wss://h/media", {}, action_url=ACTION)
    assert follow_action(placed, TOKEN, "CA1", "AC1", post=post) == NextVerbs(("Hangup",))
    url, body, headers = seen[-1]
    form = dict(urllib.parse.parse_qsl(body.decode()))
    assert url == ACTION and form["CallSid"] == "CA1" and form["CallStatus"] == "in-progress"
    assert RequestValidator(TOKEN).validate(url, form, headers["X-Twilio-Signature"])
    by_get = Placement("wss://h/media", {}, action_url=ACTION + "?tenant=acme", action_method="GET")
    follow_action(by_get, TOKEN, "CA1", "AC1", get=get)
    url, body, headers = seen[-1]
    assert body is None and url.startswith(ACTION + "?tenant=acme&") and "CallSid=CA1" in url
    assert RequestValidator(TOKEN).validate(url, {}, headers["X-Twilio-Signature"])
    assert follow_action(Placement("wss://h/media", {}), TOKEN, "CA1", "AC1", post=post) is None
    assert len(seen) == 2  # no action, no request


def test_a_transfer_through_the_example_app_ends_in_twilios_dial_of_its_target():
    """The caller asks for a person; the agent's transfer_call closes the stream; the simulated
    Twilio then requests /voice/after, signed, and is told to dial the app's TRANSFER_TO."""
    with LocalRealtimeServer(mode="voice", speed=8.0, live_tts=False) as local:
        app = create_app(Settings(openai_realtime_url=local.url, twilio_auth_token=TOKEN, greeting=None,
                                  transfer_to="+15005550006"))
        handle = serve(app, "127.0.0.1", 0)
        try:
            placed = sim_caller.dial("twilio", handle.ws_url, TOKEN)
            report = sim_caller.SimulatedCaller(
                placed.url, "say:Can I talk to a person, please?,wait_hangup:15000", headers=placed.headers,
                custom_parameters=placed.custom_parameters, call_sid=placed.call_sid,
                account_sid=placed.account_sid, after_stream=placed.after, max_seconds=25).run()
        finally:
            handle.shutdown()
    assert report.ended_by == "bridge" and not report.problems(), report.problems()
    assert report.next_verbs == {"verbs": ("Dial",), "dial": "+15005550006", "said": None}
    assert report.after_stream == "the carrier dials +15005550006 (a transfer)"
    assert [e["name"] for e in report.events].count("after_stream") == 1


def test_an_after_stream_url_that_fails_is_a_problem_of_the_call():
    """What a real caller hears as Twilio's "application error" shows as a problem, not a pass."""
    def broken() -> NextVerbs:
        raise ValueError("the webhook https://h/voice/after answered HTTP 500")

    caller = sim_caller.SimulatedCaller("ws://127.0.0.1:9/media", "hangup", after_stream=broken)
    caller.report.ended_by = "bridge"
    caller._follow_action()
    assert caller.report.problems() == ["after the stream: the webhook https://h/voice/after answered HTTP 500"]
    assert caller.report.after_stream is None


def test_a_malformed_answer_from_the_action_url_is_a_problem_not_an_exception():
    """A proxy or app answering /voice/after with garbage (no HTTP status line): a problem of the
    call, as an HTTP error is, never a traceback out of ``run`` (outside review)."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(10)

    def answer_garbage() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"garbage\r\n\r\n")

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.getsockname()[1]}/voice/after"
        caller = sim_caller.SimulatedCaller("ws://127.0.0.1:9/media", "hangup", after_stream=lambda: follow_action(
            Placement("ws://127.0.0.1:9/media", {}, action_url=url), TOKEN, "CA1", "AC1", timeout=5))
        caller.report.ended_by = "bridge"
        caller._follow_action()
    finally:
        thread.join(10)
        server.close()
    assert len(caller.report.problems()) == 1 and caller.report.problems()[0].startswith("after the stream: ")


def test_a_webhook_nobody_answers_is_named_in_the_error():
    """(A new user's first hour: "error: <urlopen error [Errno 111] Connection refused>".)"""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # (closed when the test starts: nothing listens there)
    from voicebridge.dev.sim.webhook import _post

    with pytest.raises(ValueError, match=rf"the webhook http://127.0.0.1:{port}/voice could not be reached"):
        _post(f"http://127.0.0.1:{port}/voice", b"", {}, 2.0)
