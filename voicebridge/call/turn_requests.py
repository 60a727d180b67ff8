"""Every response the bridge asks the model for: one at a time, never over an active one.

The Realtime service refuses ``response.create`` while a response is in progress
(``conversation_already_has_active_response``), and the model also starts responses of its own
(server VAD, at the end of each caller turn). The bridge asks for responses for many reasons
(the greeting, a tool's result, keypad digits, an idle nudge, a goodbye, a filler while a tool
runs, "continue" after a cough). ``ResponseRequests`` sends a request only when no response is
active and none it asked for is still on its way; the others wait, in order, for the current
response's ``response.done``. A request the server refuses anyway (a VAD response won the race)
goes back to the head of the line. Each request is tagged: its kind comes back in
``response.metadata`` and its ``event_id`` in an ``error``, so both are matched exactly.
"""
from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from ..model import protocol as rt
from .metrics import CallMetrics

MAX_WAITING = 16


@dataclass(frozen=True)
class Request:
    kind: str
    instructions: str | None
    out_of_band: bool
    event_id: str


class ResponseRequests:
    """The queue of the bridge's own ``response.create`` requests (thread-safe)."""

    def __init__(self, send: Callable[[str], bool], metrics: CallMetrics, log: Any,
                 clock: Callable[[], float], created_timeout_s: float = 5.0,
                 unanswered: Callable[[str], None] | None = None) -> None:
        self._send = send
        self._created_timeout_s = created_timeout_s
        self._unanswered = unanswered  # a request neither created nor refused in time: the session is dead
        self._metrics = metrics
        self._log = log
        self._clock = clock
        self._lock = threading.Lock()
        self._waiting: "deque[Request]" = deque()
        self._active = 0  # responses created and not yet done
        self._sent: tuple[Request, float] | None = None  # asked for, not yet created or refused
        self._other_created = False  # a response not matching ours was created since ours was sent
        self._ids = itertools.count(1)

    def request(self, kind: str, instructions: str | None = None, out_of_band: bool = False) -> None:
        """Ask for a response now if the line is free, else after the current one."""
        req = Request(kind, instructions, out_of_band, f"vb_{kind}_{next(self._ids)}")
        with self._lock:
            if len(self._waiting) >= MAX_WAITING:
                self._waiting.popleft()
                self._metrics.add("response_requests_dropped")
            self._waiting.append(req)
        self._pump()

    def withdraw(self, kind: str) -> int:
        """Forget waiting requests of ``kind`` (e.g. an idle nudge once the caller speaks)."""
        with self._lock:
            before = len(self._waiting)
            self._waiting = deque(r for r in self._waiting if r.kind != kind)
            return before - len(self._waiting)

    @property
    def idle(self) -> bool:
        """No response active, none on its way, none waiting."""
        with self._lock:
            return not self._active and self._sent is None and not self._waiting

    # ------------------------------------------------------------------ server events (model thread)
    def created(self, kind: str | None) -> None:
        with self._lock:
            self._active += 1
            if self._sent is not None and kind == self._sent[0].kind:
                self._sent = None
            elif self._sent is not None:
                self._other_created = True

    def done(self) -> None:
        with self._lock:
            self._active = max(0, self._active - 1)
        self._pump()

    def refused(self, event_id: str | None) -> bool:
        """An ``error`` answered one of our requests: True if it was a busy refusal (it will be retried)."""
        with self._lock:
            sent = self._sent
            if sent is None or event_id != sent[0].event_id:
                return False
            self._sent = None
            self._waiting.appendleft(sent[0])
            self._metrics.add("response_requests_retried")
        self._pump()
        return True

    def forget_active(self) -> None:
        """A response will never finish (safety fuse, or the session was replaced): stop waiting for
        it; a request still on its way is asked again."""
        with self._lock:
            self._active = 0
            if self._sent is not None:
                self._waiting.appendleft(self._sent[0])
                self._sent = None
        self._pump()

    def poll(self, now: float) -> None:
        """A request the server never answered means a dead session: it is replaced (``unanswered``)
        and the request asked again of the new one; then send what waits (run thread's timer).

        If some other response was created meanwhile the session is alive (a server that does not
        echo ``response.metadata`` looks like this): the request is only forgotten, as it was."""
        with self._lock:
            overdue = self._sent if self._sent is not None and now - self._sent[1] > self._created_timeout_s else None
            alive = self._other_created
            if overdue is not None:
                self._sent = None
                if not alive:
                    self._waiting.appendleft(overdue[0])
        if overdue is not None and alive:
            self._log.once("request:unmatched", "no response.created matched the %s request within %.1f s, "
                           "though others were created: moving on", overdue[0].kind, self._created_timeout_s)
        elif overdue is not None:
            self._metrics.add("response_requests_unanswered")
            self._log.once("request:unanswered", "no response.created for the %s request within %.1f s: the "
                           "Realtime session is not answering", overdue[0].kind, self._created_timeout_s)
            if self._unanswered is not None:
                self._unanswered(overdue[0].kind)
        self._pump()

    def _pump(self) -> None:
        with self._lock:
            if self._active or self._sent is not None or not self._waiting:
                return
            req = self._waiting.popleft()
            self._sent, self._other_created = (req, self._clock()), False
        self._metrics.add("response_requests")
        if not self._send(rt.response_create(req.instructions, req.kind, req.event_id, req.out_of_band)):
            with self._lock:  # no session right now (being replaced): asked again once there is one
                self._sent = None
                self._waiting.appendleft(req)
