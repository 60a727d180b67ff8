"""The readiness verdict, row by row, on recorded figures; and one short real run."""
import copy

import pytest

from voicebridge.dev import verify
from voicebridge.dev.verify import FAIL, PASS, SKIP

CALLER = {"frame_sizes": {"160": 900}, "clears": 1, "ended_by": "bridge", "hangup_after_audio_ms": 25.0,
          "interruptions": [{"onset_ms": 9000, "clear_ms": 90, "heard_after_ms": 60}]}
BRIDGE = {"first_frame_bytes": 160, "tx_schedule_resets": 0, "tx_late_frames": 2, "safety_fuses": 0,
          "frames_flushed": 80, "barge_in_events": 1, "duck_releases": 1, "frames_enqueued": 980,
          "frames_sent": 900, "frames_dropped": 0, "outbound_bad_size": 0, "tool_calls": 2,
          "tool_overhead_ms": [0.8, 1.2]}


def verdicts(caller=CALLER, bridge=BRIDGE, seconds=60, clean=True):
    return {r.name: r.verdict for r in verify.judge(caller, bridge, seconds, clean_close=clean)}


def test_healthy_call_passes_every_row():
    rows = verify.judge(CALLER, BRIDGE, 60, clean_close=True)
    assert {r.verdict for r in rows} == {PASS} and len(rows) == 15
    assert verify.passed(rows)


@pytest.mark.parametrize("where,key,value,row", [
    ("bridge", "first_frame_bytes", 159, "first frame is 160 bytes"),
    ("caller", "frame_sizes", {"160": 899, "120": 1}, "every frame is 160 bytes"),
    ("bridge", "tx_schedule_resets", 1, "tx_schedule_resets"),
    ("bridge", "tx_late_frames", 6, "tx_late_frames"),
    ("bridge", "safety_fuses", 1, "no SAFETY_FUSE"),
    ("caller", "clears", 0, "Twilio clear sent on the interruption"),
    ("bridge", "frames_flushed", 0, "frames flushed from our queues"),
    ("bridge", "barge_in_events", 0, "barge_in_events"),  # also breaks the click row's count
    ("caller", "interruptions", [{"onset_ms": 1, "clear_ms": 400, "heard_after_ms": 400}],
     "caller stopped hearing the AI"),
    ("bridge", "duck_releases", 0, "click ducked, did not interrupt"),
    ("bridge", "frames_dropped", 1, "enqueued == sent + flushed + dropped"),
    ("bridge", "outbound_bad_size", 2, "no frame-size validation warning"),
    ("bridge", "tool_overhead_ms", [0.8, 75.0], "tool call answered"),
    ("caller", "ended_by", "script", "agent hung up after its goodbye was heard"),
    ("caller", "hangup_after_audio_ms", 2500.0, "agent hung up after its goodbye was heard"),
])
def test_each_row_fails_on_its_own_figure(where, key, value, row):
    caller, bridge = copy.deepcopy(CALLER), copy.deepcopy(BRIDGE)
    (caller if where == "caller" else bridge)[key] = value
    if key == "frames_flushed":
        bridge["frames_enqueued"] = bridge["frames_sent"]  # keep the identity exact
    result = verdicts(caller, bridge)
    assert result[row] == FAIL
    others = {name for name, v in result.items() if v == FAIL} - {row}
    assert others <= ({"click ducked, did not interrupt"} if key == "barge_in_events" else set()), result
    assert not verify.passed(verify.judge(caller, bridge, 60, clean_close=True))


def test_click_that_interrupts_fails_and_unclean_close_fails():
    bridge = dict(BRIDGE, barge_in_events=2)
    assert verdicts(bridge=bridge)["click ducked, did not interrupt"] == FAIL
    assert verdicts(clean=False)["clean close (no close error, threads joined)"] == FAIL


def test_late_frame_allowance_scales_with_call_length():
    assert verdicts(bridge=dict(BRIDGE, tx_late_frames=2), seconds=20)["tx_late_frames"] == PASS
    assert verdicts(bridge=dict(BRIDGE, tx_late_frames=3), seconds=20)["tx_late_frames"] == FAIL


def test_remote_without_bridge_figures_skips_inside_rows_but_judges_the_outside():
    rows = verify.judge(CALLER, None, 60, clean_close=None)
    by_name = {r.name: r.verdict for r in rows}
    assert by_name["every frame is 160 bytes"] == PASS
    assert by_name["caller stopped hearing the AI"] == PASS
    assert by_name["tx_schedule_resets"] == SKIP and by_name["barge_in_events"] == SKIP
    assert verify.passed(rows)
    assert "verdict: PASS" in verify.format_table(rows)


def test_metrics_the_endpoint_does_not_export_are_skipped_not_failed():
    """A deployed bridge's /metrics may lack a counter: that row is not judged (and says so),
    rather than failing a healthy bridge; the duck releases are exported and mapped."""
    bridge = {k: v for k, v in BRIDGE.items() if k != "duck_releases"}
    assert verdicts(bridge=bridge)["click ducked, did not interrupt"] == SKIP
    assert verify._PROM_KEYS["voicebridge_duck_releases_total"] == "duck_releases"
    assert "needs its metrics" in verify.format_table(verify.judge(CALLER, None, 60, clean_close=None))
    assert "needs its metrics" not in verify.format_table(verify.judge(CALLER, BRIDGE, 60, clean_close=True))


def test_no_interruption_fails():
    caller = dict(CALLER, interruptions=[], clears=0)
    assert verdicts(caller=caller)["Twilio clear sent on the interruption"] == FAIL


def test_remote_figures_are_before_after_deltas():
    samples = iter([{"voicebridge_frames_sent_total": 100.0, "voicebridge_barge_ins_total": 3.0},
                    {"voicebridge_frames_sent_total": 400.0, "voicebridge_barge_ins_total": 4.0}])

    class FakeCaller:
        def __init__(self, *a, **k):
            pass

        def run(self):
            class R:
                def to_dict(self):
                    return CALLER
            return R()

    import voicebridge.dev.sim as sim
    real = sim.SimulatedCaller
    sim.SimulatedCaller = FakeCaller
    try:
        caller, bridge = verify.run_remote("ws://x/media", 10, "http://x/metrics", fetch=lambda url: next(samples))
    finally:
        sim.SimulatedCaller = real
    assert bridge == {"frames_sent": 300, "barge_in_events": 1}  # tool calls: not in these samples


def test_short_real_run_passes_every_row_that_is_not_a_timing_figure():
    """A real call on the embedded stack, judged with the command's own bounds. The timing rows
    are the command's job on a quiet machine (and benchmarks/'); a unit test on a busy CI box
    asserts only that they were measured."""
    caller, bridge, clean = verify.run_local(seconds=6, tone_seconds=1.0, speed=8.0)
    rows = verify.judge(caller, bridge, 6, clean_close=clean)
    assert caller["ended_by"] == "bridge", verify.format_table(rows)  # the agent hung up, not the caller
    table = verify.format_table(rows)
    assert all(r.verdict == PASS for r in rows if not r.timing), table
    assert all(r.verdict in (PASS, FAIL) and r.measured is not None for r in rows if r.timing), table
    assert {r.name for r in rows if r.timing} == verify.TIMING_ROWS, table
