"""Review probe (rv4), sans-IO: the listener on a speakerphone line, the caller's onset swept over
every 20 ms of the agent's answer, the echo gate's room tail under later audio on (h21l) and off
(main's rule; ``EchoGate.room_tail``, the only difference between the two).

Per condition (echo level, delay, the room's RT60 of the echo path: 0.3 s is the harness's, 0.05 s
a dry line such as a handset or a headset's leak; the caller's clip and gain): over the onsets,
the onset -> first duck (DUCK or CONFIRM) in frames p50/p90/max, the onsets never ducked or never
confirmed within 1.5 s, and the caller's frames judged echo within 300 ms of the onset (replaced
by comfort noise on the way to the model).

Usage: PYTHONPATH=. python benchmarks/rv4_gate_probe.py [--onsets N] [--step K]
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from voicebridge import BridgeConfig
from voicebridge.audio import mulaw as audio
from voicebridge.audio.detector import Decision
from voicebridge.audio.echo import Verdict
from voicebridge.audio.listening import Listener
from voicebridge.dev import tts
from voicebridge.dev.sim import corpus, room

AGENT = room.ulaw_to_float(tts.load_prompt("long_answer"))
LEARN, AFTER = 150, 75  # frames of the agent before the caller may speak (3 s), frames judged after the onset
LINE = np.random.default_rng(1).normal(0, 32768 * 10 ** (-60 / 20), len(AGENT))


def run(clip: np.ndarray, onset: int, echo_db: float, delay_ms: int, rt60: float, tail: bool) -> dict:
    """One call: the answer's echo from the start, the caller from frame ``LEARN + onset``."""
    listener = Listener(BridgeConfig())
    listener.gate.room_tail = tail
    echo = room.LoudspeakerEcho(echo_db, delay_ms, seed=3, rt60_s=rt60)
    at = LEARN + onset
    duck = confirm = None
    erased = 0
    for i in range(at + AFTER):
        t = round(i * 0.02, 6)
        agent = AGENT[i * 160:(i + 1) * 160]
        listener.played(audio.dbfs(room.float_to_ulaw(agent)), t)
        own = clip[(i - at) * 160:(i - at + 1) * 160] if i >= at else np.zeros(0)
        mic = LINE[i * 160:(i + 1) * 160] + echo.process(agent)
        mic[:len(own)] += own
        heard = listener.hear(room.float_to_ulaw(mic), t, lambda: i >= LEARN)
        if i < at:
            if heard.decision in (Decision.DUCK, Decision.CONFIRM):
                duck = duck if duck is not None else i - at  # a false duck before the onset
            continue
        if heard.decision in (Decision.DUCK, Decision.CONFIRM) and (duck is None or duck < 0):
            duck = i - at
        if heard.decision is Decision.CONFIRM and confirm is None:
            confirm = i - at
        if i - at < 15 and len(own) and 20 * np.log10(np.sqrt(np.mean(own ** 2)) / 32768 + 1e-9) > -50 \
                and heard.verdict is Verdict.ECHO:
            erased += 1
    return {"duck": duck, "confirm": confirm, "erased": erased}


def summary(rows: list[dict]) -> dict:
    ducks = [r["duck"] for r in rows if r["duck"] is not None and r["duck"] >= 0]
    pct = lambda p: None if not ducks else float(np.percentile(ducks, p))  # noqa: E731
    return {"n": len(rows), "duck_frames_p50_p90_max": [pct(50), pct(90), max(ducks) if ducks else None],
            "never_ducked": sum(r["duck"] is None for r in rows),
            "false_duck_before": sum(r["duck"] is not None and r["duck"] < 0 for r in rows),
            "never_confirmed": sum(r["confirm"] is None for r in rows),
            "erased_frames": sum(r["erased"] for r in rows)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onsets", type=int, default=60)
    ap.add_argument("--step", type=int, default=1)
    ap.add_argument("--clips", default="soft_01_0:0,whisper_02_1:0,unvoiced_03_0:0,interruption_02_1:-10")
    ap.add_argument("--lines", default="-15:120:0.3,-15:120:0.05,-10:250:0.3,-10:250:0.05,-15:200:0.05")
    args = ap.parse_args()
    out = {}
    for line in args.lines.split(","):
        echo_db, delay_ms, rt60 = line.split(":")
        for spec in args.clips.split(","):
            name, gain = spec.split(":")
            clip = room.ulaw_to_float(corpus.load(name)) * 10 ** (float(gain) / 20)
            rows = {True: [], False: []}
            for onset in range(0, args.onsets * args.step, args.step):
                for tail in (False, True):
                    rows[tail].append(run(clip, onset, float(echo_db), int(delay_ms), float(rt60), tail))
            worse = [(k * args.step, a["duck"], b["duck"], a["confirm"], b["confirm"])
                     for k, (a, b) in enumerate(zip(rows[False], rows[True]))
                     if (a["duck"], a["confirm"]) != (b["duck"], b["confirm"])]
            key = f"echo {echo_db} dB, {delay_ms} ms, rt60 {rt60}; {name} {gain} dB"
            out[key] = {"main": summary(rows[False]), "h21l": summary(rows[True]),
                        "changed (onset, duck main, duck h21l, confirm main, confirm h21l)": worse}
            print(key, json.dumps(out[key]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
