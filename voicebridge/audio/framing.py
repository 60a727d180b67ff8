"""Re-frame model audio into exact 160-byte (20 ms) mu-law frames.

The model sends audio in chunks of any size. Twilio would accept any size too, but exact
20 ms frames let the TX loop pace one frame per tick, let marks land on frame boundaries,
and make a flush drop whole, countable units. The framer is sans-IO: bytes in, frames out.
"""
from __future__ import annotations

from .mulaw import FRAME_BYTES, SILENCE_BYTE


class Framer:
    """Accumulates bytes and yields whole frames, carrying the remainder between chunks."""

    def __init__(self, frame_bytes: int = FRAME_BYTES, pad_byte: int = SILENCE_BYTE) -> None:
        self.frame_bytes = frame_bytes
        self._pad = bytes([pad_byte])
        self._buf = bytearray()
        self.padded_bytes = 0
        self.dropped_bytes = 0

    @property
    def pending(self) -> int:
        """Bytes held back waiting for a full frame."""
        return len(self._buf)

    def push(self, chunk: bytes) -> list[bytes]:
        """Add a chunk; return every whole frame now available, in order."""
        buf = self._buf
        buf += chunk
        n = len(buf) - len(buf) % self.frame_bytes
        if n == 0:
            return []
        fb = self.frame_bytes
        frames = [bytes(buf[i:i + fb]) for i in range(0, n, fb)]
        del buf[:n]
        return frames

    def end(self) -> list[bytes]:
        """Response finished: pad the tail with silence to a whole frame so nothing is lost."""
        if not self._buf:
            return []
        pad = self.frame_bytes - len(self._buf)
        frame = bytes(self._buf) + self._pad * pad
        self.padded_bytes += pad
        self._buf.clear()
        return [frame]

    def drop(self) -> int:
        """Interrupted: discard the remainder (it was never going to be heard); return its size."""
        n = len(self._buf)
        self.dropped_bytes += n
        self._buf.clear()
        return n
