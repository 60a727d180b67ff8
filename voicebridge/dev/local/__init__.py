"""An embedded OpenAI-Realtime-compatible (GA) server: run a whole call without an API key.

:class:`LocalRealtimeServer` is the threaded WebSocket shell; the protocol logic is the
sans-IO :class:`~voicebridge.dev.local.engine.RealtimeEngine`.
"""
from .server import LocalRealtimeServer

__all__ = ["LocalRealtimeServer"]
