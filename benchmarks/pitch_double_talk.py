"""Would a pitch double-talk check find the soft callers the echo gate misses? An offline measure.

Most interruptions the set misses at the caller's ear are soft voices and whispers under -15 dB
echo: at the echo's level, the gate judges their frames echo ("The set over other seeds"). The
one thing left that could tell a second talker under the agent's echo is its own pitch. This runs
the set's calls (``bargein_cases.run_case``, the bridge of this tree, unchanged) and records every
caller frame the bridge heard and every frame it played, in the echo gate's slots. Afterwards,
for each frame that is not quiet, once the gate knows the echo delay, it asks: is the frame
periodic (``voicing.pitch`` periodicity >= ``--periodicity``) at a pitch that none of the played
frames around the delay has (within ``--tol``, an octave either way)? Such a frame would be
"a voice that is not the agent's".

It prints, for the echo-only calls, how many judged frames such a check flags and in how many
calls three flags fall within 300 ms (a duck on the echo). For the interruptions over -15 dB
echo, it prints the frames it flags in the caller's speech, the calls with three flags in their
first 300 ms, and the same for the calls the bridge missed at the ear (what the check could add).
The played frames around the delay are taken from 3 slots before the gate's lag to 5 after it:
that is where the echo's own pitch is found in these calls.

Usage: PYTHONPATH=. python benchmarks/pitch_double_talk.py [--seed N] [--tol 0.06] [--periodicity 0.75]
       [--no-greeting]   (about 1.5 min a seed on one core)
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks import bargein_cases as bc  # noqa: E402
from voicebridge.audio import echo as echo_gate, listening, unplayed, voicing  # noqa: E402
from voicebridge.audio.echo import Verdict  # noqa: E402

ECHO_KINDS = {"echo-20", "echo-15", "echo-10", "echo_long-20", "echo_long-15", "echo_long-10"}
CALLER_KINDS = ("interrupt_echo-15", "interrupt_late_echo-15", "soft_echo-15", "whisper_echo-15")
WINDOW = range(-3, 6)  # played slots around the gate's lag where the echo's pitch is
FLAGS, FLAG_SPAN = 3, 15  # three flagged frames within 15 frames (300 ms): enough to duck on


class Recorder:
    """What one call's bridge heard and played, by the echo gate's slots (patched in, read after)."""

    def __init__(self) -> None:
        self.played: dict[int, bytes] = {}
        self.heard: list[tuple[float, bytes, Verdict, int | None]] = []  # (capture time, frame, verdict, delay ms)
        self.onset = self.sound_s = 0.0
        self._slot: int | None = None

    def install(self) -> None:
        rec = self
        gate_played, unplayed_sent = echo_gate.EchoGate.played, unplayed.Unplayed.sent
        hear, transcriber = listening.Listener.hear, bc._transcriber

        def played(gate: Any, level: float, now: float) -> None:
            gate_played(gate, level, now)
            rec._slot = round((gate._play_end - echo_gate.SLOT_S) / echo_gate.SLOT_S)

        def sent(self: Any, entry: Any, *args: Any) -> Any:  # (the frame the gate was just told of)
            if rec._slot is not None:
                rec.played[rec._slot], rec._slot = entry[1], None
            return unplayed_sent(self, entry, *args)

        def heard(self: Any, frame: bytes, now: float, armed: Any, timestamp_ms: int | None = None) -> Any:
            out = hear(self, frame, now, armed, timestamp_ms)
            rec.heard.append((self._capture.at(now, timestamp_ms), frame, out.verdict,
                              None if self.gate is None else self.gate.delay_ms))
            return out

        def transcribe(case: Any, onset: float, sound_s: float, *args: Any) -> Any:
            rec.onset, rec.sound_s = onset, sound_s
            return transcriber(case, onset, sound_s, *args)

        echo_gate.EchoGate.played, unplayed.Unplayed.sent = played, sent
        listening.Listener.hear, bc._transcriber = heard, transcribe

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


def flags(rec: Recorder, tol: float, periodicity: float) -> list[tuple[float, bool | None]]:
    """Per caller frame: (its time, flagged) (None: quiet, or the delay not known yet)."""
    pitches: dict[int, Any] = {}

    def played_pitch(slot: int) -> Any:
        if slot not in pitches:
            data = rec.played.get(slot)
            pitches[slot] = voicing.pitch(data, rec.played.get(slot - 1, b"")) if data else None
        return pitches[slot]

    def same(a: float, b: float) -> bool:
        return any(abs(a / (b * k) - 1) <= tol for k in (1.0, 2.0, 0.5))

    out, previous = [], b""
    for at, frame, verdict, delay in rec.heard:
        flag = None
        if verdict is not Verdict.QUIET and delay is not None:
            mine = voicing.pitch(frame, previous)
            slot = round(at / echo_gate.SLOT_S) - delay // 20
            agent = [p for p in (played_pitch(slot + k) for k in WINDOW) if p is not None and p.periodicity >= 0.3]
            flag = mine.periodicity >= periodicity and mine.period > 0 and not any(
                p.period > 0 and same(mine.period, p.period) for p in agent)
        out.append((at, flag))
        previous = frame
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=0.06, help="pitches this close (relative) are the same")
    ap.add_argument("--periodicity", type=float, default=0.75, help="a caller frame this periodic or more")
    ap.add_argument("--no-greeting", action="store_true")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    bc.GREETING_ON = not args.no_greeting
    pkg = importlib.import_module("voicebridge")
    rec = Recorder()
    rec.install()
    echo_rows, caller_rows = [], []
    for case in bc.case_set(args.seed):
        if case.kind not in ECHO_KINDS and case.kind not in CALLER_KINDS:
            continue
        rec.reset()
        outcome, _ = bc.run_case(case, lambda: bc.Bridge(pkg))
        per_frame = flags(rec, args.tol, args.periodicity)
        if case.kind in ECHO_KINDS:
            judged = [f for at, f in per_frame if f is not None and at >= bc.ANSWER_AT]
            most = max((sum(judged[i:i + FLAG_SPAN]) for i in range(max(1, len(judged) - FLAG_SPAN + 1))), default=0)
            echo_rows.append((len(judged), sum(judged), most))
        else:
            onset = rec.onset + bc.NET_S
            speech = [(at, f) for at, f in per_frame if f is not None and onset <= at <= onset + rec.sound_s]
            first = sum(f for at, f in speech if at <= onset + FLAG_SPAN * echo_gate.SLOT_S)
            caller_rows.append((case.kind, len(speech), sum(f for _, f in speech), first, bc.ear_missed(outcome)))
    print(f"seed {args.seed}, greeting {'on' if bc.GREETING_ON else 'off'}, tol {args.tol}, "
          f"periodicity >= {args.periodicity}")
    print(f"echo only, {len(echo_rows)} calls: {sum(r[1] for r in echo_rows)} of {sum(r[0] for r in echo_rows)} "
          f"judged frames flagged; calls with {FLAGS} flags within 300 ms: {sum(r[2] >= FLAGS for r in echo_rows)}")
    for kind in CALLER_KINDS:
        rows = [r for r in caller_rows if r[0] == kind]
        missed = [r for r in rows if r[4]]
        print(f"{kind}, {len(rows)} calls: {sum(r[2] for r in rows)} of {sum(r[1] for r in rows)} speech frames "
              f"flagged; {FLAGS} in the first 300 ms: {sum(r[3] >= FLAGS for r in rows)} calls; missed at the ear "
              f"{len(missed)}, of them with {FLAGS} flags in the first 300 ms {sum(r[3] >= FLAGS for r in missed)}, "
              f"with any flag {sum(r[2] > 0 for r in missed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
