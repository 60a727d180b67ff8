"""Post-call analysis: one out-of-band response asks the model for a summary and the user's fields.

When the call ends and the config has an ``analysis_schema``, the session keeps its Realtime
session open a moment longer and sends one ``response.create`` with ``conversation: "none"``
(the answer joins no conversation, nobody hears it), text output, and metadata marking it as
ours. The model already holds the whole conversation, so no transcript needs resending. Its
text is parsed as JSON and checked against the schema (``validate``: the JSON Schema keywords
a field description uses -- type, properties, required, enum, items, minimum/maximum; no
dependency), and the outcome -- the value, whether it is valid, the problems -- goes into the
post-call report. ``analysis_timeout_s`` bounds the wait; a model that is gone, refuses or
answers nonsense gives an analysis marked as such, never a stuck call.

``PostCallAnalysis`` is the small shell the session drives: ``begin`` (close, any thread),
``take`` (the model thread: every Realtime message while one is pending), ``wait`` (teardown).
"""
from __future__ import annotations

import json
import threading
from typing import Any, Callable, Mapping

ANALYSIS_INSTRUCTIONS = (
    "The phone call is over. Do not speak to the caller. Analyse the whole conversation and answer with "
    "one JSON object only (no prose, no code fence) that matches this JSON schema:"
)
KIND = "analysis"
EVENT_ID = "vb_analysis"  # echoed in an ``error`` if the service refuses the request
SUMMARY_SCHEMA: dict[str, Any] = {"type": "string", "description": "two or three sentences on what the call was about"}

_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def full_schema(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The user's schema with a ``summary`` string added (a plain object schema of the fields)."""
    schema = dict(fields)
    properties = dict(schema.get("properties", {}))
    properties.setdefault("summary", SUMMARY_SCHEMA)
    required = list(schema.get("required", []))
    if "summary" not in required:
        required.insert(0, "summary")
    schema.update(type="object", properties=properties, required=required)
    return schema


def validate(value: Any, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Problems of ``value`` against ``schema`` (empty: valid), for the keywords field schemas use."""
    problems: list[str] = []
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_TYPES.get(k, lambda v: True)(value) for k in kinds):
            return [f"{path}: expected {' or '.join(kinds)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: {value} is below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: {value} is above {schema['maximum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        problems += [f"{path}: missing {name!r}" for name in schema.get("required", []) if name not in value]
        for name, item in value.items():
            if name in properties:
                problems += validate(item, properties[name], f"{path}.{name}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{path}: unexpected {name!r}")
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for n, item in enumerate(value):
            problems += validate(item, schema["items"], f"{path}[{n}]")
    return problems


def request(schema: Mapping[str, Any], instructions: str = ANALYSIS_INSTRUCTIONS) -> str:
    """The out-of-band ``response.create``: text only, outside the conversation, marked as ours."""
    return json.dumps({"type": "response.create", "event_id": EVENT_ID, "response": {
        "conversation": "none", "output_modalities": ["text"],
        "instructions": f"{instructions}\n{json.dumps(schema, separators=(',', ':'))}",
        "metadata": {"voicebridge": KIND}}}, separators=(",", ":"))


def outcome(text: str | None, schema: Mapping[str, Any], status: str) -> dict[str, Any]:
    """The report's ``analysis``: the parsed value, valid or not, and why not."""
    if text is None:
        return {"status": status, "valid": False, "value": None, "errors": [f"no answer ({status})"]}
    body = text.strip()
    if body.startswith("```"):  # a model that fences its JSON anyway
        body = body.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(body)
    except ValueError:
        return {"status": status, "valid": False, "value": None, "text": text[:2000], "errors": ["not JSON"]}
    errors = validate(value, schema)
    return {"status": status, "valid": not errors, "value": value, "errors": errors[:20]}


class PostCallAnalysis:
    """One call's analysis request and its answer (thread-safe: close, model thread, teardown)."""

    def __init__(self, schema: Mapping[str, Any] | None, instructions: str, timeout_s: float,
                 on_usage: Callable[[tuple[tuple[str, int], ...]], None] | None = None) -> None:
        self._schema = full_schema(schema) if schema is not None else None
        self._on_usage = on_usage  # the answer's tokens count in the call's usage
        self._instructions = instructions
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._response_id: str | None = None
        self._text: list[str] = []
        self._done = threading.Event()
        self.begun = False
        self.result: dict[str, Any] | None = None

    def begin(self, send: Callable[[str], bool], ready: bool) -> bool:
        """Ask, if wanted and the model is there; True: the model stays open until ``wait`` ends."""
        if self._schema is None or self.begun:
            return False
        self.begun = ready  # before the send: the model thread may read the answer before it returns
        if not (ready and send(request(self._schema, self._instructions))):
            self.begun = False  # asked for, but the model is gone or not yet there: the report says so
            self.result = outcome(None, self._schema, "unavailable")
        return self.begun

    def take(self, message: "str | bytes") -> bool:
        """A Realtime message while the analysis is pending: True if it was the analysis's own."""
        if not self.begun or self._done.is_set():
            return False
        try:
            event = json.loads(message)
        except ValueError:
            return False
        if not isinstance(event, dict):
            return False
        kind, response = event.get("type"), event.get("response") if isinstance(event.get("response"), dict) else {}
        with self._lock:
            error = event.get("error") if isinstance(event.get("error"), dict) else {}
            if kind == "error" and error.get("event_id") == EVENT_ID:
                self._finish(None, f"refused: {str(error.get('code'))[:80]}")
                return True
            if kind == "response.created" and (response.get("metadata") or {}).get("voicebridge") == KIND:
                self._response_id = response.get("id")
                return True
            mine = self._response_id is not None and (event.get("response_id") == self._response_id
                                                      or response.get("id") == self._response_id)
            if not mine:
                return False
            if kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
                self._text.append(event["delta"])
            elif kind == "response.done":
                from ..model import protocol as rt  # here: config imports this module, rt imports config

                usage = rt.parse(message)
                if self._on_usage is not None and isinstance(usage, rt.ResponseDone):
                    self._on_usage(usage.usage)
                self._finish(response_text(response) or "".join(self._text) or None, str(response.get("status")))
        return True

    def model_gone(self) -> None:
        """The model thread has ended (the model lost for good, or closed): nothing more can answer."""
        with self._lock:
            if self.begun and not self._done.is_set():
                self._finish(None, "unavailable")

    def _finish(self, text: str | None, status: str) -> None:
        assert self._schema is not None
        self.result = outcome(text, self._schema, status)
        self._done.set()

    def wait(self) -> dict[str, Any] | None:
        """Teardown: the answer, or a timed-out analysis after ``timeout_s``."""
        if not self.begun:
            return None
        if not self._done.wait(self.timeout_s):
            with self._lock:
                if not self._done.is_set():
                    self._finish(None, "timeout")
        return self.result


def response_text(response: Mapping[str, Any]) -> str | None:
    """The text of a ``response.done``'s message output (``output_text`` parts, joined)."""
    parts = [c.get("text", "") for item in response.get("output") or [] if isinstance(item, dict)
             for c in item.get("content") or [] if isinstance(c, dict) and c.get("type") == "output_text"]
    return "".join(parts) or None
