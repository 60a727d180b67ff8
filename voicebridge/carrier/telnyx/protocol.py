"""Telnyx media streaming codec (sans-IO): JSON text in, the bridge's typed events out, and back.

The WebSocket Telnyx opens for a bidirectional stream (``bidirectionalMode="rtp"``,
``bidirectionalCodec="PCMU"``; docs/carriers.md has the wire notes and their sources):

* inbound: ``connected``, ``start`` (``stream_id`` at the top; ``call_control_id``,
  ``custom_parameters``, ``media_format`` inside ``start``), ``media`` (``media.payload``:
  base64 RTP payload, no header), ``mark`` (the echo of ours), ``dtmf``, ``stop``, ``error``;
* outbound: ``{"event":"media","media":{"payload":…}}``, ``{"event":"mark","mark":{"name":…}}``
  and ``{"event":"clear"}``.

Parsing is strict and never raises: anything malformed, an unknown event, a stream in another
format than 8 kHz mono PCMU, and Telnyx's own ``error`` frames become a ``ProtocolError`` the
session counts and logs once per kind.
"""
from __future__ import annotations

import base64
import json
import re
from typing import Any, Callable

from ..seam import (
    CarrierEvent,
    Connected,
    Media,
    Start,
    Stop,
    dispatch,
    dtmf_event,
    mark_event,
    media_event,
    safe_id,
)
from ...errors import ProtocolError

SIDE = "telnyx"
ID = re.compile(r"[A-Za-z0-9:_\-]{1,128}\Z")
"""Telnyx's ids: a UUID (``stream_id``), ``v3:`` and base64url (``call_control_id``)."""
MAX_PARAMETERS = 32
MAX_PARAMETER_CHARS = 500  # as Twilio's: bounds what a peer that is not Telnyx can make us keep
MEDIA_FORMAT = {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}
"""The only format the bridge carries (both ways it is the model's ``audio/pcmu``)."""


def _error(kind: str, detail: str) -> ProtocolError:
    return ProtocolError(SIDE, kind, detail)


def _stream_id(msg: dict[str, Any]) -> str:
    value = msg.get("stream_id")
    return value if isinstance(value, str) else ""


def _parse_connected(msg: dict[str, Any]) -> CarrierEvent:
    return Connected(protocol="telnyx", version=str(msg.get("version") or ""))


def _parse_start(msg: dict[str, Any]) -> CarrierEvent:
    start = msg.get("start")
    if not isinstance(start, dict):
        return _error("missing_field", "start message without a 'start' object")
    stream_id, call_id = msg.get("stream_id"), start.get("call_control_id")
    if not isinstance(stream_id, str) or not isinstance(call_id, str):
        return _error("missing_field", "start message without stream_id or start.call_control_id")
    if not ID.match(stream_id) or not ID.match(call_id):
        return _error("bad_id", f"start message with malformed ids ({safe_id(stream_id)}, {safe_id(call_id)})")
    media_format = start.get("media_format")
    if media_format is not None and not _carried(media_format):
        return _error("unsupported_media_format", f"stream format {str(media_format)[:80]} is not 8 kHz mono PCMU "
                      "(answer with <Stream codec=\"PCMU\" bidirectionalCodec=\"PCMU\">)")
    params = start.get("custom_parameters")
    return Start(
        stream_sid=stream_id,
        call_sid=call_id,
        account_sid=str(start.get("user_id") or ""),
        tracks=("inbound",),
        custom_parameters=_bounded_parameters(params if isinstance(params, dict) else {}),
        media_format=dict(media_format) if isinstance(media_format, dict) else dict(MEDIA_FORMAT),
    )


def _carried(media_format: Any) -> bool:
    """Whether the stream's announced format is ours (fields left out are taken as the default)."""
    if not isinstance(media_format, dict):
        return False
    encoding = media_format.get("encoding", "PCMU")
    rate, channels = media_format.get("sample_rate", 8000), media_format.get("channels", 1)
    return (isinstance(encoding, str) and encoding.upper() == "PCMU"
            and type(rate) is int and rate == 8000 and type(channels) is int and channels == 1)


def _bounded_parameters(params: dict[Any, Any]) -> dict[str, str]:
    """String parameters only, within Twilio-like bounds (Telnyx publishes none)."""
    out: dict[str, str] = {}
    for name, value in params.items():
        if not isinstance(value, (str, int, float, bool)) or isinstance(value, float) and value != value:
            continue
        name, value = str(name), str(value)
        if len(name) + len(value) < MAX_PARAMETER_CHARS and len(out) < MAX_PARAMETERS:
            out[name] = value
    return out


def _parse_media(msg: dict[str, Any]) -> CarrierEvent:
    event = media_event(SIDE, _stream_id(msg), msg.get("media"))
    if isinstance(event, Media) and event.track != "inbound":
        # A stream started with track="both_tracks" also carries what the caller hears: our own
        # audio must never reach the model as the caller's.
        return _error("unexpected_track", f"media of the {event.track[:20]!r} track (the stream must be inbound_track)")
    return event


def _parse_mark(msg: dict[str, Any]) -> CarrierEvent:
    return mark_event(SIDE, _stream_id(msg), msg.get("mark"))


def _parse_dtmf(msg: dict[str, Any]) -> CarrierEvent:
    return dtmf_event(SIDE, _stream_id(msg), msg.get("dtmf"))


def _parse_stop(msg: dict[str, Any]) -> CarrierEvent:
    stop = msg.get("stop")
    call_id = stop.get("call_control_id") if isinstance(stop, dict) else None
    return Stop(stream_sid=_stream_id(msg), call_sid=call_id if isinstance(call_id, str) else "")


def _parse_error(msg: dict[str, Any]) -> CarrierEvent:
    """Telnyx reporting a fault on the stream (e.g. a media message it could not play)."""
    payload = msg.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    code, title = payload.get("code"), payload.get("title")
    return _error("carrier_error", f"Telnyx reported error {str(code)[:12]} {str(title)[:60]!r}")


_PARSERS: dict[str, Callable[[dict[str, Any]], CarrierEvent]] = {
    "connected": _parse_connected,
    "start": _parse_start,
    "media": _parse_media,
    "mark": _parse_mark,
    "dtmf": _parse_dtmf,
    "stop": _parse_stop,
    "error": _parse_error,
}


def parse(message: "str | bytes | None") -> CarrierEvent:
    """Parse one WebSocket message from Telnyx; anything wrong becomes a ProtocolError."""
    return dispatch(SIDE, message, _PARSERS)


class Outbound:
    """The three messages the bridge sends on one Telnyx stream.

    Telnyx's outbound messages carry no stream id (one socket is one stream); ``stream_sid``
    is kept for the interface and the logs.
    """

    _MEDIA_HEAD = '{"event":"media","media":{"payload":"'
    _MEDIA_TAIL = '"}}'
    _CLEAR = '{"event":"clear"}'

    def __init__(self, stream_sid: str) -> None:
        self.stream_sid = stream_sid

    def media(self, frame: bytes) -> str:
        return self._MEDIA_HEAD + base64.b64encode(frame).decode("ascii") + self._MEDIA_TAIL

    def mark(self, name: str) -> str:
        return '{"event":"mark","mark":{"name":' + json.dumps(name) + "}}"

    def clear(self) -> str:
        return self._CLEAR
