"""The post-call report: builder, price estimate, signature, back-off, spool, delivery, the session's hook."""
import http.server
import json
import logging
import socket
import threading
import time

import pytest

from voicebridge import BridgeConfig
from voicebridge.call.delivery import ReportSender, Spool
from voicebridge.call.report import (IDEMPOTENCY_HEADER, SIGNATURE_HEADER, Backoff, DeliveryQueue, Outcome, Prices, build,
                                estimate_cost, outcome_of, sign, verify)
from voicebridge.testing import ManualClock, rt_agent_transcript, rt_transcript, wait_until


def test_cost_estimate_prices_each_kind_and_cached_input():
    usage = {"input_audio_tokens": 1_000_000, "input_text_tokens": 500_000, "input_cached_tokens": 200_000,
             "output_audio_tokens": 100_000, "output_text_tokens": 50_000}
    prices = Prices(text_in=4, cached_in=0.4, text_out=16, audio_in=32, audio_out=64)
    expected = (800_000 * 32 + 500_000 * 4 + 200_000 * 0.4 + 100_000 * 64 + 50_000 * 16) / 1e6
    assert estimate_cost(usage, prices) == pytest.approx(expected)
    assert estimate_cost({}, prices) == 0


def entry(t, role, text, **detail):
    return {"t": t, "role": role, "text": text, "detail": detail}


def test_report_holds_who_when_transcript_as_heard_tools_and_barge_ins():
    entries = [entry(0.5, "agent", "Hello, how can I", response_id="r1", interrupted=True),
               entry(1.0, "caller", "What time is it?"),
               entry(1.2, "tool", "clock()", name="clock", call_id="c1", arguments="{}"),
               entry(1.3, "tool", "12:00", name="clock", call_id="c1", output="12:00"),
               entry(2.0, "control", "transfer to sales")]
    metrics = {"barge_in_events": 1, "false_barge_ins": 2, "clears_sent": 1, "transfer_to": "+15550001111",
               "backchannel_holds": 3, "backchannels": 2, "hold_commits": 1, "false_trigger_commits": 2,
               "false_trigger_answered": 1, "answers_deferred": 1}
    report = build(report_id="rpt_1", who={"from": "+1", "to": "+2", "call_sid": "CA1"}, started_at=0.0,
                   duration_s=61.25, end_reason="twilio stop", entries=entries, metrics=metrics,
                   usage={"output_audio_tokens": 10}, prices=Prices(), recording={"location": "s3://x"})
    assert report["id"] == "rpt_1" and report["call"]["call_sid"] == "CA1"
    assert report["started_at"] == "1970-01-01T00:00:00.000Z" and report["ended_at"] == "1970-01-01T00:01:01.250Z"
    assert report["transcript"] == [{"t": 0.5, "role": "agent", "text": "Hello, how can I", "interrupted": True},
                                    {"t": 1.0, "role": "caller", "text": "What time is it?"}]
    assert [t.get("arguments", t.get("output")) for t in report["tool_calls"]] == ["{}", "12:00"]
    assert report["barge_ins"] == {"confirmed": 1, "false": 2, "clears": 1, "holds": 3, "resumed": 2, "hold_commits": 1,
                                   "words_asked": 2, "answered": 1, "answers_waited": 1}
    assert report["transfer_to"] == "+15550001111" and report["amd"] is None
    assert report["cost"]["estimate"] == pytest.approx(10 * 64 / 1e6)
    json.dumps(report)


def test_signature_verifies_and_refuses_tampering_wrong_key_and_old_timestamps():
    body = b'{"id":"rpt_1"}'
    header = sign(body, "s3cret", 1000)
    assert verify(body, header, "s3cret", now=1000)
    assert not verify(body + b" ", header, "s3cret", now=1000)
    assert not verify(body, header, "other", now=1000)
    assert not verify(body, header, "s3cret", now=1000 + 301)
    assert not verify(body, None, "s3cret", now=1000) and not verify(body, "t=x,v1=y", "s3cret", now=1000)


def test_statuses_map_to_outcomes():
    assert outcome_of(200) is Outcome.DELIVERED and outcome_of(204) is Outcome.DELIVERED
    assert all(outcome_of(s) is Outcome.RETRY for s in (None, 408, 429, 500, 503))
    assert outcome_of(400) is Outcome.REJECTED and outcome_of(401) is Outcome.REJECTED


def test_backoff_doubles_with_jitter_and_is_capped():
    b = Backoff(base_s=1.0, cap_s=60.0)
    assert [b.delay(n, rng=lambda: 1.0) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert [b.delay(n, rng=lambda: 0.0) for n in range(3)] == [0.5, 1, 2]


def test_delivery_queue_retries_on_schedule_and_forgets_delivered():
    clock = ManualClock(0.0)
    q = DeliveryQueue(Backoff(1.0, 8.0), rng=lambda: 1.0)
    q.add("a", clock())
    q.add("b", clock())
    assert q.due(clock()) == ["a", "b"]
    assert q.done("a", Outcome.RETRY, clock()) == 1.0
    assert q.done("b", Outcome.DELIVERED, clock()) is None
    assert q.due(clock.advance(0.5)) == [] and q.next_at() == 1.0
    assert q.due(clock.advance(0.5)) == ["a"]
    assert q.done("a", Outcome.RETRY, clock()) == 3.0  # second failure: 2 s
    assert q.attempts("a") == 2 and len(q) == 1
    q.hurry(clock.advance(1.0))  # the target is back: no waiting out the back-off
    assert q.due(clock()) == ["a"]
    q.done("a", Outcome.REJECTED, clock.advance(1.0))
    assert len(q) == 0 and q.next_at() is None


def test_spool_survives_a_restart_and_rejects_bad_ids(tmp_path):
    spool = Spool(str(tmp_path))
    spool.put("rpt_a", b"{}")
    spool.put("rpt_b", b"{}")
    assert Spool(str(tmp_path)).ids() == ["rpt_a", "rpt_b"]
    spool.reject("rpt_a")
    assert spool.ids() == ["rpt_b"] and (tmp_path / "rejected" / "rpt_a.json").exists()
    with pytest.raises(ValueError):
        spool.put("../x", b"{}")


def test_sender_retries_a_down_target_then_delivers_once_each(tmp_path):
    """Injected POST: down for the first attempts, then up; every report once, signed, keyed."""
    got, down = [], [True]

    def post(url, body, headers, timeout):
        if down[0]:
            return None
        got.append((headers[IDEMPOTENCY_HEADER], headers[SIGNATURE_HEADER], body))
        return 200

    sender = ReportSender("http://x/", str(tmp_path), "k", backoff=Backoff(0.01, 0.05), post=post)
    try:
        for n in range(5):
            sender.submit({"id": f"rpt_{n}"})
        assert wait_until(lambda: sender.stats["retries"] >= 5)
        down[0] = False
        assert sender.wait_idle(5.0)
    finally:
        sender.close()
    assert sorted(k for k, _, _ in got) == [f"rpt_{n}" for n in range(5)]
    assert all(verify(body, sig, "k", now=__import__("time").time()) for _, sig, body in got)
    assert Spool(str(tmp_path)).ids() == []


def test_a_report_past_its_retention_is_deleted_not_sent(tmp_path):
    wall = [1000.0]
    sender = ReportSender("http://x/", str(tmp_path), None, retention_s=60, backoff=Backoff(0.01, 0.01),
                          post=lambda *a: None, wall=lambda: wall[0])
    try:
        sender.submit({"id": "rpt_old"})
        assert wait_until(lambda: sender.stats["retries"] >= 1)
        wall[0] += 61
        assert sender.wait_idle(5.0)
    finally:
        sender.close()
    assert sender.stats["expired"] == 1 and Spool(str(tmp_path)).ids() == []


class Receiver:
    """A webhook receiver on 127.0.0.1: counts deliveries by idempotency key, checks signatures."""

    def __init__(self, port, secret):
        self.keys, self.bad = [], 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not verify(body, self.headers.get(SIGNATURE_HEADER), secret, now=__import__("time").time()):
                    outer.bad += 1
                outer.keys.append(self.headers.get(IDEMPOTENCY_HEADER))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_reports_reach_a_local_receiver_that_was_down_even_across_a_restart(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/reports"
    first = ReportSender(url, str(tmp_path), "k", backoff=Backoff(0.02, 0.1))
    for n in range(4):
        first.submit({"id": f"rpt_{n}"})
    assert wait_until(lambda: first.stats["retries"] >= 4)  # refused: the receiver is down
    first.close()  # the process "restarts": the reports wait in the spool
    receiver = Receiver(port, "k")
    second = ReportSender(url, str(tmp_path), "k", backoff=Backoff(0.02, 0.1))
    try:
        second.submit({"id": "rpt_new"})
        assert second.wait_idle(5.0)
    finally:
        second.close()
        receiver.stop()
    assert sorted(receiver.keys) == ["rpt_0", "rpt_1", "rpt_2", "rpt_3", "rpt_new"] and receiver.bad == 0
    assert second.stats["recovered"] == 4


def test_every_call_gets_a_report_on_the_hook_off_the_calls_threads(bridge_call, tmp_path):
    reports = []
    config = BridgeConfig(greeting_instructions=None, barge_in=False, join_timeout_s=3.0, reconnect_attempts=0,
                          recording_dir=str(tmp_path))
    call = bridge_call(config, on_report=lambda s, r: reports.append((threading.current_thread().name, r)))
    call.start(From="+15551230000", To="+15559870000")
    call.openai.push(rt_transcript("What are your hours?"))
    call.openai.push(rt_agent_transcript("resp_1", "item_1", "Nine to five."))
    call.openai.response("resp_1", "item_1", [b"\x01" * 1600])
    assert call.twilio.wait_for(lambda t: len(t.messages("media")) >= 10)
    call.finish()
    assert wait_until(lambda: reports, 5.0)
    thread, report = reports[0]
    assert thread.startswith("vb-recording") and len(reports) == 1
    assert report["call"]["from"] == "+15551230000" and report["call"]["call_sid"] == call.session.call_sid
    assert report["end_reason"] == "twilio stop" and report["amd"] is None
    assert [e["role"] for e in report["transcript"]] == ["caller", "agent"]
    assert report["recording"]["location"].endswith(".wav") and report["recording"]["seconds"] > 0


def test_a_bridge_delivers_every_calls_report_to_its_webhook_through_one_sender(tmp_path):
    """VoiceBridge: on_report for each call, and the webhook sender chosen by the call's config."""
    from voicebridge.serving.flaskext import VoiceBridge
    from voicebridge.testing import FakeRealtime, FakeTwilio

    port = free_port()
    receiver = Receiver(port, "k")
    config = BridgeConfig(greeting_instructions=None, barge_in=False, join_timeout_s=3.0, reconnect_attempts=0,
                          report_url=f"http://127.0.0.1:{port}/r", report_secret="k",
                          report_spool_dir=str(tmp_path))
    hooked = []
    bridge = VoiceBridge(config=config, connect=FakeRealtime().connector, metrics=False,
                         on_report=lambda s, r: hooked.append(r["id"]))
    try:
        for _ in range(2):
            twilio = FakeTwilio()
            twilio.connected_and_start()
            twilio.stop()
            bridge.handle_media(twilio)
        assert wait_until(lambda: len(receiver.keys) == 2, 5.0)
        assert sorted(receiver.keys) == sorted(hooked) and receiver.bad == 0
        assert len(bridge._reports.senders) == 1
    finally:
        bridge.close()
        receiver.stop()


def test_a_full_hook_worker_does_not_lose_the_report(bridge_call):
    """Without a recording the report goes through the hook worker; a full one must not drop it."""
    from voicebridge.call.hooks import HookRunner

    log = logging.LoggerAdapter(logging.getLogger(), {})
    runner = HookRunner("test-hooks", max_pending=1)
    gate, busy = threading.Event(), threading.Event()
    runner.submit(lambda: (busy.set(), gate.wait(5.0)), "blocker", log)
    assert busy.wait(5.0)  # the worker is stuck in a slow hook ...
    assert runner.submit(lambda: None, "filler", log)  # ... and its queue is full
    reports = []
    config = BridgeConfig(greeting_instructions=None, barge_in=False, join_timeout_s=3.0, reconnect_attempts=0)
    call = bridge_call(config, hooks=runner, on_report=lambda s, r: reports.append(r))
    try:
        call.start()
        call.finish()
        assert wait_until(lambda: reports, 5.0) and reports[0]["call"]["call_sid"] == call.session.call_sid
    finally:
        gate.set()
        runner.close(2.0)


def test_a_new_bridge_delivers_what_an_earlier_process_spooled_without_waiting_for_a_call(tmp_path):
    from voicebridge.serving.flaskext import VoiceBridge
    from voicebridge.testing import FakeRealtime

    port = free_port()
    url = f"http://127.0.0.1:{port}/r"
    earlier = ReportSender(url, str(tmp_path), "k", backoff=Backoff(0.02, 0.1))
    earlier.submit({"id": "rpt_left"})
    assert wait_until(lambda: earlier.stats["retries"] >= 1)  # the receiver is down
    earlier.close()  # the process ends; the report waits in the spool
    receiver = Receiver(port, "k")
    config = BridgeConfig(report_url=url, report_secret="k", report_spool_dir=str(tmp_path))
    bridge = VoiceBridge(config=config, connect=FakeRealtime().connector, metrics=False)
    try:
        assert wait_until(lambda: receiver.keys == ["rpt_left"], 5.0)  # no call has ended here
    finally:
        bridge.close()
        receiver.stop()


def test_a_closing_bridge_lets_a_just_ended_call_hand_on_its_report_before_its_senders_stop() -> None:
    """The report of a call that has just ended is built off the call's threads (after the
    recording is written): a bridge closing meanwhile waits for it (bounded), then lets its
    senders deliver, then stops them (before, it stopped them at once: the report sat in the spool)."""
    import threading
    from types import SimpleNamespace

    from voicebridge.serving.reports import hand_on_reports

    order: list[str] = []
    settled = threading.Event()
    session = SimpleNamespace(after=SimpleNamespace(settled=settled))

    class Sender:
        def wait_idle(self, timeout: float) -> bool:
            order.append("sender idle")
            return True

        def close(self, timeout: float) -> bool:
            order.append("sender closed")
            return True

    def report_handed_on() -> None:
        order.append("report handed on")
        settled.set()
    timer = threading.Timer(0.2, report_handed_on)
    timer.start()
    hand_on_reports([session], lambda: (order.append("senders taken"), [Sender()])[1], within_s=5.0)
    timer.join()
    assert order == ["report handed on", "senders taken", "sender idle", "sender closed"]


def test_a_bridge_keeps_one_report_sender_per_webhook_and_at_close_waits_for_a_report_on_its_way(tmp_path):
    """``BridgeReports``: calls whose configs name the same webhook, spool and secret share one
    sender; a config without a webhook has none. At close a call that just ended is given its
    moment to hand its report on before the senders stop, and the senders are forgotten."""
    import threading
    from types import SimpleNamespace

    from voicebridge.serving.reports import BridgeReports

    reports = BridgeReports()
    assert reports.sender(BridgeConfig()) is None
    url, spool = "http://127.0.0.1:9/r", str(tmp_path / "spool")
    first = reports.sender(BridgeConfig(report_url=url, report_spool_dir=spool))
    assert reports.sender(BridgeConfig(report_url=url, report_spool_dir=spool)) is first
    signed = reports.sender(BridgeConfig(report_url=url, report_spool_dir=str(tmp_path / "other"), report_secret="k"))
    assert signed is not first and len(reports.senders) == 2
    settled, order = threading.Event(), []

    class Ended:  # a session, as far as its report goes (hashable, as sessions are)
        after = SimpleNamespace(settled=settled)
    reports.ended(Ended())
    timer = threading.Timer(0.1, lambda: (order.append("handed on"), settled.set()))
    timer.start()
    reports.close(5.0)
    order.append("closed")
    timer.join()
    assert order == ["handed on", "closed"] and reports.senders == {}


def test_a_closing_bridge_waits_for_the_report_of_a_call_it_shut_down(tmp_path):
    """A call the bridge's own close ended reaches ``BridgeReports.ended`` only after its
    ``session.close`` returned, racing the close's wait (an outside review found it): the close
    waits for the calls it closed too, and a report handed on after it makes no shared sender."""
    from voicebridge.serving.flaskext import VoiceBridge
    from voicebridge.testing import FakeRealtime, FakeTwilio

    config = BridgeConfig(greeting_instructions=None, barge_in=False, join_timeout_s=3.0, reconnect_attempts=0,
                          recording_dir=str(tmp_path), report_url="http://127.0.0.1:9/r",
                          report_spool_dir=str(tmp_path / "spool"))
    handed: list[float] = []

    def slow_report(session, report):
        time.sleep(0.5)
        handed.append(time.monotonic())

    bridge = VoiceBridge(config=config, connect=FakeRealtime().connector, metrics=False, on_report=slow_report)
    twilio = FakeTwilio()
    twilio.connected_and_start()
    runner = threading.Thread(target=bridge.handle_media, args=(twilio,), daemon=True)
    runner.start()
    assert wait_until(lambda: bool(bridge._sessions), 5.0)
    time.sleep(0.3)
    bridge.close()
    closed_at = time.monotonic()
    runner.join(5.0)
    assert wait_until(lambda: handed, 5.0)
    assert handed[0] <= closed_at, "the report was handed on after the bridge had closed"
    assert bridge._reports.senders == {}, "a sender made after close, never closed"
