"""The model side of a call: the Realtime WebSocket, from dial to close.

``ModelLink`` owns the connection and the one fact every other part asks about it: is the model
still there (``lost``)? Any thread may ``send``; the session's model thread runs ``open`` and
then ``receive_loop``. Closing is safe at any moment, including while ``open`` is still dialing:
a connection that completes after ``close`` is closed at once, never leaked.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from . import realtime_client
from .config import BridgeConfig
from .metrics import CallMetrics
from .twilio_link import describe

EventHandler = Callable[["str | bytes", float], None]


class ModelLink:
    """One Realtime connection: ``open``, ``send``, ``receive_loop``, ``lose``, ``close``."""

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
        self.lost: str | None = None  # why the model is gone (set once)
        self.ready = False  # connected and configured: caller audio may be forwarded
        self.last_event_at = clock()

    def open(self) -> bool:
        """Dial the Realtime endpoint; False (and ``lost`` set) if it cannot be reached."""
        if self._closed:
            return False
        try:
            conn = self._connect(self._config)
        except Exception as exc:  # noqa: BLE001 - refused, timeout, 401...: end the call cleanly
            self._log.error("cannot reach the Realtime endpoint: %s", describe(exc))
            self._metrics.error("connect_failed")
            self.lose("openai unreachable")
            return False
        with self._lock:
            closed = self._closed
            if not closed:
                self._conn = conn
        if closed:  # close() ran while we were dialing: this connection must not outlive the call
            _close_quietly(conn, self._log)
            return False
        return True

    def configure(self, session_update: str) -> bool:
        """Send the session's configuration; audio appended before it would be misread."""
        self.ready = self.send(session_update)
        return self.ready

    def send(self, text: str) -> bool:
        """Send one client event; a failure means the model is lost (False)."""
        conn = self._conn
        if conn is None or self._closed or self.lost:
            return False
        try:
            conn.send(text)
            return True
        except Exception as exc:  # noqa: BLE001 - closed or broken socket
            if not self._closed and not self.lost:
                self._log.warning("Realtime send failed: %s", describe(exc))
                self.lose("openai send failed")
            return False

    def receive_loop(self, handle: EventHandler, stopping: threading.Event) -> None:
        """Hand every server message to ``handle`` until the call stops or the model is lost."""
        conn = self._conn
        if conn is None:
            return
        timeout = self._config.openai_receive_timeout_s
        while not stopping.is_set() and not self.lost:
            try:
                message = conn.recv(timeout)
            except Exception as exc:  # noqa: BLE001 - closed or broken
                if not stopping.is_set() and not self.lost and not self._closed:
                    self._log.warning("Realtime connection lost: %s", describe(exc))
                    self.lose("openai disconnected")
                return
            if message is not None:
                now = self._clock()
                self.last_event_at = now
                handle(message, now)

    def lose(self, reason: str) -> None:
        """The model is gone (the session apologizes and ends the call); first reason wins."""
        with self._lock:
            if self.lost:
                return
            self.lost = reason
            conn, self._conn = self._conn, None
        if conn is not None:
            _close_quietly(conn, self._log)

    def close(self) -> None:
        """Close the connection (idempotent); also stops an ``open`` still in progress."""
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            _close_quietly(conn, self._log)


def _close_quietly(conn: realtime_client.RealtimeConnection, log: logging.LoggerAdapter) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - best effort on a broken connection
        log.exception("openai close raised")
