"""What the mark interval buys: how well the bridge knows what the caller heard, per interval.

A barge-in's truncate says how much of the answer the caller heard (``audio_end_ms``): the
``PlaybackTracker``'s estimate at the decision, which runs on the send clock from an item's first
frame and is re-anchored by every echoed mark. What the caller heard is what Twilio had played
when the clear reached it, one network hop later. This replays one 3 s answer through the
tracker with the TX loop's timing (a mark every ``N`` frames and after the last, frames paced 20 ms
apart after a lead of two) and a Twilio that plays each frame from its arrival or the end of the
one before, echoing a mark when the audio before it has played; a barge-in is tried every 10 ms
of the answer and the estimate compared with what had played when its clear arrived.

Cases: a steady network (one-way ``--delay-ms``), and one that holds the frames from 1.0 s into
the answer for ``--stall-ms`` (a congested hop: Twilio's playout runs dry, then catches up).

``--old COMMIT`` runs the ``PlaybackTracker`` of that commit too (its ``audio/playback.py`` from
``git show``), one line each, old first.

Usage: python benchmarks/mark_interval.py [--every 5,10,25] [--delay-ms 50] [--stall-ms 200] [--old COMMIT]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voicebridge.audio.playback import PlaybackTracker  # noqa: E402

FRAME_S = 0.020
FRAME_BYTES = 160
LEAD_FRAMES = 2
ITEM = "item"


def twilio_playout(frames: int, delay_s: float, stall_at_s: float, stall_s: float) -> list[tuple[float, float]]:
    """(start, end) of each frame's playout at Twilio, on the bridge's clock."""
    out: list[tuple[float, float]] = []
    end = float("-inf")
    for k in range(frames):
        sent = max(0, k - LEAD_FRAMES) * FRAME_S
        arrives = sent + delay_s + (stall_s if stall_s and sent >= stall_at_s else 0.0)
        if stall_s and sent < stall_at_s <= sent + delay_s:  # held on the way too
            arrives = max(arrives, stall_at_s + stall_s)
        start = max(arrives, end)
        end = start + FRAME_S
        out.append((start, end))
    return out


def heard_at(playout: list[tuple[float, float]], t: float) -> float:
    """ms of the answer Twilio had played by ``t``."""
    return sum(max(0.0, min(end, t) - start) for start, end in playout) * 1000


def tracker_of(commit: str) -> type:
    """``PlaybackTracker`` as committed at ``commit`` (imported as a module of its own)."""
    source = subprocess.run(["git", "show", f"{commit}:voicebridge/audio/playback.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType(f"playback_{commit}")
    module.__package__ = "voicebridge.audio"  # its relative imports resolve to today's (mulaw's constants)
    sys.modules[module.__name__] = module  # (its dataclasses look their module up)
    exec(compile(source, f"{commit}:playback.py", "exec"), module.__dict__)
    return module.PlaybackTracker


def errors(every: int, delay_s: float, stall_s: float, seconds: float = 3.0,
           tracker_cls: type = PlaybackTracker) -> list[tuple[float, float]]:
    """(barge-in time into the answer, estimate - truth in ms) for a barge-in every 10 ms."""
    frames = int(seconds / FRAME_S)
    playout = twilio_playout(frames, delay_s, 1.0, stall_s)
    events: list[tuple[float, int, str, int]] = []  # (time, order, kind, frame)
    for k in range(frames):
        events.append((max(0, k - LEAD_FRAMES) * FRAME_S, 0, "sent", k))
        if (k + 1) % every == 0 or k == frames - 1:
            events.append((playout[k][1] + delay_s, 1, "echo", k))  # played, then its echo's hop back
    events.sort()
    out = []
    for step in range(int(seconds * 100)):
        t = step / 100
        tracker = tracker_cls()
        names: dict[int, str] = {}
        for when, _, kind, k in events:
            if when > t:
                break
            if kind == "sent":
                tracker.sent(ITEM, FRAME_BYTES, when)
                if (k + 1) % every == 0 or k == frames - 1:
                    names[k] = tracker.new_mark(ITEM)
            else:
                tracker.echoed(names[k], when)
        estimate = tracker.heard_bytes(ITEM, t) / 8
        out.append((t, estimate - heard_at(playout, t + delay_s)))
    return out


def summary(errs: list[tuple[float, float]]) -> str:
    size = sorted(abs(e) for _, e in errs)
    first = [e for t, e in errs if t < 0.6]
    return (f"|err| p50 {statistics.median(size):5.1f}  p90 {size[int(0.9 * len(size))]:5.1f}  max {size[-1]:5.1f} ms; "
            f"first 0.6 s mean {statistics.fmean(first):+6.1f}, after {statistics.fmean(e for t, e in errs if t >= 0.6):+6.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--every", default="5,10,25", help="mark intervals in frames (comma-separated)")
    ap.add_argument("--delay-ms", type=float, default=50.0, help="one-way network delay to Twilio and back")
    ap.add_argument("--stall-ms", type=float, default=200.0, help="a hold of the frames 1.0 s into the answer")
    ap.add_argument("--old", metavar="COMMIT", help="also run the PlaybackTracker of this commit (first)")
    args = ap.parse_args()
    delay = args.delay_ms / 1000
    trackers = ([(args.old, tracker_of(args.old))] if args.old else []) + [("now", PlaybackTracker)]
    print(f"one 3 s answer, one-way delay {args.delay_ms:g} ms; estimate - heard at the clear, a barge-in every 10 ms")
    for every in (int(x) for x in args.every.split(",")):
        for name, cls in trackers:
            tag = f"{name:>8}: " if args.old else ""
            steady = summary(errors(every, delay, 0.0, tracker_cls=cls))
            print(f"{tag}mark every {every:2d} frames, steady:     {steady}")
            print(f"{tag}mark every {every:2d} frames, {args.stall_ms:g} ms stall: "
                  f"{summary(errors(every, delay, args.stall_ms / 1000, tracker_cls=cls))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
