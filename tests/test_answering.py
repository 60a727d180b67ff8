"""The opening of a call (answering.py): who speaks first, and what the AMD verdict decides. Sans-IO."""
import pytest

from voicebridge.call.opening import AnsweredBy, Opening, OpeningGate, OpeningRules, Phase, opening_for

AMD = OpeningRules(amd=True, amd_timeout_s=30.0)


def started(rules: OpeningRules, now: float = 100.0) -> OpeningGate:
    gate = OpeningGate(rules)
    assert gate.start(now) is None
    return gate


def test_an_inbound_call_opens_at_once_with_the_agent_speaking():
    gate = OpeningGate(OpeningRules())
    assert gate.start(5.0) is Opening.SPEAK
    assert gate.phase is Phase.OPEN and not gate.holding and not gate.rules.deferred


@pytest.mark.parametrize("verdict,opening", [
    (AnsweredBy.HUMAN, Opening.SPEAK),
    (AnsweredBy.UNKNOWN, Opening.SPEAK),  # the documented rule: unknown is treated as a person
    (AnsweredBy.MACHINE_END_BEEP, Opening.VOICEMAIL),
    (AnsweredBy.MACHINE_END_SILENCE, Opening.VOICEMAIL),
    (AnsweredBy.MACHINE_END_OTHER, Opening.VOICEMAIL),
    (AnsweredBy.FAX, Opening.HANG_UP),
])
def test_the_verdict_decides_the_opening_once(verdict, opening):
    gate = started(AMD)
    assert gate.holding
    assert gate.poll(110.0) is None  # still holding: nothing decided, the agent silent
    assert gate.result(verdict, 111.0) is opening
    assert gate.verdict is verdict and gate.decided_at == 111.0 and not gate.timed_out
    assert gate.result(AnsweredBy.HUMAN, 112.0) is None and gate.poll(200.0) is None  # once only
    assert opening_for(verdict) is opening


def test_no_verdict_in_time_is_treated_as_unknown():
    gate = started(AMD)
    assert gate.poll(129.99) is None
    assert gate.poll(130.0) is Opening.SPEAK
    assert gate.timed_out and gate.verdict is AnsweredBy.UNKNOWN
    assert gate.result(AnsweredBy.MACHINE_END_BEEP, 131.0) is None  # too late: the conversation is open


def test_callee_first_without_amd_waits_for_their_words_then_lets_the_model_answer():
    gate = started(OpeningRules(callee_first=True, callee_silence_s=2.0))
    assert not gate.holding  # their audio goes to the model: it answers their "hello"
    assert gate.poll(101.0) is None
    gate.callee_speech(101.5)
    assert gate.poll(101.6) is Opening.LISTEN
    assert gate.poll(110.0) is None


def test_callee_first_and_silent_gets_the_agent_after_the_silence():
    gate = started(OpeningRules(callee_first=True, callee_silence_s=2.0))
    assert gate.poll(101.99) is None
    assert gate.poll(102.0) is Opening.SPEAK


def test_a_verdict_without_amd_is_ignored():
    gate = started(OpeningRules(callee_first=True))
    assert gate.result(AnsweredBy.MACHINE_END_BEEP, 100.5) is None and gate.phase is Phase.WAITING


@pytest.mark.parametrize("text,verdict", [("human", AnsweredBy.HUMAN),
                                          (" Machine_End_Beep ", AnsweredBy.MACHINE_END_BEEP), ("fax", AnsweredBy.FAX), ("robot", None), (None, None), ("", None)])
def test_answered_by_parses_twilios_values_only(text, verdict):
    assert AnsweredBy.parse(text) is verdict
