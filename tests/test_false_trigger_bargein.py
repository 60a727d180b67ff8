"""The false-trigger watch asks for a barge-in's words: BargeIn over a real Listener (review rv16).

BargeIn over a real Listener, with the model and the turns faked (sans-IO, a manual clock). The
model thread's calls (``committed``, ``transcript``, ``server_speech``...) and the run thread's
``poll`` are interleaved by hand, in orders the real threads allow. Each test is written to
PASS when the behaviour is right; each of rv16's findings failed at b16d001.
"""
import logging
from types import SimpleNamespace

import pytest

from voicebridge.audio.listening import Listener, Turn
from voicebridge.call.bargein import BargeIn
from voicebridge.call.context import CallContext
from voicebridge.call.metrics import CallMetrics
from voicebridge.config import BridgeConfig
from voicebridge.testing import ManualClock

T0 = 10.0  # the local barge-in ran then, at the run's onset; quiet since


class FakeModel:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, message) -> bool:
        self.sent.append(message)
        return True

    def commits(self) -> int:
        return sum(1 for m in self.sent if "input_audio_buffer.commit" in str(m))


class FakeTurns:
    def __init__(self) -> None:
        self.requests: list[str] = []

    def request(self, kind, instructions=None, out_of_band=False):
        self.requests.append(kind)

    def floor(self):  # the answer was cut: nothing plays, nothing is active
        return SimpleNamespace(greeting=False, active=False, interrupted=True)


def bridge():
    clock = ManualClock()
    config = BridgeConfig()
    listener = Listener(config)
    model, turns = FakeModel(), FakeTurns()
    outbound = SimpleNamespace(audible=False, duck_cleared=False, pause=lambda now: None, resume=lambda: None)
    barge_in = BargeIn(CallContext(config, CallMetrics(), logging.getLogger("rv16"), clock), outbound, turns,
                       model, lambda *a: None, listener)
    return barge_in, listener, model, turns


def answers(barge_in: BargeIn, turns: FakeTurns) -> int:
    """Answers (response.create for a caller turn) asked for so far."""
    return turns.requests.count("turn")


def local_barge_in(barge_in: BargeIn) -> None:
    """What ``_run('local')`` leaves: the watch armed, its words may be asked for."""
    barge_in._false_trigger.start(T0, loud=False, since=T0, ask=barge_in._may_ask)


def model_thread_committed(barge_in: BargeIn, now: float, item: str) -> Turn:
    """The session's ``_committed``: a RESPOND is answered."""
    turn = barge_in.committed(now, item)
    if turn is Turn.RESPOND:
        barge_in.answer_turn()
    return turn


def model_thread_transcript(barge_in: BargeIn, now: float, item: str, text: str) -> None:
    """The session's ``_caller_transcript`` (final)."""
    barge_in.user_text(text, now)
    if barge_in.transcript(text, now, item, True):
        barge_in.answer_turn()


# --------------------------------------------------------------------------- the plain path
def test_baseline_the_asked_commit_and_its_stop_are_answered_once():
    barge_in, listener, model, turns = bridge()
    local_barge_in(barge_in)
    barge_in.poll(T0 + 0.5)
    assert model.commits() == 1
    assert model_thread_committed(barge_in, T0 + 0.6, "item_c1") is Turn.NOT_CALLER
    model_thread_transcript(barge_in, T0 + 1.0, "item_c1", "Stop, stop.")
    barge_in.poll(T0 + 1.04)
    assert turns.requests == ["turn"]


# --------------------------------------------------------------------------- finding 1
def test_speech_started_before_the_asked_commits_reply_gets_one_answer_not_two():
    """The caller goes on talking as the watch commits: the model's VAD starts on it (its
    speech_started left the service before the bridge's commit reached it, one RTT), the run
    thread's 40 ms poll sees that evidence and disarms the watch, then the reply to the bridge's
    commit comes. It is the bridge's own commit inside the model's now open turn (a split), not
    the model's turn: one answer (the VAD turn's, with the words) is right."""
    barge_in, listener, model, turns = bridge()
    local_barge_in(barge_in)
    barge_in.poll(T0 + 0.5)
    assert model.commits() == 1
    barge_in.server_speech(T0 + 0.52)  # (the agent is cut: a TURN; the guards refuse a second barge-in)
    barge_in.poll(T0 + 0.54)  # speech showed: the watch is done, disarmed
    assert not barge_in._false_trigger.armed
    model_thread_committed(barge_in, T0 + 0.6, "item_c1")  # the reply to the bridge's commit
    still_open = listener.model_turn_open()  # (at b16d001: False, the reply closed the VAD turn in the Listener)
    barge_in.server_stopped()
    model_thread_committed(barge_in, T0 + 2.0, "item_vad")  # the model's VAD turn's own commit
    assert answers(barge_in, turns) == 1, turns.requests  # (at b16d001: ['turn', 'turn'])
    assert still_open


def test_a_response_started_while_asking_leaves_the_asked_commit_unanswered():
    barge_in, listener, model, turns = bridge()
    local_barge_in(barge_in)
    barge_in.poll(T0 + 0.5)
    barge_in.response_started()  # (some queued response: the watch is cancelled)
    turn = model_thread_committed(barge_in, T0 + 0.6, "item_c1")
    assert turn is not Turn.RESPOND and turns.requests == [], (turn, turns.requests)


# --------------------------------------------------------------------------- finding 2
def test_a_vad_turns_commit_between_the_asking_and_the_look_at_the_model_turn_is_not_taken_as_the_asked_one():
    barge_in, listener, model, turns = bridge()
    listener.server_speech(T0 - 1.0, audible=False)  # the model's VAD has a turn open (begun on the room)
    barge_in.server_stopped()  # ... and is closing it: its commit is on its way
    local_barge_in(barge_in)
    real = listener.model_turn_open

    def model_thread_interleaves():  # the model thread runs between poll's decision and this look
        model_thread_committed(barge_in, T0 + 0.5, "item_vad")
        return real()

    listener.model_turn_open = model_thread_interleaves
    barge_in.poll(T0 + 0.5)
    del listener.model_turn_open
    assert not listener.model_turn_open(), "the VAD turn was committed: the Listener still has it open"
    assert not listener._vad.open


# --------------------------------------------------------------------------- finding 3
def test_a_refused_commit_while_an_adopted_turn_is_open_does_not_continue_the_answer():
    barge_in, listener, model, turns = bridge()
    listener.server_speech(T0 - 1.0, audible=False)  # the model's VAD turn is open (begun on the room)
    local_barge_in(barge_in)
    barge_in.poll(T0 + 0.5)
    assert barge_in._false_trigger.adopted and model.commits() == 0
    barge_in.commit_refused(T0 + 0.6)  # (an onset commit of the bridge's inside that turn, refused)
    barge_in.poll(T0 + 0.64)
    assert "continue" not in turns.requests  # the adopted turn's words have not come


# --------------------------------------------------------------------------- finding 4 (behaviour)
def test_a_tv_peak_confirmed_inside_the_tvs_open_turn_is_now_answered_not_continued():
    """A should-not case: a TV keeps the model's VAD turn open (its start judged NOISE/ignored),
    a louder TV line passes the local detector (a false barge-in). Before b16d001: 'continue' at
    500 ms of quiet. Now the TV turn is adopted and its words (the TV's) take the turn: the model
    is asked to answer the TV. This documents the cost (the set does not count it)."""
    barge_in, listener, model, turns = bridge()
    listener.server_speech(T0 - 1.0, audible=False)
    local_barge_in(barge_in)
    barge_in.poll(T0 + 0.5)
    assert barge_in._false_trigger.adopted
    barge_in.server_stopped()
    model_thread_committed(barge_in, T0 + 1.5, "item_tv")
    model_thread_transcript(barge_in, T0 + 2.0, "item_tv", "And now the weather for the weekend ahead.")
    barge_in.poll(T0 + 2.04)
    assert "continue" not in turns.requests and turns.requests.count("turn") >= 1  # answered


@pytest.mark.parametrize("words", ["(coughs)", "Ahem.", "Excuse me.", "[speech 0.6 s]"])
def test_a_coughs_commit_transcribed_as_anything_but_nothing_is_answered(words):
    """What a transcriber writes for a cough decides: "" continues, an annotation or a courtesy
    word is answered. The dev server writes "[speech N s]" for any unrecognised audio (N: the
    whole buffer's length, silence too): there, every false trigger is answered."""
    barge_in, listener, model, turns = bridge()
    local_barge_in(barge_in)
    barge_in.poll(T0 + 0.5)
    model_thread_committed(barge_in, T0 + 0.6, "item_c1")
    model_thread_transcript(barge_in, T0 + 1.0, "item_c1", words)
    barge_in.poll(T0 + 1.04)
    assert turns.requests == ["turn"]


# --------------------------------------------------------------------------- finding 5
@pytest.mark.parametrize("words", ["Tuesday at noon. Stop.", "is confirmed for Tuesday. Stop.",
                                   "for Tuesday at noon. No, no.", "confirmed for Tuesday at noon. Wait."])
def test_a_command_after_the_agents_echo_in_the_asked_words_is_answered(words):
    """The bridge's commit carries everything since the last commit: the barge-in's run is sent
    to the model raw, the agent's echo under the caller's words too (the speakerphone this path
    is for). A transcriber writes both down; the command must not be lost (the held path's
    ``held_turn_taken`` says True for every one of these)."""
    barge_in, listener, model, turns = bridge()
    listener.agent_said("Thank you for calling, your booking is confirmed for Tuesday at noon", final=True)
    local_barge_in(barge_in)
    barge_in.poll(T0 + 0.5)
    model_thread_committed(barge_in, T0 + 0.6, "item_c1")
    model_thread_transcript(barge_in, T0 + 1.0, "item_c1", words)
    barge_in.poll(T0 + 1.04)
    assert turns.requests == ["turn"], turns.requests  # (at b16d001: ['continue'])


# --------------------------------------------------------------------------- finding 6 (the dev server)
@pytest.mark.parametrize("sound", ["cough", "silence"])
def test_the_dev_servers_words_for_the_bridges_commit_of_a_cough_are_none(sound):
    from test_local_engine import Harness, silence as quiet
    from voicebridge.dev.sim.acoustics import cough
    h = Harness(speed=0)
    h.pcmu_session(transcription={"model": "gpt-4o-mini-transcribe"})
    h.append(quiet(400) + (cough(350) if sound == "cough" else quiet(350)) + quiet(600))
    out = h.send({"type": "input_audio_buffer.commit"})
    [done] = [e for e in out if e["type"] == "conversation.item.input_audio_transcription.completed"]
    listener = Listener(BridgeConfig())
    assert not listener.asked_words_take_turn(done["transcript"]), done["transcript"]


# --------------------------------------------------------------------------- finding 7
def test_a_late_reply_to_an_onset_commit_does_not_stop_later_barge_ins_words_being_asked_for():
    barge_in, listener, model, turns = bridge()
    listener.server_speech(T0 - 3.0, audible=False)  # a TV keeps the model's turn open
    with listener._lock:
        assert listener._vad.onset_commit_due(T0 - 1.5)  # a voice began inside it: committed at its onset
    barge_in.server_stopped()  # ... and the model's VAD closed its turn before our commit reached it
    model_thread_committed(barge_in, T0 - 1.4, "item_vad")  # its own commit
    model_thread_committed(barge_in, T0 - 1.35, "item_onset")  # ours, carrying what came after
    assert listener.may_ask(), listener._vad.onset_commit
    local_barge_in(barge_in)  # a real "stop" later in the call, which the model's VAD did not hear
    barge_in.poll(T0 + 0.5)
    barge_in.poll(T0 + 0.54)
    assert model.commits() == 1 and "continue" not in turns.requests, turns.requests


# --------------------------------------------------------------------------- paths the commit's tests leave out (pass)
def test_a_failed_transcription_of_the_asked_commit_is_answered_once():
    barge_in, listener, model, turns = bridge()
    local_barge_in(barge_in)
    barge_in.poll(T0 + 0.5)
    model_thread_committed(barge_in, T0 + 0.6, "item_c1")
    barge_in.transcript_failed("item_c1", T0 + 1.0)
    barge_in.poll(T0 + 1.04)
    barge_in.poll(T0 + 5.0)
    assert turns.requests == ["turn"]


def test_a_refused_asked_commit_continues_and_leaves_the_listener_alone():
    barge_in, listener, model, turns = bridge()
    local_barge_in(barge_in)
    barge_in.poll(T0 + 0.5)
    barge_in.commit_refused(T0 + 0.6)
    barge_in.poll(T0 + 0.64)
    assert turns.requests == ["continue"] and listener.may_ask()
