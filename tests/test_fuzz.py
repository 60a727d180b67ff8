"""Property-based tests: the parsers never raise and the Framer never loses or invents a byte.

Random bytes, random text and random JSON (including near-valid Twilio / Realtime messages with
fields of the wrong type) go through ``twilio_protocol.parse`` and ``realtime_protocol.parse``;
random chunkings go through ``Framer``. Kept small (modest max_examples, no deadline) so the
whole file runs in a few seconds.
"""
from __future__ import annotations

import base64
import json

import pytest
from hypothesis import example, given, settings, strategies as st

from voicebridge import peerjson
from voicebridge.model import protocol as rt
from voicebridge.carrier.twilio import protocol as tw
from voicebridge.errors import ProtocolError
from voicebridge.config import BridgeConfig
from voicebridge.audio.framing import Framer
from voicebridge.testing import rt_function_call, rt_response_created, rt_response_done, wait_until
from voicebridge.call.tools import tool

FAST = settings(max_examples=100, deadline=None, database=None)

# floats include NaN and +-Infinity: Python's json emits and accepts them (and 1e400 parses as inf)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
b64ish = st.one_of(st.binary(max_size=400).map(lambda b: base64.b64encode(b).decode()),
                   st.text(max_size=40))

TWILIO_EVENTS = ["connected", "start", "media", "mark", "dtmf", "stop", "clear", "unknown"]
REALTIME_TYPES = sorted(rt._PARSERS) + sorted(rt.KNOWN_IGNORED)[:5] + ["x.unknown"]  # noqa: SLF001


def twilio_like():
    """Messages shaped like Twilio's, with every field possibly missing or of the wrong type."""
    field = json_values | b64ish
    keys = ["callSid", "accountSid", "name", "digit", "track", "chunk", "timestamp", "customParameters",
            "tracks", "mediaFormat"]
    # inner objects usually carry the field a parser looks for first, so the parsers get past it
    inner = st.fixed_dictionaries({}, optional={"streamSid": st.text(min_size=1, max_size=8) | field,
                                                "payload": b64ish | field,
                                                **{k: field for k in keys}})
    # the object under the key named by the event (``start.start``, ``media.media``...) is the one
    # the parser digs into, so it is always there and mostly an object
    return st.sampled_from(TWILIO_EVENTS).flatmap(lambda ev: st.fixed_dictionaries(
        {"event": st.just(ev), ev: inner | json_values},
        optional={"streamSid": field, "sequenceNumber": field}))


def realtime_like():
    field = json_values | b64ish
    inner = st.dictionaries(st.sampled_from(["id", "status", "status_details", "type", "code", "message",
                                             "param", "event_id"]), field, max_size=5)
    return st.fixed_dictionaries(
        {"type": st.sampled_from(REALTIME_TYPES) | json_values},
        optional={"delta": field, "response_id": field, "item_id": field, "response": inner | json_values,
                  "item": inner | json_values, "error": inner | json_values, "transcript": field,
                  "audio_start_ms": field, "audio_end_ms": field})


any_message = st.one_of(st.binary(max_size=300), st.text(max_size=300), st.none(),
                        json_values.map(json.dumps))

TWILIO_TYPES = (tw.Connected, tw.Start, tw.Media, tw.Mark, tw.Dtmf, tw.Stop, ProtocolError)


MALFORMED = object()


def decoded(message):
    """What a peer's text decodes to, or MALFORMED where a parser must call it malformed."""
    try:
        value = json.loads(message)
    except (ValueError, RecursionError):
        return MALFORMED
    return value if peerjson.depth(value) <= peerjson.MAX_DEPTH else MALFORMED


def twilio_outcome(message):
    """The outcome ``twilio_protocol.parse`` owes ``message``, worked out independently."""
    if not isinstance(message, str):
        return "binary_frame"
    value = decoded(message)
    if not isinstance(value, dict):
        return "malformed_json"
    if value.get("event") not in {"connected", "start", "media", "mark", "dtmf", "stop"}:
        return "unknown_event"
    return "event"


@FAST
@given(any_message)
@example("[" * 100_000)  # 100 KB of nesting: RecursionError from json.loads before the fix
@example('{"event": "media", "media": ' + "[" * 5000 + "]" * 5000 + "}")
@example("1" * 5000)  # past Python's 4300-digit limit for int()
def test_twilio_parse_of_random_input_gives_the_outcome_it_owes(message):
    event = tw.parse(message)
    outcome = twilio_outcome(message)
    if outcome == "event":
        assert isinstance(event, TWILIO_TYPES)
        if isinstance(event, ProtocolError):  # a known event with fields missing or of the wrong type
            assert event.kind in {"missing_field", "bad_base64", "bad_sid"}, event
    else:
        assert isinstance(event, ProtocolError) and (event.side, event.kind) == ("twilio", outcome), event


@FAST
@given(twilio_like())
@example({"event": "start", "start": {"streamSid": "MZ", "tracks": 5}})  # found by this test
@example({"event": "start", "start": {"streamSid": "MZ", "mediaFormat": [1, 2]}})
@example({"event": "media", "media": {"payload": "", "timestamp": float("inf")}})
@example({"event": "dtmf", "dtmf": {"digit": []}})  # found by this test (an unhashable digit)
def test_twilio_parse_never_raises_on_twilio_shaped_json(msg):
    event = tw.parse(json.dumps(msg))
    assert isinstance(event, TWILIO_TYPES)
    if isinstance(event, tw.Media):
        # content preserved: the payload is exactly the decoded base64 that was sent
        assert base64.b64decode(msg["media"]["payload"], validate=True) == event.payload
    if isinstance(event, ProtocolError):
        assert event.side == "twilio" and event.kind


@FAST
@given(st.binary(max_size=800), st.text(min_size=1, max_size=40))
def test_twilio_media_round_trip(payload, sid):
    out = tw.Outbound(sid)
    event = tw.parse(out.media(payload))
    assert isinstance(event, tw.Media) and event.payload == payload and event.stream_sid == sid
    mark = json.loads(out.mark(sid))
    assert mark == {"event": "mark", "streamSid": sid, "mark": {"name": sid}}


@FAST
@given(any_message)
@example("[" * 100_000)
@example('{"type": "response.done", "response": ' + "{\"a\":" * 3000 + "1" + "}" * 3000 + "}")
@example('{"type": "error", "error": {"code": 1' + "0" * 5000 + "}}")
def test_realtime_parse_of_random_input_gives_the_outcome_it_owes(message):
    event = rt.parse(message)
    if isinstance(message, (bytes, bytearray)) or not isinstance(message, str):
        assert event == ProtocolError("openai", "binary_frame", event.detail)
        return
    value = decoded(message)
    if value is MALFORMED:
        assert isinstance(event, ProtocolError) and event.kind == "malformed_json", event
    elif not isinstance(value, dict) or not isinstance(value.get("type"), str):
        assert isinstance(event, ProtocolError) and event.kind == "missing_field", event
    elif value["type"] not in rt._PARSERS:  # noqa: SLF001
        assert event == rt.Other(value["type"], value["type"] in rt.KNOWN_IGNORED)
    else:
        assert not isinstance(event, rt.Other)


@FAST
@given(realtime_like())
@example({"type": "input_audio_buffer.speech_started", "audio_start_ms": float("inf")})  # found by this test
@example({"type": "conversation.item.truncated", "audio_end_ms": float("nan")})
def test_realtime_parse_never_raises_on_realtime_shaped_json(msg):
    event = rt.parse(json.dumps(msg))
    assert event is not None
    if isinstance(event, rt.AudioDelta):
        assert base64.b64encode(event.audio).decode() == base64.b64encode(
            base64.b64decode(msg["delta"], validate=True)).decode()
    if isinstance(event, rt.ServerError):
        assert isinstance(event.code, str) and event.code and isinstance(event.fatal, bool)


@FAST
@given(st.binary(max_size=600), st.text(max_size=20), st.text(max_size=20))
def test_realtime_audio_delta_content_preserved(audio, rid, iid):
    msg = {"type": "response.output_audio.delta", "response_id": rid, "item_id": iid,
           "delta": base64.b64encode(audio).decode()}
    assert rt.parse(json.dumps(msg)) == rt.AudioDelta(rid, iid, audio)


@FAST
@given(st.lists(st.binary(max_size=700), max_size=30), st.booleans())
def test_framer_whole_frames_and_content_preserved(chunks, finish):
    framer = Framer()
    frames = []
    for chunk in chunks:
        out = framer.push(chunk)
        assert all(len(f) == 160 for f in out)
        frames += out
        assert 0 <= framer.pending < 160
    data = b"".join(chunks)
    if finish:
        tail = framer.end()
        assert len(tail) <= 1 and all(len(f) == 160 for f in tail)
        frames += tail
        joined = b"".join(frames)
        assert joined[:len(data)] == data and set(joined[len(data):]) <= {0xFF}
        assert framer.padded_bytes == len(joined) - len(data) < 160
        assert framer.pending == 0
    else:
        joined = b"".join(frames)
        dropped = framer.drop()
        assert joined + data[len(joined):] == data and len(joined) + dropped == len(data)
        assert framer.dropped_bytes == dropped and framer.pending == 0


# ----------------------------------------------------------------------------- nesting, numbers, unicode
odd_text = st.text(alphabet=st.characters(blacklist_categories=()), max_size=30) | st.sampled_from(
    ["\ud800", "\udfff", "\x00", "\u202e", "\ufeff", "\U0001f600", "e\u0301", "\uffff"])
deep = st.integers(min_value=peerjson.MAX_DEPTH + 1, max_value=20_000)
huge_numbers = st.sampled_from(["1" * 5000, "-" + "9" * 4400, "1e999999", "-1e400", "1" + "0" * 400 + ".5",
                                "123456789012345678901234567890"])


@FAST
@given(deep, st.sampled_from(["[", '{"a":']), st.sampled_from(["twilio", "openai"]))
def test_nesting_deeper_than_the_limit_is_malformed_wherever_it_is(depth, opener, side):
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + "1" + closer * depth if opener != "[" else opener * depth + closer * depth
    message = (f'{{"event":"mark","streamSid":"MZ","mark":{{"name":{nested}}}}}' if side == "twilio"
               else f'{{"type":"response.done","response":{{"status_details":{nested}}}}}')
    event = (tw.parse if side == "twilio" else rt.parse)(message)
    assert isinstance(event, ProtocolError) and (event.side, event.kind) == (side, "malformed_json"), event


@FAST
@given(st.integers(min_value=1, max_value=peerjson.MAX_DEPTH - 3))
def test_nesting_within_the_limit_is_parsed(depth):
    nested = "[" * depth + "]" * depth
    event = tw.parse(f'{{"event":"mark","streamSid":"MZ1","mark":{{"name":{nested}}}}}')
    assert event == ProtocolError("twilio", "missing_field", "mark message without mark.name")  # not malformed
    assert rt.parse(f'{{"type":"response.done","response":{{"id":"r","status_details":{nested}}}}}') == \
        rt.ResponseDone("r", "completed", None)


@FAST
@given(huge_numbers)
def test_huge_numbers_are_malformed_or_ignored_never_raised(number):
    """Past 4300 digits Python refuses the int (malformed); a huge float is inf (a field ignored)."""
    digits = len(number.lstrip("-").split(".")[0].split("e")[0])
    malformed = digits > 4300
    for event in (tw.parse(f'{{"event":"media","streamSid":"MZ1","media":{{"payload":"","timestamp":{number}}}}}'),
                  rt.parse(f'{{"type":"input_audio_buffer.speech_started","item_id":"i","audio_start_ms":{number}}}')):
        if malformed:
            assert isinstance(event, ProtocolError) and event.kind == "malformed_json", event
        elif isinstance(event, tw.Media):
            value = json.loads(number)
            assert event.timestamp_ms == (int(value) if value not in (float("inf"), float("-inf")) else None)
        else:
            value = json.loads(number)
            assert event == rt.SpeechStarted("i", int(value) if abs(value) != float("inf") else 0)


@FAST
@given(odd_text, odd_text)
def test_odd_unicode_reaches_the_bridge_exactly_as_sent(text, name):
    """Lone surrogates, NUL, bidi controls, combining marks: kept as they were sent, never an error."""
    transcript = {"type": "conversation.item.input_audio_transcription.completed", "item_id": name,
                  "transcript": text}
    assert rt.parse(json.dumps(transcript)) == rt.Transcript(name, text, True)
    raw = json.dumps(transcript, ensure_ascii=False)  # unescaped, as a text frame would carry it
    assert rt.parse(raw) == rt.Transcript(name, text, True)
    assert tw.parse(json.dumps({"event": "mark", "streamSid": "MZ1", "mark": {"name": text}})) == tw.Mark("MZ1", text)


@pytest.mark.usefixtures("no_escaped_exceptions")
def test_deeply_nested_tool_arguments_from_the_model_never_raise(bridge_call):
    """end_call, transfer_call and an app tool each get 60 KB of ``[[[``: an answer, not a crash."""
    @tool
    def lookup(order_id: str = "") -> str:
        """Look an order up."""
        return "found"

    config = BridgeConfig(greeting=None, barge_in=False, end_call=True, transfer_targets={"desk": "+15551234567"},
                          tools=(lookup,), tool_filler_after_ms=0, idle_nudge_s=None, idle_hangup_s=None)
    call = bridge_call(config).start()
    openai, nested = call.openai, "[" * 60_000
    openai.push(rt_response_created("resp_1"))
    for call_id, name in (("c1", "transfer_call"), ("c2", "lookup"), ("c3", "end_call")):
        openai.push(rt_function_call("resp_1", call_id, name, nested))
    openai.push(rt_response_done("resp_1"))
    assert wait_until(lambda: len(openai.events("conversation.item.create")) == 3)
    outputs = {e["item"]["call_id"]: json.loads(e["item"]["output"]) for e in openai.events("conversation.item.create")}
    assert outputs["c1"] == {"ok": False, "error": "unknown destination"}
    assert outputs["c2"] == {"error": "the lookup failed"} and outputs["c3"]["ok"] is True
    assert wait_until(lambda: openai.requested("goodbye")) and call.session.control.ending  # the hang-up is on
    m = call.finish()
    assert m["close_reason"] == "twilio stop" and m["tool_errors"] == 1
