"""A WebSocket's socket calls on its callers' threads: reads bounded one by one, frames written whole.

A socket's Python timeout (``settimeout``) bounds sends and receives alike, and a media
socket is written by another thread while its reader waits: a read bound set that way would
also cut short a send blocked behind a slow peer. ``BoundedReads.recv(n, timeout)`` bounds one
read only:

* under gevent (the socket is gevent's cooperative one over a non-blocking descriptor, where
  the kernel's SO_RCVTIMEO never fires) it waits for the descriptor in gevent's hub with a read
  watcher made once per socket and one timer per wait: one greenlet switch when bytes arrive
  (gevent's own ``select.poll`` makes a watcher per descriptor on every call);
* on a blocking socket, a bound of at least ``COARSE_S`` is SO_RCVTIMEO (one ``recv`` syscall
  per read, set again only when the bound changes); a shorter one polls first, because the
  kernel keeps SO_RCVTIMEO in scheduler ticks (a 1 ms bound can sleep 8 ms).

``readable(sock)`` is that wait on its own (the Realtime client reads through websocket-client
once it is true). ``send_whole(sock, frame)`` writes a frame with one ``send`` when the socket
takes it all, as it does a 20 ms frame: gevent's ``sendall`` asks the kernel for the send
buffer's size (a ``getsockopt``) and slices the data on every call.
"""
from __future__ import annotations

import select
import socket
import struct
import sys
from typing import Any, Callable

COARSE_S = 0.05
"""Read bounds at least this long go to SO_RCVTIMEO; shorter ones poll first."""


class BoundedReads:
    """``recv(n, timeout)`` on one socket from one reading thread: bytes, ``b""`` at EOF, None on
    timeout; ``OSError`` when the socket broke."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        # how a bounded read waits first (None: SO_RCVTIMEO bounds the recv itself)
        self._wait: "Callable[[float], bool] | None" = _green_wait(sock) if _is_green(sock) else None
        self._polled = _poll_wait(sock)
        self._rcvtimeo: "float | None" = None  # as last set on the socket (None: never)

    def recv(self, n: int, timeout: "float | None") -> "bytes | None":
        if timeout is None:
            if self._rcvtimeo:
                self._bound(0.0)  # 0: no bound
        elif self._wait is not None:
            if not self._wait(timeout):
                return None
        elif timeout < COARSE_S or self._sock.gettimeout() is not None:
            # a short bound, or a socket with a timeout of its own (Python then waits for it
            # before the recv, whatever SO_RCVTIMEO says)
            if not self._polled(timeout):
                return None
        elif not self._bound(timeout) and not self._polled(timeout):
            return None
        try:
            return self._sock.recv(n)
        except (BlockingIOError, socket.timeout):
            return None  # SO_RCVTIMEO expired (or an early wake-up with nothing to read)

    def _bound(self, timeout: float) -> bool:
        """SO_RCVTIMEO = ``timeout`` (a syscall only when it changes); False where the socket has
        none (every bounded read polls from then on)."""
        if timeout == self._rcvtimeo:
            return True
        whole = int(timeout)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                                  struct.pack("ll", whole, int((timeout - whole) * 1_000_000)))
        except (OSError, struct.error):
            self._wait = self._polled
            return False
        self._rcvtimeo = timeout
        return True


def readable(sock: Any) -> Callable[[float], bool]:
    """``wait(timeout)``: True once ``sock`` has bytes to read (or EOF, or an error), False after
    ``timeout`` seconds; under gevent it yields to other greenlets meanwhile."""
    return _green_wait(sock) if _is_green(sock) else _poll_wait(sock)


def send_whole(sock: Any, frame: bytes) -> None:
    """Write all of ``frame``: one ``send`` when the socket takes it whole, ``sendall`` for the rest."""
    sent = sock.send(frame)
    if sent < len(frame):
        sock.sendall(memoryview(frame)[sent:])


def writable_now(sock: Any) -> bool:
    """True if ``sock`` takes a small write at once: the kernel's poll with no wait (gevent's
    own would yield to its hub)."""
    poll = _kernel_poll()()
    poll.register(sock.fileno(), select.POLLOUT)
    return bool(poll.poll(0))


def _kernel_poll() -> Any:
    if "gevent.monkey" in sys.modules:
        from gevent.monkey import get_original
        return get_original("select", "poll")
    return select.poll


def _poll_wait(sock: Any) -> Callable[[float], bool]:
    poll = select.poll()  # not select(): descriptors above 1023 are refused there
    poll.register(sock.fileno(), select.POLLIN | select.POLLPRI)

    def wait(timeout: float) -> bool:
        return bool(poll.poll(max(timeout, 0.0) * 1000.0))

    return wait


def _is_green(sock: Any) -> bool:
    """gevent's cooperative socket (a monkey-patched ``socket.socket``)."""
    return type(sock).__module__.startswith("gevent")


def _green_wait(sock: Any) -> Callable[[float], bool]:
    """``wait(timeout)``: True once ``sock`` is readable (bytes, EOF or an error), False after
    ``timeout`` seconds; yields to other greenlets meanwhile."""
    from gevent import get_hub
    from gevent.hub import Waiter
    from gevent.monkey import get_original

    hub = get_hub()
    watcher = hub.loop.io(sock.fileno(), 1)  # 1: EV_READ
    now = get_original("select", "poll")()  # the kernel's: a bound of 0 asks it, without waiting
    now.register(sock.fileno(), select.POLLIN | select.POLLPRI)

    def wait(timeout: float) -> bool:
        if timeout <= 0:
            return bool(now.poll(0))
        waiter = Waiter(hub)
        timer = hub.loop.timer(max(timeout, 0.0))
        watcher.start(waiter.switch, True)
        timer.start(waiter.switch, False)
        try:
            return waiter.get()
        finally:
            watcher.stop()
            timer.close()

    return wait
