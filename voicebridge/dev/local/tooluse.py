"""How the local test agent calls the tools a session offers: any tool, by name or by topic,
with arguments built from its JSON schema and the caller's digits or words (sans-IO).

The scripted agent knows no tool in advance; the session's ``tools`` (name -> parameters schema)
say what it may call. A caller asks for one by spelling its name on the keypad (``*`` + the
keys of the name's letters, optionally ``*`` + digits, then ``#``: what ``voicebridge call``'s
``tool:NAME[:DIGITS]`` step presses), or by topic ("I would like to check my order", then the
number: the offered tool that looks like an order lookup, else the first of the app's tools).
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from ...call.keypad import keypad_code

CONTROL_TOOLS = ("end_call", "transfer_call")
"""The bridge's own tools: not "the app's tools"."""
_NAMED = re.compile(r"\*(\d{2,})(?:\*(\d+))?")
_ID_LIKE = re.compile(r"(id|number|num|code|ref|reference|order|account|digits|phone|zip|pin)", re.IGNORECASE)

Schemas = Mapping[str, Mapping[str, Any]]


def named_tool(typed: str, tools: Schemas) -> "tuple[str, str | None] | None":
    """(tool name, digits) when keypad text spells an offered tool's name, else None."""
    match = _NAMED.search(typed)
    if match is None:
        return None
    code, digits = match.group(1), match.group(2)
    found = sorted(name for name in tools if keypad_code(name).startswith(code) or code.startswith(keypad_code(name)))
    return (found[0], digits) if found else None


def asks_by_name(typed: str) -> bool:
    """Keypad text in the ``*NAME[*DIGITS]`` form (whether or not it names an offered tool)."""
    return _NAMED.search(typed) is not None


def topical_tool(topic: str, tools: Schemas) -> str | None:
    """The app's tool for a topic: one whose name mentions it, else the first app tool offered."""
    own = [name for name in tools if name not in CONTROL_TOOLS]
    return next((name for name in own if topic in name.lower()), own[0] if own else None)


def arguments(schema: Mapping[str, Any] | None, digits: str | None = None, words: str | None = None) -> dict[str, Any]:
    """Arguments that satisfy ``schema``: its required properties (every property if it names
    none), and the one the digits fit: an id-like or the first string/number property, else an
    enum (the digits pick its N-th value); words go to the other strings."""
    schema = schema if isinstance(schema, Mapping) else {}
    properties = schema.get("properties") if isinstance(schema.get("properties"), Mapping) else {}
    required = [name for name in schema.get("required") or () if name in properties] or list(properties)
    target = _digits_target(properties, digits)
    out: dict[str, Any] = {}
    for name in dict.fromkeys([*required, *([target] if target else [])]):
        spec = properties.get(name) if isinstance(properties.get(name), Mapping) else {}
        out[name] = _value(spec, digits if name == target else None, words)
    return out


def _digits_target(properties: Mapping[str, Any], digits: str | None) -> str | None:
    if not digits:
        return None
    fits = [name for name, spec in properties.items()
            if isinstance(spec, Mapping) and _kind(spec) in ("string", "integer", "number") and "enum" not in spec]
    if not fits:  # a choice: the digits number it
        return next((name for name, spec in properties.items() if isinstance(spec, Mapping) and "enum" in spec), None)
    return next((name for name in fits if _ID_LIKE.search(name)), fits[0])


def _kind(spec: Mapping[str, Any]) -> str:
    kind = spec.get("type", "string")
    if isinstance(kind, list):  # ["string", "null"]: the first that is not null
        kind = next((k for k in kind if k != "null"), "string")
    return str(kind)


def _value(spec: Mapping[str, Any], digits: str | None, words: str | None) -> Any:
    enum = spec.get("enum")
    if isinstance(enum, list) and enum:
        index = int(digits) - 1 if digits and digits.isdigit() and 0 < int(digits) <= len(enum) else 0
        return enum[index]
    kind = _kind(spec)
    if kind in ("integer", "number"):
        return int(digits) if digits and digits.isdigit() else 1
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return arguments(spec)
    return digits if digits else (words or "test")
