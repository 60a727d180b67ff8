"""Placing a call as Twilio (or Telnyx) does: the signed voice webhook first, then the media stream.

A bridge with a Twilio auth token refuses anything unsigned (403), and admits a stream only with
the single-use token its webhook issued for that call. So, like Twilio: POST the voice webhook
(``CallSid``, ``AccountSid``, ``From``, ``To``... signed with ``X-Twilio-Signature`` over the URL
and the form), read the TwiML's ``<Connect><Stream url>`` and its ``<Parameter>``s (the stream
token among them), and open that URL with its own signature (over the URL alone). The pure parts
(URLs, form, signatures, TwiML) are functions; ``place`` does the one HTTP request.

Once the bridge has closed the stream, Twilio (and Telnyx) go on with the call: they request the
``<Connect action>`` URL, signed like the webhook, and carry out the markup it answers (a transfer's
``<Dial>``, a ``<Hangup/>``, an apology's ``<Say>``). ``follow_action`` does that request and reads
the answer as a :class:`NextVerbs`, so a simulated call ends where a real one would: a bridge
whose after-stream URL fails or answers nothing usable shows it as a problem.
"""
from __future__ import annotations

import base64
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Callable, Mapping

SIGNATURE_HEADER = "X-Twilio-Signature"
MAX_TWIML_BYTES = 64 * 1024


@dataclass(frozen=True)
class Placement:
    """What the webhook told the caller: where the stream goes and what it must carry, and where
    the carrier goes once the bridge has closed it (``<Connect action>``, None without one)."""

    stream_url: str
    custom_parameters: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)
    action_url: "str | None" = None
    action_method: str = "POST"


@dataclass(frozen=True)
class NextVerbs:
    """What the ``<Connect action>`` answer tells the carrier to do next, in order: the verbs'
    names (``("Dial",)``, ``("Say", "Hangup")``; empty: the call simply ends), the ``<Dial>``'s
    destination (a number or SIP URI) and what a ``<Say>`` says."""

    verbs: tuple[str, ...]
    dial: "str | None" = None
    said: "str | None" = None

    def describe(self) -> str:
        """One line for a report: what a caller on a real line would get."""
        if self.dial is not None:
            return f"the carrier dials {self.dial} (a transfer)"
        if not self.verbs or self.verbs == ("Hangup",):
            return "the carrier hangs up"
        said = f" ({self.said[:80]!r})" if self.said else ""
        return "the carrier runs " + ", ".join(f"<{v}>" for v in self.verbs) + said


def webhook_url_for(media_url: str) -> str:
    """The voice webhook beside a media URL: ``wss://host/x/media`` -> ``https://host/x/voice``."""
    parts = urllib.parse.urlsplit(media_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme.lower(), parts.scheme)
    path = parts.path.rstrip("/")
    if path.endswith("/media"):
        path = path[:-len("/media")]
    elif path.endswith("/voice"):  # (the webhook given for the media URL: a new user's slip)
        path = path[:-len("/voice")]
    return urllib.parse.urlunsplit((scheme, parts.netloc, path + "/voice", "", ""))


def webhook_form(call_sid: str, account_sid: str, caller: str = "+15005550006", called: str = "+15005550001"
                 ) -> dict[str, str]:
    """The fields of Twilio's voice webhook a bridge reads (an inbound call, ringing)."""
    return {"CallSid": call_sid, "AccountSid": account_sid, "From": caller, "To": called, "Caller": caller,
            "Called": called, "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}


def signature(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """``X-Twilio-Signature``: HMAC-SHA1 of the URL and the sorted form, as Twilio computes it."""
    from twilio.request_validator import RequestValidator

    return str(RequestValidator(auth_token).compute_signature(url, dict(params or {})))


def parse_connect(twiml: str) -> tuple[str, dict[str, str]]:
    """``<Connect><Stream url>`` and its ``<Parameter>``s; ValueError for anything else (a refusal)."""
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError as exc:
        raise ValueError(f"the webhook did not answer TwiML: {exc}") from None
    stream = root.find("./Connect/Stream")
    if stream is None or not stream.get("url"):
        said = " ".join(e.text or "" for e in root.iter("Say")).strip()
        raise ValueError("the webhook answered no <Connect><Stream>" + (f" (it said: {said[:200]!r})" if said else ""))
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter") if p.get("name")}
    return str(stream.get("url")), params


def connect_action(markup: str) -> "tuple[str | None, str]":
    """``<Connect action method>``: the URL the carrier requests once the stream has ended (None
    without one: the carrier runs the verbs after ``</Connect>``, here none) and its method."""
    connect = ET.fromstring(markup).find("./Connect")
    if connect is None:
        return None, "POST"
    return connect.get("action") or None, (connect.get("method") or "POST").upper()


def parse_next(markup: str) -> NextVerbs:
    """The verbs of an after-stream answer; ValueError when it is not TwiML (the carrier would
    play its "application error" message and hang up)."""
    try:
        root = ET.fromstring(markup)
    except ET.ParseError as exc:
        raise ValueError(f"the <Connect action> URL did not answer TwiML: {exc}") from None
    if root.tag != "Response":
        raise ValueError(f"the <Connect action> URL answered <{root.tag}>, not <Response>")
    verbs = tuple(child.tag for child in root)
    dial = said = None
    for child in root:
        if child.tag == "Dial" and dial is None:
            inner = child.find("Number") if child.find("Number") is not None else child.find("Sip")
            dial = ((inner.text if inner is not None else child.text) or "").strip() or None
        elif child.tag == "Say" and said is None:
            said = (child.text or "").strip() or None
    if "Dial" in verbs and dial is None:
        raise ValueError("the <Connect action> URL answered a <Dial> with no destination")
    return NextVerbs(verbs, dial, said)


Post = Callable[[str, bytes, Mapping[str, str], float], bytes]
Get = Callable[[str, Mapping[str, str], float], bytes]


def _post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> bytes:
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - the operator's URL
            return resp.read(MAX_TWIML_BYTES)
    except urllib.error.HTTPError as exc:
        hint = " (wrong auth token, or the bridge's PUBLIC_URL differs from this URL)" if exc.code == 403 else ""
        raise ValueError(f"the webhook {url} answered HTTP {exc.code}{hint}") from None
    except urllib.error.URLError as exc:
        raise ValueError(f"the webhook {url} could not be reached: {exc.reason} (is the app running there?)") from None


def _get(url: str, headers: Mapping[str, str], timeout: float) -> bytes:
    request = urllib.request.Request(url, headers=dict(headers), method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - the operator's URL
            return resp.read(MAX_TWIML_BYTES)
    except urllib.error.HTTPError as exc:
        raise ValueError(f"the webhook {urllib.parse.urlsplit(url).path} answered HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise ValueError(f"the webhook {url} could not be reached: {exc.reason}") from None


def place(media_url: str, auth_token: str, call_sid: str, account_sid: str, webhook_url: str | None = None,
          timeout: float = 10.0, post: Post = _post) -> Placement:
    """POST the signed voice webhook; the signed stream URL and parameters to open, as Twilio would."""
    url = webhook_url or webhook_url_for(media_url)
    form = webhook_form(call_sid, account_sid)
    headers = {SIGNATURE_HEADER: signature(auth_token, url, form),
               "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1"}
    twiml = post(url, urllib.parse.urlencode(form).encode(), headers, timeout).decode("utf-8", "replace")
    stream_url, params = parse_connect(twiml)
    action, method = connect_action(twiml)
    return Placement(stream_url, params, {SIGNATURE_HEADER: signature(auth_token, stream_url)}, action, method)


def after_stream_form(call_sid: str, account_sid: str) -> dict[str, str]:
    """The fields of the carrier's request to ``<Connect action>``: the call, still up."""
    return dict(webhook_form(call_sid, account_sid), CallStatus="in-progress")


def follow_action(placement: Placement, auth_token: str, call_sid: str, account_sid: str,
                  timeout: float = 10.0, post: Post = _post, get: "Get | None" = None,
                  form: "Mapping[str, str] | None" = None) -> "NextVerbs | None":
    """Once the bridge closed the stream: request ``<Connect action>`` signed as Twilio does
    (POST: over the URL and the form; GET: over the URL with the form as its query) and read what
    it answers (``form``: the request's fields, else an inbound call's). None when the markup named
    no action. ValueError for an HTTP error or an answer that is no TwiML: what a real caller
    would hear as Twilio's "application error"."""
    if placement.action_url is None:
        return None
    form = dict(form) if form is not None else after_stream_form(call_sid, account_sid)
    if placement.action_method == "GET":
        sep = "&" if urllib.parse.urlsplit(placement.action_url).query else "?"
        url = placement.action_url + sep + urllib.parse.urlencode(form)
        markup = (get or _get)(url, {SIGNATURE_HEADER: signature(auth_token, url), "User-Agent": "TwilioProxy/1.1"},
                               timeout)
    else:
        headers = {SIGNATURE_HEADER: signature(auth_token, placement.action_url, form),
                   "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1"}
        markup = post(placement.action_url, urllib.parse.urlencode(form).encode(), headers, timeout)
    return parse_next(markup.decode("utf-8", "replace"))


# -- Telnyx ------------------------------------------------------------------------------------
TELNYX_SIGNATURE_HEADER = "telnyx-signature-ed25519"
TELNYX_TIMESTAMP_HEADER = "telnyx-timestamp"


def telnyx_signature(private_key: str, body: bytes, timestamp: int) -> str:
    """``telnyx-signature-ed25519``: Ed25519 over ``timestamp|body`` (docs/carriers.md), with a test
    key's private half (base64 of its 32 raw bytes): the bridge is given the public half."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(private_key))
    return base64.b64encode(key.sign(str(timestamp).encode("ascii") + b"|" + body)).decode("ascii")


def check_bidirectional(texml: str) -> None:
    """ValueError unless the stream is one Telnyx would play our frames on: bidirectional RTP, PCMU
    (``bidirectionalMode`` defaults to mp3, where RTP payloads would not play)."""
    stream = ET.fromstring(texml).find("./Connect/Stream")
    if stream is None:
        return  # parse_connect says what is wrong
    mode, codec = stream.get("bidirectionalMode", "mp3"), stream.get("bidirectionalCodec", "PCMU")
    if (mode, codec) != ("rtp", "PCMU") or stream.get("codec", "default") not in ("PCMU", "default"):
        raise ValueError(f"the TeXML stream is not bidirectional RTP PCMU (bidirectionalMode={mode!r}, "
                         f"bidirectionalCodec={codec!r}, codec={stream.get('codec')!r})")


def place_telnyx(media_url: str, private_key: str, call_id: str, account_id: str, now: float,
                 webhook_url: str | None = None, timeout: float = 10.0, post: Post = _post) -> Placement:
    """POST the Ed25519-signed TeXML voice webhook; the stream URL and parameters to open, as Telnyx
    would (the upgrade itself is not signed)."""
    url = webhook_url or webhook_url_for(media_url)
    body = urllib.parse.urlencode(webhook_form(call_id, account_id)).encode()
    timestamp = int(now)
    headers = {TELNYX_SIGNATURE_HEADER: telnyx_signature(private_key, body, timestamp),
               TELNYX_TIMESTAMP_HEADER: str(timestamp), "Content-Type": "application/x-www-form-urlencoded"}
    texml = post(url, body, headers, timeout).decode("utf-8", "replace")
    stream_url, params = parse_connect(texml)
    check_bidirectional(texml)
    action, method = connect_action(texml)
    return Placement(stream_url, params, {}, action, method)


def follow_action_telnyx(placement: Placement, private_key: str, call_id: str, account_id: str, now: float,
                         timeout: float = 10.0, post: Post = _post) -> "NextVerbs | None":
    """Telnyx's request to ``<Connect action>`` once the bridge closed the stream, Ed25519-signed
    like its webhooks (TeXML's action is requested with POST); what it answers, as ``follow_action``."""
    if placement.action_url is None:
        return None
    body = urllib.parse.urlencode(after_stream_form(call_id, account_id)).encode()
    timestamp = int(now)
    headers = {TELNYX_SIGNATURE_HEADER: telnyx_signature(private_key, body, timestamp),
               TELNYX_TIMESTAMP_HEADER: str(timestamp), "Content-Type": "application/x-www-form-urlencoded"}
    return parse_next(post(placement.action_url, body, headers, timeout).decode("utf-8", "replace"))
