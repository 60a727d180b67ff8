import base64
import json

from voicebridge.model import protocol as rt
from voicebridge.config import BridgeConfig
from voicebridge.errors import ProtocolError


def test_session_update_is_ga_shape_with_pcmu_both_ways():
    cfg = BridgeConfig(instructions="Be brief.", voice="cedar", vad_threshold=0.6)
    event = json.loads(rt.session_update(cfg))
    session = event["session"]
    assert event["type"] == "session.update"
    assert session["type"] == "realtime"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"]["voice"] == "cedar"
    vad = session["audio"]["input"]["turn_detection"]
    assert vad["type"] == "server_vad" and vad["threshold"] == 0.6 and vad["interrupt_response"] is False
    assert session["instructions"] == "Be brief."
    for beta_field in ("input_audio_format", "output_audio_format", "voice", "turn_detection", "modalities"):
        assert beta_field not in session


def test_audio_append_is_the_encoder_s_text_for_any_audio():
    """``audio_append`` puts the JSON together by hand: it must be what the encoder writes."""
    import base64
    import os
    for audio in (b"", bytes(range(256)), os.urandom(800), os.urandom(161)):
        b64 = base64.b64encode(audio).decode("ascii")
        assert rt.audio_append(audio) == rt.input_audio_append(b64)
        assert json.loads(rt.audio_append(audio)) == {"type": "input_audio_buffer.append", "audio": b64}


def test_client_events():
    assert json.loads(rt.input_audio_append("AAAA")) == {"type": "input_audio_buffer.append", "audio": "AAAA"}
    assert json.loads(rt.response_create()) == {"type": "response.create"}
    assert json.loads(rt.response_create("Hi")) == {"type": "response.create", "response": {"instructions": "Hi"}}
    assert json.loads(rt.response_cancel("resp_1")) == {"type": "response.cancel", "response_id": "resp_1"}
    assert json.loads(rt.item_truncate("item_1", 1234.0)) == {
        "type": "conversation.item.truncate", "item_id": "item_1", "content_index": 0, "audio_end_ms": 1234}


def test_parse_server_events():
    audio = bytes(range(37))
    delta = rt.parse(json.dumps({"type": "response.output_audio.delta", "event_id": "e1", "response_id": "r1",
                                 "item_id": "i1", "output_index": 0, "content_index": 0,
                                 "delta": base64.b64encode(audio).decode()}))
    assert delta == rt.AudioDelta("r1", "i1", audio)
    done = rt.parse(json.dumps({"type": "response.done", "event_id": "e2", "response": {
        "id": "r1", "status": "cancelled", "status_details": {"type": "cancelled", "reason": "client_cancelled"}}}))
    assert done == rt.ResponseDone("r1", "cancelled", "client_cancelled")
    started = rt.parse('{"type":"input_audio_buffer.speech_started","event_id":"e","audio_start_ms":120,"item_id":"u1"}')
    assert started == rt.SpeechStarted("u1", 120)
    err = rt.parse(json.dumps({"type": "error", "event_id": "e3", "error": {
        "type": "invalid_request_error", "code": "response_cancel_not_active",
        "message": "Cancellation failed: no active response found", "param": None, "event_id": None}}))
    assert isinstance(err, rt.ServerError) and err.benign and not err.fatal
    assert rt.parse('{"type":"error","error":{"type":"x","code":"session_expired","message":"m"}}').fatal
    assert rt.parse('{"type":"rate_limits.updated","event_id":"e"}') == rt.Other("rate_limits.updated", True)
    assert rt.parse('{"type":"brand.new.event"}') == rt.Other("brand.new.event", False)
    transcript = rt.parse('{"type":"conversation.item.input_audio_transcription.completed","item_id":"u1",'
                          '"content_index":0,"transcript":"hello"}')
    assert transcript == rt.Transcript("u1", "hello", True)


def test_bad_server_messages_become_typed_errors():
    for text, kind in {"{": "malformed_json", "[]": "missing_field", '{"x":1}': "missing_field",
                       '{"type":"response.output_audio.delta","delta":"!!"}': "bad_base64",
                       '{"type":"response.output_audio.delta"}': "missing_field"}.items():
        result = rt.parse(text)
        assert isinstance(result, ProtocolError) and result.kind == kind, text
    assert rt.parse(b"\x01").kind == "binary_frame"
