"""A Realtime service that misbehaves without breaking the socket (issue 22): sessions that all
expire, a connection gone silent, requests never answered, pings on a quiet line.

Fake sockets and a hand-moved clock: the redial waits are real but short (``reconnect_backoff_ms``
of a few ms); every decision about silence is made on the ``ManualClock``.
"""
from __future__ import annotations

import logging

import pytest

from voicebridge import BridgeConfig
from voicebridge import testing
from voicebridge.model.client import KEEPALIVE
from voicebridge.testing import FakeRealtime, ManualClock, wait_until

pytestmark = pytest.mark.usefixtures("no_escaped_exceptions")

APOLOGY = b"\x11" * 800
CFG = BridgeConfig(greeting=None, barge_in=False, join_timeout_s=2.0, apology_audio=APOLOGY,
                   twilio_send_timeout_s=0.3, reconnect_backoff_ms=5, idle_nudge_s=None, idle_hangup_s=None)


def sessions(prepare=None):
    """A connector handing out a fresh FakeRealtime per dial (``prepare(fake)`` first)."""
    handed: list[FakeRealtime] = []

    def connect(config):
        fake = FakeRealtime()
        if prepare is not None:
            prepare(fake)
        handed.append(fake)
        return fake
    return connect, handed


def expire_at_once(fake: FakeRealtime) -> None:
    """Every new session answers its configuration with session_expired (then the server closes)."""
    def on_event(event):
        if event["type"] == "session.update":
            fake.push(testing.rt_error("session_expired", "Your session hit the maximum duration of 60 minutes."))
            fake.drop()
    fake.on_client_event = on_event


def tick(call, clock, seconds):
    """Move the clock, then let the run thread's timers run once at the new time."""
    clock.advance(seconds)
    count = call.session.metrics["inbound_frames"]
    call.twilio.media(b"\xff" * 160)
    assert wait_until(lambda: call.session.metrics["inbound_frames"] == count + 1)


def test_a_server_that_expires_every_session_gets_the_budget_then_the_apology(bridge_call, caplog):
    """Issue 22 (1): thousands of redials and a megabyte of log before; now ``reconnect_budget``
    replacements, each after its back-off, one line per kind, then the apology and a clean end."""
    caplog.set_level(logging.INFO)
    connect, handed = sessions(expire_at_once)
    call = bridge_call(CFG.replace(reconnect_budget=3), connect=connect)
    call.twilio.echo_marks = True
    call.start()
    m = call.finish(stop=False)
    assert m["close_reason"] == "openai session expired" and len(handed) == 4  # the first + the budget
    assert m["openai_errors"] == {"session_expired": 4} and m["model_redials"] == 3
    assert call.twilio.media_frames()[-5:] == [APOLOGY[:160]] * 5
    logged = [r.getMessage() for r in caplog.records]
    assert sum("Realtime session expired" in line for line in logged) == 1
    assert sum("giving up on the Realtime service: 4 sessions ended within 60 s" in line for line in logged) == 1
    assert sum(len(line) for line in logged) < 4000


def test_a_connection_that_stops_answering_pings_is_replaced_like_a_lost_one(bridge_call, lines):
    """Issue 22 (7): a silent connection was never noticed (47 s of dead air)."""
    clock, (connect, handed) = ManualClock(), sessions()
    call = bridge_call(CFG.replace(model_ping_after_s=5.0, model_pong_timeout_s=5.0), connect=connect,
                       clock=clock).start()
    first = wait_until(lambda: handed) and handed[0]
    first.push(testing.rt_transcript("Where is my parcel?"))
    assert wait_until(lambda: call.session.record.entries())
    first.answer_pings = False  # the connection goes silent, without closing
    clock.advance(5.0)
    assert wait_until(lambda: first.pings == 1)
    clock.advance(4.0)
    assert not wait_until(lambda: len(handed) == 2, timeout=0.3)  # within the pong timeout: still waiting
    clock.advance(1.5)
    assert wait_until(lambda: len(handed) == 2 and handed[1].events("conversation.item.create"))
    assert handed[1].events("conversation.item.create")[0]["item"]["content"][0]["text"] == "Where is my parcel?"
    m = call.finish()
    assert m["model_unresponsive"] == 1 and m["close_reason"] == "twilio stop" and first.closed.is_set()
    assert len(lines("Realtime session unresponsive (no answer to a ping within 5.0 s)")) == 1


def test_pings_and_pongs_on_a_quiet_line_never_count_as_loss(bridge_call):
    """Issue 22 (11): a quiet minute with the server pinging every 8 s and our pings answered."""
    clock, (connect, handed) = ManualClock(), sessions()
    call = bridge_call(CFG.replace(openai_receive_timeout_s=0.05), connect=connect, clock=clock).start()
    first = wait_until(lambda: handed) and handed[0]
    for n in range(1, 9):  # 64 s: after 5 quiet seconds our ping (answered), at 8 s the server's
        clock.advance(5.0)
        assert wait_until(lambda: first.pings == n and first.inbound.empty())
        first.inbound.put(KEEPALIVE)  # the server's ping (the socket layer answers it)
        assert wait_until(first.inbound.empty)
        clock.advance(3.0)
    m = call.finish()
    assert len(handed) == 1 and first.pings == 8 and m["model_lost"] == m["model_unresponsive"] == 0
    assert m["close_reason"] == "twilio stop"


def test_a_response_create_never_answered_replaces_the_session_and_is_asked_again(bridge_call, lines):
    """Issue 22 (7): an unanswered response.create was forgotten after 5 s; the caller heard nothing."""
    clock, (connect, handed) = ManualClock(), sessions()
    call = bridge_call(CFG.replace(greeting="Say hello.", response_created_timeout_s=5.0), connect=connect,
                       clock=clock).start()
    first = wait_until(lambda: handed) and handed[0]
    assert wait_until(lambda: first.requested("greeting"))
    tick(call, clock, 4.0)
    assert len(handed) == 1
    tick(call, clock, 1.5)
    assert wait_until(lambda: len(handed) == 2 and handed[1].requested("greeting"))
    handed[1].response("resp_1", "item_1", [b"\x42" * 160], kind="greeting")
    assert call.twilio.wait_for(lambda t: len(t.media_frames()) == 1)
    m = call.finish()
    assert m["model_unresponsive"] == 1 and m["response_requests_unanswered"] == 1
    assert len(lines("no response.created for the greeting request within 5.0 s")) == 1


def test_a_server_that_creates_responses_without_our_metadata_is_not_taken_for_dead(bridge_call, lines):
    """A live session whose response.created does not echo the request's kind: the request is
    forgotten after the bound (as before), the session is kept."""
    clock, (connect, handed) = ManualClock(), sessions()
    call = bridge_call(CFG.replace(greeting="Say hello."), connect=connect, clock=clock).start()
    first = wait_until(lambda: handed) and handed[0]
    assert wait_until(lambda: first.requested("greeting"))
    first.response("resp_1", "item_1", [b"\x42" * 160], done=False)  # no metadata: kind unknown
    assert call.twilio.wait_for(lambda t: len(t.media_frames()) == 1)
    tick(call, clock, 6.0)
    m = call.finish()
    assert len(handed) == 1 and m["model_unresponsive"] == 0 and m["response_requests_unanswered"] == 0
    assert len(lines("though others were created: moving on")) == 1
