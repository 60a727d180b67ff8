"""Shared fixtures: calls on fake sockets that are always ended, and a guard against escaped errors."""
from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any, Callable, Iterator

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # benchmarks.fleet_parts (a real redis-server, app instances) under plain `pytest` too
    sys.path.insert(0, ROOT)

from voicebridge.testing import BridgeCall


@pytest.fixture
def bridge_call() -> Iterator[Callable[..., BridgeCall]]:
    """``bridge_call(config, **options) -> BridgeCall``; every call made is ended after the test."""
    calls: list[BridgeCall] = []

    def make(config: Any = None, **options: Any) -> BridgeCall:
        call = BridgeCall(config, **options)
        calls.append(call)
        return call

    yield make
    for call in calls:
        call.abandon()


@pytest.fixture
def no_escaped_exceptions(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No exception may escape a thread, no traceback reach the logs, every thread must stop."""
    escaped: list[Any] = []
    previous = threading.excepthook
    threading.excepthook = escaped.append
    caplog.set_level(logging.INFO)
    try:
        yield
    finally:
        threading.excepthook = previous
    assert not escaped, [f"{a.thread.name}: {a.exc_type.__name__}: {a.exc_value}" for a in escaped]
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
    stuck = [r.getMessage() for r in caplog.records
             if "did not stop in time" in r.getMessage() or "accounting mismatch" in r.getMessage()]
    assert not stuck, stuck


def log_lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    """Log messages containing ``text`` (helper for tests; import from conftest is avoided)."""
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Callable[[str], list[str]]:
    """``lines(text)``: the captured log messages containing ``text``."""
    caplog.set_level(logging.INFO)
    return lambda text: log_lines(caplog, text)


# ---------------------------------------------------------------------------- a real redis-server
@pytest.fixture
def redis_server() -> Iterator[Any]:
    """A real ``redis-server`` on 127.0.0.1 (a free port, no persistence), always stopped.

    The test may ``stop()`` and ``start()`` it (same port: an outage and a recovery). Skipped
    only when redis-server cannot be had; under CI (``CI`` set) a missing one fails instead,
    because ``make test`` and ``.ci/run`` install it.
    """
    from benchmarks.fleet_parts import RedisServer, redis_server_path

    if redis_server_path() is None:
        reason = "redis-server is not installed (make test installs it: apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


# ---------------------------------------------------------------------------- xdist: long tests first
# The lane's wall time is its busiest worker's. A few modules hold tests of 5-20 s each (whole
# calls in real time, fresh interpreters, gunicorn); collected in file order they come last and
# whichever worker picks them up late runs on alone. So they run first, longest first, and the
# workers take tests one at a time, so those spread over the workers and the short ones fill in.
# (A module missing here only costs balance; the order of the tests inside a module is kept.)
LONG_FIRST = ("test_gevent.py", "test_verify.py", "test_e2e.py", "test_app.py", "test_e2e_aftercall.py",
              "test_e2e_telnyx.py", "test_outbound_calls.py", "test_soak.py", "test_flaskext.py",
              "test_redisstate.py", "test_shared.py", "test_faults_socket.py", "test_sim_caller.py", "test_sim_webhook.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order otherwise


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist load`` (xdist's default) handing out one test at a time instead of chunks of a
    quarter of a worker's share (which would give one worker every long test above)."""
    if config.getoption("dist") != "load" or getattr(config.option, "maxschedchunk", None) is not None:
        return None  # another mode, or a chunk size, asked for on the command line
    from xdist.scheduler import LoadScheduling

    scheduler = LoadScheduling(config, log)
    scheduler.maxschedchunk = 1
    return scheduler
