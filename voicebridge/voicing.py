"""Does a frame sound like a voice? Periodicity in the pitch range (sans-IO).

A level detector cannot tell a cough, a click or a door from the caller starting to talk: all
are loud for a while. What they lack is voicing: the vocal folds make speech periodic at the
pitch (50-400 Hz), noise bursts are not. ``periodicity`` is the normalized autocorrelation of
the caller's audio at its best lag in that range, after a first-difference pre-emphasis (so
rumble and low-passed noise, which correlate with themselves at every lag, do not pass for
voice). Voiced speech scores 0.6-0.95, noise bursts under 0.4 (a frame in a few hundred
reaches 0.5, so the bar is 0.55).

It costs a few hundred microseconds in CPython, so the barge-in detector asks only about loud
frames inside a possible barge-in (a handful per event), never about every frame.
"""
from __future__ import annotations

import math
from operator import mul
from typing import NamedTuple

from .audio import ULAW_TABLE

MIN_LAG, MAX_LAG = 20, 160  # 400 Hz .. 50 Hz at 8 kHz
LAG_STEP = 2
VOICED = 0.55
DULL = 0.12
"""Brightness under which a periodic frame is rumble, not a voice (see ``pitch``)."""


def periodicity(frame: bytes, previous: bytes = b"") -> float:
    """Best normalized autocorrelation of ``frame`` against the audio before it (0..1)."""
    return pitch(frame, previous)[0]


class Pitch(NamedTuple):
    periodicity: float  # 0..1, as ``periodicity``
    period: float  # samples, refined to a fraction of one (0.0: nothing to measure)
    brightness: float  # energy of the pre-emphasized frame over its raw energy


def pitch(frame: bytes, previous: bytes = b"") -> Pitch:
    """Periodicity, pitch period and brightness of ``frame``. The period is refined to a fraction
    of a sample (parabola through the neighbouring lags), precise enough to tell a voice's moving
    pitch from a held note's. Brightness is how much of the energy survives the pre-emphasis:
    a voice on the phone band keeps 0.2-2 of it, rumble (a car, a knock's thud, mains hum) under
    ``DULL``, however periodic it is."""
    data = previous[-MAX_LAG - 1:] + frame
    x = [ULAW_TABLE[b] for b in data]
    y = [b - 0.95 * a for a, b in zip(x, x[1:])]  # pre-emphasis: whitens rumble, keeps the pitch
    n = len(frame) - 1
    if n < 40 or len(y) < n + MIN_LAG + 1:
        return Pitch(0.0, 0.0, 0.0)
    cur = y[-n:]
    energy = sum(map(mul, cur, cur))
    raw = x[-n:]
    raw_energy = sum(map(mul, raw, raw))
    if energy <= 0.0 or raw_energy <= 0.0:
        return Pitch(0.0, 0.0, 0.0)
    bright = energy / raw_energy
    end = len(y) - n
    top = min(MAX_LAG, end)

    def corr(lag: int) -> float:
        past = y[end - lag:end - lag + n]
        past_energy = sum(map(mul, past, past))
        return sum(map(mul, cur, past)) / math.sqrt(energy * past_energy) if past_energy > 0.0 else 0.0

    best, best_lag = 0.0, 0
    for lag in range(MIN_LAG, top + 1, LAG_STEP):
        r = corr(lag)
        if r > best:
            best, best_lag = r, lag
    if best_lag == 0:
        return Pitch(0.0, 0.0, bright)
    left = corr(best_lag - 1) if best_lag > MIN_LAG else 0.0
    right = corr(best_lag + 1) if best_lag < top else 0.0
    if max(left, right) > best:  # the step skipped the peak: it is the odd neighbour
        best_lag, best = (best_lag - 1, left) if left >= right else (best_lag + 1, right)
        left = corr(best_lag - 1) if best_lag > MIN_LAG else 0.0
        right = corr(best_lag + 1) if best_lag < top else 0.0
    bend = left - 2 * best + right
    shift = 0.5 * (left - right) / bend if bend < 0 else 0.0
    return Pitch(best, best_lag + max(-0.5, min(0.5, shift)), bright)


def voiced(frame: bytes, previous: bytes = b"") -> bool:
    return periodicity(frame, previous) >= VOICED
