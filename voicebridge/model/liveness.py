"""Is the Realtime connection alive? (sans-IO)

A connection can go silent without closing: the TCP path dies, or the server hangs. Nothing
arrives, and without a check the caller would hear dead air for as long as the call lasts (an
outside review measured 47 s, recorded as "caller silent"). ``Liveness`` watches what arrives:
after ``ping_after_s`` with nothing heard it asks for a WebSocket ping; if nothing at all (a
pong, a ping, any message) arrives within ``pong_timeout_s`` of it, the connection is dead and
is replaced like a lost one. Pings and pongs from the server are heard like any frame: they
never count as silence.
"""
from __future__ import annotations

import enum


class Health(enum.Enum):
    OK = "ok"
    PING = "ping"  # send a ping now
    DEAD = "dead"  # a ping went unanswered: replace the connection


class Liveness:
    """The liveness watch of one connection (read by the model thread)."""

    def __init__(self, ping_after_s: "float | None", pong_timeout_s: float, now: float) -> None:
        self._ping_after_s = ping_after_s
        self._pong_timeout_s = pong_timeout_s
        self._heard_at = now
        self._pinged_at: float | None = None

    def heard(self, now: float) -> None:
        """Any frame arrived: a message, a ping or a pong."""
        self._heard_at = now
        self._pinged_at = None

    def pinged(self, now: float) -> None:
        self._pinged_at = now

    def check(self, now: float) -> Health:
        if self._ping_after_s is None:
            return Health.OK
        if self._pinged_at is not None:
            return Health.DEAD if now - self._pinged_at > self._pong_timeout_s else Health.OK
        return Health.PING if now - self._heard_at >= self._ping_after_s else Health.OK
