"""The frames the caller has been sent but not yet heard, taken back by a duck's ``clear`` (sans-IO).

The duck stops sending on the caller's first loud frame, but Twilio still plays what it holds:
the send-ahead lead and the frame on its way, 40-60 ms more of the agent over the caller. A
Twilio ``clear`` at the duck empties that buffer one network hop after the first loud frame.
Nothing may be lost by it: a duck is often released (a backchannel, a cough), and the answer
must then go on from the first frame the caller did not hear, none of it heard twice.

Which frames those are: the caller's playout runs on the send clock, shifted by the one-way
network delay, and the ``clear`` travels the same way behind the last frame, so it reaches
Twilio when the caller's playout is where the send clock's is now. Each frame plays from when it
was sent or when the frame before it ends, whichever is later (the model ``Pacer`` and
``EchoGate`` keep too). A frame more than half unplayed at the duck is taken back with
everything sent after it (items' ends included: their final marks follow their frames again);
at most half a frame, 10 ms, is heard twice or skipped where the clear cuts a frame. A mark the
caller echoed as played is a floor: what it covers was heard and is never sent again. Jitter on
the clear's way moves its cut by as much.

The cost: a clear empties the caller's buffer, so a duck released at once (a click, a key) is a
gap at the caller however short it was, and the frames go again from a whole-frame boundary
(the skip or repeat above). Sounds that duck come in runs (typing, knocks, a TV), so after a
duck was released the next ones within ``HOLDOFF_S`` only pause, as before the clear: one gap
and one boundary per run of noise, not one per tap (``worth_clearing``).

``take_back`` also rewinds the ``PlaybackTracker``: its marks are stale (the clear echoes them
all), each item's audio sent ends where the caller stopped hearing it (so a truncate says what
was heard, and the marks of the frames sent again carry their true positions).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from .playback import PlaybackTracker

FRAME_S = 0.020
HOLDOFF_S = 1.0
"""After a released duck, the next ducks this soon do not clear (a run of noise)."""


@dataclass(frozen=True, slots=True)
class Sent:
    """One thing the TX loop handled: a frame (``nbytes`` > 0) or an item's end (0)."""

    token: Any  # handed back as it was given (the TX loop's own chunk)
    item_id: str
    position: int  # bytes of the item sent before it
    nbytes: int
    plays_until: float  # on the send clock


class Unplayed:
    """Recently sent frames that may still be waiting in the caller's playout buffer."""

    def __init__(self, frame_s: float = FRAME_S) -> None:
        self._frame_s = frame_s
        self._recent: deque[Sent] = deque()
        self._end: float | None = None  # when the audio sent so far has played (send clock)
        self._released_at = float("-inf")  # the last duck released (noise, a backchannel, the fuse)

    def sent(self, token: Any, item_id: str, position: int, nbytes: int, now: float) -> None:
        """A frame of ``item_id`` (``position`` bytes of it sent before) left at ``now``."""
        start = now if self._end is None else max(now, self._end)
        self._end = start + self._frame_s
        while self._recent and self._recent[0].plays_until <= now:
            self._recent.popleft()  # played: the caller has heard it
        self._recent.append(Sent(token, item_id, position, nbytes, self._end))

    def ended(self, token: Any, item_id: str, position: int) -> None:
        """``item_id``'s end was handled (its final mark sent) after its ``position`` bytes."""
        if self._recent:  # else all of it has played: nothing of it can be taken back
            self._recent.append(Sent(token, item_id, position, 0, self._recent[-1].plays_until))

    def ahead(self, now: float) -> float:
        """Seconds of audio the caller has been sent and not yet heard."""
        return 0.0 if self._end is None else max(0.0, self._end - now)

    def released(self, now: float) -> None:
        """A duck was released at ``now``: sending resumes."""
        self._released_at = now

    def worth_clearing(self, now: float) -> bool:
        """Should a duck at ``now`` clear the caller's buffer? If it holds any of the agent, and no
        duck was released in the last ``HOLDOFF_S`` (a run of taps or knocks pauses only)."""
        return self.ahead(now) > 0 and now - self._released_at > HOLDOFF_S

    def take_back(self, now: float, playback: PlaybackTracker) -> list[Any]:
        """The caller's buffer is being cleared at ``now``: the tokens it had not (mostly)
        played, in order, to be sent again; ``playback`` is rewound to what was heard."""
        recent = self._recent
        half = self._frame_s / 2
        first = next((i for i, s in enumerate(recent) if s.nbytes and s.plays_until - now > half
                      and s.position >= playback.confirmed_bytes(s.item_id)), None)
        taken = [] if first is None else [recent[i] for i in range(first, len(recent))]
        self.forget(now)
        playback.cleared()  # every pending mark is echoed by the clear: stale, not heard
        for item_id in dict.fromkeys(s.item_id for s in taken):
            playback.rewind(item_id, min(s.position for s in taken if s.item_id == item_id))
        return [s.token for s in taken]

    def forget(self, now: float | None = None) -> None:
        """Twilio's buffer was emptied (a clear): nothing sent before is waiting in it."""
        self._recent.clear()
        self._end = now
