"""Server events of the local Realtime server: ids, the event envelope, client errors.

Every server event carries a fresh ``event_id``; object ids (``sess_``, ``conv_``, ``item_``,
``resp_``, ``call_``) share one counter per connection, tagged so ids from two connections never
collide. An observer (the server's statistics) sees every event made.
"""
from __future__ import annotations

import itertools
import logging
from typing import Any, Callable

logger = logging.getLogger(__name__)

Event = dict[str, Any]
Observer = Callable[[str, Event], None]
ERROR_TYPE = "invalid_request_error"


class ClientError(Exception):
    """A client mistake: becomes an ``error`` event; the session continues."""

    def __init__(self, code: str, message: str, param: "str | None" = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


class EventMaker:
    """Builds server events and ids for one connection, reporting each to the observer."""

    def __init__(self, tag: str, observer: "Observer | None" = None) -> None:
        self._tag = tag
        self._counter = itertools.count(1)
        self._observer = observer

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{self._tag}{next(self._counter):05d}"

    def event(self, type_: str, **fields: Any) -> Event:
        event = {"type": type_, "event_id": self.new_id("event"), **fields}
        if self._observer is not None:
            self._observer("server", event)
        return event

    def error(self, code: str, message: str, param: "str | None" = None,
              client_event_id: "str | None" = None) -> Event:
        logger.info("client error %s: %s", code, message)
        return self.event("error", error={"type": ERROR_TYPE, "code": code, "message": message,
                                         "param": param, "event_id": client_event_id})

    def client(self, type_: str) -> None:
        """Count a client event (by type) with the observer."""
        if self._observer is not None:
            self._observer("client", {"type": type_})
