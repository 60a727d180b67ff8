"""JSON from a peer (Twilio, the Realtime service, the model's tool arguments): never more than a ValueError.

``json.loads`` raises ``RecursionError`` on input nested about a thousand deep (one 60 KB
``[[[...`` message), and a value nested a little less deep can still make any later ``repr``,
``str`` or ``json.dumps`` of it recurse past the limit. Every parser of peer input decodes
through ``loads``: anything that is not JSON, or is nested deeper than ``MAX_DEPTH``, is one
``ValueError`` the parser turns into its usual "malformed" outcome. The depth is only walked
for messages with more than ``MAX_DEPTH`` brackets, so the 50-a-second audio messages pay a
``str.count`` for it.
"""
from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32
"""Deeper than any message either service sends (a session with tool schemas nests under 10)."""


def loads(text: "str | bytes") -> Any:
    """The decoded value; ``ValueError`` (never anything else) if it is not JSON or nests too deep."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"JSON nested too deeply ({len(text)} chars)") from None
    if _brackets(text) > MAX_DEPTH and depth(value) > MAX_DEPTH:
        raise ValueError(f"JSON nested more than {MAX_DEPTH} deep ({len(text)} chars)")
    return value


def _brackets(text: "str | bytes") -> int:
    if isinstance(text, str):
        return text.count("[") + text.count("{")
    return text.count(b"[") + text.count(b"{")


def depth(value: Any) -> int:
    """How deep lists and objects nest in ``value`` (a scalar: 0), walked without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            return level  # deep enough to refuse: no need to walk the rest
        stack.extend((child, level + 1) for child in children)
    return deepest
