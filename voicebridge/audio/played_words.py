"""Which of the agent's words the caller heard around a moment (sans-IO; owned by ``AgentWords``).

The service's transcript runs ahead of the audio (its words often come whole before the audio
plays), so "the agent's last words received" are not the words just played (review rv23), and
"every word of its answer" holds words not played yet (review rv24). This places each word of the
latest answer by the audio played since the answer began: the agent speaks ``WORDS_PER_S`` words
a second, give or take ``SLACK``, and a word played ``BEHIND_S`` before a moment, or ``AHEAD_S``
after it, is "around" it. The frames played are counted by the sender (``Listener.played``); the
words come from the model thread, each with the count at their arrival.
"""
from __future__ import annotations

import math

from .mulaw import FRAME_MS

WORDS_PER_S = 2.8
"""The agent's speech rate: Realtime voices speak about 150-180 words a minute."""
SLACK = 0.3
"""How far the rate may be off, as a share of a word's place (a slower voice, pauses, a list)."""
BEHIND_S = 2.5
"""A word played this long before the moment may be its echo (the delay, the room's tail, the
VAD's and the transcriber's own span)."""
AHEAD_S = 0.3
"""... or this long after (a faster voice than ``WORDS_PER_S`` at the start of an answer)."""
TAIL_WORDS = 6
"""Of the answer before, its last words: their echo may still be heard as the next one begins."""
_FRAME_S = FRAME_MS / 1000


class PlayedWords:
    """The latest answer's words, in order, and the frame count its playing began at."""

    def __init__(self) -> None:
        self._words: list[str] = []
        self._began = 0  # frames played when the answer's first words arrived
        self._before: tuple[str, ...] = ()  # the last words of the answer before it

    def begin(self, played_frames: int) -> None:
        """A new answer's first words arrived, ``played_frames`` played so far in the call."""
        self._before = tuple(self._words[-TAIL_WORDS:])
        self._words, self._began = [], played_frames

    def add(self, words: list[str]) -> None:
        self._words.extend(words)

    def around(self, played_frames: int) -> set[str]:
        """The words the caller may have heard (or be hearing the echo of) with ``played_frames``
        played in the call: the answer's words about that far into it, and the answer before's
        last words while it just began."""
        at_s = max(0, played_frames - self._began) * _FRAME_S
        place = at_s * WORDS_PER_S
        first = math.floor(place * (1 - SLACK) - BEHIND_S * WORDS_PER_S)
        last = math.ceil(place * (1 + SLACK) + AHEAD_S * WORDS_PER_S)
        said = set(self._words[max(0, first):max(0, last + 1)])
        if at_s < BEHIND_S:
            said.update(self._before)
        return said
