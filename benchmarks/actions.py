"""What the bridge adds to the agent's actions, measured inside the bridge on fake sockets.

* tool round trip overhead: the model's function call done -> its output sent, minus the
  handler's own time (a trivial handler), over N calls;
* hang-up delay: the goodbye's last mark echoed by Twilio -> the bridge closing the stream,
  over N calls that end with ``end_call``.

Usage: python benchmarks/actions.py [--n 50] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks._common import machine, percentile  # noqa: E402
from voicebridge import BridgeConfig, tool  # noqa: E402
from voicebridge.testing import (BridgeCall, FakeTwilio, rt_function_call, rt_response_created,  # noqa: E402
                                 rt_response_done, wait_until)

FRAME = b"\x42" * 160


@tool
def lookup(order_id: str) -> dict:
    """Look up an order."""
    return {"order_id": order_id, "status": "shipped"}


class TimedTwilio(FakeTwilio):
    """Echoes marks at once (as if played) and remembers when the bridge closed the stream."""

    def __init__(self) -> None:
        super().__init__()
        self.echo_marks = True
        self.closed_at: float | None = None

    def close(self, reason: object = None, message: object = None) -> None:
        self.closed_at = time.monotonic()
        super().close(reason, message)


def tool_overheads(n: int) -> list[float]:
    call = BridgeCall(BridgeConfig(greeting_instructions=None, tools=(lookup,), idle_nudge_s=None, tool_filler_after_ms=0))
    call.start()
    for i in range(n):
        rid = f"resp_{i}"
        call.openai.push(rt_response_created(rid))
        call.openai.push(rt_function_call(rid, f"call_{i}", "lookup", {"order_id": str(i)}, output_index=0))
        call.openai.push(rt_response_done(rid))
        wait_until(lambda: len(call.openai.requested("tool_result")) == i + 1, timeout=5)
        call.openai.push(rt_response_created(f"answer_{i}", "tool_result"))
        call.openai.push(rt_response_done(f"answer_{i}"))
    metrics = call.finish()
    return metrics["tool_overhead_ms"]


def hangup_delay_ms() -> float:
    twilio = TimedTwilio()
    call = BridgeCall(BridgeConfig(greeting_instructions=None, end_call=True, idle_nudge_s=None), twilio=twilio)
    call.start()
    openai = call.openai
    openai.push(rt_response_created("resp_bye"))
    openai.push({"type": "response.output_item.added", "response_id": "resp_bye", "output_index": 0,
                 "item": {"id": "item_bye", "type": "message", "role": "assistant", "status": "in_progress"}})
    openai.delta("resp_bye", "item_bye", FRAME * 5)
    openai.push({"type": "response.output_audio.done", "response_id": "resp_bye", "item_id": "item_bye",
                 "output_index": 0, "content_index": 0})
    openai.push(rt_function_call("resp_bye", "call_bye", "end_call", {}))
    openai.push(rt_response_done("resp_bye"))
    call.finish(stop=False)
    last_mark = max(t for t, m in twilio.sent if m["event"] == "mark")  # echoed the moment it was sent
    assert twilio.closed_at is not None
    return (twilio.closed_at - last_mark) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    overheads = tool_overheads(args.n)
    delays = [hangup_delay_ms() for _ in range(max(1, args.n // 5))]
    result = {
        "machine": machine(), "tool_calls": len(overheads),
        "tool_overhead_p50_ms": round(percentile(overheads, 50), 2),
        "tool_overhead_p99_ms": round(percentile(overheads, 99), 2),
        "tool_overhead_max_ms": round(max(overheads), 2),
        "hangups": len(delays),
        "hangup_after_last_mark_p50_ms": round(percentile(delays, 50), 2),
        "hangup_after_last_mark_max_ms": round(max(delays), 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>32}: {value}")
    return 0 if len(overheads) == args.n else 1


if __name__ == "__main__":
    raise SystemExit(main())
