"""The call recording's figures (issue 27): exactness over the wire, and the writer's cost.

1. ``--calls N``: N offline calls (simulated caller -> example app -> local Realtime server,
   each with a barge-in), recorded by the bridge and by the simulated caller's own playout.
   Per call: the agent samples the caller's playout played, whether the bridge's "heard"
   channel has exactly those samples in that order, and the file's samples against the
   call's duration.
2. The writer's cost: a synthetic 60 s call (a caller frame and an agent frame every 20 ms, a
   clear every 5 s) through ``CallRecording``'s writer thread: CPU per call-second.

    python benchmarks/recording.py --calls 3
"""
from __future__ import annotations

import argparse
import glob
import logging
import json
import os
import struct
import sys
import tempfile
import time
import wave

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from voicebridge.dev.appcall import simulated_call
from voicebridge.serving.app import Settings  # noqa: E402
from voicebridge.audio.mulaw import SILENCE_BYTE, ULAW_TABLE  # noqa: E402
from voicebridge.call.log import CallLog  # noqa: E402
from voicebridge.dev.local.server import LocalRealtimeServer  # noqa: E402
from voicebridge.call.recording import CallRecording  # noqa: E402

SCRIPT = "wait_agent:5000,wait_quiet:400,say:What can you tell me?,wait_agent:6000,interrupt:300:Stop please,wait_quiet:600,hangup"


def channels(path: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    with wave.open(path) as w:
        data = w.readframes(w.getnframes())
    pcm = struct.unpack(f"<{len(data) // 2}h", data)
    return pcm[0::2], pcm[1::2]


def one_call(local_url: str, tmp: str) -> dict:
    settings = Settings(session_options={"recording_dir": os.path.join(tmp, "rec")})
    _, bridge = simulated_call(local_url, SCRIPT, settings, record_path=os.path.join(tmp, "caller.wav"),
                               max_seconds=30)
    time.sleep(0.5)  # the writer finishes off the call's threads
    path = glob.glob(os.path.join(tmp, "rec", "*.wav"))[0]
    _, heard = channels(path)
    _, played = channels(os.path.join(tmp, "caller.wav"))
    silence = ULAW_TABLE[SILENCE_BYTE]
    ours = [s for s in heard if s != silence]
    theirs = [s for s in played if s != silence]
    return {"agent_samples_played": len(theirs), "heard_channel_equal": ours == theirs,
            "barge_ins": bridge["barge_in_events"] if bridge else None, "clears": bridge["clears_sent"] if bridge else None,
            "file_seconds": round(len(heard) / 8000, 3), "file_bytes": os.path.getsize(path)}


def writer_cost(seconds: float = 60.0) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        now = [0.0]
        rec = CallRecording(os.path.join(tmp, "w.wav"), 0.0, lambda: now[0], CallLog(logging.getLogger()),
                            max_events=10**6)  # fed faster than real time: no drops in the measure
        frame = bytes(range(160))
        cpu0 = time.process_time()
        for n in range(int(seconds * 50)):
            t = n * 0.02
            rec.caller(frame, t)
            rec.sent(frame, t)
            if n % 250 == 249:
                rec.cleared(t)
            now[0] = t
        rec.finish(seconds)
        result = rec.wait(30.0)
        cpu = time.process_time() - cpu0
    return {"call_seconds": seconds, "cpu_ms_per_call_second": round(cpu * 1000 / seconds, 2),
            "file_seconds": result.seconds if result else None, "events_dropped": rec.events_dropped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()
    calls = []
    with LocalRealtimeServer(mode="tone", speed=8.0, tone_seconds=1.2) as local:
        for _ in range(args.calls):
            with tempfile.TemporaryDirectory() as tmp:
                calls.append(one_call(local.url, tmp))
    print(json.dumps({"calls": calls, "writer": writer_cost()}, indent=1))


if __name__ == "__main__":
    main()
