import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from voicebridge.carrier.twilio import protocol as tw
from voicebridge.errors import ProtocolError

SID = "MZ11111111111111111111111111111111"
CALL = "CA22222222222222222222222222222222"


def test_parse_start_media_mark_dtmf_stop():
    start = tw.parse(json.dumps({
        "event": "start", "sequenceNumber": "1", "streamSid": SID,
        "start": {"streamSid": SID, "accountSid": "AC1", "callSid": CALL, "tracks": ["inbound"],
                  "customParameters": {"tenant": "acme"},
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
    assert start == tw.Start(SID, CALL, "AC1", ("inbound",), {"tenant": "acme"},
                             {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1})
    payload = bytes(range(160))
    b64 = base64.b64encode(payload).decode()
    media = tw.parse(json.dumps({"event": "media", "sequenceNumber": "4", "streamSid": SID,
                                 "media": {"track": "inbound", "chunk": "2", "timestamp": "5", "payload": b64}}))
    assert isinstance(media, tw.Media)
    assert media.payload == payload and media.timestamp_ms == 5
    assert tw.parse(json.dumps({"event": "mark", "streamSid": SID, "mark": {"name": "m1"}})) == tw.Mark(SID, "m1")
    assert tw.parse(json.dumps({"event": "dtmf", "streamSid": SID,
                                "dtmf": {"track": "inbound_track", "digit": "7"}})) == tw.Dtmf(SID, "7")
    assert tw.parse(json.dumps({"event": "stop", "streamSid": SID,
                                "stop": {"accountSid": "AC1", "callSid": "CA1"}})) == tw.Stop(SID, "CA1")
    assert tw.parse('{"event":"connected","protocol":"Call","version":"1.0.0"}') == tw.Connected("Call", "1.0.0")


def test_bad_input_becomes_typed_errors():
    cases = {
        "not json": "malformed_json",
        "[1,2]": "malformed_json",
        '{"event":"bogus"}': "unknown_event",
        '{"no":"event"}': "unknown_event",
        '{"event":"media","media":{}}': "missing_field",
        '{"event":"media","media":{"payload":"@@@"}}': "bad_base64",
        '{"event":"start"}': "missing_field",
        '{"event":"mark","mark":{}}': "missing_field",
    }
    for text, kind in cases.items():
        result = tw.parse(text)
        assert isinstance(result, ProtocolError), text
        assert result.kind == kind and result.side == "twilio"
    assert tw.parse(b"\x00\x01").kind == "binary_frame"
    assert tw.parse(None).kind == "binary_frame"


def test_outbound_messages_have_exactly_the_documented_fields():
    out = tw.Outbound(SID)
    frame = bytes([0xFF]) * 160
    media = json.loads(out.media(frame))
    assert media == {"event": "media", "streamSid": SID, "media": {"payload": base64.b64encode(frame).decode()}}
    assert json.loads(out.mark("vb0.1")) == {"event": "mark", "streamSid": SID, "mark": {"name": "vb0.1"}}
    assert json.loads(out.clear()) == {"event": "clear", "streamSid": SID}
    assert json.loads(tw.Outbound('we"ird').clear())["streamSid"] == 'we"ird'


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=400), sid=st.text("abcdefMZ0123456789", min_size=1, max_size=40),
       seq=st.integers(0, 10**9), ts=st.integers(0, 10**11), sid_first=st.booleans(),
       track=st.sampled_from(["inbound", "outbound"]))
def test_the_media_fast_path_reads_exactly_what_json_would(payload, sid, seq, ts, sid_first, track):
    body = ('"media":{"track":"%s","chunk":"1","timestamp":"%d","payload":"%s"}'
            % (track, ts, base64.b64encode(payload).decode()))
    head = '{"event":"media","sequenceNumber":"%d",' % seq
    message = head + (f'"streamSid":"{sid}",{body}}}' if sid_first else f'{body},"streamSid":"{sid}"}}')
    fast = tw._fast_media(message)
    assert fast is not None and fast == tw._parse_media(json.loads(message)) == tw.parse(message)
    spaced = json.dumps(json.loads(message))  # other spacing: the general path, the same event
    assert tw._fast_media(spaced) is None and tw.parse(spaced) == fast
