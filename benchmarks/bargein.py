"""Barge-in latency over N simulated interruptions, measured inside the bridge.

For each interruption a long response is playing (the agent's voice: a constant frame is a held
note to the detector and the echo gate alike); the caller's line carries quiet frames for
``LISTEN_S`` while it plays, as Twilio streams them (the echo gate proves the quiet line's echo
loss meanwhile: without it, with the duck off, a caller softer than the agent is taken for its
echo), then the caller speaks (a sentence of the speech corpus, a frame every 20 ms). Measured from speech onset (the first loud frame handed to
the bridge) to the first Twilio ``clear`` (the duck's, which clears the caller's buffer, or the barge-in's), to the
last media frame sent, and to the barge-in confirmed (its words, the sentence's, long enough).
Usage: python benchmarks/bargein.py [--n 50] [--no-duck] [--json]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks._common import RecordingTwilio, percentile  # noqa: E402
from voicebridge import BridgeConfig, MediaSession  # noqa: E402
from voicebridge.dev import tts  # noqa: E402
from voicebridge.dev.sim import corpus  # noqa: E402
from voicebridge.testing import FakeRealtime  # noqa: E402

_SENTENCE = corpus.by_category("talk")[0].audio()
SPEECH = [base64.b64encode(_SENTENCE[k:k + 160]).decode() for k in range(0, len(_SENTENCE) - 159, 160)
          if max(_SENTENCE[k:k + 160]) > 0]  # (its frames, from its first)
QUIET = base64.b64encode(b"\xff" * 160).decode()
ANSWER = tts.load_prompt("long_answer")
LISTEN_S = 1.2  # the answer heard before the caller speaks (the echo gate proves the quiet line's loss meanwhile)


def media(twilio: RecordingTwilio, payload: str) -> None:
    twilio.push({"event": "media", "streamSid": twilio.stream_sid, "media": {"payload": payload}})


def interrupt_once(twilio: RecordingTwilio, openai: FakeRealtime, session: MediaSession, i: int) -> tuple[float, float, float]:
    rid, item = f"resp_{i}", f"item_{i}"
    start = (i * 8000) % (len(ANSWER) - 40000) // 160 * 160  # 5 s of the agent's voice
    openai.response(rid, item, [ANSWER[k:k + 4000] for k in range(start, start + 40000, 4000)],
                    done=(i % 2 == 0))  # half after response.done
    listen_until = time.monotonic() + LISTEN_S  # the caller hears the answer on a quiet line, as
    while time.monotonic() < listen_until:  # Twilio streams it: a frame every 20 ms
        media(twilio, QUIET)
        time.sleep(0.020)
    before = session.metrics["barge_in_events"]
    onset = time.monotonic()
    next_at = onset
    while session.metrics["barge_in_events"] == before and time.monotonic() - onset < 2.0:
        media(twilio, SPEECH[round((time.monotonic() - onset) / 0.020) % len(SPEECH)])
        next_at += 0.020
        time.sleep(max(0.0, next_at - time.monotonic()))
    confirmed_t = time.monotonic()  # (within a frame of the barge-in: the loop looks every 20 ms)
    time.sleep(0.1)
    sent = list(twilio.sent)
    kinds = [(t, json.loads(raw)["event"]) for t, raw in sent]
    clear_t = next((t for t, k in kinds if k == "clear" and t >= onset), None)  # the duck's, when it clears
    if clear_t is None:
        raise SystemExit(f"interruption {i}: no clear within {confirmed_t - onset:.1f} s of the onset "
                         f"(barge-ins {session.metrics['barge_in_events']}, {dict(session.metrics)['ducks']} ducks)")
    last_media = max((t for t, k in kinds if k == "media" and t <= clear_t), default=onset)
    after_clear = sum(1 for t, k in kinds if k == "media" and t > clear_t)
    for _ in range(3):
        media(twilio, QUIET)
    # let the response be answered so the next round starts from a quiet line
    openai.push({"type": "conversation.item.input_audio_transcription.completed", "item_id": f"u{i}",
                 "content_index": 0, "transcript": "sorry, go on"})
    time.sleep(0.05)
    return (clear_t - onset) * 1000, (max(last_media, onset) - onset) * 1000, after_clear, (confirmed_t - onset) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--no-duck", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    twilio, openai = RecordingTwilio(), FakeRealtime()
    config = BridgeConfig(greeting_instructions=None, duck=not args.no_duck, false_trigger_ms=60000)
    session = MediaSession(twilio, config, openai.connector)
    twilio.start()
    runner = threading.Thread(target=session.run)
    runner.start()
    to_clear, to_last, to_confirm, leaks = [], [], [], 0
    for i in range(args.n):
        c, last, after, confirmed = interrupt_once(twilio, openai, session, i)
        to_clear.append(c)
        to_confirm.append(confirmed)
        to_last.append(last)
        leaks += after
    session.close("benchmark done")
    runner.join()
    m = session.metrics
    result = {
        "interruptions": args.n, "duck": not args.no_duck,
        "onset_to_clear_p50_ms": round(percentile(to_clear, 50), 2),
        "onset_to_clear_p99_ms": round(percentile(to_clear, 99), 2),
        "onset_to_last_frame_p50_ms": round(percentile(to_last, 50), 2),
        "onset_to_last_frame_p99_ms": round(percentile(to_last, 99), 2),
        "onset_to_confirmed_p50_ms": round(percentile(to_confirm, 50), 2),
        "onset_to_confirmed_p99_ms": round(percentile(to_confirm, 99), 2),
        "media_after_clear": leaks, "barge_in_events": m["barge_in_events"],
        "frames_flushed": m["frames_flushed"], "accounting_ok": m["accounting_ok"],
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value}")
    return 0 if m["accounting_ok"] and leaks == 0 and m["barge_in_events"] == args.n else 1


if __name__ == "__main__":
    raise SystemExit(main())
