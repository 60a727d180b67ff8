"""Typed protocol errors: bad input becomes a value the session logs and counts, never an exception."""
from __future__ import annotations

from dataclasses import dataclass


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
