"""Carrying out the call's opening (the gate in ``call/opening.py`` decides, this acts).

Driven by the session's timers until the call is open: the AMD verdict looked up on the shared
board at most every ``AMD_POLL_S``, the callee's first words, the gate's timeouts; once the gate
opens, the greeting is asked for, the voicemail left, or the call hung up, and the idle limits
held for a deferred opening start.
"""
from __future__ import annotations

from typing import Callable

from .context import CallContext, CallParts
from .opening import AnsweredBy, Opening, OpeningGate, Phase

AMD_POLL_S = 0.1
AnswerSource = Callable[[float], "AnsweredBy | None"]


class Opener:
    """One call's opening: ``start`` at the carrier's start, ``poll`` on every timer tick."""

    def __init__(self, ctx: CallContext, parts: CallParts, gate: OpeningGate, ready: Callable[[], bool],
                 answer_source: Callable[[], "AnswerSource | None"]) -> None:
        self._config, self._metrics, self._log = ctx.config, ctx.metrics, ctx.log
        self._flow, self._record, self._turns, self._control = parts.flow, parts.record, parts.turns, parts.control
        self.gate = gate
        self._ready = ready  # the model session is configured: only then is anything asked of it
        self._answer_source = answer_source  # set by the Flask integration for an outbound call
        self._polled = float("-inf")
        self._held_limits = False

    def start(self, now: float) -> None:
        """The carrier's start: an agent-first call opens now; a held one starts its limits later."""
        self.gate.start(now)  # SPEAK now: the greeting is the first session.updated's, as before
        self._held_limits = self.gate.holding  # holding: the idle limits start with the conversation
        if not self._held_limits:
            self._flow.started(now)

    def poll(self, now: float) -> None:
        if self.gate.phase is Phase.OPEN or not self._ready():
            return
        gate, opening = self.gate, None
        source = self._answer_source()
        if gate.holding and source is not None and now - self._polled >= AMD_POLL_S:
            self._polled = now
            try:
                verdict = source(now)
            except Exception as exc:  # noqa: BLE001 - the shared state failing: the AMD timeout still opens the call
                self._metrics.add("amd_lookup_errors")
                self._log.once("amd lookup", "AMD verdict not looked up (%s: %s); further failures only counted",
                               type(exc).__name__, exc)
                verdict = None
            if verdict is not None:
                opening = gate.result(verdict, now)
        if gate.phase is Phase.WAITING and self._flow.turn_open(now):
            gate.callee_speech(now)
        if opening is None:
            opening = gate.poll(now)
        if opening is not None:
            self._opened(opening, now)

    def _opened(self, opening: Opening, now: float) -> None:
        gate, config = self.gate, self._config
        verdict = gate.verdict.value if gate.verdict else "none"
        self._metrics.opened_at = now
        self._record.add("control", f"answered by {verdict}{' (no verdict in time)' if gate.timed_out else ''}: "
                         f"{opening.value}")
        self._log.info("call opens: answered by %s%s -> %s", verdict, " (AMD timed out)" if gate.timed_out else "",
                       opening.value)
        if self._held_limits:
            self._held_limits = False
            self._flow.started(now)
        if opening is Opening.SPEAK and config.first_words:  # the greeting, after the recording's consent line
            self._turns.request("greeting", config.first_words)
        elif opening is Opening.VOICEMAIL:
            self._control.say_then_end("voicemail", config.voicemail_request, "voicemail left", now)
        elif opening is Opening.HANG_UP:
            self._control.hang_up_now(f"answered by {verdict}")
