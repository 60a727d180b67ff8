"""Regenerate the bundled speech prompts in ``voicebridge/prompts`` with espeak-ng.

The local Realtime server speaks with live espeak-ng when it is installed; CI machines
often lack it, so the same texts ship pre-rendered as raw 8 kHz mu-law files. Run this
after changing any text in :mod:`voicebridge.dev.local.agent`::

    python -m voicebridge.dev.local.make_prompts [--out DIR]
"""
from __future__ import annotations

import argparse
import pathlib
import sys

from .. import tts
from .agent import all_parts

DEFAULT_OUT = pathlib.Path(__file__).resolve().parents[2] / "prompts"


def make_prompts(out: pathlib.Path = DEFAULT_OUT) -> dict[str, int]:
    """Render every prompt to ``out/<name>.ulaw``; returns sizes in bytes by name."""
    sizes: dict[str, int] = {}
    for name, text in [*all_parts(), *tts.CALLER_PHRASES.items()]:
        data = tts.speak(text)
        if not data:
            raise RuntimeError("espeak-ng is required to generate prompts")
        (out / f"{name}.ulaw").write_bytes(data)
        sizes[name] = len(data)
    return sizes


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        sizes = make_prompts(args.out)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, size in sizes.items():
        print(f"{name:14s} {size / 8000:6.2f} s  {size:7d} bytes")
    print(f"total {sum(sizes.values())} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
