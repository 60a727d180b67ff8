"""Outbound calls' plan and Twilio's refusals (dialing.py), against the local Calls API stand-in."""
import pytest

from voicebridge.carrier.twilio import dialing
from voicebridge.config import BridgeConfig
from voicebridge.carrier.twilio.dialing import (CallerIdNotAllowed, CallError, CallPlan, InvalidNumber, NotPermitted, RateLimited,
                                 TwilioUnreachable)
from voicebridge.dev.sim.callsapi import CallsAPI
from voicebridge.call.tools import Tool

TOKEN, ACCOUNT = "t" * 32, "AC" + "2" * 32


def lookup(**_):
    return {}


TOOLS = (Tool("order_status", "look up an order", {"type": "object", "properties": {}}, lookup),
         Tool("refund", "refund an order", {"type": "object", "properties": {}}, lookup))


class RestError(Exception):
    def __init__(self, status, code, msg="no"):
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


@pytest.mark.parametrize("status,code,kind", [
    (400, 21211, InvalidNumber), (400, 21214, InvalidNumber), (400, 21210, CallerIdNotAllowed),
    (400, 21212, CallerIdNotAllowed), (400, 21219, NotPermitted), (401, 20003, NotPermitted),
    (429, 20429, RateLimited), (429, None, RateLimited), (400, 21999, CallError),
])
def test_twilio_refusals_become_one_clear_exception_each(status, code, kind):
    error = dialing.call_error(RestError(status, code), "+15550001111")
    assert type(error) is kind and error.code == code and error.status == status and error.to == "+15550001111"


def test_no_answer_from_twilio_is_unreachable():
    error = dialing.call_error(ConnectionError("refused"), "+15550001111")
    assert type(error) is TwilioUnreachable and error.code is None and isinstance(error, CallError)


def test_a_plan_round_trips_and_applies_instructions_tools_and_opening():
    plan = CallPlan("Remind them of the appointment", ("refund",), {"customer": "42"}, "callee", True, "Call us")
    assert CallPlan.from_json(plan.to_json()) == plan
    config = plan.apply(BridgeConfig(tools=TOOLS))
    assert config.instructions == "Remind them of the appointment" and [t.name for t in config.tools] == ["refund"]
    assert config.first_speaker == "callee" and config.amd and "Call us" in config.voicemail_request
    assert CallPlan().apply(BridgeConfig(tools=TOOLS)).tools == TOOLS  # tools=None: all of them


def test_a_plan_that_cannot_apply_is_refused_before_twilio_is_asked():
    with pytest.raises(ValueError, match="unknown tools"):
        CallPlan(tools=("nope",)).check(BridgeConfig(tools=TOOLS))
    with pytest.raises(ValueError, match="first_speaker"):
        CallPlan(first_speaker="robot").check(BridgeConfig())
    with pytest.raises(ValueError, match="not a call plan"):
        CallPlan.from_json("[1, 2]")


@pytest.fixture
def api():
    server = CallsAPI(ACCOUNT, TOKEN, caller_ids=("+15005550006",), max_calls=0).start()
    yield server
    server.stop()


def create(api, to="+15550001111", from_="+15005550006", token=TOKEN):
    client = dialing.rest_client(ACCOUNT, token, api.url)
    return dialing.create_call(client, to, from_, "http://127.0.0.1:9/voice?vb_plan=x", "http://127.0.0.1:9/voice/amd")


def test_the_twilio_client_gets_twilios_errors_from_the_stand_in(api):
    with pytest.raises(InvalidNumber, match="21211") as bad:
        create(api, to="555-CALL-ME")
    assert bad.value.status == 400
    with pytest.raises(CallerIdNotAllowed, match="21210"):
        create(api, from_="+15550009999")
    with pytest.raises(NotPermitted, match="20003"):
        create(api, token="wrong" * 6)
    with pytest.raises(RateLimited, match="20429"):  # max_calls=0: every call is one too many
        create(api)


def test_create_call_asks_for_async_amd_on_the_bridges_routes():
    seen = {}

    class Calls:
        def create(self, **options):
            seen.update(options)
            return type("Call", (), {"sid": "CA" + "3" * 32})()

    client = type("Client", (), {"calls": Calls()})()
    sid = dialing.create_call(client, "+15550001111", "+15005550006", "https://x/voice?vb_plan=p",
                              "https://x/voice/amd",
                              "https://x/status")
    assert sid == "CA" + "3" * 32
    assert seen["machine_detection"] == "DetectMessageEnd" and seen["async_amd"] is True
    assert seen["async_amd_status_callback"] == "https://x/voice/amd" and seen["url"] == "https://x/voice?vb_plan=p"
    assert seen["status_callback"] == "https://x/status"


def test_voicebridge_dial_reports_twilios_refusal_and_bad_usage(api, tmp_path, capsys):
    from voicebridge.cli import COMMANDS

    assert COMMANDS["dial"][0] == "voicebridge.serving.dial"
    env = {"TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_URL": "https://bridge.example", "TWILIO_ACCOUNT_SID": ACCOUNT,
           "STATE_DIR": str(tmp_path), "TWILIO_API_URL": api.url}
    from voicebridge.serving import dial

    assert dial.main(["not-a-number", "--from", "+15005550006"], env) == 1
    assert "InvalidNumber" in capsys.readouterr().err
    assert dial.main(["+15550001111", "--from", "+15005550006"], {**env, "STATE_DIR": ""}) == 2
    assert "STATE_DIR" in capsys.readouterr().err
    assert dial.main(["+15550001111", "--from", "+15005550006", "--tool", "nope"], env) == 2
    assert "unknown tools" in capsys.readouterr().err
    # a bad setting in the environment is said, not silently replaced by the defaults (DEMO_TOOL=0 was lost so)
    assert dial.main(["+15550001111", "--from", "+15005550006"], {**env, "MAX_CALLS": "many"}) == 2
    assert "MAX_CALLS must be an integer" in capsys.readouterr().err
    assert dial.main(["+15550001111", "--from", "+15005550006", "--tool", "order_status"], {**env, "DEMO_TOOL": "0"}) == 2
    assert "unknown tools" in capsys.readouterr().err  # the environment's tools are the ones --tool may name
    # --public-url is the one used, over a bad PUBLIC_URL in the environment
    assert dial.main(["not-a-number", "--from", "+15005550006", "--public-url", "https://bridge.example"],
                     {**env, "PUBLIC_URL": "bridge.example"}) == 1
    assert "InvalidNumber" in capsys.readouterr().err


def test_call_needs_twilio_routes_a_public_url_and_credentials():
    from flask import Flask

    from voicebridge.serving.flaskext import VoiceBridge

    with pytest.raises(ValueError, match="public_url"):
        VoiceBridge(Flask("x"), auth_token=TOKEN, account_sid=ACCOUNT).call("+15550001111", "+15005550006")
    with pytest.raises(ValueError, match="account_sid"):
        VoiceBridge(Flask("y"), public_url="https://b.example").call("+15550001111", "+15005550006")
    with pytest.raises(ValueError, match="carrier 'twilio'"):
        VoiceBridge(Flask("z"), carrier="telnyx", stream_secret="s" * 32,
                    public_url="https://b.example").call("+15550001111", "+15005550006")


@pytest.mark.parametrize("backend", ["file", "redis"])
def test_plans_and_verdicts_have_boards_of_their_own_on_either_backend(backend, tmp_path, request):
    from voicebridge.serving.sharedstate import open_state

    if backend == "redis":
        url = request.getfixturevalue("redis_server").url
        a, b = (open_state(None, None, url, prefix="boards") for _ in range(2))
    else:
        a, b = (open_state(None, str(tmp_path)) for _ in range(2))
    try:
        now, sid = 1000.0, "CA" + "8" * 32
        a.board("amd").put(sid, "human", now + 60, now)
        a.transfers.put(sid, "+15551234567", now + 60, now)
        assert b.board("plan").take(sid, now) is None  # another board: not there
        assert b.board("amd").take(sid, now) == "human" and a.board("amd").take(sid, now) is None  # once
        assert b.transfers.take(sid, now) == "+15551234567"  # the transfer untouched by the verdict's take
    finally:
        a.close()
        b.close()
