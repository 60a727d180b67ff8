import math
import random

import pytest

from voicebridge.audio import mulaw as audio


def reference_decode(u: int) -> int:
    """Independent G.711 decode (ITU-T G.711 table form) to cross-check the table."""
    u = ~u & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    return (0x84 - t) if u & 0x80 else (t - 0x84)


def test_table_matches_reference_and_known_values():
    assert list(audio.ULAW_TABLE) == [reference_decode(i) for i in range(256)]
    assert audio.ULAW_TABLE[0xFF] == 0 and audio.ULAW_TABLE[0x7F] == 0
    assert audio.ULAW_TABLE[0x00] == -32124 and audio.ULAW_TABLE[0x80] == 32124
    assert audio.ULAW_TABLE[0xFE] == 8 and audio.ULAW_TABLE[0x7E] == -8


def test_table_bit_exact_with_audioop_when_available():
    audioop = pytest.importorskip("audioop")
    expected = [int.from_bytes(audioop.ulaw2lin(bytes([i]), 2), "little", signed=True) for i in range(256)]
    assert list(audio.ULAW_TABLE) == expected


def test_encode_roundtrip_is_stable():
    # encode(decode(b)) is the identity on every code except -0 (0x7F), which encodes as 0xFF
    for b in range(256):
        got = audio.encode([audio.ULAW_TABLE[b]])[0]
        assert got == (0xFF if b == 0x7F else b)


def test_rms_and_dbfs():
    assert audio.rms(audio.SILENCE_FRAME) == 0.0
    assert audio.dbfs(audio.SILENCE_FRAME) == audio.MIN_DBFS
    assert audio.dbfs(b"") == audio.MIN_DBFS
    loud = bytes([0x80, 0x00]) * 80  # +/- full scale square wave
    assert audio.rms(loud) == pytest.approx(32124)
    assert audio.dbfs(loud) == pytest.approx(20 * math.log10(32124 / 32768))
    rnd = random.Random(1)
    frame = bytes(rnd.randrange(256) for _ in range(160))
    samples = audio.decode(frame)
    assert audio.rms(frame) == pytest.approx(math.sqrt(sum(s * s for s in samples) / 160))


def test_frame_constants():
    assert audio.FRAME_BYTES == 160 and len(audio.SILENCE_FRAME) == 160
    assert audio.ms_of(160) == 20


def test_rms_is_the_exact_integer_energy_of_any_frame():
    """The level every decision is taken on: bit-identical to the sum of the squared int16 samples
    (the float dot product must not round, whatever the bytes, the length, or the buffer type)."""
    rnd = random.Random(7)
    frames = [bytes([0x80, 0x00]) * 80, bytes([0x00]) * 161, b"\x7f", audio.SILENCE_FRAME[:3]]
    frames += [bytes(rnd.randrange(256) for _ in range(rnd.choice((1, 159, 160, 161, 800)))) for _ in range(300)]
    for frame in frames:
        exact = math.sqrt(sum(s * s for s in audio.decode(frame)) / len(frame))
        assert audio.rms(frame) == exact
        assert audio.rms(bytearray(frame)) == exact and audio.rms(memoryview(frame)) == exact
        level = 20.0 * math.log10(exact / audio.FULL_SCALE) if exact else audio.MIN_DBFS
        assert audio.dbfs(frame) == max(audio.MIN_DBFS, level)


def test_dbfs_summed_digit_by_digit_is_exact_up_to_the_longest_frame_it_sums():
    """``dbfs`` sums a frame's squares as four base-256 digits through adler32, whose byte sum
    wraps at 65521: exact only while every digit's sum stays under it. Each byte value alone and
    the loudest codes (every digit at its largest) at ``SUMMED_BYTES`` and just past it; other
    buffer types take the numpy sum, to the same float."""
    def exact(frame: bytes) -> float:
        rms = math.sqrt(sum(s * s for s in audio.decode(frame)) / len(frame))
        return max(audio.MIN_DBFS, 20.0 * math.log10(rms / audio.FULL_SCALE)) if rms else audio.MIN_DBFS

    frames = [bytes([b]) * n for b in range(256) for n in (1, 160)]
    digits_full = [max(range(256), key=lambda b, s=s: (audio._ULAW_SQUARES[b] >> s) & 0xFF) for s in (0, 8, 16, 24)]
    for n in (audio.SUMMED_BYTES - 1, audio.SUMMED_BYTES, audio.SUMMED_BYTES + 1, 1000):
        frames += [bytes([0x80]) * n, bytes([0x00]) * n] + [bytes([b]) * n for b in digits_full]
    for frame in frames:
        assert audio.dbfs(frame) == exact(frame), (frame[:1], len(frame))
        assert audio.dbfs(bytearray(frame)) == audio.dbfs(memoryview(frame)) == audio.dbfs(frame)


def test_levels_of_a_deltas_frames_are_dbfs_of_each_to_the_last_bit():
    rng = random.Random(7)
    frames = [bytes(rng.randrange(256) for _ in range(160)) for _ in range(6)]
    frames += [audio.SILENCE_FRAME, bytes([0x7F]) * 160, bytes([0x00]) * 160, bytes([0x80]) * 160,
               bytes(rng.choice((0xFF, 0xFE, 0x7E)) for _ in range(160))]  # silence both signs, full scale, near-silence
    assert audio.levels(frames) == [audio.dbfs(f) for f in frames]
    assert audio.levels(frames[:1]) == [audio.dbfs(frames[0])] and audio.levels([]) == []
    odd = [frames[0], frames[1][:80]]  # not all one size: each on its own
    assert audio.levels(odd) == [audio.dbfs(f) for f in odd]
