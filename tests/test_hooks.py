"""HookRunner: the app's hooks in order on one worker, a bounded queue, overflow counted."""
import logging
import threading

from voicebridge.call.log import CallLog
from voicebridge.call.hooks import HookRunner

LOG = CallLog(logging.getLogger("test.hooks"))


def test_hooks_run_in_order_off_the_submitting_thread_and_close_runs_the_queued_ones():
    runner, ran, gate = HookRunner(max_pending=10), [], threading.Event()
    assert runner.submit(lambda: gate.wait(5), "blocker", LOG)
    for i in range(5):
        assert runner.submit(lambda i=i: ran.append((i, threading.current_thread().name)), "hook", LOG)
    assert ran == []  # queued behind the blocked one; submit never waited
    gate.set()
    assert runner.close(5)
    assert [i for i, _ in ran] == [0, 1, 2, 3, 4] and {name for _, name in ran} == {"vb-hooks"}
    assert not runner.submit(lambda: None, "late", LOG)  # closed


def test_a_full_queue_drops_and_counts_and_a_failing_hook_is_logged(caplog):
    runner, gate, busy = HookRunner(max_pending=2), threading.Event(), threading.Event()
    runner.submit(lambda: (busy.set(), gate.wait(5)), "blocker", LOG)
    assert busy.wait(5)  # the worker is inside the blocker: the queue holds 2 more
    accepted = [runner.submit(lambda: None, "hook", LOG) for _ in range(5)]
    gate.set()
    assert accepted == [True, True, False, False, False] and runner.dropped == 3
    assert runner.close(5)
    failing = HookRunner()
    assert failing.submit(lambda: 1 / 0, "on_transcript hook", LOG) and failing.close(5)
    assert failing.failed == 1 and "on_transcript hook raised" in caplog.text


def test_flush_waits_for_every_hook_queued_before_it():
    runner, ran, gate = HookRunner(max_pending=10), [], threading.Event()
    runner.submit(lambda: gate.wait(5), "blocker", LOG)
    runner.submit(lambda: ran.append("entry"), "hook", LOG)
    assert not runner.flush(0.05, LOG) and ran == []  # still blocked: the flush gives up, says so
    gate.set()
    assert runner.flush(5, LOG) and ran == ["entry"]
    assert runner.close(5)
