"""The model's turns that hold a held voice, and their words so far (sans-IO; one per hold,
``HeldAgent.turns``, read and written under the listener's lock).

When the agent is held for a short utterance, the words of the model's turns holding it decide
(``listening.held_turn_taken``). Several turns may hold it: the model's VAD turn, the bridge's own
commit inside it, a second utterance that joined the hold. Per turn this keeps the words streamed
so far and how long before the end of its committed audio the held voice began (a transcript is
in time order: the room's words said before the onset come first); for the voice, the speech
each of its utterances had, which bounds the words it can carry.
"""
from __future__ import annotations


class HeldTurns:
    """A held voice's utterances and the model's turns holding them."""

    def __init__(self) -> None:
        self._speech: dict[float, float] = {}  # the held utterances' onsets -> their speech so far
        self._words: dict[str, str] = {}  # the model's turns holding them -> their words so far
        self._spans: dict[str, float] = {}  # ... -> seconds from the first onset to their audio's end

    def voice(self, start: float, speech_s: float) -> None:
        """An utterance begun at ``start`` is held (again: its runs so far, the latest counts)."""
        self._speech[start] = speech_s

    def committed(self, item_id: str, audio_to: float) -> None:
        """The model committed turn ``item_id`` with the held voice's audio, up to ``audio_to``."""
        self._words[item_id] = ""
        self._spans[item_id] = audio_to - min(self._speech, default=audio_to)

    def said(self, item_id: str, text: str, final: bool) -> str:
        """The turn's words so far, with ``text`` (a delta, or the final transcript)."""
        words = text if final else self._words[item_id] + text
        self._words[item_id] = words
        return words

    def done(self, item_id: str) -> None:
        """The turn's final words are in."""
        del self._words[item_id]

    @property
    def speech_s(self) -> float:
        """The held voice's speech, all its utterances."""
        return sum(self._speech.values())

    def span_s(self, item_id: str) -> float:
        """Seconds from the held voice's onset to the end of turn ``item_id``'s audio."""
        return self._spans.get(item_id, float("inf"))

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._words

    def __bool__(self) -> bool:
        return bool(self._words)
