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
from typing import Any, Callable


class SendLock:
    """The Twilio send lock, with a bound on how long anyone waits for it.

    A send that blocks (the peer stopped reading) holds the lock. Whoever waits longer than the
    send timeout calls ``on_stall`` (which aborts the socket, so the stuck send fails, and ends
    the call), then takes the lock once the sender lets go. If even that times out the holder
    is wedged for good: carry on without the lock (the socket is dead, sends fail) rather than hang.
    """

    def __init__(self, timeout: Callable[[], "float | None"], on_stall: Callable[[str], None]) -> None:
        self._lock = threading.Lock()
        self._timeout = timeout
        self._on_stall = on_stall
        self._held = threading.local()

    def __enter__(self) -> "SendLock":
        limit = self._timeout()
        if not limit or limit <= 0:
            got = self._lock.acquire()
        else:
            got = self._lock.acquire(timeout=limit)
            if not got:
                self._on_stall("a send held the lock")
                got = self._lock.acquire(timeout=limit)
        self._held.got = got
        return self

    def __exit__(self, *exc: object) -> None:
        if getattr(self._held, "got", False):
            self._held.got = False
            self._lock.release()


def bound_sends(ws: Any, timeout_s: "float | None") -> None:
    """Bound every send on the Twilio socket (SO_SNDTIMEO), leaving receives untouched.

    simple-websocket (flask-sock) writes with ``sock.send`` on a blocking socket that has no
    timeout: when the peer stops reading, the kernel buffer fills and the send blocks forever.
    ``settimeout`` would also time out its reader thread's idle ``recv`` and drop the connection,
    so the bound is set on the send direction only; an expired send raises ``BlockingIOError``.
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
