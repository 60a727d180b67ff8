"""wsframe: the sans-IO WebSocket codec, checked against wsproto (an independent implementation)."""
from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from voicebridge.model import wsframe
from voicebridge.model.wsframe import Control, FrameError, FrameReader, Message

KEY = b"\x11\x22\x33\x44"


def client_frames(*events: object) -> bytes:
    """What a real client (wsproto, masked) puts on the wire for ``events``."""
    conn = Connection(ConnectionType.CLIENT)
    return b"".join(conn.send(event) for event in events)  # type: ignore[arg-type]


def read_all(data: bytes, step: int | None = None, **kw: object) -> list[object]:
    reader = FrameReader(**kw)  # type: ignore[arg-type]
    out: list[object] = []
    step = step or len(data) or 1
    for i in range(0, len(data), step):
        reader.feed(data[i:i + step])
        while (event := reader.next_event()) is not None:
            out.append(event)
    return out


def test_mask_is_its_own_inverse_and_matches_bytewise_xor() -> None:
    data = os.urandom(301)
    masked = wsframe.mask(data, KEY)
    assert masked == bytes(b ^ KEY[i % 4] for i, b in enumerate(data))
    assert wsframe.mask(masked, KEY) == data
    assert wsframe.mask(b"", KEY) == b""


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
def test_reads_wsproto_client_frames_of_every_length_class(size: int) -> None:
    text = "x" * size
    wire = client_frames(TextMessage(text), BytesMessage(b"\x00" * size))
    assert read_all(wire, max_message_size=1 << 20) == [Message(text), Message(b"\x00" * size)]


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_server_frames_decode_in_wsproto(size: int) -> None:
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(wsframe.encode(wsframe.OP_TEXT, ("e" * size).encode()))
    client.receive_data(wsframe.encode(wsframe.OP_BINARY, b"\x01" * size))
    events = list(client.events())
    assert [type(e) for e in events] == [TextMessage, BytesMessage]
    assert events[1].data == b"\x01" * size


def test_masked_encode_is_read_back_by_our_reader() -> None:
    wire = wsframe.encode(wsframe.OP_TEXT, b'{"event":"media"}', KEY)
    assert wire[1] & 0x80 and wire[2:6] == KEY
    assert read_all(wire) == [Message('{"event":"media"}')]


def test_fragments_with_an_interleaved_ping_byte_by_byte() -> None:
    wire = client_frames(TextMessage("hel", message_finished=False), Ping(b"p"),
                         TextMessage("lo"))
    assert read_all(wire, step=1) == [Control(wsframe.OP_PING, b"p"), Message("hello")]


def test_close_frame_code_and_reason() -> None:
    wire = client_frames(CloseConnection(1001, "bye"))
    [event] = read_all(wire)
    assert isinstance(event, Control) and (event.opcode, event.code, event.reason) == (wsframe.OP_CLOSE, 1001, "bye")
    empty = wsframe.encode(wsframe.OP_CLOSE, b"", KEY)
    assert read_all(empty)[0].code == wsframe.CLOSE_NO_STATUS  # type: ignore[attr-defined]
    assert wsframe.close_payload(1000, "é" * 100)[:2] == b"\x03\xe8"
    assert len(wsframe.close_payload(1000, "é" * 100)) <= 125


@pytest.mark.parametrize("wire, code", [
    (wsframe.encode(wsframe.OP_TEXT, b"hi"), 1002),                                 # client frame unmasked
    (bytes([0xC1, 0x80]) + KEY, 1002),                                              # RSV1 without extension
    (wsframe.encode(0x3, b"", KEY), 1002),                                          # unknown opcode
    (wsframe.encode(wsframe.OP_CONT, b"x", KEY), 1002),                             # continuation first
    (bytes([0x09, 0x80]) + KEY, 1002),                                              # fragmented ping
    (bytes([0x89, 0xFE, 0x00, 0x7E]) + KEY + bytes(126), 1002),                     # 126-byte ping
    (wsframe.encode(wsframe.OP_CLOSE, b"\x03", KEY), 1002),                         # 1-byte close body
    (wsframe.encode(wsframe.OP_TEXT, b"\xff\xfe", KEY), 1007),                      # text not UTF-8
    (wsframe.encode(wsframe.OP_TEXT, b"x" * 2000, KEY), 1009),                      # over the cap
    (bytes([0x01, 0x80]) + KEY + bytes([0x81, 0x80]) + KEY, 1002),                  # new message mid-fragment
])
def test_protocol_violations_raise_with_the_close_code(wire: bytes, code: int) -> None:
    with pytest.raises(FrameError) as info:
        read_all(wire, max_message_size=1000)
    assert info.value.code == code


def test_oversize_is_refused_from_the_header_before_the_payload_arrives() -> None:
    reader = FrameReader(max_message_size=1000)
    reader.feed(bytes([0x82, 0xFF]) + (1 << 40).to_bytes(8, "big"))
    with pytest.raises(FrameError) as info:
        reader.next_event()
    assert info.value.code == 1009


def test_fragmented_message_over_the_cap_is_refused() -> None:
    wire = bytes([0x02, 0x80 | 100]) + KEY + bytes(100) + bytes([0x80, 0x80 | 100]) + KEY + bytes(100)
    with pytest.raises(FrameError) as info:
        read_all(wire, max_message_size=150)
    assert info.value.code == 1009


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=300), max_size=5), st.integers(min_value=1, max_value=64))
def test_any_split_of_any_message_stream_reads_back_whole(texts: list[str], step: int) -> None:
    wire = b"".join(wsframe.encode(wsframe.OP_TEXT, t.encode(), os.urandom(4)) for t in texts)
    assert read_all(wire, step=step) == [Message(t) for t in texts]


def test_a_reader_of_a_server_takes_unmasked_frames_and_is_lenient() -> None:
    """``from_server``: a server's frames are unmasked (a client's reader refuses them); a masked
    one and text that is not UTF-8 are read anyway, as websocket-client read them."""
    wire = (wsframe.encode(wsframe.OP_TEXT, "délta".encode()) + wsframe.encode(wsframe.OP_TEXT, b"m", b"abcd")
            + wsframe.encode(wsframe.OP_TEXT, b"\xff{}") + bytes([0x01, 3]) + b"fra" + bytes([0x80, 4]) + b"gmnt"
            + wsframe.encode(wsframe.OP_PING, b"hb"))
    reader = FrameReader(from_server=True)
    reader.feed(wire)
    events = [reader.next_event() for _ in range(6)]
    assert events == [Message("délta"), Message("m"), Message("\ufffd{}"), Message("fragmnt"),
                      Control(wsframe.OP_PING, b"hb"), None]
    client_side = FrameReader()
    client_side.feed(wsframe.encode(wsframe.OP_TEXT, b"unmasked"))
    with pytest.raises(FrameError):
        client_side.next_event()


def test_a_servers_close_with_a_reason_that_is_not_utf8_is_still_its_close():
    """Reading a server (the Realtime client), a bad close reason spoils only the log line: the close
    and its code arrive (websocket-client took it so); a client's is still a protocol error."""
    body = wsframe.close_payload(wsframe.CLOSE_NORMAL) + b"\xff\xfe"
    lenient = wsframe.FrameReader(from_server=True)
    lenient.feed(wsframe.encode(wsframe.OP_CLOSE, body))
    event = lenient.next_event()
    assert event.code == wsframe.CLOSE_NORMAL and "\ufffd" in event.reason
    strict = wsframe.FrameReader()
    strict.feed(wsframe.encode(wsframe.OP_CLOSE, body, b"abcd"))
    with pytest.raises(wsframe.FrameError):
        strict.next_event()
