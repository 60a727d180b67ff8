"""The local server's "speech recognition": it knows the simulated caller's bundled phrases
and the speech corpus's clips (``voicebridge.dev.sim.corpus``: "wait", "mm-hm", questions...).

The bridge forwards caller audio byte for byte, and the simulated caller speaks its known
phrases from bundled audio, so a phrase is recognised exactly by finding its first spoken
frames in what a turn appended. Anything else (or a clip mixed with echo or room sound) is
unrecognised (transcribed as its length). This lets the scripted agent react to words
("goodbye", "order") with no model at all, and the bridge tell a held "mm-hm" from a "wait"
by its words as it does with the real service's transcription (docs/barge-in.md).
"""
from __future__ import annotations

import functools

from ...audio import mulaw as audio
from .. import tts

KEY_FRAMES = 8
"""How many frames of a phrase, from its first audible one, must appear: 160 ms."""
QUIET_DBFS = -45.0


class Recognizer:
    """``words(turn_audio)`` -> the phrase said in it, or None."""

    def __init__(self) -> None:
        self._keys: list[tuple[bytes, str]] = []
        for name, words in tts.CALLER_PHRASES.items():
            try:
                prompt = tts.load_prompt(name)
            except (OSError, ModuleNotFoundError):
                continue
            key = _key(prompt)
            if key:
                self._keys.append((key, words))
        self._keys.extend(_corpus_keys())

    def words(self, turn_audio: bytes) -> "str | None":
        for key, words in self._keys:
            if key in turn_audio:
                return words
        return None


def _key(prompt: bytes) -> bytes:
    frame = audio.FRAME_BYTES
    for start in range(0, len(prompt) - frame + 1, frame):
        if audio.dbfs(prompt[start:start + frame]) > QUIET_DBFS:
            return prompt[start:start + KEY_FRAMES * frame]
    return b""


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
