"""voicebridge: put an OpenAI Realtime speech-to-speech model on a Twilio phone call.

Public API (everything else is internal and may change):

``MediaSession(twilio_ws, config=None, connect=None, *, on_start=None, on_transcript_entry=None, on_keypad=None, on_transfer=None, on_end=None, on_report=None, reports=None, carrier=TWILIO)``
    One call. ``run()`` blocks in the caller's thread (the ``/media`` handler) until the call
    ends; ``close()`` is idempotent; ``metrics`` is a dict of the call's figures, including
    the frame accounting ``frames_enqueued == frames_sent + frames_flushed + frames_dropped``
    (a frame sent again after a duck's ``clear`` counts once there, and in ``frames_resent``),
    token ``usage``, and the ``transcript`` of what the caller heard. Hooks, one family with
    ``VoiceBridge``'s, each given the session first: ``on_transcript_entry(session, role, text)``
    for every entry of that transcript (caller, agent, tool, keypad, control) and
    ``on_keypad(session, digits)`` for each keypad entry -- both on a hook worker, in order,
    never on the call's threads (a slow hook drops hook calls, counted as ``hooks_dropped``,
    never the call's timing); ``on_start(session, start)`` (may return this call's
    ``BridgeConfig``; before any audio), ``on_transfer(session, target)`` once a transfer is
    decided, before the stream closes (Twilio then asks the ``<Connect action>`` URL where the
    caller goes) and ``on_end(session)`` run on the thread that called ``run()``, after the
    call's own threads have ended (docs/architecture.md, "Hooks"). The old ``on_transcript(role,
    text)`` and ``on_dtmf(digits)`` still work, with a DeprecationWarning. ``carrier``: whose
    media stream the socket carries, ``voicebridge.carrier.twilio.adapter.TWILIO`` (default) or
    ``voicebridge.carrier.telnyx.adapter.TELNYX`` (Telnyx media streaming, bidirectional RTP PCMU; docs/carriers.md).
    After the call (docs/calls.md): ``on_report(session, report)`` gets the post-call report (a
    JSON-ready dict) off the call's threads; ``reports`` a ``ReportSender`` that POSTs it.
``BridgeConfig``
    Frozen per-call settings, in groups (``connection``, ``reconnect``, ``session``, ``media``,
    ``interruption``, ``actions``, ``limits``, ``opening``, ``after_call``: small frozen
    dataclasses in ``voicebridge.config``, units in their names); the flat names below still
    construct and read it (``BridgeConfig(voice="cedar")``, ``config.voice``). The endpoint (OpenAI, or Azure with ``azure_endpoint`` /
    ``azure_deployment`` and a key or ``token_provider``), every session option (turn
    detection, noise reduction, transcription, voice, speed, token limit; checked when the
    config is made), pacing lead, barge-in threshold/debounce/duck, timeouts, reconnecting
    (``reconnect_attempts``, ``reconnect_budget``, ``session_max_age_s``, the holding line,
    the liveness bounds ``model_ping_after_s`` / ``response_created_timeout_s``), tools, call control
    (``end_call``, ``transfer_targets``), keypad, idle and length limits, the recording
    (``recording_dir``, ``recording_sink``, ``recording_consent``), the post-call report
    (``report_url``, ``report_secret``, ``report_spool_dir``, ``prices``) and analysis
    (``analysis_schema``).
``Prices`` / ``ReportSender`` / ``verify_report``
    The report's price table (USD per 1M tokens); the signed, spooled, retried webhook sender
    (``voicebridge.call.delivery``); a receiver's check of a report's signature header.
``tool`` / ``Tool`` / ``CallInfo``
    ``@tool`` makes a function the model may call: its JSON schema from the type hints, its
    description from the docstring (docs/tools.md).
``VoiceBridge``
    Flask integration (``voicebridge.serving.flaskext``): ``VoiceBridge(app, config)`` or ``init_app``
    mounts ``POST /voice`` (TwiML), its ``/voice/after`` (transfer or hang-up once the stream
    ends), WebSocket ``/media`` (simple-websocket, ``serving.mediasocket``), ``GET /healthz`` and ``GET /metrics``
    (Prometheus, when prometheus-client is installed). Hooks: ``config_for_call(params)`` and
    MediaSession's family above (``on_transcript_entry``, ``on_keypad``, ``on_transfer``,
    ``on_end``, ``on_report``). ``carrier="telnyx"`` (or ``("twilio", "telnyx")``) mounts Telnyx's
    ``POST /telnyx/voice`` (TeXML), ``/telnyx/voice/after`` and WebSocket ``/telnyx/media``, its
    webhooks checked with ``telnyx_public_key`` (Ed25519; the ``telnyx`` extra: ``pip install 'cryptography>=41'``).
    Shared state (the call cap, single-use stream tokens, the transfer board, drain records):
    the worker processes of one host through ``state_dir`` (files, the default), or several
    hosts through Redis with ``redis_url=`` (the ``redis`` extra: ``pip install 'redis>=5'``; options in
    ``redis_options``: ``prefix``, ``lease_s``, ``outage`` = ``"refuse"`` | ``"local"``,
    ``outage_max_calls``; ``voicebridge.serving.sharedstate``, docs/deploy.md "Scale-out").
    Outbound calls: ``bridge.call(to, from_, instructions=, tools=, data=, first_speaker="callee",
    amd=True, voicemail_message=)`` places one through Twilio's REST API (``account_sid``,
    ``auth_token``, ``public_url``) and returns its SID; answering-machine detection's verdict
    comes to ``POST /voice/amd``; a machine gets the voicemail message after the beep, then the
    hang-up. Twilio's refusals raise ``CallError`` subclasses (``InvalidNumber``,
    ``CallerIdNotAllowed``, ``NotPermitted``, ``RateLimited``, ``TwilioUnreachable``:
    ``voicebridge.carrier.twilio.dialing``; docs/calls.md).
``preflight(config)``
    Dial one Realtime session and close it: raises ``PreflightFailed`` with one line (the URL,
    the server's status and message, what to check) on a wrong key, a wrong URL or nothing
    listening. Call it at startup so a bad setting fails the deploy, not the first call.
``voicebridge.testing``
    Fake Twilio, Telnyx and Realtime sockets, message builders and ``BridgeCall``, to drive a session
    (or your own integration) with no network.

Minimal use inside an existing flask-sock app::

    from voicebridge import MediaSession, BridgeConfig

    @sock.route("/media")
    def media(ws):
        MediaSession(ws, BridgeConfig(api_key=os.environ["OPENAI_API_KEY"])).run()
"""
from __future__ import annotations

from typing import Any

from . import _moved

from .config import BridgeConfig
from .call.session import MediaSession
from .model.preflight import PreflightFailed, preflight
from .call.tools import CallInfo, Tool, tool
from .call.delivery import ReportSender
from .call.report import Prices
from .call.report import verify as verify_report

__all__ = ["BridgeConfig", "CallInfo", "MediaSession", "PreflightFailed", "Prices", "ReportSender", "Tool",
           "VoiceBridge", "preflight", "tool", "verify_report", "__version__"]
__version__ = "0.2.0.dev0"
_moved.install()  # the flat module paths of 0.1 (voicebridge.session, ...) still import, with a warning


def __getattr__(name: str) -> Any:
    # The Flask integration pulls in flask and twilio; import it only when asked for.
    if name == "VoiceBridge":
        from .serving.flaskext import VoiceBridge

        return VoiceBridge
    raise AttributeError(name)
