"""Barge-in from outside: real calls through the example app with a speakerphone caller.

The "done when" check of issue 21, end to end and in real time: the simulated Twilio caller
(its own speech from the corpus, the echo of what it heard through a saturating loudspeaker,
a room and the phone band) calls the example app (a real server, a ``MediaSession``), which
talks to the local Realtime server whose VAD is Silero (it hears the agent's echo, as OpenAI's
does). Three kinds of call, ``--n`` of each per echo level:

* ``listen``: the caller asks ("What can you tell me?") and listens to the whole answer; a
  barge-in during the answer (the model told to cancel or truncate it) is the agent
  interrupting itself;
* ``backchannel``: 1.2 s into the answer the caller says "mm-hm", "yeah"...: the answer should
  go on (no ``response.cancel``, no truncate);
* ``tv``: the caller asks and listens, and 1.2 s into the answer a TV in their room is switched
  on (``BED_DBFS``, for the rest of the call): the answer should go on, as for ``listen``;
* ``interrupt``: 1.2 s into the answer the caller says "wait", "stop", "hold on"...: a barge-in
  is wanted, its clear within 1 s of the onset (``caught``); ``caught late`` is one after that
  with the agent silent for the caller meanwhile (it heard at most ``EAR_MS`` of the agent after
  its onset: the duck, then the pause while the short command's words came), ``continued
  over`` one cut and then continued (the bridge's false-trigger recovery asked the model to go
  on), ``missed`` anything else.

A bridge may also clear at its duck (``duck_clear``: the caller stops hearing the agent at
once, and the answer resumes if the duck is released), so a clear on the wire is no barge-in by
itself: the model's side says whether the answer was cut, and the barge-in's clear is the last
one the caller received after its onset before the agent spoke again (``clears`` counts them
all, in the whole call).

Usage: python benchmarks/bargein_app.py [--n 2] [--echo-db -20 --echo-db -15] [--kind KIND] [--set NAME=JSON] [--json]
(about 12 s of wall time per call).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks._common import setting  # noqa: E402
from voicebridge.dev.appcall import simulated_call
from voicebridge.serving.app import Settings  # noqa: E402
from voicebridge.dev.local.server import LocalRealtimeServer  # noqa: E402
from voicebridge.dev.sim.acoustics import Acoustics  # noqa: E402
from voicebridge.dev.sim.room import LoopedBed, LoudspeakerEcho  # noqa: E402
from voicebridge.audio import mulaw  # noqa: E402

ASK = "say:What can you tell me?,wait_agent:8000"
SCRIPTS = {
    "listen": ASK + ",wait_quiet:1200:20000,hangup",
    "backchannel": ASK + ",interrupt:1200:#backchannel:{k},wait_quiet:1200:20000,hangup",
    "interrupt": ASK + ",interrupt:1200:#interruption:{k},wait_quiet:1200:8000,hangup",
    "tv": ASK + ",wait_quiet:1200:20000,hangup",
}
BED_DBFS = -35.0
"""The TV's level at the caller's microphone (``beds_held.py``'s louder one)."""


class SwitchedOn:
    """A room's TV, switched on once the caller has heard ``after_frames`` of the agent's audio
    (an acoustics noise bed: ``frame(n)`` samples; ``RoomAcoustics`` tells it what was heard)."""

    def __init__(self, kind: str, dbfs: float, seed: int, after_frames: int = 60) -> None:
        self._bed = LoopedBed(kind, seed)
        self._gain = mulaw.FULL_SCALE * 10 ** (dbfs / 20)
        self._after, self._heard = after_frames, 0

    def hear(self, heard: bytes) -> None:
        if heard and mulaw.dbfs(heard) > -45.0:
            self._heard += 1

    def frame(self, n: int) -> list[int]:
        if self._heard < self._after:
            return [0] * n
        limit = mulaw.FULL_SCALE - 1
        return [max(-limit, min(limit, round(v * self._gain))) for v in self._bed.block(n)]


class RoomAcoustics(Acoustics):
    """``Acoustics`` whose noise bed hears what the caller heard (a TV switched on mid-answer)."""

    def frame(self, caller: bytes, heard: bytes) -> bytes:
        self.noise.hear(heard)
        return super().frame(caller, heard)


EAR_MS = 300.0
"""Agent audio heard after the onset that still counts as "stopped for the caller": the
first loud frame's trip to the bridge, the duck and the lead already at the phone (p90 ~200 ms)."""


def one_call(kind: str, k: int, echo_db: float, vad: str, options: "dict | None" = None) -> dict:
    echo = LoudspeakerEcho(echo_db, delay_ms=(60, 120, 200)[k % 3], seed=k)
    room = RoomAcoustics(echo, SwitchedOn("tv", BED_DBFS, k)) if kind == "tv" else Acoustics(echo)
    settings = Settings(greeting=None, session_options=options or {})
    with LocalRealtimeServer(mode="voice", speed=4.0, live_tts=False, vad=vad) as local:
        report, bridge = simulated_call(local.url, SCRIPTS[kind].format(k=k), settings,
                                        max_seconds=40, acoustics=room)
        stats = local.stats()
    bridge = bridge or {}
    onset_clear = [i.clears_after_ms[-1] for i in report.interruptions if i.clears_after_ms]
    heard_after = [i.heard_after_ms for i in report.interruptions]
    return {
        "kind": kind, "echo_db": echo_db, "clip": k,
        "clears": report.clears, "barge_ins": bridge.get("barge_in_events", 0), "ducks": bridge.get("ducks", 0),
        "continued": bridge.get("false_barge_ins", 0), "words_answered": bridge.get("false_trigger_answered", 0),
        "cancels_client": stats["client_events"].get("response.cancel", 0),
        "truncates": len(stats["truncations"]),
        "speech_started": stats["server_events"].get("input_audio_buffer.speech_started", 0),
        "clear_ms": onset_clear[0] if onset_clear else None,
        "heard_after_ms": heard_after[0] if heard_after else None,
        "agent_said": [e["text"] for e in bridge.get("transcript", []) if e["role"] == "agent"],
        "problems": report.problems(),
    }


def verdict(call: dict) -> str:
    cut = call["truncates"] > 0 or call["cancels_client"] > 0
    if call["kind"] == "interrupt":
        if call["continued"]:
            return "continued over"  # cut, then the model asked to go on over the caller
        if cut and call["clear_ms"] is not None and call["clear_ms"] <= 1000:
            return "caught"
        silent = call["heard_after_ms"] is not None and call["heard_after_ms"] <= EAR_MS
        return "caught late" if cut and call["clear_ms"] is not None and silent else "missed"
    return "cut" if cut else "whole"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2, help="calls of each kind per echo level")
    ap.add_argument("--echo-db", type=float, action="append", help="echo levels (default -20 and -15)")
    ap.add_argument("--vad", default="silero", choices=("silero", "energy", "auto"))
    ap.add_argument("--kind", action="append", choices=tuple(SCRIPTS), help="only these kinds of call (repeatable)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--set", action="append", type=setting, default=[], metavar="NAME=JSON",
                    help="a BridgeConfig setting for the app's calls (e.g. barge_in_min_speech_ms=150); repeatable")
    args = ap.parse_args()
    options = dict(args.set)
    logging.disable(logging.WARNING)
    calls = []
    for echo_db in args.echo_db or [-20.0, -15.0]:
        for kind in args.kind or SCRIPTS:
            for k in range(args.n):
                calls.append(one_call(kind, k, echo_db, args.vad, options))
                calls[-1]["verdict"] = verdict(calls[-1])
    summary = Counter(f"{c['kind']} {c['echo_db']:g} dB: {c['verdict']}" for c in calls)
    if args.json:
        print(json.dumps({"summary": dict(summary), "calls": calls}))
        return 0
    for key, n in sorted(summary.items()):
        print(f"{key}: {n}")
    for c in calls:
        print(f"  {c['kind']:11s} {c['echo_db']:g} dB clip {c['clip']}: {c['verdict']}, clears {c['clears']}, "
              f"server speech_started {c['speech_started']}, cancels {c['cancels_client']}, truncates {c['truncates']}, "
              f"clear {c['clear_ms']} ms, agent heard after the onset {c['heard_after_ms']} ms, ducks {c['ducks']}, "
              f"continued {c['continued']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
