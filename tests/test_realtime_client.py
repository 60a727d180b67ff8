"""realtime_client against a real WebSocket server on 127.0.0.1: framing, pings, close, limits."""
from __future__ import annotations

import threading

import pytest
import websocket

from voicebridge.model import client as realtime_client, wsframe
from voicebridge.dev.local import wsserver
from voicebridge.config import BridgeConfig
from voicebridge.model.client import ConnectionClosed

from peers import one_connection


def dial(url: str) -> realtime_client.WebSocketRealtimeConnection:
    return realtime_client.connect(BridgeConfig(api_key="sk-test", openai_url=url))


def test_messages_pings_fragments_and_peer_close() -> None:
    """Server frames of every shape reach recv() whole; a ping gets its pong; close ends recv."""
    got: dict[str, object] = {}
    big = "d" * 200_000

    def server(ws: wsserver.ServerWebSocket) -> None:
        got["auth"] = ws.receive(timeout=5)
        ws.sock.sendall(wsframe.encode(wsframe.OP_PING, b"hb"))
        ws.sock.sendall(bytes([0x01, 3]) + b"fra" + bytes([0x80, 4]) + b"gmnt")  # text in two fragments
        ws.send(b"\x00\x01")
        ws.send(big)
        got["after_ping"] = ws.receive(timeout=5)
        ws.close(1000, "bye")

    with one_connection(server) as url:
        conn = dial(url)
        conn.send("hello")
        assert conn.recv(timeout=5) is realtime_client.KEEPALIVE  # the ping: answered, returned at once
        assert conn.recv(timeout=5) == "fragmnt"
        assert conn.recv(timeout=5) == b"\x00\x01"
        assert conn.recv(timeout=5) == big
        conn.send("still here")
        with pytest.raises(ConnectionClosed, match="1000 bye"):
            while True:
                assert conn.recv(timeout=5) is not None
        conn.close()
        conn.close()  # idempotent
    assert got == {"auth": "hello", "after_ping": "still here"}


def test_a_server_ping_on_a_quiet_line_is_not_a_lost_connection() -> None:
    """Issue 22 (11): after a ping, the reader waited for the next frame under the socket's
    timeout; on a quiet line that timed out and the healthy session was taken for lost."""
    done = threading.Event()

    def server(ws: wsserver.ServerWebSocket) -> None:
        ws.receive(timeout=5)
        ws.sock.sendall(wsframe.encode(wsframe.OP_PING, b"hb"))
        done.wait(5)  # then a quiet line, longer than the client's socket timeout
        ws.send("still here")
        ws.close()

    with one_connection(server) as url:
        ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
        ws.connect(url, timeout=5)
        conn = realtime_client.WebSocketRealtimeConnection(ws, send_timeout_s=0.2)  # the 5 s timeout, shortened
        conn.send("hello")
        seen = [conn.recv(timeout=0.1) for _ in range(8)]  # 0.8 s of quiet after the ping
        assert seen[0] is realtime_client.KEEPALIVE and seen[1:] == [None] * 7
        done.set()
        assert conn.recv(timeout=5) == "still here"
        conn.close()


def test_our_ping_comes_back_as_a_pong() -> None:
    def server(ws: wsserver.ServerWebSocket) -> None:
        with pytest.raises(wsserver.ConnectionClosed):  # answers the ping with a pong while it waits
            ws.receive(timeout=2)

    with one_connection(server) as url:
        conn = dial(url)
        conn.ping()
        assert conn.recv(timeout=5) is realtime_client.KEEPALIVE
        conn.close()


def test_recv_times_out_with_none_and_survives() -> None:
    release = threading.Event()

    def server(ws: wsserver.ServerWebSocket) -> None:
        release.wait(5)
        ws.send("late")
        ws.close()

    with one_connection(server) as url:
        conn = dial(url)
        assert conn.recv(timeout=0.05) is None
        release.set()
        assert conn.recv(timeout=5) == "late"
        conn.close()


@pytest.mark.parametrize("wire, expected", [
    (wsframe.encode(wsframe.OP_TEXT, b"masked", b"abcd"), "masked"),            # a server must not mask
    (wsframe.encode(wsframe.OP_TEXT, b"\xff{}"), "\ufffd{}"),                   # text that is not UTF-8
])
def test_sloppy_server_frames_are_read_leniently(wire: bytes, expected: str) -> None:
    """Protocol slips from the server do not end the call: the message arrives (the session's
    event codec then judges its content) and the connection goes on."""
    def server(ws: wsserver.ServerWebSocket) -> None:
        ws.sock.sendall(wire)
        ws.send("next")
        ws.receive(timeout=5)

    with one_connection(server) as url:
        conn = dial(url)
        assert conn.recv(timeout=5) == expected
        assert conn.recv(timeout=5) == "next"
        conn.send("bye")
        conn.close()


def test_sockets_above_fd_setsize_are_read() -> None:
    """A busy bridge holds two sockets per call: past ~500 calls descriptors exceed 1023,
    which select() refuses. The connection must still receive."""
    import os
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip("cannot raise the descriptor limit above 1200 here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    fillers = []
    try:
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            fillers.append(fd)
            if fd >= 1030:
                break

        def server(ws: wsserver.ServerWebSocket) -> None:
            ws.send("over the limit")
            ws.close()

        with one_connection(server) as url:
            conn = dial(url)
            # the point of the test: a descriptor past select()'s limit (read off the socket
            # itself: a /proc/self/fd diff raced other threads' sockets closing and reopening)
            assert conn._ws.sock.fileno() > 1023
            assert conn.recv(timeout=5) == "over the limit"
            conn.close()
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class _CountingSocket:
    """A socket whose reads are counted (everything else goes to the real one)."""

    def __init__(self, sock: object) -> None:
        self._sock = sock
        self.recvs = 0

    def recv(self, n: int) -> bytes:
        self.recvs += 1
        return self._sock.recv(n)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


def test_frames_that_arrive_together_take_one_read() -> None:
    """Forty server messages sent at once arrive one per recv() call, from a few socket reads:
    websocket-client read every frame with two or three (header, length, payload), 50 a second
    per call at the model's pace."""
    def server(ws: wsserver.ServerWebSocket) -> None:
        ws.receive(timeout=5)
        ws.sock.sendall(b"".join(wsframe.encode(wsframe.OP_TEXT, f"delta {i}".encode()) for i in range(40)))
        ws.receive(timeout=5)

    with one_connection(server) as url:
        ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
        ws.connect(url, timeout=5)
        ws.sock = counting = _CountingSocket(ws.sock)
        conn = realtime_client.WebSocketRealtimeConnection(ws)
        conn.send("go")
        assert [conn.recv(timeout=5) for _ in range(40)] == [f"delta {i}" for i in range(40)]
        assert counting.recvs <= 3
        conn.send("bye")
        conn.close()


def test_a_message_over_the_cap_ends_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server message larger than ``MAX_MESSAGE_BYTES`` is refused (the session is replaced)
    instead of being buffered whole, however large."""
    monkeypatch.setattr(realtime_client, "MAX_MESSAGE_BYTES", 1000, raising=False)

    def server(ws: wsserver.ServerWebSocket) -> None:
        ws.send("x" * 2000)
        with pytest.raises(wsserver.ConnectionClosed):
            ws.receive(timeout=5)

    with one_connection(server) as url:
        conn = dial(url)
        with pytest.raises(ConnectionClosed, match="protocol error"):
            conn.recv(timeout=5)
        conn.close()
