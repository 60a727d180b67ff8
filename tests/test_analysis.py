"""Post-call analysis: the schema check, the local model's JSON answer, the session's out-of-band request."""
import json

from voicebridge import BridgeConfig
from voicebridge.call.analysis import ANALYSIS_INSTRUCTIONS, EVENT_ID, PostCallAnalysis, full_schema, outcome, request, validate
from voicebridge.dev.local.agent import ScriptedAgent, Voice
from voicebridge.dev.local.engine import RealtimeEngine
from voicebridge.testing import wait_until

FIELDS = {"type": "object", "properties": {
    "appointment_confirmed": {"type": "boolean"},
    "callback_in_days": {"type": "integer", "minimum": 1, "maximum": 30},
    "mood": {"enum": ["happy", "neutral", "angry"]},
    "topics": {"type": "array", "items": {"type": "string"}}},
    "required": ["appointment_confirmed"]}


def test_validator_checks_types_required_enums_ranges_and_items():
    schema = full_schema(FIELDS)
    good = {"summary": "ok", "appointment_confirmed": True, "callback_in_days": 3, "mood": "happy", "topics": ["a"]}
    assert validate(good, schema) == []
    bad = {"appointment_confirmed": "yes", "callback_in_days": 0, "mood": "sad", "topics": [1]}
    problems = validate(bad, schema)
    assert "$: missing 'summary'" in problems
    assert any("appointment_confirmed: expected boolean" in p for p in problems)
    assert any("callback_in_days: 0 is below 1" in p for p in problems)
    assert any("mood" in p for p in problems) and any("topics[0]" in p for p in problems)
    assert validate(True, {"type": "integer"}) == ["$: expected integer, got bool"]


def test_outcome_parses_json_even_fenced_and_says_why_not():
    schema = full_schema(FIELDS)
    assert outcome('```json\n{"summary": "s", "appointment_confirmed": false}\n```', schema, "completed")["valid"]
    assert outcome("I think yes", schema, "completed")["errors"] == ["not JSON"]
    assert outcome(None, schema, "timeout") == {"status": "timeout", "valid": False, "value": None,
                                                "errors": ["no answer (timeout)"]}


def test_the_local_model_answers_an_out_of_band_analysis_with_schema_valid_json():
    engine = RealtimeEngine(ScriptedAgent(Voice(live=False)), speed=4.0)
    engine.open(0.0)
    now, events = 0.0, engine.handle(request(full_schema(FIELDS)), 0.0)
    while engine.response_active:
        now = max(now, engine.next_deadline())
        events += engine.poll(now)
    done = [e for e in events if e["type"] == "response.done"][0]["response"]
    assert done["metadata"] == {"voicebridge": "analysis"} and done["conversation_id"] is None
    text = done["output"][0]["content"][0]["text"]
    assert validate(json.loads(text), full_schema(FIELDS)) == []
    assert not [e for e in events if e["type"] == "conversation.item.added"]  # out of band: no conversation item


def test_an_analysis_refused_by_the_service_ends_at_once_not_at_the_timeout():
    analysis = PostCallAnalysis(FIELDS, "Analyse.", timeout_s=60.0)
    assert analysis.begin(lambda text: True, ready=True)
    error = {"type": "error", "error": {"type": "invalid_request_error", "code": "x", "event_id": EVENT_ID}}
    assert analysis.take(json.dumps(error))
    assert analysis.wait()["status"] == "refused: x"
    assert not PostCallAnalysis(None, "", 1.0).begin(lambda text: True, ready=True)  # not configured: no request


def test_an_answer_read_before_the_request_s_send_returned_is_the_analysis_s():
    """The model thread may read the answer while the closing thread is still in ``send``."""
    engine = RealtimeEngine(ScriptedAgent(Voice(live=False)), speed=4.0)
    engine.open(0.0)
    analysis = PostCallAnalysis(FIELDS, ANALYSIS_INSTRUCTIONS, timeout_s=0.5)
    taken: list[bool] = []

    def send(text: str) -> bool:  # the whole answer arrives (and is read) before send returns
        now, events = 0.0, engine.handle(text, 0.0)
        while engine.response_active:
            now = max(now, engine.next_deadline())
            events += engine.poll(now)
        taken.extend(analysis.take(json.dumps(event)) for event in events)
        return True

    assert analysis.begin(send, ready=True)
    assert any(taken)
    result = analysis.wait()
    assert result["status"] == "completed" and result["valid"], result


def test_the_session_asks_before_closing_the_model_and_the_report_has_the_answer(bridge_call):
    reports = []
    config = BridgeConfig(greeting_instructions=None, barge_in=False, join_timeout_s=3.0, reconnect_attempts=0,
                          analysis_schema=FIELDS, analysis_timeout_s=5.0)
    call = bridge_call(config, on_report=lambda s, r: reports.append(r))
    call.start()
    openai = call.openai
    assert wait_until(lambda: openai.events("session.update"))
    call.twilio.stop()
    assert wait_until(lambda: openai.events("response.create"))
    asked = openai.events("response.create")[0]
    assert asked["response"]["conversation"] == "none" and asked["response"]["output_modalities"] == ["text"]
    assert not openai.closed.is_set()  # the model stays open for the answer
    answer = {"summary": "A short call.", "appointment_confirmed": True}
    openai.push({"type": "response.created", "response": {"id": "resp_a", "metadata": {"voicebridge": "analysis"}}})
    openai.push({"type": "response.done", "response": {"id": "resp_a", "status": "completed", "output": [
        {"type": "message", "content": [{"type": "output_text", "text": json.dumps(answer)}]}],
        "usage": {"total_tokens": 90, "input_tokens": 80, "output_tokens": 10,
                  "output_token_details": {"text_tokens": 10}}}})
    call.finish(stop=False)
    assert wait_until(lambda: reports)
    assert reports[0]["analysis"] == {"status": "completed", "valid": True, "value": answer, "errors": []}
    assert openai.closed.is_set()
    assert reports[0]["usage"]["output_text_tokens"] == 10  # the analysis's tokens count in the call's usage


def test_an_analysis_the_model_cannot_give_is_marked_unavailable(bridge_call):
    reports = []
    config = BridgeConfig(greeting_instructions=None, barge_in=False, join_timeout_s=3.0, reconnect_attempts=0,
                          analysis_schema=FIELDS)
    call = bridge_call(config, on_report=lambda s, r: reports.append(r))
    call.start()
    assert wait_until(lambda: call.openai.events("session.update"))
    call.openai.drop()  # the model connection is gone when the call ends
    call.twilio.stop()
    call.finish(stop=False)
    assert wait_until(lambda: reports)
    assert reports[0]["analysis"]["status"] in ("unavailable", "timeout") and not reports[0]["analysis"]["valid"]
