"""Ending and transferring the call, once the caller has heard the agent's last words.

``end_call`` (the model's tool, the goodbye guard, an idle or length limit) and ``transfer``
never cut the agent off: the bridge waits until the audio of the response that carries the
goodbye (or the handoff line) has been played, which it knows from that item's last ``mark``
echo, then stops the stream. Twilio then runs the TwiML after ``<Connect>``: its ``action``
URL, where the Flask integration answers ``<Dial>`` for a transfer and ``<Hangup/>`` otherwise.
If the response that asked for it carried no audio, the bridge first asks the model for the
goodbye (or handoff line). The wait is bounded (``end_call_timeout_s``) in case a mark never
comes back. A barge-in on the goodbye cancels the hang-up: the caller wanted to say something.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Callable

from .config import BridgeConfig
from .metrics import CallMetrics
from .outbound import OutboundAudio
from .record import CallRecord
from .response_requests import ResponseRequests
from .responses import ResponseTracker

GOODBYE = re.compile(r"\b(good ?bye|bye(?: bye)?|have a (?:great|good|nice) (?:day|evening|one))\W*\Z", re.IGNORECASE)
"""The end of an agent turn that says goodbye (the guard for a model that forgets end_call)."""


@dataclass
class _Pending:
    why: str  # the close reason
    deadline: float
    response_id: str | None  # the response whose audio must be heard first (None: not yet created)
    kind: str | None  # the kind of response we asked for, while waiting for it to be created
    transfer_to: str | None = None


class CallControl:
    """Pending end of the call: what must be heard first, and when to give up waiting."""

    def __init__(self, config: BridgeConfig, outbound: OutboundAudio, responses: ResponseTracker,
                 requests: ResponseRequests, record: CallRecord, metrics: CallMetrics, log: object,
                 close: Callable[[str], None]) -> None:
        self._config = config
        self._outbound = outbound
        self._responses = responses
        self._requests = requests
        self._record = record
        self._metrics = metrics
        self._log = log
        self._close = close
        self._lock = threading.Lock()
        self._pending: _Pending | None = None
        self.transfer_target: str | None = None  # set when the call ends in a transfer

    @property
    def ending(self) -> bool:
        return self._pending is not None

    # ------------------------------------------------------------------ requests
    def end_call(self, response_id: str | None, reason: str, now: float) -> str:
        """The model's ``end_call`` (or a limit): hang up once ``response_id``'s audio is heard."""
        self._begin(_Pending("agent ended the call", now + self._config.end_call_timeout_s, None, None),
                    response_id, "goodbye", self._config.goodbye_instructions, reason)
        return '{"ok":true,"note":"the call ends after your goodbye has been heard"}'

    def transfer(self, response_id: str | None, destination: str, now: float) -> str:
        target = self._config.transfer_targets.get(destination)
        if target is None:
            return '{"ok":false,"error":"unknown destination"}'
        pending = _Pending(f"transferred to {destination}", now + self._config.end_call_timeout_s, None, None, target)
        self._begin(pending, response_id, "transfer", self._config.transfer_instructions, f"transfer to {destination}")
        return '{"ok":true,"note":"the caller is transferred after your last sentence has been heard"}'

    def say_then_end(self, kind: str, instructions: str, why: str, now: float) -> None:
        """A limit of the bridge's own: ask for a last turn, hang up once it is heard."""
        self._begin(_Pending(why, now + self._config.end_call_timeout_s, None, None), None, kind, instructions, why)

    def hang_up_now(self, why: str) -> None:
        """A hard limit: no last words."""
        self._record.add("control", why)
        self._metrics.add("agent_hangups")
        self._close(why)

    def agent_finished(self, response_id: str, text: str, now: float) -> None:
        """The goodbye guard: an agent turn ending in goodbye ends the call even without end_call."""
        response = self._responses.get(response_id)
        if response is not None and response.interrupted:
            return
        if self._config.hangup_on_goodbye and not self.ending and GOODBYE.search(text.strip()):
            self._log.info("the agent said goodbye without end_call: ending the call after it is heard")
            self.end_call(response_id, "goodbye heard", now)

    def _begin(self, pending: _Pending, response_id: str | None, kind: str, instructions: str, why: str) -> None:
        response = self._responses.get(response_id) if response_id else None
        has_audio = response is not None and response.item_id is not None and not response.interrupted
        with self._lock:
            if self._pending is not None:
                return
            self._pending = pending
            if has_audio:
                pending.response_id = response_id
            else:
                pending.kind = kind
        self._record.add("control", why)
        self._log.info("%s: ending the call once the last words are heard", why)
        if not has_audio:
            self._requests.request(kind, instructions)

    # ------------------------------------------------------------------ events
    def response_created(self, response_id: str, kind: str | None) -> None:
        with self._lock:
            pending = self._pending
            if pending is not None and pending.kind is not None and kind == pending.kind:
                pending.response_id, pending.kind = response_id, None

    def interrupted(self, response_id: str | None) -> None:
        """A barge-in on the last words: the caller has more to say, the call goes on."""
        with self._lock:
            pending = self._pending
            if pending is None or pending.response_id is None or pending.response_id != response_id:
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
        item = None
        if pending.response_id is not None:
            response = self._responses.get(pending.response_id)
            item = response.item_id if response is not None else None
        heard = item is not None and self._outbound.played_out(item)
        if not heard and now <= pending.deadline:
            return
        if not heard:
            self._metrics.add("hangup_mark_timeouts")
            self._log.warning("the last words' mark never came back: ending the call anyway")
        self.transfer_target = pending.transfer_to
        self._metrics.add("transfers" if pending.transfer_to else "agent_hangups")
        self._close(pending.why)
