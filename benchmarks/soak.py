"""Soak: many calls through the real stack in one process; nothing may leak.

The stack: a Flask + flask-sock app served by werkzeug's threaded server on 127.0.0.1 (port 0)
whose ``/media`` route runs a ``MediaSession`` against a ``LocalRealtimeServer`` (tone mode,
high speed). Simple Twilio-like clients (websocket-client) send ``connected``, ``start``,
``--seconds`` of media (at ``--media-speed`` x real time), echo the bridge's marks, then ``stop``.

N sequential calls, then M concurrent ones. After each batch: the process's thread count and
open file descriptors return to their baseline, RSS grew less than 5 % over the baseline, every
call ended with "twilio stop" and a balanced frame account, and the logs hold no traceback and
no uncaught thread exception. Prints the figures; exits 1 on any failure.

Usage: python benchmarks/soak.py [--sequential 1000] [--concurrent 100] [--seconds 1] [--json]
"""
from __future__ import annotations

import argparse
import base64
import gc
import json
import logging
import os
import select
import sys
import threading
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import websocket  # noqa: E402
from flask import Flask  # noqa: E402
from flask_sock import Sock  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from voicebridge import BridgeConfig, MediaSession  # noqa: E402
from voicebridge.dev.local import LocalRealtimeServer  # noqa: E402

SETTLE_S = 10.0  # how long threads / fds may take to return to baseline after a batch
RSS_LIMIT = 0.05
SILENCE_B64 = base64.b64encode(b"\xff" * 160).decode()


# ----------------------------------------------------------------------------- process figures
def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def fd_targets() -> dict[str, str]:
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    return out


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class TracebackCounter(logging.Handler):
    """Counts log records that carry a traceback, and the ones at ERROR or above."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.tracebacks: list[str] = []
        self.errors: list[str] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is itself worth counting
            msg = str(record.msg)
        with self._lock2:
            if record.exc_info or "Traceback" in msg:
                self.tracebacks.append(f"{record.name}: {msg[:300]}")
            if record.levelno >= logging.ERROR:
                self.errors.append(f"{record.name}: {msg[:300]}")


# ----------------------------------------------------------------------------- the bridge under test
class Bridge:
    """The real stack: werkzeug threaded server + flask-sock + MediaSession -> local Realtime server."""

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.results: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        app = Flask("voicebridge-soak")
        sock = Sock(app)

        @sock.route("/media")
        def media(ws: Any) -> None:
            MediaSession(ws, self.config, on_end=self._ended).run()

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="soak-bridge", daemon=True)
        self.thread.start()

    def _ended(self, session: MediaSession) -> None:
        m = session.metrics  # keep only what the checks need: the soak must not grow by itself
        with self._lock:
            self.results.append({k: m[k] for k in ("accounting_ok", "close_reason", "frames_sent", "frames_dropped")})

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.server_port}/media"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


# ----------------------------------------------------------------------------- a Twilio-like client
def call(url: str, n: int, seconds: float, media_speed: float) -> dict[str, Any]:
    """One call: connected, start, media (marks echoed), stop; wait for the bridge to hang up."""
    sid, call_sid = f"MZ{n:032x}", f"CA{n:032x}"
    out: dict[str, Any] = {"media_in": 0, "marks": 0, "error": None, "first_audio_s": None}
    started = time.monotonic()
    ws = websocket.WebSocket()
    try:
        ws.connect(url, timeout=10)

        def send(msg: dict[str, Any]) -> None:
            ws.send(json.dumps(msg))

        def pump(wait: float) -> None:
            """Read whatever the bridge sent; echo marks like Twilio does."""
            while select.select([ws.sock], [], [], wait)[0]:
                wait = 0
                opcode, data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    raise ConnectionError("closed")
                msg = json.loads(data)
                if msg["event"] == "media":
                    out["media_in"] += 1
                    if out["first_audio_s"] is None:
                        out["first_audio_s"] = time.monotonic() - started
                elif msg["event"] == "mark":
                    out["marks"] += 1
                    send({"event": "mark", "streamSid": sid, "sequenceNumber": "0", "mark": msg["mark"]})

        send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        send({"event": "start", "sequenceNumber": "1", "streamSid": sid,
              "start": {"streamSid": sid, "accountSid": "ACsoak", "callSid": call_sid, "tracks": ["inbound"],
                        "customParameters": {"n": str(n)},
                        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
        frames = max(1, int(seconds * 50))
        step = 0.02 / media_speed
        t0 = time.monotonic()
        for i in range(frames):
            send({"event": "media", "sequenceNumber": str(i + 2), "streamSid": sid,
                  "media": {"track": "inbound", "chunk": str(i + 1), "timestamp": str(i * 20),
                            "payload": SILENCE_B64}})
            pump(max(0.0, t0 + (i + 1) * step - time.monotonic()))
        listen_until = time.monotonic() + 15  # a caller hears the greeting before hanging up
        while out["media_in"] == 0 and time.monotonic() < listen_until:
            send({"event": "media", "streamSid": sid, "media": {"track": "inbound", "payload": SILENCE_B64}})
            pump(0.02)
        send({"event": "stop", "sequenceNumber": str(frames + 2), "streamSid": sid,
              "stop": {"accountSid": "ACsoak", "callSid": call_sid}})
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                pump(0.1)
        except (ConnectionError, websocket.WebSocketException, OSError, ValueError):
            pass  # the bridge hung up, as it should after stop
    except Exception as exc:  # noqa: BLE001 - reported per call
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        try:
            ws.close(timeout=1)
        except Exception:  # noqa: BLE001
            pass
        ws.shutdown()  # websocket-client's close() skips this once the bridge's close frame was read
    return out


# ----------------------------------------------------------------------------- batches and checks
def settle(baseline: dict[str, int]) -> dict[str, int]:
    """Wait (bounded) for threads and fds to come back to the baseline; return the last figures."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        gc.collect()  # cyclic garbage holding a socket or selector is not a leak; collect it first
        now = {"threads": thread_count(), "fds": fd_count(), "rss_kib": rss_kib()}
        if (now["threads"] <= baseline["threads"] and now["fds"] <= baseline["fds"]) or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


def run_batch(bridge: Bridge, name: str, calls: int, parallel: bool, seconds: float, media_speed: float,
              first: int) -> dict[str, Any]:
    start_results = len(bridge.results)
    t0 = time.monotonic()
    client_results: list[dict[str, Any]] = []
    if parallel:
        lock = threading.Lock()

        def one(n: int) -> None:
            r = call(bridge.url, n, seconds, media_speed)
            with lock:
                client_results.append(r)

        threads = [threading.Thread(target=one, args=(first + i,), name=f"soak-client-{i}") for i in range(calls)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60 + seconds * 10)
    else:
        for i in range(calls):
            client_results.append(call(bridge.url, first + i, seconds, media_speed))
    # every session reports through on_end once it has torn down
    deadline = time.monotonic() + 15
    while len(bridge.results) - start_results < calls and time.monotonic() < deadline:
        time.sleep(0.02)
    sessions = bridge.results[start_results:]
    return {
        "batch": name, "calls": calls, "wall_s": round(time.monotonic() - t0, 2),
        "sessions_ended": len(sessions),
        "client_errors": [r["error"] for r in client_results if r["error"]][:5],
        "calls_without_audio": sum(1 for r in client_results if r["media_in"] == 0),
        "media_frames_received": sum(r["media_in"] for r in client_results),
        "first_audio_s_max": round(max((r["first_audio_s"] or 0.0) for r in client_results), 3) if client_results else None,
        "marks_echoed": sum(r["marks"] for r in client_results),
        "accounting_failures": sum(1 for m in sessions if not m["accounting_ok"]),
        "unclean_endings": sorted({m["close_reason"] for m in sessions if m["close_reason"] != "twilio stop"}),
        "frames_sent": sum(m["frames_sent"] for m in sessions),
        "frames_dropped": sum(m["frames_dropped"] for m in sessions),
    }


def soak(sequential: int = 1000, concurrent: int = 100, seconds: float = 1.0, media_speed: float = 4.0,
         speed: float = 50.0, warmup: int = 10, out=print) -> dict[str, Any]:
    """Run the soak; returns the figures and ``ok``. ``out`` gets one human line per step.

    The warm-up (``warmup`` sequential calls, then one burst as wide as ``concurrent``) brings
    lazy imports, caches and the allocator's per-thread arenas to their steady state; the
    baseline is taken after it, so the RSS check measures growth, not the first high-water mark.
    """
    counter = TracebackCounter()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(counter)
    root.setLevel(logging.INFO)
    quiet = {name: logging.getLogger(name).level for name in ("werkzeug", "websocket")}
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
    escaped: list[str] = []
    old_hook = threading.excepthook
    threading.excepthook = lambda a: escaped.append(f"{a.thread.name if a.thread else '?'}: {a.exc_type.__name__}: {a.exc_value}")
    local = LocalRealtimeServer(mode="tone", speed=speed, tone_seconds=min(1.0, max(0.2, seconds)),
                               vad="energy").start()  # the soak measures the bridge: Silero's ONNX arenas are the server's
    config = BridgeConfig(openai_url=local.url, greeting_instructions="Say hello.", join_timeout_s=5.0)
    bridge = Bridge(config)
    out(f"bridge {bridge.url} -> local realtime server {local.url}")
    report: dict[str, Any] = {"sequential": sequential, "concurrent": concurrent, "seconds": seconds,
                              "media_speed": media_speed, "local_speed": speed, "batches": []}
    try:
        # warm-up: lazy imports, allocator arenas, first-use caches; the baseline is taken after it,
        # once the warm-up's threads and sockets are gone (at most SETTLE_S, as after every batch)
        idle = {"threads": thread_count(), "fds": fd_count()}
        run_batch(bridge, "warmup", warmup, False, seconds, media_speed, 0)
        before = rss_kib()
        run_batch(bridge, "warmup-parallel", concurrent, True, seconds, media_speed, warmup)
        report["warmup_settled"] = settle(idle)
        report["warmup_rss_kib"] = {"after_sequential": before, "after_burst": rss_kib()}
        baseline = {"threads": thread_count(), "fds": fd_count(), "rss_kib": rss_kib()}
        baseline_fds = fd_targets()
        report["baseline"] = baseline
        out(f"baseline: threads={baseline['threads']} fds={baseline['fds']} rss={baseline['rss_kib']} KiB")
        first = 10_000
        for name, calls, parallel in (("sequential", sequential, False), ("concurrent", concurrent, True)):
            if calls <= 0:
                continue
            batch = run_batch(bridge, name, calls, parallel, seconds, media_speed, first)
            first += calls
            after = settle(baseline)
            batch.update({
                "threads_after": after["threads"], "fds_after": after["fds"], "rss_kib_after": after["rss_kib"],
                "rss_growth_pct": round(100.0 * (after["rss_kib"] - baseline["rss_kib"]) / baseline["rss_kib"], 2),
            })
            problems = []
            if batch["sessions_ended"] != calls:
                problems.append(f"{calls - batch['sessions_ended']} sessions never ended")
            if batch["client_errors"]:
                problems.append(f"client errors: {batch['client_errors']}")
            if batch["calls_without_audio"]:
                problems.append(f"{batch['calls_without_audio']} calls heard no audio")
            if batch["accounting_failures"]:
                problems.append(f"{batch['accounting_failures']} frame accounting failures")
            if batch["unclean_endings"]:
                problems.append(f"unclean endings: {batch['unclean_endings']}")
            if after["threads"] > baseline["threads"]:
                problems.append(f"threads {baseline['threads']} -> {after['threads']}")
            if after["fds"] > baseline["fds"]:
                new = sorted(set(fd_targets().items()) - set(baseline_fds.items()))
                problems.append(f"fds {baseline['fds']} -> {after['fds']}: {new[:10]}")
            if batch["rss_growth_pct"] >= RSS_LIMIT * 100:
                problems.append(f"RSS grew {batch['rss_growth_pct']} %")
            batch["problems"] = problems
            report["batches"].append(batch)
            out(f"{name}: {calls} calls in {batch['wall_s']} s; threads {baseline['threads']}->{after['threads']} "
                f"fds {baseline['fds']}->{after['fds']} rss {baseline['rss_kib']}->{after['rss_kib']} KiB "
                f"({batch['rss_growth_pct']:+.2f} %); frames sent {batch['frames_sent']}, "
                f"received {batch['media_frames_received']}; marks echoed {batch['marks_echoed']}; "
                f"slowest greeting {batch['first_audio_s_max']} s"
                + (f"; PROBLEMS: {problems}" if problems else "; ok"))
    finally:
        bridge.stop()
        local.stop()
        threading.excepthook = old_hook
        root.removeHandler(counter)
        root.setLevel(old_level)
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)
    report["tracebacks_logged"] = len(counter.tracebacks)
    report["error_records"] = len(counter.errors)
    report["first_tracebacks"] = counter.tracebacks[:3]
    report["first_errors"] = counter.errors[:3]
    report["uncaught_thread_exceptions"] = escaped[:5]
    report["ok"] = (not counter.tracebacks and not counter.errors and not escaped
                    and all(not b["problems"] for b in report["batches"]))
    out(f"log records with a traceback: {len(counter.tracebacks)}; ERROR records: {len(counter.errors)}; "
        f"uncaught thread exceptions: {len(escaped)}")
    return report


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequential", type=int, default=1000, help="sequential calls (default 1000)")
    parser.add_argument("--concurrent", type=int, default=100, help="concurrent calls (default 100)")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds of caller media per call")
    parser.add_argument("--media-speed", type=float, default=4.0, help="x real time the client sends media at")
    parser.add_argument("--speed", type=float, default=50.0, help="local server audio speed (x real time)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON at the end")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    report = soak(args.sequential, args.concurrent, args.seconds, args.media_speed, args.speed)
    report["total_wall_s"] = round(time.monotonic() - t0, 1)
    if args.json:
        print(json.dumps(report, indent=2))
    print(f"{'OK' if report['ok'] else 'FAILED'} in {report['total_wall_s']} s")
    for line in report["first_tracebacks"] + report["first_errors"] + report["uncaught_thread_exceptions"]:
        print("  ", line)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
