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
