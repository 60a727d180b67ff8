"""Backchannels and short commands over a TV, babble or music in the caller's room, old against new.

A TV or babble keeps the model's VAD in a turn it does not close, so a held "mm-hm" waits for
words that come only with that turn's commit, and the hold interrupts at its bound (a turn still
open might hold a "stop"). This scan runs whole simulated calls (``bargein_cases.run_case``,
Silero as the model's VAD, the set's transcriber, which writes down a TV's or babble's words in a
turn that holds a second of them) of every backchannel clip and every short command ("wait",
"stop", "hold on", "no no", "wait, hold on", "stop, stop") across rooms (dry, RT60 0.6 s), beds
(none; TV, babble, music at -40 and -35 dBFS, playing the whole call) and echo (none, -20 dB),
for each bridge given, and prints per bridge and bed: backchannels that cut the answer, and
commands missed (no clear within 1 s; none within 3 s; at the caller's ear; cleared, then the
model asked to continue over them) with the clear's p50.

Usage: PYTHONPATH=$PWD python benchmarks/beds_held.py [COMMIT ...] [--procs 2]
(each COMMIT's bridge beside the working tree's, "now"; about 1.5 min per bridge on 2 cores)
"""
from __future__ import annotations

import argparse
import itertools
import json
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

COMMANDS = ("wait", "stop", "hold on", "no no", "wait, hold on", "stop, stop")
BEDS = (("tv", -40), ("tv", -35), ("room_babble", -40), ("room_babble", -35), ("music", -40), ("music", -35),
        (None, None))


def cases() -> list[dict[str, Any]]:
    rng = random.Random(11)
    clips = [(c.name, "backchannel") for c in corpus.by_category("backchannel")]
    clips += [(c.name, "command") for c in corpus.by_category("interruption") if c.text.lower() in COMMANDS]
    out = []
    for (name, kind), rt60, (bed, level), echo in itertools.product(clips, (None, 0.6), BEDS, (None, -20)):
        out.append(dict(kind=kind, label="scan", sound=name, reverb_rt60_s=rt60, bed=bed, bed_dbfs=level or -40.0,
                        echo_db=echo, seed=rng.randrange(1 << 30), answer_at_s=rng.choice((0.0, 4.0, 8.0, 12.0)),
                        delay_ms=rng.choice((40, 80, 120, 160, 200, 250))))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("commits", nargs="*")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--json", help="also write every call's fields and outcome here")
    ap.add_argument("--only", help="this kind only: backchannel or command")
    ap.add_argument("--beds", help="these beds only, comma-separated (tv,room_babble,music,none)")
    args = ap.parse_args()
    bridges = [*args.commits, "now"]
    for commit in args.commits:
        bc.load_before(commit)  # (built once, before the workers)
    beds = set(args.beds.split(",")) if args.beds else None
    todo = [(b, f) for f in cases() for b in bridges
            if (args.only is None or f["kind"] == args.only) and (beds is None or (f["bed"] or "none") in beds)]
    with Pool(args.procs) as pool:
        results = pool.map(bc.scan_call, todo, chunksize=8)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([{"bridge": c, **f, "barged_in": o.barged_in, "clear_ms": o.clear_ms, "source": o.source,
                        "ear_missed": bc.ear_missed(o), "heard_again_ms": o.heard_again_ms,
                        "cut_before_onset": o.cut_before_onset, "continued": o.continued, "actions": o.actions,
                        "asked_early_ms": o.asked_early_ms, "asked_after_ms": o.asked_after_ms}
                       for c, f, o in results], fh)
    rows: dict[tuple, list] = defaultdict(list)
    for commit, fields, out in results:
        bed = f"{fields['bed']} {fields['bed_dbfs']:.0f}" if fields["bed"] else "none"
        rows[commit, fields["kind"], bed].append(out)
    print(f"{machine()}; {len(todo) // len(bridges)} calls per bridge")
    for commit in bridges:
        print(f"{commit}:")
        for bed in [f"{b} {lv}" if b else "none" for b, lv in BEDS]:
            bcs, cmds = rows[commit, "backchannel", bed], rows[commit, "command", bed]
            if not bcs and not cmds:
                continue
            print(f"  {bed:17s} " + "; ".join(_bed_line(bcs, cmds)))
    return 0


def _bed_line(bcs: list, cmds: list) -> list[str]:
    """One bed's figures: only the kinds that were played (``--only`` plays one)."""
    parts = [f"backchannels cut {sum(o.barged_in for o in bcs):3d} of {len(bcs)}"] if bcs else []
    if cmds:
        clears = [o.clear_ms for o in cmds if o.clear_ms is not None]
        parts.append(f"commands missed within 1 s {sum(not bc.caught(o) for o in cmds):3d}, 3 s "
                     f"{sum(o.clear_ms is None or o.clear_ms > 3000 for o in cmds):2d}, at the ear "
                     f"{sum(bc.ear_missed(o) for o in cmds):2d}, continued over {sum(o.continued for o in cmds):2d} "
                     f"of {len(cmds)}")
        parts.append(f"clear p50 {percentile(clears, 50):.0f} ms" if clears else "no clear")
    return parts


if __name__ == "__main__":
    raise SystemExit(main())
