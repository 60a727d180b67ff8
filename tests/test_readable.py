"""Bounded reads on one socket (``model.readable``): the bound is the read's, never the sends'."""
from __future__ import annotations

import socket
from typing import Iterator

import pytest

from voicebridge.model.readable import COARSE_S, BoundedReads


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
