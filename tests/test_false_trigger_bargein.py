"""The false-trigger watch asks for a barge-in's words: BargeIn over a real Listener (review rv16).

BargeIn over a real Listener, with the model and the turns faked (sans-IO, a manual clock). The
model thread's calls (``committed``, ``transcript``, ``server_speech``...) and the run thread's
``poll`` are interleaved by hand, in orders the real threads allow. Each test is written to
PASS when the behaviour is right; each of rv16's findings failed at b16d001.
"""
import logging
from types import SimpleNamespace

import pytest

from voicebridge.audio.listening import AgentWords, Listener, Turn
from voicebridge.call.bargein import BargeIn
from voicebridge.call.context import CallContext
from voicebridge.call.metrics import CallMetrics
from voicebridge.config import CONTINUE_INSTRUCTIONS, WHISPER_CONTINUE_INSTRUCTIONS, BridgeConfig
from voicebridge.testing import ManualClock

T0 = 10.0  # the local barge-in ran then, at the run's onset; quiet since


def audio_mulaw_tone() -> bytes:
    """20 ms of a 200 Hz voice-like tone at about -20 dBFS, mu-law."""
    import math

    from voicebridge.audio.mulaw import encode
    return encode([int(3000 * math.sin(2 * math.pi * 200 * i / 8000)) for i in range(160)])


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
        self.instructions: list[str | None] = []

    def request(self, kind, instructions=None, out_of_band=False):
        self.requests.append(kind)
        self.instructions.append(instructions)

    def floor(self):  # the answer was cut: nothing plays, nothing is active
        return SimpleNamespace(greeting=False, active=False, interrupted=True)


def bridge():
    clock = ManualClock()
    config = BridgeConfig()
    listener = Listener(config)
    model, turns = FakeModel(), FakeTurns()
    outbound = SimpleNamespace(audible=False, duck_stopped_audio=False, pause=lambda now: None, resume=lambda: None)
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
        barge_in.answer_turn(now, committed=True)
    return turn


def model_thread_transcript(barge_in: BargeIn, now: float, item: str, text: str) -> None:
    """The session's ``_caller_transcript`` (final)."""
    barge_in.user_text(text, now)
    if barge_in.transcript(text, now, item, True):
        barge_in.answer_turn(now)


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

    interleaved = []

    def model_thread_interleaves():  # the model thread runs (once) between poll's decision and this look
        if not interleaved:
            interleaved.append(True)
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


# =========================================================================== review rv17
def asked_and_lost(barge_in, model):
    """The watch commits the buffer for a barge-in's words; the model session is replaced before
    the reply (the commit went to the old socket: no committed, no error ever comes)."""
    local_barge_in(barge_in)
    barge_in.poll(T0 + 0.5)
    assert model.commits() == 1
    barge_in.poll(T0 + 3.5)  # no words within WORDS_S: answered (right)


# --------------------------------------------------------------------------- A (review rv17: failed at 03db49d)
def test_a_lost_reply_does_not_swallow_the_next_sessions_caller_turn():
    """The reply to the watch's commit never came (session switched). The watch ended (answered at
    WORDS_S); the caller speaks on the new session and its VAD commits the turn at T0+6: within
    REPLY_S of the lost commit, so ``FalseTriggerMonitor.committed`` takes it for the watch's reply
    and BargeIn returns NOT_CALLER without telling the Listener: the caller is not answered, and the
    Listener keeps the model's turn open (``may_ask`` False)."""
    barge_in, listener, model, turns = bridge()
    asked_and_lost(barge_in, model)
    assert turns.requests == ["turn"]
    barge_in.server_speech(T0 + 4.5)  # the agent is not audible: an ordinary turn
    barge_in.server_stopped()
    turn = model_thread_committed(barge_in, T0 + 6.0, "item_new_session")
    assert turn is Turn.RESPOND and turns.requests == ["turn", "turn"], (turn, turns.requests)
    assert not listener.model_turn_open()


# --------------------------------------------------------------------------- B (review rv17: failed at 03db49d)
def test_a_lost_reply_does_not_swallow_a_later_onset_commits_refusal_and_asking_stays_on():
    """``refused()`` has no REPLY_S bound: a commit of the watch's whose reply was lost makes the
    next refusal, minutes later, the watch's. Here it is an onset commit's: the Listener never
    hears of it, ``ModelTurn.onset_commit`` stays set for the call, ``may_ask`` is False, and every
    later unheard barge-in is continued over without its words being asked for (what rv16's
    finding 7 fixed for a late reply)."""
    barge_in, listener, model, turns = bridge()
    asked_and_lost(barge_in, model)
    listener.server_speech(T0 + 27.0, audible=False)  # a TV keeps the model's turn open
    with listener._lock:
        assert listener._vad.onset_commit_due(T0 + 30.0)  # a voice began inside it: committed at its onset
    barge_in.commit_refused(T0 + 30.1)  # refused (too little audio)
    barge_in.server_stopped()
    model_thread_committed(barge_in, T0 + 31.0, "item_tv")
    assert listener.may_ask(), "the onset commit's refusal was taken for the watch's lost commit"
    # a real "stop" later that the model's VAD did not hear
    barge_in._false_trigger.start(T0 + 60.0, loud=False, since=T0 + 60.0, ask=barge_in._may_ask)
    barge_in.poll(T0 + 60.5)
    barge_in.poll(T0 + 60.54)
    assert model.commits() == 2 and "continue" not in turns.requests, turns.requests


# --------------------------------------------------------------------------- C: echoed (documents the cost)
AGENT = "As you know, your booking is confirmed for Tuesday at noon, and the table is by the window"
ECHO_MISHEARD = "As you, no, your booking is confirmed for Tuesday at noon"  # "know" heard as "no"


def test_the_agents_echo_with_know_transcribed_no_is_still_its_echo():
    """(review rv17: failed at 03db49d) The echo transcribed with a homophone of a stop word the agent did not say ("know"
    -> "no"): 5 of 8 runs are the agent's, the old rule said echo; the new one says the caller's,
    and the asked words take the turn (the model answers its own echo), a held turn is confirmed,
    an echo turn's words interrupt."""
    words = AgentWords()
    words.add(AGENT, final=True)
    assert words.echoed(ECHO_MISHEARD, True) is True


def test_an_early_no_rolled_out_of_the_kept_words_makes_a_long_answers_echo_the_callers():
    """(review rv17: failed at 03db49d) AGENT_WORDS_KEPT=300 words are kept, the runs up to 600: the deltas of a long
    answer come far ahead of its playout. Its early "no problem" is out of the kept words but its
    runs are still known: before, the echo of it was the agent's; now the unsaid "no" makes it the
    caller's."""
    words = AgentWords()
    words.add("No problem at all, I can move the booking to Tuesday at noon for you. ")
    words.add(" ".join(f"w{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(300)), final=True)
    assert words.echoed("No problem at all, I can move the booking", True) is True


def test_a_command_after_the_agents_echo_is_still_the_callers():
    """(passes) What a0f0fd0 fixed stays fixed (rv16 finding 5)."""
    words = AgentWords()
    words.add(AGENT, final=True)
    assert words.echoed("confirmed for Tuesday at noon. Stop.", True) is False


# --------------------------------------------------------------------------- the fix's guard (passes with it)
def test_the_models_own_commit_before_the_reply_to_the_watchs_commit_is_its_own():
    """The caller speaks as the watch commits; the model's VAD starts, stops and commits its own
    turn before the watch's commit reaches it; the watch's reply comes after (carrying what came
    after). The model's turn is answered once, the watch's reply is not answered. (At a0f0fd0 the
    end is the same, with the two items' parts swapped: the model's own commit was taken for the
    watch's reply; the timing needs a VAD turn shorter than one round trip: not a bug there.)"""
    barge_in, listener, model, turns = bridge()
    local_barge_in(barge_in)
    barge_in.poll(T0 + 0.5)
    barge_in.server_speech(T0 + 0.3)  # (its speech_started was on its way)
    barge_in.server_stopped()
    model_thread_committed(barge_in, T0 + 0.55, "item_vad")
    model_thread_committed(barge_in, T0 + 0.6, "item_c1")
    barge_in.poll(T0 + 0.64)
    assert turns.requests == ["turn"], turns.requests
    assert not listener.model_turn_open() and listener.may_ask()


@pytest.mark.parametrize("text", ["confirmed for Tuesday stop noon", "your booking is confirmed for Tuesday wait noon",
                                  "your booking stop confirmed for Tuesday at noon"])
def test_a_command_in_place_of_an_echo_word_unlike_it_is_the_callers(text):
    """(passes) A command the transcriber wrote in place of one of the echo's words ("at", "is")
    that sounds nothing like it is the caller's, with the fix too."""
    words = AgentWords()
    words.add(AGENT, final=True)
    assert words.echoed(text, True) is False


def test_a_session_replaced_while_the_watchs_commit_is_on_its_way_forgets_that_commit():
    """The commit went to the old session: no reply will come. The new session's first commit is
    its own (answered), whenever it comes; the words' wait still ends the watch (answered)."""
    barge_in, listener, model, turns = bridge()
    local_barge_in(barge_in)
    listener.server_speech(T0 - 2.0, audible=False)
    listener.committed(T0 - 1.0, "item_old")
    barge_in.poll(T0 + 0.5)
    assert model.commits() == 1
    listener.server_speech(T0 + 0.55, audible=False)  # the old session's VAD opened a turn: gone with it
    barge_in.session_replaced()
    assert not listener.model_turn_open() and listener.may_ask()
    barge_in.server_speech(T0 + 1.0)  # the new session: the caller speaks (the agent is not audible)
    assert model_thread_committed(barge_in, T0 + 1.5, "item_new") is Turn.RESPOND  # (no speech_stopped seen first)
    assert turns.requests == ["turn"]


# --------------------------------------------------------------------------- outside check out1: whispers
def _asked_words(barge_in: BargeIn, words: str) -> None:
    barge_in.poll(T0 + 0.5)
    model_thread_committed(barge_in, T0 + 0.6, "item_c1")
    model_thread_transcript(barge_in, T0 + 1.0, "item_c1", words)
    barge_in.poll(T0 + 1.04)


@pytest.mark.parametrize("whispered, words, asked, told", [
    (True, "", "continue", WHISPER_CONTINUE_INSTRUCTIONS), (True, "Mm-hm.", "continue", WHISPER_CONTINUE_INSTRUCTIONS),
    (True, "Wait.", "turn", None), (False, "", "continue", CONTINUE_INSTRUCTIONS),
    (False, "Mm-hm.", "continue", CONTINUE_INSTRUCTIONS)])
def test_a_whispered_barge_in_with_no_words_lets_the_model_answer_or_continue(whispered, words, asked, told):
    """A whispered "hang on a sec" confirmed by the detector: the transcriber wrote nothing for it,
    and the watch asked the model to continue over the caller (outside check out1). Answering
    every such empty turn instead dropped the answer's rest after a hiss or a rustle the detector
    also took for a whisper (review rv20: 45 of 72). The continue after a whisper says it may have
    been one: the model, which has the audio, answers its words if it holds any."""
    barge_in, listener, model, turns = bridge()
    barge_in._false_trigger.start(T0, loud=False, since=T0, ask=barge_in._may_ask, whispered=whispered)
    _asked_words(barge_in, words)
    assert turns.requests == [asked] and turns.instructions == [told], (turns.requests, turns.instructions)


class _Locked(SimpleNamespace):
    pass


def test_a_local_barge_in_tells_the_watch_whether_it_was_a_whisper():
    """``_run('local')`` arms the watch with the detector's verdict on the utterance it confirmed
    (read before the procedure resets the detector's level)."""
    barge_in, listener, model, turns = bridge()
    turns.lock_for_interruption = lambda: _Locked(response_id="resp_1", item_id=None, received_bytes=0,
                                                  was_active=True)
    turns.finish_interruption = lambda response_id: None
    turns.floor = lambda: SimpleNamespace(greeting=False, active=True, interrupted=False)
    barge_in._outbound = SimpleNamespace(audible=True, duck_stopped_audio=False, interrupt=lambda clear: 0,
                                         pause=lambda now: None, resume=lambda: None)
    listener.level.utterance.heard_whisper()
    assert listener.level.whispered
    assert barge_in.run("local", T0, T0)
    assert barge_in._false_trigger.whispered
    barge_in._false_trigger.level(False, T0)  # (quiet since the run: the run thread's frames)
    _asked_words(barge_in, "")
    assert turns.requests == ["continue"] and turns.instructions == [WHISPER_CONTINUE_INSTRUCTIONS]


class _NoSession(FakeModel):
    def send(self, message) -> bool:  # (a session being replaced: nothing goes out)
        self.sent.append(message)
        return False


@pytest.mark.parametrize("config, model", [(BridgeConfig(transcription_model=None), FakeModel()),
                                           (BridgeConfig(), _NoSession())])
def test_the_whisper_continue_only_where_the_whispers_audio_became_an_item(config, model):
    """(review rv21) With no commit of the whisper's audio (no transcription: the watch never asks;
    the commit could not go out), the caller's last audio item is the question the answer was for:
    "answer the caller's last audio" would answer it again. The plain continue goes there."""
    outbound = SimpleNamespace(audible=False, duck_stopped_audio=False, pause=lambda now: None, resume=lambda: None)
    turns = FakeTurns()
    barge_in = BargeIn(CallContext(config, CallMetrics(), logging.getLogger("rv21"), ManualClock()), outbound, turns,
                       model, lambda *a: None, Listener(config))
    barge_in._false_trigger.start(T0, loud=False, since=T0, ask=barge_in._may_ask, whispered=True)
    barge_in.poll(T0 + 0.5)
    barge_in.poll(T0 + 0.54)
    assert turns.requests == ["continue"] and turns.instructions == [CONTINUE_INSTRUCTIONS], turns.instructions


# --------------------------------------------------------------------------- the answer waits for the caller
VOICE = bytes(audio_mulaw_tone())  # a loud frame of the caller's


def speak(barge_in: BargeIn, start: float, end: float) -> None:
    """The caller is heard from ``start`` to ``end`` (20 ms frames; the agent silent)."""
    t = start
    while t < end - 1e-9:
        barge_in.hear(VOICE, t)
        t = round(t + 0.02, 6)


def quiet(barge_in: BargeIn, start: float, end: float) -> None:
    t = start
    while t < end - 1e-9:
        barge_in.hear(b"\xff" * 160, t)
        barge_in.poll(t)
        t = round(t + 0.02, 6)


def test_an_answer_due_while_the_caller_goes_on_is_asked_for_once_they_are_done():
    """(outside checks out2, out3) "Wait," confirmed by its words while the caller goes on "hold
    on, I need to check" (with a 200 ms comma in it): asked for then, the answer would be to
    "wait" alone and play over the rest. It is asked for once the caller has been quiet
    ``ANSWER_GAP_S``."""
    from voicebridge.call.bargein import ANSWER_GAP_S

    barge_in, listener, model, turns = bridge()
    speak(barge_in, T0, T0 + 0.6)
    barge_in.answer_turn(T0 + 0.5)  # (the words of its first part took the turn)
    quiet(barge_in, T0 + 0.6, T0 + 0.8)  # the comma
    speak(barge_in, T0 + 0.8, T0 + 1.6)
    assert answers(barge_in, turns) == 0
    quiet(barge_in, T0 + 1.6, T0 + 1.6 + ANSWER_GAP_S - 0.04)
    assert answers(barge_in, turns) == 0
    quiet(barge_in, T0 + 1.6 + ANSWER_GAP_S - 0.04, T0 + 1.6 + ANSWER_GAP_S + 0.1)
    assert answers(barge_in, turns) == 1
    quiet(barge_in, T0 + 2.2, T0 + 3.0)
    assert answers(barge_in, turns) == 1


def test_a_command_whose_caller_is_done_is_answered_at_once_whatever_the_models_vad():
    """(out3) A plain "stop", its words in a second after it ended: answered then, not when the
    model's VAD closes a turn (its silence, or the agent's own tail: 200 ms later for nothing)."""
    barge_in, listener, model, turns = bridge()
    speak(barge_in, T0, T0 + 0.4)
    quiet(barge_in, T0 + 0.4, T0 + 1.4)
    listener.server_speech(T0 + 1.0, audible=False)  # (a turn of the model's VAD open meanwhile)
    barge_in.answer_turn(T0 + 1.4)
    assert answers(barge_in, turns) == 1


def test_an_answer_owed_over_a_voice_that_never_stops_is_asked_for_at_the_bound():
    """A TV at the handset's level may be heard on and on: the answer waits ``ANSWER_WAIT_S``."""
    from voicebridge.call.bargein import ANSWER_WAIT_S

    barge_in, listener, model, turns = bridge()
    speak(barge_in, T0, T0 + 0.1)
    barge_in.answer_turn(T0 + 0.1)
    t = T0 + 0.1
    while t < T0 + 0.1 + ANSWER_WAIT_S - 0.02:
        barge_in.hear(VOICE, t)
        barge_in.poll(t)
        t = round(t + 0.02, 6)
    assert answers(barge_in, turns) == 0
    barge_in.hear(VOICE, t)
    barge_in.poll(t + 0.02)
    assert answers(barge_in, turns) == 1


def test_an_answer_due_with_the_caller_done_is_asked_for_at_once():
    barge_in, listener, model, turns = bridge()
    barge_in.answer_turn(T0)
    assert answers(barge_in, turns) == 1


def test_the_owed_answer_and_the_rest_of_the_turns_commit_are_one_answer_not_two():
    """(review rv25) "Wait," (its words took the turn: owed) while the caller goes on "hold on,
    I need to check". The owed answer is asked for once the caller has been quiet here
    ``ANSWER_GAP_S``; the model's VAD commits the same turn after its own silence and a hop: the
    answer already asked for is its answer, not asked again."""
    barge_in, listener, model, turns = bridge()
    speak(barge_in, T0, T0 + 0.3)
    listener.server_speech(T0 + 0.05, audible=False)  # the model's VAD turn, open on all of it
    speak(barge_in, T0 + 0.3, T0 + 1.6)
    barge_in.answer_turn(T0 + 0.8)
    assert answers(barge_in, turns) == 0
    quiet(barge_in, T0 + 1.6, T0 + 2.2)
    assert answers(barge_in, turns) == 1
    barge_in.server_stopped()
    assert model_thread_committed(barge_in, T0 + 2.2, "item_rest") is Turn.RESPOND
    assert answers(barge_in, turns) == 1, turns.requests


def test_a_plain_turn_is_answered_at_its_commit_though_the_room_is_heard():
    """(review rv25) The agent silent, the caller asks and stops; the model's VAD closes the turn
    and commits it. The room (a TV at the handset's level, a child) heard here in bursts does not
    make the answer wait: the model's own commit says the caller is done."""
    barge_in, listener, model, turns = bridge()
    listener.server_speech(T0, audible=False)
    speak(barge_in, T0, T0 + 1.0)
    quiet(barge_in, T0 + 1.0, T0 + 1.4)
    speak(barge_in, T0 + 1.4, T0 + 1.56)  # the room
    barge_in.server_stopped()
    assert model_thread_committed(barge_in, T0 + 1.56, "item_q") is Turn.RESPOND
    assert answers(barge_in, turns) == 1
    speak(barge_in, T0 + 1.56, T0 + 2.0)
    quiet(barge_in, T0 + 2.0, T0 + 3.0)
    assert answers(barge_in, turns) == 1
