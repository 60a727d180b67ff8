"""Whispers and backchannels under room beds and speakerphone rooms: the vowel after a whisper verdict.

A held short utterance judged a whisper interrupts after a second unheard; one whose vowel follows
the verdict (``Utterance.voiced_frame``) is held as a voice and committed for its words. This scan
runs whole simulated calls (``bargein_cases.run_case``, Silero as the model's VAD) of every
whisper or backchannel clip across rooms (dry, RT60 0.4/0.6/0.8 s), beds (none, TV, babble,
music, car at -40 and -35 dBFS, playing the whole call) and echo (none, -20 dB), and records
each utterance's voiced frames after its whisper verdict: brightness, level, and the
utterance's loudest level so far. The rule is then judged offline for several settings:

* whispers: how many whisper verdicts a vowel would undo (a wrong one: a whispered "stop" then
  waits for its words instead of interrupting, and empty words would resume over it);
* backchannels: how many whisper verdicts it undoes (a right one: "sure" is held for its words
  and resumes the answer instead of cutting it);
* and, for backchannels, how many calls the bridge cut (any reason) per bed: the TV's row.

Usage: PYTHONPATH=$PWD python benchmarks/whisper_vowel_scan.py whisper|backchannel [--limit N] [--procs 2]
(every case: whispers 2592 calls, about 2.5 min on 2 cores; backchannels 4032, about 4 min)
"""
from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
from collections import Counter
from multiprocessing import Pool
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import voicebridge  # noqa: E402
from benchmarks import bargein_cases as bc  # noqa: E402
from benchmarks._common import machine  # noqa: E402
from voicebridge.audio import utterance  # noqa: E402
from voicebridge.dev.sim import corpus  # noqa: E402

RECORD: list[tuple] = []  # this process's current call: ("U",) a new utterance, ("W",) a verdict, ("v", b, level, loudest)


def _record() -> None:
    """Hooks on the bridge's own parts (this process only): what the rule is judged on."""
    u = utterance.Utterance
    starts, verdict, voiced = u.run_starts, u.heard_whisper, u.voiced_frame

    def run_starts(self: utterance.Utterance, now: float) -> None:
        if now - self._end > self.GAP_S:
            RECORD.append(("U",))
        starts(self, now)

    def heard_whisper(self: utterance.Utterance) -> None:
        if not self.whispered:
            RECORD.append(("W",))
        verdict(self)

    def voiced_frame(self: utterance.Utterance, brightness: float, level: float) -> None:
        if self.whispered:  # (every one, also after a vowel was found: the rules are judged offline)
            RECORD.append(("v", brightness, level, self._loudest))
        voiced(self, brightness, level)

    u.run_starts, u.heard_whisper, u.voiced_frame = run_starts, heard_whisper, voiced_frame


def cases(category: str) -> list[dict[str, Any]]:
    rng = random.Random(7)
    out = []
    for name, rt60, bed, level, echo, _ in itertools.product(
            [c.name for c in corpus.by_category(category)], (None, 0.4, 0.6, 0.8),
            ("tv", "room_babble", "music", "car", None), (-40, -35), (None, -20), range(2)):
        if bed is None and level == -35:
            continue
        out.append(dict(kind=category, label="scan", sound=name, reverb_rt60_s=rt60, bed=bed, bed_dbfs=level,
                        echo_db=echo, seed=rng.randrange(1 << 30), answer_at_s=rng.choice((0.0, 4.0, 8.0, 12.0)),
                        delay_ms=rng.choice((40, 80, 120, 160, 200, 250))))
    return out


def one(fields: dict[str, Any]) -> tuple[dict[str, Any], list[tuple], bool]:
    RECORD.clear()
    outcome, _ = bc.run_case(bc.Case(**fields), lambda: bc.Bridge(voicebridge), "silero")
    return fields, list(RECORD), outcome.barged_in


def verdicts(record: list[tuple]) -> list[list[tuple]]:
    """The voiced frames after the verdict, per utterance judged a whisper."""
    out: list[list[tuple]] = []
    current: list[tuple] | None = None
    for entry in record:
        if entry[0] == "U":
            current = None
        elif entry[0] == "W":
            current = []
            out.append(current)
        elif current is not None:
            current.append(entry[1:])
    return out


def vowel(frames: list[tuple], core: float, bright: float, count: int, within_db: float | None) -> bool:
    n = 0
    for brightness, level, loudest in frames:
        if within_db is not None and level < loudest - within_db:
            continue
        n += brightness < bright
        if brightness < core or n >= count:
            return True
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("category", choices=("whisper", "backchannel"))
    ap.add_argument("--limit", type=int, help="the first N cases only")
    ap.add_argument("--procs", type=int, default=2)
    args = ap.parse_args()
    import logging
    logging.disable(logging.WARNING)
    todo = cases(args.category)[:args.limit]
    _record()
    with Pool(args.procs, initializer=_record) as pool:
        results = pool.map(one, todo, chunksize=4)
    judged = [(f, verdicts(r), barged) for f, r, barged in results]
    with_verdict = [(f, v) for f, v, _ in judged if v]
    print(f"{machine()}; {len(results)} {args.category} calls, {len(with_verdict)} with a whisper verdict")
    u = utterance.Utterance
    rules = [("main", u.VOWEL_CORE, u.VOWEL_BRIGHT, u.VOWEL_FRAMES, u.VOWEL_DB),
             ("no level condition", u.VOWEL_CORE, u.VOWEL_BRIGHT, u.VOWEL_FRAMES, None),
             ("two frames, no level condition", u.VOWEL_CORE, u.VOWEL_BRIGHT, 2, None),
             ("within 6 dB", u.VOWEL_CORE, u.VOWEL_BRIGHT, u.VOWEL_FRAMES, 6.0),
             ("within 2 dB", u.VOWEL_CORE, u.VOWEL_BRIGHT, u.VOWEL_FRAMES, 2.0)]
    for label, core, bright, count, within in rules:
        by_bed: Counter = Counter()
        for fields, utterances in with_verdict:
            fired = any(vowel(frames, core, bright, count, within) for frames in utterances)
            by_bed[fields["bed"] or "none", fired] += 1
        beds = sorted({bed for bed, _ in by_bed})
        fired_total = sum(n for (_, fired), n in by_bed.items() if fired)
        print(f"  {label} (core {core}, {count} under {bright}, within {within} dB): a vowel undoes "
              f"{fired_total} of {len(with_verdict)} verdicts; by bed "
              + ", ".join(f"{bed} {by_bed[bed, True]}/{by_bed[bed, True] + by_bed[bed, False]}" for bed in beds))
    if args.category == "backchannel":
        cut: Counter = Counter()
        for fields, _, barged in judged:
            cut[fields["bed"] or "none", fields["bed_dbfs"] if fields["bed"] else None, barged] += 1
        print("  backchannels that cut the answer, by bed (all calls):")
        for bed, level in sorted({(b, lv) for b, lv, _ in cut}, key=str):
            n = cut[bed, level, True] + cut[bed, level, False]
            print(f"    {bed} {level if level is not None else ''}: {cut[bed, level, True]} of {n}"
                  f" ({100 * cut[bed, level, True] / n:.0f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
