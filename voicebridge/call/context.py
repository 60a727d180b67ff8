"""What the parts of one call are wired with: a small context instead of long positional lists.

``CallContext`` is what every part shares (the call's config, its counters, its log, its
clock); ``CallParts`` names the parts the model's event router and the session's continuity
reach into, built once per config by ``MediaSession._build``. A part takes the context and the
few collaborators it talks to, by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ..config import BridgeConfig
    from .model_link import ModelLink
    from .bargein import BargeIn
    from .downlink import OutboundAudio
    from .ending import CallControl
    from .flow import CallFlow
    from .log import CallLog
    from .metrics import CallMetrics
    from .record import CallRecord
    from .toolcalls import ToolCalls
    from .turns import Turns


@dataclass(frozen=True)
class CallContext:
    """The call's config, counters, log and clock: the four things every part is given."""

    config: "BridgeConfig"
    metrics: "CallMetrics"
    log: "CallLog"
    clock: Callable[[], float]


@dataclass(frozen=True)
class CallParts:
    """The parts a server event may concern (``call.model_events.ModelEvents`` routes to them)."""

    model: "ModelLink"
    turns: "Turns"
    outbound: "OutboundAudio"
    barge_in: "BargeIn"
    tools: "ToolCalls"
    control: "CallControl"
    flow: "CallFlow"
    record: "CallRecord"
