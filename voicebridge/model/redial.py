"""When to dial a replacement Realtime session, and when to stop (sans-IO).

A Realtime session can end early for many reasons: the socket is lost, the service expires the
session, it stops answering, the bridge rolls over to a fresh one, or a dial is refused. Each of
these is an *end*, and every end the bridge did not choose counts. A server that answers every new session with
``session_expired`` once made one call redial some 4,000 times in 10 s (and write a megabyte
of log): nothing counted expiries, and the first redial never waited. ``RedialPolicy`` decides,
from the ends it has been told of and the time, whether to dial again and after how long:

* failures (lost, unresponsive, refused) within ``window_s``: more than ``attempts`` and the
  model is given up (``attempts=0``: reconnecting is off);
* every end the server caused (expired too): more than ``budget`` within ``window_s`` and the
  model is given up, so no server can keep a call redialing;
* the wait before a redial doubles with each end in the window, from ``backoff_s`` for the
  first one (at most ``max_backoff_s``), with +-25 % jitter so calls cut by one outage do not
  redial in step. A planned rollover is the bridge's own choice, paced by ``session_max_age_s``:
  it is dialed at once and not counted (a refused dial after it is).

The policy holds no clock and no socket: the caller passes ``now`` and acts on the ``Verdict``.
"""
from __future__ import annotations

import enum
import random
from collections import deque
from dataclasses import dataclass

MAX_BACKOFF_S = 4.0


class Cause(enum.Enum):
    """Why a Realtime session ended (or never began)."""

    LOST = "lost"  # the socket broke or the server closed it
    EXPIRED = "expired"  # session_expired: the service's cap on a session's length
    ROLLOVER = "rollover"  # planned: a quiet moment after session_max_age_s
    UNRESPONSIVE = "unresponsive"  # no answer to a ping, or a response.create never answered
    REFUSED = "refused"  # a dial that failed (refused, timed out, 401...): never a session


FAILURES = frozenset({Cause.LOST, Cause.UNRESPONSIVE, Cause.REFUSED})


class Decision(enum.Enum):
    REDIAL = "redial"
    GIVE_UP = "give up"


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    delay_s: float = 0.0  # wait this long before the redial
    why: str = ""  # for GIVE_UP: which bound was reached (a log line)


class RedialPolicy:
    """Counts the ends of one call's Realtime sessions; decides each redial."""

    def __init__(self, attempts: int, budget: int, window_s: float, backoff_s: float,
                 rng: random.Random, max_backoff_s: float = MAX_BACKOFF_S) -> None:
        self._attempts = attempts
        self._budget = budget
        self._window_s = window_s
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._rng = rng
        self._ends: deque[float] = deque()
        self._failures: deque[float] = deque()

    def ended(self, cause: Cause, now: float) -> Verdict:
        """A session ended (or a dial failed) at ``now``: dial again (after ``delay_s``) or give up."""
        if cause is Cause.ROLLOVER:  # the bridge's own choice, paced by session_max_age_s: not counted
            return Verdict(Decision.REDIAL)
        ends = self._recent(self._ends, now)
        if cause in FAILURES:
            failures = self._recent(self._failures, now)
            if failures > self._attempts:
                why = ("reconnecting is off" if not self._attempts
                       else f"{failures} failed sessions within {self._window_s:.0f} s")
                return Verdict(Decision.GIVE_UP, why=why)
        if ends > self._budget:
            return Verdict(Decision.GIVE_UP, why=f"{ends} sessions ended within {self._window_s:.0f} s")
        base = min(self._max_backoff_s, self._backoff_s * 2 ** (ends - 1))
        return Verdict(Decision.REDIAL, base * self._rng.uniform(0.75, 1.25))

    def _recent(self, times: "deque[float]", now: float) -> int:
        """Record ``now`` in ``times``, forget those older than the window; how many remain."""
        times.append(now)
        while times and now - times[0] >= self._window_s:
            times.popleft()
        return len(times)
