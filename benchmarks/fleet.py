"""Several app instances, one Redis, one global cap: does the fleet act as one bridge?

Starts a real ``redis-server``, a Realtime endpoint that only listens (calls cost nearly nothing:
this run is about admission), and ``--instances`` example apps (``examples/twilio_app.py``, each
its own process and state directory, all with ``REDIS_URL`` and ``MAX_CALLS=--cap``). Then:

1. **peak**: ``--calls`` calls, ``--concurrency`` at a time, each placed as Twilio does -- the
   signed webhook on instance ``i``, the signed stream (with its token) on instance ``i+1`` --
   and held open. Counted: admitted, refused at the webhook (the apology TwiML), refused at the
   stream (1013; ``/voice/after`` on instance ``i+2`` must then answer the apology), and the
   leases in Redis at the peak.
2. **end**: every call hung up; the leases left in Redis (leaked slots) once they have ended.
3. **kill -9**: ``--kill-calls`` calls streamed to one instance, which is then killed with
   SIGKILL; the time until Redis holds no lease of it (bounded by ``CALL_LEASE_S``)::

    python benchmarks/fleet.py --calls 200 --instances 4 --cap 150 --lease 5
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402
import websocket  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

from benchmarks.fleet_parts import AppInstance, RedisServer, SilentRealtime, start_instances  # noqa: E402
from voicebridge import testing  # noqa: E402

TOKEN = "fleet-benchmark-auth-token"
ADMITTED, WEBHOOK_REFUSED, STREAM_REFUSED, FAILED = "admitted", "refused at the webhook", "refused at the stream", \
    "failed"
QUIET_S = 2.0  # a stream not closed this long after its start was admitted (no greeting: it is silent)


def signed_post(url: str, form: dict[str, str]) -> ET.Element:
    headers = {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, form),
               "Content-Type": "application/x-www-form-urlencoded"}
    request = urllib.request.Request(url, urllib.parse.urlencode(form).encode(), headers)
    with urllib.request.urlopen(request, timeout=20) as resp:
        return ET.fromstring(resp.read())


class Call:
    """One caller: webhook on one instance, stream on another; held open until ``hang_up``."""

    def __init__(self, index: int, webhook: AppInstance, stream: AppInstance, after: AppInstance) -> None:
        self.sid = f"CA{index:032d}"
        self.stream_sid = f"MZ{index:032d}"
        self.webhook, self.stream, self.after = webhook, stream, after
        self.ws: websocket.WebSocket | None = None
        self.outcome = FAILED
        self.detail = ""

    def place(self) -> "Call":
        try:
            twiml = signed_post(f"{self.webhook.url}/voice", {"CallSid": self.sid, "AccountSid": "ACfleet",
                                                               "From": "+15550001111", "To": "+15550002222"})
            if twiml.find("Connect/Stream") is None:
                self.outcome = WEBHOOK_REFUSED if twiml.find("Say") is not None else FAILED
                return self
            params = {p.get("name", ""): p.get("value", "") for p in twiml.iter("Parameter")}
            signature = RequestValidator(TOKEN).compute_signature(self.stream.ws_url, {})
            self.ws = websocket.create_connection(self.stream.ws_url, timeout=QUIET_S,
                                                  header={"X-Twilio-Signature": signature})
            self.ws.send(json.dumps(testing.twilio_connected()))
            self.ws.send(json.dumps(testing.twilio_start(self.stream_sid, self.sid, params)))
            self._outcome_of_stream()
        except Exception as exc:  # noqa: BLE001 - counted as a failure with its reason
            self.outcome, self.detail = FAILED, f"{type(exc).__name__}: {exc}"
        return self

    def _outcome_of_stream(self) -> None:
        assert self.ws is not None
        try:
            opcode, data = self.ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            self.outcome = ADMITTED
            return
        if opcode == websocket.ABNF.OPCODE_CLOSE and int.from_bytes(data[:2], "big") == 1013:
            self.ws.close()
            self.ws = None
            after = signed_post(f"{self.after.url}/voice/after", {"CallSid": self.sid, "AccountSid": "ACfleet"})
            self.outcome = STREAM_REFUSED if after.find("Say") is not None else FAILED
            self.detail = "" if self.outcome == STREAM_REFUSED else "no apology at /voice/after"
        else:
            self.outcome, self.detail = FAILED, f"unexpected opcode {opcode}"

    def hang_up(self) -> None:
        if self.ws is None:
            return
        try:
            self.ws.send(json.dumps(testing.twilio_stop(self.stream_sid, self.sid)))
            self.ws.settimeout(10)
            for _ in range(1000):
                opcode, _ = self.ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
        except Exception:  # noqa: BLE001 - a killed instance's socket is simply gone
            pass
        finally:
            self.ws.close()
            self.ws = None


def leases(client: redis.Redis, prefix: str = "voicebridge") -> int:
    """Unexpired leases, by Redis's clock (what the cap counts; expired ones go at the next probe)."""
    seconds, micros = client.time()
    return int(client.zcount(f"{prefix}:slots", f"({seconds * 1000 + micros // 1000}", "+inf"))


def wait_for(predicate: Any, timeout_s: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def peak_phase(instances: list[AppInstance], calls: int, concurrency: int, client: redis.Redis) -> list[Call]:
    k = len(instances)
    plan = [Call(i, instances[i % k], instances[(i + 1) % k], instances[(i + 2) % k]) for i in range(calls)]
    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        placed = list(pool.map(Call.place, plan))
    counts = {o: sum(c.outcome == o for c in placed) for o in (ADMITTED, WEBHOOK_REFUSED, STREAM_REFUSED, FAILED)}
    health = [i.health() for i in instances]
    print(f"peak: {calls} calls over {k} instances in {time.monotonic() - started:.1f} s: " +
          ", ".join(f"{n} {o}" for o, n in counts.items()))
    print(f"peak: leases in Redis {leases(client)}, active_calls per instance "
          f"{[h['active_calls'] for h in health]} (sum {sum(h['active_calls'] for h in health)}), "
          f"active_calls_all {[h['active_calls_all'] for h in health]}")
    for call in placed:
        if call.outcome == FAILED:
            print(f"  failed: {call.sid}: {call.detail}")
    return placed


def kill_phase(instances: list[AppInstance], kill_calls: int, lease_s: float, client: redis.Redis) -> None:
    victim, others = instances[-1], instances[:-1]
    calls = [Call(10_000 + i, others[i % len(others)], victim, others[0]) for i in range(kill_calls)]
    with ThreadPoolExecutor(8) as pool:
        placed = list(pool.map(Call.place, calls))
    held = sum(c.outcome == ADMITTED for c in placed)
    before = leases(client)
    victim.kill()
    back = wait_for(lambda: leases(client) == 0, timeout_s=lease_s * 3 + 5)
    print(f"kill -9: {held} calls live on instance {victim.name} ({before} leases); killed; "
          + (f"leases back to 0 after {back:.2f} s (lease {lease_s:.0f} s)" if back is not None
             else f"leases still {leases(client)} after {lease_s * 3 + 5:.0f} s"))
    for call in placed:
        call.ws = None  # its host is gone
    print(f"after kill -9: leases in Redis {leases(client)}, the others' active_calls_all "
          f"{[i.health()['active_calls_all'] for i in others]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--instances", type=int, default=4)
    parser.add_argument("--cap", type=int, default=30)
    parser.add_argument("--lease", type=float, default=5.0, help="CALL_LEASE_S of every instance")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--kill-calls", type=int, default=8)
    args = parser.parse_args()
    logs = tempfile.mkdtemp(prefix="vb-fleet-")
    print(f"fleet: {args.instances} instances, global cap {args.cap}, lease {args.lease:.0f} s; logs in {logs}")
    with RedisServer() as server:
        realtime = SilentRealtime()
        client = redis.Redis.from_url(server.url)
        instances = start_instances(logs, args.instances, REDIS_URL=server.url, MAX_CALLS=str(args.cap),
                                    CALL_LEASE_S=str(args.lease), TWILIO_AUTH_TOKEN=TOKEN, GREETING="",
                                    LOCAL_BACKEND="0", OPENAI_REALTIME_URL=realtime.url, STARTUP_CHECK="0",
                                    LOG_LEVEL="WARNING", END_CALL="0", DEMO_TOOL="0")
        try:
            placed = peak_phase(instances, args.calls, args.concurrency, client)
            threads = [threading.Thread(target=c.hang_up) for c in placed]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            settled = wait_for(lambda: leases(client) == 0, timeout_s=10)
            print(f"end: every call hung up; leases left in Redis {leases(client)}"
                  + (f" (0 after {settled:.2f} s)" if settled is not None else ""))
            kill_phase(instances, args.kill_calls, args.lease, client)
        finally:
            for instance in instances:
                instance.stop()
            realtime.stop()
            client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
