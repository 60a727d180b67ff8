"""Scale benchmark: N concurrent calls through the production server, measured on both sides.

Three kinds of processes, so the load generator's limits are not the bridge's:

* the bridge: the example app under gunicorn (``--worker-class`` gthread or gevent),
  ``OPENAI_REALTIME_URL`` pointing at
* the local Realtime server in ``tone`` mode (its own process, ``voicebridge.cli local-server``),
* ``--drivers`` caller-driver processes (this file with ``--driver``): each drives its share of
  the N calls from ONE thread with a selector loop and a raw WebSocket client (zero mask key,
  pre-built messages), so one driver carries hundreds of calls. It sends what Twilio sends
  (``connected``, ``start``, a ``media`` every 20 ms on an absolute schedule, ``stop``), echoes
  marks when their audio has "played" (arrival + real-time playout), honours ``clear``, speaks
  (bundled caller prompts) when the agent goes quiet and, on a share of the calls, talks over
  the agent to barge in. It timestamps every received frame and records its own lateness
  against its 20 ms send schedule (the load generator's timing error).

Per N (``--ns``) a fresh gunicorn and local server are started; the bridge's CPU (utime+stime
from /proc/PID/stat, and the kernel's share of it), context switches (summed over its threads),
RSS and thread count are sampled over the window where all N calls are up; the bridge's own
send-side figures come from its Prometheus ``/metrics`` (deltas per step). ``--instances K``
runs K single-worker gunicorns on K ports (one process per core, the deployment docs/deploy.md
recommends), splits the calls evenly and sums their figures.

The CPU figure here is what a call costs while every call is up (its setup and teardown, and
the ramp, fall outside the window). What the serving process costs over whole calls, setup
included, under the documented serving command and beside the Twilio sample, is
``benchmarks/outside_cpu.py`` (it drives this file's callers); docs/performance.md has both.

Usage: python benchmarks/scale.py [--ns 1,50,100,200,300] [--seconds 24] [--instances 1]
       [--json out.json] [--doc docs/performance.md] [--plot docs/performance-scale.png]
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as _dt
import heapq
import json
import math
import os
import random
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zlib
from dataclasses import dataclass, field
from typing import Any

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from benchmarks._common import machine  # noqa: E402

FRAME_S = 0.020
BIN_S = 0.0001  # 0.1 ms histogram bins
NBINS = 2000  # up to 200 ms, last bin = overflow
UTTERANCE_GAP_S = 0.300
LEAD_GAP_S = 0.100
LEAD_FRAMES = 2
SPEECH_DBFS = -35.0


# ============================================================================ driver (callers)
def _hist() -> list[int]:
    return [0] * (NBINS + 1)


def _bin(x: float) -> int:
    return min(int(max(0.0, x) / BIN_S), NBINS)


def _load_prompt(name: str) -> list[bytes]:
    """A bundled caller prompt as 160-byte frames, leading quiet frames trimmed (onset = first loud frame)."""
    from voicebridge.audio import mulaw as audio
    from voicebridge.dev.tts import load_prompt

    data = load_prompt(name)
    frames = [data[i:i + 160] for i in range(0, len(data) - 159, 160)]
    while frames and audio.dbfs(frames[0]) < SPEECH_DBFS:
        frames.pop(0)
    return frames


def _ws_frame(text: str, deflater: "Any | None" = None) -> bytes:
    """A client text frame with a zero mask key (valid per RFC 6455; masking is then a no-op).

    With a ``deflater`` (permessage-deflate negotiated) the payload is compressed as RFC 7692
    says: raw deflate, sync-flushed, the trailing 00 00 ff ff removed, RSV1 set.
    """
    data = text.encode()
    first = 0x81
    if deflater is not None:
        data = (deflater.compress(data) + deflater.flush(zlib.Z_SYNC_FLUSH))[:-4]
        first |= 0x40
    n = len(data)
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 65536:
        head = bytes((first, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + data


DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
"""What Python's ``websockets`` client offers by default (a browser offers the same): Twilio's own
upgrade request offers no extension, so the callers offer this only with ``--offer-deflate``."""


def _b64_bytes(payload: bytes) -> int:
    """Audio bytes in a media message's base64 payload, found without parsing the JSON."""
    i = payload.find(b'"payload":"')
    if i < 0:
        return 0
    j = payload.find(b'"', i + 11)
    b64 = j - i - 11
    return b64 * 3 // 4 - payload.count(b"=", j - 2, j)


CLOSE_FRAME = bytes((0x88, 0x82)) + b"\0\0\0\0" + (1000).to_bytes(2, "big")


@dataclass
class Call:
    idx: int
    start_at: float
    interrupts: bool
    sock: socket.socket | None = None
    state: str = "new"  # new -> hs -> up -> closing -> done
    rbuf: bytearray = field(default_factory=bytearray)
    wbuf: bytearray = field(default_factory=bytearray)
    sid: str = ""
    seq: int = 0
    k: int = 0
    t0: float = 0.0
    hangup_at: float = 0.0
    arrivals: list[float] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)
    onsets: list[float] = field(default_factory=list)
    play_end: float = 0.0
    pending_marks: list[tuple[float, str]] = field(default_factory=list)
    phase: str = "wait_agent"  # wait_agent | agent | speak
    turn: int = 0
    agent_since: float = 0.0
    speech: list[bytes] = field(default_factory=list)
    error: str = ""
    frames_sent: int = 0
    ended_by: str = ""
    waiting_since: float = 0.0  # when the caller last began waiting for the agent
    underruns: int = 0  # agent audio arriving after the caller's playout ran dry mid-utterance (each a gap heard)
    deflater: Any = None  # permessage-deflate, when offered and accepted
    inflater: Any = None
    no_context_takeover: bool = False


SPEAK_FIRST_S = 3.0
"""A caller that hears no agent this long after the call starts (or after its own turn) speaks:
an app that waits for the caller (the Twilio sample does) is then measured carrying audio too."""


class Driver:
    def __init__(self, host: str, port: int, calls: list[Call], seconds: float, interrupt_after_s: float,
                 path: str = "/media", offer_deflate: bool = False) -> None:
        self.host, self.port, self.calls = host, port, calls
        self.seconds = seconds
        self.interrupt_after_s = interrupt_after_s
        self.path = path
        self.offer_deflate = offer_deflate
        self.sel = selectors.DefaultSelector()
        self.lateness = _hist()
        self.late_max = 0.0
        self.silence_b64 = base64.b64encode(b"\xff" * 160).decode()
        self.prompts = {name: [base64.b64encode(f).decode() for f in _load_prompt(name)]
                        for name in ("caller_hello", "caller_question", "caller_stop")}

    # -- socket plumbing ------------------------------------------------------------------
    def _open(self, c: Call, now: float) -> None:
        c.sid = f"MZ{c.idx:05x}{random.getrandbits(108):027x}"
        try:
            s = socket.create_connection((self.host, self.port), timeout=5)
        except OSError as exc:
            c.state, c.error = "done", f"connect: {exc}"
            return
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        c.sock = s
        key = base64.b64encode(os.urandom(16)).decode()
        offer = f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n" if self.offer_deflate else ""
        c.wbuf += (f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                   f"{offer}\r\n").encode()
        c.state = "hs"
        self.sel.register(s, selectors.EVENT_READ, c)
        self._flush(c)

    def _send(self, c: Call, text: str) -> None:
        if c.deflater is not None and c.no_context_takeover:
            c.deflater = zlib.compressobj(wbits=-15)
        c.wbuf += _ws_frame(text, c.deflater)
        self._flush(c)

    def _flush(self, c: Call) -> None:
        if not c.wbuf or c.sock is None:
            return
        try:
            n = c.sock.send(c.wbuf)
            del c.wbuf[:n]
        except BlockingIOError:
            pass
        except OSError as exc:
            self._finish(c, f"send: {exc}")

    def _finish(self, c: Call, error: str = "") -> None:
        if c.state == "done":
            return
        if error and c.state != "closing":
            c.error = error
        if not c.ended_by:
            c.ended_by = "bridge" if c.state == "up" else ("error" if error else "script")
        c.state = "done"
        if c.sock is not None:
            with contextlib.suppress(Exception):
                self.sel.unregister(c.sock)
            c.sock.close()

    def _readable(self, c: Call) -> None:
        try:
            data = c.sock.recv(262144)  # type: ignore[union-attr]
        except BlockingIOError:
            return
        except OSError as exc:
            self._finish(c, f"recv: {exc}")
            return
        now = time.monotonic()
        if not data:
            self._finish(c, "" if c.state == "closing" else "eof")
            return
        c.rbuf += data
        if c.state == "hs":
            end = c.rbuf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(c.rbuf[:end])
            del c.rbuf[:end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self._finish(c, "handshake: " + head.split(b"\r\n")[0].decode(errors="replace"))
                return
            accepted = [line for line in head.lower().split(b"\r\n")
                        if line.startswith(b"sec-websocket-extensions:") and b"permessage-deflate" in line]
            if accepted:
                c.deflater, c.inflater = zlib.compressobj(wbits=-15), zlib.decompressobj(wbits=-15)
                c.no_context_takeover = b"client_no_context_takeover" in accepted[0]
            self._up(c, now)
        self._parse(c, now)

    def _parse(self, c: Call, now: float) -> None:
        buf = c.rbuf
        while len(buf) >= 2:
            op, n, pos = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, pos = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, pos = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < pos + n:
                return
            payload = bytes(buf[pos:pos + n])
            compressed = buf[0] & 0x40
            del buf[:pos + n]
            if compressed and c.inflater is not None:
                payload = c.inflater.decompress(payload + b"\x00\x00\xff\xff")
            if op == 1:
                self._message(c, payload, now)
            elif op == 8:
                if c.state != "closing":
                    c.ended_by = c.ended_by or "bridge"
                self._finish(c)
                return
            elif op == 9:
                c.wbuf += bytes((0x8A, 0x80 | len(payload))) + b"\0\0\0\0" + payload
                self._flush(c)

    # -- Twilio behaviour -----------------------------------------------------------------
    def _up(self, c: Call, now: float) -> None:
        c.state, c.t0 = "up", now
        c.hangup_at = c.start_at + self.seconds
        c.play_end = c.waiting_since = now
        self._send(c, '{"event":"connected","protocol":"Call","version":"1.0.0"}')
        c.seq += 1
        self._send(c, json.dumps({
            "event": "start", "sequenceNumber": str(c.seq), "streamSid": c.sid,
            "start": {"streamSid": c.sid, "accountSid": "ACscale", "callSid": "CA" + c.sid[2:],
                      "tracks": ["inbound"], "customParameters": {"bench": "scale"},
                      "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))

    def _message(self, c: Call, payload: bytes, now: float) -> None:
        if payload.startswith(b'{"event":"media"'):
            start = max(c.play_end, now)
            if c.arrivals and now - c.arrivals[-1] <= UTTERANCE_GAP_S and now > c.play_end:
                # the playout ran dry inside an utterance: a frame-clocked player (20 ms
                # packets, as Twilio's) fills a frame with silence, then plays what came
                c.underruns += 1
                start = now + FRAME_S
            c.arrivals.append(now)
            c.play_end = start + _b64_bytes(payload) / 8000
            if c.phase == "wait_agent":
                c.phase, c.agent_since = "agent", now
        elif payload.startswith(b'{"event":"mark"'):
            name = json.loads(payload)["mark"]["name"]
            if c.play_end <= now:
                self._echo(c, name)
            else:
                c.pending_marks.append((c.play_end, name))
        elif payload.startswith(b'{"event":"clear"'):
            c.clears.append(now)
            for _, name in c.pending_marks:
                self._echo(c, name)
            c.pending_marks.clear()
            c.play_end = now

    def _echo(self, c: Call, name: str) -> None:
        c.seq += 1
        self._send(c, '{"event":"mark","sequenceNumber":"%d","streamSid":"%s","mark":{"name":%s}}'
                   % (c.seq, c.sid, json.dumps(name)))

    def _tick(self, c: Call, now: float) -> None:
        """One 20 ms tick: echo played marks, advance the script, send one media frame."""
        if c.pending_marks and c.pending_marks[0][0] <= now:
            while c.pending_marks and c.pending_marks[0][0] <= now:
                self._echo(c, c.pending_marks.pop(0)[1])
        if now >= c.hangup_at:
            c.seq += 1
            self._send(c, '{"event":"stop","sequenceNumber":"%d","streamSid":"%s","stop":{"callSid":"x"}}'
                       % (c.seq, c.sid))
            c.wbuf += CLOSE_FRAME
            self._flush(c)
            c.state, c.ended_by = "closing", "script"
            return
        quiet = c.play_end <= now and (not c.arrivals or now - c.arrivals[-1] >= 0.5)
        if c.phase == "agent":
            if c.interrupts and c.turn % 2 == 1 and now - c.agent_since >= self.interrupt_after_s:
                c.onsets.append(now)  # this tick sends the first loud frame
                c.speech = list(self.prompts["caller_stop"])
                c.phase = "speak"
            elif quiet:
                c.speech = list(self.prompts["caller_question" if c.turn % 2 else "caller_hello"])
                c.phase = "speak"
        elif c.phase == "wait_agent" and now - c.waiting_since >= SPEAK_FIRST_S and quiet:
            c.speech = list(self.prompts["caller_hello"])
            c.phase = "speak"
        payload = self.silence_b64
        if c.phase == "speak":
            if c.speech:
                payload = c.speech.pop(0)
            if not c.speech:
                c.phase, c.turn, c.waiting_since = "wait_agent", c.turn + 1, now
        c.seq += 1
        self._send(c, '{"event":"media","sequenceNumber":"%d","streamSid":"%s","media":{"track":"inbound",'
                   '"chunk":"%d","timestamp":"%d","payload":"%s"}}' % (c.seq, c.sid, c.k + 1, c.k * 20, payload))
        c.frames_sent += 1
        c.k += 1

    # -- loop -------------------------------------------------------------------------------
    def run(self) -> None:
        heap = [(c.start_at, c.idx, c) for c in self.calls]
        heapq.heapify(heap)
        deadline = max(c.start_at for c in self.calls) + self.seconds + 10
        live = len(self.calls)
        while live and time.monotonic() < deadline:
            now = time.monotonic()
            timeout = max(0.0, heap[0][0] - now) if heap else 0.05
            for key, _ in self.sel.select(min(timeout, 0.05)):
                self._readable(key.data)
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                due, _, c = heapq.heappop(heap)
                if c.state == "new":
                    self._open(c, now)
                    heapq.heappush(heap, (now + FRAME_S, c.idx, c))  # first media after the handshake
                elif c.state == "up":
                    late = now - due
                    self.lateness[_bin(late)] += 1
                    self.late_max = max(self.late_max, late)
                    self._tick(c, now)
                    # absolute schedule from the first tick: late ticks never shift later ones
                    heapq.heappush(heap, (due + FRAME_S, c.idx, c))
                elif c.state == "hs":
                    heapq.heappush(heap, (now + 0.005, c.idx, c))
                now = time.monotonic()
            live = sum(1 for c in self.calls if c.state != "done")
        for c in self.calls:
            if c.state != "done":
                self._finish(c, "timeout" if c.state != "closing" else "")

    def result(self) -> dict[str, Any]:
        gaps = _hist()
        out: dict[str, Any] = {"calls": len(self.calls), "errors": [], "gaps": 0, "bursts": 0, "stalls": 0,
                               "gap_max_dev_ms": 0.0, "interruptions": [], "frames_received": 0,
                               "frames_sent": 0, "ended_by": {}, "first_audio_ms": [], "underruns": 0,
                               "deflate": 0}
        for c in self.calls:
            if c.error:
                out["errors"].append(f"call {c.idx}: {c.error}")
            out["ended_by"][c.ended_by or "?"] = out["ended_by"].get(c.ended_by or "?", 0) + 1
            out["frames_received"] += len(c.arrivals)
            out["frames_sent"] += c.frames_sent
            out["underruns"] += c.underruns
            out["deflate"] += c.deflater is not None
            if c.arrivals:
                out["first_audio_ms"].append(round((c.arrivals[0] - c.t0) * 1000, 1))
            since_lead = 0
            for a, b in zip(c.arrivals, c.arrivals[1:]):
                gap = b - a
                if gap > UTTERANCE_GAP_S:
                    since_lead = 0
                    continue
                if gap > LEAD_GAP_S:
                    since_lead = 0
                else:
                    since_lead += 1
                    if since_lead <= LEAD_FRAMES and gap < 0.018:
                        continue
                dev = abs(gap - FRAME_S)
                gaps[_bin(dev)] += 1
                out["gaps"] += 1
                out["bursts"] += gap < 0.018
                out["stalls"] += gap > 0.040
                out["gap_max_dev_ms"] = max(out["gap_max_dev_ms"], round(dev * 1000, 3))
            for onset in c.onsets:
                clear = next((t for t in c.clears if t >= onset), None)
                limit = clear if clear is not None else onset + 2.0
                after = [t for t in c.arrivals if onset <= t <= limit]
                out["interruptions"].append({
                    "clear_ms": round((clear - onset) * 1000, 2) if clear is not None else None,
                    "last_frame_ms": round((after[-1] - onset) * 1000, 2) if after else 0.0,
                    "frames_after_onset": len(after)})
        out["gap_dev_hist"] = gaps
        out["lateness_hist"] = self.lateness
        out["lateness_max_ms"] = round(self.late_max * 1000, 3)
        return out


def driver_main(args: argparse.Namespace) -> int:
    n, part, parts = args.n, args.part, args.parts
    calls = [Call(i, args.start_at + i * args.ramp / max(1, n), interrupts=(i % 2 == 0))
             for i in range(n) if i % parts == part]
    drv = Driver(args.host, args.port, calls, args.seconds, args.interrupt_after, args.path, args.offer_deflate)
    drv.run()
    json.dump(drv.result(), sys.stdout)
    return 0


# ============================================================================ orchestration
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def _proc_times(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process in seconds, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _proc_cpu_s(pid: int) -> float:
    return sum(_proc_times(pid))


def _proc_switches(pid: int) -> int:
    """Context switches (voluntary + involuntary) summed over the process's live threads."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                total += sum(int(line.split()[1]) for line in f if "ctxt_switches:" in line)
        except OSError:
            pass  # the thread ended between listdir and open
    return total


def _proc_status(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss_kb"] = int(line.split()[1])
            elif line.startswith("Threads:"):
                out["threads"] = int(line.split()[1])
    return out


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _scrape(port: int, timeout: float = 60.0) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def _hist_pct(hist: list[int], p: float) -> float | None:
    """Upper edge (ms) of the 0.1 ms bin holding the p-th percentile."""
    total = sum(hist)
    if not total:
        return None
    rank = max(1, math.ceil(p / 100 * total))
    run = 0
    for i, c in enumerate(hist):
        run += c
        if run >= rank:
            return round((i + 1) * BIN_S * 1000, 1)
    return None


def _prom_hist(m: dict[str, float], name: str) -> list[tuple[float, float]]:
    pat = re.compile(re.escape(name) + r'_bucket\{le="([^"]+)"\}$')
    out = []
    for key, value in m.items():
        mm = pat.match(key)
        if mm:
            out.append((float("inf") if mm.group(1) == "+Inf" else float(mm.group(1)), value))
    return sorted(out)


def _prom_pct(buckets: list[tuple[float, float]], p: float) -> float | None:
    """Percentile from cumulative Prometheus buckets: the upper bound (ms) of the bucket holding it."""
    if not buckets or not buckets[-1][1]:
        return None
    rank = p / 100 * buckets[-1][1]
    for bound, count in buckets:
        if count >= rank:
            return round(bound * 1000, 2) if bound != float("inf") else float("inf")
    return None


def _pct(values: list[float], p: float) -> float | None:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    return vals[max(0, min(len(vals) - 1, math.ceil(p / 100 * len(vals)) - 1))]


def _scrape_sum(ports: list[int], timeout: float = 60.0) -> dict[str, float]:
    """Every instance's /metrics, summed sample by sample (counters and histogram buckets add)."""
    total: dict[str, float] = {}
    for port in ports:
        for key, value in _scrape(port, timeout).items():
            total[key] = total.get(key, 0.0) + value
    return total


def _settled_metrics(ports: list[int], limit_s: float = 60.0) -> dict[str, float]:
    """/metrics once every call has ended: a call's figures are folded in when it is torn down,
    which an overloaded bridge may do seconds after its caller hung up."""
    deadline = time.monotonic() + limit_s
    while True:
        time.sleep(1.0)
        metrics = _scrape_sum(ports)
        if metrics.get("voicebridge_active_calls", 0.0) <= 0 or time.monotonic() > deadline:
            return metrics


def _bridge_sample(wpids: list[int]) -> dict[str, float]:
    times = [_proc_times(w) for w in wpids]
    return {"bridge": sum(u + s for u, s in times), "bridge_sys": sum(s for _, s in times),
            "switches": sum(_proc_switches(w) for w in wpids)}


def _status_sum(wpids: list[int]) -> dict[str, int]:
    total: dict[str, int] = {}
    for w in wpids:
        for key, value in _proc_status(w).items():
            total[key] = total.get(key, 0) + value
    return total


def run_step(n: int, args: argparse.Namespace, log) -> dict[str, Any]:
    instances = max(1, args.instances)
    rt_port, app_ports = _free_port(), [_free_port() for _ in range(instances)]
    env = dict(os.environ, OPENAI_REALTIME_URL=f"ws://127.0.0.1:{rt_port}/v1/realtime", OPENAI_API_KEY="",
               LOG_LEVEL=args.log_level, PYTHONUNBUFFERED="1",
               STARTUP_CHECK="0")  # the local server may still be starting when the workers boot
    env.pop("MAX_CALLS", None)
    py = sys.executable
    logdir = args.logdir
    nice = ["nice", "-n", str(args.nice_fakes)] if args.nice_fakes else []
    rt = subprocess.Popen(nice + [py, "-m", "voicebridge.cli", "local-server", "--port", str(rt_port), "--mode", "tone",
                                  "--speed", str(args.speed), "--tone-seconds", str(args.tone_seconds)],
                          cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(os.path.join(logdir, f"rt-{n}.log"), "w"))
    per_instance = -(-n // instances)
    threads = per_instance + max(16, per_instance // 5)
    root = os.path.abspath(args.root)
    env["PYTHONPATH"] = root  # the code under test: this checkout, or another one (--root)
    worker = ["-k", "gevent", "--worker-connections", str(max(1000, 4 * per_instance))] \
        if args.worker_class == "gevent" else ["-k", "gthread", "--threads", str(threads)]
    app = "examples.twilio_app:create_app()"
    if args.workers > 1:  # one command, every worker: the example's gunicorn config
        env.update(WEB_CONCURRENCY=str(args.workers), WORKER_CLASS=args.worker_class,
                   THREADS=str(threads), GRACEFUL_TIMEOUT="5", HOST="127.0.0.1")
        command = [["-c", "examples/gunicorn.conf.py", "-b", f"127.0.0.1:{port}", "--no-control-socket",
                    "examples.twilio_app:create_app()"] for port in app_ports]
    else:
        command = [[*worker, "-w", "1", "--graceful-timeout", "5", "-b", f"127.0.0.1:{port}", app]
                   for port in app_ports]
    guns = [subprocess.Popen([os.path.join(os.path.dirname(py), "gunicorn"), *command[i]],
                             cwd=root, env=env, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(logdir, f"gunicorn-{n}-{i}.log"), "w"))
            for i, port in enumerate(app_ports)]
    try:
        _wait_port(rt_port)
        for port in app_ports:
            _wait_port(port)
        time.sleep(0.5 if args.workers <= 1 else 2.0)
        wpids = []
        for gun in guns:
            kids = _children(gun.pid)
            if len(kids) != max(1, args.workers):
                raise RuntimeError(f"expected {max(1, args.workers)} gunicorn worker(s), found {kids}")
            wpids += kids
        before_metrics = _scrape_sum(app_ports)
        base = _status_sum(wpids)
        ramp = args.ramp if n > 1 else 0.0
        start_at = time.monotonic() + 1.0
        # each instance gets whole drivers, so the calls split evenly between instances
        parts = max(1, min(max(args.drivers, instances), n))
        parts -= parts % instances if parts >= instances else 0
        drivers = [subprocess.Popen(nice + [py, os.path.abspath(__file__), "--driver", "--host", "127.0.0.1",
                                            "--port", str(app_ports[p % instances]), "--n", str(n), "--part", str(p),
                                            "--parts", str(parts), "--start-at", repr(start_at), "--ramp", str(ramp),
                                            "--seconds", str(args.seconds),
                                            "--interrupt-after", str(args.interrupt_after)],
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=open(
                                        os.path.join(logdir, f"driver-{n}-{p}.log"), "w"))
                   for p in range(parts)]
        w0, w1 = start_at + ramp + 1.5, start_at + args.seconds - 0.5
        time.sleep(max(0.0, w0 - time.monotonic()))
        c0 = {"realtime": _proc_cpu_s(rt.pid), "drivers": sum(_proc_cpu_s(d.pid) for d in drivers),
              **_bridge_sample(wpids)}
        t0 = time.monotonic()
        spy = None
        if args.profile:
            spy = subprocess.Popen([os.path.join(os.path.dirname(py), "py-spy"), "record", "-p", str(wpids[0]),
                                    "-d", str(int(w1 - w0)), "-r", "200", "-o", args.profile, "--nonblocking",
                                    "--format", "raw" if args.profile.endswith(".txt") else "flamegraph"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(max(0.0, (w0 + w1) / 2 - time.monotonic()))
        mid = _status_sum(wpids)
        try:
            metrics_mid = _scrape_sum(app_ports, timeout=3.0)  # an overloaded bridge may not answer in time
        except OSError:
            metrics_mid = {}
        time.sleep(max(0.0, w1 - time.monotonic()))
        c1 = {"realtime": _proc_cpu_s(rt.pid), "drivers": sum(_proc_cpu_s(d.pid) for d in drivers),
              **_bridge_sample(wpids)}
        window = time.monotonic() - t0
        if spy is not None:
            spy.wait(30)
        results = []
        for d in drivers:
            out, _ = d.communicate(timeout=args.seconds + 60)
            results.append(json.loads(out))
        after_metrics = _settled_metrics(app_ports)
    finally:
        for proc in (*guns, rt):
            proc.send_signal(signal.SIGTERM)
        for proc in (*guns, rt):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def delta(name: str) -> float:
        return after_metrics.get(name, 0.0) - before_metrics.get(name, 0.0)

    def hist_delta(name: str) -> list[tuple[float, float]]:
        b = dict(_prom_hist(before_metrics, name))
        return [(bound, v - b.get(bound, 0.0)) for bound, v in _prom_hist(after_metrics, name)]

    # receive side (drivers)
    rx_hist, late_hist = _hist(), _hist()
    inter: list[dict[str, Any]] = []
    agg: dict[str, Any] = {"errors": [], "ended_by": {}, "gaps": 0, "bursts": 0, "stalls": 0, "gap_max_dev_ms": 0.0,
                           "frames_received": 0, "frames_sent": 0, "lateness_max_ms": 0.0, "first_audio_ms": []}
    for r in results:
        for i, c in enumerate(r["gap_dev_hist"]):
            rx_hist[i] += c
        for i, c in enumerate(r["lateness_hist"]):
            late_hist[i] += c
        inter += r["interruptions"]
        agg["errors"] += r["errors"]
        for k, v in r["ended_by"].items():
            agg["ended_by"][k] = agg["ended_by"].get(k, 0) + v
        for k in ("gaps", "bursts", "stalls", "frames_received", "frames_sent"):
            agg[k] += r[k]
        agg["gap_max_dev_ms"] = max(agg["gap_max_dev_ms"], r["gap_max_dev_ms"])
        agg["lateness_max_ms"] = max(agg["lateness_max_ms"], r["lateness_max_ms"])
        agg["first_audio_ms"] += r["first_audio_ms"]
    tx_hist = hist_delta("voicebridge_tx_gap_deviation_seconds")
    cpu = {k: c1[k] - c0[k] for k in c0}
    call_seconds = n * window
    calls_done = delta("voicebridge_calls_total")
    clears = [i["clear_ms"] for i in inter if i["clear_ms"] is not None]
    step = {
        "n": n,
        "setup": f"{args.worker_class}, {max(1, args.workers)} worker(s), "
                 f"{'this checkout' if os.path.abspath(args.root) == ROOT else os.path.basename(args.root)}",
        "instances": instances,
        "gunicorn_threads": threads,
        "window_s": round(window, 2),
        "calls_completed": int(calls_done),
        "active_calls_mid": metrics_mid.get("voicebridge_active_calls"),
        "send": {
            "gaps": int(tx_hist[-1][1]) if tx_hist else 0,
            "dev_p50_ms": _prom_pct(tx_hist, 50), "dev_p99_ms": _prom_pct(tx_hist, 99),
            "dev_max_ms": None,  # per-call maxima are not exported; see the receive side and the bins
            "dev_gt_10ms": int(tx_hist[-1][1] - tx_hist[-2][1]) if len(tx_hist) > 1 else 0,
            "bursts": int(delta("voicebridge_tx_gap_bursts_total")),
            "stalls": int(delta("voicebridge_tx_gap_stalls_total")),
            "late_frames": int(delta("voicebridge_tx_late_frames_total")),
            "schedule_resets": int(delta("voicebridge_tx_schedule_resets_total")),
            "frames_sent": int(delta("voicebridge_frames_sent_total")),
        },
        "receive": {
            "gaps": agg["gaps"], "dev_p50_ms": _hist_pct(rx_hist, 50), "dev_p99_ms": _hist_pct(rx_hist, 99),
            "dev_max_ms": agg["gap_max_dev_ms"], "bursts": agg["bursts"], "stalls": agg["stalls"],
            "frames_received": agg["frames_received"],
        },
        "first_delta_to_frame_ms": {
            "p50": _prom_pct(hist_delta("voicebridge_first_delta_to_frame_seconds"), 50),
            "p99": _prom_pct(hist_delta("voicebridge_first_delta_to_frame_seconds"), 99),
            "note": "per call (first response), Prometheus bucket upper bounds",
        },
        "time_to_first_audio_ms_callers": {"p50": _pct(agg["first_audio_ms"], 50),
                                           "p99": _pct(agg["first_audio_ms"], 99)},
        "barge_in": {
            "interruptions": len(inter), "cleared": len(clears),
            "onset_to_clear_p50_ms": _pct(clears, 50), "onset_to_clear_p99_ms": _pct(clears, 99),
            "onset_to_last_frame_p50_ms": _pct([i["last_frame_ms"] for i in inter], 50),
            "onset_to_last_frame_p99_ms": _pct([i["last_frame_ms"] for i in inter], 99),
            "bridge_barge_ins": int(delta("voicebridge_barge_ins_total")),
            "bridge_latency_p99_ms": _prom_pct(hist_delta("voicebridge_barge_in_latency_seconds"), 99),
        },
        "bridge_process": {
            "cpu_ms_per_call_s": round(cpu["bridge"] * 1000 / call_seconds, 3),
            "cpu_cores": round(cpu["bridge"] / window, 3),
            "cpu_sys_share": round(cpu["bridge_sys"] / cpu["bridge"], 2) if cpu["bridge"] else None,
            "switches_per_call_s": round(cpu["switches"] / call_seconds, 1),
            "rss_mb": round(mid.get("rss_kb", 0) / 1024, 1),
            "rss_kb_per_call": round((mid.get("rss_kb", 0) - base.get("rss_kb", 0)) / n, 1),
            "threads": mid.get("threads"),
            "threads_idle": base.get("threads"),
            "threads_per_call": round((mid.get("threads", 0) - base.get("threads", 0)) / n, 2),
        },
        "load_generator": {
            "realtime_server_cores": round(cpu["realtime"] / window, 3),
            "drivers_cores": round(cpu["drivers"] / window, 3),
            "drivers": parts,
            "send_lateness_p50_ms": _hist_pct(late_hist, 50), "send_lateness_p99_ms": _hist_pct(late_hist, 99),
            "send_lateness_max_ms": agg["lateness_max_ms"],
            "errors": agg["errors"][:10], "error_count": len(agg["errors"]), "ended_by": agg["ended_by"],
        },
    }
    log(json.dumps(step))
    return step


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def table(steps: list[dict[str, Any]]) -> str:
    rows = [
        ("send gap dev p50 / p99 (ms)", lambda s: f"{_fmt(s['send']['dev_p50_ms'])} / {_fmt(s['send']['dev_p99_ms'])}"),
        ("send gaps > 10 ms off", lambda s: _fmt(s["send"]["dev_gt_10ms"])),
        ("send bursts / stalls", lambda s: f"{s['send']['bursts']} / {s['send']['stalls']}"),
        ("late frames / schedule resets", lambda s: f"{s['send']['late_frames']} / {s['send']['schedule_resets']}"),
        ("recv gap dev p50 / p99 / max (ms)", lambda s: f"{_fmt(s['receive']['dev_p50_ms'])} / "
                                                      f"{_fmt(s['receive']['dev_p99_ms'])} / {_fmt(s['receive']['dev_max_ms'])}"),
        ("recv bursts / stalls", lambda s: f"{s['receive']['bursts']} / {s['receive']['stalls']}"),
        ("delta -> first frame p50 / p99 (ms, <=)", lambda s: f"{_fmt(s['first_delta_to_frame_ms']['p50'])} / "
                                                            f"{_fmt(s['first_delta_to_frame_ms']['p99'])}"),
        ("barge-ins (cleared / tried)", lambda s: f"{s['barge_in']['cleared']} / {s['barge_in']['interruptions']}"),
        ("onset -> clear p50 / p99 (ms)", lambda s: f"{_fmt(s['barge_in']['onset_to_clear_p50_ms'])} / "
                                                    f"{_fmt(s['barge_in']['onset_to_clear_p99_ms'])}"),
        ("onset -> last frame p50 / p99 (ms)", lambda s: f"{_fmt(s['barge_in']['onset_to_last_frame_p50_ms'])} / "
                                                         f"{_fmt(s['barge_in']['onset_to_last_frame_p99_ms'])}"),
        ("bridge CPU ms per call-second", lambda s: _fmt(s["bridge_process"]["cpu_ms_per_call_s"])),
        ("bridge CPU (cores) / kernel share", lambda s: f"{_fmt(s['bridge_process']['cpu_cores'])} / "
                                                        f"{_fmt(s['bridge_process'].get('cpu_sys_share'))}"),
        ("bridge context switches per call-second", lambda s: _fmt(s["bridge_process"].get("switches_per_call_s"))),
        ("bridge RSS MB / KB per call", lambda s: f"{_fmt(s['bridge_process']['rss_mb'])} / "
                                                  f"{_fmt(s['bridge_process']['rss_kb_per_call'])}"),
        ("bridge threads / per call", lambda s: f"{s['bridge_process']['threads']} / "
                                                f"{_fmt(s['bridge_process']['threads_per_call'])}"),
        ("callers: send lateness p50 / p99 / max (ms)", lambda s: f"{_fmt(s['load_generator']['send_lateness_p50_ms'])} / "
                                                                  f"{_fmt(s['load_generator']['send_lateness_p99_ms'])} / "
                                                                  f"{_fmt(s['load_generator']['send_lateness_max_ms'])}"),
        ("callers / local Realtime CPU (cores)", lambda s: f"{_fmt(s['load_generator']['drivers_cores'])} / "
                                                           f"{_fmt(s['load_generator']['realtime_server_cores'])}"),
        ("call errors", lambda s: _fmt(s["load_generator"]["error_count"])),
    ]
    head = "| N | " + " | ".join(str(s["n"]) for s in steps) + " |"
    sep = "|---|" + "---|" * len(steps)
    body = [f"| {name} | " + " | ".join(fn(s) for s in steps) + " |" for name, fn in rows]
    return "\n".join([head, sep, *body])


RECV_CAP_MS = 200.1  # the callers' histogram tops out here


def plot(steps: list[dict[str, Any]], path: str, instances: int = 1) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [s["n"] for s in steps]
    fig, ax1 = plt.subplots(figsize=(7, 4))
    # the send side's top bucket is "more than 10 ms" (inf): drawn at the callers' 200 ms cap
    send = [min(s["send"]["dev_p99_ms"], RECV_CAP_MS) if s["send"]["dev_p99_ms"] is not None else None
            for s in steps]
    ax1.plot(ns, send, "o-", label="send gap dev p99 (bridge; > 10 ms drawn at 200)")
    ax1.plot(ns, [s["receive"]["dev_p99_ms"] or 0 for s in steps], "s--", label="recv gap dev p99 (callers)")
    ax1.axhline(2.0, color="grey", lw=0.8, ls=":")
    ax1.set_xlabel("concurrent calls")
    ax1.set_ylabel("|gap - 20 ms| p99 (ms)")
    ax2 = ax1.twinx()
    ax2.plot(ns, [s["bridge_process"]["cpu_ms_per_call_s"] for s in steps], "^-", color="tab:red",
             label="bridge CPU ms / call-s")
    ax2.axhline(3.0, color="tab:red", lw=0.8, ls=":")
    ax2.set_ylabel("CPU ms per call-second", color="tab:red")
    lines = ax1.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    labels = ax1.get_legend_handles_labels()[1] + ax2.get_legend_handles_labels()[1]
    ax1.legend(lines, labels, loc="upper left", fontsize=8)
    where = "one worker process" if instances == 1 else f"{instances} instances, one worker process each"
    ax1.set_title(f"voicebridge under load ({where}, gunicorn gthread, local tone server)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_doc(path: str, steps: list[dict[str, Any]], command: str, meta: dict[str, Any], png: str | None,
              instances: int = 1) -> None:
    """Replace this run's block in ``path`` (one block per instance count), or append it."""
    tag = "scale" if instances == 1 else f"scale-x{instances}"
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    block = [begin, f"Command: `{command}`  ", f"Machine: {meta['machine']}  ", f"Date: {meta['date']}", "",
             table(steps), ""]
    if png:
        block += [f"![gap p99 and CPU per call against N]({os.path.relpath(png, os.path.dirname(path))})", ""]
    block.append(end)
    text = open(path).read() if os.path.exists(path) else ""
    if begin in text and end in text:
        text = text[:text.index(begin)] + "\n".join(block) + text[text.index(end) + len(end):]
    else:
        text += "\n" + "\n".join(block) + "\n"
    with open(path, "w") as f:
        f.write(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ns", default="1,50,100,200,300")
    ap.add_argument("--seconds", type=float, default=24.0, help="length of each call")
    ap.add_argument("--ramp", type=float, default=3.0, help="calls start evenly over this many seconds")
    ap.add_argument("--drivers", type=int, default=2, help="caller-driver processes")
    ap.add_argument("--speed", type=float, default=4.0, help="local server: x real time of its audio deltas")
    ap.add_argument("--tone-seconds", type=float, default=3.0, help="local server: length of each answer")
    ap.add_argument("--interrupt-after", type=float, default=0.6, help="barge in this long into an agent turn")
    ap.add_argument("--nice-fakes", type=int, default=0, help="run the local server and drivers at this nice")
    ap.add_argument("--log-level", default="INFO", help="the bridge's LOG_LEVEL")
    ap.add_argument("--instances", type=int, default=1,
                    help="bridge instances (one gunicorn worker process each, its own port); calls split evenly")
    ap.add_argument("--worker-class", choices=("gthread", "gevent"), default="gthread")
    ap.add_argument("--root", default=ROOT, help="the checkout whose code the bridge runs (old against new)")
    ap.add_argument("--workers", type=int, default=1,
                    help="worker processes of one gunicorn (examples/gunicorn.conf.py: shared cap and metrics)")
    ap.add_argument("--profile", help="py-spy: record the bridge worker to this SVG during the window")
    ap.add_argument("--json", help="write all figures here")
    ap.add_argument("--doc", help="update the Scale table in this markdown file")
    ap.add_argument("--plot", help="PNG of gap p99 and CPU per call against N")
    ap.add_argument("--logdir", default="/tmp/voicebridge-scale")
    # driver mode (internal)
    ap.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--part", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--parts", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--path", default="/media", help=argparse.SUPPRESS)
    ap.add_argument("--offer-deflate", action="store_true",
                    help="callers offer permessage-deflate (Twilio does not; a browser or websockets client does)")
    args = ap.parse_args()
    if args.driver:
        return driver_main(args)
    os.makedirs(args.logdir, exist_ok=True)
    ns = [int(x) for x in args.ns.split(",") if x.strip()]
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 8 * max(ns) + 256  # per call: caller socket, bridge's two sockets, the local server's, pipes
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))  # inherited by children
    meta = {"machine": machine(),
            "date": _dt.date.today().isoformat(), "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)}
    started = time.monotonic()
    steps = []
    for n in ns:
        print(f"--- N={n}", file=sys.stderr, flush=True)
        steps.append(run_step(n, args, lambda s: print(s, file=sys.stderr, flush=True)))
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    command = "python benchmarks/scale.py " + " ".join(a for a in sys.argv[1:])
    report = {"meta": meta, "command": command, "steps": steps}
    print(table(steps))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    if args.plot:
        plot(steps, args.plot, args.instances)
    if args.doc:
        write_doc(args.doc, steps, command, meta, args.plot, args.instances)
    print(f"elapsed {meta['elapsed_s']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
