"""MediaSession through its real threads, with fake Twilio and Realtime sockets."""
import base64
import math
import random
import threading

import pytest

from voicebridge import BridgeConfig, MediaSession
from voicebridge.audio import SILENCE_FRAME

from fakes import FakeRealtime, FakeTwilio, start_session

APOLOGY = b"\x11" * 800  # 100 ms stands in for the bundled prompt
CFG = BridgeConfig(greeting=None, barge_in=False, join_timeout_s=3.0, apology_audio=APOLOGY)


def session_pair(config=CFG, **kwargs):
    twilio, openai = FakeTwilio(), FakeRealtime()
    session = MediaSession(twilio, config, openai.connector, **kwargs)
    return session, twilio, openai


def run_call(session, twilio):
    thread = start_session(session)
    twilio.connected_and_start(tenant="acme")
    return thread


def finish(session, thread, twilio=None):
    if twilio is not None:
        twilio.stop()
    thread.join(10)
    assert not thread.is_alive()
    for t in session.threads:
        assert not t.is_alive(), t.name
    m = session.metrics
    assert m["frames_enqueued"] == m["frames_sent"] + m["frames_flushed"] + m["frames_dropped"]
    assert m["accounting_ok"]
    return m


def random_chunks(total, seed=3):
    rnd = random.Random(seed)
    data = bytes(rnd.randrange(256) for _ in range(total))
    chunks, i = [], 0
    while i < total:
        n = rnd.randrange(1, 900)
        chunks.append(data[i:i + n])
        i += n
    return data, chunks


def test_random_deltas_become_exact_frames_in_order():
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    data, chunks = random_chunks(4321)
    openai.response("resp_1", "item_1", chunks)
    expected = math.ceil(len(data) / 160)
    assert twilio.wait_for(lambda t: len(t.messages("media")) >= expected)
    frames = twilio.media_frames()
    assert len(frames) == expected
    assert all(len(f) == 160 for f in frames)
    joined = b"".join(frames)
    assert joined[:len(data)] == data and set(joined[len(data):]) == {0xFF}
    m = finish(session, thread, twilio)
    assert m["frames_sent"] == expected and m["frames_flushed"] == 0 and m["frames_dropped"] == 0
    assert m["first_frame_bytes"] == 160 and m["audio_deltas"] == len(chunks)
    assert m["model_audio_bytes"] == len(data)


def test_session_update_then_greeting_and_inbound_forwarded_unchanged():
    session, twilio, openai = session_pair(BridgeConfig(greeting="Say hello", barge_in=False))
    thread = run_call(session, twilio)
    frame = bytes(range(160))
    twilio.media(frame, n=3)
    assert twilio.wait_for(lambda t: len(openai.events("input_audio_buffer.append")) == 3)
    kinds = [e["type"] for e in openai.events()]
    assert kinds[0] == "session.update"
    assert openai.events("response.create")[0] == {"type": "response.create", "response": {"instructions": "Say hello"}}
    import base64
    assert {e["audio"] for e in openai.events("input_audio_buffer.append")} == {base64.b64encode(frame).decode()}
    m = finish(session, thread, twilio)
    assert m["inbound_frames"] == 3 and session.call_sid == "CAtest"
    assert session.custom_parameters == {"tenant": "acme"}


def test_frames_are_paced_one_per_message():
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    openai.response("resp_1", "item_1", [b"\x10" * 160 * 12])
    assert twilio.wait_for(lambda t: len(t.messages("media")) == 12)
    times = [t for t, m in twilio.sent if m["event"] == "media"]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # the 40 ms lead goes at once; after it, never a burst
    assert all(g >= 0.017 for g in gaps[2:]), gaps
    finish(session, thread, twilio)


def test_tail_of_each_response_is_padded_and_marked():
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    openai.response("resp_1", "item_1", [b"\x01" * 170])
    assert twilio.wait_for(lambda t: len(t.messages("media")) == 2 and len(t.messages("mark")) >= 1)
    frames = twilio.media_frames()
    assert frames[1] == b"\x01" * 10 + b"\xff" * 150
    m = finish(session, thread, twilio)
    assert m["framer_bytes_padded"] == 150


def test_twilio_disconnect_mid_response_keeps_accounting():
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    openai.response("resp_1", "item_1", [b"\x22" * 160 * 100], done=False)
    assert twilio.wait_for(lambda t: len(t.messages("media")) >= 3)
    twilio.disconnect()
    m = finish(session, thread)
    assert m["frames_dropped"] > 0 and m["frames_sent"] >= 3
    assert openai.closed.is_set()
    assert "twilio disconnected" in m["close_reason"]


def test_openai_disconnect_mid_response_apologizes_then_ends_cleanly():
    session, twilio, openai = session_pair()
    twilio.echo_marks = True
    thread = run_call(session, twilio)
    openai.response("resp_1", "item_1", [b"\x22" * 160 * 100], done=False)
    assert twilio.wait_for(lambda t: len(t.messages("media")) >= 3)
    openai.drop()
    m = finish(session, thread)
    assert m["close_reason"] == "openai disconnected"
    assert twilio.closed.is_set()
    sent = twilio.messages()
    clear_at = max(i for i, msg in enumerate(sent) if msg["event"] == "clear")
    after = [msg for msg in sent[clear_at + 1:] if msg["event"] == "media"]
    assert [m_["media"]["payload"] for m_ in after] == [base64.b64encode(APOLOGY[:160]).decode()] * 5
    assert sent[-1] == {"event": "mark", "streamSid": twilio.stream_sid, "mark": {"name": "vb-apology"}}
    assert m["frames_flushed"] > 0


def test_apology_can_be_disabled():
    session, twilio, openai = session_pair(CFG.replace(apology=False))
    thread = run_call(session, twilio)
    assert twilio.wait_for(lambda t: len(openai.events("session.update")) == 1)
    openai.drop()
    m = finish(session, thread)
    assert m["close_reason"] == "openai disconnected" and twilio.messages("media") == []


def test_close_twice_and_from_outside_is_idempotent():
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    openai.response("resp_1", "item_1", [b"\x22" * 160 * 50], done=False)
    assert twilio.wait_for(lambda t: len(t.messages("media")) >= 2)
    session.close("test close")
    session.close("again")
    m = finish(session, thread)
    assert m["close_reason"] == "test close"
    assert twilio.close_calls == 1 and openai.close_calls == 1


@pytest.mark.parametrize("where", ["openai-rx", "audio-out", "tx"])
def test_close_from_each_session_thread(where):
    session, twilio, openai = session_pair()
    fired = threading.Event()

    def close_here(*_args):
        if threading.current_thread().name.startswith(f"vb-{where}") and not fired.is_set():
            fired.set()
            session.close(f"closed from {where}")

    if where == "openai-rx":
        openai.on_client_event = None
        session._handle_openai = _wrap(session._handle_openai, close_here)  # noqa: SLF001
    elif where == "audio-out":
        session._enqueue = _wrap(session._enqueue, close_here)  # noqa: SLF001
    else:
        twilio.on_send = close_here
    thread = run_call(session, twilio)
    openai.response("resp_1", "item_1", [b"\x22" * 160 * 20])
    assert fired.wait(5)
    m = finish(session, thread)
    assert m["close_reason"] == f"closed from {where}"


def _wrap(fn, hook):
    def wrapped(*args, **kwargs):
        result = fn(*args, **kwargs)
        hook()
        return result
    return wrapped


def test_close_before_run_and_run_after_close():
    session, twilio, openai = session_pair()
    session.close("early")
    session.run()
    assert session.metrics["close_reason"] == "early"
    assert session.threads == []


def test_bad_messages_on_both_sides_do_not_stop_the_call():
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    for bad in ["not json", '{"event":"weird"}', '{"event":"media","media":{"payload":"%%%"}}', b"\x00"]:
        twilio.push(bad)
    for bad in ["{oops", '{"type":"totally.unknown"}', b"\x01\x02",
                '{"type":"response.output_audio.delta","response_id":"r","item_id":"i","delta":"!!"}',
                '{"type":"error","error":{"type":"invalid_request_error","code":"invalid_value","message":"bad"}}']:
        openai.push(bad)
    openai.response("resp_1", "item_1", [b"\x33" * 320])
    assert twilio.wait_for(lambda t: len(t.messages("media")) == 2)
    m = finish(session, thread, twilio)
    assert m["twilio_protocol_errors"] == 4
    assert m["openai_protocol_errors"] == 3
    assert m["openai_unknown_events"] == 1
    assert m["openai_errors"] == {"invalid_value": 1}
    assert m["close_reason"] == "twilio stop"


def test_fatal_openai_error_ends_the_call():
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    openai.push({"type": "error", "error": {"type": "invalid_request_error", "code": "session_expired",
                                            "message": "Your session hit the maximum duration of 60 minutes."}})
    twilio.echo_marks = True
    m = finish(session, thread)
    assert m["close_reason"] == "openai error session_expired"


def test_unreachable_openai_ends_the_call_cleanly():
    twilio = FakeTwilio()

    def refuse(config):
        raise ConnectionRefusedError("refused")

    session = MediaSession(twilio, CFG, refuse)
    twilio.echo_marks = True
    thread = run_call(session, twilio)
    m = finish(session, thread)
    assert m["close_reason"] == "openai unreachable"
    assert m["openai_errors"] == {"connect_failed": 1}
    assert twilio.media_frames() == [APOLOGY[:160]] * 5  # the caller hears an apology, not dead air
    assert m["frames_sent"] == 5 and m["frames_enqueued"] == 5


def test_cleanup_does_not_touch_global_state():
    """Two sessions in one process share nothing: metrics, queues, state are per instance."""
    a, twilio_a, openai_a = session_pair()
    b, twilio_b, openai_b = session_pair()
    thread_a, thread_b = run_call(a, twilio_a), run_call(b, twilio_b)
    openai_a.response("resp_a", "item_a", [b"\x01" * 480])
    assert twilio_a.wait_for(lambda t: len(t.messages("media")) == 3)
    finish(a, thread_a, twilio_a)
    assert b.metrics["frames_enqueued"] == 0 and b.metrics["close_reason"] is None
    openai_b.response("resp_b", "item_b", [b"\x02" * 160])
    assert twilio_b.wait_for(lambda t: len(t.messages("media")) == 1)
    mb = finish(b, thread_b, twilio_b)
    assert mb["frames_sent"] == 1 and a.metrics["frames_sent"] == 3
    assert twilio_b.media_frames() == [b"\x02" * 160]
    assert SILENCE_FRAME == b"\xff" * 160  # module constants are immutable bytes


def test_twilio_send_failure_ends_call_with_accounting():
    session, twilio, openai = session_pair()
    thread = run_call(session, twilio)
    openai.response("resp_1", "item_1", [b"\x22" * 160 * 40], done=False)
    assert twilio.wait_for(lambda t: len(t.messages("media")) >= 3)
    twilio.fail_sends = True
    m = finish(session, thread)
    assert m["close_reason"] == "twilio send failed" and m["send_failures"] >= 1


def test_on_start_chooses_per_call_config_before_session_update():
    def per_call(session, start):
        return session.config.replace(instructions=f"Tenant {start.custom_parameters['tenant']}", voice="cedar")

    session, twilio, openai = session_pair(on_start=per_call)
    thread = run_call(session, twilio)
    assert twilio.wait_for(lambda t: len(openai.events("session.update")) == 1)
    update = openai.events("session.update")[0]["session"]
    assert update["instructions"] == "Tenant acme" and update["audio"]["output"]["voice"] == "cedar"
    finish(session, thread, twilio)


def test_media_before_start_is_not_forwarded():
    session, twilio, openai = session_pair()
    thread = start_session(session)
    twilio.media(b"\x01" * 160, n=2)
    twilio.connected_and_start()
    twilio.media(b"\x02" * 160, n=1)
    assert twilio.wait_for(lambda t: len(openai.events("input_audio_buffer.append")) == 1)
    m = finish(session, thread, twilio)
    assert m["protocol_errors"] == {"twilio.media_before_start": 2}
    assert [e["type"] for e in openai.events()][:2] == ["session.update", "input_audio_buffer.append"]


def test_tx_wakeup_is_a_self_clearing_event() -> None:
    from voicebridge.session import _Wakeup
    wake = _Wakeup()
    assert wake.wait(0.001) is False  # not set: times out
    wake.set()
    wake.set()  # setting twice is one wake-up
    assert wake.wait(0.001) is True
    assert wake.wait(0.001) is False  # consumed by the first wait
    waiter_saw: list[bool] = []
    thread = threading.Thread(target=lambda: waiter_saw.append(wake.wait(5.0)))
    thread.start()
    wake.set()  # from another thread: ends the wait long before its 5 s timeout
    thread.join(2.0)
    assert waiter_saw == [True]
