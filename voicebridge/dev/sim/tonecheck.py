"""Sans-IO check of the deterministic test tone as it arrives at the caller.

When the local Realtime server speaks :mod:`voicebridge.dev.tone`, every 20 ms block names its
response and index, so the caller can prove the bridge forwarded audio in order, without
gaps or repeats. Blocks are found by their magic in the received byte stream rather than by
message boundaries, because a bridge may re-chunk audio; a block cut short (e.g. the tail
of an interrupted response) is counted as ``partial`` instead of poisoning the next one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ...audio.mulaw import FRAME_BYTES
from ..tone import MAGIC, identify_block


@dataclass
class ToneReport:
    """Tone-block findings; ``ok`` when blocks were seen and none were missing or repeated."""

    blocks: int = 0
    responses: list[int] = field(default_factory=list)
    gaps: int = 0
    repeats: int = 0
    out_of_order: int = 0
    partial: int = 0
    late_start: int = 0
    """Responses whose first block seen was not block 0."""

    @property
    def ok(self) -> bool:
        return self.blocks > 0 and not (self.gaps or self.repeats or self.out_of_order or self.late_start)

    def to_dict(self) -> dict:
        return dict(asdict(self), ok=self.ok)


class ToneChecker:
    """Feed received agent audio in order; read :attr:`report`."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._last: dict[int, int] = {}
        self._seen: dict[int, set[int]] = {}
        self.report = ToneReport()

    def feed(self, audio: bytes) -> None:
        """Scan newly received bytes for whole tone blocks."""
        self._pending += audio
        while True:
            start = self._pending.find(MAGIC)
            if start < 0:
                del self._pending[:max(0, len(self._pending) - (len(MAGIC) - 1))]
                return
            nxt = self._pending.find(MAGIC, start + len(MAGIC), start + FRAME_BYTES)
            if nxt >= 0:  # another block starts inside this one: this one was cut
                self.report.partial += 1
                del self._pending[:nxt]
                continue
            if len(self._pending) - start < FRAME_BYTES:
                del self._pending[:start]
                return
            found = identify_block(bytes(self._pending[start:start + FRAME_BYTES]))
            del self._pending[:start + FRAME_BYTES]
            if found:
                self._check(*found)

    def _check(self, response: int, index: int) -> None:
        r = self.report
        r.blocks += 1
        seen = self._seen.setdefault(response, set())
        if response not in self._last:
            r.responses.append(response)
            if index != 0:
                r.late_start += 1
        elif index in seen:
            r.repeats += 1
        elif index < self._last[response]:
            r.out_of_order += 1
        elif index > self._last[response] + 1:
            r.gaps += 1
        seen.add(index)
        self._last[response] = max(index, self._last.get(response, index))
