"""Real parts for several-host runs: a ``redis-server`` and example-app instances, each a process.

Used by the tests (``tests/conftest.py``'s ``redis_server`` fixture, tests/test_redisstate.py) and
by ``benchmarks/fleet.py``. Everything binds 127.0.0.1 on a free port, is bounded in time and is
always stopped (``stop`` is idempotent; a context manager calls it).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START_S = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_server_path() -> str | None:
    """The ``redis-server`` binary, or None (the Makefile and .ci/run install it where missing)."""
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server")
         if os.access(p, os.X_OK)), None)


class RedisServer:
    """A real ``redis-server`` on 127.0.0.1, a free port, no persistence; ``stop``/``start`` keep the port."""

    def __init__(self, binary: str | None = None) -> None:
        found = binary or redis_server_path()
        if found is None:
            raise FileNotFoundError("redis-server not found (apt-get install redis-server)")
        self.binary = found
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="vb-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "RedisServer":
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--protected-mode", "yes", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_S
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (it forgets everything: no persistence); the port stays ours to restart on."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class AppInstance:
    """``python examples/twilio_app.py`` as one "host": its own port and state directory, the shared Redis."""

    def __init__(self, log_dir: str, name: str, **env: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/media"
        self.state_dir = tempfile.mkdtemp(prefix=f"vb-state-{name}-")
        self.log_path = Path(log_dir) / f"{name}.log"
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("OPENAI_", "TWILIO_", "VOICEBRIDGE_", "PROMETHEUS_", "REDIS_", "AZURE_"))
                 and k not in ("MAX_CALLS", "PORT", "HOST")}
        clean.update(HOST="127.0.0.1", PORT=str(self.port), LOCAL_BACKEND="1", VOICEBRIDGE_STATE_DIR=self.state_dir,
                     PYTHONPATH=str(ROOT))
        clean.update(env)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([sys.executable, str(ROOT / "examples" / "twilio_app.py")], cwd=ROOT,
                                         env=clean, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float = START_S) -> "AppInstance":
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start: {self.log()[-2000:]}")
            time.sleep(0.05)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def health(self) -> dict[str, Any]:
        import json

        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as resp:
                return dict(json.load(resp))
        except urllib.error.HTTPError as exc:
            return dict(json.load(exc))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """``kill -9``: no drain, no cleanup; its leases are left to expire."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.state_dir, ignore_errors=True)


def start_instances(log_dir: str, count: int, **env: str) -> list[AppInstance]:
    """``count`` app instances started together (they boot in parallel), all ready; stopped on failure."""
    instances = [AppInstance(log_dir, chr(ord("a") + i), **env) for i in range(count)]
    try:
        for instance in instances:
            instance.wait_ready()
    except BaseException:
        for instance in instances:
            instance.stop()
        raise
    return instances


class SilentRealtime:
    """A Realtime endpoint that configures each session and then only listens (a call that costs
    the bridge nearly nothing: for runs about admission, not audio). Threaded, on 127.0.0.1."""

    def __init__(self) -> None:
        import json
        import threading

        from flask import Flask
        from flask_sock import Sock
        from werkzeug.serving import make_server

        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a request line per call is noise here
        app = Flask("silent-realtime")
        sock = Sock(app)

        @sock.route("/v1/realtime")
        def realtime(ws: Any) -> None:
            ws.send(json.dumps({"type": "session.created", "event_id": "e0", "session": {}}))
            while True:
                message = ws.receive(timeout=None)
                if message is None:
                    return
                if '"session.update"' in message:
                    ws.send(json.dumps({"type": "session.updated", "event_id": "e1", "session": {}}))

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="silent-realtime", daemon=True)
        self.thread.start()
        self.url = f"ws://127.0.0.1:{self.server.server_port}/v1/realtime?model=gpt-realtime"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
