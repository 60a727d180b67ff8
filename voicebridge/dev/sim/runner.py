"""Sans-IO script execution: one 20 ms caller frame per tick.

The threaded caller asks for exactly one frame per tick of its send schedule and tells the
runner whether agent audio was audible in that tick; everything about *when* a step ends
(timeouts, the agent starting or going quiet, the barge-in onset) is decided here, on
millisecond timestamps, so it can be unit-tested without a clock.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...audio.mulaw import FRAME_BYTES, SILENCE_FRAME
from .script import (Click, Cough, Dtmf, Hangup, Interrupt, Say, Silence, Sound, Step, WaitForAgent,
                     WaitForAgentSilence, WaitForHangup, format_step)


@dataclass
class Tick:
    """The frame to send now, what happened, and whether the script has ended."""

    frame: bytes
    events: list[tuple[str, dict]] = field(default_factory=list)
    done: bool = False
    keys: str = ""  # keypad keys to send before the frame


class ScriptRunner:
    """Runs ``steps`` (with pre-resolved ``audio``, see :func:`voicebridge.dev.sim.sounds.resolve`)."""

    def __init__(self, steps: "list[Step]", audio: "list[bytes | None]") -> None:
        if len(steps) != len(audio):
            raise ValueError("one audio entry per step is required")
        self._steps = steps
        self._audio = audio
        self._index = -1
        self._step_start = 0
        self._offset = 0  # bytes of the current step's audio sent
        self._agent_seen_at: "int | None" = None  # for Interrupt: when agent audio started
        self._last_audible: "int | None" = None
        self._done = False

    @property
    def done(self) -> bool:
        """True once the script has hung up or run out of steps."""
        return self._done

    def tick(self, now_ms: int, agent_audible: bool) -> Tick:
        """The caller frame for the tick starting at ``now_ms`` (ms since call start)."""
        if agent_audible:
            self._last_audible = now_ms
        out = Tick(SILENCE_FRAME)
        if self._done:
            out.done = True
            return out
        if self._index < 0:
            self._enter(0, now_ms, out.events)
        # Steps that finish without sending anything hand over within the same tick;
        # the bound makes a script of only zero-length steps terminate.
        for _ in range(len(self._steps) + 1):
            if self._done:
                break
            frame = self._run_step(now_ms, agent_audible, out)
            if frame is not None:
                out.frame = frame
                break
            if self._done:
                break
            self._enter(self._index + 1, now_ms, out.events)
        out.done = self._done
        return out

    # -- step execution ---------------------------------------------------------------------
    def _enter(self, index: int, now_ms: int, events: list) -> None:
        self._index = index
        self._step_start = now_ms
        self._offset = 0
        self._agent_seen_at = None
        if index >= len(self._steps):
            self._finish(events, "end_of_script")
            return
        events.append(("step", {"index": index, "step": format_step(self._steps[index])}))

    def _finish(self, events: list, reason: str) -> None:
        self._done = True
        events.append(("hangup", {"reason": reason}))

    def _run_step(self, now_ms: int, audible: bool, out: Tick) -> "bytes | None":
        """Frame for the current step, or None when the step is over."""
        step, events = self._steps[self._index], out.events
        elapsed = now_ms - self._step_start
        if isinstance(step, Dtmf):
            return self._press(step, elapsed, out)
        if isinstance(step, WaitForHangup):
            if elapsed >= step.timeout_ms:
                events.append(("wait_timeout", {"step": format_step(step)}))
                return None
            return SILENCE_FRAME
        if isinstance(step, Hangup):
            self._finish(events, "hangup")
            return None
        if isinstance(step, Silence):
            return SILENCE_FRAME if elapsed < step.ms else None
        if isinstance(step, (Say, Click, Cough, Sound)):
            kind = ("click" if isinstance(step, Click) else "cough" if isinstance(step, Cough) else
                    step.kind if isinstance(step, Sound) else "caller_speech")
            return self._play(events, kind)
        if isinstance(step, WaitForAgent):
            return self._wait_agent(step, elapsed, audible, events)
        if isinstance(step, WaitForAgentSilence):
            return self._wait_quiet(step, now_ms, elapsed, events)
        return self._interrupt(step, now_ms, elapsed, audible, events)

    def _press(self, step: Dtmf, elapsed: int, out: Tick) -> "bytes | None":
        """One key every ``gap_ms``, silence between; over once the last key's gap has passed."""
        due = elapsed // step.gap_ms if step.gap_ms else len(step.keys)
        if self._offset < len(step.keys) and due >= self._offset:
            out.keys = step.keys[self._offset]
            out.events.append(("dtmf", {"key": out.keys}))
            self._offset += 1
            return SILENCE_FRAME
        return SILENCE_FRAME if elapsed < len(step.keys) * step.gap_ms else None

    def _play(self, events: list, kind: str, detail: "dict | None" = None) -> "bytes | None":
        """Next frame of the current step's audio; start/stop events around it."""
        audio = self._audio[self._index] or b""
        if self._offset >= len(audio):
            if audio and kind == "caller_speech":
                events.append(("caller_speech_stop", {}))
            return None
        if self._offset == 0:
            name = "caller_speech_start" if kind == "caller_speech" else kind  # click, cough, knock...
            events.append((name, dict(detail or {}, ms=len(audio) // 8)))
        frame = audio[self._offset:self._offset + FRAME_BYTES]
        self._offset += FRAME_BYTES
        return frame

    def _wait_agent(self, step: WaitForAgent, elapsed: int, audible: bool, events: list) -> "bytes | None":
        if audible:
            return None
        if elapsed >= step.timeout_ms:  # the caller waited for an answer and heard nothing: dead air
            events.append(("wait_timeout", {"step": format_step(step), "dead_air_ms": step.timeout_ms}))
            return None
        return SILENCE_FRAME

    def _wait_quiet(self, step: WaitForAgentSilence, now_ms: int, elapsed: int, events: list) -> "bytes | None":
        quiet_since = max(self._step_start, self._last_audible + 20 if self._last_audible is not None else 0)
        if now_ms - quiet_since >= step.quiet_ms:
            return None
        if elapsed >= step.timeout_ms:
            events.append(("wait_timeout", {"step": format_step(step)}))
            return None
        return SILENCE_FRAME

    def _interrupt(self, step: Interrupt, now_ms: int, elapsed: int, audible: bool, events: list) -> "bytes | None":
        if self._offset > 0:
            return self._play(events, "caller_speech")
        if self._agent_seen_at is None and audible:
            self._agent_seen_at = now_ms
        if self._agent_seen_at is not None:
            if now_ms - self._agent_seen_at < step.after_ms:
                return SILENCE_FRAME
            talking = self._last_audible is not None and now_ms - self._last_audible <= 40
        elif elapsed >= step.timeout_ms:
            events.append(("wait_timeout", {"step": format_step(step)}))
            talking = False
        else:
            return SILENCE_FRAME
        events.append(("interrupt", {"agent_talking": talking}))
        return self._play(events, "caller_speech", {"barge_in": True})
