"""The listening path's CPU per caller frame, by kind of frame, old against new in one run.

``benchmarks/bargein_cases.py`` reports the listening CPU per call-second over whole calls; on a
shared machine its figure moves with the load by more than a change to the path is worth. This
drives the very same harness bridge (``bargein_cases.Bridge``: the session's inbound media path,
the echo gate's bookkeeping of sent frames, timed in the thread's CPU time less the timer's own
cost) with three steady streams, 60 s each, and reports microseconds per caller frame:

* ``quiet``: the line's noise (-65 dBFS), nothing played (most frames of most calls);
* ``echo``: the agent's answer playing (in deltas of 100 ms), the line carrying only its echo
  20 dB down and 120 ms late (the gate finds the delay, then judges every frame echo: comfort noise to the model);
* ``caller``: a caller's speech (the corpus's interruptions back to back) with the agent silent.

Each variant runs every stream ``--rounds`` times, interleaved; the best round is reported (the
least disturbed by other processes), and the median beside it.

Usage: PYTHONPATH=. python benchmarks/listening_frame.py [--also COMMIT]... [--rounds N] [--seconds S]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bargein_cases as bc  # noqa: E402
from benchmarks._common import machine  # noqa: E402
from voicebridge.audio.echo import attenuation_table  # noqa: E402
from voicebridge.audio.mulaw import SILENCE_FRAME  # noqa: E402
from voicebridge.dev.sim import corpus, room  # noqa: E402

FRAME = 160
DELTA_FRAMES = bc.DELTA_BYTES // FRAME
ECHO_DB, ECHO_SLOTS = 20, 6


def _frames(data: bytes, n: int) -> list[bytes]:
    """``n`` whole frames of ``data``, going round it as often as needed."""
    reps = -(-n * FRAME // max(1, len(data))) + 1
    whole = (data * reps)[:n * FRAME]
    return [whole[i:i + FRAME] for i in range(0, len(whole), FRAME)]


def _streams(n: int) -> dict[str, tuple[list[bytes], list[bytes]]]:
    """Per stream: (the agent's frames, one per slot, b"" for none; the caller's frames)."""
    noise = room.float_to_ulaw(room.at_level(room.bed("car", 0), -65.0))
    speech = b"".join(corpus.load(c.name) for c in corpus.by_category("interruption"))
    answer = _frames(bc.distinct_frames(bc.ANSWER), n)
    quieter = attenuation_table(ECHO_DB)
    echo = [answer[i - ECHO_SLOTS].translate(quieter) if i >= ECHO_SLOTS else SILENCE_FRAME for i in range(n)]
    return {"quiet": ([b""] * n, _frames(noise, n)),
            "echo": (answer, echo),
            "caller": ([b""] * n, _frames(speech, n))}


def _run(make: Callable[[], Any], agent: list[bytes], caller: list[bytes]) -> float:
    """Microseconds of listening CPU per caller frame over one stream."""
    bridge = make()
    out = bridge._out
    for i, heard in enumerate(caller):
        now = i * bc.TICK
        if i % DELTA_FRAMES == 0 and agent[i]:  # the model's audio in deltas of 100 ms, as the set's
            out.push("item", b"".join(agent[i:i + DELTA_FRAMES]))
        bridge.twilio_out(now)
        bridge.caller_frame(heard, now)
    return bridge.listening_cpu_s * 1e6 / len(caller)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--also", action="append", default=[], metavar="COMMIT", help="also measure this commit's bridge")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    bc.logging.disable(bc.logging.WARNING)
    variants = {commit: (lambda pkg=bc.load_before(commit): bc.Bridge(pkg)) for commit in args.also}
    variants["now"] = lambda: bc.Bridge(bc.importlib.import_module("voicebridge"))
    streams = _streams(int(args.seconds / bc.TICK))
    for make in variants.values():  # warm-up: first-use tables and imports
        _run(make, *streams["echo"])
    spent: dict[tuple[str, str], list[float]] = {(v, s): [] for v in variants for s in streams}
    for _ in range(args.rounds):
        for stream, (agent, caller) in streams.items():
            for name, make in variants.items():
                spent[name, stream].append(_run(make, agent, caller))
    print(f"machine: {machine()}")
    print(f"us of listening CPU per caller frame (best / median of {args.rounds} rounds of {args.seconds:g} s)")
    for stream in streams:
        row = "  ".join(f"{name}: {min(spent[name, stream]):.1f} / {statistics.median(spent[name, stream]):.1f}"
                        for name in variants)
        print(f"  {stream:7s} {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
