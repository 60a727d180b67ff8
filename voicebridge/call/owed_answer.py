"""The answer to a caller's turn, asked for once the caller is done (sans-IO; one per call, owned by
``BargeIn``).

The wire says ``create_response: false`` (a backchannel or the agent's own echo is left
unanswered), so the bridge asks for each answer itself. Asked for the moment a turn's first
words take it ("wait," confirmed while the caller goes on "hold on, I need to check"), the answer
is to those words alone and plays over the rest (found from outside, out2). So an answer due
while the caller is still heard is owed, and asked for once they are done (``ANSWER_GAP_S`` of
quiet, ``ANSWER_WAIT_S`` at most). A turn the model's VAD closed (its own commit, after its own
silence) is answered at its commit, whatever the room, and once: an answer asked inside that
turn while it was open is its answer (review rv25). Called from the model thread and the run
thread: its state is under its own lock.
"""
from __future__ import annotations

import enum
import threading

ANSWER_WAIT_S = 5.0
"""An answer owed while the caller goes on is asked for at the latest this long after it was due
(a TV at the handset's level may be heard on and on)."""
ANSWER_GAP_S = 0.5
"""A caller quiet this long is done (the service's own default silence before a turn ends)."""


class Ask(enum.Enum):
    """What to do with an answer due now."""

    NOW = "now"  # ask for it
    OWED = "owed"  # the caller goes on: later (``settle``)
    ASKED = "asked"  # asked for already, inside the turn now committed


class OwedAnswer:
    """An answer owed (since when), and the model's VAD turn one was asked for inside."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owed: float | None = None  # an answer was due then, the caller still heard
        self._asked_in: float | None = None  # an answer was asked inside the model's VAD turn begun then

    @property
    def owed(self) -> bool:
        return self._owed is not None

    def due(self, now: float, going_on: bool, open_turn: float | None) -> Ask:
        """An answer is due (its words took the turn): ``going_on`` (the caller is heard, or was
        lately), ``open_turn`` (the start of the model's VAD turn still open, or None)."""
        with self._lock:
            if going_on:
                if self._owed is None:
                    self._owed = now
                return Ask.OWED
            self._owed, self._asked_in = None, open_turn
            return Ask.NOW

    def committed(self, turn: float) -> Ask:
        """The model's VAD closed its turn begun at ``turn`` and it is to be answered."""
        with self._lock:
            self._owed = None
            if self._asked_in == turn:
                self._asked_in = None
                return Ask.ASKED
            return Ask.NOW

    def settle(self, now: float, going_on: bool, open_turn: float | None) -> float | None:
        """Ask for the answer owed now? Its due time if so (the caller is done, or at the bound)."""
        with self._lock:
            owed = self._owed
            if owed is None or (going_on and now - owed < ANSWER_WAIT_S):
                return None
            self._owed, self._asked_in = None, open_turn
            return owed
