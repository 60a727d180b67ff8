"""Draw the capacity comparison of ``docs/performance.md`` from ``scale.py --json`` files.

    python benchmarks/capacity_plot.py docs/capacity/*.json -o docs/performance-capacity.png

Left: CPU per call-second at N=50 for every setup in the files (old and new checkout side by
side). Right: send stalls as a share of paced gaps against N, one line per setup. The setup of a
step is the ``setup`` field ``scale.py`` writes (worker class, /media server, workers, checkout).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from typing import Any


def load(paths: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Steps by setup, sorted by N (a setup split over several files is joined)."""
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in paths:
        with open(path) as f:
            for step in json.load(f)["steps"]:
                series[step["setup"]].append(step)
    return {setup: sorted(steps, key=lambda s: s["n"]) for setup, steps in series.items()}


def stall_share(step: dict[str, Any]) -> float:
    gaps = step["send"]["gaps"] or 1
    return 100.0 * step["send"]["stalls"] / gaps


def label(setup: str) -> str:
    """``gevent+direct, 1 worker(s), this checkout`` -> two lines, ``now`` or ``before``."""
    kind, workers, checkout = setup.split(", ")
    return f"{kind}, {workers}\n{'now' if checkout == 'this checkout' else 'before'}"


def plot(series: dict[str, list[dict[str, Any]]], path: str, at_n: int = 50) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, lines) = plt.subplots(1, 2, figsize=(11, 4.2))
    at = [(setup, s) for setup, steps in series.items() for s in steps if s["n"] == at_n]
    at.sort(key=lambda p: -p[1]["bridge_process"]["cpu_ms_per_call_s"])
    names = [label(setup) for setup, _ in at]
    values = [s["bridge_process"]["cpu_ms_per_call_s"] for _, s in at]
    colours = ["tab:grey" if "this checkout" not in setup else "tab:blue" for setup, _ in at]
    bars.barh(range(len(at)), values, color=colours)
    bars.set_yticks(range(len(at)), names, fontsize=7)
    for i, v in enumerate(values):
        bars.text(v + 0.1, i, f"{v:.1f}", va="center", fontsize=7)
    bars.set_xlabel(f"bridge CPU ms per call-second at N={at_n} (grey: before, blue: now)")
    for setup, steps in series.items():
        if len(steps) > 1 and "this checkout" in setup:
            lines.plot([s["n"] for s in steps], [stall_share(s) for s in steps], "o-",
                       label=label(setup).replace("\n", ", "))
    lines.axhline(0.1, color="grey", lw=0.8, ls=":")
    lines.set_yscale("symlog", linthresh=0.1)
    lines.set_ylim(bottom=0)
    lines.set_xlabel("concurrent calls")
    lines.set_ylabel("send stalls (% of paced gaps; dotted: 0.1 %)")
    lines.legend(fontsize=7)
    fig.suptitle("voicebridge capacity, one 2-core VM (bridge, local model and callers share it)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="scale.py --json outputs")
    ap.add_argument("-o", "--out", required=True, help="PNG to write")
    ap.add_argument("--at", type=int, default=50, help="N of the CPU comparison")
    args = ap.parse_args()
    plot(load(args.files), args.out, args.at)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
