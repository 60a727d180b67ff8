"""Offline end to end: simulated caller -> example app -> local Realtime server, recording, analysis, report."""
import http.server
import json
import struct
import threading
import wave
from pathlib import Path

from voicebridge.dev.appcall import simulated_call
from voicebridge.serving.app import Settings
from voicebridge.audio.mulaw import SILENCE_BYTE, ULAW_TABLE
from voicebridge.dev.local.server import LocalRealtimeServer
from voicebridge.call.report import SIGNATURE_HEADER, verify
from voicebridge.testing import wait_until

SCRIPT = "wait_agent:5000,wait_quiet:400,say:What can you tell me?,wait_agent:6000,interrupt:300:Stop please,wait_quiet:600,hangup"
FIELDS = {"type": "object", "properties": {"appointment_confirmed": {"type": "boolean"}},
          "required": ["appointment_confirmed"]}


def channels(path):
    with wave.open(str(path)) as w:
        data = w.readframes(w.getnframes())
    pcm = struct.unpack(f"<{len(data) // 2}h", data)
    return pcm[0::2], pcm[1::2]


def realigned(ours, theirs, slack: int, window: int = 80, tail: int = 480) -> int:
    """How many times ``ours`` and ``theirs`` had to be realigned (one of them skipping at most
    ``slack`` samples) to match sample for sample; AssertionError where they cannot be. At the
    end ``ours`` may run on by ``tail`` samples: a caller who hangs up while the agent talks never
    plays what was queued at its end (the 40 ms lead and a frame on its way), which the bridge
    sent and counts as heard until the hang-up reaches it."""
    i = j = cuts = 0
    while i < len(ours) and j < len(theirs):
        if ours[i] == theirs[j]:
            i, j = i + 1, j + 1
            continue
        shifts = ((di, total - di) for total in range(1, 2 * slack + 1)  # the smallest shift first
                  for di in range(max(0, total - slack), min(total, slack) + 1))
        for di, dj in shifts:
            a, b = ours[i + di:i + di + window], theirs[j + dj:j + dj + window]
            if a == b and (len(a) == window or i + di + len(a) == len(ours) and j + dj + len(b) == len(theirs)):
                i, j, cuts = i + di, j + dj, cuts + 1
                break
        else:
            raise AssertionError(f"the channels part at samples {i} / {j} and do not meet again within {slack}")
    assert len(ours) - i <= tail and len(theirs) - j <= slack, (len(ours) - i, len(theirs) - j)
    return cuts + (i < len(ours) or j < len(theirs))


def test_a_call_leaves_a_recording_of_what_was_heard_and_a_signed_report_with_its_analysis(tmp_path):
    bodies = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            bodies.append((verify(body, self.headers.get(SIGNATURE_HEADER), "k", __import__("time").time()),
                           json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    settings = Settings(session_options={
        "recording_dir": str(tmp_path / "rec"), "analysis_schema": FIELDS, "report_secret": "k",
        "report_url": f"http://127.0.0.1:{receiver.server_address[1]}/reports",
        "report_spool_dir": str(tmp_path / "spool"),
        "analysis_timeout_s": 30.0})  # a bound, not a wait: the answer comes in well under a second
    try:
        with LocalRealtimeServer(mode="tone", speed=8.0, tone_seconds=1.2) as local:
            _, bridge = simulated_call(local.url, SCRIPT, settings, record_path=str(tmp_path / "caller.wav"),
                                       max_seconds=30)
        assert wait_until(lambda: bodies, 60.0)  # a bound: the analysis alone may take its 30 s timeout
    finally:
        receiver.shutdown()
        receiver.server_close()
    signed, report = bodies[0]
    assert signed and len(bodies) == 1
    assert bridge["barge_in_events"] == 1 and report["barge_ins"]["confirmed"] == 1, (bridge, report["barge_ins"])
    assert report["analysis"]["valid"] and report["analysis"]["value"]["appointment_confirmed"] is False, \
        report["analysis"]
    assert report["call"]["call_sid"] == bridge["call_sid"] and report["end_reason"] == bridge["close_reason"]
    # The bridge's "heard" channel is the agent audio the caller's playout played, sample for sample
    _, heard = channels(report["recording"]["path"])
    _, caller_heard = channels(tmp_path / "caller.wav")
    silence = ULAW_TABLE[SILENCE_BYTE]
    ours = [s for s in heard if s != silence]
    theirs = [s for s in caller_heard if s != silence]
    # Sample for sample, except where a clear landed while agent audio was queued (the duck's own
    # clear does that): there the bridge's instant and the caller's differ by the socket's latency
    # and thread scheduling (5 ms on a quiet box, more beside a CPU burner), so the cut may fall up
    # to 30 ms apart; after it the two run on together.
    assert len(ours) > 8000
    assert realigned(ours, theirs, slack=240) <= bridge["clears_sent"], (len(ours), len(theirs), bridge["clears_sent"])
    assert abs(len(heard) - report["duration_s"] * 8000) <= 8  # both channels: the call's length (ms-rounded)
    assert Path(report["recording"]["path"]).stat().st_size == 44 + len(heard) * 4
