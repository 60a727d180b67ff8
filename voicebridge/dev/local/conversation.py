"""The conversation the local Realtime server keeps: items in order, never with audio bytes."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from .events import ClientError


@dataclass
class Item:
    """A conversation item as the server remembers it."""

    id: str
    type: str
    role: "str | None"
    content: list[dict]
    status: str = "completed"
    audio_ms: int = 0  # assistant audio generated so far (truncate bound)
    extra: dict = field(default_factory=dict)

    def wire(self) -> dict:
        data = {"id": self.id, "object": "realtime.item", "type": self.type, "status": self.status}
        if self.role is not None:
            data["role"] = self.role
        if self.type == "message":
            data["content"] = copy.deepcopy(self.content)
        data.update(copy.deepcopy(self.extra))
        return data


class Conversation:
    """Items by id, in conversation order."""

    def __init__(self) -> None:
        self._items: dict[str, Item] = {}
        self._order: list[str] = []

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def __iter__(self):  # type: ignore[no-untyped-def]
        return (self._items[i] for i in self._order)

    @property
    def last_id(self) -> "str | None":
        return self._order[-1] if self._order else None

    def add(self, item: Item, previous: "str | None") -> None:
        """Insert after ``previous`` (None or ``"root"``: at the start)."""
        index = 0 if previous in (None, "root") else self._order.index(previous) + 1
        self._order.insert(index, item.id)
        self._items[item.id] = item

    def append(self, item: Item) -> "str | None":
        """Add at the end; returns the id of the item before it."""
        previous = self.last_id
        self.add(item, previous)
        return previous

    def previous_of(self, item_id: str) -> "str | None":
        index = self._order.index(item_id) if item_id in self._order else 0
        return self._order[index - 1] if index > 0 else None

    def get(self, event: dict) -> Item:
        """The item named by a client event's ``item_id`` (a ClientError if absent)."""
        item_id = event.get("item_id")
        if not isinstance(item_id, str):
            raise ClientError("missing_required_parameter", "Missing required parameter: 'item_id'.", "item_id")
        item = self._items.get(item_id)
        if item is None:
            raise ClientError("item_not_found", f"Item with item_id not found: {item_id}", "item_id")
        return item

    def find(self, item_id: str) -> "Item | None":
        return self._items.get(item_id)

    def call(self, call_id: object) -> "Item | None":
        """The function_call item with ``call_id``."""
        return next((i for i in self._items.values() if i.type == "function_call" and i.extra.get("call_id") == call_id
                     and isinstance(call_id, str)), None)

    def remove(self, item_id: str) -> None:
        self._order.remove(item_id)
        del self._items[item_id]


def item_from_client(raw: dict, item_id: str) -> Item:
    """A ``conversation.item.create`` item, checked as the GA server checks it."""
    kind, role = raw.get("type"), raw.get("role")
    if kind == "message":
        if role not in ("user", "system", "assistant"):
            raise ClientError("invalid_value", "item.role must be 'user', 'system' or 'assistant'.", "item.role")
        content = raw.get("content")
        if not isinstance(content, list):
            raise ClientError("missing_required_parameter", "Missing required parameter: 'item.content'.",
                              "item.content")
        if role == "assistant" and any(isinstance(c, dict) and c.get("type") == "output_audio" for c in content):
            raise ClientError("invalid_value", "Assistant audio items cannot be created by the client.",
                              "item.content")
        content = [{k: v for k, v in c.items() if k != "audio"} if isinstance(c, dict) else c for c in content]
        return Item(item_id, "message", role, content)
    if kind in ("function_call", "function_call_output"):
        extra = {k: raw[k] for k in ("call_id", "name", "arguments", "output") if k in raw}
        return Item(item_id, kind, None, [], extra=extra)
    raise ClientError("invalid_value", f"Invalid value: '{kind}'. Supported item types: message, function_call, "
                      "function_call_output.", "item.type")
