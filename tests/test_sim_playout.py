"""Sans-IO tests of the Twilio-like playout buffer (injected times, no sleeping)."""
from hypothesis import given, settings, strategies as st

from voicebridge.dev.sim.playout import PlayoutBuffer

SIL = 0xFF


def test_plays_in_real_time_then_silence():
    p = PlayoutBuffer(start=10.0)
    p.media(b"\x01" * 800, 10.0)  # 100 ms of audio
    first = p.advance(10.05)
    assert len(first.audio) == 400 and first.agent_bytes == 400
    assert set(first.audio) == {1}
    second = p.advance(10.2)
    assert len(second.audio) == 1200 and second.agent_bytes == 400
    assert second.audio[:400] == b"\x01" * 400 and set(second.audio[400:]) == {SIL}
    assert p.buffered_bytes == 0


def test_any_payload_size_is_played_in_order():
    p = PlayoutBuffer(start=0.0)
    for i, size in enumerate([1, 159, 161, 3200, 7]):
        p.media(bytes([i]) * size, 0.0)
    heard = p.advance(1.0)
    expected = b"".join(bytes([i]) * size for i, size in enumerate([1, 159, 161, 3200, 7]))
    assert heard.audio[:len(expected)] == expected and heard.agent_bytes == len(expected)


def test_audio_arriving_mid_interval_starts_at_arrival():
    p = PlayoutBuffer(start=0.0)
    p.advance(0.0)
    p.media(b"\x05" * 160, 0.01)
    heard = p.advance(0.02)
    assert heard.audio == bytes([SIL]) * 80 + b"\x05" * 80
    assert p.segments == [(0.01, 0.02)]


def test_mark_echoed_only_after_its_audio_played():
    p = PlayoutBuffer(start=0.0)
    p.media(b"\x01" * 1600, 0.0)  # 200 ms
    assert p.mark("a", 0.0) == []
    p.media(b"\x02" * 800, 0.0)
    assert p.mark("b", 0.0) == []
    assert p.advance(0.1).marks == []
    assert p.advance(0.2).marks == ["a"]
    assert p.advance(0.29).marks == []
    assert p.advance(0.3).marks == ["b"]
    assert p.pending_marks == []


def test_mark_with_nothing_buffered_is_echoed_immediately():
    p = PlayoutBuffer(start=0.0)
    assert p.mark("first", 0.0) == ["first"]
    p.media(b"\x01" * 160, 0.0)
    p.advance(0.03)
    assert p.mark("after-play", 0.03) == ["after-play"]


def test_clear_empties_buffer_and_echoes_all_pending_marks():
    p = PlayoutBuffer(start=0.0)
    p.media(b"\x01" * 8000, 0.0)
    p.mark("a", 0.0)
    p.media(b"\x02" * 8000, 0.0)
    p.mark("b", 0.0)
    assert p.advance(0.5).marks == []
    assert p.clear(0.5) == ["a", "b"]
    assert p.buffered_bytes == 0 and p.pending_marks == []
    assert p.cleared_bytes == 12000
    after = p.advance(1.0)
    assert after.agent_bytes == 0 and set(after.audio) == {SIL}
    assert p.heard_between(0.0, 1.0) == 0.5


def test_no_drift_over_many_uneven_advances():
    p = PlayoutBuffer(start=0.0)
    total = 0
    t = 0.0
    for _ in range(10000):
        t += 0.0013
        total += len(p.advance(t).audio)
    assert total == int(t * 8000 + 1e-6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["media", "mark", "clear", "advance"]),
                          st.integers(0, 2000), st.floats(0, 0.2)), max_size=40))
def test_conservation_and_mark_order(ops):
    p = PlayoutBuffer(start=0.0)
    now, enqueued, heard_agent, heard_total = 0.0, 0, 0, 0
    marks_sent, marks_echoed = [], []
    for i, (op, size, dt) in enumerate(ops):
        now += dt
        if op == "media":
            p.media(b"\x01" * size, now)
            enqueued += size
        elif op == "mark":
            marks_sent.append(f"m{i}")
            marks_echoed += p.mark(f"m{i}", now)
        elif op == "clear":
            marks_echoed += p.clear(now)
        else:
            played = p.advance(now)
            heard_agent += played.agent_bytes
            heard_total += len(played.audio)
            marks_echoed += played.marks
    played = p.advance(now)
    heard_agent += played.agent_bytes
    heard_total += len(played.audio)
    marks_echoed += played.marks
    assert heard_total == int(now * 8000 + 1e-6)
    assert heard_agent + p.buffered_bytes + p.cleared_bytes == enqueued
    assert marks_echoed == marks_sent[:len(marks_echoed)]
    assert marks_echoed + p.pending_marks == marks_sent
