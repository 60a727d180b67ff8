"""Twilio behind the carrier seam: an adapter over ``twilio_protocol`` and ``twiml``, nothing new.

``TWILIO`` is the media stream (sans-IO, no third-party import: the call imports it);
:class:`TwilioWebhooks` answers and checks webhooks with the twilio package (the Flask
integration imports it). Behaviour is exactly that of the modules it delegates to.
"""
from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import parse_qsl, urlsplit

from . import protocol as tw
from ..seam import CarrierEvent, WebhookRequest

SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"


class TwilioStream:
    """Twilio Media Streams as a :class:`~voicebridge.carrier.seam.Carrier`."""

    name = tw.SIDE

    def parse(self, message: "str | bytes | None") -> CarrierEvent:
        return tw.parse(message)

    def outbound(self, stream_sid: str) -> tw.Outbound:
        return tw.Outbound(stream_sid)

    def safe_id(self, value: Any) -> str:
        return tw.safe_sid(value)


TWILIO = TwilioStream()


class TwilioWebhooks:
    """Twilio's webhooks as :class:`~voicebridge.carrier.seam.CarrierWebhooks`: TwiML answers and
    ``X-Twilio-Signature`` (HMAC over the public URL, and the form for a webhook; B4)."""

    name = tw.SIDE
    signature_header = SIGNATURE_HEADER

    def __init__(self, auth_token: str | None) -> None:
        from . import twiml  # needs the twilio package: names the fix if it is missing
        from twilio.request_validator import RequestValidator

        self._twiml = twiml
        self._validator = RequestValidator(auth_token) if auth_token else None

    @property
    def enabled(self) -> bool:
        return self._validator is not None

    def verify(self, request: WebhookRequest, websocket: bool, now: float) -> bool:
        if self._validator is None:
            return True
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            return False
        params: Any = {}
        if not websocket and request.method == "POST":
            query = dict(parse_qsl(urlsplit(request.url).query))
            params = request.body.decode("utf-8", "replace") if "bodySHA256" in query else dict(request.form)
        algorithm = _algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
        if algorithm is None:
            return bool(self._validator.validate(request.url, params, signature))
        return bool(self._validator.validate(request.url, params, signature, algorithm))

    def call_id(self, form: Mapping[str, str]) -> str:
        return form.get("CallSid", "")

    def stream_parameters(self, form: Mapping[str, str], args: Mapping[str, str]) -> dict[str, str]:
        return self._twiml.stream_parameters(form, args)

    def connect(self, stream_url: str, params: Mapping[str, str], action_url: str | None = None) -> str:
        return self._twiml.connect_twiml(stream_url, params, action_url)

    def transfer(self, target: str) -> str:
        return self._twiml.transfer_twiml(target)

    def hangup(self) -> str:
        return self._twiml.hangup_twiml()

    def refusal(self, message: str | None = None) -> str:
        return self._twiml.refusal_twiml(message) if message else self._twiml.refusal_twiml()


def _algorithm(settings: str | None) -> str | None:
    """The SharedKey algorithm a ``Signature-Settings`` header names (twilio >= 9.13), else None."""
    try:
        from twilio.request_validator import get_signature_algorithm
    except ImportError:  # pragma: no cover - older twilio: auth-token HMAC-SHA1 only
        return None
    return get_signature_algorithm(settings)
