"""Tools the model may call: plain Python functions with a description and a JSON schema.

::

    from typing import Annotated
    from voicebridge import tool

    @tool
    def order_status(order_id: Annotated[str, "the order number the caller gave"]) -> dict:
        \"\"\"Look up where an order is.\"\"\"
        return {"order_id": order_id, "status": "shipped"}

    config = BridgeConfig(tools=(order_status,))

The schema comes from the type hints (``str``, ``int``, ``float``, ``bool``, ``list[...]``,
``Literal[...]``, ``Enum``, ``Optional[...]``; ``Annotated[T, "text"]`` describes a parameter; a
parameter with a default is optional) and the description from the docstring's first paragraph,
unless given explicitly. A parameter annotated ``CallInfo`` is not shown to the model: the
bridge passes the call's identity there. Handlers run on a bounded pool, never on the session's
own threads; what they return is sent to the model as JSON (a ``str`` as is).
"""
from __future__ import annotations

import enum
import inspect
import json
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Union, get_args, get_origin, get_type_hints

NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}\Z")
END_CALL = "end_call"
TRANSFER_CALL = "transfer_call"


@dataclass(frozen=True)
class CallInfo:
    """Who is on the call: given to a tool parameter annotated ``CallInfo``."""

    call_sid: str | None
    stream_sid: str | None
    custom_parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Tool:
    """One function the model may call. ``handler=None`` marks a call-control tool the bridge runs."""

    name: str
    description: str
    parameters: dict[str, Any]
    handler: Callable[..., Any] | None = field(default=None, compare=False)
    timeout_s: float | None = None  # None: the config's tool_timeout_s
    call_info_param: str | None = None  # the handler's CallInfo parameter, if it has one

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r} must be 1-64 letters, digits, _ or -")
        if self.parameters.get("type") != "object":
            raise ValueError(f"tool {self.name}: parameters must be a JSON schema of type 'object'")

    def definition(self) -> dict[str, Any]:
        """What ``session.update`` declares to the model."""
        return {"type": "function", "name": self.name, "description": self.description,
                "parameters": self.parameters}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.handler is None:
            raise TypeError(f"{self.name} is run by the bridge, not called directly")
        return self.handler(*args, **kwargs)


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None,
         parameters: dict[str, Any] | None = None, timeout_s: float | None = None) -> Any:
    """Make a ``Tool`` of a function (``@tool`` or ``@tool(name=..., timeout_s=...)``)."""
    def make(func: Callable[..., Any]) -> Tool:
        info_param = _call_info_param(func)
        return Tool(name=name or func.__name__, description=description or _summary(func),
                    parameters=parameters if parameters is not None else schema_of(func, skip=info_param),
                    handler=func, timeout_s=timeout_s, call_info_param=info_param)
    return make(fn) if fn is not None else make


def end_call_tool() -> Tool:
    """Lets the model hang up; the bridge ends the call once the goodbye has been heard."""
    return Tool(END_CALL, "End the phone call. Call this after you have said goodbye to the caller, or when "
                "the caller asks to hang up.", {"type": "object", "properties": {
                    "reason": {"type": "string", "description": "why the call ends, in a few words"}},
                    "required": []})


def transfer_tool(destinations: typing.Iterable[str]) -> Tool:
    """Lets the model hand the caller to one of the configured destinations (by name)."""
    names = sorted(destinations)
    return Tool(TRANSFER_CALL, "Transfer the caller to a person or another line. Tell the caller you are "
                "transferring them before you call this.", {"type": "object", "properties": {
                    "destination": {"type": "string", "enum": names, "description": "where to transfer the caller"}},
                    "required": ["destination"]})


def encode_result(value: Any) -> str:
    """A handler's return value as the ``output`` string of a ``function_call_output`` item.

    A ``str`` goes as it is; anything else as JSON, objects JSON does not know (a date, a
    decimal, your own class) by their ``str``. Always valid JSON: NaN and infinities, circular
    structures and keys JSON cannot have raise ``ValueError``/``TypeError`` (the tool failed).
    The size cap (``tool_result_max_bytes``) is applied by the bridge on the result.
    """
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, separators=(",", ":"), allow_nan=False)


def schema_of(func: Callable[..., Any], skip: str | None = None) -> dict[str, Any]:
    """JSON schema of ``func``'s parameters, from its type hints."""
    hints = get_type_hints(func, include_extras=True)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(func).parameters.values():
        if param.name == skip or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        properties[param.name] = _type_schema(hints.get(param.name, str))
        if param.default is inspect.Parameter.empty and not _optional(hints.get(param.name)):
            required.append(param.name)
    return {"type": "object", "properties": properties, "required": required}


_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object"}


def _type_schema(hint: Any) -> dict[str, Any]:
    origin, args = get_origin(hint), get_args(hint)
    if origin is typing.Annotated:
        schema = _type_schema(args[0])
        notes = [a for a in args[1:] if isinstance(a, str)]
        return {**schema, "description": " ".join(notes)} if notes else schema
    if origin is Union or origin is types.UnionType:
        inner = [a for a in args if a is not type(None)]
        return _type_schema(inner[0]) if len(inner) == 1 else {"anyOf": [_type_schema(a) for a in inner]}
    if origin is Literal:
        return {"type": _SIMPLE.get(type(args[0]), "string"), "enum": list(args)}
    if origin in (list, tuple, set, frozenset):
        return {"type": "array", "items": _type_schema(args[0]) if args else {}}
    if origin is dict:
        return {"type": "object"}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"type": "string", "enum": [str(m.value) for m in hint]}
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    return {"type": "string"}


def _optional(hint: Any) -> bool:
    if get_origin(hint) is typing.Annotated:
        hint = get_args(hint)[0]
    return type(None) in get_args(hint)


def _call_info_param(func: Callable[..., Any]) -> str | None:
    hints = get_type_hints(func)
    return next((name for name, hint in hints.items() if hint is CallInfo), None)


def _summary(func: Callable[..., Any]) -> str:
    doc = inspect.getdoc(func) or ""
    first = doc.split("\n\n")[0].replace("\n", " ").strip()
    if not first:
        raise ValueError(f"tool {func.__name__} needs a description (a docstring or description=...)")
    return first
