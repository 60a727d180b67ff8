"""Regenerate the simulated caller's speech corpus (``voicebridge/dev/sim/corpus``) with espeak-ng.

Generation only: it needs the ``espeak-ng`` binary and numpy; CI, the tests and the benchmarks
use the committed files (``<name>.ulaw`` and ``manifest.json``). Run it after changing a text,
a voice or the processing below, and commit what it writes::

    python -m voicebridge.dev.sim.corpus.make_corpus [--out DIR]

It lives beside the files it writes, like ``voicebridge.dev.local.make_prompts`` for the agent's
prompts, so the corpus and its recipe move together. Every clip is espeak-ng speech in one of
several accents, voice variants, rates and pitches (or a whisper), put through a phone band
(300-3400 Hz), levelled, and stored as raw 8 kHz G.711 mu-law (what Twilio sends). Unvoiced
onsets ("s... stop") get a seeded fricative or breathy noise lead-in before the word, because
espeak-ng spells a lone "s" as a letter. The choice of voice for each clip is a fixed rotation,
so the manifest is the same on every run of the same espeak-ng version.
"""
from __future__ import annotations

import argparse
import io
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import wave

import numpy as np

from ....audio.mulaw import encode

OUT = pathlib.Path(__file__).resolve().parent
RATE = 8000
BAND = (300.0, 3400.0)

VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbcwmd")
VARIANTS = ("", "+m3", "+f2", "+f4", "+m1", "+f3", "+m7", "+f1")
RATES = (135, 150, 165, 180, 200)
PITCHES = (30, 40, 50, 60, 72)

# category -> (label, texts, clips per text, level dBFS of the active speech)
INTERRUPTIONS = ("wait", "stop", "hold on", "no no", "wait, hold on", "stop, stop",
                 "No, that's not what I asked.", "Sorry, can I change my order?",
                 "Excuse me, I have a question.", "Hang on a second, please.")
BACKCHANNELS = ("[[m'h@m]]", "[[@'h@]]", "yeah", "okay", "right", "I see", "sure")
BACKCHANNEL_WORDS = {"[[m'h@m]]": "mm-hm", "[[@'h@]]": "uh-huh"}
QUESTIONS = ("What are your opening hours?", "How much does the delivery cost?", "Can you repeat that?",
             "Where is my order right now?")
TALK = ("I was in town yesterday and the shop on the corner was closed all afternoon.",
        "My sister says the train was late again, so we went to the market instead.",
        "Have you seen the weather for the weekend? It looks like rain on Sunday.",
        "We should ask them about the tickets before the office closes at five.")
UNVOICED = (("s", "stop"), ("f", "forget it"), ("h", "hold on"), ("sh", "shush, wait"), ("h", "hang on"),
            ("s", "sorry, stop"))
CATEGORIES: dict[str, tuple[str, tuple, int, float]] = {
    "interruption": ("interrupt", INTERRUPTIONS, 4, -20.0),
    "whisper": ("interrupt", INTERRUPTIONS[:6], 3, -30.0),
    "soft": ("interrupt", INTERRUPTIONS[:6], 3, -34.0),
    "unvoiced": ("interrupt", UNVOICED, 3, -22.0),
    "backchannel": ("backchannel", BACKCHANNELS, 4, -22.0),
    "question": ("interrupt", QUESTIONS, 3, -20.0),
    "talk": ("talk", TALK, 3, -20.0),
}
"""``talk`` is material for babble and a TV in the room, not the caller's own words."""


def espeak(text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, int]:
    """espeak-ng speech as float samples in -1..1 and their sample rate."""
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "out.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", str(path), text],
                       check=True, capture_output=True, timeout=30)
        with wave.open(io.BytesIO(path.read_bytes())) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768.0
            return pcm, w.getframerate()


def phone_band(x: np.ndarray, rate: int) -> np.ndarray:
    """Band-limit to 300-3400 Hz (raised-cosine edges) and resample to 8 kHz."""
    n = len(x)
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    gain = np.clip((freqs - BAND[0] + 100) / 200, 0, 1) * np.clip((BAND[1] + 200 - freqs) / 400, 0, 1)
    y = np.fft.irfft(spec * (0.5 - 0.5 * np.cos(np.pi * gain)), n)
    if rate == RATE:
        return y
    t_out = np.arange(int(n * RATE / rate)) * (rate / RATE)
    return np.interp(t_out, np.arange(n), y)


def fricative(kind: str, ms: int, seed: int) -> np.ndarray:
    """A seeded unvoiced lead-in at 8 kHz: "s"/"sh" hiss near the top of the band, "f" flat and
    weak, "h" breath shaped by a vowel's formants."""
    rng = np.random.default_rng(seed)
    n = ms * RATE // 1000
    noise = rng.standard_normal(n)
    spec = np.fft.rfft(noise)
    f = np.fft.rfftfreq(n, 1.0 / RATE)
    shape = {"s": np.clip((f - 2200) / 800, 0, 1), "sh": np.exp(-((f - 2500) / 700) ** 2),
             "f": np.clip((f - 800) / 800, 0, 1) * 0.6,
             "h": np.exp(-((f - 700) / 250) ** 2) + 0.7 * np.exp(-((f - 1200) / 300) ** 2)
             + 0.4 * np.exp(-((f - 2500) / 400) ** 2)}[kind]
    y = np.fft.irfft(spec * shape, n)
    env = np.minimum(1.0, np.minimum(np.arange(n) / (0.3 * n), (n - np.arange(n)) / (0.15 * n)))
    return y * env


def level_to(x: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale so the active part (frames within 25 dB of the loudest) is at ``dbfs``."""
    frames = x[: len(x) - len(x) % 160].reshape(-1, 160)
    rms = np.sqrt((frames ** 2).mean(axis=1) + 1e-12)
    active = rms[rms > rms.max() * 10 ** (-25 / 20)]
    now = 20 * np.log10(np.sqrt((active ** 2).mean()) + 1e-12)
    return x * 10 ** ((dbfs - now) / 20)


def trim(x: np.ndarray, pad_ms: int = 40) -> np.ndarray:
    """Cut leading and trailing silence, keeping ``pad_ms`` either side."""
    loud = np.nonzero(np.abs(x) > np.abs(x).max() * 0.02)[0]
    if not len(loud):
        return x
    pad = pad_ms * RATE // 1000
    return x[max(0, loud[0] - pad): loud[-1] + pad]


def to_ulaw(x: np.ndarray) -> bytes:
    return encode([int(v) for v in np.clip(np.round(x * 32767), -32767, 32767)])


def clips() -> list[dict]:
    """Every clip's recipe (name, category, label, text, voice, rate, pitch, level), in a fixed order."""
    out, k = [], 0
    for category, (label, texts, per_text, dbfs) in CATEGORIES.items():
        for i, text in enumerate(texts):
            for j in range(per_text):
                k += 1
                voice = VOICES[k % len(VOICES)]
                variant = "+whisper" if category == "whisper" else VARIANTS[(k * 3 + j) % len(VARIANTS)]
                lead, words = text if category == "unvoiced" else ("", text)
                shown = f"{lead}... {words}" if lead else BACKCHANNEL_WORDS.get(words, words)
                out.append({"name": f"{category}_{i:02d}_{j}", "category": category, "label": label,
                            "text": shown, "speak": words, "lead": lead, "voice": voice + variant,
                            "rate": RATES[(k + j) % len(RATES)], "pitch": PITCHES[(k * 7 + i) % len(PITCHES)],
                            "level_dbfs": dbfs, "seed": k})
    return out


def render(recipe: dict) -> bytes:
    x, rate = espeak(recipe["speak"], recipe["voice"], recipe["rate"], recipe["pitch"])
    y = trim(phone_band(x, rate))
    if recipe["lead"]:
        rng = np.random.default_rng(recipe["seed"])
        hiss = level_to(fricative(recipe["lead"], int(rng.integers(180, 320)), recipe["seed"]),
                        recipe["level_dbfs"] - 8)
        gap = np.zeros(int(rng.integers(120, 260)) * RATE // 1000)
        y = np.concatenate([np.zeros(40 * RATE // 1000), hiss, gap, level_to(y, recipe["level_dbfs"])])
    else:
        y = level_to(y, recipe["level_dbfs"])
    return to_ulaw(y)


def make_corpus(out: pathlib.Path = OUT) -> list[dict]:
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is required to generate the corpus (apt-get install espeak-ng)")
    manifest = []
    for old in out.glob("*.ulaw"):
        old.unlink()
    for recipe in clips():
        data = render(recipe)
        (out / f"{recipe['name']}.ulaw").write_bytes(data)
        entry = {k: v for k, v in recipe.items() if k not in ("speak", "lead", "seed")}
        entry["ms"] = len(data) * 1000 // RATE
        manifest.append(entry)
    (out / "manifest.json").write_text(json.dumps({"rate": RATE, "encoding": "mulaw", "band_hz": list(BAND),
                                                   "clips": manifest}, indent=1) + "\n")
    return manifest


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    args = parser.parse_args(argv)
    try:
        manifest = make_corpus(args.out)
    except (RuntimeError, subprocess.SubprocessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    total = sum(c["ms"] for c in manifest)
    print(f"{len(manifest)} clips, {total / 1000:.1f} s, {total * 8} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
