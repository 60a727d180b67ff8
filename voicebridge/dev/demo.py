"""``voicebridge demo``: a whole phone call on this machine, with no account and no key.

Starts the example app (``voicebridge.serving.app``) with the embedded local Realtime server on free
ports, places a simulated Twilio call that hears the greeting, asks a question, interrupts
the agent's long answer, makes a click (a false trigger), asks about an order and types its
number on the keypad (the agent calls the example's ``order_status`` tool and reads the answer),
and says goodbye: the agent says goodbye too and hangs up once that has been heard. Prints a
line per event as it happens, then the call summary from both ends, and writes ``call.wav``
(left: caller, right: what the caller heard) and ``call.png`` (a timeline).

Then an outbound call: the bridge places it with ``VoiceBridge.call`` through the ``twilio``
library, pointed at a local stand-in for Twilio's Calls API (:mod:`voicebridge.dev.sim.callsapi`),
which "dials" a voicemail box: its greeting, a beep, the AMD verdict ``machine_end_beep``; the
agent leaves its message after the beep and hangs up once it has been heard.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..extras import install_hint
from ..serving.app import Settings, create_app, serve
from ..carrier.twilio.dialing import rest_client
from .sim import SimulatedCaller
from .sim.caller import _QUIET_EVENTS, verdict_lines
from .sim.report import CallReport

DEMO_SCRIPT = (
    "wait_agent:10000,wait_quiet:800,say:What can you tell me?,wait_agent:8000,"
    "interrupt:1500:Stop please,wait_agent:6000,silence:700,click:60,wait_quiet:1200,"
    "say:I would like to check my order.,wait_agent:8000,wait_quiet:800,dtmf:1234#,"
    "wait_agent:8000,wait_quiet:1500,say:Thank you, goodbye.,wait_hangup:15000"
)
"""Greeting, a question, a barge-in on the long answer, a click while the agent talks (a duck that
must not become a barge-in), an order looked up with the keypad and a tool, a goodbye that the
agent answers by hanging up."""

# Bridge log lines worth showing live, by the start of their message.
_BRIDGE_EVENTS = {
    "duck:": "duck",
    "duck released": "duck released",
    "barge-in (": "barge-in",
    "twilio clear sent": "clear",
    "response.cancel sent": "cancel",
    "truncate ": "truncate",
    "false barge-in": "false trigger",
    "response resp": "response",
    "SAFETY_FUSE": "SAFETY_FUSE",
    "keypad:": "keypad",
    "tool ": "tool",
    "agent ended the call": "hang-up",
    "call opens:": "opening",
    "voicemail left": "voicemail",
    "closing:": "closing",
}


@dataclass
class Timeline:
    """Events from both ends on one clock: seconds since the call started."""

    t0: float | None = None
    bridge: list[tuple[float, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    outbound: "Outbound | None" = None  # the outbound voicemail call, if one was placed

    def rel(self, now: float) -> float:
        return now - self.t0 if self.t0 is not None else 0.0


class _BridgeEvents(logging.Handler):
    """Turns the bridge's own log lines into live progress lines."""

    def __init__(self, timeline: Timeline, out: TextIO) -> None:
        super().__init__(logging.INFO)
        self.timeline, self.out = timeline, out

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        body = text.split("] ", 1)[-1]
        kind = next((k for prefix, k in _BRIDGE_EVENTS.items() if body.startswith(prefix)), None)
        if kind is None or self.timeline.t0 is None:
            return
        t = self.timeline.rel(time.monotonic())
        with self.timeline.lock:
            self.timeline.bridge.append((t, kind, body))
        print(f"{t:8.3f}s  bridge  {body}", file=self.out, flush=True)


def _caller_progress(timeline: Timeline, out: TextIO, verbose: bool):
    def progress(name: str, t: float, detail: dict[str, Any]) -> None:
        if name == "call_start" and timeline.t0 is None:
            timeline.t0 = time.monotonic() - t
        if verbose or name not in _QUIET_EVENTS:
            extra = " ".join(f"{k}={v}" for k, v in detail.items())
            print(f"{t:8.3f}s  caller  {name} {extra}".rstrip(), file=out, flush=True)
    return progress


DEMO_ACCOUNT, DEMO_TOKEN = "AC" + "0" * 32, "demo-auth-token-not-a-secret-000"  # the stand-in's, offline only
DEMO_FROM, DEMO_VOICEMAIL = "+15005550006", "+15005550123"
_CALLEE_EVENTS = {"caller_speech_start": "speaks", "caller_speech_stop": "stops",
                  "agent_audio_start": "hears the agent", "agent_audio_stop": "agent audio stops", "bridge_closed": "the bridge hung up"}


@dataclass
class Outbound:
    """The outbound demo call's outcome."""

    sid: str | None = None
    answered_by: str | None = None
    message_after_verdict_ms: float | None = None  # the verdict (as the callee's line decided it) -> message heard
    spoke_early: bool = False  # agent audio over the greeting or the beep
    ended_by: str | None = None
    bridge: dict[str, Any] | None = None
    error: str | None = None

    report: CallReport | None = None  # the callee's side of the call, as the simulator heard it

    def problems(self) -> list[str]:
        """Why this is not a voicemail left as it should be, plus what the callee's report found."""
        if self.error:
            return [self.error]
        b = self.bridge
        out = [] if self.answered_by == "machine_end_beep" else [f"answered by {self.answered_by}, not a voicemail"]
        if self.spoke_early:
            out.append("agent audio over the greeting or the beep")
        if self.ended_by != "bridge":
            out.append(f"ended by the {self.ended_by}, not the bridge")
        if b is None:
            out.append("the bridge's report never came")
        else:
            if not b["accounting_ok"]:
                out.append("frame accounting mismatch")
            if b["close_reason"] != "voicemail left":
                out.append(f"closed with {b['close_reason']!r}, not 'voicemail left'")
        return out + (self.report.problems() if self.report else [])

    @property
    def worked(self) -> bool:
        return not self.problems()

    def lines(self) -> list[str]:
        if self.error:
            return ["", "== outbound call ==", f"outbound call failed: {self.error}", f"problems: {self.error}"]
        heard = f"{self.message_after_verdict_ms:.0f} ms" if self.message_after_verdict_ms is not None else "never"
        b = self.bridge or {}
        lines = ["", "== outbound call: voicemail ==",
                 f"call {self.sid}: answered by {self.answered_by}; the message was heard {heard} after the verdict; "
                 f"agent audio over the greeting: {'YES' if self.spoke_early else 'none'}",
                 f"ended by the {self.ended_by}: {b.get('close_reason')}; frames sent {b.get('frames_sent')}, "
                 f"accounting {'OK' if b.get('accounting_ok') else 'MISMATCH'}"]
        problems = self.problems()
        lines.append("problems: " + ("; ".join(problems) if problems else "none"))
        if self.report is not None:
            lines.append(verdict_lines(self.report)[1])
        return lines


def place_voicemail_call(bridge: Any, server_url: str, ended: list[dict[str, Any]], done: threading.Event,
                         out: TextIO, timeline: Timeline, max_seconds: float = 60.0) -> Outbound:
    """The outbound demo: the bridge calls a simulated voicemail through the Calls API stand-in."""
    from .sim.callsapi import CallsAPI, Callee

    t0 = timeline.t0 = time.monotonic()  # the bridge's lines on this call's clock too

    def progress(_sid: str, name: str, t: float, detail: dict[str, Any]) -> None:
        if name in _CALLEE_EVENTS:
            print(f"{time.monotonic() - t0:8.3f}s  callee  {_CALLEE_EVENTS[name]}", file=out, flush=True)

    api = CallsAPI(DEMO_ACCOUNT, DEMO_TOKEN, caller_ids=(DEMO_FROM,), callees={DEMO_VOICEMAIL: Callee.voicemail()},
                   on_event=progress).start()
    result = Outbound()
    try:
        bridge.public_url = server_url  # where the stand-in sends the webhooks (known once the port is)
        bridge.rest_client = rest_client(DEMO_ACCOUNT, DEMO_TOKEN, api.url)
        done.clear()
        result.sid = bridge.call(DEMO_VOICEMAIL, DEMO_FROM, instructions="You are calling about the caller's order.")
        print(f"{time.monotonic() - t0:8.3f}s  bridge  outbound call {result.sid} placed (AMD on)", file=out,
              flush=True)
        placed = api.wait(result.sid, max_seconds)
        done.wait(10)
        heard = placed.agent_heard_after_verdict_s()
        result.answered_by, result.spoke_early = placed.answered_by, placed.agent_heard_before_verdict()
        result.message_after_verdict_ms = heard * 1000 if heard is not None else None
        result.ended_by = placed.report.ended_by if placed.report else None
        result.report = placed.report
        result.bridge = ended[-1] if ended and done.is_set() else None
        result.error = "; ".join(placed.errors) or None
    except Exception as exc:  # noqa: BLE001 - the demo reports it and exits 1
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        api.stop()
    return result


def _summary(report: CallReport, bridge: dict[str, Any] | None) -> list[str]:
    lines = ["", "== call summary =="]
    r = report
    lines.append(f"caller: {r.duration_ms / 1000:.1f} s, {r.frames_received} frames received, sizes {r.frame_sizes}, "
                 f"time to first audio {r.time_to_first_audio_ms} ms")
    lines.append(f"caller: gaps p50 {r.gap_p50_ms} ms, p99 {r.gap_p99_ms} ms, max |dev| {r.gap_max_dev_ms} ms; "
                 f"bursts {r.bursts}, stalls {r.stalls}, pauses for the caller {r.yields}, "
                 f"most ahead of real time {r.ahead_max_ms:.0f} ms")
    for i, it in enumerate(r.interruptions, 1):
        clears = it.clears_after_ms
        cleared = (f"{clears[0]} ms (the duck's), {clears[-1]} ms (the barge-in's)" if len(clears) > 1
                   else f"{it.clear_ms} ms")
        lines.append(f"interruption {i}: speech onset -> clear {cleared}, agent audio heard after onset "
                     f"{it.heard_after_ms} ms")
    if r.ended_by == "bridge":
        lines.append(f"the agent hung up {r.hangup_after_audio_ms} ms after the caller heard its last words")
    if bridge:
        b = bridge
        lines.append(f"bridge: {b['audio_deltas']} deltas, {b['frames_sent']} frames sent, late {b['tx_late_frames']}, "
                     f"resets {b['tx_schedule_resets']}, first frame {b['first_frame_bytes']} bytes")
        lines.append(f"bridge: barge-ins {b['barge_in_events']} (confirm latency {b['barge_in_latencies_ms']} ms), "
                     f"ducks {b['ducks']}, false triggers {b['false_barge_ins']}, clears {b['clears_sent']}, "
                     f"truncates {b['truncates_sent']}, safety fuses {b['safety_fuses']}")
        lines.append(f"bridge: tool calls {b['tool_calls']} (overhead {b['tool_overhead_ms']} ms), keypad entries "
                     f"{b['dtmf_sequences']}, tokens {b['usage'].get('total_tokens', 0)}, ended: {b['close_reason']}")
        identity = b["frames_sent"] + b["frames_flushed"] + b["frames_dropped"]
        lines.append(f"accounting: enqueued {b['frames_enqueued']} == sent {b['frames_sent']} + flushed "
                     f"{b['frames_flushed']} + dropped {b['frames_dropped']} = {identity}: "
                     f"{'OK' if b['accounting_ok'] else 'MISMATCH'}{_dropped_note(b['frames_dropped'])}")
    else:
        lines.append("bridge: no call summary received")
    lines += verdict_lines(r)
    return lines


def _dropped_note(dropped: int) -> str:
    """What ``dropped`` frames are (out1 read a hung-up call's 600 as lost audio)."""
    if not dropped:
        return ""
    return f" (dropped: {dropped * 20} ms of the agent's audio never sent: queued when the call ended, or a send failed)"


def plot_timeline(report: CallReport, timeline: Timeline, path: str) -> bool:
    """Caller level and agent audio over time, with duck, barge-in, clear and truncate marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    step = report.level_interval_ms / 1000
    fig, ax = plt.subplots(figsize=(12, 4))
    ax.plot([i * step for i in range(len(report.caller_dbfs))], report.caller_dbfs, lw=0.8, label="caller (dBFS)")
    ax.plot([i * step for i in range(len(report.agent_dbfs))], report.agent_dbfs, lw=0.8, label="agent heard (dBFS)")
    colors = {"duck": "tab:orange", "barge-in": "tab:red", "clear": "black", "truncate": "tab:purple",
              "false trigger": "tab:green"}
    seen: set[str] = set()
    for t, kind, _ in timeline.bridge:
        if kind in colors:
            ax.axvline(t, color=colors[kind], ls="--", lw=1, label=None if kind in seen else kind)
            seen.add(kind)
    ax.set_ylim(-90, 0)
    ax.set_xlabel("seconds since call start")
    ax.set_ylabel("level (dBFS)")
    ax.set_title("voicebridge demo call")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def run_demo(script: str = DEMO_SCRIPT, record: str | None = "call.wav", plot: str | None = "call.png",
             mode: str = "voice", max_seconds: float = 120.0, out: TextIO = sys.stdout,
             verbose: bool = False, outbound: bool = False) -> tuple[CallReport, dict[str, Any] | None, Timeline]:
    """Run one demo call end to end; returns the caller's report, the bridge's metrics, the timeline.
    ``outbound``: then place the outbound voicemail call (its outcome: ``timeline.outbound``)."""
    ended: list[dict[str, Any]] = []
    done = threading.Event()

    def on_end(session: Any) -> None:
        ended.append(session.metrics)
        done.set()

    reports: list[dict[str, Any]] = []  # each call's post-call report, as an app's on_report gets it

    # The bridge's own recording of every call (left: the caller, right: what the caller heard)
    recordings = os.path.join(os.path.dirname(record) or ".", "recordings") if record else tempfile.mkdtemp()
    settings = Settings(port=0, local_mode=mode, local_backend=True, session_options={"recording_dir": recordings})
    app = create_app(settings, on_end=on_end, on_report=lambda session, report: reports.append(report),
                     carrier="twilio")  # the demo's calls are Twilio's: no Telnyx routes (or key warning)
    timeline = Timeline()
    handler = _BridgeEvents(timeline, out)
    session_log = logging.getLogger("voicebridge.call.session")
    session_log.addHandler(handler)
    previous_level = session_log.level
    session_log.setLevel(logging.INFO)
    server = serve(app, "127.0.0.1", 0)
    local = app.extensions["voicebridge"].local_server
    if local is not None:
        local.wait_warm()  # synthesizing the agent's voice in this process would stall the call
    bridge_metrics: dict[str, Any] | None = None
    try:
        print(f"example app on {server.url} (webhook /voice, media {server.ws_url}), embedded local Realtime "
              f"server ({mode} mode); placing a simulated call", file=out, flush=True)
        caller = SimulatedCaller(server.ws_url, script, record_path=record, max_seconds=max_seconds,
                                 on_event=_caller_progress(timeline, out, verbose))
        report = caller.run()
        done.wait(10)
        bridge_metrics = ended[0] if ended else None
        if outbound:
            print("", file=out)
            handler.timeline = Timeline()  # the outbound call's own clock; the inbound timeline stays for the plot
            timeline.outbound = place_voicemail_call(app.extensions["voicebridge"], server.url, ended, done, out,
                                                     handler.timeline)
    finally:
        server.shutdown()
        session_log.removeHandler(handler)
        session_log.setLevel(previous_level)
    bridge = bridge_metrics
    for line in _summary(report, bridge):
        print(line, file=out)
    if timeline.outbound is not None:
        for line in timeline.outbound.lines():
            print(line, file=out)
    deadline = time.monotonic() + 5.0  # reports are handed over off the call's threads
    while len(reports) < (2 if timeline.outbound is not None else 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    if reports:
        print("", file=out)
    outbound_sid = timeline.outbound.sid if timeline.outbound is not None else None
    for one in reports:  # by the call each is about: they are handed over in whichever order they end
        which = "outbound" if outbound_sid and one.get("call", {}).get("call_sid") == outbound_sid else "inbound"
        path = os.path.abspath(f"report-{which}.json")
        with open(path, "w") as f:
            json.dump(one, f, indent=1, default=str)
        print(f"post-call report ({which} call): {path} (end: {one.get('end_reason')}, "
              f"{one.get('duration_s')} s, {len(one.get('transcript') or [])} transcript entries)", file=out)
    if record:
        print(f"recording: {record} (left: caller, right: what the caller heard)", file=out)
    if plot:
        print(f"timeline: {plot}" if plot_timeline(report, timeline, plot) else
              f"timeline: not drawn (matplotlib is missing: {install_hint('matplotlib')})", file=out)
    return report, bridge, timeline


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="voicebridge demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--script", default=DEMO_SCRIPT, help="caller script (see voicebridge call --help)")
    ap.add_argument("--record", default="call.wav", help="stereo WAV to write ('' for none)")
    ap.add_argument("--plot", default="call.png", help="timeline PNG to write ('' for none)")
    ap.add_argument("--mode", choices=("voice", "tone"), default="voice", help="local server's voice")
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--no-outbound", action="store_true", help="skip the outbound voicemail call")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)  # progress lines come from _BridgeEvents, not the root handler
    report, bridge, timeline = run_demo(args.script, args.record or None, args.plot or None, args.mode,
                                        args.max_seconds, verbose=args.verbose, outbound=not args.no_outbound)
    outbound_ok = timeline.outbound is None or timeline.outbound.worked
    return 0 if call_worked(report, bridge) and outbound_ok else 1


def call_worked(report: CallReport, bridge: dict[str, Any] | None) -> bool:
    """The demo's verdict: the call behaved (every frame accounted for, no problem at the
    caller). Timing is printed as figures: on a loaded machine it varies, the call does not."""
    return bridge is not None and bool(bridge["accounting_ok"]) and not report.problems()
