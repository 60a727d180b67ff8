"""Sans-IO measurement of a call: raw observations in, :class:`CallReport` out.

The threaded caller only timestamps what happens (seconds since call start) and hands it
here; the statistics (gaps, bursts, stalls, barge-in latencies) are computed at the end from
the arrival times, so they are unit-testable with invented times and cost nothing per frame.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any

from ...audio.mulaw import SAMPLE_RATE
from .playout import PlayoutBuffer
from .report import CallReport, Interruption, MarkRecord
from .tonecheck import ToneChecker

FRAME_MS = 20.0
BURST_MS = 18.0
STALL_MS = 40.0
JITTER_MS = 10.0  # how far ahead of real time (beyond the lead) arrival jitter may put a frame
CALLER_SOUND_DBFS = -45.0  # the caller is making sound (speech, a click): the agent may yield
YIELD_LOOKBACK_MS = 60.0  # a pause that starts this soon after the caller's sound is a yield
LEAD_GAP_MS = 100.0
UTTERANCE_GAP_MS = 300.0


def _first_sound(prompt: bytes) -> bytes | None:
    """The first 160-byte frame of a bundled prompt that is not silence: how the caller knows it.

    The bridge frames a prompt from its first byte, so each of its frames arrives whole.
    """
    for i in range(0, len(prompt) - 159, 160):
        frame = prompt[i:i + 160]
        if any(b not in (0xFF, 0x7F) for b in frame):
            return frame
    return None


def _bundled(name: str) -> bytes:
    try:
        from ..tts import load_prompt

        return load_prompt(name)
    except (OSError, ModuleNotFoundError):
        return b""


def _sounding(prompt: bytes) -> list[bytes]:
    """A bundled prompt's frames from its first sound on."""
    first = _first_sound(prompt)
    frames = [prompt[i:i + 160] for i in range(0, len(prompt) - 159, 160)]
    return frames[frames.index(first):] if first is not None else []


def _signature(name: str) -> tuple[bytes, ...]:
    """The first frames of a bundled prompt's sound that no other prompt begins with: the
    apology and the failed tool's "Sorry, ..." share their first 28 frames."""
    own = _sounding(_bundled(name))
    try:
        from importlib import resources

        files = resources.files("voicebridge.prompts").iterdir()
        others = [_sounding(f.read_bytes()) for f in files if f.name.endswith(".ulaw") and f.name != f"{name}.ulaw"]
    except (OSError, ModuleNotFoundError):
        others = []
    n = 1
    while n < len(own) and any(o[:n] == own[:n] for o in others):
        n += 1
    return tuple(own[:n + 2])


APOLOGY = _signature("apology")
"""The bundled apology's first frames of sound (as far as no other prompt shares them): received
in a row, the bridge apologised for a lost model."""


class CallerMetrics:
    """Collects observations during a call (not thread-safe: the caller serializes calls)."""

    def __init__(self, report: CallReport, lead_frames: int = 2) -> None:
        self.report = report
        report.lead_frames = lead_frames
        self._arrivals: list[float] = []
        self._sizes: Counter[int] = Counter()
        self._kinds: Counter[str] = Counter()
        self._clears: list[float] = []
        self._onsets: list[tuple[float, bool]] = []
        self._marks: dict[str, list[MarkRecord]] = {}
        self._tone = ToneChecker()
        self._apology_at = 0  # frames of ``APOLOGY`` received in a row so far

    # -- observations -----------------------------------------------------------------------
    def message(self, kind: str) -> None:
        """Count one message from the bridge by its ``event`` (``invalid`` for junk)."""
        self._kinds[kind] += 1
        if kind == "invalid":
            self.report.invalid_messages += 1

    def media(self, t: float, payload: bytes) -> None:
        """One outbound ``media`` message arrived."""
        self._arrivals.append(t)
        self._sizes[len(payload)] += 1
        self._tone.feed(payload)
        self._apology_frame(payload)

    def _apology_frame(self, payload: bytes) -> None:
        """The bridge's "sorry, we cannot take your call" (the model was lost), known by its first
        frames in a row, or by as many of them as came before the call ended (a failed tool's
        "Sorry, I could not look that up" begins alike, and goes on otherwise)."""
        if not APOLOGY:
            return
        at = self._apology_at
        at = at + 1 if at and payload == APOLOGY[at] else int(payload == APOLOGY[0])
        if at == len(APOLOGY):
            self.report.apologies += 1
            at = 0
        self._apology_at = at

    def clear(self, t: float) -> None:
        self._clears.append(t)

    def mark_received(self, t: float, name: str) -> None:
        self._marks.setdefault(name, []).append(MarkRecord(name, round(t * 1000, 1)))
        self.report.marks.append(self._marks[name][-1])

    def mark_echoed(self, t: float, name: str, cleared: bool) -> None:
        for rec in self._marks.get(name, []):
            if rec.echoed_ms is None:
                rec.echoed_ms = round(t * 1000, 1)
                rec.cleared = cleared
                return

    def onset(self, t: float, agent_talking: bool) -> None:
        """The caller started barging in."""
        self._onsets.append((t, agent_talking))

    def levels(self, caller_dbfs: float, agent_dbfs: float) -> None:
        self.report.caller_dbfs.append(round(caller_dbfs, 1))
        self.report.agent_dbfs.append(round(agent_dbfs, 1))

    def event(self, t: float, name: str, detail: "dict[str, Any] | None" = None) -> None:
        self.report.events.append({"t": round(t, 4), "name": name, "detail": detail or {}})
        if name == "wait_timeout" and detail and "dead_air_ms" in detail:
            self.report.dead_air.append({"t": round(t, 3), "ms": detail["dead_air_ms"]})

    # -- result -----------------------------------------------------------------------------
    def finish(self, duration: float, playout: PlayoutBuffer, playout_origin: float = 0.0) -> CallReport:
        """Fill in the report; ``playout_origin`` maps playout times to call time (subtracted)."""
        r = self.report
        if self._apology_at:  # the call ended during the apology's first words
            r.apologies += 1
            self._apology_at = 0
        r.duration_ms = round(duration * 1000, 1)
        r.frames_received = len(self._arrivals)
        r.frame_sizes = dict(sorted(self._sizes.items()))
        r.messages_received = dict(self._kinds)
        r.clears = len(self._clears)
        r.time_to_first_audio_ms = round(self._arrivals[0] * 1000, 1) if self._arrivals else None
        self._gap_stats(r)
        segments = [(s - playout_origin, e - playout_origin) for s, e in playout.segments]
        r.heard_agent_ms = round(sum(e - s for s, e in segments) * 1000, 1)
        r.cleared_ms = round(playout.cleared_bytes * 1000 / SAMPLE_RATE, 1)
        r.marks_received = len(r.marks)
        r.marks_echoed = sum(1 for m in r.marks if m.echoed_ms is not None)
        r.marks_cleared = sum(1 for m in r.marks if m.cleared)
        r.interruptions = [self._interruption(t, talking, segments) for t, talking in self._onsets]
        closed = [e["t"] for e in r.events if e["name"] == "bridge_closed"]
        if r.ended_by == "bridge" and closed and segments:
            r.hangup_after_audio_ms = round((closed[0] - segments[-1][1]) * 1000, 1)
        r.tone = self._tone.report.to_dict() if self._tone.report.blocks else None
        return r

    def _gap_stats(self, r: CallReport) -> None:
        """Utterances, gap percentiles, bursts beyond the lead, stalls within utterances.

        A pause that starts while the caller is making sound is a *yield* (the bridge stopping
        the agent for the caller, as barge-in and its duck must), not a stall. Short gaps are
        counted as bursts; whether the agent's audio ran *ahead of real time* (what overruns a
        jitter buffer) is the pace check: frames more than the lead plus ``JITTER_MS`` ahead of
        a 20 ms-per-frame clock that the arrivals may lag but never lead.
        """
        gaps: list[float] = []
        since_lead_reset = 0
        r.utterances = 1 if self._arrivals else 0
        pace = self._arrivals[0] if self._arrivals else 0.0  # real-time clock of the utterance
        allowed_ahead_ms = r.lead_frames * FRAME_MS + JITTER_MS
        for prev, cur in zip(self._arrivals, self._arrivals[1:]):
            gap = (cur - prev) * 1000
            if gap > UTTERANCE_GAP_MS:  # between utterances: not a stall, restarts the lead
                r.utterances += 1
                since_lead_reset = 0
                pace = cur
                continue
            pace = max(cur, pace + FRAME_MS / 1000)
            ahead_ms = (pace - cur) * 1000
            r.ahead_max_ms = max(r.ahead_max_ms, round(ahead_ms, 1))
            r.ahead_frames += ahead_ms > allowed_ahead_ms
            if gap > LEAD_GAP_MS:  # a long pause mid-utterance: a stall, and the bridge may re-lead
                since_lead_reset = 0
            else:
                since_lead_reset += 1
                if since_lead_reset <= r.lead_frames and gap < BURST_MS:
                    continue  # the send-ahead lead
            gaps.append(gap)
            r.bursts += gap < BURST_MS
            if gap > STALL_MS:
                if self._caller_sounding(prev - YIELD_LOOKBACK_MS / 1000, cur, r):
                    r.yields += 1
                else:
                    r.stalls += 1
        if gaps:
            gaps.sort()
            r.gap_p50_ms = round(_percentile(gaps, 50), 2)
            r.gap_p99_ms = round(_percentile(gaps, 99), 2)
            r.gap_max_dev_ms = round(max(abs(g - FRAME_MS) for g in gaps), 2)

    @staticmethod
    def _caller_sounding(start: float, end: float, r: CallReport) -> bool:
        """Whether the caller sent sound (above ``CALLER_SOUND_DBFS``) between ``start`` and ``end``."""
        step = r.level_interval_ms / 1000
        first, last = max(0, int(start / step)), int(math.ceil(end / step))
        return any(level > CALLER_SOUND_DBFS for level in r.caller_dbfs[first:last + 1])

    def _interruption(self, onset: float, talking: bool, segments: list[tuple[float, float]]) -> Interruption:
        before = [a for a in self._arrivals if a < onset]
        after = _chain([a for a in self._arrivals if a >= onset], onset)
        clear = next((c for c in self._clears if c >= onset), None)
        later = [a for a in self._arrivals if a >= onset][len(after):]  # the agent's next utterance
        until = later[0] if later else float("inf")
        heard, again = _after_onset(onset, segments)
        return Interruption(
            onset_ms=round(onset * 1000, 1),
            agent_talking=talking,
            clear_ms=_ms(clear - onset) if clear is not None else None,
            last_media_before_ms=_ms(onset - before[-1]) if before else None,
            last_media_after_ms=_ms(after[-1] - onset) if after else None,
            frames_after_onset=len(after),
            heard_after_ms=_ms(heard),
            clears_after_ms=[_ms(c - onset) for c in self._clears if onset <= c < until],
            heard_again_ms=None if again is None else _ms(again),
            heard_3s_ms=_ms(sum(max(0.0, min(e, onset + 3.0) - max(s, onset)) for s, e in segments)),
        )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _chain(times: list[float], start: float) -> list[float]:
    """Leading run of ``times`` with no gap above the utterance gap, starting from ``start``."""
    out: list[float] = []
    prev = start
    for t in times:
        if (t - prev) * 1000 > UTTERANCE_GAP_MS:
            break
        out.append(t)
        prev = t
    return out


def _after_onset(onset: float, segments: list[tuple[float, float]]) -> "tuple[float, float | None]":
    """Agent audio played from ``onset`` until the first pause longer than an utterance gap, and
    onset -> the start of the audio heard after that pause (None: none)."""
    total = 0.0
    prev_end = onset
    for s, e in segments:
        if e <= onset:
            continue
        if (s - prev_end) * 1000 > UTTERANCE_GAP_MS:
            return total, s - onset
        total += e - max(s, onset)
        prev_end = e
    return total, None


def _percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    k = max(0, min(len(sorted_values) - 1, math.ceil(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[k]

