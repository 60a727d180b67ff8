"""The local server's recognizer through a reverberant room, before (main's) and now, in one run.

What a bridge commit of a corpus backchannel or interruption is transcribed as offline, the clip
said on a speakerphone across a room (``bargein_cases.speakerphone``: RT60 0.4/0.6/0.8 s, two rooms
each, -30 dBFS) over line noise (-60 dBFS) and, in the "echo" rows, over the agent's echo
(``room.LoudspeakerEcho`` of the agent's long answer, 15 and 20 dB under the caller). A clip is
recognised if the transcript is its words, wrong if other words (a wrong *label*, a backchannel
heard as an interruption or back, is counted apart). False rates: 3 s turns of each ``room.bed``
kind at -30 dBFS (4 seeds x 8 turns), the agent's echo alone (every agent prompt, 4 rooms), and
each reverberant clip to a recognizer that knows no phrase starting with its first word ("other speech").
The time is one 15 s turn (babble: no stage stops early), old and new interleaved, median of 20.

Usage: PYTHONPATH=$PWD python benchmarks/recognizer_reverb.py [--before <commit>]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter
from typing import Callable

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks import bargein_cases as bc  # noqa: E402
from benchmarks._common import machine  # noqa: E402
from voicebridge.dev import tts  # noqa: E402
from voicebridge.dev.local import recognizer as now  # noqa: E402
from voicebridge.dev.sim import corpus, room  # noqa: E402

RT60S = (None, 0.4, 0.6, 0.8)
ROOM_SEEDS = (1, 2)
LINE_DBFS = -60.0
AGENT_PROMPTS = ("long_answer", "greeting", "ask_order", "let_me_check", "order_shipped", "apology", "handoff")


def line(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 32768 * 10 ** (LINE_DBFS / 20), n)


def agent_echo(n: int, seed: int, prompt: str = "long_answer") -> np.ndarray:
    agent = room.ulaw_to_float(tts.load_prompt(prompt))
    agent = np.resize(agent, max(n, len(agent)))
    return room.LoudspeakerEcho(-15, 120, seed=seed).process(agent)[:n]


def turn(clip: corpus.Clip, rt60_s: "float | None", seed: int, echo_db: "float | None") -> bytes:
    said = clip.audio() if rt60_s is None else bc.speakerphone(clip.audio(), rt60_s, seed)
    x = np.concatenate([np.zeros(4000), room.ulaw_to_float(said), np.zeros(6400)])
    x += line(len(x), seed)
    if echo_db is not None:
        x += room.at_level(agent_echo(len(x), seed), bc.REVERB_DBFS + echo_db)
    return room.float_to_ulaw(x)


def label(text: str) -> str:
    return next(c.label for c in corpus.clips() if c.text == text)


def hearing(recognisers: "dict[str, Callable[[bytes], str | None]]") -> None:
    for category in ("backchannel", "interruption"):
        print(f"\n{category}s ({len(corpus.by_category(category))} clips x {len(ROOM_SEEDS)} rooms)")
        _hearing(corpus.by_category(category), recognisers)


def _hearing(clips: "list[corpus.Clip]", recognisers: "dict[str, Callable[[bytes], str | None]]") -> None:
    print(f"{'sound':<22}{'rt60':>5}  " + "  ".join(f"{name + ' recognised/wrong/label':>30}" for name in recognisers))
    for echo_db in (None, -15.0, -20.0):
        for rt60_s in RT60S:
            counts = {name: Counter() for name in recognisers}
            for clip in clips:
                for seed in ROOM_SEEDS:
                    audio = turn(clip, rt60_s, seed, echo_db)
                    for name, words in recognisers.items():
                        got = words(audio)
                        counts[name]["n"] += 1
                        counts[name]["ok"] += got == clip.text
                        counts[name]["wrong"] += got is not None and got != clip.text
                        counts[name]["label"] += got is not None and label(got) != clip.label
            sound = "clips" + ("" if echo_db is None else f" + echo {echo_db:.0f} dB")
            print(f"{sound:<22}{str(rt60_s or 'dry'):>5}  " + "  ".join(
                f"{c['ok']:>3}/{c['n']} ({100 * c['ok'] / c['n']:3.0f} %) {c['wrong']:>3} {c['label']:>3}".rjust(30)
                for c in counts.values()))


def false_rates(recognisers: "dict[str, Callable[[bytes], str | None]]") -> None:
    print(f"\n{'false on':<22}{'turns':>6}  " + "  ".join(f"{name:>10}" for name in recognisers))
    for kind in room.BED_KINDS:
        turns = [room.float_to_ulaw(room.at_level(room.bed(kind, seed), bc.REVERB_DBFS)[i * 24000:(i + 1) * 24000]
                                    + line(24000, seed))
                 for seed in range(4) for i in range(8)]
        _false_row(kind, turns, recognisers)
    echoes = [room.float_to_ulaw(room.at_level(agent_echo(8000 * 6, seed, prompt), bc.REVERB_DBFS))
              for prompt in AGENT_PROMPTS for seed in range(4)]
    _false_row("agent's echo alone", echoes, recognisers)


def _false_row(name: str, turns: "list[bytes]", recognisers: "dict[str, Callable[[bytes], str | None]]") -> None:
    hits = {r: sum(words(t) is not None for t in turns) for r, words in recognisers.items()}
    print(f"{name:<22}{len(turns):>6}  " + "  ".join(f"{hits[r]:>10}" for r in recognisers))


def other_speech(modules: "dict[str, object]") -> None:
    """Each clip, through each room, to a recognizer that knows no phrase starting with its first word."""
    clips = corpus.by_category("backchannel") + corpus.by_category("interruption")
    everything = [(c.audio(), c.text) for c in corpus.clips()]
    hits = {name: Counter() for name in modules}
    for text in sorted({c.text for c in clips}):
        known = [(a, t) for a, t in everything if now.first_word(t) != now.first_word(text)]
        for name, module in modules.items():
            words = _knowing(module, known)
            for clip in (c for c in clips if c.text == text):
                for rt60_s in RT60S:
                    for seed in ROOM_SEEDS:
                        hits[name][rt60_s] += words(turn(clip, rt60_s, seed, None)) is not None
                        hits[name]["n"] += 1
    n = hits[next(iter(modules))]["n"] // len(RT60S)
    print(f"\nother speech (clip to a recognizer not knowing its words), false per rt60 of {n}:")
    for name, h in hits.items():
        print(f"  {name:<8}" + "  ".join(f"{str(rt or 'dry')}: {h[rt]}" for rt in RT60S))


def _knowing(module: object, known: "list[tuple[bytes, str]]") -> "Callable[[bytes], str | None]":
    """A recognizer of ``module`` that knows only ``known`` (main's takes no phrases: its keys swapped)."""
    if module is now:
        return now.Recognizer(known).words
    r = module.Recognizer()
    keys = [(module._key(a), t) for a, t in known]
    keys = [(k, t) for k, t in keys if k]
    r._keys, r._matrix = tuple(keys), module._unit_rows([module._linear(k) for k, _ in keys])
    return r.words


def timing(recognisers: "dict[str, Callable[[bytes], str | None]]") -> None:
    audio = room.float_to_ulaw(room.at_level(room.bed("room_babble", 0), bc.REVERB_DBFS)[:8000 * 15])
    times = {name: [] for name in recognisers}
    for _ in range(20):
        for name, words in recognisers.items():
            start = time.perf_counter()
            words(audio)
            times[name].append(time.perf_counter() - start)
    print("\none 15 s turn, median of 20 (ms): " + ", ".join(
        f"{name} {1000 * float(np.median(t)):.1f}" for name, t in times.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="main", help="the commit whose recognizer is 'old'")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", args.before], capture_output=True, text=True,
                            check=True).stdout.strip()
    old = __import__(f"{bc.load_before(commit).__name__}.dev.local.recognizer", fromlist=["Recognizer"])
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"old: {commit}, new: {head} (+ working tree); {machine()}; load {os.getloadavg()[0]:.2f}")
    start = time.perf_counter()
    new_r = now.Recognizer()
    made = time.perf_counter() - start
    recognisers = {"old": old.Recognizer().words, "new": new_r.words}
    print(f"new keys made in {made:.2f} s\n")
    hearing(recognisers)
    false_rates(recognisers)
    other_speech({"old": old, "new": now})
    timing(recognisers)
    print(f"load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
