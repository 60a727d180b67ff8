"""Outbound calls end to end, offline: VoiceBridge.call -> the twilio client -> the local Calls API
stand-in, which dials a simulated callee (a person or a voicemail), sends the signed voice webhook
and AMD callback and opens the media stream -> the bridge -> the local Realtime server."""
import logging
import threading

import pytest

from voicebridge.serving import dial
from voicebridge.carrier.twilio import dialing
from voicebridge.serving.app import Settings, create_app, serve
from voicebridge.call.opening import AnsweredBy
from voicebridge.carrier.twilio.dialing import InvalidNumber
from voicebridge.serving.flaskext import VoiceBridge
from voicebridge.dev.local.server import LocalRealtimeServer
from voicebridge.dev.sim import SimulatedCaller
from voicebridge.dev.sim.callsapi import CallsAPI, Callee
from voicebridge.dev.sim.webhook import place, signature

TOKEN, ACCOUNT = "k" * 32, "AC" + "4" * 32
CALLER_ID, PERSON, VOICEMAIL = "+15005550006", "+15550001111", "+15550002222"


class Line:
    """The bridge (example app on a free port, tone-mode local model) and the Calls API stand-in."""

    def __init__(self, local: LocalRealtimeServer, state_dir: str) -> None:
        self.ended: list[dict] = []
        self.done = threading.Event()
        settings = Settings(port=0, openai_realtime_url=local.url, twilio_auth_token=TOKEN, state_dir=state_dir)
        self.server = serve(create_app(settings, on_end=self._on_end), "127.0.0.1", 0)
        self.bridge: VoiceBridge = self.server.app.extensions["voicebridge"]
        callees = {PERSON: Callee.person(), VOICEMAIL: Callee.voicemail("question_02_0")}
        self.api = CallsAPI(ACCOUNT, TOKEN, caller_ids=(CALLER_ID,), callees=callees).start()
        self.bridge.public_url = self.server.url  # what Twilio reaches (known once the port is)
        self.bridge.rest_client = dialing.rest_client(ACCOUNT, TOKEN, self.api.url)

    def _on_end(self, session) -> None:
        from voicebridge.call.aftercall import _amd

        self.ended.append(dict(session.metrics, params=dict(session.custom_parameters),
                               instructions=session.config.instructions, amd=_amd(session)))
        self.done.set()

    def call(self, to: str, **options):
        sid = self.bridge.call(to, CALLER_ID, **options)
        placed = self.api.wait(sid, 60)
        assert placed.done.is_set() and not placed.errors, placed.errors
        assert self.done.wait(10)
        return placed, self.ended[0]

    def close(self) -> None:
        self.api.stop()
        self.server.shutdown()


@pytest.fixture
def line(tmp_path):
    with LocalRealtimeServer(mode="tone", speed=8.0, tone_seconds=1.2) as local:
        it = Line(local, str(tmp_path / "state"))
        try:
            yield it
        finally:
            it.close()


def test_a_person_says_hello_first_then_the_agent_talks(line):
    placed, bridge = line.call(PERSON, instructions="Remind them of their appointment", data={"customer": "42"})
    assert placed.answered_by == "human" and placed.report.ended_by == "script"
    # The agent held its first words through the "hello?" and the silence AMD listened to
    assert not placed.agent_heard_before_verdict()
    assert placed.agent_heard_after_verdict_s() is not None and placed.report.frames_received > 0
    assert bridge["inbound_frames_held"] > 0  # the callee's audio was held back from the model meanwhile
    control = [e["text"] for e in bridge["transcript"] if e["role"] == "control"]
    assert control[0] == "answered by human: speak"
    assert bridge["opening_to_first_audio_ms"] is not None and bridge["accounting_ok"]
    assert bridge["params"]["customer"] == "42" and bridge["instructions"] == "Remind them of their appointment"


def test_a_voicemail_gets_the_whole_message_after_the_beep_then_the_agent_hangs_up(line):
    placed, bridge = line.call(VOICEMAIL)
    report = placed.report
    assert placed.answered_by == "machine_end_beep"
    assert not placed.agent_heard_before_verdict()  # nothing over the greeting or the beep
    assert placed.agent_heard_after_verdict_s() is not None
    # heard in full (every tone block of the message, none cut), then the bridge hung up
    assert report.tone is not None and report.tone["ok"] and report.tone["partial"] == 0, report.tone
    assert len(report.tone["responses"]) == 1
    assert report.ended_by == "bridge" and report.hangup_after_audio_ms is not None
    assert report.after_stream == "the carrier hangs up" and not report.errors  # /voice/after, signed
    assert bridge["close_reason"] == "voicemail left" and bridge["agent_hangups"] == 1
    assert bridge["frames_flushed"] == 0 and bridge["accounting_ok"]
    assert bridge["amd"] == "machine_end_beep"  # what the post-call report says


def test_a_bad_number_is_a_clear_exception_and_no_call(line):
    with pytest.raises(InvalidNumber) as error:
        line.bridge.call("12345", CALLER_ID)
    assert error.value.code == 21211 and not line.api.calls


def test_a_forged_plan_id_is_refused_at_the_stream(line, caplog):
    """Only the bridge's own calls carry a plan: an unknown (forged, replayed) id never gets a session."""
    sid = "CA" + "5" * 32
    placed = place(line.server.ws_url, TOKEN, sid, ACCOUNT, webhook_url=f"{line.server.url}/voice?vb_plan=forged")
    assert placed.custom_parameters["vb_plan"] == "forged"
    with caplog.at_level(logging.WARNING, logger="voicebridge"):
        report = SimulatedCaller(placed.stream_url, "wait_agent:3000", headers=placed.headers,
                                 custom_parameters=placed.custom_parameters, call_sid=sid, account_sid=ACCOUNT,
                                 max_seconds=10).run()
    assert report.frames_received == 0 and report.ended_by != "script"
    assert any("plan unknown" in r.getMessage() for r in caplog.records)


def test_the_amd_verdict_reaches_the_worker_that_carries_the_stream(tmp_path):
    """Two bridges sharing a state directory (two worker processes): the callback reaches one, the
    stream's session on the other takes the verdict, once."""
    from flask import Flask

    app_a = Flask("a")
    a = VoiceBridge(app_a, auth_token=TOKEN, public_url="https://bridge.example", state_dir=str(tmp_path))
    b = VoiceBridge(Flask("b"), auth_token=TOKEN, public_url="https://bridge.example", state_dir=str(tmp_path))
    sid, url = "CA" + "6" * 32, "https://bridge.example/voice/amd"
    form = {"CallSid": sid, "AccountSid": ACCOUNT, "AnsweredBy": "machine_end_beep"}
    forged = app_a.test_client().post("/voice/amd", data=form, headers={"X-Twilio-Signature": "bad"})
    assert forged.status_code == 403
    signed = {"X-Twilio-Signature": signature(TOKEN, url, form)}
    answer = app_a.test_client().post("/voice/amd", data=form, headers=signed)
    assert answer.status_code == 204
    take = b.outbound.answer_source(sid)
    assert take(0.0) is AnsweredBy.MACHINE_END_BEEP and take(0.0) is None
    for bridge in (a, b):
        bridge.close()


def test_voicebridge_dial_places_a_call_that_the_serving_bridge_runs_with_its_plan(line, capsys):
    """The CLI in another "process" (its own VoiceBridge): the plan reaches the server through STATE_DIR."""
    env = {"TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_ACCOUNT_SID": ACCOUNT, "PUBLIC_URL": line.server.url,
           "STATE_DIR": line.bridge.state_dir, "TWILIO_API_URL": line.api.url}
    assert dial.main([VOICEMAIL, "--from", CALLER_ID, "--data", "order=1234"], env) == 0
    sid = capsys.readouterr().out.strip()
    placed = line.api.wait(sid, 60)
    assert line.done.wait(10) and not placed.errors
    bridge = line.ended[0]
    assert bridge["call_sid"] == sid and bridge["close_reason"] == "voicemail left"
    assert bridge["params"]["order"] == "1234"  # the plan's data, through the shared state directory
