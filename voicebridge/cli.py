"""The ``voicebridge`` command: demo, call, dial, local-server, verify."""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, function, help); each function takes argv and returns an exit code
COMMANDS = {
    "demo": ("voicebridge.dev.demo", "main", "run a complete simulated call on the embedded local backend"),
    "call": ("voicebridge.dev.sim.caller", "main", "place a simulated Twilio call to any bridge URL"),
    "dial": ("voicebridge.serving.dial", "main", "place an outbound call through Twilio for a running bridge"),
    "local-server": ("voicebridge.dev.local.server", "main", "run the local OpenAI-Realtime-compatible server"),
    "verify": ("voicebridge.dev.verify", "main", "the 60-second production-readiness check"),
}


def main(argv: "list[str] | None" = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="voicebridge", description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS), help="; ".join(
        f"{name}: {spec[2]}" for name, spec in sorted(COMMANDS.items())))
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    args, rest = parser.parse_known_args(argv[:1])
    module_name, func_name, _ = COMMANDS[args.command]
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
