"""The carrier side: everything a telephone carrier's protocol needs, behind one seam (``seam``).

Twilio and Telnyx each live in their own package; the call never names either."""
from __future__ import annotations

import importlib
from typing import Any

from .._moved import warn_moved


def __getattr__(name: str) -> Any:
    # voicebridge.carrier was a module before the layer packages; its names are in .seam now
    # (importlib, not ``from . import``: that would ask this very function for the submodule)
    old = importlib.import_module(__name__ + ".seam")
    if name.startswith("__") or not hasattr(old, name):
        raise AttributeError(name)
    warn_moved(f"voicebridge.carrier.{name}", f"voicebridge.carrier.seam.{name}")
    return getattr(old, name)
