"""Keeping the call going across Realtime sessions, and ending it gracefully when it cannot.

``ModelLink`` replaces a lost, expired or aged session; ``Continuity`` does the rest on the
bridge's side: when a new session takes over it settles what the old one left unfinished (the
answer cut mid-way plays out and is resumed, pending tool results are delivered, waiting
requests are asked again); a reconnect that takes longer than ``hold_after_ms`` gets the
holding line; a session older than ``session_max_age_s`` is rolled over at the first quiet
moment; and when the model is gone for good the caller hears the apology, then the call ends.
"""
from __future__ import annotations

import logging
from typing import Callable

from .model_link import Cause
from .turn import AgentTurn
from .context import CallContext, CallParts

ROLLOVER_SETTLE_S = 1.0
"""A planned rollover waits until the session has been silent this long: events still on their
way (a turn's response being created, a transcript) must not be lost with the old session."""
APOLOGY_ITEM = "vb-apology"
APOLOGY_MARGIN_S = 2.0
"""After the apology's own length, how long to wait for its last mark before hanging up."""


class Continuity:
    """Session switches, the holding line, planned rollovers, the apology."""

    def __init__(self, ctx: CallContext, parts: CallParts, quiet: Callable[[], bool], close: Callable[[str], None],
                 can_speak: Callable[[], bool], resent_from: Callable[[], float]) -> None:
        config, metrics, log = ctx.config, ctx.metrics, ctx.log
        model, outbound, turns, tools, record = parts.model, parts.outbound, parts.turns, parts.tools, parts.record
        self._config = config
        self._model = model
        self._outbound = outbound
        self._turns = turns
        self._tools = tools
        self._barge_in = parts.barge_in
        self._record = record
        self._metrics = metrics
        self._log = log
        self._quiet = quiet
        self._close = close
        self._can_speak = can_speak
        self._resent_from = resent_from  # a new session is sent the caller's audio from then (``InboundAudio``)
        self._held = False  # the holding line has played during the current reconnect
        self.ending: tuple[str, float] | None = None  # (why, deadline) while the apology plays
        self._apology: AgentTurn | None = None  # its turn: the call ends once it is heard

    def switched(self, cause: Cause, gap_s: float, replayed: int, resent: int) -> None:
        """A new Realtime session replaced the old one (model thread): pick up where the call was."""
        self._metrics.add(f"model_{cause.value}")
        self._metrics.add("items_replayed", replayed)
        self._metrics.add("inbound_frames_resent", resent)
        self._metrics.reconnect_gap(gap_s * 1000)
        self._log.once(f"replaced:{cause.value}", "Realtime session replaced (%s) in %.0f ms: %d items replayed, "
                       "%d caller frames resent; further replacements only counted", cause.value, gap_s * 1000,
                       replayed, resent, level=logging.INFO)
        cut = self._turns.current
        was_active = cut is not None and cut.active
        was_speaking = was_active and not cut.interrupted
        self._tools.session_replaced()
        self._barge_in.session_replaced(self._resent_from())  # (the bridge's commits went to the old one)
        self._turns.lose_active()  # the old session's turns never finish; a request on its way is asked again
        if was_active and cut.item_id is not None and cut.id is not None and self._turns.audio_ended(cut.id):
            self._outbound.end(cut.item_id)  # what was received plays out, its tail padded
        if was_speaking and cause is not Cause.ROLLOVER:
            self._turns.request("resume", self._config.resume_instructions)

    def history(self) -> list[str]:
        """What a new session is told before anything else (model thread): the conversation as
        the caller heard it, the answer the old session was cut off in included."""
        self._record.cut_pending()
        return self._record.history(self._config.replay_items)

    def poll(self, now: float) -> None:
        """Timers (run thread)."""
        if self._model.lost:
            self._without_model(self._model.lost, now)
            return
        down = self._model.down_since
        if down is None:
            self._held = False
        elif not self._held and now - down > self._config.hold_after_ms / 1000:
            self._held = True
            prompt = self._config.hold_audio if self._config.hold_audio is not None else bundled("hold_on")
            self._log.once("hold", "reconnecting for %.1f s: the caller hears the holding line", now - down,
                           level=logging.INFO)
            self._outbound.play(f"vb-hold-{now:.0f}", prompt)
        max_age = self._config.session_max_age_s
        if (max_age is not None and self._model.ready and self._model.age(now) > max_age
                and now - self._model.last_event_at > ROLLOVER_SETTLE_S and self._quiet()):
            self._log.info("planned rollover after %.0f s: a fresh Realtime session at a quiet moment",
                           self._model.age(now))
            self._model.replace(Cause.ROLLOVER)

    def _without_model(self, reason: str, now: float) -> None:
        """The model is gone for good: the caller hears the apology (not dead air), then the call ends."""
        if self.ending is None:
            cfg = self._config
            prompt = cfg.apology_audio if cfg.apology_audio is not None else bundled("apology")
            if not cfg.apology or not prompt or not self._can_speak():
                self._close(reason)
                return
            self._log.warning("model unavailable (%s): playing the apology prompt", reason)
            self._outbound.interrupt(clear=self._metrics.get("frames_sent") > 0)
            self._outbound.play(APOLOGY_ITEM, prompt)
            self._apology = self._turns.played(APOLOGY_ITEM, "apology")
            self.ending = (reason, now + len(prompt) / 8000 + APOLOGY_MARGIN_S)
        elif self._turns.heard(self._apology) or now > self.ending[1]:
            self._close(reason)


def bundled(name: str) -> bytes:
    """A bundled prompt (the apology, the holding line); empty if the package has none."""
    try:
        from ..prompts import load

        return load(name)
    except (OSError, ModuleNotFoundError):
        return b""
