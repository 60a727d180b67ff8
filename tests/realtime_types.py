"""The openai package's GA Realtime event unions as validators, built on first use.

Importing ``openai.types.realtime`` takes about a second of CPU. At a test module's top it was
paid by every xdist worker while collecting, all four at once when the lane starts (its most
CPU-bound seconds); here it is paid by the first test that validates an event.
"""
from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _adapter(union: str) -> Any:
    from openai.types import realtime
    from pydantic import TypeAdapter

    return TypeAdapter(getattr(realtime, union))


def server_event(event: Any) -> Any:
    """``event`` as the openai package's ``RealtimeServerEvent`` model; ValidationError if it is not one."""
    return _adapter("RealtimeServerEvent").validate_python(event)


def client_event(event: Any) -> Any:
    """``event`` as the openai package's ``RealtimeClientEvent`` model; ValidationError if it is not one."""
    return _adapter("RealtimeClientEvent").validate_python(event)
