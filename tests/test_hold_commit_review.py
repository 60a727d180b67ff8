"""Review rv7 of commit 0c6ba47 (the bridge commits a held utterance the model's VAD took no
turn for): the reply to that commit against the hold's end, sans-IO."""
from __future__ import annotations

from voicebridge.audio.listening import Hold, Turn

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
