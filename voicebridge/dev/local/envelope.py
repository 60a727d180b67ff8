"""Spectro-temporal envelopes: how the local server's recognizer hears a known phrase through a room.

A speakerphone across a reverberant room (RT60 0.4-0.8 s) smears a phrase's waveform beyond any
correlation with its recording (:mod:`.recognizer`'s first two stages find 2-11 % of such clips),
yet a real transcriber still hears the words: what survives is the envelope, the energy in a few
bands frame by frame. So a phrase's key here is its log band energies per 20 ms frame over its
first ``FRAMES`` frames (from its first audible one, its silence after it included, so a short
"mm-hm" is told from speech that goes on), each frame's mean over the bands removed (what is left
is the spectral shape, the vowels and consonants: the loudness contour alone, speech then
silence, matched any speech about as well as the phrase) and each band's mean removed (the
room's and the phone's colouring). Reverberation fills a phrase's gaps and drags its offsets; as a real recognizer is
trained on reverberant speech, each phrase has keys for a dry and two reverberant rooms, made
in the energy domain (each band's frame energies plus an exponentially decaying tail: no random
impulse response, nothing fitted to one room generator). A turn's window matches a key by their
normalised correlation; levels below the turn's loudest band energy minus ``FLOOR_DB`` are
clamped, so line noise and an echo 15-20 dB down barely count. The keys are made once per
process (a few hundred by 560 numbers); a turn's scores are one matrix product.
Figures: docs/barge-in.md, "The local server hears reverberant words".
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 8000
FRAME = 160  # 20 ms
FFT = 256  # each frame's window: 32 ms, centred on it
BANDS = 16
LOW_HZ, HIGH_HZ = 250.0, 3400.0
FRAMES = 35
"""Frames of a key: 0.7 s, a backchannel and the silence after it, or the start of a sentence."""
FLOOR_DB = 30.0
ROOMS = ((0.0, 0.0), (0.4, 2.5), (0.7, 5.0))
"""(RT60 s, tail energy / direct energy) of the rooms each phrase has a key for: dry, a room and
a reverberant one (a speakerphone across a room hears several times more tail than direct sound)."""
_TINY = (32768.0 * 10 ** (-80 / 20)) ** 2


def _mel_bank() -> "np.ndarray":
    """Triangular bands on the mel scale over the phone band, shape (BANDS, FFT // 2 + 1)."""
    freqs = np.fft.rfftfreq(FFT, 1 / SAMPLE_RATE)
    mel = 2595 * np.log10(1 + np.array([LOW_HZ, HIGH_HZ]) / 700)
    edges = 700 * (10 ** (np.linspace(mel[0], mel[1], BANDS + 2) / 2595) - 1)
    bank = np.zeros((BANDS, len(freqs)))
    for b in range(BANDS):
        lo, mid, hi = edges[b:b + 3]
        bank[b] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
    return bank


_BANK = _mel_bank()
_WINDOW = np.hanning(FFT)


def band_power(samples: "np.ndarray") -> "np.ndarray":
    """Band energies per 20 ms frame of int16-scale samples, shape (frames, BANDS)."""
    edge = (FFT - FRAME) // 2
    x = np.concatenate([np.zeros(edge), samples, np.zeros(edge)])
    count = (len(x) - FFT) // FRAME + 1
    if count <= 0:
        return np.zeros((0, BANDS))
    frames = np.lib.stride_tricks.sliding_window_view(x, FFT)[::FRAME][:count] * _WINDOW
    return (np.abs(np.fft.rfft(frames)) ** 2) @ _BANK.T


def _log(power: "np.ndarray") -> "np.ndarray":
    """Log band energies, clamped ``FLOOR_DB`` under the loudest, each frame's mean over the bands removed."""
    level = 10 * np.log10(power + _TINY)
    if not len(level):
        return level
    level = np.maximum(level, level.max() - FLOOR_DB)
    return level - level.mean(axis=1, keepdims=True)


def _reverberant(power: "np.ndarray", rt60_s: float, tail: float) -> "np.ndarray":
    """``power`` plus each frame's energy decaying 60 dB in ``rt60_s`` over the frames after it,
    ``tail`` times the direct energy in all."""
    lags = np.arange(1, int(rt60_s * SAMPLE_RATE / FRAME) + 1)
    decay = np.exp(-6.9 * 2 * lags * FRAME / SAMPLE_RATE / rt60_s)
    decay *= tail / decay.sum()
    out = power.copy()
    for lag, gain in zip(lags, decay):
        out[lag:] += gain * power[:-lag]
    return out


def keys(samples: "np.ndarray", first_frame: int) -> "list[np.ndarray]":
    """A phrase's keys (one per room of ``ROOMS``), each FRAMES x BANDS, band means removed, unit norm."""
    padded = np.concatenate([samples, np.zeros(FRAMES * FRAME)])
    power = band_power(padded)
    out = []
    for rt60_s, tail in ROOMS:
        heard = _reverberant(power, rt60_s, tail) if rt60_s else power
        key = _log(heard[first_frame:first_frame + FRAMES])
        key = key - key.mean(axis=0)
        out.append(key / max(float(np.linalg.norm(key)), 1e-9))
    return out


def scores(samples: "np.ndarray", matrix: "np.ndarray") -> "np.ndarray":
    """Each key's (a row of ``matrix``, flattened) best normalised correlation with a window of
    FRAMES frames of the turn (one per frame); zeros if the turn is shorter than a key."""
    level = _log(band_power(samples))
    count = len(level) - FRAMES + 1
    if count <= 0 or not len(matrix):
        return np.zeros(len(matrix))
    windows = np.lib.stride_tricks.sliding_window_view(level, (FRAMES, BANDS))[:, 0].reshape(count, -1)
    sums = np.cumsum(np.vstack([np.zeros((1, BANDS)), level]), axis=0)
    squares = np.cumsum(np.vstack([np.zeros((1, BANDS)), level * level]), axis=0)
    s1 = sums[FRAMES:] - sums[:-FRAMES]
    s2 = squares[FRAMES:] - squares[:-FRAMES]
    spread = np.sqrt(np.maximum((s2 - s1 * s1 / FRAMES).sum(axis=1), 1e-9))
    # the keys' band means are zero, so the window's band means need no subtracting
    return ((windows @ matrix.T) / spread[:, None]).max(axis=0)
