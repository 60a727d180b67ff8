"""When a caller frame was captured, on the bridge's clock (sans-IO: arrivals and stamps passed in)."""
from __future__ import annotations

import base64

import pytest

from voicebridge.audio.capture import BLOCK_S, MAX_HELD_S, CaptureClock


def test_a_bunch_of_late_frames_is_placed_where_it_was_captured():
    clock = CaptureClock()
    on_time = [clock.at(5.0 + k * 0.02 + 0.003, k * 20) for k in range(50)]  # 3 ms of path: 5.003 + k * 20 ms
    assert on_time == pytest.approx([5.003 + k * 0.02 for k in range(50)])
    bunch = [clock.at(6.14, k * 20) for k in range(50, 57)]  # frames 50-56 held, then all at once
    assert bunch == pytest.approx([5.003 + k * 0.02 for k in range(50, 57)])
    assert clock.at(6.145, 57 * 20) == pytest.approx(5.003 + 57 * 0.02)


def test_a_frame_earlier_than_any_before_sets_the_path_at_once():
    clock = CaptureClock()
    assert clock.at(1.05, 0) == 1.05  # the first frame: nothing to say it was late
    assert clock.at(1.021, 20) == pytest.approx(1.021)  # it was: 30 ms of the first frame's were queueing
    assert clock.at(1.09, 40) == pytest.approx(1.041)


def test_a_path_that_grew_slower_is_followed_once_the_faster_one_is_two_blocks_old():
    clock = CaptureClock()
    for k in range(100):
        clock.at(k * 0.02, k * 20)
    later = [clock.at(2.0 + k * 0.02 + 0.05, (100 + k) * 20) for k in range(200)]  # 50 ms slower from 2.0 s on
    assert later[0] == pytest.approx(2.0)  # at first: a late frame
    first_followed = next(k for k, at in enumerate(later) if at == pytest.approx(2.0 + k * 0.02 + 0.05))
    arrived = 2.0 + first_followed * 0.02 + 0.05
    assert 1.98 + BLOCK_S < arrived <= 1.98 + 2 * BLOCK_S + 0.02  # the faster path kept one to two blocks, no longer
    assert all(at == pytest.approx(2.0 + k * 0.02 + 0.05) for k, at in enumerate(later) if k >= first_followed)


def test_without_a_timestamp_the_arrival_and_stamps_that_start_over_start_the_path_over():
    clock = CaptureClock()
    assert clock.at(3.5, None) == 3.5
    clock.at(1.0, 0)
    clock.at(1.02, 20)
    assert clock.at(9.0, 0) == 9.0  # a new stream's stamps: the old path says nothing of them
    assert clock.at(9.05, 20) == pytest.approx(9.02)


HUGE = "1" + "0" * 400  # a stamp json.loads and int() take, too large for a float


def test_a_stamp_too_large_for_a_float_is_judged_at_its_arrival_and_does_not_raise():
    from voicebridge.carrier.twilio import protocol
    message = ('{"event": "media", "streamSid": "MZx", "media": {"track": "inbound", "chunk": "1", '
               f'"timestamp": "{HUGE}", "payload": "' + base64.b64encode(bytes(160)).decode() + '"}}')
    event = protocol.parse(message)  # (not the fast path's shape: the general JSON path, any length)
    assert event.timestamp_ms == int(HUGE)
    clock = CaptureClock()
    clock.at(1.0, 0)
    assert clock.at(1.02, event.timestamp_ms) == 1.02
    assert clock.at(1.04, 10 ** 18) == 1.04  # (a float's 1e15 s: its arrival lost in the rounding)
    assert clock.at(1.06, 40) == pytest.approx(1.04)


@pytest.mark.parametrize("stamp", [lambda k: 0, lambda k: 20 * k // 1000, lambda k: 10 * k],
                         ids=["constant", "seconds", "half-rate"])
def test_stamps_that_do_not_follow_real_time_never_move_a_frame_far_from_its_arrival(stamp):
    clock = CaptureClock()
    shifts = [arrival - clock.at(arrival, stamp(k)) for k in range(500) for arrival in [2.0 + 0.02 * k]]
    assert sum(shift > 0.02 for shift in shifts[100:]) <= len(shifts[100:]) / 40  # after two blocks: at its arrival
    assert max(shifts) <= MAX_HELD_S  # (half rate: a block's first frame is at the limit, once a second)
