"""The carrier seam: what the call needs of a telephone carrier, whoever the carrier is.

A carrier (Twilio, Telnyx) does two jobs for the bridge, each behind one small interface, as
Pipecat keeps one serializer per carrier:

* :class:`Carrier` -- its media stream, sans-IO: one WebSocket message in, one of the typed
  events below out (bad input becomes a :class:`~voicebridge.errors.ProtocolError`, never an
  exception), and the three messages the bridge sends (media, mark, clear) built for one stream.
  The call (``MediaSession``, ``CarrierLink``) uses only this.
* :class:`CarrierWebhooks` -- its HTTP side: check a request's signature, answer the call's
  webhook with the markup that connects the media stream (carrying the call's context as stream
  parameters), and answer the request that follows the stream with a transfer, a hang-up or a
  refusal. The Flask extension uses only this.

The events are the bridge's, not a carrier's: every carrier's parser gives these. Their field
names are the ones the call has always used (``stream_sid`` is Twilio's ``streamSid`` or
Telnyx's ``stream_id``; ``call_sid`` is Twilio's ``callSid`` or Telnyx's ``call_control_id``).
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Union

from .. import peerjson
from ..errors import ProtocolError

SAFE_CHARS = 40
_SAFE_ID = re.compile(r"[A-Za-z0-9:_.\-]{1,80}\Z")


@dataclass(frozen=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...] = ()
    custom_parameters: dict[str, str] = field(default_factory=dict)
    media_format: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Media:
    stream_sid: str
    payload: bytes
    timestamp_ms: int | None
    track: str


@dataclass(frozen=True)
class Mark:
    stream_sid: str
    name: str


@dataclass(frozen=True)
class Dtmf:
    stream_sid: str
    digit: str


@dataclass(frozen=True)
class Stop:
    stream_sid: str
    call_sid: str


CarrierEvent = Union[Connected, Start, Media, Mark, Dtmf, Stop, ProtocolError]


class OutboundMessages(Protocol):
    """The messages the bridge sends on one stream (the 20 ms path: keep ``media`` cheap)."""

    def media(self, frame: bytes) -> str: ...
    def mark(self, name: str) -> str: ...
    def clear(self) -> str: ...


class Carrier(Protocol):
    """One carrier's media stream protocol (sans-IO)."""

    name: str
    """Short and stable: the ``side`` of its protocol errors, and their metrics key's prefix."""

    def parse(self, message: "str | bytes | None") -> CarrierEvent: ...
    def outbound(self, stream_sid: str) -> OutboundMessages: ...
    def safe_id(self, value: Any) -> str: ...


@dataclass(frozen=True)
class WebhookRequest:
    """One HTTP request as a carrier signed it, framework-free (the Flask extension builds it).

    ``url`` is the public URL the carrier requested (the one it signed, for carriers that sign
    URLs); ``body`` the raw bytes (for carriers that sign the body); ``headers`` a mapping whose
    lookups are case-insensitive (Werkzeug's headers are).
    """

    url: str
    method: str
    headers: Mapping[str, str]
    body: bytes = b""
    form: Mapping[str, str] = field(default_factory=dict)


class CarrierWebhooks(Protocol):
    """One carrier's webhooks: signatures, and the markup that answers them."""

    name: str
    signature_header: str
    """Named in the log line of a refused request."""

    @property
    def enabled(self) -> bool:
        """True if requests are checked (a key or token was given)."""

    def verify(self, request: WebhookRequest, websocket: bool, now: float) -> bool:
        """Whether the request carries a valid signature (True when checking is off)."""

    def call_id(self, form: Mapping[str, str]) -> str:
        """The call's id in a webhook's form: the one ``Start.call_sid`` will carry."""

    def stream_parameters(self, form: Mapping[str, str], args: Mapping[str, str]) -> dict[str, str]:
        """The call's context for the stream's custom parameters (query args, caller, callee)."""

    def connect(self, stream_url: str, params: Mapping[str, str], action_url: str | None = None) -> str:
        """Markup connecting the call to a bidirectional media stream at ``stream_url``."""

    def transfer(self, target: str) -> str: ...
    def hangup(self) -> str: ...
    def refusal(self, message: str | None = None) -> str: ...


def dispatch(side: str, message: "str | bytes | None",
             parsers: Mapping[str, Callable[[dict[str, Any]], CarrierEvent]]) -> CarrierEvent:
    """A JSON text message whose ``event`` names its parser (both carriers' protocols are so):
    that parser's event; binary, non-JSON, too deep, not an object or an unknown event: an error."""
    if not isinstance(message, str):
        return ProtocolError(side, "binary_frame", f"unexpected {type(message).__name__} frame")
    try:
        msg = peerjson.loads(message)
    except ValueError as exc:
        return ProtocolError(side, "malformed_json", f"message is not JSON ({len(message)} chars): {str(exc)[:60]}")
    if not isinstance(msg, dict):
        return ProtocolError(side, "malformed_json", "message is not a JSON object")
    event = msg.get("event")
    parser = parsers.get(event) if isinstance(event, str) else None
    if parser is None:
        return ProtocolError(side, "unknown_event", f"unknown event {str(event)[:40]!r}")
    return parser(msg)


def media_event(side: str, stream_sid: str, media: Any) -> "Media | ProtocolError":
    """A ``media`` message's inner object (``{"payload": base64, "timestamp", "track"}``, the same
    in both carriers' protocols) as the bridge's event; a missing or bad payload as an error."""
    if not isinstance(media, dict) or not isinstance(media.get("payload"), str):
        return ProtocolError(side, "missing_field", "media message without media.payload")
    b64 = media["payload"]
    try:
        payload = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return ProtocolError(side, "bad_base64", f"media payload is not valid base64 ({len(b64)} chars)")
    return Media(stream_sid=stream_sid, payload=payload, timestamp_ms=int_or_none(media.get("timestamp")),
                 track=str(media.get("track") or "inbound"))


def mark_event(side: str, stream_sid: str, mark: Any) -> "Mark | ProtocolError":
    """A ``mark`` message's inner object (``{"name": …}``, the same in both carriers' protocols)."""
    if not isinstance(mark, dict) or not isinstance(mark.get("name"), str):
        return ProtocolError(side, "missing_field", "mark message without mark.name")
    return Mark(stream_sid=stream_sid, name=mark["name"])


DTMF_DIGITS = frozenset("0123456789*#ABCD")


def dtmf_event(side: str, stream_sid: str, dtmf: Any) -> "Dtmf | ProtocolError":
    """A ``dtmf`` message's inner object (``{"digit": …}``, the same in both carriers' protocols).
    A bad digit is named by kind only: keypad input is never logged."""
    if not isinstance(dtmf, dict):
        return ProtocolError(side, "missing_field", "dtmf message without dtmf object")
    digit = dtmf.get("digit")
    if not isinstance(digit, str) or digit not in DTMF_DIGITS:
        return ProtocolError(side, "bad_dtmf", "dtmf digit is not one of 0-9 * # A-D")
    return Dtmf(stream_sid=stream_sid, digit=digit)


def int_or_none(value: Any) -> int | None:
    """A peer's number (often a string: ``"5"``) as an int, or None if it is not one."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON 1e400 / Infinity
        return None


def safe_id(value: Any) -> str:
    """A peer-given id fit for a log line: itself if plain (letters, digits, ``:_.-``), else a
    short, quoted prefix. Any carrier's ids (SIDs, UUIDs, ``v3:...`` call control ids) pass."""
    if isinstance(value, str) and _SAFE_ID.match(value):
        return value
    return repr(str(value)[:SAFE_CHARS])
