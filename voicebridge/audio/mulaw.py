"""G.711 mu-law helpers: decode table, frame level, silence.

Both Twilio (``audio/x-mulaw``) and the OpenAI GA session (``audio/pcmu``) carry the
same raw 8 kHz mu-law bytes, so the bridge never transcodes. It only needs to *measure*
inbound frames (for barge-in) and to *pad* outbound tails with silence. The decode table
is bit-exact with ``audioop.ulaw2lin(b, 2)`` so levels match the classic tools, without
depending on ``audioop`` (removed in Python 3.13).
"""
from __future__ import annotations

import functools
import math

SAMPLE_RATE = 8000
BYTES_PER_MS = 8
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * FRAME_MS // 1000  # 160
SILENCE_BYTE = 0xFF
SILENCE_FRAME = bytes([SILENCE_BYTE]) * FRAME_BYTES
FULL_SCALE = 32768.0
MIN_DBFS = -120.0


def _ulaw_to_int16(u: int) -> int:
    u = ~u & 0xFF
    sign, exp, mant = u & 0x80, (u >> 4) & 0x07, u & 0x0F
    s = (((mant << 3) + 0x84) << exp) - 0x84
    return -s if sign else s


ULAW_TABLE: tuple[int, ...] = tuple(_ulaw_to_int16(i) for i in range(256))
# Squares precomputed: RMS of a frame is then one table lookup and one add per byte.
_ULAW_SQUARES: tuple[int, ...] = tuple(v * v for v in ULAW_TABLE)


def decode(data: bytes) -> list[int]:
    """Decode mu-law bytes to int16 samples (bit-exact with audioop.ulaw2lin)."""
    return [ULAW_TABLE[b] for b in data]


def _lin_to_ulaw(sample: int) -> int:
    """Encode one int16 sample like audioop.lin2ulaw (14-bit G.711 reference encoder)."""
    pcm = sample >> 2  # arithmetic shift to 14 bits, as the reference does
    if pcm < 0:
        pcm, mask = -pcm, 0x7F
    else:
        mask = 0xFF
    pcm = min(pcm, 8159) + 0x21
    seg = 0
    for seg_end in (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF):
        if pcm <= seg_end:
            break
        seg += 1
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm >> (seg + 1)) & 0x0F)) ^ mask


def encode(samples: "list[int] | tuple[int, ...]") -> bytes:
    """Encode int16 samples to mu-law (used by the simulators, not on the bridge's path)."""
    return bytes(_lin_to_ulaw(int(s)) for s in samples)


@functools.cache
def _pair_squares() -> tuple[int, ...]:
    """The summed squares of both samples of every pair of mu-law bytes (either byte order):
    a frame's energy is then 80 lookups, not 160. 64 Ki entries, built once, on first use."""
    squares = _ULAW_SQUARES
    return tuple(squares[i & 0xFF] + squares[i >> 8] for i in range(65536))


def rms(frame: bytes) -> float:
    """Root mean square of a mu-law frame on the int16 scale (0.0 for an empty frame)."""
    if not frame:
        return 0.0
    # map() over the bytes with the table's __getitem__ runs the loop in C, not in a generator:
    # this runs for every frame both ways (100 per second per call), so by pairs when it can.
    if len(frame) % 2 == 0:
        energy = sum(map(_pair_squares().__getitem__, memoryview(frame).cast("H")))
    else:
        energy = sum(map(_ULAW_SQUARES.__getitem__, frame))
    return math.sqrt(energy / len(frame))


def dbfs(frame: bytes) -> float:
    """Level of a mu-law frame in dBFS; digital silence is clamped to MIN_DBFS."""
    level = rms(frame)
    if level <= 0.0:
        return MIN_DBFS
    return max(MIN_DBFS, 20.0 * math.log10(level / FULL_SCALE))


def ms_of(nbytes: int) -> int:
    """Duration in whole milliseconds of ``nbytes`` of 8 kHz mu-law."""
    return nbytes // BYTES_PER_MS
