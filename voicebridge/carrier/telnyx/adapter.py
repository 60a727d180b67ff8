"""Telnyx behind the carrier seam: TeXML answers, the Ed25519 webhook check, the media stream.

``TELNYX`` is the media stream (:mod:`voicebridge.carrier.telnyx.protocol`, sans-IO). The webhooks:

* the TeXML application's voice URL is answered with ``<Connect action=…><Stream url=…
  bidirectionalMode="rtp" bidirectionalCodec="PCMU" codec="PCMU">`` and the call's context as
  ``<Parameter>``s (Telnyx returns them in ``start.custom_parameters``); once the bridge closes
  the stream, the ``action`` request is answered with ``<Dial>`` (transfer), ``<Hangup/>`` or
  the refusal -- the same flow as Twilio's, so hang-up and transfer need no API key;
* Telnyx signs its webhooks with Ed25519: ``telnyx-signature-ed25519`` (base64, 64 bytes) over
  ``f"{telnyx-timestamp}|{raw body}"``, checked with the account's public key (base64, from the
  portal). A timestamp more than ``tolerance_s`` from now is refused (a replay). The WebSocket
  upgrade carries no such signature; a stream is admitted by the single-use stream token its
  signed webhook issued (``voicebridge.serving.streamtoken``), as Twilio's is.

The check needs the ``cryptography`` package (the ``telnyx`` extra: ``pip install 'cryptography>=41'``); answering
TeXML needs nothing beyond the standard library.
"""
from __future__ import annotations

import base64
import binascii
import enum
import xml.etree.ElementTree as ET
from typing import Any, Mapping

from . import protocol as telnyx_protocol
from ..seam import CarrierEvent, WebhookRequest, safe_id
from ...extras import need

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
TOLERANCE_S = 300.0  # Telnyx's SDKs refuse signatures older (or newer) than five minutes
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")  # DER SubjectPublicKeyInfo of a raw Ed25519 key
CONTEXT_FIELDS = ("CallSid", "From", "To")
MAX_PARAMETER_CHARS = 500
MAX_PARAMETERS = 20
REFUSAL_MESSAGE = "Sorry, all of our lines are busy right now. Please call again in a few minutes."


class TelnyxStream:
    """Telnyx media streaming as a :class:`~voicebridge.carrier.seam.Carrier`."""

    name = telnyx_protocol.SIDE

    def parse(self, message: "str | bytes | None") -> CarrierEvent:
        return telnyx_protocol.parse(message)

    def outbound(self, stream_sid: str) -> telnyx_protocol.Outbound:
        return telnyx_protocol.Outbound(stream_sid)

    def safe_id(self, value: Any) -> str:
        return safe_id(value)


TELNYX = TelnyxStream()


# ---------------------------------------------------------------------------- signatures
class Signature(enum.Enum):
    """The outcome of checking one webhook's Ed25519 signature."""

    VALID = "valid"
    MISSING = "missing header"
    MALFORMED = "malformed header"
    STALE = "timestamp outside the tolerance"
    INVALID = "signature does not match"


def load_public_key(text: str) -> Any:
    """The account's public key (base64 of the raw 32 bytes, or of its DER SubjectPublicKeyInfo).

    ValueError for anything else: a wrong key is a configuration error, found at start-up.
    """
    ed25519 = need("cryptography.hazmat.primitives.asymmetric.ed25519", "checking Telnyx webhook signatures")
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the Telnyx public key is not base64") from None
    if len(raw) == len(SPKI_PREFIX) + 32 and raw.startswith(SPKI_PREFIX):
        raw = raw[len(SPKI_PREFIX):]
    if len(raw) != 32:
        raise ValueError(f"the Telnyx public key is {len(raw)} bytes, not an Ed25519 key (32)")
    return ed25519.Ed25519PublicKey.from_public_bytes(raw)


def check_signature(public_key: Any, body: bytes, signature: str | None, timestamp: str | None, now: float,
                    tolerance_s: float = TOLERANCE_S) -> Signature:
    """Whether ``signature`` is the key's Ed25519 signature of ``timestamp|body``, made within
    ``tolerance_s`` of ``now`` (wall-clock seconds, passed in)."""
    from cryptography.exceptions import InvalidSignature

    if not signature or not timestamp:
        return Signature.MISSING
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return Signature.MALFORMED
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return Signature.MALFORMED
    if len(raw) != 64:
        return Signature.MALFORMED
    if abs(now - int(timestamp)) > tolerance_s:
        return Signature.STALE
    try:
        public_key.verify(raw, timestamp.encode("ascii") + b"|" + body)
    except InvalidSignature:
        return Signature.INVALID
    return Signature.VALID


# ---------------------------------------------------------------------------- TeXML
def _document(*verbs: ET.Element) -> str:
    response = ET.Element("Response")
    response.extend(verbs)
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(response, encoding="unicode")


def connect_texml(stream_url: str, params: Mapping[str, str], action_url: str | None = None) -> str:
    """``<Connect><Stream>``, bidirectional, PCMU both ways, one ``<Parameter>`` per item."""
    connect = ET.Element("Connect", {"action": action_url} if action_url else {})
    stream = ET.SubElement(connect, "Stream", {"url": stream_url, "bidirectionalMode": "rtp",
                                               "bidirectionalCodec": "PCMU", "codec": "PCMU"})
    for name, value in params.items():
        ET.SubElement(stream, "Parameter", {"name": name, "value": value})
    return _document(connect)


def transfer_texml(target: str) -> str:
    """``<Dial>`` to an E.164 number or a SIP URI."""
    dial = ET.Element("Dial")
    ET.SubElement(dial, "Sip" if target.startswith(("sip:", "sips:")) else "Number").text = target
    return _document(dial)


def hangup_texml() -> str:
    return _document(ET.Element("Hangup"))


def refusal_texml(message: str = REFUSAL_MESSAGE) -> str:
    say = ET.Element("Say")
    say.text = message
    return _document(say, ET.Element("Hangup"))


def stream_parameters(form: Mapping[str, str], args: Mapping[str, str]) -> dict[str, str]:
    """Per-call context for ``start.custom_parameters``: webhook query args, then From/To/CallSid."""
    params: dict[str, str] = {}
    candidates = list(args.items()) + [(k, form[k]) for k in CONTEXT_FIELDS if form.get(k)]
    for name, value in candidates:
        if len(name) + len(value) < MAX_PARAMETER_CHARS and len(params) < MAX_PARAMETERS:
            params[name] = value
    return params


class TelnyxWebhooks:
    """Telnyx's TeXML webhooks as :class:`~voicebridge.carrier.seam.CarrierWebhooks`.

    ``public_key``: the account's Ed25519 public key (base64); None turns checking off (local
    use only). ``tolerance_s``: how far a signature's timestamp may be from now.
    """

    name = telnyx_protocol.SIDE
    signature_header = SIGNATURE_HEADER

    def __init__(self, public_key: str | None, tolerance_s: float = TOLERANCE_S) -> None:
        self._key = load_public_key(public_key) if public_key else None
        self.tolerance_s = tolerance_s

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def check(self, request: WebhookRequest, now: float) -> Signature:
        return check_signature(self._key, request.body, request.headers.get(SIGNATURE_HEADER),
                               request.headers.get(TIMESTAMP_HEADER), now, self.tolerance_s)

    def verify(self, request: WebhookRequest, websocket: bool, now: float) -> bool:
        if self._key is None or websocket:  # upgrades: admitted by their stream token at start
            return True
        return self.check(request, now) is Signature.VALID

    def call_id(self, form: Mapping[str, str]) -> str:
        return form.get("CallSid", "")

    def stream_parameters(self, form: Mapping[str, str], args: Mapping[str, str]) -> dict[str, str]:
        return stream_parameters(form, args)

    def connect(self, stream_url: str, params: Mapping[str, str], action_url: str | None = None) -> str:
        return connect_texml(stream_url, params, action_url)

    def transfer(self, target: str) -> str:
        return transfer_texml(target)

    def hangup(self) -> str:
        return hangup_texml()

    def refusal(self, message: str | None = None) -> str:
        return refusal_texml(message or REFUSAL_MESSAGE)
