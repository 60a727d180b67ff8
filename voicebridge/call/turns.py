"""The call's agent turns: the one owner the parts ask and tell (thread-safe).

``Turns`` holds every ``AgentTurn`` (:mod:`voicebridge.call.turn`) of the call that still
matters: the one requested and on its way, the current one, and a few recent ones (late deltas of
an interrupted turn must still be recognised; memory stays bounded however long the call runs).
It is also the line of the bridge's own ``response.create`` requests, because "may a request go
out now?" is a question about the turns: the Realtime service refuses ``response.create`` while
a response is active (``conversation_already_has_active_response``), and the model starts turns
of its own (server VAD). So a request goes out only when no turn is active and none is
requested; the others wait, in order. A request refused anyway (a VAD turn won the race) goes back
to the head of the line. Each request is tagged: its kind comes back in ``response.metadata``
and its ``event_id`` in an ``error``, so both are matched exactly.

The parts tell it what happened (the model thread: created, audio, done, refused; the barge-in:
lock and finish; the run thread's poll: heard, from the playback marks) and ask it: the barge-in
guard (is the agent's turn the greeting? active? already cut?), the hang-up once the goodbye is
heard (``heard``), the follow-up after tool results (``follow_up``), the quiet moment for a
session rollover (``active``, ``idle``).

Every change holds the one lock; a callback (``send``, ``unanswered``, ``played_out``) is never
called under it. An event the table refuses is counted (``turn_events_refused``) and logged once
per kind: it never raises into a call's thread.
"""
from __future__ import annotations

import itertools
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Callable

from ..locks import state_lock
from ..model import protocol as rt
from .metrics import CallMetrics
from .turn import AgentTurn, Step, TurnEvent, TurnState

RECENT = 16
"""Turns remembered after they stop being current (late deltas arrive within seconds)."""
MAX_WAITING = 16
"""Requests waiting for the line; past this the oldest is dropped (counted)."""


@dataclass(frozen=True)
class Request:
    """A response the bridge wants, waiting for the line; ``turn`` is its handle from the start."""

    kind: str
    instructions: str | None
    out_of_band: bool
    event_id: str
    turn: AgentTurn


@dataclass(frozen=True)
class Floor:
    """The current turn, as the barge-in guard asks about it (read at one instant)."""

    greeting: bool = False  # it is the greeting (not interruptible unless configured)
    active: bool = False  # the model is still making it
    interrupted: bool = False  # the procedure already ran for it


@dataclass(frozen=True)
class Interruption:
    """What a barge-in locked: the turn it interrupts and what it must undo."""

    response_id: str | None
    item_id: str | None
    was_active: bool
    received_bytes: int


def _no_send(_text: str) -> bool:
    return False


class Turns:
    """The requested, current and recent agent turns, and the line of requests; thread-safe."""

    def __init__(self, send: Callable[[str], bool] = _no_send, metrics: CallMetrics | None = None,
                 log: Any = None, clock: Callable[[], float] = lambda: 0.0, created_timeout_s: float = 5.0,
                 unanswered: Callable[[str], None] | None = None,
                 played_out: Callable[[str], bool] | None = None) -> None:
        self._send = send
        self._metrics = metrics if metrics is not None else CallMetrics()
        self._log = log
        self._clock = clock
        self._created_timeout_s = created_timeout_s
        self._unanswered = unanswered  # a request neither created nor refused in time: the session is dead
        self._played_out = played_out  # has an audio item been heard in full (its last mark played)?
        self._lock = state_lock()
        self._recent: "OrderedDict[str, AgentTurn]" = OrderedDict()
        self._items: dict[str, AgentTurn] = {}  # audio item id -> its turn (same bound)
        self._current: AgentTurn | None = None
        self._asked: tuple[Request, float] | None = None  # sent, not yet created or refused (and when)
        self._other_created = False  # a turn not matching ours was created since ours was asked for
        self._waiting: "deque[Request]" = deque()
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)  # orders tool calls and caller speech (clock ties cannot)
        self._calls_at: dict[str, int] = {}  # response id -> when its first tool call came (same bound)
        self._caller_spoke = 0  # when the caller's latest speech began

    # ------------------------------------------------------------------ requests (any thread)
    def request(self, kind: str, instructions: str | None = None, out_of_band: bool = False) -> AgentTurn:
        """Ask for a turn now if the line is free, else after the current one. Returns its handle:
        the same ``AgentTurn`` through a refusal or a session switch, until it is created and done."""
        event_id = f"vb_{kind}_{next(self._ids)}"
        req = Request(kind, instructions, out_of_band, event_id,
                      AgentTurn(None, kind, TurnState.REQUESTED, event_id=event_id))
        with self._lock:
            if len(self._waiting) >= MAX_WAITING:
                self._step(self._waiting.popleft().turn, TurnEvent.LOST)
                self._metrics.add("response_requests_dropped")
            self._waiting.append(req)
        self._pump()
        return req.turn

    def withdraw(self, kind: str) -> int:
        """Forget waiting requests of ``kind`` (e.g. an idle nudge once the caller speaks)."""
        with self._lock:
            gone = [r for r in self._waiting if r.kind == kind]
            self._waiting = deque(r for r in self._waiting if r.kind != kind)
            for req in gone:
                self._step(req.turn, TurnEvent.LOST)
            return len(gone)

    @property
    def idle(self) -> bool:
        """No turn active, none requested, none waiting."""
        with self._lock:
            return not self._line_busy() and not self._waiting

    # ------------------------------------------------------------------ model events (model thread)
    def created(self, response_id: str, kind: str | None = None) -> AgentTurn:
        """response.created: our requested turn if its kind matches, else one the model began itself."""
        with self._lock:
            asked = self._asked
            if asked is not None and kind == asked[0].kind:
                self._asked, turn = None, asked[0].turn
                turn.id = response_id
            else:  # the model's own (server VAD), or a request whose kind did not come back
                self._other_created = self._other_created or asked is not None
                turn = AgentTurn(response_id, kind, TurnState.REQUESTED)
            self._step(turn, TurnEvent.CREATED)
            self._current = turn
            self._remember(turn)
            return turn

    def item_added(self, response_id: str, item_id: str) -> None:
        """An assistant message item: the one whose audio is played and perhaps truncated."""
        with self._lock:
            turn = self._recent.get(response_id)
            if turn is not None and turn.item_id is None:
                self._set_item(turn, item_id)

    def audio(self, response_id: str, item_id: str, nbytes: int) -> bool:
        """Count a delta; False if it belongs to an interrupted turn or item (drop it). A delta of
        a turn never seen (or long forgotten) still plays."""
        with self._lock:
            owner = self._items.get(item_id)
            turn = self._recent.get(response_id)
            if turn is not None:
                self._step(turn, TurnEvent.AUDIO)
            if (owner is not None and owner.interrupted) or (turn is not None and turn.interrupted):
                return False
            if turn is not None and turn.item_id is None:
                self._set_item(turn, item_id)
            if turn is not None and turn.item_id == item_id:
                turn.audio_bytes += nbytes
            return True

    def audio_ended(self, response_id: str) -> bool:
        """True exactly once per uninterrupted turn: time to pad and mark its tail."""
        with self._lock:
            turn = self._recent.get(response_id)
            if turn is None or turn.interrupted or turn.audio_ended:
                return False
            turn.audio_ended = True
            return True

    def done(self, response_id: str) -> AgentTurn | None:
        """response.done: the model finished the turn; the line may be free for the next request."""
        with self._lock:
            turn = self._recent.get(response_id)
            if turn is not None:
                self._step(turn, TurnEvent.DONE)
        self._pump()
        return turn

    def refused(self, event_id: str | None) -> bool:
        """An ``error`` answered one of our requests: True if it was a busy refusal (it will be retried)."""
        with self._lock:
            asked = self._asked
            if asked is None or event_id != asked[0].event_id:
                return False
            self._asked = None
            self._waiting.appendleft(asked[0])  # still requested: it goes out again after the winner
            self._metrics.add("response_requests_retried")
        self._pump()
        return True

    def played(self, item_id: str, kind: str) -> AgentTurn:
        """Audio of the bridge's own that someone waits to be heard (the apology): a turn born
        spoken (all its audio is in hand, no model makes it), heard once its last mark is played."""
        with self._lock:
            turn = AgentTurn(item_id, kind, TurnState.SPOKEN, audio_ended=True)
            self._remember(turn)
            self._set_item(turn, item_id)
            return turn

    # ------------------------------------------------------------------ tools and the caller (model thread)
    def tool_called(self, response_id: str) -> None:
        """The turn made a function call (its first one counts)."""
        with self._lock:
            if response_id not in self._calls_at:
                self._calls_at[response_id] = next(self._seq)
                while len(self._calls_at) > RECENT:
                    del self._calls_at[next(iter(self._calls_at))]

    def caller_spoke(self) -> None:
        """The caller began a turn of their own (server VAD)."""
        with self._lock:
            self._caller_spoke = next(self._seq)

    def follow_up(self, response_id: str) -> bool:
        """The tool-result-then-respond rule: should a response follow this turn's tool results?
        Not if the caller has spoken since its calls began: their new turn is answered instead,
        with the results already in the conversation."""
        with self._lock:
            return self._caller_spoke < self._calls_at.get(response_id, self._caller_spoke + 1)

    # ------------------------------------------------------------------ barge-in
    @property
    def current(self) -> AgentTurn | None:
        return self._current

    @property
    def active(self) -> bool:
        """The current turn is being made by the model (created, not yet done or cut)."""
        current = self._current
        return current is not None and current.active

    def floor(self) -> Floor:
        """The current turn's facts for the barge-in guard ("never during the greeting", ...)."""
        with self._lock:
            turn = self._current
            if turn is None:
                return Floor()
            return Floor(turn.greeting, turn.active, turn.interrupted)

    def get(self, response_id: str) -> AgentTurn | None:
        with self._lock:
            return self._recent.get(response_id)

    def lock_for_interruption(self) -> Interruption:
        """Cut the current turn (its late deltas will be dropped); what the procedure must undo."""
        with self._lock:
            turn = self._current
            if turn is None:
                return Interruption(None, None, False, 0)
            was_active = turn.active
            self._step(turn, TurnEvent.INTERRUPT)
            return Interruption(turn.id, turn.item_id, was_active, turn.audio_bytes)

    def finish_interruption(self, response_id: str | None) -> bool:
        """The procedure is over: forget the current turn, only if it is still the one interrupted."""
        with self._lock:
            turn = self._current
            if turn is None or turn.id != response_id:
                return False
            self._current = None
            return True

    # ------------------------------------------------------------------ heard (run thread)
    def heard(self, turn: AgentTurn | None) -> bool:
        """The caller heard every word of this turn (a handle from ``request``, ``created``, ``get``)."""
        with self._lock:
            return turn is not None and turn.heard

    def poll(self, now: float) -> None:
        """The run thread's timer: spoken turns whose last mark came back become heard; a request
        the server never answered means a dead session (see ``_overdue``); then send what waits.

        It runs 25 times a second per call and almost always finds nothing to do: what it looks
        at is read under one acquisition, and each step runs only if that found work for it (a
        request or a wait that comes after this look is the next poll's, 40 ms on)."""
        with self._lock:
            playing = self._playing()
            asked = self._asked
            waiting = bool(self._waiting)
        if playing:
            self._poll_heard(playing)
        if asked is not None and now - asked[1] > self._created_timeout_s:
            self._overdue(now)
            waiting = True  # a request not answered may have gone back to the queue
        if waiting:
            self._pump()

    def _playing(self) -> list[AgentTurn]:
        """Spoken turns still waiting to be heard (under the lock)."""
        if self._played_out is None:
            return []
        return [t for t in self._recent.values() if t.state is TurnState.SPOKEN and t.item_id]

    def _poll_heard(self, playing: list[AgentTurn]) -> None:
        assert self._played_out is not None
        heard = [t for t in playing if self._played_out(t.item_id or "")]  # outside the lock: outbound's own
        with self._lock:
            for turn in heard:
                if turn.state is TurnState.SPOKEN:  # not cut meanwhile
                    self._step(turn, TurnEvent.HEARD)

    def _overdue(self, now: float) -> None:
        """A request neither created nor refused in time is replaced (``unanswered``) and asked again
        of the new session. If some other turn was created meanwhile the session is alive (a server
        that does not echo ``response.metadata`` looks like this): the request is only forgotten."""
        with self._lock:
            asked = self._asked
            if asked is None or now - asked[1] <= self._created_timeout_s:
                return
            self._asked = None
            alive = self._other_created
            if alive:
                self._step(asked[0].turn, TurnEvent.LOST)
            else:
                self._waiting.appendleft(asked[0])
        kind = asked[0].kind
        if alive:
            self._once("request:unmatched", "no response.created matched the %s request within %.1f s, "
                       "though others were created: moving on", kind, self._created_timeout_s)
            return
        self._metrics.add("response_requests_unanswered")
        self._once("request:unanswered", "no response.created for the %s request within %.1f s: the "
                   "Realtime session is not answering", kind, self._created_timeout_s)
        if self._unanswered is not None:
            self._unanswered(kind)

    # ------------------------------------------------------------------ safety fuses, session switches
    def lose_active(self) -> int:
        """Every active turn will never finish (a safety fuse, or the session was replaced): what
        they said still plays out; a request on its way is asked again. Returns how many were active."""
        with self._lock:
            lost = [t for t in self._recent.values() if t.active]
            for turn in lost:
                self._step(turn, TurnEvent.LOST)
            asked, self._asked = self._asked, None
            if asked is not None:
                self._waiting.appendleft(asked[0])
        self._pump()
        return len(lost)

    # ------------------------------------------------------------------ internals (under the lock)
    def _line_busy(self) -> bool:
        return self._asked is not None or any(t.active for t in self._recent.values())

    def _pump(self) -> None:
        with self._lock:
            if self._line_busy() or not self._waiting:
                return
            req = self._waiting.popleft()
            attempt = (req, self._clock())
            self._asked, self._other_created = attempt, False
        self._metrics.add("response_requests")
        if not self._send(rt.response_create(req.instructions, req.kind, req.event_id, req.out_of_band)):
            with self._lock:  # no session right now (being replaced): asked again once there is one,
                if self._asked is attempt:  # unless a switch already did that (and perhaps sent it again)
                    self._asked = None
                    self._waiting.appendleft(req)

    def _step(self, turn: AgentTurn, event: TurnEvent) -> None:
        before = turn.state
        if turn.apply(event, self._clock()) is Step.ILLEGAL:
            self._metrics.add("turn_events_refused")
            self._once(f"turn:{before.value}:{event.value}", "turn %s: %s refused while %s; further ones "
                       "only counted", turn.id or turn.kind, event.value, before.value, level=logging.INFO)

    def _once(self, kind: str, msg: str, *args: Any, level: int = logging.WARNING) -> None:
        if self._log is not None:
            self._log.once(kind, msg, *args, level=level)

    def _remember(self, turn: AgentTurn) -> None:
        assert turn.id is not None
        self._recent[turn.id] = turn
        self._recent.move_to_end(turn.id)
        while len(self._recent) > RECENT:
            _, old = self._recent.popitem(last=False)
            if old.item_id is not None and self._items.get(old.item_id) is old:
                del self._items[old.item_id]

    def _set_item(self, turn: AgentTurn, item_id: str) -> None:
        turn.item_id = item_id
        self._items[item_id] = turn
