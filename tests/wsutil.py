"""A one-connection WebSocket server on 127.0.0.1 built on voicebridge.wsserver (tests only)."""
from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any, Callable, Iterator

from voicebridge import wsserver


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
