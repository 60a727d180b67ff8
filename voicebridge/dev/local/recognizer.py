"""The local server's "speech recognition": it knows the simulated caller's bundled phrases
and the speech corpus's clips (``voicebridge.dev.sim.corpus``: "wait", "mm-hm", questions...).

The bridge forwards caller audio byte for byte, and the simulated caller speaks its known
phrases from bundled audio, so a phrase is recognised by finding its first spoken frames in what
a turn appended: exactly, or (a caller on a speakerphone: the phrase mixed with the agent's echo
or a room) as the window of the turn that correlates with them at ``MATCH`` or more, as the
real service's transcription hears words through an echo. Anything else is unrecognised
(transcribed as its length). This lets the scripted agent react to words
("goodbye", "order") with no model at all, and the bridge tell a held "mm-hm" from a "wait"
by its words as it does with the real service's transcription (docs/barge-in.md).
"""
from __future__ import annotations

import functools

import numpy as np

from ...audio import mulaw as audio
from .. import tts

KEY_FRAMES = 8
"""How many frames of a phrase, from its first audible one, must appear: 160 ms."""
QUIET_DBFS = -45.0
MATCH = 0.7
"""Normalized correlation of a turn's window with a phrase's first frames that recognises it
through echo or noise (the phrase 15 dB over the echo: about 0.98; two recordings of the same
word by different voices: well under 0.5)."""


class Recognizer:
    """``words(turn_audio)`` -> the phrase said in it, or None."""

    def __init__(self) -> None:
        self._keys, self._matrix = _phrases()  # one per process: every session of the server shares them

    def words(self, turn_audio: bytes) -> "str | None":
        for key, words in self._keys:
            if key in turn_audio:
                return words
        return self._heard_through(turn_audio)

    def _heard_through(self, turn_audio: bytes) -> "str | None":
        """The phrase whose first frames best match a frame-aligned window of the turn, if any
        matches at ``MATCH`` (the caller's frames arrive whole; the echo or noise under them
        lowers the correlation only a little)."""
        frame = audio.FRAME_BYTES
        count = len(turn_audio) // frame - KEY_FRAMES + 1
        if count <= 0 or not len(self._matrix):
            return None
        x = _linear(turn_audio[:len(turn_audio) // frame * frame]).reshape(-1, frame)
        windows = np.lib.stride_tricks.sliding_window_view(x, (KEY_FRAMES, frame))[:, 0].reshape(count, -1)
        norms = np.linalg.norm(windows, axis=1)
        scores = (windows @ self._matrix.T) / np.maximum(norms, 1e-9)[:, None]
        best = np.unravel_index(int(np.argmax(scores)), scores.shape)
        return self._keys[best[1]][1] if scores[best] >= MATCH else None


def _key(prompt: bytes) -> bytes:
    frame = audio.FRAME_BYTES
    for start in range(0, len(prompt) - frame + 1, frame):
        if audio.dbfs(prompt[start:start + frame]) > QUIET_DBFS:
            return prompt[start:start + KEY_FRAMES * frame]
    return b""


_ULAW = np.array(audio.ULAW_TABLE, dtype=np.float64)


def _linear(ulaw: bytes) -> "np.ndarray":
    return _ULAW[np.frombuffer(ulaw, dtype=np.uint8)]


def _unit_rows(keys: "list[np.ndarray]") -> "np.ndarray":
    """The keys as rows of ``KEY_FRAMES`` frames (a short phrase's padded with silence), each of norm 1."""
    rows = np.zeros((len(keys), KEY_FRAMES * audio.FRAME_BYTES))
    for i, key in enumerate(keys):
        rows[i, :len(key)] = key
    return rows / np.maximum(np.linalg.norm(rows, axis=1), 1e-9)[:, None]


@functools.lru_cache(maxsize=1)
def _phrases() -> "tuple[tuple[tuple[bytes, str], ...], np.ndarray]":
    """The phrases a turn may say (the bundled caller phrases, the corpus clips) and their keys as
    unit rows, made once per process: about 1.5 MB, which a server with a matrix per session
    grew by with every call."""
    keys: list[tuple[bytes, str]] = []
    for name, words in tts.CALLER_PHRASES.items():
        try:
            prompt = tts.load_prompt(name)
        except (OSError, ModuleNotFoundError):
            continue
        key = _key(prompt)
        if key:
            keys.append((key, words))
    keys.extend(_corpus_keys())
    matrix = _unit_rows([_linear(key) for key, _ in keys])
    matrix.setflags(write=False)
    return tuple(keys), matrix


@functools.lru_cache(maxsize=1)
def _corpus_keys() -> "tuple[tuple[bytes, str], ...]":
    """The corpus clips' keys, made once per process (146 clips: about 0.3 s)."""
    try:
        from ..sim import corpus
        clips = corpus.clips()
    except (OSError, ValueError, ModuleNotFoundError):
        return ()
    keys = ((_key(clip.audio()), clip.text) for clip in clips)
    return tuple((key, text) for key, text in keys if key)
