"""The TwiML the bridge answers Twilio's webhooks with (built with the twilio package).

``/voice`` answers ``<Connect action=…><Stream url=…>`` with the call's context as
``<Parameter>``s. ``<Connect>`` blocks until the bridge closes the media stream; Twilio then
requests the ``action`` URL, where the bridge answers ``<Dial>`` if the agent transferred the
call and ``<Hangup/>`` otherwise -- a transfer needs no REST credentials.
"""
from __future__ import annotations

from typing import Mapping

from ...extras import MissingExtra, install_hint

try:
    from twilio.twiml.voice_response import Connect, Dial, VoiceResponse
except ModuleNotFoundError as exc:  # the Flask integration's first twilio import: name the fix
    raise MissingExtra(f"voicebridge's Flask integration (TwiML, X-Twilio-Signature) needs the {exc.name!r} "
                       f"package: {install_hint('twilio')}") from None

CONTEXT_FIELDS = ("CallSid", "From", "To")  # webhook form fields forwarded as <Parameter>s
MAX_PARAMETER_CHARS = 500  # Twilio: name + value of each <Parameter> must stay under this
MAX_PARAMETERS = 20
REFUSAL_MESSAGE = "Sorry, all of our lines are busy right now. Please call again in a few minutes."


def stream_parameters(form: Mapping[str, str], args: Mapping[str, str]) -> dict[str, str]:
    """Per-call context for ``start.customParameters``: webhook query args, then From/To/CallSid.

    A voice URL like ``/voice?tenant=acme`` thus reaches ``config_for_call``. Oversized or
    excess parameters are dropped (Twilio limits each to 500 characters).
    """
    params: dict[str, str] = {}
    candidates = [(k, v) for k, v in args.items() if k != "bodySHA256"]
    candidates += [(k, form[k]) for k in CONTEXT_FIELDS if form.get(k)]
    for name, value in candidates:
        if len(name) + len(value) < MAX_PARAMETER_CHARS and len(params) < MAX_PARAMETERS:
            params[name] = value
    return params


def connect_twiml(stream_url: str, params: Mapping[str, str], action_url: str | None = None) -> str:
    """``<Connect action=…><Stream url=…>`` with one ``<Parameter>`` per item (bidirectional stream)."""
    response = VoiceResponse()
    connect = Connect(action=action_url) if action_url else Connect()
    stream = connect.stream(url=stream_url)
    for name, value in params.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def transfer_twiml(target: str) -> str:
    """``<Dial>`` to an E.164 number or a SIP URI."""
    response = VoiceResponse()
    dial = Dial()
    if target.startswith(("sip:", "sips:")):
        dial.sip(target)
    else:
        dial.number(target)
    response.append(dial)
    return str(response)


def hangup_twiml() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


def refusal_twiml(message: str = REFUSAL_MESSAGE) -> str:
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return str(response)
