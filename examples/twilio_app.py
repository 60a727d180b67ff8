"""Example: a Twilio voice number answered by an OpenAI Realtime model, in a thin Flask-Sock app.

``create_app`` builds a Flask app and mounts the bridge on it: ``POST /voice`` (the Twilio
webhook), the ``/media`` WebSocket served by flask-sock, ``/healthz`` and ``/metrics``
(``voicebridge.serving.app.create_app`` reads the settings from the environment and mounts
``voicebridge.VoiceBridge``). The same app answers Telnyx too: point a TeXML application's voice
URL at ``POST /telnyx/voice`` (its stream is ``/telnyx/media``) and set ``TELNYX_PUBLIC_KEY`` (the
account's public key, Mission Control: Keys & Credentials) so its Ed25519 signatures are checked;
with no ``TWILIO_AUTH_TOKEN`` and several workers, also ``VOICEBRIDGE_STREAM_SECRET`` (any long
random string, the same in every worker: it keys the single-use stream tokens).

Development (werkzeug threaded server)::

    python examples/twilio_app.py            # HOST/PORT from the environment, default 127.0.0.1:5050

Production, every core (see docs/deploy.md and examples/gunicorn.conf.py)::

    HOST=0.0.0.0 MAX_CALLS=50 gunicorn -c examples/gunicorn.conf.py 'examples.twilio_app:create_app()'

The backend: ``OPENAI_API_KEY``, ``OPENAI_REALTIME_URL`` or the ``AZURE_OPENAI_*`` settings;
with none of them the app refuses to start (``LOCAL_BACKEND=1`` asks for the embedded scripted
demo agent instead, for development). A bad setting, or an endpoint that refuses the key at the
startup check (``STARTUP_CHECK=0`` skips it), stops the app with one line naming what to fix.

Nothing runs at import time: the app (and, with ``LOCAL_BACKEND=1``, the embedded local
Realtime server) is built only when ``create_app()`` is called.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from flask import Flask

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from voicebridge.serving import app as example  # noqa: E402


BOOT_ERROR = 3
"""gunicorn's WORKER_BOOT_ERROR: the master stops instead of restarting the worker forever."""


def create_app(settings: "example.Settings | None" = None) -> Flask:
    """The app factory gunicorn calls (once in each worker): settings from the environment.

    A bad setting is logged as one line and ends the worker with gunicorn's boot-error code, so
    the master stops ("Worker failed to boot") instead of serving without a backend.
    """
    _logging()
    try:
        return example.create_app(settings or example.Settings.from_env())
    except example.ConfigError as exc:
        logging.getLogger("voicebridge.serving.app").error("cannot start: %s", exc)
        raise SystemExit(BOOT_ERROR) from None


def _logging() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),  # [pid]: which worker said it
                        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")


def main() -> int:
    _logging()
    try:
        settings = example.Settings.from_env()
        app = example.create_app(settings)
    except example.ConfigError as exc:  # one line naming the variable, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        handle = example.serve(app, settings.host, settings.port)
    except (OSError, ValueError, SystemExit) as exc:  # the port taken, a HOST this machine has not (werkzeug
        app.extensions["voicebridge"].close()  # says which and exits) or cannot encode: one line, the backend stopped
        reason = "see above" if isinstance(exc, SystemExit) else (getattr(exc, "strerror", None) or str(exc))
        print(f"error: cannot listen on {settings.host}:{settings.port} ({reason}): set HOST and PORT", file=sys.stderr)
        return 2
    print(f"voicebridge example on {handle.url}: Twilio voice webhook POST {handle.url}/voice, "
          f"media stream {handle.ws_url}; Ctrl-C to stop", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    finally:
        handle.shutdown()  # ends live calls and the embedded backend, if any
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
