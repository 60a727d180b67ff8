"""benchmarks/bargein_seeds.py's pooling over runs of the barge-in set (the runs themselves take minutes)."""
from __future__ import annotations

from benchmarks.bargein_seeds import pooled


def _report(tv_false: int, soft_missed: int, ear_pct: float) -> dict:
    return {"false_barge_in_pct": 2.0, "backchannels_cut_pct": 0.0, "backchannel_audio_lost_ms_max": 20.0,
            "missed_at_the_ear_pct": ear_pct, "missed_within_3s_pct": 1.0,
            "by_kind": {"tv": {"cases": 8, "false": tv_false}, "music": {"cases": 8, "false": 1},
                        "soft_echo-15": {"cases": 18, "missed at the ear": soft_missed}, "knock": {"cases": 8}}}


def test_a_kind_is_above_2_in_10_over_the_runs_pooled_not_in_one_run():
    runs = [_report(2, 1, 1.2), _report(1, 4, 4.5), _report(1, 0, 0.8)]  # a TV 4 of 24: 17 %, not over
    summary = pooled(runs)
    assert summary["false_by_kind"] == {"tv": [4, 24], "music": [3, 24]}
    assert summary["kinds_above_2_in_10"] == []
    assert summary["missed_at_the_ear_by_kind"] == {"soft_echo-15": [5, 54]}
    assert summary["worst"]["missed_at_the_ear_pct"] == 4.5
    assert pooled(runs + [_report(3, 0, 0.0)])["kinds_above_2_in_10"] == ["tv"]  # 7 of 32: 22 %
