"""Is the Realtime endpoint usable? Classify a refused dial, and check once at startup.

A wrong key, a wrong deployment or a wrong path is not a network failure: redialing cannot fix
it, and every call would fail the same way. ``rejection`` reads a refused WebSocket handshake
(the HTTP status and the server's own error message, whole); ``preflight`` dials one session,
waits for ``session.created`` and closes it, so an app can refuse to start with the server's
reason instead of apologising to its first caller.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from . import client as realtime_client
from ..config import BridgeConfig

AUTH_STATUSES = frozenset({401, 403})
"""Handshake statuses that mean the credentials are refused: never retried."""
FATAL_STATUSES = AUTH_STATUSES | {404}
"""Statuses a startup check fails on (404: wrong path, model or deployment)."""
MAX_MESSAGE_CHARS = 2000
"""The server's message is kept whole up to this (a bound against a hostile peer, not a cut)."""
PREFLIGHT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Rejection:
    """A handshake the server answered with an HTTP error instead of an upgrade."""

    status: int
    message: str

    @property
    def auth(self) -> bool:
        return self.status in AUTH_STATUSES

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}" if self.message else f"HTTP {self.status}"


class PreflightFailed(RuntimeError):
    """The Realtime endpoint cannot be used with this configuration (the message says why);
    ``unreachable``: nothing answered (the network, a proxy or the host may come back)."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


def rejection(exc: BaseException) -> Rejection | None:
    """The status and server message of a refused handshake (websocket-client's
    ``WebSocketBadStatusException``), or None for any other failure (refused TCP, timeout...)."""
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int):
        return None
    body = getattr(exc, "resp_body", None) or b""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    return Rejection(status, _server_message(text))


def _server_message(text: str) -> str:
    """OpenAI's ``{"error": {"message": ...}}`` when the body is that, else the body itself; one line."""
    try:
        parsed: Any = json.loads(text)
        message = parsed["error"]["message"] if isinstance(parsed.get("error"), dict) else parsed["error"]
    except (ValueError, KeyError, TypeError, AttributeError):
        message = text
    return " ".join(str(message).split())[:MAX_MESSAGE_CHARS]


def hint(config: BridgeConfig, status: int) -> str:
    """What to check for a fatal status, in the example app's variable names."""
    if status in AUTH_STATUSES:
        return ("check AZURE_OPENAI_API_KEY (api_key)" if config.is_azure
                else "check OPENAI_API_KEY (api_key)")
    return "check OPENAI_REALTIME_URL / OPENAI_MODEL / AZURE_OPENAI_DEPLOYMENT (openai_url, model, azure_deployment)"


def missing_key(config: BridgeConfig) -> str | None:
    """The error, naming what to set, when a hosted endpoint (OpenAI's, or an Azure OpenAI resource) is
    to be dialed with no credentials at all (the example app's variable names); None otherwise. Its refusal
    would say so, but only over a network: offline the dial says only that the host is away."""
    if not config.lacks_credentials:
        return None
    if config.azure_endpoint:  # (an Azure URL given as OPENAI_REALTIME_URL takes OPENAI_API_KEY, as any URL)
        needed = "set AZURE_OPENAI_API_KEY (api_key, or a token_provider)"
    else:
        needed = "set OPENAI_API_KEY (api_key" + (", or a token_provider)" if config.is_azure else ")")
    return f"no API key for the Realtime endpoint {config.realtime_url.split('?')[0]}: {needed}"


def preflight(config: BridgeConfig, connect: realtime_client.Connector = realtime_client.connect,
              timeout_s: float = PREFLIGHT_TIMEOUT_S) -> None:
    """Open one Realtime session, wait for ``session.created``, close it; raise PreflightFailed if
    the endpoint refuses (401/403/404 with the server's message, or an ``error`` event), or
    before dialing when a hosted one has no key to give it (``missing_key``)."""
    url = config.realtime_url.split("?")[0]
    missing = missing_key(config)
    if missing is not None:
        raise PreflightFailed(missing)
    try:
        conn = connect(config)
    except Exception as exc:  # noqa: BLE001 - classified below
        refused = rejection(exc)
        if refused is not None and refused.status in FATAL_STATUSES:
            raise PreflightFailed(f"the Realtime endpoint {url} refused the session ({refused}); "
                                  f"{hint(config, refused.status)}") from None
        raise PreflightFailed(f"cannot reach the Realtime endpoint {url}: {type(exc).__name__}: "
                              f"{refused or exc}", unreachable=refused is None) from None
    try:
        _await_created(conn, url, time.monotonic() + timeout_s)
    finally:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - best effort: the check has its answer
            pass


def _await_created(conn: realtime_client.RealtimeConnection, url: str, deadline: float) -> None:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise PreflightFailed(f"the Realtime endpoint {url} sent no session.created")
        try:
            message = conn.recv(min(left, 0.5))
        except Exception as exc:  # noqa: BLE001 - closed before the session existed
            raise PreflightFailed(f"the Realtime endpoint {url} closed the session: {exc}") from None
        if message is None or isinstance(message, bytes):
            continue
        try:
            event = json.loads(message)
        except ValueError:
            continue
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "session.created":
            return
        if kind == "error":
            error = event.get("error") or {}
            raise PreflightFailed(f"the Realtime endpoint {url} answered an error: "
                                  f"{_server_message(json.dumps({'error': error}))}")
