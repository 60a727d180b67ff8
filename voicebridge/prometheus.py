"""The bridge's Prometheus metrics: one private registry per bridge, fed once per finished call.

Per-call figures are folded in when a call ends (no per-frame Prometheus cost); the gauge of
active calls is read live.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily

class BridgeMetrics:
    """The bridge's Prometheus metrics in a private registry (no clash between apps)."""

    def __init__(self, active_calls: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Gauge("voicebridge_active_calls", "Calls with a running MediaSession", registry=r).set_function(
            lambda: float(active_calls()))
        self.calls = Counter("voicebridge_calls", "Calls admitted (media streams started)", registry=r)
        self.refused = Counter("voicebridge_calls_refused", "Calls refused at the cap", ["stage"], registry=r)
        self.rejected = Counter("voicebridge_signature_rejections", "Requests refused with 403 (bad signature)",
                                ["endpoint"], registry=r)
        self.frames_sent = Counter("voicebridge_frames_sent", "Outbound 20 ms frames sent to Twilio", registry=r)
        self.late_frames = Counter("voicebridge_tx_late_frames", "Frames sent late on the 20 ms grid", registry=r)
        self.resets = Counter("voicebridge_tx_schedule_resets", "Pacer schedule resets", registry=r)
        self.barge_ins = Counter("voicebridge_barge_ins", "Confirmed barge-ins", registry=r)
        self.false_barge_ins = Counter("voicebridge_false_barge_ins", "Barge-ins judged to be noise", registry=r)
        self.openai_errors = Counter("voicebridge_openai_errors", "OpenAI error events by code", ["code"],
                                     registry=r)
        self.barge_in_latency = Histogram(
            "voicebridge_barge_in_latency_seconds", "Caller speech onset to clear sent", registry=r,
            buckets=(0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0))
        self.first_audio = Histogram(
            "voicebridge_time_to_first_audio_seconds", "Stream start to first audio frame sent", registry=r,
            buckets=(0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0))
        self.first_delta_to_frame = Histogram(
            "voicebridge_first_delta_to_frame_seconds", "First model audio delta to first frame sent (per call)",
            registry=r, buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0))
        self.tx_bursts = Counter("voicebridge_tx_gap_bursts", "Send-side gaps < 18 ms (lead excluded)", registry=r)
        self.tx_stalls = Counter("voicebridge_tx_gap_stalls", "Send-side gaps > 40 ms within a response", registry=r)
        self.tx_gaps = _GapHistogram()
        r.register(self.tx_gaps)
        self.tokens = Counter("voicebridge_tokens", "Model tokens used (response.done usage)", ["kind"], registry=r)
        self.tool_calls = Counter("voicebridge_tool_calls", "Function calls run for the model", registry=r)
        self.tool_failures = Counter("voicebridge_tool_failures", "Function calls that failed or timed out",
                                     ["outcome"], registry=r)
        self.tool_overhead = Histogram(
            "voicebridge_tool_overhead_seconds", "Function call done to output sent, minus the handler's time",
            registry=r, buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0))
        self.endings = Counter("voicebridge_call_endings", "Calls the agent ended (hang-up, transfer)", ["how"],
                               registry=r)
        self.reconnects = Counter("voicebridge_realtime_reconnects", "Realtime sessions replaced mid-call",
                                  ["cause"], registry=r)
        self.reconnect_gap = Histogram(
            "voicebridge_realtime_reconnect_gap_seconds", "Old session gone to new session configured",
            registry=r, buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 5.0, 10.0, 30.0))
        self.items_replayed = Counter("voicebridge_realtime_items_replayed",
                                      "Conversation items replayed into replacement sessions", registry=r)

    def record_call(self, m: Mapping[str, Any]) -> None:
        """Fold one finished call's figures into the totals."""
        for counter, key in ((self.frames_sent, "frames_sent"), (self.late_frames, "tx_late_frames"),
                             (self.resets, "tx_schedule_resets"), (self.barge_ins, "barge_in_events"),
                             (self.false_barge_ins, "false_barge_ins")):
            counter.inc(max(0, int(m.get(key) or 0)))
        for code, count in (m.get("openai_errors") or {}).items():
            self.openai_errors.labels(code=str(code)).inc(max(0, int(count)))
        for ms in m.get("barge_in_latencies_ms") or ():
            self.barge_in_latency.observe(float(ms) / 1000)
        if m.get("time_to_first_audio_ms") is not None:
            self.first_audio.observe(float(m["time_to_first_audio_ms"]) / 1000)
        if m.get("first_delta_to_frame_ms") is not None:
            self.first_delta_to_frame.observe(float(m["first_delta_to_frame_ms"]) / 1000)
        self.tx_bursts.inc(max(0, int(m.get("tx_gap_bursts") or 0)))
        self.tx_stalls.inc(max(0, int(m.get("tx_gap_stalls") or 0)))
        self.tx_gaps.add(m.get("tx_gap_dev_hist") or ())
        for kind, count in (m.get("usage") or {}).items():
            self.tokens.labels(kind=str(kind)).inc(max(0, int(count)))
        self.tool_calls.inc(max(0, int(m.get("tool_calls") or 0)))
        for outcome in ("errors", "timeouts"):
            self.tool_failures.labels(outcome=outcome).inc(max(0, int(m.get(f"tool_{outcome}") or 0)))
        for ms in m.get("tool_overhead_ms") or ():
            self.tool_overhead.observe(float(ms) / 1000)
        for how, key in (("hangup", "agent_hangups"), ("transfer", "transfers")):
            self.endings.labels(how=how).inc(max(0, int(m.get(key) or 0)))
        for cause in ("lost", "expired", "rollover"):
            self.reconnects.labels(cause=cause).inc(max(0, int(m.get(f"model_{cause}") or 0)))
        for ms in m.get("reconnect_gaps_ms") or ():
            self.reconnect_gap.observe(float(ms) / 1000)
        self.items_replayed.inc(max(0, int(m.get("items_replayed") or 0)))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _GapHistogram:
    """``voicebridge_tx_gap_deviation_seconds``: |send gap - 20 ms| of every paced frame.

    Fed once per call with the pacer's 0.1 ms-bin counts (no per-frame Prometheus cost);
    exposed with 0.1 ms buckets up to 3 ms, then coarser ones.
    """

    _BOUNDS_BINS = tuple(range(1, 31)) + (40, 50, 75, 100)  # upper bounds in 0.1 ms bins

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bins: list[int] = []
        self._sum_s = 0.0

    def add(self, hist: Any) -> None:
        counts = [max(0, int(c)) for c in hist]
        if not counts:
            return
        with self._lock:
            if len(self._bins) < len(counts):
                self._bins += [0] * (len(counts) - len(self._bins))
            for i, c in enumerate(counts):
                self._bins[i] += c
            self._sum_s += sum((i + 0.5) * 0.0001 * c for i, c in enumerate(counts))  # bin midpoints

    def collect(self) -> Any:
        with self._lock:
            bins, total_sum = list(self._bins), self._sum_s
        buckets, running, prev = [], 0, 0
        for bound in self._BOUNDS_BINS:
            running += sum(bins[prev:bound])
            prev = bound
            buckets.append((repr(round(bound * 0.0001, 4)), running))
        buckets.append(("+Inf", sum(bins)))
        family = HistogramMetricFamily("voicebridge_tx_gap_deviation_seconds",
                                       "|gap - 20 ms| between paced frames sent to Twilio (bin midpoint sum)")
        family.add_metric([], buckets, total_sum)
        yield family

    def describe(self) -> Any:
        return []
