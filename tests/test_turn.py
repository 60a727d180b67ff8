"""One agent turn's table (sans-IO) and the owner of the call's turns, on a manual clock."""
from __future__ import annotations

import json
import logging

import pytest

from voicebridge.call.log import CallLog
from voicebridge.call.metrics import CallMetrics
from voicebridge.call.turn import ACTIVE, TRANSITIONS, AgentTurn, Step, TurnEvent, TurnState
from voicebridge.call.turns import Floor, Turns
from voicebridge.testing import ManualClock

S, E = TurnState, TurnEvent
ILLEGAL = [(s, e) for s in TurnState for e in TurnEvent if (s, e) not in TRANSITIONS]


# ----------------------------------------------------------------- the table
@pytest.mark.parametrize("state,event", sorted(TRANSITIONS, key=lambda k: (k[0].value, k[1].value)))
def test_every_legal_transition_moves_to_the_state_the_table_names(state, event):
    turn = AgentTurn("resp_1", state=state)
    assert turn.apply(event, 7.5) is Step.MOVED
    assert turn.state is TRANSITIONS[(state, event)]
    assert turn.at[event] == 7.5


@pytest.mark.parametrize("state,event", ILLEGAL)
def test_every_other_event_is_refused_and_changes_nothing(state, event):
    turn = AgentTurn("resp_1", state=state)
    assert turn.apply(event, 1.0) is Step.ILLEGAL
    assert turn.state is state and turn.at == {}


def test_the_table_refuses_what_a_turn_cannot_do():
    assert (S.REQUESTED, E.AUDIO) in ILLEGAL  # audio before the response exists
    assert (S.HEARD, E.AUDIO) in ILLEGAL and (S.DONE, E.DONE) in ILLEGAL  # a duplicate response.done
    assert (S.INTERRUPTED, E.INTERRUPT) in ILLEGAL  # one procedure per turn
    assert all((s, E.HEARD) in ILLEGAL for s in TurnState if s is not S.SPOKEN)  # heard only once made


def test_the_life_of_an_answer_heard_in_full_with_its_times_from_the_clock():
    clock = ManualClock(100.0)
    turn = AgentTurn(None, "tool_result", S.REQUESTED)
    for event, dt in ((E.CREATED, 0.3), (E.AUDIO, 0.2), (E.AUDIO, 0.02), (E.DONE, 1.0), (E.HEARD, 4.0)):
        clock.advance(dt)
        assert turn.apply(event, clock()) is Step.MOVED
    assert turn.state is S.HEARD and turn.heard and not turn.active and not turn.interrupted
    assert turn.at == {E.CREATED: 100.3, E.AUDIO: 100.5, E.DONE: 101.52, E.HEARD: 105.52}  # first time each


def test_active_means_the_model_is_still_making_it():
    assert ACTIVE == {S.CREATED, S.SPEAKING, S.INTERRUPTED}
    cut = AgentTurn("resp_1", state=S.SPEAKING)
    cut.apply(E.INTERRUPT, 1.0)
    assert cut.state is S.INTERRUPTED and cut.active and cut.interrupted  # response.done still to come
    cut.apply(E.DONE, 2.0)
    assert cut.state is S.DONE and not cut.active and cut.interrupted
    tail = AgentTurn("resp_2", state=S.SPOKEN)
    tail.apply(E.INTERRUPT, 1.0)  # the model was done: only the tail playing is cut
    assert tail.state is S.DONE and tail.interrupted and not tail.active


# ----------------------------------------------------------------- the owner
def turns_with(clock=None, played=(), log=None):
    sent: list[dict] = []
    metrics = CallMetrics()
    turns = Turns(lambda text: sent.append(json.loads(text)) or True, metrics, log, clock or ManualClock(),
                  played_out=lambda item: item in played)
    return turns, sent, metrics


def test_a_requested_turn_becomes_the_created_one():
    clock = ManualClock(5.0)
    turns, sent, _ = turns_with(clock)
    turns.request("greeting", "Hi")
    clock.advance(0.4)
    turn = turns.created("resp_1", "greeting")
    assert turn.state is S.CREATED and turn.greeting and turn.event_id == sent[0]["event_id"]
    assert turn.at == {E.CREATED: 5.4} and turns.current is turn and turns.active and not turns.idle
    own = turns.created("resp_vad")  # the model's own turn: born created
    assert own.kind is None and own.state is S.CREATED and turns.current is own


def test_the_line_is_busy_while_any_turn_is_active_even_a_cut_one():
    turns, sent, _ = turns_with()
    turns.created("resp_1")
    turns.audio("resp_1", "item_1", 160)
    locked = turns.lock_for_interruption()
    assert turns.finish_interruption(locked.response_id) and turns.current is None and not turns.active
    turns.request("continue")
    assert sent == []  # the cut turn's response.done (cancelled) has not come: the server would refuse
    turns.done("resp_1")
    assert [e["response"]["metadata"]["voicebridge"] for e in sent] == ["continue"]


def test_a_turn_is_heard_once_done_and_its_last_mark_played():
    played: set[str] = set()
    turns, _, _ = turns_with(played=played)
    goodbye = turns.request("goodbye")  # the handle, before the turn exists
    assert goodbye.state is S.REQUESTED and not turns.heard(goodbye)
    assert turns.created("resp_1", "goodbye") is goodbye and goodbye.id == "resp_1"
    turns.audio("resp_1", "item_1", 320)
    played.add("item_1")
    turns.poll(0.0)
    assert not turns.heard(goodbye)  # played out, but the model may still add to it
    turns.done("resp_1")
    assert goodbye.state is S.SPOKEN and not turns.heard(goodbye)
    turns.poll(0.1)
    assert turns.heard(goodbye) and not turns.heard(None)


def test_refused_events_are_counted_and_logged_once_never_raised(caplog):
    turns, _, metrics = turns_with(log=CallLog(logging.getLogger("test.turns")))
    turns.created("resp_1")
    with caplog.at_level(logging.INFO, logger="test.turns"):
        turns.done("resp_1")
        turns.done("resp_1")  # a duplicate response.done
        turns.done("resp_1")
    assert metrics.get("turn_events_refused") == 2
    assert [r.getMessage().split("] ", 1)[1] for r in caplog.records] == [
        "turn resp_1: done refused while done; further ones only counted"]


def test_a_refused_request_keeps_its_handle_and_is_asked_again_after_the_turn_that_won():
    turns, sent, metrics = turns_with()
    dtmf = turns.request("dtmf")
    turns.created("resp_vad")  # the server's VAD turn won the race
    assert turns.refused(sent[0]["event_id"]) and metrics.get("response_requests_retried") == 1
    assert len(sent) == 1 and not turns.refused(sent[0]["event_id"])
    turns.done("resp_vad")
    assert len(sent) == 2 and sent[1]["response"]["metadata"]["voicebridge"] == "dtmf"
    assert turns.created("resp_2", "dtmf") is dtmf and dtmf.state is S.CREATED


def test_withdrawn_and_dropped_requests_are_lost():
    turns, sent, metrics = turns_with()
    turns.created("resp_1")  # the line is busy: requests wait
    nudge = turns.request("nudge")
    waiting = [turns.request("dtmf") for _ in range(16)]  # the line holds 16: the nudge is dropped
    assert nudge.state is S.DONE and metrics.get("response_requests_dropped") == 1
    assert turns.withdraw("dtmf") == 16 and all(t.state is S.DONE for t in waiting)
    turns.done("resp_1")
    assert sent == [] and turns.idle


def test_an_unanswered_request_reports_a_dead_session_and_is_asked_again():
    clock = ManualClock()
    dead: list[str] = []
    sent: list[dict] = []
    turns = Turns(lambda text: sent.append(json.loads(text)) or True, CallMetrics(), None, clock, 5.0,
                  dead.append)
    turns.request("greeting")
    clock.advance(5.0)
    turns.poll(clock())
    assert dead == [] and len(sent) == 1
    clock.advance(0.1)
    turns.poll(clock())
    assert dead == ["greeting"] and len(sent) == 2  # asked again (of the session that replaces it)


def test_losing_the_active_turns_frees_the_line_a_cut_turn_held():
    """A barge-in whose response.done never comes (the session stalled) held the line for good; the
    safety fuse and a session switch let it go (the cut turn is no longer current)."""
    turns, sent, _ = turns_with()
    turns.created("resp_1")
    turns.audio("resp_1", "item_1", 160)
    turns.finish_interruption(turns.lock_for_interruption().response_id)
    turns.request("continue")
    assert sent == [] and not turns.idle
    assert turns.lose_active() == 1
    assert len(sent) == 1 and turns.get("resp_1").state is S.DONE
    assert turns.lose_active() == 0


def test_a_turn_cut_by_a_session_switch_still_plays_out_and_can_be_heard():
    played: set[str] = set()
    turns, _, _ = turns_with(played=played)
    turns.created("resp_1", "goodbye")
    turns.audio("resp_1", "item_1", 160)
    assert turns.lose_active() == 1
    assert turns.get("resp_1").state is S.SPOKEN and turns.audio_ended("resp_1")
    played.add("item_1")
    turns.poll(0.0)
    assert turns.heard(turns.get("resp_1"))


def test_tool_results_are_followed_up_unless_the_caller_spoke_after_the_calls():
    turns, _, _ = turns_with()
    turns.caller_spoke()  # before the turn: its question
    turns.created("resp_1")
    turns.tool_called("resp_1")
    assert turns.follow_up("resp_1")
    turns.created("resp_2")
    turns.tool_called("resp_2")
    turns.caller_spoke()  # while the tool runs: the caller's own turn is answered instead
    turns.tool_called("resp_2")  # a second call of the same turn changes nothing
    assert not turns.follow_up("resp_2")
    assert turns.follow_up("resp_never_seen")  # nothing known against it


def test_the_floor_tells_the_barge_in_guard_about_the_current_turn():
    turns, _, _ = turns_with()
    assert turns.floor() == Floor()  # nobody's turn
    turns.created("resp_1", "greeting")
    assert turns.floor() == Floor(greeting=True, active=True)
    turns.created("resp_2")
    turns.audio("resp_2", "item_2", 160)
    assert turns.floor() == Floor(active=True)
    turns.lock_for_interruption()
    assert turns.floor() == Floor(active=True, interrupted=True)  # a racing trigger finds it handled
    turns.done("resp_2")
    assert turns.floor() == Floor(interrupted=True)


def test_the_bridges_own_audio_is_a_turn_born_spoken_and_heard_from_its_marks():
    played: set[str] = set()
    turns, sent, _ = turns_with(played=played)
    apology = turns.played("vb-apology", "apology")
    assert apology.state is S.SPOKEN and not apology.active and turns.current is None
    turns.request("probe")
    assert len(sent) == 1  # no model is making it: the line stays free
    assert not turns.audio_ended("vb-apology")  # its end went out with its audio
    turns.poll(0.0)
    assert not turns.heard(apology)
    played.add("vb-apology")
    turns.poll(0.1)
    assert turns.heard(apology)


def test_a_send_that_fails_while_a_session_switch_re_asks_the_request_asks_it_once():
    sent: list[dict] = []
    turns: Turns

    def send(text: str) -> bool:
        if not sent and not getattr(send, "failed", False):
            send.failed = True  # type: ignore[attr-defined]
            turns.lose_active()  # the switch (model thread) puts the request back and asks it again...
            return False  # ...while this send finds no session
        sent.append(json.loads(text))
        return True

    turns = Turns(send, CallMetrics(), None, ManualClock())
    turns.request("probe")
    assert len(sent) == 1
    turns.created("resp_1", "probe")
    turns.done("resp_1")
    assert len(sent) == 1 and turns.idle  # not a second time
