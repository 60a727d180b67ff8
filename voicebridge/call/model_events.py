"""What the bridge does with each Realtime server event (the model thread's dispatcher).

Parsing is :mod:`voicebridge.model.protocol`'s job; this module routes each typed event to
the part that owns the state it changes: agent turns (and the line of the bridge's requests) to
``Turns``, audio to the ``OutboundAudio``, VAD to ``BargeIn`` and ``CallFlow``,
function calls to ``ToolCalls``, words and usage to the ``CallRecord``, fatal errors to the
``ModelLink``.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from ..model import protocol as rt
from ..errors import ProtocolError
from ..audio.listening import Turn
from .model_link import Cause
from .context import CallContext, CallParts


class ModelEvents:
    """Routes parsed server events; runs on the session's model thread."""

    def __init__(self, ctx: CallContext, parts: CallParts, committed: Callable[[], None]) -> None:
        config, metrics, log = ctx.config, ctx.metrics, ctx.log
        model, turns, outbound, barge_in = parts.model, parts.turns, parts.outbound, parts.barge_in
        tools, control, flow, record = parts.tools, parts.control, parts.flow, parts.record
        self._config = config
        self._model = model
        self._turns = turns
        self._outbound = outbound
        self._barge_in = barge_in
        self._tools = tools
        self._control = control
        self._flow = flow
        self._record = record
        self._metrics = metrics
        self._log = log
        self._committed_hook = committed  # the caller's audio so far became an item
        self._configured = False
        self._handlers: dict[type, Callable[[Any, float], None]] = {
            rt.SessionReady: self._session_ready,
            rt.ResponseCreated: self._response_created,
            rt.OutputItemAdded: self._output_item,
            rt.AudioDelta: self._audio_delta,
            rt.AudioDone: self._audio_done,
            rt.ResponseDone: self._response_done,
            rt.FunctionCall: self._function_call,
            rt.SpeechStarted: self._speech_started,
            rt.SpeechStopped: self._speech_stopped,
            rt.BufferCommitted: self._committed,
            rt.TranscriptFailed: self._transcript_failed,
            rt.Transcript: self._caller_transcript,
            rt.AgentTranscriptDelta: self._agent_words,
            rt.AgentTranscript: self._agent_transcript,
            rt.ServerError: self._server_error,
            ProtocolError: self._protocol_error,
            rt.Other: self._other,
        }

    @property
    def configured(self) -> bool:
        """The first ``session.updated`` has come: responses may be asked for."""
        return self._configured

    def handle(self, message: "str | bytes", now: float) -> None:
        event = rt.parse(message)
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event, now)

    # ------------------------------------------------------------------ session and responses
    def _session_ready(self, event: rt.SessionReady, now: float) -> None:
        if event.type != "session.updated" or self._configured:
            return
        self._configured = True
        first_words = self._config.first_words  # the greeting, after the recording's consent line if any
        if first_words:
            self._turns.request("greeting", first_words)

    def _response_created(self, event: rt.ResponseCreated, now: float) -> None:
        self._turns.created(event.response_id, event.kind)
        self._barge_in.response_started()
        self._metrics.add("responses")
        self._log.info("response %s created%s", event.response_id, f" ({event.kind})" if event.kind else "")

    def _output_item(self, event: rt.OutputItemAdded, now: float) -> None:
        if event.item_type == "message":
            self._turns.item_added(event.response_id, event.item_id)

    def _audio_delta(self, event: rt.AudioDelta, now: float) -> None:
        if not self._turns.audio(event.response_id, event.item_id, len(event.audio)):
            self._metrics.add("late_deltas_dropped")
            return
        self._metrics.add("audio_deltas")
        self._metrics.add("model_audio_bytes", len(event.audio))
        self._metrics.first_delta(now)
        self._outbound.push(event.item_id, event.audio)

    def _audio_done(self, event: rt.AudioDone, now: float) -> None:
        self._end_audio(event.response_id, event.item_id)

    def _response_done(self, event: rt.ResponseDone, now: float) -> None:
        turn = self._turns.get(event.response_id)
        self._log.info("response %s done (%s%s)", event.response_id, event.status,
                       f", {event.reason}" if event.reason else "")
        self._record.usage(event.usage)
        self._record.agent_done(event.response_id, turn.kind if turn else None)
        self._tools.response_done(event.response_id)  # its tool outputs go out before its tail can play out:
        if turn is not None and turn.item_id is not None:  # a hang-up waits for that tail
            self._end_audio(event.response_id, turn.item_id)
        self._turns.done(event.response_id)  # last: the next request goes out after this turn's tool outputs

    def _function_call(self, event: rt.FunctionCall, now: float) -> None:
        self._turns.tool_called(event.response_id)
        self._tools.function_call(event, now)

    def _end_audio(self, response_id: str, item_id: str) -> None:
        """Once per response (audio done or, failing that, response done): pad and mark the tail."""
        if self._turns.audio_ended(response_id):
            self._outbound.end(item_id)

    # ------------------------------------------------------------------ the caller
    def _speech_started(self, event: rt.SpeechStarted, now: float) -> None:
        self._flow.speech(True, now)
        self._turns.caller_spoke()
        self._barge_in.server_speech(now)

    def _speech_stopped(self, event: rt.SpeechStopped, now: float) -> None:
        self._flow.speech(False, now)
        self._barge_in.server_stopped()

    def _committed(self, event: rt.BufferCommitted, now: float) -> None:
        self._committed_hook()
        self._flow.committed(event.item_id, now)
        turn = self._barge_in.committed(now, event.item_id)
        if turn is Turn.RESPOND:
            self._barge_in.answer_turn(now, committed=True)

    def _caller_transcript(self, event: rt.Transcript, now: float) -> None:
        self._barge_in.user_text(event.text, now)
        if self._barge_in.transcript(event.text, now, event.item_id, event.final):
            self._barge_in.answer_turn(now)
        if event.final:
            self._flow.transcribed(event.item_id)
            if event.text.strip():
                self._record.add("caller", event.text.strip(), item_id=event.item_id)

    def _transcript_failed(self, event: rt.TranscriptFailed, now: float) -> None:
        self._flow.transcribed(event.item_id)
        self._barge_in.transcript_failed(event.item_id, now)
        self._log.once("transcription", "a caller turn could not be transcribed (the model still heard it); "
                       "further ones only counted")
        self._metrics.add("transcriptions_failed")

    def _agent_words(self, event: rt.AgentTranscriptDelta, now: float) -> None:
        self._record.agent_words(event.response_id, event.text)
        self._barge_in.agent_said(event.text)

    def _agent_transcript(self, event: rt.AgentTranscript, now: float) -> None:
        self._record.agent_words(event.response_id, event.text, final=True)
        self._barge_in.agent_said("", final=True)
        self._control.agent_finished(event.response_id, event.text, now)

    # ------------------------------------------------------------------ problems
    def _server_error(self, event: rt.ServerError, now: float) -> None:
        self._metrics.error(event.code)
        if event.code == rt.ACTIVE_RESPONSE and self._turns.refused(event.event_id):
            self._log.info("a response was already in progress: the %s request waits for it", event.event_id)
            return
        if event.code == rt.COMMIT_EMPTY:  # the bridge's own commit of a held utterance: expected, no warning
            self._barge_in.commit_refused(now)
            self._log.once(f"error:{event.code}", "Realtime error %s (the bridge's own commit was refused: too "
                           "little audio since the last one; nothing is lost): %s", event.code, event.message,
                           level=logging.INFO)
            return
        if event.benign:
            self._log.once(f"error:{event.code}", "Realtime error %s (benign): %s", event.code, event.message,
                           level=logging.INFO)
        elif event.code == rt.SESSION_EXPIRED:
            self._model.replace(Cause.EXPIRED, event.message[:120])
        elif event.fatal:
            self._log.error("Realtime fatal error %s: %s", event.code, event.message)
            self._model.lose(f"openai error {event.code}")
        else:
            self._log.once(f"error:{event.code[:60]}", "Realtime error %s: %s; further ones with this code only "
                           "counted", event.code[:60], event.message)

    def _protocol_error(self, event: ProtocolError, now: float) -> None:
        self._metrics.protocol_error(event.side, event.kind)
        self._log.once(f"openai:{event.kind}", "ignored bad Realtime message: %s; further ones of this kind only "
                       "counted", event)

    def _other(self, event: rt.Other, now: float) -> None:
        if event.known:
            return
        self._metrics.add("openai_unknown_events")
        kind = event.type[:60]
        if not self._log.once(f"event:{kind}", "unknown Realtime event type %r: ignored; further ones only "
                              "counted", kind, level=logging.INFO):
            self._log.debug("unhandled Realtime event %s", kind)
