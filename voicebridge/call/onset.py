"""The current utterance's onset as the bridge saw it (run thread; one per call, ``BargeIn``'s).

A barge-in's latency counts from the utterance's first loud frame, and a server trigger or a
hold's verdict that comes later measures from it while it is recent. Loud runs less than
``Utterance.GAP_S`` apart are one utterance ("stop ... please": the pause between the words
ducks again but keeps the first word's onset, so the server's ``speech_started`` heard in
between still counts for the barge-in).
"""
from __future__ import annotations

from ..audio.utterance import Utterance

ONSET_MEMORY_S = 2.0
"""A server trigger measures its latency from a local duck's onset at most this old."""


class UtteranceOnset:
    """When the current utterance began, and when its last loud run ended."""

    def __init__(self) -> None:
        self.at: float | None = None  # the current utterance's first loud frame
        self.run_ended_at: float | None = None  # the last loud run's end

    def run_began(self, now: float) -> None:
        """A loud run began: a new utterance, unless the last run ended within ``Utterance.GAP_S``."""
        if self.at is None or self.run_ended_at is None or now - self.run_ended_at > Utterance.GAP_S:
            self.at = now

    def run_ended(self, now: float) -> None:
        self.run_ended_at = now

    def recent(self, now: float) -> float | None:
        """The onset, if a local duck set it on the same speech lately (``ONSET_MEMORY_S``)."""
        at = self.at
        return at if at is not None and now - at < ONSET_MEMORY_S else None
