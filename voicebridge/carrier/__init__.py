"""The carrier side: everything a telephone carrier's protocol needs, behind one seam (``seam``).

Twilio and Telnyx each live in their own package; the call never names either."""
from __future__ import annotations

from .._moved import forwarding

__getattr__ = forwarding(__name__, "seam")  # voicebridge.carrier was a module before the layers: its names
