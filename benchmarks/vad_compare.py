"""Which voice-activity detector should the local Realtime server run? Measured on the corpus.

The local server must hear like OpenAI's server VAD: it fires on any voice (the caller's, a
whisper, the agent's own echo coming back) and not on music, road noise, hum, knocks, doors,
keys, clicks or coughs. Each candidate classifies 20 ms frames of 8 kHz audio; a clip "fires"
when ``RUN`` consecutive frames reach the threshold (0.5), as a speech start would. Voice: every
interrupt and backchannel clip of the corpus (in quiet) and the agent's answer through the
loudspeaker echo at -30, -20 and -10 dB. Not voice: the room's events and beds at -40 and
-30 dBFS. Distant voices (babble, TV) are reported apart: a real VAD may well hear them.
CPU: seconds of the process's CPU time (all its threads: ONNX Runtime may use several) in the
classifier per second of audio, on this machine.

Usage: python benchmarks/vad_compare.py [--json]
"""
from __future__ import annotations

import argparse
import array
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks._common import machine  # noqa: E402
from voicebridge.audio import mulaw as audio
from voicebridge.dev import tts  # noqa: E402
from voicebridge.dev.local import vad  # noqa: E402
from voicebridge.dev.sim import corpus, room  # noqa: E402

RUNS = (1, 3, 5)
PAD = b"\xff" * 2400  # 300 ms of silence either side of a clip


def _encode(x) -> bytes:
    import numpy as np
    return audio.encode(np.clip(np.round(x), -32767, 32767).astype(int).tolist())


def material() -> dict[str, list[bytes]]:
    """Clips by group: voice, echo, noise (per kind) and distant voices."""
    import numpy as np
    groups: dict[str, list[bytes]] = {}
    for c in corpus.clips():
        if c.label != "talk":
            groups.setdefault(f"voice:{c.category}", []).append(PAD + c.audio() + PAD)
    answer = tts.load_prompt("long_answer")
    for echo_db in (-30, -20, -10):
        for k in range(6):
            chain = room.LoudspeakerEcho(echo_db, delay_ms=40 + 40 * k, seed=k)
            played = answer[k * 16000:k * 16000 + 24000]
            groups.setdefault(f"echo:{echo_db}dB", []).append(_encode(chain.process(room.ulaw_to_float(played))))
    for kind in ("knock", "door", "keyboard", "click", "cough"):
        groups[f"noise:{kind}"] = [PAD + room.event(kind, seed) + PAD for seed in range(6)]
    for kind in ("music", "car", "hum50", "hum60", "room_babble", "tv"):
        group = "distant" if kind in ("room_babble", "tv") else "noise"
        for level in (-40, -30):
            for seed in range(3):
                x = room.at_level(np.asarray(room.bed(kind, seed))[:24000], level)
                groups.setdefault(f"{group}:{kind}", []).append(_encode(x))
    return groups


def candidates() -> dict[str, "callable"]:
    out = {"energy": None}
    try:
        vad.SileroModel()
        out["silero"] = vad.SileroModel
    except ImportError:
        pass
    try:
        for mode in (0, 2, 3):
            vad.WebRtcModel(mode)
            out[f"webrtc{mode}"] = (lambda m=mode: vad.WebRtcModel(m))
    except ImportError:
        pass
    return out


def longest_runs(make, clip: bytes) -> tuple[int, float]:
    """The longest run of speech frames in a clip, and the classifier's CPU seconds."""
    model = make() if make else None
    best = run = 0
    cpu = 0.0
    for i in range(0, len(clip) - 159, 160):
        frame = clip[i:i + 160]
        t0 = time.process_time()
        if model is None:
            speech = audio.dbfs(frame) >= vad.threshold_to_dbfs(0.5)
        else:
            speech = model.probability(array.array("f", map(vad.ULAW_FLOAT.__getitem__, frame))) >= 0.5
        cpu += time.process_time() - t0
        run = run + 1 if speech else 0
        best = max(best, run)
    return best, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    groups = material()
    seconds = sum(len(c) for clips in groups.values() for c in clips) / 8000
    report: dict = {"machine": machine(), "audio_seconds": round(seconds, 1), "candidates": {}}
    for name, make in candidates().items():
        runs: dict[str, list[int]] = {}
        cpu = 0.0
        for group, clips in groups.items():
            for clip in clips:
                best, spent = longest_runs(make, clip)
                runs.setdefault(group, []).append(best)
                cpu += spent
        row: dict = {"cpu_ms_per_audio_s": round(cpu * 1000 / seconds, 3)}
        for need in RUNS:
            fired = {g: sum(r >= need for r in rs) / len(rs) for g, rs in runs.items()}
            voice = [v for g, v in fired.items() if g.startswith(("voice", "echo"))]
            noise = [v for g, v in fired.items() if g.startswith("noise")]
            row[f"run{need}"] = {
                "voice_and_echo_heard_pct": round(100 * sum(voice) / len(voice), 1),
                "noise_fired_pct": round(100 * sum(noise) / len(noise), 1),
                "by_group_pct": {g: round(100 * v) for g, v in fired.items()},
            }
        report["candidates"][name] = row
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"audio: {report['audio_seconds']} s; machine: {report['machine']}")
    for name, row in report["candidates"].items():
        print(f"{name}: cpu {row['cpu_ms_per_audio_s']} ms per audio second")
        for need in RUNS:
            r = row[f"run{need}"]
            print(f"  run>={need} frames: voice+echo heard {r['voice_and_echo_heard_pct']} %, "
                  f"noise fired {r['noise_fired_pct']} %")
            print("    " + ", ".join(f"{g} {v}" for g, v in r["by_group_pct"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
