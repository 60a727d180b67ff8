"""Outbound calls with answering-machine detection: how fast the call opens after the verdict.

Each run is one outbound call placed by ``VoiceBridge.call`` through the ``twilio`` client, to the
local Calls API stand-in (voicebridge.dev.sim.callsapi), which dials a simulated callee -- a person
("hello?", a pause: AMD says ``human``) or a voicemail (a greeting, a 1 kHz beep: AMD says
``machine_end_beep``) -- and sends the signed webhooks; the bridge is the example app on a real
server, its model the embedded local Realtime server (tone mode). Runs alternate person/voicemail.

Figures: for a person, the AMD verdict (when the callee's line decided it) to the first agent audio
the callee hears, and the bridge's own share (the session taking the verdict to its first frame
sent); for a voicemail, the verdict to the message's first audio heard (target <= 300 ms), whether
it was heard in full (every tone block, none cut) and the hang-up after it.
Usage: python benchmarks/outbound.py [--n 10] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from voicebridge.carrier.twilio import dialing  # noqa: E402
from voicebridge.serving.app import Settings, create_app, serve  # noqa: E402
from voicebridge.dev.local.server import LocalRealtimeServer  # noqa: E402
from voicebridge.dev.sim.callsapi import CallsAPI, Callee  # noqa: E402

TOKEN, ACCOUNT = "b" * 32, "AC" + "7" * 32
CALLER_ID, PERSON, VOICEMAIL = "+15005550006", "+15550001111", "+15550002222"


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def run(n: int) -> dict:
    ended: list[dict] = []
    done = threading.Event()

    def on_end(session) -> None:
        ended.append(session.metrics)
        done.set()

    rows: dict[str, list[dict]] = {"person": [], "voicemail": []}
    with LocalRealtimeServer(mode="tone", speed=8.0, tone_seconds=1.2) as local:
        server = serve(create_app(Settings(port=0, openai_realtime_url=local.url, twilio_auth_token=TOKEN),
                                  on_end=on_end), "127.0.0.1", 0)
        bridge = server.app.extensions["voicebridge"]
        api = CallsAPI(ACCOUNT, TOKEN, caller_ids=(CALLER_ID,),
                       callees={PERSON: Callee.person(), VOICEMAIL: Callee.voicemail("question_02_0")}).start()
        bridge.public_url, bridge.rest_client = server.url, dialing.rest_client(ACCOUNT, TOKEN, api.url)
        try:
            for i in range(2 * n):
                kind, to = ("person", PERSON) if i % 2 == 0 else ("voicemail", VOICEMAIL)
                done.clear()
                placed = api.wait(bridge.call(to, CALLER_ID), 60)
                done.wait(10)
                metrics = ended[-1] if done.is_set() else {}
                report = placed.report
                heard = placed.agent_heard_after_verdict_s()
                rows[kind].append({
                    "answered_by": placed.answered_by,
                    "heard_after_verdict_ms": heard * 1000 if heard is not None else None,
                    "bridge_opening_to_first_frame_ms": metrics.get("opening_to_first_audio_ms"),
                    "spoke_early": placed.agent_heard_before_verdict(),
                    "heard_in_full": bool(report and report.tone and report.tone["ok"] and not report.tone["partial"]),
                    "ended_by": report.ended_by if report else None,
                    "hangup_after_audio_ms": report.hangup_after_audio_ms if report else None,
                    "close_reason": metrics.get("close_reason"), "accounting_ok": metrics.get("accounting_ok")})
        finally:
            api.stop()
            server.shutdown()
    return summarize(rows)


def summarize(rows: dict[str, list[dict]]) -> dict:
    out: dict = {}
    for kind, runs in rows.items():
        heard = [r["heard_after_verdict_ms"] for r in runs if r["heard_after_verdict_ms"] is not None]
        share = [r["bridge_opening_to_first_frame_ms"] for r in runs
                 if r["bridge_opening_to_first_frame_ms"] is not None]
        out[kind] = {"calls": len(runs), "verdict_to_heard_ms_p50": pct(heard, 0.5),
                     "verdict_to_heard_ms_p99": pct(heard, 0.99), "verdict_to_heard_ms_max": pct(heard, 1.0),
                     "bridge_share_ms_p50": pct(share, 0.5), "bridge_share_ms_p99": pct(share, 0.99),
                     "spoke_early": sum(r["spoke_early"] for r in runs),
                     "accounting_ok": sum(bool(r["accounting_ok"]) for r in runs)}
        if kind == "voicemail":
            hang = [r["hangup_after_audio_ms"] for r in runs if r["hangup_after_audio_ms"] is not None]
            out[kind].update(heard_in_full=sum(r["heard_in_full"] for r in runs),
                             hung_up_by_bridge=sum(r["ended_by"] == "bridge" and r["close_reason"] == "voicemail left"
                                                   for r in runs),
                             hangup_after_message_ms_p50=pct(hang, 0.5),
                             within_300_ms=sum(h <= 300 for h in heard))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10, help="calls of each kind")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = run(args.n)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for kind, figures in result.items():
            print(kind + ": " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
