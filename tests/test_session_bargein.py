"""Barge-in end to end through MediaSession's threads with fake sockets."""
import time

import pytest

from voicebridge import BridgeConfig
from voicebridge.testing import wait_until

LOUD = bytes([0x90, 0x10]) * 80  # about -6 dBFS
QUIET = b"\xff" * 160
CFG = BridgeConfig(greeting=None, join_timeout_s=3.0, safety_fuse_ms=60000, duck_fuse_ms=60000)


@pytest.fixture
def start(bridge_call):
    """``start(config) -> (session, twilio, openai, call)`` for a call already started."""
    def begin(config=CFG):
        call = bridge_call(config).start()
        return call.session, call.twilio, call.openai, call
    return begin


def end(session, call, twilio):
    return call.finish()


def long_response(openai, twilio, rid="resp_1", item="item_1", frames=150, done=False, wait_frames=3):
    openai.response(rid, item, [bytes([0x20 + (i % 50)]) * 160 for i in range(frames)], done=done)
    assert twilio.wait_for(lambda t: len(t.messages("media")) >= wait_frames)


def index_of(messages, event):
    return next(i for i, m in enumerate(messages) if m["event"] == event)


def test_local_barge_in_clears_flushes_cancels_truncates_in_order(start):
    session, twilio, openai, call = start()
    long_response(openai, twilio)
    twilio.media(LOUD, n=5)
    assert twilio.wait_for(lambda t: len(t.messages("clear")) == 1)
    assert twilio.wait_for(lambda t: len(openai.events("conversation.item.truncate")) == 1)
    time.sleep(0.1)  # anything still leaving after the clear would show now
    sent = twilio.messages()
    clear_at = index_of(sent, "clear")
    assert all(m["event"] != "media" for m in sent[clear_at + 1:]), "media after clear"
    kinds = [e["type"] for e in openai.events() if e["type"] != "input_audio_buffer.append"]
    assert kinds[-2:] == ["response.cancel", "conversation.item.truncate"]
    assert openai.events("response.cancel")[0]["response_id"] == "resp_1"
    truncate = openai.events("conversation.item.truncate")[0]
    media_before = sum(1 for m in sent[:clear_at] if m["event"] == "media")
    assert truncate["item_id"] == "item_1" and 0 <= truncate["audio_end_ms"] <= media_before * 20
    m = end(session, call, twilio)
    assert m["barge_in_events"] == 1 and m["barge_in_local"] == 1 and m["frames_flushed"] > 0
    assert m["ducks"] == 1 and m["clears_sent"] == 1


def test_duck_pauses_then_resumes_losing_and_repeating_nothing(start):
    session, twilio, openai, call = start()
    long_response(openai, twilio, frames=40, done=True)
    twilio.media(LOUD, n=2)
    twilio.media(QUIET, n=1)
    assert twilio.wait_for(lambda t: len(t.messages("media")) == 40, timeout=8)
    frames = twilio.media_frames()
    assert frames == [bytes([0x20 + (i % 50)]) * 160 for i in range(40)]
    m = end(session, call, twilio)
    assert m["ducks"] == 1 and m["duck_releases"] == 1 and m["barge_in_events"] == 0
    assert m["frames_sent"] == 40 and m["frames_flushed"] == 0 and not twilio.messages("clear")


def test_duck_stops_sending_immediately(start):
    session, twilio, openai, call = start()
    long_response(openai, twilio)
    twilio.media(LOUD, n=1)
    assert twilio.wait_for(lambda t: session.metrics["ducks"] == 1)
    time.sleep(0.02)
    count = len(twilio.messages("media"))
    time.sleep(0.15)
    assert len(twilio.messages("media")) == count  # paused: 150 ms with no frame
    twilio.media(QUIET, n=1)
    assert twilio.wait_for(lambda t: len(t.messages("media")) > count)
    end(session, call, twilio)


def test_barge_in_after_response_done_while_audio_still_plays(start):
    session, twilio, openai, call = start()
    long_response(openai, twilio, done=True)
    assert twilio.wait_for(lambda t: session.metrics["responses"] == 1)
    time.sleep(0.05)
    assert session.responses.current.active is False  # the model is done, audio is not
    twilio.media(LOUD, n=5)
    assert twilio.wait_for(lambda t: len(t.messages("clear")) == 1)
    assert twilio.wait_for(lambda t: len(openai.events("conversation.item.truncate")) == 1)
    assert openai.events("response.cancel") == []  # nothing active to cancel
    m = end(session, call, twilio)
    assert m["barge_in_events"] == 1 and m["frames_flushed"] > 0


def test_local_and_server_triggers_racing_run_one_procedure(start):
    session, twilio, openai, call = start()
    long_response(openai, twilio)
    openai.push({"type": "input_audio_buffer.speech_started", "audio_start_ms": 100, "item_id": "user_1"})
    twilio.media(LOUD, n=5)
    openai.push({"type": "input_audio_buffer.speech_started", "audio_start_ms": 140, "item_id": "user_1"})
    assert twilio.wait_for(lambda t: session.metrics["barge_in_events"] >= 1)
    time.sleep(0.2)
    m = end(session, call, twilio)
    assert m["barge_in_events"] == 1 and m["clears_sent"] == 1
    assert len(openai.events("response.cancel")) == 1
    assert len(openai.events("conversation.item.truncate")) == 1


def test_late_deltas_for_interrupted_response_are_dropped(start):
    session, twilio, openai, call = start()
    long_response(openai, twilio)
    openai.push({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "user_1"})
    assert twilio.wait_for(lambda t: len(t.messages("clear")) == 1)
    sent_at_clear = len(twilio.messages("media"))
    for _ in range(5):
        openai.delta("resp_1", "item_1", b"\x55" * 400)
    openai.finish("resp_1", "item_1", status="cancelled")
    assert twilio.wait_for(lambda t: session.metrics["late_deltas_dropped"] == 5)
    # the next response plays normally
    openai.response("resp_2", "item_2", [b"\x66" * 320])
    assert twilio.wait_for(lambda t: len(t.messages("media")) == sent_at_clear + 2)
    assert twilio.media_frames()[-2:] == [b"\x66" * 160] * 2
    m = end(session, call, twilio)
    assert m["barge_in_server"] == 1


def test_guards_prevent_cancel_during_greeting_end_to_end(start):
    session, twilio, openai, call = start(CFG.replace(greeting="Say hello"))
    assert twilio.wait_for(lambda t: len(openai.events("response.create")) == 1)
    long_response(openai, twilio, rid="resp_greet", item="item_greet")
    twilio.media(LOUD, n=8)
    openai.push({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "user_1"})
    time.sleep(0.2)
    assert twilio.messages("clear") == [] and openai.events("response.cancel") == []
    m = end(session, call, twilio)
    assert m["barge_in_events"] == 0 and m["ducks"] == 0


def test_cleanup_only_if_response_id_matches(start):
    session, twilio, openai, call = start()
    long_response(openai, twilio)

    def new_response_races_in(event):
        if event["type"] == "response.cancel":
            # a new response is created while the procedure for resp_1 is still running
            session.responses.created("resp_2")

    openai.on_client_event = new_response_races_in
    twilio.media(LOUD, n=5)
    assert twilio.wait_for(lambda t: len(openai.events("conversation.item.truncate")) == 1)
    current = session.responses.current
    assert current.id == "resp_2" and current.active  # not wiped by resp_1's procedure
    end(session, call, twilio)


def test_false_trigger_asks_the_model_to_continue(start):
    session, twilio, openai, call = start(CFG.replace(false_trigger_ms=200))
    long_response(openai, twilio)
    twilio.media(LOUD, n=5)
    assert twilio.wait_for(lambda t: len(t.messages("clear")) == 1)
    for _ in range(30):
        twilio.media(QUIET)
        time.sleep(0.01)
    assert twilio.wait_for(lambda t: session.metrics["false_barge_ins"] == 1)
    creates = openai.events("response.create")
    assert creates and "Continue" in creates[-1]["response"]["instructions"]
    end(session, call, twilio)


def test_real_interruption_is_not_a_false_trigger(start):
    session, twilio, openai, call = start(CFG.replace(false_trigger_ms=200))
    long_response(openai, twilio)
    twilio.media(LOUD, n=5)
    assert twilio.wait_for(lambda t: len(t.messages("clear")) == 1)
    openai.push({"type": "conversation.item.input_audio_transcription.completed", "item_id": "u1",
                 "content_index": 0, "transcript": "hold on"})
    for _ in range(30):
        twilio.media(QUIET)
        time.sleep(0.01)
    m = end(session, call, twilio)
    assert m["false_barge_ins"] == 0 and m["barge_in_events"] == 1


def test_safety_fuse_clears_a_stuck_response(start):
    session, twilio, openai, call = start(CFG.replace(safety_fuse_ms=300))
    openai.push({"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}})
    assert wait_until(lambda: session.responses.current is not None and session.responses.current.active)
    assert twilio.wait_for(lambda t: session.metrics["safety_fuses"] >= 1, timeout=3)
    assert session.responses.current.active is False
    end(session, call, twilio)
