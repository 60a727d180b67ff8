"""Same decisions? Every call of the barge-in set run through two bridges, every decision compared.

A change meant to make the listening path cheaper must not change what it decides. This runs
each case of ``benchmarks/bargein_cases.py`` (the labelled set, with and without a greeting)
through the bridge of a commit and the working tree's, and records, per caller frame, what the
call's ``Listener`` returned (what the model is sent, the level, the echo verdict, the local
decision) and, per model event, its verdict on the model's VAD (``server_speech``), on a
committed turn (``committed``), on words (``transcript``) and on a held agent (``hold_outcome``),
besides the call's outcome (what the caller heard, the actions). A decision that differed would
change what the harness feeds the bridge next, so the first difference is reported per case
with its time.

Usage: PYTHONPATH=. python benchmarks/listening_replay.py COMMIT [--n N] [--vad energy|silero|auto]
       [--no-greeting]
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import importlib
import sys
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bargein_cases as bc  # noqa: E402

RECORDED = ("hear", "server_speech", "committed", "transcript", "hold_outcome")
"""The ``Listener`` methods whose answers are compared (its whole say in the call)."""


def _plain(value: Any) -> Any:
    """A decision as comparable data (enums by value, named tuples as tuples)."""
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, bytes):  # what the model is sent: compared whole, shown short
        return hashlib.blake2b(value, digest_size=6).hexdigest()
    return getattr(value, "value", value)


def recording(pkg: Any, log: list) -> Callable[[], Any]:
    """A bridge maker for ``pkg`` whose listener's answers are appended to ``log``."""
    listening = importlib.import_module(f"{pkg.__name__}.audio.listening")
    for name in RECORDED:
        method = getattr(listening.Listener, name)
        original = getattr(method, "__wrapped__", method)

        @functools.wraps(original)
        def recorded(self: Any, *args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            answer = _original(self, *args, **kwargs)
            log.append((_name, _plain(args[1] if _name == "hear" else args[:1]), _plain(answer)))
            return answer

        setattr(listening.Listener, name, recorded)
    return lambda: bc.Bridge(pkg)


def outcome(result: Any) -> dict:
    """The call's outcome (the CPU figure is returned beside it, not in it)."""
    return dataclasses.asdict(result)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("commit", help="the bridge to compare the working tree's with (e.g. main's commit)")
    ap.add_argument("--n", type=int, help="at most N cases of every kind")
    ap.add_argument("--vad", default="energy", choices=("auto", "silero", "energy"), help="the model's VAD")
    ap.add_argument("--no-greeting", action="store_true")
    args = ap.parse_args()
    bc.logging.disable(bc.logging.WARNING)
    bc.GREETING_ON = not args.no_greeting
    old_log: list = []
    new_log: list = []
    old = recording(bc.load_before(args.commit), old_log)
    new = recording(importlib.import_module("voicebridge"), new_log)
    cases = bc.case_set(0, args.n)
    differing, frames, answers = [], 0, 0
    for case in cases:
        old_log.clear()
        new_log.clear()
        old_outcome, _ = bc.run_case(case, old, args.vad)
        new_outcome, _ = bc.run_case(case, new, args.vad)
        frames += sum(1 for entry in new_log if entry[0] == "hear")
        answers += len(new_log)
        if old_log != new_log or outcome(old_outcome) != outcome(new_outcome):
            first = next((i for i, (a, b) in enumerate(zip(old_log, new_log)) if a != b), min(len(old_log), len(new_log)))
            differing.append(case)
            print(f"DIFFERENT {case.kind} seed {case.seed}: entry {first} of {len(old_log)}/{len(new_log)}: "
                  f"{old_log[first:first + 1]} vs {new_log[first:first + 1]}")
    print(f"{len(cases)} calls (greeting: {bc.GREETING_ON}, model VAD {args.vad}), {frames} caller frames, "
          f"{answers} listener answers compared: {len(differing)} calls differ from {args.commit}")
    return 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main())
