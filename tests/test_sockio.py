"""A WebSocket's socket calls (``model.sockio``): a read's bound is the read's, never the sends'."""
from __future__ import annotations

import socket
from typing import Iterator

import pytest

from voicebridge.model.sockio import COARSE_S, BoundedReads, send_whole


@pytest.fixture
def ends() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    b.settimeout(5)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("bound", [0.0, COARSE_S / 5, COARSE_S, 0.2])
def test_nothing_to_read_is_none_after_the_bound_then_bytes_then_eof(ends, bound: float) -> None:
    a, b = ends
    reads = BoundedReads(a)
    assert reads.recv(100, bound) is None
    b.sendall(b"abc")
    assert reads.recv(100, 2.0) == b"abc"
    b.shutdown(socket.SHUT_WR)
    assert reads.recv(100, bound) == b""


def test_the_read_bound_leaves_the_socket_timeout_and_blocking_sends_alone(ends) -> None:
    a, b = ends
    reads = BoundedReads(a)
    assert reads.recv(100, 0.1) is None
    assert a.gettimeout() is None  # settimeout() would also have bounded every send
    b.sendall(b"x")
    assert reads.recv(100, None) == b"x"  # unbounded again


def test_a_frame_the_socket_cannot_take_at_once_is_written_whole(ends) -> None:
    a, b = ends
    big = bytes(range(256)) * 8192  # 2 MiB: more than the socket buffers hold
    import threading
    received = bytearray()

    def read() -> None:
        while len(received) < len(big):
            received.extend(b.recv(65536))

    reader = threading.Thread(target=read)
    reader.start()
    send_whole(a, big)
    reader.join(10)
    assert bytes(received) == big


def test_a_socket_with_a_timeout_of_its_own_is_still_bounded_by_the_read(ends) -> None:
    """Python waits for such a socket's own timeout before its ``recv``: SO_RCVTIMEO alone would
    let this read wait until the byte sent a second later came."""
    import threading

    a, b = ends
    a.settimeout(5.0)
    later = threading.Timer(1.0, lambda: b.sendall(b"late"))
    later.start()
    try:
        assert BoundedReads(a).recv(100, 0.1) is None
    finally:
        later.cancel()
        later.join()
