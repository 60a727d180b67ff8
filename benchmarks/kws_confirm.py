"""Could a streaming keyword spotter confirm "wait" / "stop" sooner than the words arrive?

Issue 21 asks for clear + cancel confirmed within 250 ms of the onset (p50) while backchannels
("mm-hm", "yeah", "I see") never cut the answer. The bridge tells the two apart by length (600 ms
of speech) or by the model's transcript of a short utterance, both later than 250 ms. This
measures the obvious alternative on the bridge: PocketSphinx (the ``pocketsphinx`` wheel from
PyPI, which bundles its US English model; not a dependency of voicebridge) in keyword-spotting
mode, fed each corpus clip frame by frame as the bridge would feed a held utterance, 8 kHz
mu-law decoded and upsampled to the model's 16 kHz.

For each category: how many clips a command keyword fired on, and when (ms after the clip's
start, at the end of the 20 ms frame where the hypothesis first appeared); for backchannels a hit
is a false confirmation. CPU: the process's CPU time in the decoder per second of audio.
The clips are clean (no echo, no noise): over echo a spotter only gets worse.

Usage: pip install pocketsphinx numpy; python benchmarks/kws_confirm.py [--threshold 1e-20]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks._common import machine, percentile  # noqa: E402
from voicebridge.dev.sim import corpus, room  # noqa: E402

KEYWORDS = ("wait", "stop", "hold on", "hang on", "no no", "sorry", "excuse me")


def _upsampled(clip: corpus.Clip) -> np.ndarray:
    """The clip as 16 kHz int16 (linear interpolation: nothing above 4 kHz, as on a phone)."""
    x8 = room.ulaw_to_float(clip.audio()) * 32767.0
    t = np.arange(len(x8) * 2) / 2.0
    return np.interp(t, np.arange(len(x8)), x8).astype(np.int16)


def _first_hit(decoder, pcm: np.ndarray) -> "tuple[str, float] | None":
    decoder.start_utt()
    hit = None
    for i in range(0, len(pcm), 320):  # 20 ms at 16 kHz
        decoder.process_raw(pcm[i:i + 320].tobytes(), False, False)
        hyp = decoder.hyp()
        if hyp is not None and hyp.hypstr.strip():
            hit = (hyp.hypstr.strip(), (i + 320) / 16.0)
            break
    decoder.end_utt()
    return hit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threshold", default="1e-20", help="keyword threshold (PocketSphinx kws)")
    args = ap.parse_args()
    try:
        from pocketsphinx import Decoder
    except ImportError:
        sys.exit("needs pocketsphinx: pip install pocketsphinx")
    with tempfile.NamedTemporaryFile("w", suffix=".kws", delete=False) as f:
        f.write("".join(f"{k} /{args.threshold}/\n" for k in KEYWORDS))
    decoder = Decoder(kws=f.name, loglevel="ERROR")
    hits: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    cpu = audio_s = 0.0
    for clip in corpus.clips():
        pcm = _upsampled(clip)
        t0 = time.process_time()
        hit = _first_hit(decoder, pcm)
        cpu += time.process_time() - t0
        audio_s += len(pcm) / 16000
        counts[clip.category] += 1
        if hit is not None:
            hits[clip.category].append(hit[1])
    os.unlink(f.name)
    print(f"# {machine()}; threshold {args.threshold}; keywords: {', '.join(KEYWORDS)}")
    print("| category | clips | a keyword fired | ms after the start, p50 / p90 |")
    print("|---|---|---|---|")
    for category in sorted(counts):
        t = hits[category]
        when = f"{percentile(t, 50):.0f} / {percentile(t, 90):.0f}" if t else "-"
        print(f"| {category} | {counts[category]} | {len(t)} | {when} |")
    print(f"CPU: {cpu / audio_s * 1000:.0f} ms per second of audio ({audio_s:.0f} s of clips)")


if __name__ == "__main__":
    main()
