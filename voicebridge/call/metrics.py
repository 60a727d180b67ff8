"""Per-call figures and the frame accounting identity.

Every outbound frame that enters the TX queue leaves it exactly one way: sent to Twilio,
flushed by a barge-in, or dropped (call ending, send failure). ``check()`` verifies
``frames_enqueued == frames_sent + frames_flushed + frames_dropped`` at close.
Counters are touched from several threads, so every change holds one lock, but for the few that
only the run thread counts, on every caller frame (``RUN_THREAD_COUNTERS``): one writer needs no
lock, and under gevent a lock is Python code on the call's busiest path.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from ..locks import state_lock

COUNTERS = (
    "audio_deltas", "model_audio_bytes", "frames_enqueued", "frames_sent", "frames_flushed",
    "frames_dropped", "inbound_frames", "inbound_frames_dropped",
    "inbound_bytes", "inbound_wrong_size", "outbound_bad_size", "marks_sent", "marks_echoed",
    "marks_stale", "clears_sent", "responses", "ducks", "hold_pauses", "duck_releases", "duck_clears", "frames_taken_back",
    "frames_resent", "frames_resend_discarded", "barge_in_events", "echo_frames_suppressed",
    "barge_in_local", "barge_in_server", "barge_in_transcript", "server_speech_ignored",
    "server_speech_ignored_echo", "server_speech_ignored_noise", "server_speech_ignored_tone",
    "server_speech_ignored_backchannel", "server_speech_ignored_unclear", "server_speech_ignored_far",
    "server_speech_ignored_nothing", "backchannels", "backchannels_overruled", "backchannel_holds",
    "barge_in_hold", "hold_commits", "onset_commits", "far_holds", "breath_holds", "answers_deferred",
    "turns_backchannel", "turns_not_caller", "turns_left_over", "false_barge_ins", "false_trigger_commits", "false_trigger_answered",
    "truncates_sent",
    "late_deltas_dropped", "framer_bytes_dropped", "framer_bytes_padded", "safety_fuses",
    "twilio_protocol_errors", "telnyx_protocol_errors", "openai_protocol_errors", "openai_unknown_events",
    "send_failures", "twilio_send_timeouts", "threads_alive_after_close",
    "response_requests", "response_requests_retried", "response_requests_dropped",
    "tool_calls", "tool_errors", "tool_timeouts", "tool_late_results", "tool_fillers",
    "tool_results_too_large", "tool_handlers_abandoned",
    "dtmf_entries_dropped",
    "agent_hangups", "transfers", "hangups_cancelled", "hangup_mark_timeouts", "dtmf_sequences",
    "limit_nudge", "limit_idle_goodbye", "limit_wrap_up", "limit_end",
    "model_lost", "model_expired", "model_rollover", "model_unresponsive", "model_redials", "items_replayed",
    "inbound_frames_resent", "response_requests_unanswered",
    "transcriptions_failed", "hooks_dropped", "turn_events_refused",
)

RUN_THREAD_COUNTERS = ("inbound_frames", "inbound_bytes", "echo_frames_suppressed")
"""Counted per caller frame by the run thread alone (``frame_received``, ``echo_suppressed``),
without the lock; ``snapshot`` and ``get`` add them to whatever ``add`` counted under those names."""


class CallMetrics:
    """Thread-safe counters plus a few timings; ``snapshot()`` is a plain dict."""

    def __init__(self) -> None:
        self._lock = state_lock()
        self._counts: Counter[str] = Counter({name: 0 for name in COUNTERS})
        self.openai_errors: Counter[str] = Counter()
        self.protocol_errors: Counter[str] = Counter()
        self.first_frame_bytes: int | None = None
        self.first_delta_at: float | None = None
        self.first_frame_sent_at: float | None = None
        self.barge_in_latencies_ms: list[float] = []
        self.tool_overheads_ms: list[float] = []
        self.reconnect_gaps_ms: list[float] = []
        self.call_started_at: float | None = None
        self.call_ended_at: float | None = None  # the teardown's: duration_s (before, only on_call_end's had it)
        self.opened_at: float | None = None  # a deferred opening decided (the AMD verdict taken)
        # RUN_THREAD_COUNTERS: written by the run thread only, read whole (an int) by any thread
        self._inbound_frames = 0
        self._inbound_bytes = 0
        self._echo_suppressed = 0

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def get(self, name: str) -> int:
        with self._lock:
            count = self._counts[name]
        return count + self._run_thread_counts()[name] if name in RUN_THREAD_COUNTERS else count

    def _run_thread_counts(self) -> dict[str, int]:
        return dict(zip(RUN_THREAD_COUNTERS, (self._inbound_frames, self._inbound_bytes, self._echo_suppressed)))

    def error(self, code: str) -> None:
        with self._lock:
            self.openai_errors[code] += 1

    def protocol_error(self, side: str, kind: str) -> None:
        with self._lock:
            self.protocol_errors[f"{side}.{kind}"] += 1
            self._counts[f"{side}_protocol_errors"] += 1

    def barge_in_latency(self, ms: float) -> None:
        with self._lock:
            self.barge_in_latencies_ms.append(round(ms, 2))

    def tool_overhead(self, ms: float) -> None:
        """What the bridge added to one tool call's round trip (its handler's time excluded)."""
        with self._lock:
            if len(self.tool_overheads_ms) < 1000:
                self.tool_overheads_ms.append(round(ms, 2))

    def reconnect_gap(self, ms: float) -> None:
        """How long a replacement Realtime session took (dial, configure, replay)."""
        with self._lock:
            if len(self.reconnect_gaps_ms) < 1000:
                self.reconnect_gaps_ms.append(round(ms, 1))

    def first_delta(self, now: float) -> None:
        with self._lock:
            if self.first_delta_at is None:
                self.first_delta_at = now

    def frame_received(self, size: int) -> None:
        """A caller frame of ``size`` bytes (run thread only, 50 a second): no lock (one writer)."""
        self._inbound_frames += 1
        self._inbound_bytes += size

    def echo_suppressed(self) -> None:
        """A caller frame judged echo only was not sent to the model as heard (run thread only): no lock."""
        self._echo_suppressed += 1

    def frame_sent(self, size: int, now: float) -> None:
        with self._lock:
            self._counts["frames_sent"] += 1
            if self.first_frame_bytes is None:
                self.first_frame_bytes = size
                self.first_frame_sent_at = now

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = dict(self._counts)
            for name, count in self._run_thread_counts().items():
                out[name] += count
            out["openai_errors"] = dict(self.openai_errors)
            out["protocol_errors"] = dict(self.protocol_errors)
            out["first_frame_bytes"] = self.first_frame_bytes
            if self.first_delta_at is not None and self.first_frame_sent_at is not None:
                out["first_delta_to_frame_ms"] = round((self.first_frame_sent_at - self.first_delta_at) * 1000, 2)
            else:
                out["first_delta_to_frame_ms"] = None
            out["barge_in_latencies_ms"] = list(self.barge_in_latencies_ms)
            out["tool_overhead_ms"] = list(self.tool_overheads_ms)
            out["reconnect_gaps_ms"] = list(self.reconnect_gaps_ms)
            started, ended = self.call_started_at, self.call_ended_at
            out["duration_s"] = round(ended - started, 3) if started is not None and ended is not None else None
            if self.call_started_at is not None and self.first_frame_sent_at is not None:
                out["time_to_first_audio_ms"] = round((self.first_frame_sent_at - self.call_started_at) * 1000, 2)
            else:
                out["time_to_first_audio_ms"] = None
            opened = self.opened_at
            out["opening_to_first_audio_ms"] = (round((self.first_frame_sent_at - opened) * 1000, 2)
                                                if opened is not None and self.first_frame_sent_at is not None
                                                and self.first_frame_sent_at >= opened else None)
        out["accounting_ok"] = (
            out["frames_enqueued"] == out["frames_sent"] + out["frames_flushed"] + out["frames_dropped"]
        )
        return out
