"""The local Realtime server's WebSocket, served on the request's own thread: no reader thread.

The offline stack's server side (``voicebridge.dev.local.server``; tests use it for one-shot peers
too). flask-sock (simple-websocket) gives every connection a background reader thread that
parses with wsproto and hands each message over through a condition variable: two thread
wake-ups per message. ``ServerWebSocket`` instead reads on the thread that calls ``receive``:
one blocking ``recv`` per message, bounded by ``SO_RCVTIMEO``, decoded by
``wsframe.FrameReader``. That keeps the local server light beside the bridge it serves when
``benchmarks/scale.py`` runs both on one machine. Sends may come from any thread; they are
serialised here. The bridge's own ``/media`` is served by flask-sock: this reader was offered
there too and measured out (docs/performance.md, "The hand-written WebSocket server").

``accept(environ)`` does the RFC 6455 handshake on the raw socket the WSGI server exposes
(werkzeug's ``werkzeug.socket``, gunicorn's ``gunicorn.socket``); ``FinishedResponse`` is what
the view returns afterwards so the server writes nothing more on the socket.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import select
import socket
import struct
import threading
import time
from typing import Any, Callable, Iterable

from flask import Response

from ...model import wsframe
from ...model.wsframe import ConnectionClosed, Control, FrameError, FrameReader, Message

log = logging.getLogger(__name__)

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
RECV_BYTES = 65536
COARSE_TIMEOUT_S = 0.05  # waits at least this long may round up to the kernel's tick
CLOSE_WAIT_S = 1.0  # after our close frame, how long to wait for the peer's


class HandshakeError(Exception):
    """Not a valid WebSocket upgrade (answered with HTTP 400) or no raw socket (500)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")


def handshake_response(environ: dict[str, Any]) -> bytes:
    """The 101 response for a valid upgrade request; ``HandshakeError`` otherwise."""
    if environ.get("REQUEST_METHOD") != "GET":
        raise HandshakeError(400, "WebSocket upgrade must be a GET")
    if "websocket" not in environ.get("HTTP_UPGRADE", "").lower():
        raise HandshakeError(400, "missing Upgrade: websocket")
    if "upgrade" not in _tokens(environ.get("HTTP_CONNECTION", "")):
        raise HandshakeError(400, "missing Connection: upgrade")
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION", "").strip() != "13":
        raise HandshakeError(400, "unsupported Sec-WebSocket-Version (13 required)")
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
    try:
        valid = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise HandshakeError(400, "invalid Sec-WebSocket-Key")
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n").encode("ascii")


def raw_socket(environ: dict[str, Any]) -> "socket.socket | None":
    """The connection's socket, from the WSGI servers that expose it (werkzeug, gunicorn)."""
    for name in ("werkzeug.socket", "gunicorn.socket"):
        sock = environ.get(name)
        if isinstance(sock, socket.socket):
            return sock
    return None


def accept(environ: dict[str, Any], max_message_size: int = 64 * 1024) -> "ServerWebSocket":
    """Complete the upgrade on the request's socket and return the connection."""
    response = handshake_response(environ)
    sock = raw_socket(environ)
    if sock is None:
        raise HandshakeError(500, "this WSGI server does not expose the socket (use werkzeug or gunicorn)")
    sock.settimeout(None)
    sock.sendall(response)
    return ServerWebSocket(sock, max_message_size, mode="gunicorn" if "gunicorn.socket" in environ else "werkzeug")


class ServerWebSocket:
    """One accepted WebSocket: ``send`` / ``receive(timeout)`` / ``close``, as flask-sock's ``ws``."""

    def __init__(self, sock: socket.socket, max_message_size: int = 64 * 1024, mode: str = "werkzeug") -> None:
        self.sock = sock
        self.mode = mode
        self.connected = True
        self.close_code: "int | None" = None
        self.close_reason = ""
        self._reader = FrameReader(max_message_size)
        self._send_lock = threading.Lock()
        self._close_sent = False
        self._recv_timeout: "float | None" = -1.0  # SO_RCVTIMEO as last set (-1: never)
        # Under gevent the socket is a cooperative one over a non-blocking descriptor: the kernel's
        # SO_RCVTIMEO never fires there, so every bounded wait polls (gevent's poll yields).
        self._cooperative = type(sock).__module__.startswith("gevent")
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN | select.POLLPRI)

    # ------------------------------------------------------------------ sending (any thread)
    def send(self, data: "str | bytes") -> None:
        if isinstance(data, str):
            frame = wsframe.encode(wsframe.OP_TEXT, data.encode("utf-8"))
        else:
            frame = wsframe.encode(wsframe.OP_BINARY, bytes(data))
        with self._send_lock:
            if self._close_sent:
                raise ConnectionClosed("closed", self.close_code or wsframe.CLOSE_NORMAL)
            self.sock.sendall(frame)

    def close(self, reason: "int | None" = None, message: "str | None" = None) -> None:
        """Send our close frame once (idempotent); the peer's reply is read, if at all, by ``receive``."""
        self._send_close(reason or wsframe.CLOSE_NORMAL, message or "")
        self.connected = False

    def finish(self, timeout_s: float = CLOSE_WAIT_S) -> None:
        """End the close handshake here, then shut the TCP connection down (server closes first).

        Waits at most ``timeout_s`` for the peer's close frame (or EOF). gunicorn's gthread worker
        closes a finished connection on its *main* thread and waits up to 2 s there for the peer
        to close: done here instead, on the request thread, a slow peer cannot stall the worker.
        """
        deadline = time.monotonic() + timeout_s
        try:
            self.sock.settimeout(None)  # back to SO_RCVTIMEO-bounded reads (a linger may have set one)
            while self.close_code is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.receive(timeout=left)  # data after our close is discarded
        except (ConnectionClosed, OSError):
            pass
        self.connected = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already gone

    def _send_close(self, code: int, reason: str) -> None:
        with self._send_lock:
            if self._close_sent:
                return
            self._close_sent = True
            try:
                self.sock.sendall(wsframe.encode(wsframe.OP_CLOSE, wsframe.close_payload(code, reason)))
            except OSError:
                pass  # the peer is gone: nothing left to tell it

    # ------------------------------------------------------------------ receiving (one thread)
    def receive(self, timeout: "float | None" = None) -> "str | bytes | None":
        """The next message; None once ``timeout`` seconds pass with no complete message."""
        while True:
            event = self._next_event()
            if isinstance(event, Message):
                return event.data
            if event is not None:
                self._on_control(event)
                continue
            if not self._fill(timeout):
                return None

    def _next_event(self) -> "Message | Control | None":
        if not self.connected and self._close_sent and self.close_code is not None:
            raise ConnectionClosed(self.close_reason, self.close_code)
        try:
            return self._reader.next_event()
        except FrameError as exc:
            self._closed_by_us(exc.code, exc.reason)
            raise ConnectionClosed(exc.reason, exc.code) from None

    def _on_control(self, event: Control) -> None:
        if event.opcode == wsframe.OP_PING:
            with self._send_lock:
                if not self._close_sent:
                    self.sock.sendall(wsframe.encode(wsframe.OP_PONG, event.payload))
        elif event.opcode == wsframe.OP_CLOSE:
            self.close_code, self.close_reason = event.code, event.reason
            self._send_close(_echo_code(event.code), "")
            self.connected = False
            raise ConnectionClosed(event.reason, event.code)

    def _fill(self, timeout: "float | None") -> bool:
        """One ``recv`` into the reader; False on timeout; ConnectionClosed on EOF or error.

        Long waits use SO_RCVTIMEO (one syscall per message). The kernel keeps that timeout in
        scheduler ticks (a 1 ms bound sleeps 8 ms on a 250 Hz kernel), so a short wait -- a peer
        pacing its own sends by deadlines, like the local Realtime server -- polls first instead,
        as every wait does under gevent (where SO_RCVTIMEO never fires).
        """
        if timeout is not None and (timeout < COARSE_TIMEOUT_S or self._cooperative):
            try:
                if not self._poll.poll(max(timeout, 0.0) * 1000.0):
                    return False
            except OSError as exc:
                self._lost(f"poll failed: {exc}")
        else:
            self._set_recv_timeout(timeout)
        try:
            data = self.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return False  # SO_RCVTIMEO expired
        except socket.timeout:
            return False
        except OSError as exc:
            self._lost(f"recv failed: {exc}")
        if not data:
            self._lost("peer closed the TCP connection")
        self._reader.feed(data)
        return True

    def _set_recv_timeout(self, timeout: "float | None") -> None:
        """Bound the blocking ``recv`` with SO_RCVTIMEO (a syscall only when the bound changes)."""
        if timeout == self._recv_timeout:
            return
        self._recv_timeout = timeout
        seconds = 0.0 if timeout is None else max(timeout, 0.001)
        whole = int(seconds)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                                 struct.pack("ll", whole, int((seconds - whole) * 1_000_000)))
        except OSError:
            self.sock.settimeout(timeout)  # no SO_RCVTIMEO here: fall back to Python's own timeout

    def _lost(self, why: str) -> None:
        self.connected = False
        self.close_code = self.close_code or wsframe.CLOSE_ABNORMAL
        with self._send_lock:
            self._close_sent = True
        raise ConnectionClosed(why, wsframe.CLOSE_ABNORMAL)

    def _closed_by_us(self, code: int, reason: str) -> None:
        self.close_code, self.close_reason = code, reason
        self._send_close(code, reason)
        self.connected = False


def serve(environ: dict[str, Any], handler: "Callable[[ServerWebSocket], None]", name: str,
          max_message_size: int = 64 * 1024) -> Response:
    """A WebSocket view in one call: accept (or refuse with a logged 400/500), run, finish."""
    try:
        ws = accept(environ, max_message_size)
    except HandshakeError as exc:
        log.warning("%s upgrade refused (%d): %s", name, exc.status, exc)
        return Response(f"{exc}\n", status=exc.status, mimetype="text/plain")
    return run(ws, handler)


def run(ws: "ServerWebSocket", handler: "Callable[[ServerWebSocket], None]",
        close_wait_s: float = CLOSE_WAIT_S) -> "FinishedResponse":
    """Run ``handler(ws)`` to the end, close the WebSocket, and return what the view returns."""
    try:
        handler(ws)
    except ConnectionClosed:
        pass
    finally:
        ws.close()
        ws.finish(close_wait_s)
    return FinishedResponse(ws.mode)


class FinishedResponse(Response):
    """What a view returns once its WebSocket is finished: the socket is no longer HTTP.

    A subclass of Flask's own ``Response`` so Flask passes it through untouched (it runs any
    other WSGI callable inside the view, where gunicorn's ``StopIteration`` becomes a logged 500,
    and re-classes a plain werkzeug ``Response``, dropping this ``__call__``); it is called only
    as the final WSGI response. gunicorn then closes the connection on
    ``StopIteration``; werkzeug gets an empty 200 (after our close frame, where the peer no
    longer reads), as flask-sock does.
    """

    def __init__(self, mode: str) -> None:
        super().__init__(b"", status=200)
        self.mode = mode

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if self.mode == "gunicorn":
            raise StopIteration()
        return super().__call__(environ, start_response)


def _echo_code(code: int) -> int:
    """The code to answer a peer's close with: its own if a peer may send it (RFC 6455 7.4)."""
    if code == wsframe.CLOSE_NO_STATUS:
        return wsframe.CLOSE_NORMAL
    if (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) or 3000 <= code <= 4999:
        return code
    return wsframe.CLOSE_PROTOCOL_ERROR


def _tokens(header: str) -> set[str]:
    return {part.strip().lower() for part in header.split(",")}
