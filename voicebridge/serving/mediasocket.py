"""The media stream's WebSocket: simple-websocket's handshake, read inline, framed by ``model.wsframe``.

flask-sock serves a route with simple-websocket's ``Server``: the handshake, a reader thread per
connection (a greenlet under gevent) that decodes every frame and hands each message to
``receive`` through a list and an event, and ``send``/``close``. A call's media stream carries
50 messages a second from the caller: through the reader that is two wake-ups per message (the
reader's, then the receiving thread's), a large part of a gevent worker's loop at 20 calls.

``MediaSocket`` keeps simple-websocket's handshake and socket modes and reads on the thread that
calls ``receive`` (the session's run thread): one bounded ``recv`` per message
(``model.sockio``), decoded by ``wsframe.FrameReader``, pings answered and the peer's close
answered there. Writes (``send`` from the TX thread, pongs, close frames) hold one write lock,
each frame written whole (``sockio.send_whole``); the reading thread never waits for that lock
(a send stuck behind a peer that stopped reading must not stop the reader, which watches for
that stall): a control frame it cannot write at once is owed and goes out with the next write
(or at the next ``receive``). With ``ping_interval`` set (simple-websocket's keepalive loop;
the bridge never sets one) the reader thread and wsproto stay, as simple-websocket has them.
It relies on no extension being negotiated: ``media_route`` declines them (``no_extensions``),
and ``wsframe`` refuses frames with reserved bits.

``media_route`` registers a view the way flask-sock's ``Sock.route`` does, with this class.
"""
from __future__ import annotations

import time
from collections import deque
from functools import wraps
from typing import Any, Callable

from flask import Blueprint, Response, current_app, request
from simple_websocket import ConnectionClosed, Server

from ..locks import state_lock
from ..model import wsframe
from ..model.sockio import BoundedReads, send_whole, writable_now


class _NoReader:
    """Stands in for simple-websocket's reader thread: frames are read by ``receive``."""

    name = "inline"

    def __init__(self, target: Any = None) -> None:
        pass

    def start(self) -> None:
        pass

    def join(self, timeout: "float | None" = None) -> None:
        pass

    def is_alive(self) -> bool:
        return False


class MediaSocket(Server):
    """simple-websocket's server connection, read on the receiving thread, framed by ``wsframe``."""

    def __init__(self, environ: dict[str, Any], subprotocols: Any = None, receive_bytes: int = 4096,
                 ping_interval: "float | None" = None, max_message_size: "int | None" = None,
                 thread_class: Any = None, event_class: Any = None, selector_class: Any = None) -> None:
        self._inline = not ping_interval
        self._frames = wsframe.FrameReader(max_message_size or wsframe.FrameReader().max_message_size)
        self._write_lock = state_lock()
        self._owed: deque[bytes] = deque()  # control frames the reader could not write at once
        self._peer_done = False  # the peer's close frame (or EOF) was read: nothing more comes
        super().__init__(environ, subprotocols=subprotocols, receive_bytes=receive_bytes,
                         ping_interval=ping_interval, max_message_size=max_message_size,
                         thread_class=_NoReader if self._inline else thread_class, event_class=event_class,
                         selector_class=selector_class)
        self._reads = BoundedReads(self.sock) if self._inline else None

    # ------------------------------------------------------------------ reading (one thread)
    def receive(self, timeout: "float | None" = None) -> "str | bytes | None":
        """The next message; None after ``timeout`` s without one; ``ConnectionClosed`` once over."""
        if self._reads is None:
            return super().receive(timeout)
        if self._owed:  # a control frame a send was in the way of: now, if nothing sends
            self._write_control(None)
        deadline = None
        while True:
            message = self._next_message()
            if message is not None:
                return message
            if not self.connected:
                raise ConnectionClosed(self.close_reason, self.close_message)
            if timeout is None:
                left = None
            elif deadline is None:  # the clock is read only when a wait is needed
                deadline, left = time.monotonic() + timeout, timeout
            else:
                left = max(0.0, deadline - time.monotonic())
            if not self._fill(left):
                return None

    def drain(self, timeout: float) -> None:
        """After our close frame: read (and drop) until the peer's close or EOF, at most ``timeout`` s."""
        if self._reads is None:  # simple-websocket's reader reads it
            self.thread.join(timeout)
            return
        deadline = time.monotonic() + timeout
        while not self._peer_done:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                self._fill(left)
                while self._next_message() is not None:
                    pass
            except ConnectionClosed:
                return

    def _fill(self, timeout: "float | None") -> bool:
        """One bounded read into the frame reader; False if nothing came in time."""
        assert self._reads is not None
        try:
            data = self._reads.recv(self.receive_bytes, timeout)
        except OSError:
            data = b""  # shut down or reset: the connection is over
        if data is None:
            return False
        if not data:
            self._peer_done = True
            self.connected = False
            return True
        self._frames.feed(data)
        return True

    def _next_message(self) -> "str | bytes | None":
        """The next whole message already read; control frames handled on the way."""
        while True:
            try:
                event = self._frames.next_event()
            except wsframe.FrameError as exc:  # the peer broke the protocol: say why, then hang up
                self._peer_done = True
                self.close_reason, self.close_message = exc.code, exc.reason
                self._end(wsframe.encode(wsframe.OP_CLOSE, wsframe.close_payload(exc.code, exc.reason)))
                return None
            if event is None or isinstance(event, wsframe.Message):
                return None if event is None else event.data
            if event.opcode == wsframe.OP_PING:
                if self.connected:
                    self._write_control(wsframe.encode(wsframe.OP_PONG, event.payload))
            elif event.opcode == wsframe.OP_PONG:
                self.pong_received = True
            else:  # close: answer it (unless ours went first); then the connection is over
                self._peer_done = True
                self.close_reason, self.close_message = event.code, event.reason
                code = wsframe.CLOSE_NORMAL if event.code == wsframe.CLOSE_NO_STATUS else event.code
                self._end(wsframe.encode(wsframe.OP_CLOSE, wsframe.close_payload(code)))
                return None

    def _end(self, close_frame: bytes) -> None:
        """The reader ends the connection: our close frame, unless one went already."""
        if self.connected:
            self.connected = False
            self._write_control(close_frame)

    # ------------------------------------------------------------------ writing (any thread)
    def send(self, data: "str | bytes") -> None:
        """One unmasked frame, written whole."""
        if isinstance(data, bytes):
            frame = wsframe.encode(wsframe.OP_BINARY, data)
        else:
            frame = wsframe.encode(wsframe.OP_TEXT, str(data).encode("utf-8"))
        with self._write_lock:
            if self._owed:
                self._pay_owed()
            if not self.connected:
                raise ConnectionClosed(self.close_reason, self.close_message)
            send_whole(self.sock, frame)

    def close(self, reason: "int | None" = None, message: "str | None" = None) -> None:
        """Send our close frame (once: later calls raise ``ConnectionClosed``, as simple-websocket's)."""
        if self._reads is None:
            super().close(reason, message)
            return
        with self._write_lock:
            if self._owed:
                self._pay_owed()
            if not self.connected:
                raise ConnectionClosed(self.close_reason, self.close_message)
            self.connected = False
            self._write_quietly(wsframe.encode(wsframe.OP_CLOSE, wsframe.close_payload(
                reason or wsframe.CLOSE_NORMAL, message or "")))

    def _write_control(self, frame: "bytes | None") -> None:
        """Write the owed control frames and ``frame`` now if no write is in progress and the
        socket takes them at once, else owe them to the next write (or the next ``receive``).
        The reader is the call's run thread, which watches the sends for a stall: it must never
        wait on a peer that stopped reading (under gevent no socket timeout would end that)."""
        if frame is not None:
            self._owed.append(frame)  # deque: appended whole even while a writer pays what is owed
        if self._write_lock.acquire(blocking=False):
            try:
                if writable_now(self.sock):
                    self._pay_owed()
            finally:
                self._write_lock.release()

    def _pay_owed(self) -> None:
        while self._owed:
            self._write_quietly(self._owed.popleft())

    def _write_quietly(self, frame: bytes) -> None:
        try:
            send_whole(self.sock, frame)
        except OSError:
            pass  # the peer is gone already


def no_extensions(environ: dict[str, Any]) -> None:
    """Offer no WebSocket extension back: a media stream is never compressed.

    simple-websocket accepts permessage-deflate whenever the client offers it, and then every
    message is deflated and inflated: 50 a second each way, of base64 mu-law that deflate
    barely shrinks (pure CPU). Twilio's upgrade request offers no extension; a proxy or another
    client might. Without the offer in the request the handshake negotiates none (RFC 7692:
    the server may decline any offer), so the stream is plain frames whoever connects.
    """
    environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


def media_route(bp: Blueprint, path: str, endpoint: str, handler: Callable[[Any], None]) -> None:
    """Serve ``handler(ws)`` on WebSocket ``path`` of ``bp``, as flask-sock's ``Sock.route`` does
    (``SOCK_SERVER_OPTIONS`` honoured), with a :class:`MediaSocket` and no extension."""

    @wraps(handler)
    def view() -> Response:
        no_extensions(request.environ)
        ws = MediaSocket(request.environ, **current_app.config.get("SOCK_SERVER_OPTIONS", {}))
        try:
            handler(ws)
        except ConnectionClosed:
            pass
        try:
            ws.close()
        except Exception:  # noqa: BLE001 - closed already, by either side
            pass
        return _Done(ws.mode)

    bp.add_url_rule(path, endpoint, view, websocket=True)


class _Done(Response):
    """What the server gets once the connection is over: nothing more to write (flask-sock's
    answer per server: gunicorn stops iterating, werkzeug writes the empty response)."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self._mode = mode

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._mode == "gunicorn":
            raise StopIteration()
        if self._mode == "werkzeug":
            return super().__call__(*args, **kwargs)
        return []
