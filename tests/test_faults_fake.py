"""Fault injection on fake sockets: every malformed or hostile message, every peer failure.

Each test checks what the bridge does, the one log line that names the fault, the counter that
counts it, and the frame accounting identity (``BridgeCall.finish``). The module-wide guard fails
any test in which an exception escaped a thread or a traceback was logged.
"""
from __future__ import annotations

import base64
import logging
import threading
import time

import pytest

from voicebridge import BridgeConfig
from voicebridge import testing
from voicebridge.testing import CALL_SID, BridgeCall, Closed, FakeRealtime, FakeTwilio, ManualClock, wait_until

pytestmark = pytest.mark.usefixtures("no_escaped_exceptions")

APOLOGY = b"\x11" * 800  # 100 ms = 5 frames stands in for the bundled prompt
CFG = BridgeConfig(greeting_instructions=None, barge_in=False, join_timeout_s=2.0, apology_audio=APOLOGY, connect_timeout_s=2.0,
                   twilio_send_timeout_s=0.3, reconnect_attempts=0)
APOLOGY_FRAMES = [APOLOGY[:160]] * 5
FRAME = bytes(range(160))


def faulty(bridge_call, config=CFG, twilio=None, openai=None, connect=None, **options) -> BridgeCall:
    """A call whose marks come back at once (the apology's end needs no 2 s wait)."""
    call = bridge_call(config, twilio=twilio, openai=openai, connect=connect, **options)
    call.twilio.echo_marks = True
    return call


def assert_apology_heard(twilio):
    assert twilio.media_frames()[-5:] == APOLOGY_FRAMES, "the caller must hear the apology, not dead air"
    assert twilio.messages()[-1]["event"] == "mark"


@pytest.mark.parametrize("raw, key", [
    ("{not json", "openai.malformed_json"),
    (b"\x89PNG binary", "openai.binary_frame"),
    ('["a", "list"]', "openai.missing_field"),
    ('{"type":"response.output_audio.delta","response_id":"r","item_id":"i","delta":"@@"}', "openai.bad_base64"),
])
def test_openai_bad_message_is_counted_and_call_continues(bridge_call, lines, raw, key):
    call = faulty(bridge_call).start()
    twilio, openai = call.twilio, call.openai
    openai.push(raw)
    openai.response("resp_1", "item_1", [FRAME * 2])
    assert twilio.wait_for(lambda t: len(t.messages("media")) == 2)
    m = call.finish()
    assert m["protocol_errors"] == {key: 1} and m["openai_protocol_errors"] == 1
    assert len(lines("ignored bad Realtime message")) == 1
    assert m["close_reason"] == "twilio stop"


def test_openai_unknown_event_types_logged_once_each(bridge_call, lines):
    call = faulty(bridge_call).start()
    twilio, openai = call.twilio, call.openai
    for kind in ["future.event", "future.event", "other.event", "rate_limits.updated"]:
        openai.push({"type": kind})
    openai.response("resp_1", "item_1", [FRAME])
    assert twilio.wait_for(lambda t: len(t.messages("media")) == 1)
    m = call.finish()
    assert m["openai_unknown_events"] == 3  # rate_limits.updated is known, merely unused
    assert len(lines("unknown Realtime event type")) == 2
    assert m["openai_protocol_errors"] == 0


NON_FATAL = [
    ("response_cancel_not_active", "invalid_request_error", "Cancellation failed: no active response found"),
    ("conversation_already_has_active_response", "invalid_request_error",
     "Conversation already has an active response in progress: resp_1."),
    ("input_audio_buffer_commit_empty", "invalid_request_error", "Error committing input audio buffer"),
    ("invalid_value", "invalid_request_error", "Audio content of 100ms is already shorter than 900ms"),
    ("missing_required_parameter", "invalid_request_error", "Missing required parameter: 'session.type'."),
    ("unknown_parameter", "invalid_request_error", "Unknown parameter: 'session.temperature'."),
    (None, "server_error", "The server had an error while processing your request."),
]
FATAL = [
    ("beta_api_shape_disabled", "invalid_request_error",
     "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."),
]


@pytest.mark.parametrize("code, kind, message", NON_FATAL, ids=[c or k for c, k, _ in NON_FATAL])
def test_openai_non_fatal_error_leaves_the_call_running(bridge_call, lines, code, kind, message):
    call = faulty(bridge_call).start()
    twilio, openai = call.twilio, call.openai
    openai.push({"type": "error", "error": {"type": kind, "code": code, "message": message, "param": None}})
    openai.response("resp_1", "item_1", [FRAME * 3])
    assert twilio.wait_for(lambda t: len(t.messages("media")) == 3)
    twilio.media(FRAME, n=2)
    assert twilio.wait_for(lambda t: len(openai.appended()) == 2 * 160)
    m = call.finish()
    label = code or kind
    assert m["close_reason"] == "twilio stop"
    assert m["openai_errors"] == {label: 1}
    assert len(lines(f"Realtime error {label}")) == 1
    assert twilio.media_frames() == [FRAME] * 3 and not openai.close_calls > 1


@pytest.mark.parametrize("code, kind, message", FATAL, ids=[c for c, _, _ in FATAL])
def test_openai_fatal_error_apologizes_and_ends_cleanly(bridge_call, lines, code, kind, message):
    call = faulty(bridge_call).start()
    twilio, openai = call.twilio, call.openai
    openai.response("resp_1", "item_1", [FRAME * 50], done=False)
    assert twilio.wait_for(lambda t: len(t.messages("media")) >= 2)
    openai.push({"type": "error", "error": {"type": kind, "code": code, "message": message}})
    openai.drop()  # the server closes right after (1001 / 4000)
    m = call.finish(stop=False)
    assert m["close_reason"] == f"openai error {code}"
    assert m["openai_errors"] == {code: 1}
    assert len(lines(f"Realtime fatal error {code}")) == 1
    assert not lines("Realtime connection lost")  # the close that follows is expected
    assert_apology_heard(twilio)
    assert openai.closed.is_set() and twilio.closed.is_set()


def sessions(*fakes):
    """A connector that hands out a fresh FakeRealtime per dial (``fakes`` first, then new ones)."""
    made = list(fakes)
    handed = []

    def connect(config):
        fake = made.pop(0) if made else FakeRealtime()
        handed.append(fake)
        return fake
    return connect, handed


def test_an_expired_session_is_replaced_and_the_conversation_replayed(bridge_call, lines):
    connect, handed = sessions()
    call = faulty(bridge_call, connect=connect).start()
    first = wait_until(lambda: handed) and handed[0]
    first.push(testing.rt_transcript("Where is my parcel?"))
    first.response("resp_1", "item_1", [FRAME * 2], done=False)
    first.push(testing.rt_agent_transcript("resp_1", "item_1", "It left the depot today."))
    first.push(testing.rt_response_done("resp_1"))
    assert call.twilio.wait_for(lambda t: len(t.media_frames()) == 2)
    call.twilio.media(FRAME, n=2)  # the caller's words the first session never committed
    assert wait_until(lambda: len(first.appended()) >= 2 * 160)
    first.push(testing.rt_error("session_expired", "Your session hit the maximum duration of 60 minutes."))
    assert wait_until(lambda: len(handed) == 2 and handed[1].events("session.update"))
    second = handed[1]
    assert wait_until(lambda: len(second.events("conversation.item.create")) == 2)
    replayed = [e["item"] for e in second.events("conversation.item.create")]
    assert replayed == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Where is my parcel?"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "It left the depot today."}]}]
    call.twilio.media(FRAME, n=3)  # the caller goes on talking to the new session
    assert wait_until(lambda: len(second.appended()) >= 5 * 160)  # (the first two sent again)
    inbound, listener = call.session._inbound, call.session.barge_in.listener
    assert listener._vad.last_commit == inbound.resent_from > float("-inf")  # (what the new buffer holds)
    m = call.finish()
    assert m["close_reason"] == "twilio stop" and m["model_expired"] == 1 and m["items_replayed"] == 2
    assert first.closed.is_set() and not lines("model unavailable")


def test_a_lost_session_mid_answer_is_replaced_and_the_answer_resumed(bridge_call):
    connect, handed = sessions()
    call = faulty(bridge_call, CFG.replace(reconnect_attempts=1), connect=connect).start()
    first = wait_until(lambda: handed) and handed[0]
    first.response("resp_1", "item_1", [FRAME * 3], done=False)  # the answer is still being generated
    first.push({"type": "response.output_audio_transcript.delta", "response_id": "resp_1", "item_id": "item_1",
                "output_index": 0, "content_index": 0, "delta": "Your parcel left"})
    assert call.twilio.wait_for(lambda t: len(t.media_frames()) == 3)
    first.drop()
    assert wait_until(lambda: len(handed) == 2 and handed[1].requested("resume"))
    second = handed[1]
    sent = [e["type"] for e in second.events()]
    assert sent[:3] == ["session.update", "conversation.item.create", "response.create"]  # told, then asked
    assert second.events("conversation.item.create")[0]["item"]["content"] == [
        {"type": "output_text", "text": "Your parcel left"}]  # the words it got out before the drop
    m = call.finish()
    assert m["model_lost"] == 1 and m["frames_sent"] == 3  # what was received was heard, nothing flushed
    assert m["frames_flushed"] == 0 and m["close_reason"] == "twilio stop"


def tick(call, clock, seconds):
    """Move the clock, then let the run thread's timers run once at the new time."""
    clock.advance(seconds)
    count = call.session.metrics["inbound_frames"]
    call.twilio.media(b"\xff" * 160)
    assert wait_until(lambda: call.session.metrics["inbound_frames"] == count + 1)


def test_a_session_past_its_age_is_rolled_over_only_at_a_quiet_moment(bridge_call):
    clock, (connect, handed) = ManualClock(), sessions()
    call = faulty(bridge_call, CFG.replace(session_max_age_s=60, idle_nudge_s=None), connect=connect,
                  clock=clock).start()
    first = wait_until(lambda: handed) and handed[0]
    first.response("resp_1", "item_1", [FRAME * 2], done=False)
    assert call.twilio.wait_for(lambda t: len(t.media_frames()) == 2)
    clock.advance(61)  # old enough, but the agent is still answering (and its events still flow)
    first.push({"type": "response.output_audio_transcript.delta", "response_id": "resp_1", "item_id": "item_1",
                "output_index": 0, "content_index": 0, "delta": "Sure"})
    assert wait_until(lambda: call.session.model.last_event_at == clock())
    tick(call, clock, 0)
    assert len(handed) == 1
    first.push(testing.rt_response_done("resp_1"))
    assert wait_until(lambda: not call.session.responses.active)
    tick(call, clock, 0.5)  # quiet, but the session spoke half a second ago: events may be on their way
    assert len(handed) == 1
    first.push(testing.rt_speech_started())
    assert wait_until(lambda: call.session.flow.caller_speaking)
    tick(call, clock, 2)  # the caller is speaking
    assert len(handed) == 1
    first.push(testing.rt_speech_stopped())
    assert wait_until(lambda: not call.session.flow.caller_speaking)
    first.push({"type": "input_audio_buffer.committed", "item_id": "item_user", "previous_item_id": None})
    assert wait_until(lambda: call.session.flow.turn_open(clock()))
    tick(call, clock, 2)  # their turn is committed but its text has not come: a new session would lose it
    assert len(handed) == 1
    first.push(testing.rt_transcript("Thanks, that is all."))
    assert wait_until(lambda: not call.session.flow.turn_open(clock()))
    # the bridge asks for the answer to the committed turn itself (create_response is false on the
    # wire); the session is quiet once that answer is done
    assert wait_until(lambda: first.requested("turn"))
    first.push(testing.rt_response_created("resp_2", "turn"))
    first.push(testing.rt_response_done("resp_2"))
    assert wait_until(lambda: call.session.requests.idle)
    tick(call, clock, 1.5)
    assert wait_until(lambda: len(handed) == 2 and handed[1].events("conversation.item.create"))
    second = handed[1]
    assert [(e["item"]["role"], e["item"]["content"][0]["text"]) for e in second.events("conversation.item.create")] \
        == [("assistant", "Sure"), ("user", "Thanks, that is all.")]
    assert not second.events("response.create") and first.closed.is_set()  # nothing to resume
    m = call.finish()
    assert m["model_rollover"] == 1 and m["model_lost"] == 0 and m["frames_sent"] == 2


def test_a_slow_reconnect_plays_the_holding_line_once(bridge_call):
    hold = b"\x22" * 800  # 100 ms: 5 frames
    release = threading.Event()
    clock, handed = ManualClock(), []

    def connect(config):
        if handed:
            release.wait(5)  # the replacement takes its time
        handed.append(FakeRealtime())
        return handed[-1]

    call = faulty(bridge_call, CFG.replace(reconnect_attempts=1, hold_audio=hold), connect=connect,
                  clock=clock).start()
    assert wait_until(lambda: handed)
    handed[0].drop()
    assert wait_until(lambda: call.session.model.down_since is not None)
    tick(call, clock, 1.9)
    assert call.twilio.media_frames() == []  # within hold_after_ms: nothing yet
    tick(call, clock, 0.2)
    assert wait_until(lambda: call.session.metrics["frames_enqueued"] == 5)  # the whole line, once
    assert call.twilio.wait_for(lambda t: t.media_frames() and set(t.media_frames()) == {hold[:160]})
    tick(call, clock, 3.0)
    release.set()
    assert wait_until(lambda: len(handed) == 2 and call.session.model.ready)
    tick(call, clock, 3.0)
    m = call.finish()
    assert m["frames_enqueued"] == 5 and m["model_lost"] == 1  # once, however long the wait


# ============================================================================= Twilio side
@pytest.mark.parametrize("raw, key", [
    ("{this is not json", "twilio.malformed_json"),
    ('"just a string"', "twilio.malformed_json"),
    ('{"event":"media","streamSid":"MZ0123456789abcdef0123456789abcdef","media":{"payload":"%%%="}}',
     "twilio.bad_base64"),
    ('{"event":"media","streamSid":"MZ0123456789abcdef0123456789abcdef","media":{}}', "twilio.missing_field"),
    ('{"event":"transcription","streamSid":"MZ0123456789abcdef0123456789abcdef"}', "twilio.unknown_event"),
    (b"\x00\x01\x02", "twilio.binary_frame"),
])
def test_twilio_bad_message_is_counted_and_call_continues(bridge_call, lines, raw, key):
    call = faulty(bridge_call).start()
    twilio, openai = call.twilio, call.openai
    twilio.push(raw)
    twilio.media(FRAME, n=2)
    assert twilio.wait_for(lambda t: len(openai.appended()) == 2 * 160)
    openai.response("resp_1", "item_1", [FRAME])
    assert twilio.wait_for(lambda t: len(t.messages("media")) == 1)
    m = call.finish()
    assert m["protocol_errors"] == {key: 1} and m["twilio_protocol_errors"] == 1
    assert len(lines("ignored bad Twilio message")) == 1
    assert m["close_reason"] == "twilio stop" and m["inbound_frames"] == 2


def test_twilio_media_of_wrong_size_is_forwarded_and_counted(bridge_call, lines):
    call = faulty(bridge_call).start()
    twilio, openai = call.twilio, call.openai
    for size in (80, 0, 321, 160):
        twilio.media(b"\x7f" * size)
    assert twilio.wait_for(lambda t: openai.appended() == b"\x7f" * (80 + 321 + 160))
    m = call.finish()
    assert m["inbound_wrong_size"] == 3 and m["inbound_frames"] == 4
    assert len(lines("inbound media of 80 bytes (expected 160)")) == 1
    assert len(lines("inbound media of")) == 1  # one line, the rest counted


def test_twilio_media_before_start_is_dropped(bridge_call, lines):
    call = faulty(bridge_call).run()
    twilio, openai = call.twilio, call.openai
    twilio.media(FRAME, n=3)
    twilio.connected_and_start()
    twilio.media(FRAME, n=1)
    assert twilio.wait_for(lambda t: len(openai.appended()) == 1 * 160)
    m = call.finish()
    assert m["protocol_errors"] == {"twilio.media_before_start": 3}
    assert len(lines("media before start: dropped")) == 1


def test_twilio_wrong_stream_sid_is_dropped(bridge_call, lines):
    call = faulty(bridge_call).start()
    twilio, openai = call.twilio, call.openai
    b64 = base64.b64encode(FRAME).decode()
    for _ in range(3):
        twilio.push({"event": "media", "streamSid": "MZsomeoneelse", "media": {"payload": b64}})
    twilio.media(FRAME)
    assert twilio.wait_for(lambda t: len(openai.appended()) == 1 * 160)
    m = call.finish()
    assert m["protocol_errors"] == {"twilio.wrong_stream_sid": 3}
    assert len(lines("media for another stream (MZsomeoneelse): dropped")) == 1


def test_twilio_missing_stream_sid_is_forwarded_and_counted(bridge_call, lines):
    call = faulty(bridge_call).start()
    twilio, openai = call.twilio, call.openai
    b64 = base64.b64encode(FRAME).decode()
    for _ in range(2):
        twilio.push({"event": "media", "media": {"payload": b64}})
    assert twilio.wait_for(lambda t: len(openai.appended()) == 2 * 160)
    m = call.finish()
    assert m["protocol_errors"] == {"twilio.missing_stream_sid": 2}
    assert len(lines("media without streamSid: forwarded")) == 1


def test_twilio_duplicate_start_is_ignored(bridge_call, lines):
    call = faulty(bridge_call).start()
    session, twilio, openai = call.session, call.twilio, call.openai
    other = FakeTwilio(stream_sid="MZ" + "2" * 32, call_sid="CA" + "2" * 32)
    other.connected_and_start()
    while not other.inbound.empty():
        twilio.push(other.inbound.get())
    twilio.media(FRAME)
    assert twilio.wait_for(lambda t: len(openai.appended()) == 1 * 160)
    m = call.finish()
    assert session.stream_sid == twilio.stream_sid and session.call_sid == CALL_SID
    assert m["protocol_errors"] == {"twilio.duplicate_start": 1}
    assert len(openai.events("session.update")) == 1
    assert len(lines(f"ignored duplicate start (stream {other.stream_sid})")) == 1


def test_twilio_messages_after_stop_are_never_processed(bridge_call, lines):
    call = faulty(bridge_call).start()
    twilio, openai = call.twilio, call.openai
    twilio.media(FRAME, n=2)
    twilio.stop()
    twilio.media(FRAME, n=5)
    twilio.push("garbage after stop")
    twilio.connected_and_start()
    m = call.finish(stop=False)
    assert m["close_reason"] == "twilio stop" and m["inbound_frames"] == 2
    assert len(openai.appended()) == 2 * 160
    assert m["twilio_protocol_errors"] == 0
    assert len(lines("twilio stop")) >= 1


def test_twilio_abrupt_disconnect_without_stop(bridge_call, lines):
    call = faulty(bridge_call).start()
    twilio, openai = call.twilio, call.openai
    openai.response("resp_1", "item_1", [FRAME * 100], done=False)
    assert twilio.wait_for(lambda t: len(t.messages("media")) >= 3)
    twilio.disconnect()
    m = call.finish(stop=False)
    assert m["close_reason"] == "twilio disconnected (Closed)"
    assert lines("closing: twilio disconnected (Closed)")
    assert openai.closed.is_set()
    assert m["frames_dropped"] > 0 and m["frames_sent"] >= 3
    assert twilio.messages("clear") == []  # nobody to apologize to: no apology, no clear


class StallingTwilio(FakeTwilio):
    """A Twilio socket whose peer stops reading: after ``limit`` sends every send blocks until close()."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.unblocked = threading.Event()
        self.blocked = threading.Event()

    def send(self, data: str) -> None:
        if len(self.sent) >= self.limit:
            self.blocked.set()
            self.unblocked.wait(30)  # bounded only so a broken bridge cannot hang the test run
            raise Closed("socket aborted while sending")
        super().send(data)

    def close(self, reason=None, message=None) -> None:
        self.unblocked.set()
        super().close(reason, message)


@pytest.mark.parametrize("trigger", ["barge_in", "twilio_stop", "outside_close"])
def test_twilio_reader_stops_reading_blocked_send_is_bounded(bridge_call, lines, trigger):
    twilio = StallingTwilio(limit=4)
    call = faulty(bridge_call, CFG.replace(barge_in=True), twilio=twilio).start()
    session, twilio, openai = call.session, call.twilio, call.openai
    openai.response("resp_1", "item_1", [FRAME * 60], done=False)
    assert twilio.blocked.wait(5)
    t0 = time.monotonic()
    if trigger == "barge_in":
        openai.push({"type": "input_audio_buffer.speech_started", "item_id": "u1", "audio_start_ms": 10})
    elif trigger == "twilio_stop":
        twilio.stop()
    else:
        session.close("outside close")
    m = call.finish(stop=False, limit=5)
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0, elapsed  # bounded by twilio_send_timeout_s (0.3 s), not forever
    assert m["twilio_send_timeouts"] == 1
    assert len(lines("TWILIO_SEND_TIMEOUT")) == 1
    # stop and close() end the call first; the stuck send is then found by the teardown's watch
    expected = {"barge_in": "twilio send timeout", "outside_close": "outside close", "twilio_stop": "twilio stop"}
    assert m["close_reason"] == expected[trigger]
    assert not lines("did not stop in time")
    assert openai.closed.is_set()


# ============================================================================= isolation
def test_one_faulted_call_never_affects_another(bridge_call, lines):
    good_call = faulty(bridge_call).start()
    bad_call = faulty(bridge_call, twilio=StallingTwilio(limit=3)).start()
    twilio_good, openai_good = good_call.twilio, good_call.openai
    bad, twilio_bad, openai_bad = bad_call.session, bad_call.twilio, bad_call.openai
    data = bytes(i % 251 for i in range(160 * 40))
    openai_good.response("resp_g", "item_g", [data[i:i + 333] for i in range(0, len(data), 333)])
    # the bad call gets every fault at once: garbage both ways, a fatal error, a stalled reader
    twilio_bad.push("{garbage")
    twilio_bad.push(b"\x00")
    openai_bad.push("{garbage")
    assert twilio_bad.wait_for(lambda t: len(bad.metrics["protocol_errors"]) == 3)
    openai_bad.response("resp_b", "item_b", [FRAME * 30], done=False)
    openai_bad.push({"type": "error", "error": {"type": "invalid_request_error", "code": "session_expired",
                                                "message": "expired"}})
    openai_bad.drop()
    twilio_good.media(FRAME, n=10)
    m_bad = bad_call.finish(stop=False)
    assert twilio_good.wait_for(lambda t: len(t.messages("media")) == 40)
    m_good = good_call.finish()
    assert b"".join(twilio_good.media_frames()) == data
    assert m_good["close_reason"] == "twilio stop"
    assert m_good["protocol_errors"] == {} and m_good["openai_errors"] == {}
    assert m_good["twilio_send_timeouts"] == 0 and m_good["frames_dropped"] == 0
    assert len(openai_good.appended()) == 10 * 160
    assert m_bad["close_reason"] in ("twilio send timeout", "openai error session_expired")
    assert m_bad["protocol_errors"] == {"twilio.malformed_json": 1, "twilio.binary_frame": 1,
                                        "openai.malformed_json": 1}



# ============================================================================= hostile callers
def test_a_socket_that_never_sends_start_is_closed_and_never_dials(bridge_call, lines):
    dials = []
    call = faulty(bridge_call, CFG.replace(start_timeout_s=0.3),
                  connect=lambda config: dials.append(config) or FakeRealtime()).run()
    m = call.finish(stop=False)
    assert m["close_reason"] == "no start" and dials == [] and call.session.threads == []
    assert len(lines("no Twilio start within 0.3 s")) == 1


def test_a_stream_told_to_give_up_waiting_still_gets_its_start_grace(bridge_call, lines):
    """The bridge closes the oldest of too many waiting upgrades; a genuine one whose ``start``
    follows at once (Twilio sends it right after ``connected``) still becomes a call."""
    clock = ManualClock()
    genuine = faulty(bridge_call, clock=clock).run()
    genuine.session.give_up_waiting_for_start()
    clock.advance(0.1)  # its connected and start arrive a moment later, together
    genuine.twilio.connected_and_start()
    assert wait_until(lambda: genuine.session.stream_sid is not None)
    clock.advance(1.0)
    genuine.twilio.media(b"\xff" * 160)
    assert wait_until(lambda: genuine.session.metrics["inbound_frames"] == 1)
    assert genuine.session.close_reason is None
    stray = faulty(bridge_call, clock=clock).run()
    stray.session.give_up_waiting_for_start()
    clock.advance(0.6)
    m = stray.finish(stop=False)
    assert m["close_reason"] == "no start" and lines("closed before its start")
    assert genuine.finish()["close_reason"] == "twilio stop"


def test_close_before_run_never_dials(bridge_call):
    dials = []
    call = faulty(bridge_call, connect=lambda config: dials.append(config) or FakeRealtime())
    call.session.close("closed first")
    call.start()
    m = call.finish(stop=False)
    assert m["close_reason"] == "closed first" and dials == [] and call.session.threads == []


def test_close_while_dialing_closes_the_late_connection(bridge_call):
    dialing, release, late = threading.Event(), threading.Event(), FakeRealtime()

    def slow_connect(config):
        dialing.set()
        release.wait(5)
        return late

    call = faulty(bridge_call, connect=slow_connect).start()
    assert dialing.wait(5)
    closer = threading.Thread(target=call.session.close, args=("hung up while dialing",))
    closer.start()  # close() from outside waits for the teardown, which waits for the dial
    assert wait_until(lambda: call.session.model.closed)  # the link itself closed (close_reason is set before)
    release.set()
    closer.join(10)
    m = call.finish(stop=False)
    assert m["close_reason"] == "hung up while dialing"
    assert late.close_calls == 1  # closed, not leaked
    assert late.events("input_audio_buffer.append") == late.events("response.create") == []


def test_a_flood_of_bad_messages_and_a_huge_sid_write_a_bounded_log(bridge_call, caplog):
    caplog.set_level(logging.INFO)
    call = faulty(bridge_call).start()
    twilio = call.twilio
    huge = "MZ" + "f" * 20_000
    twilio.push({"event": "start", "streamSid": huge, "start": {"streamSid": huge, "callSid": "CA" + "e" * 20_000}})
    for i in range(200):
        twilio.push("x" * (i % 7 + 1))  # one-byte-ish garbage
        twilio.push({"event": "media", "streamSid": huge, "media": {"payload": ""}})
        twilio.push({"event": "dtmf", "streamSid": huge, "dtmf": {"digit": "9" * 5000}})
        call.openai.push("{garbage")
        call.openai.push({"type": "error", "error": {"type": "invalid_request_error", "code": "invalid_value",
                                                     "message": "bad"}})
    assert wait_until(lambda: call.session.metrics["openai_errors"].get("invalid_value") == 200)
    m = call.finish()
    assert m["protocol_errors"]["twilio.malformed_json"] == 200 and m["openai_protocol_errors"] == 200
    written = sum(len(r.getMessage()) for r in caplog.records)
    assert written < 6000, written  # 1000 bad messages, each kind logged once, SIDs cut short
    assert all(len(r.getMessage()) < 2000 for r in caplog.records)  # the summary line is the longest
    assert m["log_lines_suppressed"]["twilio:malformed_json"] == 199


def test_marks_the_bridge_never_sent_are_not_counted_as_echoes(bridge_call, lines):
    call = faulty(bridge_call).start()
    for i in range(1000):
        call.twilio.push(testing.twilio_mark(f"forged{i}"))
    assert wait_until(lambda: call.session.metrics["twilio_protocol_errors"] == 1000)
    m = call.finish()
    assert m["marks_echoed"] == 0 and m["protocol_errors"] == {"twilio.foreign_mark": 1000}
    assert len(lines("was never sent by this bridge")) == 1


def test_a_send_stall_during_the_apology_ends_the_call_within_the_bound(bridge_call, lines):
    def refuse(config):
        raise ConnectionRefusedError("refused")

    twilio = StallingTwilio(limit=3)  # the apology's third frame never leaves
    call = faulty(bridge_call, connect=refuse, twilio=twilio).start()
    assert twilio.blocked.wait(5)
    t0 = time.monotonic()
    m = call.finish(stop=False)
    elapsed = time.monotonic() - t0
    assert m["close_reason"] == "twilio send timeout" and m["twilio_send_timeouts"] == 1
    # the bound is twilio_send_timeout_s (0.3 s) plus the 50 ms watch; it took about 7 s before
    assert elapsed < CFG.twilio_send_timeout_s + 1.5, elapsed
    assert len(lines("TWILIO_SEND_TIMEOUT")) == 1
