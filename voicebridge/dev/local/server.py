"""Threaded WebSocket shell around :class:`~voicebridge.dev.local.engine.RealtimeEngine`.

A Flask app with one WebSocket route, ``/v1/realtime`` (the GA path, so both a bridge
and the official SDK can point at it by base URL), served by werkzeug's threaded server
in a background thread; the socket is read on the request thread (``voicebridge.dev.local.wsserver``,
no reader thread per connection). Each connection runs one loop: receive a client frame with a
short timeout, feed the engine, send whatever is due by ``engine.next_deadline()``. All
protocol decisions live in the engine; this module only moves frames and keeps stats.
"""
from __future__ import annotations

import argparse
import collections
import copy
import itertools
import json
import logging
import os
import socket
import sys
import threading
import time
from typing import Any

from flask import Flask, Response, request
from werkzeug.serving import BaseWSGIServer, make_server

from . import recognizer, wsserver
from .agent import ScriptedAgent, Voice
from .engine import Event, RealtimeEngine
from .vad import VAD_KINDS

logger = logging.getLogger(__name__)

PATH = "/v1/realtime"
AZURE_PATHS = ("/openai/v1/realtime", "/openai/realtime")  # Azure OpenAI GA, and the deployment style
PATHS = (PATH, *AZURE_PATHS)
POLL_SECONDS = 0.05  # longest wait for a client frame before re-checking deadlines / stop
JOIN_SECONDS = 3.0
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # generous: a client may send a large session.update
BETA_MESSAGE = "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."


class ServerStats:
    """Thread-safe counters fed by every connection's engine (the engine's observer)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections = 0
        self._active = 0
        self._rejected_auth = 0
        self._refused = 0
        self._dials: collections.Counter = collections.Counter()  # by "<path> <auth kind>"
        self._client = collections.Counter()
        self._server = collections.Counter()
        self._errors = collections.Counter()
        self._responses = collections.Counter()
        self._truncations: list[tuple[str, int]] = []

    def connection(self, delta: int) -> None:
        with self._lock:
            self._active += delta
            if delta > 0:
                self._connections += 1

    def auth_rejected(self) -> None:
        with self._lock:
            self._rejected_auth += 1

    def refused(self) -> None:
        with self._lock:
            self._refused += 1

    def dialed(self, path: str, auth: str) -> None:
        with self._lock:
            self._dials[f"{path} {auth}"] += 1

    def observe(self, direction: str, event: Event) -> None:
        """Engine observer hook: count by type; remember errors, outcomes, truncations."""
        type_ = event.get("type", "?")
        with self._lock:
            if direction == "client":
                self._client[type_] += 1
                return
            self._server[type_] += 1
            if type_ == "error":
                self._errors[event["error"].get("code") or "?"] += 1
            elif type_ == "response.done":
                self._responses[event["response"].get("status") or "?"] += 1
            elif type_ == "conversation.item.truncated":
                self._truncations.append((event["item_id"], event["audio_end_ms"]))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "connections": self._connections, "active_connections": self._active,
                "rejected_auth": self._rejected_auth, "refused": self._refused, "dials": dict(self._dials),
                "client_events": dict(self._client),
                "server_events": dict(self._server), "errors": dict(self._errors),
                "responses": dict(self._responses), "truncations": list(self._truncations),
            }


class LocalRealtimeServer:
    """An OpenAI-Realtime-compatible (GA) server for calls without an OpenAI key.

    ``mode="voice"`` speaks a scripted agent (espeak-ng or bundled prompts);
    ``mode="tone"`` speaks :mod:`voicebridge.dev.tone` blocks (``tone_seconds`` per response).
    ``speed`` is how much faster than real time audio deltas are emitted (0 or inf = all
    at once). ``api_key`` set means the upgrade must carry ``Authorization: Bearer <key>``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, mode: str = "voice", speed: float = 4.0,
                 api_key: "str | None" = None, seed: int = 0, chunk_bytes: tuple[int, int] = (80, 2000),
                 tone_seconds: float = 3.0, live_tts: "bool | None" = None,
                 max_session_seconds: float = 3600.0, vad: str = "auto") -> None:
        if mode not in ("voice", "tone"):
            raise ValueError("mode must be 'voice' or 'tone'")
        if speed < 0:
            raise ValueError("speed must be >= 0 (0 or inf = all at once)")
        if not 1 <= chunk_bytes[0] <= chunk_bytes[1]:
            raise ValueError("chunk_bytes must be (lo, hi) with 1 <= lo <= hi")
        self.host, self.mode, self.speed, self.api_key = host, mode, speed, api_key
        self.seed, self.chunk_bytes, self.tone_seconds = seed, tuple(chunk_bytes), tone_seconds
        self.max_session_seconds = max_session_seconds
        if vad not in VAD_KINDS:
            raise ValueError(f"vad must be one of {VAD_KINDS}")
        self.vad = vad  # the server VAD's detector: auto (Silero when installed), silero, energy
        self._requested_port = port
        self._voice = Voice(live=False if mode == "tone" else live_tts)
        self._stats = ServerStats()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: "BaseWSGIServer | None" = None
        self._thread: "threading.Thread | None" = None
        self._warmer: "threading.Thread | None" = None
        self._phrases_warmer: "threading.Thread | None" = None
        self._conn_threads: set[threading.Thread] = set()
        self._sockets: set[Any] = set()
        self._refuse = 0  # the next upgrades to answer 503 (a test of reconnecting)
        self._conn_numbers = itertools.count(1)

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> "LocalRealtimeServer":
        """Bind and serve in a background thread; listening when this returns."""
        with self._lock:
            if self._server is not None:
                return self
            self._stopping.clear()
            self._server = make_server(self.host, self._requested_port, self._app(), threaded=True)
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"local-realtime:{self.port}", daemon=True)
            self._thread.start()
            if self._voice.live and self._warmer is None:
                self._warmer = threading.Thread(target=self._voice.warm, name="local-realtime:tts", daemon=True)
                self._warmer.start()
            if os.environ.get("LOCAL_PHRASES") and self._phrases_warmer is None:  # (its log line at start)
                self._phrases_warmer = threading.Thread(target=recognizer.warm, name="local-realtime:phrases",
                                                        daemon=True)
                self._phrases_warmer.start()
        logger.info("local realtime server listening on %s (mode=%s speed=%s)", self.url, self.mode, self.speed)
        return self

    def wait_warm(self, timeout: float = 30.0) -> bool:
        """Wait until the voice's fixed answers are synthesized (live espeak-ng only).

        The synthesis is pure Python after espeak-ng (resample, mu-law) and holds the GIL for
        hundreds of milliseconds: a call placed in the same process meanwhile hears stalls.
        """
        warmer = self._warmer
        if warmer is not None:
            warmer.join(timeout)
            return not warmer.is_alive()
        return True

    def stop(self) -> None:
        """Close every connection and stop serving; idempotent, waits a bounded time."""
        with self._lock:
            server, thread, self._server, self._thread = self._server, self._thread, None, None
            conns = list(self._conn_threads)
        if server is None:
            return
        self._stopping.set()
        deadline = time.monotonic() + JOIN_SECONDS
        for conn in conns:
            conn.join(timeout=max(0.0, deadline - time.monotonic()))
        server.shutdown()
        server.server_close()
        for worker in (thread, self._warmer, self._phrases_warmer):
            if worker is not None:
                worker.join(timeout=JOIN_SECONDS)
        logger.info("local realtime server stopped")

    def __enter__(self) -> "LocalRealtimeServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        server = self._server
        if server is None:
            raise RuntimeError("server is not running")
        return server.server_port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"ws://{host}:{self.port}{PATH}?model=gpt-realtime"

    @property
    def http_base(self) -> str:
        """``http://host:port``: what an Azure-style configuration takes as its endpoint."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    # ----------------------------------------------------------------- faults, for tests
    def drop_connections(self) -> int:
        """Cut every open connection at the TCP level (no close frame): a lost socket."""
        with self._lock:
            sockets = list(self._sockets)
        for ws in sockets:
            try:
                ws.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(sockets)

    def refuse_next(self, n: int) -> None:
        """Answer the next ``n`` upgrades with HTTP 503 (a service having trouble)."""
        with self._lock:
            self._refuse = n

    def stats(self) -> dict[str, Any]:
        """A snapshot of connection/event counters (safe to call from any thread)."""
        return copy.deepcopy(self._stats.snapshot())

    # ----------------------------------------------------------------- web app
    def _app(self) -> Flask:
        app = Flask(__name__)
        app.before_request(self._check_auth)
        for number, path in enumerate(PATHS):
            app.add_url_rule(path, f"realtime{number}", self._upgrade, websocket=True)
        return app

    def _upgrade(self) -> Any:
        return wsserver.serve(request.environ, self._websocket, "realtime", MAX_MESSAGE_BYTES)

    def _check_auth(self) -> "Response | None":
        """503 while told to refuse; 400 for an Azure deployment URL without its query; 401
        when an api_key is configured and presented neither as a bearer token (OpenAI, Azure
        Entra ID) nor, on Azure paths, as the ``api-key`` header."""
        if request.path not in PATHS:
            return None
        with self._lock:
            refuse, self._refuse = self._refuse > 0, max(0, self._refuse - 1)
        if refuse:
            self._stats.refused()
            return _error(503, "server_error", "The server is temporarily unable to handle the request.")
        if request.path == "/openai/realtime" and not (request.args.get("api-version")
                                                       and request.args.get("deployment")):
            return _error(400, "missing_required_parameter", "api-version and deployment are required.")
        bearer = request.headers.get("Authorization", "")
        azure_key = request.headers.get("api-key") if request.path in AZURE_PATHS else None
        auth = "bearer" if bearer.startswith("Bearer ") else "api-key" if azure_key else "none"
        if self.api_key is not None and bearer != f"Bearer {self.api_key}" and azure_key != self.api_key:
            self._stats.auth_rejected()
            return _error(401, "invalid_api_key", "Incorrect API key provided.")
        self._stats.dialed(request.path, auth)
        return None

    def _websocket(self, ws: Any) -> None:
        beta = "realtime=v1" in request.headers.get("OpenAI-Beta", "")
        model = request.args.get("model") or request.args.get("deployment") or "gpt-realtime"
        number = next(self._conn_numbers)
        engine = RealtimeEngine(
            ScriptedAgent(self._voice, mode=self.mode, tone_seconds=self.tone_seconds),  # type: ignore[arg-type]
            speed=self.speed, chunk_bytes=self.chunk_bytes, seed=self.seed, model=model, tag=f"c{number}x",
            observer=self._stats.observe, max_session_seconds=self.max_session_seconds, vad=self.vad)
        me = threading.current_thread()
        with self._lock:
            self._conn_threads.add(me)
            self._sockets.add(ws)
        self._stats.connection(+1)
        try:
            self._run(ws, engine, beta)
        except wsserver.ConnectionClosed:
            logger.info("connection %d closed by the client", number)
        finally:
            self._stats.connection(-1)
            with self._lock:
                self._conn_threads.discard(me)
                self._sockets.discard(ws)

    def _run(self, ws: Any, engine: RealtimeEngine, beta: bool) -> None:
        """The per-connection loop: receive with a short timeout, feed, send what is due."""
        clock = time.monotonic
        _send(ws, engine.open(clock()))
        if beta:
            _send(ws, engine.reject("beta_api_shape_disabled", BETA_MESSAGE, close_code=4000))
        while engine.close_code is None and not self._stopping.is_set():
            deadline = engine.next_deadline()
            wait = POLL_SECONDS if deadline is None else min(POLL_SECONDS, max(0.0, deadline - clock()))
            message = ws.receive(timeout=wait)
            if message is not None:
                _send(ws, engine.handle(message, clock()))
            _send(ws, engine.poll(clock()))
        code = engine.close_code or 1001  # 1001 "going away": the server is stopping
        ws.close(reason=code, message=engine.close_reason or "server stopping")


def _error(status: int, code: str, message: str) -> Response:
    body = {"error": {"type": "invalid_request_error", "code": code, "message": message, "param": None}}
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _send(ws: Any, events: list[Event]) -> None:
    for event in events:
        ws.send(json.dumps(event))


def main(argv: "list[str] | None" = None) -> int:
    """``voicebridge local-server``: run the local Realtime server until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="voicebridge local-server",
                                     description="Run an OpenAI-Realtime-compatible (GA) server locally.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--mode", choices=("voice", "tone"), default="voice")
    parser.add_argument("--speed", type=float, default=4.0, help="x real time for audio deltas (0 = all at once)")
    parser.add_argument("--tone-seconds", type=float, default=3.0)
    parser.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vad", choices=VAD_KINDS, default="auto",
                        help="server VAD detector: silero (the vad extra), energy, auto (silero when installed)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = LocalRealtimeServer(args.host, args.port, mode=args.mode, speed=args.speed, api_key=args.api_key,
                                 seed=args.seed, tone_seconds=args.tone_seconds, vad=args.vad)
    try:
        server.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"local realtime server: {server.url}  (OpenAI SDK: websocket_base_url=ws://...:{server.port}/v1)")
    print("press Ctrl-C to stop")
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("stopping")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
