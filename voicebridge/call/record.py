"""What happened on the call: token usage, and a transcript of what the caller actually heard.

The agent's words come from ``response.output_audio_transcript`` events. An answer cut by a
barge-in is kept only as far as the caller heard it: its words are cut in proportion to the
audio heard (the same measure the truncate sends), so the record reads like the call sounded.
Caller turns (the service's transcription), keypad entries, tool calls and their results and the
call's control actions are entries too. Each entry reaches ``on_entry`` as it is complete and
the whole list is in the call-end record. Bounded: ``MAX_ENTRIES``, the newest kept (older ones are
dropped and counted), so a long call's record and replay always reach its latest turn; while
tool entries fill more than half the record the oldest of them goes first, so a storm of tool
calls cannot push the conversation's turns out.

A new Realtime session is told the conversation (``history``): the newest ``limit`` items, a
tool result always with its call, and tool items at most half of them, so a call that made
a thousand tool calls still replays its latest turns.
"""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..model import protocol as rt

MAX_ENTRIES = 2000
MAX_TEXT = 4000
CUT_LOOKBACK = 50  # entries searched for an answer a barge-in cut after its response was done


def _heard(words: list[str], fraction: float) -> str:
    """The words of an answer the caller heard ``fraction`` of (in proportion to its audio)."""
    return " ".join(words[: round(len(words) * fraction)])


@dataclass
class Entry:
    t: float  # seconds since the call started
    role: str  # caller | agent | tool | keypad | control
    text: str
    detail: dict[str, Any] = field(default_factory=dict)


def _item(entry: Entry) -> dict[str, Any] | None:
    """The conversation item an entry was (None: not part of the model's conversation)."""
    d = entry.detail
    if entry.role == "caller":
        return rt.user_item(entry.text)
    if entry.role == "keypad" and d.get("model_text"):
        return rt.user_item(d["model_text"])
    if entry.role == "agent" and d.get("kind") != "filler":
        return rt.assistant_item(entry.text)
    if entry.role == "tool" and "arguments" in d:
        return rt.function_call_item(d["call_id"], d["name"], d["arguments"])
    if entry.role == "tool" and "output" in d:
        return rt.function_call_output_item(d["call_id"], d["output"])
    return None


@dataclass
class _Said:
    text: str = ""
    final: str | None = None
    heard_fraction: float | None = None  # set when a barge-in cut the answer


class CallRecord:
    """Collects usage and transcript entries from any thread."""

    def __init__(self, clock: Callable[[], float], on_entry: Callable[[Entry], None]) -> None:
        self._clock = clock
        self._on_entry = on_entry
        self._lock = threading.Lock()
        self._start: float | None = None
        self._usage: Counter[str] = Counter()
        self._entries: list[Entry] = []
        self._tool_entries = 0
        self._said: dict[str, _Said] = {}  # response id -> the agent's words so far
        self.dropped_entries = 0

    def started(self, now: float) -> None:
        self._start = now

    # ------------------------------------------------------------------ usage
    def usage(self, counts: "tuple[tuple[str, int], ...]") -> None:
        with self._lock:
            self._usage.update(dict(counts))

    @property
    def totals(self) -> dict[str, int]:
        with self._lock:
            return dict(self._usage)

    # ------------------------------------------------------------------ the agent
    def agent_words(self, response_id: str, text: str, final: bool = False) -> None:
        with self._lock:
            said = self._said.setdefault(response_id, _Said())
            if final:
                said.final = text
            else:
                said.text += text

    def agent_cut(self, response_id: str | None, heard_ms: int, received_ms: int) -> None:
        """A barge-in cut the answer after ``heard_ms`` of ``received_ms``. An answer whose
        response was done before (the model generates faster than the caller hears: the cut
        often comes while its tail still plays) has its entry already: that entry is cut in the
        record (the report, a new session's history), where ``on_entry`` had it whole."""
        if response_id is None:
            return
        fraction = 0.0 if received_ms <= 0 else min(1.0, heard_ms / received_ms)
        with self._lock:
            entry = None if response_id in self._said else self._done_entry(response_id)
            if entry is None:  # (its words still to come, or none yet: cut when it is done)
                self._said.setdefault(response_id, _Said()).heard_fraction = fraction
            elif not entry.detail.get("interrupted"):
                entry.text = _heard(entry.text.split(), fraction)
                entry.detail["interrupted"] = True

    def _done_entry(self, response_id: str) -> "Entry | None":
        """The agent's entry for ``response_id`` among the latest ones (under the lock)."""
        for entry in reversed(self._entries[-CUT_LOOKBACK:]):
            if entry.role == "agent" and entry.detail.get("response_id") == response_id:
                return entry
        return None

    def agent_done(self, response_id: str, kind: str | None) -> None:
        """The response is over: its words, as heard, become an entry (made under the lock the
        words are taken under: a cut in between would find neither, review rv24)."""
        now = self._clock()
        with self._lock:
            said = self._said.pop(response_id, None)
            entry = None if said is None else self._agent_entry(now, said, response_id, kind)
            if entry is not None:
                self._append(entry)
        if entry is not None:
            self._on_entry(entry)

    def _agent_entry(self, now: float, said: _Said, response_id: str, kind: str | None) -> "Entry | None":
        text = said.final if said.final is not None else said.text
        words = text.split()
        detail: dict[str, Any] = {"response_id": response_id}
        if kind:
            detail["kind"] = kind
        if said.heard_fraction is not None:
            words = _heard(words, said.heard_fraction).split()
            detail["interrupted"] = True
        return self._entry(now, "agent", " ".join(words), detail) if words else None

    # ------------------------------------------------------------------ everything else
    def add(self, role: str, text: str, **detail: Any) -> None:
        entry = self._entry(self._clock(), role, text, detail)
        with self._lock:
            self._append(entry)
        self._on_entry(entry)

    def _entry(self, now: float, role: str, text: str, detail: dict[str, Any]) -> Entry:
        return Entry(round(now - (self._start if self._start is not None else now), 3), role, text[:MAX_TEXT], detail)

    def _append(self, entry: Entry) -> None:
        """(Under the lock.)"""
        if len(self._entries) >= MAX_ENTRIES:
            self._drop_oldest()
        self._entries.append(entry)
        self._tool_entries += entry.role == "tool"

    def _drop_oldest(self) -> None:
        """Make room (under the lock): the oldest tool entry while tools fill over half, else the oldest."""
        index = 0
        if self._tool_entries * 2 > len(self._entries):
            index = next(i for i, e in enumerate(self._entries) if e.role == "tool")
        self._tool_entries -= self._entries.pop(index).role == "tool"
        self.dropped_entries += 1

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(e) for e in self._entries]

    def cut_pending(self) -> None:
        """The session was lost mid-answer: what was received (and is still heard) becomes the entry."""
        with self._lock:
            pending = list(self._said)
        for response_id in pending:
            self.agent_done(response_id, None)

    def history(self, limit: int) -> list[str]:
        """The conversation as the caller heard it, as ``conversation.item.create`` events for a new
        session: caller turns, keypad entries as the model was told them, the agent's words as
        heard, tool calls with their results (see ``newest``)."""
        with self._lock:
            entries = list(self._entries)
        items = rt.newest_items([item for item in map(_item, entries) if item is not None], limit)
        return [rt.item_create(item) for item in items]
