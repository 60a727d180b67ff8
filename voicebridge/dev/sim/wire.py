"""The simulated caller's wire format: what each carrier sends and accepts (sans-IO).

The caller behaves the same on every carrier (20 ms frames, marks echoed once played, a clear
drops the buffer and echoes the pending marks: Twilio and Telnyx document the same meaning);
only the messages differ. A ``Wire`` builds the carrier's messages and checks the bridge's
messages as strictly as the carrier does. Telnyx's formats: docs/carriers.md.
"""
from __future__ import annotations

import base64
import json
import uuid
from typing import Any, Optional

import websocket

def _is_base64(value: Any) -> bool:
    try:
        base64.b64decode(value, validate=True)
        return isinstance(value, str)
    except (ValueError, TypeError):
        return False


class Wire:
    """One carrier's messages, for one call (its ids are made here)."""

    name = ""
    expected: dict[str, tuple[set[str], Optional[set[str]]]] = {}
    """Outbound event -> (its top-level fields, its inner object's fields or None)."""

    def __init__(self, call_sid: "str | None" = None, account_sid: "str | None" = None) -> None:
        self.stream_sid, self.call_sid, self.account_sid = self._ids(call_sid, account_sid)

    def _ids(self, call_sid: "str | None", account_sid: "str | None") -> "tuple[str, str, str]":
        raise NotImplementedError

    def connected(self) -> dict: ...
    def start(self, params: dict[str, str]) -> dict: ...
    def dtmf(self, key: str) -> dict: ...
    def stop(self) -> dict: ...
    def numbered(self, seq: int, msg: dict) -> dict: ...

    def media(self, k: int, frame_ms: int, payload: bytes) -> dict:
        """The ``k``-th 20 ms frame (the same inner fields in both carriers' protocols)."""
        return {"event": "media", "media": {"track": "inbound", "chunk": str(k + 1), "timestamp": str(k * frame_ms),
                                            "payload": base64.b64encode(payload).decode("ascii")}}

    def mark(self, name: str) -> dict:
        """The echo of a mark whose audio has played (or was cleared)."""
        return {"event": "mark", "mark": {"name": name}}

    def check(self, opcode: int, data: "bytes | str") -> "tuple[dict, Optional[str]]":
        """Validate a bridge->carrier message as the carrier does; (message, problem or None)."""
        if opcode != websocket.ABNF.OPCODE_TEXT:
            return {}, self._problem("binary frame", binary=True)
        try:
            msg = json.loads(data)
        except ValueError:
            return {}, self._problem("not JSON")
        if not isinstance(msg, dict) or msg.get("event") not in self.expected:
            return {}, self._problem(f"unknown event {msg.get('event') if isinstance(msg, dict) else None!r}")
        top, inner = self.expected[msg["event"]]
        if set(msg) != top:
            return {}, self._problem(f"{msg['event']} fields {sorted(msg)} != {sorted(top)}")
        problem = self._check_ids(msg)
        if problem:
            return {}, problem
        if inner is not None:
            body = msg[msg["event"]]
            if not isinstance(body, dict) or set(body) != inner:
                return {}, self._problem(f"{msg['event']} body fields "
                                         f"{sorted(body) if isinstance(body, dict) else body!r}")
            if msg["event"] == "media" and not _is_base64(body["payload"]):
                return {}, self._problem("media payload is not base64")
        return msg, None

    def _check_ids(self, msg: dict) -> Optional[str]:
        return None

    def _problem(self, what: str, binary: bool = False) -> str:
        return what


class TwilioWire(Wire):
    """Twilio Media Streams (protocol.md B2/B3): warnings 31950 (binary) and 31951 (invalid)."""

    name = "twilio"
    expected = {
        "media": ({"event", "streamSid", "media"}, {"payload"}),
        "mark": ({"event", "streamSid", "mark"}, {"name"}),
        "clear": ({"event", "streamSid"}, None),
    }

    def _ids(self, call_sid: "str | None", account_sid: "str | None") -> "tuple[str, str, str]":
        return "MZ" + uuid.uuid4().hex, call_sid or "CA" + uuid.uuid4().hex, account_sid or "AC" + uuid.uuid4().hex

    def connected(self) -> dict:
        return {"event": "connected", "protocol": "Call", "version": "1.0.0"}

    def start(self, params: dict[str, str]) -> dict:
        return {"event": "start", "start": {
            "streamSid": self.stream_sid, "accountSid": self.account_sid, "callSid": self.call_sid,
            "tracks": ["inbound"], "customParameters": params,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}

    def dtmf(self, key: str) -> dict:
        return {"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": key}}

    def stop(self) -> dict:
        return {"event": "stop", "stop": {"accountSid": self.account_sid, "callSid": self.call_sid}}

    def numbered(self, seq: int, msg: dict) -> dict:
        return {"event": msg["event"], "sequenceNumber": str(seq), "streamSid": self.stream_sid,
                **{k: v for k, v in msg.items() if k != "event"}}

    def _check_ids(self, msg: dict) -> Optional[str]:
        return None if msg["streamSid"] == self.stream_sid else f"31951 wrong streamSid {msg['streamSid']!r}"

    def _problem(self, what: str, binary: bool = False) -> str:
        return f"{'31950' if binary else '31951'} {what}"


class TelnyxWire(Wire):
    """Telnyx media streaming, bidirectional RTP/PCMU: outbound frames carry no stream id."""

    name = "telnyx"
    expected = {
        "media": ({"event", "media"}, {"payload"}),
        "mark": ({"event", "mark"}, {"name"}),
        "clear": ({"event"}, None),
    }

    def _ids(self, call_sid: "str | None", account_sid: "str | None") -> "tuple[str, str, str]":
        control = "v3:" + base64.urlsafe_b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes[:10]).decode().rstrip("=")
        return str(uuid.uuid4()), call_sid or control, account_sid or str(uuid.uuid4())

    def connected(self) -> dict:
        return {"event": "connected", "version": "1.0.0"}

    def start(self, params: dict[str, str]) -> dict:
        return {"event": "start", "start": {
            "user_id": self.account_sid, "call_control_id": self.call_sid, "call_session_id": str(uuid.uuid4()),
            "from": "+15005550006", "to": "+15005550001", "tags": [], "client_state": None,
            "custom_parameters": params, "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}}}

    def dtmf(self, key: str) -> dict:
        return {"event": "dtmf", "dtmf": {"digit": key}}

    def stop(self) -> dict:
        return {"event": "stop", "stop": {"user_id": self.account_sid, "call_control_id": self.call_sid}}

    def numbered(self, seq: int, msg: dict) -> dict:
        return {"event": msg["event"], "sequence_number": str(seq), "stream_id": self.stream_sid,
                **{k: v for k, v in msg.items() if k != "event"}}

    def _problem(self, what: str, binary: bool = False) -> str:
        return f"telnyx: {what}"


WIRES = {"twilio": TwilioWire, "telnyx": TelnyxWire}
CARRIERS = tuple(WIRES)
