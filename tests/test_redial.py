"""RedialPolicy and Liveness, sans-IO: the decisions behind replacing a Realtime session.

Driven by hand-moved time and a seeded rng: no sockets, no sleeps.
"""
from __future__ import annotations

import random

import pytest

from voicebridge.config import BridgeConfig
from voicebridge.model.liveness import Health, Liveness
from voicebridge.model.redial import Cause, Decision, RedialPolicy, Verdict


def policy(attempts=4, budget=5, window_s=60.0, backoff_s=0.25, seed=1) -> RedialPolicy:
    return RedialPolicy(attempts, budget, window_s, backoff_s, random.Random(seed))


def storm(p: RedialPolicy, cause: Cause, seconds: float, session_s: float = 0.0) -> list[Verdict]:
    """A server that ends every session ``session_s`` after it began: the verdicts of ``seconds``."""
    now, verdicts = 0.0, []
    while now < seconds:
        verdict = p.ended(cause, now)
        verdicts.append(verdict)
        if verdict.decision is Decision.GIVE_UP:
            break
        now += verdict.delay_s + session_s
    return verdicts


def test_a_server_that_expires_every_session_gets_the_budget_then_the_apology():
    """Issue 22 (1): 1,900-4,200 redials in 10 s before; now at most ``budget``, each waited for."""
    verdicts = storm(policy(budget=5), Cause.EXPIRED, seconds=10.0)
    redials = [v for v in verdicts if v.decision is Decision.REDIAL]
    assert len(redials) == 5 and verdicts[-1].decision is Decision.GIVE_UP
    assert "6 sessions ended within 60 s" in verdicts[-1].why


def test_the_first_redial_waits_and_each_next_one_doubles_within_the_jitter():
    """Back-off from the first redial (a mutation setting it to 0 fails here), +-25 % jitter, 4 s at most."""
    verdicts = storm(policy(budget=10, backoff_s=0.25), Cause.EXPIRED, seconds=60.0)
    delays = [v.delay_s for v in verdicts if v.decision is Decision.REDIAL]
    assert len(delays) == 10
    for n, delay in enumerate(delays):
        base = min(4.0, 0.25 * 2 ** n)
        assert 0.75 * base <= delay <= 1.25 * base, (n, delay)
    assert delays[0] > 0.18


def test_jitter_spreads_calls_cut_by_one_outage():
    firsts = {round(policy(seed=seed).ended(Cause.LOST, 0.0).delay_s, 4) for seed in range(20)}
    assert len(firsts) == 20 and min(firsts) >= 0.1875 and max(firsts) <= 0.3125


@pytest.mark.parametrize("cause", [Cause.LOST, Cause.UNRESPONSIVE, Cause.REFUSED])
def test_failures_beyond_the_attempts_give_up(cause):
    p = policy(attempts=2, budget=10)
    assert [p.ended(cause, t).decision for t in (0.0, 1.0, 2.0)] == [Decision.REDIAL, Decision.REDIAL,
                                                                    Decision.GIVE_UP]


def test_attempts_zero_turns_reconnecting_off_but_an_expiry_is_still_replaced():
    assert policy(attempts=0).ended(Cause.LOST, 0.0) == Verdict(Decision.GIVE_UP, why="reconnecting is off")
    p = policy(attempts=0)
    assert p.ended(Cause.EXPIRED, 0.0).decision is Decision.REDIAL
    assert p.ended(Cause.REFUSED, 0.5).decision is Decision.GIVE_UP  # its redial refused: nothing more


def test_a_refused_redial_counts_like_any_other_end():
    """Expired, then refused for good: the refusals count (before, only lost sockets did)."""
    p = policy(attempts=10, budget=3)
    decisions = [p.ended(cause, t).decision for t, cause in
                 enumerate([Cause.EXPIRED, Cause.REFUSED, Cause.REFUSED, Cause.REFUSED])]
    assert decisions == [Decision.REDIAL] * 3 + [Decision.GIVE_UP]


def test_ends_older_than_the_window_are_forgotten():
    """A long call whose sessions expire every hour is never given up, and waits the first back-off."""
    p = policy(budget=1, window_s=60.0)
    for hour in range(10):
        verdict = p.ended(Cause.EXPIRED, hour * 3600.0)
        assert verdict.decision is Decision.REDIAL and 0.1875 <= verdict.delay_s <= 0.3125


def test_a_planned_rollover_is_dialed_at_once_and_not_counted_but_its_refused_dial_is():
    """The bridge's own choice, paced by session_max_age_s (a benchmark rolls over every 0.5 s)."""
    p = policy(attempts=1, budget=2)
    assert all(p.ended(Cause.ROLLOVER, t) == Verdict(Decision.REDIAL, 0.0) for t in range(10))
    assert p.ended(Cause.REFUSED, 10.0).decision is Decision.REDIAL
    assert p.ended(Cause.REFUSED, 11.0).decision is Decision.GIVE_UP


def test_a_budget_of_zero_replaces_nothing():
    assert policy(budget=0).ended(Cause.EXPIRED, 0.0).decision is Decision.GIVE_UP


# ----------------------------------------------------------------------------- liveness
def test_a_quiet_connection_is_pinged_and_dead_only_if_nothing_answers():
    alive = Liveness(ping_after_s=5.0, pong_timeout_s=5.0, now=0.0)
    assert alive.check(4.9) is Health.OK
    assert alive.check(5.0) is Health.PING
    alive.pinged(5.0)
    assert alive.check(9.9) is Health.OK and alive.check(10.1) is Health.DEAD


def test_a_pong_or_a_server_ping_keeps_a_quiet_connection_alive_for_ever():
    """Issue 22 (11): pings and pongs are heard; a quiet line with pings every 8 s is never dead."""
    alive = Liveness(ping_after_s=5.0, pong_timeout_s=5.0, now=0.0)
    for t in range(1, 600):
        if t % 8 == 0:
            alive.heard(float(t))  # the server's ping
        health = alive.check(float(t))
        assert health is not Health.DEAD, t
        if health is Health.PING:
            alive.pinged(float(t))
            alive.heard(t + 0.05)  # our ping's pong


def test_without_pings_the_watch_is_off():
    assert Liveness(None, 5.0, 0.0).check(1e9) is Health.OK


@pytest.mark.parametrize("bad", [{"reconnect_budget": -1}, {"reconnect_window_s": 0}, {"model_ping_after_s": 0},
                                 {"model_pong_timeout_s": 0}, {"response_created_timeout_s": -1}])
def test_the_bounds_are_checked_when_the_config_is_made(bad):
    with pytest.raises(ValueError):
        BridgeConfig(**bad)
    BridgeConfig(model_ping_after_s=None)  # pings off is allowed
