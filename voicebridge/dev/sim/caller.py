"""A simulated Twilio (or Telnyx) caller: dials any Media Streams bridge over WebSocket and measures it.

It sends exactly what Twilio sends (``connected``, ``start``, one 160-byte ``media`` every
20 ms on an absolute monotonic schedule, ``stop``) and answers the bridge like Twilio does
(``media`` is played out in real time, ``mark`` is echoed once its audio played, ``clear``
drops the buffer and echoes all pending marks). The logic lives in sans-IO parts
(:mod:`.playout`, :mod:`.runner`, :mod:`.metrics`); this module is the thin threaded shell:

``carrier="telnyx"`` speaks Telnyx's media streaming messages instead (:mod:`.wire`): the same
caller, the same behaviour (Telnyx documents the same mark and clear semantics), other frames.

* the **sender** thread owns the 20 ms schedule, advances the playout, echoes due marks and
  sends the caller's audio;
* the **receiver** thread reads the bridge's messages;
* one lock serializes all shared state *and* socket writes, so echoes leave in playout order.

With ``acoustics`` (:mod:`.acoustics`) the frame sent is what a microphone in a real room would
pick up: the caller's own sound plus the echo of what they heard and background noise. The
caller's own level metrics keep measuring only their own sound.

Both threads are bounded by ``max_seconds`` and always joined.
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import http.client
import json
import logging
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import websocket

from ...audio.mulaw import FRAME_MS, dbfs
from .acoustics import NOISE_KINDS, Acoustics, NoiseBed, Speakerphone
from .metrics import CallerMetrics
from .playout import PlayoutBuffer, Played
from .recording import CallRecorder
from .report import CallReport
from .runner import ScriptRunner
from .script import DEFAULT_SCRIPT, Step, parse_script, syntax
from .sounds import resolve
from .webhook import NextVerbs, follow_action, follow_action_telnyx, place, place_telnyx
from .wire import CARRIERS, WIRES

log = logging.getLogger(__name__)

EventCallback = Callable[[str, float, dict], None]
AfterStream = Callable[[], "NextVerbs | None"]

AUDIBLE_DBFS = -50.0
"""Agent audio below this level (e.g. padded silence) does not count as the agent talking."""
AGENT_STOP_S = 0.1
"""No agent audio for this long ends an ``agent_audio_start``/``stop`` pair."""
RECV_POLL_S = 0.25
CLOSE_WAIT_S = 2.0



def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


class SimulatedCaller:
    """One simulated call to ``url``; :meth:`run` blocks until it ends and returns the report."""

    def __init__(self, url: str, script: "list[Step] | str | None" = None, *,
                 headers: "Mapping[str, str] | None" = None,
                 custom_parameters: "Mapping[str, str] | None" = None,
                 record_path: "str | None" = None, max_seconds: float = 120.0,
                 lead_frames: int = 2, on_event: "EventCallback | None" = None,
                 connect_timeout: float = 10.0, acoustics: "Acoustics | None" = None,
                 call_sid: "str | None" = None, account_sid: "str | None" = None,
                 carrier: str = "twilio", after_stream: "AfterStream | None" = None) -> None:
        self.url = url
        self.after_stream = after_stream  # the carrier's request to <Connect action> (Dial.after)
        if script is None or isinstance(script, str):
            self.steps: list[Step] = parse_script(DEFAULT_SCRIPT if script is None else script)
        else:
            self.steps = list(script)
        self.headers = dict(headers or {})
        self.custom_parameters = {str(k): str(v) for k, v in (custom_parameters or {}).items()}
        self.record_path = record_path
        self.max_seconds = max_seconds
        self.connect_timeout = connect_timeout
        self.on_event = on_event
        self.acoustics = acoustics  # the room the caller is in (echo, noise); None: a clean line
        self.wire = WIRES[carrier](call_sid, account_sid)  # the carrier whose messages the caller speaks
        wire = self.wire
        self.stream_sid, self.call_sid, self.account_sid = wire.stream_sid, wire.call_sid, wire.account_sid
        self.report = CallReport(url=url, stream_sid=self.stream_sid, call_sid=self.call_sid,
                                 record_path=record_path)
        self._metrics = CallerMetrics(self.report, lead_frames)
        self._recorder = CallRecorder()
        self._lock = threading.Lock()
        self._bridge_closed = threading.Event()
        self._hung_up = threading.Event()
        self._ws: Optional[websocket.WebSocket] = None
        self._seq = 0
        self._t0 = 0.0
        self._playout: Optional[PlayoutBuffer] = None
        self._agent_playing = False
        self._last_agent_t = 0.0

    # -- public ------------------------------------------------------------------------------
    def run(self) -> CallReport:
        """Resolve the script's audio, dial, run the call, hang up; never raises for call errors."""
        runner = ScriptRunner(self.steps, resolve(self.steps))
        try:
            self._ws = websocket.create_connection(
                self.url, timeout=self.connect_timeout, enable_multithread=True,
                header=[f"{k}: {v}" for k, v in self.headers.items()])
        except Exception as exc:  # noqa: BLE001 - any dial failure ends the call the same way
            log.warning("could not connect to %s: %s", self.url, exc)
            self.report.ended_by = "error"
            hint = ""
            if "403" in str(exc) and "X-Twilio-Signature" not in self.headers:
                hint = " (the bridge checks Twilio signatures: pass --auth-token or set TWILIO_AUTH_TOKEN)"
            self.report.errors.append(f"connect failed: {exc}{hint}")
            return self.report
        self._ws.settimeout(RECV_POLL_S)
        try:
            self._call(runner)
        finally:
            self._ws.shutdown()
        if self.report.ended_by == "bridge":
            self._follow_action()
        if self.record_path:
            self._recorder.write(self.record_path)
        return self.report

    # -- call lifecycle ------------------------------------------------------------------------
    def _call(self, runner: ScriptRunner) -> None:
        with self._lock:
            self._send(self.wire.connected(), numbered=False)
            self._t0 = time.monotonic()
            self._playout = PlayoutBuffer(self._t0)
            self._send(self.wire.start(self.custom_parameters))
            self._emit(0.0, "call_start", {"stream_sid": self.stream_sid})
        sender = threading.Thread(target=self._guard, args=(self._send_loop, runner), name="sim-sender", daemon=True)
        receiver = threading.Thread(target=self._guard, args=(self._recv_loop,), name="sim-receiver", daemon=True)
        receiver.start()
        sender.start()
        sender.join(self.max_seconds + 5.0)
        self._hung_up.set()
        receiver.join(CLOSE_WAIT_S + 2 * RECV_POLL_S + 1.0)
        if sender.is_alive() or receiver.is_alive():
            self.report.errors.append("a caller thread did not stop in time")
            self._ws.shutdown()  # unblocks any socket call still pending
            sender.join(2.0)
            receiver.join(2.0)
        with self._lock:
            self._metrics.finish(time.monotonic() - self._t0, self._playout, self._t0)
            self.report.events.sort(key=lambda e: e["t"])

    def _follow_action(self) -> None:
        """The bridge closed the stream: the carrier goes on with the call where ``<Connect
        action>`` says (a transfer, a hang-up); a failing URL is what a caller would hear as the
        carrier's "application error", so it is a problem of the call."""
        if self.after_stream is None:
            return
        try:
            verbs = self.after_stream()
        except (ValueError, OSError, http.client.HTTPException) as exc:  # (a malformed answer too)
            self.report.errors.append(f"after the stream: {exc or type(exc).__name__}")
            return
        if verbs is not None:
            self.report.after_stream, self.report.next_verbs = verbs.describe(), dataclasses.asdict(verbs)
            self._emit(time.monotonic() - self._t0, "after_stream", {"next": verbs.describe()})

    def _guard(self, target: Callable[..., None], *args: Any) -> None:
        """Run a thread body; an unexpected exception ends the call instead of vanishing."""
        try:
            target(*args)
        except Exception as exc:  # noqa: BLE001
            log.exception("simulated caller thread failed")
            with self._lock:
                self.report.errors.append(f"{threading.current_thread().name}: {exc!r}")
                self.report.ended_by = "error"
            self._bridge_closed.set()

    # -- sender ---------------------------------------------------------------------------------
    def _send_loop(self, runner: ScriptRunner) -> None:
        """One frame per 20 ms on absolute deadlines t0 + k*20 ms: late ticks never shift later ones."""
        k = 0
        while True:
            deadline = self._t0 + k * FRAME_MS / 1000
            if self._bridge_closed.wait(max(0.0, deadline - time.monotonic())):
                return
            now = time.monotonic()
            if now - self._t0 >= self.max_seconds:
                with self._lock:
                    self.report.ended_by = "max_duration"
                    self._emit(now - self._t0, "hangup", {"reason": "max_duration"})
                break
            with self._lock:
                if not self._tick(runner, k, now):
                    break
            k += 1
        self._hang_up()

    def _tick(self, runner: ScriptRunner, k: int, now: float) -> bool:
        """Play out, echo due marks, send the caller's frame; False once the script is over."""
        t = now - self._t0
        played = self._playout.advance(now)
        self._recorder.add_heard(played.audio)
        audible = self._note_agent_audio(played, now)
        for name in played.marks:
            self._echo_mark(t, name, cleared=False)
        tick = runner.tick(k * int(FRAME_MS), audible)
        for name, detail in tick.events:
            if name == "interrupt":
                self._metrics.onset(t, bool(detail.get("agent_talking")))
            self._emit(t, name, detail)
        if tick.done:
            return False
        for key in tick.keys:
            self._send(self.wire.dtmf(key))
        # The microphone: the caller's own frame, plus echo and noise when in a room.
        sent = tick.frame if self.acoustics is None else self.acoustics.frame(tick.frame, played.audio)
        self._recorder.add_said(sent)
        # The caller's own sound only: echo or noise must not count as the caller speaking.
        self._metrics.levels(dbfs(tick.frame), dbfs(played.audio))
        self.report.frames_sent += 1
        self._send(self.wire.media(k, int(FRAME_MS), sent))
        return True

    def _note_agent_audio(self, played: Played, now: float) -> bool:
        """Timeline start/stop of agent playout; returns whether the agent was audible."""
        t = now - self._t0
        if played.agent_bytes:
            self._last_agent_t = now
            if not self._agent_playing:
                self._agent_playing = True
                self._emit(t, "agent_audio_start", {})
        elif self._agent_playing and now - self._last_agent_t >= AGENT_STOP_S:
            self._agent_playing = False
            self._emit(self._last_agent_t - self._t0, "agent_audio_stop", {})
        return played.agent_bytes > 0 and dbfs(played.audio) > AUDIBLE_DBFS

    def _hang_up(self) -> None:
        """Send ``stop`` and a close frame, unless the bridge already went away."""
        self._hung_up.set()
        if self._bridge_closed.is_set():
            return
        with self._lock:
            try:
                self._send(self.wire.stop())
                self._ws.send_close(websocket.STATUS_NORMAL)
            except (websocket.WebSocketException, OSError) as exc:
                log.info("bridge gone before stop: %s", exc)

    # -- receiver -------------------------------------------------------------------------------
    def _recv_loop(self) -> None:
        """Read until the bridge closes, or (after hang-up) until it has had time to close."""
        hangup_deadline: Optional[float] = None
        while True:
            if self._hung_up.is_set():
                hangup_deadline = hangup_deadline or time.monotonic() + CLOSE_WAIT_S
                if time.monotonic() > hangup_deadline:
                    return
            try:
                opcode, data = self._ws.recv_data()
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketConnectionClosedException, OSError):
                opcode, data = websocket.ABNF.OPCODE_CLOSE, b""
            except websocket.WebSocketException as exc:
                # Garbage on the wire ends the stream like a close; after our stop it is only
                # trailing noise (some dev servers write an HTTP response after the close frame).
                if not self._hung_up.is_set():
                    with self._lock:
                        self.report.errors.append(f"websocket protocol error: {exc}")
                opcode, data = websocket.ABNF.OPCODE_CLOSE, b""
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self._on_closed()
                return
            self._on_message(opcode, data)

    def _on_closed(self) -> None:
        with self._lock:
            if not self._hung_up.is_set():
                self.report.ended_by = "bridge"
                self._emit(time.monotonic() - self._t0, "bridge_closed", {})
            self._bridge_closed.set()

    def _on_message(self, opcode: int, data: bytes) -> None:
        now = time.monotonic()
        msg, problem = self.wire.check(opcode, data)
        with self._lock:
            t = now - self._t0
            if problem:
                self._metrics.message("invalid")
                if self.report.invalid_messages <= 5:
                    self.report.errors.append(problem)
                log.warning("invalid message from bridge: %s", problem)
                return
            kind = msg["event"]
            self._metrics.message(kind)
            if kind == "media":
                payload = base64.b64decode(msg["media"]["payload"])
                self._playout.media(payload, now)
                self._metrics.media(t, payload)
            elif kind == "mark":
                name = str(msg["mark"]["name"])
                self._metrics.mark_received(t, name)
                self._emit(t, "mark", {"name": name})
                for echo in self._playout.mark(name, now):
                    self._echo_mark(t, echo, cleared=False)
            else:
                pending = self._playout.buffered_bytes
                echoes = self._playout.clear(now)
                self._metrics.clear(t)
                self._emit(t, "clear", {"dropped_ms": pending // 8, "pending_marks": len(echoes)})
                for echo in echoes:
                    self._echo_mark(t, echo, cleared=True)

    # -- output helpers (call with the lock held) ---------------------------------------------
    def _echo_mark(self, t: float, name: str, cleared: bool) -> None:
        self._metrics.mark_echoed(t, name, cleared)
        self._emit(t, "mark_echo", {"name": name, "cleared": cleared})
        self._send(self.wire.mark(name))

    def _send(self, msg: dict, numbered: bool = True) -> None:
        """Send one carrier message; numbered ones get the next sequence number and the stream id."""
        if numbered:
            self._seq += 1
            msg = self.wire.numbered(self._seq, msg)
        if self._bridge_closed.is_set():
            return
        try:
            self._ws.send(json.dumps(msg, separators=(",", ":")))
        except (websocket.WebSocketException, OSError) as exc:
            log.info("send failed (%s): bridge closed", exc)
            if not self._hung_up.is_set() and not self._bridge_closed.is_set():
                self.report.ended_by = "bridge"
                self._emit(time.monotonic() - self._t0, "bridge_closed", {"error": str(exc)})
            self._bridge_closed.set()

    def _emit(self, t: float, name: str, detail: dict) -> None:
        self._metrics.event(t, name, detail)
        if self.on_event is not None:
            try:
                self.on_event(name, t, detail)
            except Exception:  # noqa: BLE001 - a broken progress printer must not end the call
                log.exception("on_event callback failed")


# -- placing the call ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Dial:
    """Where and how to open the media stream (straight to the URL, or as its webhook said), and
    the carrier's request once the bridge has closed it (``SimulatedCaller(after_stream=...)``)."""

    url: str
    headers: dict[str, str]
    custom_parameters: dict[str, str]
    call_sid: str
    account_sid: str
    after: "AfterStream | None" = None


def dial_as_twilio(media_url: str, auth_token: "str | None", webhook_url: "str | None" = None) -> Dial:
    """With an auth token: the signed webhook first, then the signed stream with its parameters
    (the bridge's stream token among them), as Twilio places a call. Without: the URL as given."""
    call_sid, account_sid = _sid("CA"), _sid("AC")
    if not auth_token:
        return Dial(media_url, {}, {}, call_sid, account_sid)
    placed = place(media_url, auth_token, call_sid, account_sid, webhook_url)
    return Dial(placed.stream_url, placed.headers, placed.custom_parameters, call_sid, account_sid,
                lambda: follow_action(placed, auth_token, call_sid, account_sid))


def dial_as_telnyx(media_url: str, private_key: "str | None", webhook_url: "str | None" = None) -> Dial:
    """With a test key's private half (the bridge has its public half): the Ed25519-signed TeXML
    webhook first, then the stream with the parameters it gave (the stream token among them), as
    Telnyx places a call. Without: the URL as given."""
    wire = WIRES["telnyx"]()
    if not private_key:
        return Dial(media_url, {}, {}, wire.call_sid, wire.account_sid)
    placed = place_telnyx(media_url, private_key, wire.call_sid, wire.account_sid, time.time(), webhook_url)
    return Dial(placed.stream_url, placed.headers, placed.custom_parameters, wire.call_sid, wire.account_sid,
                lambda: follow_action_telnyx(placed, private_key, wire.call_sid, wire.account_sid, time.time()))


def dial(carrier: str, media_url: str, secret: "str | None", webhook_url: "str | None" = None) -> Dial:
    """Place the call as ``carrier`` does (``secret``: Twilio's auth token, or Telnyx's test private key)."""
    if carrier == "telnyx":
        return dial_as_telnyx(media_url, secret, webhook_url)
    return dial_as_twilio(media_url, secret, webhook_url)


def add_twilio_arguments(p: argparse.ArgumentParser) -> None:
    """``--auth-token`` (or TWILIO_AUTH_TOKEN) and ``--webhook-url``: for ``call`` and ``verify``."""
    p.add_argument("--auth-token", default=os.environ.get("TWILIO_AUTH_TOKEN") or None, metavar="TOKEN",
                   help="the bridge's Twilio auth token (default: $TWILIO_AUTH_TOKEN): place the call as Twilio "
                        "does, the signed webhook, then the signed stream with the token it issued")
    p.add_argument("--webhook-url", metavar="URL",
                   help="the voice webhook (default: the media URL with /media -> /voice, ws -> http)")


def add_carrier_arguments(p: argparse.ArgumentParser) -> None:
    """``--carrier`` and ``--telnyx-private-key``: whose wire format the caller speaks."""
    p.add_argument("--carrier", choices=CARRIERS, default="twilio",
                   help="the carrier whose messages the caller speaks (default: twilio; telnyx: point the URL at "
                        "the bridge's /telnyx/media)")
    p.add_argument("--telnyx-private-key", default=os.environ.get("TELNYX_PRIVATE_KEY") or None, metavar="KEY",
                   help="with --carrier telnyx: the private half (base64, 32 bytes) of a test key pair whose public "
                        "half the bridge has as TELNYX_PUBLIC_KEY (default: $TELNYX_PRIVATE_KEY): place the call "
                        "as Telnyx does, the signed TeXML webhook first")


# -- command line -----------------------------------------------------------------------------
_QUIET_EVENTS = {"mark", "mark_echo", "step"}


def _key_value(sep: str) -> Callable[[str], "tuple[str, str]"]:
    def parse(text: str) -> "tuple[str, str]":
        key, found, value = text.partition(sep)
        if not found or not key.strip():
            raise argparse.ArgumentTypeError(f"expected KEY{sep}VALUE, got {text!r}")
        return key.strip(), value.strip()
    return parse


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="voicebridge call",
                                description="Call a Twilio Media Streams (or Telnyx media streaming) bridge as a "
                                            "simulated caller.",
                                epilog=syntax() + f"\n\nThe default script: {DEFAULT_SCRIPT}",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", help="bridge WebSocket URL, e.g. ws://127.0.0.1:5050/media")
    p.add_argument("--script", default=DEFAULT_SCRIPT,
                   help="compact caller script, comma-separated steps (default: a short call, printed below: "
                        "greeting, question, interruption, a click, goodbye; `voicebridge demo` runs the "
                        "fuller demo call)")
    p.add_argument("--record", metavar="WAV", help="write a stereo WAV (left: caller, right: heard)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON on stdout")
    p.add_argument("--param", action="append", default=[], type=_key_value("="), metavar="K=V",
                   help="start.customParameters entry (repeatable)")
    p.add_argument("--header", action="append", default=[], type=_key_value(":"), metavar="K:V",
                   help="extra WebSocket upgrade header, e.g. X-Twilio-Signature:... (repeatable)")
    p.add_argument("--max-seconds", type=float, default=120.0, help="hard limit on call length")
    add_twilio_arguments(p)
    add_carrier_arguments(p)
    p.add_argument("--verbose", "-v", action="store_true", help="also print marks and script steps")
    p.add_argument("--strict-timing", action="store_true",
                   help="exit 1 on timing figures too (stalls, frames ahead of real time), not only on problems")
    room = p.add_argument_group("acoustics", "what the caller's microphone picks up besides the caller")
    room.add_argument("--echo-db", type=float, metavar="DB",
                      help="speakerphone: send back what the caller hears at this level (e.g. -20; <= 0)")
    room.add_argument("--echo-delay-ms", type=int, default=60, metavar="MS",
                      help="echo delay (default: 60)")
    room.add_argument("--echo-model", choices=("speakerphone", "room"), default="speakerphone",
                      help="speakerphone: a linear, band-limited delay line; room: a saturating loudspeaker, "
                           "a room's response and the phone band (voicebridge.dev.sim.room, needs numpy)")
    room.add_argument("--noise", choices=NOISE_KINDS, metavar="KIND",
                      help=f"background noise: {', '.join(NOISE_KINDS)}")
    room.add_argument("--noise-dbfs", type=float, default=-45.0, metavar="DB",
                      help="background noise level, long-run RMS (default: -45)")
    room.add_argument("--seed", type=int, default=0, help="noise seed: the same seed sends the same noise")
    return p


def _acoustics(args: argparse.Namespace) -> "Acoustics | None":
    """The room from the command line, or None (a clean line) when neither echo nor noise is asked for."""
    echo = None
    if args.echo_db is not None and args.echo_model == "room":
        from .room import LoudspeakerEcho
        echo = LoudspeakerEcho(args.echo_db, delay_ms=args.echo_delay_ms, seed=args.seed)
    elif args.echo_db is not None:
        echo = Speakerphone(args.echo_db, delay_ms=args.echo_delay_ms)
    noise = NoiseBed(args.noise, args.noise_dbfs, seed=args.seed) if args.noise else None
    if echo is None and noise is None:
        return None
    return Acoustics(echo, noise)


def _summary(report: CallReport) -> list[str]:
    r = report
    lines = [
        f"call ended by {r.ended_by} after {r.duration_ms / 1000:.1f} s; "
        f"sent {r.frames_sent} frames, received {r.frames_received} ({r.utterances} utterance(s))",
        "time to first audio: " + ("none" if r.time_to_first_audio_ms is None else f"{r.time_to_first_audio_ms} ms")
        + f"; heard {r.heard_agent_ms:.0f} ms of agent audio, "
        f"{r.cleared_ms:.0f} ms cleared",
        (f"media gaps p50 {r.gap_p50_ms} ms, p99 {r.gap_p99_ms} ms, max |dev| {r.gap_max_dev_ms} ms; "
         f"bursts {r.bursts}, stalls {r.stalls}, pauses for the caller {r.yields}, most ahead of real time "
         f"{r.ahead_max_ms:.0f} ms; frame sizes {r.frame_sizes}" if r.gap_p50_ms is not None else
         "media gaps: none to measure (fewer than two frames of the agent's audio)"),
        f"marks: {r.marks_received} received, {r.marks_echoed} echoed ({r.marks_cleared} by clear); "
        f"clears: {r.clears}; messages {r.messages_received}",
    ]
    for i, it in enumerate(r.interruptions, 1):
        lines.append(f"interruption {i} at {it.onset_ms / 1000:.2f} s (agent talking: {it.agent_talking}): "
                     f"clear after {it.clear_ms} ms, "
                     + ("no media after the onset" if it.last_media_after_ms is None else
                        f"last media +{it.last_media_after_ms} ms ({it.frames_after_onset} frames)")
                     + f", heard {it.heard_after_ms} ms after onset"
                     + (f"; every clear after the onset {it.clears_after_ms} ms" if len(it.clears_after_ms) > 1 else "")
                     + ("; the agent was not heard again" if it.heard_again_ms is None else
                        f"; the agent was heard again {it.heard_again_ms:.0f} ms after the onset")
                     + f" ({it.heard_3s_ms:.0f} ms of it in the 3 s after the onset)")
    if r.after_stream:
        lines.append(f"after the stream: {r.after_stream}")
    if r.tone:
        lines.append(f"tone: {r.tone}")
    if r.record_path:
        lines.append(f"recording: {r.record_path}")
    lines += verdict_lines(r)
    return lines


def verdict_lines(r: CallReport) -> list[str]:
    """The call's problems, then its timing figures (under load a figure, not a verdict)."""
    problems, timing = r.problems(), r.timing_problems()
    paced = "; ".join(timing) if timing else "on time" if r.gap_p50_ms is not None else "no agent audio to time"
    return ["problems: " + ("; ".join(problems) if problems else "none"),
            "timing (this machine's clock, a figure not a verdict): " + paced]


def main(argv: "list[str] | None" = None) -> int:
    """``voicebridge call URL [...]``: 0 = clean call, 1 = call with problems, 2 = could not run."""
    args = _build_parser().parse_args(argv)
    out = sys.stderr if args.json else sys.stdout
    try:
        steps = parse_script(args.script)
        acoustics = _acoustics(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def progress(name: str, t: float, detail: dict) -> None:
        if args.verbose or name not in _QUIET_EVENTS:
            extra = " ".join(f"{k}={v}" for k, v in detail.items())
            print(f"{t:8.3f}s  {name:<20} {extra}".rstrip(), file=out, flush=True)

    try:
        placed = dial(args.carrier, args.url, args.telnyx_private_key if args.carrier == "telnyx" else args.auth_token,
                      args.webhook_url)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    caller = SimulatedCaller(placed.url, steps, headers={**placed.headers, **dict(args.header)},
                             custom_parameters={**placed.custom_parameters, **dict(args.param)},
                             record_path=args.record, max_seconds=args.max_seconds, on_event=progress,
                             acoustics=acoustics, call_sid=placed.call_sid, account_sid=placed.account_sid,
                             carrier=args.carrier, after_stream=placed.after)
    report = caller.run()
    for line in _summary(report):
        print(line, file=out)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    if report.ended_by == "error" and report.frames_sent == 0:
        return 2
    return 1 if report.problems() or (args.strict_timing and report.timing_problems()) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
