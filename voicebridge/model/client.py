"""The OpenAI side of a call: a small blocking WebSocket connection with timeouts.

``MediaSession`` only needs ``send(text)``, ``recv(timeout) -> str | bytes | None`` (None on
timeout) and an idempotent ``close()``; anything with those methods can be injected (tests
use a scripted fake). The default uses websocket-client, whose ``send`` holds a lock, so
the session's threads may send concurrently.
"""
from __future__ import annotations

import enum
import logging
import os
import socket
import threading
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

        Read by websocket-client frame by frame: a burst of buffered deltas is never parsed in
        one long run that would hold the GIL past the TX thread's slot (docs/performance.md).
        A ping returns at once: waiting on for a message after it would run into the socket's
        timeout on a quiet line and be taken for a lost connection.
        """
        if self._closed.is_set():
            raise ConnectionClosed("connection closed")
        try:
            if not self._readable(timeout):
                return None
            opcode, data = self._ws.recv_data(control_frame=True)
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            raise ConnectionClosed(str(exc)) from exc
        if opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
            return KEEPALIVE
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else wsframe.CLOSE_NO_STATUS
            reason = bytes(data[2:]).decode("utf-8", errors="replace")
            raise ConnectionClosed(f"closed by peer ({code} {reason})".rstrip())
        if opcode == websocket.ABNF.OPCODE_TEXT:
            return data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
        return bytes(data)

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
