"""Ending and transferring the call, once the caller has heard the agent's last words.

``end_call`` (the model's tool, the goodbye guard, an idle or length limit) and ``transfer``
never cut the agent off: the bridge waits until the agent turn that carries the goodbye (or the
handoff line) is heard (``Turns.heard``: that turn's last ``mark`` came back played), then stops
the stream. Twilio then runs the TwiML after ``<Connect>``: its ``action``
URL, where the Flask integration answers ``<Dial>`` for a transfer and ``<Hangup/>`` otherwise.
If the response that asked for it carried no audio, the bridge first asks the model for the
goodbye (or handoff line). The wait is bounded (``end_call_timeout_s``) in case a mark never
comes back. A barge-in on the goodbye cancels the hang-up: the caller wanted to say something.

One ending per call (:func:`decide`): while an ending is pending, another request does not
silently win or lose. A transfer replaces a hang-up that is only pending (the caller asked for a
person: that beats a goodbye, an idle hang-up or a wrap-up); anything else keeps the first
ending, and the tool result says so, so the model is always told what will really happen. Once
the ending has been carried out nothing changes it, and ``transfer_target`` (what ``/voice/after``
answers) is the ending that was carried out.
"""
from __future__ import annotations

import enum
import json
import re
import threading
from dataclasses import dataclass
from typing import Callable

from .record import CallRecord
from .turn import AgentTurn
from .turns import Turns
from .context import CallContext

GOODBYE = re.compile(r"\b(good ?bye|bye(?: bye)?|have a (?:great|good|nice) (?:day|evening|one))\W*\Z", re.IGNORECASE)
"""The end of an agent turn that says goodbye (the guard for a model that forgets end_call)."""


@dataclass
class Pending:
    why: str  # the close reason
    deadline: float
    turn: AgentTurn | None  # the turn that must be heard first: the one with the last words, or the one asked for
    kind: str | None  # the kind of turn we asked for (withdrawn if another ending replaces this one)
    transfer_to: str | None = None
    destination: str | None = None  # the transfer's name, as the model gave it


class Decision(enum.Enum):
    """What a request to end the call does, given the ending already pending (if any)."""

    STARTED = "started"  # nothing was pending: this request ends the call
    REPLACED = "replaced"  # a transfer takes the place of a hang-up that was only pending
    ALREADY = "already"  # the same ending is already under way
    REFUSED = "refused"  # another ending is under way, or already carried out: it stands


def decide(current: Pending | None, carried_out: bool, new: Pending) -> Decision:
    """The one-ending rule: a transfer beats a pending hang-up; otherwise the first ending stands."""
    if current is None:
        return Decision.STARTED
    same = current.transfer_to == new.transfer_to
    if carried_out:
        return Decision.ALREADY if same else Decision.REFUSED
    if new.transfer_to is not None and current.transfer_to is None:
        return Decision.REPLACED
    return Decision.ALREADY if same else Decision.REFUSED


def _result(ok: bool, text: str) -> str:
    return json.dumps({"ok": True, "note": text} if ok else {"ok": False, "error": text}, separators=(",", ":"))


class CallControl:
    """Pending end of the call: what must be heard first, and when to give up waiting."""

    def __init__(self, ctx: CallContext, turns: Turns, record: CallRecord, close: Callable[[str], None]) -> None:
        config, metrics, log = ctx.config, ctx.metrics, ctx.log
        self._config = config
        self._turns = turns
        self._record = record
        self._metrics = metrics
        self._log = log
        self._close = close
        self._lock = threading.Lock()
        self._pending: Pending | None = None
        self._carried_out = False  # the pending ending has been carried out: nothing changes it now
        self.transfer_target: str | None = None  # set when the call ends in a transfer

    @property
    def ending(self) -> bool:
        return self._pending is not None

    # ------------------------------------------------------------------ requests
    def end_call(self, response_id: str | None, reason: str, now: float) -> str:
        """The model's ``end_call`` (or a limit): hang up once ``response_id``'s audio is heard.
        The result tells the model what will happen (see :func:`decide`)."""
        decision, current = self._begin(Pending("agent ended the call", now + self._config.end_call_timeout_s,
                                                 None, None), response_id, "goodbye",
                                        self._config.goodbye_instructions, reason)
        if decision is Decision.STARTED:
            return _result(True, "the call ends after your goodbye has been heard")
        if decision is Decision.ALREADY:
            return _result(True, "the call was already ending: it ends after the goodbye has been heard")
        assert current is not None
        return _result(False, f"not hung up: the caller is being transferred to {current.destination}, "
                              "and the call ends with that transfer")

    def transfer(self, response_id: str | None, destination: str, now: float) -> str:
        target = self._config.transfer_targets.get(destination)
        if target is None:
            return _result(False, "unknown destination")
        pending = Pending(f"transferred to {destination}", now + self._config.end_call_timeout_s, None, None, target,
                           destination)
        decision, current = self._begin(pending, response_id, "transfer", self._config.transfer_instructions,
                                        f"transfer to {destination}")
        if decision is Decision.STARTED:
            return _result(True, "the caller is transferred after your last sentence has been heard")
        if decision is Decision.REPLACED:
            return _result(True, "the caller is transferred instead of hung up, after your last sentence has "
                                 "been heard")
        if decision is Decision.ALREADY:
            return _result(True, f"the caller was already being transferred to {destination}")
        assert current is not None
        if current.transfer_to is None:
            return _result(False, "not transferred: the call has already been hung up")
        return _result(False, f"not transferred to {destination}: the caller is already being transferred to "
                              f"{current.destination}")

    def say_then_end(self, kind: str, instructions: str, why: str, now: float) -> None:
        """A limit of the bridge's own: ask for a last turn, hang up once it is heard."""
        self._begin(Pending(why, now + self._config.end_call_timeout_s, None, None), None, kind, instructions, why)

    def hang_up_now(self, why: str) -> None:
        """A hard limit: no last words. A pending transfer still happens (Twilio dials it next)."""
        with self._lock:
            pending, self._carried_out = self._pending, True
        transfer = pending.transfer_to if pending is not None else None
        self._record.add("control", why)
        self.transfer_target = transfer
        self._metrics.add("transfers" if transfer else "agent_hangups")
        self._close(why)

    def agent_finished(self, response_id: str, text: str, now: float) -> None:
        """The goodbye guard: an agent turn ending in goodbye ends the call even without end_call."""
        turn = self._turns.get(response_id)
        if turn is not None and turn.interrupted:
            return
        if self._config.hangup_on_goodbye and not self.ending and GOODBYE.search(text.strip()):
            self._log.info("the agent said goodbye without end_call: ending the call after it is heard")
            self.end_call(response_id, "goodbye heard", now)

    def _begin(self, pending: Pending, response_id: str | None, kind: str, instructions: str,
               why: str) -> tuple[Decision, Pending | None]:
        """Make ``pending`` the call's ending if the one-ending rule lets it; (decision, ending before)."""
        turn = self._turns.get(response_id) if response_id else None
        has_audio = turn is not None and turn.item_id is not None and not turn.interrupted
        with self._lock:
            current = self._pending
            decision = decide(current, self._carried_out, pending)
            if decision in (Decision.ALREADY, Decision.REFUSED):
                return decision, current
            self._pending = pending
            if has_audio:
                pending.turn = turn
            else:
                pending.kind = kind
        if current is not None and current.kind is not None:
            self._turns.withdraw(current.kind)  # its last words are no longer wanted
        self._record.add("control", why if current is None else f"{why} (instead of the pending hang-up)")
        self._log.info("%s: ending the call once the last words are heard%s", why,
                       "" if current is None else " (it replaces the pending hang-up)")
        if not has_audio:
            asked = self._turns.request(kind, instructions)  # its handle: heard once that turn is
            with self._lock:
                if self._pending is pending:
                    pending.turn = asked
        return decision, current

    # ------------------------------------------------------------------ events
    def interrupted(self, response_id: str | None) -> None:
        """A barge-in on the last words: the caller has more to say, the call goes on."""
        with self._lock:
            pending = self._pending
            if (pending is None or self._carried_out or pending.turn is None or response_id is None
                    or pending.turn.id != response_id):
                return
            self._pending = None
        self._metrics.add("hangups_cancelled")
        self._record.add("control", "hang-up cancelled: the caller spoke over the last words")
        self._log.info("the caller spoke over the last words: the call goes on")

    def poll(self, now: float) -> None:
        """Hang up once the last words have been heard, or when the wait runs out (run thread)."""
        pending = self._pending
        if pending is None:
            return
        heard = self._turns.heard(pending.turn)
        if not heard and now <= pending.deadline:
            return
        with self._lock:
            if self._pending is not pending or self._carried_out:
                return  # replaced meanwhile (checked again next time), or a hard limit came first
            self._carried_out = True
        if not heard:
            self._metrics.add("hangup_mark_timeouts")
            self._log.warning("the last words' mark never came back: ending the call anyway")
        self.transfer_target = pending.transfer_to
        self._metrics.add("transfers" if pending.transfer_to else "agent_hangups")
        self._close(pending.why)
