import math
import random

from voicebridge.audio.framing import Framer


def test_random_chunks_give_exact_frames_in_order():
    rnd = random.Random(7)
    for _ in range(50):
        framer = Framer()
        chunks = [bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 700))) for _ in range(rnd.randrange(1, 30))]
        frames = []
        for chunk in chunks:
            frames += framer.push(chunk)
        frames += framer.end()
        total = sum(len(c) for c in chunks)
        assert len(frames) == math.ceil(total / 160)
        assert all(len(f) == 160 for f in frames)
        joined = b"".join(frames)
        assert joined[:total] == b"".join(chunks)
        assert joined[total:] == b"\xff" * (len(joined) - total)
        assert framer.pending == 0


def test_remainder_carried_between_chunks():
    framer = Framer()
    assert framer.push(b"a" * 100) == []
    assert framer.pending == 100
    frames = framer.push(b"b" * 100)
    assert frames == [b"a" * 100 + b"b" * 60]
    assert framer.pending == 40


def test_tail_padded_at_end_never_held():
    framer = Framer()
    framer.push(b"x" * 170)
    tail = framer.end()
    assert tail == [b"x" * 10 + b"\xff" * 150]
    assert framer.padded_bytes == 150
    assert framer.end() == []  # nothing left for the next response


def test_drop_discards_and_counts_remainder():
    framer = Framer()
    framer.push(b"x" * 250)
    assert framer.drop() == 90
    assert framer.dropped_bytes == 90
    assert framer.end() == []
    assert framer.push(b"y" * 160) == [b"y" * 160]  # next response starts aligned
