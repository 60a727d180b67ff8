"""The post-call report: one JSON document per call, built when it ends (sans-IO pieces).

What the report holds and why each piece is sans-IO here: ``build`` turns what the call's parts
kept (the ``CallRecord``'s transcript as heard, tool calls, control actions, the metrics, token
usage) into one dict; ``estimate_cost`` prices the usage with a ``Prices`` table the user can
set; ``sign`` / ``verify`` are the webhook's HMAC-SHA256 header; ``Backoff`` and
``DeliveryQueue`` decide when each report is tried again, from a clock the caller passes. The
threaded shell that spools and POSTs is ``voicebridge.call.delivery``.
"""
from __future__ import annotations

import enum
import hashlib
import hmac
import random
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

SCHEMA_VERSION = 1
SIGNATURE_HEADER = "X-Voicebridge-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_TOLERANCE_S = 300


@dataclass(frozen=True)
class Prices:
    """USD per 1M tokens. The defaults are gpt-realtime's list prices as published in 2025
    (examples: check your model's current prices and set your own table)."""

    text_in: float = 4.0
    cached_in: float = 0.40
    text_out: float = 16.0
    audio_in: float = 32.0
    audio_out: float = 64.0
    currency: str = "USD"


def estimate_cost(usage: Mapping[str, int], prices: Prices) -> float:
    """The call's estimated cost. Cached input tokens are priced at ``cached_in`` and taken off
    the audio input first (the usage we keep does not split them by kind: an estimate)."""
    cached = usage.get("input_cached_tokens", 0)
    audio_in = usage.get("input_audio_tokens", 0)
    text_in = usage.get("input_text_tokens", 0)
    from_audio = min(cached, audio_in)
    from_text = min(cached - from_audio, text_in)
    total = ((audio_in - from_audio) * prices.audio_in + (text_in - from_text) * prices.text_in
             + (from_audio + from_text) * prices.cached_in
             + usage.get("output_text_tokens", 0) * prices.text_out
             + usage.get("output_audio_tokens", 0) * prices.audio_out)
    return round(total / 1_000_000, 6)


def new_id() -> str:
    """A report's id: also its idempotency key (a receiver drops a second delivery of it)."""
    return f"rpt_{uuid.uuid4().hex}"


def build(*, report_id: str, who: Mapping[str, Any], started_at: float, duration_s: float, end_reason: str | None,
          entries: list[dict[str, Any]], metrics: Mapping[str, Any], usage: Mapping[str, int], prices: Prices,
          recording: Mapping[str, Any] | None = None, amd: Any = None, analysis: Any = None) -> dict[str, Any]:
    """One call's report from what its parts kept (plain data in, plain data out).

    ``who``: from, to, call_sid, stream_sid, carrier, custom parameters. ``started_at``: wall
    clock (Unix seconds). ``entries``: the ``CallRecord``'s, in order (agent turns already cut
    where the caller cut them). ``amd`` stays None unless answering-machine detection gave a
    result; ``analysis`` is the post-call analysis, if one was asked for."""
    transcript = [{"t": e["t"], "role": e["role"], "text": e["text"],
                   **({"interrupted": True} if e["detail"].get("interrupted") else {})}
                  for e in entries if e["role"] in ("caller", "agent", "keypad")]
    tools = [{"t": e["t"], "name": e["detail"].get("name"), "call_id": e["detail"].get("call_id"),
              **({"arguments": e["detail"]["arguments"]} if "arguments" in e["detail"] else {}),
              **({"output": e["detail"]["output"]} if "output" in e["detail"] else {})}
             for e in entries if e["role"] == "tool"]
    control = [{"t": e["t"], "text": e["text"]} for e in entries if e["role"] == "control"]
    return {
        "id": report_id,
        "schema": SCHEMA_VERSION,
        "call": dict(who),
        "started_at": _iso(started_at),
        "ended_at": _iso(started_at + duration_s),
        "duration_s": round(duration_s, 3),
        "end_reason": end_reason,
        "amd": amd,
        "transcript": transcript,
        "tool_calls": tools,
        "control": control,
        "transfer_to": metrics.get("transfer_to"),
        "barge_ins": {"confirmed": metrics.get("barge_in_events", 0), "false": metrics.get("false_barge_ins", 0),
                      "clears": metrics.get("clears_sent", 0),
                      # short utterances the answer paused for, those that resumed it (backchannels),
                      # and those the bridge committed for their words (the model's VAD missed them)
                      "holds": metrics.get("backchannel_holds", 0), "resumed": metrics.get("backchannels", 0),
                      "hold_commits": metrics.get("hold_commits", 0),
                      # confirmed barge-ins the model's VAD did not start on, committed for their words,
                      # and those whose words took the turn (answered, not continued over)
                      "words_asked": metrics.get("false_trigger_commits", 0),
                      "answered": metrics.get("false_trigger_answered", 0),
                      # answers asked for only once the caller was done (they went on after
                      # the words that took the turn)
                      "answers_waited": metrics.get("answers_deferred", 0)},
        "usage": dict(usage),
        "cost": {"estimate": estimate_cost(usage, prices), "currency": prices.currency, "prices": asdict(prices)},
        "recording": dict(recording) if recording else None,
        "analysis": analysis,
        "transcript_entries_dropped": metrics.get("record_entries_dropped", 0),
    }


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


# ---------------------------------------------------------------------------- the signature
def sign(body: bytes, secret: str, timestamp: int) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``: the timestamp is signed too, so a
    captured delivery cannot be replayed later than the receiver's tolerance."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(body: bytes, header: str | None, secret: str, now: float,
           tolerance_s: float = SIGNATURE_TOLERANCE_S) -> bool:
    """A receiver's check of ``SIGNATURE_HEADER``: right MAC, timestamp within ``tolerance_s``."""
    if not header:
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(body, secret, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


# ---------------------------------------------------------------------------- retries
class Outcome(enum.Enum):
    """What one delivery attempt came to."""

    DELIVERED = "delivered"  # 2xx
    RETRY = "retry"  # refused connection, timeout, 408, 429, 5xx
    REJECTED = "rejected"  # another 4xx: the receiver will never take it (kept aside, not retried)


def outcome_of(status: int | None) -> Outcome:
    """An HTTP status (None: no answer) -> what to do."""
    if status is None or status in (408, 425, 429) or status >= 500:
        return Outcome.RETRY
    return Outcome.DELIVERED if 200 <= status < 300 else Outcome.REJECTED


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with full jitter: attempt n waits up to ``base * 2**n``, at most ``cap``."""

    base_s: float = 1.0
    cap_s: float = 300.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** min(attempt, 30))
        return ceiling / 2 + rng() * ceiling / 2  # at least half: a burst of failures spreads, never hammers


class DeliveryQueue:
    """Which reports are due when (sans-IO): ``add``, ``due(now)``, ``done(id, outcome, now)``.

    A report is held until it is delivered or rejected; a failed attempt schedules the next one
    by ``Backoff``. ``next_at`` says when the shell should wake."""

    def __init__(self, backoff: Backoff, rng: Callable[[], float] = random.random) -> None:
        self._backoff = backoff
        self._rng = rng
        self._next: dict[str, float] = {}
        self._attempts: dict[str, int] = {}

    def add(self, report_id: str, now: float) -> None:
        self._next.setdefault(report_id, now)
        self._attempts.setdefault(report_id, 0)

    def due(self, now: float) -> list[str]:
        return sorted((r for r, at in self._next.items() if at <= now), key=lambda r: self._next[r])

    def done(self, report_id: str, outcome: Outcome, now: float) -> float | None:
        """Record an attempt; returns when the next one is due (None: finished with it)."""
        if report_id not in self._next:
            return None
        if outcome is not Outcome.RETRY:
            self.forget(report_id)
            return None
        attempt = self._attempts[report_id]
        self._attempts[report_id] = attempt + 1
        self._next[report_id] = now + self._backoff.delay(attempt, self._rng)
        return self._next[report_id]

    def hurry(self, now: float) -> None:
        """The target answered again: everything waiting out a back-off is due now."""
        for report_id, at in self._next.items():
            self._next[report_id] = min(at, now)

    def forget(self, report_id: str) -> None:
        self._next.pop(report_id, None)
        self._attempts.pop(report_id, None)

    def attempts(self, report_id: str) -> int:
        return self._attempts.get(report_id, 0)

    def next_at(self) -> float | None:
        return min(self._next.values(), default=None)

    def __len__(self) -> int:
        return len(self._next)
