"""A local stand-in for Twilio's Calls API: the ``twilio`` client places calls to simulated callees.

Point a twilio ``Client`` at it (``voicebridge.carrier.twilio.dialing.rest_client(sid, token, api.url)`` sets
``client.api.base_url``) and ``calls.create`` behaves as Twilio's does for the parts a bridge uses:

* ``POST /2010-04-01/Accounts/{AccountSid}/Calls.json`` with HTTP Basic auth (the account SID and
  auth token; else 401, code 20003), answered ``201`` with the call's JSON (``sid``, ``status``
  ``queued``...), or Twilio's error JSON: an invalid ``To`` is 400 code 21211, a ``From`` that is not
  one of this account's caller IDs 400 code 21210, more than ``max_calls`` calls in flight 429
  code 20429;
* then it "dials" the callee registered for ``To`` (:class:`Callee`: a person who says "hello?"
  and talks, or a voicemail greeting ending in a beep): it POSTs the signed voice webhook to
  ``Url`` (``Direction=outbound-api``, ``CallStatus=in-progress``), opens the ``<Connect><Stream>``
  it answers with :class:`~voicebridge.dev.sim.caller.SimulatedCaller` (signed, with the TwiML's
  parameters), and, with ``AsyncAmd``, POSTs the signed AMD callback (``AnsweredBy``) once the
  callee's script reaches the step Twilio's detector would decide at: after a person's "hello?"
  and the silence after it, after a voicemail's beep;
* ``StatusCallback`` gets ``CallStatus=completed`` when the call ends.

Each placed call's :class:`PlacedCall` (the caller's report, the AMD verdict and when it was
sent) is kept for the test or demo that placed it. Binds 127.0.0.1 on a free port; ``stop()``
joins every thread.
"""
from __future__ import annotations

import base64
import json
import logging
import math
import queue
import re
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from ...audio import mulaw as audio
from .caller import SimulatedCaller
from .report import CallReport
from .script import Say, Silence, Step, WaitForAgent, WaitForAgentSilence, WaitForHangup, say
from .webhook import SIGNATURE_HEADER, Placement, _post, connect_action, follow_action, parse_connect, signature

log = logging.getLogger(__name__)

E164 = re.compile(r"\+[1-9]\d{6,14}")
CALLS_PATH = re.compile(r"/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Calls\.json")
BEEP_HZ = 1000.0
BEEP_MS = 500


def beep(ms: int = BEEP_MS, hz: float = BEEP_HZ, dbfs: float = -10.0) -> bytes:
    """A voicemail beep: a pure tone as 8 kHz mu-law."""
    amp = 32767 * 10 ** (dbfs / 20)
    return audio.encode([int(amp * math.sin(2 * math.pi * hz * n / 8000)) for n in range(ms * 8)])


@dataclass(frozen=True)
class Callee:
    """Who answers a number: their script, and the AMD verdict given when step ``decide_at`` starts."""

    steps: tuple[Step, ...]
    answered_by: str
    decide_at: int

    @classmethod
    def person(cls, then: tuple[Step, ...] = ()) -> "Callee":
        """Says "hello?", pauses (AMD decides ``human`` here), waits for the agent, then ``then``."""
        steps = (say(prompt="caller_hello"), Silence(1000), WaitForAgent(10000), WaitForAgentSilence(800, 30000))
        return cls(steps + tuple(then), "human", 2)

    @classmethod
    def voicemail(cls, greeting_clip: str = "talk_03_0", wait_ms: int = 30000) -> "Callee":
        """A voicemail box: a greeting (a corpus clip), a beep (AMD decides ``machine_end_beep`` as it
        ends), then silence while the message is recorded, until the bridge hangs up."""
        steps = (Silence(300), Say(clip=greeting_clip), Say(audio=beep()), WaitForHangup(wait_ms))
        return cls(steps, "machine_end_beep", 3)


@dataclass
class PlacedCall:
    """One call the stand-in placed, for whoever placed it to inspect once ``done`` is set."""

    sid: str
    to: str
    from_: str
    callee: Callee
    answered_by: str | None = None
    decided_t: float | None = None  # the callee's clock (s since its start) when AMD decided
    amd_sent_at: float | None = None  # monotonic, when the AMD callback was answered by the bridge
    report: CallReport | None = None
    errors: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    events: list[tuple[float, str, dict]] = field(default_factory=list)  # the callee's, seconds since its start

    def agent_heard_after_verdict_s(self) -> float | None:
        """Seconds from the AMD verdict (the callee's clock, as Twilio decided) to the first agent
        audio the callee heard after it; None if none."""
        if self.decided_t is None:
            return None
        starts = [t for t, name, _ in self.events if name == "agent_audio_start" and t >= self.decided_t]
        return starts[0] - self.decided_t if starts else None

    def agent_heard_before_verdict(self) -> bool:
        """Any agent audio before the verdict: the agent spoke over a "hello?" or a greeting."""
        end = self.decided_t if self.decided_t is not None else float("inf")
        return any(name == "agent_audio_start" and t < end for t, name, _ in self.events)


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    """Twilio's error body, which the twilio library turns into TwilioRestException(code, msg)."""
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


class CallsAPI:
    """The stand-in: ``start()`` it, give the twilio client its ``url``, ``stop()`` it."""

    def __init__(self, account_sid: str, auth_token: str, caller_ids: tuple[str, ...] = ("+15005550006",),
                 callees: dict[str, Callee] | None = None, max_calls: int = 10,
                 on_event: Callable[[str, str, float, dict], None] | None = None) -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.caller_ids = caller_ids
        self.callees = dict(callees or {})
        self.max_calls = max_calls
        self.on_event = on_event  # (call sid, name, seconds, detail): the callee's progress
        self.calls: dict[str, PlacedCall] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._serving: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "CallsAPI":
        self._serving = threading.Thread(target=self._server.serve_forever, name="vb-callsapi", daemon=True)
        self._serving.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._server.shutdown()
        self._server.server_close()
        deadline = time.monotonic() + timeout
        for thread in [self._serving, *self._threads]:
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))

    def wait(self, sid: str, timeout: float) -> PlacedCall:
        """The placed call ``sid`` once it has ended (or after ``timeout``)."""
        call = self.calls[sid]
        call.done.wait(timeout)
        return call

    # -- the REST side -----------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(min(length, 65536)).decode("utf-8", "replace")))
                status, body = api.create(self.path, self.headers.get("Authorization", ""), form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def create(self, path: str, authorization: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """``calls.create``: (HTTP status, JSON body); a created call is dialed on its own thread."""
        match = CALLS_PATH.fullmatch(urllib.parse.urlsplit(path).path)
        if match is None or match.group(1) != self.account_sid:
            return 404, twilio_error(404, 20404, "The requested resource was not found")
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if authorization != expected:
            return 401, twilio_error(401, 20003, "Authenticate")
        to, from_ = form.get("To", ""), form.get("From", "")
        if not E164.fullmatch(to):
            return 400, twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to[:20]}")
        if from_ not in self.caller_ids:
            return 400, twilio_error(400, 21210, f"The source phone number provided, {from_[:20]}, is not yet "
                                               "verified for your account.")
        if not form.get("Url"):
            return 400, twilio_error(400, 21205, "Url parameter is required")
        with self._lock:
            if sum(not c.done.is_set() for c in self.calls.values()) >= self.max_calls:
                return 429, twilio_error(429, 20429, "Too Many Requests")
            sid = "CA" + secrets.token_hex(16)
            call = self.calls[sid] = PlacedCall(sid, to, from_, self.callees.get(to) or Callee.person())
            thread = threading.Thread(target=self._dial, args=(call, form), name=f"vb-callee:{sid[:8]}", daemon=True)
            self._threads.append(thread)
        thread.start()
        now = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        return 201, {"sid": sid, "account_sid": self.account_sid, "to": to, "from": from_, "status": "queued",
                     "direction": "outbound-api", "date_created": now, "date_updated": now, "api_version": "2010-04-01",
                     "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}.json"}

    # -- the callee --------------------------------------------------------------------------
    def _signed_post(self, url: str, form: dict[str, str]) -> bytes:
        headers = {SIGNATURE_HEADER: signature(self.auth_token, url, form),
                   "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1"}
        return _post(url, urllib.parse.urlencode(form).encode(), headers, 10.0)

    def _dial(self, call: PlacedCall, form: dict[str, str]) -> None:
        """Answer, fetch the TwiML, run the media stream with the AMD callback at its step; report."""
        base = {"CallSid": call.sid, "AccountSid": self.account_sid, "From": call.from_, "To": call.to,
                "Caller": call.from_, "Called": call.to, "Direction": "outbound-api", "ApiVersion": "2010-04-01"}
        verdicts: "queue.Queue[str | None]" = queue.Queue()
        poster = threading.Thread(target=self._post_verdicts, args=(call, form, base, verdicts),
                                  name=f"vb-amd:{call.sid[:8]}", daemon=True)
        try:
            twiml = self._signed_post(form["Url"], dict(base, CallStatus="in-progress")).decode("utf-8", "replace")
            stream_url, params = parse_connect(twiml)
            action, method = connect_action(twiml)
            placed = Placement(stream_url, params, action_url=action, action_method=method)
            amd = form.get("AsyncAmd", "").lower() == "true" and bool(form.get("AsyncAmdStatusCallback"))
            poster.start()
            caller = SimulatedCaller(stream_url, list(call.callee.steps), headers={
                SIGNATURE_HEADER: signature(self.auth_token, stream_url)}, custom_parameters=params,
                call_sid=call.sid, account_sid=self.account_sid,
                on_event=self._callee_events(call, verdicts if amd else None),
                after_stream=lambda: follow_action(placed, self.auth_token, call.sid, self.account_sid,
                                                   form=dict(base, CallStatus="in-progress")))
            call.report = caller.run()
        except Exception as exc:  # noqa: BLE001 - a failed call is reported, never raised into the server
            call.errors.append(f"{type(exc).__name__}: {exc}")
            log.warning("simulated call %s failed: %s", call.sid, exc)
        finally:
            verdicts.put(None)
            if poster.is_alive():
                poster.join(15.0)
            if form.get("StatusCallback"):
                try:
                    self._signed_post(form["StatusCallback"], dict(base, CallStatus="completed"))
                except Exception as exc:  # noqa: BLE001 - the app's URL: its failure is the app's
                    call.errors.append(f"status callback: {exc}")
            call.done.set()

    def _callee_events(self, call: PlacedCall, verdicts: "queue.Queue[str | None] | None"
                       ) -> Callable[[str, float, dict], None]:
        def on_event(name: str, t: float, detail: dict) -> None:
            call.events.append((t, name, detail))
            if (verdicts is not None and name == "step" and detail.get("index") == call.callee.decide_at
                    and call.answered_by is None):
                call.answered_by, call.decided_t = call.callee.answered_by, t
                verdicts.put(call.answered_by)  # posted off the caller's 20 ms loop
            if self.on_event is not None:
                self.on_event(call.sid, name, t, detail)
        return on_event

    def _post_verdicts(self, call: PlacedCall, form: dict[str, str], base: dict[str, str],
                       verdicts: "queue.Queue[str | None]") -> None:
        verdict = verdicts.get()
        if verdict is None:
            return
        try:
            self._signed_post(form["AsyncAmdStatusCallback"], dict(base, AnsweredBy=verdict,
                                                                   MachineDetectionDuration="2500"))
            call.amd_sent_at = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - recorded for the test, like any failed callback
            call.errors.append(f"AMD callback: {exc}")

