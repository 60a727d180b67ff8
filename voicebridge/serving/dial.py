"""``voicebridge dial``: place an outbound call through Twilio for a running bridge.

The call's answer goes to the bridge at ``PUBLIC_URL`` (its ``/voice``), and its plan (the
instructions, tools, data and opening given here) reaches that bridge through the shared state it
uses, so this command needs the same ``VOICEBRIDGE_STATE_DIR`` (a bridge on this host) or ``REDIS_URL`` (any
host). It reads the example app's environment (``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN``,
``PUBLIC_URL``, ``VOICEBRIDGE_STATE_DIR``, ``REDIS_URL``; ``TWILIO_API_URL`` points it at a stand-in for
Twilio's API such as ``voicebridge.dev.sim.callsapi``). Prints the call SID; exit status 1 with
Twilio's reason (bad number, caller ID, rate limit) if Twilio refuses the call, 2 for bad usage.

    voicebridge dial +15551234567 --from +15557654321 --instructions "Remind them of tomorrow's appointment"
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Mapping

from ..config import FIRST_SPEAKERS


def parse_args(argv: "list[str] | None", environ: Mapping[str, str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="voicebridge dial", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("to", help="the number to call (E.164, e.g. +15551234567)")
    ap.add_argument("--from", dest="from_", required=True, help="your Twilio number or verified caller ID")
    ap.add_argument("--instructions", help="the agent's instructions for this call")
    ap.add_argument("--tool", action="append", dest="tools", help="a tool of the bridge's config (repeat; default all)")
    ap.add_argument("--data", action="append", default=[], metavar="KEY=VALUE", help="the call's data (repeat)")
    ap.add_argument("--first-speaker", choices=FIRST_SPEAKERS, default="callee")
    ap.add_argument("--no-amd", action="store_true", help="no answering-machine detection")
    ap.add_argument("--voicemail-message", help="fixed words for a voicemail (default: the model leaves one)")
    ap.add_argument("--public-url", default=environ.get("PUBLIC_URL"), help="the bridge's public URL (PUBLIC_URL)")
    ap.add_argument("--account-sid", default=environ.get("TWILIO_ACCOUNT_SID"))
    ap.add_argument("--state-dir", default=environ.get("VOICEBRIDGE_STATE_DIR") or environ.get("STATE_DIR"),
                    help="the bridge's VOICEBRIDGE_STATE_DIR")
    ap.add_argument("--redis-url", default=environ.get("REDIS_URL"), help="the bridge's REDIS_URL")
    ap.add_argument("--api-url", default=environ.get("TWILIO_API_URL"), help="Twilio's API base (a stand-in)")
    return ap.parse_args(argv)


def _settings(environ: Mapping[str, str]) -> Any:
    """The example app's settings from ``environ``. Dialing needs no Realtime backend (the serving
    bridge has one): without one configured here, a placeholder stands in for it; any other bad
    setting raises ``ConfigError``, as it would stop the app."""
    from .app import NO_BACKEND, ConfigError, Settings

    try:
        return Settings.from_env(environ)
    except ConfigError as exc:
        if str(exc) != NO_BACKEND:
            raise
    return Settings.from_env({**environ, "OPENAI_REALTIME_URL": "ws://127.0.0.1:9/unused-by-dialing"})


def main(argv: "list[str] | None" = None, environ: Mapping[str, str] = os.environ) -> int:
    args = parse_args(argv, environ)
    token = environ.get("TWILIO_AUTH_TOKEN")
    missing = [name for name, value in (("--public-url/PUBLIC_URL", args.public_url),
                                        ("--account-sid/TWILIO_ACCOUNT_SID", args.account_sid),
                                        ("TWILIO_AUTH_TOKEN", token)) if not value]
    if not (args.state_dir or args.redis_url):
        missing.append("--state-dir/VOICEBRIDGE_STATE_DIR or --redis-url/REDIS_URL (the serving bridge's: the call's plan "
                       "reaches it there)")
    data = dict(item.partition("=")[::2] for item in args.data)
    if missing or any(not key for key in data):
        print("voicebridge dial: needs " + ", ".join(missing) if missing else "--data takes KEY=VALUE",
              file=sys.stderr)
        return 2
    from .app import ConfigError, bridge_config
    from ..carrier.twilio.dialing import CallError
    from .flaskext import VoiceBridge

    try:  # the example app's tools (DEMO_TOOL...): what --tool may name
        settings = _settings({**environ, "PUBLIC_URL": args.public_url})
    except ConfigError as exc:  # a bad setting in the environment: said, not silently replaced by defaults
        print(f"voicebridge dial: {exc}", file=sys.stderr)
        return 2
    bridge = VoiceBridge(None, bridge_config(settings, None), public_url=args.public_url,
                         auth_token=token, account_sid=args.account_sid, twilio_api_url=args.api_url,
                         state_dir=args.state_dir, redis_url=args.redis_url)
    try:
        sid = bridge.call(args.to, args.from_, instructions=args.instructions, tools=args.tools, data=data,
                          first_speaker=args.first_speaker, amd=not args.no_amd,
                          voicemail_message=args.voicemail_message)
    except CallError as exc:
        print(f"voicebridge dial: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"voicebridge dial: {exc}", file=sys.stderr)
        return 2
    finally:
        bridge.close()
    print(sid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
