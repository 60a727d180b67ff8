"""Barge-in over a labelled set of simulated calls: echo, noise, clicks, coughs, real talk.

Each case is a few seconds of one call in virtual time (no sockets, no sleeps), built from the
library's own sans-IO parts: the bridge's ``Pacer``, ``EchoGate`` and ``CallerLevel`` (exactly
what ``MediaSession`` runs), the simulated caller's ``PlayoutBuffer`` (Twilio's playout) and
``Acoustics`` (speakerphone echo, noise beds), and the local server's ``EnergyVad`` (what the
model's VAD hears of our appends). The agent greets (3 s, not interruptible, as the bridge's
default; the gate learns the line meanwhile), then answers; 1.4-1.8 s into the answer the caller
makes a sound (or nothing). Network: 20 ms each way, plus 0-10 ms of jitter on the agent's audio.

Label "talks": the caller speaks over the agent, so a barge-in (the local trigger or the model's
VAD, whichever comes first) is wanted within 1 s of the onset; otherwise any barge-in is false.
Also counted: gaps in the agent's audio at the caller that are not a yield to the caller's own
sound (underruns), and whether the agent's answer was heard in full.

Two variants in one run: ``before`` (no echo gate, a fixed threshold, consecutive frames only, no
voicing check, a released duck resumes on the old grid) and ``now`` (the defaults).

Usage: python benchmarks/bargein_cases.py [--json] [--only KIND] [--net-ms 20]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks._common import machine, percentile  # noqa: E402
from voicebridge import audio, tts  # noqa: E402
from voicebridge.bargein import CallerLevel, Decision  # noqa: E402
from voicebridge.config import BridgeConfig  # noqa: E402
from voicebridge.echo import EchoGate, Verdict, attenuation_table  # noqa: E402
from voicebridge.local.vad import EnergyVad  # noqa: E402
from voicebridge.pacing import Pacer  # noqa: E402
from voicebridge.sim.acoustics import Acoustics, NoiseBed, Speakerphone, cough  # noqa: E402
from voicebridge.sim.playout import PlayoutBuffer  # noqa: E402
from voicebridge.sim.sounds import babble, click_noise  # noqa: E402

TICK = 0.02
NET_S, JITTER_S = 0.020, 0.010
GREETING_S = 3.0  # the greeting (not interruptible) plays first: the gate learns the line meanwhile
AGENT_FROM, CASE_S = GREETING_S + 0.8, GREETING_S + 4.8  # the answer the caller may talk over
DETECT_WITHIN_S = 1.0
VOICES = ("caller_hello", "caller_question", "caller_stop", "caller_order", "caller_person", "caller_goodbye",
          "buzz")
AGENT = tts.load_prompt("long_answer")


@dataclass(frozen=True)
class Case:
    kind: str  # echo, noise, click, cough, talk, talk_noise
    talks: bool  # the label: the caller speaks over the agent
    sound: str = ""  # a voice prompt, "buzz", "click:MS" or "cough:MS"; "" = nothing
    gain_db: float = 0.0
    echo_db: float | None = None
    delay_ms: int = 60
    noise: str | None = None
    noise_dbfs: float = -45.0
    agent_at_s: float = 0.0  # where in the long answer the agent's audio starts
    seed: int = 0


@dataclass(frozen=True)
class Variant:
    name: str
    config: BridgeConfig
    refill: bool  # a released duck refills the caller's buffer (Pacer.resume)


@dataclass
class Outcome:
    barged_in: bool
    onset_to_clear_ms: float | None  # as the caller measures it (talk cases)
    first_loud_to_confirm_ms: float | None  # inside the bridge: its first loud frame of the caller -> confirmed
    server_speech: bool
    local: bool
    underruns: int
    heard_full: bool


def case_set() -> list[Case]:
    """The labelled set: 104 cases without talk, 119 with."""
    out: list[Case] = []
    seed = 0
    for echo_db in (-30, -20, -15):
        for delay in (60, 200):
            for at in (0.0, 4.0, 8.0, 12.0):
                for noise in (None, "fan"):
                    seed += 1
                    out.append(Case("echo", False, echo_db=echo_db, delay_ms=delay, noise=noise, noise_dbfs=-50,
                                    agent_at_s=at, seed=seed))
    for kind in ("street", "babble", "fan"):
        for level in (-50, -45, -40):
            for echo in (None, -20):
                for at in (2.0, 10.0):
                    seed += 1
                    out.append(Case("noise", False, echo_db=echo, noise=kind, noise_dbfs=level, agent_at_s=at,
                                    seed=seed))
    for sound in ("click:40", "click:60", "click:100", "cough:250", "cough:400"):
        for echo in (None, -20):
            for at in (3.0, 11.0):
                seed += 1
                out.append(Case(sound.split(":")[0], False, sound=sound, echo_db=echo, agent_at_s=at, seed=seed))
    for voice in VOICES:
        for gain in (-6.0, 0.0, 4.0):
            for echo_db, delay in ((None, 60), (-30, 60), (-20, 60), (-15, 60), (-15, 200)):
                seed += 1
                out.append(Case("talk", True, sound=voice, gain_db=gain, echo_db=echo_db, delay_ms=delay,
                                agent_at_s=(seed % 5) * 2.0, seed=seed))
        for noise in ("babble", "street"):
            seed += 1
            out.append(Case("talk_noise", True, sound=voice, echo_db=-20, noise=noise, noise_dbfs=-45,
                            agent_at_s=(seed % 5) * 2.0, seed=seed))
    return out


def caller_sound(case: Case) -> bytes:
    if not case.sound:
        return b""
    name, _, ms = case.sound.partition(":")
    if name == "click":
        return click_noise(int(ms))
    if name == "cough":
        return cough(int(ms), seed=case.seed)
    data = babble(1400) if name == "buzz" else tts.load_prompt(name)
    gain = 10 ** (case.gain_db / 20)
    return data if case.gain_db == 0 else audio.encode([int(s * gain) for s in audio.decode(data)])


def run_case(case: Case, variant: Variant, net_s: float = NET_S) -> tuple[Outcome, float]:
    """One call; returns its outcome and the CPU seconds the bridge's per-frame listening took."""
    cfg = variant.config
    rng = random.Random(case.seed)
    start = int(case.agent_at_s * 8000) // 160 * 160
    agent = AGENT[start:start + int((CASE_S - AGENT_FROM) * 8000)]
    frames = [agent[i:i + 160] for i in range(0, len(agent) - 159, 160)]
    greeting = tts.load_prompt("greeting")[:int(GREETING_S * 8000)]
    greeting_frames = [greeting[i:i + 160] for i in range(0, len(greeting) - 159, 160)]
    sound = caller_sound(case)
    onset = AGENT_FROM + 1.4 + rng.uniform(0.0, 0.4)
    pacer = Pacer(lead_frames=cfg.lead_frames)
    playout = PlayoutBuffer(0.0)
    gate = EchoGate(cfg.echo_margin_db) if cfg.echo_gate else None
    level = CallerLevel(cfg.barge_in_threshold_dbfs, cfg.barge_in_frames, cfg.duck, cfg.barge_in_dip_frames,
                        cfg.noise_margin_db, voiced_needed=1 if cfg.barge_in_voicing else 0)
    quieter = attenuation_table(cfg.echo_suppression_db)
    room = Acoustics(Speakerphone(case.echo_db, case.delay_ms) if case.echo_db is not None else None,
                     NoiseBed(case.noise, case.noise_dbfs, case.seed) if case.noise else None)
    vad = EnergyVad()
    to_caller: list[tuple[float, str, bytes]] = []  # (arrival, kind, payload), in order
    to_bridge: list[tuple[float, bytes]] = []
    sent = greeted = 0
    paused = stopped = False
    last_arrival = 0.0
    barged_at: float | None = None
    first_loud: float | None = None
    local = server = False
    cpu = 0.0
    t = 0.0
    while t < CASE_S - 1e-9:
        # --- the bridge's TX: the greeting, then the answer (none while ducked or after a barge-in)
        if 0.2 <= t < AGENT_FROM and greeted < len(greeting_frames):
            if greeted == 0:
                pacer.begin(t)
            while greeted < len(greeting_frames) and pacer.delay(t) <= 1e-9:
                pacer.sent(t)
                if gate is not None:
                    gate.played(audio.dbfs(greeting_frames[greeted]), t)
                to_caller.append((t + net_s, "media", greeting_frames[greeted]))
                greeted += 1
        if t >= AGENT_FROM and not paused and not stopped:
            if sent == 0:
                pacer.begin(t)
            while sent < len(frames) and pacer.delay(t) <= 1e-9:
                pacer.sent(t)
                c0 = time.perf_counter()
                if gate is not None:
                    gate.played(audio.dbfs(frames[sent]), t)
                cpu += time.perf_counter() - c0
                last_arrival = max(last_arrival, t + net_s + rng.uniform(0, JITTER_S))
                to_caller.append((last_arrival, "media", frames[sent]))
                sent += 1
        # --- the caller: plays what arrived, makes its sound, the microphone picks up the room
        while to_caller and to_caller[0][0] <= t:
            arrival, kind, payload = to_caller.pop(0)
            (playout.media(payload, arrival) if kind == "media" else playout.clear(arrival))
        heard = playout.advance(t).audio
        k = round((t - onset) / TICK)
        own = sound[k * 160:(k + 1) * 160] if 0 <= k and sound else b""
        own = own.ljust(160, b"\xff") if own else audio.SILENCE_FRAME
        to_bridge.append((t + net_s, room.frame(own, heard)))
        # --- the bridge's RX: the echo gate, the local trigger, what the model hears
        while to_bridge and to_bridge[0][0] <= t + 1e-9:
            _, frame = to_bridge.pop(0)
            c0 = time.perf_counter()
            lvl = audio.dbfs(frame)
            verdict = gate.judge(lvl, t, level.floor_dbfs) if gate is not None else Verdict.CALLER
            forwarded = frame.translate(quieter) if verdict is Verdict.ECHO and cfg.echo_suppression_db else frame
            audible = not stopped and (sent < len(frames) or playout.buffered_bytes > 0 or bool(to_caller))
            decision = level.feed(lvl, t, verdict is Verdict.CALLER, lambda: audible and t >= AGENT_FROM, frame)
            cpu += time.perf_counter() - c0
            if level.loud and first_loud is None and t >= onset:
                first_loud = t
            base64.b64encode(forwarded)  # the append's encoding, as the bridge does it
            if any(e.kind == "start" for e in vad.push(forwarded)):
                server = True  # the model heard "speech" (during the greeting it would answer it)
                ignored = level.heard_noise(t)  # BargeIn.server_speech: a voiceless sound is no barge-in
                if audible and t >= AGENT_FROM and barged_at is None and not ignored:
                    barged_at = t
            if decision is Decision.DUCK:
                paused = True
            elif decision is Decision.RELEASE:
                paused = False
                pacer.resume(t) if variant.refill else pacer.begin(t, lead=False)
            elif decision is Decision.CONFIRM and barged_at is None:
                barged_at, local = t, True
            if barged_at is not None and not stopped:
                stopped = True
                to_caller.append((max(last_arrival, t + net_s), "clear", b""))
                if gate is not None:
                    gate.cleared(t)
        t = round(t + TICK, 6)
    heard_full = barged_at is None and sent == len(frames)
    clear_ms = confirm_ms = None
    if case.talks and barged_at is not None and barged_at >= onset:
        clear_ms = round((barged_at + net_s - onset) * 1000, 1)
        confirm_ms = round((barged_at - first_loud) * 1000, 1) if first_loud is not None else None
    return Outcome(barged_at is not None and (not case.talks or barged_at >= onset - 0.1), clear_ms, confirm_ms,
                   server, local, underruns(playout, onset, len(sound) / 8000, net_s), heard_full), cpu


def underruns(playout: PlayoutBuffer, onset: float, sound_s: float, net_s: float) -> int:
    """Gaps in the answer at the caller that are not a yield to the caller's own sound."""
    segments = [seg for seg in playout.segments if seg[1] > AGENT_FROM + net_s]
    gaps = 0
    for (_, end), (nxt, _) in zip(segments, segments[1:]):
        if nxt - end > 0.005 and not (onset - 0.02 <= end <= onset + sound_s + 0.1):
            gaps += 1
    return gaps


def caught(out: Outcome) -> bool:
    """A wanted barge-in happened within ``DETECT_WITHIN_S`` of the caller's onset."""
    return out.onset_to_clear_ms is not None and out.onset_to_clear_ms <= DETECT_WITHIN_S * 1000


def summarize(results: list[tuple[Case, Outcome]]) -> dict:
    by_kind: dict[str, Counter] = {}
    for case, out in results:
        row = by_kind.setdefault(case.kind, Counter())
        row["cases"] += 1
        if case.talks:
            row["barge-in" if caught(out) else "missed"] += 1
        else:
            row["false barge-in" if out.barged_in else "no barge-in"] += 1
            row["server VAD false start"] += out.server_speech
        row["underruns"] += out.underruns
    talk = [(c, o) for c, o in results if c.talks]
    quiet = [(c, o) for c, o in results if not c.talks]
    latencies = [o.onset_to_clear_ms for _, o in talk if o.onset_to_clear_ms is not None]
    confirms = [o.first_loud_to_confirm_ms for _, o in talk if o.first_loud_to_confirm_ms is not None]
    echo15 = [(c, o) for c, o in results if c.kind == "echo" and c.echo_db == -15]
    talk15 = sorted(o.onset_to_clear_ms for c, o in talk if c.echo_db == -15 and o.onset_to_clear_ms is not None)
    clicks60 = [o for c, o in results if c.sound == "click:60"]
    return {
        "cases": len(results), "talk_cases": len(talk), "quiet_cases": len(quiet),
        "false_barge_in_pct": round(100 * sum(o.barged_in for _, o in quiet) / len(quiet), 1),
        "missed_barge_in_pct": round(100 * sum(1 for _, o in talk if not caught(o)) / len(talk), 1),
        "onset_to_clear_ms_p50_p95_max": [round(percentile(latencies, 50), 1), round(percentile(latencies, 95), 1),
                                          max(latencies) if latencies else None],
        "first_loud_to_confirm_ms_p50_p95_max": [round(percentile(confirms, 50), 1),
                                                 round(percentile(confirms, 95), 1), max(confirms) if confirms else None],
        "echo_-15dB_heard_in_full": f"{sum(o.heard_full for _, o in echo15)}/{len(echo15)}",
        "echo_-15dB_server_vad_starts": sum(o.server_speech for _, o in echo15),
        "talk_over_-15dB_echo_onset_to_clear_ms_p50_max": [percentile(talk15, 50), max(talk15)] if talk15 else None,
        "click_60ms_clears_and_underruns": [sum(o.barged_in for o in clicks60), sum(o.underruns for o in clicks60)],
        "by_kind": {kind: dict(row) for kind, row in by_kind.items()},
    }


VARIANTS = (
    Variant("before", BridgeConfig(echo_gate=False, barge_in_dip_frames=0, noise_margin_db=None,
                                   barge_in_voicing=False), refill=False),
    Variant("now", BridgeConfig(), refill=True),
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", help="run only the cases of this kind")
    ap.add_argument("--net-ms", type=float, default=NET_S * 1000, help="one-way network delay (default 20)")
    args = ap.parse_args()
    cases = [c for c in case_set() if not args.only or c.kind == args.only]
    report: dict = {"machine": machine(), "net_ms_each_way": args.net_ms}
    for variant in VARIANTS:
        results, cpu = [], 0.0
        for case in cases:
            outcome, spent = run_case(case, variant, args.net_ms / 1000)
            results.append((case, outcome))
            cpu += spent
        summary = summarize(results)
        call_seconds = len(cases) * CASE_S
        summary["listening_cpu_ms_per_call_second"] = round(cpu * 1000 / call_seconds, 3)
        report[variant.name] = summary
        if variant.name == "now":
            report["now_misjudged"] = [dict(asdict(c), outcome=asdict(o)) for c, o in results
                                       if (c.talks and not caught(o)) or (not c.talks and o.barged_in)]
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            if isinstance(value, dict):
                print(f"{key}:")
                for k, v in value.items():
                    print(f"  {k}: {v}")
            else:
                print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
