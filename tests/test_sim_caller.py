"""The simulated caller against a small scripted fake bridge (Flask + flask-sock, 127.0.0.1)."""
import base64
import json
import math
import re
import socket
import threading
import time
import wave
from contextlib import contextmanager

import pytest
from flask import Flask, request
from flask_sock import Sock
from werkzeug.serving import make_server

from voicebridge.audio.mulaw import MIN_DBFS, SILENCE_FRAME, dbfs, encode, rms
from voicebridge.dev.sim import (Acoustics, SimulatedCaller, Speakerphone, hangup, interrupt, main, silence, wait_for_agent,
                             wait_for_agent_silence)
from voicebridge.dev.sim.sounds import babble
from voicebridge.dev.tone import tone_audio

U1_BLOCKS = 25
U2_CHUNKS = (10, 20, 20, 20, 20)  # blocks per media message of utterance 2


@contextmanager
def serve(handler):
    """Serve ``handler(ws, record)`` at ws://127.0.0.1:PORT/media; yields (url, record)."""
    app = Flask(__name__)
    sock = Sock(app)
    record = {"errors": [], "messages": [], "done": threading.Event()}

    @sock.route("/media")
    def media(ws):
        record["headers"] = dict(request.headers)
        try:
            handler(ws, record)
        except Exception as exc:  # surfaced by the test via record["errors"]
            record["errors"].append(repr(exc))
        finally:
            record["done"].set()

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.server_port}/media", record
    finally:
        server.shutdown()
        thread.join(5)


def _media(sid, audio):
    return json.dumps({"event": "media", "streamSid": sid, "media": {"payload": base64.b64encode(audio).decode()}})


def _mark(sid, name):
    return json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": name}})


def scripted_bridge(ws, record):
    """Paced utterance 1 (tone response 0) with a mark; utterance 2 (response 1) sent ahead in
    big chunks with marks; ``clear`` as soon as loud caller audio arrives; one invalid message."""
    record["connected"] = json.loads(ws.receive(timeout=5))
    start = json.loads(ws.receive(timeout=5))
    record["start"] = start
    sid = start["streamSid"]
    inbound, cleared = 0, False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        raw = ws.receive(timeout=5)
        if raw is None:
            break
        msg = json.loads(raw)
        record["messages"].append((time.monotonic(), msg))
        if msg["event"] == "stop":
            break
        if msg["event"] != "media":
            continue
        inbound += 1
        if 5 <= inbound < 5 + U1_BLOCKS:
            ws.send(_media(sid, tone_audio(inbound - 4)[-160:]))
            if inbound == 4 + U1_BLOCKS:
                ws.send(_mark(sid, "u1"))
                ws.send(json.dumps({"event": "media", "streamSid": sid,
                                    "media": {"payload": "", "track": "outbound"}}))  # invalid (31951)
        elif inbound == 60:
            audio, pos = tone_audio(sum(U2_CHUNKS), response=1), 0
            for i, blocks in enumerate(U2_CHUNKS, 1):
                ws.send(_media(sid, audio[pos:pos + blocks * 160]))
                ws.send(_mark(sid, f"u2-{i}"))
                pos += blocks * 160
        elif inbound > 60 and not cleared and rms(base64.b64decode(msg["media"]["payload"])) > 1000:
            ws.send(json.dumps({"event": "clear", "streamSid": sid}))
            cleared = True


def _scripted_call(wav_path, events):
    steps = [wait_for_agent(3000), wait_for_agent_silence(200, 3000),
             interrupt(audio=babble(400), after_ms=375, timeout_ms=3000),  # u2-1 (200 ms) heard, u2-2 (600 ms) not
             wait_for_agent_silence(200, 3000), hangup()]
    with serve(scripted_bridge) as (url, record):
        caller = SimulatedCaller(url, steps, headers={"X-Twilio-Signature": "c2ln"},
                                 custom_parameters={"tenant": "acme"}, record_path=str(wav_path),
                                 max_seconds=8, on_event=lambda n, t, d: events.append((n, t, d)))
        report = caller.run()
        assert record["done"].wait(5)
    return report, record


@pytest.mark.timing
def test_scripted_call_timing_as_the_caller_measures_it(tmp_path):
    """Wall-clock figures of the call below (the timing lane: they depend on the machine's load)."""
    report, _ = _scripted_call(tmp_path / "call.wav", [])
    assert 60 <= report.time_to_first_audio_ms <= 400
    [barge] = report.interruptions
    assert barge.clear_ms is not None and barge.clear_ms < 300
    assert abs(barge.heard_after_ms - barge.clear_ms) <= 25
    assert barge.last_media_before_ms >= 250
    assert report.bursts >= 2 and report.utterances == 2  # utterance 2's chunks back to back, past the lead


def test_call_against_scripted_bridge(tmp_path):
    wav_path = tmp_path / "call.wav"
    events = []
    report, record = _scripted_call(wav_path, events)
    assert record["errors"] == []

    # -- what the bridge received: exactly Twilio's shapes and numbering
    assert record["headers"].get("X-Twilio-Signature") == "c2ln"
    assert record["connected"] == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = record["start"]
    assert start["event"] == "start" and start["sequenceNumber"] == "1"
    assert re.fullmatch(r"MZ[0-9a-f]{32}", start["streamSid"])
    assert start["start"] == {
        "streamSid": start["streamSid"], "accountSid": start["start"]["accountSid"], "callSid": report.call_sid,
        "tracks": ["inbound"], "customParameters": {"tenant": "acme"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}
    assert re.fullmatch(r"AC[0-9a-f]{32}", start["start"]["accountSid"])
    assert re.fullmatch(r"CA[0-9a-f]{32}", report.call_sid)
    msgs = [m for _, m in record["messages"]]
    assert [int(m["sequenceNumber"]) for m in msgs] == list(range(2, len(msgs) + 2))
    assert all(m["streamSid"] == start["streamSid"] for m in msgs)
    media = [m for m in msgs if m["event"] == "media"]
    assert [int(m["media"]["chunk"]) for m in media] == list(range(1, len(media) + 1))
    assert [int(m["media"]["timestamp"]) for m in media] == [20 * i for i in range(len(media))]
    assert all(set(m["media"]) == {"track", "chunk", "timestamp", "payload"} and m["media"]["track"] == "inbound"
               and len(base64.b64decode(m["media"]["payload"])) == 160 for m in media)
    assert len(media) == report.frames_sent
    assert msgs[-1] == {"event": "stop", "sequenceNumber": msgs[-1]["sequenceNumber"],
                        "streamSid": start["streamSid"],
                        "stop": {"accountSid": start["start"]["accountSid"], "callSid": report.call_sid}}
    echoes = [m for m in msgs if m["event"] == "mark"]
    assert [m["mark"]["name"] for m in echoes] == ["u1", "u2-1", "u2-2", "u2-3", "u2-4", "u2-5"]
    assert all(set(m) == {"event", "sequenceNumber", "streamSid", "mark"} for m in echoes)

    # -- what the caller measured
    assert report.ended_by == "script", report.errors
    assert report.frames_received == U1_BLOCKS + len(U2_CHUNKS)
    assert report.frame_sizes == {160: U1_BLOCKS, 1600: 1, 3200: 4}
    assert report.messages_received == {"media": U1_BLOCKS + 5, "mark": 6, "clear": 1, "invalid": 1}
    assert report.invalid_messages == 1 and any("31951" in e for e in report.errors)
    # utterance 2's five chunks came back to back: four short gaps, two of them the lead's; on a
    # loaded CI one of the other two may open past the burst bound, so one burst at least
    # (a loaded CI can stall the scripted bridge's paced utterance 1 past the utterance gap: two or
    # more; exactly two is the timing lane's)
    assert report.utterances >= 2 and report.bursts >= 1
    assert report.time_to_first_audio_ms > 0  # its bound is in the timing lane
    assert report.tone and report.tone["ok"] and report.tone["blocks"] == U1_BLOCKS + sum(U2_CHUNKS)
    assert report.tone["responses"] == [0, 1]
    assert (report.marks_received, report.marks_echoed, report.marks_cleared) == (6, 6, 4)
    u1 = report.marks[0]
    assert u1.name == "u1" and not u1.cleared
    assert u1.echoed_ms >= report.time_to_first_audio_ms + U1_BLOCKS * 20 - 60
    # 200 ms of audio precede it (the bridge sends media and mark back to back; slack for loaded CI)
    assert report.marks[1].echoed_ms - report.marks[1].received_ms >= 150
    assert report.clears == 1 and report.cleared_ms > 500
    [barge] = report.interruptions
    assert barge.agent_talking and barge.clear_ms is not None
    assert barge.frames_after_onset == 0 and barge.last_media_after_ms is None
    # the burst of utterance 2 came well before the onset, 375 ms after the agent began (slack for
    # a loaded CI, where the burst's delivery takes tens of ms; the tight bound is in the timing lane)
    assert barge.last_media_before_ms >= 150
    names = [e["name"] for e in report.events]
    for expected in ["call_start", "agent_audio_start", "agent_audio_stop", "mark", "mark_echo",
                     "interrupt", "caller_speech_start", "caller_speech_stop", "clear", "hangup"]:
        assert expected in names
    # the progress callback saw every event of the report (some, like agent_audio_stop, are
    # reported with an earlier time than the event before them); the report is in time order
    assert sorted((n, round(t, 4)) for n, t, _ in events) == sorted((e["name"], e["t"]) for e in report.events)
    assert [e["t"] for e in report.events] == sorted(e["t"] for e in report.events)
    assert len(report.caller_dbfs) == len(report.agent_dbfs) == report.frames_sent
    assert max(report.agent_dbfs) > -40 and max(report.caller_dbfs) > -40
    json.dumps(report.to_dict())

    # -- the recording: left = caller, right = heard, sample-aligned from call start
    with wave.open(str(wav_path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        frames = w.readframes(w.getnframes())
        assert abs(w.getnframes() - report.frames_sent * 160) <= 400
    import array
    pcm = array.array("h", frames)
    left, right = pcm[0::2], pcm[1::2]
    onset = int(barge.onset_ms * 8)
    spoke = next(i for i, v in enumerate(left) if v)  # frames sit on the 20 ms grid; onset is send time
    # (the caller's sends lag the grid on a loaded CI: its first sound may sit up to 300 ms before
    # the onset's send time)
    assert onset - 2400 <= spoke <= onset + 8 and max(map(abs, left[onset:onset + 800])) > 3000
    first = int(report.time_to_first_audio_ms * 8)
    assert max(map(abs, right[:first - 8])) == 0 and max(map(abs, right[first + 80:first + 4000])) > 3000


def test_bridge_that_closes_first():
    def short_bridge(ws, record):
        ws.receive(timeout=5)
        ws.receive(timeout=5)
        for _ in range(3):
            ws.receive(timeout=5)

    with serve(short_bridge) as (url, record):
        t0 = time.monotonic()
        report = SimulatedCaller(url, [silence(5000), hangup()], max_seconds=8).run()
        assert time.monotonic() - t0 < 3
    assert report.ended_by == "bridge"
    assert "bridge_closed" in [e["name"] for e in report.events]
    assert 3 <= report.frames_sent < 50


def test_max_duration_bounds_the_call():
    def silent_bridge(ws, record):
        while ws.receive(timeout=5) is not None:
            pass

    with serve(silent_bridge) as (url, _):
        report = SimulatedCaller(url, [wait_for_agent(60000)], max_seconds=0.5).run()
    assert report.ended_by == "max_duration"
    assert 20 <= report.frames_sent <= 26


def test_connect_failure_is_reported():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report = SimulatedCaller(f"ws://127.0.0.1:{port}/media", "hangup", connect_timeout=2).run()
    assert report.ended_by == "error" and report.errors


def test_cli_main(tmp_path, capsys):
    def echo_bridge(ws, record):
        ws.receive(timeout=5)
        sid = json.loads(ws.receive(timeout=5))["streamSid"]
        ws.send(_media(sid, tone_audio(5)))
        ws.send(_mark(sid, "end"))
        while (raw := ws.receive(timeout=5)) is not None and json.loads(raw)["event"] != "stop":
            pass

    with serve(echo_bridge) as (url, _):
        code = main([url, "--script", "wait_agent:2000,wait_quiet:200,hangup", "--json",
                     "--param", "tenant=acme", "--header", "X-Twilio-Signature: abc",
                     "--record", str(tmp_path / "c.wav"), "--max-seconds", "5"])
    out = capsys.readouterr()
    assert code == 1  # 800-byte payloads are reported as a problem
    report = json.loads(out.out)
    assert report["marks_echoed"] == 1 and report["tone"]["ok"]
    assert "agent_audio_start" in out.err and "problems:" in out.err
    assert (tmp_path / "c.wav").exists()
    with pytest.raises(SystemExit):
        main(["--bogus"])


TONE_AFTER = 10  # the bridge answers the 10th caller frame with the tone
TONE_FRAMES = 30  # 600 ms
LOUD_TONE = encode([round(12000 * math.sin(2 * math.pi * 1000 * n / 8000)) for n in range(160 * TONE_FRAMES)])


def tone_once_bridge(ws, record):
    """Sends 600 ms of a loud 1 kHz tone once the 10th caller frame arrives; keeps every caller frame."""
    ws.receive(timeout=5)
    sid = json.loads(ws.receive(timeout=5))["streamSid"]
    record["frames"] = []
    while (raw := ws.receive(timeout=5)) is not None:
        msg = json.loads(raw)
        if msg["event"] == "stop":
            break
        if msg["event"] == "media":
            record["frames"].append(base64.b64decode(msg["media"]["payload"]))
            if len(record["frames"]) == TONE_AFTER:
                ws.send(_media(sid, LOUD_TONE))


def test_speakerphone_echo_reaches_the_bridge(tmp_path):
    def call(acoustics, record_path=None):
        with serve(tone_once_bridge) as (url, record):
            report = SimulatedCaller(url, [silence(1400), hangup()], max_seconds=5, acoustics=acoustics,
                                     record_path=record_path).run()
            assert record["done"].wait(5)
        assert record["errors"] == [] and report.ended_by == "script", (record["errors"], report.errors)
        return record["frames"], report

    # A clean line: the caller is silent, so is every frame, the tone notwithstanding.
    frames, report = call(None)
    assert report.frames_received == 1 and len(frames) >= 60
    assert all(f == SILENCE_FRAME for f in frames)

    # On a speakerphone the tone comes back ~60 ms (plus one frame of capture) after it played, 20 dB down.
    wav = tmp_path / "echo.wav"
    frames, report = call(Acoustics(Speakerphone(-20, delay_ms=60)), str(wav))
    assert report.frames_received == 1 and len(frames) >= 60
    echoed = [i for i, f in enumerate(frames) if f != SILENCE_FRAME]
    assert echoed, "no echo reached the bridge"
    first = echoed[0]
    assert echoed == list(range(first, first + len(echoed)))  # one contiguous echo, silence around it
    assert all(f == SILENCE_FRAME for f in frames[:TONE_AFTER])
    assert 3 <= first - (TONE_AFTER - 1) <= 10  # 60 ms = 3 frames, +1 frame capture, + delivery
    assert TONE_FRAMES - 1 <= len(echoed) <= TONE_FRAMES + 2
    relative = [dbfs(f) - dbfs(LOUD_TONE[:160]) for f in frames[first + 2:first + TONE_FRAMES - 2]]
    assert all(-22 <= r <= -18 for r in relative), relative
    # The echo is not the caller: their own level stayed silence, and the recording's "said"
    # channel is what the microphone sent.
    assert set(report.caller_dbfs) == {MIN_DBFS}
    with wave.open(str(wav)) as w:
        import array
        left = array.array("h", w.readframes(w.getnframes()))[0::2]
    assert max(map(abs, left)) > 1000
