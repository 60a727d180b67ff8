"""Who speaks first, and what answered an outbound call: the opening of a call, sans-IO.

An inbound call opens with the agent's greeting. An outbound call is answered by someone who
says "hello?" first -- or by a voicemail greeting. With Twilio's asynchronous answering-machine
detection (AMD, ``MachineDetection=DetectMessageEnd``) the call is connected at once and the
verdict arrives seconds later on a callback; until then the agent must not speak (it would talk
over a person's "hello" or a machine's greeting) and the callee's audio is not given to the model
(a voicemail greeting is not a caller turn to answer).

:class:`OpeningGate` decides, from the verdict, the time and the callee's speech, what the session
does, once:

* ``human`` (and ``unknown`` -- the rule: a person may be on the line, and a person hung up on or
  kept waiting is worse than a voicemail that hears a greeting): the conversation opens, the
  agent speaks (AMD's verdict comes after the callee's first words and the silence after them);
* ``machine_end_beep`` / ``machine_end_silence`` / ``machine_end_other``: the greeting is over,
  the beep (if any) has sounded: the agent leaves the voicemail message, then hangs up;
* ``fax``: nobody to speak to: hang up;
* no verdict within ``amd_timeout_s``: as ``unknown``.

Without AMD, ``first_speaker="callee"`` waits for the callee's words (the model answers them) and
opens itself after ``callee_silence_ms`` of nothing. The gate holds no clock of its own: every
call takes ``now``, so tests drive time.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class AnsweredBy(enum.Enum):
    """Twilio's ``AnsweredBy`` values for ``DetectMessageEnd``."""

    HUMAN = "human"
    MACHINE_END_BEEP = "machine_end_beep"
    MACHINE_END_SILENCE = "machine_end_silence"
    MACHINE_END_OTHER = "machine_end_other"
    FAX = "fax"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: object) -> "AnsweredBy | None":
        """The verdict named by a callback's ``AnsweredBy``; None for anything else (not trusted)."""
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            return None

    @property
    def machine(self) -> bool:
        return self.value.startswith("machine_")


class Opening(enum.Enum):
    """What the session does when the gate opens."""

    SPEAK = "speak"  # the agent opens the conversation now (its greeting instructions)
    VOICEMAIL = "voicemail"  # leave the voicemail message, hang up once it has been heard
    HANG_UP = "hang_up"  # nobody to talk to (a fax)
    LISTEN = "listen"  # the callee spoke first: the model answers them, nothing to ask for


class Phase(enum.Enum):
    HOLDING = "holding"  # waiting for the AMD verdict: the agent silent, the callee's audio held back
    WAITING = "waiting"  # first_speaker="callee": the callee's audio goes to the model; the agent waits
    OPEN = "open"  # decided


@dataclass(frozen=True)
class OpeningRules:
    """The settings the gate follows (from :class:`~voicebridge.config.BridgeConfig`)."""

    amd: bool = False  # hold for an AMD verdict
    amd_timeout_s: float = 30.0  # no verdict by then: as ``unknown``
    callee_first: bool = False  # first_speaker == "callee"
    callee_silence_s: float = 2.0  # the callee silent this long: the agent opens

    @property
    def deferred(self) -> bool:
        """The agent does not greet as soon as the model is ready."""
        return self.amd or self.callee_first


def opening_for(verdict: AnsweredBy) -> Opening:
    """The documented rule: a person or an unknown answer gets the conversation, a machine the
    voicemail message, a fax the hang-up."""
    if verdict.machine:
        return Opening.VOICEMAIL
    if verdict is AnsweredBy.FAX:
        return Opening.HANG_UP
    return Opening.SPEAK


class OpeningGate:
    """The opening of one call: ``start`` it when the stream starts, feed it the verdict and the
    callee's speech, ``poll`` it; each returns the :class:`Opening` once, when decided."""

    def __init__(self, rules: OpeningRules) -> None:
        self.rules = rules
        self.phase = Phase.OPEN
        self.verdict: AnsweredBy | None = None
        self.timed_out = False
        self.decided_at: float | None = None
        self._since = 0.0
        self._callee_spoke = False

    @property
    def holding(self) -> bool:
        """The callee's audio is held back from the model (waiting for the AMD verdict)."""
        return self.phase is Phase.HOLDING

    def start(self, now: float) -> Opening | None:
        """The stream started. SPEAK at once for an agent-first call without AMD."""
        self._since = now
        if self.rules.amd:
            self.phase = Phase.HOLDING
            return None
        if self.rules.callee_first:
            self.phase = Phase.WAITING
            return None
        return self._open(Opening.SPEAK, now)

    def result(self, verdict: AnsweredBy, now: float) -> Opening | None:
        """The AMD verdict arrived; ignored unless the gate still holds for it."""
        if self.phase is not Phase.HOLDING:
            return None
        self.verdict = verdict
        return self._open(opening_for(verdict), now)

    def callee_speech(self, now: float) -> None:
        """The callee started speaking (server VAD): waiting for them, the model now answers them."""
        self._callee_spoke = True

    def poll(self, now: float) -> Opening | None:
        """The timeouts: no verdict within ``amd_timeout_s``; the callee silent for ``callee_silence_s``."""
        if self.phase is Phase.HOLDING and now - self._since >= self.rules.amd_timeout_s:
            self.timed_out = True
            self.verdict = AnsweredBy.UNKNOWN
            return self._open(opening_for(AnsweredBy.UNKNOWN), now)
        if self.phase is Phase.WAITING:
            if self._callee_spoke:
                return self._open(Opening.LISTEN, now)
            if now - self._since >= self.rules.callee_silence_s:
                return self._open(Opening.SPEAK, now)
        return None

    def _open(self, opening: Opening, now: float) -> Opening:
        self.phase = Phase.OPEN
        self.decided_at = now
        return opening
