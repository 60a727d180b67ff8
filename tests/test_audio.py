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


def test_levels_of_a_deltas_frames_are_dbfs_of_each_to_the_last_bit():
    rng = random.Random(7)
    frames = [bytes(rng.randrange(256) for _ in range(160)) for _ in range(6)]
    frames += [audio.SILENCE_FRAME, bytes([0x7F]) * 160, bytes([0x00]) * 160, bytes([0x80]) * 160,
               bytes(rng.choice((0xFF, 0xFE, 0x7E)) for _ in range(160))]  # silence both signs, full scale, near-silence
    assert audio.levels(frames) == [audio.dbfs(f) for f in frames]
    assert audio.levels(frames[:1]) == [audio.dbfs(frames[0])] and audio.levels([]) == []
    odd = [frames[0], frames[1][:80]]  # not all one size: each on its own
    assert audio.levels(odd) == [audio.dbfs(f) for f in odd]
