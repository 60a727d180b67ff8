"""Post-call report delivery with the webhook target down for the first half (issue 27's figure).

N reports (one per call) are submitted to a ``ReportSender`` pointed at a receiver on
127.0.0.1. For the first half the receiver is down (connection refused): those reports wait in
the spool with back-off. Halfway the sender's process "restarts" (``--restart``: the sender is
closed and a new one opens the same spool), the receiver comes up, and the second half is
submitted. The figure: reports delivered, delivered twice (counted by idempotency key at the
receiver), signature failures, and the time from the receiver coming up to the last delivery.

    python benchmarks/report_delivery.py --reports 1000 --restart
"""
from __future__ import annotations

import argparse
import http.server
import json
import os
import socket
import sys
import tempfile
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from voicebridge.call.delivery import ReportSender  # noqa: E402
from voicebridge.call.report import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, Backoff, verify  # noqa: E402

SECRET = "bench-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    def __init__(self, port: int) -> None:
        self.keys: Counter[str] = Counter()
        self.bad = 0
        self.last_at = 0.0
        lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = verify(body, self.headers.get(SIGNATURE_HEADER), SECRET, time.time())
                with lock:
                    outer.bad += not ok
                    outer.keys[self.headers.get(IDEMPOTENCY_HEADER) or ""] += 1
                    outer.last_at = time.monotonic()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def report(n: int) -> dict:
    return {"id": f"rpt_bench_{n:06d}", "schema": 1, "transcript": [{"t": 1.0, "role": "caller", "text": "x" * 200}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=int, default=1000)
    parser.add_argument("--restart", action="store_true", help="restart the sender between the halves")
    parser.add_argument("--down-s", type=float, default=2.0, help="how long the target stays down")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}/reports"
    half = args.reports // 2
    backoff = Backoff(base_s=0.05, cap_s=1.0)
    with tempfile.TemporaryDirectory() as spool:
        sender = ReportSender(url, spool, SECRET, backoff=backoff)
        for n in range(half):
            sender.submit(report(n))
        time.sleep(args.down_s)
        failed_attempts = sender.stats["retries"]
        spooled = len(os.listdir(os.path.join(spool, "pending")))
        if args.restart:
            sender.close()
            sender = ReportSender(url, spool, SECRET, backoff=backoff)
        receiver = Receiver(port)
        up_at = time.monotonic()
        for n in range(half, args.reports):
            sender.submit(report(n))
        idle = sender.wait_idle(60.0)
        sender.close()
        receiver.stop()
        left = len(os.listdir(os.path.join(spool, "pending")))
    twice = sum(1 for c in receiver.keys.values() if c > 1)
    result = {
        "reports": args.reports, "down_for_first": half, "restart": args.restart,
        "spooled_while_down": spooled, "failed_attempts_while_down": failed_attempts,
        "recovered_from_spool": sender.stats["recovered"],
        "delivered_unique": len(receiver.keys), "delivered_twice": twice, "bad_signatures": receiver.bad,
        "left_in_spool": left, "all_done": idle,
        "up_to_last_delivery_s": round(receiver.last_at - up_at, 3),
    }
    print(json.dumps(result, indent=1))
    ok = (result["delivered_unique"] == args.reports and twice == 0 and receiver.bad == 0 and left == 0)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
