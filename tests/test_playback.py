"""PlaybackTracker: what the caller will have heard when a clear sent now reaches Twilio.

Time is driven by hand: a small model of Twilio (frames arrive one network hop ``d`` after they
are sent, play back to back from their arrival, and a mark is echoed one hop after the audio
before it played) gives the truth each estimate is checked against.
"""
from __future__ import annotations

from voicebridge.audio.playback import PlaybackTracker

FRAME = 160  # bytes: 20 ms
ITEM = "item"


class Line:
    """The bridge's sends and Twilio's playout of one item, on one clock."""

    def __init__(self, delay_s: float) -> None:
        self.d = delay_s
        self.tracker = PlaybackTracker()
        self.plays: list[tuple[float, float]] = []  # (start, end) of each frame at Twilio
        self.echoes: list[tuple[float, str]] = []  # (arrival at the bridge, mark name)

    def send(self, now: float, frames: int = 1, held_s: float = 0.0, mark: bool = False,
             item: str = ITEM) -> None:
        """``frames`` frames sent at ``now`` (held ``held_s`` on the way), a mark after them."""
        for _ in range(frames):
            start = max(now + self.d + held_s, self.plays[-1][1] if self.plays else 0.0)
            self.plays.append((start, start + 0.02))
            self.tracker.sent(item, FRAME, now)
        if mark:
            self.echoes.append((self.plays[-1][1] + self.d, self.tracker.new_mark(item)))

    def echo_until(self, now: float) -> None:
        for at, name in sorted(self.echoes):
            if at <= now:
                self.tracker.echoed(name, at)
        self.echoes = [(at, n) for at, n in self.echoes if at > now]

    def heard_at_clear(self, now: float) -> int:
        """Bytes Twilio has played when a clear sent at ``now`` reaches it."""
        landing = now + self.d
        return round(sum(max(0.0, min(e, landing) - s) for s, e in self.plays) * 8000)


def steady(line: Line, seconds: float, every: int = 5) -> None:
    """Two lead frames, then one frame per 20 ms, a mark every ``every`` frames."""
    line.send(0.0, 2)
    for k in range(2, int(seconds / 0.02)):
        line.send((k - 2) * 0.02, 1, mark=(k + 1) % every == 0)


def test_after_a_mark_echo_the_estimate_is_what_played_when_the_clear_lands() -> None:
    """With a one-way delay d the echo comes d after its audio played and the clear lands d after
    the decision: anchored on the echo without the round trip, the estimate was 2d low."""
    line = Line(delay_s=0.05)
    steady(line, 2.0)
    for now in (0.05, 0.3, 0.62, 1.0, 1.37):
        line.echo_until(now)
        assert abs(line.tracker.heard_bytes(ITEM, now) - line.heard_at_clear(now)) <= 1, now
    assert line.tracker.round_trip_s is not None and abs(line.tracker.round_trip_s - 0.1) < 1e-9


def test_a_stall_shows_in_the_marks_not_echoed() -> None:
    """Frames held 200 ms on the way from 0.6 s: the caller's playout ran dry. A mark whose echo
    is due but missing bounds the estimate (its audio had not played a hop ago), and the first
    echo after the stall puts the estimate back on what played."""
    line = Line(delay_s=0.05)
    line.send(0.0, 2)
    for k in range(2, 100):
        sent = (k - 2) * 0.02
        line.send(sent, 1, held_s=0.2 if sent >= 0.6 else 0.0, mark=(k + 1) % 5 == 0)
    errors = []
    for step in range(0, 120):
        now = step * 0.01
        line.echo_until(now)
        errors.append((now, line.tracker.heard_bytes(ITEM, now) - line.heard_at_clear(now)))
    assert all(abs(e) <= 1 for t, e in errors if t < 0.6 or t >= 0.96)
    # inside the stall playout stopped at 5120 bytes; the next mark (5600) is not echoed, so the
    # estimate stays under it plus a round trip (800): 1280 ahead at most, where the send clock
    # alone ran the whole stall (1600) ahead
    assert max(e for _, e in errors) <= 1281


def test_the_round_trip_is_the_least_lag_an_item_queued_behind_another_does_not_raise_it() -> None:
    """The second item's first frame is sent while the first still plays: its echoes lag the send
    clock by the queue too. The round trip stays the first item's, and after its echo the
    second item's estimate is what played (its send clock alone runs 200 ms ahead)."""
    line = Line(delay_s=0.03)
    line.send(0.0, 20, mark=True)  # 400 ms of the first item in a burst
    line.echo_until(0.5)
    assert abs(line.tracker.round_trip_s - 0.06) < 1e-9
    line.send(0.2, 10, item="b", mark=True)  # queued behind what is left of the first
    line.echo_until(0.7)
    assert abs(line.tracker.round_trip_s - 0.06) < 1e-9
    played_b = round(sum(max(0.0, min(e, 0.75 + 0.03) - s) for s, e in line.plays[20:]) * 8000)
    assert abs(line.tracker.heard_bytes("b", 0.75) - played_b) <= 1


def test_before_any_echo_the_send_clock_is_exact_and_capped_by_what_was_sent() -> None:
    line = Line(delay_s=0.05)
    steady(line, 0.3, every=100)
    for now in (0.01, 0.1, 0.25):
        assert abs(line.tracker.heard_bytes(ITEM, now) - line.heard_at_clear(now)) <= 1
    assert line.tracker.heard_bytes(ITEM, 9.0) == line.tracker.sent_bytes(ITEM)


def test_a_rewind_holds_the_position_and_drops_the_echo_anchor() -> None:
    """A duck's clear rewound the item to where the caller stopped: that position holds until a
    frame is sent again, then the send clock runs from it (no echo of before counts)."""
    line = Line(delay_s=0.05)
    steady(line, 1.0)
    line.echo_until(0.6)
    tracker = line.tracker
    tracker.cleared()
    tracker.rewind(ITEM, 4000)
    assert tracker.heard_bytes(ITEM, 0.7) == 4000
    assert tracker.heard_bytes(ITEM, 1.5) == 4000
    tracker.sent(ITEM, FRAME * 10, 2.0)
    assert abs(tracker.heard_bytes(ITEM, 2.05) - (4000 + 400)) <= 1
