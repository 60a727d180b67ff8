"""The OpenAI side of a call: a small blocking WebSocket connection with timeouts.

``MediaSession`` only needs ``send(text)``, ``recv(timeout) -> str | bytes | None`` (None on
timeout) and an idempotent ``close()``; anything with those methods can be injected (tests
use a scripted fake). The default dials with websocket-client (its handshake, TLS and proxy
support) and then frames the connection itself (``model.wsframe``): each send is one frame
written under websocket-client's send lock, so the session's threads may send concurrently, and
the server's frames are read in ``RECV_BYTES`` reads into a ``FrameReader``, one recv for
several frames where websocket-client made three per frame (header, length, payload).
"""
from __future__ import annotations

import enum
import logging
import os
import socket
import threading
import time
from typing import Callable, Protocol

import websocket

from . import sockio, wsframe
from .wsframe import ConnectionClosed
from ..config import BridgeConfig

log = logging.getLogger(__name__)


class Keepalive(enum.Enum):
    """What ``recv`` returns for a ping or a pong: the peer is alive, but sent no message."""

    FRAME = "control frame"


KEEPALIVE = Keepalive.FRAME
RECV_BYTES = 16 * 1024
"""One read of the server's frames takes at most this much (several audio deltas)."""
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""A server message larger than this ends the connection (a replacement session is dialed): the
largest Realtime events (a ``session.created`` echoing long instructions, a ``response.done``
with its transcript) are a few hundred KB."""


class RealtimeConnection(Protocol):
    """``recv`` may also return ``KEEPALIVE``; a connection may offer ``ping()`` (a liveness check)."""

    def send(self, text: str) -> None: ...
    def recv(self, timeout: float) -> "str | bytes | Keepalive | None": ...
    def close(self) -> None: ...


Connector = Callable[[BridgeConfig], RealtimeConnection]


class WebSocketRealtimeConnection:
    """websocket-client connection to the Realtime endpoint (GA: no ``OpenAI-Beta`` header)."""

    def __init__(self, ws: websocket.WebSocket, send_timeout_s: float = 5.0) -> None:
        self._ws = ws
        self._closed = threading.Event()
        ws.settimeout(send_timeout_s)  # bounds sends and the rest of a partly received frame
        # poll, not select: a busy bridge holds two sockets per call, and select() refuses
        # descriptors above 1023 (FD_SETSIZE) -- that would drop every call past ~500; under
        # gevent, a watcher in its hub made once (gevent's poll makes one on every call)
        self._wait_readable = sockio.readable(ws.sock)
        self._frames = wsframe.FrameReader(MAX_MESSAGE_BYTES, from_server=True)  # the model thread's only

    def send(self, text: str) -> None:
        """One masked text frame, built here: websocket-client's ``send`` does more work per call.

        Same wire bytes as ``ws.send`` (FIN + text opcode, fresh random mask key per frame),
        written under websocket-client's own send lock (its pongs and close frames use it too),
        bounded by the socket timeout set in ``__init__``. This runs 50 times a second per call.
        """
        self._send_frame(wsframe.encode(wsframe.OP_TEXT, text.encode("utf-8"), os.urandom(4)))

    def _send_frame(self, frame: bytes) -> None:
        if self._closed.is_set():
            raise ConnectionClosed("connection closed")
        try:
            with self._ws.lock:
                sock = self._ws.sock
                if sock is None:
                    raise ConnectionClosed("socket gone")
                sockio.send_whole(sock, frame)
        except (websocket.WebSocketException, OSError) as exc:
            raise ConnectionClosed(str(exc)) from exc

    def ping(self) -> None:
        """A WebSocket ping (the liveness check of a quiet connection); its pong comes back as ``KEEPALIVE``."""
        self._send_frame(wsframe.encode(wsframe.OP_PING, b"vb", os.urandom(4)))

    def _readable(self, timeout: float) -> bool:
        sock = self._ws.sock
        if sock is None:
            raise ConnectionClosed("socket gone")
        pending = getattr(sock, "pending", None)  # TLS may hold decrypted bytes poll cannot see
        if pending is not None and pending():
            return True
        return self._wait_readable(timeout)

    def recv(self, timeout: float) -> "str | bytes | Keepalive | None":
        """The next server message, ``KEEPALIVE`` for a ping (answered) or a pong, None after
        ``timeout`` s without anything.

        One message per call, from what is already read first: a burst of buffered deltas is
        never parsed in one long run that would hold the GIL past the TX thread's slot
        (docs/performance.md), and a read takes at most ``RECV_BYTES``. A ping returns at once:
        waiting on for a message after it would run into the socket's timeout on a quiet line
        and be taken for a lost connection.
        """
        if self._closed.is_set():
            raise ConnectionClosed("connection closed")
        deadline = None
        while True:
            try:
                event = self._frames.next_event()
            except wsframe.FrameError as exc:
                raise ConnectionClosed(f"protocol error from the server: {exc.reason}") from exc
            if event is not None:
                return self._deliver(event)
            if deadline is None:  # the clock is read only when a wait is needed
                deadline, left = time.monotonic() + timeout, timeout
            else:
                left = max(0.0, deadline - time.monotonic())
            try:
                if not self._readable(left):
                    return None
                data = self._ws.sock.recv(RECV_BYTES)
            except (websocket.WebSocketException, OSError, ValueError, AttributeError) as exc:
                raise ConnectionClosed(str(exc) or type(exc).__name__) from exc
            if not data:
                raise ConnectionClosed("connection closed by the server (EOF)")
            self._frames.feed(data)

    def _deliver(self, event: "wsframe.Message | wsframe.Control") -> "str | bytes | Keepalive":
        if isinstance(event, wsframe.Message):
            return event.data
        if event.opcode == wsframe.OP_PING:
            self._send_frame(wsframe.encode(wsframe.OP_PONG, event.payload, os.urandom(4)))
            return KEEPALIVE
        if event.opcode == wsframe.OP_PONG:
            return KEEPALIVE
        # the server's close: answered (as websocket-client did), then the connection is over
        try:
            self._send_frame(wsframe.encode(wsframe.OP_CLOSE, wsframe.close_payload(wsframe.CLOSE_NORMAL),
                                            os.urandom(4)))
        except ConnectionClosed:
            pass
        self._ws.connected = False  # its close() then sends no second close frame
        raise ConnectionClosed(f"closed by peer ({event.code} {event.reason})".rstrip())

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self._ws.close(timeout=1.0)
        except (websocket.WebSocketException, OSError):
            pass
        # websocket-client's close() returns early, leaving the socket open, once the peer's
        # close frame has been read (``connected`` is already False then); shutdown() always
        # releases the file descriptor.
        try:
            self._ws.shutdown()
        except (websocket.WebSocketException, OSError):
            pass


def auth_headers(config: BridgeConfig) -> list[str]:
    """OpenAI: ``Authorization: Bearer <key>``. Azure: ``api-key: <key>``, or a bearer token (Entra
    ID) from ``token_provider``, asked for on every dial so a refreshed token is always used."""
    if config.token_provider is not None:
        return [f"Authorization: Bearer {config.token_provider()}"]
    if not config.api_key:
        return []
    if config.is_azure:
        return [f"api-key: {config.api_key}"]
    return [f"Authorization: Bearer {config.api_key}"]


def connect(config: BridgeConfig) -> WebSocketRealtimeConnection:
    """Dial ``config.realtime_url`` with the credentials it needs (never logged)."""
    headers = auth_headers(config)
    ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
    try:
        ws.connect(config.realtime_url, header=headers, timeout=config.connect_timeout_s)
        ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except Exception:
        try:
            ws.close()
        except Exception:  # noqa: BLE001 - best effort on a socket that never opened
            pass
        raise
    log.debug("connected to realtime endpoint %s", config.realtime_url.split("?")[0])
    return WebSocketRealtimeConnection(ws)
