"""Outbound calls: the call's plan, placing it through Twilio's REST API, and Twilio's errors.

``VoiceBridge.call`` (voicebridge.serving.flaskext) places a call whose answer comes back to the bridge's
own ``/voice``, like an inbound call's. What the call is for -- its instructions, the tools it may
use, the app's data, who speaks first, answering-machine detection -- is its :class:`CallPlan`.
The plan never travels through Twilio: it is left on the shared state's ``plan`` board under a
random single-use id, and only that id rides in the voice URL (``?vb_plan=``), then in the
stream's ``<Parameter>``. The stream that redeems it gets the plan; an id that is unknown, used or
expired (a forged or replayed one) is refused, so nobody who can reach ``/voice`` can give a call
instructions of their own, and instructions of any length fit (Twilio bounds parameters).

Twilio's refusals come back as :class:`CallError` subclasses, one per thing the app can act on
(a bad number, a caller ID it may not use, a rate limit), never as a dead session.
"""
from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ...config import FIRST_SPEAKERS, TOOL_CHOICES, BridgeConfig

PLAN_PARAMETER = "vb_plan"
"""The voice URL's query argument (and the stream's parameter) naming the call's plan."""
PLAN_KEEP_S = 600.0
"""How long a plan waits for its stream: ringing (Twilio's ``timeout`` is at most 600 s) and answering."""
AMD_KEEP_S = 300.0
"""How long an AMD verdict waits on the board for its stream's session to take it."""
MACHINE_DETECTION = "DetectMessageEnd"  # the verdict comes after the greeting's end (the beep)
MAX_DATA_ITEMS = 20
MAX_DATA_CHARS = 4000


class CallError(RuntimeError):
    """Twilio did not place the call. ``code``: Twilio's error code (None if it gave none or was not
    reached), ``status``: the HTTP status, ``to``: the number dialed."""

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None,
                 to: str | None = None) -> None:
        super().__init__(message)
        self.code, self.status, self.to = code, status, to


class InvalidNumber(CallError):
    """The ``to`` number is not a valid or reachable phone number (Twilio 21211, 21214, 21217, 21401, 13223)."""


class CallerIdNotAllowed(CallError):
    """The ``from_`` number may not be used as caller ID: not yours, not verified (21210, 21212, 21213)."""


class NotPermitted(CallError):
    """The account may not call there (geo permissions, a trial account's unverified number: 21215,
    21216, 21219) or the credentials are wrong (20003)."""


class RateLimited(CallError):
    """Too many requests or calls at once (HTTP 429, Twilio 20429, 21611): try again later."""


class TwilioUnreachable(CallError):
    """Twilio's API did not answer (network, DNS, timeout): the call may be retried."""


ERRORS: dict[int, type[CallError]] = {
    **dict.fromkeys((21211, 21214, 21217, 21401, 13223, 13224), InvalidNumber),
    **dict.fromkeys((21210, 21212, 21213), CallerIdNotAllowed),
    **dict.fromkeys((21215, 21216, 21219, 20003), NotPermitted),
    **dict.fromkeys((20429, 21611), RateLimited),
}


def call_error(exc: Exception, to: str) -> CallError:
    """The :class:`CallError` for what the twilio library raised placing a call to ``to``."""
    code, status = getattr(exc, "code", None), getattr(exc, "status", None)
    if status is None and code is None:  # not a TwilioRestException: the request never got an answer
        return TwilioUnreachable(f"Twilio's API did not answer ({type(exc).__name__}: {exc})", to=to)
    kind = ERRORS.get(code) if isinstance(code, int) else None
    if kind is None:
        kind = RateLimited if status == 429 else CallError
    message = getattr(exc, "msg", "") or str(exc)
    return kind(f"Twilio refused the call to {to}: {message} (code {code}, HTTP {status})", code=code,
                status=status, to=to)


@dataclass(frozen=True)
class CallPlan:
    """What an outbound call is for, applied to the bridge's config when its stream starts.

    ``tools``: names of tools of the bridge's config the call may use (None: all of them);
    ``data``: the app's strings, given to the session as custom parameters (tools see them in
    ``CallInfo``, ``config_for_call`` in its argument); ``voicemail_message``: fixed words for a
    voicemail (None: the model leaves one from ``voicemail_instructions``).
    """

    instructions: str | None = None
    tools: tuple[str, ...] | None = None
    data: Mapping[str, str] = field(default_factory=dict)
    first_speaker: str = "callee"
    amd: bool = True
    voicemail_message: str | None = None
    greeting_instructions: str | None = None

    def check(self, config: BridgeConfig) -> None:
        """ValueError for a plan that cannot be applied to ``config`` (before Twilio is asked)."""
        if self.first_speaker not in FIRST_SPEAKERS:
            raise ValueError(f"first_speaker must be one of {FIRST_SPEAKERS}, not {self.first_speaker!r}")
        known = {t.name for t in config.tools}
        unknown = sorted(set(self.tools or ()) - known)
        if unknown:
            raise ValueError(f"unknown tools {unknown}: the bridge's config offers {sorted(known)}")
        if len(self.data) > MAX_DATA_ITEMS or any(not isinstance(k, str) or not isinstance(v, str)
                                                  for k, v in self.data.items()):
            raise ValueError(f"data must be at most {MAX_DATA_ITEMS} str -> str items")
        if sum(len(k) + len(v) for k, v in self.data.items()) > MAX_DATA_CHARS:
            raise ValueError(f"data must be at most {MAX_DATA_CHARS} characters")

    def apply(self, config: BridgeConfig) -> BridgeConfig:
        """``config`` for this call: its instructions, tools, opening and voicemail."""
        changes: dict[str, Any] = {"first_speaker": self.first_speaker, "amd": self.amd}
        if self.instructions:
            changes["instructions"] = self.instructions
        if self.tools is not None:
            changes["tools"] = tuple(t for t in config.tools if t.name in self.tools)
            if config.tool_choice not in TOOL_CHOICES and config.tool_choice not in self.tools:
                changes["tool_choice"] = "auto"
        if self.voicemail_message:
            changes["voicemail_message"] = self.voicemail_message
        if self.greeting_instructions:
            changes["greeting_instructions"] = self.greeting_instructions
        return dataclasses.replace(config, **changes)

    def to_json(self) -> str:
        body = dataclasses.asdict(self)
        body["data"] = dict(self.data)
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "CallPlan":
        """The plan left on the board; ValueError if it is not one (the board is ours: a bug or a
        foreign writer, never silently a default plan)."""
        try:
            body = json.loads(text)
            tools = body.get("tools")
            return cls(body.get("instructions"), tuple(tools) if tools is not None else None,
                       dict(body.get("data") or {}), body.get("first_speaker", "callee"), bool(body.get("amd", True)),
                       body.get("voicemail_message"), body.get("greeting_instructions"))
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a call plan: {exc}") from None


def new_plan_id() -> str:
    """A random, unguessable plan id (128 bits), safe as a board name."""
    return secrets.token_urlsafe(16)


def create_call(client: Any, to: str, from_: str, voice_url: str, amd_url: str | None,
                status_callback: str | None = None, status_events: Sequence[str] = (),
                timeout_s: int | None = None) -> str:
    """Twilio's ``calls.create`` for a bridge's outbound call; the call SID, or a :class:`CallError`."""
    options: dict[str, Any] = {"to": to, "from_": from_, "url": voice_url, "method": "POST"}
    if amd_url:
        options.update(machine_detection=MACHINE_DETECTION, async_amd=True, async_amd_status_callback=amd_url,
                       async_amd_status_callback_method="POST")
    if status_callback:
        options.update(status_callback=status_callback, status_callback_method="POST")
        if status_events:
            options["status_callback_event"] = list(status_events)
    if timeout_s is not None:
        options["timeout"] = timeout_s
    try:
        call = client.calls.create(**options)
    except Exception as exc:  # noqa: BLE001 - TwilioRestException, requests' errors: each becomes a CallError
        raise call_error(exc, to) from exc
    return str(call.sid)


def rest_client(account_sid: str, auth_token: str, api_url: str | None = None) -> Any:
    """A twilio REST client; ``api_url`` (e.g. ``http://127.0.0.1:8765``) points it at a stand-in
    for Twilio's API such as :mod:`voicebridge.dev.sim.callsapi`."""
    from twilio.rest import Client

    client = Client(account_sid, auth_token)
    if api_url:
        client.api.base_url = api_url.rstrip("/")
    return client
