"""Idle and length limits of a call (sans-IO): when to nudge, when to give up, when to wrap up.

Silence means nobody is talking: the agent is not audible, no response is on its way, the
caller is not speaking (server VAD), no tool is running. After ``idle_nudge_s`` of it the agent
checks on the caller; after ``idle_hangup_s`` more it says goodbye and the call ends. Anything the
caller does (speech, keys) starts the count again. With ``max_call_s`` a wrap-up turn starts
``wrap_up_s`` before the limit, and at the limit the call ends.
"""
from __future__ import annotations

import enum


class LimitAction(enum.Enum):
    NONE = "none"
    NUDGE = "nudge"
    IDLE_GOODBYE = "idle goodbye"
    WRAP_UP = "wrap up"
    END = "end"


class CallLimits:
    """``poll`` on the run thread's timer; ``caller_active`` when the caller does anything."""

    def __init__(self, start: float, idle_nudge_s: float | None, idle_hangup_s: float | None,
                 max_call_s: float | None, wrap_up_s: float) -> None:
        self._idle_nudge_s = idle_nudge_s
        self._idle_hangup_s = idle_hangup_s
        self._end_at = None if max_call_s is None else start + max_call_s
        self._wrap_at = None if max_call_s is None else start + max(0.0, max_call_s - wrap_up_s)
        self._quiet_since = start
        self._nudged = False
        self._gave_up = False
        self._wrapped = False

    def caller_active(self, now: float) -> None:
        self._quiet_since = now
        self._nudged = False

    def poll(self, now: float, busy: bool) -> LimitAction:
        if self._end_at is not None and now >= self._end_at:
            self._end_at = None
            return LimitAction.END
        if self._wrap_at is not None and now >= self._wrap_at and not self._wrapped:
            self._wrapped = True
            return LimitAction.WRAP_UP
        if busy:
            self._quiet_since = now
            return LimitAction.NONE
        quiet = now - self._quiet_since
        if not self._nudged:
            if self._idle_nudge_s is not None and quiet >= self._idle_nudge_s:
                self._nudged, self._quiet_since = True, now
                return LimitAction.NUDGE
        elif not self._gave_up and self._idle_hangup_s is not None and quiet >= self._idle_hangup_s:
            self._gave_up = True
            return LimitAction.IDLE_GOODBYE
        return LimitAction.NONE
