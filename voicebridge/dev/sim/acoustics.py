"""The simulated caller's acoustic environment: speakerphone echo, background noise, coughs.

A real caller's microphone does not carry only their voice. On a speakerphone (or a phone
held away from the ear, or a car kit) it also picks up what the loudspeaker just played:
the agent's own voice comes back to the bridge, a little later and quieter. Echo-aware
barge-in has to tell that echo from the caller talking over the agent, and a noise-robust one
has to ignore a busy street or an office. This module produces those signals, sans-IO and
deterministically, so a bridge can be tested against them in CI and by hand
(``voicebridge call URL --echo-db -20 --noise babble``).

The model
---------
* **Echo path** (:class:`Speakerphone`): what the caller heard, delayed by ``delay_ms`` (the
  phone's playout and capture buffering plus the acoustic flight time; 40-120 ms is typical of
  mobiles), band-limited like a small loudspeaker and a phone microphone (one-pole high-pass at
  250 Hz: no bass from a tiny speaker; one-pole low-pass at 2.8 kHz) and attenuated by
  ``echo_db`` (the echo return loss: -15 dB is a loud speakerphone without echo cancellation,
  -30 dB a handset or a phone whose echo canceller leaves a residue). ``echo_db`` is the
  loss in the pass band (around 1 kHz the filters cost under 0.5 dB); speech, whose energy
  sits partly below 250 Hz, comes back a few dB quieter still, as it does on a real phone.
* **Noise beds** (:class:`NoiseBed`): synthetic, seeded stand-ins for common backgrounds,
  calibrated to a long-run RMS level in dBFS: ``street`` (red-noise rumble, slow level drift,
  a passing car every 6-8 s), ``babble`` (seven overlapping speech-like voices at 100-250 Hz
  pitch with syllable-rate envelopes and pauses, so the level fluctuates like a busy office),
  ``fan`` (steady pink-ish noise with a little 100 Hz hum) and ``white``; music, distant
  voices, a TV, a car and mains hum come from :mod:`voicebridge.dev.sim.room`.
* **Coughs** (:func:`cough`): a loud, short, broadband sound a naive barge-in detector takes
  for speech; the ``cough`` script step plays one.
* **Mixing** (:class:`Acoustics`): microphone = caller's own sound + echo + noise, clipped
  to int16 (as a saturating ADC does, never wrapping) and mu-law encoded.

Limits
------
The echo path is linear and time-invariant with a single delay: no room reverberation tail,
no loudspeaker distortion at high volume, no echo canceller or AGC reacting to double talk,
no delay drift between the phone's clocks. The noise beds are statistical stand-ins, not
recordings: good for level, spectrum tilt and fluctuation, not for a speech recognizer's
confusion. No uplink codec, packet loss or comfort noise is modelled. Everything is pure
Python, computed 20 ms at a time (about 0.1-0.3 ms per frame), so it runs in the caller's
send loop without disturbing its 20 ms schedule.
"""
from __future__ import annotations

import functools
import math
import operator
import random
from typing import Callable, Optional, Sequence

from ...audio.mulaw import FRAME_BYTES, FULL_SCALE, SAMPLE_RATE, ULAW_TABLE, encode

__all__ = ["Speakerphone", "NoiseBed", "Acoustics", "cough", "NOISE_KINDS"]

NOISE_KINDS = ("street", "babble", "fan", "white", "music", "room_babble", "tv", "car", "hum50", "hum60")
"""The background kinds :class:`NoiseBed` can make (the last six from :mod:`voicebridge.dev.sim.room`,
which needs numpy)."""

_INT16_MAX = 32767
_INT16_MIN = -32768


# -- shared tables (built on first use and cached: importing the simulator stays cheap) --------
_GAUSS_SIZE = 4096


@functools.cache
def _ulaw_table() -> bytes:
    """mu-law byte for every 14-bit value: :func:`voicebridge.audio.mulaw.encode` only looks at
    ``sample >> 2``, so one lookup per sample is bit-exact with it at a fraction of its cost."""
    return encode([v << 2 for v in range(-8192, 8192)])


def _clip_encode(samples: Sequence[int]) -> bytes:
    """Saturate to int16 and mu-law encode (bit-exact with ``encode`` of the clipped samples)."""
    table = _ulaw_table()
    return bytes([table[((_INT16_MAX if s > _INT16_MAX else _INT16_MIN if s < _INT16_MIN else s) >> 2) + 8192]
                  for s in samples])


def _clip(samples: Sequence[int]) -> list[int]:
    return [_INT16_MAX if s > _INT16_MAX else _INT16_MIN if s < _INT16_MIN else s for s in samples]


@functools.cache
def _gauss() -> "tuple[float, ...]":
    """Equal-probability quantiles of a unit normal: ``rng.choices(table, k=n)`` draws Gaussian
    noise several times faster than ``rng.gauss`` (which is pure Python), still seeded."""
    from statistics import NormalDist
    inv = NormalDist().inv_cdf
    half = [inv((i + 0.5) / _GAUSS_SIZE) for i in range(_GAUSS_SIZE // 2)]
    table = half + [-v for v in reversed(half)]  # exactly symmetric: zero mean
    scale = math.sqrt(len(table) / sum(v * v for v in table))  # exactly unit power
    return tuple(v * scale for v in table)


def _db_to_gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


# -- echo ---------------------------------------------------------------------------------------
class _OnePole:
    """One-pole high- or low-pass (bilinear transform: exactly -3 dB at ``hz``, unity gain at
    DC for the low-pass and at Nyquist for the high-pass). State carries across blocks."""

    def __init__(self, hz: float, highpass: bool) -> None:
        k = math.tan(math.pi * hz / SAMPLE_RATE)
        self.a = (1.0 - k) / (1.0 + k)  # feedback
        self.b = (1.0 if highpass else k) / (1.0 + k)
        self.highpass = highpass
        self.x1 = 0.0
        self.y1 = 0.0

    def run(self, xs: "list[float] | list[int]") -> list[float]:
        a, b, x1, y1 = self.a, self.b, self.x1, self.y1
        out = []
        append = out.append
        if self.highpass:
            for x in xs:
                y1 = b * (x - x1) + a * y1
                x1 = x
                append(y1)
        else:
            for x in xs:
                y1 = b * (x + x1) + a * y1
                x1 = x
                append(y1)
        self.x1, self.y1 = x1, y1
        return out


class Speakerphone:
    """The loudspeaker-to-microphone echo path of a hands-free phone.

    Feed :meth:`echo` exactly what the caller heard each tick; it returns the echo reaching the
    microphone during the same samples: the heard audio ``delay_ms`` earlier (a delay line that
    starts as silence), band-limited and scaled by ``10 ** (echo_db / 20)``. With both filters
    disabled the result is sample-exact: ``round(heard_sample * gain)``, exactly ``delay_ms * 8``
    samples later, which is what tests of an echo canceller want to compare against.
    """

    def __init__(self, echo_db: float, delay_ms: int = 60, lowpass_hz: "float | None" = 2800.0,
                 highpass_hz: "float | None" = 250.0) -> None:
        if not math.isfinite(echo_db) or echo_db > 0:
            raise ValueError(f"echo_db must be <= 0 (the echo's level relative to what was played, "
                             f"e.g. -20), got {echo_db}")
        if int(delay_ms) != delay_ms or delay_ms < 0:
            raise ValueError(f"delay_ms must be a whole number of milliseconds >= 0, got {delay_ms}")
        for name, hz in (("lowpass_hz", lowpass_hz), ("highpass_hz", highpass_hz)):
            if hz is not None and not 0 < hz < SAMPLE_RATE / 2:
                raise ValueError(f"{name} must be between 0 and {SAMPLE_RATE // 2} Hz (or None), got {hz}")
        if lowpass_hz is not None and highpass_hz is not None and highpass_hz >= lowpass_hz:
            raise ValueError("highpass_hz must be below lowpass_hz")
        self.echo_db = float(echo_db)
        self.delay_ms = int(delay_ms)
        self.lowpass_hz = lowpass_hz
        self.highpass_hz = highpass_hz
        self.gain = _db_to_gain(echo_db)
        self._line: list[int] = [0] * self.delay_samples  # the delay line: silence until audio is heard
        self._filters: list[_OnePole] = []
        if highpass_hz is not None:
            self._filters.append(_OnePole(highpass_hz, highpass=True))
        if lowpass_hz is not None:
            self._filters.append(_OnePole(lowpass_hz, highpass=False))

    @property
    def delay_samples(self) -> int:
        """The echo delay in samples (``delay_ms * 8``)."""
        return self.delay_ms * SAMPLE_RATE // 1000

    def echo(self, heard: bytes) -> list[int]:
        """Echo samples (int16 scale, ``len(heard)`` of them) reaching the microphone now."""
        line = self._line
        line.extend(map(ULAW_TABLE.__getitem__, heard))
        n = len(heard)
        delayed = line[:n]
        del line[:n]
        gain = self.gain
        if not self._filters:
            return [round(x * gain) for x in delayed]
        signal: "list[float] | list[int]" = delayed
        for f in self._filters:
            signal = f.run(signal)
        return _clip([round(x * gain) for x in signal])


# -- noise beds -----------------------------------------------------------------------------------
class _Bed:
    """A unit-power noise generator: ``block(n)`` floats whose long-run mean square is 1."""

    def block(self, n: int) -> list[float]:  # pragma: no cover - interface
        raise NotImplementedError


class _White(_Bed):
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._g = _gauss()

    def block(self, n: int) -> list[float]:
        return self._rng.choices(self._g, k=n)


class _Fan(_Bed):
    """Pink-ish noise plus a 100 Hz hum (with a weaker 200 Hz harmonic) at -12 dB re the noise:
    a ventilation fan. The noise is white through three one-pole low-passes in parallel
    (corners 100, 600 and 3000 Hz, equal power each: roughly -3 dB/octave between them) plus a
    little of the white itself. No pole is slower than 100 Hz, so the level is steady from one
    20 ms frame to the next (a sub-audio pole would make it wander)."""

    _CORNERS_HZ = (100.0, 600.0, 3000.0)
    _HUM_DB = -12.0

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._g = _gauss()
        self._state = [0.0, 0.0, 0.0]
        p = self._poles = tuple(math.exp(-2 * math.pi * hz / SAMPLE_RATE) for hz in self._CORNERS_HZ)
        # Branch gains for equal power per branch: DC gain g / (1 - p) falls as 1 / sqrt(corner).
        g = self._gains = tuple((1 - pi) * math.sqrt(self._CORNERS_HZ[0] / hz) for pi, hz in zip(p, self._CORNERS_HZ))
        d = self._direct = 0.1 * g[-1] / (1 - p[-1])
        # Output power for unit white input, in closed form: h[n] = sum_i g_i p_i^n (+ d at n=0).
        power = sum(g[i] * g[j] / (1.0 - p[i] * p[j]) for i in range(3) for j in range(3))
        power += 2 * d * sum(g) + d * d
        hum_power = _db_to_gain(self._HUM_DB) ** 2  # relative to the unit-power noise
        self._noise_scale = 1.0 / math.sqrt(power * (1.0 + hum_power))
        period = SAMPLE_RATE // 100  # 80 samples: the hum repeats exactly
        amp100, amp200 = 1.0, 0.35
        unit = math.sqrt(hum_power / ((amp100 ** 2 + amp200 ** 2) / 2))
        hum_scale = unit / math.sqrt(1.0 + hum_power)
        phase = rng.random() * 2 * math.pi
        self._hum = [hum_scale * (amp100 * math.sin(2 * math.pi * i / period + phase)
                                  + amp200 * math.sin(4 * math.pi * i / period + 2 * phase))
                     for i in range(period)]
        self._pos = 0

    def block(self, n: int) -> list[float]:
        (p0, p1, p2), (g0, g1, g2), d = self._poles, self._gains, self._direct
        b0, b1, b2 = self._state
        s = self._noise_scale
        hum, period, pos = self._hum, len(self._hum), self._pos
        out = []
        append = out.append
        for w in self._rng.choices(self._g, k=n):
            b0 = p0 * b0 + w * g0
            b1 = p1 * b1 + w * g1
            b2 = p2 * b2 + w * g2
            append(s * (b0 + b1 + b2 + w * d) + hum[pos])
            pos = pos + 1 if pos + 1 < period else 0
        self._state = [b0, b1, b2]
        self._pos = pos
        return out


class _Street(_Bed):
    """Traffic: red (brown) noise rumble with a slow level drift, and a passing car every
    6-8 s that swells the rumble and adds a broadband tyre whoosh for 2.5-4 s.

    Cars come at near-regular intervals on purpose: a random gap of 0-20 s would make any
    10 s stretch 2 dB louder or quieter than the requested level.
    """

    _RUMBLE_HZ = 30.0  # leaky-integrator corner: flat below, -6 dB/octave above
    _WHOOSH_HZ = 1000.0
    _DRIFT = ((0.15, 0.2, 0.35), (0.10, 0.5, 1.0))  # (depth, min Hz, max Hz) of the slow drift
    _CAR_GAP_S = (6.0, 8.0)
    _CAR_LEN_S = (2.5, 4.0)
    _CAR_PEAK = (0.6, 1.0)
    _SWELL = 0.5  # rumble gain added at a car's peak (per unit of its peak)
    _WHOOSH = 1.0  # whoosh level at a car's peak relative to the rumble

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._g = _gauss()
        self._p = 1.0 - 2 * math.pi * self._RUMBLE_HZ / SAMPLE_RATE
        self._rumble_scale = math.sqrt(1.0 - self._p ** 2)  # leaky integrator of unit white
        self._y = 0.0
        self._a = math.exp(-2 * math.pi * self._WHOOSH_HZ / SAMPLE_RATE)
        self._whoosh_scale = math.sqrt((1.0 + self._a) / (1.0 - self._a))
        self._z = 0.0
        self._drift = [(depth, rng.uniform(lo, hi), rng.uniform(0, 2 * math.pi)) for depth, lo, hi in self._DRIFT]
        self._t = 0  # samples generated
        self._car: "tuple[int, int, float] | None" = None  # (start sample, length, peak)
        self._next_car = int(rng.uniform(1.0, 5.0) * SAMPLE_RATE)
        # Long-run power of rumble * (drift + swell * h) + whoosh * h, h = peak * hann bump,
        # per unit of time: renewal-reward over the car cycle (cars never overlap).
        drift_ms = 1.0 + sum(depth ** 2 / 2 for depth, _, _ in self._DRIFT)
        mean_len = sum(self._CAR_LEN_S) / 2 * SAMPLE_RATE
        mean_gap = sum(self._CAR_GAP_S) / 2 * SAMPLE_RATE
        lo, hi = self._CAR_PEAK
        mean_peak, mean_peak2 = (lo + hi) / 2, (hi ** 3 - lo ** 3) / (3 * (hi - lo))
        h1 = mean_peak * mean_len / 2 / mean_gap  # long-run mean of h (hann bump integrates to L/2)
        h2 = mean_peak2 * 3 * mean_len / 8 / mean_gap  # and of h**2 (hann**2 integrates to 3L/8)
        power = drift_ms + 2 * self._SWELL * h1 + (self._SWELL ** 2 + self._WHOOSH ** 2) * h2
        self._scale = 1.0 / math.sqrt(power)

    def _car_level(self, t: int) -> float:
        """The current car's bump at sample ``t`` (0 between cars); schedules the next car."""
        if self._car is None and t >= self._next_car:
            length = int(self._rng.uniform(*self._CAR_LEN_S) * SAMPLE_RATE)
            self._car = (self._next_car, length, self._rng.uniform(*self._CAR_PEAK))
            self._next_car += int(self._rng.uniform(*self._CAR_GAP_S) * SAMPLE_RATE)
            self._z = 0.0
        if self._car is None:
            return 0.0
        start, length, peak = self._car
        x = (t - start) / length
        if x >= 1.0:
            self._car = None
            return 0.0
        return peak * math.sin(math.pi * x) ** 2

    def block(self, n: int) -> list[float]:
        mid = self._t + n // 2  # envelopes change slowly: one value per block is smooth enough
        seconds = mid / SAMPLE_RATE
        drift = 1.0 + sum(depth * math.sin(2 * math.pi * hz * seconds + ph) for depth, hz, ph in self._drift)
        car = self._car_level(mid)
        rumble_gain = self._scale * self._rumble_scale * (drift + self._SWELL * car)
        p, y = self._p, self._y
        out = []
        append = out.append
        for w in self._rng.choices(self._g, k=n):
            y = p * y + w
            append(rumble_gain * y)
        self._y = y
        if car > 0.0:
            whoosh_gain = self._scale * self._whoosh_scale * self._WHOOSH * car
            a, b, z = self._a, 1.0 - self._a, self._z
            for i, w in enumerate(self._rng.choices(self._g, k=n)):
                z = a * z + b * w
                out[i] += whoosh_gain * z
            self._z = z
        self._t += n
        return out


_WAVE_SIZE = 1024
_VOWELS = ((730, 1090), (270, 2290), (300, 870), (530, 1840), (570, 840))  # (F1, F2) Hz: a i u e o


@functools.cache
def _voice_wave(vowel: int, high: bool) -> "tuple[float, ...]":
    """One period of a voiced vowel-like buzz, unit RMS: harmonics falling 6 dB/octave (glottal
    source with lip radiation) lifted around two formants, phases spread to keep it smooth.
    Low voices (up to 176 Hz) get 21 harmonics and high ones (up to 275 Hz) 13: none passes
    3.8 kHz, so nothing aliases whatever the intonation."""
    nominal, count = (200.0, 13) if high else (130.0, 21)
    f1, f2 = _VOWELS[vowel]
    size = _WAVE_SIZE
    sine = [math.sin(2 * math.pi * i / size) for i in range(size)]
    wave = [0.0] * size
    for k in range(1, count + 1):
        f = k * nominal
        amp = (1.0 + 4.0 / (1 + ((f - f1) / 120) ** 2) + 2.5 / (1 + ((f - f2) / 180) ** 2)) / k
        offset = (size * k * k // (2 * count)) % size  # Schroeder phases: low crest factor
        for i in range(size):
            wave[i] += amp * sine[(k * i + offset) % size]
    rms = math.sqrt(sum(v * v for v in wave) / size)
    return tuple(v / rms for v in wave)


class _Voice:
    """One background talker: syllables of a buzz under a half-sine envelope, with pauses."""

    def __init__(self, rng: random.Random, weight: float, f0: float) -> None:
        self.rng = rng
        self.weight = weight
        self.f0 = f0
        self.high = f0 > 160.0
        self.phase = rng.random() * _WAVE_SIZE
        self.wave = _voice_wave(0, self.high)
        self.inc = 0.0
        self.amp = 0.0
        self.length = 1
        self.pos = 0
        self._syllable()
        self.pos = rng.randrange(self.length)  # talkers are not in step

    def _syllable(self) -> None:
        rng = self.rng
        self.length = rng.randint(*_Babble.SYLLABLE_FRAMES)
        self.pos = 0
        self.amp = 0.0 if rng.random() < _Babble.PAUSE else rng.uniform(*_Babble.SYLLABLE_AMP)
        self.wave = _voice_wave(rng.randrange(len(_VOWELS)), self.high)
        self.inc = self.f0 * rng.uniform(0.9, 1.1) * _WAVE_SIZE / SAMPLE_RATE  # intonation

    def add_to(self, acc: list[float], n: int, ramp: list[float]) -> list[float]:
        """Add this frame of the voice to ``acc`` (returns the new list); one syllable step."""
        if self.pos >= self.length:
            self._syllable()
        e0 = self.amp * math.sin(math.pi * self.pos / self.length)
        e1 = self.amp * math.sin(math.pi * (self.pos + 1) / self.length)
        self.pos += 1
        phase, inc = self.phase, self.inc
        self.phase = (phase + inc * n) % _WAVE_SIZE
        if e0 == 0.0 and e1 == 0.0:
            return acc
        e0 *= self.weight
        de = (e1 * self.weight - e0) / n
        wave = self.wave
        mask = _WAVE_SIZE - 1
        voice = [wave[int(phase + inc * i) & mask] * (e0 + de * i) for i in ramp]
        return list(map(operator.add, acc, voice))


class _Babble(_Bed):
    """Office babble: seven talkers at different distances and pitches (100-250 Hz), each
    speaking 3-6 syllables a second with random loudness and pauses. So few voices do not
    average into steady noise: the level rises and dips from one syllable to the next."""

    VOICES = 7
    SYLLABLE_FRAMES = (8, 17)  # 160-340 ms: 3-6 syllables a second
    PAUSE = 0.25
    SYLLABLE_AMP = (0.4, 1.0)

    def __init__(self, rng: random.Random) -> None:
        pitches = [100.0 + 150.0 * (i + rng.random()) / self.VOICES for i in range(self.VOICES)]
        rng.shuffle(pitches)
        self._voices = [_Voice(rng, rng.uniform(0.5, 1.0), f0) for f0 in pitches]
        # Long-run power: each voice's table has unit power; the envelope's mean square per
        # syllable of L frames, linearly interpolated within a frame, is
        # S(L) = sum_j (u_j^2 + u_j u_j+1 + u_j+1^2) / 3 with u_j = sin(pi j / L).
        lo, hi = self.SYLLABLE_FRAMES
        energy = length = 0.0
        for frames in range(lo, hi + 1):
            u = [math.sin(math.pi * j / frames) for j in range(frames + 1)]
            energy += sum((u[j] ** 2 + u[j] * u[j + 1] + u[j + 1] ** 2) / 3 for j in range(frames))
            length += frames
        a_lo, a_hi = self.SYLLABLE_AMP
        amp2 = (1 - self.PAUSE) * (a_hi ** 3 - a_lo ** 3) / (3 * (a_hi - a_lo))
        envelope = amp2 * energy / length
        power = envelope * sum(v.weight ** 2 for v in self._voices)
        self._scale = 1.0 / math.sqrt(power)
        self._ramps: "dict[int, list[float]]" = {}

    def block(self, n: int) -> list[float]:
        ramp = self._ramps.get(n)
        if ramp is None:
            ramp = self._ramps[n] = [float(i) for i in range(n)]
        acc = [0.0] * n
        for voice in self._voices:
            acc = voice.add_to(acc, n, ramp)
        s = self._scale
        return [v * s for v in acc]


def _room_bed(kind: str) -> "Callable[[random.Random], _Bed]":
    """A background rendered by :mod:`voicebridge.dev.sim.room` (numpy), imported on first use."""
    def make(rng: random.Random) -> _Bed:
        from .room import LoopedBed
        return LoopedBed(kind, rng.randrange(1 << 30))  # type: ignore[return-value]
    return make


_BEDS: "dict[str, Callable[[random.Random], _Bed]]" = {
    "street": _Street, "babble": _Babble, "fan": _Fan, "white": _White,
    **{kind: _room_bed(kind) for kind in ("music", "room_babble", "tv", "car", "hum50", "hum60")}}


class NoiseBed:
    """A seeded background noise at a calibrated level: ``street``, ``babble``, ``fan``, ``white``.

    The long-run RMS (over 10 s or more) is ``dbfs`` within about half a dB; short stretches
    vary as the real thing does (babble from syllable to syllable, street with passing cars).
    The same ``kind``, ``dbfs`` and ``seed`` always give the same samples.
    """

    def __init__(self, kind: str, dbfs: float, seed: int = 0) -> None:
        if kind not in _BEDS:
            raise ValueError(f"unknown noise kind {kind!r}; expected one of {', '.join(NOISE_KINDS)}")
        if not math.isfinite(dbfs) or dbfs > 0:
            raise ValueError(f"dbfs must be <= 0, got {dbfs}")
        self.kind = kind
        self.dbfs = float(dbfs)
        self.seed = seed
        self._bed = _BEDS[kind](random.Random(f"{kind}:{seed}"))
        self._gain = FULL_SCALE * _db_to_gain(dbfs)

    def frame(self, n: int = FRAME_BYTES) -> list[int]:
        """The next ``n`` samples (default one 20 ms frame), int16 scale, clipped."""
        g = self._gain
        return _clip([round(v * g) for v in self._bed.block(n)])


# -- cough ----------------------------------------------------------------------------------------
COUGH_PEAK_DBFS = -10.0
"""Level of a cough's loudest 20 ms frame (a cough close to the microphone is loud)."""


def cough(ms: int = 350, seed: int = 0) -> bytes:
    """A cough, ``ms`` long, as mu-law: one or two bursts of noise tilted toward low
    frequencies, each with a ~8 ms attack and a decaying tail, the loudest 20 ms at -10 dBFS.

    What matters for barge-in is that it is loud, broadband and short: energy-based detectors
    fire on it like on speech, and a good one must not stop the agent for it.
    """
    if ms <= 0:
        raise ValueError("a cough lasts at least 1 ms")
    n = ms * SAMPLE_RATE // 1000
    rng = random.Random(f"cough:{seed}:{ms}")
    if ms >= 250 and rng.random() < 0.5:  # a double cough: a smaller second burst after a gap
        first = int(n * rng.uniform(0.45, 0.55))
        gap = int(rng.uniform(0.03, 0.06) * SAMPLE_RATE)
        bursts = [(0, first, 1.0), (first + gap, n - first - gap, rng.uniform(0.55, 0.8))]
    else:
        bursts = [(0, n, 1.0)]
    envelope = [0.0] * n
    attack = int(0.008 * SAMPLE_RATE)
    fade = int(0.008 * SAMPLE_RATE)
    for start, length, peak in bursts:
        tau = max(1.0, length / 3.5)
        for i in range(length):
            e = peak * math.exp(-max(0, i - attack) / tau)
            if i < attack:
                e *= ((i + 1) / attack) ** 2
            if i >= length - fade:
                e *= 0.5 - 0.5 * math.cos(math.pi * (length - i) / fade)  # no click at the end
            envelope[start + i] = e
    # Noise tilted toward low frequencies: a 1 kHz one-pole low-pass plus some of the raw noise.
    noise = rng.choices(_gauss(), k=n)
    a = math.exp(-2 * math.pi * 1000.0 / SAMPLE_RATE)
    z = 0.0
    signal = []
    for w, e in zip(noise, envelope):
        z = a * z + (1 - a) * w
        signal.append(e * (2.5 * z + 0.3 * w))
    frames = [signal[i:i + FRAME_BYTES] for i in range(0, n, FRAME_BYTES)]
    loudest = max(math.sqrt(sum(v * v for v in f) / len(f)) for f in frames)
    gain = FULL_SCALE * _db_to_gain(COUGH_PEAK_DBFS) / loudest if loudest > 0 else 0.0
    return _clip_encode([round(v * gain) for v in signal])


# -- the microphone -------------------------------------------------------------------------------
class Acoustics:
    """What the caller's microphone sends: their own sound, plus echo, plus background noise.

    The echo is kept in a small queue drained one caller frame at a time, because the heard
    audio of a tick is not always exactly one frame (the playout follows the wall clock, the
    send schedule the 20 ms grid). When it runs short (the caller's first tick has heard
    nothing yet) the gap is silence; the echo then settles one frame behind the playout clock,
    as on a real phone, whose frame sent at time T is the capture of [T - 20 ms, T).
    """

    def __init__(self, echo: "Optional[Speakerphone]" = None, noise: Optional[NoiseBed] = None) -> None:
        """``echo``: a :class:`Speakerphone` or anything with its ``echo(heard)`` (e.g.
        :class:`voicebridge.dev.sim.room.LoudspeakerEcho`)."""
        self.echo = echo
        self.noise = noise
        self._pending: list[int] = []
        if self.active:
            _ulaw_table()  # built now, not on the caller's first 20 ms tick

    @property
    def active(self) -> bool:
        """Whether anything is added to the caller's sound."""
        return self.echo is not None or self.noise is not None

    def frame(self, caller: bytes, heard: bytes) -> bytes:
        """The microphone frame to send for the caller's own ``caller`` frame, given what the
        caller ``heard`` during this tick; ``caller`` itself (same bytes) when nothing is added."""
        if self.echo is None and self.noise is None:
            return caller
        n = len(caller)
        mix = list(map(ULAW_TABLE.__getitem__, caller))
        if self.echo is not None:
            pending = self._pending
            pending.extend(self.echo.echo(heard))
            echo = pending[:n]
            del pending[:n]
            if len(echo) < n:
                echo.extend([0] * (n - len(echo)))
            mix = list(map(operator.add, mix, echo))
        if self.noise is not None:
            mix = list(map(operator.add, mix, self.noise.frame(n)))
        return _clip_encode(mix)
