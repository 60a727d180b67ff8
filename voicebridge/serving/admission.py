"""Which streams hold a call slot (sans sockets: the bridge hands in what it has).

An upgrade holds nothing: it waits for its ``start`` (at most ``MAX_UNSTARTED`` per process
wait, a newer one closes the oldest). At ``start`` its single-use stream token is redeemed (when
its carrier's webhooks are signed) and a slot of the shared cap taken; a stream refused there is
closed with 1013 "try again later", its call marked REFUSED on the transfer board so the
carrier's after-stream request says "all lines busy" instead of hanging up mutely.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ..call.session import MediaSession
from ..carrier.seam import safe_id
from ..carrier.streamtoken import StreamTokens, TokenCheck
from ..throttle import LogThrottle
from .filestate import StateDirError
from .sharedstate import SharedState, board_key

log = logging.getLogger(__name__)

CLOSE_TRY_AGAIN_LATER = 1013  # RFC 6455 registry: "Try Again Later"
MAX_UNSTARTED = 4
"""Media upgrades per process waiting for Twilio's ``start`` (Twilio sends it at once): a newer one
closes the oldest, so sockets that never start cannot pin the server's threads."""
TRANSFER_WAIT_S = 60.0  # how long a transfer (or a refusal) waits for the carrier's after-stream request
REFUSED = "refused"
"""Left on the transfer board for a stream refused at its start (never a valid target: those are
E.164 numbers or SIP URIs): ``/voice/after`` then says "all lines busy" rather than hang up mutely."""


class Admission:
    """The streams of one bridge waiting for ``start`` and those holding a call slot."""

    def __init__(self, state: SharedState, tokens: StreamTokens | None, metrics: Any, refusals: LogThrottle) -> None:
        self.slots = state.slots
        self._transfers = state.transfers
        self._tokens = tokens
        self._metrics = metrics
        self._refusals = refusals
        self._lock = threading.Lock()
        self._unstarted: dict[MediaSession, Any] = {}  # upgrades waiting for start (-> their socket), oldest first
        self._admitted: set[MediaSession] = set()  # sessions holding a call slot

    def upgraded(self, session: MediaSession, ws: Any) -> None:
        """A new stream waits for its ``start``; the oldest waiting is closed if too many wait."""
        with self._lock:
            self._unstarted[session] = ws
            oldest = next(iter(self._unstarted)) if len(self._unstarted) > MAX_UNSTARTED else None
            if oldest is not None:
                del self._unstarted[oldest]
        if oldest is not None:
            self._refusals.warning("unstarted", "media upgrade closed before its start: more than %d upgrades "
                                   "here wait for one (stray or replayed upgrades)", MAX_UNSTARTED)
            oldest.give_up_waiting_for_start()

    def socket_at_start(self, session: MediaSession) -> Any | None:
        """The stream's socket, no longer waiting (None: it was closed meanwhile for want of room)."""
        with self._lock:
            return self._unstarted.pop(session, None)

    def token_valid(self, session: MediaSession, ws: Any | None, token: str | None, call_sid: str) -> bool:
        """Redeem the stream's token; False once the stream is refused and closed."""
        assert self._tokens is not None
        try:
            check = self._tokens.redeem(token, call_sid, time.time())
        except OSError as exc:  # the shared store unreachable (Redis away, the 'refuse' policy): refuse
            self.refuse(session, ws, "token", f"stream token not checked ({exc})")
            return False
        except Exception:  # noqa: BLE001 - e.g. a failing state directory: refuse, never admit unchecked
            session.log.exception("stream token check failed")
            check = None
        if check is TokenCheck.VALID:
            return True
        self._metrics.refused.labels(stage="token").inc()
        self._refusals.warning(f"token {check}", "media stream of call %s refused: stream token %s",
                               safe_id(call_sid), check.value if check else "unchecked")
        session.close(f"stream token {check.name.lower() if check else 'unchecked'}")
        return False

    def admit(self, session: MediaSession, ws: Any | None) -> bool:
        """Take a call slot for the stream; False once it is refused and closed."""
        if not self._take_slot():
            self.refuse(session, ws, "websocket", "at capacity")
            return False
        with self._lock:
            self._admitted.add(session)
        self._metrics.update_active()
        self._metrics.calls.inc()
        session.log.info("call admitted: %d active here, cap %s", self.slots.active, self.slots.limit or "none")
        return True

    def ended(self, session: MediaSession) -> bool:
        """The stream has ended: its slot (if it held one) is given back. Whether it held one."""
        with self._lock:
            self._unstarted.pop(session, None)
            admitted = session in self._admitted
            self._admitted.discard(session)
        if admitted:
            self.slots.leave()
            self._metrics.update_active()
        return admitted

    def cap_full(self) -> bool:
        """The webhook's check. A failing state directory answers the call (never a 500 to Twilio):
        the stream's own check at ``start`` is the one that holds."""
        try:
            return self.slots.full()
        except (OSError, StateDirError) as exc:
            self._refusals.warning("state", "shared state unreadable at the webhook (the stream will be "
                                   "checked): %s", exc)
            return False

    def _take_slot(self) -> bool:
        try:
            return self.slots.try_enter()
        except (OSError, StateDirError) as exc:  # the state failing: refuse this call, never crash the stream
            self._refusals.warning("slot error", "call slot not taken: %s", exc)
            return False

    def refuse(self, session: MediaSession, ws: Any | None, stage: str, why: str) -> None:
        """Refuse a stream at its ``start``: 1013 "try again later", and the call never dials."""
        self._metrics.refused.labels(stage=stage).inc()
        self._refusals.warning(f"media {stage}", "media stream of call %s refused: %s (%d calls active here, cap %s)",
                               safe_id(session.call_sid or ""), why, self.slots.active, self.slots.limit)
        now = time.time()
        try:  # before the close: Twilio asks /voice/after as soon as the stream has ended
            self._transfers.put(board_key(session.call_sid or ""), REFUSED, now + TRANSFER_WAIT_S, now)
        except (ValueError, OSError, StateDirError):
            pass  # not a SID we store, or the state failing: /voice/after hangs up instead
        try:
            if ws is not None:
                ws.close(reason=CLOSE_TRY_AGAIN_LATER, message=f"voicebridge {why}, try again later")
        except Exception:  # noqa: BLE001 - the peer is already gone: nothing to close
            pass
        session.close(why)
