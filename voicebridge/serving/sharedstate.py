"""The state a bridge shares with its siblings, behind one interface, with two backends.

What must hold across every process (and host) serving one phone number: the **call cap**
(leases on call slots), **single-use stream tokens** (an atomic "claim this nonce once"), the
**transfer board** (call SID -> target, from the stream's end to Twilio's ``/voice/after``), and
the **drain state** of each host (for ``/healthz``: how many hosts serve, how many drain).

* :func:`file_state` -- the default: one host. Files in a private directory shared by the
  worker processes of that host (:mod:`voicebridge.serving.filestate`), or in-process without one.
* :func:`redis_state` -- several hosts: one Redis (``REDIS_URL``) shared by all of them
  (:mod:`voicebridge.serving.redisstate`; the ``redis`` extra: ``pip install 'redis>=5'``).

:func:`open_state` picks one from a bridge's arguments. The bridge uses only the protocols
below, so a backend is a :class:`SharedState` whose parts satisfy them.
"""
from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..extras import install_hint
from .filestate import NAME as STATE_NAME
from .filestate import CallSlots, SingleUse, TransferBoard


class StoreUnsuitable(RuntimeError):
    """The shared store answers but cannot serve (e.g. a Redis older than the backend needs)."""


class OutagePolicy(enum.Enum):
    """What a host does with *new* calls while the shared store is unreachable (live calls go on)."""

    REFUSE = "refuse"
    """Answer new calls with the apology TwiML (the cap cannot be checked, so it is not risked)."""
    LOCAL = "local"
    """Admit new calls under a local cap of this host (``outage_max_calls``) until the store is back."""


class CallCap(Protocol):
    """The call cap: a call holds a slot (a lease) from ``try_enter`` to ``leave``."""

    limit: int | None

    @property
    def reachable(self) -> bool: ...  # False: the store is away, new calls follow the outage policy

    @property
    def active(self) -> int: ...  # this instance's calls

    @property
    def active_all(self) -> int: ...  # every sharer's calls

    def full(self) -> bool: ...  # the webhook's check

    def try_enter(self) -> bool: ...  # the stream's check: takes a slot or refuses

    def leave(self) -> None: ...

    def close(self) -> None: ...


class UsedMarks(Protocol):
    """Single use: ``claim(name, expires, now)`` is True once per name until ``expires``."""

    def claim(self, name: str, expires: float, now: float) -> bool: ...


class Handoffs(Protocol):
    """The transfer board: ``put`` by the stream's host, ``take`` (once) by whichever host Twilio asks."""

    def put(self, call_sid: str, target: str, expires: float, now: float) -> None: ...

    def take(self, call_sid: str, now: float) -> str | None: ...


class Namespaced:
    """A board of its own on the transfer board's store: every name gets ``prefix`` (so entries
    never meet a transfer's), with the same put / take-once / expiry and the same backends.
    Outbound calls use two: their plans (``plan-``) and the AMD verdicts (``amd-``)."""

    def __init__(self, board: Handoffs, prefix: str) -> None:
        self._board, self._prefix = board, prefix

    def put(self, name: str, value: str, expires: float, now: float) -> None:
        self._board.put(self._prefix + name, value, expires, now)

    def take(self, name: str, now: float) -> str | None:
        return self._board.take(self._prefix + name, now)


@dataclass
class SharedState:
    """One backend's parts, and what ``/healthz`` says about it beyond the cap.

    ``backend`` names it ("file" or "redis"); ``set_draining`` records this host's drain (a flag:
    safe in a signal handler; a networked backend publishes it from its own thread);
    ``health()`` adds fields to ``/healthz`` (none for the file backend).
    """

    slots: CallCap
    used: UsedMarks
    transfers: Handoffs
    backend: str = "file"
    owner: Any = field(default=None, repr=False)  # the backend object with health/set_draining/close, if any

    def board(self, namespace: str) -> Namespaced:
        """A take-once board named ``namespace`` beside the transfers (same backend, same expiry)."""
        return Namespaced(self.transfers, f"{namespace}-")

    def set_draining(self) -> None:
        if self.owner is not None:
            self.owner.set_draining()

    def health(self) -> dict[str, Any]:
        return self.owner.health() if self.owner is not None else {}

    def close(self) -> None:
        """Give back this instance's slots and stop the backend's threads (idempotent)."""
        self.slots.close()
        if self.owner is not None:
            self.owner.close()


def file_state(max_calls: int | None = None, state_dir: str | None = None) -> SharedState:
    """The one-host backend: files in ``state_dir`` (shared by its processes), or in-process."""
    return SharedState(CallSlots(max_calls, state_dir), SingleUse(state_dir), TransferBoard(state_dir))


def redis_state(url: str, max_calls: int | None = None, **options: Any) -> SharedState:
    """The several-host backend on the Redis at ``url`` (options: :class:`~voicebridge.serving.redisstate.RedisOptions`).

    Raises :class:`~voicebridge.serving.redisstate.StoreUnreachable` (one line naming the URL) if Redis
    does not answer now, and ImportError naming the extra if the ``redis`` client is missing.
    """
    try:
        from .redisstate import RedisOptions, RedisState
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"REDIS_URL needs the redis client: {install_hint('redis')} ({exc})") from None
    store = RedisState(url, max_calls, RedisOptions(**options))
    return SharedState(store.slots, store.used, store.transfers, backend="redis", owner=store)


def open_state(max_calls: int | None = None, state_dir: str | None = None, redis_url: str | None = None,
               **redis_options: Any) -> SharedState:
    """Redis if ``redis_url`` is given, else the file backend (``state_dir`` then serves only the
    file backend: with Redis nothing of the shared state is kept in files)."""
    if redis_url:
        return redis_state(redis_url, max_calls, **redis_options)
    if redis_options:
        raise ValueError(f"{sorted(redis_options)} apply only with redis_url")
    return file_state(max_calls, state_dir)


def board_key(call_id: str) -> str:
    """A board's name for a call (transfers, AMD verdicts): its id if that may be a file name (Twilio's SIDs),
    else a digest of it (Telnyx's ``v3:…`` ids): both requests of one call find the same entry."""
    if STATE_NAME.fullmatch(call_id):
        return call_id
    return "h" + hashlib.sha256(call_id.encode("utf-8", "surrogatepass")).hexdigest()[:40]
