"""Review rv11 of 3b788b8 (an utterance begun at the very instant of the held turns' last commit
counts as later than it). No regression found; this pins the one path where the tie is reachable
with the bridge's own commit (``Hold.COMMIT``): its reply comes as a second "yeah" begins. The
model cannot have that "yeah" in the committed turn (the commit was sent before it), so the first
one's words do not resume the answer; the second's own turn decides (3a58c65 resumed at once)."""
from __future__ import annotations

from voicebridge.audio.detector import Decision
from voicebridge.audio.listening import Hold
from voicebridge.dev.sim import corpus

from test_listening import QUIET, frames_of, held


def _second_yeah_as_the_commit_answers():
    call = held("backchannel", 8)  # "yeah", no turn from the model's VAD
    for _ in range(50):
        call.step()
    assert call.listener.hold_outcome(call.t) is Hold.COMMIT
    committed = False
    for f in frames_of(corpus.by_category("backchannel")[8].audio()) + [QUIET] * 8:
        h = call.step(f)
        if not committed and call.listener.level.hearing:  # its first loud frame: the reply comes now
            call.listener.committed(call.listener.level.utterance_start, "item_c")
            committed = True
        if h.decision is Decision.BACKCHANNEL:
            call.listener.hold(call.t)
    assert committed
    assert call.listener.transcript("Yeah.", call.t, "item_c") is False
    return call


def test_rv11_a_yeah_begun_as_the_bridges_commit_answers_is_held_for_its_own_words():
    call = _second_yeah_as_the_commit_answers()
    assert call.listener.hold_outcome(call.t) is Hold.WAIT  # the first "yeah"'s words do not resume it
    t0 = call.t
    while (out := call.listener.hold_outcome(call.t)) is Hold.WAIT and call.t < t0 + 3:
        call.step()
    assert out is Hold.COMMIT  # the model's VAD took no turn for it either: its audio is committed
    call.listener.committed(call.t + 0.2, "item_d")
    assert call.listener.transcript("Yeah.", call.t + 0.6, "item_d") is False
    assert call.listener.hold_outcome(call.t + 0.6) is Hold.RESUME


def test_rv11_the_second_commits_missing_words_interrupt_at_the_bound():
    """The cost of the tie counted as later: a turn for it whose words never come CONFIRMs at the
    bound (as for any utterance begun after the commit; a "stop" is not missed)."""
    call = _second_yeah_as_the_commit_answers()
    while call.listener.hold_outcome(call.t) is Hold.WAIT:
        call.step()
    call.listener.committed(call.t + 0.2, "item_d")
    t0 = call.t
    while (out := call.listener.hold_outcome(call.t)) is Hold.WAIT:
        call.step()
    assert out is Hold.CONFIRM and 1.4 <= call.t - t0 <= 1.6, (out, call.t - t0)
