"""The room around a simulated caller: background sounds, handset noises and a loudspeaker echo.

:mod:`voicebridge.dev.sim.acoustics` mixes the caller's microphone (their sound + echo + a noise
bed); this module adds the sounds a real phone line carries and that a barge-in detector must
not take for the caller, all deterministic (seeded numpy) and all at 8 kHz:

* **beds** (looping, level-calibrated, registered as :class:`~voicebridge.dev.sim.acoustics.NoiseBed`
  kinds so ``--noise music`` works in ``voicebridge call``): ``music`` (chords, a melody with
  held notes, a drum rhythm), ``room_babble`` (several corpus voices talking at once, distant:
  room reverb, no direct path), ``tv`` (one distant corpus voice over music through a small
  speaker), ``car`` (low-passed brown noise and engine harmonics drifting with the revs),
  ``hum50`` and ``hum60`` (mains hum and its odd harmonics);
* **events** (:func:`event`): ``knock`` (knuckles or a ring on the handset), ``door`` (a slam
  and its rattle, with reverb), ``keyboard`` (typing), ``click`` (the handset's switch), ``cough``
  (from :mod:`acoustics`);
* **echo** (:class:`LoudspeakerEcho`): what the caller heard, through a loudspeaker that
  saturates (soft clipping), a room's impulse response, the phone band (300-3400 Hz), a
  40-250 ms delay, at -30..-10 dB. It has :class:`~voicebridge.dev.sim.acoustics.Speakerphone`'s
  interface, so :class:`~voicebridge.dev.sim.acoustics.Acoustics` takes either.

numpy is needed (the ``sim`` part of the ``dev`` and ``demo`` extras); the rest of the simulated
caller runs without it. Levels are long-run RMS in dBFS like the other beds.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ...audio.mulaw import FULL_SCALE, SAMPLE_RATE, ULAW_TABLE

BED_KINDS = ("music", "room_babble", "tv", "car", "hum50", "hum60")
EVENT_KINDS = ("knock", "door", "keyboard", "click", "cough", "shush", "hiss", "rustle")
BED_SECONDS = 24.0  # rendered once per (kind, seed) and looped
_ULAW = np.array(ULAW_TABLE, dtype=np.float64)


# -- building blocks ----------------------------------------------------------------------------
def ulaw_to_float(data: bytes) -> np.ndarray:
    """mu-law bytes -> samples at int16 scale (float)."""
    return _ULAW[np.frombuffer(data, dtype=np.uint8)]


@functools.lru_cache(maxsize=1)
def _encode_table() -> np.ndarray:
    from .acoustics import _ulaw_table
    return np.frombuffer(_ulaw_table(), dtype=np.uint8)


def float_to_ulaw(x: np.ndarray) -> bytes:
    """Samples at int16 scale -> mu-law bytes, saturating (bit-exact with ``audio.encode`` of the
    rounded, clipped samples, at numpy speed)."""
    q = np.clip(np.round(x), -32768, 32767).astype(np.int64)
    return _encode_table()[(q >> 2) + 8192].tobytes()


def band(x: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    """Zero-phase band-pass by FFT with 100-200 Hz raised-cosine edges (whole signals only)."""
    n = len(x)
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    g = np.clip((f - low_hz + 50) / 100, 0, 1) * np.clip((high_hz + 100 - f) / 200, 0, 1)
    return np.fft.irfft(np.fft.rfft(x) * (0.5 - 0.5 * np.cos(np.pi * g)), n)


@functools.lru_cache(maxsize=8)
def band_fir(low_hz: float = 300.0, high_hz: float = 3400.0, taps: int = 63) -> np.ndarray:
    """A windowed-sinc band-pass FIR (for streaming: the echo path's phone band)."""
    k = np.arange(taps) - (taps - 1) / 2
    hi = 2 * high_hz / SAMPLE_RATE * np.sinc(2 * high_hz / SAMPLE_RATE * k)
    lo = 2 * low_hz / SAMPLE_RATE * np.sinc(2 * low_hz / SAMPLE_RATE * k)
    return (hi - lo) * np.hamming(taps)


def room_response(seed: int, rt60_s: float = 0.35, ms: int = 150, direct: float = 1.0) -> np.ndarray:
    """A small room's impulse response: a direct path, a few early reflections and an
    exponentially decaying diffuse tail (RT60 ``rt60_s``), unit energy. ``direct=0`` is a
    distant source: reflections and tail only."""
    rng = np.random.default_rng(seed)
    n = ms * SAMPLE_RATE // 1000
    t = np.arange(n) / SAMPLE_RATE
    h = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s) * 0.12
    h[:16] *= np.linspace(0, 1, 16)
    h[0] += direct
    for _ in range(5):
        h[int(rng.integers(20, 200))] += rng.uniform(0.2, 0.5) * rng.choice((-1, 1))
    return h / np.sqrt(np.sum(h * h))


def at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale to a long-run RMS of ``dbfs``."""
    rms = float(np.sqrt(np.mean(x * x))) or 1.0
    return x * (FULL_SCALE * 10 ** (dbfs / 20) / rms)


def _envelope(n: int, attack: int, tau: float) -> np.ndarray:
    i = np.arange(n)
    return np.minimum(1.0, (i + 1) / max(1, attack)) * np.exp(-np.maximum(0, i - attack) / tau)


def _tone(freq: float, n: int, harmonics=(1.0, 0.5, 0.25), vibrato: float = 0.0) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    phase = 2 * np.pi * freq * t + (vibrato * np.sin(2 * np.pi * 5.5 * t) if vibrato else 0)
    return sum(a * np.sin((k + 1) * phase) for k, a in enumerate(harmonics))


# -- beds ---------------------------------------------------------------------------------------
def _music(rng: np.random.Generator, n: int) -> np.ndarray:
    """Chords held a bar each, a melody with long notes, kick and hi-hat on the beat."""
    bpm = rng.uniform(90, 128)
    beat = int(SAMPLE_RATE * 60 / bpm)
    root = rng.uniform(196, 262)
    out = np.zeros(n)
    progression = ((0, 4, 7), (5, 9, 12), (7, 11, 14), (-3, 0, 4))
    scale = (0, 2, 4, 5, 7, 9, 11, 12)
    bar = 4 * beat
    for b, start in enumerate(range(0, n, bar)):
        m = min(bar, n - start)
        chord = sum(_tone(root * 2 ** (s / 12), m, (1.0, 0.4, 0.2)) for s in progression[b % 4])
        out[start:start + m] += 0.35 * chord * _envelope(m, 200, bar * 1.5)
        pos = start
        while pos < start + m:  # the melody: notes of 1-4 beats, held
            length = min(int(beat * rng.choice((1, 1, 2, 4))), start + m - pos)
            note = _tone(2 * root * 2 ** (scale[int(rng.integers(0, 8))] / 12), length, (1.0, 0.3, 0.1), 0.02)
            out[pos:pos + length] += 0.6 * note * _envelope(length, 120, length * 2)
            pos += length
    for start in range(0, n, beat):  # rhythm
        m = min(beat, n - start)
        k = min(m, 1200)
        out[start:start + k] += 0.9 * np.sin(2 * np.pi * 70 * np.arange(k) / SAMPLE_RATE) * _envelope(k, 20, 250)
        off = start + beat // 2
        h = max(0, min(400, n - off))
        out[off:off + h] += 0.25 * np.diff(np.r_[0, rng.standard_normal(h)]) * _envelope(h, 5, 60)  # hi-hat
    return out


def _voices(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    """``count`` corpus voices, each saying sentence after sentence with short pauses."""
    from . import corpus
    pool = [c for c in corpus.clips() if c.category in ("talk", "question", "interruption") and c.ms > 1200]
    out = np.zeros(n)
    for _ in range(count):
        pos, voice = int(rng.integers(0, SAMPLE_RATE)), np.zeros(n)
        while pos < n:
            clip = ulaw_to_float(pool[int(rng.integers(0, len(pool)))].audio())
            m = min(len(clip), n - pos)
            voice[pos:pos + m] += clip[:m]
            pos += m + int(rng.integers(2, 8) * SAMPLE_RATE / 10)
        out += voice * rng.uniform(0.6, 1.0)
    return out


def _distant(x: np.ndarray, seed: int) -> np.ndarray:
    """A source across the room: reflections and tail, no direct path, the phone's band."""
    wet = np.convolve(x, room_response(seed, rt60_s=0.6, ms=250, direct=0.15))[:len(x)]
    return band(wet, 150, 3400)


def _room_babble(rng: np.random.Generator, n: int) -> np.ndarray:
    return _distant(_voices(rng, n, 5), int(rng.integers(1 << 30)))


def _tv(rng: np.random.Generator, n: int) -> np.ndarray:
    voice = _voices(rng, n, 1)
    music = _music(rng, n)
    mix = voice / (np.std(voice) or 1) + 0.4 * music / (np.std(music) or 1)
    return band(_distant(mix, int(rng.integers(1 << 30))), 250, 3400)  # a small TV speaker: no bass


def _car(rng: np.random.Generator, n: int) -> np.ndarray:
    """Road noise (brown noise below ~400 Hz) and an engine whose firing frequency drifts."""
    brown = np.cumsum(rng.standard_normal(n))
    brown -= np.convolve(brown, np.ones(801) / 801, mode="same")  # no DC wander
    road = band(brown, 20, 500)
    t = np.arange(n) / SAMPLE_RATE
    rpm_hz = 28 + 6 * np.sin(2 * np.pi * t / rng.uniform(5, 9)) + rng.uniform(-3, 3)
    phase = 2 * np.pi * np.cumsum(rpm_hz) / SAMPLE_RATE
    engine = sum(a * np.sin(k * phase) for k, a in ((1, 1.0), (2, 0.7), (3, 0.4), (4, 0.3), (6, 0.15)))
    return road / (np.std(road) or 1) + 0.5 * engine / (np.std(engine) or 1)


def _hum(mains: int):
    def make(rng: np.random.Generator, n: int) -> np.ndarray:
        t = np.arange(n) / SAMPLE_RATE
        x = sum(a * np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6.28))
                for k, a in ((1, 1.0), (2, 0.2), (3, 0.6), (5, 0.35), (7, 0.2), (9, 0.1)))
        return x + 0.02 * rng.standard_normal(n)
    return make


_RENDER = {"music": _music, "room_babble": _room_babble, "tv": _tv, "car": _car, "hum50": _hum(50),
           "hum60": _hum(60)}


@functools.lru_cache(maxsize=32)
def bed(kind: str, seed: int = 0, seconds: float = BED_SECONDS) -> np.ndarray:
    """``seconds`` of a background at unit RMS (read-only), the same for the same kind and seed."""
    if kind not in _RENDER:
        raise ValueError(f"unknown background {kind!r}; expected one of {', '.join(BED_KINDS)}")
    x = _RENDER[kind](np.random.default_rng([seed, BED_KINDS.index(kind)]), int(seconds * SAMPLE_RATE))
    x = x / (float(np.sqrt(np.mean(x * x))) or 1.0)
    x.setflags(write=False)
    return x


class LoopedBed:
    """A :mod:`acoustics` noise bed (``block(n)`` of unit power) looping a rendered background."""

    def __init__(self, kind: str, seed: int) -> None:
        self._x = bed(kind, seed)
        self._pos = 0

    def block(self, n: int) -> list[float]:
        idx = (self._pos + np.arange(n)) % len(self._x)
        self._pos = (self._pos + n) % len(self._x)
        return self._x[idx].tolist()


# -- events -------------------------------------------------------------------------------------
def event(kind: str, seed: int = 0, peak_dbfs: float = -12.0) -> bytes:
    """One handset or room noise as mu-law, its loudest 20 ms at ``peak_dbfs``."""
    from .acoustics import cough
    from .sounds import click_noise
    if kind == "cough":
        return cough(250 + seed % 3 * 100, seed)
    if kind not in _EVENTS:
        if kind == "click":
            return click_noise(20 + seed % 4 * 20)
        raise ValueError(f"unknown event {kind!r}; expected one of {', '.join(EVENT_KINDS)}")
    x = _EVENTS[kind](np.random.default_rng([seed, EVENT_KINDS.index(kind)]))
    frames = x[: len(x) - len(x) % 160].reshape(-1, 160)
    peak = float(np.sqrt((frames ** 2).mean(axis=1)).max()) or 1.0
    return float_to_ulaw(x * FULL_SCALE * 10 ** (peak_dbfs / 20) / peak)


def _knock(rng: np.random.Generator) -> np.ndarray:
    """1-3 knocks on the handset: a low thump (120-250 Hz) with a sharp contact click."""
    out = np.zeros(int(0.9 * SAMPLE_RATE))
    pos = 0
    for _ in range(int(rng.integers(1, 4))):
        n = 500
        thump = np.sin(2 * np.pi * rng.uniform(120, 250) * np.arange(n) / SAMPLE_RATE) * _envelope(n, 8, 120)
        contact = rng.standard_normal(n) * _envelope(n, 1, 12)
        out[pos:pos + n] += thump + 0.6 * contact
        pos += int(rng.uniform(0.15, 0.25) * SAMPLE_RATE)
    return out[:pos + 500]


def _door(rng: np.random.Generator) -> np.ndarray:
    """A slam (a loud low thump) and a rattle, across the room."""
    n = int(0.7 * SAMPLE_RATE)
    slam = np.sin(2 * np.pi * rng.uniform(60, 110) * np.arange(n) / SAMPLE_RATE) * _envelope(n, 30, 600)
    rattle = band(rng.standard_normal(n), 300, 2500) * _envelope(n, 40, 1500) * 0.5
    x = slam + rattle
    return np.convolve(x, room_response(int(rng.integers(1 << 30)), rt60_s=0.5, ms=200, direct=0.5))[:n]


def _keyboard(rng: np.random.Generator) -> np.ndarray:
    """Typing for 1.5-2.5 s: a key every 80-250 ms, each a few ms of high, bright noise."""
    n = int(rng.uniform(1.5, 2.5) * SAMPLE_RATE)
    out = np.zeros(n)
    pos = 0
    while pos < n - 200:
        key = rng.standard_normal(160) * _envelope(160, 2, 18) * rng.uniform(0.5, 1.0)
        out[pos:pos + 160] += key
        pos += int(rng.uniform(0.08, 0.25) * SAMPLE_RATE)
    return band(out, 1500, 3400)


def _fades(n: int, fade_in: int, fade_out: int) -> np.ndarray:
    i = np.arange(n)
    return np.minimum(1.0, np.minimum((i + 1) / fade_in, (n - i) / fade_out))


def _shush(rng: np.random.Generator) -> np.ndarray:
    """A caller's "shhh" (to a child, a dog) for 0.5-2 s: breath noise through the tongue's
    narrow gap, on the phone band its energy in the top octave (from 1.5-2.2 kHz up), swelling
    in and dying away, a little unsteady."""
    n = int(rng.uniform(0.5, 2.0) * SAMPLE_RATE)
    white = rng.standard_normal(n)
    pink = np.cumsum(white) * 0.02 + white  # (tilted towards the low end, like breath)
    x = band(pink, rng.uniform(1500, 2200), rng.uniform(3400, 3850))
    wobble = 1 + rng.uniform(0, 0.3) * np.sin(2 * np.pi * rng.uniform(3, 6) * np.arange(n) / SAMPLE_RATE)
    return x * wobble * _fades(n, int(rng.uniform(0.06, 0.15) * SAMPLE_RATE), int(rng.uniform(0.15, 0.3) * SAMPLE_RATE))


def _hiss(rng: np.random.Generator) -> np.ndarray:
    """A steady hiss on the line, or a caller's long "sss", for 0.5-1.5 s: white noise over 2-3 kHz."""
    n = int(rng.uniform(0.5, 1.5) * SAMPLE_RATE)
    return band(rng.standard_normal(n), rng.uniform(2000, 3000), 3850) * _fades(n, 80, 400)


def _rustle(rng: np.random.Generator) -> np.ndarray:
    """Paper or a jacket rubbing the handset for 1-1.8 s: bright noise in irregular bursts."""
    n = int(rng.uniform(1.0, 1.8) * SAMPLE_RATE)
    bursts = np.convolve(rng.uniform(0, 1, n // 200 + 1) ** 3, np.ones(3) / 3, mode="same")
    envelope = np.interp(np.arange(n), np.arange(len(bursts)) * 200, bursts)
    return band(rng.standard_normal(n), rng.uniform(800, 1500), 3850) * envelope


_EVENTS = {"knock": _knock, "door": _door, "keyboard": _keyboard, "shush": _shush, "hiss": _hiss, "rustle": _rustle}


# -- echo ---------------------------------------------------------------------------------------
class LoudspeakerEcho:
    """What the caller heard coming back: loudspeaker saturation, a room, the phone band, a delay.

    Same interface as :class:`~voicebridge.dev.sim.acoustics.Speakerphone` (``echo(heard)`` -> int16
    samples reaching the microphone now). ``echo_db`` is the echo's speech level relative to
    what was played (calibrated through the whole chain on the agent's voice), ``drive`` how hard
    the loudspeaker is driven (``tanh``: a peak at -6 dBFS comes out about 2 dB compressed at the
    default), ``delay_ms`` the phone's playout, capture and acoustic delay.
    """

    def __init__(self, echo_db: float, delay_ms: int = 120, seed: int = 0, drive: float = 3.0,
                 rt60_s: float = 0.3) -> None:
        if not math.isfinite(echo_db) or echo_db > 0:
            raise ValueError(f"echo_db must be <= 0, got {echo_db}")
        if int(delay_ms) != delay_ms or delay_ms < 0:
            raise ValueError(f"delay_ms must be a whole number >= 0, got {delay_ms}")
        self.echo_db = float(echo_db)
        self.delay_ms = int(delay_ms)
        self.drive = drive
        self._h = np.convolve(room_response(seed, rt60_s=rt60_s), band_fir())
        self._gain = 10 ** (echo_db / 20) * _calibration(seed, drive, rt60_s)
        self._line = np.zeros(self.delay_ms * SAMPLE_RATE // 1000)
        self._tail = np.zeros(len(self._h) - 1)

    def _saturate(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(self.drive * x / FULL_SCALE) / self.drive * FULL_SCALE

    def process(self, x: np.ndarray) -> np.ndarray:
        """Float samples in (what was heard), echo samples out, streaming."""
        if not len(x):
            return np.zeros(0)
        line = np.concatenate([self._line, x])
        now, self._line = line[:len(x)], line[len(x):]
        y = np.convolve(self._saturate(now), self._h)
        y[:len(self._tail)] += self._tail
        out, rest = y[:len(x)], y[len(x):]
        self._tail = np.concatenate([rest, np.zeros(len(self._tail) - len(rest))]) if len(rest) < len(
            self._tail) else rest[:len(self._tail)]
        return out * self._gain

    def echo(self, heard: bytes) -> list[int]:
        y = np.clip(np.round(self.process(ulaw_to_float(heard))), -32768, 32767)
        return y.astype(int).tolist()


@functools.lru_cache(maxsize=64)
def _calibration(seed: int, drive: float, rt60_s: float) -> float:
    """Gain that makes the chain's output speech level equal its input's (on the agent's voice)."""
    from .. import tts
    x = ulaw_to_float(tts.load_prompt("long_answer")[:4 * SAMPLE_RATE])
    chain = LoudspeakerEcho.__new__(LoudspeakerEcho)
    chain.drive = drive
    y = np.convolve(chain._saturate(x), np.convolve(room_response(seed, rt60_s=rt60_s), band_fir()))[:len(x)]
    return float(np.sqrt(np.mean(x * x)) / (np.sqrt(np.mean(y * y)) or 1.0))
