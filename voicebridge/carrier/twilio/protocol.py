"""Twilio Media Streams codec (sans-IO): JSON text in, typed events out, and back.

Inbound: ``connected``, ``start``, ``media``, ``mark``, ``dtmf``, ``stop``. Outbound: only
``media``, ``mark`` and ``clear``, with exactly the documented fields, because Twilio
rejects unexpected fields (warning 31951).
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Union

from ..seam import Connected, Dtmf, Mark, Media, Start, Stop  # noqa: F401 - the bridge's events, re-exported
from ..seam import dispatch, dtmf_event, mark_event, media_event
from ...errors import ProtocolError

SIDE = "twilio"
SID = re.compile(r"[A-Z]{2}[0-9a-f]{32}\Z")
"""Twilio's SID format: a two-letter prefix (MZ stream, CA call, AC account) and 32 hex digits."""
SAFE_CHARS = 40
MAX_PARAMETERS = 32
MAX_PARAMETER_CHARS = 500  # Twilio: each <Parameter>'s name + value stays under 500 characters


TwilioEvent = Union[Connected, Start, Media, Mark, Dtmf, Stop, ProtocolError]


def _error(kind: str, detail: str) -> ProtocolError:
    return ProtocolError(SIDE, kind, detail)


def is_sid(value: Any, prefix: str) -> bool:
    return isinstance(value, str) and value.startswith(prefix) and SID.match(value) is not None


def safe_sid(value: Any) -> str:
    """A peer-given SID fit for a log line: itself if well-formed, else a short, quoted prefix."""
    if isinstance(value, str) and SID.match(value):
        return value
    return repr(str(value)[:SAFE_CHARS])


def _parse_start(msg: dict[str, Any]) -> TwilioEvent:
    start = msg.get("start")
    if not isinstance(start, dict):
        return _error("missing_field", "start message without a 'start' object")
    sid = start.get("streamSid") or msg.get("streamSid")
    if not isinstance(sid, str) or not sid:
        return _error("missing_field", "start message without streamSid")
    if not is_sid(sid, "MZ") or not is_sid(start.get("callSid"), "CA"):
        return _error("bad_sid", "start message whose streamSid/callSid are not Twilio SIDs "
                      f"({safe_sid(sid)}, {safe_sid(start.get('callSid'))})")
    params = start.get("customParameters") or {}
    if not isinstance(params, dict):
        params = {}
    tracks = start.get("tracks")
    media_format = start.get("mediaFormat")
    return Start(
        stream_sid=sid,
        call_sid=str(start.get("callSid") or ""),
        account_sid=str(start.get("accountSid") or ""),
        tracks=tuple(str(t) for t in tracks) if isinstance(tracks, list) else (),
        custom_parameters=_bounded_parameters(params),
        media_format=dict(media_format) if isinstance(media_format, dict) else {},
    )


def _bounded_parameters(params: dict[Any, Any]) -> dict[str, str]:
    """``customParameters`` within Twilio's own limits (a peer that is not Twilio may send more)."""
    out: dict[str, str] = {}
    for name, value in params.items():
        name, value = str(name), str(value)
        if len(name) + len(value) < MAX_PARAMETER_CHARS and len(out) < MAX_PARAMETERS:
            out[name] = value
    return out


def _parse_media(msg: dict[str, Any]) -> TwilioEvent:
    return media_event(SIDE, str(msg.get("streamSid") or ""), msg.get("media"))


def _parse_mark(msg: dict[str, Any]) -> TwilioEvent:
    return mark_event(SIDE, str(msg.get("streamSid") or ""), msg.get("mark"))


def _parse_dtmf(msg: dict[str, Any]) -> TwilioEvent:
    return dtmf_event(SIDE, str(msg.get("streamSid") or ""), msg.get("dtmf"))


def _parse_stop(msg: dict[str, Any]) -> TwilioEvent:
    stop = msg.get("stop") if isinstance(msg.get("stop"), dict) else {}
    return Stop(stream_sid=str(msg.get("streamSid") or ""), call_sid=str(stop.get("callSid") or ""))


def _parse_connected(msg: dict[str, Any]) -> TwilioEvent:
    return Connected(protocol=str(msg.get("protocol") or ""), version=str(msg.get("version") or ""))


_PARSERS = {
    "connected": _parse_connected,
    "start": _parse_start,
    "media": _parse_media,
    "mark": _parse_mark,
    "dtmf": _parse_dtmf,
    "stop": _parse_stop,
}


_MEDIA_BODY = (r'"media":\{"track":"(?P<track>inbound|outbound)","chunk":"\d{1,10}","timestamp":"(?P<ts>\d{1,12})",'
               r'"payload":"(?P<payload>[A-Za-z0-9+/]*={0,2})"\}')
_MEDIA_FAST = re.compile(
    r'\{"event":"media","sequenceNumber":"\d{1,10}",(?:"streamSid":"(?P<sid1>[A-Za-z0-9]{1,64})",' + _MEDIA_BODY
    + r'|' + _MEDIA_BODY.replace("?P<track>", "?P<track2>").replace("?P<ts>", "?P<ts2>").replace("?P<payload>", "?P<payload2>")
    + r',"streamSid":"(?P<sid2>[A-Za-z0-9]{1,64})")\}')
"""Twilio's media message exactly as it sends it (compact, in either key order), with no escapes
possible in any field: for these the regex's fields are what ``json.loads`` would give, at a
fraction of the cost (50 of these a second per call). Anything else takes the general path."""


def _fast_media(message: str) -> "Media | None":
    match = _MEDIA_FAST.fullmatch(message)
    if match is None:
        return None
    fields = match.groupdict()
    b64 = fields["payload"] if fields["payload"] is not None else fields["payload2"]
    try:
        payload = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return None  # the general path reports it
    return Media(stream_sid=fields["sid1"] or fields["sid2"], payload=payload,
                 timestamp_ms=int(fields["ts"] or fields["ts2"]), track=fields["track"] or fields["track2"])


def parse(message: "str | bytes | None") -> TwilioEvent:
    """Parse one WebSocket message from Twilio; anything wrong becomes a ProtocolError."""
    if isinstance(message, str) and message.startswith('{"event":"media",'):
        media = _fast_media(message)
        if media is not None:
            return media
    return dispatch(SIDE, message, _PARSERS)


class Outbound:
    """Builds the three outbound messages for one stream.

    The media envelope is pre-built once per stream so the 20 ms hot path is one base64
    encode and one string concatenation.
    """

    def __init__(self, stream_sid: str) -> None:
        self.stream_sid = stream_sid
        sid = json.dumps(stream_sid)
        self._media_head = '{"event":"media","streamSid":' + sid + ',"media":{"payload":"'
        self._media_tail = '"}}'
        self._mark_head = '{"event":"mark","streamSid":' + sid + ',"mark":{"name":'
        self._clear = '{"event":"clear","streamSid":' + sid + "}"

    def media(self, frame: bytes) -> str:
        return self._media_head + base64.b64encode(frame).decode("ascii") + self._media_tail

    def mark(self, name: str) -> str:
        return self._mark_head + json.dumps(name) + "}}"

    def clear(self) -> str:
        return self._clear
