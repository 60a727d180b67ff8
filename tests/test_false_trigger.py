"""The false-trigger watch (sans-IO): after a local barge-in, was it the caller speaking?"""
from voicebridge.audio.false_trigger import REPLY_S, WORDS_S, FalseTriggerMonitor, Recovery

NONE, ASK, CONTINUE, ANSWER = Recovery.NONE, Recovery.ASK, Recovery.CONTINUE, Recovery.ANSWER


def test_false_trigger_detection_no_text_low_rms():
    mon = FalseTriggerMonitor(delay_s=0.5)
    mon.start(10.0)
    mon.level(False, 10.1)
    assert mon.poll(10.5) is NONE
    assert mon.poll(10.6) is CONTINUE
    assert mon.poll(10.7) is NONE  # fires once


def test_no_false_trigger_when_rms_still_high():
    mon = FalseTriggerMonitor(delay_s=0.5)
    mon.start(10.0)
    for i in range(100):
        mon.level(True, 10.0 + i * 0.02)
        assert mon.poll(10.0 + i * 0.02) is NONE
    mon.level(False, 12.0)
    assert mon.poll(12.49) is NONE
    assert mon.poll(12.5) is CONTINUE


def test_no_false_trigger_when_text_received():
    mon = FalseTriggerMonitor(delay_s=0.5)
    mon.start(10.0)
    mon.level(False, 10.0)
    mon.user_text("   ")  # blank text is not speech
    mon.user_text("wait, stop")
    assert mon.poll(11.0) is NONE
    assert mon.armed is False


def test_no_false_trigger_when_user_speaking():
    mon = FalseTriggerMonitor(delay_s=0.5)
    mon.start(10.0)
    mon.speech_started()
    mon.level(False, 10.0)
    assert mon.poll(11.0) is NONE


def test_recovery_delay_is_500ms():
    mon = FalseTriggerMonitor()
    assert mon.delay_s == 0.5
    mon.start(0.0, loud=False)
    assert mon.poll(0.499) is NONE
    assert mon.poll(0.500) is CONTINUE


def test_a_false_trigger_watch_with_nothing_armed_is_polled_without_its_lock():
    """The run thread polls every 40 ms of every call, almost always with nothing armed: under
    gevent a lock is Python code, so that answer takes none. The instant is still seen (the time
    of evidence given without one), and an armed watch still decides under the lock."""

    class NoLock:
        def __enter__(self):
            raise AssertionError("the lock was taken")

        def __exit__(self, *exc):
            return False

    watch = FalseTriggerMonitor(0.5)
    real, watch._lock = watch._lock, NoLock()
    assert watch.poll(3.0) is NONE
    watch._lock = real
    watch.speech_started()  # at the latest instant seen: the poll's 3.0
    watch.start(3.1, loud=False, since=2.9)
    assert watch.poll(3.7) is NONE  # speech after the run began (2.9): a real barge-in, not a false one
    assert not watch.armed


def asked(since: float = 10.0, sent: bool = True) -> FalseTriggerMonitor:
    """A watch armed for a barge-in whose words may be asked for, quiet since it ran: it asks
    (and, ``sent``, the bridge's commit for them goes out)."""
    mon = FalseTriggerMonitor(delay_s=0.5)
    mon.start(since, loud=False, ask=True)
    assert mon.poll(since + 0.49) is NONE
    assert mon.poll(since + 0.5) is ASK
    if sent:
        mon.sending(since + 0.5)
    assert mon.poll(since + 0.52) is NONE  # asked once: waiting for the words
    return mon


def test_a_quiet_barge_in_asks_for_its_words_before_it_is_judged_false():
    """A reverberant soft "stop, stop" the model's VAD never started on: no turn, no words. The
    watch asks for them (the bridge commits the buffer) instead of continuing over the caller."""
    mon = asked()
    assert mon.committed("item_c1", 10.6)
    assert not mon.committed("item_c2", 10.7)  # only the reply to the bridge's commit is the asked one
    assert mon.poll(10.8) is NONE
    assert mon.words("item_c1", ANSWER)
    assert mon.poll(10.9) is ANSWER
    assert mon.poll(11.0) is NONE and not mon.armed  # given once


def test_no_words_an_acknowledgement_or_echo_continue_the_answer():
    mon = asked()
    mon.committed("item_c1", 10.6)
    assert not mon.words("item_other", ANSWER)  # another turn's words do not decide this one
    assert mon.words("item_c1", CONTINUE)
    assert mon.poll(10.9) is CONTINUE


def test_text_of_the_asked_turn_is_no_evidence_on_its_own():
    """Once asked, caller text alone does not end the watch (the agent's echo transcribed is text
    too): the asked turn's words decide."""
    mon = asked()
    mon.committed("item_c1", 10.6)
    mon.user_text("I'm here to help with", 10.8)
    assert mon.poll(10.9) is NONE and mon.armed
    mon.words("item_c1", CONTINUE)
    assert mon.poll(11.0) is CONTINUE


def test_speech_the_model_hears_while_asking_makes_it_real():
    mon = asked()
    mon.speech_started(10.7)
    assert mon.poll(10.8) is NONE and not mon.armed


def test_the_reply_to_the_bridges_commit_is_its_own_even_once_the_watch_has_ended():
    """Speech showed (or a response began) while the commit was on its way: the watch is done,
    but the reply is still the bridge's commit, never the model's own turn (review rv16)."""
    mon = asked()
    mon.speech_started(10.52)
    assert mon.poll(10.54) is NONE and not mon.armed
    assert mon.committed("item_c1", 10.6)
    assert not mon.committed("item_in1", 11.5)  # the model's turn after it is its own


def test_a_reply_that_never_came_is_not_taken_for_a_later_turn():
    mon = asked()
    assert mon.poll(10.5 + WORDS_S) is ANSWER
    assert not mon.committed("item_in1", 10.5 + REPLY_S + 0.1)


def test_words_that_never_come_are_answered_not_talked_over():
    """A commit with no transcript (lost, or too slow): the model, which has the audio, answers;
    continuing over a "stop" is worse than asking about a cough."""
    mon = asked()
    mon.committed("item_c1", 10.6)
    assert mon.poll(10.5 + WORDS_S - 0.01) is NONE
    assert mon.poll(10.5 + WORDS_S) is ANSWER


def test_a_commit_that_could_not_go_out_or_was_refused_continues():
    mon = asked()
    assert mon.refused()
    assert not mon.refused()  # said once
    assert mon.poll(10.6) is CONTINUE
    mon = asked(sent=False)
    mon.cannot_ask()  # (a commit of the bridge's awaited its reply: none could be sent)
    assert mon.poll(10.6) is CONTINUE


def test_a_refusal_with_no_commit_of_the_watchs_on_its_way_is_not_the_watchs():
    mon = asked()
    mon.committed("item_c1", 10.6)
    assert not mon.refused()
    assert mon.poll(10.7) is NONE
    mon = asked(sent=False)
    mon.adopt()  # awaiting the model's open turn: another commit's refusal does not end it
    assert not mon.refused()
    assert mon.poll(10.7) is NONE and mon.armed


def test_without_asking_the_watch_continues_as_before():
    mon = FalseTriggerMonitor(delay_s=0.5)
    mon.start(10.0, loud=False, ask=False)
    assert mon.poll(10.5) is CONTINUE
    assert not mon.committed("item_c1", 10.6)


def test_a_new_barge_in_starts_a_new_question():
    mon = asked()
    mon.committed("item_c1", 10.6)
    mon.start(11.0, loud=False, ask=True)  # the caller barged in on the next answer
    assert not mon.words("item_c1", ANSWER)  # the first one's words no longer decide
    assert mon.poll(11.5) is ASK


def test_a_model_turn_open_at_the_asking_is_awaited_and_its_words_decide():
    """The model's VAD started before the barge-in's onset (on the room), or on its first word and
    that start was judged a backchannel: no speech evidence since, but its turn holds the words.
    The watch awaits that turn's own commit instead of committing, and does not continue meanwhile."""
    mon = asked(sent=False)
    mon.adopt()
    assert mon.adopted
    assert mon.poll(11.0) is NONE
    assert not mon.committed("item_in1", 11.2)  # the model's own turn: the listener judges it too
    assert mon.asking("item_in1")
    assert mon.words("item_in1", ANSWER)
    assert mon.poll(11.5) is ANSWER


def test_an_awaited_turn_the_bridge_answered_itself_ends_the_watch_quietly():
    mon = asked(sent=False)
    mon.adopt()
    mon.committed("item_in1", 11.2)
    mon.words("item_in1", NONE)  # answered at its commit (or its words took the turn): nothing more to do
    assert mon.poll(11.5) is NONE and not mon.armed


def test_the_watch_keeps_its_old_import_path_and_its_polls_truth():
    """``poll`` answered a bool before the words were asked for: nothing to do is still falsy."""
    from voicebridge.audio.detector import FalseTriggerMonitor as before
    assert before is FalseTriggerMonitor
    assert not NONE and CONTINUE and ANSWER and ASK
