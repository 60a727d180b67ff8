"""OutboundAudio and the sans-IO state under it: in-flight count, responses, playback."""
import base64
import logging
import threading
import time

from voicebridge import BridgeConfig
from voicebridge.call.log import CallLog
from voicebridge.call.metrics import CallMetrics
from voicebridge.call.downlink import Chunk, OutboundAudio
from voicebridge.audio.playback import MarkOutcome, PlaybackTracker
from voicebridge.call.turns import RECENT, Turns
from voicebridge.call.carrier_link import SendOutcome
from voicebridge.testing import STREAM_SID, FakeTwilio, ManualClock, wait_until
from voicebridge.call.carrier_link import CarrierLink
from voicebridge.call.context import CallContext


def outbound_on_a_fake(clock=time.monotonic, config=BridgeConfig()):
    metrics, twilio = CallMetrics(), FakeTwilio()
    log = CallLog(logging.getLogger("test"))
    link = CarrierLink(twilio, metrics, log, 1.0, clock, on_dead=lambda reason: None)
    link.start(STREAM_SID)
    out = OutboundAudio(link, CallContext(config, metrics, log, clock))
    out._pacer.begin(clock())  # (the TX loop's pacer: the tests below send without waiting for slots)
    return out, twilio, metrics


def frames_of(item, n):
    """``n`` frames of ``item`` as the audio-out thread queues them (numbered by their first byte)."""
    return [Chunk(0, item, bytes([k]) * 160, seq=k + 1) for k in range(n)]


def wire(twilio):
    """What Twilio was sent: frame numbers, "clear" and "mark"."""
    return [m["event"] if m["event"] != "media" else base64.b64decode(m["media"]["payload"])[0]
            for m in twilio.messages()]


def ducked_with_two_frames_at_the_caller():
    """Two frames sent at 1000.0 (the lead: they play 1000.00-1000.04), a duck 5 ms later."""
    clock = ManualClock(1000.0)
    out, twilio, metrics = outbound_on_a_fake(clock)
    chunks = frames_of("item_1", 4)
    out._in_flight = 4  # as queued by the audio-out thread
    assert [out._send(c) for c in chunks[:2]] == [SendOutcome.SENT] * 2
    clock.advance(0.005)
    out.pause(clock())
    return out, twilio, metrics, chunks, clock


def test_a_duck_clears_what_the_caller_has_not_heard_and_sends_it_again_first_on_the_release():
    out, twilio, metrics, chunks, clock = ducked_with_two_frames_at_the_caller()
    assert wire(twilio) == [0, 1, "clear"]  # both frames were mostly unplayed: taken back
    assert out._send(chunks[2]) is SendOutcome.PAUSED  # nothing leaves while ducked
    out._wait(chunks[2])  # (what the TX loop does with it)
    clock.advance(0.1)
    out.resume()
    sent = []
    while len(sent) < 4:  # what the TX loop does: the next in order, sent
        chunk, _ = out._next_chunk()
        if out._send(chunk) is SendOutcome.SENT:
            sent.append(chunk.data[0])
        if chunk is chunks[2]:
            out._send(chunks[3])
            sent.append(3)
    assert wire(twilio) == [0, 1, "clear", 0, 1, 2, 3] and sent == [0, 1, 2, 3]
    assert metrics.get("frames_sent") == 4 and metrics.get("frames_resent") == 2
    assert metrics.get("frames_taken_back") == 2 and metrics.get("duck_clears") == 1
    assert out.heard_ms("item_1", clock()) == 0  # the resent frames are on their way again


def test_a_frame_whose_slot_came_after_a_short_duck_waits_for_what_the_duck_took_back():
    """The TX loop held frame 2 (waiting for its slot) through a whole duck: when its slot comes
    the frames the duck took back are waiting, and they go first."""
    out, twilio, metrics, chunks, clock = ducked_with_two_frames_at_the_caller()
    out.resume()
    assert out._send(chunks[2]) is SendOutcome.PAUSED  # not ahead of frames 0 and 1
    out._wait(chunks[2])
    order = [out._next_chunk()[0] for _ in range(3)]
    assert [c.data[0] for c in order] == [0, 1, 2] and [c.resend for c in order] == [True, True, False]


def test_a_barge_in_after_a_duck_discards_what_it_took_back_once_counted_as_sent():
    out, twilio, metrics, chunks, clock = ducked_with_two_frames_at_the_caller()
    out.interrupt(clear=True)
    assert wire(twilio) == [0, 1, "clear", "clear"]
    assert out._send(chunks[2]) is SendOutcome.FLUSHED and out._send(chunks[3]) is SendOutcome.FLUSHED
    out.drain()
    assert metrics.get("frames_sent") == 2 and metrics.get("frames_flushed") == 2
    assert metrics.get("frames_taken_back") == metrics.get("frames_resend_discarded") == 2
    assert metrics.get("frames_resent") == 0 and not out.audible


def test_a_duck_with_nothing_left_at_the_caller_or_duck_clear_off_sends_no_clear():
    out, twilio, metrics, chunks, clock = ducked_with_two_frames_at_the_caller()
    out.resume()
    for chunk, _ in (out._next_chunk(), out._next_chunk()):
        out._send(chunk)
    clock.advance(1.0)  # all played
    out.pause(clock())
    assert wire(twilio) == [0, 1, "clear", 0, 1] and metrics.get("duck_clears") == 1
    assert not out.duck_stopped_audio  # the caller heard nothing of the agent to stop (and no clear went: above)
    quiet = ManualClock(1000.0)
    off, twilio, metrics = outbound_on_a_fake(quiet, BridgeConfig(duck_clear=False))
    off._in_flight = 1
    off._send(frames_of("item_1", 1)[0])
    off.pause(quiet())
    assert wire(twilio) == [0] and metrics.get("duck_clears") == 0 and off._paused_at is not None
    # no clear, but the agent stops at the caller's ear all the same once the frame has played:
    # a release is heard as the agent going on (``CallerPause`` waits its grace for it)
    assert off.duck_stopped_audio
    off.resume()
    assert not off.duck_stopped_audio


def test_a_duck_again_inside_a_stopping_duck_keeps_it_stopped():
    out, twilio, metrics, chunks, clock = ducked_with_two_frames_at_the_caller()
    assert metrics.get("duck_clears") == 1 and out.duck_stopped_audio
    clock.advance(0.2)
    out.pause(clock())  # a new run's duck, the agent still paused: nothing ahead at Twilio now
    assert metrics.get("duck_clears") == 1 and out.duck_stopped_audio


def test_a_flush_between_a_delta_and_its_framing_never_makes_the_count_negative():
    """Forced interleaving: the barge-in lands after a delta was queued, before it was framed."""
    out, twilio, metrics = outbound_on_a_fake()
    out.push("item_1", b"\x01" * 160)
    assert out.audible
    assert out.interrupt(clear=True) == 1
    assert not out.audible and len(twilio.messages("clear")) == 1
    framer = threading.Thread(target=out.frame_loop)
    framer.start()  # only now does the audio-out side find the stale delta
    try:
        assert wait_until(lambda: metrics.get("framer_bytes_dropped") == 160)
        out.push("item_2", b"\x02" * 160)
        assert wait_until(lambda: metrics.get("frames_enqueued") == 1)
        assert out.audible  # one fresh frame in flight: counted 1, not 0 (-1 + 1)
    finally:
        out.stop()
        framer.join(5)


def test_responses_mark_the_greeting_drop_late_audio_and_end_once():
    tracker = Turns()
    greeting = tracker.created("resp_1", "greeting")
    assert greeting.greeting and not tracker.created("resp_2").greeting
    tracker.item_added("resp_2", "item_2")
    assert tracker.audio("resp_2", "item_2", 800)
    locked = tracker.lock_for_interruption()
    assert (locked.response_id, locked.item_id, locked.was_active, locked.received_bytes) == \
        ("resp_2", "item_2", True, 800)
    assert not tracker.audio("resp_2", "item_2", 100)  # late deltas of an interrupted response
    assert not tracker.audio("resp_x", "item_2", 100)  # ... or item
    assert not tracker.audio_ended("resp_2")  # an interrupted response's tail is not padded
    assert tracker.audio("resp_3", "item_3", 160)  # unknown responses still play
    tracker.created("resp_4")
    assert tracker.audio_ended("resp_4") and not tracker.audio_ended("resp_4")  # once per response


def test_an_interruption_is_cleared_only_while_its_response_is_current():
    tracker = Turns()
    tracker.created("resp_1")
    locked = tracker.lock_for_interruption()
    tracker.created("resp_2")  # a new response raced in during the procedure
    assert not tracker.finish_interruption(locked.response_id)
    assert tracker.current.id == "resp_2" and tracker.current.active


def test_response_memory_is_bounded_however_long_the_call():
    tracker = Turns()
    tracker.created("resp_0")
    tracker.item_added("resp_0", "item_0")
    tracker.lock_for_interruption()
    assert not tracker.audio("resp_0", "item_0", 1)
    for n in range(1, RECENT + 1):
        tracker.created(f"resp_{n}")
    assert tracker.audio("resp_0", "item_0", 1)  # forgotten: no longer recognised as interrupted


def test_played_out_needs_the_final_mark_echoed_as_played():
    pb = PlaybackTracker()
    pb.sent("item", 320, now=0.0)
    mark = pb.new_mark("item")
    pb.ended("item")
    assert not pb.played_out("item")
    assert pb.echoed(mark, now=0.04) is MarkOutcome.PLAYED
    assert pb.played_out("item")
    pb.sent("cut", 320, now=1.0)
    cut = pb.new_mark("cut")
    pb.ended("cut")
    pb.cleared()
    assert pb.echoed(cut, now=1.01) is MarkOutcome.STALE and not pb.played_out("cut")


class _Gate:
    """The echo gate's side of OutboundAudio: the levels it is told were played."""

    def __init__(self):
        self.levels = []

    def played(self, level, now):
        self.levels.append(level)

    def cleared(self, now):
        pass


def test_the_echo_gate_is_told_the_level_of_each_frame_sent_levelled_when_framed():
    from voicebridge.audio import mulaw
    from voicebridge.audio.framing import Framer
    metrics, twilio, clock = CallMetrics(), FakeTwilio(), ManualClock(1000.0)
    log = CallLog(logging.getLogger("test"))
    link = CarrierLink(twilio, metrics, log, 1.0, clock, on_dead=lambda reason: None)
    link.start(STREAM_SID)
    gate = _Gate()
    out = OutboundAudio(link, CallContext(BridgeConfig(), metrics, log, clock), echo=gate)
    out._pacer.begin(clock())
    delta = bytes(range(256)) * 2 + bytes([0x7F]) * 148  # 660 bytes: four frames and a padded tail
    framer, src = Framer(), Chunk(0, "item_1", delta)
    out._enqueue(framer.push(delta), src, consumed=1)  # (what the audio-out thread does)
    out._enqueue(framer.end(), src, consumed=0)
    chunks = [out._tx_q.get_nowait() for _ in range(5)]
    assert [out._send(c) for c in chunks] == [SendOutcome.SENT] * 5
    sent = [base64.b64decode(m["media"]["payload"]) for m in twilio.messages() if m["event"] == "media"]
    assert len(sent) == 5 and gate.levels == [mulaw.dbfs(f) for f in sent]
    assert len(set(gate.levels)) >= 3  # (frames of different levels: one frame's level for another would show)


def test_an_items_end_taken_just_before_a_clearing_duck_waits_behind_the_frames_it_took_back():
    """The TX loop has taken an item's end when the run thread's duck clears Twilio: the final
    mark must not go out ahead of the frames taken back (Twilio would echo it at once, and the
    item would never be heard to its end); it follows them once the duck is released."""
    from voicebridge.call.downlink import _STOP
    clock = ManualClock(1000.0)
    out, twilio, metrics = outbound_on_a_fake(clock)
    frames = frames_of("item_1", 2)
    out._in_flight = 2
    end = Chunk(0, "item_1", b"", seq=3)
    script = iter(frames + [end, _STOP])

    def next_chunk():
        chunk = next(script)
        if chunk is end:
            clock.advance(0.005)
            out.pause(clock())  # the duck lands between the loop taking the end and handling it
        return chunk, False

    out._next_chunk = next_chunk
    out.tx_loop()
    assert wire(twilio) == [0, 1, "clear"]  # no final mark ahead of what the clear took back
    assert [c.seq for c in out._waiting] == [1, 2, 3]
    clock.advance(0.2)
    out.resume()
    del out._next_chunk
    for _ in range(3):
        chunk, _ = out._next_chunk()
        if chunk.end:
            assert out._end_item(chunk, marked=True)
        else:
            assert out._send(chunk) is SendOutcome.SENT
    assert wire(twilio) == [0, 1, "clear", 0, 1, "mark"]
    name = [m for m in twilio.messages() if m["event"] == "mark"][-1]["mark"]["name"]
    assert out.mark_echoed(name, clock() + 0.04) is MarkOutcome.PLAYED
    assert out.played_out("item_1")
    assert metrics.snapshot()["frames_resent"] == 2
