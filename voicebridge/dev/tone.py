"""A deterministic test signal whose every 20 ms block names itself.

The local Realtime server's ``tone`` mode speaks this instead of a voice, so a caller can
check order, gaps and completeness of what it heard: block ``i`` of a response is a
160-byte mu-law frame carrying a 4-byte magic, the response number and ``i``, followed by
an audible 400 Hz tone. The bridge never transcodes, so the bytes arrive exactly.
"""
from __future__ import annotations

import math

from ..audio.mulaw import FRAME_BYTES, encode

MAGIC = b"\x1d\x9e\x1d\x9e"
_HEADER = len(MAGIC) + 2 + 4
_BODY = encode([int(8000 * math.sin(2 * math.pi * 400 * n / 8000)) for n in range(FRAME_BYTES - _HEADER)])


def tone_block(index: int, response: int = 0) -> bytes:
    """Block ``index`` (0-based) of response number ``response`` (both wrap at their width)."""
    header = MAGIC + (response & 0xFFFF).to_bytes(2, "big") + (index & 0xFFFFFFFF).to_bytes(4, "big")
    return header + _BODY


def tone_audio(nblocks: int, response: int = 0) -> bytes:
    """``nblocks`` consecutive blocks, i.e. ``nblocks * 20`` ms of tone."""
    return b"".join(tone_block(i, response) for i in range(nblocks))


def identify_block(frame: bytes) -> "tuple[int, int] | None":
    """Return ``(response, index)`` if ``frame`` is a whole tone block, else None."""
    if len(frame) != FRAME_BYTES or frame[: len(MAGIC)] != MAGIC:
        return None
    response = int.from_bytes(frame[4:6], "big")
    index = int.from_bytes(frame[6:10], "big")
    return response, index
