"""The Twilio side of a call: the one writer of the Twilio socket.

Every outbound message (``media``, ``mark``, ``clear``) goes through ``CarrierLink`` and its
send lock, because a WebSocket's ``send`` is not safe from two threads and because a barge-in
must order its ``clear`` against media: state changes that must be atomic with respect to
sends (the outbound generation bump, the duck) run under the same lock (``clear(prepare)``,
``hold(fn)``), and a media send re-checks its frame under it (``send_media(..., check)``).

Stall detection lives here and only here. A peer that stops reading fills the kernel's send
buffer and a ``send`` blocks. Three things bound it, all ending in ``_stalled``:

* ``SO_SNDTIMEO`` on the real socket (``tcp.bound_sends``): the stuck send raises;
* ``check_stall(now)``, called by the session's run thread on its timer: a send in progress for
  longer than ``send_timeout_s`` (the run thread never waits on a send: as the media socket's
  reader it writes a pong or close only when the socket takes it at once, else owes it);
* the lock itself: whoever waits longer than the timeout for a send to finish declares the stall.

A stall aborts the socket (a blocked send then fails at once), is counted and logged once, and
ends the call through ``on_dead``. Any other send failure means the peer is gone: same end.
"""
from __future__ import annotations

import enum
import logging
import threading
from typing import Any, Callable

from ..locks import state_lock
from ..carrier import tcp
from ..carrier.seam import Carrier, OutboundMessages
from .metrics import CallMetrics
from ..carrier.twilio.adapter import TWILIO
from ..errors import close_quietly, describe


class SendOutcome(enum.Enum):
    """What became of one outbound frame."""

    SENT = "sent"
    FLUSHED = "flushed"  # a barge-in made it stale before it left
    PAUSED = "paused"  # ducked: try again after the resume
    FAILED = "failed"  # the socket is gone; the call is ending


class LinkStalled(Exception):
    """The send lock could not be had within the send timeout, even after aborting the socket."""


class CarrierLink:
    """Owns the Twilio WebSocket: reads (run thread only) and every write (any thread)."""

    def __init__(self, ws: Any, metrics: CallMetrics, log: logging.LoggerAdapter,
                 send_timeout_s: float | None, clock: Callable[[], float],
                 on_dead: Callable[[str], None], carrier: Carrier = TWILIO) -> None:
        self._ws = ws
        self._metrics = metrics
        self._log = log
        self._timeout = send_timeout_s if send_timeout_s and send_timeout_s > 0 else None
        self._clock = clock
        self._on_dead = on_dead
        self._lock = state_lock()
        self._locked = _SendLock(self)  # ``with self._locked:`` (one object: nothing made per send)
        self._carrier = carrier  # builds the outbound messages in its wire format
        self._messages: OutboundMessages | None = None
        self._sending_since: float | None = None  # set while a socket send is in progress
        self._dead = False
        self._dead_lock = threading.Lock()
        self.tap: Any = None  # the call's recording: told each frame sent and each clear, under the lock

    # ------------------------------------------------------------------ setup and reading
    def tune(self) -> None:
        """No Nagle (a mark must not wait behind a frame), bounded sends (SO_SNDTIMEO)."""
        tcp.no_delay(self._ws)
        tcp.bound_sends(self._ws, self._timeout)

    def start(self, stream_sid: str) -> None:
        """The stream is known: outbound messages can be built."""
        self._messages = self._carrier.outbound(stream_sid)

    @property
    def ready(self) -> bool:
        return self._messages is not None

    def receive(self, timeout: float) -> "str | bytes | None":
        """The next Twilio message (run thread only); raises when the socket is closed."""
        return self._ws.receive(timeout=timeout)

    # ------------------------------------------------------------------ writing
    def send_media(self, frame: bytes, check: Callable[[], "SendOutcome | None"]) -> tuple[SendOutcome, float]:
        """Send one frame unless ``check()`` (run under the send lock) says otherwise.

        Returns the outcome and the instant the frame was handed to the socket: taken before
        the syscall, because after it this thread may wait for the GIL behind a busy neighbour
        and a later timestamp would call an on-time frame late.
        """
        assert self._messages is not None, "media before start"
        message = self._messages.media(frame)
        try:
            with self._locked:
                outcome = check()
                if outcome is not None:
                    return outcome, 0.0
                now = self._clock()
                if not self._write(message, "media frame", now):
                    return SendOutcome.FAILED, now
                if self.tap is not None:
                    self.tap.sent(frame, now)
                return SendOutcome.SENT, now
        except LinkStalled:
            return SendOutcome.FAILED, 0.0

    def send_mark(self, name: Callable[[], "str | None"]) -> bool:
        """Send a mark whose name is made under the send lock (so no clear falls in between);
        ``name`` runs even with no stream yet, and a None from it sends nothing."""
        try:
            with self._locked:
                text = name()
                if text is None or self._messages is None:
                    return False
                if self._write(self._messages.mark(text), "mark"):
                    self._metrics.add("marks_sent")
                    return True
        except LinkStalled:
            pass
        return False

    def clear(self, prepare: Callable[[], None]) -> bool:
        """Run ``prepare`` and send ``clear`` under one hold of the send lock.

        ``prepare`` (the outbound generation bump) runs even if the clear cannot be sent, so
        stale audio is never sent afterwards.
        """
        try:
            with self._locked:
                prepare()
                if self._messages is None:
                    self._log.warning("clear not sent: no streamSid yet")
                    return False
                at = self._clock()
                if self._write(self._messages.clear(), "clear", at):
                    if self.tap is not None:
                        self.tap.cleared(at)
                    self._metrics.add("clears_sent")
                    self._log.info("twilio clear sent")
                    return True
        except LinkStalled:
            prepare()
        return False

    def hold(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` while no message is being sent (state that sends read under the lock)."""
        try:
            with self._locked:
                fn()
        except LinkStalled:
            fn()  # the socket is aborted: nothing is being sent any more

    # ------------------------------------------------------------------ stalls and closing
    def check_stall(self, now: float) -> bool:
        """True (and the stall handled) if a send has been blocked longer than the timeout."""
        since = self._sending_since
        if self._timeout is None or since is None or now - since <= self._timeout:
            return False
        self._stalled("send blocked")
        return True

    def close(self) -> None:
        """Close the socket (bounded even if a send is stuck), then end the connection boundedly."""
        try:
            with self._locked:
                close_quietly(self._ws)
        except LinkStalled:
            close_quietly(self._ws)
        tcp.finish(self._ws, self._timeout or 2.0)

    def _acquire(self) -> None:
        """Take the send lock; a holder past the timeout is a stall (``LinkStalled`` if even the
        abort does not free it)."""
        if self._timeout is None:
            self._lock.acquire()
        elif not self._lock.acquire(timeout=self._timeout):
            self._stalled("a send held the lock")
            if not self._lock.acquire(timeout=self._timeout):
                raise LinkStalled()

    def _write(self, message: str, what: str, at: float | None = None) -> bool:
        """One socket send under the lock (begun at ``at``); False (and the call ending) if it failed."""
        self._sending_since = self._clock() if at is None else at
        try:
            self._ws.send(message)
            return True
        except Exception as exc:  # noqa: BLE001 - peer gone, socket aborted, send timeout
            if isinstance(exc, (TimeoutError, BlockingIOError)):  # SO_SNDTIMEO expired
                self._stalled(what)
            else:
                self._failed(what, exc)
            return False
        finally:
            self._sending_since = None

    def _stalled(self, what: str) -> None:
        if not self._mark_dead():
            return
        self._metrics.add("twilio_send_timeouts")
        self._log.error("TWILIO_SEND_TIMEOUT: send blocked for more than %s s (%s): the Twilio side stopped "
                        "reading; ending the call", self._timeout, what)
        self._on_dead("twilio send timeout")  # first: the abort also wakes the reader, which would close too
        tcp.abort(self._ws)  # a send stuck in the socket fails at once and lets go of the lock

    def _failed(self, what: str, exc: BaseException) -> None:
        self._metrics.add("send_failures")
        if not self._mark_dead():
            return
        if _closed_in_order(exc):
            # The peer closed the WebSocket in order (a hang-up: ``stop``, then the close frame):
            # what it said last is still in the reader's queue, so the reader ends the call with it.
            self._log.info("send after the peer closed the stream (%s): no more sends; the reader ends the call",
                           what)
            return
        self._log.warning("twilio send failed (%s): %s", what, describe(exc))
        self._on_dead("twilio send failed")

    def _mark_dead(self) -> bool:
        with self._dead_lock:
            first, self._dead = not self._dead, True
        return first


class _SendLock:
    """``with link._locked:``: the send lock under the stall rule (``CarrierLink._acquire``). An
    object made once per link: a generator context manager cost a generator and a wrapper per
    use, on every frame sent (a third of ``send_media``'s samples in a py-spy profile)."""

    __slots__ = ("_link",)

    def __init__(self, link: CarrierLink) -> None:
        self._link = link

    def __enter__(self) -> None:
        self._link._acquire()

    def __exit__(self, *exc: object) -> None:
        self._link._lock.release()


def _closed_in_order(exc: BaseException) -> bool:
    """simple-websocket's ConnectionClosed: its reader saw the peer's close frame (no import of it
    here: any socket with ``send``/``receive``/``close`` serves a session)."""
    return type(exc).__name__ == "ConnectionClosed" and type(exc).__module__.startswith("simple_websocket")


TwilioLink = CarrierLink  # its name before a second carrier used it (0.1)
