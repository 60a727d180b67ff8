"""Running the model's function calls and giving it the results.

Each ``function_call`` item the model completes is run at once on a small pool of daemon threads
of its own (``tool_workers`` at once; ``voicebridge.call.toolpool``: a timed-out call frees its place,
nothing waits for a hung handler), never on the session's threads, with a time limit. A result
larger than ``tool_result_max_bytes`` is replaced by an error the model can act on. The calls of one
response are answered together: once that response is done and every call has a result (or an
error: the handler raised, timed out, or named an unknown tool), each result goes back as a
``function_call_output`` item, followed by one ``response.create`` (through
``Turns``, so never over an active response). A lookup slower than
``tool_filler_after_ms`` gets a short spoken "still checking" meanwhile.

The rule when the caller speaks while a tool runs (after a barge-in, or just talking): the
result is still delivered, so every call the model made gets its output, but no
``response.create`` follows -- the caller's new turn is answered instead, with the result already
in the conversation (``Turns.follow_up`` keeps the order of tool calls and caller speech). A result that comes after its time limit is dropped (the model was told it
timed out). The built-in ``end_call`` and ``transfer_call`` run at once on the model thread.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Callable

from ..locks import state_lock
from .. import peerjson
from ..model import protocol as rt
from .ending import CallControl
from .record import CallRecord
from .turns import Turns
from .toolpool import PoolFull, ToolPool
from .tools import END_CALL, TRANSFER_CALL, CallInfo, Tool, encode_result
from ..errors import describe
from .context import CallContext

MAX_BATCHES = 8


@dataclass
class _Call:
    call_id: str
    name: str
    arguments: str
    started: float
    deadline: float
    result: str | None = None
    ran_s: float = 0.0  # the handler's own time (not the bridge's)
    job: str = ""  # its key on the pool (the model's call ids need not be unique)


@dataclass
class _Batch:
    response_id: str
    calls: list[_Call] = field(default_factory=list)
    closed: bool = False  # its response is done: no more calls will come
    delivered: bool = False
    filler: bool = False


class ToolCalls:
    """The calls in flight, per response; results delivered together."""

    def __init__(self, ctx: CallContext, send: Callable[[str], bool], turns: Turns,
                 control: CallControl, record: CallRecord, call_info: Callable[[], CallInfo]) -> None:
        config, metrics, log, clock = ctx.config, ctx.metrics, ctx.log, ctx.clock
        self._config = config
        self._tools = {t.name: t for t in config.all_tools}
        self._send = send
        self._turns = turns
        self._control = control
        self._record = record
        self._metrics = metrics
        self._log = log
        self._clock = clock
        self._call_info = call_info
        self._lock = state_lock()
        self._batches: dict[str, _Batch] = {}
        self._calls: dict[str, tuple[_Batch, _Call]] = {}  # on the pool, by job key
        self._jobs = itertools.count(1)
        self._pool: ToolPool | None = None
        self._closed = False

    @property
    def running(self) -> bool:
        with self._lock:
            return any(not b.delivered for b in self._batches.values())

    # ------------------------------------------------------------------ model thread
    def function_call(self, event: rt.FunctionCall, now: float) -> None:
        if event.status != "completed":  # cut by a cancel: its arguments may be partial
            self._log.info("function call %s not run: its item ended %s", event.name[:64], event.status)
            return
        tool = self._tools.get(event.name)
        limit = (tool.timeout_s if tool and tool.timeout_s else self._config.tool_timeout_s)
        call = _Call(event.call_id, event.name[:64], event.arguments, now, now + limit)
        with self._lock:
            batch = self._batch(event.response_id)
            batch.calls.append(call)
        self._metrics.add("tool_calls")
        self._record.add("tool", f"{call.name}({event.arguments[:500]})", call_id=call.call_id, name=call.name,
                         arguments=event.arguments)
        if tool is None:
            self._settle(batch, call, _error(f"there is no tool called {call.name}"), 0.0)
        elif tool.handler is None:
            self._settle(batch, call, self._control_tool(tool, event, now), 0.0)
        else:
            self._submit(batch, call, tool)

    def response_done(self, response_id: str) -> None:
        with self._lock:
            batch = self._batches.get(response_id)
            if batch is None:
                return
            batch.closed = True
        self._deliver_if_ready(batch)

    def session_replaced(self) -> None:
        """The model session was replaced: the responses of open batches will never finish."""
        with self._lock:
            open_batches = [b for b in self._batches.values() if not b.closed]
            for batch in open_batches:
                batch.closed = True
        for batch in open_batches:
            self._deliver_if_ready(batch)

    # ------------------------------------------------------------------ run thread
    def poll(self, now: float) -> None:
        """Time limits and the filler (25 times a second per call: a call that has made no tool
        call yet returns at once, its dict read without the lock, a batch added meanwhile being
        the next poll's)."""
        if not self._batches:
            return
        with self._lock:
            batches = [b for b in self._batches.values() if not b.delivered]
        for batch in batches:
            for call in batch.calls:
                if call.result is None and now > call.deadline:
                    self._metrics.add("tool_timeouts")
                    self._log.once(f"tool-timeout:{call.name}", "tool %s timed out after %.1f s: the model is told",
                                   call.name, call.deadline - call.started)
                    self._settle(batch, call, _error("the lookup timed out"), call.deadline - call.started)
                    self._free(call.job)  # its place in the pool goes to the next call
            self._maybe_filler(batch, now)

    def close(self) -> None:
        """The call is over: nothing more starts; a handler still running is abandoned (never waited for)."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
            self._calls.clear()
        if pool is None:
            return
        abandoned, dropped = pool.close()
        if abandoned or dropped:
            self._metrics.add("tool_handlers_abandoned", abandoned)
            self._log.warning("call over with %d tool handler(s) still running (abandoned: never waited for, "
                              "their results dropped) and %d call(s) never started", abandoned, dropped)

    # ------------------------------------------------------------------ internals
    def _batch(self, response_id: str) -> _Batch:
        batch = self._batches.get(response_id)
        if batch is None:
            batch = self._batches[response_id] = _Batch(response_id)
            done = [k for k, b in self._batches.items() if b.delivered]
            for key in done[: max(0, len(self._batches) - MAX_BATCHES)]:
                del self._batches[key]
        return batch

    def _submit(self, batch: _Batch, call: _Call, tool: Tool) -> None:
        """Run ``tool`` for ``call`` on the call's pool (arguments parsed here, on the model thread)."""
        try:
            kwargs = peerjson.loads(call.arguments or "{}")
            if not isinstance(kwargs, dict):
                raise ValueError("arguments are not a JSON object")
        except Exception as exc:  # noqa: BLE001 - not JSON, or nested too deep (RecursionError)
            self._failed(batch, call, exc)
            return
        if tool.call_info_param:
            kwargs[tool.call_info_param] = self._call_info()
        with self._lock:
            if self._closed:
                return
            if self._pool is None:
                self._pool = ToolPool(self._config.tool_workers, "vb-tool", self._handler_done)
            pool = self._pool
            call.job = str(next(self._jobs))
            self._calls[call.job] = (batch, call)
        pool.submit(call.job, _work(tool, kwargs, self._clock))

    def _handler_done(self, job: str, outcome: object) -> None:
        """A handler returned (pool thread): ``(output, seconds)`` or the exception it raised."""
        with self._lock:
            entry = self._calls.pop(job, None)
        if entry is None:
            return  # the call is over
        batch, call = entry
        if isinstance(outcome, BaseException):
            if isinstance(outcome, PoolFull):
                self._log.once("tool-pool-full", "tool %s not run: %s", call.name, outcome)
            self._failed(batch, call, outcome)
            return
        output, ran_s = outcome  # type: ignore[misc]
        self._settle(batch, call, self._capped(call, output), ran_s)

    def _failed(self, batch: _Batch, call: _Call, exc: BaseException) -> None:
        self._metrics.add("tool_errors")
        self._log.warning("tool %s failed: %s", call.name, describe(exc))
        self._settle(batch, call, _error("the lookup failed"), 0.0)

    def _capped(self, call: _Call, output: str) -> str:
        """``output``, or an error telling the model the result was too large (and one log line)."""
        limit = self._config.tool_result_max_bytes
        if not limit or len(output) * 4 <= limit:  # a UTF-8 character is at most 4 bytes
            return output
        size = len(output.encode("utf-8", "surrogatepass"))
        if size <= limit:
            return output
        self._metrics.add("tool_results_too_large")
        self._log.once(f"tool-too-large:{call.name}", "tool %s returned %d bytes, over tool_result_max_bytes "
                       "(%d): the model is told the result was too large", call.name, size, limit)
        return _error(f"the result was too large to use ({size} bytes, at most {limit}); "
                      "ask for something more specific")

    def _free(self, job: str) -> None:
        with self._lock:
            pool = self._pool
        if pool is not None and job:
            pool.settle(job)

    def _control_tool(self, tool: Tool, event: rt.FunctionCall, now: float) -> str:
        try:
            args = peerjson.loads(event.arguments or "{}")
        except ValueError:
            args = {}
        args = args if isinstance(args, dict) else {}
        if tool.name == END_CALL:
            return self._control.end_call(event.response_id, str(args.get("reason") or "the agent ended it"), now)
        if tool.name == TRANSFER_CALL:
            return self._control.transfer(event.response_id, str(args.get("destination") or ""), now)
        return _error("not available")

    def _settle(self, batch: _Batch, call: _Call, output: str, ran_s: float) -> None:
        with self._lock:
            if call.result is not None:  # a result after its time limit: dropped
                late = True
            else:
                late = False
                call.result, call.ran_s = output, ran_s
        if late:
            self._metrics.add("tool_late_results")
            return
        self._deliver_if_ready(batch)

    def _deliver_if_ready(self, batch: _Batch) -> None:
        with self._lock:
            if batch.delivered or not batch.closed or any(c.result is None for c in batch.calls):
                return
            batch.delivered = True
            calls = list(batch.calls)
        for call in calls:
            self._send(rt.function_call_output(call.call_id, call.result or ""))
            overhead_ms = (self._clock() - call.started - call.ran_s) * 1000
            self._metrics.tool_overhead(overhead_ms)
            self._record.add("tool", f"{call.name} -> {(call.result or '')[:500]}", call_id=call.call_id,
                             output=call.result or "")
        if self._turns.follow_up(batch.response_id) and not self._control.ending:
            self._turns.request("tool_result")

    def _maybe_filler(self, batch: _Batch, now: float) -> None:
        after = self._config.tool_filler_after_ms / 1000
        wanted = after > 0 and self._turns.follow_up(batch.response_id)  # not once the caller has spoken
        with self._lock:
            slow = (wanted and not batch.filler and batch.closed
                    and any(c.result is None and now - c.started >= after for c in batch.calls))
            if slow:
                batch.filler = True
        if slow:
            self._metrics.add("tool_fillers")
            self._turns.request("filler", self._config.tool_filler_instructions, out_of_band=True)


def _error(message: str) -> str:
    return json.dumps({"error": message})


def _work(tool: Tool, kwargs: dict[str, object], clock: Callable[[], float]) -> Callable[[], tuple[str, float]]:
    """What a pool thread runs: the handler and the encoding of its result, timed. It holds the
    handler, its arguments and the clock only -- nothing of the call (see ``voicebridge.call.toolpool``)."""
    def run() -> tuple[str, float]:
        start = clock()
        output = encode_result(tool.handler(**kwargs))  # type: ignore[misc]
        return output, clock() - start
    return run
