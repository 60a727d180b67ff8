"""One agent turn, from the request to its end, as one small state machine (sans-IO).

An ``AgentTurn`` is to a model response what LiveKit's ``SpeechHandle`` is to an utterance: the
greeting, an answer, a tool result's follow-up, a filler, the goodbye -- each is one turn with one
state. Its life is the table ``TRANSITIONS`` (h11's way: event x state -> state), so every rule
that asks "is the agent speaking?", "was this interrupted?" or "has the caller heard it all?"
reads one state instead of a set of booleans kept in step by hand::

    requested -> created -> speaking -> spoken -> heard     an answer heard in full
                 created -> done                            nothing said (only tool calls)
      created | speaking -> interrupted -> done             cut while the model was making it
                spoken | heard -> done                      cut while its tail played
    lost: requested | created | interrupted -> done; speaking -> spoken (what came still plays)

An event the table does not allow in the current state is refused: ``apply`` returns
``Step.ILLEGAL`` and the state stays as it was. Nothing raises: a peer that sends events out
of order must not break the call's threads (the owner counts and logs the refusal).

The states say what the caller experiences and, with it, whether the model is still making the
turn (``active``): a response.create may not go out while any turn is active.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field


class TurnState(enum.Enum):
    """Where one agent turn is."""

    REQUESTED = "requested"  # the bridge sent response.create; no response.created yet
    CREATED = "created"  # response.created: the model is working on it, no audio yet
    SPEAKING = "speaking"  # its audio is arriving (and going out to the caller)
    SPOKEN = "spoken"  # the model is done with it; the caller is still hearing its tail
    HEARD = "heard"  # its last mark came back played: the caller heard every word
    INTERRUPTED = "interrupted"  # a barge-in cut it while the model was still making it
    DONE = "done"  # over, with nothing (more) for the caller to hear


class TurnEvent(enum.Enum):
    """What can happen to a turn, and who says so."""

    CREATED = "created"  # response.created (model thread)
    AUDIO = "audio"  # an audio delta (model thread)
    DONE = "done"  # response.done (model thread)
    HEARD = "heard"  # the turn's last mark echoed as played (run thread's poll)
    INTERRUPT = "interrupt"  # a barge-in locked it (run or model thread)
    LOST = "lost"  # it will never finish: withdrawn or never matched, its session replaced, a safety fuse


class Step(enum.Enum):
    """What ``apply`` did."""

    MOVED = "moved"  # the table allowed it (the state may be the same, e.g. another delta)
    ILLEGAL = "illegal"  # not allowed in this state: nothing changed


S, E = TurnState, TurnEvent
TRANSITIONS: dict[tuple[TurnState, TurnEvent], TurnState] = {
    (S.REQUESTED, E.CREATED): S.CREATED,
    (S.REQUESTED, E.LOST): S.DONE,  # withdrawn, dropped from a full line, or never matched by a response
    (S.CREATED, E.AUDIO): S.SPEAKING,
    (S.CREATED, E.DONE): S.DONE,  # a turn with nothing to say (only function calls, or cancelled)
    (S.CREATED, E.INTERRUPT): S.INTERRUPTED,
    (S.CREATED, E.LOST): S.DONE,
    (S.SPEAKING, E.AUDIO): S.SPEAKING,
    (S.SPEAKING, E.DONE): S.SPOKEN,
    (S.SPEAKING, E.INTERRUPT): S.INTERRUPTED,
    (S.SPEAKING, E.LOST): S.SPOKEN,  # what was received still plays out
    (S.SPOKEN, E.AUDIO): S.SPOKEN,  # a delta after response.done: it still plays
    (S.SPOKEN, E.HEARD): S.HEARD,
    (S.SPOKEN, E.INTERRUPT): S.DONE,  # the model was done: only its tail is cut
    (S.HEARD, E.INTERRUPT): S.DONE,  # the caller spoke as the last words ended
    (S.INTERRUPTED, E.AUDIO): S.INTERRUPTED,  # a late delta: dropped, not played
    (S.INTERRUPTED, E.DONE): S.DONE,  # response.done (cancelled) after the barge-in
    (S.INTERRUPTED, E.LOST): S.DONE,
    (S.DONE, E.AUDIO): S.DONE,  # a late delta of a finished or cut turn
    (S.DONE, E.INTERRUPT): S.DONE,  # a barge-in over an earlier turn's tail: nothing of this one to cut
}
"""Every legal (state, event) pair and the state it leads to; anything else is ``Step.ILLEGAL``."""
del S, E

ACTIVE = frozenset({TurnState.CREATED, TurnState.SPEAKING, TurnState.INTERRUPTED})
"""The model is still making the turn (created, no response.done yet): the line is busy."""


@dataclass
class AgentTurn:
    """One agent turn: its state, its audio item and what arrived of it, when each event came."""

    id: str | None  # the response id (None while only requested)
    kind: str | None = None  # the bridge request behind it (greeting, tool_result, ...); None = the model's own
    state: TurnState = TurnState.CREATED
    item_id: str | None = None  # its (single) assistant audio item: the one played and perhaps truncated
    audio_bytes: int = 0  # model audio received for ``item_id``
    audio_ended: bool = False  # the end of its audio went to the outbound path (its tail padded, marked)
    event_id: str | None = None  # the request's event_id, while requested (an ``error`` names it)
    at: dict[TurnEvent, float] = field(default_factory=dict)  # when each event first moved it

    def apply(self, event: TurnEvent, now: float) -> Step:
        """Move by the table; an illegal event changes nothing."""
        target = TRANSITIONS.get((self.state, event))
        if target is None:
            return Step.ILLEGAL
        self.state = target
        self.at.setdefault(event, now)
        return Step.MOVED

    @property
    def active(self) -> bool:
        """The model is still making it: no response.create may go out."""
        return self.state in ACTIVE

    @property
    def interrupted(self) -> bool:
        """A barge-in cut it: its late deltas are dropped, its tail is never padded."""
        return TurnEvent.INTERRUPT in self.at

    @property
    def heard(self) -> bool:
        """The caller heard all of it (its last mark came back played)."""
        return self.state is TurnState.HEARD

    @property
    def greeting(self) -> bool:
        return self.kind == "greeting"
