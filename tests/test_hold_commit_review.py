"""Review rv7 of commit 0c6ba47 (the bridge commits a held utterance the model's VAD took no
turn for): the reply to that commit against the hold's end, sans-IO."""
from __future__ import annotations

import logging
from types import SimpleNamespace

from voicebridge.audio.listening import Hold, Turn
from voicebridge.call.bargein import BargeIn
from voicebridge.call.context import CallContext
from voicebridge.call.metrics import CallMetrics
from voicebridge.config import BridgeConfig
from voicebridge.testing import ManualClock

from test_listening import held


def _committed_and_over(end: str):
    """A held "yeah" the model's VAD never took; the bridge commits it, and the hold ends before the
    reply (``end``: "bound", the 2.5 s bound resumes; "barge_in", a barge-in ran)."""
    call = held("backchannel", 8)
    assert call.listener.hold_outcome(call.t + 1.0) is Hold.COMMIT
    if end == "bound":
        assert call.listener.hold_outcome(call.t + 2.5) is Hold.RESUME  # the reply did not come in time
    else:
        call.listener.end_hold()  # the caller went on talking: the procedure ran
    return call


def test_the_reply_to_the_bridges_commit_after_the_hold_resumed_is_not_answered():
    call = _committed_and_over("bound")
    # a slow reply: the "yeah" the bridge committed is no caller turn to answer (it was: RESPOND)
    assert call.listener.committed(call.t + 2.6, "item_c") is Turn.BACKCHANNEL
    assert call.listener.transcript("Yeah.", call.t + 3.0, "item_c") is False


def test_the_late_reply_to_the_bridges_commit_still_interrupts_on_words_that_take_the_turn():
    call = _committed_and_over("bound")
    assert call.listener.committed(call.t + 2.6, "item_c") is Turn.BACKCHANNEL
    assert call.listener.transcript("Wait.", call.t + 3.0, "item_c") is True  # a "wait" is not lost


def test_the_reply_to_the_bridges_commit_after_a_barge_in_is_not_answered_by_itself():
    call = _committed_and_over("barge_in")
    assert call.listener.committed(call.t + 1.1, "item_c") is Turn.BACKCHANNEL


def test_a_commit_long_after_the_bridges_unanswered_one_is_a_turn_again():
    """The bridge's commit went to a session that closed (no reply ever): a later commit with no
    VAD start before it is not taken for that reply."""
    call = _committed_and_over("bound")
    assert call.listener.committed(call.t + 9.0, "item_x") is Turn.RESPOND


def test_after_a_refused_commit_a_commit_with_no_vad_start_is_a_turn_again():
    call = held("backchannel", 8)
    assert call.listener.hold_outcome(call.t + 1.0) is Hold.COMMIT
    call.listener.commit_refused()
    assert call.listener.hold_outcome(call.t + 1.05) is Hold.RESUME
    assert call.listener.committed(call.t + 1.5, "item_x") is Turn.RESPOND


def test_a_late_vad_start_then_the_commits_reply_keeps_the_hold_on_its_words():
    """The model's VAD starts after the bridge sent its commit (its reply comes after): the reply's
    item is still the held one and its words decide."""
    call = held("backchannel", 8)
    assert call.listener.hold_outcome(call.t + 1.0) is Hold.COMMIT
    call.listener.server_speech(call.t + 1.05, audible=True)  # ignored: the utterance ended a second ago
    assert call.listener.committed(call.t + 1.1, "item_c") is Turn.BACKCHANNEL
    assert call.listener.transcript("Yeah.", call.t + 1.6, "item_c") is False
    assert call.listener.hold_outcome(call.t + 1.6) is Hold.RESUME


class _NoSession:
    """The model link while its session is being replaced: nothing can be sent."""

    def __init__(self) -> None:
        self.tried: list[str] = []

    def send(self, text: str) -> bool:
        self.tried.append(text)
        return False


def test_a_commit_that_cannot_be_sent_resumes_the_held_voice_at_once_and_is_not_counted():
    """The model's session is being replaced when the held audio is to be committed: no reply
    will come, so the answer resumes now, not at the hold's bound 1.5 s later (it waited)."""
    call = held("backchannel", 8)
    clock, model, resumed = ManualClock(), _NoSession(), []
    outbound = SimpleNamespace(pause=lambda now: None, resume=lambda: resumed.append(True), audible=True,
                               duck_stopped_audio=False)
    metrics = CallMetrics()
    barge_in = BargeIn(CallContext(BridgeConfig(), metrics, logging.getLogger("t"), clock), outbound, None, model,
                       lambda *a: None, call.listener)
    barge_in.poll(call.t + 1.0)
    assert model.tried and resumed == [True] and not call.listener.holding
    assert metrics.get("hold_commits") == 0 and metrics.get("backchannels") == 1


def test_the_hold_commits_counter_is_in_every_calls_figures():
    assert CallMetrics().snapshot()["hold_commits"] == 0
