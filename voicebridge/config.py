"""One frozen configuration object per call: no globals, nothing shared between sessions."""
from __future__ import annotations

import dataclasses
import difflib
import re
import warnings
from urllib.parse import quote, urlsplit
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .call.analysis import ANALYSIS_INSTRUCTIONS
from .call.report import Prices
from .call.tools import END_CALL, TRANSFER_CALL, Tool, end_call_tool, transfer_tool

DEFAULT_MODEL = "gpt-realtime"
OPENAI_REALTIME_BASE = "wss://api.openai.com/v1/realtime"
DEFAULT_INSTRUCTIONS = (
    "You are a friendly, concise phone assistant. Speak naturally and keep answers short "
    "unless the caller asks for detail."
)
WHISPER_CONTINUE_INSTRUCTIONS = (
    "You were interrupted by a quiet sound on the line: it may have been the caller whispering. "
    "If the caller's last audio holds words, answer them. Otherwise continue your previous answer "
    "exactly where it was cut off, without repeating what was already said and without mentioning "
    "the interruption."
)
DEFAULT_GREETING = "Greet the caller briefly and ask how you can help."
CONTINUE_INSTRUCTIONS = (
    "You were interrupted by a noise on the line, not by the caller. Continue your previous "
    "answer exactly where it was cut off, without repeating what was already said and "
    "without mentioning the interruption."
)

FILLER_INSTRUCTIONS = (
    "You are still waiting for a lookup. In a few words, tell the caller you are still checking and "
    "will be right back. Do not make anything up."
)
GOODBYE_INSTRUCTIONS = "Say a short, friendly goodbye to the caller. Do not ask anything."
TRANSFER_INSTRUCTIONS = "In one short sentence, tell the caller you are connecting them now."
IDLE_NUDGE_INSTRUCTIONS = "The caller has been silent for a while. Briefly ask whether they are still there."
IDLE_GOODBYE_INSTRUCTIONS = ("The caller has not answered. Say you are ending the call because the line is "
                             "quiet, and say goodbye.")
VOICEMAIL_INSTRUCTIONS = ("You reached a voicemail box and the beep has sounded. Leave a short voicemail message: "
                          "who you are, why you called, how to call back. Do not ask anything.")
VOICEMAIL_WORDS = "You reached a voicemail box and the beep has sounded. Say exactly these words and nothing else: "
FIRST_SPEAKERS = ("agent", "callee")
WRAP_UP_INSTRUCTIONS = ("The call is about to reach its time limit. Wrap up in one or two sentences and say "
                        "goodbye.")
DTMF_TEMPLATE = "The caller entered {digits} on the phone keypad."
RESUME_INSTRUCTIONS = (
    "The line dropped for a moment while you were speaking. Continue your previous answer from where it "
    "was cut off, without repeating what was already said and without mentioning the interruption."
)
VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")
TURN_DETECTION = ("server_vad", "semantic_vad")
EAGERNESS = ("low", "medium", "high", "auto")
NOISE_REDUCTION = ("near_field", "far_field")
TOOL_CHOICES = ("auto", "none", "required")
TRANSFER_TARGET = re.compile(r"(\+[1-9][0-9]{6,14}|sips?:[^\s<>\"]{3,200})\Z")
"""A transfer destination: an E.164 number or a SIP URI."""


def check_realtime_url(url: str) -> None:
    """A Realtime URL is a WebSocket URL with a host: ``https://`` is the commonest slip, and it
    would otherwise fail every call ("scheme https is invalid") instead of the config."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        fixed = ("wss" if scheme == "https" else "ws") + url[len(scheme):]
        raise ValueError(f"openai_url must be a ws:// or wss:// URL, not {scheme}://: use {fixed[:200]!r}")
    if scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"openai_url must be a full ws:// or wss:// URL with a host "
                         f"(e.g. wss://api.openai.com/v1/realtime?model=gpt-realtime), not {url[:200]!r}")


@dataclass(frozen=True)
class ConnectionOptions:
    """The Realtime connection: OpenAI (default), a full URL, or Azure OpenAI."""

    model: str = DEFAULT_MODEL
    openai_url: str | None = None  # full ws(s):// URL; default derives from model (or from azure_*)
    api_key: str | None = field(default=None, repr=False)  # OpenAI: bearer key; Azure: the api-key header
    token_provider: Callable[[], str] | None = field(default=None, repr=False, compare=False)  # bearer token per dial
    azure_endpoint: str | None = None  # https://<resource>.openai.azure.com (http:// means ws://: local tests)
    azure_deployment: str | None = None
    api_version: str | None = None  # Azure: set = the deployment-style URL, else /openai/v1/realtime?model=
    connect_timeout_s: float = 10.0
    receive_timeout_s: float = 0.2


@dataclass(frozen=True)
class ReconnectOptions:
    """Reconnecting: a lost socket or an expired session is replaced without ending the call
    (docs/reliability.md); when the model is gone for good, a spoken apology rather than dead air."""

    attempts: int = 4  # failed sessions (lost, unresponsive, refused) per window before the apology; 0 = never
    budget: int = 5  # replacement sessions of any cause per window before the apology
    window_s: float = 60.0  # the window both bounds above count in
    backoff_ms: int = 250  # first redial after about this, doubled per end in the window (+-25 %), <= 4 s
    ping_after_s: float | None = 5.0  # a Realtime socket quiet this long gets a WebSocket ping; None = never
    pong_timeout_s: float = 5.0  # nothing heard this long after the ping: the session is dead and replaced
    response_created_timeout_s: float = 5.0  # a response.create unanswered this long: the session is dead and replaced
    hold_after_ms: int = 2000  # a reconnect longer than this: the caller hears the holding line
    hold_audio: bytes | None = field(default=None, repr=False)  # mu-law; None = the bundled "one moment"
    session_max_age_s: float | None = 50 * 60  # planned rollover at a quiet moment past this (the cap is 60 min)
    replay_items: int = 200  # conversation items replayed into a new session, newest kept
    resume_instructions: str = RESUME_INSTRUCTIONS  # after a reconnect that cut an answer
    apology: bool = True
    apology_audio: bytes | None = field(default=None, repr=False)  # mu-law; None = bundled prompt


@dataclass(frozen=True)
class SessionOptions:
    """The Realtime session: every option a phone deployment tunes (checked when the config is made)."""

    instructions: str = DEFAULT_INSTRUCTIONS
    voice: str = "marin"  # one of VOICES, or a custom voice id "voice_..."
    speed: float = 1.0  # 0.25-1.5
    # The first response's *instructions* (what the agent is told to do, not words it reads out);
    # None = the caller speaks first. ``greeting=`` is the old name (DeprecationWarning).
    greeting_instructions: str | None = DEFAULT_GREETING
    greeting_interruptible: bool = False
    max_output_tokens: int | None = None  # per response; None = the service's "inf"
    turn_detection: str | None = "server_vad"  # server_vad | semantic_vad | None (no VAD: not for phone calls)
    vad_eagerness: str = "auto"  # semantic_vad: low | medium | high | auto
    vad_threshold: float = 0.5  # server_vad: 0-1
    vad_prefix_padding_ms: int = 300  # server_vad
    vad_silence_duration_ms: int = 500  # server_vad
    vad_idle_timeout_ms: int | None = None  # server_vad: the service answers a silence this long itself
    # A committed caller turn is answered (the bridge asks for the response itself, so it can leave
    # a backchannel or the agent's own echo unanswered: the wire says create_response=false).
    vad_create_response: bool = True
    # True: the service cancels the response on any VAD start, echo and backchannels included.
    # False (default): the bridge cancels, on a barge-in it confirmed (docs/barge-in.md).
    vad_interrupt_response: bool = False
    noise_reduction: str | None = None  # near_field | far_field | None
    transcription_model: str | None = "gpt-4o-mini-transcribe"
    transcription_language: str | None = None  # ISO-639-1, e.g. "en"
    transcription_prompt: str | None = None


@dataclass(frozen=True)
class MediaOptions:
    """The audio in both directions: the pacing lead, marks, appends to the model, the carrier socket's bounds."""

    lead_ms: int = 40
    late_tolerance_ms: float = 5.0
    # A Twilio mark after every this many frames (and after an item's last): each is a message out
    # and its echo one in. Between echoes what the caller heard runs on the send clock; 25 saved no
    # CPU this box could measure (docs/performance.md, "Third round").
    mark_every_frames: int = 5
    # Caller audio goes to the model in appends of this much (a multiple of 20 ms): fewer, larger
    # messages cost the bridge less CPU; the model hears the audio at most this much later.
    append_ms: int = 100
    # Caller audio kept while the Realtime connection is not yet configured, then sent in order.
    inbound_buffer_ms: int = 5000
    carrier_receive_timeout_s: float = 0.2
    # A Twilio send blocked longer than this (the peer stopped reading) ends the call; applied as
    # SO_SNDTIMEO on the socket and watched by voicebridge.call.carrier_link. Taken from the config the
    # session is built with (not from a per-call config). None or 0 = unbounded (not recommended).
    carrier_send_timeout_s: float | None = 2.0


@dataclass(frozen=True)
class InterruptionOptions:
    """Barge-in, backchannels and the agent's own echo (docs/barge-in.md)."""

    enabled: bool = True
    threshold_dbfs: float = -35.0
    debounce_frames: int = 5  # loud frames in a run before a barge-in is considered
    dip_frames: int = 1  # quiet frames tolerated inside a loud run (0: consecutive only)
    voicing: bool = True  # confirm only once a voiced frame was heard (coughs, clicks do not)
    noise_margin_db: float | None = 12.0  # the threshold is at least this far above the noise floor (None: fixed)
    duck: bool = True
    # The duck also clears what Twilio still holds of the agent (the caller stops hearing it one
    # network hop after the first loud frame) and sends the unheard frames again on a release.
    duck_clear: bool = True
    duck_fuse_ms: int = 1000
    # Backchannels ("mm-hm", "yeah") while the agent talks duck it briefly and the answer resumes;
    # a barge-in confirms only after this much of the caller's speech (0 = at the debounce).
    ignore_backchannels: bool = True
    min_speech_ms: int = 600
    # A shorter voiced utterance keeps the agent paused until its words decide (a backchannel:
    # resume; "wait": interrupt), at most this long (docs/barge-in.md); 0 = resume at once.
    backchannel_hold_ms: int = 2500
    # A held utterance the model's VAD took no turn for (a reverberant "wait" on a speakerphone),
    # or a confirmed barge-in it took none for, is committed by the bridge (input_audio_buffer.commit)
    # so its transcript decides; needs a transcription_model. Off: such a voice resumes the agent
    # (a barge-in: the model is asked to continue after false_trigger_ms; docs/barge-in.md).
    backchannel_commit: bool = True
    echo_gate: bool = True  # tell echo from the caller by what was played
    echo_margin_db: float = 3.0  # how much louder than the expected echo a frame must be to be the caller
    echo_comfort_noise: bool = True  # echo-only frames reach the model as noise at the line's floor
    echo_suppression_db: float = 30.0  # with echo_comfort_noise off: echo frames this much quieter (0 = as they are)
    false_trigger_ms: int = 500
    continue_instructions: str = CONTINUE_INSTRUCTIONS
    whisper_continue_instructions: str = WHISPER_CONTINUE_INSTRUCTIONS  # ... after a barge-in on a whisper


@dataclass(frozen=True)
class ActionOptions:
    """What the agent can do besides talk: tools (docs/tools.md), hang-up and transfer, the keypad."""

    tools: tuple[Tool, ...] = ()
    tool_choice: str = "auto"
    tool_timeout_s: float = 10.0  # per call, unless the tool sets its own
    tool_workers: int = 4  # handler threads per call at most (started only when a tool runs)
    tool_filler_after_ms: int = 1500  # a lookup slower than this gets a spoken "still checking"; 0 = never
    tool_result_max_bytes: int = 16 * 1024  # a larger result (UTF-8) is not sent: the model gets an error; 0 = no cap
    tool_filler_instructions: str = FILLER_INSTRUCTIONS
    end_call: bool = False  # offer the end_call tool
    hangup_on_goodbye: bool = False  # also end the call when the agent says goodbye without the tool
    end_call_timeout_s: float = 15.0  # longest wait for the goodbye's last mark before hanging up anyway
    transfer_targets: Mapping[str, str] = field(default_factory=dict)  # name -> +E.164 or sip: URI
    goodbye_instructions: str = GOODBYE_INSTRUCTIONS
    transfer_instructions: str = TRANSFER_INSTRUCTIONS
    dtmf_to_model: bool = True
    dtmf_terminator: str = "#"
    dtmf_timeout_ms: int = 2000
    dtmf_min_interval_ms: int = 1000  # entries faster than this reach the model together (a flood: one per interval)
    dtmf_template: str = DTMF_TEMPLATE


@dataclass(frozen=True)
class LimitOptions:
    """Idle and length limits, and the bounds on a call's lifecycle (None = off)."""

    idle_nudge_s: float | None = 12.0  # silence (nobody speaking) before the agent checks on the caller
    idle_hangup_s: float | None = 10.0  # further silence after the nudge before goodbye and hang-up
    idle_nudge_instructions: str = IDLE_NUDGE_INSTRUCTIONS
    idle_goodbye_instructions: str = IDLE_GOODBYE_INSTRUCTIONS
    max_call_s: float | None = None  # hard limit on the call's length
    wrap_up_s: float = 30.0  # the wrap-up turn starts this long before max_call_s
    wrap_up_instructions: str = WRAP_UP_INSTRUCTIONS
    safety_fuse_ms: int = 30000
    # A socket that has not sent Twilio's ``start`` within this is not a call: it is closed (and
    # its call slot freed). The Realtime service is only dialed once ``start`` has arrived.
    start_timeout_s: float = 5.0
    join_timeout_s: float = 5.0


@dataclass(frozen=True)
class OpeningOptions:
    """Who speaks first and answering-machine detection (docs/calls.md). Inbound: the agent greets."""

    first_speaker: str = "agent"
    callee_silence_ms: int = 2000
    amd: bool = False  # hold the opening for Twilio's async AMD verdict (set by VoiceBridge.call)
    amd_timeout_s: float = 30.0  # no verdict by then: treated as "unknown" (the conversation opens)
    voicemail_instructions: str = VOICEMAIL_INSTRUCTIONS  # the message the model leaves after the beep
    voicemail_message: str | None = None  # fixed words instead (the model is told to say exactly these)


@dataclass(frozen=True)
class AfterCallOptions:
    """The recording, the post-call report and its analysis (docs/calls.md)."""

    recording_dir: str | None = None  # a stereo WAV per call here (left: the caller, right: what the caller heard)
    # the finished WAV's path -> where it was stored (its location goes into the report)
    recording_sink: Callable[[str], "str | None"] | None = field(default=None, repr=False, compare=False)
    recording_consent: str | None = None  # words the agent says first (before its greeting) when recording
    report_url: str | None = None  # each call's report is POSTed here (signed, retried, spooled)
    report_secret: str | None = field(default=None, repr=False)  # HMAC-SHA256 key of the report's signature header
    report_spool_dir: str | None = None  # undelivered reports wait here (default: <tmp>/voicebridge-reports)
    report_retention_s: float = 7 * 24 * 3600.0  # an undelivered report is deleted from the spool after this
    prices: Prices = field(default_factory=Prices)  # USD per 1M tokens, for the report's cost estimate
    analysis_schema: Mapping[str, Any] | None = None  # JSON schema of the fields wanted
    analysis_instructions: str = ANALYSIS_INSTRUCTIONS
    analysis_timeout_s: float = 10.0  # the longest the call's end waits for the answer


GROUPS: dict[str, type] = {
    "connection": ConnectionOptions, "reconnect": ReconnectOptions, "session": SessionOptions,
    "media": MediaOptions, "interruption": InterruptionOptions, "actions": ActionOptions, "limits": LimitOptions,
    "opening": OpeningOptions, "after_call": AfterCallOptions,
}
"""``BridgeConfig``'s groups: its field name -> the group's class."""

FLAT: dict[str, tuple[str, str]] = {
    "model": ("connection", "model"), "openai_url": ("connection", "openai_url"),
    "api_key": ("connection", "api_key"), "token_provider": ("connection", "token_provider"),
    "azure_endpoint": ("connection", "azure_endpoint"), "azure_deployment": ("connection", "azure_deployment"),
    "api_version": ("connection", "api_version"), "connect_timeout_s": ("connection", "connect_timeout_s"),
    "openai_receive_timeout_s": ("connection", "receive_timeout_s"),
    "reconnect_attempts": ("reconnect", "attempts"), "reconnect_budget": ("reconnect", "budget"),
    "reconnect_window_s": ("reconnect", "window_s"), "reconnect_backoff_ms": ("reconnect", "backoff_ms"),
    "model_ping_after_s": ("reconnect", "ping_after_s"),
    "model_pong_timeout_s": ("reconnect", "pong_timeout_s"),
    "response_created_timeout_s": ("reconnect", "response_created_timeout_s"),
    "hold_after_ms": ("reconnect", "hold_after_ms"), "hold_audio": ("reconnect", "hold_audio"),
    "session_max_age_s": ("reconnect", "session_max_age_s"), "replay_items": ("reconnect", "replay_items"),
    "resume_instructions": ("reconnect", "resume_instructions"), "apology": ("reconnect", "apology"),
    "apology_audio": ("reconnect", "apology_audio"), "instructions": ("session", "instructions"),
    "voice": ("session", "voice"), "speed": ("session", "speed"),
    "greeting_instructions": ("session", "greeting_instructions"),
    "greeting_interruptible": ("session", "greeting_interruptible"),
    "max_output_tokens": ("session", "max_output_tokens"), "turn_detection": ("session", "turn_detection"),
    "vad_eagerness": ("session", "vad_eagerness"), "vad_threshold": ("session", "vad_threshold"),
    "vad_prefix_padding_ms": ("session", "vad_prefix_padding_ms"),
    "vad_silence_duration_ms": ("session", "vad_silence_duration_ms"),
    "vad_idle_timeout_ms": ("session", "vad_idle_timeout_ms"),
    "vad_create_response": ("session", "vad_create_response"),
    "vad_interrupt_response": ("session", "vad_interrupt_response"),
    "noise_reduction": ("session", "noise_reduction"),
    "transcription_model": ("session", "transcription_model"),
    "transcription_language": ("session", "transcription_language"),
    "transcription_prompt": ("session", "transcription_prompt"), "lead_ms": ("media", "lead_ms"),
    "late_tolerance_ms": ("media", "late_tolerance_ms"), "mark_every_frames": ("media", "mark_every_frames"),
    "append_ms": ("media", "append_ms"), "inbound_buffer_ms": ("media", "inbound_buffer_ms"),
    "twilio_receive_timeout_s": ("media", "carrier_receive_timeout_s"),
    "twilio_send_timeout_s": ("media", "carrier_send_timeout_s"), "barge_in": ("interruption", "enabled"),
    "barge_in_threshold_dbfs": ("interruption", "threshold_dbfs"),
    "barge_in_frames": ("interruption", "debounce_frames"), "barge_in_dip_frames": ("interruption", "dip_frames"),
    "barge_in_voicing": ("interruption", "voicing"), "noise_margin_db": ("interruption", "noise_margin_db"),
    "duck": ("interruption", "duck"), "duck_clear": ("interruption", "duck_clear"),
    "duck_fuse_ms": ("interruption", "duck_fuse_ms"),
    "ignore_backchannels": ("interruption", "ignore_backchannels"),
    "barge_in_min_speech_ms": ("interruption", "min_speech_ms"),
    "backchannel_hold_ms": ("interruption", "backchannel_hold_ms"),
    "backchannel_commit": ("interruption", "backchannel_commit"), "echo_gate": ("interruption", "echo_gate"),
    "echo_margin_db": ("interruption", "echo_margin_db"),
    "echo_comfort_noise": ("interruption", "echo_comfort_noise"),
    "echo_suppression_db": ("interruption", "echo_suppression_db"),
    "false_trigger_ms": ("interruption", "false_trigger_ms"),
    "continue_instructions": ("interruption", "continue_instructions"),
    "whisper_continue_instructions": ("interruption", "whisper_continue_instructions"), "tools": ("actions", "tools"),
    "tool_choice": ("actions", "tool_choice"), "tool_timeout_s": ("actions", "tool_timeout_s"),
    "tool_workers": ("actions", "tool_workers"), "tool_filler_after_ms": ("actions", "tool_filler_after_ms"),
    "tool_result_max_bytes": ("actions", "tool_result_max_bytes"),
    "tool_filler_instructions": ("actions", "tool_filler_instructions"), "end_call": ("actions", "end_call"),
    "hangup_on_goodbye": ("actions", "hangup_on_goodbye"),
    "end_call_timeout_s": ("actions", "end_call_timeout_s"),
    "transfer_targets": ("actions", "transfer_targets"),
    "goodbye_instructions": ("actions", "goodbye_instructions"),
    "transfer_instructions": ("actions", "transfer_instructions"),
    "dtmf_to_model": ("actions", "dtmf_to_model"), "dtmf_terminator": ("actions", "dtmf_terminator"),
    "dtmf_timeout_ms": ("actions", "dtmf_timeout_ms"),
    "dtmf_min_interval_ms": ("actions", "dtmf_min_interval_ms"), "dtmf_template": ("actions", "dtmf_template"),
    "idle_nudge_s": ("limits", "idle_nudge_s"), "idle_hangup_s": ("limits", "idle_hangup_s"),
    "idle_nudge_instructions": ("limits", "idle_nudge_instructions"),
    "idle_goodbye_instructions": ("limits", "idle_goodbye_instructions"),
    "max_call_s": ("limits", "max_call_s"), "wrap_up_s": ("limits", "wrap_up_s"),
    "wrap_up_instructions": ("limits", "wrap_up_instructions"), "safety_fuse_ms": ("limits", "safety_fuse_ms"),
    "start_timeout_s": ("limits", "start_timeout_s"), "join_timeout_s": ("limits", "join_timeout_s"),
    "first_speaker": ("opening", "first_speaker"), "callee_silence_ms": ("opening", "callee_silence_ms"),
    "amd": ("opening", "amd"), "amd_timeout_s": ("opening", "amd_timeout_s"),
    "voicemail_instructions": ("opening", "voicemail_instructions"),
    "voicemail_message": ("opening", "voicemail_message"), "recording_dir": ("after_call", "recording_dir"),
    "recording_sink": ("after_call", "recording_sink"),
    "recording_consent": ("after_call", "recording_consent"), "report_url": ("after_call", "report_url"),
    "report_secret": ("after_call", "report_secret"), "report_spool_dir": ("after_call", "report_spool_dir"),
    "report_retention_s": ("after_call", "report_retention_s"), "prices": ("after_call", "prices"),
    "analysis_schema": ("after_call", "analysis_schema"),
    "analysis_instructions": ("after_call", "analysis_instructions"),
    "analysis_timeout_s": ("after_call", "analysis_timeout_s"),
}
"""Every flat setting (``BridgeConfig(voice=...)``, ``config.voice``) -> (its group, its name there)."""


def _host(url: str | None) -> str:
    """A URL's host name, in lower case, without its port ("" if it has none)."""
    try:
        return urlsplit(url or "").hostname or ""
    except ValueError:  # (a malformed URL: check_realtime_url says what is wrong with it)
        return ""


def _flat_kinds() -> dict[str, str]:
    """The flat settings that are on/off (``bool``) or whole numbers (``int``), from the groups'
    annotations (found once: every call's config is checked against them)."""
    kinds = {(group, f.name): str(getattr(f.type, "__name__", f.type))
             for group, cls in GROUPS.items() for f in dataclasses.fields(cls)}
    return {name: kinds[where] for name, where in FLAT.items() if kinds[where] in ("bool", "int")}


_FLAT_KINDS = _flat_kinds()


@dataclass(frozen=True, init=False)
class BridgeConfig:
    """Everything a MediaSession needs to know; build one per call (``replace`` is cheap).

    Settings come in groups (``connection``, ``reconnect``, ``session``, ``media``,
    ``interruption``, ``actions``, ``limits``, ``opening``, ``after_call``), each a small frozen
    dataclass: ``BridgeConfig(session=SessionOptions(voice="cedar"), interruption=InterruptionOptions(
    min_speech_ms=400))``. The flat names of 0.1 are still accepted and read, as a flat mapping
    too (``BridgeConfig(voice="cedar", barge_in_min_speech_ms=400)``, ``BridgeConfig(**mapping)``,
    ``config.voice``); ``FLAT`` says where each lives. A flat name given with its group applies
    on top of the group.

    Every duration names its unit: ``*_ms`` milliseconds, ``*_s`` seconds (``*_frames``: 20 ms
    frames, ``*_db`` / ``*_dbfs``: decibels). ``api_key`` is never logged (excluded from repr).

    ``openai_url`` is the Realtime WebSocket to dial, whole: a full ``ws://`` or ``wss://`` URL
    with its query (``wss://api.openai.com/v1/realtime?model=gpt-realtime``; an Azure
    deployment's URL; the embedded local server's ``ws://127.0.0.1:PORT/v1/realtime?model=...``).
    Unset, it is derived from ``model`` (OpenAI) or from ``azure_*``; set, it wins over both.
    The credentials still come from ``api_key`` / ``token_provider`` (an Azure host gets the
    ``api-key`` header). An ``https://`` URL is refused here, naming the ``wss://`` to use.
    """

    connection: ConnectionOptions = field(default_factory=ConnectionOptions)
    reconnect: ReconnectOptions = field(default_factory=ReconnectOptions)
    session: SessionOptions = field(default_factory=SessionOptions)
    media: MediaOptions = field(default_factory=MediaOptions)
    interruption: InterruptionOptions = field(default_factory=InterruptionOptions)
    actions: ActionOptions = field(default_factory=ActionOptions)
    limits: LimitOptions = field(default_factory=LimitOptions)
    opening: OpeningOptions = field(default_factory=OpeningOptions)
    after_call: AfterCallOptions = field(default_factory=AfterCallOptions)

    def __init__(self, *, connection: ConnectionOptions | None = None, reconnect: ReconnectOptions | None = None,
                 session: SessionOptions | None = None, media: MediaOptions | None = None,
                 interruption: InterruptionOptions | None = None, actions: ActionOptions | None = None,
                 limits: LimitOptions | None = None, opening: OpeningOptions | None = None,
                 after_call: AfterCallOptions | None = None,
                 **flat: Any) -> None:
        given = {"connection": connection, "reconnect": reconnect, "session": session, "media": media,
                 "interruption": interruption, "actions": actions, "limits": limits, "opening": opening,
                 "after_call": after_call}
        if "greeting" in flat:  # the old name of greeting_instructions
            warnings.warn("BridgeConfig(greeting=...) is deprecated: it is the first response's instructions; "
                          "use greeting_instructions=", DeprecationWarning, stacklevel=2)
            flat.setdefault("greeting_instructions", flat.pop("greeting"))
        changes: dict[str, dict[str, Any]] = {}
        for name, value in flat.items():
            if name not in FLAT:
                close = difflib.get_close_matches(name, FLAT, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise TypeError(f"BridgeConfig got an unexpected keyword argument {name!r}{hint}")
            group, member = FLAT[name]
            changes.setdefault(group, {})[member] = value
        for group, cls in GROUPS.items():
            value = given[group] if given[group] is not None else cls()
            if not isinstance(value, cls):
                raise TypeError(f"BridgeConfig({group}=...) takes {cls.__name__}, not {type(value).__name__}")
            object.__setattr__(self, group, dataclasses.replace(value, **changes[group]) if group in changes else value)
        for name, (group, member) in FLAT.items():  # the flat reads: plain attributes, nothing per read
            object.__setattr__(self, name, getattr(getattr(self, group), member))
        self._check()

    if TYPE_CHECKING:  # the flat reads, for type checkers (set in __init__)
        def __getattr__(self, name: str) -> Any: ...

    def _check(self) -> None:
        self._check_types()
        self._check_session()
        self._check_connection()
        if self.first_speaker not in FIRST_SPEAKERS:
            raise ValueError(f"first_speaker must be one of {FIRST_SPEAKERS}, not {self.first_speaker!r}")
        if self.callee_silence_ms < 0 or self.amd_timeout_s <= 0:
            raise ValueError("callee_silence_ms must be >= 0 and amd_timeout_s > 0")
        if not isinstance(self.tools, (tuple, list)):
            raise ValueError(f"tools must be a tuple of @tool functions, not {type(self.tools).__name__}"
                             " (tools=(lookup,) for one)")
        for t in self.tools:
            if not isinstance(t, Tool):
                raise ValueError(f"tools: {getattr(t, '__name__', t)!r} is not a tool: decorate it with "
                                 "@voicebridge.tool (its description and parameters come from it)")
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise ValueError(f"tool names must be unique: {names}")
        reserved = {END_CALL, TRANSFER_CALL} & set(names)
        if reserved:
            raise ValueError(f"{sorted(reserved)} are the bridge's own tools: use end_call / transfer_targets")
        for name, target in self.transfer_targets.items():
            if not TRANSFER_TARGET.match(target):
                raise ValueError(f"transfer target {name!r}: {target!r} is not an E.164 number or a SIP URI")
        if self.tool_result_max_bytes < 0 or self.tool_workers < 1:
            raise ValueError("tool_result_max_bytes must be >= 0 (0: no cap) and tool_workers >= 1")
        if self.dtmf_terminator and self.dtmf_terminator not in "0123456789*#ABCD":
            raise ValueError("dtmf_terminator must be one keypad key")
        if self.tool_choice not in TOOL_CHOICES and self.tool_choice not in {t.name for t in self.all_tools}:
            raise ValueError(f"tool_choice must be one of {TOOL_CHOICES} or the name of an offered tool, "
                             f"not {self.tool_choice!r}")

    def _check_types(self) -> None:
        """Every on/off setting is a bool and every whole-millisecond one an int, named when not:
        ``backchannel_commit="no"`` was accepted and, being a non-empty string, left it on."""
        for name, kind in _FLAT_KINDS.items():
            value = getattr(self, name)
            if kind == "bool" and not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, not {value!r}")
            if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{name} must be a whole number, not {value!r}")

    def _check_session(self) -> None:
        """Invalid combinations are refused here, not by the service in the middle of a call."""
        if self.voice not in VOICES and not self.voice.startswith("voice_"):
            raise ValueError(f"voice must be one of {VOICES} or a custom voice id (voice_...), not {self.voice!r}")
        if not 0.25 <= self.speed <= 1.5:
            raise ValueError(f"speed must be between 0.25 and 1.5, not {self.speed}")
        if self.turn_detection is not None and self.turn_detection not in TURN_DETECTION:
            raise ValueError(f"turn_detection must be one of {TURN_DETECTION} or None, not {self.turn_detection!r}")
        if self.vad_eagerness not in EAGERNESS:
            raise ValueError(f"vad_eagerness must be one of {EAGERNESS}, not {self.vad_eagerness!r}")
        if self.vad_eagerness != "auto" and self.turn_detection != "semantic_vad":
            raise ValueError("vad_eagerness applies to turn_detection='semantic_vad' only")
        if self.vad_idle_timeout_ms is not None and self.turn_detection != "server_vad":
            raise ValueError("vad_idle_timeout_ms applies to turn_detection='server_vad' only")
        if not 0.0 <= self.vad_threshold <= 1.0:
            raise ValueError(f"vad_threshold must be between 0 and 1, not {self.vad_threshold}")
        if min(self.vad_prefix_padding_ms, self.vad_silence_duration_ms, self.vad_idle_timeout_ms or 0) < 0:
            raise ValueError("VAD durations must not be negative")
        if self.noise_reduction is not None and self.noise_reduction not in NOISE_REDUCTION:
            raise ValueError(f"noise_reduction must be one of {NOISE_REDUCTION} or None, not {self.noise_reduction!r}")
        if self.max_output_tokens is not None and not 1 <= self.max_output_tokens <= 4096:
            raise ValueError("max_output_tokens must be between 1 and 4096 (or None for no limit)")
        if self.vad_interrupt_response and self.turn_detection is None:
            raise ValueError("vad_interrupt_response applies to turn_detection='server_vad' or 'semantic_vad' only")
        if not 0 <= self.barge_in_min_speech_ms <= 3000:
            raise ValueError(f"barge_in_min_speech_ms must be between 0 and 3000, not {self.barge_in_min_speech_ms}")
        if not 0 <= self.backchannel_hold_ms <= 10000:
            raise ValueError(f"backchannel_hold_ms must be between 0 and 10000, not {self.backchannel_hold_ms}")
        if (self.transcription_language or self.transcription_prompt) and not self.transcription_model:
            raise ValueError("transcription_language/_prompt need a transcription_model")

    def _check_connection(self) -> None:
        if self.openai_url is not None:
            check_realtime_url(self.openai_url)
        if self.azure_endpoint and not self.azure_endpoint.startswith(("https://", "http://")):
            raise ValueError("azure_endpoint must be an https:// URL (http:// for a local test server)")
        if self.azure_endpoint and not self.azure_deployment:
            raise ValueError("azure_endpoint needs azure_deployment")
        if self.api_version and "preview" in self.api_version:
            raise ValueError(f"api_version {self.api_version!r} is a preview version: it speaks the retired beta "
                             "Realtime interface; leave api_version unset to use the GA /openai/v1/realtime path")
        if self.barge_in_dip_frames < 0 or self.echo_margin_db < 0 or self.echo_suppression_db < 0:
            raise ValueError("barge_in_dip_frames, echo_margin_db and echo_suppression_db must not be negative")
        if self.append_ms % 20 or not 20 <= self.append_ms <= 500:
            raise ValueError(f"append_ms must be a multiple of 20 between 20 and 500, not {self.append_ms}")
        if self.lead_ms % 20 or not 0 <= self.lead_ms <= 1000:
            raise ValueError(f"lead_ms must be a multiple of 20 between 0 and 1000, not {self.lead_ms}")
        if min(self.reconnect_attempts, self.reconnect_budget, self.reconnect_backoff_ms) < 0:
            raise ValueError("reconnect_attempts, reconnect_budget and reconnect_backoff_ms must not be negative")
        if min(self.reconnect_window_s, self.model_pong_timeout_s, self.response_created_timeout_s,
               1.0 if self.model_ping_after_s is None else self.model_ping_after_s) <= 0:
            raise ValueError("reconnect_window_s, model_ping_after_s, model_pong_timeout_s and "
                             "response_created_timeout_s must be positive")

    @property
    def first_words(self) -> str | None:
        """The greeting's instructions, with the recording's consent line said before it (when set)."""
        if not (self.recording_consent and (self.recording_dir or self.recording_sink)):
            return self.greeting_instructions
        then = f" Then: {self.greeting_instructions}" if self.greeting_instructions else " Then wait for the caller."
        return f"Before anything else, say exactly this sentence: \"{self.recording_consent}\"{then}"

    @property
    def voicemail_request(self) -> str:
        """The voicemail turn's instructions: the fixed words if set, else ``voicemail_instructions``."""
        if self.voicemail_message:
            return f"{VOICEMAIL_WORDS}{self.voicemail_message}"
        return self.voicemail_instructions

    @property
    def all_tools(self) -> tuple[Tool, ...]:
        """The app's tools plus the enabled call-control tools: what the model is offered."""
        extra: list[Tool] = []
        if self.end_call:
            extra.append(end_call_tool())
        if self.transfer_targets:
            extra.append(transfer_tool(self.transfer_targets))
        return tuple(self.tools) + tuple(extra)

    @property
    def realtime_url(self) -> str:
        """The WebSocket URL to dial: the override if given, else Azure's or OpenAI's GA endpoint."""
        if self.openai_url:
            return self.openai_url
        if self.azure_endpoint:
            base = "ws" + self.azure_endpoint.rstrip("/")[4:]  # https -> wss, http -> ws
            deployment = quote(self.azure_deployment or "", safe="")
            if self.api_version:
                return f"{base}/openai/realtime?api-version={quote(self.api_version, safe='')}&deployment={deployment}"
            return f"{base}/openai/v1/realtime?model={deployment}"
        return f"{OPENAI_REALTIME_BASE}?model={self.model}"

    @property
    def is_azure(self) -> bool:
        return bool(self.azure_endpoint) or _host(self.openai_url).endswith(".openai.azure.com")

    @property
    def lacks_credentials(self) -> bool:
        """A hosted endpoint (OpenAI's, or Azure's) with no key and no token: every dial fails.
        Judged by the URL's host, whatever its case or port (``wss://API.OPENAI.COM:443/...``)."""
        host = _host(self.realtime_url)
        hosted = host == "api.openai.com" or self.is_azure or host.endswith(".cognitiveservices.azure.com")
        return hosted and not self.api_key and self.token_provider is None

    @property
    def lead_frames(self) -> int:
        return max(0, round(self.lead_ms / 20))

    def replace(self, **changes: object) -> "BridgeConfig":
        """A copy with ``changes`` applied (per-call overrides)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
