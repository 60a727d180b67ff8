"""Review rv12 of 406711f (holds inside a turn the model keeps open; far holds): what the change
lost that 3b788b8 caught (failing on 406711f, fixed since). Its test of a turn the service might
end at the bridge's commit (left "open" to the bridge: an extra onset commit later) is described
in docs/barge-in.md and not fixed."""
from __future__ import annotations

import pytest

from voicebridge.audio.detector import Decision
from voicebridge.audio.listening import Hold, Turn
from voicebridge.dev.sim import corpus

import test_listening as tl
from test_listening import QUIET, frames_of, held


@pytest.mark.parametrize("words", ["so then we went over to the hold on",  # the set's transcriber: the
                                   "so then we went over to the stop, stop",  # room's words since the last commit
                                   "Um, wait, hold on a second."])
def test_a_far_voice_whose_commit_carries_more_than_the_command_still_interrupts(words):
    """beds_held.py (room_babble -35 dBFS, RT60 0.6): interruption_02_2 seed 544208696 and
    interruption_05_3 seed 447656403 were cleared by 3b788b8 (2.4 s, the model's VAD commit judged
    LOCAL) and never by 406711f: the far hold's commit holds the whole buffer since the last commit
    (the babble's words before the command), is_command() wants <= 4 words or a leading stop word,
    and the hold resumes. A caller's own filler ("Um, wait, ...") fails the same way."""
    call, got = tl._far_voice(2)
    assert got == [Decision.DUCK, True], got
    listener, t = call.listener, call.held_at
    assert listener.hold_outcome(t + 0.3) is Hold.COMMIT
    assert listener.committed(t + 0.35, "item_c1") is Turn.BACKCHANNEL
    listener.transcript(words, t + 0.7, "item_c1")
    assert listener.hold_outcome(t + 0.7) is Hold.CONFIRM  # 406711f: RESUME (the command lost)


def test_the_rest_of_a_far_holds_split_turn_is_not_thrown_away():
    """The same calls: the rest of the model's turn after the far hold's commit said "hold on"
    (the set's transcriber); judged by the local detector since the split (a far voice: no
    confirm, no backchannel) it is NOTHING -> NOT_CALLER, its words never looked at."""
    call, got = tl._far_voice(2)
    assert got == [Decision.DUCK, True], got
    listener, t = call.listener, call.held_at
    assert listener.hold_outcome(t + 0.3) is Hold.COMMIT
    listener.committed(t + 0.35, "item_c1")
    listener.transcript("so then we went over to the", t + 0.7, "item_c1")
    assert listener.hold_outcome(t + 0.7) is Hold.RESUME
    listener.server_stopped()
    listener.committed(t + 1.2, "item_rest")
    assert listener.transcript("Hold on.", t + 1.5, "item_rest") is True  # 406711f: False, never acted on


@pytest.mark.parametrize("gap_frames", [5, 10, 15])
def test_a_command_begun_in_the_hold_is_not_resumed_over_when_the_bridges_commit_splits_it(gap_frames):
    """"Yeah ... wait": "wait" begins 0.1-0.3 s into the hold for "yeah" (one utterance: < GAP_S),
    the model's VAD still in the turn (it closes 0.5 s after "wait"). A transcriber writes down a
    word only if most of it is in the item (a fragment "wa" / "-ait" gives nothing). 406711f
    commits at 0.3 s into the hold, through the "wait": the first item says "Yeah." and the hold
    resumes (over the "wait"), the rest says nothing: the "wait" is lost. 3b788b8 waited for the
    model's one commit, "Yeah, wait." -> interrupt."""
    call = held("backchannel", 8)  # "yeah"
    listener = call.listener
    yeah = (call.t - 0.6, call.t - 0.1)
    listener.server_speech(call.t - 0.4, audible=True)
    for _ in range(gap_frames):
        call.step()
    wait_frames = frames_of(corpus.by_category("interruption")[0].audio())
    wait = (call.t, call.t + 0.02 * len(wait_frames))
    last_commit, pending, outcomes, closes = float("-inf"), [], [], wait[1] + 0.5

    def words(t0: float, t1: float) -> str:
        out = [w for w, (a, b) in (("Yeah", yeah), ("wait", wait))
               if max(0.0, min(b, t1) - max(a, t0)) >= 0.7 * (b - a)]
        return ", ".join(out) + ("." if out else "")

    frames = wait_frames + [QUIET] * 60
    for f in frames:
        now = call.t
        h = call.step(f)
        if h.decision is Decision.BACKCHANNEL:
            listener.hold(now)
        for item in [p for p in pending if p[0] <= now]:
            pending.remove(item)
            at, kind, name, span = item
            if kind == "committed":
                listener.committed(at, name)
                pending.append((at + 0.3, "words", name, span))
            else:
                if listener.transcript(words(*span), at, name):
                    outcomes.append(Hold.CONFIRM)
        if now >= closes and closes > 0:
            getattr(listener, "server_stopped", lambda: None)()  # (3b788b8 has none)
            pending.append((now + 0.05, "committed", "item_vad", (last_commit, now)))
            last_commit, closes = now, -1.0
        o = listener.hold_outcome(now)
        if o is Hold.COMMIT:
            pending.append((now + 0.06, "committed", f"item_c{len(outcomes)}", (last_commit, now)))
            last_commit = now
        elif o is not Hold.WAIT and o is not Hold.NONE:
            outcomes.append(o)
        if Hold.CONFIRM in outcomes:
            break
    assert Hold.CONFIRM in outcomes, outcomes  # 406711f: [RESUME, ...]: the "wait" never interrupts
    assert outcomes[0] is Hold.CONFIRM, outcomes  # and nothing resumed over it first
