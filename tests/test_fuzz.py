"""Property-based tests: the parsers never raise and the Framer never loses or invents a byte.

Random bytes, random text and random JSON (including near-valid Twilio / Realtime messages with
fields of the wrong type) go through ``twilio_protocol.parse`` and ``realtime_protocol.parse``;
random chunkings go through ``Framer``. Kept small (modest max_examples, no deadline) so the
whole file runs in a few seconds.
"""
from __future__ import annotations

import base64
import json

from hypothesis import example, given, settings, strategies as st

from voicebridge import realtime_protocol as rt
from voicebridge import twilio_protocol as tw
from voicebridge.errors import ProtocolError
from voicebridge.framing import Framer

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


@FAST
@given(any_message)
def test_twilio_parse_never_raises_on_random_input(message):
    assert isinstance(tw.parse(message), TWILIO_TYPES)


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
def test_realtime_parse_never_raises_on_random_input(message):
    event = rt.parse(message)
    assert event is not None


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
