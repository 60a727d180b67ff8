"""The agent acting on the call, through MediaSession's real threads on fake sockets: tools,
hang-up after the goodbye, transfer, keypad digits, idle and length limits, the call record."""
from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import threading
import weakref

import pytest

from voicebridge import BridgeConfig
from voicebridge.dev import tts
from voicebridge.testing import (BridgeCall, ManualClock, rt_agent_transcript, rt_function_call, rt_response_created,
                                 rt_response_done, rt_speech_started, rt_speech_stopped, twilio_dtmf, wait_until)
from voicebridge.call.tools import tool

FRAME = b"\x42" * 160
CFG = BridgeConfig(greeting_instructions=None, barge_in=False, join_timeout_s=3.0, idle_nudge_s=None, idle_hangup_s=None,
                   tool_filler_after_ms=0)


def outputs(openai):
    return [e["item"] for e in openai.events("conversation.item.create") if e["item"]["type"] == "function_call_output"]


def answer_requests(openai, audio=(FRAME,)):
    """Play the server: each bridge response.create gets a response (with ``audio``) and its end."""
    count = {"n": 0}

    def on_event(event):
        if event["type"] != "response.create":
            return
        count["n"] += 1
        rid, item = f"resp_req{count['n']}", f"item_req{count['n']}"
        kind = (event.get("response") or {}).get("metadata", {}).get("voicebridge")
        openai.push(rt_response_created(rid, kind))
        openai.push({"type": "response.output_item.added", "response_id": rid, "output_index": 0,
                     "item": {"id": item, "type": "message", "role": "assistant", "status": "in_progress"}})
        for chunk in audio:
            openai.delta(rid, item, chunk)
        openai.finish(rid, item)
    openai.on_client_event = on_event


def blocking_tool(**options):
    """A tool whose handler waits until ``release`` is set (10 s at most)."""
    release = threading.Event()

    @tool(**options)
    def slow() -> str:
        """Slow."""
        release.wait(10)
        return "ok"
    return slow, release


def call_tools(openai, rid, calls, audio=()):
    """A model response that says ``audio`` and then makes ``calls`` [(call_id, name, args)]."""
    openai.push(rt_response_created(rid))
    if audio:
        openai.push({"type": "response.output_item.added", "response_id": rid, "output_index": 0,
                     "item": {"id": f"item_{rid}", "type": "message", "role": "assistant", "status": "in_progress"}})
        for chunk in audio:
            openai.delta(rid, f"item_{rid}", chunk)
        openai.push({"type": "response.output_audio.done", "response_id": rid, "item_id": f"item_{rid}",
                     "output_index": 0, "content_index": 0})
    for call_id, name, args in calls:
        openai.push(rt_function_call(rid, call_id, name, args))
    openai.push(rt_response_done(rid))


def tick(call, clock=None, seconds=0.0):
    """Move the clock, then make the run thread's timers run once at the new time."""
    assert wait_until(lambda: call.session.stream_sid is not None)  # started, before the clock moves
    if clock is not None:
        clock.advance(seconds)
    count = call.session.metrics["inbound_frames"]
    call.twilio.media(b"\xff" * 160)
    assert wait_until(lambda: call.session.metrics["inbound_frames"] == count + 1)


# ----------------------------------------------------------------- tools
def test_a_tool_runs_off_the_session_threads_and_its_result_is_answered(bridge_call):
    ran_on = []

    @tool
    def lookup(order_id: str) -> dict:
        """Look up an order."""
        ran_on.append(threading.current_thread().name)
        return {"order_id": order_id, "status": "shipped"}

    call = bridge_call(CFG.replace(tools=(lookup,))).start()
    openai = call.openai
    assert wait_until(lambda: openai.events("session.update"))
    assert [t["name"] for t in openai.events("session.update")[0]["session"]["tools"]] == ["lookup"]
    call_tools(openai, "resp_1", [("call_1", "lookup", {"order_id": "42"})])
    assert wait_until(lambda: openai.requested("tool_result"))
    assert outputs(openai) == [{"type": "function_call_output", "call_id": "call_1",
                                "output": '{"order_id":"42","status":"shipped"}'}]
    kinds = [e["type"] for e in openai.events() if e["type"] in ("conversation.item.create", "response.create")]
    assert kinds == ["conversation.item.create", "response.create"]  # the result first, then one response
    assert ran_on and ran_on[0].startswith("vb-tool") and not any(t.name.startswith("vb-tool")
                                                                   for t in call.session.threads)
    m = call.finish()
    assert m["tool_calls"] == 1 and len(m["tool_overhead_ms"]) == 1


def test_parallel_calls_of_one_response_are_answered_together(bridge_call):
    release = threading.Event()

    @tool
    def slow(x: str) -> str:
        """Slow."""
        release.wait(5)
        return "slow " + x

    @tool
    def fast(x: str) -> str:
        """Fast."""
        return "fast " + x

    call = bridge_call(CFG.replace(tools=(slow, fast))).start()
    call_tools(call.openai, "resp_1", [("c1", "slow", {"x": "a"}), ("c2", "fast", {"x": "b"})])
    assert wait_until(lambda: call.session.metrics["tool_calls"] == 2)
    assert outputs(call.openai) == []  # the fast result waits for the slow one
    release.set()
    assert wait_until(lambda: call.openai.requested("tool_result"))
    assert [o["output"] for o in outputs(call.openai)] == ["slow a", "fast b"]
    assert len(call.openai.events("response.create")) == 1
    call.finish()


def test_failing_and_unknown_tools_answer_errors_and_the_call_goes_on(bridge_call, caplog):
    caplog.set_level(logging.INFO)

    @tool
    def broken() -> str:
        """Breaks."""
        raise RuntimeError("database down")

    call = bridge_call(CFG.replace(tools=(broken,))).start()
    call_tools(call.openai, "resp_1", [("c1", "broken", {}), ("c2", "nonexistent", {}), ("c3", "broken", "{bad")])
    assert wait_until(lambda: len(outputs(call.openai)) == 3)
    assert [json.loads(o["output"]) for o in outputs(call.openai)] == [
        {"error": "the lookup failed"}, {"error": "there is no tool called nonexistent"}, {"error": "the lookup failed"}]
    assert len([r for r in caplog.records if "tool broken failed" in r.getMessage()]) == 2
    assert not [r for r in caplog.records if r.exc_info]  # one line each, no traceback
    m = call.finish()
    assert m["close_reason"] == "twilio stop" and m["tool_errors"] == 2


def test_a_slow_tool_gets_a_filler_then_times_out_and_its_late_result_is_dropped(bridge_call):
    slow, release = blocking_tool(timeout_s=3.0)
    clock = ManualClock()
    call = bridge_call(CFG.replace(tools=(slow,), tool_filler_after_ms=1500), clock=clock).start()
    answer_requests(call.openai)
    call_tools(call.openai, "resp_1", [("c1", "slow", {})])
    assert wait_until(lambda: call.session.metrics["tool_calls"] == 1)
    tick(call, clock, 1.0)
    assert call.openai.requested("filler") == []
    tick(call, clock, 0.6)
    assert wait_until(lambda: call.openai.requested("filler"))
    filler = call.openai.requested("filler")[0]["response"]
    assert filler["conversation"] == "none" and filler["input"] == []  # heard, not kept in the conversation
    tick(call, clock, 1.5)
    assert wait_until(lambda: outputs(call.openai))
    assert json.loads(outputs(call.openai)[0]["output"]) == {"error": "the lookup timed out"}
    assert wait_until(lambda: call.openai.requested("tool_result"))
    release.set()
    assert wait_until(lambda: call.session.metrics["tool_late_results"] == 1)
    m = call.finish()
    assert len(outputs(call.openai)) == 1 and m["tool_timeouts"] == 1 and m["tool_fillers"] == 1


def test_results_never_go_out_over_an_active_response(bridge_call):
    slow, release = blocking_tool()
    call = bridge_call(CFG.replace(tools=(slow,))).start()
    call_tools(call.openai, "resp_1", [("c1", "slow", {})])
    call.openai.push(rt_response_created("resp_vad"))  # the model answers something else meanwhile
    assert wait_until(lambda: call.session.metrics["responses"] == 2)
    release.set()
    assert wait_until(lambda: outputs(call.openai))
    assert call.openai.requested("tool_result") == []  # the output is in; the response waits
    call.openai.push(rt_response_done("resp_vad"))
    assert wait_until(lambda: call.openai.requested("tool_result"))
    m = call.finish()
    assert m["openai_errors"] == {}


def test_the_caller_speaking_during_a_tool_call_gets_the_result_but_no_extra_response(bridge_call):
    slow, release = blocking_tool()
    call = bridge_call(CFG.replace(tools=(slow,))).start()
    call_tools(call.openai, "resp_1", [("c1", "slow", {})])
    call.openai.push(rt_speech_started())
    call.openai.push({"type": "sentinel.event"})
    assert wait_until(lambda: call.session.metrics["openai_unknown_events"] == 1)
    release.set()
    assert wait_until(lambda: outputs(call.openai))
    call.openai.push({"type": "sentinel.event"})
    assert wait_until(lambda: call.session.metrics["openai_unknown_events"] == 2)
    assert call.openai.requested("tool_result") == []  # the caller's own turn will be answered
    call.finish()



def tool_threads():
    return [t for t in threading.enumerate() if t.name.startswith("vb-tool") and t.is_alive()]


def test_hung_tools_give_their_places_back_when_they_time_out(bridge_call):
    """Two hung handlers on a pool of two: once they time out, a later lookup runs at once."""
    slow, release = blocking_tool(timeout_s=3.0)
    ran = []

    @tool
    def order_status(order_id: str) -> dict:
        """Look up an order."""
        ran.append(order_id)
        return {"order_id": order_id, "status": "shipped"}

    clock = ManualClock()
    call = bridge_call(CFG.replace(tools=(slow, order_status), tool_workers=2), clock=clock).start()
    try:
        call_tools(call.openai, "resp_1", [("c1", "slow", {}), ("c2", "slow", {})])
        assert wait_until(lambda: call.session.metrics["tool_calls"] == 2)
        tick(call, clock, 3.5)
        assert wait_until(lambda: len(outputs(call.openai)) == 2)  # both timed out; both still hang
        call_tools(call.openai, "resp_2", [("c3", "order_status", {"order_id": "42"})])
        assert wait_until(lambda: len(outputs(call.openai)) == 3)
        assert json.loads(outputs(call.openai)[2]["output"]) == {"order_id": "42", "status": "shipped"}
        assert ran == ["42"]
    finally:
        release.set()
    m = call.finish()
    assert m["tool_timeouts"] == 2 and m["tool_errors"] == 0


def test_the_tool_pool_is_shut_down_with_the_call(bridge_call):
    """A call still waiting for a place when the call ends is never started."""
    release, ran = threading.Event(), []

    @tool
    def slow(n: int) -> str:
        """Slow."""
        ran.append(n)
        release.wait(10)
        return "ok"

    call = bridge_call(CFG.replace(tools=(slow,), tool_workers=1)).start()
    try:
        call_tools(call.openai, "resp_1", [("c1", "slow", {"n": 1}), ("c2", "slow", {"n": 2})])
        assert wait_until(lambda: call.session.metrics["tool_calls"] == 2)
        assert wait_until(lambda: len(tool_threads()) == 1)
        first = tool_threads()[0]
        m = call.finish()  # c1 still hangs, c2 waits for its place
        assert m["tool_handlers_abandoned"] == 1
    finally:
        release.set()
    first.join(5)  # c1 returns: its place is free, and the call's pool starts nothing on it
    for thread in tool_threads():  # anything c1's thread started before it ended
        thread.join(5)
    assert not first.is_alive() and ran == [1]
    assert call.openai.events("conversation.item.create") == []


def test_a_hung_handler_holds_nothing_of_its_call():
    """Once the call is over, its session is freed even while a handler hangs on."""
    slow, release = blocking_tool()
    call = BridgeCall(CFG.replace(tools=(slow,)))  # not the fixture: it keeps its calls
    try:
        call.start()
        call_tools(call.openai, "resp_1", [("c1", "slow", {})])
        assert wait_until(lambda: len(tool_threads()) == 1)
        call.finish()
        session = weakref.ref(call.session)
        del call
        gc.collect()
        assert session() is None and len(tool_threads()) == 1
    finally:
        release.set()


def test_results_over_the_cap_are_refused_with_a_clear_error_and_never_kept(bridge_call, caplog):
    caplog.set_level(logging.INFO)

    @tool
    def dump(n: int) -> dict:
        """Everything."""
        return {"rows": ["r" * 100] * n}

    call = bridge_call(CFG.replace(tools=(dump,), tool_result_max_bytes=4096)).start()
    call_tools(call.openai, "resp_1", [("c1", "dump", {"n": 30}), ("c2", "dump", {"n": 50_000})])
    assert wait_until(lambda: len(outputs(call.openai)) == 2)
    small, huge = (o["output"] for o in outputs(call.openai))
    assert len(json.loads(small)["rows"]) == 30 and len(small) <= 4096
    error = json.loads(huge)["error"]
    assert "too large" in error and "4096" in error and len(huge) < 200
    call_tools(call.openai, "resp_2", [("c3", "dump", {"n": 60_000})])
    assert wait_until(lambda: len(outputs(call.openai)) == 3)
    m = call.finish()
    assert m["tool_results_too_large"] == 2 and m["tool_errors"] == 0
    assert len([r for r in caplog.records if "over tool_result_max_bytes" in r.getMessage()]) == 1  # once per tool
    kept = [e["detail"].get("output", "") for e in m["transcript"] if e["role"] == "tool"]
    assert max(map(len, kept)) <= 4096  # the record holds what was sent, not the 5 MB result
    assert BridgeConfig().tool_result_max_bytes == 16 * 1024


def test_a_hung_tool_never_keeps_the_process_from_exiting(tmp_path):
    """The handler threads are daemons: an interpreter with a handler that never returns exits."""
    script = tmp_path / "hung.py"
    script.write_text(
        "import threading\n"
        "from voicebridge.call.toolpool import ToolPool\n"
        "started = threading.Event()\n"
        "def never():\n"
        "    started.set()\n"
        "    threading.Event().wait()\n"
        "pool = ToolPool(1, 'vb-tool', lambda key, outcome: None)\n"
        "pool.submit('1', never)\n"
        "assert started.wait(5)\n"
        "pool.close()\n"
        "print('exiting', flush=True)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=10)
    assert done.returncode == 0 and done.stdout == "exiting\n", done.stderr


def test_function_calls_cut_by_a_cancel_are_never_run(bridge_call):
    """A barge-in cancels the response: its function-call items end ``incomplete`` and are not run."""
    ran = []

    @tool
    def lookup(order_id: str) -> str:
        """Look up."""
        ran.append(order_id)
        return "found"

    call = bridge_call(CFG.replace(tools=(lookup,))).start()
    call.openai.push(rt_response_created("resp_1"))
    call.openai.push(rt_function_call("resp_1", "c1", "lookup", '{"order_id": "4', status="incomplete"))
    call.openai.push(rt_response_done("resp_1", status="cancelled"))
    call_tools(call.openai, "resp_2", [("c2", "lookup", {"order_id": "7"})])
    assert wait_until(lambda: outputs(call.openai))
    m = call.finish()
    assert ran == ["7"] and [o["call_id"] for o in outputs(call.openai)] == ["c2"]
    assert m["tool_calls"] == 1

# ----------------------------------------------------------------- hang-up and transfer
def test_end_call_hangs_up_once_the_goodbye_has_been_heard(bridge_call):
    call = bridge_call(CFG.replace(end_call=True)).start()
    call.twilio.echo_marks = True
    call_tools(call.openai, "resp_1", [("c1", "end_call", {"reason": "done"})], audio=[FRAME * 6])
    m = call.finish(stop=False)
    assert m["close_reason"] == "agent ended the call" and m["agent_hangups"] == 1
    sent = call.twilio.messages()
    assert [s["event"] for s in sent].count("media") == 6 and sent[-1]["event"] == "mark"  # all of it, then its mark
    assert json.loads(outputs(call.openai)[0]["output"])["ok"] is True
    assert call.openai.requested("tool_result") == []  # no response after the goodbye


def test_end_call_waits_for_the_last_mark_but_not_forever(bridge_call):
    clock = ManualClock()
    call = bridge_call(CFG.replace(end_call=True, end_call_timeout_s=5.0), clock=clock).start()
    call_tools(call.openai, "resp_1", [("c1", "end_call", {})], audio=[FRAME * 2])
    assert wait_until(lambda: len(call.twilio.messages("mark")) == 1)  # marks are never echoed here
    tick(call, clock, 4.0)
    assert call.session.close_reason is None
    tick(call, clock, 1.5)
    m = call.finish(stop=False)
    assert m["close_reason"] == "agent ended the call" and m["hangup_mark_timeouts"] == 1


def test_end_call_without_words_asks_for_the_goodbye_first(bridge_call):
    call = bridge_call(CFG.replace(end_call=True)).start()
    call.twilio.echo_marks = True
    answer_requests(call.openai, audio=[FRAME * 3])
    call_tools(call.openai, "resp_1", [("c1", "end_call", {})])  # a call with no audio before it
    m = call.finish(stop=False)
    assert len(call.openai.requested("goodbye")) == 1 and m["close_reason"] == "agent ended the call"
    assert call.twilio.media_frames() == [FRAME] * 3  # the goodbye was heard before the hang-up


def test_transfer_to_a_configured_destination_and_refusal_of_others(bridge_call):
    told: list[tuple[str, bool]] = []  # (destination, was the stream still open when told)
    call = bridge_call(CFG.replace(transfer_targets={"support": "+15551234567"}),
                       on_transfer=lambda session, target: told.append((target, not call.twilio.closed.is_set())))
    call.start()
    call.twilio.echo_marks = True
    call_tools(call.openai, "resp_1", [("c1", "transfer_call", {"destination": "sales"})])
    assert wait_until(lambda: outputs(call.openai))
    assert json.loads(outputs(call.openai)[0]["output"]) == {"ok": False, "error": "unknown destination"}
    call_tools(call.openai, "resp_2", [("c2", "transfer_call", {"destination": "support"})], audio=[FRAME])
    m = call.finish(stop=False)
    assert m["close_reason"] == "transferred to support" and m["transfer_to"] == "+15551234567"
    assert m["transfers"] == 1
    assert told == [("+15551234567", True)]  # the app knew before Twilio could ask


SUPPORT, BILLING = "+15551234567", "sip:billing@pbx.example.com"
TARGETS = {"support": SUPPORT, "billing": BILLING}


def ending_call(bridge_call, calls, **options):
    """A call whose first response makes ``calls`` after a line of audio; returns (metrics, results,
    what on_transfer was told)."""
    told: list[str] = []
    call = bridge_call(CFG.replace(end_call=True, transfer_targets=TARGETS, **options),
                       on_transfer=lambda session, target: told.append(target)).start()
    call.twilio.echo_marks = True
    call_tools(call.openai, "resp_1", calls, audio=[FRAME * 2])
    m = call.finish(stop=False)
    return m, {o["call_id"]: json.loads(o["output"]) for o in outputs(call.openai)}, told


def test_a_transfer_wins_over_an_end_call_in_the_same_response(bridge_call):
    for calls in ([("c1", "end_call", {}), ("c2", "transfer_call", {"destination": "support"})],
                  [("c2", "transfer_call", {"destination": "support"}), ("c1", "end_call", {})]):
        m, results, told = ending_call(bridge_call, calls)
        assert m["close_reason"] == "transferred to support" and m["transfer_to"] == SUPPORT
        assert (m["transfers"], m["agent_hangups"]) == (1, 0) and told == [SUPPORT]
        assert results["c2"]["ok"] is True
        if calls[0][1] == "end_call":  # it was the ending when it was called; the transfer then replaced it
            assert results["c1"]["ok"] is True and "instead of hung up" in results["c2"]["note"]
        else:  # the model is told the hang-up did not happen
            assert results["c1"] == {"ok": False, "error": "not hung up: the caller is being transferred to "
                                                           "support, and the call ends with that transfer"}


def test_the_first_transfer_stands_and_the_second_is_told_so(bridge_call):
    m, results, told = ending_call(bridge_call, [("c1", "transfer_call", {"destination": "support"}),
                                                 ("c2", "transfer_call", {"destination": "billing"}),
                                                 ("c3", "transfer_call", {"destination": "support"})])
    assert m["transfer_to"] == SUPPORT and told == [SUPPORT] and m["transfers"] == 1
    assert results["c1"]["ok"] is True and results["c3"]["ok"] is True
    assert results["c2"] == {"ok": False, "error": "not transferred to billing: the caller is already being "
                                                   "transferred to support"}


def test_a_second_end_call_changes_nothing(bridge_call):
    m, results, told = ending_call(bridge_call, [("c1", "end_call", {}), ("c2", "end_call", {})])
    assert m["close_reason"] == "agent ended the call" and m["agent_hangups"] == 1 and told == []
    assert results["c1"]["ok"] is True and "already ending" in results["c2"]["note"]


def test_a_transfer_while_a_goodbye_is_pending_replaces_it(bridge_call):
    told: list[str] = []
    call = bridge_call(CFG.replace(end_call=True, transfer_targets=TARGETS),
                       on_transfer=lambda session, target: told.append(target)).start()
    call.twilio.echo_marks = True
    call_tools(call.openai, "resp_1", [("c1", "end_call", {})])  # no words: a goodbye is asked for
    assert wait_until(lambda: call.openai.requested("goodbye"))
    call_tools(call.openai, "resp_2", [("c2", "transfer_call", {"destination": "billing"})], audio=[FRAME])
    m = call.finish(stop=False)
    assert m["close_reason"] == "transferred to billing" and m["transfer_to"] == BILLING and told == [BILLING]
    assert json.loads(outputs(call.openai)[1]["output"])["ok"] is True


def test_the_length_limit_during_a_pending_transfer_still_transfers(bridge_call):
    clock = ManualClock()
    told: list[str] = []
    call = bridge_call(CFG.replace(transfer_targets=TARGETS, max_call_s=60.0, wrap_up_s=5.0), clock=clock,
                       on_transfer=lambda session, target: told.append(target)).start()
    call_tools(call.openai, "resp_1", [("c1", "transfer_call", {"destination": "support"})], audio=[FRAME * 50])
    assert wait_until(lambda: outputs(call.openai))  # marks are not echoed: the handoff line is still playing
    tick(call, clock, 61.0)
    m = call.finish(stop=False)
    assert m["close_reason"] == "maximum call length" and m["transfer_to"] == SUPPORT and told == [SUPPORT]
    assert (m["transfers"], m["agent_hangups"]) == (1, 0)


@pytest.mark.parametrize("guard", [True, False])
def test_the_goodbye_guard_for_a_model_that_forgets_end_call(bridge_call, guard):
    call = bridge_call(CFG.replace(hangup_on_goodbye=guard)).start()
    call.twilio.echo_marks = True
    call.openai.response("resp_1", "item_1", [FRAME * 2], done=False)
    call.openai.push(rt_agent_transcript("resp_1", "item_1", "Thanks for calling. Goodbye!"))
    call.openai.finish("resp_1", "item_1")
    if guard:
        assert call.finish(stop=False)["close_reason"] == "agent ended the call"
    else:
        call.openai.push({"type": "sentinel.event"})
        assert wait_until(lambda: call.session.metrics["openai_unknown_events"] == 1)
        assert call.finish()["close_reason"] == "twilio stop"


def test_a_barge_in_on_the_goodbye_cancels_the_hang_up(bridge_call):
    call = bridge_call(CFG.replace(end_call=True, barge_in=True, ignore_backchannels=False)).start()  # marks not
    call_tools(call.openai, "resp_1", [("c1", "end_call", {})], audio=[FRAME * 100])  # echoed: still playing
    assert wait_until(lambda: call.session.metrics["tool_calls"] == 1)
    voice = tts.load_prompt("caller_question")  # the model's VAD is believed with the caller heard here too
    for i in range(0, 30 * 160, 160):
        call.twilio.media(voice[i:i + 160])
    assert wait_until(lambda: call.session.metrics["inbound_frames"] == 30)
    call.openai.push(rt_speech_started())
    assert wait_until(lambda: call.session.metrics["hangups_cancelled"] == 1)
    m = call.finish()
    assert m["close_reason"] == "twilio stop" and m["agent_hangups"] == 0


# ----------------------------------------------------------------- keypad, idle, length
def test_keypad_digits_reach_the_hook_and_the_model(bridge_call):
    entered = []
    clock = ManualClock()
    call = bridge_call(CFG, clock=clock, on_keypad=lambda _, digits: entered.append(digits)).start()
    for key in "12#":
        call.twilio.push(twilio_dtmf(key))
    assert wait_until(lambda: entered == ["12"])
    texts = [e["item"]["content"][0]["text"] for e in call.openai.events("conversation.item.create")]
    assert texts == ["The caller entered 12 on the phone keypad."]
    assert wait_until(lambda: call.openai.requested("dtmf"))
    call.twilio.push(twilio_dtmf("7"))  # no terminator: the pause ends it
    tick(call)  # the key is handled (messages are read in order) before the clock moves
    tick(call, clock, 1.0)
    assert entered == ["12"]
    tick(call, clock, 1.5)
    assert wait_until(lambda: entered == ["12", "7"])
    m = call.finish()
    assert m["dtmf_sequences"] == 2 and [e["text"] for e in m["transcript"] if e["role"] == "keypad"] == ["12", "7"]


def keypad_items(openai):
    return [e["item"]["content"][0]["text"] for e in openai.events("conversation.item.create")
            if e["item"]["type"] == "message"]


def test_a_keypad_flood_costs_one_item_one_answer_and_one_line_per_interval(bridge_call, caplog):
    caplog.set_level(logging.INFO)
    entered = []
    clock = ManualClock()
    call = bridge_call(CFG, clock=clock, on_keypad=lambda _, digits: entered.append(digits)).start()
    for _ in range(1000):
        call.twilio.push(twilio_dtmf("1"))
        call.twilio.push(twilio_dtmf("#"))
    # The app hears of every entry, but for those its hook worker had no room for (counted, never silent)
    assert wait_until(lambda: len(entered) + call.session.metrics["hooks_dropped"] == 1000)
    assert len(entered) >= 256  # at least a full hook queue's worth
    assert keypad_items(call.openai) == ["The caller entered 1 on the phone keypad."]  # the first, at once
    tick(call, clock, 0.5)
    assert len(keypad_items(call.openai)) == 1
    tick(call, clock, 0.6)  # the interval has passed: the rest, together, newest first kept
    assert wait_until(lambda: len(keypad_items(call.openai)) == 2)
    assert keypad_items(call.openai)[1] == "The caller entered " + ", ".join(["1"] * 8) + " on the phone keypad."
    tick(call, clock, 5.0)
    m = call.finish()
    assert len(keypad_items(call.openai)) == 2 and len(call.openai.requested("dtmf")) <= 2
    assert m["dtmf_sequences"] == 1000 and m["dtmf_entries_dropped"] == 999 - 8
    assert len([r for r in caplog.records if "keypad: " in r.getMessage()]) == 2  # batches (a dropped hook call has its own line)
    assert len([e for e in m["transcript"] if e["role"] == "keypad"]) == 2


def test_keypad_digits_are_never_logged(bridge_call, caplog):
    caplog.set_level(logging.DEBUG)
    entered = []
    clock = ManualClock()
    call = bridge_call(CFG.replace(end_call=True), clock=clock, on_keypad=lambda _, digits: entered.append(digits)).start()
    for key in "8675309#":
        call.twilio.push(twilio_dtmf(key))
    for key in "4242":  # unterminated: the pause ends it
        call.twilio.push(twilio_dtmf(key))
    tick(call)
    tick(call, clock, 2.5)
    assert wait_until(lambda: entered == ["8675309", "4242"])
    m = call.finish()
    assert [e["text"] for e in m["transcript"] if e["role"] == "keypad"] == ["8675309", "4242"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "keypad: 1 entry, 7 digit(s)" in logged and "keypad: 1 entry, 4 digit(s)" in logged
    assert "8675309" not in logged and "4242" not in logged


def test_a_silent_caller_is_nudged_then_the_agent_says_goodbye_and_hangs_up(bridge_call):
    clock = ManualClock()
    call = bridge_call(CFG.replace(idle_nudge_s=10.0, idle_hangup_s=8.0), clock=clock).start()
    call.twilio.echo_marks = True
    answer_requests(call.openai, audio=[FRAME])
    tick(call, clock, 9.0)
    assert call.openai.requested("nudge") == []
    tick(call, clock, 1.5)
    assert wait_until(lambda: call.openai.requested("nudge"))
    assert wait_until(lambda: not call.session.outbound.audible)
    tick(call, clock, 0.1)  # the nudge has been heard: the quiet counts from here
    tick(call, clock, 8.5)
    m = call.finish(stop=False)
    assert len(call.openai.requested("goodbye")) == 1 and m["close_reason"] == "caller silent"


def test_the_caller_speaking_resets_the_idle_count(bridge_call):
    clock = ManualClock()
    call = bridge_call(CFG.replace(idle_nudge_s=10.0), clock=clock).start()
    tick(call, clock, 9.0)
    call.openai.push(rt_speech_started())
    call.openai.push(rt_speech_stopped())
    call.openai.push({"type": "sentinel.event"})
    assert wait_until(lambda: call.session.metrics["openai_unknown_events"] == 1)
    tick(call, clock, 9.0)
    assert call.openai.requested("nudge") == []
    call.finish()


def test_the_maximum_call_length_wraps_up_then_ends(bridge_call):
    clock = ManualClock()
    call = bridge_call(CFG.replace(max_call_s=60.0, wrap_up_s=20.0, end_call_timeout_s=30.0), clock=clock).start()
    tick(call, clock, 39.0)
    assert call.openai.requested("wrap_up") == []
    tick(call, clock, 1.5)
    assert wait_until(lambda: call.openai.requested("wrap_up"))  # never answered here: the limit ends it
    tick(call, clock, 21.0)
    m = call.finish(stop=False)
    assert m["close_reason"] in ("maximum call length",) and m["limit_wrap_up"] == 1


# ----------------------------------------------------------------- the record
def test_usage_and_what_the_caller_heard_are_in_the_call_end_record(bridge_call):
    heard = []
    call = bridge_call(CFG, on_transcript_entry=lambda _, role, text: heard.append((role, text))).start()
    call.openai.push({"type": "conversation.item.input_audio_transcription.completed", "item_id": "u1",
                      "content_index": 0, "transcript": "What time is it?"})
    call.openai.response("resp_1", "item_1", [FRAME], done=False)
    call.openai.push(rt_agent_transcript("resp_1", "item_1", "It is noon."))
    call.openai.push(rt_response_done("resp_1", usage={
        "total_tokens": 50, "input_tokens": 20, "output_tokens": 30,
        "input_token_details": {"text_tokens": 5, "audio_tokens": 15, "cached_tokens": 4},
        "output_token_details": {"text_tokens": 10, "audio_tokens": 20}}))
    assert wait_until(lambda: len(heard) == 2)
    m = call.finish()
    assert heard == [("caller", "What time is it?"), ("agent", "It is noon.")]
    assert m["usage"] == {"total_tokens": 50, "input_tokens": 20, "output_tokens": 30, "input_text_tokens": 5,
                          "input_audio_tokens": 15, "input_cached_tokens": 4, "output_text_tokens": 10,
                          "output_audio_tokens": 20}
    assert [e["role"] for e in m["transcript"]] == ["caller", "agent"]
