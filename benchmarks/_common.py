"""Shared bits of the benchmark scripts: a cheap recording Twilio socket and percentiles."""
from __future__ import annotations

import json
import os
import platform
import queue
import threading
import time
from typing import Any

from voicebridge import testing


class RecordingTwilio:
    """A Twilio-side socket that only timestamps what the bridge sends (no parsing on the hot path)."""

    def __init__(self, stream_sid: str = testing.STREAM_SID) -> None:
        self.stream_sid = stream_sid
        self.inbound: "queue.Queue[Any]" = queue.Queue()
        self.sent: list[tuple[float, str]] = []
        self.closed = threading.Event()

    def send(self, data: str) -> None:
        self.sent.append((time.monotonic(), data))

    def receive(self, timeout: float | None = None) -> Any:
        try:
            item = self.inbound.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is None:
            raise ConnectionError("closed")
        return item

    def close(self, *args: Any) -> None:
        self.closed.set()

    def push(self, msg: dict[str, Any]) -> None:
        self.inbound.put(json.dumps(msg))

    def start(self) -> None:
        self.push(testing.twilio_connected())
        self.push(testing.twilio_start(self.stream_sid))

    def kinds(self) -> list[tuple[float, str]]:
        """(time, event) of every message sent, parsed after the run."""
        return [(t, json.loads(raw)["event"]) for t, raw in self.sent]


def setting(text: str) -> "tuple[str, Any]":
    """A ``--set NAME=JSON`` argument: a BridgeConfig field and its value."""
    name, _, value = text.partition("=")
    return name, json.loads(value)


def machine() -> str:
    """One line naming the machine a figure was measured on."""
    return (f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
            f"Linux {platform.release()}, Python {platform.python_version()}")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def gap_stats(times: list[float], skip: set[int] | None = None) -> dict[str, float]:
    """Inter-frame gaps in ms; ``skip`` = indexes of gaps that belong to a send-ahead lead."""
    gaps = [(b - a) * 1000 for a, b in zip(times, times[1:])]
    paced = [g for i, g in enumerate(gaps) if not skip or i not in skip]
    dev = [abs(g - 20.0) for g in paced]
    return {
        "frames": len(times),
        "gap_p50_ms": round(percentile(paced, 50), 3),
        "dev_p50_ms": round(percentile(dev, 50), 3),
        "dev_p99_ms": round(percentile(dev, 99), 3),
        "dev_max_ms": round(max(dev) if dev else float("nan"), 3),
        "bursts_lt_18ms": sum(1 for g in paced if g < 18.0),
        "stalls_gt_40ms": sum(1 for g in paced if g > 40.0),
    }
