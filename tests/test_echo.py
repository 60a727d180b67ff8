"""The echo gate, sans-IO: levels and a clock in, verdicts out (no sockets, no sleeps)."""
from __future__ import annotations

import math
import random
from unittest import mock

import numpy as np
import pytest

from voicebridge.audio import mulaw as audio
from voicebridge.dev import tts
from voicebridge.audio.echo import PRIOR_LOSS_DB, EchoGate, EchoPath, Verdict, attenuation_table, estimate, words

AGENT = tts.load_prompt("long_answer")
CALLER = tts.load_prompt("caller_question")
AGENT_LEVELS = [audio.dbfs(AGENT[i:i + 160]) for i in range(0, len(AGENT) - 159, 160)]
CALLER_LEVELS = [audio.dbfs(CALLER[i:i + 160]) for i in range(0, len(CALLER) - 159, 160)]
NOISE_DBFS = -60.0


def power_sum(*levels: float) -> float:
    total = sum(10 ** (level / 10) for level in levels)
    return 10 * math.log10(total) if total > 0 else audio.MIN_DBFS


def speakerphone_call(echo_db: float, delay_frames: int, caller_at: int | None = None, caller_gain_db: float = 0.0,
                      frames: int = 600, seed: int = 1) -> tuple[EchoGate, dict[Verdict, int], dict[Verdict, int]]:
    """The agent talks; the caller's line carries its echo (and, from ``caller_at``, the caller).

    Returns the gate and the verdicts on audible frames without and with the caller's voice.
    """
    gate, rng = EchoGate(), random.Random(seed)
    echo_only = {v: 0 for v in Verdict}
    with_caller = {v: 0 for v in Verdict}
    for i in range(frames):
        t = 10.0 + i * 0.02
        gate.played(AGENT_LEVELS[i], t)
        echo = AGENT_LEVELS[i - delay_frames] + echo_db if i >= delay_frames else audio.MIN_DBFS
        talking = caller_at is not None and 0 <= i - caller_at < len(CALLER_LEVELS)
        voice = CALLER_LEVELS[i - caller_at] + caller_gain_db if talking else audio.MIN_DBFS
        level = power_sum(echo, NOISE_DBFS + rng.uniform(-1, 1), voice)
        verdict = gate.judge(level, t + rng.uniform(-0.004, 0.004), floor_dbfs=NOISE_DBFS - 1)
        if level > NOISE_DBFS + 10:  # what is down in the noise is nobody's voice either way
            (with_caller if talking and voice > -45 else echo_only)[verdict] += 1
    return gate, echo_only, with_caller


@pytest.mark.parametrize("echo_db", [-30, -20, -15])
@pytest.mark.parametrize("delay_frames", [3, 10])
def test_the_delay_and_the_loss_are_learned_and_the_echo_is_judged_echo(echo_db, delay_frames):
    gate, echo_only, _ = speakerphone_call(echo_db, delay_frames)
    assert gate.delay_ms == delay_frames * 20
    assert gate.loss_db <= -echo_db + 1.0  # never overstated: that would let echo pass as the caller
    assert gate.loss_db >= -echo_db - (3.0 if echo_db == -30 else 1.5)  # (at -30 dB the noise hides some)
    loud_enough = echo_db > -30  # at -30 dB much of the echo is down in the noise
    if loud_enough:
        assert echo_only[Verdict.CALLER] <= 2  # out of about 600 frames


@pytest.mark.parametrize("echo_db", [-20, -15])
def test_a_caller_talking_over_the_echo_is_the_caller(echo_db):
    _, echo_only, with_caller = speakerphone_call(echo_db, 5, caller_at=300)
    spoken = sum(with_caller.values())
    assert with_caller[Verdict.CALLER] >= 0.7 * spoken  # the quiet edges of syllables are unsure:
    assert with_caller[Verdict.ECHO] == 0  # forwarded as they are, never suppressed
    assert echo_only[Verdict.CALLER] <= 2


def test_before_anything_is_learned_the_prior_errs_towards_echo():
    gate = EchoGate()
    gate.played(-15.0, 0.0)
    assert gate.loss_db == PRIOR_LOSS_DB and gate.delay_ms is None
    assert gate.judge(-15.0 - PRIOR_LOSS_DB + 2.0, 0.1) is Verdict.ECHO  # within the margin of 6 dB down
    assert gate.judge(-11.0, 0.12) is Verdict.CALLER  # louder than anything played can come back
    assert gate.judge(-30.0, 0.14) is Verdict.UNSURE  # echo-level right after the caller: not suppressed


def test_nothing_played_means_no_echo_and_near_the_noise_is_never_the_caller():
    gate = EchoGate()
    assert gate.judge(-40.0, 1.0) is Verdict.CALLER  # the agent is silent: whatever it is, it is not echo
    gate.played(-60.0, 1.0)  # padding-level audio cannot make echo worth judging
    assert gate.judge(-40.0, 1.1) is Verdict.CALLER
    gate.played(-20.0, 2.0)
    assert gate.judge(-55.0, 2.1, floor_dbfs=-58.0) is Verdict.QUIET  # 3 dB above the noise: not a voice


def test_audio_cleared_before_it_played_cannot_echo():
    gate = EchoGate()
    for i in range(5):
        gate.played(-12.0, 0.0)  # a burst: it plays over 0.00-0.10
    gate.cleared(0.03)  # the caller had heard two frames
    assert gate.judge(-18.0, 0.05) is Verdict.ECHO  # echo of what did play
    assert gate.judge(-18.0, 0.95) is Verdict.CALLER  # nothing played after 0.04 could echo now


def test_the_echo_path_is_measured_only_where_the_line_follows_the_agent():
    rng = random.Random(3)
    played = {s: AGENT_LEVELS[s] for s in range(200)}
    unrelated = [rng.uniform(-50, -20) for _ in range(100)]
    path = estimate(unrelated, 199, played)
    assert path.lag is None and path.r < 0.3  # evidence of no echo, but a line as loud as the agent:
    assert path.loss_db == 0.0  # it proves no loss at all
    quiet_line = estimate([-60.0] * 100, 199, played)  # a flat line at -60 dBFS follows nothing
    assert quiet_line.r == 0.0 and 33.0 <= quiet_line.loss_db <= 39.0  # the agent's median (-24) over it
    assert estimate(unrelated, 199, {}).r is None  # the agent was silent: no evidence at all
    echoed = [AGENT_LEVELS[s - 7] - 20 for s in range(100, 200)]
    path = estimate(echoed, 199, played)
    assert path.lag == 7 and path.r > 0.95 and 17.0 <= path.loss_db <= 20.0  # never above the true 20


def test_a_gate_that_knows_its_delay_asks_no_loss_of_a_line_that_follows_nothing():
    """The losses a line proves without a lag only matter while no delay is known (the gate keeps
    a delay once found): with ``unseen`` False an estimate computes neither; otherwise the same."""
    rng = random.Random(3)
    played = {s: AGENT_LEVELS[s] for s in range(200)}
    unrelated = [rng.uniform(-50, -20) for _ in range(100)]
    path, skipped = estimate(unrelated, 199, played), estimate(unrelated, 199, played, unseen=False)
    assert path.loss_db is not None and path.proven_db is not None
    assert skipped == EchoPath(None, path.r)
    assert estimate(unrelated[:45], 144, played, unseen=False).proven_db is None
    echoed = [AGENT_LEVELS[s - 7] - 20 for s in range(100, 200)]
    assert estimate(echoed, 199, played, unseen=False) == estimate(echoed, 199, played)
    gate, _, _ = speakerphone_call(-20, 5, frames=500)
    asked: list[bool] = []
    with mock.patch("voicebridge.audio.echo.estimate", lambda *a, unseen=True: asked.append(unseen) or EchoPath(None, None)):
        for i in range(300):
            gate.judge(-60.0, 21.0 + i * 0.02)
    assert gate.delay_ms == 100 and asked and not any(asked)


def test_a_caller_over_the_echo_never_teaches_the_gate_that_echo_is_loud():
    gate, _, with_caller = speakerphone_call(-20, 5, caller_at=150, caller_gain_db=6.0, frames=500)
    assert gate.loss_db >= 17.0  # the stretches with the caller in them did not certify a loss
    assert with_caller[Verdict.ECHO] == 0


def test_suppressed_echo_is_30_db_quieter_byte_for_byte():
    table = attenuation_table(30.0)
    frame = AGENT[8000:8160]
    assert audio.dbfs(frame.translate(table)) == pytest.approx(audio.dbfs(frame) - 30.0, abs=1.0)
    assert audio.SILENCE_FRAME.translate(table) == audio.SILENCE_FRAME


def test_an_echo_masked_by_a_noisy_line_is_bounded_by_that_noise_not_left_at_the_prior():
    """A car or a room at -42 dBFS over an echo 22 dB down: the line follows the agent only
    partly (0.3 <= r < 0.7), so no delay is certified; the echo is still no louder than the
    line's loud end, which bounds the loss (before: the 6 dB prior stayed, and a caller at a
    normal level over the echo was judged echo)."""
    gate, rng = EchoGate(), random.Random(3)
    for i in range(600):
        t = 10.0 + i * 0.02
        gate.played(AGENT_LEVELS[i], t)
        echo = AGENT_LEVELS[i - 4] - 22.0 if i >= 4 else audio.MIN_DBFS
        gate.judge(power_sum(echo, -42.0 + rng.uniform(-5, 5)), t, floor_dbfs=-47.0)
    assert gate.delay_ms is None
    assert PRIOR_LOSS_DB + 4 <= gate.loss_db <= 22.0  # learned, and never overstated


def _unlearned_call(echo_db: float | None, caller_at: int | None, caller_gain_db: float = 0.0, frames: int = 75,
                    question: int = 0) -> tuple[EchoGate, dict[Verdict, int], dict[Verdict, int]]:
    """Like ``speakerphone_call``, but the agent's first words: no greeting taught the gate the line.
    ``question`` frames of the caller's own question come first (the agent silent). Only the
    caller's frames judged while the delay was still unknown are counted. ``echo_db`` None: a
    line with no echo at all."""
    gate, rng = EchoGate(), random.Random(7)
    echo_only = {v: 0 for v in Verdict}
    with_caller = {v: 0 for v in Verdict}
    t = 5.0
    for i in range(question):
        t += 0.02
        gate.judge(CALLER_LEVELS[i % len(CALLER_LEVELS)], t, floor_dbfs=NOISE_DBFS - 1)
    for i in range(frames):
        t += 0.02
        gate.played(AGENT_LEVELS[i], t)
        echo = AGENT_LEVELS[i - 5] + echo_db if i >= 5 and echo_db is not None else audio.MIN_DBFS
        talking = caller_at is not None and 0 <= i - caller_at < len(CALLER_LEVELS)
        voice = CALLER_LEVELS[i - caller_at] + caller_gain_db if talking else audio.MIN_DBFS
        level = power_sum(echo, NOISE_DBFS + rng.uniform(-1, 1), voice)
        unlearned = gate.delay_ms is None
        verdict = gate.judge(level, t, floor_dbfs=NOISE_DBFS - 1)
        if level > NOISE_DBFS + 10 and not (talking and voice > echo + 6):
            echo_only[verdict] += 1
        elif level > NOISE_DBFS + 10 and unlearned:
            with_caller[verdict] += 1
    return gate, echo_only, with_caller


@pytest.mark.parametrize("echo_db", [-20, -15])
def test_before_the_delay_is_found_the_lines_record_of_its_echo_tells_the_caller_from_it(echo_db):
    """No greeting: the caller talks 0.9 s into the agent's first answer, at a level the 6 dB
    prior takes for echo (within 3 dB of the agent's loudest minus 6). The line has carried the
    echo 15-20 dB down since the agent began: a frame that much louder is the caller's (before:
    judged echo, the duck released and the model's VAD was ignored as echo)."""
    _, echo_only, with_caller = _unlearned_call(echo_db, caller_at=45, caller_gain_db=-4.0)
    spoken = sum(with_caller.values())  # the caller's frames judged before the delay was found
    assert spoken >= 10 and with_caller[Verdict.ECHO] <= 0.1 * spoken  # before: 60-80 % echo
    assert with_caller[Verdict.CALLER] >= 0.35 * spoken  # (the quiet edges of syllables are unsure)
    assert echo_only[Verdict.CALLER] <= 2


def test_a_line_silent_under_the_agents_first_words_proves_it_carries_no_echo_before_the_caller_talks():
    """No greeting, no echo at all: the line stays at its noise under the agent's first second.
    The caller then talks near the agent's level. Before, the 6 dB prior stood until two
    estimates in a row saw the line follow nothing, and the caller's own words spoiled the
    second: each word's first frames were judged echo (a duck, a release, the agent heard again
    between them). The line's silence under every delay searched proves a large loss at once."""
    gate, _, with_caller = _unlearned_call(None, caller_at=62, caller_gain_db=-4.0, frames=120)
    spoken = sum(with_caller.values())
    assert spoken >= 10 and with_caller[Verdict.ECHO] <= 2  # before: 51 of 51 echo
    assert gate.loss_db >= 15.0  # (the prior: 6)


@pytest.mark.parametrize("echo_db", [-30, -20, -15, -10])
def test_the_line_never_proves_more_loss_than_its_echo_has(echo_db):
    """The proof takes the least, over every delay searched, of how far under the agent the line
    stayed: at the echo's own delay that is at most the echo's loss."""
    played = {s: AGENT_LEVELS[s] for s in range(200)}
    for delay in (2, 7, 12, 40):
        echoed = [power_sum(AGENT_LEVELS[s - delay] + echo_db, -65.0) for s in range(100, 200)]
        path = estimate(echoed[:45], 144, played)  # under LAG_SLOTS: no lag yet, but a proof
        assert path.lag is None and path.proven_db is not None
        assert path.proven_db <= -echo_db + 1.0


@pytest.mark.parametrize("echo_db", [-20, -15, -10])
def test_the_agents_first_words_echo_is_judged_echo_while_the_record_builds(echo_db):
    _, echo_only, _ = _unlearned_call(echo_db, caller_at=None, frames=300)
    assert echo_only[Verdict.CALLER] <= 2 and echo_only[Verdict.ECHO] >= 100


def test_the_callers_frames_never_enter_the_loss_measured():
    """A word over the echo still correlates with the agent (r >= 0.7 over 2 s); measured with its
    frames, the echo looked 5 dB down instead of 20, and the rest of the call's callers were echo."""
    played = {s: AGENT_LEVELS[s] for s in range(200)}
    heard = [AGENT_LEVELS[s - 7] - 20 for s in range(100, 200)]
    word = range(60, 75)
    for i in word:
        heard[i] = AGENT_LEVELS[100 + i - 7] - 2.0  # the caller's word, near the agent's own level
    assert estimate(heard, 199, played).loss_db < 10.0  # what the unfiltered stretch says
    path = estimate(heard, 199, played, doubted={100 + i for i in word})
    assert path.lag == 7 and 17.0 <= path.loss_db <= 20.5


def test_an_echo_peak_judged_the_callers_now_and_then_is_still_measured_a_word_is_not():
    """Left out, the echo's own loud peaks (a frame a few dB over the loss in use, judged the
    caller's) would make the loss measured only ever go up: more echo judged the caller's, more
    ducks on the answer (seen through the example app: 14 ducks in one answer at -15 dB)."""
    assert words([10, 40, 70]) == set()  # isolated peaks: measured
    assert words([20, 21, 22]) == set(range(18, 25))  # a word (and 40 ms either side): not
    assert words([30, 32, 34]) == set(range(30, 35))  # (a word with its dips)


def test_babble_that_follows_the_agent_for_a_moment_by_chance_is_no_echo_path():
    """Over 0.8 s distant voices correlate with the agent's levels at r = 0.96 at some lag by
    chance: a lag is believed only over a second of the agent's audio (the line's record of its
    echo serves until then)."""
    from voicebridge.dev.sim import room
    x = room.at_level(room.bed("room_babble", seed=3, seconds=6.0), -32.0)
    babble = audio.encode([int(v) for v in np.clip(np.round(x), -32767, 32767)])
    levels = [audio.dbfs(babble[i:i + 160]) for i in range(0, 40 * 160, 160)]
    played = {s: AGENT_LEVELS[s] for s in range(100)}
    assert estimate(levels, 39, played).lag is None  # before: lag 18 (360 ms), r = 0.96


def test_the_callers_question_before_the_answer_does_not_use_up_the_quick_estimates():
    """Estimates come every 400 ms for the first ten that had the agent to go on: a caller who
    asked for 4 s before the agent spoke still has the echo path found within ~1.6 s of it."""
    gate, _, _ = _unlearned_call(-20, caller_at=None, frames=80, question=200)
    assert gate.delay_ms == 100


# ----------------------------------------------------------------- the played levels and the estimate, computed fast
def test_played_levels_read_like_the_slot_map_they_replace():
    """The gate's record of what played (a list from a base slot) answers every slot, window and
    span as the ``{slot: level}`` map did, through sends, clears, gaps and trimming."""
    from voicebridge.audio.echo import PlayedLevels
    rnd = random.Random(3)
    for _ in range(400):
        expected: dict[int, float] = {}
        played = PlayedLevels()
        for _ in range(rnd.randrange(1, 60)):
            if rnd.random() < 0.85:
                slot, level = rnd.randrange(-30, 80), rnd.choice((rnd.uniform(-130.0, 0.0), audio.MIN_DBFS))
                expected[slot] = level
                played.set(slot, level)
            else:
                current = rnd.randrange(-30, 80)
                expected = {s: v for s, v in expected.items() if s <= current}
                played.clear_after(current)
            first = rnd.randrange(-50, 100)
            last = first + rnd.randrange(0, 50)
            want = [expected.get(s, audio.MIN_DBFS) for s in range(first, last + 1)]
            assert played.span(first, last) == want
            assert played.loudest(first, last) == max(want)
            assert [played.loudest(s, s) for s in range(first, last + 1)] == want
    for _ in range(50):  # a call going on: silences, jumps, clears; what the gate reads stays as the map's
        expected, played, slot = {}, PlayedLevels(), 0
        for _ in range(600):
            slot += rnd.choice((1, 1, 1, 1, 2, 30, 500, 1000)) if rnd.random() < 0.9 else -rnd.randrange(0, 5)
            if rnd.random() < 0.03:
                expected = {s: v for s, v in expected.items() if s <= slot}
                played.clear_after(slot)
                continue
            expected[slot] = rnd.uniform(-90.0, -10.0)
            played.set(slot, expected[slot])
            newest = max(expected)
            want = [expected.get(s, audio.MIN_DBFS) for s in range(newest - 300, newest + 6)]
            assert played.span(newest - 300, newest + 5) == want
    long_call = PlayedLevels()
    for slot in range(5000):
        long_call.set(slot, -20.0 - slot % 7)
    assert long_call.span(4999 - 2 * 100, 4999) == [-20.0 - s % 7 for s in range(4799, 5000)]
    assert len(long_call._levels) <= 2 * PlayedLevels.KEEP  # a long call keeps a bounded record


def _estimate_by_loop(levels: list[float], last_slot: int, played: dict[int, float],
                      doubted: "set[int] | frozenset[int]" = frozenset()) -> tuple:
    """The estimate as a Python loop over the lags (how the gate computed it before numpy): the oracle."""
    from voicebridge.audio import echo as e
    first_slot = last_slot - len(levels) + 1
    if not any(played.get(s, -120.0) >= e.PLAYED_FLOOR_DBFS for s in range(first_slot - 42, first_slot)):
        spoken = [s for s in range(first_slot, last_slot + 1) if played.get(s, -120.0) >= e.PLAYED_FLOOR_DBFS]
        levels = levels[max(0, spoken[0] + e.MIN_LAG - first_slot):] if spoken else levels
    n = len(levels)
    if n < e.LAG_SLOTS:
        return None, None, None
    raw = [played.get(s, -120.0) for s in range(last_slot - n + 1 - 42, last_slot + 3)]
    if sum(1 for y in raw if y >= e.PLAYED_FLOOR_DBFS) < n // 2:
        return None, None, None
    xs = [max(e.CLAMP_DBFS, x) for x in levels]
    xc = [x - sum(xs) / n for x in xs]
    var_x = sum(v * v for v in xc)
    spoken_levels = sorted(y for y in raw if y >= e.PLAYED_FLOOR_DBFS)
    unseen = max(0.0, spoken_levels[len(spoken_levels) // 2] - sorted(xs)[int(n * 0.9)])
    if var_x < n * 4.0:
        return None, 0.0, unseen
    best, best_r = None, None
    for lag in range(e.MIN_LAG, e.MAX_LAG + 1):
        ys = [max(e.CLAMP_DBFS, y) for y in raw[42 - lag:42 - lag + n]]
        var_y = sum(y * y for y in ys) - n * (sum(ys) / n) ** 2
        if var_y >= n * 4.0:
            r = sum(a * b for a, b in zip(xc, ys)) / math.sqrt(var_x * var_y)
            if best_r is None or r > best_r:
                best, best_r = lag, r
    if best_r is None or best_r < e.MIN_CORRELATION:
        return None, best_r, None if best_r is None else unseen
    losses = sorted(max(raw[40 - best + i:45 - best + i]) - heard for i, heard in enumerate(levels)
                    if last_slot - n + 1 + i not in doubted and max(raw[40 - best + i:45 - best + i]) >= -50.0)
    return best, best_r, max(0.0, losses[int(len(losses) * 0.1)]) if len(losses) >= 20 else None


@pytest.mark.parametrize("seed", range(12))
def test_the_estimate_finds_what_the_loop_over_every_lag_found(seed):
    """Lag, correlation and loss as the loop over the lags computes them, on echo at any delay and
    level, under noise, with the caller's words doubted, over babble that follows nothing, and
    with the agent starting inside the window."""
    rnd = random.Random(seed)
    delay, echo_db = rnd.randrange(1, 41), rnd.uniform(-35.0, -8.0) if seed % 4 != 1 else -12.0
    start = 0 if seed % 4 == 1 else (0, 60, 130, 175)[seed % 4]  # the agent's first audible slot
    played = {s: AGENT_LEVELS[s + 300] for s in range(start, 240)}
    last = 199
    heard = []
    for s in range(100, 200):
        echo = played.get(s - delay, audio.MIN_DBFS) + echo_db
        noise = rnd.choice((-60.0, -45.0, -35.0)) if seed % 3 == 0 else -62.0
        heard.append(power_sum(echo, noise + rnd.uniform(-2, 2)))
    if seed % 4 == 1:  # a word of the caller's over it, doubted
        for i in range(40, 48):
            heard[i] = CALLER_LEVELS[i] - 6.0
    doubted = {100 + i for i in range(38, 50)} if seed % 4 == 1 else set()
    if seed % 5 == 2:  # a line that follows nothing: babble-like levels
        heard = [rnd.uniform(-50.0, -30.0) for _ in heard]
    path = estimate(heard, last, played, doubted)
    lag, r, loss = _estimate_by_loop(heard, last, played, doubted)
    assert (path.lag, path.loss_db) == (lag, pytest.approx(loss) if loss is not None else None)
    assert (path.r is None) == (r is None) and (r is None or abs(path.r - r) < 1e-9)


def test_the_callers_words_are_the_runs_of_three_slots_within_two_of_each_other():
    """``words`` against its definition, slot by slot, on random sets of the caller's slots."""
    rnd = random.Random(5)
    for _ in range(300):
        callers = [rnd.randrange(0, 120) for _ in range(rnd.randrange(0, 100))]
        judged = set(callers)
        cores = [s for s in judged if sum(1 for d in range(-2, 3) if s + d in judged) >= 3]
        assert words(callers) == {s + d for s in cores for d in range(-2, 3)}


def test_the_gates_estimate_asks_for_the_callers_words_only_when_it_found_a_lag():
    """The words are worked out only for a loss to measure (a pass over up to 100 slots every 2 s)."""
    asked: list[int] = []
    played = {s: AGENT_LEVELS[s] for s in range(200)}
    echoed = [AGENT_LEVELS[s - 7] - 20 for s in range(100, 200)]
    unrelated = [CALLER_LEVELS[i % len(CALLER_LEVELS)] for i in range(100)]
    assert estimate(unrelated, 199, played, lambda: asked.append(1) or set()).lag is None and asked == []
    path = estimate(echoed, 199, played, lambda: asked.append(1) or {150})
    assert path.lag == 7 and asked == [1]


def test_a_frame_judged_before_the_delay_was_known_is_judged_again_against_what_played_at_it():
    """``echo_then``: with the delay learned, a past frame at the echo's level of what played one
    delay before it is echo, a frame well above it is not; with no delay known, nothing is."""
    assert not EchoGate().echo_then(-20.0, 10.0)
    gate, _, _ = speakerphone_call(-15, 10, frames=300)
    assert gate.delay_ms == 200
    loud = max(range(100, 280), key=lambda i: AGENT_LEVELS[i])  # the agent's loudest moment, heard 10 frames on
    at = 10.0 + (loud + 10) * 0.02
    assert gate.echo_then(AGENT_LEVELS[loud] - 15.0, at)
    assert not gate.echo_then(AGENT_LEVELS[loud] - 15.0 + 10.0, at)


def test_the_gate_says_how_far_a_frame_is_over_the_loudest_echo_it_can_hold():
    """``headroom_db`` (read by the detector's reach for a quiet line's soft attack): the frame's
    level over the loudest played within the window less the loss; over the floor when nothing
    played; 0 for a frame down at the noise."""
    gate = EchoGate()
    gate.played(-15.0, 0.0)
    gate.judge(-30.0, 0.1)  # the 6 dB prior: the loudest echo is -21 dBFS
    assert gate.headroom_db == pytest.approx(-9.0)
    gate.judge(-11.0, 0.12)
    assert gate.headroom_db == pytest.approx(10.0)
    assert gate.judge(-45.0, 5.0, floor_dbfs=-80.0) is Verdict.CALLER  # nothing played for seconds
    assert gate.headroom_db == pytest.approx(35.0)
    gate.judge(-78.0, 5.02, floor_dbfs=-80.0)
    assert gate.headroom_db == 0.0


def test_the_rooms_tail_of_audio_that_stopped_is_echo_while_it_decays():
    """Once the delay is known, a frame whose window at the delay holds nothing played may still
    carry the room's reverberation of what played just before (a greeting's last word, what played
    before a duck's clear): judged against that audio, ``TAIL_DB`` quieter per slot past the window,
    not called the caller's because nothing played (three such tails ducked the answer's start on
    the corpus set). A voice over the tail is the caller; once the tail has died away, anything is."""
    gate, _, _ = speakerphone_call(-15, 10, frames=300)
    assert gate.delay_ms == 200
    gate.played(-12.0, 16.0)  # the agent's last frame (slot 800), then nothing
    floor = NOISE_DBFS - 1
    assert gate.judge(-27.0, 16.2, floor_dbfs=floor) is Verdict.ECHO  # its echo, at the delay
    assert gate.judge(-34.0, 16.26, floor_dbfs=floor) is Verdict.ECHO  # 20 ms past the window: its tail
    assert gate.judge(-20.0, 16.28, floor_dbfs=floor) is Verdict.CALLER  # far over the tail: a voice
    assert gate.judge(-40.0, 17.0, floor_dbfs=floor) is Verdict.CALLER  # the tail is over: not echo


@pytest.mark.parametrize("room_tail", [True, False])
def test_the_rooms_tail_of_a_loud_syllable_is_echo_under_the_quiet_audio_that_follows_it(room_tail):
    """Loud audio, then quiet audio at once: 100-140 ms after the loud part stopped (beyond the
    +-40 ms the reference allows) the room still returns it, louder than the echo of the quiet
    audio playing at the delay. That is echo (a duck on every syllable's end, without the tail);
    a caller well over it is the caller."""
    gate, _, _ = speakerphone_call(-15, 3)  # the delay (60 ms) and the loss (about 15 dB) learned
    gate.room_tail = room_tail
    loss, t0 = gate.loss_db, 10.0 + 600 * 0.02
    for i in range(20):
        gate.played(-15.0 if i < 10 else -40.0, t0 + i * 0.02)
    slot = round(t0 / 0.02) + 10 + 3 + 2 + 2  # two slots past the window after the loud part's last
    tail_echo = -15.0 - 4.0 * 4 - loss  # the reference's tail: 4 dB a slot from the window's first slot
    assert tail_echo > -40.0 - loss + 3.0  # louder than the quiet audio's echo plus the margin
    at = slot * 0.02
    assert gate.judge(tail_echo + 1.0, at, floor_dbfs=NOISE_DBFS) is (Verdict.ECHO if room_tail else Verdict.CALLER)
    assert gate.judge(tail_echo + 10.0, at + 0.02, floor_dbfs=NOISE_DBFS) is Verdict.CALLER


def _first_words(heard_of: "Callable[[int, list[float]], float]", frames: int,
                 before: "tuple[float, ...]" = ()) -> tuple[EchoGate, list[Verdict]]:
    """The agent's first answer (no greeting) on a line heard as ``heard_of(i, played)``: a loud
    first word (frames 0-7 at -12 dBFS) falling to nothing by frame 17, a pause, a softer second
    word from frame 30 (-16 dBFS, one syllable at -12 at frame 40). ``before``: the line's levels
    in the frames before the agent began. Returns the gate and its verdict on every frame."""
    played = [-12.0] * 8 + [-18.0 - 3 * k for k in range(10)] + [-70.0] * 12 + [-16.0] * 20 + [-16.0] * 20
    played[40] = -12.0
    gate, t, verdicts = EchoGate(), 5.0, []
    for level in before:
        t += 0.02
        gate.judge(level, t, floor_dbfs=NOISE_DBFS - 1)
    for i in range(frames):
        t += 0.02
        gate.played(played[i], t)
        verdicts.append(gate.judge(heard_of(i, played), t, floor_dbfs=NOISE_DBFS - 1))
    return gate, verdicts


def test_the_lines_record_of_its_echo_begins_at_the_echos_arrival_with_the_first_words_peaks():
    """The first word's echo arrives 100 ms after it plays, 20 dB down; before, the record began
    0.4 s after the agent did and held only that word's falling tail and the second word (each
    far under the loudest the agent played): the loss read 24 dB, and the echo of the second
    word's loud syllable (-32 dBFS) was taken for the caller. Counted from the echo's arrival,
    the first word's peaks are in it: the syllable's echo is echo, and a caller over the echo
    is still the caller."""
    def heard(i: int, played: list[float], voice: float = audio.MIN_DBFS) -> float:
        return power_sum(played[i - 5] - 20 if i >= 5 else audio.MIN_DBFS, NOISE_DBFS, voice)

    line = (NOISE_DBFS,) * 30  # the caller's question's end, then the line's hiss, before the answer
    gate, verdicts = _first_words(heard, 50, before=line)
    assert gate.delay_ms is None  # all of it judged on the record, no echo path found yet
    assert verdicts[45] is Verdict.ECHO  # the second word's loud syllable (before: CALLER)
    assert 17.0 <= gate.loss_db <= 21.0  # (before: 24.4)
    _, verdicts = _first_words(lambda i, p: heard(i, p, -22.0 if i >= 46 else audio.MIN_DBFS), 50, before=line)
    assert verdicts[46:50] == [Verdict.CALLER] * 4  # 14 dB over the second word's echo


def test_with_no_line_heard_before_the_agent_the_record_waits_for_its_echo_to_have_arrived():
    """A greeting sent as the call's audio starts: nothing tells a quiet line from one whose room
    just fell silent, so the record begins 0.4 s after the agent, as it did before arrivals."""
    gate, _ = _first_words(lambda i, p: power_sum(p[i - 5] - 20 if i >= 5 else audio.MIN_DBFS, NOISE_DBFS), 19,
                           before=(NOISE_DBFS,) * 5)
    assert gate.loss_db == PRIOR_LOSS_DB  # nothing recorded yet: the prior stands


def test_a_loud_room_before_the_agent_does_not_pass_for_its_echo_arriving():
    """The line carries a room at -40 dBFS before and under the agent's first words, whose echo
    is 600 ms late (a long network): the room rising and falling is no arrival, so nothing of it
    is recorded before 0.4 s (it would say the echo is 28 dB down, and the echo, once here, would
    pass for the caller)."""
    rng = random.Random(3)
    room = [-40.0 - 5 * rng.random() for _ in range(60)]
    gate, _ = _first_words(lambda i, p: power_sum(room[i], p[i - 30] - 20 if i >= 30 else audio.MIN_DBFS), 19,
                           before=tuple(-40.0 - 5 * rng.random() for _ in range(40)))
    assert gate.loss_db == PRIOR_LOSS_DB  # nothing recorded yet: the prior stands


def test_a_caller_who_begins_with_the_agent_near_its_level_is_no_echo_arriving():
    """No greeting: the caller starts to talk as the agent's first word starts, 8 dB under it.
    Their frames pass the arrival's test (a quiet line rising), and the 6 dB prior judges them
    echo; recorded, they said the echo was 8 dB down and the caller's later words, far over the
    real echo, were judged echo (review rv30: 41 of 41 frames). Before 0.4 s only frames 10 dB
    or more under the agent go into the record."""
    gate, _ = _first_words(lambda i, p: power_sum(p[i] - 8 if 2 <= i else audio.MIN_DBFS, NOISE_DBFS), 19,
                           before=(NOISE_DBFS,) * 30)
    assert gate.loss_db == PRIOR_LOSS_DB  # nothing recorded yet: the prior stands (else 8 dB)
