"""WebSocket framing (RFC 6455), sans-IO: bytes in, messages and control events out.

Its users, all ours: the bridge's Realtime client (``model.client``) builds each outgoing frame
here (one header pack and one masking XOR), sends it on websocket-client's socket and reads the
server's frames with ``FrameReader(from_server=True)``; the media routes
(``serving.mediasocket``) and the offline stack's local Realtime server (``dev.local.wsserver``)
read their clients with ``FrameReader``, with no reader thread per connection. No extensions are
negotiated, so RSV bits are errors.

``FrameReader`` checks what a server must check: client frames masked, control frames short
and unfragmented, continuation order, UTF-8 text, a message size cap. A violation raises
``FrameError`` with the close code to send. Reading a server (``from_server``), it is lenient
where a slip costs nothing, as websocket-client was: a masked frame is unmasked, and text that is
not UTF-8 arrives with U+FFFD in place of the bad bytes (the event codec then judges it).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
DATA_OPCODES = (OP_TEXT, OP_BINARY)
CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009

_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")


class FrameError(Exception):
    """The peer broke the protocol; ``code`` is the close code to answer with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class ConnectionClosed(Exception):
    """The WebSocket is closed (by the peer, by us, or the TCP connection broke)."""

    def __init__(self, reason: str = "", code: int = CLOSE_ABNORMAL) -> None:
        super().__init__(f"{code} {reason}".strip() if code != CLOSE_ABNORMAL else reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Message:
    """A complete data message: ``str`` for text, ``bytes`` for binary."""
    data: "str | bytes"


@dataclass(frozen=True)
class Control:
    """A ping, pong or close frame (``code``/``reason`` only for close)."""
    opcode: int
    payload: bytes = b""
    code: int = CLOSE_NO_STATUS
    reason: str = ""


def mask(data: bytes, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``key`` repeated (masking and unmasking are the same)."""
    n = len(data)
    if not n:
        return b""
    stream = key * (n // 4) + key[: n % 4]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def encode(opcode: int, payload: bytes, key: "bytes | None" = None) -> bytes:
    """One final frame. Servers send unmasked (``key=None``); clients pass a fresh 4-byte key."""
    n = len(payload)
    bit = 0x80 if key is not None else 0
    if n < 126:
        head = bytes((0x80 | opcode, bit | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, bit | 126)) + _U16.pack(n)
    else:
        head = bytes((0x80 | opcode, bit | 127)) + _U64.pack(n)
    if key is None:
        return head + payload
    return head + key + mask(payload, key)


def close_payload(code: int, reason: str = "") -> bytes:
    """Close frame body: the code, then at most 123 bytes of UTF-8 reason (control frame limit)."""
    raw = reason.encode("utf-8")[:123]
    return _U16.pack(code) + raw.decode("utf-8", "ignore").encode("utf-8")


class FrameReader:
    """Incremental frame decoder: ``feed`` bytes, then take events with ``next_event``."""

    def __init__(self, max_message_size: int = 64 * 1024, *, from_server: bool = False) -> None:
        self.max_message_size = max_message_size
        self._from_server = from_server
        self._buf = bytearray()
        self._parts: list[bytes] = []
        self._size = 0
        self._opcode: "int | None" = None  # opcode of a fragmented message in progress

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_event(self) -> "Message | Control | None":
        """The next complete message or control frame, or None until more bytes arrive."""
        while True:
            frame = self._next_frame()
            if frame is None:
                return None
            event = self._assemble(*frame)
            if event is not None:
                return event

    def _next_frame(self) -> "tuple[bool, int, bytes] | None":
        buf = self._buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        if b0 & 0x70:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bits set (no extension negotiated)")
        masked, length, pos = bool(b1 & 0x80), b1 & 0x7F, 2
        if not masked and not self._from_server:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "client frame not masked")
        if length == 126:
            if len(buf) < 4:
                return None
            length, pos = _U16.unpack_from(buf, 2)[0], 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, pos = _U64.unpack_from(buf, 2)[0], 10
        if length > self.max_message_size:
            raise FrameError(CLOSE_TOO_BIG, f"frame of {length} bytes over the {self.max_message_size} cap")
        end = pos + 4 * masked + length
        if len(buf) < end:
            return None
        payload = mask(bytes(buf[pos + 4:end]), bytes(buf[pos:pos + 4])) if masked else bytes(buf[pos:end])
        del buf[:end]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def _assemble(self, fin: bool, opcode: int, payload: bytes) -> "Message | Control | None":
        if opcode in CONTROL_OPCODES:
            return _control(fin, opcode, payload, self._from_server)
        if opcode == OP_CONT:
            if self._opcode is None:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "continuation without a message")
        elif opcode in DATA_OPCODES:
            if self._opcode is not None:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
            if fin:  # the common case: one frame, one message
                return _message(opcode, payload, self._from_server)
            self._opcode = opcode
        else:
            raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
        self._size += len(payload)
        if self._size > self.max_message_size:
            raise FrameError(CLOSE_TOO_BIG, f"message over the {self.max_message_size} byte cap")
        self._parts.append(payload)
        if not fin:
            return None
        whole, kind = b"".join(self._parts), self._opcode
        self._parts, self._size, self._opcode = [], 0, None
        return _message(kind, whole, self._from_server)


def _message(opcode: int, payload: bytes, lenient: bool = False) -> Message:
    if opcode == OP_BINARY:
        return Message(payload)
    if lenient:
        return Message(payload.decode("utf-8", errors="replace"))
    try:
        return Message(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise FrameError(CLOSE_INVALID_DATA, "text message is not UTF-8") from None


def _control(fin: bool, opcode: int, payload: bytes, lenient: bool = False) -> Control:
    if not fin or len(payload) > 125:
        raise FrameError(CLOSE_PROTOCOL_ERROR, "fragmented or oversized control frame")
    if opcode != OP_CLOSE:
        return Control(opcode, payload)
    if not payload:
        return Control(opcode, payload)
    if len(payload) == 1:
        raise FrameError(CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte body")
    code = _U16.unpack_from(payload)[0]
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        if not lenient:  # a server's bad reason only spoils its log line: its close is still a close
            raise FrameError(CLOSE_INVALID_DATA, "close reason is not UTF-8") from None
        reason = payload[2:].decode("utf-8", "replace")
    return Control(opcode, payload, code, reason)
