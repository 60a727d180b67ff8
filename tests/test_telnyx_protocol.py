"""Telnyx media streaming codec: documented frames parse to the bridge's events, anything else to a
ProtocolError (never an exception); outbound messages have exactly the documented fields."""
from __future__ import annotations

import base64
import json

from hypothesis import example, given, settings, strategies as st

from voicebridge import peerjson
from voicebridge.carrier.telnyx import protocol as tx
from voicebridge.carrier.seam import Connected, Dtmf, Mark, Media, Start, Stop
from voicebridge.errors import ProtocolError

FAST = settings(max_examples=150, deadline=None, database=None)
STREAM = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC"
CALL = "v3:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ"
EVENTS = (Connected, Start, Media, Mark, Dtmf, Stop, ProtocolError)


def start_frame(**start_fields) -> str:
    """Telnyx's documented start frame (developers.telnyx.com, stream call media over WebSocket)."""
    start = {"user_id": "3E6F995F-85F7-4705-9741-53B116D28237", "call_control_id": CALL,
             "call_session_id": "ff55a038-6f5d-11ef-9692-02420aeffb1f", "from": "+13122010094",
             "to": "+13122123456", "tags": ["TAG1"], "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
             "custom_parameters": {"customer_id": "customer_123"},
             "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}}
    start.update(start_fields)
    return json.dumps({"event": "start", "sequence_number": "1", "stream_id": STREAM, "start": start})


def test_connected_and_start_as_documented():
    assert tx.parse('{"event":"connected","version":"1.0.0"}') == Connected("telnyx", "1.0.0")
    event = tx.parse(start_frame())
    assert event == Start(stream_sid=STREAM, call_sid=CALL, account_sid="3E6F995F-85F7-4705-9741-53B116D28237",
                          tracks=("inbound",), custom_parameters={"customer_id": "customer_123"},
                          media_format={"encoding": "PCMU", "sample_rate": 8000, "channels": 1})


def test_media_mark_dtmf_stop_as_documented():
    frame = bytes(range(160))
    media = {"event": "media", "sequence_number": "4", "stream_id": STREAM,
             "media": {"track": "inbound", "chunk": "2", "timestamp": "5",
                       "payload": base64.b64encode(frame).decode()}}
    assert tx.parse(json.dumps(media)) == Media(STREAM, frame, 5, "inbound")
    assert tx.parse(json.dumps({"event": "mark", "sequence_number": "9", "stream_id": STREAM,
                                "mark": {"name": "g1:7"}})) == Mark(STREAM, "g1:7")
    assert tx.parse(json.dumps({"event": "dtmf", "stream_id": STREAM, "occurred_at": "2024-01-01T00:00:00Z",
                                "sequence_number": "5", "dtmf": {"digit": "#"}})) == Dtmf(STREAM, "#")
    assert tx.parse(json.dumps({"event": "stop", "sequence_number": "6", "stream_id": STREAM,
                                "stop": {"user_id": "u", "call_control_id": CALL}})) == Stop(STREAM, CALL)


def test_telnyx_error_frames_and_foreign_formats_are_protocol_errors():
    error = tx.parse(json.dumps({"event": "error", "stream_id": STREAM, "sequence_number": "3",
                                 "payload": {"code": 100003, "title": "malformed_frame", "detail": "x"}}))
    assert isinstance(error, ProtocolError) and (error.side, error.kind) == ("telnyx", "carrier_error")
    assert "100003" in error.detail and "malformed_frame" in error.detail
    for media_format in ({"encoding": "PCMA", "sample_rate": 8000, "channels": 1},
                         {"encoding": "PCMU", "sample_rate": 16000, "channels": 1},
                         {"encoding": "L16", "sample_rate": 8000, "channels": 1}, "PCMU",
                         {"encoding": "PCMU", "sample_rate": 8000.0, "channels": 1}):
        event = tx.parse(start_frame(media_format=media_format))
        assert isinstance(event, ProtocolError) and event.kind == "unsupported_media_format", media_format


def test_malformed_messages_name_their_fault():
    cases = {
        b"\x00": "binary_frame", None: "binary_frame", "{": "malformed_json", "[1]": "malformed_json",
        '{"event":"ringing"}': "unknown_event", '{"event":"media","media":{}}': "missing_field",
        '{"event":"media","media":{"payload":"***"}}': "bad_base64",
        '{"event":"dtmf","dtmf":{"digit":"x"}}': "bad_dtmf", '{"event":"mark","mark":{"name":3}}': "missing_field",
        '{"event":"start","stream_id":"s"}': "missing_field",
        json.dumps({"event": "start", "stream_id": "a b", "start": {"call_control_id": CALL}}): "bad_id",
    }
    for message, kind in cases.items():
        event = tx.parse(message)
        assert isinstance(event, ProtocolError) and (event.side, event.kind) == ("telnyx", kind), (message, event)


def test_the_outbound_track_never_passes_as_the_callers_audio():
    media = {"event": "media", "stream_id": STREAM, "media": {"track": "outbound", "chunk": "1", "timestamp": "0",
                                                              "payload": base64.b64encode(b"\xff" * 160).decode()}}
    event = tx.parse(json.dumps(media))
    assert isinstance(event, ProtocolError) and event.kind == "unexpected_track"


def test_a_bad_digit_is_not_logged():
    event = tx.parse('{"event":"dtmf","dtmf":{"digit":"99"}}')
    assert isinstance(event, ProtocolError) and "99" not in event.detail


def test_custom_parameters_are_bounded_strings():
    params = {f"k{i}": "v" for i in range(40)}
    params.update({"big": "x" * 600, "obj": {"a": 1}, "num": 7})
    event = tx.parse(start_frame(custom_parameters=params))
    assert isinstance(event, Start)
    assert len(event.custom_parameters) == tx.MAX_PARAMETERS and "big" not in event.custom_parameters
    assert "obj" not in event.custom_parameters and all(isinstance(v, str) for v in event.custom_parameters.values())


def test_outbound_messages_have_exactly_the_documented_fields():
    out = tx.Outbound(STREAM)
    frame = b"\xff" * 160
    assert json.loads(out.media(frame)) == {"event": "media", "media": {"payload": base64.b64encode(frame).decode()}}
    assert json.loads(out.mark('g2:"5"')) == {"event": "mark", "mark": {"name": 'g2:"5"'}}
    assert json.loads(out.clear()) == {"event": "clear"}


# ----------------------------------------------------------------------------- fuzz
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
b64ish = st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()) | st.text(max_size=40)


def telnyx_like():
    """Messages shaped like Telnyx's, every field possibly missing or of the wrong type."""
    field = json_values | b64ish
    keys = ["call_control_id", "user_id", "name", "digit", "track", "chunk", "timestamp", "custom_parameters",
            "media_format", "code", "title"]
    inner = st.fixed_dictionaries({}, optional={"payload": b64ish | field, **{k: field for k in keys}})
    events = ["connected", "start", "media", "mark", "dtmf", "stop", "error", "clear", "unknown"]
    return st.sampled_from(events).flatmap(lambda ev: st.fixed_dictionaries(
        {"event": st.just(ev), ev: inner | json_values},
        optional={"stream_id": st.text(min_size=1, max_size=40) | field, "sequence_number": field,
                  "payload": inner | field, "version": field}))


@FAST
@given(telnyx_like())
def test_telnyx_like_messages_parse_to_an_event_or_a_protocol_error(msg):
    event = tx.parse(json.dumps(msg))
    assert isinstance(event, EVENTS)
    str(event)  # and it can be logged
    if isinstance(event, ProtocolError):
        assert event.side == "telnyx"


@FAST
@given(st.text(max_size=200) | st.binary(max_size=200) | json_values.map(json.dumps))
@example("[" * 100_000)
@example('{"event": "media", "media": ' + "[" * 5000 + "]" * 5000 + "}")
@example("1" * 5000)
def test_random_input_never_raises(message):
    assert isinstance(tx.parse(message), EVENTS)


@FAST
@given(st.integers(min_value=peerjson.MAX_DEPTH + 1, max_value=20_000), st.sampled_from(["name", "custom"]))
def test_nesting_deeper_than_the_limit_is_malformed(depth, where):
    nested = "[" * depth + "]" * depth
    message = (f'{{"event":"mark","stream_id":"s","mark":{{"name":{nested}}}}}' if where == "name"
               else f'{{"event":"start","stream_id":"s","start":{{"custom_parameters":{nested}}}}}')
    event = tx.parse(message)
    assert isinstance(event, ProtocolError) and (event.side, event.kind) == ("telnyx", "malformed_json")
