"""Review rv10 of 55e0c3f (a hold restarted for an utterance that joins after the held turns were
committed): what the restart broke, each failing on 55e0c3f. The held turns are now kept (their
failure, their absence or a command in their words still interrupts) and only a resume waits for
the later utterance's own words (``Listener._later_utterance``)."""
from __future__ import annotations


from voicebridge import BridgeConfig
from voicebridge.audio.detector import Decision
from voicebridge.audio.listening import Hold, ServerSpeech, Turn
from voicebridge.dev.sim import corpus

from test_listening import decisions, frames_of, held


def _join(call, category: str, n: int) -> None:
    """0.8 s after the held turn's commit, another short utterance ends and joins the hold."""
    for _ in range(40):  # an utterance of its own (Utterance.GAP_S), begun after the commit
        call.step()
    got = decisions(call.talk(corpus.by_category(category)[n].audio()) + [call.step() for _ in range(5)])
    assert got[-1] is Decision.BACKCHANNEL, got
    call.listener.hold(call.t)


def test_a_held_stop_whose_transcription_fails_after_an_mm_joined_still_interrupts():
    """55e0c3f: "stop" held, its turn committed; the caller's "yeah" (or a breath, a TV's "mm")
    joins the hold and restarts it; then the "stop" turn's transcription fails. Before 55e0c3f
    the failure interrupted (``transcript_failed``: missing a "stop" is worse than cutting an
    "mm-hm"); the restart dropped the turn from the held ones, so the failure is ignored and the
    "yeah"'s own words resume the answer over the "stop"."""
    call = held("interruption", 4)  # "stop"
    assert call.listener.server_speech(call.t, audible=True) is ServerSpeech.BACKCHANNEL
    assert call.listener.committed(call.t + 0.2, "item_stop") is Turn.BACKCHANNEL
    _join(call, "backchannel", 8)  # "yeah"
    call.listener.transcript_failed("item_stop")
    assert call.listener.hold_outcome(call.t + 0.1) is Hold.CONFIRM


def test_a_held_stop_whose_words_never_come_is_not_resumed_by_a_later_yeahs_words():
    """55e0c3f: as above, but the "stop" turn's words never come at all (a lost event). Before
    55e0c3f its held turn kept the hold until the bound, which interrupted ("a turn the model
    committed took the words in and they never came: a stop must not be lost"); after the
    restart the "yeah"'s own turn and words alone decide, and resume over the "stop"."""
    call = held("interruption", 4)  # "stop"
    call.listener.server_speech(call.t, audible=True)
    assert call.listener.committed(call.t + 0.2, "item_stop") is Turn.BACKCHANNEL
    _join(call, "backchannel", 8)  # "yeah"
    call.listener.server_speech(call.t, audible=True)
    assert call.listener.committed(call.t + 0.5, "item_yeah") is Turn.BACKCHANNEL
    call.listener.transcript("Yeah.", call.t + 0.8, "item_yeah")
    assert call.listener.hold_outcome(call.t + 0.8) is not Hold.RESUME


def test_the_held_turns_empty_words_arriving_while_stop_is_still_spoken_do_not_resume_over_it():
    """55e0c3f fixes its case only when the earlier turn's words come after the later utterance's
    first run has ended (``hold`` restarts then). Arriving 0.2 s earlier, while "stop, stop" is
    still being spoken (the simulated transcript comes 0.3/0.5 s after the commit; a short word
    started after the commit is still going on then), they resume the answer over it as before
    the commit (until the utterance is long enough to confirm, or is held again)."""
    call = held("backchannel", 8)  # a short sound held (an echo peak, an "mm")
    assert call.listener.server_speech(call.t, audible=True) is ServerSpeech.BACKCHANNEL
    assert call.listener.committed(call.t + 0.2, "item_a") is Turn.BACKCHANNEL
    for _ in range(40):
        call.step()
    frames = frames_of(corpus.by_category("interruption")[20].audio())  # "stop, stop"
    got = decisions([call.step(f) for f in frames[:len(frames) // 4]])
    assert got and Decision.BACKCHANNEL not in got and call.listener.level.hearing, got  # "stop" is being said
    assert call.listener.transcript("", call.t, "item_a") is False
    assert call.listener.hold_outcome(call.t) is not Hold.RESUME


def test_with_backchannel_commit_off_a_held_stops_pending_words_are_not_skipped_by_a_later_yeah():
    """55e0c3f, ``backchannel_commit`` off: "stop" held, its turn committed, its words not in yet;
    a "yeah" the model's VAD took no turn for joins and restarts the hold, and a second later the
    hold resumes it as a voice the model did not hear, over the "stop" whose words are still to
    come (before 55e0c3f the held turn kept the agent paused for them)."""
    call = held("interruption", 4, BridgeConfig(backchannel_commit=False))  # "stop"
    call.listener.server_speech(call.t, audible=True)
    assert call.listener.committed(call.t + 0.2, "item_stop") is Turn.BACKCHANNEL
    _join(call, "backchannel", 8)  # "yeah"
    assert call.listener.hold_outcome(call.t + 1.0) is not Hold.RESUME
