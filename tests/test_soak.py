"""A short soak (30 sequential + 10 concurrent short calls) through the real in-process stack:
werkzeug + flask-sock + MediaSession -> LocalRealtimeServer, websocket-client callers. Threads and
descriptors return to baseline, RSS grows < 5 %, no traceback or uncaught thread exception.
The long run is ``python benchmarks/soak.py`` (see docs/reliability.md).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks.soak import soak  # noqa: E402


def test_short_soak_leaks_nothing():
    lines = []
    report = soak(sequential=30, concurrent=10, seconds=0.3, media_speed=4.0, speed=50.0, warmup=5,
                  out=lines.append)
    assert report["ok"], "\n".join(lines + [str(b["problems"]) for b in report["batches"]])
    assert [b["calls"] for b in report["batches"]] == [30, 10]
    for batch in report["batches"]:
        assert batch["sessions_ended"] == batch["calls"] and batch["accounting_failures"] == 0
        assert batch["threads_after"] <= report["baseline"]["threads"]
        assert batch["fds_after"] <= report["baseline"]["fds"]
        assert batch["rss_growth_pct"] < 5
