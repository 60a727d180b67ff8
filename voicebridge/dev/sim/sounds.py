"""The caller's audio: speech for ``say``/``interrupt`` steps, the ``click`` noise burst and the
``cough`` (from :mod:`voicebridge.dev.sim.acoustics`).

Audio is resolved once, before dialing, because espeak-ng takes tens of milliseconds per
phrase and the 20 ms send schedule must never wait on it. The demo phrases always come from the
bundled ``caller_*`` prompts; other text is spoken by espeak-ng where it is installed, else by a
deterministic speech-like buzz of similar length so the bridge's VAD still sees "speech".
"""
from __future__ import annotations

import logging
import math
import random
import re
from pathlib import Path

from .. import tts
from ...audio.mulaw import FRAME_BYTES, SAMPLE_RATE, encode
from . import acoustics
from .script import Click, Cough, Interrupt, Say, Sound, Step

log = logging.getLogger(__name__)

BUNDLED_PROMPTS = tts.CALLER_PHRASES
"""Bundled caller prompts (``voicebridge/prompts/<name>.ulaw``) and the words they say: always
spoken from the bundled audio, so every machine sends the same bytes (the local server
recognises them)."""

_MS_PER_CHAR = 65
_CLICK_AMPLITUDE = 24000


def _normalize(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).strip()


def prompt_for_text(text: str) -> "str | None":
    """Name of the bundled prompt saying ``text`` (ignoring case/punctuation), if any."""
    wanted = _normalize(text)
    for name, words in BUNDLED_PROMPTS.items():
        if _normalize(words) == wanted:
            return name
    return None


def babble(ms: int) -> bytes:
    """Deterministic speech-like sound: a 140 Hz buzz with ~4 Hz syllable envelope."""
    n = ms * SAMPLE_RATE // 1000
    samples = []
    for i in range(n):
        t = i / SAMPLE_RATE
        envelope = 0.55 + 0.45 * math.sin(2 * math.pi * 4.0 * t)
        buzz = math.sin(2 * math.pi * 140 * t) + 0.5 * math.sin(2 * math.pi * 280 * t) + 0.3 * math.sin(2 * math.pi * 700 * t)
        samples.append(int(6000 * envelope * buzz))
    return encode(samples)


def click_noise(ms: int) -> bytes:
    """A loud white-noise burst, seeded so runs are reproducible."""
    rng = random.Random(ms)
    n = max(1, ms * SAMPLE_RATE // 1000)
    return encode([rng.randint(-_CLICK_AMPLITUDE, _CLICK_AMPLITUDE) for _ in range(n)])


def speech_audio(step: "Say | Interrupt") -> bytes:
    """Mu-law audio for a speaking step (raw audio > wav > corpus clip > prompt > text)."""
    if step.audio is not None:
        return bytes(step.audio)
    if step.wav:
        return tts.wav_to_ulaw(Path(step.wav).read_bytes())
    if step.clip:
        from . import corpus
        return corpus.resolve(step.clip).audio()
    if step.prompt:
        return tts.prompt_or_speak(step.prompt, step.text) if step.text else tts.load_prompt(step.prompt)
    text = step.text or ""
    bundled = prompt_for_text(text)
    if bundled:
        return tts.load_prompt(bundled)
    audio = tts.speak(text)
    if audio:
        return audio
    log.warning("espeak-ng unavailable: using a speech-like buzz for %r", text)
    return babble(min(6000, max(400, _MS_PER_CHAR * len(text))))


def resolve(steps: "list[Step]") -> "list[bytes | None]":
    """Audio for every step (None for steps that send silence), padded to whole frames."""
    out: "list[bytes | None]" = []
    for step in steps:
        if isinstance(step, (Say, Interrupt)):
            out.append(_pad(speech_audio(step)))
        elif isinstance(step, Click):
            out.append(_pad(click_noise(step.ms)))
        elif isinstance(step, Cough):
            out.append(_pad(acoustics.cough(step.ms)))
        elif isinstance(step, Sound):
            from . import room  # numpy: only for scripts that ask for these sounds
            out.append(_pad(room.event(step.kind, step.seed)))
        else:
            out.append(None)
    return out


def _pad(audio: bytes) -> bytes:
    """Pad to a multiple of 160 bytes with silence, so every sent frame is full."""
    rest = len(audio) % FRAME_BYTES
    return audio + b"\xff" * (FRAME_BYTES - rest) if rest else audio
