"""A caller's shush, a hiss on the line, paper rustling, against whispers and "s... stop", old against new.

A held "shhh" or a hiss is a near, bright, sustained voiceless run, as a whisper is; out2 found that
both cut the answer (and the model was asked to go on 2 s later). This scan runs whole simulated
calls (``bargein_cases.run_case``, Silero as the model's VAD, the set's transcriber) of the
simulated room's ``shush``, ``hiss`` and ``rustle`` (six of each, at -22, -28 and -34 dBFS peak)
and of the corpus's whispers and unvoiced onsets ("s... stop", "f... forget it", "h... hold on"),
each with no echo and with the agent's echo at -20 and -15 dB, for each bridge given, and prints
per bridge: the noises that cut the answer (by kind) and the pause the rest gave; for the speech,
the interruptions missed (no clear within 1 s; at the caller's ear) and the clear's p50/p90.

Usage: PYTHONPATH=$PWD python benchmarks/sibilants.py [COMMIT ...] [--procs 2]
(each COMMIT's bridge beside the working tree's, "now"; about 40 s per bridge on 2 cores)
"""
from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
from collections import defaultdict
from multiprocessing import Pool
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks import bargein_cases as bc  # noqa: E402
from benchmarks._common import machine, percentile  # noqa: E402
from voicebridge.dev.sim import corpus  # noqa: E402

NOISES = ("shush", "hiss", "rustle")
EVENT_PEAK_DBFS = -12.0  # ``room.event``'s level, scaled to each case's by its gain
ECHOES = (None, -20, -15)


def cases() -> list[dict[str, Any]]:
    rng = random.Random(21)
    out = []
    for kind, seed, peak, echo in itertools.product(NOISES, range(6), (-22, -28, -34), ECHOES):
        out.append(dict(kind=kind, label="should_not", sound=f"{kind}:{seed}", gain_db=peak - EVENT_PEAK_DBFS,
                        echo_db=echo, seed=rng.randrange(1 << 30), answer_at_s=rng.choice((0.0, 4.0, 8.0, 12.0)),
                        delay_ms=rng.choice((40, 80, 120, 160, 200, 250))))
    for clip, echo in itertools.product(corpus.by_category("whisper") + corpus.by_category("unvoiced"), ECHOES):
        out.append(dict(kind=clip.category, label="should", sound=clip.name, echo_db=echo, seed=rng.randrange(1 << 30),
                        answer_at_s=rng.choice((0.0, 4.0, 8.0, 12.0)), delay_ms=rng.choice((40, 80, 120, 160, 200, 250))))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("commits", nargs="*")
    ap.add_argument("--procs", type=int, default=2)
    args = ap.parse_args()
    bridges = [*args.commits, "now"]
    for commit in args.commits:
        bc.load_before(commit)  # (built once, before the workers)
    todo = [(b, f) for f in cases() for b in bridges]
    with Pool(args.procs) as pool:
        results = pool.map(bc.scan_call, todo, chunksize=8)
    rows: dict[tuple, list] = defaultdict(list)
    for commit, fields, out in results:
        rows[commit, fields["kind"]].append(out)
    print(f"{machine()}; {len(todo) // len(bridges)} calls per bridge")
    for commit in bridges:
        print(f"{commit}:")
        for kind in NOISES:
            outs = rows[commit, kind]
            paused = [o.paused_ms for o in outs if not o.barged_in]
            print(f"  {kind:9s} cut the answer {sum(o.barged_in for o in outs):2d} of {len(outs)}; the rest paused "
                  f"p50 {percentile(paused, 50):.0f} ms, max {max(paused, default=0):.0f} ms")
        for kind in ("whisper", "unvoiced"):
            outs = rows[commit, kind]
            clears = [o.clear_ms for o in outs if o.clear_ms is not None]
            print(f"  {kind:9s} missed within 1 s {sum(not bc.caught(o) for o in outs):2d}, at the ear "
                  f"{sum(bc.ear_missed(o) for o in outs):2d} of {len(outs)}; clear p50/p90 "
                  f"{percentile(clears, 50):.0f}/{percentile(clears, 90):.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
