"""The local server's "speech recognition": it knows the simulated caller's bundled phrases
and the speech corpus's clips (``voicebridge.dev.sim.corpus``: "wait", "mm-hm", questions...).

The bridge forwards caller audio byte for byte, and the simulated caller speaks its known
phrases from bundled audio, so a phrase is recognised by finding its first spoken frames in what
a turn appended: exactly, or (a caller on a speakerphone: the phrase mixed with the agent's echo)
as the window of the turn that correlates with them at ``MATCH`` or more, as the real service's
transcription hears words through an echo. A speakerphone across a reverberant room leaves no
waveform to correlate, yet a real transcriber hears the words; so, third, a short phrase is heard
by its spectro-temporal envelope (:mod:`.envelope`) when it matches at ``ENVELOPE_MATCH`` and
beats every phrase starting with another word by ``ENVELOPE_MARGIN`` (a TV, babble, music, the
agent's echo or words it does not know match several about as well). Anything else is
unrecognised (transcribed as its length). This lets the scripted agent react to words
("goodbye", "order") with no model at all, and the bridge tell a held "mm-hm" from a "wait"
by its words as it does with the real service's transcription (docs/barge-in.md).
"""
from __future__ import annotations

import functools
import logging
import os
import re
import wave
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from ...audio import mulaw as audio
from .. import tts
from . import envelope

KEY_FRAMES = 8
"""How many frames of a phrase, from its first audible one, must appear: 160 ms."""
QUIET_DBFS = -45.0
MATCH = 0.7
"""Normalized correlation of a turn's window with a phrase's first frames that recognises it
through echo or noise (the phrase 15 dB over the echo: about 0.98; two recordings of the same
word by different voices: well under 0.5)."""
ENVELOPE_MATCH = 0.8
"""Envelope correlation (:mod:`.envelope`) a phrase needs to be recognised through a room."""
ENVELOPE_MARGIN = 0.15
"""By how much that phrase's envelope must beat every phrase starting with another word: the
decisive test, a clip the recognizer does not know, a TV or an echo matches several phrases about
as well (docs/barge-in.md, "The local server hears reverberant words", for the separation)."""
ENVELOPE_SHORT_MS = 1200
"""Only phrases this short (first to last audible frame) are heard by their envelope: a key is
their first 0.7 s, most of such a phrase, while a sentence is told from one starting alike only by
its rest; and a held short utterance is what the bridge commits for its words, a sentence the
VAD ends. (A TV across the room saying a corpus sentence otherwise matched it.)"""


class Phrases(NamedTuple):
    """What a recognizer knows: the phrases' exact keys, their waveform keys and their envelope keys."""

    keys: "tuple[tuple[bytes, str], ...]"
    matrix: "np.ndarray"
    envelopes: "np.ndarray"
    envelope_words: "tuple[str, ...]"
    first_words: "np.ndarray"  # of each envelope's phrase, lowercase, a stutter ("h... ") dropped
    short: "np.ndarray"  # each envelope's phrase at most ENVELOPE_SHORT_MS long


class Recognizer:
    """``words(turn_audio)`` -> the phrase said in it, or None."""

    def __init__(self, phrases: "Sequence[tuple[bytes, str]] | None" = None) -> None:
        """``phrases`` ((mu-law audio, words) pairs) replaces the bundled ones and the corpus's
        (a test's or a benchmark's recognizer that knows only some)."""
        known = _phrases() if phrases is None else _known(tuple(phrases))  # the default: one per process
        self._keys, self._matrix = known.keys, known.matrix
        self._known = known

    def words(self, turn_audio: bytes) -> "str | None":
        for key, words in self._keys:
            if key in turn_audio:
                return words
        return self._heard_through(turn_audio) or self._heard_across_room(turn_audio)

    def _heard_across_room(self, turn_audio: bytes) -> "str | None":
        """The short phrase whose envelope a window of the turn matches at ``ENVELOPE_MATCH``, better
        by ``ENVELOPE_MARGIN`` than any phrase starting with another word (one starting with the same,
        "wait" and "wait, hold on", is no rival: a key is only its first 0.7 s)."""
        known = self._known
        if not known.short.any():
            return None
        best = envelope.scores(_linear(turn_audio), known.envelopes)
        top = int(np.argmax(np.where(known.short, best, -np.inf)))
        rivals = best[known.first_words != known.first_words[top]]
        rival = float(rivals.max()) if len(rivals) else 0.0
        if best[top] >= ENVELOPE_MATCH and best[top] - rival >= ENVELOPE_MARGIN:
            return known.envelope_words[top]
        return None

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


def first_word(words: str) -> str:
    """The first word said, lowercase, a stutter dropped ("h... hold on": "hold")."""
    said = re.sub(r"^\w+\.\.\.\s*", "", words.lower())
    return (re.findall(r"[\w'-]+", said) or [""])[0]


def _audible(prompt: bytes) -> "tuple[int, int] | None":
    """The first audible frame and the frame after the last."""
    frame = audio.FRAME_BYTES
    loud = [i for i, start in enumerate(range(0, len(prompt) - frame + 1, frame))
            if audio.dbfs(prompt[start:start + frame]) > QUIET_DBFS]
    return (loud[0], loud[-1] + 1) if loud else None


def _first_audible(prompt: bytes) -> "int | None":
    span = _audible(prompt)
    return None if span is None else span[0]


def _key(prompt: bytes) -> bytes:
    first = _first_audible(prompt)
    frame = audio.FRAME_BYTES
    return b"" if first is None else prompt[first * frame:(first + KEY_FRAMES) * frame]


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
def _phrases() -> Phrases:
    """The phrases a turn may say (the bundled caller phrases, the corpus clips) and their keys,
    made once per process: about 1.5 MB of waveform keys (a server with a matrix per session grew
    by that with every call) and 0.6 s of envelopes."""
    phrases: list[tuple[bytes, str]] = []
    for name, words in tts.CALLER_PHRASES.items():
        try:
            phrases.append((tts.load_prompt(name), words))
        except (OSError, ModuleNotFoundError):
            continue
    return _known(tuple(phrases) + _corpus_phrases() + taught_phrases(os.environ.get("LOCAL_PHRASES")))


def taught_phrases(folder: "str | None") -> "tuple[tuple[bytes, str], ...]":
    """Recordings of your own the local server should know the words of (``LOCAL_PHRASES``: a
    folder of ``NAME.wav``, each with ``NAME.txt`` holding its words). Without them a recording it
    does not know is transcribed as its length ("[speech 0.6 s]", which takes the turn: a
    backchannel of yours cuts the answer) or, if its VAD heard no speech in it (a whisper), as
    nothing: what the real service's transcription would write is what the bridge judges."""
    if not folder:
        return ()
    out = []
    for wav in sorted(Path(folder).glob("*.wav")):
        try:
            words = wav.with_suffix(".txt").read_text(encoding="utf-8").strip()
            out.append((tts.wav_to_ulaw(wav.read_bytes()), words))
        except (OSError, ValueError, EOFError, wave.Error) as exc:  # (a missing .txt, a malformed WAV)
            logging.getLogger(__name__).warning("LOCAL_PHRASES: %s skipped (%s: %s)", wav.name,
                                                type(exc).__name__, exc)
    if not out:
        logging.getLogger(__name__).warning("LOCAL_PHRASES=%s: no NAME.wav with its NAME.txt there", folder)
    else:
        phrases = list(dict.fromkeys(words for _, words in out))  # (one phrase in several voices: said once)
        logging.getLogger(__name__).info("LOCAL_PHRASES=%s: %d recordings taught (%s)", folder, len(out),
                                         ", ".join(map(repr, phrases[:5])) + (", ..." if len(phrases) > 5 else ""))
    return tuple(out)


def warm() -> None:
    """Read the phrases now (the bundled ones, the corpus's and ``LOCAL_PHRASES``'s), not at the
    first caller turn: a server started for a tester says at once what it taught."""
    _phrases()


def _known(phrases: "tuple[tuple[bytes, str], ...]") -> Phrases:
    keys: list[tuple[bytes, str]] = []
    envelopes: list[np.ndarray] = []
    envelope_words: list[str] = []
    short: list[bool] = []
    for prompt, words in phrases:
        span = _audible(prompt)
        if span is None:
            continue
        keys.append((_key(prompt), words))
        for key in envelope.keys(_linear(prompt), span[0]):
            envelopes.append(key.ravel())
            envelope_words.append(words)
            short.append((span[1] - span[0]) * audio.FRAME_MS <= ENVELOPE_SHORT_MS)
    matrix = _unit_rows([_linear(key) for key, _ in keys])
    rows = np.array(envelopes).reshape(len(envelopes), envelope.FRAMES * envelope.BANDS)
    firsts = np.array([first_word(words) for words in envelope_words])
    flags = np.array(short, dtype=bool)
    for array in (matrix, rows, firsts, flags):
        array.setflags(write=False)
    return Phrases(tuple(keys), matrix, rows, tuple(envelope_words), firsts, flags)


@functools.lru_cache(maxsize=1)
def _corpus_phrases() -> "tuple[tuple[bytes, str], ...]":
    """The corpus clips' audio and words (146 clips)."""
    try:
        from ..sim import corpus
        clips = corpus.clips()
    except (OSError, ValueError, ModuleNotFoundError):
        return ()
    return tuple((clip.audio(), clip.text) for clip in clips)
