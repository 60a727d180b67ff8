"""The media stream's WebSocket: simple-websocket's connection, framed by ``model.wsframe``.

flask-sock serves a route with simple-websocket's ``Server``: the handshake, a reader thread per
connection (a greenlet under gevent) that decodes frames with wsproto and hands each message to
``receive`` through a list and an event, and ``send``/``close``. A call's media stream carries
over a hundred small messages a second, and wsproto's per-frame work (a generator, an event
object and several buffer copies per frame) was the largest single item of the worker's Python
time at 20 calls (the reader: about 30 %, yappi).

``MediaSocket`` keeps all of simple-websocket but the framing: the same handshake, thread,
``receive``, ``close`` and socket modes; data frames are decoded (``FrameReader``) and encoded
(``encode``, one ``sendall``: simple-websocket's ``send`` could write part of a frame when a
bounded send timed out) by the codec the Realtime client and the local server already use. It
relies on no extension being negotiated: ``media_route`` declines them (``no_extensions``), and
``wsframe`` refuses frames with reserved bits.

``media_route`` registers a view the way flask-sock's ``Sock.route`` does, with this class.
"""
from __future__ import annotations

from functools import wraps
from typing import Any, Callable

from flask import Blueprint, Response, current_app, request
from simple_websocket import ConnectionClosed, Server

from ..model import wsframe


class MediaSocket(Server):
    """simple-websocket's server connection with ``wsframe`` as its frame codec."""

    def _thread(self) -> None:
        if self.ping_interval:  # simple-websocket's own keepalive loop (the bridge never sets one)
            super()._thread()
            return
        reader = wsframe.FrameReader(self.max_message_size or wsframe.FrameReader().max_message_size)
        try:
            while self.connected:
                data = self.sock.recv(self.receive_bytes)
                if not data:
                    break
                reader.feed(data)
                if not self._take(reader):
                    break
        except wsframe.FrameError as exc:  # the peer broke the protocol: say why, then hang up
            self._write_quietly(wsframe.encode(wsframe.OP_CLOSE, wsframe.close_payload(exc.code, exc.reason)))
            self.close_reason, self.close_message = exc.code, exc.reason
        except OSError:
            pass  # the socket was shut down or reset: the connection is over
        self.connected = False
        self.event.set()
        self.sock.close()

    def _take(self, reader: wsframe.FrameReader) -> bool:
        """Every complete event in ``reader``; False once the connection is over."""
        while True:
            event = reader.next_event()
            if event is None:
                return True
            if isinstance(event, wsframe.Message):
                self.input_buffer.append(event.data)
                self.event.set()
            elif event.opcode == wsframe.OP_PING:
                self.sock.sendall(wsframe.encode(wsframe.OP_PONG, event.payload))
            elif event.opcode == wsframe.OP_PONG:
                self.pong_received = True
            else:  # close: answer it (unless ours went first), then the connection is over
                if self.connected:
                    code = wsframe.CLOSE_NORMAL if event.code == wsframe.CLOSE_NO_STATUS else event.code
                    self._write_quietly(wsframe.encode(wsframe.OP_CLOSE, wsframe.close_payload(code)))
                self.close_reason, self.close_message = event.code, event.reason
                return False

    def _write_quietly(self, frame: bytes) -> None:
        try:
            self.sock.sendall(frame)
        except OSError:
            pass  # the peer is gone already

    def send(self, data: "str | bytes") -> None:
        """One unmasked frame, written whole."""
        if not self.connected:
            raise ConnectionClosed(self.close_reason, self.close_message)
        if isinstance(data, bytes):
            self.sock.sendall(wsframe.encode(wsframe.OP_BINARY, data))
        else:
            self.sock.sendall(wsframe.encode(wsframe.OP_TEXT, str(data).encode("utf-8")))


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
