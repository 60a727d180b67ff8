"""Issue 22's hostile Realtime servers, replayed from outside against the example app.

Starts a scripted Realtime server on 127.0.0.1, runs ``examples/twilio_app.py`` as its own
process pointed at it (``OPENAI_REALTIME_URL``), and plays one Twilio call into ``/media`` with a
websocket-client (``connected``, ``start``, 20 ms of silence every 20 ms, marks echoed). Modes:

* ``expire`` -- every new session is answered with ``error`` ``session_expired``, then closed
  (before issue 22: 1,900-4,200 redials in 10 s and 0.9-1.8 MB of log, without end);
* ``ping8`` -- a healthy session on a quiet line: ``response.create`` gets an empty response,
  and the server sends a WebSocket ping every 8 s (before: reconnected and replayed at 13 s);
* ``mute`` -- the session is configured but ``response.create`` is never answered (before:
  47 s of dead air, no reconnect, no apology).

Figures: dials the server saw in the call's first 10 s and in all, bytes the app logged during
the call, when the caller heard the first audio (the apology, when nothing else plays), when and
why the call ended. ``--repo`` runs another checkout's example app (an old one, to compare).

Usage: python benchmarks/hostile_realtime.py --mode expire [--seconds 30] [--repo PATH] [--json]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import websocket
from flask import Flask
from flask_sock import Sock
from werkzeug.serving import make_server

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from voicebridge import testing  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SILENCE = b"\xff" * 160


class HostileRealtime:
    """A Realtime server that misbehaves in one way (``mode``); records when each dial came."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.dials: list[float] = []
        app = Flask("hostile-realtime")
        if mode == "ping8":
            app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": 8}
        Sock(app).route("/v1/realtime")(self._session)
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._server.server_port}/v1/realtime?model=gpt-realtime"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _session(self, ws: Any) -> None:
        self.dials.append(time.monotonic())
        ws.send(json.dumps({"type": "session.created", "event_id": "e0", "session": {}}))
        responses = 0
        while True:
            try:
                raw = ws.receive(timeout=60)
            except Exception:  # noqa: BLE001 - the bridge hung up
                return
            if raw is None:
                continue
            kind = json.loads(raw).get("type")
            if kind == "session.update":
                if self.mode == "expire":
                    ws.send(json.dumps(testing.rt_error("session_expired", "Your session hit the maximum "
                                                        "duration of 60 minutes.")))
                    ws.close(reason=1000, message="expired")
                    return
                ws.send(json.dumps({"type": "session.updated", "event_id": "e1", "session": {}}))
            elif kind == "response.create" and self.mode == "ping8":
                responses += 1
                metadata = (json.loads(raw).get("response") or {}).get("metadata") or {}
                created = testing.rt_response_created(f"resp_{responses}", metadata.get("voicebridge"))
                ws.send(json.dumps(created))
                ws.send(json.dumps(testing.rt_response_done(f"resp_{responses}")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(repo: str, realtime_url: str, log_path: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ, OPENAI_REALTIME_URL=realtime_url, HOST="127.0.0.1", PORT=str(port),
               LOG_LEVEL="INFO", PYTHONPATH=repo)
    env.pop("OPENAI_API_KEY", None)
    env.pop("TWILIO_AUTH_TOKEN", None)
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, os.path.join(repo, "examples", "twilio_app.py")], env=env,
                            stdout=log, stderr=subprocess.STDOUT, cwd=repo)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with open(log_path, "rb") as f:
            if b"voicebridge example on" in f.read():
                return proc, port
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the example app did not start")


def call(port: int, seconds: float) -> dict[str, Any]:
    """One Twilio call: silence at real time until the bridge hangs up or ``seconds`` pass."""
    ws = websocket.WebSocket(enable_multithread=True)
    ws.connect(f"ws://127.0.0.1:{port}/media", timeout=5)
    ws.settimeout(None)  # a quiet line is not a hang-up: the reader waits as long as the call lasts
    heard: list[float] = []
    closed = threading.Event()

    def read() -> None:
        try:
            while True:
                opcode, data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
                msg = json.loads(data)
                if msg.get("event") == "media":
                    heard.append(time.monotonic())
                elif msg.get("event") == "mark":
                    ws.send(json.dumps(testing.twilio_mark(msg["mark"]["name"])))
        except Exception:  # noqa: BLE001 - the bridge hung up
            pass
        closed.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    ws.send(json.dumps(testing.twilio_connected()))
    ws.send(json.dumps(testing.twilio_start()))
    started = next_at = time.monotonic()
    seq = 1
    while not closed.is_set() and time.monotonic() - started < seconds:
        try:
            ws.send(json.dumps(testing.twilio_media(SILENCE, seq)))
        except Exception:  # noqa: BLE001
            break
        seq += 1
        next_at += 0.02
        time.sleep(max(0.0, next_at - time.monotonic()))
    hung_up = closed.is_set()
    if not hung_up:
        try:
            ws.send(json.dumps(testing.twilio_stop()))
        except Exception:  # noqa: BLE001
            pass
        closed.wait(5)
    ended = time.monotonic()
    ws.close()
    return {"started": started, "ended": ended, "hung_up_by_bridge": hung_up, "heard": heard}


def run(mode: str, seconds: float, repo: str) -> dict[str, Any]:
    server = HostileRealtime(mode)
    with tempfile.TemporaryDirectory() as tmp:
        log_path = os.path.join(tmp, "app.log")
        proc, port = start_app(repo, server.url, log_path)
        try:
            before = os.path.getsize(log_path)
            result = call(port, seconds)
            time.sleep(1.0)  # the summary line
            with open(log_path, "rb") as f:
                log = f.read()[before:]
        finally:
            proc.terminate()
            proc.wait(10)
            server.stop()
    start = result["started"]
    reasons = re.findall(rb"closing: ([^\n]*)", log)
    began, apology = _logged_at(log, b"call started"), _logged_at(log, b"playing the apology prompt")
    return {
        "mode": mode, "repo": repo, "call_seconds": round(result["ended"] - start, 2),
        "dials_first_10s": sum(1 for t in server.dials if t - start <= 10.0),
        "dials_total": len(server.dials),
        "log_bytes": len(log), "log_lines": log.count(b"\n"),
        "first_audio_s": round(result["heard"][0] - start, 2) if result["heard"] else None,
        "frames_heard": len(result["heard"]),
        "apology_after_s": round(apology - began, 2) if began is not None and apology is not None else None,
        "hung_up_by_bridge": result["hung_up_by_bridge"],
        "close_reason": reasons[0].decode(errors="replace") if reasons else None,
        "lost_lines": log.count(b"Realtime connection lost"),
        "replaced_lines": log.count(b"Realtime session replaced"),
    }


def _logged_at(log: bytes, text: bytes) -> "float | None":
    """The time of the app's first log line containing ``text`` (its asctime, in seconds)."""
    for line in log.splitlines():
        if text in line:
            stamp = re.match(rb"\d{4}-\d\d-\d\d (\d\d):(\d\d):(\d\d),(\d{3})", line)
            if stamp:
                h, m, sec, ms = (int(x) for x in stamp.groups())
                return h * 3600 + m * 60 + sec + ms / 1000
    return None


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the hostile server's request lines
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("expire", "ping8", "mute"), required=True)
    parser.add_argument("--seconds", type=float, default=30.0, help="longest call (the caller then sends stop)")
    parser.add_argument("--repo", default=ROOT, help="the checkout whose example app runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = run(args.mode, args.seconds, os.path.abspath(args.repo))
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>18}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
