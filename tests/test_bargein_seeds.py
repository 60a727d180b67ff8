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


def test_a_room_beds_false_barge_ins_are_pooled_apart_for_a_bed_on_from_the_start_and_one_switched_on():
    def report(on_false: int, switched_false: int) -> dict:
        tv = {"cases": 8, "false": on_false + switched_false, "bed on from the start": 4, "bed switched on": 4,
              "false, bed on from the start": on_false, "false, bed switched on": switched_false}
        return {"false_barge_in_pct": 2.0, "backchannels_cut_pct": 0.0, "backchannel_audio_lost_ms_max": 20.0,
                "missed_at_the_ear_pct": 1.0, "missed_within_3s_pct": 1.0,
                "by_kind": {"tv": tv, "knock": {"cases": 8, "false": 1}}}

    summary = pooled([report(0, 3), report(1, 2)])
    assert summary["false_by_bed_start"] == {"tv": {"bed on from the start": [1, 8], "bed switched on": [5, 8]}}
    assert summary["false_by_kind"] == {"tv": [6, 16], "knock": [2, 16]}  # the kind as a whole, as before
