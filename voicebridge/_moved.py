"""Old import paths, kept for one release: ``voicebridge.session`` is now ``voicebridge.call.session``.

Before the layer packages every module sat flat in ``voicebridge/``. Importing one by its old name
still works and gives the very same module object (so a monkeypatch through either name
is seen by both), with a DeprecationWarning that names the new path. ``voicebridge.audio`` and
``voicebridge.carrier`` are packages now: reading a name of the old modules through them still
works (``voicebridge.audio.FRAME_BYTES``, with the warning), but patching one there does not
reach the code: patch ``voicebridge.audio.mulaw`` or ``voicebridge.carrier.seam`` instead.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any, Callable, Sequence

MOVED: dict[str, str] = {
    "twilio_protocol": "carrier.twilio.protocol",
    "twilio_carrier": "carrier.twilio.adapter",
    "twiml": "carrier.twilio.twiml",
    "dialing": "carrier.twilio.dialing",
    "telnyx_protocol": "carrier.telnyx.protocol",
    "telnyx": "carrier.telnyx.adapter",
    "dtmf": "call.keypad",
    "streamtoken": "serving.streamtoken",
    "twilio_link": "call.carrier_link",
    "tcp": "carrier.tcp",
    "realtime_protocol": "model.protocol",
    "realtime_client": "model.client",
    "wsframe": "model.wsframe",
    "model_link": "call.model_link",
    "model_events": "call.model_events",
    "redial": "model.redial",
    "liveness": "model.liveness",
    "preflight": "model.preflight",
    "continuity": "call.continuity",
    "framing": "audio.framing",
    "pacing": "audio.pacing",
    "playback": "audio.playback",
    "echo": "audio.echo",
    "voicing": "audio.voicing",
    "bargein": "audio.detector",
    "listening": "audio.listening",
    "session": "call.session",
    "inbound": "call.uplink",
    "outbound": "call.downlink",
    "interruption": "call.bargein",
    "callcontrol": "call.ending",
    "callflow": "call.flow",
    "calllog": "call.log",
    "limits": "call.limits",
    "metrics": "call.metrics",
    "record": "call.record",
    "recording": "call.recording",
    "aftercall": "call.aftercall",
    "report": "call.report",
    "analysis": "call.analysis",
    "answering": "call.opening",
    "toolcalls": "call.toolcalls",
    "tools": "call.tools",
    "toolpool": "call.toolpool",
    "hooks": "call.hooks",
    "wakeup": "call.wakeup",
    "delivery": "call.delivery",
    "responses": "call.turns",
    "response_requests": "call.turns",
    "flaskext": "serving.flaskext",
    "shared": "serving.filestate",
    "sharedstate": "serving.sharedstate",
    "redisstate": "serving.redisstate",
    "prometheus": "serving.prometheus",
    "app": "serving.app",
    "dial": "serving.dial",
    "local": "dev.local",
    "sim": "dev.sim",
    "demo": "dev.demo",
    "tts": "dev.tts",
    "tone": "dev.tone",
    "verify": "dev.verify",
}
"""Old module (under ``voicebridge.``) -> where it lives now."""


def new_name(old: str) -> str | None:
    """The new dotted name of ``voicebridge.<old>[.sub]``, or None if it did not move."""
    head, _, rest = old.partition(".")
    target = MOVED.get(head)
    if target is None:
        return None
    return "voicebridge." + target + ("." + rest if rest else "")


def warn_moved(old: str, new: str) -> None:
    """The DeprecationWarning, attributed to the first frame outside the import machinery and
    this package's shims (the user's ``import`` line), so ``-W error`` and filters by module work."""
    frame, level = sys._getframe(1), 2
    while frame is not None and ("importlib" in frame.f_code.co_filename
                                 or frame.f_globals.get("__name__", "").startswith("voicebridge")):
        # warnings itself skips importlib's _bootstrap frames when it counts: count the others
        if "_bootstrap" not in frame.f_code.co_filename:
            level += 1
        frame = frame.f_back
    warnings.warn(f"{old} has moved to {new}; the old path goes in the next release", DeprecationWarning,
                  stacklevel=level)


def forwarding(package: str, module: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``, which was a module before the layers and whose names
    are in ``package.module`` now: each old name still reads, with the warning."""
    def __getattr__(name: str) -> Any:
        # importlib, not ``from . import``: that would ask this very function for the submodule
        old = importlib.import_module(f"{package}.{module}")
        if name.startswith("__") or not hasattr(old, name):
            raise AttributeError(name)
        warn_moved(f"{package}.{name}", f"{package}.{module}.{name}")
        return getattr(old, name)
    return __getattr__


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self._target = target
        self._spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warn_moved(spec.name, self._target)
        module = importlib.import_module(self._target)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # already executed; the import system has just set its __spec__ to the old name's
        module.__spec__ = self._spec


class OldPaths(importlib.abc.MetaPathFinder):
    """Finds ``voicebridge.<old name>`` and hands back the module at its new path."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("voicebridge."):
            return None
        new = new_name(fullname[len("voicebridge."):])
        if new is None or importlib.util.find_spec(new) is None:
            return None  # not moved, or moved nowhere: the usual ModuleNotFoundError, no warning
        return importlib.machinery.ModuleSpec(fullname, _Alias(new))


def install() -> None:
    if not any(isinstance(f, OldPaths) for f in sys.meta_path):
        sys.meta_path.insert(0, OldPaths())  # before the path finder, which would load a file twice
