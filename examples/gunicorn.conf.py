"""gunicorn configuration: one command serves calls on every core, and a deploy never cuts one.

::

    HOST=0.0.0.0 MAX_CALLS=50 gunicorn -c examples/gunicorn.conf.py 'examples.twilio_app:create_app()'

(from the repository root; see docs/deploy.md). The environment it reads:

* ``WEB_CONCURRENCY``: worker processes (default: the CPU cores this process may use; under a
  container CPU quota, set it to the quota);
* ``WORKER_CLASS``: ``gthread`` (default; a thread per call) or ``gevent``;
* ``MAX_CALLS``: the call cap of all the workers together (default: none);
* ``THREADS``: gthread threads per worker (default: the worker's share of ``MAX_CALLS`` plus
  20 %, at least 8 more, for webhooks, health checks and scrapes; 64 without a cap);
* ``GRACEFUL_TIMEOUT``: seconds a stopping worker waits for its live calls (default 3600:
  make it longer than your longest call);
* ``HOST`` / ``PORT``: where to listen (default ``127.0.0.1:5050``).

What it arranges, and why:

* ``on_starting`` (in the master, before any worker exists) makes two fresh private temporary
  directories and exports them, unless they are set already. They go in a runtime directory when
  there is one (``$RUNTIME_DIRECTORY`` from systemd's ``RuntimeDirectory=``, else
  ``$XDG_RUNTIME_DIR``), which the host's temp cleaning never ages, else in the temp directory
  (systemd-tmpfiles ages /tmp: the library recreates what it deletes, ``voicebridge.serving.filestate``): ``PROMETHEUS_MULTIPROC_DIR``, so
  ``/metrics`` adds up every worker (prometheus_client reads it when first imported, which is in
  the workers: do not use ``--preload``), and ``VOICEBRIDGE_STATE_DIR``, so the workers share
  the call cap, the single-use stream tokens and pending transfers (``voicebridge.serving.filestate``).
  ``on_exit`` removes the directories it made.
* ``child_exit`` tells prometheus_client a worker is gone, so its live calls leave the sum.
* ``worker_exit`` gives a leaving worker's shared state back (with ``REDIS_URL``: its call
  leases and its record in Redis, at once instead of after the lease).
* ``post_worker_init`` makes SIGTERM drain the worker's bridge first (no new calls; ``/healthz``
  503) and then do what gunicorn does on SIGTERM: stop accepting and wait up to
  ``graceful_timeout`` for the live calls to end.
"""
from __future__ import annotations

import atexit
import math
import os
import shutil
import signal
import tempfile
from functools import partial
from typing import Any

OWNED_DIRS_ENV = "VOICEBRIDGE_GUNICORN_TEMP_DIRS"
"""The directories ``on_starting`` made (os.pathsep-separated), for ``on_exit`` to remove."""
SHARED_DIRS = (("PROMETHEUS_MULTIPROC_DIR", "voicebridge-metrics-"), ("VOICEBRIDGE_STATE_DIR", "voicebridge-state-"))
WORKER_CLASSES = ("gthread", "gevent")
RUNTIME_DIRS = ("RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR")
"""Where the private directories go first: runtime directories are not aged by temp cleaners."""


class SettingError(SystemExit):
    """A bad setting: one line naming the variable. A SystemExit, because gunicorn prints any
    other exception from its config file as a traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(f"error: {message}")


def _int_env(name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer setting. Not ``voicebridge.serving.app``'s parser: importing the library here, in the
    master, would import prometheus_client before the multiprocess directory exists, and every
    forked worker would inherit its single-process mode."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingError(f"{name} must be an integer, got {text!r}") from None
    if value < minimum:
        raise SettingError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingError(f"{name} must be <= {maximum}, got {value}")
    return value


def _cores() -> int:
    """CPU cores this process may run on (a cpuset, if any; a CPU quota is not seen: set WEB_CONCURRENCY)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _threads(max_calls: int | None, workers: int) -> int:
    """Threads per gthread worker: its share of the cap, plus room for webhooks, health checks, scrapes."""
    if max_calls is None:
        return 64
    share = math.ceil(max_calls / workers)
    return share + max(8, math.ceil(share * 0.2))


workers = _int_env("WEB_CONCURRENCY", _cores())
worker_class = os.environ.get("WORKER_CLASS", "gthread").strip() or "gthread"
if worker_class not in WORKER_CLASSES:
    raise SettingError(f"WORKER_CLASS must be one of {WORKER_CLASSES}, got {worker_class!r}: a call holds its "
                       "request for its whole length, which the sync worker cannot do")
if worker_class == "gthread":
    threads = _int_env("THREADS", _threads(_int_env("MAX_CALLS", 0, minimum=0) or None, workers))
graceful_timeout = _int_env("GRACEFUL_TIMEOUT", 3600)
bind = [f"{os.environ.get('HOST', '').strip() or '127.0.0.1'}:{_int_env('PORT', 5050, minimum=0, maximum=65535)}"]
wsgi_app = "examples.twilio_app:create_app()"
preload_app = False  # the app, and prometheus_client, must be imported in the workers (see above)


def _parent_dir() -> str | None:
    """A runtime directory of this user if there is one (not aged by temp cleaners), else None (the temp dir)."""
    for variable in RUNTIME_DIRS:
        path = os.environ.get(variable, "").split(":")[0]  # systemd may list several
        if path and os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK):
            return path
    return None


def on_starting(server: Any) -> None:
    """Fresh private directories for the metrics and the shared state, unless already set."""
    owned = []
    parent = _parent_dir()
    for variable, prefix in SHARED_DIRS:
        if os.environ.get(variable):
            server.log.info("%s=%s (from the environment; not removed at exit)", variable, os.environ[variable])
            continue
        os.environ[variable] = tempfile.mkdtemp(prefix=prefix, dir=parent)  # mode 0700: private to this user
        owned.append(os.environ[variable])
        server.log.info("%s=%s", variable, os.environ[variable])
    os.environ[OWNED_DIRS_ENV] = os.pathsep.join(owned)
    # gunicorn skips on_exit when it cannot bind (its port taken): removed at the master's exit then
    atexit.register(_remove_owned, os.getpid(), owned)


def _remove_owned(master: int, paths: list[str]) -> None:
    """The directories ``on_starting`` made, removed by the master alone (a forked worker runs
    the master's exit handlers too when it exits)."""
    if os.getpid() == master:
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone (whatever the cause): its live-calls gauge leaves the sum."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, path)


def worker_exit(server: Any, worker: Any) -> None:
    """A worker leaves (its live calls ended, or its graceful timeout passed): give its shared
    state back at once -- with ``REDIS_URL`` its leases and its record in Redis -- rather than
    when the lease runs out."""
    bridge = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("voicebridge")
    if bridge is not None:
        bridge.state.close()


def on_exit(server: Any) -> None:
    """Remove the directories ``on_starting`` made (not those the environment gave)."""
    _remove_owned(os.getpid(), list(filter(None, os.environ.get(OWNED_DIRS_ENV, "").split(os.pathsep))))


def post_worker_init(worker: Any) -> None:
    """SIGTERM drains the worker's bridge, then does what gunicorn does (stop accepting, wait).

    gunicorn installs its handlers in ``init_signals`` before this hook; the original handler is
    kept and called after the drain. Under gevent a signal handler runs in the hub, where
    nothing may block, so the drain (a flag and a log line) runs in a greenlet of its own, as
    gunicorn's own gevent worker does for SIGQUIT.
    """
    bridge = getattr(worker.wsgi, "extensions", {}).get("voicebridge")
    if bridge is None:
        worker.log.warning("no VoiceBridge on the app: SIGTERM will not drain it")
        return
    previous = signal.getsignal(signal.SIGTERM)
    drain = bridge.drain
    if any(cls.__module__ == "gunicorn.workers.ggevent" for cls in type(worker).__mro__):
        import gevent

        drain = partial(gevent.spawn, bridge.drain)

    def drain_then_stop(signum: int, frame: Any) -> None:
        drain()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, drain_then_stop)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn has it: a signal does not interrupt a request
    worker.log.info("worker %s ready: SIGTERM drains its calls", worker.pid)
