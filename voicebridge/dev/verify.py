"""``voicebridge verify``: the production-readiness check as a command.

Before a deploy people place a test call and read the logs for a list of expected figures.
This command places the call (the caller simulator, a scripted conversation with one real
interruption and one click that must *not* interrupt), reads the figures from both ends and
judges them row by row. Exit status 0 only if every row passes.

* default: the embedded stack on this machine (example app + local Realtime server in tone
  mode + caller simulator);
* ``--url wss://host/media``: a deployed bridge, judged from outside (frame sizes, pacing,
  clear, audio after the interruption), plus the bridge's own counters when
  ``--metrics-url https://host/metrics`` is given.

The verdict logic (``judge``) is pure: figures in, rows out.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any, Callable

log = logging.getLogger(__name__)

PASS, FAIL, SKIP = "pass", "FAIL", "skip"
TIMING_ROWS = frozenset({"tx_schedule_resets", "tx_late_frames", "caller stopped hearing the AI",
                         "agent hung up after its goodbye was heard"})
"""Rows that measure the wall clock: a loaded machine (a shared CI box) moves them, a bug in the
bridge moves the others."""


@dataclass(frozen=True)
class Row:
    name: str
    measured: Any
    expected: str
    verdict: str  # PASS | FAIL | SKIP

    @property
    def timing(self) -> bool:
        """A wall-clock figure: judged on a quiet machine by the command, only measured by tests."""
        return self.name in TIMING_ROWS


@dataclass(frozen=True)
class Bounds:
    """What counts as healthy; scaled to the call's length where it is a rate."""

    late_frames_per_minute: int = 5
    heard_after_onset_ms: float = 250.0  # caller still hearing the AI after starting to speak
    tool_overhead_ms: float = 50.0  # function call done -> output sent, the handler's own time excluded
    hangup_after_audio_ms: float = 1000.0  # the goodbye heard -> the bridge ends the call


def _row(name: str, measured: Any, expected: str, ok: "bool | None") -> Row:
    return Row(name, measured, expected, SKIP if ok is None else (PASS if ok else FAIL))


def _get(d: "dict[str, Any] | None", key: str) -> Any:
    return None if d is None else d.get(key)


def judge(caller: dict[str, Any], bridge: "dict[str, Any] | None", seconds: float,
          bounds: Bounds = Bounds(), clean_close: "bool | None" = None) -> list[Row]:
    """Rows of the readiness table from the caller's report and (if known) the bridge's metrics."""
    rows: list[Row] = []
    sizes = {int(k): v for k, v in (caller.get("frame_sizes") or {}).items()}
    first = _get(bridge, "first_frame_bytes")
    rows.append(_row("first frame is 160 bytes", first, "== 160", None if first is None else first == 160))
    rows.append(_row("every frame is 160 bytes", sizes or "no frames", "only 160",
                     bool(sizes) and set(sizes) == {160}))
    resets = _get(bridge, "tx_schedule_resets")
    rows.append(_row("tx_schedule_resets", resets, "== 0", None if resets is None else resets == 0))
    late = _get(bridge, "tx_late_frames")
    allowed = max(1, round(bounds.late_frames_per_minute * max(seconds, 1) / 60))
    rows.append(_row("tx_late_frames", late, f"<= {allowed} ({bounds.late_frames_per_minute}/min)",
                     None if late is None else late <= allowed))
    fuses = _get(bridge, "safety_fuses")
    rows.append(_row("no SAFETY_FUSE", fuses, "== 0", None if fuses is None else fuses == 0))
    rows += _interruption_rows(caller, bridge, bounds)
    rows += _action_rows(caller, bridge, bounds)
    rows += _accounting_rows(bridge, clean_close)
    return rows


def _action_rows(caller: dict[str, Any], bridge: "dict[str, Any] | None", bounds: Bounds) -> list[Row]:
    calls, overheads = _get(bridge, "tool_calls"), _get(bridge, "tool_overhead_ms")
    if overheads:
        worst = max(overheads)
        rows = [_row("tool call answered", f"{calls} call(s), bridge overhead <= {worst:.1f} ms",
                     f">= 1, <= {bounds.tool_overhead_ms:.0f} ms", calls >= 1 and worst <= bounds.tool_overhead_ms)]
    else:
        rows = [_row("tool call answered", calls, ">= 1", None if calls is None else calls >= 1)]
    after = caller.get("hangup_after_audio_ms")
    hung_up = caller.get("ended_by") == "bridge" and after is not None
    rows.append(_row("agent hung up after its goodbye was heard",
                     f"{after:.0f} ms after" if hung_up else f"ended by {caller.get('ended_by')}",
                     f"<= {bounds.hangup_after_audio_ms:.0f} ms", hung_up and after <= bounds.hangup_after_audio_ms))
    return rows


def _interruption_rows(caller: dict[str, Any], bridge: "dict[str, Any] | None", bounds: Bounds) -> list[Row]:
    interruptions = caller.get("interruptions") or []
    clears = caller.get("clears", 0)
    rows = [_row("Twilio clear sent on the interruption", clears, ">= 1",
                 bool(interruptions) and clears >= 1)]
    flushed = _get(bridge, "frames_flushed")
    rows.append(_row("frames flushed from our queues", flushed, ">= 1", None if flushed is None else flushed >= 1))
    events = _get(bridge, "barge_in_events")
    rows.append(_row("barge_in_events", events, ">= 1", None if events is None else events >= 1))
    heard = [it.get("heard_after_ms") for it in interruptions]
    worst = max((h for h in heard if h is not None), default=None)
    rows.append(_row("caller stopped hearing the AI", None if worst is None else f"{worst:.0f} ms after onset",
                     f"<= {bounds.heard_after_onset_ms:.0f} ms", None if worst is None else worst <= bounds.heard_after_onset_ms))
    releases = _get(bridge, "duck_releases")
    if bridge is not None:
        expected_events = len(interruptions)
        rows.append(_row("click ducked, did not interrupt", f"{releases} release(s), {events} barge-in(s)",
                         f">= 1 release, {expected_events} barge-in(s)",
                         None if releases is None else releases >= 1 and events == expected_events))
    return rows


def _accounting_rows(bridge: "dict[str, Any] | None", clean_close: "bool | None") -> list[Row]:
    rows = []
    if bridge is not None and "frames_enqueued" in bridge:
        total = bridge["frames_sent"] + bridge["frames_flushed"] + bridge["frames_dropped"]
        rows.append(_row("enqueued == sent + flushed + dropped",
                         f"{bridge['frames_enqueued']} == {bridge['frames_sent']} + {bridge['frames_flushed']} + "
                         f"{bridge['frames_dropped']}", "exact", bridge["frames_enqueued"] == total))
    else:
        rows.append(_row("enqueued == sent + flushed + dropped", None, "exact", None))
    bad = _get(bridge, "outbound_bad_size")
    rows.append(_row("no frame-size validation warning", bad, "== 0", None if bad is None else bad == 0))
    rows.append(_row("clean close (no close error, threads joined)", clean_close, "True", clean_close))
    return rows


def passed(rows: list[Row]) -> bool:
    return all(r.verdict != FAIL for r in rows) and any(r.verdict == PASS for r in rows)


def format_table(rows: list[Row]) -> str:
    width = max(len(r.name) for r in rows)
    mwidth = max(len(str(r.measured)) for r in rows)
    lines = [f"{'check':<{width}}  {'measured':<{mwidth}}  {'expected':<22} verdict"]
    for r in rows:
        lines.append(f"{r.name:<{width}}  {str(r.measured):<{mwidth}}  {r.expected:<22} {r.verdict}")
    lines.append(f"\nverdict: {'PASS' if passed(rows) else 'FAIL'} "
                 f"({sum(r.verdict == PASS for r in rows)} pass, {sum(r.verdict == FAIL for r in rows)} fail, "
                 f"{sum(r.verdict == SKIP for r in rows)} skipped)")
    if sum(r.verdict == SKIP for r in rows) * 2 > len(rows):
        lines.append("most rows were not judged: the bridge's side needs its metrics (--metrics-url)")
    return "\n".join(lines)


def build_script(seconds: float) -> str:
    """A scripted conversation of about ``seconds``: greeting, question, interruption, click, more turns,
    an order looked up with the keypad (a tool call), and a goodbye the agent ends the call on."""
    steps = ["wait_agent:10000", "wait_quiet:600", "say:What can you tell me?", "wait_agent:8000",
             "interrupt:400:Stop please", "wait_agent:8000", "silence:300", "click:60", "wait_quiet:700"]
    turns = max(0, int((seconds - 20) // 6))
    for _ in range(turns):
        steps += ["say:Tell me more.", "wait_agent:8000", "wait_quiet:700"]
    steps += ["say:I would like to check my order.", "wait_agent:8000", "wait_quiet:700", "dtmf:1234#",
              "wait_agent:8000", "wait_quiet:700", "say:Thank you, goodbye.", "wait_hangup:10000"]
    return ",".join(steps)


class _ErrorCounter(logging.Handler):
    """Counts error records and tracebacks from the library during the check."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self.lock:
            self.count += 1


def run_local(seconds: float, tone_seconds: float = 2.0, speed: float = 6.0) -> tuple[dict[str, Any], dict[str, Any] | None, bool]:
    """The embedded stack: returns (caller report, bridge metrics, clean close)."""
    from .appcall import simulated_call
    from .local.server import LocalRealtimeServer

    errors = _ErrorCounter()
    lib_log = logging.getLogger("voicebridge")
    lib_log.addHandler(errors)
    local = LocalRealtimeServer(mode="tone", speed=speed, tone_seconds=tone_seconds).start()
    try:
        report, bridge = simulated_call(local.url, build_script(seconds), max_seconds=seconds + 30)
    finally:
        local.stop()
        lib_log.removeHandler(errors)
    clean = bridge is not None and errors.count == 0 and bridge.get("threads_alive_after_close", 0) == 0
    return report.to_dict(), bridge, clean


def fetch_metrics(url: str) -> dict[str, float]:
    """Sum each Prometheus sample by metric name (labels folded) from a /metrics endpoint."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - operator-given URL
        text = resp.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


# /metrics sample name -> bridge metric key (the counters voicebridge.serving.flaskext exports)
_PROM_KEYS = {
    "voicebridge_frames_sent_total": "frames_sent",
    "voicebridge_tx_late_frames_total": "tx_late_frames",
    "voicebridge_tx_schedule_resets_total": "tx_schedule_resets",
    "voicebridge_barge_ins_total": "barge_in_events",
    "voicebridge_duck_releases_total": "duck_releases",
    "voicebridge_tool_calls_total": "tool_calls",
}


def run_remote(url: str, seconds: float, metrics_url: str | None,
               fetch: Callable[[str], dict[str, float]] = fetch_metrics, auth_token: str | None = None,
               webhook_url: str | None = None, carrier: str = "twilio"
               ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A deployed bridge: the call from outside (with ``auth_token``: placed as the carrier does,
    the signed webhook then the stream; for Telnyx it is a test key's private half), the bridge's
    counters as before/after deltas."""
    from .sim import SimulatedCaller
    from .sim.caller import dial as place

    dial = place(carrier, url, auth_token, webhook_url)
    before = fetch(metrics_url) if metrics_url else None
    report = SimulatedCaller(dial.url, build_script(seconds), max_seconds=seconds + 30, headers=dial.headers,
                             custom_parameters=dial.custom_parameters, call_sid=dial.call_sid,
                             account_sid=dial.account_sid, carrier=carrier, after_stream=dial.after).run()
    bridge = None
    if metrics_url and before is not None:
        after = fetch(metrics_url)
        bridge = {key: int(after.get(name, 0) - before.get(name, 0)) for name, key in _PROM_KEYS.items()
                  if name in after}
    return report.to_dict(), bridge


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="voicebridge verify", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the test call (default 60)")
    ap.add_argument("--url", help="a deployed bridge's media WebSocket URL (wss://host/media)")
    ap.add_argument("--metrics-url", help="the deployed bridge's /metrics URL")
    ap.add_argument("--heard-bound-ms", type=float, default=Bounds.heard_after_onset_ms,
                    help="max agent audio the caller may hear after starting to speak")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    from .sim.caller import add_carrier_arguments, add_twilio_arguments

    add_twilio_arguments(ap)
    add_carrier_arguments(ap)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    bounds = Bounds(heard_after_onset_ms=args.heard_bound_ms)
    if args.url:
        try:
            secret = args.telnyx_private_key if args.carrier == "telnyx" else args.auth_token
            caller, bridge = run_remote(args.url, args.seconds, args.metrics_url, auth_token=secret,
                                        webhook_url=args.webhook_url, carrier=args.carrier)
        except (ValueError, OSError) as exc:  # the webhook refused or is unreachable
            print(f"error: {exc}", file=sys.stderr)
            return 2
        clean = None
    else:
        caller, bridge, clean = run_local(args.seconds)
    rows = judge(caller, bridge, args.seconds, bounds, clean)
    if args.json:
        print(json.dumps({"passed": passed(rows), "rows": [asdict(r) for r in rows]}, default=str))
    else:
        print(format_table(rows))
    return 0 if passed(rows) else 1
