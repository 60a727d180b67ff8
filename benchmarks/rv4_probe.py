"""Review probe (rv4) of the echo gate's room tail under later audio (h21l, e35e4db): callers that
raising the echo prediction right after the agent's loud syllables could lose or delay.

Drives ``bargein_cases.run_case`` on cases of its own (the set's ``case_set`` is untouched), with
the caller's onset placed where the probe wants it (``rng.uniform(1.0, 1.5)`` of ``run_case`` is
replaced by a chosen offset; the random stream is otherwise the same), and reverberant callers
(the clip through ``room.room_response``, like tests/test_reverberant_callers.py).

Usage: PYTHONPATH=. python benchmarks/rv4_probe.py GROUP [--answer-s S] [--no-greeting] [--also main]
Groups: soft (whisper/soft/unvoiced over -15/-10 dB echo), delay (interruptions at 200/250 ms, soft
gains), sweep (one onset every 20 ms over 1 s, syllable ends included), late (onsets 8-16 s into a
20 s answer: run with --answer-s 20), reverb (speakerphone callers in a reverberant room, -15 dB echo).
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bargein_cases as bc  # noqa: E402
from voicebridge.dev.sim import corpus, room  # noqa: E402

_forced: list[float] = []


class _Forced(random.Random):
    """``run_case``'s rng: its first ``uniform`` (the onset's offset) is the probe's."""

    def uniform(self, a: float, b: float) -> float:
        drawn = super().uniform(a, b)
        return _forced.pop() if _forced else drawn


_plain_sound = bc.caller_sound


def _sound(case: bc.Case) -> bytes:
    """The clip; ``name@RT`` is the clip from a speakerphone in a room of RT60 ``RT`` s."""
    name, _, rt = case.sound.partition("@")
    data = _plain_sound(bc.Case(**{**bc.asdict(case), "sound": name}))
    if not rt:
        return data
    x = room.ulaw_to_float(data)
    wet = np.convolve(x, room.room_response(5, rt60_s=float(rt), ms=400, direct=1.0))
    return room.float_to_ulaw(room.at_level(wet, bc._dbfs(x)))


bc.random = SimpleNamespace(Random=_Forced)
bc.caller_sound = _sound


def setup(no_greeting: bool, answer_s: float | None) -> None:
    """The harness's ``--no-greeting`` and ``--answer-s``."""
    bc.GREETING_ON = not no_greeting
    if answer_s:
        bc.ANSWER_S = answer_s
        bc.CASE_S = bc.ANSWER_AT + bc.ANSWER_S + 0.9
        repeat = int((12.0 + bc.ANSWER_S) * 8000 / len(bc.ANSWER)) + 1
        bc.ANSWER, bc.ANSWER_TEXT = bc.ANSWER * repeat, " ".join([bc.ANSWER_TEXT] * repeat)


def cases(group: str) -> list[tuple[bc.Case, float]]:
    """(case, onset offset into the answer, s) of a group."""
    rng = random.Random(21)
    delays = (40, 80, 120, 160, 200, 250)
    out: list[tuple[bc.Case, float]] = []

    def add(kind: str, sound: str, onset: float, **fields: Any) -> None:
        out.append((bc.Case(kind, "should", sound=sound, answer_at_s=rng.choice((0.0, 4.0, 8.0, 12.0)),
                            seed=rng.randrange(1 << 30), **fields), onset))

    if group == "soft":
        for echo_db in (-15, -10):
            for cat in ("whisper", "soft", "unvoiced"):
                for i, clip in enumerate(corpus.by_category(cat)):
                    add(f"{cat}{echo_db}", clip.name, rng.uniform(1.0, 1.5), echo_db=echo_db, delay_ms=delays[i % 6])
    elif group == "delay":
        inter = corpus.by_category("interruption")
        for echo_db in (-15, -10):
            for delay in (200, 250):
                for i in range(12):
                    add(f"int{echo_db}@{delay}", inter[(i * 5) % len(inter)].name, rng.uniform(1.0, 1.5),
                        echo_db=echo_db, delay_ms=delay, gain_db=(-6, -10, -3)[i % 3])
    elif group == "sweep":
        for clip, gain in (("interruption_02_1", -6.0), ("soft_01_0", 0.0), ("unvoiced_03_0", 0.0),
                           ("whisper_02_1", 0.0)):
            for k in range(50):
                add(f"sweep:{clip}", clip, 1.0 + 0.02 * k, echo_db=-15, delay_ms=120, gain_db=gain)
                out[-1] = (bc.Case(**{**bc.asdict(out[-1][0]), "answer_at_s": 0.0, "seed": 7}), out[-1][1])
    elif group == "late":
        inter, soft = corpus.by_category("interruption"), corpus.by_category("soft")
        unv = corpus.by_category("unvoiced")
        for i in range(40):
            clip = (inter[i % len(inter)], soft[i % len(soft)], unv[i % len(unv)], inter[(i * 3) % len(inter)])[i % 4]
            add(f"late{(-15, -10)[i % 2]}", clip.name, rng.uniform(8.0, 16.0), echo_db=(-15, -10)[i % 2],
                delay_ms=delays[i % 6], gain_db=(0, -6, 0, -3)[i % 4])
    elif group == "reverb":
        for rt in (0.5, 0.8):
            for i, clip in enumerate(("soft_04_2", "question_01_0", "talk_00_0", "talk_03_0", "interruption_03_1",
                                      "interruption_05_2", "soft_02_0", "unvoiced_01_1")):
                add(f"reverb{rt}", f"{clip}@{rt}", rng.uniform(1.0, 1.5), echo_db=-15, delay_ms=delays[i % 6],
                    gain_db=(0, -6)[i % 2])
    else:
        raise SystemExit(f"unknown group {group}")
    return out


def row(results: list[tuple[bc.Case, Any]]) -> dict:
    """The figures of a variant over a group."""
    outs = [o for _, o in results]
    return {
        "n": len(outs),
        "missed_1s": sum(not bc.caught(o) for o in outs),
        "missed_ear": sum(bc.ear_missed(o) for o in outs),
        "stop_ms_p50_p90": bc._pcts([o.stop_ms for o in outs if o.stop_ms is not None], 50, 90),
        "duck_ms_p50_p90": bc._pcts([o.duck_ms for o in outs if o.duck_ms is not None], 50, 90),
        "clear_ms_p50_p90": bc._pcts([o.clear_ms for o in outs if bc.caught(o)], 50, 90),
        "ducks_before_onset": sum(o.cut_before_onset for o in outs),
        "ducks": sum(1 for o in outs for _, a in o.actions if a == "duck"),
        "underruns": sum(o.underruns for o in outs),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("group")
    ap.add_argument("--answer-s", type=float)
    ap.add_argument("--no-greeting", action="store_true")
    ap.add_argument("--also", action="append", default=[])
    ap.add_argument("--only", help="only cases whose kind starts so")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    setup(args.no_greeting, args.answer_s)
    chosen = {k: v for k, v in bc.variants("auto", None, tuple(args.also)).items() if k != "before"}
    todo = [(c, at) for c, at in cases(args.group) if not args.only or c.kind.startswith(args.only)]
    runs: dict[str, list] = {name: [] for name in chosen}
    for case, at in todo:  # interleaved
        for name, make in chosen.items():
            _forced[:] = [at]
            runs[name].append((case, bc.run_case(case, make)[0]))
    kinds = sorted({c.kind for c, _ in todo})
    report: dict = {"group": args.group, "greeting": bc.GREETING_ON, "answer_s": bc.ANSWER_S}
    for kind in kinds + ["ALL"]:
        report[kind] = {name: row([(c, o) for c, o in res if kind == "ALL" or c.kind == kind])
                        for name, res in runs.items()}
    names = list(chosen)
    diffs = []
    for (case, at), *outs in zip(todo, *(runs[n] for n in names)):
        o = [x[1] for x in outs]
        key = [(bc.ear_missed(x), x.stop_ms, x.clear_ms) for x in o]
        if any(bc.ear_missed(x) != bc.ear_missed(o[0]) for x in o) or any(
                (x.stop_ms or 1e9) - (o[0].stop_ms or 1e9) for x in o):
            diffs.append({"kind": case.kind, "sound": case.sound, "onset": round(at, 3), "echo": case.echo_db,
                          "delay": case.delay_ms, "gain": case.gain_db, "seed": case.seed,
                          "answer_at": case.answer_at_s, **{n: k for n, k in zip(names, key)}})
    report["diffs"] = diffs
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
