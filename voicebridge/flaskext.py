"""Flask integration: mount the bridge into an existing Flask app in three lines.

::

    from voicebridge import BridgeConfig, VoiceBridge
    bridge = VoiceBridge(app, BridgeConfig(api_key=os.environ["OPENAI_API_KEY"]),
                         auth_token=os.environ["TWILIO_AUTH_TOKEN"], max_calls=20)

A Blueprint (optionally under ``url_prefix``) adds ``POST /voice`` (TwiML that connects the
call to the media stream), WebSocket ``/media`` (one :class:`MediaSession` per call),
``GET /healthz`` and ``GET /metrics`` (Prometheus text). Everything a bridge needs -- the
call counter, the signature validator, the Prometheus registry -- lives on the instance, so
two apps (or two bridges) in one process never share state.

Security: with an ``auth_token`` every webhook and every WebSocket upgrade must carry a valid
``X-Twilio-Signature`` for the *public* URL Twilio requested (``public_url``, else rebuilt from
``X-Forwarded-Proto``/``X-Forwarded-Host``); anything else is answered 403. Inbound message
and body sizes are bounded, and ``max_calls`` refuses call N+1 instead of degrading them all.
"""
from __future__ import annotations

import io
import logging
import threading
import time
from typing import Any, Callable
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, jsonify, request, url_for
from flask_sock import Sock
from prometheus_client import CONTENT_TYPE_LATEST
from twilio.request_validator import RequestValidator

from . import realtime_client, wsserver
from . import twilio_protocol as tw
from .config import BridgeConfig
from .prometheus import BridgeMetrics
from .session import MediaSession
from .streamtoken import PARAMETER as TOKEN_PARAMETER
from .streamtoken import StreamTokens, TokenCheck
from .twiml import connect_twiml, hangup_twiml, refusal_twiml, stream_parameters, transfer_twiml

try:  # twilio >= 9.13 also signs with a SharedKey (HMAC-SHA256) when this header says so
    from twilio.request_validator import SIGNATURE_SETTINGS_HEADER, get_signature_algorithm
except ImportError:  # pragma: no cover - older twilio: auth-token HMAC-SHA1 only
    SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"

    def get_signature_algorithm(signature_settings_header: str | None) -> str | None:  # type: ignore[misc]
        return None

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"

BLUEPRINT_NAME = "voicebridge"
# A Twilio media message is ~400 bytes and ``start`` a few KB; 64 KiB leaves room without
# letting a peer make us buffer megabytes.
MAX_MESSAGE_BYTES = 64 * 1024
WEBSOCKET_MODES = ("flask-sock", "direct")
MAX_WEBHOOK_BYTES = 64 * 1024  # Twilio's voice webhook form is ~1-2 KB
CLOSE_TRY_AGAIN_LATER = 1013  # RFC 6455 registry: "Try Again Later"
MAX_LOGGED_URL = 200  # a refused request's URL is the client's text: bounded in the log line
SCHEMES = {"http": ("http", "ws"), "https": ("https", "wss"), "ws": ("http", "ws"), "wss": ("https", "wss")}

TRANSFER_WAIT_S = 60.0  # how long a transfer waits for Twilio's <Connect action> request

ConfigForCall = Callable[[dict[str, str]], "BridgeConfig | None"]
TranscriptHook = Callable[[str | None, str, str], None]
DtmfHook = Callable[[str | None, str], None]
CallEndHook = Callable[[dict[str, Any]], None]


# ---------------------------------------------------------------------------- call cap
class CallGate:
    """Counts active calls under a lock; ``try_enter`` refuses once ``limit`` are active."""

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and limit < 1:
            raise ValueError("max_calls must be >= 1 (or None for no cap)")
        self.limit = limit
        self._lock = threading.Lock()
        self._active = 0

    @property
    def active(self) -> int:
        with self._lock:
            return self._active

    def full(self) -> bool:
        with self._lock:
            return self.limit is not None and self._active >= self.limit

    def try_enter(self) -> bool:
        with self._lock:
            if self.limit is not None and self._active >= self.limit:
                return False
            self._active += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._active = max(0, self._active - 1)


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


# ---------------------------------------------------------------------------- the extension
class VoiceBridge:
    """Flask extension: ``VoiceBridge(app, config)`` or ``VoiceBridge(...).init_app(app)``.

    ``config_for_call(custom_parameters) -> BridgeConfig | None`` picks a per-call config
    (None keeps ``config``); ``on_transcript(call_sid, role, text)`` receives final
    transcripts; ``on_call_end(metrics)`` receives each call's metrics dict. ``connect``
    replaces the Realtime connector (tests inject fakes). Hook errors are logged, never raised
    into a call.

    ``websocket`` picks how ``/media`` is served: ``"flask-sock"`` (default) through
    flask-sock/simple-websocket, on any server flask-sock supports; ``"direct"`` (opt-in) reads
    the Twilio socket on the request's own thread (:mod:`voicebridge.wsserver`, werkzeug and
    gunicorn only; one thread fewer per call). Both honour
    ``SOCK_SERVER_OPTIONS["max_message_size"]``. :meth:`handle_media` serves one call on any
    accepted socket, for an app that also routes a socket of its own to the bridge.
    """

    def __init__(
        self,
        app: Flask | None = None,
        config: BridgeConfig | None = None,
        *,
        url_prefix: str = "",
        public_url: str | None = None,
        auth_token: str | None = None,
        max_calls: int | None = None,
        config_for_call: ConfigForCall | None = None,
        on_transcript: TranscriptHook | None = None,
        on_call_end: CallEndHook | None = None,
        on_dtmf: DtmfHook | None = None,
        connect: realtime_client.Connector | None = None,
        websocket: str = "flask-sock",
    ) -> None:
        if websocket not in WEBSOCKET_MODES:
            raise ValueError(f"websocket must be one of {WEBSOCKET_MODES}")
        if public_url and urlsplit(public_url).scheme.lower() not in SCHEMES:
            raise ValueError("public_url must start with https:// (or http://, ws://, wss://)")
        self.config = config or BridgeConfig()
        self.url_prefix = url_prefix.rstrip("/")
        self.public_url = public_url.rstrip("/") if public_url else None
        self.config_for_call = config_for_call
        self.on_transcript = on_transcript
        self.on_call_end = on_call_end
        self.on_dtmf = on_dtmf
        self._transfers: dict[str, tuple[str, float]] = {}  # call SID -> (target, until): for /voice/after
        self.connect = connect
        self.websocket = websocket
        self.gate = CallGate(max_calls)
        self.signatures = SignatureCheck(auth_token, self.public_url)
        # With signatures on, every stream must also present the single-use token its webhook issued.
        self.tokens = StreamTokens(auth_token) if auth_token else None
        self.metrics = BridgeMetrics(lambda: self.gate.active)
        self.local_server: Any = None  # set by voicebridge.app when it runs the embedded backend
        self._sessions: set[MediaSession] = set()
        self._lock = threading.Lock()
        self.blueprint = self._blueprint()
        if app is not None:
            self.init_app(app)

    # ------------------------------------------------------------------ mounting
    def init_app(self, app: Flask) -> None:
        """Register the blueprint, bound inbound WebSocket messages, warn if unauthenticated."""
        options = app.config.setdefault("SOCK_SERVER_OPTIONS", {})
        options.setdefault("max_message_size", MAX_MESSAGE_BYTES)  # the app's own choice wins
        app.register_blueprint(self.blueprint, url_prefix=self.url_prefix or None)
        app.extensions[BLUEPRINT_NAME] = self
        if not self.signatures.enabled:
            log.warning("!!! voicebridge: no Twilio auth token -- X-Twilio-Signature is NOT checked; anyone "
                        "who finds this URL can place calls on your OpenAI bill. Local use only; set "
                        "TWILIO_AUTH_TOKEN before exposing it to the internet. !!!")
        log.info("voicebridge mounted at %s/voice and %s/media (max calls: %s, public url: %s)",
                 self.url_prefix, self.url_prefix, self.gate.limit or "unlimited", self.public_url or "from request")

    def _blueprint(self) -> Blueprint:
        bp = Blueprint(BLUEPRINT_NAME, __name__)
        bp.before_request(self._guard)
        bp.add_url_rule("/voice", "voice", self._voice, methods=["GET", "POST"])
        bp.add_url_rule("/voice/after", "after_stream", self._after_stream, methods=["GET", "POST"])
        bp.add_url_rule("/healthz", "healthz", self._healthz, methods=["GET"])
        bp.add_url_rule("/metrics", "metrics", self._metrics_view, methods=["GET"])
        if self.websocket == "flask-sock":
            Sock().route("/media", bp=bp, endpoint="media")(self.handle_media)
        else:
            bp.add_url_rule("/media", "media", self._media_direct, websocket=True)
        return bp

    # ------------------------------------------------------------------ request guard
    def _guard(self) -> Response | None:
        """Bound the body; 403 a webhook or upgrade without a valid signature (before any handshake)."""
        too_big = bound_body(MAX_WEBHOOK_BYTES)
        if too_big is not None:
            return too_big
        endpoint = (request.endpoint or "").rpartition(".")[2]
        if endpoint not in ("voice", "media", "after_stream"):
            return None
        ok, url = self.signatures.verify(websocket=endpoint == "media")
        if ok:
            return None
        self.metrics.rejected.labels(endpoint=endpoint).inc()
        log.warning("403 %s from %s: missing or invalid X-Twilio-Signature for %s",
                    endpoint, request.remote_addr, url[:MAX_LOGGED_URL])
        return Response("invalid Twilio signature\n", status=403, mimetype="text/plain")

    # ------------------------------------------------------------------ views
    def _voice(self) -> Response:
        """The voice webhook: TwiML connecting the call to our media stream, or a polite refusal."""
        call_sid = request.values.get("CallSid", "")
        if self.gate.full():
            self.metrics.refused.labels(stage="webhook").inc()
            log.warning("call %s refused at the webhook: %d calls active (cap %s)",
                        tw.safe_sid(call_sid), self.gate.active, self.gate.limit)
            return xml(refusal_twiml())
        # url_for builds WebSocket routes as absolute ws:// URLs of the internal host: keep the path
        media_path = urlsplit(url_for(f"{self.blueprint.name}.media")).path
        stream_url = public_base(self.public_url, websocket=True) + media_path
        params = stream_parameters(request.form, request.args)
        if self.tokens is not None:
            params[TOKEN_PARAMETER] = self.tokens.issue(call_sid, time.time())
        after = public_base(self.public_url, websocket=False) + url_for(f"{self.blueprint.name}.after_stream")
        return xml(connect_twiml(stream_url, params, after))

    def _after_stream(self) -> Response:
        """Twilio's request once the stream has ended (``<Connect action>``): transfer or hang up."""
        call_sid = request.values.get("CallSid", "")
        with self._lock:
            now = time.monotonic()
            self._transfers = {sid: t for sid, t in self._transfers.items() if t[1] > now}
            transfer = self._transfers.pop(call_sid, None)
        if transfer is None:
            return xml(hangup_twiml())
        log.info("call %s transferred: dialing the %s destination", tw.safe_sid(call_sid),
                 "SIP" if transfer[0].startswith("sip") else "phone")
        return xml(transfer_twiml(transfer[0]))

    def _healthz(self) -> Response:
        return jsonify(status="ok", active_calls=self.gate.active, max_calls=self.gate.limit)

    def _metrics_view(self) -> Response:
        return Response(self.metrics.exposition(), content_type=CONTENT_TYPE_LATEST)

    def _media_direct(self) -> Any:
        """``/media`` without flask-sock: handshake here, then read on this request thread."""
        options = current_app.config.get("SOCK_SERVER_OPTIONS", {})
        return wsserver.serve(request.environ, self.handle_media, "media",
                              options.get("max_message_size", MAX_MESSAGE_BYTES))

    def handle_media(self, ws: Any) -> None:
        """One call on an accepted Twilio WebSocket: admit it under the cap, run its
        MediaSession, fold its metrics in. Returns when the call has ended.

        The ``/media`` route calls this; an app's own flask-sock route may call it too.
        """
        if not self.gate.try_enter():
            self.metrics.refused.labels(stage="websocket").inc()
            log.warning("media stream refused: %d calls active (cap %s)", self.gate.active, self.gate.limit)
            ws.close(reason=CLOSE_TRY_AGAIN_LATER, message="voicebridge at capacity, try again later")
            return
        self.metrics.calls.inc()
        session = self._new_session(ws)
        started = time.monotonic()
        with self._lock:
            self._sessions.add(session)
        try:
            session.run()
        finally:
            with self._lock:
                self._sessions.discard(session)
            self.gate.leave()
            self._finished(session, time.monotonic() - started)

    # ------------------------------------------------------------------ per call
    def _new_session(self, ws: Any) -> MediaSession:
        holder: list[MediaSession] = []

        def transcript(role: str, text: str) -> None:
            if self.on_transcript is not None:
                self.on_transcript(holder[0].call_sid if holder else None, role, text)

        def dtmf(digits: str) -> None:
            if self.on_dtmf is not None:
                self.on_dtmf(holder[0].call_sid if holder else None, digits)

        session = MediaSession(ws, self.config, self.connect, on_transcript=transcript, on_start=self._started,
                               on_dtmf=dtmf)
        holder.append(session)
        return session

    def _started(self, session: MediaSession, start: tw.Start) -> BridgeConfig | None:
        """MediaSession's on_start: admit the stream (its token), let the app choose its config."""
        params = dict(start.custom_parameters)
        token = params.pop(TOKEN_PARAMETER, None)
        if self.tokens is not None:
            check = self.tokens.redeem(token, start.call_sid, time.time())
            if check is not TokenCheck.VALID:
                self.metrics.refused.labels(stage="token").inc()
                session.log.warning("media stream refused: stream token %s", check.value)
                session.close(f"stream token {check.name.lower()}")
                return None
        session.log.info("call admitted: %d active, cap %s", self.gate.active, self.gate.limit or "none")
        if self.config_for_call is None:
            return None
        try:
            chosen = self.config_for_call(params)
        except Exception:  # noqa: BLE001 - a broken hook must not end the call; keep the default
            session.log.exception("config_for_call failed; using the default config")
            return None
        if chosen is not None and not isinstance(chosen, BridgeConfig):
            session.log.error("config_for_call returned %s, not a BridgeConfig; ignored", type(chosen).__name__)
            return None
        return chosen

    def _finished(self, session: MediaSession, duration_s: float) -> None:
        snapshot = dict(session.metrics, duration_s=round(duration_s, 3))
        if snapshot.get("transfer_to") and session.call_sid:
            with self._lock:
                self._transfers[session.call_sid] = (snapshot["transfer_to"], time.monotonic() + TRANSFER_WAIT_S)
        self.metrics.record_call(snapshot)
        session.log.info("call end: %s after %.1f s (%d active)", snapshot.get("close_reason"), duration_s,
                         self.gate.active)
        if self.on_call_end is not None:
            try:
                self.on_call_end(snapshot)
            except Exception:  # noqa: BLE001 - the call is over; a hook failure is only logged
                session.log.exception("on_call_end hook failed")

    # ------------------------------------------------------------------ lifecycle
    @property
    def active_calls(self) -> int:
        return self.gate.active

    def close(self) -> None:
        """End every active call and stop an embedded backend we own (idempotent)."""
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.close("server shutdown")
        server, self.local_server = self.local_server, None
        if server is not None:
            server.stop()
