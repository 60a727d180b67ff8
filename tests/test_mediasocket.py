"""The media stream's socket (simple-websocket framed by wsframe), over a local socket pair."""
from __future__ import annotations

import socket
import threading
from typing import Iterator

import pytest
from simple_websocket import ConnectionClosed

from voicebridge.model import wsframe
from voicebridge.carrier import tcp
from voicebridge.serving.mediasocket import MediaSocket

KEY = b"\x01\x02\x03\x04"


def _environ(sock: socket.socket) -> dict:
    return {"werkzeug.socket": sock, "HTTP_HOST": "bridge", "HTTP_UPGRADE": "websocket", "HTTP_CONNECTION": "Upgrade",
            "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==", "HTTP_SEC_WEBSOCKET_VERSION": "13"}


@pytest.fixture
def pair() -> Iterator[tuple[MediaSocket, socket.socket]]:
    """A connected MediaSocket and the peer's end, its 101 answer already read."""
    server_end, peer = socket.socketpair()
    peer.settimeout(5)
    ws = MediaSocket(_environ(server_end), max_message_size=1024)
    head = b""
    while b"\r\n\r\n" not in head:
        head += peer.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    try:
        yield ws, peer
    finally:
        peer.close()
        server_end.close()


def _frames(peer: socket.socket) -> Iterator[tuple[int, bytes]]:
    """The server's frames as the peer reads them (unmasked, as a server sends)."""
    buf = b""
    while True:
        while len(buf) < 2 or len(buf) < 2 + (buf[1] & 0x7F):
            chunk = peer.recv(4096)
            if not chunk:
                return
            buf += chunk
        assert not buf[1] & 0x80 and (buf[1] & 0x7F) < 126
        n = buf[1] & 0x7F
        yield buf[0] & 0x0F, buf[2:2 + n]
        buf = buf[2 + n:]


def test_messages_arrive_in_order_whole_fragmented_or_several_to_a_read(pair) -> None:
    ws, peer = pair
    first = wsframe.encode(wsframe.OP_TEXT, b'{"event":"media"}', KEY)
    part1 = bytes((0x01, 0x80 | 3)) + KEY + wsframe.mask(b'{"e', KEY)  # text, not final
    part2 = bytes((0x80, 0x80 | 2)) + KEY + wsframe.mask(b'"}', KEY)  # continuation, final
    peer.sendall(first + part1 + part2 + wsframe.encode(wsframe.OP_BINARY, b"\x00\xff", KEY))
    assert [ws.receive(5) for _ in range(3)] == ['{"event":"media"}', '{"e"}', b"\x00\xff"]
    ws.send('{"event":"mark"}')
    assert next(_frames(peer)) == (wsframe.OP_TEXT, b'{"event":"mark"}')


def test_a_ping_is_answered_and_a_close_is_returned_with_its_code(pair) -> None:
    ws, peer = pair
    peer.sendall(wsframe.encode(wsframe.OP_PING, b"hi", KEY))
    assert ws.receive(0.2) is None  # the receiving thread reads and answers it
    frames = _frames(peer)
    assert next(frames) == (wsframe.OP_PONG, b"hi")
    peer.sendall(wsframe.encode(wsframe.OP_CLOSE, wsframe.close_payload(1001, "gone"), KEY))
    with pytest.raises(ConnectionClosed):
        ws.receive(5)
    assert next(frames) == (wsframe.OP_CLOSE, wsframe.close_payload(1001))
    with pytest.raises(ConnectionClosed):
        ws.send("after the close")
    assert ws.close_reason == 1001 and ws.close_message == "gone"


def test_a_message_over_the_cap_closes_the_stream_with_1009(pair) -> None:
    ws, peer = pair
    peer.sendall(wsframe.encode(wsframe.OP_TEXT, b"x" * 2000, KEY))
    with pytest.raises(ConnectionClosed):
        ws.receive(5)
    opcode, payload = next(_frames(peer))
    assert opcode == wsframe.OP_CLOSE and payload[:2] == wsframe.CLOSE_TOO_BIG.to_bytes(2, "big")
    assert ws.close_reason == wsframe.CLOSE_TOO_BIG


def test_a_compressed_frame_ends_the_stream_as_a_protocol_error(pair) -> None:
    ws, peer = pair
    peer.sendall(bytes((0xC1, 0x80 | 2)) + KEY + wsframe.mask(b"{}", KEY))  # RSV1: deflate never agreed
    with pytest.raises(ConnectionClosed):
        ws.receive(5)
    opcode, payload = next(_frames(peer))
    assert opcode == wsframe.OP_CLOSE and payload[:2] == wsframe.CLOSE_PROTOCOL_ERROR.to_bytes(2, "big")


def test_no_reader_thread_a_message_is_read_by_the_receiving_thread() -> None:
    """Each connection used to start a reader thread (a greenlet under gevent) that handed every
    message on through a list and an event: two wake-ups per message."""
    server_end, peer = socket.socketpair()
    try:
        before = threading.active_count()
        ws = MediaSocket(_environ(server_end))
        assert threading.active_count() == before
        peer.sendall(wsframe.encode(wsframe.OP_TEXT, b'{"event":"media"}', KEY))
        assert ws.receive(5) == '{"event":"media"}'
    finally:
        peer.close()
        server_end.close()


def test_receive_returns_none_after_its_timeout_and_keeps_a_partial_frame(pair) -> None:
    ws, peer = pair
    assert ws.receive(0.05) is None
    assert ws.receive(0) is None
    frame = wsframe.encode(wsframe.OP_TEXT, b'{"event":"mark"}', KEY)
    peer.sendall(frame[:5])
    assert ws.receive(0.2) is None  # half a frame: not a message yet
    peer.sendall(frame[5:])
    assert ws.receive(0.5) == '{"event":"mark"}'


def test_a_pong_owed_while_a_send_holds_the_socket_goes_out_before_the_next_frame(pair) -> None:
    """The reader never waits for the write lock (a send stuck behind a peer that stopped
    reading must not stop the thread that watches for that stall)."""
    ws, peer = pair
    peer.sendall(wsframe.encode(wsframe.OP_PING, b"p1", KEY))
    with ws._write_lock:  # a send in progress on another thread
        assert ws.receive(0.2) is None  # returns: the pong is owed, not waited for
    ws.send('{"event":"media"}')
    frames = _frames(peer)
    assert next(frames) == (wsframe.OP_PONG, b"p1")
    assert next(frames) == (wsframe.OP_TEXT, b'{"event":"media"}')


def test_close_is_sent_once_and_finish_reads_until_the_peers_close(pair) -> None:
    ws, peer = pair
    ws.close(1000)
    with pytest.raises(ConnectionClosed):
        ws.close(1000)
    frames = _frames(peer)
    assert next(frames) == (wsframe.OP_CLOSE, wsframe.close_payload(1000))
    peer.sendall(wsframe.encode(wsframe.OP_TEXT, b"late", KEY) + wsframe.encode(
        wsframe.OP_CLOSE, wsframe.close_payload(1000), KEY))
    tcp.finish(ws, 5)  # reads the peer's close, then shuts the connection down
    assert ws.close_reason == 1000
    assert peer.recv(10) == b""  # shut down: EOF at the peer, no second close frame


def test_finish_gives_up_on_a_silent_peer_after_its_bound(pair) -> None:
    ws, peer = pair
    ws.close()
    tcp.finish(ws, 0.1)
    frames = _frames(peer)
    assert next(frames)[0] == wsframe.OP_CLOSE
    assert next(frames, None) is None  # then EOF: the connection was shut down


def test_a_frame_is_written_with_one_send_when_the_socket_takes_it(pair) -> None:
    """gevent's ``sendall`` asks the kernel for the send buffer's size on every call (a
    ``getsockopt`` per 20 ms frame): a frame the socket takes whole is one ``send``."""
    ws, peer = pair
    calls: list[str] = []

    class Counting:
        def __init__(self, sock: socket.socket) -> None:
            self._sock = sock

        def send(self, data: bytes) -> int:
            calls.append("send")
            return self._sock.send(data)

        def sendall(self, data: bytes) -> None:
            calls.append("sendall")
            self._sock.sendall(data)

    real, ws.sock = ws.sock, Counting(ws.sock)
    try:
        ws.send('{"event":"media"}')
    finally:
        ws.sock = real
    assert calls == ["send"]
    assert next(_frames(peer)) == (wsframe.OP_TEXT, b'{"event":"media"}')


def test_an_owed_pong_goes_out_at_the_next_receive_when_nothing_is_sent(pair) -> None:
    """The agent may be silent for seconds: the pong must not wait for the next media frame."""
    ws, peer = pair
    peer.sendall(wsframe.encode(wsframe.OP_PING, b"p2", KEY))
    with ws._write_lock:
        assert ws.receive(0.2) is None  # owed
    assert ws.receive(0.05) is None  # nothing sends meanwhile: the reader pays it
    assert next(_frames(peer)) == (wsframe.OP_PONG, b"p2")


def test_a_ping_from_a_peer_that_stopped_reading_never_holds_the_reader(pair) -> None:
    """The reader is the call's run thread, which watches the sends for a stall: with the
    socket's send buffer full it owes the pong instead of waiting to write it."""
    ws, peer = pair
    ws.sock.setblocking(False)
    try:
        while True:
            ws.sock.send(b"\x00" * 65536)  # the peer reads nothing: fill what the kernel holds
    except BlockingIOError:
        pass
    ws.sock.setblocking(True)
    peer.sendall(wsframe.encode(wsframe.OP_PING, b"p3", KEY))
    got: list = []
    reader = threading.Thread(target=lambda: got.append(ws.receive(0.2)), daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive() and got == [None]  # returned after its bound, not stuck in a write
    assert list(ws._owed) == [wsframe.encode(wsframe.OP_PONG, b"p3")]
