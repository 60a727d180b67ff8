"""One whole simulated call through the example app: a real server on a free port, the simulated
caller on one side and any Realtime URL on the other (the tests' and ``voicebridge verify``'s call)."""
from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from ..serving.app import Settings, create_app, serve
from .sim import SimulatedCaller
from .sim.caller import dial


def simulated_call(realtime_url: str, script: str, settings: Settings | None = None, carrier: str = "twilio",
                   dial_secret: str | None = None, **caller_options: Any) -> "tuple[Any, dict[str, Any] | None]":
    """One simulated call through the example app (a real server on a free port) to
    ``realtime_url``: (the caller's report, the bridge's call-end metrics or None).

    ``carrier``: whose messages the caller speaks (``/media`` or ``/telnyx/media``);
    ``dial_secret``: place the call through the signed webhook first (Twilio's auth token, or
    the private half of the test key whose public half is ``settings.telnyx_public_key``)."""
    ended: list[dict[str, Any]] = []
    done = threading.Event()

    def on_end(session: Any) -> None:
        ended.append(session.metrics)
        done.set()

    settings = replace(settings or Settings(), openai_realtime_url=realtime_url, port=0)
    server = serve(create_app(settings, on_end=on_end), "127.0.0.1", 0)
    try:
        media_url = server.ws_url if carrier == "twilio" else server.ws_url.replace("/media", "/telnyx/media")
        placed = dial(carrier, media_url, dial_secret)
        report = SimulatedCaller(placed.url, script, headers=placed.headers, custom_parameters=placed.custom_parameters,
                                 call_sid=placed.call_sid, account_sid=placed.account_sid, carrier=carrier,
                                 after_stream=placed.after, **caller_options).run()
        done.wait(45)  # a bound: the call's teardown may wait for a post-call analysis (its timeout)
    finally:
        server.shutdown()
    return report, (ended[0] if ended else None)
