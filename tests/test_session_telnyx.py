"""A call over Telnyx's media stream: the same session, Telnyx's frames both ways."""
from __future__ import annotations

import base64
import json

from voicebridge import BridgeConfig
from voicebridge.carrier.telnyx.adapter import TELNYX
from voicebridge.testing import LOUD_VOICE, TELNYX_CALL_ID, TELNYX_STREAM_ID, FakeTelnyx, telnyx_dtmf, wait_until

LOUD = LOUD_VOICE  # about -8 dBFS
# The procedure at the debounce (five loud frames), as tests/test_session_bargein.py: the backchannel rule off
CFG = BridgeConfig(greeting_instructions=None, join_timeout_s=3.0, safety_fuse_ms=60000, duck_fuse_ms=60000,
                   ignore_backchannels=False)


def test_a_telnyx_call_speaks_telnyx_and_barges_in_with_a_clear(bridge_call):
    telnyx = FakeTelnyx()
    telnyx.echo_marks = True
    call = bridge_call(CFG, twilio=telnyx, carrier=TELNYX).start(tenant="acme")
    session, openai = call.session, call.openai
    assert wait_until(lambda: session.call_sid == TELNYX_CALL_ID)
    assert (session.stream_sid, session.custom_parameters) == (TELNYX_STREAM_ID, {"tenant": "acme"})
    openai.response("resp_1", "item_1", [bytes([0x20 + (i % 50)]) * 160 for i in range(150)], done=False)
    assert telnyx.wait_for(lambda t: len(t.messages("media")) >= 6)
    telnyx.push(telnyx_dtmf("7"))
    telnyx.media(LOUD, n=5)
    assert wait_until(lambda: len(openai.events("conversation.item.truncate")) == 1)  # (after the clear)
    m = call.finish()
    for raw in telnyx.raw_sent:  # exactly Telnyx's outbound shapes: no stream id, nothing extra
        msg = json.loads(raw)
        if msg["event"] == "media":
            assert set(msg) == {"event", "media"} and set(msg["media"]) == {"payload"}
            assert len(base64.b64decode(msg["media"]["payload"])) == 160
        elif msg["event"] == "mark":
            assert set(msg) == {"event", "mark"} and set(msg["mark"]) == {"name"}
        else:
            assert msg == {"event": "clear"}
    assert m["barge_in_events"] == 1 and m["clears_sent"] == 1 + m["duck_clears"] and m["marks_echoed"] >= 1
    assert m["inbound_frames"] == 5 and m["frames_sent"] >= 6  # (what was still queued to flush depends on load)
    assert not m["protocol_errors"], m["protocol_errors"]


def test_telnyx_protocol_errors_are_counted_under_telnyx(bridge_call):
    telnyx = FakeTelnyx()
    call = bridge_call(CFG, twilio=telnyx, carrier=TELNYX).start()
    assert wait_until(lambda: call.session.stream_sid == TELNYX_STREAM_ID)
    telnyx.push({"event": "error", "stream_id": TELNYX_STREAM_ID, "payload": {"code": 100003, "title": "x"}})
    telnyx.push(telnyx_start_again := {"event": "start", "stream_id": TELNYX_STREAM_ID,
                                       "start": {"call_control_id": TELNYX_CALL_ID}})
    telnyx.push(json.dumps(telnyx_start_again)[:-3])
    m = call.finish()
    assert (m["telnyx_protocol_errors"], m["twilio_protocol_errors"]) == (3, 0)
    assert m["protocol_errors"] == {"telnyx.carrier_error": 1, "telnyx.duplicate_start": 1,
                                    "telnyx.malformed_json": 1}
