"""CallRecord's bounds and what a new Realtime session is told (issue 22, 9). Sans-IO."""
from __future__ import annotations

import json

from voicebridge.call.record import MAX_ENTRIES, CallRecord


def record() -> CallRecord:
    clock = iter(range(10**6))
    return CallRecord(lambda: float(next(clock)), lambda entry: None)


def replayed(rec: CallRecord, limit: int = 200) -> list[dict]:
    return [json.loads(event)["item"] for event in rec.history(limit)]


def text(item: dict) -> str:
    return item["content"][0]["text"] if item["type"] == "message" else item["call_id"]


def call(rec: CallRecord, call_id: str) -> None:
    rec.add("tool", f"lookup({call_id})", call_id=call_id, name="lookup", arguments="{}")


def result(rec: CallRecord, call_id: str) -> None:
    rec.add("tool", f"lookup -> ok {call_id}", call_id=call_id, output="ok")


def assert_pairs_whole(items: list[dict]) -> None:
    """Every result follows its call; nothing is replayed twice."""
    seen_calls = set()
    for item in items:
        if item["type"] == "function_call":
            assert item["call_id"] not in seen_calls
            seen_calls.add(item["call_id"])
        elif item["type"] == "function_call_output":
            assert item["call_id"] in seen_calls, item


def test_after_a_thousand_tool_calls_the_replay_carries_the_latest_turns_and_whole_pairs():
    """Before: the newest 200 items were results whose calls were older: 0 items replayed."""
    rec = record()
    rec.add("caller", "Check all my orders, please.")
    rec.add("agent", "Checking them all now.")
    for n in range(1000):
        call(rec, f"c{n}")
    for n in range(1000):
        result(rec, f"c{n}")
    items = replayed(rec, 200)
    assert [text(i) for i in items[:2]] == ["Check all my orders, please.", "Checking them all now."]
    tool_items = items[2:]
    assert len(tool_items) == 100 and len(items) <= 200  # tools take at most half the replay
    assert {i["call_id"] for i in tool_items} == {f"c{n}" for n in range(950, 1000)}  # the newest 50 pairs
    assert_pairs_whole(items)


def test_the_replay_is_limited_and_keeps_the_newest():
    rec = record()
    for n in range(600):
        rec.add("caller" if n % 2 else "agent", f"turn {n}")
    items = replayed(rec, 200)
    assert [text(i) for i in items] == [f"turn {n}" for n in range(400, 600)]


def test_interleaved_tool_calls_and_turns_stay_in_order_within_the_limit():
    rec = record()
    for n in range(300):
        rec.add("caller", f"question {n}")
        call(rec, f"c{n}")
        result(rec, f"c{n}")
        rec.add("agent", f"answer {n}")
    items = replayed(rec, 40)
    assert len(items) == 40 and text(items[-1]) == "answer 299"
    assert sum(i["type"] != "message" for i in items) <= 20
    assert_pairs_whole(items)
    order = [text(i) for i in items]
    assert order.index("c299") < order.index("answer 299") and order.index("question 299") < order.index("c299")


def test_a_call_still_running_is_replayed_alone_and_a_result_without_its_call_never():
    rec = record()
    result(rec, "gone")  # its call is older than the record
    rec.add("caller", "Where is my parcel?")
    call(rec, "pending")
    items = replayed(rec)
    assert [(i["type"], text(i)) for i in items] == [("message", "Where is my parcel?"),
                                                      ("function_call", "pending")]


def test_the_record_keeps_the_newest_entries_and_counts_what_it_dropped():
    """Before: after 2,000 entries nothing more was recorded; replay and transcript stopped there."""
    rec = record()
    for n in range(MAX_ENTRIES + 500):
        rec.add("caller", f"turn {n}")
    entries = rec.entries()
    assert len(entries) == MAX_ENTRIES and rec.dropped_entries == 500
    assert entries[0]["text"] == "turn 500" and entries[-1]["text"] == f"turn {MAX_ENTRIES + 499}"
    assert text(replayed(rec)[-1]) == f"turn {MAX_ENTRIES + 499}"


def test_an_answer_cut_after_its_response_was_done_is_cut_in_the_record():
    """The model generates faster than the caller hears: the response is done (its entry
    written) while its tail still plays, and the caller cuts it then. The record (the report, a
    new session's history) has it as heard, interrupted."""
    entries = []
    clock = iter(range(10**6))
    rec = CallRecord(lambda: float(next(clock)), entries.append)
    rec.agent_words("resp_1", "one two three four five six seven eight nine ten", final=True)
    rec.agent_done("resp_1", None)
    rec.add("caller", "wait")
    rec.agent_cut("resp_1", heard_ms=3000, received_ms=10000)
    agent = [e for e in rec.entries() if e["role"] == "agent"]
    assert agent == [dict(agent[0], text="one two three", detail={"response_id": "resp_1", "interrupted": True})]
    assert replayed(rec)[0]["content"][0]["text"] == "one two three"
    rec.agent_cut("resp_1", heard_ms=1000, received_ms=10000)  # (a second cut of the same answer: the first stands)
    assert [e["text"] for e in rec.entries() if e["role"] == "agent"] == ["one two three"]
    assert entries[0].role == "agent"  # (the hook had it when it was complete)


def test_a_cut_answer_whose_response_goes_on_is_cut_when_done():
    rec = record()
    rec.agent_words("resp_1", "one two three four")
    rec.agent_cut("resp_1", heard_ms=500, received_ms=1000)
    rec.agent_done("resp_1", None)
    assert [(e["text"], e["detail"].get("interrupted")) for e in rec.entries()] == [("one two", True)]


def test_a_cut_while_the_done_answer_becomes_its_entry_is_kept():
    """(review rv24) The run thread cuts the answer just as the model thread makes its entry: the
    entry is cut either way, never left whole."""
    cut = []

    def clock():  # (``agent_done`` reads the clock first: the run thread cuts then)
        if cut == [False]:
            cut[0] = True
            rec.agent_cut("resp_1", heard_ms=1000, received_ms=4000)
        return 0.0

    rec = CallRecord(clock, lambda entry: None)
    rec.started(0.0)
    rec.agent_words("resp_1", "one two three four five six seven eight")
    cut.append(False)
    rec.agent_done("resp_1", None)
    assert [(e["text"], e["detail"].get("interrupted")) for e in rec.entries()] == [("one two", True)]


def test_an_answer_cut_before_its_first_words_came_is_cut_when_they_come():
    """The barge-in can come before the answer's first transcript delta: its words, come later,
    are cut when the response is done."""
    rec = record()
    rec.agent_cut("resp_1", heard_ms=250, received_ms=1000)
    rec.agent_words("resp_1", "one two three four five six seven eight", final=True)
    rec.agent_done("resp_1", None)
    assert [(e["text"], e["detail"].get("interrupted")) for e in rec.entries()] == [("one two", True)]
