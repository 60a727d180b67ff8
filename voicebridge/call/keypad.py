"""Keypad digits (sans-IO): Twilio sends one ``dtmf`` message per key; callers mean sequences.

A sequence ends at the terminator key (``#`` by default, not part of the digits), after a pause
of ``timeout_s`` with no key, or at ``max_digits``.

A caller (or a robot) can press keys far faster than a conversation can take them: 1,000
presses of "1#" were 1,000 entries, each a log line, an item for the model and a request for an
answer. :class:`KeypadBatches` coalesces entries: they are handed on at most once per
``interval_s`` (the first at once), together, the newest ``max_entries`` of them, so a flood costs
one item, one answer and one log line per interval.
"""
from __future__ import annotations

from dataclasses import dataclass

MAX_DIGITS = 32
MAX_BATCH_ENTRIES = 8
"""Entries handed on together at most; older ones in a flood are dropped (and counted)."""


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


_KEYPAD_LETTERS = {**{c: k for k, letters in {"2": "abc", "3": "def", "4": "ghi", "5": "jkl", "6": "mno",
                                               "7": "pqrs", "8": "tuv", "9": "wxyz"}.items() for c in letters},
                   **{d: d for d in "0123456789"}}
TOOL_CODE_KEYS = 12
"""A tool is named on the keypad by the first this many keys of its name: unique enough, and
short enough that ``*`` + code + ``*`` + arguments fits a sequence."""


def keypad_code(name: str) -> str:
    """A name spelled on a phone keypad (``lookup_order`` -> ``566587673370``[:12]); other
    characters are 0. How a simulated caller asks the local test agent for a named tool."""
    return "".join(_KEYPAD_LETTERS.get(c, "0") for c in name.lower())[:TOOL_CODE_KEYS]
@dataclass(frozen=True)
class KeypadBatch:
    """Entries handed on together: what the model is told once, and what the flood cost."""

    entries: tuple[str, ...]
    dropped: int  # older entries of the same interval not handed on

    @property
    def digits(self) -> int:
        return sum(map(len, self.entries))


class KeypadBatches:
    """``add`` each finished entry; ``due`` gives a batch at most once per ``interval_s``."""

    def __init__(self, interval_s: float = 1.0, max_entries: int = MAX_BATCH_ENTRIES) -> None:
        self.interval_s = interval_s
        self.max_entries = max_entries
        self._entries: list[str] = []
        self._dropped = 0
        self._last: float | None = None

    def add(self, entry: str, now: float) -> KeypadBatch | None:
        """Queue ``entry``; the batch, if one is due now."""
        self._entries.append(entry)
        if len(self._entries) > self.max_entries:
            del self._entries[0]
            self._dropped += 1
        return self.due(now)

    def due(self, now: float) -> KeypadBatch | None:
        """The waiting entries, if the interval since the last batch has passed (or the clock went back)."""
        if not self._entries:
            return None
        if self._last is not None and 0 <= now - self._last < self.interval_s:
            return None
        batch = KeypadBatch(tuple(self._entries), self._dropped)
        self._entries, self._dropped, self._last = [], 0, now
        return batch
