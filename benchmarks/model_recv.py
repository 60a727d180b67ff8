"""CPU of the Realtime client per server message, this checkout against another; and what one
caller-audio append costs, piece by piece (``--append``).

A raw TCP peer on 127.0.0.1 plays a Realtime server: after the upgrade it sends ``--n`` audio
deltas (``response.output_audio.delta`` of ``--delta-ms`` of mu-law, base64 in JSON, as the
Realtime API frames them) in bursts of ``--burst`` every ``--every-ms``, the way deltas arrive
at a bridge; the client (``voicebridge.model.client`` of the checkout at ``--root``) reads them
with ``recv(timeout)`` on one thread, whose CPU (``time.thread_time``) is reported per message,
with the socket reads it made (``recv`` calls on its socket).

``--append``: one ``input_audio_buffer.append`` of 100 ms (what the uplink sends ten times a
second per call), timed piece by piece with ``timeit`` (base64, the JSON text, the frame's mask,
the mask key), and its ``send`` on loopback TCP to a reader in another process: the sender's own
user and system CPU per send (on loopback the system time includes the reader's TCP input).

Usage: python benchmarks/model_recv.py [--root DIR] [--n 3000] [--repeat 5] [--append]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import socket
import sys
import threading
import time
from typing import Any


def _server(listener: socket.socket, n: int, delta: str, burst: int, every_s: float, done: threading.Event) -> None:
    conn, _ = listener.accept()
    with conn:
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(4096)
        key = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n") if line.lower().startswith(b"sec-websocket-key")][0]
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        body = delta.encode()
        frame = bytes((0x81, 126)) + len(body).to_bytes(2, "big") + body
        for i in range(0, n, burst):
            conn.sendall(frame * min(burst, n - i))
            time.sleep(every_s)
        done.wait(30)


class _Counting:
    def __init__(self, sock: socket.socket) -> None:
        self._sock, self.recvs = sock, 0

    def recv(self, n: int) -> bytes:
        self.recvs += 1
        return self._sock.recv(n)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._sock, name)


def run(n: int, delta_ms: int, burst: int, every_ms: float) -> tuple[float, float]:
    import websocket
    from voicebridge.model import client
    delta = json.dumps({"type": "response.output_audio.delta", "event_id": "event_x", "response_id": "resp_x",
                        "item_id": "item_x", "output_index": 0, "content_index": 0,
                        "delta": base64.b64encode(os.urandom(8 * delta_ms)).decode()})
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    done = threading.Event()
    server = threading.Thread(target=_server, args=(listener, n, delta, burst, every_ms / 1000, done), daemon=True)
    server.start()
    ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
    ws.connect(f"ws://127.0.0.1:{listener.getsockname()[1]}/v1/realtime", timeout=5)
    ws.sock = counting = _Counting(ws.sock)
    conn = client.WebSocketRealtimeConnection(ws)
    got = 0
    cpu0 = time.thread_time()
    while got < n:
        if isinstance(conn.recv(5.0), str):
            got += 1
    cpu = time.thread_time() - cpu0
    done.set()
    conn.close()
    server.join(5)
    listener.close()
    return cpu / n * 1e6, counting.recvs / n


def append_costs() -> None:
    """Each piece of one 100 ms append, in microseconds (best of five timeit rounds)."""
    import timeit
    from voicebridge.model import protocol as rt, wsframe
    audio = os.urandom(800)
    b64 = base64.b64encode(audio).decode("ascii")
    payload = rt.input_audio_append(b64).encode()
    key = os.urandom(4)

    def us(fn: Any) -> float:
        return min(timeit.repeat(fn, number=20000, repeat=5)) / 20000 * 1e6

    print(f"one append of 100 ms: {len(payload)} bytes of JSON")
    print(f"  base64 of the audio: {us(lambda: base64.b64encode(audio).decode('ascii')):.2f} us")
    print(f"  JSON text through the encoder (input_audio_append): {us(lambda: rt.input_audio_append(b64)):.2f} us")
    if hasattr(rt, "audio_append"):
        print(f"  base64 and JSON text put together (audio_append): {us(lambda: rt.audio_append(audio)):.2f} us")
    print(f"  mask (wsframe.mask, an int XOR in C): {us(lambda: wsframe.mask(payload, key)):.2f} us")
    print(f"  mask key (os.urandom(4)): {us(lambda: os.urandom(4)):.2f} us")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    pid = os.fork()
    if pid == 0:  # the reader: drains until the sender closes
        conn, _ = listener.accept()
        while conn.recv(1 << 16):
            pass
        os._exit(0)
    sock = socket.create_connection(listener.getsockname())
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    frame = wsframe.encode(wsframe.OP_TEXT, payload, key)
    n = 20000
    t0 = os.times()
    for i in range(n):
        sock.send(frame)
        if i % 20 == 0:
            time.sleep(0.0005)  # let the reader keep up, as a peer does
    t1 = os.times()
    sock.close()
    os.waitpid(pid, 0)
    listener.close()
    print(f"  send on loopback: user {(t1.user - t0.user) * 1e6 / n:.2f} us, system "
          f"{(t1.system - t0.system) * 1e6 / n:.2f} us per send")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--delta-ms", type=int, default=100)
    ap.add_argument("--burst", type=int, default=4)
    ap.add_argument("--every-ms", type=float, default=20.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--append", action="store_true", help="the cost of one caller-audio append, piece by piece")
    args = ap.parse_args()
    sys.path.insert(0, args.root)
    if args.append:
        append_costs()
        return 0
    runs = [run(args.n, args.delta_ms, args.burst, args.every_ms) for _ in range(args.repeat)]
    cpu = sorted(r[0] for r in runs)
    print(f"{args.root}: {args.n} deltas of {args.delta_ms} ms in bursts of {args.burst} every {args.every_ms} ms: "
          f"CPU per message {cpu[0]:.1f}-{cpu[-1]:.1f} us (median {cpu[len(cpu) // 2]:.1f}), "
          f"socket reads per message {runs[0][1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
