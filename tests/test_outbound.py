"""OutboundAudio and the sans-IO state under it: in-flight count, responses, playback."""
import logging
import threading
import time

from voicebridge import BridgeConfig
from voicebridge.call.log import CallLog
from voicebridge.call.metrics import CallMetrics
from voicebridge.call.downlink import OutboundAudio
from voicebridge.audio.playback import MarkOutcome, PlaybackTracker
from voicebridge.call.turns import RECENT, Turns
from voicebridge.testing import STREAM_SID, FakeTwilio, wait_until
from voicebridge.call.carrier_link import CarrierLink
from voicebridge.call.context import CallContext


def outbound_on_a_fake():
    metrics, twilio = CallMetrics(), FakeTwilio()
    log = CallLog(logging.getLogger("test"))
    link = CarrierLink(twilio, metrics, log, 1.0, time.monotonic, on_dead=lambda reason: None)
    link.start(STREAM_SID)
    return OutboundAudio(link, CallContext(BridgeConfig(), metrics, log, time.monotonic)), twilio, metrics


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
