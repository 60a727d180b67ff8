"""What ``append_ms`` costs in turn-taking: the caller's last word -> the agent's first frame.

Real sockets on loopback, the local Realtime server (its server VAD hears the audio as the
appends deliver it, as the real one does), a paced caller taking turns with a bundled phrase
(``benchmarks/reconnect.py``'s rollover call, no rollover). Each setting runs twice,
alternating, so machine noise shows as the spread between the two runs.

Usage: python benchmarks/append_latency.py [--turns 10] [--values 20,100,200]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks._common import machine  # noqa: E402
from benchmarks.reconnect import BASE, rollover  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--values", default="20,100,200", help="append_ms settings to compare")
    args = ap.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    values = [int(v) for v in args.values.split(",")]
    result: dict = {"machine": machine(), "runs": {v: [] for v in values}}
    for _ in range(2):
        for ms in values:
            r = rollover(None, args.turns, random.Random(ms), BASE.replace(append_ms=ms))
            result["runs"][ms].append({"answers": r["answers"], "latency_p50_ms": r["latency_p50_ms"],
                                       "latency_max_ms": r["latency_max_ms"]})
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
