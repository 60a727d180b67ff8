"""The caller's side of the conversation outside speech: keypad digits, silence, the clock.

Keypad digits become one sequence (``DtmfCollector``), handed to the app's ``on_dtmf`` and, by
default, to the model as a user message it answers; entries that come faster than
``dtmf_min_interval_ms`` are told to the model together (``KeypadBatches``), so a flood of keys
costs one item, one answer and one log line per interval. The digits are never logged. Silence and the call's length
(``CallLimits``) turn into an idle nudge, a goodbye when the caller stays silent, or a wrap-up
before the time limit; the last two end the call once the agent's last words are heard.
"""
from __future__ import annotations

from typing import Callable

from ..locks import state_lock
from ..model import protocol as rt
from .ending import CallControl
from .keypad import DtmfCollector, KeypadBatch, KeypadBatches
from .limits import CallLimits, LimitAction
from .record import CallRecord
from .turns import Turns
from .context import CallContext


TRANSCRIPT_WAIT_S = 10.0
"""How long a committed caller turn may hold off a planned rollover while its text is awaited."""


class CallFlow:
    """Keys and limits; ``poll`` runs on the run thread's timer."""

    def __init__(self, ctx: CallContext, send: Callable[[str], bool], requests: Turns,
                 control: CallControl, record: CallRecord, on_dtmf: Callable[[str], None],
                 busy: Callable[[], bool]) -> None:
        config, metrics, log = ctx.config, ctx.metrics, ctx.log
        self._config = config
        self._send = send
        self._requests = requests
        self._control = control
        self._record = record
        self._metrics = metrics
        self._log = log
        self._on_dtmf = on_dtmf
        self._busy = busy
        self._keys = DtmfCollector(config.dtmf_terminator, config.dtmf_timeout_ms / 1000)
        self._batches = KeypadBatches(config.dtmf_min_interval_ms / 1000)
        self._limits: CallLimits | None = None
        self._speaking = False  # the server's VAD: caller speech in progress
        self._untranscribed: dict[str, float] = {}  # committed caller turns whose text has not come yet
        self._lock = state_lock()

    @property
    def caller_speaking(self) -> bool:
        """The server's VAD hears the caller right now."""
        return self._speaking

    def committed(self, item_id: str, now: float) -> None:
        """The server made the caller's audio an item (model thread); its text should follow."""
        if self._config.transcription_model:
            with self._lock:
                self._untranscribed[item_id] = now

    def transcribed(self, item_id: str) -> None:
        """The caller turn's text came (or its transcription failed)."""
        with self._lock:
            self._untranscribed.pop(item_id, None)

    def turn_open(self, now: float) -> bool:
        """The caller is speaking, or said something whose text is still coming: a session swapped
        now would lose the turn (the new session learns caller turns from their text)."""
        with self._lock:
            for item_id, since in list(self._untranscribed.items()):
                if now - since > TRANSCRIPT_WAIT_S:
                    del self._untranscribed[item_id]
            return self._speaking or bool(self._untranscribed)

    def started(self, now: float) -> None:
        cfg = self._config
        self._limits = CallLimits(now, cfg.idle_nudge_s, cfg.idle_hangup_s, cfg.max_call_s, cfg.wrap_up_s)

    # ------------------------------------------------------------------ the caller
    def key(self, digit: str, now: float) -> None:
        """One ``dtmf`` message (run thread)."""
        self._caller_active(now)
        digits = self._keys.press(digit, now)
        if digits:
            self._entered(digits, now)

    def speech(self, started: bool, now: float) -> None:
        """Server VAD: the caller started (or stopped) speaking (model thread)."""
        self._speaking = started
        self._caller_active(now)
        if started:
            self._requests.withdraw("nudge")

    def _caller_active(self, now: float) -> None:
        with self._lock:
            if self._limits is not None:
                self._limits.caller_active(now)

    def _entered(self, digits: str, now: float) -> None:
        """One finished entry: the app hears of each; the model of a batch at most once an interval."""
        self._metrics.add("dtmf_sequences")
        self._on_dtmf(digits)
        batch = self._batches.add(digits, now)
        if batch is not None:
            self._hand_on(batch)

    def _hand_on(self, batch: KeypadBatch) -> None:
        """Tell the model of ``batch`` (one item, one answer) and the log of its size, never its digits."""
        if batch.dropped:
            self._metrics.add("dtmf_entries_dropped", batch.dropped)
        self._log.info("keypad: %d entr%s, %d digit(s)%s", len(batch.entries), "y" if len(batch.entries) == 1 else
                       "ies", batch.digits, f" ({batch.dropped} older entries dropped)" if batch.dropped else "")
        digits = ", ".join(batch.entries)
        said = self._config.dtmf_template.format(digits=digits)
        to_model = self._config.dtmf_to_model and not self._control.ending
        self._record.add("keypad", digits, **({"model_text": said} if to_model else {}))
        if to_model:
            self._send(rt.user_text(said))
            self._requests.withdraw("dtmf")  # an answer still waiting to be asked for covers this entry too
            self._requests.request("dtmf")

    # ------------------------------------------------------------------ timers (run thread)
    def poll(self, now: float) -> None:
        digits = self._keys.poll(now)
        if digits:
            self._entered(digits, now)
        batch = self._batches.due(now)
        if batch is not None:
            self._hand_on(batch)
        with self._lock:
            limits = self._limits
            if limits is None:
                return
            action = limits.poll(now, self._speaking or self._busy())
        if action is LimitAction.NONE or (self._control.ending and action is not LimitAction.END):
            return
        self._metrics.add(f"limit_{action.name.lower()}")
        cfg = self._config
        if action is LimitAction.NUDGE:
            self._log.info("the line is quiet: the agent checks on the caller")
            self._requests.request("nudge", cfg.idle_nudge_instructions)
        elif action is LimitAction.IDLE_GOODBYE:
            self._control.say_then_end("goodbye", cfg.idle_goodbye_instructions, "caller silent", now)
        elif action is LimitAction.WRAP_UP:
            self._control.say_then_end("wrap_up", cfg.wrap_up_instructions, "maximum call length", now)
        else:
            self._log.warning("maximum call length reached: ending the call")
            self._control.hang_up_now("maximum call length")
