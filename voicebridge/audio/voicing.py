"""Does a frame sound like a voice? Periodicity in the pitch range (sans-IO).

A level detector cannot tell a cough, a click or a door from the caller starting to talk: all
are loud for a while. What they lack is voicing: the vocal folds make speech periodic at the
pitch (50-400 Hz), noise bursts are not. ``periodicity`` is the normalized autocorrelation of
the caller's audio at its best lag in that range, after a first-difference pre-emphasis (so
rumble and low-passed noise, which correlate with themselves at every lag, do not pass for
voice). Voiced speech scores 0.6-0.95, noise bursts under 0.4 (a frame in a few hundred
reaches 0.5, so the bar is 0.55).

It is asked only about loud frames inside a possible barge-in, never about every frame.
"""
from __future__ import annotations

from typing import NamedTuple

from .mulaw import numeric

MIN_LAG, MAX_LAG = 20, 160  # 400 Hz .. 50 Hz at 8 kHz
VOICED = 0.55
DULL = 0.12
OCTAVE = 0.9
"""A shorter lag within this fraction of the best correlation is the period (the best may be twice it)."""
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
    ``DULL``, however periodic it is. Every lag of 20-160 samples at once, as one matrix product
    (numpy, imported on first use): about 0.1 ms a frame where the pure-Python loop took 1 ms."""
    np, table = _numpy()
    data = previous[-MAX_LAG - 1:] + frame
    n = len(frame) - 1
    if n < 40:
        return Pitch(0.0, 0.0, 0.0)
    x = table.take(np.frombuffer(data, dtype=np.uint8))  # (``take``: cheaper than fancy indexing, the same)
    y = x[1:] - 0.95 * x[:-1]  # pre-emphasis: whitens rumble, keeps the pitch
    cur, raw = y[-n:], x[-n:]
    energy, raw_energy = float(cur @ cur), float(raw @ raw)
    if energy <= 0.0 or raw_energy <= 0.0:
        return Pitch(0.0, 0.0, 0.0)
    bright = energy / raw_energy
    if len(data) < n + MIN_LAG + 2:
        return Pitch(0.0, 0.0, bright)  # no audio before it to find a period in
    end = len(y) - n
    top = min(MAX_LAG, end)
    starts = slice(end - top, end - MIN_LAG + 1)  # window start end - lag, for lag top .. MIN_LAG
    # the windows of n samples starting at end - top .. end - MIN_LAG, as a view of y (the matrix
    # numpy's sliding_window_view would make, without its set-up on every frame)
    past = np.ndarray((top - MIN_LAG + 1, n), dtype=y.dtype, buffer=y, offset=(end - top) * y.itemsize,
                      strides=(y.itemsize, y.itemsize))
    squares = np.concatenate(([0.0], np.cumsum(y * y)))
    past_energy = (squares[n:] - squares[:-n])[starts]
    r = ((past @ cur) / np.sqrt(energy * past_energy + 1e-9))[::-1]  # index k: lag MIN_LAG + k
    best = float(r.max())
    if best <= 0.0:
        return Pitch(0.0, 0.0, bright)
    # the shortest lag that is a peak nearly as good as the best: the period, not a multiple of it
    inner = r[1:-1]
    peaks = (inner >= OCTAVE * best) & (inner >= r[:-2]) & (inner >= r[2:])
    # (the arrays' own ``argmax`` and ``count_nonzero`` for ``any()``: no dispatch, no reduction set-up)
    k = int(peaks.argmax()) + 1 if np.count_nonzero(peaks) else int(r.argmax())
    best = float(r[k])
    left = float(r[k - 1]) if k > 0 else 0.0
    right = float(r[k + 1]) if k + 1 < len(r) else 0.0
    bend = left - 2 * best + right
    shift = 0.5 * (left - right) / bend if bend < 0 else 0.0
    return Pitch(best, MIN_LAG + k + max(-0.5, min(0.5, shift)), bright)


def _numpy() -> tuple:
    """numpy and the mu-law table as an array (imported once, when a call first needs a frame
    listened to: the library's import stays light)."""
    return numeric()


def prepare() -> None:
    """Import numpy now (a session's setup, before its threads run): the first import takes 0.1-1 s,
    which on the first loud frame of a process's first call would stall its barge-in."""
    numeric()


def voiced(frame: bytes, previous: bytes = b"") -> bool:
    return periodicity(frame, previous) >= VOICED
