"""Audio: G.711 mu-law, exact framing, the 20 ms pacing schedule, and the sans-IO listening decisions."""
from __future__ import annotations

import importlib
from typing import Any

from .._moved import warn_moved


def __getattr__(name: str) -> Any:
    # voicebridge.audio was a module before the layer packages; its names are in .mulaw now
    # (importlib, not ``from . import``: that would ask this very function for the submodule)
    old = importlib.import_module(__name__ + ".mulaw")
    if name.startswith("__") or not hasattr(old, name):
        raise AttributeError(name)
    warn_moved(f"voicebridge.audio.{name}", f"voicebridge.audio.mulaw.{name}")
    return getattr(old, name)
