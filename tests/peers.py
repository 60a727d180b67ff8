"""Real-socket peers for tests, all on 127.0.0.1 with free ports and always stopped.

* ``one_connection``: a one-shot WebSocket server on ``voicebridge.dev.local.wsserver`` (handler per test);
* ``RawServer``: a TCP server that accepts and stays silent or sends one canned reply;
* ``ScriptedRealtime``: a Realtime peer (flask-sock on werkzeug) playing a script, with helpers;
* ``running`` and ``TwilioPeer``: the bridge app on a real server, and Twilio's side of a stream.
"""
from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from typing import Any, Callable, Iterator

import websocket
from flask import Flask
from flask_sock import Sock
from werkzeug.serving import make_server

from voicebridge import testing
from voicebridge.serving.app import serve
from voicebridge.dev.local import wsserver

FRAME = bytes(range(160))
SILENCE = b"\xff" * 160


@contextlib.contextmanager
def one_connection(handler: Callable[[wsserver.ServerWebSocket], Any]) -> Iterator[str]:
    """Yield a ws:// URL; the first connection is upgraded and given to ``handler`` on a thread."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(5)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError as exc:
            errors.append(exc)
            return
        with conn:
            try:
                handler(wsserver.accept(read_environ(conn)))
            except BaseException as exc:  # noqa: BLE001 - reported to the test below
                errors.append(exc)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}/ws"
        thread.join(5)
        assert not thread.is_alive(), "server handler did not finish"
        if errors:
            raise errors[0]
    finally:
        listener.close()


def read_environ(conn: socket.socket) -> dict[str, Any]:
    """The request head as a WSGI-style environ (what gunicorn hands the app)."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(1)  # byte by byte: nothing after the head may be consumed here
        if not chunk:
            raise ConnectionError("client went away during the handshake")
        head += chunk
    lines = head.decode("latin-1").split("\r\n")
    environ: dict[str, Any] = {"REQUEST_METHOD": lines[0].split()[0], "gunicorn.socket": conn}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            environ["HTTP_" + name.strip().upper().replace("-", "_")] = value.strip()
    return environ


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class RawServer:
    """A TCP server that accepts and then either stays silent or answers one canned reply."""

    def __init__(self, reply: bytes | None = None) -> None:
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.conns: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="raw-server", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.sock.getsockname()[1]}/v1/realtime?model=gpt-realtime"

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)
            if self.reply is not None:
                conn.settimeout(1.0)
                try:
                    conn.recv(4096)
                    conn.sendall(self.reply)
                except OSError:
                    pass

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(2)
        for conn in self.conns:
            conn.close()
        self.sock.close()


class ScriptedRealtime:
    """A real WebSocket Realtime peer (flask-sock on werkzeug) that plays ``script(ws)``."""

    def __init__(self, script: Callable[[Any], None]) -> None:
        app = Flask("scripted-realtime")
        sock = Sock(app)
        self.done = threading.Event()

        @sock.route("/v1/realtime")
        def realtime(ws: Any) -> None:
            try:
                script(ws)
            finally:
                self.done.set()

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="scripted-realtime", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.server_port}/v1/realtime?model=gpt-realtime"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(2)


def send_event(ws: Any, event: dict[str, Any]) -> None:
    ws.send(json.dumps({"event_id": "evt", **event}))


def open_session(ws: Any) -> bool:
    """session.created, then wait for the bridge's session.update and answer it."""
    send_event(ws, {"type": "session.created", "session": {}})
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        msg = ws.receive(timeout=0.1)
        if msg and json.loads(msg).get("type") == "session.update":
            send_event(ws, {"type": "session.updated", "session": {}})
            return True
    return False


def audio_response(ws: Any, n_frames: int, rid: str = "resp_1", iid: str = "item_1", done: bool = True) -> None:
    send_event(ws, testing.rt_response_created(rid))
    send_event(ws, testing.rt_item_added(rid, iid))
    for _ in range(n_frames):
        send_event(ws, testing.rt_audio_delta(rid, iid, FRAME))
    if done:
        send_event(ws, testing.rt_audio_done(rid, iid))
        send_event(ws, testing.rt_response_done(rid))


def drain_until_closed(ws: Any, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            ws.receive(timeout=0.1)
    except Exception:  # noqa: BLE001 - the bridge hung up: the script is over
        pass


@contextlib.contextmanager
def wsgi_server(app: Flask) -> Iterator[int]:
    """``app`` on werkzeug's threaded server; yields the port, always shut down."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(2)


@contextlib.contextmanager
def running(app: Flask, **options: Any) -> Iterator[Any]:
    """The bridge app served by ``voicebridge.serving.app.serve`` (the example's background server)."""
    handle = serve(app, "127.0.0.1", 0, **options)
    try:
        yield handle
    finally:
        handle.shutdown()


class TwilioPeer:
    """A websocket-client stand-in for Twilio's side of a media stream."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, sid: str = "1") -> None:
        self.stream_sid, self.call_sid = f"MZ{sid * 32}"[:34], f"CA{sid * 32}"[:34]
        self.ws = websocket.create_connection(url, timeout=5, header=headers or {})

    def start(self, **params: str) -> None:
        self.send(testing.twilio_connected())
        self.send(testing.twilio_start(self.stream_sid, self.call_sid, params))

    def media(self, n: int = 5, payload: bytes = SILENCE) -> None:
        for i in range(n):
            self.send(testing.twilio_media(payload, i + 1, self.stream_sid))

    def stop(self) -> None:
        self.send(testing.twilio_stop(self.stream_sid, self.call_sid))

    def send(self, msg: dict[str, Any]) -> None:
        self.ws.send(json.dumps(msg))

    def read_until_closed(self, timeout: float = 5.0) -> tuple[list[dict[str, Any]], int | None, str]:
        """Every message until the server closes; (messages, close code, close reason)."""
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                opcode, data = self.ws.recv_data(control_frame=True)
            except (websocket.WebSocketException, OSError):
                return messages, None, ""
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                return messages, code, data[2:].decode(errors="replace")
            if opcode == websocket.ABNF.OPCODE_TEXT:
                messages.append(json.loads(data))
        raise AssertionError("server did not close the stream in time")

    def wait_media(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("event") == "media":
                got.append(msg)
        assert len(got) >= count
        return got

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()
