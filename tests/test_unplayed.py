"""Unplayed: which sent frames a duck's clear takes back, and the playback tracker's rewind (sans-IO)."""
import pytest

from voicebridge.audio.playback import MarkOutcome, PlaybackTracker
from voicebridge.audio.unplayed import Unplayed


def send(unplayed, playback, item, n, t0, step=0.020):
    """``n`` frames of ``item`` sent from ``t0``, one per ``step``; tokens are (item, index)."""
    for k in range(n):
        position = playback.heard_bytes(item, 1e9)  # everything sent so far (capped by sent)
        unplayed.sent((item, position // 160), item, position, 160, t0 + k * step)
        playback.sent(item, 160, t0 + k * step)
    return t0 + (n - 1) * step


def test_the_lead_and_the_frame_half_unplayed_are_taken_back_in_order():
    unplayed, playback = Unplayed(), PlaybackTracker()
    send(unplayed, playback, "a", 2, 0.0, step=0.0)  # the lead: plays 0.00-0.04
    last = send(unplayed, playback, "a", 5, 0.020)  # paced: the last (0.100) plays 0.120-0.140
    assert last == pytest.approx(0.100)
    assert unplayed.ahead(0.109) == pytest.approx(0.031)
    # at 0.109 the frame playing 0.100-0.120 is 55 % unplayed: taken back with the one after it
    assert unplayed.take_back(0.109, playback) == [("a", 5), ("a", 6)]
    assert playback.heard_ms("a", 0.109) == 100 and playback.heard_ms("a", 5.0) == 100  # holds there
    assert unplayed.ahead(0.109) == 0.0 and unplayed.take_back(0.2, playback) == []


def test_a_frame_mostly_played_is_not_sent_again():
    unplayed, playback = Unplayed(), PlaybackTracker()
    send(unplayed, playback, "a", 2, 0.0, step=0.0)
    send(unplayed, playback, "a", 5, 0.020)
    assert unplayed.take_back(0.111, playback) == [("a", 6)]  # 0.100-0.120 is 55 % played
    assert playback.heard_ms("a", 0.2) == 120


def test_the_clears_echoes_of_pending_marks_are_stale_and_the_resent_frames_marks_count():
    unplayed, playback = Unplayed(), PlaybackTracker()
    send(unplayed, playback, "a", 7, 0.0, step=0.0)  # a burst: plays 0.00-0.14
    stale = playback.new_mark("a")  # after all seven
    assert unplayed.take_back(0.049, playback) == [("a", k) for k in range(2, 7)]  # 0.04-0.06 over half unplayed
    assert playback.echoed(stale, 0.07) is MarkOutcome.STALE  # echoed by the clear: not heard
    assert playback.heard_ms("a", 0.07) == 40 and playback.pending_marks == 0
    send(unplayed, playback, "a", 5, 0.5)  # sent again after the duck
    fresh = playback.new_mark("a")
    assert playback.pending_marks == 1
    assert playback.echoed(fresh, 0.7) is MarkOutcome.PLAYED
    assert playback.heard_ms("a", 0.7) == 140  # every byte once: 40 heard before, 100 after


def test_a_mark_echoed_as_played_is_a_floor_nothing_before_it_is_sent_again():
    unplayed, playback = Unplayed(), PlaybackTracker()
    send(unplayed, playback, "a", 5, 0.0, step=0.0)  # plays 0.00-0.10 by the model
    mark = playback.new_mark("a")
    send(unplayed, playback, "a", 2, 0.0, step=0.0)
    assert playback.echoed(mark, 0.01) is MarkOutcome.PLAYED  # the caller is further than the model says
    assert unplayed.take_back(0.02, playback) == [("a", 5), ("a", 6)]


def test_an_items_end_goes_back_after_its_frames_and_the_item_is_no_longer_played_out():
    unplayed, playback = Unplayed(), PlaybackTracker()
    send(unplayed, playback, "a", 3, 0.0, step=0.0)
    playback.ended("a")
    unplayed.ended(("a", "end"), "a", 480)
    final = playback.new_mark("a")
    send(unplayed, playback, "b", 1, 0.0)
    assert unplayed.take_back(0.035, playback) == [("a", 2), ("a", "end"), ("b", 0)]
    assert playback.echoed(final, 0.05) is MarkOutcome.STALE and not playback.played_out("a")
    assert playback.heard_ms("a", 1.0) == 40 and playback.heard_ms("b", 1.0) == 0


def test_frames_already_played_are_forgotten_as_sending_goes_on():
    unplayed, playback = Unplayed(), PlaybackTracker()
    send(unplayed, playback, "a", 500, 0.0)  # ten seconds, paced
    assert len(unplayed._recent) <= 3


def test_a_duck_clears_only_with_audio_at_the_caller_and_not_again_soon_after_a_release():
    unplayed, playback = Unplayed(), PlaybackTracker()
    assert not unplayed.worth_clearing(0.0)  # nothing sent
    send(unplayed, playback, "a", 2, 0.0, step=0.0)
    assert unplayed.worth_clearing(0.01)
    assert not unplayed.worth_clearing(0.05)  # all played
    unplayed.released(1.0)  # a duck released (a key tap)
    send(unplayed, playback, "a", 2, 1.0, step=0.0)
    assert not unplayed.worth_clearing(1.01)  # the next tap only pauses
    send(unplayed, playback, "a", 2, 2.1, step=0.0)
    assert unplayed.worth_clearing(2.11)
