"""Speech for the offline stack: espeak-ng when the machine has it, bundled prompts otherwise.

Only the simulators use this (the local Realtime server's voice and the simulated
caller's speech); the bridge itself never synthesizes anything.
"""
from __future__ import annotations

import array
import io
import shutil
import subprocess
import wave

from ..audio.mulaw import encode
from .. import prompts

CALLER_PHRASES: dict[str, str] = {
    "caller_hello": "Hello, what are your opening hours?",
    "caller_question": "What can you tell me?",
    "caller_stop": "Stop please.",
    "caller_goodbye": "Thank you, goodbye.",
    "caller_order": "I would like to check my order.",
    "caller_person": "Can I talk to a person, please?",
}
"""The simulated caller's bundled phrases (``prompts/<name>.ulaw``): it always speaks these
from the bundled audio, and the local Realtime server recognises them in what it is sent."""


def espeak_available() -> bool:
    """True when an ``espeak-ng`` binary is on PATH."""
    return shutil.which("espeak-ng") is not None


def _resample(samples: "array.array[int]", rate_in: int, rate_out: int = 8000) -> list[int]:
    """Linear-interpolation resample; plenty for speech going to an 8 kHz phone line."""
    if rate_in == rate_out or not samples:
        return list(samples)
    n_out = len(samples) * rate_out // rate_in
    step = rate_in / rate_out
    out = []
    last = len(samples) - 1
    for i in range(n_out):
        pos = i * step
        j = int(pos)
        frac = pos - j
        a = samples[j]
        b = samples[j + 1] if j < last else a
        out.append(int(a + (b - a) * frac))
    return out


def wav_to_ulaw(data: bytes) -> bytes:
    """Convert a mono/stereo 16-bit WAV (any rate) to 8 kHz mu-law bytes."""
    with wave.open(io.BytesIO(data)) as w:
        if w.getsampwidth() != 2:
            raise ValueError("only 16-bit PCM WAV is supported")
        channels, rate = w.getnchannels(), w.getframerate()
        pcm = array.array("h", w.readframes(w.getnframes()))
    if channels > 1:
        pcm = array.array("h", pcm[::channels])
    return encode(_resample(pcm, rate))


def speak(text: str, voice: str = "en-us", words_per_minute: int = 165, timeout: float = 20.0) -> "bytes | None":
    """Synthesize ``text`` to 8 kHz mu-law with espeak-ng; None when espeak-ng is missing or fails."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [exe, "-v", voice, "-s", str(words_per_minute), "--stdout", text],
            capture_output=True, timeout=timeout, check=True,
        )
        return wav_to_ulaw(proc.stdout)
    except (OSError, subprocess.SubprocessError, ValueError, EOFError):
        return None


load_prompt = prompts.load


def prompt_or_speak(name: str, text: str) -> bytes:
    """Live espeak-ng speech when available, else the bundled prompt of the same words."""
    audio = speak(text)
    return audio if audio else load_prompt(name)
