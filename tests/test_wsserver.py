"""wsserver: handshake checks and ServerWebSocket over a real socket pair (no server, no sleeps)."""
from __future__ import annotations

import os
import socket
import threading
import time
from typing import Iterator

import pytest
import websocket

from voicebridge.model import wsframe
from voicebridge.dev.local import wsserver
from voicebridge.model.wsframe import Control, Message

from peers import one_connection

ENVIRON = {"REQUEST_METHOD": "GET", "HTTP_UPGRADE": "websocket", "HTTP_CONNECTION": "keep-alive, Upgrade",
           "HTTP_SEC_WEBSOCKET_VERSION": "13", "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ=="}


def test_accept_key_matches_rfc6455_example() -> None:
    assert wsserver.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    response = wsserver.handshake_response(dict(ENVIRON)).decode()
    assert response.startswith("HTTP/1.1 101 ") and "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in response


@pytest.mark.parametrize("change", [
    {"REQUEST_METHOD": "POST"}, {"HTTP_UPGRADE": "h2c"}, {"HTTP_CONNECTION": "keep-alive"},
    {"HTTP_SEC_WEBSOCKET_VERSION": "8"}, {"HTTP_SEC_WEBSOCKET_KEY": "short"}, {"HTTP_SEC_WEBSOCKET_KEY": ""},
])
def test_bad_upgrades_are_refused_with_400(change: dict[str, str]) -> None:
    with pytest.raises(wsserver.HandshakeError) as info:
        wsserver.handshake_response({**ENVIRON, **change})
    assert info.value.status == 400


def test_no_raw_socket_is_a_500_naming_the_servers_that_have_one() -> None:
    with pytest.raises(wsserver.HandshakeError) as info:
        wsserver.accept(dict(ENVIRON))
    assert info.value.status == 500 and "werkzeug or gunicorn" in str(info.value)


@pytest.fixture
def pair() -> Iterator[tuple[wsserver.ServerWebSocket, socket.socket]]:
    server, client = socket.socketpair()
    client.settimeout(5)
    try:
        yield wsserver.ServerWebSocket(server, max_message_size=1000), client
    finally:
        server.close()
        client.close()


def client_send(sock: socket.socket, opcode: int, payload: bytes) -> None:
    sock.sendall(wsframe.encode(opcode, payload, os.urandom(4)))


class ServerFrames:
    """Decodes what the server sends (unmasked frames, never fragmented here): a client's view."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[object]:
        self.buf += data
        out: list[object] = []
        while len(self.buf) >= 2:
            opcode, length, pos = self.buf[0] & 0x0F, self.buf[1] & 0x7F, 2
            if length == 126:
                length, pos = int.from_bytes(self.buf[2:4], "big"), 4
            elif length == 127:
                length, pos = int.from_bytes(self.buf[2:10], "big"), 10
            if len(self.buf) < pos + length:
                break
            payload, self.buf = self.buf[pos:pos + length], self.buf[pos + length:]
            if opcode == wsframe.OP_TEXT:
                out.append(Message(payload.decode()))
            elif opcode == wsframe.OP_BINARY:
                out.append(Message(payload))
            else:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else wsframe.CLOSE_NO_STATUS
                out.append(Control(opcode, payload, code, payload[2:].decode()) if opcode == wsframe.OP_CLOSE
                           else Control(opcode, payload))
        return out


def client_read(sock: socket.socket) -> list[object]:
    return ServerFrames().feed(sock.recv(65536))


def test_messages_in_order_and_none_on_timeout(pair: tuple[wsserver.ServerWebSocket, socket.socket]) -> None:
    ws, peer = pair
    assert ws.receive(timeout=0.01) is None
    client_send(peer, wsframe.OP_TEXT, b'{"event":"connected"}')
    client_send(peer, wsframe.OP_BINARY, b"\x00\x01")
    assert ws.receive(timeout=1) == '{"event":"connected"}'
    assert ws.receive(timeout=1) == b"\x00\x01"
    assert ws.receive(timeout=0.01) is None


def test_ping_is_answered_with_pong_and_not_returned(pair: tuple[wsserver.ServerWebSocket, socket.socket]) -> None:
    ws, peer = pair
    client_send(peer, wsframe.OP_PING, b"hb")
    client_send(peer, wsframe.OP_TEXT, b"after")
    assert ws.receive(timeout=1) == "after"
    assert client_read(peer) == [wsframe.Control(wsframe.OP_PONG, b"hb")]


def test_peer_close_is_echoed_once_and_raises(pair: tuple[wsserver.ServerWebSocket, socket.socket]) -> None:
    ws, peer = pair
    client_send(peer, wsframe.OP_CLOSE, wsframe.close_payload(1000, "done"))
    with pytest.raises(wsserver.ConnectionClosed) as info:
        ws.receive(timeout=1)
    assert (info.value.code, info.value.reason) == (1000, "done")
    [echo] = client_read(peer)
    assert echo.opcode == wsframe.OP_CLOSE and echo.code == 1000  # type: ignore[attr-defined]
    ws.close()  # idempotent: no second close frame
    with pytest.raises(wsserver.ConnectionClosed):
        ws.send("late")
    peer.settimeout(0.05)
    with pytest.raises(socket.timeout):
        peer.recv(10)


def test_eof_and_protocol_errors_end_the_connection(pair: tuple[wsserver.ServerWebSocket, socket.socket]) -> None:
    ws, peer = pair
    peer.sendall(wsframe.encode(wsframe.OP_TEXT, b"unmasked"))
    with pytest.raises(wsserver.ConnectionClosed) as info:
        ws.receive(timeout=1)
    assert info.value.code == 1002
    [reply] = client_read(peer)
    assert reply.code == 1002  # type: ignore[attr-defined]
    peer.close()
    with pytest.raises(wsserver.ConnectionClosed):
        ws.receive(timeout=1)


def test_eof_without_close_frame_is_abnormal(pair: tuple[wsserver.ServerWebSocket, socket.socket]) -> None:
    ws, peer = pair
    peer.shutdown(socket.SHUT_WR)
    with pytest.raises(wsserver.ConnectionClosed) as info:
        ws.receive(timeout=1)
    assert info.value.code == 1006 and not ws.connected


def test_sends_from_many_threads_never_interleave(pair: tuple[wsserver.ServerWebSocket, socket.socket]) -> None:
    ws, peer = pair
    payloads = [f"{t}:{i}:" + "x" * 300 for t in range(4) for i in range(50)]

    def sender(t: int) -> None:
        for i in range(50):
            ws.send(f"{t}:{i}:" + "x" * 300)
    threads = [threading.Thread(target=sender, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    reader = ServerFrames()
    got: list[str] = []
    while len(got) < len(payloads):
        got += [event.data for event in reader.feed(peer.recv(65536))]  # type: ignore[attr-defined]
    for thread in threads:
        thread.join(5)
    assert sorted(got) == sorted(payloads)
    for t in range(4):
        assert [g for g in got if g.startswith(f"{t}:")] == [p for p in payloads if p.startswith(f"{t}:")]


def test_real_client_handshake_and_echo_over_tcp() -> None:
    """websocket-client (an independent client) against accept() on a loopback socket."""
    seen: dict[str, object] = {}

    def handler(ws: wsserver.ServerWebSocket) -> None:
        seen["mode"] = ws.mode
        ws.send(f"echo {ws.receive(timeout=5)}")
        with pytest.raises(wsserver.ConnectionClosed) as info:
            ws.receive(timeout=5)
        seen["code"] = info.value.code

    with one_connection(handler) as url:
        client = websocket.create_connection(url, timeout=5)
        client.send("hello")
        assert client.recv() == "echo hello"
        client.close()
    assert seen == {"mode": "gunicorn", "code": 1000}


def test_finish_waits_for_the_peer_close_then_shuts_the_socket(pair: tuple[wsserver.ServerWebSocket, socket.socket]) -> None:
    ws, peer = pair
    ws.close(1000, "bye")
    client_send(peer, wsframe.OP_TEXT, b"late media")  # still in flight when we closed: discarded
    client_send(peer, wsframe.OP_CLOSE, wsframe.close_payload(1000))
    ws.finish(timeout_s=2)
    assert ws.close_code == 1000 and not ws.connected
    [our_close] = client_read(peer)
    assert our_close.code == 1000  # type: ignore[attr-defined]
    assert peer.recv(10) == b""  # the server side is shut down: EOF for the peer, no wait


def test_finish_is_bounded_when_the_peer_never_answers(pair: tuple[wsserver.ServerWebSocket, socket.socket]) -> None:
    ws, peer = pair
    ws.close()
    started = time.monotonic()
    ws.finish(timeout_s=0.2)
    assert time.monotonic() - started < 1.5
    client_read(peer)  # our close frame
    assert peer.recv(10) == b""


@pytest.mark.parametrize("sent, echoed", [(1001, 1001), (4000, 4000), (1006, 1002), (999, 1002), (2000, 1002)])
def test_peer_close_codes_are_echoed_only_when_valid(pair: tuple[wsserver.ServerWebSocket, socket.socket],
                                                     sent: int, echoed: int) -> None:
    ws, peer = pair
    client_send(peer, wsframe.OP_CLOSE, sent.to_bytes(2, "big"))
    with pytest.raises(wsserver.ConnectionClosed):
        ws.receive(timeout=1)
    [echo] = client_read(peer)
    assert echo.code == echoed  # type: ignore[attr-defined]
