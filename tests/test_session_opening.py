"""The session's opening (answering.py through MediaSession): held for the AMD verdict, then the
greeting, the voicemail message or the hang-up; callee-first calls wait for the callee."""
import threading

from voicebridge import BridgeConfig
from voicebridge.call.opening import AnsweredBy
from voicebridge.testing import wait_until

FRAME = bytes(range(160))


class Verdict:
    """The board as the session sees it: empty until ``set``, then the verdict once."""

    def __init__(self) -> None:
        self.value: AnsweredBy | None = None
        self.asked = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, now: float) -> AnsweredBy | None:
        self.asked.set()
        with self.lock:
            value, self.value = self.value, None
        return value

    def set(self, value: AnsweredBy) -> None:
        with self.lock:
            self.value = value


def held_call(bridge_call, **options):
    config = BridgeConfig(greeting_instructions="Say hello", barge_in=False, amd=True, first_speaker="callee",
                          **options)
    call = bridge_call(config)
    verdict = Verdict()
    call.session.answer_source = verdict
    call.start()
    assert wait_until(lambda: call.openai.events("session.update")) and verdict.asked.wait(5)
    call.twilio.media(FRAME, n=3)
    return call, verdict


def kinds(openai):
    return [e["response"]["metadata"]["voicebridge"] for e in openai.events("response.create")]


def test_held_until_a_person_is_found_then_the_agent_greets(bridge_call):
    call, verdict = held_call(bridge_call)
    assert wait_until(lambda: call.session.metrics.get("inbound_frames_held") == 3)
    assert kinds(call.openai) == [] and call.openai.appended() == b""  # silent, and the "hello?" held back
    verdict.set(AnsweredBy.HUMAN)
    assert wait_until(lambda: kinds(call.openai) == ["greeting"])
    assert call.openai.events("response.create")[0]["response"]["instructions"] == "Say hello"
    call.twilio.media(FRAME, n=2)  # the conversation is open: the callee's audio reaches the model
    assert wait_until(lambda: len(call.openai.appended()) == 2 * 160)
    m = call.finish()
    assert m["transcript"][0]["text"] == "answered by human: speak"


def test_a_machine_gets_the_voicemail_message_and_the_hang_up_is_pending(bridge_call):
    call, verdict = held_call(bridge_call, voicemail_message="Please call us back.")
    verdict.set(AnsweredBy.MACHINE_END_BEEP)
    assert wait_until(lambda: kinds(call.openai) == ["voicemail"])
    instructions = call.openai.events("response.create")[0]["response"]["instructions"]
    assert instructions.endswith("Say exactly these words and nothing else: Please call us back.")
    assert call.session.control.ending  # hangs up once the message has been heard
    call.finish()


def test_a_fax_is_hung_up_on(bridge_call):
    call, verdict = held_call(bridge_call)
    verdict.set(AnsweredBy.FAX)
    assert wait_until(lambda: call.session.close_reason is not None)
    m = call.finish(stop=False)
    assert m["close_reason"] == "answered by fax" and kinds(call.openai) == []


def test_callee_first_without_amd_gets_the_greeting_after_their_silence(bridge_call):
    call = bridge_call(BridgeConfig(greeting_instructions="Say hello", barge_in=False, first_speaker="callee",
                                    callee_silence_ms=300))
    call.start()
    call.twilio.media(FRAME, n=2)
    assert wait_until(lambda: len(call.openai.appended()) == 2 * 160)  # not held: the model hears them
    assert wait_until(lambda: kinds(call.openai) == ["greeting"])
    call.finish()


def test_a_failing_verdict_lookup_is_logged_once_and_the_timeout_still_opens_the_call(bridge_call, caplog):
    config = BridgeConfig(greeting_instructions="Say hello", barge_in=False, amd=True, amd_timeout_s=0.6)
    call = bridge_call(config)
    calls = []

    def broken(now):
        calls.append(now)
        raise OSError("state directory gone")
    call.session.answer_source = broken
    call.start()
    assert wait_until(lambda: kinds(call.openai) == ["greeting"])  # unknown rule: a person may be there
    m = call.finish()
    assert len(calls) >= 2 and m["amd_lookup_errors"] == len(calls)
    assert sum("AMD verdict not looked up" in r.getMessage() for r in caplog.records) == 1
    assert m["transcript"][0]["text"] == "answered by unknown (no verdict in time): speak"
