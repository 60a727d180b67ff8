"""Tool definitions, the sans-IO pieces of call control, and every client event against the openai types."""
from __future__ import annotations

import datetime
import decimal
import enum
import json
from typing import Annotated, Literal, Optional

import pytest

from voicebridge import BridgeConfig
from voicebridge.model import protocol as rt
from voicebridge.call.ending import Decision, Pending, decide
from voicebridge.call.keypad import DtmfCollector, KeypadBatches
from voicebridge.call.limits import CallLimits, LimitAction
from voicebridge.call.metrics import CallMetrics
from voicebridge.call.record import CallRecord
from voicebridge.call.turns import Turns
from voicebridge.call.tools import CallInfo, encode_result, tool
from realtime_types import client_event


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def test_schema_from_type_hints_and_description_from_the_docstring():
    @tool
    def book(date: Annotated[str, "ISO date"], seats: int, color: Color, kind: Literal["a", "b"] = "a",
             notes: Optional[str] = None, tags: list[str] = (), call: CallInfo = None) -> dict:  # type: ignore[assignment]
        """Book a table.

        More text that is not the description.
        """
        return {}

    assert book.description == "Book a table."
    assert book.call_info_param == "call"
    assert book.parameters == {"type": "object", "required": ["date", "seats", "color"], "properties": {
        "date": {"type": "string", "description": "ISO date"}, "seats": {"type": "integer"},
        "color": {"type": "string", "enum": ["red", "blue"]}, "kind": {"type": "string", "enum": ["a", "b"]},
        "notes": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}}
    assert book.definition()["type"] == "function"
    assert tool(name="other", description="x", timeout_s=2)(lambda: 1).name == "other"


def test_bad_tools_are_refused_when_configured():
    with pytest.raises(ValueError, match="description"):
        tool(lambda x: x)  # no docstring
    with pytest.raises(ValueError, match="name"):
        tool(name="has space", description="d")(lambda: 0)

    @tool
    def end_call() -> None:
        """Mine."""

    with pytest.raises(ValueError, match="bridge's own"):
        BridgeConfig(tools=(end_call,))
    with pytest.raises(ValueError, match="E.164"):
        BridgeConfig(transfer_targets={"sales": "555-1234"})
    assert BridgeConfig(transfer_targets={"s": "+15551234567", "t": "sip:desk@example.com"}).transfer_targets


def test_results_are_json_except_strings():
    assert encode_result({"a": 1}) == '{"a":1}' and encode_result("plain") == "plain"
    assert json.loads(encode_result([1, {"b": None}])) == [1, {"b": None}]
    assert [encode_result(v) for v in (42, -1.5, None, True, False, [], (1, "x"))] == [
        "42", "-1.5", "null", "true", "false", "[]", '[1,"x"]']
    assert encode_result(10**40) == str(10**40)  # a huge integer is still a JSON number
    when = datetime.date(2026, 12, 2)
    assert json.loads(encode_result({"eta": when, "price": decimal.Decimal("9.50")})) == {
        "eta": "2026-12-02", "price": "9.50"}  # objects JSON does not know: by their str
    assert json.loads(encode_result(Color.RED)) == "Color.RED"
    big = encode_result({"rows": ["x" * 100] * 10_000})  # encoded whole: the bridge's cap applies later
    assert len(big) > 1_000_000 and json.loads(big)["rows"][0] == "x" * 100
    assert encode_result("é" * 3) == "ééé"  # a str is not re-encoded
    looped: list = []
    looped.append(looped)
    for bad in (float("nan"), [float("inf")], looped, {(1, 2): "tuple key"}):
        with pytest.raises((ValueError, TypeError)):  # never invalid JSON: the tool failed instead
            encode_result(bad)


def assert_client_event(text: str) -> None:
    """Valid for the openai package's GA client-event union, with no field it does not know."""
    from pydantic import BaseModel

    model = client_event(json.loads(text))
    stack = [model]
    while stack:
        node = stack.pop()
        if isinstance(node, BaseModel):
            assert not node.model_extra, (type(node).__name__, node.model_extra)
            stack += [getattr(node, name) for name in type(node).model_fields]
        elif isinstance(node, (list, tuple)):
            stack += list(node)


def test_every_client_event_the_bridge_sends_matches_the_openai_types():
    @tool
    def lookup(order_id: str) -> str:
        """Look up."""
        return order_id

    config = BridgeConfig(tools=(lookup,), end_call=True, transfer_targets={"support": "+15551234567"})
    for text in [rt.session_update(config), rt.session_update(BridgeConfig()), rt.input_audio_append("AAAA"),
                 rt.response_create(), rt.response_create("Say hi", "greeting", "vb_greeting_1"),
                 rt.response_create("still checking", "filler", "vb_filler_2", out_of_band=True),
                 rt.response_cancel("resp_1"), rt.item_truncate("item_1", 1200),
                 rt.function_call_output("call_1", '{"ok":true}'), rt.user_text("The caller entered 12.")]:
        assert_client_event(text)
    update = json.loads(rt.session_update(config))["session"]
    assert [t["name"] for t in update["tools"]] == ["lookup", "end_call", "transfer_call"]
    assert update["tool_choice"] == "auto"


def test_keypad_sequences_end_at_the_terminator_a_pause_or_the_length():
    keys = DtmfCollector(terminator="#", timeout_s=2.0, max_digits=4)
    assert [keys.press(k, t) for k, t in [("1", 0.0), ("2", 0.5), ("#", 0.9)]] == [None, None, "12"]
    assert keys.press("#", 1.0) is None  # a terminator alone is no entry
    keys.press("7", 10.0)
    assert keys.poll(11.9) is None and keys.poll(12.0) == "7"
    assert [keys.press(k, 20.0) for k in "12345"][3] == "1234"


def test_keypad_entries_faster_than_the_interval_are_handed_on_together():
    batches = KeypadBatches(interval_s=1.0, max_entries=3)
    first = batches.add("12", 0.0)
    assert first is not None and first.entries == ("12",) and first.dropped == 0  # the first at once
    assert [batches.add(e, 0.1 * i) for i, e in enumerate("34567", 1)] == [None] * 5
    assert batches.due(0.9) is None
    late = batches.due(1.0)
    assert late is not None and late.entries == ("5", "6", "7") and late.dropped == 2 and late.digits == 3
    assert batches.due(5.0) is None  # nothing waiting
    alone = batches.add("9", 5.0)
    assert alone is not None and alone.entries == ("9",)  # a quiet keypad is never held back


def test_idle_nudge_then_goodbye_and_the_length_limit():
    limits = CallLimits(start=0.0, idle_nudge_s=10, idle_hangup_s=5, max_call_s=None, wrap_up_s=30)
    assert limits.poll(9.9, busy=False) is LimitAction.NONE
    assert limits.poll(10.0, busy=False) is LimitAction.NUDGE
    assert limits.poll(12.0, busy=True) is LimitAction.NONE  # the nudge is being said
    assert limits.poll(16.9, busy=False) is LimitAction.NONE
    assert limits.poll(17.0, busy=False) is LimitAction.IDLE_GOODBYE
    assert limits.poll(60.0, busy=False) is LimitAction.NONE  # once
    again = CallLimits(start=0.0, idle_nudge_s=10, idle_hangup_s=5, max_call_s=None, wrap_up_s=30)
    again.poll(10.0, busy=False)
    again.caller_active(11.0)  # the caller answers: back to the start
    assert again.poll(20.9, busy=False) is LimitAction.NONE and again.poll(21.0, busy=False) is LimitAction.NUDGE
    timed = CallLimits(start=0.0, idle_nudge_s=None, idle_hangup_s=None, max_call_s=100, wrap_up_s=30)
    assert [timed.poll(t, busy=True) for t in (69.9, 70.0, 71.0, 100.0)] == [
        LimitAction.NONE, LimitAction.WRAP_UP, LimitAction.NONE, LimitAction.END]


def test_response_requests_wait_for_the_active_response_and_retry_a_refusal():
    sent: list[dict] = []
    requests = Turns(lambda text: sent.append(json.loads(text)) or True, CallMetrics(), None, lambda: 0.0)
    requests.request("greeting", "Hi")
    requests.request("dtmf")  # waits: the greeting is on its way
    assert [e["response"]["metadata"]["voicebridge"] for e in sent] == ["greeting"]
    requests.created("resp_1", "greeting")
    requests.done("resp_1")
    assert [e["response"]["metadata"]["voicebridge"] for e in sent] == ["greeting", "dtmf"]
    requests.created("resp_vad", None)  # the server's VAD started a response of its own first...
    assert requests.refused(sent[-1]["event_id"])  # ...so ours was refused: it waits for that one
    assert len(sent) == 2
    requests.done("resp_vad")
    assert sent[-1]["response"]["metadata"]["voicebridge"] == "dtmf" and len(sent) == 3
    assert not requests.refused("someone-else")


def test_the_record_keeps_what_the_caller_heard_and_sums_usage():
    entries = []
    record = CallRecord(lambda: 10.0, entries.append)
    record.started(8.0)
    record.agent_words("r1", "one two three four")
    record.agent_words("r1", "one two three four five six seven eight", final=True)
    record.agent_cut("r1", heard_ms=500, received_ms=2000)
    record.agent_done("r1", None)
    record.usage((("total_tokens", 30), ("output_audio_tokens", 20)))
    record.usage((("total_tokens", 12),))
    assert [(e.role, e.text, e.detail.get("interrupted"), e.t) for e in entries] == [("agent", "one two", True, 2.0)]
    assert record.totals == {"total_tokens": 42, "output_audio_tokens": 20}


def test_one_ending_per_call_a_transfer_beats_a_pending_hang_up():
    def hang_up():
        return Pending("agent ended the call", 0.0, None, None)

    def transfer(to):
        return Pending(f"transferred to {to}", 0.0, None, None, f"+1555000000{len(to)}", to)

    assert decide(None, False, hang_up()) is Decision.STARTED
    assert decide(None, False, transfer("a")) is Decision.STARTED
    assert decide(hang_up(), False, transfer("a")) is Decision.REPLACED  # only pending: the transfer wins
    assert decide(hang_up(), True, transfer("a")) is Decision.REFUSED  # carried out: too late
    assert decide(transfer("a"), False, hang_up()) is Decision.REFUSED
    assert decide(transfer("a"), False, transfer("bb")) is Decision.REFUSED  # the first transfer stands
    assert decide(transfer("a"), False, transfer("a")) is Decision.ALREADY
    assert decide(hang_up(), False, hang_up()) is Decision.ALREADY


def test_a_plain_function_among_the_tools_is_refused_naming_the_decorator():
    """(A new user's first mistake: a function not decorated, or one passed without a tuple.)"""
    def lookup(order: str) -> str:
        """Look an order up."""
        return order

    with pytest.raises(ValueError, match=r"'lookup' is not a tool: decorate it with @voicebridge.tool"):
        BridgeConfig(tools=(lookup,))
    with pytest.raises(ValueError, match=r"tools must be a tuple"):
        BridgeConfig(tools=tool(lookup))
