"""How strictly a held voice's words are judged, and the turns after the hold it reaches (sans-IO;
one per call, owned by ``Listener`` and used under its lock).

A breath, or a released run the model's VAD started on after its grace, is held ``strict``: only a
bare command interrupts, and where that start was judged the agent's echo, only one the agent did
not just say (review rv22). The strictness is the hold's and ends with it (review rv23), but for
the rest of the model's turn it held and a turn begun within ``STRICT_AFTER_S`` after it: the agent
resumed, and the passage of its echo the hold was made on goes on (its "No", then its "help with").
"""
from __future__ import annotations

import enum

STRICT_AFTER_S = 3.0
"""A model turn begun this soon after a strict hold ended is judged as strictly."""


class Strict(enum.Enum):
    """What a held voice's words (and the rest of its turn's) must be to interrupt."""

    NO = "no"  # words that take the turn (a far voice's: a command)
    BARE = "bare"  # a bare command: a breath, or a released run the model's VAD started on (noise, unclear)
    UNSAID = "unsaid"  # a bare command the agent did not just say: the model's start on it was judged its echo


class HoldStrictness:
    """The current hold's strictness (``held``) and what it leaves to the turns after it."""

    def __init__(self) -> None:
        self.held = Strict.NO
        self._after: tuple[float, float, Strict] | None = None  # a strict hold's turn start, end, strictness

    def joined(self, holding: bool, strict: bool, on_echo: bool) -> None:
        """An utterance is held (``holding``: joining a hold): strict only if both are, and as
        little as either. ``on_echo``: held on a start of the model's judged the agent's echo."""
        if not strict:
            self.held = Strict.NO
            return
        mine = Strict.UNSAID if on_echo else Strict.BARE
        if holding and self.held is not mine:
            self.held = Strict.NO if self.held is Strict.NO else Strict.BARE
        else:
            self.held = mine

    def ended(self, now: float | None, open_turn: float | None) -> None:
        """The hold is over at ``now`` (None: a barge-in ended it); ``open_turn``: the start of the
        model's VAD turn still open, or None."""
        held = self.held
        self._after = None if now is None or held is Strict.NO else (
            open_turn if open_turn is not None else now, now, held)
        self.held = Strict.NO

    def of_commit(self, holding: bool, turn_start: float) -> Strict:
        """How strictly a turn (begun at ``turn_start``) committed now is judged: as the hold it
        holds, or as the one whose turn it is the rest of, or that ended just before it began."""
        if holding:
            return self.held
        kept = self._after
        if kept is None:
            return Strict.NO
        held_from, hold_end, strict = kept
        return strict if held_from <= turn_start <= hold_end + STRICT_AFTER_S else Strict.NO
