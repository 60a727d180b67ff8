"""The model side of a call: the Realtime WebSocket, from dial to close, and its replacements.

``ModelLink`` owns the connection and the facts every other part asks about it: may caller audio
be sent (``ready``)? is the model gone for good (``lost``)? Any thread may ``send``; the
session's model thread runs ``run``: dial, configure, replay, read -- and when the connection
ends early (the socket is lost, the server closes it, the session expires, or the bridge rolls
over to a fresh session at a quiet moment) dial again, with bounded retries, backoff and
jitter. A new session gets the same configuration and the conversation as the caller heard it
(``history``), so the call goes on; only when every retry fails is the model ``lost`` (the
caller then hears the apology). Closing is safe at any moment, including mid-dial: a connection
that completes after ``close`` is closed at once, never leaked.
"""
from __future__ import annotations

import enum
import logging
import random
import threading
from typing import Callable

from . import realtime_client
from .config import BridgeConfig
from .metrics import CallMetrics
from .preflight import rejection
from .twilio_link import describe

EventHandler = Callable[["str | bytes", float], None]
MAX_BACKOFF_S = 4.0
LOSS_WINDOW_S = 60.0
"""More than ``reconnect_attempts`` lost sessions within this and the model is lost for good:
a server that accepts and then drops every connection must not keep a call reconnecting."""


class Cause(enum.Enum):
    """Why a new Realtime session replaces the old one."""

    LOST = "lost"  # the socket broke or the server closed it
    EXPIRED = "expired"  # session_expired: the service's cap on a session's length
    ROLLOVER = "rollover"  # planned: a quiet moment after session_max_age_s


GAVE_UP = {Cause.LOST: "openai disconnected", Cause.EXPIRED: "openai session expired",
           Cause.ROLLOVER: "openai rollover failed"}
"""The close reason when no replacement session could be had."""
AUTH_FAILED = "openai auth failed"
"""The close reason when the endpoint refuses the credentials (401/403): not retried."""


class ModelLink:
    """The Realtime connection of one call, replaced as often as needed."""

    def __init__(self, config: BridgeConfig, connect: realtime_client.Connector, metrics: CallMetrics,
                 log: logging.LoggerAdapter, clock: Callable[[], float]) -> None:
        self._config = config
        self._connect = connect
        self._metrics = metrics
        self._log = log
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: realtime_client.RealtimeConnection | None = None
        self._closed = False
        self._ending: Cause | None = None  # set to replace the current session deliberately
        self._rng = random.Random()
        self._losses: list[float] = []  # when recent sessions were lost
        self.lost: str | None = None  # why the model is gone for good (set once)
        self.ready = False  # connected, configured and caught up: caller audio may be sent
        self.last_event_at = clock()
        self.session_started_at: float | None = None
        self.down_since: float | None = None  # a replacement is being dialed since then

    # ------------------------------------------------------------------ the model thread
    def run(self, handle: EventHandler, stopping: threading.Event, session_update: Callable[[], str],
            history: Callable[[], list[str]], backlog: Callable[[], list[str]],
            switched: Callable[[Cause, float, int, int], None]) -> None:
        """Dial, configure, read; replace the session whenever it ends early; until the call ends."""
        cause: Cause | None = None
        while not stopping.is_set() and not self.lost:
            began = self._clock()
            if not self._dial(cause, stopping, session_update()):
                return
            replayed = resent = 0
            if cause is not None:
                replayed = self._replay(history())
                resent = self._replay(backlog())
            self.ready, self.down_since = True, None
            self.session_started_at = self.last_event_at = self._clock()
            if cause is not None:
                switched(cause, self._clock() - began, replayed, resent)
            cause = self._receive(handle, stopping)
            if cause is None:
                return
            self.ready, self.down_since = False, self._clock()
            if cause is Cause.LOST and self._flapping(self.down_since):
                self.lose(GAVE_UP[cause])

    def _dial(self, cause: Cause | None, stopping: threading.Event, session_update: str) -> bool:
        """Connect and configure, retrying with backoff; False (and ``lost``) if it never works.

        A lost session is redialed ``reconnect_attempts`` times (0: the call ends, as it did
        before reconnecting existed); a first dial, an expiry or a rollover always get one more.
        """
        retries = self._config.reconnect_attempts
        for attempt in range(retries if cause is Cause.LOST else 1 + retries):
            if attempt:
                if stopping.wait(self._backoff(attempt)):
                    return False
            if stopping.is_set() or self._closed:
                return False
            conn = self._open()
            if conn is not None and self._send_on(conn, session_update):
                return True
            if self.lost:  # refused credentials: no retry can fix them
                return False
        self.lose("openai unreachable" if cause is None else GAVE_UP[cause])
        return False

    def _flapping(self, now: float) -> bool:
        self._losses = [t for t in self._losses if now - t < LOSS_WINDOW_S] + [now]
        return len(self._losses) > self._config.reconnect_attempts

    def _backoff(self, attempt: int) -> float:
        base = min(MAX_BACKOFF_S, self._config.reconnect_backoff_ms / 1000 * 2 ** (attempt - 1))
        return base * self._rng.uniform(0.75, 1.25)

    def _open(self) -> realtime_client.RealtimeConnection | None:
        try:
            conn = self._connect(self._config)
        except Exception as exc:  # noqa: BLE001 - refused, timeout, 5xx: retried, then the apology
            refused = rejection(exc)
            if refused is not None and refused.auth:  # a wrong key is not a network failure
                self._log.error("the Realtime endpoint refused the credentials (%s): not retrying", refused)
                self._metrics.error("auth_failed")
                self.lose(AUTH_FAILED)
                return None
            self._log.error("cannot reach the Realtime endpoint: %s", describe(exc) if refused is None
                            else f"{type(exc).__name__}: {refused}")
            self._metrics.error("connect_failed")
            return None
        with self._lock:
            closed = self._closed
            if not closed:
                self._conn, self._ending = conn, None
        if closed:  # close() ran while we were dialing: this connection must not outlive the call
            _close_quietly(conn, self._log)
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
        """Read until the call ends (None) or the session must be replaced (why)."""
        conn = self._conn
        timeout = self._config.openai_receive_timeout_s
        while conn is not None and not stopping.is_set() and not self.lost:
            try:
                message = conn.recv(timeout)
            except Exception as exc:  # noqa: BLE001 - closed or broken
                return self._ended(conn, exc, stopping)
            if message is not None:
                now = self._clock()
                self.last_event_at = now
                handle(message, now)
        return None

    def _ended(self, conn: realtime_client.RealtimeConnection, exc: BaseException,
               stopping: threading.Event) -> Cause | None:
        with self._lock:
            if stopping.is_set() or self.lost or self._closed:
                return None
            cause = self._ending or Cause.LOST
            if self._conn is conn:
                self._conn = None
            self.ready = False
        if cause is Cause.LOST:
            self._log.warning("Realtime connection lost: %s; %s", describe(exc),
                              "reconnecting" if self._config.reconnect_attempts else "not reconnecting")
        _close_quietly(conn, self._log)
        return cause

    # ------------------------------------------------------------------ any thread
    def send(self, text: str) -> bool:
        """Send one client event; False if the session is not there (being replaced, or gone)."""
        conn = self._conn
        if conn is None or self._closed or self.lost:
            return False
        return self._send_on(conn, text)

    def _send_on(self, conn: realtime_client.RealtimeConnection, text: str) -> bool:
        try:
            conn.send(text)
            return True
        except Exception as exc:  # noqa: BLE001 - closed or broken socket: replace the session
            if conn is self._conn and not self._closed and not self.lost:
                self._log.warning("Realtime send failed: %s; reconnecting", describe(exc))
                self.replace(Cause.LOST)
            return False

    def replace(self, cause: Cause) -> None:
        """End the current session on purpose (expired, planned rollover); a new one follows."""
        with self._lock:
            conn = self._conn
            if conn is None or self._ending is not None:
                return
            self._ending = cause
            self.ready = False
        _close_quietly(conn, self._log)

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
            _close_quietly(conn, self._log)

    def close(self) -> None:
        """Close the connection (idempotent); also stops a dial or a reconnect in progress."""
        with self._lock:
            self._closed = True
            self.ready = False
            conn, self._conn = self._conn, None
        if conn is not None:
            _close_quietly(conn, self._log)


def _close_quietly(conn: realtime_client.RealtimeConnection, log: logging.LoggerAdapter) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - best effort on a broken connection
        log.exception("openai close raised")
