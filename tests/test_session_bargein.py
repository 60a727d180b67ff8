"""Barge-in end to end through MediaSession's threads with fake sockets."""
import base64
import logging
import threading
import time

import pytest

from voicebridge import BridgeConfig
from voicebridge.audio import mulaw as audio
from voicebridge.dev import tts
from voicebridge.audio.echo import attenuation_table
from voicebridge.audio.false_trigger import WORDS_S
from voicebridge.dev.sim.acoustics import cough
from voicebridge.dev.sim import corpus
from voicebridge.testing import LOUD_VOICE, ManualClock, rt_speech_started, rt_speech_stopped, rt_transcript, wait_until

LOUD = LOUD_VOICE  # about -8 dBFS
QUIET = b"\xff" * 160
# The procedure's tests confirm at the debounce (five loud frames): by default a barge-in also
# needs barge_in_min_speech_ms of speech (backchannels), which has tests of its own below.
CFG = BridgeConfig(greeting_instructions=None, join_timeout_s=3.0, safety_fuse_ms=60000, duck_fuse_ms=60000,
                   ignore_backchannels=False)


@pytest.fixture
def start(bridge_call):
    """``start(config) -> (session, twilio, openai, call)`` for a call already started."""
    def begin(config=CFG):
        call = bridge_call(config).start()
        return call.session, call.twilio, call.openai, call
    return begin


def end(session, call, twilio):
    return call.finish()


def long_response(openai, twilio, rid="resp_1", item="item_1", frames=150, done=False, wait_frames=3, kind=None):
    openai.response(rid, item, [bytes([0x20 + (i % 50)]) * 160 for i in range(frames)], done=done, kind=kind)
    assert twilio.wait_for(lambda t: len(t.messages("media")) >= wait_frames)


def index_of(messages, event):
    return next(i for i, m in enumerate(messages) if m["event"] == event)


def barged_in(session):
    """The procedure ran (its clear was sent): the duck's own clear (``duck_clear``) is no barge-in."""
    return session.metrics["barge_in_events"] >= 1


def heard(messages):
    """The frames the caller hears, in order: a duck's clear drops what Twilio still held, and
    sending goes on from the first frame taken back (sent again: the caller had not heard it).
    Fails if a resend starts anywhere but within the last few frames sent before the clear."""
    stream, cut = [], None
    for m in messages:
        if m["event"] == "clear":
            cut = len(stream)
        elif m["event"] == "media":
            frame = base64.b64decode(m["media"]["payload"])
            if cut is not None:
                back = [j for j in range(max(0, cut - 4), cut) if stream[j] == frame]
                stream, cut = stream[:back[-1]] if back else stream, None
            stream.append(frame)
    return stream


def test_local_barge_in_clears_flushes_cancels_truncates_in_order(start):
    session, twilio, openai, call = start()
    long_response(openai, twilio)
    twilio.media(LOUD, n=5)
    assert twilio.wait_for(lambda t: len(openai.events("conversation.item.truncate")) == 1)
    # A sentinel response: the TX queue is FIFO, so a stale frame sent after the clear would
    # appear before the sentinel's frames.
    openai.response("resp_2", "item_2", [b"\x7e" * 160])
    assert twilio.wait_for(lambda t: b"\x7e" * 160 in t.media_frames())
    sent = twilio.messages()
    clear_at = index_of(sent, "clear")  # the duck's: nothing more of the answer after it either
    after = [base64.b64decode(m["media"]["payload"]) for m in sent[clear_at + 1:] if m["event"] == "media"]
    assert after == [b"\x7e" * 160], "media of the interrupted response after the clear"
    clear_at = max(i for i, m in enumerate(sent) if m["event"] == "clear")  # the barge-in's
    sent = sent[:clear_at + 1]
    kinds = [e["type"] for e in openai.events() if e["type"] != "input_audio_buffer.append"]
    assert kinds[-2:] == ["response.cancel", "conversation.item.truncate"]
    assert openai.events("response.cancel")[0]["response_id"] == "resp_1"
    truncate = openai.events("conversation.item.truncate")[0]
    media_before = sum(1 for m in sent[:clear_at] if m["event"] == "media")
    assert truncate["item_id"] == "item_1" and 0 <= truncate["audio_end_ms"] <= media_before * 20
    m = end(session, call, twilio)
    assert m["barge_in_events"] == 1 and m["barge_in_local"] == 1 and m["frames_flushed"] > 0
    # the duck's clear (unless a stalled TX thread had left nothing at the caller) and the barge-in's;
    # what the duck's clear took back was never sent again: the barge-in discarded it, counted apart
    assert m["ducks"] == 1 and m["clears_sent"] == 1 + m["duck_clears"] and m["duck_clears"] <= 1
    assert m["frames_taken_back"] == m["frames_resend_discarded"] and m["frames_resent"] == 0
    assert m["frames_enqueued"] == m["frames_sent"] + m["frames_flushed"] + m["frames_dropped"]


def test_duck_pauses_then_resumes_losing_and_repeating_nothing(start):
    session, twilio, openai, call = start()
    long_response(openai, twilio, frames=40, done=True)
    twilio.media(LOUD, n=2)
    twilio.media(QUIET, n=2)  # the first quiet frame is a tolerated dip; the second ends the run
    assert twilio.wait_for(lambda t: len(heard(t.messages())) == 40, timeout=8)
    assert heard(twilio.messages()) == [bytes([0x20 + (i % 50)]) * 160 for i in range(40)]
    m = end(session, call, twilio)
    assert m["ducks"] == 1 and m["duck_releases"] == 1 and m["barge_in_events"] == 0
    assert m["frames_sent"] == 40 and m["frames_flushed"] == 0
    # the duck cleared what Twilio held, and sent it again on the release (counted once as sent)
    assert m["clears_sent"] == m["duck_clears"] <= 1 and m["frames_resent"] == m["frames_taken_back"]


def test_without_duck_clear_a_duck_only_pauses_and_nothing_is_sent_twice(start):
    session, twilio, openai, call = start(CFG.replace(duck_clear=False))
    long_response(openai, twilio, frames=40, done=True)
    twilio.media(LOUD, n=2)
    twilio.media(QUIET, n=2)
    assert twilio.wait_for(lambda t: len(t.messages("media")) == 40, timeout=8)
    assert twilio.media_frames() == [bytes([0x20 + (i % 50)]) * 160 for i in range(40)]
    m = end(session, call, twilio)
    assert m["ducks"] == 1 and m["duck_releases"] == 1 and not twilio.messages("clear")
    assert m["frames_sent"] == 40 and m["frames_taken_back"] == m["frames_resent"] == 0


def test_duck_stops_sending_immediately(start):
    session, twilio, openai, call = start()
    long_response(openai, twilio)
    twilio.media(LOUD, n=1)
    assert twilio.wait_for(lambda t: session.metrics["ducks"] == 1)
    ducked_by = time.monotonic()  # the duck happened before this instant
    time.sleep(0.15)  # the TX thread polls the duck every 50 ms meanwhile
    released_from = time.monotonic()
    twilio.media(QUIET, n=2)  # a dip, then the end of the loud run
    assert twilio.wait_for(lambda t: session.metrics["duck_releases"] == 1)
    count = len(twilio.messages("media"))
    assert twilio.wait_for(lambda t: len(t.messages("media")) > count)  # sending resumed
    # at most the frame in flight at the duck left after it; nothing while ducked
    during = [t for t, m in twilio.sent if m["event"] == "media" and ducked_by + 0.02 < t < released_from]
    assert during == []
    end(session, call, twilio)


def test_barge_in_after_response_done_while_audio_still_plays(start):
    session, twilio, openai, call = start()
    long_response(openai, twilio, frames=500, done=True)  # (10 s: still playing on a loaded box, seen to end first)
    assert wait_until(lambda: session.responses.current is not None and not session.responses.current.active)
    assert session.outbound.audible  # the model is done, the audio is not
    twilio.media(LOUD, n=5)
    assert twilio.wait_for(lambda t: barged_in(session))
    assert twilio.wait_for(lambda t: len(openai.events("conversation.item.truncate")) == 1)
    assert openai.events("response.cancel") == []  # nothing active to cancel
    m = end(session, call, twilio)
    # What had not played is gone: the clear empties Twilio's buffer; what was still queued here (none
    # at all if a loaded box let the TX loop send everything first) was flushed, as frames or deltas.
    assert m["barge_in_events"] == 1 and m["frames_enqueued"] == m["frames_sent"] + m["frames_flushed"]
    assert m["frames_taken_back"] == m["frames_resend_discarded"]


def test_local_and_server_triggers_racing_run_one_procedure(start):
    session, twilio, openai, call = start()
    long_response(openai, twilio)
    openai.push({"type": "input_audio_buffer.speech_started", "audio_start_ms": 100, "item_id": "user_1"})
    twilio.media(LOUD, n=5)
    openai.push({"type": "input_audio_buffer.speech_started", "audio_start_ms": 140, "item_id": "user_1"})
    openai.push({"type": "sentinel.event"})  # the model thread handles events in order
    assert wait_until(lambda: session.metrics["openai_unknown_events"] == 1)
    assert wait_until(lambda: session.metrics["inbound_frames"] == 5)  # every trigger has been seen
    m = end(session, call, twilio)
    assert m["barge_in_events"] == 1 and m["clears_sent"] - m["duck_clears"] == 1
    assert len(openai.events("response.cancel")) == 1
    assert len(openai.events("conversation.item.truncate")) == 1


def test_late_deltas_for_interrupted_response_are_dropped(start):
    session, twilio, openai, call = start()
    long_response(openai, twilio)
    twilio.media(LOUD, n=5)  # (the model's VAD alone, with nothing heard here, no longer interrupts)
    assert twilio.wait_for(lambda t: barged_in(session))
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
    assert m["barge_in_events"] == 1


def test_guards_prevent_cancel_during_greeting_end_to_end(start):
    session, twilio, openai, call = start(CFG.replace(greeting_instructions="Say hello"))
    assert twilio.wait_for(lambda t: len(openai.events("response.create")) == 1)
    long_response(openai, twilio, rid="resp_greet", item="item_greet", kind="greeting")
    twilio.media(LOUD, n=8)
    openai.push({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "user_1"})
    openai.push({"type": "sentinel.event"})  # the model thread handles events in order
    assert wait_until(lambda: session.metrics["openai_unknown_events"] == 1)
    assert wait_until(lambda: session.metrics["inbound_frames"] == 8)  # every trigger has been seen
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
    assert twilio.wait_for(lambda t: barged_in(session))
    for _ in range(30):
        twilio.media(QUIET)
        time.sleep(0.01)
    # no speech from the model's VAD: the bridge commits the barge-in's audio for its words first
    assert twilio.wait_for(lambda t: openai.events("input_audio_buffer.commit"))
    assert session.metrics["false_barge_ins"] == 0
    words_of_the_commit(openai, "item_c1", "")  # a cough: no words
    assert twilio.wait_for(lambda t: session.metrics["false_barge_ins"] == 1)
    creates = openai.events("response.create")
    assert creates and "Continue" in creates[-1]["response"]["instructions"]
    end(session, call, twilio)


def words_of_the_commit(openai, item_id, text):
    """The service's reply to the bridge's commit: the turn, then its transcript."""
    openai.push({"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": None})
    openai.push({"type": "conversation.item.input_audio_transcription.completed", "item_id": item_id,
                 "content_index": 0, "transcript": text})


def test_real_interruption_is_not_a_false_trigger(start):
    session, twilio, openai, call = start(CFG.replace(false_trigger_ms=200))
    long_response(openai, twilio)
    twilio.media(LOUD, n=5)
    assert twilio.wait_for(lambda t: barged_in(session))
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


def test_the_safety_fuse_frees_the_line_a_cut_answer_held(start):
    """After a barge-in the cut answer is no longer current, but it holds the request line until its
    response.done; a stalled session never sends it, and the fuse must let the line go."""
    session, twilio, openai, call = start(CFG.replace(safety_fuse_ms=300))
    long_response(openai, twilio)
    openai.auto_session = False  # the cancel is never answered with response.done
    twilio.media(LOUD, n=5)
    assert twilio.wait_for(lambda t: len(openai.events("response.cancel")) == 1)
    session.requests.request("probe")
    assert openai.requested("probe") == []  # the server would refuse it over the cut answer
    assert twilio.wait_for(lambda t: session.metrics["safety_fuses"] >= 1, timeout=3)
    assert wait_until(lambda: openai.requested("probe"))
    end(session, call, twilio)


# ----------------------------------------------------------------- what the session itself uses
def test_the_session_confirms_on_the_fifth_loud_frame_not_before(start):
    """BridgeConfig's default debounce is what the running session applies: 4 loud frames duck only
    (with the backchannel filter off: it would also ask for barge_in_min_speech_ms of speech)."""
    session, twilio, openai, call = start(BridgeConfig(greeting_instructions=None, join_timeout_s=3.0, ignore_backchannels=False))
    long_response(openai, twilio)
    twilio.media(LOUD, n=4)
    twilio.media(QUIET, n=2)  # a one-frame dip is tolerated; two quiet frames end the run
    assert wait_until(lambda: session.metrics["duck_releases"] == 1)
    assert session.metrics["barge_in_events"] == 0
    twilio.media(LOUD, n=5)
    assert wait_until(lambda: session.metrics["barge_in_events"] == 1)
    end(session, call, twilio)


def test_a_one_frame_dip_neither_releases_the_duck_nor_restarts_the_count(start):
    """Speech dips between syllables: loud, loud, quiet, loud x3 confirms on the fifth loud frame."""
    session, twilio, openai, call = start(BridgeConfig(greeting_instructions=None, join_timeout_s=3.0, ignore_backchannels=False))
    long_response(openai, twilio)
    twilio.media(LOUD, n=2)
    twilio.media(QUIET, n=1)
    twilio.media(LOUD, n=2)
    assert wait_until(lambda: session.metrics["inbound_frames"] == 5)
    assert session.metrics["barge_in_events"] == 0 and session.metrics["duck_releases"] == 0
    twilio.media(LOUD, n=1)
    assert wait_until(lambda: session.metrics["barge_in_events"] == 1)
    m = end(session, call, twilio)
    assert m["ducks"] == 1 and m["duck_releases"] == 0


def barge_in_on_a_manual_clock(bridge_call, config=None):
    """A call whose decisions follow a hand-moved clock, interrupted by 5 loud frames at ``clock.now``."""
    clock = ManualClock()
    call = bridge_call(config or BridgeConfig(greeting_instructions=None, join_timeout_s=3.0, ignore_backchannels=False),
                       clock=clock).start()
    long_response(call.openai, call.twilio, wait_frames=2)  # a frozen clock lets only the lead out
    return call, clock


def quiet_frame_at(call, clock, seconds_later):
    clock.advance(seconds_later)
    count = call.session.metrics["inbound_frames"]
    call.twilio.media(QUIET)
    assert wait_until(lambda: call.session.metrics["inbound_frames"] == count + 1)


def test_false_trigger_recovery_waits_the_configured_500_ms(bridge_call):
    call, clock = barge_in_on_a_manual_clock(bridge_call)
    call.twilio.media(LOUD, n=5)
    assert wait_until(lambda: call.session.metrics["barge_in_events"] == 1)
    quiet_frame_at(call, clock, 0.0)
    quiet_frame_at(call, clock, 0.499)
    assert not call.openai.events("input_audio_buffer.commit")
    quiet_frame_at(call, clock, 0.001)
    assert wait_until(lambda: call.session.metrics["false_trigger_commits"] == 1)
    assert len(call.openai.events("input_audio_buffer.commit")) == 1
    words_of_the_commit(call.openai, "item_c1", "Mm-hm.")  # an acknowledgement: the answer goes on
    assert wait_until(lambda: call.session.metrics["false_barge_ins"] == 1)
    assert "Continue" in call.openai.events("response.create")[-1]["response"]["instructions"]
    call.finish()


def asked_for_words(bridge_call):
    """A local barge-in the model's VAD never started on, quiet for 500 ms since: the bridge has
    committed its audio for its words."""
    call, clock = barge_in_on_a_manual_clock(bridge_call)
    call.twilio.media(LOUD, n=5)
    assert wait_until(lambda: call.session.metrics["barge_in_events"] == 1)
    quiet_frame_at(call, clock, 0.0)
    quiet_frame_at(call, clock, 0.5)
    assert wait_until(lambda: call.session.metrics["false_trigger_commits"] == 1)
    return call, clock


def test_a_barge_in_the_models_vad_never_heard_is_answered_when_its_words_take_the_turn(bridge_call):
    """A reverberant soft "stop, stop" on a speakerphone: the local detector confirmed it, the
    model's VAD took no turn. Its words, asked for, show it was the caller: the model answers it
    and is not told to continue over it."""
    call, clock = asked_for_words(bridge_call)
    creates = len(call.openai.events("response.create"))
    words_of_the_commit(call.openai, "item_c1", "Stop, stop.")
    assert wait_until(lambda: call.session.metrics["false_trigger_answered"] == 1)
    assert wait_until(lambda: len(call.openai.events("response.create")) == creates + 1)
    assert call.openai.requested("turn") and not call.openai.requested("continue")
    quiet_frame_at(call, clock, 5.0)  # long past the words' wait: nothing more is asked
    m = call.finish()
    assert m["false_barge_ins"] == 0 and len(call.openai.events("response.create")) == creates + 1


def test_a_barge_in_inside_a_model_turn_begun_before_it_waits_for_that_turns_words(bridge_call):
    """The model's VAD started before the caller spoke (on the room: ignored), and its turn holds
    the caller's "wait, hold on" that the local detector confirmed. No speech evidence since the
    onset, but the watch neither continues nor commits: that turn's words decide, and take it."""
    call, clock = barge_in_on_a_manual_clock(bridge_call)
    call.openai.push(rt_speech_started("item_in1"))
    assert wait_until(lambda: call.session.metrics["server_speech_ignored"] == 1)
    clock.advance(0.1)
    call.twilio.media(LOUD, n=5)
    assert wait_until(lambda: call.session.metrics["barge_in_events"] == 1)
    quiet_frame_at(call, clock, 0.0)
    quiet_frame_at(call, clock, 0.5)
    quiet_frame_at(call, clock, 0.5)
    assert not call.openai.events("input_audio_buffer.commit") and not call.openai.requested("continue")
    call.openai.push(rt_speech_stopped("item_in1"))
    words_of_the_commit(call.openai, "item_in1", "Wait, hold on.")
    assert wait_until(lambda: call.session.metrics["false_trigger_answered"] == 1)
    m = call.finish()
    assert m["false_barge_ins"] == 0 and m["false_trigger_commits"] == 0
    assert call.openai.requested("turn") and not call.openai.requested("continue")


def test_words_of_a_barge_in_that_never_come_are_answered(bridge_call):
    """The commit's transcript never comes: the model, which has the audio, answers; it is not
    told to continue over what may have been "stop"."""
    call, clock = asked_for_words(bridge_call)
    quiet_frame_at(call, clock, WORDS_S - 0.02)
    assert call.session.metrics["false_trigger_answered"] == 0
    quiet_frame_at(call, clock, 0.02)
    assert wait_until(lambda: call.session.metrics["false_trigger_answered"] == 1)
    m = call.finish()
    assert m["false_barge_ins"] == 0


def test_speech_the_server_confirms_during_the_barge_in_is_not_a_false_trigger(bridge_call, caplog):
    """The server's speech_started handled while the barge-in is still sending: the interruption is
    real, so quiet afterwards must not make the bridge ask the model to continue."""
    caplog.set_level(logging.INFO)
    call, clock = barge_in_on_a_manual_clock(bridge_call)

    def server_hears_the_caller_meanwhile(event):
        if event["type"] == "response.cancel":
            call.openai.push(rt_speech_started())
            assert wait_until(lambda: "server VAD: caller speech started" in caplog.text)

    call.openai.on_client_event = server_hears_the_caller_meanwhile
    call.twilio.media(LOUD, n=5)
    assert wait_until(lambda: call.session.metrics["barge_in_events"] == 1)
    quiet_frame_at(call, clock, 0.0)
    quiet_frame_at(call, clock, 2.0)  # long past false_trigger_ms of quiet
    m = call.finish()
    assert m["false_barge_ins"] == 0 and m["barge_in_local"] == 1
    assert all("response" not in e for e in call.openai.events("response.create"))


# ----------------------------------------------------------------- the agent's own echo
SPEECH = tts.load_prompt("long_answer")
MINUS_15_DB = attenuation_table(15.0)


class Speakerphone(threading.Thread):
    """Twilio's side of a speakerphone: a frame every 20 ms, carrying what the caller heard
    ``delay_frames`` earlier 15 dB down, plus ``voice`` from frame ``voice_at`` on."""

    def __init__(self, twilio, frames=200, delay_frames=4, voice=b"", voice_at=60):
        super().__init__(name="speakerphone", daemon=True)
        self.twilio, self.frames, self.delay, self.voice, self.voice_at = twilio, frames, delay_frames, voice, voice_at
        self.start()

    def run(self):
        heard, due = [], time.monotonic()
        for k in range(self.frames):  # bounded: frames x 20 ms
            sent = self.twilio.media_frames()
            heard.append(sent[len(heard)] if len(sent) > len(heard) else QUIET)  # played at most one a tick
            echo = heard[k - self.delay].translate(MINUS_15_DB) if k >= self.delay else QUIET
            spoken = self.voice[(k - self.voice_at) * 160:(k - self.voice_at + 1) * 160] if k >= self.voice_at else b""
            if len(spoken) == 160:
                echo = audio.encode([a + b for a, b in zip(audio.decode(echo), audio.decode(spoken))])
            self.twilio.media(echo)
            due += 0.02
            time.sleep(max(0.0, due - time.monotonic()))


def speech_response(openai, seconds=3.0):
    chunks = [SPEECH[i:i + 800] for i in range(0, int(seconds * 8000), 800)]
    openai.response("resp_1", "item_1", chunks, done=True)


@pytest.mark.timing
def test_the_agents_own_echo_neither_interrupts_it_nor_reaches_the_model(start):
    """A real-time speakerphone thread echoes what it hears: under load its echo drifts from the
    playout the gate learned (65 of 150 frames judged echo, 1 under gevent), so this lives in the
    timing lane; tests/test_listening.py and benchmarks/bargein_cases.py judge echo in virtual time."""
    session, twilio, openai, call = start(BridgeConfig(greeting_instructions=None, join_timeout_s=3.0))
    phone = Speakerphone(twilio, frames=170)
    speech_response(openai)
    phone.join(10)
    m = end(session, call, twilio)
    assert m["frames_sent"] == 150 and m["ducks"] == 0 and m["barge_in_events"] == 0
    assert not twilio.messages("clear") and m["echo_frames"] > 100
    heard = openai.appended()
    forwarded = [audio.dbfs(heard[i:i + 160]) for i in range(0, len(heard), 160)]
    assert len(forwarded) == 170 and max(forwarded) < -35.0  # what the model's VAD hears: 30 dB down


@pytest.mark.timing
def test_a_caller_talking_over_their_echo_barges_in(start):
    """Real-time speakerphone thread, like the test above: timing lane (under gevent its echo
    drifts); the benchmark's talk-over-echo cases judge this in virtual time."""
    session, twilio, openai, call = start(BridgeConfig(greeting_instructions=None, join_timeout_s=3.0))
    phone = Speakerphone(twilio, frames=120, voice=tts.load_prompt("caller_stop"))
    speech_response(openai)
    assert twilio.wait_for(lambda t: len(t.messages("clear")) == 1, timeout=8)
    phone.join(10)
    m = end(session, call, twilio)
    assert m["barge_in_events"] == 1 and m["echo_caller_frames"] >= 5 and m["frames_flushed"] > 0
    assert m["echo_frames"] > 20  # the echo before the caller spoke was recognised as such


def test_a_cough_neither_barges_in_nor_lets_the_models_vad_do_it(start):
    """(The echo gate is off: the fake agent's constant loud frames would make a caller quieter
    than them sound like echo to a gate that has had no time to learn the line.)"""
    session, twilio, openai, call = start(BridgeConfig(greeting_instructions=None, join_timeout_s=3.0, echo_gate=False,
                                                       ignore_backchannels=False))
    twilio.media(QUIET, n=80)  # a quiet line first: the noise floor has a window to judge
    long_response(openai, twilio)
    for frame in [cough(300, seed=4)[i:i + 160] for i in range(0, 2400, 160)]:
        twilio.media(frame)
    assert wait_until(lambda: session.metrics["inbound_frames"] == 95)
    openai.push(rt_speech_started())  # the model's VAD takes the cough for speech
    twilio.media(QUIET, n=3)
    assert wait_until(lambda: session.metrics["server_speech_ignored"] == 1)
    assert session.metrics["barge_in_events"] == 0
    assert len(twilio.messages("clear")) == session.metrics["duck_clears"]  # the cough's duck's, if any
    speech = tts.load_prompt("caller_stop")
    for i in range(0, 2400, 160):
        twilio.media(speech[i:i + 160])
    assert twilio.wait_for(lambda t: barged_in(session))  # a voice confirms at once
    m = end(session, call, twilio)
    assert m["barge_in_events"] == 1 and m["barge_in_local"] == 1 and m["ducks"] >= 2


def test_a_blocking_hook_does_not_delay_barge_in_handling(bridge_call, caplog):
    """An ``on_transcript_entry`` that blocks (a 1.5 s database write; here: until the test lets it go)
    must not hold back the model's events: the server's speech_started during the barge-in is
    still handled, so the quiet after "stop please" is not judged a false barge-in."""
    caplog.set_level(logging.INFO)
    entered, release, seen = threading.Event(), threading.Event(), []

    def slow_hook(session, role, text):
        seen.append((role, text))
        entered.set()
        release.wait(10)  # stands in for the 1.5 s write: released only once the test has its answer

    clock = ManualClock()
    call = bridge_call(CFG, clock=clock, on_transcript_entry=slow_hook).start()
    try:
        long_response(call.openai, call.twilio, wait_frames=2)
        call.openai.push({"type": "conversation.item.input_audio_transcription.completed", "item_id": "u0",
                          "content_index": 0, "transcript": "what can you tell me"})
        assert entered.wait(5)  # the hook is now blocked
        call.twilio.media(LOUD, n=5)
        assert wait_until(lambda: call.session.metrics["barge_in_events"] == 1)
        call.openai.push(rt_speech_started())
        assert wait_until(lambda: "server VAD: " in caplog.text)  # handled meanwhile
        quiet_frame_at(call, clock, 0.0)
        quiet_frame_at(call, clock, 2.0)  # long past false_trigger_ms of quiet
        assert call.session.metrics["false_barge_ins"] == 0
        assert not any(t.name.startswith("vb-hooks") for t in call.session.threads)
    finally:
        release.set()
    m = call.finish()
    assert m["false_barge_ins"] == 0 and m["hooks_dropped"] == 0 and seen[0] == ("caller", "what can you tell me")
# ----------------------------------------------------------------- backchannels and the model's VAD (issue 21)
def rt_committed(item_id="item_user"):
    return {"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": None}


def say(twilio, session, data, then_quiet=6):
    frames = [data[i:i + 160].ljust(160, b"\xff") for i in range(0, len(data), 160)]
    for frame in frames:
        twilio.media(frame)
    twilio.media(QUIET, n=then_quiet)
    # every frame pushed so far handled (frames pushed before this one may still be queued under load)
    assert wait_until(lambda: session.metrics["inbound_frames"] == twilio.media_pushed, timeout=30)


def test_a_backchannel_over_the_answer_resumes_it_with_nothing_lost_and_leaves_its_turn_unanswered(start):
    """(Echo gate off: the fake agent's constant frames would make a quieter caller sound like echo.)"""
    session, twilio, openai, call = start(BridgeConfig(greeting_instructions=None, join_timeout_s=3.0, echo_gate=False))
    twilio.media(QUIET, n=80)
    long_response(openai, twilio, frames=60, done=True)
    say(twilio, session, corpus.by_category("backchannel")[8].audio())  # "yeah"
    openai.push(rt_speech_started("item_bc"))  # the model's VAD heard it too, and commits it as a turn
    openai.push(rt_speech_stopped("item_bc"))
    openai.push(rt_committed("item_bc"))
    assert wait_until(lambda: session.metrics["turns_backchannel"] == 1)
    openai.push(rt_transcript("Yeah.", "item_bc"))  # its words say backchannel: the held agent resumes
    assert twilio.wait_for(lambda t: len(heard(t.messages())) == 60, timeout=8)
    assert heard(twilio.messages()) == [bytes([0x20 + (i % 50)]) * 160 for i in range(60)]  # in order, none twice
    m = end(session, call, twilio)
    assert m["ducks"] >= 1 and m["backchannels"] >= 1 and m["barge_in_events"] == 0
    assert m["server_speech_ignored_backchannel"] == 1
    assert m["clears_sent"] == m["duck_clears"] and openai.events("response.cancel") == []
    assert openai.events("response.create") == []  # "yeah" is not answered: the answer goes on


def test_a_held_turn_whose_words_are_the_agents_own_transcript_resumes_the_answer(start):
    """The agent's transcript deltas reach the listener: a held turn the model transcribes as the
    agent's own words (its echo) resumes the answer instead of interrupting it."""
    session, twilio, openai, call = start(BridgeConfig(greeting_instructions=None, join_timeout_s=3.0, echo_gate=False))
    twilio.media(QUIET, n=80)
    openai.push({"type": "response.output_audio_transcript.delta", "response_id": "resp_1", "item_id": "item_1",
                 "delta": "The model streams its reply back faster than real time."})
    long_response(openai, twilio, frames=60, done=True)
    say(twilio, session, corpus.by_category("backchannel")[8].audio())
    openai.push(rt_speech_started("item_e"))
    openai.push(rt_committed("item_e"))
    assert wait_until(lambda: session.metrics["turns_backchannel"] == 1)
    openai.push(rt_transcript("streams its reply back faster", "item_e"))
    assert twilio.wait_for(lambda t: len(heard(t.messages())) == 60, timeout=8)
    m = end(session, call, twilio)
    assert m["barge_in_events"] == 0 and m["backchannels"] >= 1
    assert m["clears_sent"] == m["duck_clears"] and openai.events("response.cancel") == []


def test_a_turn_with_the_agent_silent_is_answered_by_the_bridges_request(start):
    session, twilio, openai, call = start(BridgeConfig(greeting_instructions=None, join_timeout_s=3.0))
    say(twilio, session, corpus.by_category("question")[0].audio())
    openai.push(rt_speech_started("item_q"))
    openai.push(rt_speech_stopped("item_q"))
    openai.push(rt_committed("item_q"))
    assert wait_until(lambda: len(openai.requested("turn")) == 1)
    end(session, call, twilio)


def test_the_models_vad_on_nothing_the_bridge_heard_neither_interrupts_nor_is_answered(start):
    session, twilio, openai, call = start(BridgeConfig(greeting_instructions=None, join_timeout_s=3.0))
    twilio.media(QUIET, n=80)
    long_response(openai, twilio, frames=60, done=True)
    openai.push(rt_speech_started("item_x"))
    openai.push(rt_committed("item_x"))
    assert wait_until(lambda: session.metrics["turns_not_caller"] == 1)
    assert twilio.wait_for(lambda t: len(t.messages("media")) == 60, timeout=8)
    m = end(session, call, twilio)
    assert m["server_speech_ignored_nothing"] == 1 and m["barge_in_events"] == 0
    assert not twilio.messages("clear") and openai.events("response.create") == []


@pytest.mark.parametrize("duck", [True, False])
def test_a_short_turn_taken_for_a_backchannel_whose_words_say_wait_interrupts_and_is_answered(start, duck):
    """(With the duck off too: nothing paused the agent at the first loud frame; the hold pauses it.)"""
    session, twilio, openai, call = start(BridgeConfig(greeting_instructions=None, join_timeout_s=3.0, echo_gate=False,
                                                       duck=duck))
    twilio.media(QUIET, n=80)
    long_response(openai, twilio, frames=150, done=True)
    say(twilio, session, corpus.by_category("interruption")[0].audio())  # "wait": as short as "yeah"
    assert wait_until(lambda: session.metrics["backchannel_holds"] == 1)
    assert (session.metrics["ducks"] > 0) is duck
    openai.push(rt_speech_started("item_w"))
    openai.push(rt_committed("item_w"))
    assert wait_until(lambda: session.metrics["turns_backchannel"] == 1)
    assert not barged_in(session)
    openai.push(rt_transcript("Wait.", "item_w"))
    assert twilio.wait_for(lambda t: barged_in(session))
    assert wait_until(lambda: len(openai.requested("turn")) == 1)
    m = end(session, call, twilio)
    assert m["barge_in_transcript"] == 1 and m["backchannels_overruled"] == 1


def test_a_held_short_utterance_outlasts_the_duck_fuse_and_resumes_on_its_words(bridge_call):
    """"Yeah" over the answer: the agent stays paused while its words are awaited, past
    duck_fuse_ms (the fuse waits for the hold's own bound), and resumes, nothing lost, on them."""
    clock = ManualClock()
    call = bridge_call(BridgeConfig(greeting_instructions=None, join_timeout_s=3.0, echo_gate=False), clock=clock).start()
    session, twilio, openai = call.session, call.twilio, call.openai
    twilio.media(QUIET, n=80)
    long_response(openai, twilio, frames=60, done=True, wait_frames=2)
    say(twilio, session, corpus.by_category("backchannel")[8].audio())  # "yeah" (a frozen clock: short)
    assert wait_until(lambda: session.metrics["backchannel_holds"] == 1)
    openai.push(rt_speech_started("item_bc"))
    openai.push(rt_committed("item_bc"))
    assert wait_until(lambda: session.metrics["turns_backchannel"] == 1)
    sent = len(twilio.messages("media"))
    quiet_frame_at(call, clock, 1.5)  # past duck_fuse_ms (1 s): still held
    time.sleep(0.1)
    assert len(twilio.messages("media")) == sent and session.metrics["duck_releases"] == 0
    openai.push(rt_transcript("Yeah.", "item_bc"))
    assert wait_until(lambda: session.metrics["backchannels"] == 1)
    for _ in range(5):
        clock.advance(0.1)
        time.sleep(0.05)
    assert twilio.wait_for(lambda t: len(t.messages("media")) > sent, timeout=8)  # resumed
    frames = heard(twilio.messages())
    assert frames == [bytes([0x20 + (i % 50)]) * 160 for i in range(len(frames))]  # where it paused, none twice
    m = call.finish()
    assert m["barge_in_events"] == 0 and openai.events("response.cancel") == []
    assert m["clears_sent"] == m["duck_clears"]
    assert openai.events("response.create") == []


def test_a_held_short_utterance_with_transcription_off_interrupts_at_its_commit(bridge_call):
    """No words will come to tell "stop" from "mm-hm": missing a "stop" is worse, so it interrupts
    at the commit (the clock stands still: not at the hold's bound)."""
    clock = ManualClock()
    call = bridge_call(BridgeConfig(greeting_instructions=None, join_timeout_s=3.0, echo_gate=False, transcription_model=None),
                       clock=clock).start()
    session, twilio, openai = call.session, call.twilio, call.openai
    twilio.media(QUIET, n=80)
    long_response(openai, twilio, frames=150, done=True, wait_frames=2)
    say(twilio, session, corpus.by_category("backchannel")[8].audio())
    assert wait_until(lambda: session.metrics["backchannel_holds"] == 1)
    openai.push(rt_speech_started("item_s"))
    openai.push(rt_committed("item_s"))
    assert twilio.wait_for(lambda t: len(t.messages("clear")) == 1)
    quiet_frame_at(call, clock, 0.6)  # (its answer once the caller is done: quiet for ``ANSWER_GAP_S``)
    assert wait_until(lambda: len(openai.requested("turn")) == 1)
    m = end(session, call, twilio)
    assert m["barge_in_hold"] == 1 and m["backchannels"] == 0


def _held_unheard(bridge_call, clip):
    """A short utterance over the answer that the model's VAD never takes for a turn (a
    reverberant "wait" on a speakerphone): the clock moves past a second of hold."""
    clock = ManualClock()
    call = bridge_call(BridgeConfig(greeting_instructions=None, join_timeout_s=3.0, echo_gate=False), clock=clock).start()
    session, twilio, openai = call.session, call.twilio, call.openai
    twilio.media(QUIET, n=80)
    long_response(openai, twilio, frames=150, done=True, wait_frames=2)
    say(twilio, session, clip)
    assert wait_until(lambda: session.metrics["backchannel_holds"] == 1)
    sent = len(twilio.messages("media"))
    quiet_frame_at(call, clock, 1.05)
    assert wait_until(lambda: openai.events("input_audio_buffer.commit") != [])
    return call, clock, sent


def test_a_held_utterance_the_models_vad_never_heard_is_committed_and_its_words_say_wait(bridge_call):
    call, clock, sent = _held_unheard(bridge_call, corpus.by_category("interruption")[0].audio())
    session, twilio, openai = call.session, call.twilio, call.openai
    assert len(twilio.messages("media")) == sent and not barged_in(session)  # still paused, nothing cut
    openai.push(rt_committed("item_c"))  # the service's reply to the client commit: no response of its own
    assert wait_until(lambda: session.metrics["turns_backchannel"] == 1)
    openai.push(rt_transcript("Wait.", "item_c"))
    assert twilio.wait_for(lambda t: barged_in(session))
    assert wait_until(lambda: len(openai.requested("turn")) == 1)  # and it is answered
    m = call.finish()
    assert m["hold_commits"] == 1 and m["barge_in_transcript"] == 1 and len(openai.events("input_audio_buffer.commit")) == 1


def resumed_whole(clock, twilio, sent):
    """The held answer resumes where it paused (the clock moving on): nothing lost, nothing twice."""
    for _ in range(5):
        clock.advance(0.1)
        time.sleep(0.05)
    assert twilio.wait_for(lambda t: len(t.messages("media")) > sent, timeout=8)
    frames = heard(twilio.messages())
    assert frames == [bytes([0x20 + (i % 50)]) * 160 for i in range(len(frames))]


def test_a_held_utterance_whose_commit_is_refused_resumes_the_answer(bridge_call):
    call, clock, sent = _held_unheard(bridge_call, corpus.by_category("backchannel")[8].audio())
    session, twilio, openai = call.session, call.twilio, call.openai
    openai.push({"type": "error", "error": {"type": "invalid_request_error", "code": "input_audio_buffer_commit_empty",
                                            "message": "buffer too small"}})
    assert wait_until(lambda: session.metrics["backchannels"] == 1)
    resumed_whole(clock, twilio, sent)
    m = call.finish()
    assert m["barge_in_events"] == 0 and openai.events("response.cancel") == [] and m["hold_commits"] == 1


def test_the_reply_to_the_bridges_commit_after_the_hold_resumed_asks_for_no_answer(bridge_call):
    """Review rv7: the service's reply to the held audio's commit comes after the hold's bound
    resumed the answer: it is the caller's "yeah", not a turn to answer (it was: a "turn" request)."""
    call, clock, sent = _held_unheard(bridge_call, corpus.by_category("backchannel")[8].audio())
    session, twilio, openai = call.session, call.twilio, call.openai
    quiet_frame_at(call, clock, 1.5)  # 2.55 s held: the bound, no reply yet
    assert wait_until(lambda: session.metrics["backchannels"] == 1)
    openai.push(rt_committed("item_c"))
    assert wait_until(lambda: session.metrics["turns_backchannel"] == 1 or openai.requested("turn"))
    assert openai.requested("turn") == []
    openai.push(rt_transcript("Yeah.", "item_c"))
    m = call.finish()
    assert openai.requested("turn") == [] and m["barge_in_events"] == 0 and m["hold_commits"] == 1


def test_a_refused_commit_of_a_held_utterance_warns_nobody(bridge_call, caplog):
    """Review rv7: the service's refusal of the bridge's own commit is expected (too little audio
    since the VAD's last commit): logged at INFO, not as a Realtime error warning."""
    call, clock, sent = _held_unheard(bridge_call, corpus.by_category("backchannel")[8].audio())
    session, openai = call.session, call.openai
    with caplog.at_level(logging.INFO):
        openai.push({"type": "error", "error": {"type": "invalid_request_error",
                                                "code": "input_audio_buffer_commit_empty", "message": "buffer too small"}})
        assert wait_until(lambda: session.metrics["backchannels"] == 1)
        call.finish()
    refusals = [r for r in caplog.records if "commit" in r.getMessage() and "refused" in r.getMessage()]
    assert refusals and all(r.levelno == logging.INFO for r in refusals)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "commit_empty" in r.getMessage()]


def test_a_yeah_inside_a_turn_a_tv_keeps_open_is_committed_at_its_onset_and_resumes_on_its_words(bridge_call):
    """The model's VAD opened a turn (on a TV) before the answer's "yeah" and never closes it: the
    bridge commits the buffer at the yeah's first loud frame (before that frame goes up: the TV's
    stretch is a turn of its own, unanswered), then the held yeah's own audio; its words resume
    the answer, nothing lost, no cancel; the open turn's rest is nobody's."""
    clock = ManualClock()
    call = bridge_call(BridgeConfig(greeting_instructions=None, join_timeout_s=3.0, echo_gate=False), clock=clock).start()
    session, twilio, openai = call.session, call.twilio, call.openai
    twilio.media(QUIET, n=80)
    long_response(openai, twilio, frames=150, done=True, wait_frames=2)
    openai.push(rt_speech_started("item_tv"))
    assert wait_until(lambda: session.metrics["server_speech_ignored"] == 1)
    quiet_frame_at(call, clock, 1.2)  # the turn open 1.2 s
    before, frames_before = len(openai.appended()), session.metrics["inbound_frames"]
    say(twilio, session, corpus.by_category("backchannel")[8].audio())  # "yeah" (a frozen clock: short)
    assert wait_until(lambda: session.metrics["backchannel_holds"] == 1)
    assert session.metrics["onset_commits"] == 1 and len(openai.events("input_audio_buffer.commit")) == 1
    kinds = [e["type"] for e in openai.events()]
    first_commit = kinds.index("input_audio_buffer.commit")
    up_to_commit = b"".join(base64.b64decode(e["audio"]) for e in openai.events()[:first_commit]
                            if e["type"] == "input_audio_buffer.append")
    assert len(up_to_commit) >= frames_before * 160  # what waited in the batch went up first ...
    assert set(up_to_commit[before:]) <= {0xFF} and len(openai.appended()) > len(up_to_commit)  # ... none of the yeah
    openai.push(rt_committed("item_tv"))  # the reply: the TV's stretch
    assert wait_until(lambda: session.metrics["turns_not_caller"] == 1)
    sent = len(twilio.messages("media"))
    quiet_frame_at(call, clock, 0.35)  # the hold's own commit, inside the turn still open
    assert wait_until(lambda: len(openai.events("input_audio_buffer.commit")) == 2)
    openai.push(rt_committed("item_c1"))
    assert wait_until(lambda: session.metrics["turns_backchannel"] == 1)
    assert len(twilio.messages("media")) == sent  # still paused
    openai.push(rt_transcript("Yeah.", "item_c1"))
    assert wait_until(lambda: session.metrics["backchannels"] == 1)
    openai.push(rt_speech_stopped("item_tv_rest"))
    openai.push(rt_committed("item_tv_rest"))  # the open turn's rest, when the TV pauses
    assert wait_until(lambda: session.metrics["turns_not_caller"] == 2)
    openai.push(rt_transcript("and tonight the forecast for the weekend", "item_tv_rest"))
    resumed_whole(clock, twilio, sent)
    m = call.finish()
    assert m["barge_in_events"] == 0 and openai.events("response.cancel") == [] and openai.requested("turn") == []
    assert m["onset_commits"] == 1 and m["hold_commits"] == 1


def test_the_rest_of_a_question_the_models_vad_left_uncommitted_is_committed_at_a_yeahs_onset(bridge_call):
    """The model's VAD closed the caller's question at a pause and heard no more of it; its rest
    waits in the input buffer. A "yeah" over the answer: the bridge commits the buffer at its
    first loud frame (the question's rest: a turn of its own, unanswered), so the held yeah's own
    commit carries the yeah alone, and its words resume the answer: nothing lost, no cancel. (It
    was committed with the question's last words, "cost? yeah", which took the turn.)"""
    clock = ManualClock()
    call = bridge_call(BridgeConfig(greeting_instructions=None, join_timeout_s=3.0, echo_gate=False), clock=clock).start()
    session, twilio, openai = call.session, call.twilio, call.openai
    twilio.media(QUIET, n=80)
    question = corpus.by_category("question")[3].audio()  # "How much does the delivery cost?"
    openai.push(rt_speech_started("item_q"))
    say(twilio, session, question[:len(question) // 2], then_quiet=0)
    openai.push(rt_speech_stopped("item_q"))
    openai.push(rt_committed("item_q"))
    assert wait_until(lambda: openai.requested("turn"))  # (the question answered: the commit handled)
    clock.advance(0.3)
    say(twilio, session, question[len(question) // 2:])  # its rest: the model's VAD never starts again
    clock.advance(0.5)
    long_response(openai, twilio, frames=150, done=True, wait_frames=2)
    quiet_frame_at(call, clock, 1.2)
    assert openai.events("input_audio_buffer.commit") == []
    before = len(openai.appended())
    say(twilio, session, corpus.by_category("backchannel")[8].audio())  # "yeah"
    assert wait_until(lambda: session.metrics["backchannel_holds"] == 1)
    assert session.metrics["onset_commits"] == 1 and len(openai.events("input_audio_buffer.commit")) == 1
    first_commit = [e["type"] for e in openai.events()].index("input_audio_buffer.commit")
    up_to_commit = b"".join(base64.b64decode(e["audio"]) for e in openai.events()[:first_commit]
                            if e["type"] == "input_audio_buffer.append")
    assert set(up_to_commit[before:]) <= {0xFF} and len(openai.appended()) > len(up_to_commit)  # none of the yeah
    openai.push(rt_committed("item_rest"))  # the reply: the question's rest
    assert wait_until(lambda: session.metrics["turns_left_over"] == 1)
    openai.push(rt_transcript("the delivery cost?", "item_rest"))
    sent = len(twilio.messages("media"))
    quiet_frame_at(call, clock, 1.05)  # no turn of the model's for the yeah: its own commit
    assert wait_until(lambda: len(openai.events("input_audio_buffer.commit")) == 2)
    openai.push(rt_committed("item_c1"))
    assert wait_until(lambda: session.metrics["turns_backchannel"] == 1)
    openai.push(rt_transcript("Yeah.", "item_c1"))
    assert wait_until(lambda: session.metrics["backchannels"] == 1)
    resumed_whole(clock, twilio, sent)
    m = call.finish()
    assert m["barge_in_events"] == 0 and openai.events("response.cancel") == []
    assert m["onset_commits"] == m["turns_left_over"] == 1 and m["hold_commits"] == 1


# ----------------------------------------------------------------- the duck off (duck=False)
def _yeah_held(bridge_call, duck, frames):
    """A call on a hand-moved clock whose answer (``frames`` long) a "yeah" holds for its words."""
    clock = ManualClock()
    config = BridgeConfig(greeting_instructions=None, join_timeout_s=3.0, echo_gate=False, duck=duck)
    call = bridge_call(config, clock=clock).start()
    call.twilio.media(QUIET, n=80)
    long_response(call.openai, call.twilio, frames=frames, done=True, wait_frames=2)
    say(call.twilio, call.session, corpus.by_category("backchannel")[8].audio())  # "yeah"
    assert wait_until(lambda: call.session.metrics["backchannel_holds"] == 1)
    return call, clock


def test_with_the_duck_off_a_short_utterance_still_holds_the_agent_for_its_words(bridge_call):
    """duck=False: nothing pauses the agent at the first loud frame, but a short voiced utterance
    pauses it when it ends, and its words decide as with the duck (before, the agent talked on
    over a short "wait": 25 % of the set's interruptions missed at the ear; docs/barge-in.md)."""
    call, clock = _yeah_held(bridge_call, duck=False, frames=60)
    session, twilio, openai = call.session, call.twilio, call.openai
    assert session.metrics["ducks"] == 0
    openai.push(rt_speech_started("item_bc"))
    openai.push(rt_committed("item_bc"))
    assert wait_until(lambda: session.metrics["turns_backchannel"] == 1)
    sent = len(twilio.messages("media"))
    quiet_frame_at(call, clock, 0.5)  # half a second on: nothing sent, the agent is held
    time.sleep(0.1)
    assert len(twilio.messages("media")) == sent
    openai.push(rt_transcript("Yeah.", "item_bc"))
    assert wait_until(lambda: session.metrics["backchannels"] == 1)
    resumed_whole(clock, twilio, sent)
    m = call.finish()
    assert m["barge_in_events"] == 0 and openai.events("response.cancel") == [] and m["ducks"] == 0
    assert m["hold_pauses"] == 1 and m["duck_releases"] == 1  # (the hold's pause, and its release)


def test_with_the_duck_off_a_cough_never_pauses_the_agent(start):
    session, twilio, openai, call = start(BridgeConfig(greeting_instructions=None, join_timeout_s=3.0,
                                                       echo_gate=False, duck=False))
    twilio.media(QUIET, n=80)
    long_response(openai, twilio)
    say(twilio, session, cough(300, seed=4))
    m = end(session, call, twilio)
    assert m["ducks"] == 0 and m["clears_sent"] == 0 and m["barge_in_events"] == 0
    assert m["backchannel_holds"] + m["far_holds"] + m["breath_holds"] == m["hold_pauses"] == 0


@pytest.mark.parametrize("duck", [True, False])
def test_the_fuse_does_not_cut_a_hold_a_later_wait_joined(bridge_call, duck):
    """Review rv28: "yeah" held, its turn committed; 2.2 s later "wait" joins the hold (its own
    bound from then) and its words are slow. With the duck on, "wait"'s duck restarts the duck
    fuse's clock; with it off the hold pauses again when "wait" joins, so the fuse counts from
    there too (it counted from the first hold's pause, and resumed the agent inside the hold)."""
    call, clock = _yeah_held(bridge_call, duck=duck, frames=400)
    session, twilio, openai = call.session, call.twilio, call.openai
    openai.push(rt_speech_started("item_1"))
    openai.push(rt_committed("item_1"))
    assert wait_until(lambda: session.metrics["turns_backchannel"] == 1)
    for _ in range(22):
        quiet_frame_at(call, clock, 0.1)
    say(twilio, session, corpus.by_category("interruption")[1].audio())  # "wait": joins the hold
    openai.push(rt_transcript("Yeah.", "item_1"))  # the first turn's words: the resume waits for "wait"'s
    openai.push(rt_speech_started("item_2"))
    openai.push(rt_committed("item_2"))
    assert wait_until(lambda: session.metrics["turns_backchannel"] == 2)
    sent = len(twilio.messages("media"))
    for _ in range(20):  # 2.0 s more: within "wait"'s own 2.5 s bound
        quiet_frame_at(call, clock, 0.1)
    time.sleep(0.2)
    fuses, now_sent = session.metrics["safety_fuses"], len(twilio.messages("media"))
    openai.push(rt_transcript("Wait.", "item_2"))
    assert wait_until(lambda: session.metrics["barge_in_events"] == 1)
    m = call.finish()
    assert (fuses, now_sent - sent) == (0, 0), "the fuse resumed the agent inside the hold"
    assert (m["hold_pauses"] >= 2) is not duck and (m["ducks"] > 0) is duck


@pytest.mark.parametrize("duck", [True, False])
def test_a_wait_over_the_answers_last_frames_leaves_the_next_answer_unpaused(bridge_call, duck):
    """Review rv29: the answer (8 frames) plays out while the caller says "wait" over its end.
    With the duck off the short utterance is judged once the agent is silent: its hold pauses
    nothing (it paused an empty line, the barge-in on its words was refused as nothing was
    audible, and the next answer waited for the duck fuse: 0.65 s, a SAFETY_FUSE warning)."""
    clock = ManualClock()
    config = BridgeConfig(greeting_instructions=None, join_timeout_s=3.0, echo_gate=False, duck=duck)
    call = bridge_call(config, clock=clock).start()
    session, twilio, openai = call.session, call.twilio, call.openai
    twilio.echo_marks = True
    twilio.media(QUIET, n=80)
    long_response(openai, twilio, frames=8, done=True, wait_frames=2)
    clip = corpus.by_category("interruption")[1].audio()  # "wait"
    for frame in [clip[i:i + 160].ljust(160, b"\xff") for i in range(0, len(clip), 160)] + [QUIET] * 6:
        clock.advance(0.02)
        time.sleep(0.01)  # (the TX loop sends on the hand-moved clock meanwhile)
        count = session.metrics["inbound_frames"]
        twilio.media(frame)
        assert wait_until(lambda: session.metrics["inbound_frames"] == count + 1)
    openai.push(rt_speech_started("item_w"))
    openai.push(rt_committed("item_w"))
    openai.push(rt_transcript("Wait.", "item_w"))
    time.sleep(0.2)
    sent = len(twilio.messages("media"))
    openai.response("resp_2", "item_2", [b"\x33" * 160] * 20, done=True)
    t0 = clock()
    for _ in range(30):
        quiet_frame_at(call, clock, 0.05)
        if len(twilio.messages("media")) > sent:
            break
    delay = clock() - t0
    m = call.finish()
    assert m["safety_fuses"] == 0 and delay <= 0.1 + 1e-9, delay
