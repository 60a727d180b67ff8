"""The HTTP half of a ``VoiceBridge``: its request guard and views (the voice webhooks, the
after-stream requests, ``/healthz``, ``/metrics``). The bridge keeps the state; these answer from it."""
from __future__ import annotations

import enum
import io
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Response, jsonify, request, url_for

from ..carrier.seam import CarrierWebhooks, WebhookRequest, safe_id
from ..carrier.streamtoken import PARAMETER as TOKEN_PARAMETER
from .admission import REFUSED
from .filestate import StateDirError
from .sharedstate import board_key
from ..carrier.twilio import twiml  # noqa: F401 - needs twilio: the first import that names a missing twilio's fix
from twilio.request_validator import RequestValidator  # noqa: I001 - after .twiml, which names a missing twilio's fix

try:  # twilio >= 9.13 also signs with a SharedKey (HMAC-SHA256) when this header says so
    from twilio.request_validator import SIGNATURE_SETTINGS_HEADER, get_signature_algorithm
except ImportError:  # pragma: no cover - older twilio: auth-token HMAC-SHA1 only
    SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"

    def get_signature_algorithm(signature_settings_header: str | None) -> str | None:  # type: ignore[misc]
        return None

if TYPE_CHECKING:
    from .flaskext import VoiceBridge

log = logging.getLogger("voicebridge.serving.flaskext")  # the bridge's log lines, wherever they are written

SIGNATURE_HEADER = "X-Twilio-Signature"


MAX_WEBHOOK_BYTES = 64 * 1024  # Twilio's voice webhook form is ~1-2 KB
MAX_LOGGED_URL = 200  # a refused request's URL is the client's text: bounded in the log line
SCHEMES = {"http": ("http", "ws"), "https": ("https", "wss"), "ws": ("http", "ws"), "wss": ("https", "wss")}
TELNYX_ENDPOINTS = {"telnyx_voice": False, "telnyx_after": False, "telnyx_media": True}  # -> is a WebSocket


class BridgeState(enum.Enum):
    """What ``/healthz`` says: taking calls, or draining (no new calls; live ones run on)."""

    SERVING = "ok"
    DRAINING = "draining"
    STATE_FAILING = "state directory failing"  # it could not be read or recreated: calls are refused


# ---------------------------------------------------------------------------- public URLs
def forwarded(name: str) -> str | None:
    """First value of a proxy header (proxy chains append: ``client, proxy1``)."""
    value = request.headers.get(name, "")
    first = value.split(",")[0].strip()
    return first or None


def public_base(public_url: str | None, websocket: bool) -> str:
    """``scheme://host[/prefix]`` as Twilio sees this app: configured, else from the request.

    Behind a TLS-terminating proxy the app sees ``http`` and an internal host; the proxy's
    ``X-Forwarded-Proto``/``X-Forwarded-Host`` (or a configured ``public_url``) restore what
    Twilio actually requested, which is what it signed.
    """
    if public_url:
        parts = urlsplit(public_url)
        scheme, netloc, prefix = parts.scheme.lower(), parts.netloc, parts.path.rstrip("/")
    else:
        scheme = (forwarded("X-Forwarded-Proto") or request.scheme).lower()
        netloc = forwarded("X-Forwarded-Host") or request.host
        prefix = ""
    http_scheme, ws_scheme = SCHEMES.get(scheme, ("https", "wss"))
    return f"{ws_scheme if websocket else http_scheme}://{netloc}{prefix}"


def public_request_url(public_url: str | None, websocket: bool) -> str:
    """The full public URL of the current request, query string still percent-encoded."""
    query = request.query_string.decode("latin-1")
    path = request.script_root + request.path
    return public_base(public_url, websocket) + path + (f"?{query}" if query else "")


# ---------------------------------------------------------------------------- signatures
class SignatureCheck:
    """``X-Twilio-Signature`` validation for the webhook and the WebSocket upgrade (B4)."""

    def __init__(self, auth_token: str | None, public_url: str | None) -> None:
        self._validator = RequestValidator(auth_token) if auth_token else None
        self.public_url = public_url

    @property
    def enabled(self) -> bool:
        return self._validator is not None

    def verify(self, websocket: bool) -> tuple[bool, str]:
        """(valid, url checked). Webhooks sign URL + form params; upgrades sign the wss URL only."""
        url = public_request_url(self.public_url, websocket)
        if self._validator is None:
            return True, url
        signature = request.headers.get(SIGNATURE_HEADER)  # header lookup is case-insensitive
        if not signature:
            return False, url
        algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
        params: Any = {}
        if not websocket and request.method == "POST":
            params = request.get_data(as_text=True) if "bodySHA256" in request.args else request.form
        if algorithm is None:
            return self._validator.validate(url, params, signature), url
        return self._validator.validate(url, params, signature, algorithm), url


def bound_body(limit: int) -> Response | None:
    """413 (and the connection closed) for a body over ``limit``, declared or chunked.

    A declared length is checked before reading. A chunked body (no length) is read here, at
    most ``limit`` + 1 bytes: over the limit it is refused rather than parsed into an empty form,
    and within it the request is given the bytes back with their length, as if it had declared
    one. The app-wide MAX_CONTENT_LENGTH is left alone.
    """
    environ = request.environ
    if request.content_length is not None:
        return _too_large() if request.content_length > limit else None
    if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return None
    body = environ["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        return _too_large()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ.pop("wsgi.input_terminated", None)
    return None


def _too_large() -> Response:
    response = Response("request body too large\n", status=413, mimetype="text/plain")
    response.headers["Connection"] = "close"  # the rest of the body is never read
    return response


def xml(body: str) -> Response:
    return Response(body, mimetype="text/xml")


class WebhookViews:
    """One bridge's Flask views; ``bridge.blueprint`` routes to them."""

    def __init__(self, bridge: "VoiceBridge") -> None:
        self._bridge = bridge

    def guard(self) -> Response | None:
        """Bound the body; 403 a webhook or upgrade without a valid signature (before any handshake)."""
        too_big = bound_body(MAX_WEBHOOK_BYTES)
        if too_big is not None:
            return too_big
        endpoint = (request.endpoint or "").rpartition(".")[2]
        if endpoint in TELNYX_ENDPOINTS:
            return self.guard_telnyx(endpoint)
        if endpoint not in ("voice", "media", "after_stream", "amd_result"):
            return None
        ok, url = self._bridge.signatures.verify(websocket=endpoint == "media")
        if ok:
            return None
        self._bridge.metrics.rejected.labels(endpoint=endpoint).inc()
        self._bridge._refusals.warning(f"403 {endpoint}",
                                       "403 %s from %s: missing or invalid X-Twilio-Signature for %s",
                               endpoint, request.remote_addr, url[:MAX_LOGGED_URL])
        return Response("invalid Twilio signature\n", status=403, mimetype="text/plain")

    def voice(self) -> Response:
        """The voice webhook: TwiML connecting the call to our media stream, or a polite refusal."""
        return self.answer(self._bridge.twilio_hooks, "media", "after_stream")

    def after_stream(self) -> Response:
        """Twilio's request once the stream has ended (``<Connect action>``): transfer or hang up."""
        return self.after(self._bridge.twilio_hooks)

    def answer(self, hooks: CarrierWebhooks, media_endpoint: str, after_endpoint: str) -> Response:
        """A carrier's voice webhook: markup connecting the call to its media route, or the refusal."""
        call_sid = hooks.call_id(request.values)
        if self._bridge.draining and not self._bridge._in_drain_grace(0.0):
            self._bridge.metrics.refused.labels(stage="draining").inc()
            self._bridge._refusals.warning("webhook draining", "call %s refused at the webhook: draining",
                                   safe_id(call_sid))
            return xml(hooks.refusal())
        if self._bridge.admission.cap_full():
            self._bridge.metrics.refused.labels(stage="webhook").inc()
            if self._bridge.slots.reachable:
                self._bridge._refusals.warning("webhook cap", "call %s refused at the webhook: every call slot is "
                                               "taken "
                                       "(cap %s)", safe_id(call_sid), self._bridge.slots.limit)
            else:
                self._bridge._refusals.warning("webhook outage", "call %s refused at the webhook: the shared state is "
                                       "unreachable (outage policy)", safe_id(call_sid))
            return xml(hooks.refusal())
        # url_for builds WebSocket routes as absolute ws:// URLs of the internal host: keep the path
        media_path = urlsplit(url_for(f"{self._bridge.blueprint.name}.{media_endpoint}")).path
        stream_url = public_base(self._bridge.public_url, websocket=True) + media_path
        params = hooks.stream_parameters(request.form, request.args)
        if self._bridge.tokens is not None:
            params[TOKEN_PARAMETER] = self._bridge.tokens.issue(call_sid, time.time())
        after_path = url_for(f"{self._bridge.blueprint.name}.{after_endpoint}")
        after = public_base(self._bridge.public_url, websocket=False) + after_path
        return xml(hooks.connect(stream_url, params, after))

    def after(self, hooks: CarrierWebhooks) -> Response:
        """A carrier's request once the stream has ended (``<Connect action>``): transfer or hang up."""
        call_sid = hooks.call_id(request.values)
        target = self._bridge.transfers.take(board_key(call_sid), time.time())
        if target is None:
            return xml(hooks.hangup())
        if target == REFUSED:  # its webhook was answered, its stream then found the cap full
            return xml(hooks.refusal())
        log.info("call %s transferred: dialing the %s destination", safe_id(call_sid),
                 "SIP" if target.startswith("sip") else "phone")
        return xml(hooks.transfer(target))

    def guard_telnyx(self, endpoint: str) -> Response | None:
        """403 a Telnyx webhook without a valid Ed25519 signature (upgrades: their stream token)."""
        assert self._bridge.telnyx is not None
        webhook = WebhookRequest(url=public_request_url(self._bridge.public_url, TELNYX_ENDPOINTS[endpoint]),
                                 method=request.method, headers=request.headers, body=request.get_data(cache=True))
        if self._bridge.telnyx.verify(webhook, websocket=TELNYX_ENDPOINTS[endpoint], now=time.time()):
            return None
        self._bridge.metrics.rejected.labels(endpoint=endpoint).inc()
        telnyx = self._bridge.telnyx
        self._bridge._refusals.warning(f"403 {endpoint}", "403 %s from %s: missing, stale or invalid %s (%s)", endpoint,
                                       request.remote_addr, telnyx.signature_header,
                                       telnyx.check(webhook, time.time()).value)
        return Response("invalid Telnyx signature\n", status=403, mimetype="text/plain")

    def telnyx_voice(self) -> Response:
        """The TeXML application's voice URL: ``<Connect><Stream>`` to ``/telnyx/media``, or the refusal."""
        assert self._bridge.telnyx is not None
        return self.answer(self._bridge.telnyx, "telnyx_media", "telnyx_after")

    def telnyx_after(self) -> Response:
        assert self._bridge.telnyx is not None
        return self.after(self._bridge.telnyx)

    def healthz(self) -> Response:
        """200 while taking calls, 503 while draining (the load balancer's cue to send no more)."""
        state = BridgeState.DRAINING if self._bridge.draining else BridgeState.SERVING
        try:
            active_all: int | None = self._bridge.slots.active_all
        except (OSError, StateDirError) as exc:  # never a 500: say so, and let the balancer look elsewhere
            self._bridge._refusals.warning("state", "shared state unreadable: %s", exc)
            state, active_all = BridgeState.STATE_FAILING, None
        slots = self._bridge.slots
        response = jsonify(status=state.value, active_calls=slots.active, active_calls_all=active_all,
                           max_calls=slots.limit, **self._bridge.state.health())
        response.status_code = 200 if state is BridgeState.SERVING else 503
        return response

    def metrics_view(self) -> Response:
        return Response(self._bridge.metrics.exposition(), content_type=self._bridge.metrics.content_type,
                        status=200 if self._bridge.metrics.enabled else 501)
