"""Audio: G.711 mu-law, exact framing, the 20 ms pacing schedule, and the sans-IO listening decisions."""
from __future__ import annotations

from .._moved import forwarding

__getattr__ = forwarding(__name__, "mulaw")  # voicebridge.audio was a module before the layers: its names
