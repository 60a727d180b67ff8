"""The bridge's Prometheus metrics: one private registry per bridge, fed once per finished call.

Per-call figures are folded in when a call ends (no per-frame Prometheus cost).

Two modes. One process (the default): the registry is the bridge's own, and the gauge of active
calls is read live at each scrape. Several worker processes (``gunicorn -w N``): with
``PROMETHEUS_MULTIPROC_DIR`` set *before* prometheus_client is first imported, every metric is
written to that directory by each process (prometheus_client's multiprocess mode) and
``/metrics``, whichever worker answers, adds up all of them; the active-calls gauge is then set
by each worker whenever its count changes and summed over the live workers (``livesum``: a dead
worker's value goes when the master calls ``mark_process_dead``, see
``examples/gunicorn.conf.py``). In that mode the files are per process, so one process should
run one bridge.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Iterable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

from ..audio.listening import IGNORE_REASONS
from ..audio.pacing import GAP_BIN_S

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
GAP_BOUNDS_BINS = tuple(range(1, 31)) + (40, 50, 75, 100)
"""Upper bounds of ``voicebridge_tx_gap_deviation_seconds``, in 0.1 ms bins: 0.1 ms steps up to 3 ms, then coarser."""
GAP_BUCKETS = tuple(round(bound * GAP_BIN_S, 4) for bound in GAP_BOUNDS_BINS)


def multiprocess_directory() -> str | None:
    """The multiprocess directory if prometheus_client is in multiprocess mode in this process.

    The mode is fixed when prometheus_client is first imported; a directory set later would be
    ignored by every metric, so it is reported and this process serves its own figures.
    """
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return None
    if not getattr(values.ValueClass, "_multiprocess", False):
        log.warning("%s is set but prometheus_client was imported before it was: /metrics shows this "
                    "process only. Set it before the app (and prometheus_client) is imported.", MULTIPROC_ENV)
        return None
    return path


class BridgeMetrics:
    """The bridge's Prometheus metrics in a private registry (no clash between apps)."""

    content_type = CONTENT_TYPE_LATEST
    enabled = True

    def __init__(self, active_calls: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = multiprocess_directory()
        self._active_calls = active_calls
        r = self.registry
        self.active = Gauge("voicebridge_active_calls", "Calls with a running MediaSession", registry=r,
                            multiprocess_mode="livesum")
        if self.multiprocess_dir is None:
            self.active.set_function(lambda: float(active_calls()))
        self.calls = Counter("voicebridge_calls", "Calls admitted (media streams started)", registry=r)
        self.refused = Counter("voicebridge_calls_refused", "Calls refused at the cap", ["stage"], registry=r)
        self.rejected = Counter("voicebridge_signature_rejections", "Requests refused with 403 (bad signature)",
                                ["endpoint"], registry=r)
        self.frames_sent = Counter("voicebridge_frames_sent", "Outbound 20 ms frames sent to Twilio", registry=r)
        self.late_frames = Counter("voicebridge_tx_late_frames", "Frames sent late on the 20 ms grid", registry=r)
        self.resets = Counter("voicebridge_tx_schedule_resets", "Pacer schedule resets", registry=r)
        self.barge_ins = Counter("voicebridge_barge_ins", "Confirmed barge-ins", registry=r)
        self.false_barge_ins = Counter("voicebridge_false_barge_ins", "Barge-ins judged to be noise", registry=r)
        self.duck_releases = Counter("voicebridge_duck_releases", "Pauses of the agent's audio on a sound that was "
                                     "not an interruption (a click, a backchannel): the answer went on", registry=r)
        self.openai_errors = Counter("voicebridge_openai_errors", "OpenAI error events by code", ["code"],
                                     registry=r)
        self.server_speech_ignored = Counter(
            "voicebridge_server_speech_ignored", "The model's VAD started while the agent talked, with nothing of "
            "the caller heard by the bridge (echo, noise, tone, backchannel, nothing)", ["reason"], registry=r)
        self.duck_clears = Counter("voicebridge_duck_clears", "Ducks that cleared Twilio's buffered agent audio at "
                                   "once (duck_clear)", registry=r)
        self.frames_taken_back = Counter("voicebridge_frames_taken_back", "Frames a duck's clear took back before "
                                         "the caller heard them (then resent, or discarded by a barge-in)", registry=r)
        self.frames_resent = Counter("voicebridge_frames_resent", "Frames taken back by a duck's clear and sent "
                                     "again when it was released", registry=r)
        self.backchannels = Counter("voicebridge_backchannels",
                                    "Short acknowledgements over the agent that let the answer go on", registry=r)
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
        self.tx_gaps = Histogram("voicebridge_tx_gap_deviation_seconds",
                                 "|gap - 20 ms| between paced frames sent to Twilio (bin midpoint sum)",
                                 registry=r, buckets=GAP_BUCKETS)
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
                             (self.false_barge_ins, "false_barge_ins"), (self.duck_releases, "duck_releases"),
                             (self.duck_clears, "duck_clears"), (self.frames_taken_back, "frames_taken_back"),
                             (self.frames_resent, "frames_resent")):
            counter.inc(max(0, int(m.get(key) or 0)))
        for reason in IGNORE_REASONS:
            self.server_speech_ignored.labels(reason=reason.value).inc(
                max(0, int(m.get(f"server_speech_ignored_{reason.value}") or 0)))
        self.backchannels.inc(max(0, int(m.get("backchannels") or 0)))
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
        add_binned(self.tx_gaps, m.get("tx_gap_dev_hist") or ())
        for kind, count in (m.get("usage") or {}).items():
            self.tokens.labels(kind=str(kind)).inc(max(0, int(count)))
        self.tool_calls.inc(max(0, int(m.get("tool_calls") or 0)))
        for outcome in ("errors", "timeouts"):
            self.tool_failures.labels(outcome=outcome).inc(max(0, int(m.get(f"tool_{outcome}") or 0)))
        for ms in m.get("tool_overhead_ms") or ():
            self.tool_overhead.observe(float(ms) / 1000)
        for how, key in (("hangup", "agent_hangups"), ("transfer", "transfers")):
            self.endings.labels(how=how).inc(max(0, int(m.get(key) or 0)))
        for cause in ("lost", "expired", "rollover", "unresponsive"):
            self.reconnects.labels(cause=cause).inc(max(0, int(m.get(f"model_{cause}") or 0)))
        for ms in m.get("reconnect_gaps_ms") or ():
            self.reconnect_gap.observe(float(ms) / 1000)
        self.items_replayed.inc(max(0, int(m.get("items_replayed") or 0)))

    def update_active(self) -> None:
        """Publish this process's active calls (multiprocess mode; otherwise read at each scrape)."""
        if self.multiprocess_dir is not None:
            self.active.set(float(self._active_calls()))

    def exposition(self) -> bytes:
        """The text exposition: this bridge's registry, or every process's files in multiprocess mode."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        return generate_latest(registry)


def add_binned(histogram: Histogram, hist: Iterable[Any]) -> None:
    """Fold one call's 0.1 ms-bin counts of |gap - 20 ms| into ``histogram``.

    One increment per bucket instead of one ``observe`` per frame (a ten-minute call has 30 000
    frames). Bin ``i`` covers [i, i + 1) x 0.1 ms, so it belongs to the first bucket whose bound
    is above ``i``; the sum takes bin midpoints. This writes prometheus_client's per-bucket
    values (``_buckets``, ``_sum``: non-cumulative, stable since 0.4 and the same in multiprocess
    mode); without them it falls back to observing each midpoint.
    """
    counts = [max(0, int(c)) for c in hist]
    if not any(counts):
        return
    per_bucket = [0] * (len(GAP_BOUNDS_BINS) + 1)  # + the +Inf bucket
    bucket = 0
    for i, count in enumerate(counts):
        while bucket < len(GAP_BOUNDS_BINS) and i >= GAP_BOUNDS_BINS[bucket]:
            bucket += 1
        per_bucket[bucket] += count
    total_s = sum((i + 0.5) * GAP_BIN_S * c for i, c in enumerate(counts))
    buckets, total = getattr(histogram, "_buckets", None), getattr(histogram, "_sum", None)
    if buckets is None or total is None or len(buckets) != len(per_bucket):  # pragma: no cover - a future client
        for i, count in enumerate(counts):
            for _ in range(count):
                histogram.observe((i + 0.5) * GAP_BIN_S)
        return
    for value, count in zip(buckets, per_bucket):
        if count:
            value.inc(count)
    total.inc(total_s)
