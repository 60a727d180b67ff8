"""What the model is saying: one small object per response (sans-IO).

A ``Response`` is to a model turn what LiveKit's ``SpeechHandle`` is to an utterance: its id,
its audio item, how much audio arrived, whether its audio has ended and whether a barge-in
interrupted it. ``ResponseTracker`` keeps the current response and a few recent ones, so late
deltas of an interrupted response can still be recognised while memory stays bounded however
long the call runs. Every change goes through the tracker's one lock: the model's receive
thread creates and finishes responses while a barge-in (run thread or receive thread) locks
the current one.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

RECENT = 16
"""Responses remembered after they stop being current (late deltas arrive within seconds)."""


@dataclass
class Response:
    """One model response and its (single) audio item."""

    id: str
    kind: str | None = None  # the bridge request behind it (greeting, tool_result, ...); None = the model's own
    item_id: str | None = None
    active: bool = True  # response.created seen, response.done not yet
    audio_bytes: int = 0  # model audio received for ``item_id``
    audio_ended: bool = False  # the end of its audio was handed to the outbound path
    interrupted: bool = False  # a barge-in ran for it: later deltas are dropped

    @property
    def greeting(self) -> bool:
        return self.kind == "greeting"


@dataclass(frozen=True)
class Interruption:
    """What a barge-in locked: the response it interrupts and what it must undo."""

    response_id: str | None
    item_id: str | None
    was_active: bool
    received_bytes: int


class ResponseTracker:
    """The current response plus a bounded memory of recent ones; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recent: "OrderedDict[str, Response]" = OrderedDict()
        self._items: dict[str, Response] = {}  # audio item id -> its response (same bound)
        self._current: Response | None = None

    # ------------------------------------------------------------------ model events
    def created(self, response_id: str, kind: str | None = None) -> Response:
        with self._lock:
            response = Response(response_id, kind)
            self._current = response
            self._remember(response)
            return response

    def item_added(self, response_id: str, item_id: str) -> None:
        """An assistant message item: the one whose audio we play and may truncate."""
        with self._lock:
            response = self._recent.get(response_id)
            if response is not None and response.item_id is None:
                self._set_item(response, item_id)

    def audio(self, response_id: str, item_id: str, nbytes: int) -> bool:
        """Count a delta; False if it belongs to an interrupted response or item (drop it)."""
        with self._lock:
            owner = self._items.get(item_id)
            response = self._recent.get(response_id)
            if (owner is not None and owner.interrupted) or (response is not None and response.interrupted):
                return False
            if response is not None and response.item_id is None:
                self._set_item(response, item_id)
            if response is not None and response.item_id == item_id:
                response.audio_bytes += nbytes
            return True

    def audio_ended(self, response_id: str) -> bool:
        """True exactly once per uninterrupted response: time to pad and mark its tail."""
        with self._lock:
            response = self._recent.get(response_id)
            if response is None or response.interrupted or response.audio_ended:
                return False
            response.audio_ended = True
            return True

    def done(self, response_id: str) -> Response | None:
        with self._lock:
            response = self._recent.get(response_id)
            if response is not None:
                response.active = False
            return response

    # ------------------------------------------------------------------ barge-in
    @property
    def current(self) -> Response | None:
        return self._current

    @property
    def active(self) -> bool:
        """A response is in progress (created, not yet done)."""
        current = self._current
        return current is not None and current.active

    def get(self, response_id: str) -> Response | None:
        with self._lock:
            return self._recent.get(response_id)

    def lock_for_interruption(self) -> Interruption:
        """Mark the current response interrupted (its late deltas will be dropped)."""
        with self._lock:
            response = self._current
            if response is None:
                return Interruption(None, None, False, 0)
            response.interrupted = True
            return Interruption(response.id, response.item_id, response.active, response.audio_bytes)

    def finish_interruption(self, response_id: str | None) -> bool:
        """Forget the current response, only if it is still the one interrupted."""
        with self._lock:
            response = self._current
            if response is None or response.id != response_id:
                return False
            response.active = False
            self._current = None
            return True

    def force_inactive(self) -> bool:
        """Safety fuse: the current response never finished. True if one was active."""
        with self._lock:
            response = self._current
            if response is None or not response.active:
                return False
            response.active = False
            return True

    # ------------------------------------------------------------------ bounded memory
    def _remember(self, response: Response) -> None:
        self._recent[response.id] = response
        while len(self._recent) > RECENT:
            _, old = self._recent.popitem(last=False)
            if old.item_id is not None and self._items.get(old.item_id) is old:
                del self._items[old.item_id]

    def _set_item(self, response: Response, item_id: str) -> None:
        response.item_id = item_id
        self._items[item_id] = response
