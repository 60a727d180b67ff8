"""The model side of a call: the Realtime WebSocket, from dial to close, and its replacements.

``ModelLink`` owns the connection and the facts every other part asks about it: may caller audio
be sent (``ready``)? is the model gone for good (``lost``)? Any thread may ``send``; the
session's model thread runs ``run``: dial, configure, replay, read -- and when the connection
ends early (the socket is lost, the server closes it, the session expires, it stops answering,
or the bridge rolls over to a fresh session at a quiet moment) dial again when the
``RedialPolicy`` allows: every end counts, each redial waits its back-off, and a call gets a
bounded number of replacements a minute. A quiet connection is pinged (``Liveness``). A new session gets the same configuration and the conversation as the caller heard it
(``history``), so the call goes on; once the policy gives up the model is ``lost`` (the
caller then hears the apology). Closing is safe at any moment, including mid-dial: a connection
that completes after ``close`` is closed at once, never leaked.
"""
from __future__ import annotations

import logging
import random
import threading
from typing import Callable

from ..model import client as realtime_client
from ..model.liveness import Health, Liveness
from ..model.preflight import hint, rejection
from ..model.redial import Cause, Decision, RedialPolicy
from ..errors import close_quietly, describe
from .context import CallContext

__all__ = ["Cause", "ModelLink", "GAVE_UP"]

EventHandler = Callable[["str | bytes", float], None]

GAVE_UP = {Cause.LOST: "openai disconnected", Cause.EXPIRED: "openai session expired",
           Cause.ROLLOVER: "openai rollover failed", Cause.UNRESPONSIVE: "openai not answering"}
"""The close reason when no replacement session could be had (by why the first one ended)."""
AUTH_FAILED = "openai auth failed"
ENDPOINT_REFUSED = "openai endpoint refused"
PERMANENT_STATUSES = frozenset({400, 404, 405, 410})
"""Handshake statuses no redial can change (the wrong URL, model or deployment): not retried."""
"""The close reason when the endpoint refuses the credentials (401/403): not retried."""


class ModelLink:
    """The Realtime connection of one call, replaced as often as the ``RedialPolicy`` allows."""

    def __init__(self, ctx: CallContext, connect: realtime_client.Connector, rng: random.Random | None = None) -> None:
        config, metrics, log, clock = ctx.config, ctx.metrics, ctx.log, ctx.clock
        self._config = config
        self._connect = connect
        self._metrics = metrics
        self._log = log
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: realtime_client.RealtimeConnection | None = None
        self._closed = False
        self._ending: Cause | None = None  # set to replace the current session deliberately
        self._policy = RedialPolicy(config.reconnect_attempts, config.reconnect_budget, config.reconnect_window_s,
                                    config.reconnect_backoff_ms / 1000, rng or random.Random())
        self.lost: str | None = None  # why the model is gone for good (set once)
        self.ready = False  # connected, configured and caught up: caller audio may be sent
        self.last_event_at = clock()
        self.session_started_at: float | None = None
        self.down_since: float | None = None  # a replacement is being dialed since then

    @property
    def closed(self) -> bool:
        """``close()`` has run: no connection is kept or made from now on."""
        return self._closed

    # ------------------------------------------------------------------ the model thread
    def run(self, handle: EventHandler, stopping: threading.Event, session_update: Callable[[], str],
            history: Callable[[], list[str]], backlog: Callable[[], list[str]],
            switched: Callable[[Cause, float, int, int], None]) -> None:
        """Dial, configure, read; replace the session whenever it ends early; until the call ends.

        Every end (a failed dial too) goes to the ``RedialPolicy``, which says how long to wait
        before the next dial, or that the model is lost (the caller then hears the apology).
        """
        cause: Cause | None = None  # why the session being dialed replaces another (None: the first)
        while not stopping.is_set() and not self.lost and not self._closed:
            if not self._dial(session_update()):
                if not self._next(Cause.REFUSED, cause, stopping):
                    return
                continue
            replayed = resent = 0
            if cause is not None:
                replayed = self._replay(history())
                resent = self._replay(backlog())
            self.ready = True
            self.session_started_at = self.last_event_at = self._clock()
            if cause is not None and self.down_since is not None:
                switched(cause, self._clock() - self.down_since, replayed, resent)
            self.down_since = None
            ended = self._receive(handle, stopping)
            if ended is None:
                return
            cause, self.ready, self.down_since = ended, False, self._clock()
            if not self._next(ended, cause, stopping):
                return

    def _next(self, ended: Cause, cause: Cause | None, stopping: threading.Event) -> bool:
        """Ask the policy about an end; wait as it says. False: stop (the model is lost, or the call ends)."""
        if stopping.is_set() or self._closed or self.lost:  # lost: e.g. refused credentials, never retried
            return False
        verdict = self._policy.ended(ended, self._clock())
        if verdict.decision is Decision.GIVE_UP:
            if cause is not None:  # a first dial that fails is "unreachable", logged where it failed
                self._log.warning("giving up on the Realtime service: %s", verdict.why)
            self.lose("openai unreachable" if cause is None else GAVE_UP.get(cause, "openai disconnected"))
            return False
        self._metrics.add("model_redials")
        return not stopping.wait(verdict.delay_s) and not self._closed

    def _dial(self, session_update: str) -> bool:
        """Connect and configure once; False if the connection failed (logged once per call)."""
        conn = self._open()
        return conn is not None and self._send_on(conn, session_update)

    def _open(self) -> realtime_client.RealtimeConnection | None:
        try:
            conn = self._connect(self._config)
        except Exception as exc:  # noqa: BLE001 - refused, timeout, 5xx: the policy decides what next
            refused = rejection(exc)
            if refused is not None and refused.auth:  # a wrong key is not a network failure
                self._log.error("the Realtime endpoint refused the credentials (%s): not retrying", refused)
                self._metrics.error("auth_failed")
                self.lose(AUTH_FAILED)
                return None
            if refused is not None and refused.status in PERMANENT_STATUSES:  # (a new user's wrong URL: 5 dials
                self._log.error("the Realtime endpoint %s refused the connection (%s): %s; not retrying",  # and 4 s)
                                self._config.realtime_url.split("?")[0], refused, hint(self._config, refused.status))
                self._metrics.error("endpoint_refused")
                self.lose(ENDPOINT_REFUSED)
                return None
            self._log.once("model:connect_failed", "cannot reach the Realtime endpoint %s: %s; further failures "
                           "only counted", self._config.realtime_url.split("?")[0],
                           describe(exc) if refused is None else f"{type(exc).__name__}: {refused}",
                           level=logging.ERROR)
            self._metrics.error("connect_failed")
            return None
        with self._lock:
            closed = self._closed
            if not closed:
                self._conn, self._ending = conn, None
        if closed:  # close() ran while we were dialing: this connection must not outlive the call
            close_quietly(conn, self._log)
            return None
        return conn

    def _replay(self, items: list[str]) -> int:
        """Client events into the new session before anything newer: the conversation as the
        caller heard it, then the caller audio the old session had not committed."""
        sent = 0
        for item in items:
            if not self.send(item):
                break
            sent += 1
        return sent

    def _receive(self, handle: EventHandler, stopping: threading.Event) -> Cause | None:
        """Read until the call ends (None) or the session must be replaced (why).

        Pings and pongs are heard (the connection is alive) but are not events; a connection
        that answers nothing, not even a ping, is dead and replaced like a lost one.
        """
        conn = self._conn
        timeout = self._config.openai_receive_timeout_s
        ping = getattr(conn, "ping", None)  # a connector without pings is watched by its events only
        alive = Liveness(self._config.model_ping_after_s if ping is not None else None,
                         self._config.model_pong_timeout_s, self._clock())
        while conn is not None and not stopping.is_set() and not self.lost:
            try:
                message = conn.recv(timeout)
            except Exception as exc:  # noqa: BLE001 - closed or broken
                return self._ended(conn, describe(exc), stopping)
            now = self._clock()
            if message is realtime_client.KEEPALIVE:
                alive.heard(now)
            elif message is not None:
                alive.heard(now)
                self.last_event_at = now
                handle(message, now)
            health = alive.check(now)
            if health is Health.PING:
                alive.pinged(now)
                self._ping(conn, ping)
            elif health is Health.DEAD:
                self.replace(Cause.UNRESPONSIVE, f"no answer to a ping within {self._config.model_pong_timeout_s} s")
        return None

    def _ping(self, conn: realtime_client.RealtimeConnection, ping: Callable[[], None] | None) -> None:
        try:
            if ping is not None:
                ping()
        except Exception as exc:  # noqa: BLE001 - a broken socket: the read that follows reports it
            self._log.debug("Realtime ping failed: %s", describe(exc))

    def _ended(self, conn: realtime_client.RealtimeConnection, what: str, stopping: threading.Event) -> Cause | None:
        with self._lock:
            if stopping.is_set() or self.lost or self._closed:
                return None
            cause = self._ending or Cause.LOST
            if self._conn is conn:
                self._conn = None
            self.ready = False
        if cause is Cause.LOST:
            self._log.once("model:lost", "Realtime connection lost: %s; %s; further losses only counted", what,
                           "reconnecting" if self._config.reconnect_attempts else "not reconnecting")
        close_quietly(conn, self._log)
        return cause

    # ------------------------------------------------------------------ any thread
    def send(self, text: str) -> bool:
        """Send one client event; False if the session is not there (being replaced, or gone)."""
        conn = self._conn
        if conn is None or self._closed or self.lost or self._ending is not None:
            return False
        return self._send_on(conn, text)

    def _send_on(self, conn: realtime_client.RealtimeConnection, text: str) -> bool:
        try:
            conn.send(text)
            return True
        except Exception as exc:  # noqa: BLE001 - closed or broken socket: replace the session
            if conn is self._conn and not self._closed and not self.lost:
                self.replace(Cause.LOST, f"a send failed: {describe(exc)}")
            return False

    def replace(self, cause: Cause, why: str | None = None) -> None:
        """End the current session on purpose (expired, unresponsive, planned rollover); a new one
        follows, if the ``RedialPolicy`` allows. ``why`` is logged, once per cause per call."""
        with self._lock:
            conn = self._conn
            if conn is None or self._ending is not None:
                return
            self._ending = cause
            self.ready = False
        if why is not None:
            self._log.once(f"model:{cause.value}", "Realtime session %s (%s): replacing it; further ones only "
                           "counted", cause.value, why)
        close_quietly(conn, self._log)

    def age(self, now: float) -> float:
        started = self.session_started_at
        return 0.0 if started is None else now - started

    def lose(self, reason: str) -> None:
        """The model is gone for good (the session apologizes and ends the call); first reason wins."""
        with self._lock:
            if self.lost:
                return
            self.lost = reason
            self.ready = False
            conn, self._conn = self._conn, None
        if conn is not None:
            close_quietly(conn, self._log)

    def close(self) -> None:
        """Close the connection (idempotent); also stops a dial or a reconnect in progress."""
        with self._lock:
            self._closed = True
            self.ready = False
            conn, self._conn = self._conn, None
        if conn is not None:
            close_quietly(conn, self._log)
