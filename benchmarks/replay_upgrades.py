"""Replayed /media upgrades against a running bridge, from outside (issue 22, defect 2).

Starts nothing itself: point it at a running example app with signatures on (the same
``TWILIO_AUTH_TOKEN`` and ``PUBLIC_URL``), for example::

    TWILIO_AUTH_TOKEN=tok PUBLIC_URL=http://127.0.0.1:5077 MAX_CALLS=2 PORT=5077 \\
        gunicorn -c examples/gunicorn.conf.py 'examples.twilio_app:create_app()' 2> server.log &
    python benchmarks/replay_upgrades.py --url http://127.0.0.1:5077 --auth-token tok --seconds 10

A first genuine call uses up its stream token. Then ``--replayers`` clients re-open the one
signed ``/media`` upgrade as fast as the server closes it -- half replay the used token in a
``start``, half send nothing -- while ``--calls`` genuine calls (a signed webhook, then its
stream with the token it was given) come in one after another. Prints how many genuine
webhooks were answered, how many of their streams were admitted (heard the agent), and how
many replayed upgrades were made; count the server's WARNING lines yourself
(``grep -c WARNING server.log``).
"""
from __future__ import annotations

import argparse
import json
import threading
import time
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import websocket
from twilio.request_validator import RequestValidator

from voicebridge import testing


def webhook(base: str, validator: RequestValidator, call_sid: str) -> str | None:
    """POST /voice as Twilio would: the stream token when the call is connected, None when refused."""
    form = {"CallSid": call_sid, "From": "+15550001111", "To": "+15550002222", "AccountSid": "AC" + "0" * 32}
    url = f"{base}/voice"
    request = Request(url, data=urlencode(form).encode(), method="POST",
                      headers={"X-Twilio-Signature": validator.compute_signature(url, form)})
    with urlopen(request, timeout=10) as resp:
        root = ET.fromstring(resp.read())
    params = {p.get("name"): p.get("value") for p in root.iter("Parameter")}
    return params.get("vb_token") if root.find("Connect") is not None else None


def stream(ws_url: str, signature: str, call_sid: str, token: str | None, wait_media_s: float) -> bool:
    """Open the media stream and start it; True if the agent was heard (the call was admitted)."""
    ws = websocket.create_connection(ws_url, timeout=wait_media_s, header={"X-Twilio-Signature": signature})
    try:
        ws.send(json.dumps(testing.twilio_connected()))
        stream_sid = "MZ" + call_sid[2:]
        ws.send(json.dumps(testing.twilio_start(stream_sid, call_sid, {"vb_token": token} if token else {})))
        deadline = time.monotonic() + wait_media_s
        while time.monotonic() < deadline:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return False
            if opcode == websocket.ABNF.OPCODE_TEXT and json.loads(data).get("event") == "media":
                ws.send(json.dumps(testing.twilio_stop(stream_sid, call_sid)))
                return True
        return False
    except (websocket.WebSocketException, OSError):
        return False
    finally:
        ws.close()


def replayer(ws_url: str, signature: str, used: tuple[str, str] | None, stop: threading.Event,
             counts: dict[str, int], lock: threading.Lock) -> None:
    """Re-open the signed upgrade as fast as it closes: replaying a used token, or silent (None)."""
    while not stop.is_set():
        try:
            ws = websocket.create_connection(ws_url, timeout=10, header={"X-Twilio-Signature": signature})
        except (websocket.WebSocketException, OSError):
            time.sleep(0.01)
            continue
        try:
            if used is not None:
                ws.send(json.dumps(testing.twilio_connected()))
                ws.send(json.dumps(testing.twilio_start("MZ" + used[0][2:], used[0], {"vb_token": used[1]})))
            while not stop.is_set():
                opcode, _ = ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
        except (websocket.WebSocketException, OSError):
            pass
        finally:
            ws.close()
        with lock:
            counts["replayed" if used else "silent"] += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the app's public URL (PUBLIC_URL), http://host:port")
    parser.add_argument("--auth-token", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--replayers", type=int, default=4)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    base = args.url.rstrip("/")
    validator = RequestValidator(args.auth_token)
    ws_url = base.replace("http", "ws", 1) + "/media"
    signature = validator.compute_signature(ws_url, {})
    first = "CA" + "f" * 32
    token = webhook(base, validator, first)
    assert token is not None and stream(ws_url, signature, first, token, 10.0), "the first genuine call failed"
    stop, lock = threading.Event(), threading.Lock()
    counts = {"replayed": 0, "silent": 0}
    threads = [threading.Thread(target=replayer, args=(ws_url, signature, (first, token) if i % 2 == 0 else None,
                                                       stop, counts, lock), daemon=True)
               for i in range(args.replayers)]
    for thread in threads:
        thread.start()
    answered = admitted = 0
    started = time.monotonic()
    for n in range(args.calls):
        time.sleep(max(0.0, started + (n + 1) * args.seconds / (args.calls + 1) - time.monotonic()))
        call_sid = f"CA{n:032x}"
        call_token = webhook(base, validator, call_sid)
        if call_token is not None:
            answered += 1
            admitted += stream(ws_url, signature, call_sid, call_token, 5.0)
    stop.set()
    for thread in threads:
        thread.join(15)
    result: dict[str, Any] = {"genuine_webhooks": args.calls, "answered": answered, "streams_admitted": admitted,
                              "replayed_upgrades": counts["replayed"], "silent_upgrades": counts["silent"],
                              "seconds": round(time.monotonic() - started, 1)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
