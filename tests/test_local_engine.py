"""Sans-IO tests of the local Realtime engine, VAD and scripted agent (injected clock, no sleeps).

Every event the engine emits is validated against the openai package's GA server-event
union, so the local server cannot drift from the real wire shapes.
"""
from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest

from voicebridge.audio import mulaw as audio
from voicebridge.dev import tone, tts
from voicebridge.config import RESUME_INSTRUCTIONS
from voicebridge.dev.local import agent as agent_mod
from voicebridge.dev.local.agent import ScriptedAgent, Voice, wants_continue
from voicebridge.dev.local.engine import RealtimeEngine
from voicebridge.dev.local.generator import chunk_plan
from voicebridge.dev.local.recognizer import Recognizer
from voicebridge.dev.local.vad import EnergyVad, VadConfig, threshold_to_dbfs
from realtime_types import server_event

PCMU = {"type": "audio/pcmu"}


def speech(ms: int, amplitude: int = 8000) -> bytes:
    """A loud 300 Hz tone standing in for a caller's voice (about -15 dBFS)."""
    n = ms * audio.BYTES_PER_MS
    return audio.encode([int(amplitude * math.sin(2 * math.pi * 300 * i / 8000)) for i in range(n)])


def silence(ms: int) -> bytes:
    return bytes([audio.SILENCE_BYTE]) * (ms * audio.BYTES_PER_MS)


class Harness:
    """Drives an engine with a fake clock; validates and records every event."""

    def __init__(self, mode: str = "voice", speed: float = 4.0, **kw) -> None:
        self.now = 0.0
        agent = ScriptedAgent(Voice(live=False), mode=mode, tone_seconds=kw.pop("tone_seconds", 1.0))
        self.engine = RealtimeEngine(agent, speed=speed, **kw)
        self.events: list[dict] = []
        self.open_events = self._check(self.engine.open(self.now))

    def _check(self, events: list[dict]) -> list[dict]:
        for event in events:
            server_event(event)
            assert event["event_id"] not in {e["event_id"] for e in self.events}
            self.events.append(event)
        return events

    def send(self, event: "dict | str | bytes") -> list[dict]:
        raw = event if isinstance(event, (str, bytes)) else json.dumps(event)
        return self._check(self.engine.handle(raw, self.now))

    def advance(self, seconds: float) -> list[dict]:
        self.now += seconds
        return self._check(self.engine.poll(self.now))

    def run_response(self, limit: int = 10_000) -> list[dict]:
        """Follow next_deadline until the active response is done."""
        out: list[dict] = []
        for _ in range(limit):
            if not self.engine.response_active:
                return out
            self.now = max(self.now, self.engine.next_deadline())
            out += self._check(self.engine.poll(self.now))
        raise AssertionError("response did not finish")

    def pcmu_session(self, **input_fields) -> list[dict]:
        session = {"type": "realtime", "audio": {"input": {"format": PCMU, **input_fields},
                                                 "output": {"format": PCMU}}}
        return self.send({"type": "session.update", "session": session})

    def append(self, data: bytes, size: int = 160) -> list[dict]:
        """Append like a Twilio bridge: ``size``-byte frames, clock advancing in real time."""
        out: list[dict] = []
        for off in range(0, len(data), size):
            piece = data[off:off + size]
            out += self.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(piece).decode()})
            self.now += len(piece) / 8000
            out += self._check(self.engine.poll(self.now))
        return out


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def audio_of(events: list[dict]) -> bytes:
    return b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta")


def only(events: list[dict], type_: str) -> dict:
    found = [e for e in events if e["type"] == type_]
    assert len(found) == 1, (type_, types(events))
    return found[0]


# ----------------------------------------------------------------------------- VAD
def test_threshold_mapping_is_documented_linear_dbfs():
    assert threshold_to_dbfs(0.0) == -60.0
    assert threshold_to_dbfs(0.5) == -35.0
    assert threshold_to_dbfs(1.0) == -10.0
    assert threshold_to_dbfs(7) == -10.0  # clamped


@pytest.mark.parametrize("size", [7, 160, 333, 4000])
def test_vad_edges_do_not_depend_on_append_size(size):
    vad = EnergyVad(VadConfig(prefix_padding_ms=300, silence_duration_ms=500))
    data = silence(1000) + speech(800) + silence(1000)
    edges = []
    for off in range(0, len(data), size):
        edges += vad.push(data[off:off + size])
    assert [(e.kind, e.ms) for e in edges] == [("start", 700), ("stop", 2300)]
    assert edges[1].speech_ms == 800


def test_vad_threshold_and_prefix_clamp():
    quiet_voice = speech(500, amplitude=300)  # about -40 dBFS
    assert EnergyVad(VadConfig(threshold=0.5)).push(quiet_voice) == []
    edges = EnergyVad(VadConfig(threshold=0.3, prefix_padding_ms=300)).push(quiet_voice)
    assert [(e.kind, e.ms) for e in edges] == [("start", 0)]  # padding never before audio start


# ----------------------------------------------------------------------------- session
def test_open_sends_session_then_conversation():
    h = Harness()
    assert types(h.open_events) == ["session.created", "conversation.created"]
    session = h.open_events[0]["session"]
    assert session["type"] == "realtime"
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"


def test_session_update_merges_and_reports_full_config():
    h = Harness()
    out = h.send({"type": "session.update", "session": {
        "type": "realtime", "instructions": "be brief",
        "audio": {"input": {"format": PCMU, "turn_detection": {"type": "server_vad", "threshold": 0.7}}}}})
    session = only(out, "session.updated")["session"]
    assert session["instructions"] == "be brief"
    assert session["audio"]["input"]["format"] == PCMU
    assert session["audio"]["output"]["voice"] == "marin"  # untouched fields survive
    td = session["audio"]["input"]["turn_detection"]
    assert td["threshold"] == 0.7 and td["silence_duration_ms"] == 500 and td["create_response"] is True
    out = h.send({"type": "session.update",
                  "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}})
    assert only(out, "session.updated")["session"]["audio"]["input"]["turn_detection"] is None


def test_flat_beta_session_is_rejected_with_nested_error_shape():
    h = Harness()
    out = h.send({"type": "session.update", "event_id": "evt_client_1",
                  "session": {"input_audio_format": "g711_ulaw", "voice": "alloy"}})
    err = only(out, "error")["error"]
    assert err == {"type": "invalid_request_error", "code": "missing_required_parameter",
                   "message": err["message"], "param": "session.type", "event_id": "evt_client_1"}
    out = h.send({"type": "session.update", "session": {"type": "realtime", "voice": "alloy"}})
    assert only(out, "error")["error"]["code"] == "unknown_parameter"
    out = h.send({"type": "session.update", "session": {"type": "realtime",
                                                        "audio": {"output": {"format": {"type": "audio/pcma"}}}}})
    assert only(out, "error")["error"]["param"] == "session.audio.output.format"


@pytest.mark.parametrize("frame, code", [
    ("{not json", "invalid_json"),
    ("[1, 2]", "invalid_value"),
    ('{"audio": "AAAA"}', "missing_required_parameter"),
    ('{"type": "no.such.event"}', "invalid_value"),
    (b"\x00\x01", "invalid_value"),
    ('{"type": "input_audio_buffer.append", "audio": "***"}', "invalid_value"),
])
def test_bad_frames_get_error_events_and_session_continues(frame, code):
    h = Harness()
    out = h.send(frame)
    assert only(out, "error")["error"]["code"] == code
    assert types(h.pcmu_session()) == ["session.updated"]


# ----------------------------------------------------------------------------- responses
def test_greeting_response_lifecycle_paced_faster_than_real_time():
    h = Harness(speed=4.0, chunk_bytes=(80, 2000), seed=3)
    h.pcmu_session()
    first = h.send({"type": "response.create"})
    assert types(first)[:5] == ["response.created", "rate_limits.updated", "response.output_item.added",
                                "conversation.item.added", "response.content_part.added"]
    assert first[0]["response"]["status"] == "in_progress" and first[0]["response"]["id"].startswith("resp_")
    rest = h.run_response()
    events = first + rest
    greeting = tts.load_prompt("greeting")
    assert audio_of(events) == greeting
    assert h.now == pytest.approx(0.0 + (len(greeting) - _last_chunk(events)) / 8000 / 4.0, abs=1e-6)
    sizes = [len(base64.b64decode(e["delta"])) for e in events if e["type"] == "response.output_audio.delta"]
    assert all(80 <= s <= 2000 and s % 160 for s in sizes[:-1])
    assert types(rest)[-6:] == ["response.output_audio.done", "response.output_audio_transcript.done",
                                "response.content_part.done", "response.output_item.done",
                                "conversation.item.done", "response.done"]
    transcript = "".join(e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta")
    assert transcript == agent_mod.GREETING[1] == only(events, "response.output_audio_transcript.done")["transcript"]
    done = only(events, "response.done")["response"]
    assert done["status"] == "completed" and done["output"][0]["status"] == "completed"
    assert done["usage"]["output_tokens"] > 0


def _last_chunk(events: list[dict]) -> int:
    deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
    return len(base64.b64decode(deltas[-1]["delta"]))


def test_chunk_plan_is_irregular_and_complete():
    import random
    sizes = chunk_plan(50_000, 80, 2000, random.Random(1))
    assert sum(sizes) == 50_000
    assert not any(s % 160 == 0 for s in sizes[:-1])
    assert len(set(sizes)) > len(sizes) // 2


def test_second_create_while_active_is_an_error_and_cancel_closes_response():
    h = Harness()
    h.pcmu_session()
    h.send({"type": "response.create"})
    out = h.send({"type": "response.create", "event_id": "again"})
    err = only(out, "error")["error"]
    assert err["code"] == "conversation_already_has_active_response" and err["event_id"] == "again"
    h.advance(0.2)
    out = h.send({"type": "response.cancel"})
    assert types(out) == ["response.output_audio.done", "response.output_audio_transcript.done",
                          "response.content_part.done", "response.output_item.done",
                          "conversation.item.done", "response.done"]
    assert only(out, "response.output_item.done")["item"]["status"] == "incomplete"
    response = only(out, "response.done")["response"]
    assert response["status"] == "cancelled"
    assert response["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    err = only(h.send({"type": "response.cancel"}), "error")["error"]
    assert err["code"] == "response_cancel_not_active"
    assert err["message"] == "Cancellation failed: no active response found"


def test_speed_zero_emits_everything_at_once():
    h = Harness(speed=0)
    h.pcmu_session()
    out = h.send({"type": "response.create"})
    assert out[-1]["type"] == "response.done" and h.engine.next_deadline() is not None


def test_text_modality_and_pcm_output():
    h = Harness(speed=0)
    out = h.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
    assert only(out, "response.output_text.done")["text"] == agent_mod.GREETING[1]
    assert "response.output_audio.delta" not in types(out)
    out = h.send({"type": "response.create"})  # session default output is audio/pcm 24 kHz
    assert len(audio_of(out)) == 6 * len(tts.load_prompt("short_reply"))


# ----------------------------------------------------------------------------- turns
def test_vad_turn_commits_transcribes_and_answers_at_length():
    h = Harness(speed=4.0)
    h.pcmu_session(transcription={"model": "gpt-4o-mini-transcribe"})
    out = h.append(silence(1000) + speech(1500) + silence(700))
    assert types(out)[:6] == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                              "input_audio_buffer.committed", "conversation.item.added",
                              "conversation.item.done", "conversation.item.input_audio_transcription.completed"]
    started, stopped, committed = out[0], out[1], out[2]
    assert started["audio_start_ms"] == 700 and stopped["audio_end_ms"] == 3000
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    assert committed["previous_item_id"] is None
    assert out[3]["item"]["role"] == "user"
    assert out[5]["transcript"] == "[speech 1.5 s]" and out[5]["usage"] == {"type": "duration", "seconds": 1.5}
    assert "response.created" in types(out)
    events = out + h.run_response()
    assert audio_of(events) == tts.load_prompt("long_answer")
    assert 15.0 <= len(tts.load_prompt("long_answer")) / 8000 <= 25.0


def _interrupted_long_answer(h: Harness) -> tuple[str, list[dict]]:
    h.pcmu_session()
    out = h.append(silence(400) + speech(600) + silence(600))
    item_id = only(out, "response.output_item.added")["item"]["id"]
    out += h.append(silence(1500))  # 1.5 s later: 6 s of answer generated at 4x
    out += h.append(speech(300))
    return item_id, out


def test_barge_in_cancels_with_turn_detected_and_truncate_is_bounded():
    h = Harness(speed=4.0)
    item_id, out = _interrupted_long_answer(h)
    i = len(out) - 1 - types(out)[::-1].index("input_audio_buffer.speech_started")  # the barge-in
    assert types(out)[i + 1:i + 7] == ["response.output_audio.done", "response.output_audio_transcript.done",
                                       "response.content_part.done", "response.output_item.done",
                                       "conversation.item.done", "response.done"]
    done = only(out, "response.done")["response"]
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    generated_ms = len(audio_of(out)) // 8
    bad = only(h.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
                       "audio_end_ms": generated_ms + 1}), "error")["error"]
    assert bad["message"] == f"Audio content of {generated_ms}ms is already shorter than {generated_ms + 1}ms"
    ok = only(h.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
                      "audio_end_ms": 1234}), "conversation.item.truncated")
    assert ok["audio_end_ms"] == 1234 and ok["item_id"] == item_id
    user_id = only(out, "input_audio_buffer.committed")["item_id"]
    for target in ("item_nope", user_id):
        err = h.send({"type": "conversation.item.truncate", "item_id": target, "content_index": 0, "audio_end_ms": 0})
        assert only(err, "error")["error"]["param"] == "item_id"


def test_continue_resumes_interrupted_answer_from_truncation_point():
    h = Harness(speed=0)
    item_id, _ = _interrupted_long_answer(h)
    h.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 4000})
    h.append(silence(700))  # caller's barge-in turn ends -> short reply
    out = h.send({"type": "response.create", "response": {"instructions": "Please continue where you left off."}})
    resumed = audio_of(out)
    long_answer = tts.load_prompt("long_answer")
    cut = len(long_answer) - len(resumed)
    assert long_answer.endswith(resumed)
    assert 4000 * 8 - 600 * 8 <= cut <= 4000 * 8
    transcript = only(out, "response.output_audio_transcript.done")["transcript"]
    assert agent_mod.LONG_ANSWER[1].endswith(transcript) and len(transcript) < len(agent_mod.LONG_ANSWER[1])


def replay(h: Harness, *turns: tuple[str, str]) -> None:
    """Rebuild a conversation the way a bridge does after a reconnect: text items, in order."""
    for role, text in turns:
        kind = "input_text" if role == "user" else "output_text"
        out = h.send({"type": "conversation.item.create",
                      "item": {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}})
        assert types(out) == ["conversation.item.added", "conversation.item.done"]


def test_a_new_session_rebuilt_from_text_resumes_the_cut_answer_and_never_greets_again():
    h = Harness(speed=0)
    h.pcmu_session()
    said = agent_mod.LONG_ANSWER[1].split()
    replay(h, ("assistant", agent_mod.GREETING[1]), ("user", "How does this work?"),
           ("assistant", " ".join(said[:len(said) // 2])))  # the old session was lost half way through
    out = h.send({"type": "response.create", "response": {"instructions": RESUME_INSTRUCTIONS}})
    resumed, long_answer = audio_of(out), tts.load_prompt("long_answer")
    assert long_answer.endswith(resumed) and 0.3 < 1 - len(resumed) / len(long_answer) <= 0.5
    transcript = only(out, "response.output_audio_transcript.done")["transcript"]
    assert agent_mod.LONG_ANSWER[1].endswith(transcript)
    plain = only(h.send({"type": "response.create"}), "response.output_audio_transcript.done")["transcript"]
    assert plain == agent_mod.SHORT_REPLY[1]  # not the greeting, not the long answer again


def test_a_replayed_tone_answer_resumes_its_blocks():
    h = Harness(mode="tone", speed=0, tone_seconds=1.0)
    h.pcmu_session()
    replay(h, ("user", "hello"), ("assistant", "tone 3 blocks"))  # 3 of its 4 words had arrived
    resumed = audio_of(h.send({"type": "response.create", "response": {"instructions": RESUME_INSTRUCTIONS}}))
    blocks = [tone.identify_block(resumed[i:i + 160]) for i in range(0, len(resumed), 160)]
    assert blocks == [(3, i) for i in range(37, 50)]


def test_later_turn_says_how_long_the_caller_spoke():
    h = Harness(speed=0)
    h.pcmu_session()
    h.append(silence(300) + speech(500) + silence(600))  # first turn -> long answer
    out = h.append(silence(300) + speech(2000) + silence(600))
    transcript = only(out, "response.output_audio_transcript.done")["transcript"]
    assert transcript == "You spoke for about two seconds. Thanks, is there anything else?"
    assert wants_continue("RESUME please") and not wants_continue("hello")


def test_manual_commit_and_clear_without_vad():
    h = Harness(speed=0)
    h.pcmu_session(turn_detection=None)
    h.append(speech(60))
    err = only(h.send({"type": "input_audio_buffer.commit"}), "error")["error"]
    assert err["code"] == "input_audio_buffer_commit_empty"
    out = h.append(speech(400))
    assert out == []  # no VAD events without turn detection
    out = h.send({"type": "input_audio_buffer.commit"})
    assert types(out) == ["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]
    assert types(h.send({"type": "input_audio_buffer.clear"})) == ["input_audio_buffer.cleared"]
    out = h.send({"type": "response.create"})
    assert only(out, "response.done")["response"]["status"] == "completed"


def test_a_client_commit_of_no_speech_is_transcribed_as_nothing():
    """The bridge commits a buffer for its words (a held voice, a barge-in the VAD did not start
    on). With no frame of it judged speech (a cough, a click, the line) the service's
    transcription says nothing; a placeholder of its length would read as words the caller said."""
    h = Harness(speed=0)
    h.pcmu_session(transcription={"model": "gpt-4o-mini-transcribe"})
    h.append(silence(400))
    out = h.send({"type": "input_audio_buffer.commit"})
    assert only(out, "conversation.item.input_audio_transcription.completed")["transcript"] == ""
    out = h.append(speech(60) + silence(400))  # speech too short for the VAD to start a turn on
    assert "input_audio_buffer.speech_started" not in types(out)
    out = h.send({"type": "input_audio_buffer.commit"})
    assert only(out, "conversation.item.input_audio_transcription.completed")["transcript"].startswith("[speech")


def test_a_manual_commit_inside_a_vad_activation_takes_its_item_and_the_activation_goes_on():
    """As the service's reference has it: speech_started's item id comes again with speech_stopped
    "unless the client manually commits the audio buffer during VAD activation". The client's
    commit takes the turn's item; the activation goes on (no second speech_started) and its
    speech_stopped commits the rest under another id."""
    h = Harness(speed=0)
    h.pcmu_session()
    started = only(h.append(silence(300) + speech(800)), "input_audio_buffer.speech_started")["item_id"]
    out = h.send({"type": "input_audio_buffer.commit"})
    assert only(out, "input_audio_buffer.committed")["item_id"] == started
    out = h.append(speech(600) + silence(800))
    assert types(out).count("input_audio_buffer.speech_started") == 0
    stopped = only(out, "input_audio_buffer.speech_stopped")["item_id"]
    assert stopped != started and only(out, "input_audio_buffer.committed")["item_id"] == stopped


def test_item_create_delete_retrieve():
    h = Harness(speed=0)
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    out = h.send({"type": "conversation.item.create", "item": {**item, "id": "item_mine"}})
    assert types(out) == ["conversation.item.added", "conversation.item.done"]
    assert only(h.send({"type": "conversation.item.retrieve", "item_id": "item_mine"}),
                "conversation.item.retrieved")["item"]["content"][0]["text"] == "hi"
    assert types(h.send({"type": "conversation.item.delete", "item_id": "item_mine"})) == ["conversation.item.deleted"]
    bad = {"type": "message", "role": "assistant", "content": [{"type": "output_audio", "audio": "AAAA"}]}
    assert only(h.send({"type": "conversation.item.create", "item": bad}), "error")


def test_idle_timeout_commits_silence_and_checks_on_the_caller():
    h = Harness(speed=4.0)
    h.pcmu_session(turn_detection={"type": "server_vad", "idle_timeout_ms": 2000})
    h.send({"type": "response.create"})
    h.run_response()
    playback_end = len(tts.load_prompt("greeting")) / 8000
    assert h.engine.next_deadline() == pytest.approx(playback_end + 2.0, abs=0.002)
    out = h.append(silence(int((playback_end + 2.0 - h.now) * 1000) + 40))
    assert types(out)[:4] == ["input_audio_buffer.timeout_triggered", "input_audio_buffer.committed",
                              "conversation.item.added", "conversation.item.done"]
    trig = out[0]
    assert trig["audio_end_ms"] - trig["audio_start_ms"] == 2000
    out += h.run_response()
    assert only(out, "response.output_audio_transcript.done")["transcript"] == agent_mod.STILL_THERE[1]


# ----------------------------------------------------------------------------- tone mode, closing
def test_tone_mode_numbers_responses_and_resumes_blocks():
    h = Harness(mode="tone", speed=0, tone_seconds=1.0)
    h.pcmu_session()
    first = audio_of(h.send({"type": "response.create"}))
    assert [tone.identify_block(first[i:i + 160]) for i in range(0, len(first), 160)] == [(0, i) for i in range(50)]
    out = h.send({"type": "response.create"})
    item_id = only(out, "response.output_item.done")["item"]["id"]
    h.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 410})
    resumed = audio_of(h.send({"type": "response.create", "response": {"instructions": "continue"}}))
    blocks = [tone.identify_block(resumed[i:i + 160]) for i in range(0, len(resumed), 160)]
    assert blocks == [(1, i) for i in range(20, 50)]


def test_beta_rejection_and_session_expiry_close_the_socket():
    h = Harness()
    out = h.engine.reject("beta_api_shape_disabled", "The Realtime Beta API is no longer supported.")
    assert out[0]["error"]["code"] == "beta_api_shape_disabled" and h.engine.close_code == 4000
    assert h.send({"type": "response.create"}) == []
    h2 = Harness(max_session_seconds=60.0)
    assert h2.engine.next_deadline() == 60.0
    out = h2.advance(60.0)
    assert out[0]["error"]["code"] == "session_expired" and h2.engine.close_code == 1001


# ----------------------------------------------------------------- tools and scenarios
ORDER_TOOL = {"type": "function", "name": "order_status", "description": "Look up an order.",
              "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}
END_CALL = {"type": "function", "name": "end_call", "description": "Hang up.",
            "parameters": {"type": "object", "properties": {}}}
TRANSFER = {"type": "function", "name": "transfer_call", "description": "Transfer.",
            "parameters": {"type": "object", "properties": {"destination": {"type": "string", "enum": ["support"]}}}}


def tool_session(h: Harness, tools=(ORDER_TOOL, END_CALL, TRANSFER)) -> None:
    session = {"type": "realtime", "tools": list(tools), "audio": {"input": {
        "format": PCMU, "transcription": {"model": "gpt-4o-mini-transcribe"}}, "output": {"format": PCMU}}}
    h.send({"type": "session.update", "session": session})


def say(h: Harness, phrase: str) -> list[dict]:
    """The caller says a bundled phrase (as the simulated caller sends it), then pauses."""
    return h.append(silence(200) + tts.load_prompt(phrase) + silence(800))


def calls_of(events: list[dict]) -> list[tuple[str, dict]]:
    return [(e["name"], json.loads(e["arguments"])) for e in events
            if e["type"] == "response.function_call_arguments.done"]


def test_caller_phrases_are_recognised_and_transcribed():
    h = Harness(speed=0)
    tool_session(h)
    out = say(h, "caller_order")
    assert only(out, "conversation.item.input_audio_transcription.completed")["transcript"] == \
        tts.CALLER_PHRASES["caller_order"]
    assert only(out, "response.output_audio_transcript.done")["transcript"] == agent_mod.ASK_ORDER[1]


@pytest.mark.parametrize("category, n", [("backchannel", 8), ("interruption", 0), ("question", 2)])
def test_corpus_clips_are_transcribed_by_their_words(category, n):
    """The bridge tells a held "mm-hm" from a "wait" by the transcript, as with the real service;
    the local server says the corpus clip's words, not only its length."""
    from voicebridge.dev.sim import corpus
    clip = corpus.by_category(category)[n]
    h = Harness(speed=0)
    tool_session(h)
    out = h.append(silence(200) + clip.audio() + silence(800))
    assert only(out, "conversation.item.input_audio_transcription.completed")["transcript"] == clip.text


@pytest.mark.parametrize("category, n", [("backchannel", 3), ("interruption", 5)])
def test_a_clip_said_over_the_agents_echo_is_still_transcribed_by_its_words(category, n):
    """A speakerphone caller's "mm-hm" arrives mixed with the agent's echo (-15 dB): the real
    service's transcription still hears the words. (Before: only an exact byte match was
    recognised, the turn was "[speech 0.5 s]", and the bridge took a held "mm-hm" for words that
    interrupt.) The agent's echo alone is no phrase."""
    from voicebridge.dev.sim import corpus, room
    clip = corpus.by_category(category)[n]
    agent = room.ulaw_to_float(tts.load_prompt("long_answer"))
    mic = room.ulaw_to_float(silence(200) + clip.audio() + silence(800))
    speaker = room.LoudspeakerEcho(-15, 120, seed=3)
    echo = np.concatenate([speaker.process(agent[i:i + 160]) for i in range(8000, 8000 + len(mic), 160)])
    echo[1600 + len(clip.audio()):] = 0.0  # the agent stopped for the caller: the turn can end
    mixed = room.float_to_ulaw(mic + echo[:len(mic)])
    assert mixed.find(clip.audio()[800:2080]) < 0  # no exact match is left to find
    h = Harness(speed=0)
    tool_session(h)
    out = h.append(mixed)
    assert only(out, "conversation.item.input_audio_transcription.completed")["transcript"] == clip.text
    assert Recognizer().words(room.float_to_ulaw(echo * 4)) is None


def test_keypad_digits_become_an_order_lookup_and_its_output_an_answer():
    h = Harness(speed=0)
    tool_session(h)
    h.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "The caller entered 4711 on the phone keypad."}]}})
    out = h.send({"type": "response.create"})
    assert calls_of(out) == [("order_status", {"order_id": "4711"})]
    assert audio_of(out) == tts.load_prompt("let_me_check")  # it says so, then calls the tool
    [call] = [e for e in out if e["type"] == "response.output_item.done" and e["item"]["type"] == "function_call"]
    assert call["item"]["status"] == "completed" and call["output_index"] == 1
    done = only(out, "response.done")["response"]
    assert [o["type"] for o in done["output"]] == ["message", "function_call"]
    bad = h.send({"type": "conversation.item.create", "item": {
        "type": "function_call_output", "call_id": "call_nope", "output": "{}"}})
    assert only(bad, "error")["error"]["param"] == "item.call_id"
    h.send({"type": "conversation.item.create", "item": {"type": "function_call_output",
                                                         "call_id": call["item"]["call_id"],
                                                         "output": json.dumps({"order_id": "4711", "status": "shipped"})}})
    answer = only(h.send({"type": "response.create"}), "response.output_audio_transcript.done")["transcript"]
    assert answer == "Your order four seven one one has shipped and arrives tomorrow."


def test_goodbye_ends_with_end_call_and_a_person_with_a_transfer():
    h = Harness(speed=0)
    tool_session(h)
    say(h, "caller_question")  # the first turn: the long answer
    out = say(h, "caller_goodbye")
    assert calls_of(out) == [("end_call", {"reason": "the caller said goodbye"})]
    assert only(out, "response.output_audio_transcript.done")["transcript"] == agent_mod.GOODBYE[1]
    out = say(h, "caller_person")
    assert calls_of(out) == [("transfer_call", {"destination": "support"})]
    h2 = Harness(speed=0)
    tool_session(h2, tools=())  # without the tools the same words get ordinary answers
    say(h2, "caller_question")
    assert calls_of(say(h2, "caller_goodbye")) == []


LOOKUP = {"type": "function", "name": "lookup_order", "description": "Find an order.",
          "parameters": {"type": "object", "properties": {"order_number": {"type": "integer"},
                                                          "note": {"type": "string"}},
                         "required": ["order_number"]}}
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                                                           "units": {"type": "string", "enum": ["c", "f"]}},
                          "required": ["city", "units"]}}
SALES = {"type": "function", "name": "transfer_call", "description": "Transfer.",
         "parameters": {"type": "object", "properties": {"destination": {"type": "string", "enum": ["billing", "sales"]}},
                        "required": ["destination"]}}


def typed(h: Harness, keys: str) -> list[dict]:
    """Keypad keys as the bridge words them, then the response the bridge asks for."""
    h.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": f"The caller entered {keys} on the phone keypad."}]}})
    return h.send({"type": "response.create"})


def test_the_agent_calls_your_own_tools_with_arguments_from_their_schemas():
    """No order_status, a user's lookup_order: the order scenario and typed digits call it; any
    offered tool is called by its name spelled on the keypad; a transfer goes to any destination."""
    from voicebridge.call.keypad import keypad_code

    h = Harness(speed=0)
    tool_session(h, tools=(LOOKUP, WEATHER, SALES, END_CALL))
    assert only(say(h, "caller_order"), "response.output_audio_transcript.done")["transcript"] == agent_mod.ASK_ORDER[1]
    assert calls_of(typed(h, "4711")) == [("lookup_order", {"order_number": 4711})]
    assert calls_of(typed(h, f"*{keypad_code('get_weather')}")) == [("get_weather", {"city": "I would like to check my order.",
                                                                                     "units": "c"})]
    assert calls_of(typed(h, f"*{keypad_code('get_weather')}*3")) == [("get_weather", {"city": "3", "units": "c"})]
    assert calls_of(typed(h, f"*{keypad_code('transfer_call')}*2")) == [("transfer_call", {"destination": "sales"})]
    assert calls_of(say(h, "caller_person")) == [("transfer_call", {"destination": "billing"})]
    assert calls_of(typed(h, f"*{keypad_code('end_call')}")) == [("end_call", {"reason": "the caller asked to end the call"})]
    assert calls_of(typed(h, "*999")) == []  # names no offered tool


def test_schema_arguments_fill_what_is_required_and_put_digits_where_they_fit():
    from voicebridge.dev.local.tooluse import arguments, named_tool, topical_tool

    schema = {"type": "object", "required": ["customer", "flags", "when"],
              "properties": {"customer": {"type": "string"}, "account_id": {"type": "string"},
                             "flags": {"type": "array"}, "when": {"type": ["integer", "null"]},
                             "opts": {"type": "object"}}}
    assert arguments(schema, "42", "hello") == {"customer": "hello", "flags": [], "when": 1, "account_id": "42"}
    assert arguments(schema) == {"customer": "test", "flags": [], "when": 1}
    assert arguments(None) == {} and arguments({"properties": "junk", "required": ["x"]}) == {}
    tools = {"lookup_order": {}, "end_call": {}, "transfer_call": {}}
    assert topical_tool("order", tools) == "lookup_order" and topical_tool("order", {"end_call": {}}) is None
    assert named_tool("The caller entered 1234 on the phone keypad.", tools) is None


def test_instructions_and_out_of_band_responses():
    h = Harness(speed=0)
    tool_session(h)
    filler = h.send({"type": "response.create", "response": {
        "conversation": "none", "input": [], "metadata": {"voicebridge": "filler"},
        "instructions": "You are still waiting for a lookup; tell the caller you are still checking."}})
    assert audio_of(filler) == tts.load_prompt("still_checking")
    assert "conversation.item.added" not in types(filler) and "conversation.item.done" not in types(filler)
    assert only(filler, "response.done")["response"]["metadata"] == {"voicebridge": "filler"}
    for instructions, prompt in [("Say a short, friendly goodbye to the caller.", "goodbye"),
                                 ("Tell the caller you are connecting them now.", "handoff"),
                                 ("Briefly ask whether they are still there.", "still_there")]:
        out = h.send({"type": "response.create", "response": {"instructions": instructions}})
        assert audio_of(out) == tts.load_prompt(prompt), instructions
