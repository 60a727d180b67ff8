"""Flask integration: mount the bridge into an existing Flask app in three lines.

::

    from voicebridge import BridgeConfig, VoiceBridge
    bridge = VoiceBridge(app, BridgeConfig(api_key=os.environ["OPENAI_API_KEY"]),
                         auth_token=os.environ["TWILIO_AUTH_TOKEN"], max_calls=20)

A Blueprint (optionally under ``url_prefix``) adds ``POST /voice`` (TwiML that connects the
call to the media stream), WebSocket ``/media`` (one :class:`MediaSession` per call),
``GET /healthz`` and ``GET /metrics`` (Prometheus text). Everything a bridge needs -- the
call counter, the signature validator, the Prometheus registry -- lives on the instance, so
two apps (or two bridges) in one process never share state, unless they are given the same
``state_dir``: then the call cap, the used stream tokens and pending transfers are shared by
every process using that directory (:mod:`voicebridge.serving.filestate`), which is how the worker
processes of ``gunicorn -w N`` act as one bridge. Given the same ``redis_url``, bridges on several
hosts act as one (:mod:`voicebridge.serving.redisstate`).

Carriers: ``carrier="twilio"`` (the default), ``"telnyx"`` or both (``("twilio", "telnyx")``).
Telnyx gets its own routes beside Twilio's: ``POST /telnyx/voice`` (the TeXML application's voice
URL, answered with ``<Connect><Stream bidirectionalMode="rtp" bidirectionalCodec="PCMU">``),
``POST /telnyx/voice/after`` and WebSocket ``/telnyx/media``; its webhooks must carry a valid
Ed25519 signature by ``telnyx_public_key`` (docs/carriers.md). A Telnyx stream, like a Twilio
one, is admitted only with the single-use stream token its webhook issued; with no Twilio auth
token the tokens are keyed by ``stream_secret`` (the same in every worker process), else by a
random key of this process.

Deploys: :meth:`VoiceBridge.drain` (or a ``drain_file`` appearing) stops new calls -- ``/healthz``
answers 503 so the load balancer sends no more -- while live calls run on to their end, and so
do the calls it already answered: a stream whose webhook was answered (its stream token) is
admitted, and webhooks still arriving in the first ``drain_grace_s`` (the load balancer's time to
notice) are answered normally; later ones get the refusal, and a stream that can no longer carry
a valid token is closed with 1013 at the upgrade.

The call cap counts calls, not sockets: a ``/media`` upgrade takes a call slot only when its
``start`` has been admitted (with signatures on: its single-use stream token redeemed), so a
replayed or silent upgrade never holds one; at most ``MAX_UNSTARTED`` upgrades per process wait
for their ``start`` (the oldest is closed to make room), and refusals are logged at most once per
kind every 10 s (:class:`~voicebridge.throttle.LogThrottle`).

Security: with an ``auth_token`` every webhook and every WebSocket upgrade must carry a valid
``X-Twilio-Signature`` for the *public* URL Twilio requested (``public_url``, else rebuilt from
``X-Forwarded-Proto``/``X-Forwarded-Host``); anything else is answered 403. Inbound message
and body sizes are bounded, and ``max_calls`` refuses call N+1 instead of degrading them all.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

from flask import Blueprint, Flask

from ..carrier.twilio import dialing
from ..model import client as realtime_client
from ..carrier import tcp
from ..carrier import seam
from ..carrier.seam import Carrier
from ..config import BridgeConfig
from ..extras import bridge_metrics
from ..call.hooks import HookRunner, legacy
from ..call.session import MediaSession
from ..audio import mulaw
from ..audio.echo import ComfortNoise
from .admission import CLOSE_TRY_AGAIN_LATER, TRANSFER_WAIT_S, Admission
from .drain import DRAIN_GRACE_S, Drain
from .mediasocket import media_route
from .webhooks import SCHEMES, SignatureCheck, WebhookViews  # first: it names a missing twilio's fix
from .outbound_calls import OutboundCalls
from .reports import BridgeReports
from .sharedstate import SharedState, board_key, open_state
from .streamtoken import DEFAULT_LIFETIME_S as TOKEN_LIFETIME_S
from .streamtoken import PARAMETER as TOKEN_PARAMETER
from .streamtoken import StreamTokens
from ..throttle import LogThrottle
from ..carrier.twilio.adapter import TWILIO, TwilioWebhooks
log = logging.getLogger(__name__)

BLUEPRINT_NAME = "voicebridge"
# A Twilio media message is ~400 bytes and ``start`` a few KB; 64 KiB leaves room without
# letting a peer make us buffer megabytes.
MAX_MESSAGE_BYTES = 64 * 1024
REFUSAL_CLOSE_S = 2.0  # how long a refused stream's peer gets to answer our close frame

HOOKS_CLOSE_S = 5.0  # close(): how long queued hook calls get to finish
CARRIERS = ("twilio", "telnyx")
TELNYX_PREFIX = "/telnyx"
"""Telnyx's routes: ``/telnyx/voice`` (the TeXML application's voice URL), ``/telnyx/voice/after``
and ``/telnyx/media``, beside Twilio's ``/voice``, ``/voice/after`` and ``/media``."""

ConfigForCall = Callable[[dict[str, str]], "BridgeConfig | None"]
TranscriptHook = Callable[[MediaSession, str, str], None]
KeypadHook = Callable[[MediaSession, str], None]
TransferHook = Callable[[MediaSession, str], None]
EndHook = Callable[[MediaSession], None]


# ---------------------------------------------------------------------------- serving state
def _process_secret(state_dir: str | None) -> str:
    """A stream-token key for a bridge with no Twilio auth token (Telnyx only): random, so valid in
    this process only -- worker processes sharing ``state_dir`` need ``stream_secret=`` instead."""
    if state_dir:
        log.warning("voicebridge: Telnyx stream tokens keyed per process; with state_dir (several workers) "
                    "pass stream_secret= (any long random string, the same in every worker)")
    return secrets.token_urlsafe(32)


def refuse(ws: Any, message: str) -> None:
    """Close a stream we will not serve with 1013, and end its connection boundedly.

    Like a call's end (``tcp.finish``): the peer's closing frame is waited for a moment (read on
    this thread on the media routes), then the socket is shut down, so a peer that never
    answers cannot keep that thread -- and with it a stopping worker process -- alive.
    """
    try:
        ws.close(reason=CLOSE_TRY_AGAIN_LATER, message=message)
    except Exception:  # noqa: BLE001 - the peer is already gone: nothing to close
        pass
    tcp.finish(ws, REFUSAL_CLOSE_S)


# ---------------------------------------------------------------------------- the extension
def warn_shadowed(app: Flask, blueprint_name: str, warned: set[str]) -> None:
    """The app's own route on one of the bridge's paths (its own ``/healthz``, say): only one
    of them is served, and the drain's 503 may never reach the load balancer. Say so once."""
    prefix = f"{blueprint_name}."
    rules = list(app.url_map.iter_rules())
    ours = {rule.rule for rule in rules if rule.endpoint.startswith(prefix)}
    clashes = sorted({f"{rule.rule} ({rule.endpoint})" for rule in rules
                      if rule.rule in ours and not rule.endpoint.startswith(prefix)} - warned)
    if clashes:
        warned.update(clashes)
        log.warning("the app's own route(s) %s are on the bridge's path(s): only one of each pair is served, "
                    "so e.g. the bridge's /healthz (503 while draining) may never reach the load balancer. "
                    "Mount the bridge with url_prefix= or rename yours.", ", ".join(clashes))


def half_signed(signed: dict[str, bool], carriers: Sequence[str]) -> str | None:
    """Why two mounted carriers, one checked and one not, are refused (None when they are not):
    the unchecked one's routes would admit anyone (a Twilio-only deploy's ``/telnyx/media``
    running calls on its OpenAI bill). Both unchecked is local use, only warned about."""
    mounted = {name: signed[name] for name in carriers}
    if len(mounted) < 2 or len(set(mounted.values())) < 2:
        return None
    checked = next(name for name, on in mounted.items() if on)
    open_one = next(name for name, on in mounted.items() if not on)
    key = "telnyx_public_key (TELNYX_PUBLIC_KEY)" if open_one == "telnyx" else "auth_token (TWILIO_AUTH_TOKEN)"
    return (f"{' and '.join(carriers)} mounted, but only {checked}'s signatures are checked: {open_one}'s routes "
            f"would admit anyone. Give {key}, or mount only the signed carrier")


class VoiceBridge:
    """Flask extension: ``VoiceBridge(app, config)`` or ``VoiceBridge(...).init_app(app)``.

    ``config_for_call(custom_parameters) -> BridgeConfig | None`` picks a per-call config
    (None keeps ``config``). The call hooks are MediaSession's, same names and signatures,
    each given the call's session first: ``on_transcript_entry(session, role, text)`` and
    ``on_keypad(session, digits)`` (on the bridge's hook worker, in order, never on the call's
    threads), ``on_transfer(session, target)`` and ``on_end(session)`` (on the request's thread
    once the call's own threads have ended; ``session.metrics`` has the figures),
    ``on_report(session, report)`` (the post-call report, off the call's threads, docs/calls.md). The old
    ``on_transcript(call_sid, role, text)``, ``on_dtmf(call_sid, digits)`` and
    ``on_call_end(metrics)`` still work, with a DeprecationWarning. ``connect`` replaces the
    Realtime connector (tests inject fakes). Hook errors are logged, never raised into a call.

    ``/media`` is served by simple-websocket with the bridge's own frame codec
    (``serving.mediasocket``), on any server flask-sock supports, honouring
    ``SOCK_SERVER_OPTIONS["max_message_size"]``. :meth:`handle_media` serves one call on any
    accepted socket (an app's own flask-sock route may hand its socket to the bridge).

    ``metrics``: Prometheus metrics at ``/metrics`` -- None (default): if prometheus-client is
    installed; True: required (an error naming the pip install if it is not); False: off.

    ``state_dir`` (a directory private to the app's worker processes on this host) shares the
    call cap, the used stream tokens and pending transfers between every bridge using it, so
    ``max_calls`` is the cap of them all (:mod:`voicebridge.serving.filestate`). ``redis_url`` shares them, and each
    bridge's drain state, between every host using that Redis instead (``state_dir`` is then
    unused): ``max_calls`` is the cap of the whole fleet, a call's webhook, stream and
    ``/voice/after`` may each reach a different host. ``redis_options``: ``prefix`` (key
    namespace), ``lease_s`` (a dead host's slots come back within it, default 30), ``outage``
    (``"refuse"``: while Redis is away new calls hear the apology; ``"local"``: admitted under
    ``outage_max_calls`` of this bridge) -- :mod:`voicebridge.serving.redisstate`. ``shared_state``: a
    :class:`~voicebridge.serving.sharedstate.SharedState` built by the app (wins over both). ``drain_file``: once this
    file exists the bridge drains (:meth:`drain`); it is looked for at most once a second, on
    requests. ``drain_grace_s``: how long into a drain webhooks are still answered normally (the
    load balancer's time to see ``/healthz`` 503; longer than a preStop sleep).
    """

    def _warn_without_credentials(self) -> None:
        """A hosted endpoint with no key and no token: every call would fail to connect (first
        caller: silence, then the apology), with nothing in the log saying why. Said once, now."""
        config, url = self.config, self.config.realtime_url
        if config.lacks_credentials and self.connect is None:
            log.warning("no api_key (or token_provider) for %s: every call will fail to connect; set "
                        "BridgeConfig(api_key=os.environ[\"OPENAI_API_KEY\"]), or openai_url= a local server",
                        url.split("?")[0])

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
        on_transcript_entry: TranscriptHook | None = None,
        on_keypad: KeypadHook | None = None,
        on_transfer: TransferHook | None = None,
        on_end: EndHook | None = None,
        on_report: Callable[[MediaSession, dict[str, Any]], None] | None = None,
        on_transcript: Callable[[str | None, str, str], None] | None = None,  # deprecated: on_transcript_entry
        on_call_end: Callable[[dict[str, Any]], None] | None = None,  # deprecated: on_end
        on_dtmf: Callable[[str | None, str], None] | None = None,  # deprecated: on_keypad
        connect: realtime_client.Connector | None = None,
        state_dir: str | None = None,
        drain_file: str | None = None,
        metrics: bool | None = None,
        drain_grace_s: float = DRAIN_GRACE_S,
        redis_url: str | None = None,
        redis_options: dict[str, Any] | None = None,
        shared_state: SharedState | None = None,
        carrier: "str | Sequence[str]" = "twilio",
        telnyx_public_key: str | None = None,
        stream_secret: str | None = None,
        account_sid: str | None = None,
        twilio_api_url: str | None = None,
        rest_client: Any = None,
    ) -> None:
        # numpy (the levels, the echo gate, the voice checks) now, in the worker's start: imported
        # at a call's setup it would hold a gevent worker's one thread for 0.1-1 s while other calls play
        mulaw.prepare()
        # the comfort noise's frames likewise (made once per process, in Python: 25 ms here that
        # the first call's setup held the worker for; docs/performance.md, sixth round)
        ComfortNoise()
        self.carriers = (carrier,) if isinstance(carrier, str) else tuple(carrier)
        if not self.carriers or set(self.carriers) - set(CARRIERS):
            raise ValueError(f"carrier must be one or more of {', '.join(CARRIERS)}, not {carrier!r}")
        if public_url and urlsplit(public_url).scheme.lower() not in SCHEMES:
            raise ValueError("public_url must start with https:// (or http://, ws://, wss://)")
        self.config = config or BridgeConfig()
        self.url_prefix = url_prefix.rstrip("/")
        self.public_url = public_url.rstrip("/") if public_url else None
        self.config_for_call = config_for_call
        self.on_transcript_entry = on_transcript_entry or legacy(
            on_transcript, "VoiceBridge(on_transcript=f(call_sid, role, text))",
            "on_transcript_entry=f(session, role, text)",
            lambda hook: lambda session, role, text: hook(session.call_sid, role, text))
        self.on_keypad = on_keypad or legacy(on_dtmf, "VoiceBridge(on_dtmf=f(call_sid, digits))",
                                             "on_keypad=f(session, digits)",
                                             lambda hook: lambda session, digits: hook(session.call_sid, digits))
        self.on_transfer = on_transfer
        self.on_end = on_end
        self.on_report = on_report  # each call's post-call report, off the call's threads (docs/calls.md)
        self._reports = BridgeReports()  # one sender per report webhook; the reports on their way at close
        self.on_call_end = legacy(on_call_end, "VoiceBridge(on_call_end=f(metrics))",
                                  "on_end=f(session) (session.metrics)", lambda hook: hook)
        self.connect = connect
        self.state_dir = state_dir
        # The cap, used tokens, transfers and drain state: files of this host, or Redis for many
        self.state = shared_state or open_state(max_calls, state_dir, redis_url, **(redis_options or {}))
        self.slots = self.state.slots
        self.transfers = self.state.transfers  # call SID -> target, for /voice/after
        self.signatures = SignatureCheck(auth_token, self.public_url)
        self._warn_without_credentials()
        self.twilio_hooks = TwilioWebhooks(auth_token)
        # With signatures on, every stream must also present the single-use token its webhook issued.
        self.telnyx = self._telnyx_webhooks(telnyx_public_key) if "telnyx" in self.carriers else None
        if half := half_signed({"twilio": self.signatures.enabled, "telnyx": bool(self.telnyx and self.telnyx.enabled)},
                               self.carriers):
            raise ValueError(half)
        secret = stream_secret or auth_token or (_process_secret(state_dir) if self.telnyx and self.telnyx.enabled
                                                 else None)
        self.tokens = StreamTokens(secret, store=self.state.used) if secret else None
        self.metrics = bridge_metrics(metrics, lambda: self.slots.active)  # NoMetrics without prometheus-client
        self.hooks = HookRunner("vb-hooks")  # on_transcript / on_dtmf of every call, off the calls' threads
        self._drain = Drain(drain_file, drain_grace_s, self.state.set_draining, lambda: self.slots.active)
        self.local_server: Any = None  # set by voicebridge.serving.app when it runs the embedded backend
        self._sessions: set[MediaSession] = set()
        self._warned_routes: set[str] = set()
        self._refusals = LogThrottle(log)
        self.admission = Admission(self.state, self.tokens, self.metrics, self._refusals)
        self.outbound = OutboundCalls(self.state, self.config, self._refusals, account_sid=account_sid,
                                      auth_token=auth_token, twilio_api_url=twilio_api_url, rest_client=rest_client)
        self._lock = threading.Lock()
        self._reports.sender(self.config)  # at once: reports a previous process spooled go out now, not after a call
        self.views = WebhookViews(self)
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
        warn_shadowed(app, self.blueprint.name, self._warned_routes)
        routes_seen: list[bool] = []

        @app.before_request
        def _routes_added_later() -> None:  # the app's own routes are often added after the mount
            if not routes_seen:
                routes_seen.append(True)
                warn_shadowed(app, self.blueprint.name, self._warned_routes)
        if self.telnyx is not None and not self.telnyx.enabled:
            log.warning("!!! voicebridge: no Telnyx public key -- Telnyx webhook signatures are NOT checked; "
                        "local use only; set TELNYX_PUBLIC_KEY before exposing it to the internet. !!!")
        if "twilio" in self.carriers and not self.signatures.enabled:
            log.warning("!!! voicebridge: no Twilio auth token -- X-Twilio-Signature is NOT checked; anyone "
                        "who finds this URL can place calls on your OpenAI bill. Local use only; set "
                        "TWILIO_AUTH_TOKEN before exposing it to the internet. !!!")
        log.info("voicebridge mounted for %s at %s/ (max calls: %s%s, public url: %s)",
                 " and ".join(self.carriers), self.url_prefix, self.slots.limit or "unlimited", self._sharing(),
                 self.public_url or "from request")

    def _sharing(self) -> str:
        if self.state.backend != "file":
            return f", shared through {self.state.backend}"
        return f", shared through {self.state_dir}" if self.state_dir else ""

    def _blueprint(self) -> Blueprint:
        bp = Blueprint(BLUEPRINT_NAME, __name__)
        bp.before_request(self.views.guard)
        bp.add_url_rule("/healthz", "healthz", self.views.healthz, methods=["GET"])
        bp.add_url_rule("/metrics", "metrics", self.views.metrics_view, methods=["GET"])
        if "twilio" in self.carriers:
            bp.add_url_rule("/voice", "voice", self.views.voice, methods=["GET", "POST"])
            bp.add_url_rule("/voice/after", "after_stream", self.views.after_stream, methods=["GET", "POST"])
            bp.add_url_rule("/voice/amd", "amd_result", self.outbound.amd_result, methods=["POST"])
            media_route(bp, "/media", "media", self.handle_media)
        if "telnyx" in self.carriers:
            bp.add_url_rule(f"{TELNYX_PREFIX}/voice", "telnyx_voice", self.views.telnyx_voice, methods=["POST"])
            bp.add_url_rule(f"{TELNYX_PREFIX}/voice/after", "telnyx_after", self.views.telnyx_after, methods=["POST"])
            media_route(bp, f"{TELNYX_PREFIX}/media", "telnyx_media", self.handle_telnyx_media)
        return bp

    # ------------------------------------------------------------------ outbound calls
    def call(self, to: str, from_: str, *, instructions: str | None = None, tools: Sequence[str] | None = None,
             data: dict[str, str] | None = None, first_speaker: str = "callee", amd: bool = True,
             voicemail_message: str | None = None, greeting_instructions: str | None = None,
             status_callback: str | None = None, timeout_s: int | None = None) -> str:
        """Place an outbound call through Twilio's REST API; its answer comes to this bridge's ``/voice``.

        ``instructions``, ``tools`` (names of the config's tools; None: all), ``data`` (strings the
        session gets as custom parameters) and the opening (``first_speaker``: "callee" waits for
        their "hello", "agent" greets at once; ``amd``: hold for Twilio's answering-machine verdict
        and leave ``voicemail_message`` -- or a message from ``voicemail_instructions`` -- on a
        machine) form the call's plan (voicebridge.carrier.twilio.dialing), kept on the shared state and redeemed
        once by the call's stream. Needs ``public_url``, ``account_sid`` and ``auth_token`` (or
        ``rest_client``). Returns the call SID; Twilio's refusals raise
        :class:`~voicebridge.carrier.twilio.dialing.CallError` subclasses, ValueError a plan that cannot apply.
        """
        if "twilio" not in self.carriers:
            raise ValueError("outbound calls go through Twilio: mount the bridge with carrier 'twilio'")
        plan = dialing.CallPlan(instructions, tuple(tools) if tools is not None else None, dict(data or {}),
                                first_speaker, amd, voicemail_message, greeting_instructions)
        base = f"{self.public_url}{self.url_prefix}" if self.public_url else None
        return self.outbound.call(to, from_, plan, base, status_callback, timeout_s)

    @property
    def rest_client(self) -> Any:
        """The Twilio REST client outbound calls use (built on the first call; an app may set its own)."""
        return self.outbound.rest_client

    @rest_client.setter
    def rest_client(self, client: Any) -> None:
        self.outbound.rest_client = client

    @staticmethod
    def _telnyx_webhooks(public_key: str | None) -> Any:
        from ..carrier.telnyx.adapter import TelnyxWebhooks  # its signature check needs the telnyx extra

        return TelnyxWebhooks(public_key)

    def handle_telnyx_media(self, ws: Any) -> None:
        """One call on an accepted Telnyx media WebSocket (as :meth:`handle_media` for Twilio)."""
        from ..carrier.telnyx.adapter import TELNYX

        self.handle_media(ws, TELNYX)

    def handle_media(self, ws: Any, carrier: Carrier = TWILIO) -> None:
        """One call on an accepted Twilio WebSocket: run its MediaSession (admitted under the cap
        at ``start``), fold its metrics in. Returns when the call has ended.

        The ``/media`` route calls this; an app's own flask-sock route may call it too. The
        upgrade itself holds no call slot: only a stream whose ``start`` is admitted does
        (``_started``), so replayed, forged or silent upgrades never use up the cap.
        """
        if self.draining and not self._in_drain_grace(TOKEN_LIFETIME_S + 1.0):
            # No stream token issued before the drain (or in its grace) can still be valid.
            self.metrics.refused.labels(stage="draining").inc()
            self._refusals.warning("media draining", "media stream refused: draining")
            refuse(ws, "voicebridge draining, try again later")
            return
        session = self._new_session(ws, carrier)
        with self._lock:
            self._sessions.add(session)
        self.admission.upgraded(session, ws)
        started = time.monotonic()
        try:
            session.run()
        finally:
            self._reports.ended(session)  # (before it leaves the live calls: a closing bridge sees it in one of them)
            with self._lock:
                self._sessions.discard(session)
            if self.admission.ended(session):
                self._finished(session, time.monotonic() - started)
            elif session.close_reason == "no start":
                self._refusals.warning("no start", "media stream closed: no Twilio start (not a call: a stray or "
                                       "replayed upgrade)")

    # ------------------------------------------------------------------ per call
    def _new_session(self, ws: Any, carrier: Carrier = TWILIO) -> MediaSession:
        return MediaSession(ws, self.config, self.connect, on_start=self._started,
                            on_transcript_entry=self.on_transcript_entry, on_keypad=self.on_keypad,
                            on_transfer=self._transferring, hooks=self.hooks, carrier=carrier,
                            on_report=self.on_report, reports=self._reports.sender)

    def _started(self, session: MediaSession, start: seam.Start) -> BridgeConfig | None:
        """MediaSession's on_start: admit the stream (its token, then a call slot), let the app
        choose its config."""
        ws = self.admission.socket_at_start(session)
        params = dict(start.custom_parameters)
        token = params.pop(TOKEN_PARAMETER, None)
        plan_id = params.pop(dialing.PLAN_PARAMETER, None)
        session.custom_parameters = dict(params)  # the app's and the carrier's; never our token or plan id
        if plan_id is not None:
            session.custom_parameters.setdefault("Direction", "outbound-api")  # as Twilio's webhook says it
        if self.tokens is not None and self._signed(session.carrier):
            if not self.admission.token_valid(session, ws, token, start.call_sid):
                return None
        elif self.draining and not self._in_drain_grace(TOKEN_LIFETIME_S + 1.0):
            return self.admission.refuse(session, ws, "draining", "draining")  # no token to prove its webhook
        plan = self.outbound.plan(plan_id, session.log) if plan_id is not None else None
        if plan_id is not None and plan is None:  # forged, replayed or expired: we do not know what it is for
            return self.admission.refuse(session, ws, "plan", "outbound call plan unknown, used or expired")
        if not self.admission.admit(session, ws):
            return None
        if plan is None:
            return self._chosen_config(session, params)
        session.custom_parameters.update(plan.data)
        session.answer_source = self.outbound.answer_source(start.call_sid)
        return plan.apply(self._chosen_config(session, {**params, **plan.data}) or self.config)

    def _chosen_config(self, session: MediaSession, params: dict[str, str]) -> BridgeConfig | None:
        """``config_for_call``'s choice for the call (None: the bridge's config)."""
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

    def _signed(self, carrier: Carrier) -> bool:
        """Whether ``carrier``'s webhooks are checked: only then must its streams show a token (a
        token from an unchecked webhook proves nothing; the other carrier's key may be why tokens exist)."""
        if carrier.name == "telnyx":
            return self.telnyx is not None and self.telnyx.enabled
        return self.signatures.enabled

    def _in_drain_grace(self, extra_s: float) -> bool:
        return self._drain.in_grace(extra_s)

    def _transferring(self, session: MediaSession, target: str) -> None:
        """The call ends in a transfer: note it for ``/voice/after`` before the stream closes
        (Twilio asks as soon as it has; any worker sharing the state directory may answer)."""
        if self.on_transfer is not None:
            try:
                self.on_transfer(session, target)
            except Exception:  # noqa: BLE001 - the app's hook: the transfer goes on
                session.log.exception("on_transfer hook failed")
        if not session.call_sid:
            return
        now = time.time()
        try:
            self.transfers.put(board_key(session.call_sid), target, now + TRANSFER_WAIT_S, now)
        except (ValueError, OSError) as exc:  # a malformed SID from the peer, or a failing disk
            session.log.error("transfer not recorded (%s); the call will be hung up", exc)

    def _finished(self, session: MediaSession, duration_s: float) -> None:
        snapshot = (m := session.metrics) | {"duration_s": m["duration_s"] or round(duration_s, 3)}  # (no start)
        self.metrics.record_call(snapshot)
        session.log.info("call end: %s after %.1f s (%d active here)", snapshot.get("close_reason"), duration_s,
                         self.slots.active)
        if (self.on_end or self.on_call_end) and not self.hooks.flush(HOOKS_CLOSE_S, session.log):
            session.log.warning("on_end runs before every earlier hook call of the call has run (hooks busy)")
        for hook, arg, what in ((self.on_end, session, "on_end"), (self.on_call_end, snapshot, "on_call_end")):
            if hook is not None:
                try:
                    hook(arg)
                except Exception:  # noqa: BLE001 - the call is over; a hook failure is only logged
                    session.log.exception("%s hook failed", what)

    # ------------------------------------------------------------------ lifecycle
    @property
    def active_calls(self) -> int:
        """Calls running in this process (``slots.active_all``: in every process sharing the state)."""
        return self.slots.active

    @property
    def draining(self) -> bool:
        """True once :meth:`drain` was called or the drain file appeared (looked for at most once a second)."""
        return self._drain.active

    @property
    def drain_file(self) -> str | None:
        return self._drain.file

    @property
    def drain_grace_s(self) -> float:
        return self._drain.grace_s

    @drain_grace_s.setter
    def drain_grace_s(self, seconds: float) -> None:
        self._drain.grace_s = seconds

    def drain(self) -> None:
        """Take no new calls; let live ones run on to their end (idempotent, one-way).

        ``/healthz`` answers 503 ``draining`` at once, so the load balancer sends no more calls.
        Calls already answered are not dropped: a stream carrying a stream token (issued before
        the drain, or in its grace) is admitted. Webhooks still arriving in the first
        ``drain_grace_s`` are answered normally (a load balancer needs a few probes to notice),
        later ones with the refusal TwiML; a media upgrade that can no longer carry a valid token
        is closed with 1013. Safe to call from a signal handler: it sets two fields and logs.
        """
        self._drain.start()

    def close(self) -> None:
        """End every active call and stop an embedded backend we own (idempotent)."""
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.close("server shutdown")
        server, self.local_server = self.local_server, None
        if server is not None:
            server.stop()
        if not self.hooks.close(HOOKS_CLOSE_S):
            log.error("a hook did not return within %.1f s of the bridge closing", HOOKS_CLOSE_S)
        self._reports.close(HOOKS_CLOSE_S, sessions)
        self.state.close()
        self.metrics.update_active()
