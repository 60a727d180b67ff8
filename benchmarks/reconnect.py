"""What a caller hears when the Realtime session is replaced, measured on the frames Twilio gets.

Real sockets on loopback: the bridge (``MediaSession`` with the websocket-client connector)
talks to the local Realtime server; a paced caller thread plays Twilio. Old and new in one run:

* **unplanned** -- the socket is cut (TCP, no close frame) at a random point 1-3 s into the
  greeting, which the server generates in *real time* (``speed=1``: nothing is buffered beyond
  the bridge's lead, the worst case). Figures: the drop -> the next agent frame, and the
  longest silence inside the answer (the largest gap between frames, minus one frame period).
  Before reconnecting existed (``reconnect_attempts=0``) the same drop played the apology and
  ended the call: its "next frame" is the apology's.
* **rollover** -- the caller takes turns (a bundled phrase, then quiet until the answer has
  played); with ``session_max_age_s`` small enough the bridge replaces the session at every
  quiet moment (the pause before each turn varies, so some land as the caller starts to speak:
  that audio is kept and re-sent). Figures per answer: caller's last word -> first agent frame, and the longest
  extra gap inside the answer, with rollovers and without. Tone-mode answers are checked block
  by block (nothing lost, nothing repeated).

Usage: python benchmarks/reconnect.py [--drops 10] [--turns 8] [--json]
"""
from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks._common import machine, percentile  # noqa: E402
from voicebridge import BridgeConfig
from voicebridge.audio import mulaw as audio
from voicebridge.model import client as realtime_client
from voicebridge import testing
from voicebridge.dev import tts  # noqa: E402
from voicebridge.dev.local import LocalRealtimeServer  # noqa: E402
from voicebridge.dev.sim.tonecheck import ToneChecker  # noqa: E402

FRAME_S = 0.02
SILENCE = b"\xff" * 160
QUIET_S = 0.4  # no agent frame for this long: the answer is over
BASE = BridgeConfig(greeting="Say hello", barge_in=False, idle_nudge_s=None, idle_hangup_s=None,
                    connect_timeout_s=2.0, reconnect_backoff_ms=50)


class Caller:
    """Sends one 20 ms frame per tick on a monotonic schedule (silence unless speaking)."""

    def __init__(self, twilio: testing.FakeTwilio) -> None:
        self.twilio = twilio
        self._speech: list[bytes] = []
        self._lock = threading.Lock()
        self.spoke_until: float | None = None  # when the last frame of the last phrase went out
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="caller", daemon=True)

    def start(self) -> "Caller":
        self._thread.start()
        return self

    def say(self, audio: bytes) -> None:
        with self._lock:
            self._speech = [audio[i:i + 160].ljust(160, b"\xff") for i in range(0, len(audio), 160)]

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                frame = self._speech.pop(0) if self._speech else SILENCE
                last = frame is not SILENCE and not self._speech
            self.twilio.media(frame)
            if last:
                self.spoke_until = time.monotonic()
            due += FRAME_S
            time.sleep(max(0.0, due - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def media_times(twilio: testing.FakeTwilio, after: float = 0.0) -> list[float]:
    with twilio.lock:
        return [t for t, m in twilio.sent if m.get("event") == "media" and t >= after]


def wait_quiet(twilio: testing.FakeTwilio, since: float, limit: float = 30.0) -> bool:
    """Until agent audio started after ``since`` and then stopped for ``QUIET_S``."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        times = media_times(twilio, since)
        if times and time.monotonic() - times[-1] > QUIET_S:
            return True
        time.sleep(0.01)
    return False


def longest_extra_gap_ms(times: list[float]) -> float:
    """The longest silence between consecutive frames beyond the 20 ms period (0 = seamless)."""
    gaps = [(b - a) * 1000 - 20 for a, b in zip(times, times[1:])]
    return round(max([0.0, *gaps]), 1)


def drop(attempts: int, rng: random.Random) -> dict:
    with LocalRealtimeServer(mode="voice", speed=1.0) as server:
        call = testing.BridgeCall(BASE.replace(openai_url=server.url, reconnect_attempts=attempts),
                                  connect=realtime_client.connect)
        call.twilio.echo_marks = True
        call.start()
        if not testing.wait_until(lambda: media_times(call.twilio), timeout=10):
            raise RuntimeError("no greeting")
        time.sleep(rng.uniform(1.0, 3.0))
        cut = time.monotonic()
        server.drop_connections()
        wait_quiet(call.twilio, cut)
        metrics = call.finish(stop=attempts > 0)
    with call.twilio.lock:
        media = [(t, m["media"]["payload"]) for t, m in call.twilio.sent if m.get("event") == "media"]
    heard = [(t, base64.b64decode(p)) for t, p in media]
    times = [t for t, _ in heard]
    return {**resumed_at(heard, cut), "silence_ms": longest_extra_gap_ms(times),
            "ended": metrics["close_reason"] != "twilio stop", "switch_ms": (metrics.get("reconnect_gaps_ms") or [None])[0]}


def resumed_at(heard: list[tuple[float, bytes]], cut: float) -> dict:
    """Where the greeting went on after the drop, found in the audio itself: the old session's
    frames follow the prompt byte for byte; the resumed answer restarts at an earlier frame."""
    greeting = tts.load_prompt("greeting")
    frames = [greeting[i:i + 160] for i in range(0, len(greeting) - 159, 160)]
    offsets = {f: i * 160 for i, f in enumerate(frames) if frames.count(f) == 1 and audio.dbfs(f) > -40}
    pos, broke = 0, None
    for index, (t, frame) in enumerate(heard):
        if broke is None and frame == greeting[pos:pos + 160]:
            pos += 160
            continue
        broke = index if broke is None else broke
        if frame in offsets and index > broke:  # the resumed answer's first whole frame
            return {"next_audio_ms": round((t - cut) * 1000, 1), "repeated_ms": (pos - offsets[frame]) / 8}
    after = [t for t, _ in heard if t >= cut]
    first_other = heard[broke][0] if broke is not None else None
    return {"next_audio_ms": round((first_other - cut) * 1000, 1) if first_other and after else None,
            "repeated_ms": None}


def rollover(max_age: float | None, turns: int, rng: random.Random, base: BridgeConfig = BASE) -> dict:
    with LocalRealtimeServer(mode="tone", speed=4.0, tone_seconds=1.5) as server:
        call = testing.BridgeCall(base.replace(openai_url=server.url, session_max_age_s=max_age),
                                  connect=realtime_client.connect)
        call.twilio.echo_marks = True
        call.start()
        caller = Caller(call.twilio).start()
        phrase = tts.load_prompt("caller_question")
        latencies, extra = [], []
        try:
            wait_quiet(call.twilio, 0.0)  # the greeting
            for _ in range(turns):
                time.sleep(rng.uniform(0.2, 1.5))  # rollovers land before, at and after the caller's onset
                caller.spoke_until = None
                caller.say(phrase)
                testing.wait_until(lambda: caller.spoke_until is not None, timeout=5)
                spoke = caller.spoke_until
                if not wait_quiet(call.twilio, spoke):
                    raise RuntimeError("no answer")
                times = media_times(call.twilio, spoke)
                latencies.append((times[0] - spoke) * 1000)
                extra.append(longest_extra_gap_ms(times))
        finally:
            caller.stop()
        metrics = call.finish()
    checker = ToneChecker()
    for frame in call.twilio.media_frames():
        checker.feed(frame)
    return {"answers": len(latencies), "rollovers": metrics.get("model_rollover", 0),
            "switch_p50_ms": round(percentile(metrics.get("reconnect_gaps_ms") or [], 50), 1),
            "latency_p50_ms": round(percentile(latencies, 50), 1), "latency_max_ms": round(max(latencies), 1),
            "extra_gap_max_ms": max(extra), "tone_ok": checker.report.ok}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--drops", type=int, default=10)
    ap.add_argument("--turns", type=int, default=8)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the local server's request lines
    rng = random.Random(args.seed)
    result: dict = {"machine": machine()}
    for name, attempts in (("before (reconnect_attempts=0)", 0), ("now (reconnect_attempts=4)", 4)):
        runs = [drop(attempts, rng) for _ in range(args.drops)]
        nexts = [r["next_audio_ms"] for r in runs if r["next_audio_ms"] is not None]
        result[f"unplanned drop, {name}"] = {
            "drops": len(runs), "calls_ended": sum(r["ended"] for r in runs),
            "drop_to_next_audio_p50_ms": round(percentile(nexts, 50), 1),
            "repeated_p50_ms": round(percentile([r["repeated_ms"] for r in runs if r["repeated_ms"] is not None], 50), 1),
            "drop_to_next_audio_max_ms": round(max(nexts), 1) if nexts else None,
            "silence_p50_ms": round(percentile([r["silence_ms"] for r in runs], 50), 1),
            "silence_max_ms": max(r["silence_ms"] for r in runs),
            "switch_p50_ms": round(percentile([r["switch_ms"] for r in runs if r["switch_ms"]], 50), 1),
        }
    for name, age in (("without rollover", None), ("rollover at every quiet moment", 0.5)):
        result[f"turns, {name}"] = rollover(age, args.turns, random.Random(args.seed))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    ok = all(r.get("tone_ok", True) for r in result.values() if isinstance(r, dict))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
