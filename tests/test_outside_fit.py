"""``benchmarks/outside_fit.py``: new less old at equal work, from runs a busy box starved unevenly."""
from __future__ import annotations

import json

import pytest

from benchmarks import outside_fit

pytest.importorskip("numpy")


def _run(server: str, frames: int, figure: float) -> dict:
    return {"server": server, "frames_received": frames, "outside_ms_per_call_s": figure, "core_wait_ms_per_s": 500.0}


def test_the_fit_finds_the_difference_the_means_hide(tmp_path):
    # new is 0.7 cheaper at equal work, but its runs happened to be the less starved ones: its mean is higher
    old = [_run("old-gevent", f, 3.0 + 1.5 * f / 1000) for f in (2000, 3000, 4000)]
    new = [_run("gevent", f, 3.0 + 1.5 * f / 1000 - 0.7 + e) for f, e in ((6000, 0.01), (7000, -0.01), (8000, 0.0))]
    sample = [_run("sample", 1100, 9.0)]
    path = tmp_path / "runs.json"
    path.write_text(json.dumps({"command": [], "runs": old + new + sample}))
    runs = outside_fit.load([str(path)])
    assert len(runs) == 7
    a, b, d, se = outside_fit.fit(runs)
    assert sum(r["outside_ms_per_call_s"] for r in new) / 3 > sum(r["outside_ms_per_call_s"] for r in old) / 3
    assert d == pytest.approx(-0.7, abs=0.05) and se < 0.1
    assert b == pytest.approx(1.5, abs=0.02)


def test_stdout_lines_are_read_too_and_one_version_alone_is_refused(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("a header\n" + "\n".join(json.dumps(_run("gevent", f, 10.0)) for f in (1, 2, 3, 4)) + "\n| table |\n")
    runs = outside_fit.load([str(path)])
    assert [r["frames_received"] for r in runs] == [1, 2, 3, 4]
    with pytest.raises(ValueError):
        outside_fit.fit(runs)
