"""Barge-in for one call: when the caller talks over the agent, stop the agent at once.

``BargeIn`` ties the sans-IO decisions of :mod:`voicebridge.audio.listening` (the call's ``Listener``)
to the parts that act on them. Triggers: a local one (``hear``: every inbound frame, run thread),
the server's VAD (``server_speech``, model thread, believed only with the caller heard here too)
and a transcript that shows a turn let pass as a backchannel was words that take the turn
(``transcript``). The procedure (``run``) is locked by response id, so two triggers for one
utterance run it once:

  response locked -> outbound interrupted (Twilio ``clear`` + our queues flushed under the send
  lock) -> ``response.cancel`` if the response is still active -> ``conversation.item.truncate``
  at what the caller actually heard -> response state cleared only if the id still matches ->
  counted.

The duck (:mod:`.caller_pause`): the first loud frame pauses sending (nothing lost) and, with
``duck_clear``, clears what Twilio still holds of the agent; enough speech with a voice in it
confirms the barge-in; a voiceless run (a cough) resumes where it paused. A shorter voiced
utterance ("mm-hm", or "wait") holds the agent paused until its words decide (``Listener.hold``):
a backchannel resumes where it paused, other words interrupt (if the model's VAD took no turn for
it, the bridge commits the model's input buffer itself so its words come). A confirmed local barge-in that no speech
follows (no server ``speech_started``, no caller text, level back down for ``false_trigger_ms``)
has its audio committed for its words (:mod:`voicebridge.audio.false_trigger`): words that take
the turn are answered; none, "mm-hm" or the agent's own echo was a false trigger, and the model
is asked to continue.
"""
from __future__ import annotations

import threading
from typing import Callable

from ..audio import detector as bargein
from ..model import protocol as rt
from ..audio.mulaw import BYTES_PER_MS
from ..audio.echo import Verdict
from ..audio.false_trigger import FalseTriggerMonitor, Recovery
from ..audio.listening import Hold, Listener, ServerSpeech, Turn
from .caller_pause import CallerPause
from .model_link import ModelLink
from .onset import UtteranceOnset
from .owed_answer import ANSWER_GAP_S, ANSWER_WAIT_S, Ask, OwedAnswer
from .downlink import OutboundAudio
from .turns import Interruption, Turns
from .context import CallContext

Interrupted = Callable[[Interruption, int], None]



def _never() -> bool:
    return False


_ECHO, _NONE = Verdict.ECHO, bargein.Decision.NONE  # (read per frame: globals, not class lookups)


class BargeIn:
    """The call's barge-in detector, guards, procedure and false-trigger recovery."""

    def __init__(self, ctx: CallContext, outbound: OutboundAudio, turns: Turns, model: ModelLink,
                 interrupted: Interrupted, listener: Listener | None = None) -> None:
        config, metrics, log, clock = ctx.config, ctx.metrics, ctx.log, ctx.clock
        self._config = config
        self._outbound = outbound
        self._turns = turns  # asked whose turn it is (the guard); the interrupted one is locked and let go
        self._model = model
        self._interrupted = interrupted  # told what was cut and how much of it was heard
        self._metrics = metrics
        self._log = log
        self._clock = clock
        self.listener = listener if listener is not None else Listener(config)
        self._level = self.listener.level
        self._false_trigger = FalseTriggerMonitor(config.false_trigger_ms / 1000)
        # (its words are asked for only where the model would answer a turn they take)
        self._may_ask = config.turn_detection is not None and config.transcription_model is not None
        self._onset = UtteranceOnset()  # the current utterance's first loud frame (run thread)
        self._was_loud = False
        self._pause = CallerPause(ctx, outbound)  # the agent paused for the caller, and its release (run thread)
        self._procedure = threading.Lock()  # one procedure at a time; a racing trigger re-checks after it
        self._armed_check = self._armed  # (bound once: every caller frame passes it on)
        self._commit_at_onset = False  # the last frame began a run inside the model's open turn (run thread)
        self._owed_answer = OwedAnswer()  # the caller's turn's answer, asked for once they are done

    # ------------------------------------------------------------------ triggers
    @property
    def noise_floor(self) -> float:
        return self.listener.floor_dbfs

    def hear(self, frame: bytes, now: float, listening: bool = True, timestamp_ms: int | None = None) -> bytes:
        """One caller frame (run thread): duck, release or confirm; returns what the model is sent
        (an echo-only frame becomes comfort noise). ``listening`` is False once the call is ending;
        ``timestamp_ms`` is the carrier's stamp (the echo gate's time of the frame)."""
        level = self._level
        level.rumble_matters = self._false_trigger.armed
        forward, level_dbfs, verdict, decision = self.listener.hear(frame, now, self._armed_check if listening else _never,
                                                                    timestamp_ms)
        if verdict is _ECHO:
            self._metrics.echo_suppressed()
        if decision is _NONE and not level.loud and not self._was_loud:
            if self._false_trigger.armed:  # (most frames of a call: quiet, nothing began or ended)
                self._false_trigger.level(False, now)
            return forward
        self._act(decision, level_dbfs, now)
        return forward

    def _act(self, decision: bargein.Decision, level_dbfs: float, now: float) -> None:
        loud = self._level.loud
        if self._was_loud and not loud:
            self._onset.run_ended(now)
        self._was_loud = loud
        if self._false_trigger.armed:
            self._false_trigger.level(loud, now)
        if decision is bargein.Decision.DUCK:
            if self._level.detector.run <= 1:  # (a run whose first frame could be an echo peak ducks
                self._onset.run_began(now)  # at its second: it began, and was committed before, at
                self._commit_at_onset = self.listener.flush_due(now)  # the first, below)
            self._pause.duck(now, level_dbfs)
        elif decision is bargein.Decision.RELEASE:
            if self.listener.holding:
                return  # a cough after "mm-hm": the agent stays held for the words
            if self._config.backchannel_hold_ms and self.listener.heard_by_model():  # its words decide
                self._hold_released(now, "far_holds", "a voice the detector could not judge (not near), the model's "
                                    "VAD heard: held paused for its words (a command interrupts, anything else resumes)")
            elif self._level.breath and self.listener.holds_for_words:  # a whispered "stop" the model's VAD seldom hears
                self._hold_released(now, "breath_holds", "a short breathy sound (a whispered word?): held paused for "
                                    "its words (a bare command interrupts, anything else resumes)", strict=True)
            else:
                self._pause.run_released(now, self._level.impulse)
        elif decision is bargein.Decision.BACKCHANNEL and self._config.backchannel_hold_ms:
            if not self.listener.holding:
                self._metrics.add("backchannel_holds")
                self._log.info("short utterance over the agent: held paused until its words say what it was")
            self._pause.for_hold(now)
            self.listener.hold(now)
        elif decision is bargein.Decision.BACKCHANNEL:
            self._pause.resume_backchannel()  # (holds off: at once)
        elif decision is bargein.Decision.CONFIRM:
            self.run("local", now, self._onset.at if self._onset.at is not None else now)
        elif loud and self._level.detector.run == 1:
            self._onset.run_began(now)
            # the room's stretch before a voice is committed at its first loud frame, ducked or not:
            # at the duck one frame later the command's first frame went with the TV's words
            self._commit_at_onset = self.listener.flush_due(now)

    def _hold_released(self, now: float, counter: str, why: str, strict: bool = False,
                       after_release: bool = False) -> None:
        """A released run is held for its words after all, as a far voice (``Listener.hold``)."""
        self._pause.for_hold(now)
        self.listener.hold(now, far=True, strict=strict, after_release=after_release)
        self._metrics.add(counter)
        self._log.info(why)

    def take_onset_commit(self) -> bool:
        """Commit the model's buffer before the frame just heard? (Run thread, once per frame: a
        voice begins over the agent while a TV or babble keeps the model's turn open, or with the
        rest of a closed one in its buffer; what came before becomes a turn of its own:
        ``Listener.flush_due``.)"""
        due, self._commit_at_onset = self._commit_at_onset, False
        return due

    def onset_committed(self, sent: bool) -> None:
        """The commit at an onset went out (or could not: no session, or audio still waiting)."""
        if not sent:
            self.listener.commit_refused()  # (the flush is the one pending: the hold is not touched)
            return
        self._metrics.add("onset_commits")
        self._log.info("a voice began over the agent with the model's buffer holding sound from before it (a TV's "
                       "open turn, or the rest of a closed one): committed at the onset")

    def _settle_hold(self, now: float) -> Hold:
        """Act on the held agent's verdict, if there is one: resume, or interrupt."""
        outcome = self.listener.hold_outcome(now)
        if outcome is Hold.COMMIT:
            if not self._model.send(rt.buffer_commit()):  # no session (being replaced): no reply will come
                self._log.info("the held utterance's audio could not be committed (no model session): it resumes")
                return self.commit_refused(now)
            self._metrics.add("hold_commits")
            self._log.info("the model's VAD took no turn for the held utterance, or keeps it open: its audio "
                           "committed for its words")
        elif outcome is Hold.RESUME:
            self._pause.resume_backchannel()
        elif outcome is Hold.CONFIRM:
            self.run("hold", now, self._onset.recent(now))
        return outcome

    def _armed(self) -> bool:
        return bargein.refusal(self._guard_state()) is None

    def server_speech(self, now: float) -> ServerSpeech:
        """The server's VAD heard "speech" (model thread): believed only with the caller heard here."""
        outcome = self.listener.server_speech(now, self._outbound.audible)
        if outcome.ignored:
            self._metrics.add("server_speech_ignored")
            self._metrics.add(f"server_speech_ignored_{outcome.value}")
            self._log.info("server VAD: speech started while the agent talks, ignored (%s): the agent goes on",
                           outcome.value)
            return outcome
        self._false_trigger.speech_started(now)
        if outcome is ServerSpeech.LOCAL:
            self._log.info("server VAD: speech started; the local detector is hearing it and decides")
            return outcome
        self._log.info("server VAD: caller speech started")
        self.run("server", now, self._onset.recent(now))
        return outcome

    def server_stopped(self) -> None:
        """The model's VAD ended its turn (model thread): the commit that follows is its own."""
        self.listener.server_stopped()

    def committed(self, now: float, item_id: str = "") -> Turn:
        """The server committed a caller turn (model thread): should the model answer it? (A held
        short utterance with no transcription to decide it interrupts, and is answered.)"""
        watch = self._false_trigger
        if watch.committed(item_id, now, own=self.listener.model_turn_closing()):
            self._log.info("caller turn %s: the confirmed barge-in's audio, committed for its words", item_id)
            return Turn.NOT_CALLER  # (its words decide: ``transcript``)
        turn = self.listener.committed(now, item_id)
        if turn is Turn.RESPOND:
            watch.words(item_id, Recovery.NONE)  # (the turn the watch awaited is answered)
        else:
            self._metrics.add(f"turns_{turn.value}")
            self._log.info("caller turn %s left unanswered (%s)", item_id, turn.value)
            self._settle_answer(now)  # (the rest of a turn whose answer is owed: the caller is done)
        self._settle_hold(now)
        return turn

    def transcript(self, text: str, now: float, item_id: str = "", final: bool = True) -> bool:
        """A turn's words (model thread; a delta, or ``final``): True if a turn held or let pass as
        a backchannel was words that take the turn; the agent is interrupted now (if it still
        talks) and should answer. A held turn's backchannel words resume the agent."""
        watch = self._false_trigger
        asked = final and watch.asking(item_id)  # the words of a confirmed barge-in the model's VAD did not start on
        if asked and not watch.adopted:  # (the audio the bridge committed for them)
            watch.words(item_id, self._asked_verdict(text))  # (acted on by ``poll``)
            return False
        if not self.listener.transcript(text, now, item_id, final):
            if asked:  # (a VAD turn open at the asking: the barge-in was confirmed inside it, whatever its start was)
                watch.words(item_id, self._asked_verdict(text))
            self._settle_hold(now)
            return False
        watch.words(item_id, Recovery.NONE)  # (answered here)
        self._metrics.add("backchannels_overruled")
        self._log.info("the caller's short turn was not a backchannel: interrupting and answering it")
        self.listener.end_hold()
        self.run("transcript", now, self._onset.recent(now))
        return True

    def _asked_verdict(self, text: str) -> Recovery:
        return Recovery.ANSWER if self.listener.asked_words_take_turn(text) else Recovery.CONTINUE

    def agent_said(self, text: str, final: bool = False) -> None:
        """The agent's own transcript (model thread): its echo in a caller turn is known by it."""
        self.listener.agent_said(text, final)

    def transcript_failed(self, item_id: str, now: float) -> None:
        """A turn's words will not come (model thread): a held one interrupts, and is answered."""
        watch = self._false_trigger
        if watch.words(item_id, Recovery.ANSWER) and not watch.adopted:
            return  # (the audio the bridge committed: the model, which has it, answers)
        self.listener.transcript_failed(item_id)
        if self._settle_hold(now) is Hold.CONFIRM:
            self.answer_turn(now)

    def commit_refused(self, now: float) -> Hold:
        """The model refused the held audio's commit (model thread), or it could not be sent: the
        held voice resumes."""
        if self._false_trigger.refused(now):
            return Hold.NONE  # (the bridge sends one commit at a time: this one was the watch's)
        self.listener.commit_refused()
        return self._settle_hold(now)

    def answer_turn(self, now: float | None = None, committed: bool = False) -> None:
        """Ask for the answer to a caller turn once the caller is done (:mod:`.owed_answer`).
        ``committed``: the model's VAD committed the turn; if it closed it, it is answered now
        (or was, inside it)."""
        if not (self._config.vad_create_response and self._config.turn_detection is not None):
            return
        now = self._clock() if now is None else now
        listener = self.listener
        if committed and not listener.model_turn_open():
            ask = self._owed_answer.committed(listener.model_turn_started_at())
        else:
            ask = self._owed_answer.due(now, self._caller_going_on(now), self._open_turn())
            if ask is Ask.OWED:
                self._log.info("the caller's turn goes on: its answer is asked for once it ends")
        if ask is Ask.NOW:
            self._turns.request("turn")

    def _open_turn(self) -> float | None:
        """The model's VAD turn still open (its start), whose commit an answer asked now answers."""
        listener = self.listener
        return listener.model_turn_started_at() if listener.model_turn_open() else None

    def _caller_going_on(self, now: float) -> bool:
        """A voice is heard here, or was less than ``ANSWER_GAP_S`` ago (the comma in "no no,
        that's not what I asked"). Not the model's VAD turn: it closes ~0.5 s after the caller's
        last word, or on the agent's own tail, and waiting for it kept a plain "stop" waiting
        for nothing (out3)."""
        level = self._level
        if level.hearing or level.loud:
            return True
        ended = self._onset.run_ended_at
        return ended is not None and now - ended < ANSWER_GAP_S

    def _settle_answer(self, now: float) -> None:
        """An answer owed is asked for once the caller is done, or at ``ANSWER_WAIT_S``."""
        owed_answer = self._owed_answer
        if not owed_answer.owed:
            return  # (most polls: nothing owed)
        going_on = self._caller_going_on(now)
        owed = owed_answer.settle(now, going_on, self._open_turn())
        if owed is None:
            return
        self._metrics.add("answers_deferred")
        self._log.info("the answer owed is asked for %.1f s later (%s)", now - owed,
                       "the caller is still heard: its bound" if going_on else "the caller is done")
        self._turns.request("turn")

    def session_replaced(self, resent_from: float = float("-inf")) -> None:
        """A new model session replaced the old one (model thread): replies to the bridge's
        commits, and the old session's VAD turn, will never come; it was sent the caller's
        audio from ``resent_from`` on (``InboundAudio.backlog``)."""
        self._false_trigger.session_replaced()
        self.listener.session_replaced(resent_from)

    def user_text(self, text: str, now: float) -> None:
        """Caller speech was transcribed: a barge-in just before it was real."""
        self._false_trigger.user_text(text, now)

    def response_started(self) -> None:
        """A new response supersedes any pending "continue" decision."""
        self._false_trigger.cancel()

    # ------------------------------------------------------------------ the procedure
    def run(self, source: str, now: float, onset: float | None = None) -> bool:
        """Interrupt the agent (once per response); False if the guards refuse."""
        with self._procedure:
            return self._run(source, now, onset)

    def _run(self, source: str, now: float, onset: float | None) -> bool:
        state = self._guard_state()
        steps = bargein.plan(state)
        if steps is None:
            self._log.debug("%s barge-in ignored: %s", source, bargein.refusal(state))
            return False
        locked = self._turns.lock_for_interruption()
        self._pause.forget()
        if source == "local":  # armed first: the server may confirm the speech while we send
            self._false_trigger.start(now, loud=True, since=onset, ask=self._may_ask,
                                      whispered=self.listener.level.whispered)
        self._log.info("barge-in (%s) confirmed on response %s", source, locked.response_id)
        flushing = self._outbound.interrupt(clear=True)
        self._log.info("flushing what was queued: %d items (frames, deltas, the end mark; frames_flushed "
                       "counts the frames)", flushing)
        if steps.cancel and locked.was_active:
            self._model.send(rt.response_cancel(locked.response_id))
            self._log.info("response.cancel sent for %s", locked.response_id)
        heard_ms = self._truncate(locked.item_id, locked.received_bytes, now) if steps.truncate and locked.item_id else 0
        self._turns.finish_interruption(locked.response_id)
        self._interrupted(locked, heard_ms)
        self.listener.end_hold()
        self._level.reset()
        self._metrics.add("barge_in_events")
        self._metrics.add(f"barge_in_{source}")
        if onset is not None:
            self._metrics.barge_in_latency((now - onset) * 1000)
        return True

    def _truncate(self, item_id: str, received_bytes: int, now: float) -> int:
        heard = self._outbound.heard_ms(item_id, now)
        received_ms = received_bytes // BYTES_PER_MS
        audio_end_ms = max(0, min(heard, received_ms))
        self._model.send(rt.item_truncate(item_id, audio_end_ms))
        self._metrics.add("truncates_sent")
        self._log.info("truncate %s at %d ms (received %d ms)", item_id, audio_end_ms, received_ms)
        return audio_end_ms

    def _guard_state(self) -> bargein.GuardState:
        floor = self._turns.floor()
        return bargein.GuardState(
            barge_in_enabled=self._config.barge_in,
            in_greeting=floor.greeting,
            greeting_interruptible=self._config.greeting_interruptible,
            ai_speaking=self._outbound.audible,
            response_active=floor.active,
            already_handled=floor.interrupted,
        )

    # ------------------------------------------------------------------ timers (run thread)
    def poll(self, now: float) -> None:
        """The held agent's bound (a turn whose words never came interrupts and is answered), and
        false-trigger recovery: ask the model to continue the answer a cough cut."""
        if self.listener.holding and self._settle_hold(now) is Hold.CONFIRM:
            self.answer_turn(now)
        self._settle_answer(now)
        if self._pause.grace_over(now):
            if self._config.backchannel_hold_ms and self.listener.heard_by_model(after_release=True):
                self._pause.grace_held()  # the model's VAD started on it meanwhile: its words decide
                self._hold_released(now, "far_holds", "a released run the model's VAD heard: held paused for its "
                                    "words (a bare command interrupts, anything else resumes)",
                                    strict=True, after_release=True)
            else:
                self._pause.release()  # quiet since the run ended: it was no onset of words
        recovery = self._false_trigger.poll(now)
        if recovery is not Recovery.NONE:
            self._recover(recovery, now)

    def _recover(self, recovery: Recovery, now: float) -> None:
        """Act on the false-trigger watch's verdict on the last local barge-in."""
        if recovery is Recovery.ASK:
            if self.listener.model_turn_open():
                self._false_trigger.adopt()
                self._log.info("no speech from the model's VAD since the barge-in, but a turn of its is open: "
                               "its words decide")
            elif not self.listener.may_ask():
                self._false_trigger.cannot_ask()  # (a commit of the bridge's pending: continue, on the next poll)
            else:
                self._false_trigger.sending(now)
                if self._model.send(rt.buffer_commit()):
                    self._metrics.add("false_trigger_commits")
                    self._log.info("no speech from the model's VAD after the barge-in: its audio committed for "
                                   "its words")
                else:
                    self._false_trigger.refused(now)  # (no model session: continue, on the next poll)
        elif recovery is Recovery.ANSWER:
            self._metrics.add("false_trigger_answered")
            self._log.info("the barge-in's words take the turn (or never came): the model answers the caller")
            self.answer_turn(now)
        else:
            self._metrics.add("false_barge_ins")
            whispered = self._false_trigger.whisper_committed  # (the model, which has the audio, decides: rv20)
            self._log.info("false barge-in: no speech followed; asking the model to continue%s",
                           " (or answer, if the caller whispered words)" if whispered else "")
            self._turns.request("continue", self._config.whisper_continue_instructions if whispered
                                else self._config.continue_instructions)

    def release_stuck_duck(self, now: float) -> bool:
        """Safety fuse: a duck held past ``duck_fuse_ms`` with no confirmation is released (past
        the longest hold for a short utterance's words plus ``duck_fuse_ms`` while one is held:
        the hold's own bound decides first)."""
        limit_ms = self._config.duck_fuse_ms
        if self.listener.holding:
            limit_ms += self._config.backchannel_hold_ms + self._config.barge_in_min_speech_ms
        if not self._outbound.release_stuck_duck(now, limit_ms / 1000):
            return False
        self._pause.forget()
        self.listener.end_hold()
        self._level.reset()
        return True
