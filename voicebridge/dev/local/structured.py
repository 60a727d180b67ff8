"""The local model's structured answers: instructions that end with a JSON schema get a JSON object.

The real model, asked (in a text response) to answer with one JSON object matching a schema it
is given, writes such an object from the conversation. The local agent cannot understand the
conversation, but it follows the same instruction: it finds the schema after ``JSON schema:``
at the end of the instructions and writes an object that is valid against it -- a ``summary``
string from what it knows of the call (turns heard, the caller's last words), enums at their
first value, numbers at their minimum (or 0), booleans false, arrays empty, nested objects
filled the same way. So a bridge's post-call analysis works offline end to end.
"""
from __future__ import annotations

import json
import re
from typing import Any, Mapping

_SCHEMA_AT_END = re.compile(r"JSON schema:\s*(\{.*\})\s*\Z", re.DOTALL | re.IGNORECASE)


def requested_schema(instructions: "str | None") -> "dict[str, Any] | None":
    """The JSON schema the instructions end with, if they ask for one."""
    match = _SCHEMA_AT_END.search(instructions or "")
    if match is None:
        return None
    try:
        schema = json.loads(match.group(1))
    except ValueError:
        return None
    return schema if isinstance(schema, dict) else None


def answer(schema: Mapping[str, Any], summary: str) -> str:
    """One JSON object valid against ``schema`` (the text of the response)."""
    return json.dumps(_value(schema, summary, "summary"))


def _value(schema: Mapping[str, Any], summary: str, name: str) -> Any:
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {key: _value(sub, summary, key) for key, sub in props.items() if isinstance(sub, Mapping)}
    if kind == "string":
        return summary if name == "summary" else ""
    if kind in ("integer", "number"):
        low = schema.get("minimum", 0)
        return int(low) if kind == "integer" else float(low)
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    return None
