"""Send-side pacing of one MediaSession: 60 s of model audio in random deltas at 5x real time.

Prints the gap distribution of media messages leaving the bridge (deviation from 20 ms),
bursts (gaps < 18 ms outside the lead), late frames, schedule resets and CPU seconds.
Usage: python benchmarks/pacing.py [--seconds 60] [--speed 5] [--json]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks._common import RecordingTwilio, gap_stats  # noqa: E402
from voicebridge import BridgeConfig, MediaSession  # noqa: E402
from voicebridge.testing import FakeRealtime  # noqa: E402


def make_deltas(seconds: float, seed: int) -> list[str]:
    """Random-size base64 deltas (prepared before timing so the feeder costs no CPU later)."""
    rnd = random.Random(seed)
    total, out, pattern = int(seconds * 8000), [], bytes(range(1, 255)) * 20
    while total > 0:
        n = min(total, rnd.randrange(80, 2400))
        out.append(base64.b64encode(pattern[:n]).decode())
        total -= n
    return out


def feed(openai: FakeRealtime, deltas: list[str], speed: float) -> int:
    """Push one long response as the given deltas at ``speed`` x real time."""
    openai.push({"type": "response.created", "response": {"id": "resp_b", "status": "in_progress"}})
    openai.push({"type": "response.output_item.added", "response_id": "resp_b", "output_index": 0,
                 "item": {"id": "item_b", "type": "message"}})
    sent = 0
    start = time.monotonic()
    for delta in deltas:
        openai.push({"type": "response.output_audio.delta", "response_id": "resp_b", "item_id": "item_b",
                     "delta": delta})
        sent += len(delta) * 3 // 4 - delta[-2:].count("=")
        due = start + sent / 8000 / speed
        time.sleep(max(0.0, due - time.monotonic()))
    openai.finish("resp_b", "item_b")
    return sent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--speed", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    twilio, openai = RecordingTwilio(), FakeRealtime()
    config = BridgeConfig(greeting_instructions=None, barge_in=False)
    session = MediaSession(twilio, config, openai.connector)
    twilio.start()
    deltas = make_deltas(args.seconds, args.seed)
    cpu0 = time.process_time()
    runner = threading.Thread(target=session.run)
    runner.start()
    total = feed(openai, deltas, args.speed)
    expected = -(-total // 160)
    deadline = time.monotonic() + args.seconds + 10
    while session.metrics["frames_sent"] < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    session.close("benchmark done")
    runner.join()
    cpu = time.process_time() - cpu0
    times = [t for t, kind in twilio.kinds() if kind == "media"]
    lead = config.lead_frames
    stats = gap_stats(times, skip=set(range(max(lead - 1, 0))))  # the lead's own gaps
    m = session.metrics
    result = {
        "audio_seconds": args.seconds, "speed": args.speed, **stats,
        "tx_late_frames": m["tx_late_frames"], "tx_schedule_resets": m["tx_schedule_resets"],
        "first_frame_bytes": m["first_frame_bytes"], "frames_expected": expected,
        "accounting_ok": m["accounting_ok"], "cpu_seconds": round(cpu, 3),
        "cpu_ms_per_audio_second": round(cpu * 1000 / args.seconds, 3), "cores": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>26}: {value}")
    return 0 if stats["frames"] == expected and m["accounting_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
