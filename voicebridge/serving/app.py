"""The example application: settings from the environment, an app factory, a background server.

``create_app(Settings.from_env())`` builds a Flask app with the bridge mounted at the root.
The Realtime backend is OpenAI (``OPENAI_API_KEY``), a full URL (``OPENAI_REALTIME_URL``) or
Azure OpenAI (``AZURE_OPENAI_*``); the embedded scripted
:class:`~voicebridge.dev.local.server.LocalRealtimeServer` runs in-process only when asked for
(``LOCAL_BACKEND=1``, which ``voicebridge demo`` sets): with none of them the app refuses to
start and says what to set, so real callers never reach the demo agent by accident. Bad
settings raise :class:`ConfigError`, one line naming the variable, before anything starts.
``serve(app, host, port)`` runs
werkzeug's threaded server in a background thread -- what the demo, ``verify`` and the tests
use (production runs gunicorn, see docs/deploy.md).
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Mapping
from urllib.parse import urlsplit

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ..config import DEFAULT_GREETING, DEFAULT_INSTRUCTIONS, DEFAULT_MODEL, BridgeConfig
from ..model import client as realtime_client
from .flaskext import VoiceBridge
from ..model.preflight import PreflightFailed, missing_key, preflight
from .sharedstate import StoreUnsuitable
from .webhooks import SCHEMES
from ..call.tools import tool

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A setting the app cannot start with; the message is one line naming the variable and the fix."""


NO_BACKEND = ("no Realtime backend configured: set OPENAI_API_KEY (OpenAI), or OPENAI_REALTIME_URL (a full "
              "ws:// or wss:// URL), or AZURE_OPENAI_ENDPOINT with AZURE_OPENAI_DEPLOYMENT and "
              "AZURE_OPENAI_API_KEY (Azure OpenAI); or LOCAL_BACKEND=1 for the embedded scripted demo agent "
              "(development only: it is not OpenAI)")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5050
JOIN_SECONDS = 5.0
READ_TIMEOUT_S = 10.0
"""The development server's bound on any read of a connection's HTTP phase (headers, body, idle)."""


@tool
def order_status(order_id: Annotated[str, "the order number, as the caller said or typed it"]) -> dict[str, str]:
    """Look up the status of a customer's order by its number.

    The example app's demo tool: made-up data (an even last digit has shipped, an odd one is
    being prepared), no real lookup. Replace it with your own.
    """
    digits = "".join(c for c in order_id if c.isdigit())
    if not digits:
        return {"order_id": order_id[:32], "status": "unknown"}
    return {"order_id": digits, "status": "shipped" if int(digits[-1]) % 2 == 0 else "processing"}


@dataclass(frozen=True)
class Settings:
    """What the example app reads from the environment. Secrets are excluded from ``repr``."""

    openai_api_key: str | None = field(default=None, repr=False)
    openai_realtime_url: str | None = None
    openai_model: str = DEFAULT_MODEL
    voice: str = "marin"
    instructions: str = DEFAULT_INSTRUCTIONS
    greeting: str | None = DEFAULT_GREETING
    twilio_auth_token: str | None = field(default=None, repr=False)
    telnyx_public_key: str | None = None  # Telnyx's Ed25519 webhook key (public: not a secret)
    stream_secret: str | None = field(default=None, repr=False)  # stream tokens' key without a Twilio token
    public_url: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_calls: int | None = None
    state_dir: str | None = None  # shared by the worker processes: the cap is theirs together
    drain_file: str | None = None  # once it exists: no new calls, live ones run on (rolling deploys)
    local_backend: bool = False  # LOCAL_BACKEND=1: the embedded scripted server (demo, development)
    startup_check: bool = False  # STARTUP_CHECK (on unless 0 from the environment): dial once at start
    drain_grace_s: int = 30  # webhooks still answered normally this long into a drain (> the preStop sleep)
    redis_url: str | None = field(default=None, repr=False)  # REDIS_URL: share the cap etc. between hosts
    redis_prefix: str = "voicebridge"  # REDIS_PREFIX: namespaces every key
    call_lease_s: float = 30.0  # CALL_LEASE_S: a dead host's call slots come back within this
    redis_outage: str = "refuse"  # REDIS_OUTAGE: refuse | local (new calls while Redis is away)
    redis_outage_max_calls: int | None = None  # REDIS_OUTAGE_MAX_CALLS: this host's cap under "local"
    local_mode: str = "voice"  # embedded backend only: "voice" or "tone"
    local_speed: float = 4.0
    demo_tool: bool = True  # offer order_status to the model
    end_call: bool = True  # offer end_call: the agent hangs up after its goodbye
    transfer_to: str | None = None  # offer transfer_call to this number or SIP URI ("support")
    azure_endpoint: str | None = None  # https://<resource>.openai.azure.com
    azure_api_key: str | None = field(default=None, repr=False)
    azure_deployment: str | None = None
    api_version: str | None = None  # set: the deployment-style URL; unset: /openai/v1/realtime
    session_options: Mapping[str, Any] = field(default_factory=dict)  # BridgeConfig fields, from SESSION_ENV

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        """Read the documented variables; empty strings count as unset (GREETING="" = no greeting)."""
        def get(name: str) -> str | None:
            value = environ.get(name, "").strip()
            return value or None

        greeting = environ.get("GREETING")
        settings = cls(
            openai_api_key=get("OPENAI_API_KEY"),
            openai_realtime_url=get("OPENAI_REALTIME_URL"),
            openai_model=get("OPENAI_MODEL") or DEFAULT_MODEL,
            voice=get("VOICE") or "marin",
            instructions=get("INSTRUCTIONS") or DEFAULT_INSTRUCTIONS,
            greeting=DEFAULT_GREETING if greeting is None else (greeting.strip() or None),
            twilio_auth_token=get("TWILIO_AUTH_TOKEN"),
            telnyx_public_key=get("TELNYX_PUBLIC_KEY"),
            stream_secret=get("VOICEBRIDGE_STREAM_SECRET"),
            public_url=get("PUBLIC_URL"),
            host=get("HOST") or DEFAULT_HOST,
            port=_int("PORT", get("PORT"), DEFAULT_PORT, minimum=0, maximum=65535),
            max_calls=_int("MAX_CALLS", get("MAX_CALLS"), None, minimum=1),
            state_dir=get("VOICEBRIDGE_STATE_DIR"),
            drain_file=get("VOICEBRIDGE_DRAIN_FILE"),
            drain_grace_s=_int("DRAIN_GRACE_S", get("DRAIN_GRACE_S"), 30, minimum=0),
            redis_url=get("REDIS_URL"),
            redis_prefix=get("REDIS_PREFIX") or "voicebridge",
            call_lease_s=_float("CALL_LEASE_S", get("CALL_LEASE_S"), 30.0, minimum=0.3),
            redis_outage=get("REDIS_OUTAGE") or "refuse",
            redis_outage_max_calls=_int("REDIS_OUTAGE_MAX_CALLS", get("REDIS_OUTAGE_MAX_CALLS"), None, minimum=1),
            demo_tool=_flag("DEMO_TOOL", get("DEMO_TOOL"), True),
            end_call=_flag("END_CALL", get("END_CALL"), True),
            transfer_to=get("TRANSFER_TO"),
            azure_endpoint=get("AZURE_OPENAI_ENDPOINT"),
            azure_api_key=get("AZURE_OPENAI_API_KEY"),
            azure_deployment=get("AZURE_OPENAI_DEPLOYMENT"),
            api_version=get("OPENAI_API_VERSION"),
            local_backend=_flag("LOCAL_BACKEND", get("LOCAL_BACKEND"), False),
            startup_check=_flag("STARTUP_CHECK", get("STARTUP_CHECK"), True),
            session_options=session_options(get),
        )
        settings.check()
        return settings

    @property
    def uses_local_backend(self) -> bool:
        return self.local_backend

    def check(self) -> None:
        """Refuse settings the app cannot start with (:class:`ConfigError`), before anything starts."""
        if self.local_backend and (self.openai_realtime_url or self.azure_endpoint):
            raise ConfigError("LOCAL_BACKEND=1 runs the embedded server: unset OPENAI_REALTIME_URL and "
                              "AZURE_OPENAI_ENDPOINT, or LOCAL_BACKEND")
        if not (self.local_backend or self.openai_api_key or self.openai_realtime_url or self.azure_endpoint):
            raise ConfigError(NO_BACKEND)
        if self.azure_endpoint and not self.openai_realtime_url and not self.azure_api_key:
            raise ConfigError("AZURE_OPENAI_ENDPOINT needs AZURE_OPENAI_API_KEY")
        self._check_public_url()
        if self.redis_outage not in ("refuse", "local"):
            raise ConfigError(f"REDIS_OUTAGE must be refuse or local, got {self.redis_outage[:20]!r}")
        if self.redis_outage == "local" and self.redis_outage_max_calls is None:
            raise ConfigError("REDIS_OUTAGE=local needs REDIS_OUTAGE_MAX_CALLS (this host's cap while Redis is away)")
        placeholder = None if self.openai_realtime_url or not self.local_backend else "ws://127.0.0.1:1/v1/realtime"
        try:
            config = bridge_config(self, self.openai_realtime_url or placeholder)
        except ValueError as exc:
            head = str(exc).split(":", 1)[0]  # what the error is about; not the URL it quotes (?model=...)
            names = [var for key, var in SETTING_ENV.items() if key in head]
            raise ConfigError(f"{exc}" + (f" (from {', '.join(names)})" if names else "")) from None
        missing = missing_key(config)  # (STARTUP_CHECK=0 too: no call could connect, as for Azure above)
        if missing is not None:
            aside = (" (AZURE_OPENAI_API_KEY goes with AZURE_OPENAI_ENDPOINT; any OPENAI_REALTIME_URL takes "
                     "OPENAI_API_KEY)" if self.azure_api_key and self.openai_realtime_url else "")
            raise ConfigError(missing + aside)

    def _check_public_url(self) -> None:
        """PUBLIC_URL is the base Twilio reaches the app at: a URL with its scheme and host."""
        url = self.public_url
        parts = urlsplit(url or "")
        if url and (parts.scheme.lower() not in SCHEMES or not parts.netloc):
            raise ConfigError(f"PUBLIC_URL must be the base URL Twilio reaches this app at, with its scheme and "
                              f"host (https://voice.example.com), got {url[:60]!r}")

    def warn_public_url(self) -> None:
        """A PUBLIC_URL ending in one of the app's routes was likely copied from the webhook setting:
        the TwiML would point at /voice/voice/after and /voice/media. Allowed (a proxy's prefix may
        be named so), so said once at the start."""
        route = urlsplit(self.public_url or "").path.rstrip("/").rsplit("/", 1)[-1]
        if route in ROUTES:
            log.warning("PUBLIC_URL %s ends in /%s, one of the app's own routes: it should be the base URL "
                        "(https://host, or https://host/prefix behind a proxy that strips the prefix): the TwiML would "
                        "send Twilio to /%s/voice/after and /%s/media (and with TWILIO_AUTH_TOKEN set every webhook's "
                        "signature check fails)", self.public_url, route, route, route)


ROUTES = ("voice", "media", "after", "healthz", "metrics")
"""The app's routes' last segments: a PUBLIC_URL ending in one was likely copied from a webhook setting."""


SETTING_ENV = {"openai_url": "OPENAI_REALTIME_URL", "voice": "VOICE", "transfer target": "TRANSFER_TO",
               "azure_endpoint": "AZURE_OPENAI_ENDPOINT", "azure_deployment": "AZURE_OPENAI_DEPLOYMENT",
               "api_version": "OPENAI_API_VERSION", "model": "OPENAI_MODEL"}
"""What a BridgeConfig error is about -> the variable that set it (to name it in the one-line error)."""


def _none_or(text: str) -> str | None:
    return None if text.lower() in ("none", "off", "null") else text


def _count_or_none(text: str) -> int | None:
    return None if text.lower() in ("none", "inf") else int(text)


SESSION_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "TURN_DETECTION": ("turn_detection", _none_or),  # server_vad | semantic_vad | none
    "VAD_EAGERNESS": ("vad_eagerness", str),  # semantic_vad: low | medium | high | auto
    "VAD_THRESHOLD": ("vad_threshold", float),
    "VAD_PREFIX_PADDING_MS": ("vad_prefix_padding_ms", int),
    "VAD_SILENCE_DURATION_MS": ("vad_silence_duration_ms", int),
    "VAD_IDLE_TIMEOUT_MS": ("vad_idle_timeout_ms", _count_or_none),
    "NOISE_REDUCTION": ("noise_reduction", _none_or),  # near_field | far_field | none
    "TRANSCRIPTION_MODEL": ("transcription_model", _none_or),  # Azure: a deployment name
    "TRANSCRIPTION_LANGUAGE": ("transcription_language", str),
    "TRANSCRIPTION_PROMPT": ("transcription_prompt", str),
    "SPEED": ("speed", float),
    "MAX_OUTPUT_TOKENS": ("max_output_tokens", _count_or_none),
    "TOOL_CHOICE": ("tool_choice", str),  # auto | none | required | a tool's name
    "APPEND_MS": ("append_ms", int),  # caller audio per input_audio_buffer.append (CPU against latency)
    "LEAD_MS": ("lead_ms", int),  # agent audio sent ahead of real time (underruns against audio at the carrier)
    "RECORDING_DIR": ("recording_dir", str),  # a stereo WAV per call here (docs/calls.md)
    "RECORDING_CONSENT": ("recording_consent", str),  # said by the agent first when recording
    "REPORT_URL": ("report_url", str),  # each call's report POSTed here, signed, retried
    "REPORT_SECRET": ("report_secret", str),  # the report signature's HMAC key
    "REPORT_SPOOL_DIR": ("report_spool_dir", str),  # undelivered reports wait here
}
"""The session options the example reads from the environment: variable -> (BridgeConfig field, parser)."""


EXPECTED: dict[Callable[[str], Any], str] = {float: "expected a number", int: "expected a whole number",
                                             _count_or_none: "expected a whole number, or none"}


def session_options(get: Callable[[str], "str | None"]) -> dict[str, Any]:
    """The set ``SESSION_ENV`` variables as BridgeConfig fields; a bad value names its variable."""
    options: dict[str, Any] = {}
    for name, (option, parse) in SESSION_ENV.items():
        value = get(name)
        if value is None:
            continue
        try:
            options[option] = parse(value)
        except ValueError:
            raise ConfigError(f"{name} has a bad value {value!r}: {EXPECTED.get(parse, 'see docs/deploy.md')}") from None
    try:
        BridgeConfig(**options)
    except ValueError as exc:
        names = ", ".join(n for n, (o, _) in SESSION_ENV.items() if o in options)
        raise ConfigError(f"{exc} (from the environment: {names})") from None
    return options


def _int(name: str, value: str | None, default: Any, minimum: int, maximum: int | None = None) -> Any:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {number}")
    if maximum is not None and number > maximum:  # (a PORT of 70000 was bound as 70000 - 65536)
        raise ConfigError(f"{name} must be <= {maximum}, got {number}")
    return number


def _float(name: str, value: str | None, default: float, minimum: float) -> float:
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value[:20]!r}") from None
    if not number >= minimum:  # NaN too
        raise ConfigError(f"{name} must be >= {minimum}, got {number}")
    return number


def _flag(name: str, value: str | None, default: bool) -> bool:
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1/0 (true/false, yes/no, on/off), got {value!r}")


def bridge_config(settings: Settings, realtime_url: str | None) -> BridgeConfig:
    azure = settings.azure_endpoint is not None and realtime_url is None
    return BridgeConfig(model=settings.openai_model, openai_url=realtime_url,
                        api_key=settings.azure_api_key if azure else settings.openai_api_key,
                        azure_endpoint=settings.azure_endpoint if azure else None,
                        azure_deployment=settings.azure_deployment if azure else None,
                        api_version=settings.api_version if azure else None,
                        instructions=settings.instructions, voice=settings.voice,
                        greeting_instructions=settings.greeting,
                        tools=(order_status,) if settings.demo_tool else (), end_call=settings.end_call,
                        transfer_targets={"support": settings.transfer_to} if settings.transfer_to else {},
                        **settings.session_options)


def mounted_carriers(settings: Settings) -> tuple[str, ...]:
    """The carriers the example app answers: both with both keys (or neither: local use, each
    warned about), else only the one whose signatures it checks, so a Twilio-only deploy has no
    ``/telnyx/media`` open to anyone (and a Telnyx-only one no open ``/media``)."""
    twilio, telnyx = bool(settings.twilio_auth_token), bool(settings.telnyx_public_key)
    if twilio == telnyx:
        return ("twilio", "telnyx")
    return ("twilio",) if twilio else ("telnyx",)


def create_app(settings: Settings | None = None, **bridge_options: Any) -> Flask:
    """The example app: the bridge at ``/voice``, ``/media``, ``/healthz``, ``/metrics``, and for
    Telnyx at ``/telnyx/voice`` and ``/telnyx/media`` (``TELNYX_PUBLIC_KEY`` checks its webhooks).

    ``bridge_options`` go to :class:`VoiceBridge` (``connect``, ``config_for_call``, hooks...).
    An embedded backend, if started, is ``app.extensions["voicebridge"].local_server``; it is
    stopped by ``bridge.close()`` (``serve()``'s ``shutdown`` calls that) or at exit.
    """
    settings = settings or Settings.from_env()
    settings.check()  # before anything starts: a bad setting is one line, not a half-started app
    settings.warn_public_url()
    local = None
    realtime_url = settings.openai_realtime_url
    if settings.uses_local_backend:
        from ..dev.local.server import LocalRealtimeServer

        local = LocalRealtimeServer(mode=settings.local_mode, speed=settings.local_speed).start()
        realtime_url = local.url
        atexit.register(local.stop)
        log.warning("LOCAL_BACKEND=1: calls go to the EMBEDDED LOCAL Realtime server at %s (scripted agent, "
                    "not OpenAI)", realtime_url)
    elif settings.openai_realtime_url:
        log.info("Realtime backend: %s (OPENAI_REALTIME_URL)", settings.openai_realtime_url.split("?")[0])
    elif settings.azure_endpoint:
        log.info("Realtime backend: Azure OpenAI %s, deployment %s", settings.azure_endpoint,
                 settings.azure_deployment)
    else:
        log.info("Realtime backend: OpenAI, model %s", settings.openai_model)

    config = bridge_config(settings, realtime_url)
    if settings.startup_check and local is None:
        try:  # a wrong key or URL stops the app here, with the server's reason, not at the first call
            preflight(config, bridge_options.get("connect") or realtime_client.connect)
        except PreflightFailed as exc:
            skip = " (STARTUP_CHECK=0 starts without this check)" if exc.unreachable else ""
            raise ConfigError(f"{exc}{skip}") from None
        log.info("startup check: the Realtime endpoint accepted a session (STARTUP_CHECK=0 to skip)")
    app = Flask(__name__)
    bridge_options.setdefault("public_url", settings.public_url)
    bridge_options.setdefault("auth_token", settings.twilio_auth_token)
    bridge_options.setdefault("carrier", mounted_carriers(settings))  # Twilio at /voice, Telnyx at /telnyx/voice
    if bool(settings.twilio_auth_token) != bool(settings.telnyx_public_key):
        log.info("only %s is answered: the other carrier's key is not set (TWILIO_AUTH_TOKEN / TELNYX_PUBLIC_KEY), "
                 "and its routes would admit anyone", "Twilio" if settings.twilio_auth_token else "Telnyx")
    bridge_options.setdefault("telnyx_public_key", settings.telnyx_public_key)
    bridge_options.setdefault("stream_secret", settings.stream_secret)
    bridge_options.setdefault("max_calls", settings.max_calls)
    bridge_options.setdefault("state_dir", settings.state_dir)
    bridge_options.setdefault("drain_file", settings.drain_file)
    bridge_options.setdefault("drain_grace_s", float(settings.drain_grace_s))
    if settings.redis_url and "shared_state" not in bridge_options:
        bridge_options.setdefault("redis_url", settings.redis_url)
        bridge_options.setdefault("redis_options", redis_options(settings))
    try:
        bridge = VoiceBridge(app, config, **bridge_options)
    except BaseException as exc:
        if local is not None:
            local.stop()  # started above: nothing else would stop it before exit
        if settings.redis_url and isinstance(exc, (ImportError, ConnectionError, StoreUnsuitable)):
            raise ConfigError(f"REDIS_URL: {exc}") from None  # no client, no answer, too old: one line
        raise
    bridge.local_server = local
    return app


def redis_options(settings: Settings) -> dict[str, Any]:
    """The Redis backend's options (:class:`voicebridge.serving.redisstate.RedisOptions`) from the settings."""
    return {"prefix": settings.redis_prefix, "lease_s": settings.call_lease_s, "outage": settings.redis_outage,
            "outage_max_calls": settings.redis_outage_max_calls}


class ServerHandle:
    """A running background server: ``port``, ``url`` (http), ``shutdown()``."""

    def __init__(self, app: Flask, server: BaseWSGIServer, thread: threading.Thread) -> None:
        self.app = app
        self._server = server
        self._thread = thread
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def host(self) -> str:
        host = str(self._server.server_address[0])
        return "127.0.0.1" if host in ("0.0.0.0", "") else host

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """The media stream WebSocket URL (for a mount at the root)."""
        return f"ws://{self.host}:{self.port}/media"

    def shutdown(self) -> None:
        """Stop serving, end active calls, stop an embedded backend; idempotent and bounded."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._server.shutdown()
        bridge = self.app.extensions.get("voicebridge")
        if bridge is not None:
            bridge.close()
        self._server.server_close()
        self._thread.join(JOIN_SECONDS)
        log.info("server on port %d stopped", self.port)

    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


class BoundedRequestHandler(WSGIRequestHandler):
    """werkzeug's handler with a read timeout (``timeout``) on the HTTP phase of a connection.

    A WebSocket upgrade drops the bound before the app runs: a call is long, and the session
    bounds it itself (``start_timeout_s``, then Twilio's media every 20 ms).
    """

    timeout = READ_TIMEOUT_S

    def run_wsgi(self) -> None:
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self.connection.settimeout(None)
        super().run_wsgi()


def serve(app: Flask, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          read_timeout_s: float = READ_TIMEOUT_S) -> ServerHandle:
    """Serve ``app`` with werkzeug's threaded server in a background thread (port 0 = any free).

    Every connection's reads are bounded by ``read_timeout_s`` (werkzeug's own default is none):
    an idle or slow client, or one that sends a body we refused, cannot pin a server thread.
    """
    handler = type("BoundedRequestHandler", (BoundedRequestHandler,), {"timeout": read_timeout_s})
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name=f"voicebridge-http:{server.server_port}", daemon=True)
    thread.start()
    handle = ServerHandle(app, server, thread)
    log.info("voicebridge listening on %s (webhook %s/voice, media %s)", handle.url, handle.url, handle.ws_url)
    return handle


def __getattr__(name: str) -> Any:
    # ``simulated_call`` lived here in 0.1; it is the offline stack's now (voicebridge.dev.appcall)
    if name == "simulated_call":
        from .._moved import warn_moved
        from ..dev.appcall import simulated_call

        warn_moved("voicebridge.serving.app.simulated_call", "voicebridge.dev.appcall.simulated_call")
        return simulated_call
    raise AttributeError(name)
