"""Keypad digits (sans-IO): Twilio sends one ``dtmf`` message per key; callers mean sequences.

A sequence ends at the terminator key (``#`` by default, not part of the digits), after a pause
of ``timeout_s`` with no key, or at ``max_digits``.
"""
from __future__ import annotations

MAX_DIGITS = 32


class DtmfCollector:
    """``press`` each key; a finished sequence comes back from ``press`` or ``poll``."""

    def __init__(self, terminator: str = "#", timeout_s: float = 2.0, max_digits: int = MAX_DIGITS) -> None:
        self.terminator = terminator
        self.timeout_s = timeout_s
        self.max_digits = max_digits
        self._digits = ""
        self._last: float | None = None

    def press(self, key: str, now: float) -> str | None:
        if key == self.terminator and self.terminator:
            return self._finish()
        self._digits += key
        self._last = now
        return self._finish() if len(self._digits) >= self.max_digits else None

    def poll(self, now: float) -> str | None:
        """A sequence left unterminated for ``timeout_s`` is finished by the pause."""
        if self._digits and self._last is not None and now - self._last >= self.timeout_s:
            return self._finish()
        return None

    def _finish(self) -> str | None:
        digits, self._digits, self._last = self._digits, "", None
        return digits or None
