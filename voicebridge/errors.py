"""Typed protocol errors: bad input becomes a value the session logs and counts, never an exception."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProtocolError:
    """A message that could not be understood.

    ``kind`` is a short stable label used as a metrics key (``malformed_json``,
    ``bad_base64``, ``missing_field``, ``unknown_event``, ``binary_frame``...);
    ``detail`` is a human sentence for the log line. Raw audio is never included.
    """

    side: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.side} {self.kind}: {self.detail}"


def describe(exc: BaseException) -> str:
    """``Type: message`` on one bounded line (exceptions may carry peer-controlled text)."""
    text = str(exc).replace("\n", " ")[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def close_quietly(thing: Any, log: "logging.Logger | logging.LoggerAdapter | None" = None) -> None:
    """Close a socket, connection or file that may already be broken: a failure is logged (with
    ``log``) or ignored, never raised into the code that is ending anyway."""
    try:
        thing.close()
    except Exception:  # noqa: BLE001 - best effort on something already failing
        if log is not None:
            log.exception("closing %s raised", type(thing).__name__)
