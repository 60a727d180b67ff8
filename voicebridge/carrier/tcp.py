"""What the bridge does to the TCP socket under the Twilio WebSocket.

flask-sock / simple-websocket expose the raw socket as ``ws.sock``. The bridge tunes it for
20 ms audio (no Nagle), bounds sends so a caller that stops reading cannot wedge a call, and
bounds the final drain so a peer that never closes cannot pin a server thread. Anything
without a real ``socket.socket`` (test doubles, other servers) is left alone.
"""
from __future__ import annotations

import socket
import struct
import threading
from typing import Any


def bound_sends(ws: Any, timeout_s: "float | None") -> None:
    """Bound every send on the Twilio socket (SO_SNDTIMEO), leaving receives untouched.

    simple-websocket (flask-sock) writes with ``sock.send`` on a blocking socket that has no
    timeout: when the peer stops reading, the kernel buffer fills and the send blocks forever.
    ``settimeout`` would also time out an idle read (a reader thread's, or the run thread's on the
    media routes, which bounds each read itself) and drop the connection, so the bound is set
    on the send direction only; an expired send raises ``BlockingIOError``.
    """
    sock = getattr(ws, "sock", None)
    if not timeout_s or timeout_s <= 0 or not isinstance(sock, socket.socket):
        return
    sec = int(timeout_s)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                        struct.pack("ll", sec, int((timeout_s - sec) * 1_000_000)))
    except (OSError, struct.error):
        pass  # platform without SO_SNDTIMEO: the send lock bound still ends the call


def finish(ws: Any, timeout_s: float) -> None:
    """After our close frame: end the connection on this (the request's) thread, boundedly.

    Under flask-sock, simple-websocket's reader thread reads until the peer's close frame (the
    media routes' socket reads it here, ``drain``); it is given ``timeout_s`` for that, then the
    socket is shut down, which ends a read still blocked
    (a timeout set now would not). Otherwise the server's own close would wait on the peer:
    gunicorn's gthread worker does that on its main thread, where it stalls every other
    connection of the worker for up to 2 s. Other sockets get a bounded final drain (``linger``).
    """
    reader = getattr(ws, "thread", None)
    drain = getattr(ws, "drain", None)  # a socket read on its caller's thread (``serving.mediasocket``)
    sock = getattr(ws, "sock", None)
    if not ((callable(drain) or isinstance(reader, threading.Thread)) and isinstance(sock, socket.socket)):
        linger(ws, timeout_s)
        return
    if callable(drain):
        drain(timeout_s)
    elif reader is not threading.current_thread():
        reader.join(timeout_s)
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the reader: nothing left to end


def linger(ws: Any, timeout_s: float) -> None:
    """After our close frame, bound how long the server may wait on a peer that keeps its TCP open.

    Once the handler returns, werkzeug drains the socket with a blocking ``read`` until EOF: a peer
    that never closes its side would pin that server thread and its descriptor for good. With a
    timeout the read ends with ``socket.timeout``, which werkzeug treats as a dropped connection.
    """
    sock = getattr(ws, "sock", None)
    if isinstance(sock, socket.socket):
        try:
            sock.settimeout(timeout_s)
        except OSError:
            pass


def abort(ws: Any) -> None:
    """Break a stuck Twilio socket without its send lock: shutdown wakes a blocked send."""
    sock = getattr(ws, "sock", None)
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
            return
        except OSError:
            pass
    try:
        ws.close()
    except Exception:  # noqa: BLE001 - already closed or broken: that is the goal
        pass


def no_delay(ws: Any) -> None:
    """Disable Nagle on the Twilio socket: a mark right after a frame must not wait for an ACK.

    Without it, media and mark messages sent back to back are coalesced behind delayed ACKs
    and the caller receives a 38 ms / 2 ms gap pattern every few frames (werkzeug's server
    does not set TCP_NODELAY itself).
    """
    sock = getattr(ws, "sock", None)
    if sock is None or not hasattr(sock, "setsockopt"):
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass  # not a TCP socket (unix socket, test double): nothing to tune
