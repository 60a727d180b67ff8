import pytest

from voicebridge.audio.pacing import Pacer


def drive(pacer, now):
    """Advance a fake clock to the pacer's slot, send, and return the send time."""
    now += pacer.delay(now)
    pacer.sent(now)
    return now


def test_on_time_frames_follow_the_20ms_grid():
    pacer = Pacer(lead_frames=0)
    t, times = 100.0, []
    for _ in range(10):
        t = drive(pacer, t)
        times.append(t)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(g == pytest.approx(0.020) for g in gaps)
    assert pacer.stats.late_frames == 0 and pacer.stats.schedule_resets == 0


def test_delay_waits_for_the_scheduled_instant():
    pacer = Pacer(lead_frames=0)
    assert pacer.delay(10.0) == 0.0
    pacer.sent(10.0)
    assert pacer.delay(10.005) == pytest.approx(0.015)


def test_lead_frames_go_at_once_then_strict_pacing():
    pacer = Pacer(lead_frames=2)
    pacer.begin(5.0)
    assert pacer.delay(5.0) == 0.0
    pacer.sent(5.0)
    assert pacer.delay(5.0) == 0.0
    pacer.sent(5.0)
    assert pacer.delay(5.0) == pytest.approx(0.020)
    pacer.sent(5.020)
    assert pacer.delay(5.020) == pytest.approx(0.020)


def test_slightly_late_frame_keeps_18ms_spacing_and_counts_late():
    pacer = Pacer(lead_frames=0)
    pacer.sent(0.0 + pacer.delay(0.0))  # frame 0 at t=0, next due 0.020
    t = 0.050  # 30 ms late
    assert pacer.delay(t) == 0.0
    pacer.sent(t)
    assert pacer.stats.late_frames == 1
    # next due is 0.040 (already past) but it must wait for 18 ms after the last send
    assert pacer.delay(t) == pytest.approx(0.018)
    t2 = t + 0.018
    pacer.sent(t2)
    # the schedule catches up 2 ms per frame, never a burst
    t3 = t2 + pacer.delay(t2)
    assert t3 - t2 == pytest.approx(0.018)
    assert pacer.stats.schedule_resets == 0


def test_more_than_200ms_behind_resets_the_schedule():
    pacer = Pacer(lead_frames=2)
    pacer.begin(0.0)
    for _ in range(2):
        pacer.sent(0.0)
    t = 0.5  # due was 0.020: 480 ms late
    assert pacer.delay(t) == 0.0
    assert pacer.stats.schedule_resets == 1
    # after a reset the lead goes out again, then the grid restarts from now
    pacer.sent(t)
    assert pacer.delay(t) == 0.0
    pacer.sent(t)
    assert pacer.delay(t) == pytest.approx(0.020)


def test_never_a_burst_after_lateness_outside_the_lead():
    pacer = Pacer(lead_frames=2)
    pacer.begin(0.0)
    t, times = 0.0, []
    for i in range(60):
        if i == 20:
            t += 0.150  # a stall shorter than the reset bound
        t += pacer.delay(t)
        pacer.sent(t)
        times.append(t)
    gaps = [b - a for a, b in zip(times[2:], times[3:])]
    assert min(gaps) >= 0.018 - 1e-9
    assert pacer.stats.schedule_resets == 0
    assert pacer.stats.late_frames > 0


def test_an_item_that_follows_on_keeps_the_grid_and_adds_no_second_lead():
    pacer = Pacer(lead_frames=2)
    t = 0.0
    for _ in range(5):  # an item: two lead frames, then one per 20 ms
        t += pacer.delay(t)
        pacer.sent(t)
    pacer.follow_on(t + 0.005)  # the next item is ready before its slot: same grid
    assert pacer.delay(t + 0.005) == pytest.approx(0.015)
    pacer.follow_on(t + 0.030)  # a little late: no catching up in a burst, and no new lead
    assert pacer.delay(t + 0.030) == 0.0
    pacer.sent(t + 0.030)
    assert pacer.delay(t + 0.031) == pytest.approx(0.019)
    pacer.follow_on(t + 1.0)  # long after: the caller's buffer ran dry, a new lead
    assert [pacer.delay(t + 1.0) for _ in range(1)] == [0.0]
    pacer.sent(t + 1.0)
    assert pacer.delay(t + 1.0) == 0.0  # the second lead frame goes at once too


def test_a_resume_after_a_duck_refills_the_callers_buffer_to_the_lead():
    pacer = Pacer(lead_frames=2)
    pacer.begin(0.0)
    t = 0.0
    for _ in range(7):  # the lead (2 at 0.0) then 5 paced frames, the last at 0.100
        t = drive(pacer, t)
    assert t == pytest.approx(0.100)  # the caller's buffer now runs to 0.140
    pacer.resume(0.240)  # ducked for 140 ms: the buffer ran dry 100 ms ago
    assert pacer.delay(0.240) == 0.0
    pacer.sent(0.240)
    assert pacer.delay(0.240) == 0.0  # two frames at once: the lead again
    pacer.sent(0.240)
    assert pacer.delay(0.240) == pytest.approx(0.020)  # then the grid
    assert pacer.stats.gap_bursts == 0  # a refill is a lead, not a burst


def seven_frames_paced() -> Pacer:
    """A pacer that sent the lead and five paced frames: the last at 0.100, audio to 0.140."""
    pacer = Pacer(lead_frames=2)
    pacer.begin(0.0)
    t = 0.0
    for _ in range(7):
        t = drive(pacer, t)
    return pacer


def test_a_short_duck_refills_only_what_was_played_meanwhile():
    pacer = seven_frames_paced()
    pacer.resume(0.130)  # 30 ms: 10 ms still queued at the caller
    assert pacer.delay(0.130) == 0.0
    pacer.sent(0.130)  # one frame refills to 30 ms ahead
    # the grid would send the next at 0.140 (20 ms left at the caller); the 18 ms spacing holds it
    assert pacer.delay(0.130) == pytest.approx(0.018)
    pacer.resume(0.135)  # still 25 ms ahead: nothing goes at once, the next when 20 ms are left
    assert pacer.delay(0.135) == pytest.approx(0.013)  # (at 0.140, held to 0.148 by the spacing)


def test_a_resume_after_a_duck_that_cleared_the_callers_buffer_refills_the_whole_lead():
    pacer = seven_frames_paced()
    pacer.cleared(0.110)  # the duck's clear: the 30 ms still queued at the caller are gone
    pacer.resume(0.130)
    assert pacer.delay(0.130) == 0.0
    pacer.sent(0.130)
    assert pacer.delay(0.130) == 0.0  # without the clear's news only one frame would go at once
    pacer.sent(0.130)
    assert pacer.delay(0.130) == pytest.approx(0.020)
