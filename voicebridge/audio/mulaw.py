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
import zlib
from typing import Any

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


EXACT_SAMPLES = 1 << 20
"""Up to this many samples a float64 dot product of the decoded samples is the exact integer
energy (each square < 2**30, their sum < 2**53); longer buffers are summed as Python ints."""


@functools.cache
def numeric() -> "tuple[Any, Any]":
    """numpy and the decode table as a float64 array: imported on first use, so the library's
    import stays light (``prepare`` does it in a session's setup, before its threads run: the
    first import takes a while, which must not stall a call's first frames)."""
    import numpy
    return numpy, numpy.array(ULAW_TABLE, dtype=numpy.float64)


def prepare() -> None:
    """Import what the levels and the voice checks compute with now, not on a call's first frame
    (``VoiceBridge`` does it when built, in a worker's start; a session's setup again, for sessions
    served without it)."""
    numeric()
    _row_sums(FRAME_BYTES)


def _energy(frame: bytes) -> float:
    """The sum of the squared int16 samples of a non-empty frame, exactly.

    This runs for every frame both ways (100 per second per call): the decoded samples are taken
    from a table and squared and summed in one BLAS dot product, not a Python loop over the bytes.
    The dot product of integers under ``EXACT_SAMPLES`` samples is exact, so every level is the
    very same float as the integer sum's."""
    if len(frame) > EXACT_SAMPLES:
        return sum(map(_ULAW_SQUARES.__getitem__, frame))  # (an int: exact however long)
    np, table = numeric()
    x = table.take(np.frombuffer(frame, dtype=np.uint8))
    return float(x.dot(x))  # (the array's own dot: np.dot's dispatch costs a fifth of the call)


def rms(frame: bytes) -> float:
    """Root mean square of a mu-law frame on the int16 scale (0.0 for an empty frame)."""
    if not frame:
        return 0.0
    return math.sqrt(_energy(frame) / len(frame))


_sqrt, _log10 = math.sqrt, math.log10


def _dbfs_of(energy: float, n: int) -> float:
    level = math.sqrt(energy / n)
    if level <= 0.0:
        return MIN_DBFS
    return max(MIN_DBFS, 20.0 * math.log10(level / FULL_SCALE))


_DIGITS = tuple(bytes((square >> shift) & 0xFF for square in _ULAW_SQUARES) for shift in (0, 8, 16, 24))
"""The squared samples (< 2**30) as four base-256 digits, each a ``bytes.translate`` table."""
SUMMED_BYTES = 256
"""Up to this many bytes a digit's byte sum (at most 255 each) stays under adler32's modulus (65521)."""
_DIGITS_ONE = 0x01010101  # adler32's sum starts at 1: once per digit, at its place
_adler32 = zlib.adler32


def dbfs(frame: bytes) -> float:
    """Level of a mu-law frame in dBFS; digital silence is clamped to MIN_DBFS.

    Every caller frame's, and every frame sent: a frame's exact energy (the sum of its squared
    int16 samples, an integer) is summed digit by digit in C without numpy, each digit's bytes
    by ``bytes.translate`` and their sum by adler32, whose low half is 1 + the byte sum modulo
    65521, exact for frames up to ``SUMMED_BYTES``. The very same float as the dot product's
    (an exact integer under 2**53 either way), at about half its cost and none of numpy's
    dispatch on the call's busiest path."""
    n = len(frame)
    if not n or frame == SILENCE_FRAME:  # digital silence (a muted phone, a line before its audio,
        return MIN_DBFS  # the simulated line under the echo): no sum to make, one compare (memcmp)
    if n > SUMMED_BYTES or type(frame) is not bytes:
        return _dbfs_of(_energy(frame), n)
    s0, s1, s2, s3 = map(_adler32, map(frame.translate, _DIGITS))  # (the four digits' sums, looped in C)
    energy = (s0 & 0xFFFF) + ((s1 & 0xFFFF) << 8) + ((s2 & 0xFFFF) << 16) + ((s3 & 0xFFFF) << 24) - _DIGITS_ONE
    level = _sqrt(float(energy) / n)  # (``_dbfs_of`` written out: one Python call fewer per frame)
    if level <= 0.0:
        return MIN_DBFS
    level = 20.0 * _log10(level / FULL_SCALE)
    return level if level > MIN_DBFS else MIN_DBFS  # (``max`` written out: a builtin's call fewer)


def levels(frames: "list[bytes]") -> list[float]:
    """``dbfs`` of each of ``frames``, the very same floats, at a fraction of the cost for the
    frames of one model delta together (the TX loop tells the echo gate the level of every frame
    it sends: computed once per delta on the audio-out thread, it is off the send's path, and one
    numpy pass over an (n, 160) view replaces n of them). The energies are exact integers (see
    ``_energy``) whatever order they are summed in, and the last step is ``dbfs``'s own."""
    if not frames:
        return []
    size = len(frames[0])
    if not size or size * len(frames) > EXACT_SAMPLES or set(map(len, frames)) != {size}:  # (all one size: in C)
        return [dbfs(f) for f in frames]
    np, squares, ones = _row_sums(size)
    energies = squares.take(np.frombuffer(b"".join(frames), dtype=np.uint8)).reshape(len(frames), size).dot(ones)
    return [_dbfs_of(e, size) for e in energies.tolist()]


@functools.cache
def _row_sums(size: int) -> "tuple[Any, Any, Any]":
    """numpy, the squared decode table (float64) and ones to sum rows of ``size`` with (one BLAS
    matrix-vector product: the cheapest row sum numpy has for a few short rows)."""
    np, _ = numeric()
    return np, np.array(_ULAW_SQUARES, dtype=np.float64), np.ones(size)


def ms_of(nbytes: int) -> int:
    """Duration in whole milliseconds of ``nbytes`` of 8 kHz mu-law."""
    return nbytes // BYTES_PER_MS
