"""InboundAudio (sans-IO): which caller frames are forwarded, and how each is counted."""
import base64
import json
import logging
from types import SimpleNamespace

import pytest

from voicebridge import BridgeConfig
from voicebridge.call.context import CallContext
from voicebridge.call.log import CallLog
from voicebridge.call.metrics import CallMetrics
from voicebridge.call.uplink import InboundAudio
from voicebridge.carrier.seam import Media
from voicebridge.testing import ManualClock

OURS = "MZours"


def inbound(stamps: "list | None" = None, **settings):
    metrics, heard = CallMetrics(), []
    model = SimpleNamespace(ready=True, lost=False, send=lambda text: True)
    stamps = [] if stamps is None else stamps
    barge_in = SimpleNamespace(hear=lambda frame, now, listening, timestamp_ms:
                               heard.append(frame) or stamps.append(timestamp_ms) or frame,
                               take_onset_commit=lambda: False)
    ctx = CallContext(BridgeConfig(**{"append_ms": 20, **settings}), metrics, CallLog(logging.getLogger("t")),
                      ManualClock())
    return InboundAudio(ctx, model, barge_in), metrics, heard


def test_each_frame_is_counted_and_only_this_streams_frames_and_unlabelled_ones_are_heard():
    audio, metrics, heard = inbound()
    frames = [bytes([k]) * 160 for k in range(5)]
    audio.media(Media("", frames[0], None, "inbound"), None, 0.0, True)  # before start: dropped
    audio.media(Media(OURS, frames[1], None, "inbound"), OURS, 0.02, True)
    audio.media(Media("MZother", frames[2], None, "inbound"), OURS, 0.04, True)  # another stream's: dropped
    audio.media(Media("", frames[3], None, "inbound"), OURS, 0.06, True)  # no sid: one socket, one stream
    audio.media(Media(OURS, b"", None, "inbound"), OURS, 0.08, True)  # empty: nothing to hear
    audio.media(Media(OURS, frames[4][:80], None, "inbound"), OURS, 0.10, True)  # short: heard, counted
    assert heard == [frames[1], frames[3], frames[4][:80]]
    m = metrics.snapshot()
    assert m["inbound_frames"] == 6 and m["inbound_bytes"] == 4 * 160 + 80 and m["inbound_wrong_size"] == 2
    assert m["protocol_errors"] == {"twilio.media_before_start": 1, "twilio.wrong_stream_sid": 1,
                                    "twilio.missing_stream_sid": 1}


def test_each_frame_is_heard_with_its_carrier_stamp():
    """The echo gate judges a frame at its capture time, which its stamp gives (capture.py)."""
    stamps: list = []
    audio, _, _ = inbound(stamps)
    audio.media(Media(OURS, bytes(160), 4020, "inbound"), OURS, 4.1, True)
    audio.media(Media(OURS, bytes(160), None, "inbound"), OURS, 4.12, True)
    assert stamps == [4020, None]


def test_the_run_threads_per_frame_counters_take_no_lock_and_still_add_up():
    """frame_received and echo_suppressed count without the lock (the run thread alone writes
    them, on every caller frame); snapshot and get report them, with anything add() counted
    under the same name."""
    metrics = CallMetrics()

    class Refused:
        def __enter__(self):
            raise AssertionError("a per-frame counter took the lock")

        def __exit__(self, *exc):
            return False

    locked, metrics._lock = metrics._lock, Refused()
    for _ in range(3):
        metrics.frame_received(160)
    metrics.echo_suppressed()
    metrics._lock = locked
    metrics.add("inbound_frames", 2)
    m = metrics.snapshot()
    assert (m["inbound_frames"], m["inbound_bytes"], m["echo_frames_suppressed"]) == (5, 480, 1)
    assert metrics.get("inbound_frames") == 5 and metrics.get("echo_frames_suppressed") == 1
    assert metrics.get("ducks") == 0 and m["accounting_ok"]


def test_a_new_session_is_told_from_when_it_was_sent_the_callers_audio_again():
    """The backlog a replacement session gets is bounded (``inbound_buffer_ms``): ``resent_from``
    says when its oldest frame was heard, so what was heard before it counts as in no buffer
    (``ModelTurn.forget``); frames not sent yet go after the backlog; with nothing uncommitted and
    nothing pending, the buffer holds nothing heard so far."""
    audio, _, _ = inbound(inbound_buffer_ms=100)  # five frames
    for k in range(8):
        audio.media(Media(OURS, bytes([k]) * 160, None, "inbound"), OURS, 1.0 + 0.02 * k, True)
    (append,) = audio.backlog()
    assert audio.resent_from == pytest.approx(1.06) and base64.b64decode(json.loads(append)["audio"]) == bytes(
        b for k in range(3, 8) for b in bytes([k]) * 160)
    audio.committed()
    assert audio.backlog() == [] and audio.resent_from == pytest.approx(1.14)
    audio._model.ready = False  # a session being dialed: frames wait, then follow the backlog
    for k in range(8):
        audio.media(Media(OURS, bytes(160), None, "inbound"), OURS, 2.0 + 0.02 * k, True)
    assert audio.backlog() == [] and audio.resent_from == pytest.approx(2.06)  # (the oldest three dropped)
