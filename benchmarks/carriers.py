"""The same call on each carrier: barge-in and pacing figures over Twilio and Telnyx.

Each run is one simulated call through the example app (a real server) to the embedded local
Realtime server (tone mode): the greeting, a question, the answer, an interruption 300 ms into
it, silence, hang-up -- the script of tests/test_e2e.py. Runs alternate between the carriers so a
busy machine weighs on both alike. Telnyx's calls are placed through the Ed25519-signed TeXML
webhook (a key pair made here), Twilio's straight to /media.
Per carrier: the caller's time to first audio, its media gaps (p50, p99, max |dev| from 20 ms),
stalls and bursts, and for the interruption the time from the caller's onset to the clear, to
the last media frame, and the frames after onset; the bridge's barge-ins and frame accounting.
Usage: python benchmarks/carriers.py [--n 5] [--json]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from voicebridge.dev.appcall import simulated_call
from voicebridge.serving.app import Settings  # noqa: E402
from voicebridge.dev.local.server import LocalRealtimeServer  # noqa: E402

SCRIPT = ("wait_agent:5000,wait_quiet:400,say:What can you tell me?,wait_agent:6000,interrupt:300:Stop please,"
          "wait_quiet:600,hangup")


def keys() -> tuple[str, str]:
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode(), base64.b64encode(public).decode()


def one_call(url: str, carrier: str) -> dict:
    private, public = keys()
    settings = Settings(telnyx_public_key=public)
    report, bridge = simulated_call(url, SCRIPT, settings, carrier=carrier,
                                    dial_secret=private if carrier == "telnyx" else None, max_seconds=30)
    cut = report.interruptions[0] if report.interruptions else None
    return {"first_audio_ms": report.time_to_first_audio_ms, "gap_p50_ms": report.gap_p50_ms,
            "gap_p99_ms": report.gap_p99_ms, "gap_max_dev_ms": report.gap_max_dev_ms, "stalls": report.stalls,
            "bursts": report.bursts, "clear_after_onset_ms": cut.clear_ms if cut else None,
            "last_media_after_onset_ms": cut.last_media_after_ms if cut else None,
            "frames_after_onset": cut.frames_after_onset if cut else None,
            "frame_sizes": sorted(report.frame_sizes), "barge_ins": bridge and bridge["barge_in_events"],
            "accounting_ok": bridge and bridge["accounting_ok"], "problems": report.problems()}


def summary(runs: list[dict]) -> dict:
    def med(key: str) -> "float | None":
        values = [r[key] for r in runs if r[key] is not None]
        return round(statistics.median(values), 1) if values else None
    keys_ = ("first_audio_ms", "gap_p50_ms", "gap_p99_ms", "gap_max_dev_ms", "clear_after_onset_ms",
             "last_media_after_onset_ms", "frames_after_onset")
    out = {f"median {k}": med(k) for k in keys_}
    out.update(runs=len(runs), stalls=sum(r["stalls"] for r in runs), bursts=sum(r["bursts"] for r in runs),
               barge_ins=[r["barge_ins"] for r in runs], all_accounted=all(r["accounting_ok"] for r in runs),
               frame_sizes=sorted({s for r in runs for s in r["frame_sizes"]}),
               problems=[p for r in runs for p in r["problems"]])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=5, help="calls per carrier")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    runs: dict[str, list[dict]] = {"twilio": [], "telnyx": []}
    with LocalRealtimeServer(mode="tone", speed=8.0, tone_seconds=1.2) as local:
        for _ in range(args.n):
            for carrier in runs:
                runs[carrier].append(one_call(local.url, carrier))
    result = {carrier: summary(r) for carrier, r in runs.items()}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for carrier, figures in result.items():
            print(carrier)
            for key, value in figures.items():
                print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
