"""Old against new at equal work: a least-squares fit over ``outside_cpu.py`` runs on a busy box.

On a box other work shares, a worker that waits for a core does less of a call's work (the TX
loop discards frames gone stale, fewer barge-ins happen), and its CPU per call-second falls with
the work it did: the same code moved 2-4 ms per call-second from run to run in the fifth round.
Comparing means then compares how starved each run was. This fits

    outside figure = a + b x (agent frames delivered / 1000) + d x [run is ``gevent``, not ``old-gevent``]

over every run of ``gevent`` and ``old-gevent`` in the files given and reports ``d`` (new less
old at equal work, ms per call-second) with its standard error; the sample's runs are listed and
averaged beside, not fitted (its callers get a few large messages, not paced frames).

Usage: python benchmarks/outside_fit.py RUNS.json [MORE.json or outside_cpu stdout files ...]
"""
from __future__ import annotations

import argparse
import json
from typing import Any

VERSIONS = ("old-gevent", "gevent")


def load(paths: list[str]) -> list[dict[str, Any]]:
    """The runs in ``--json`` files (``{"runs": [...]}``) or in captured stdout (one JSON object a line)."""
    runs: list[dict[str, Any]] = []
    for path in paths:
        with open(path) as f:
            text = f.read()
        if text.lstrip().startswith("{\n") or text.lstrip().startswith('{"command"'):
            try:
                runs.extend(json.loads(text)["runs"])
                continue
            except (ValueError, KeyError):
                pass
        runs.extend(json.loads(line) for line in text.splitlines() if line.startswith("{"))
    return runs


def fit(runs: list[dict[str, Any]]) -> tuple[float, float, float, float]:
    """(a, b, d, standard error of d) over the ``gevent`` and ``old-gevent`` runs."""
    import numpy as np

    ours = [r for r in runs if r["server"] in VERSIONS]
    if len(ours) < 4 or len({r["server"] for r in ours}) < 2:
        raise ValueError("need at least four runs of ours, both versions among them")
    y = np.array([r["outside_ms_per_call_s"] for r in ours], dtype=float)
    x = np.array([[1.0, r["frames_received"] / 1000, float(r["server"] == "gevent")] for r in ours])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    s2 = float(resid @ resid) / max(1, len(y) - 3)
    se = float(np.sqrt(s2 * np.linalg.inv(x.T @ x)[2, 2]))
    return float(coef[0]), float(coef[1]), float(coef[2]), se


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+")
    runs = load(ap.parse_args().paths)
    for r in runs:
        print(f'{r["server"]:10s} {r["outside_ms_per_call_s"]:6.2f} ms/call-s  frames {r["frames_received"]:5d}  '
              f'waiting {r["core_wait_ms_per_s"]:5.0f} ms/s')
    for server in (*VERSIONS, "sample"):
        values = [r["outside_ms_per_call_s"] for r in runs if r["server"] == server]
        if values:
            print(f"{server}: mean {sum(values) / len(values):.2f} over {len(values)}")
    a, b, d, se = fit(runs)
    print(f"new less old at equal agent frames: {d:+.2f} +- {se:.2f} ms per call-second "
          f"(figure = {a:.2f} + {b:.2f} per 1000 frames)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
