"""The agent paused for the caller, and its release (run thread; one per call, ``BargeIn``'s).

The duck: the first loud frame pauses sending (nothing lost) and, with ``duck_clear``, clears
what Twilio still holds of the agent (sent again on a release). After a duck that stopped the
agent at the caller's ear (it cleared, or with ``duck_clear`` off a clear was due: Twilio's 40 ms
lead plays out and the agent stops all the same), the first run that ends unconfirmed resumes
only after ``RELEASE_GRACE_S`` without a new one: a soft onset's first frames ("w-" of "wait",
"ex-" of "excuse me") end a run before the word does, and the caller would hear the agent go on
between them. Only the first: babble or a TV that keeps ducking would otherwise keep the agent
paused.
Not after an impulsive noise (``CallerLevel.impulse``: a click, a knock, a key, a cough, loud,
voiceless and short or decaying from its start): no word goes on from it, and the grace would
make every lone click a gap of its own length in the answer.

With the duck off (``duck=False``) nothing pauses the agent at a loud frame; a hold for a short
utterance's words pauses it when it begins (``for_hold``), and a release with nothing paused
releases nothing.
"""
from __future__ import annotations

from ..audio.utterance import Utterance
from .context import CallContext
from .downlink import OutboundAudio

RELEASE_GRACE_S = Utterance.GAP_S  # (loud runs this close are one utterance, as the listener joins them)
"""After a duck that stopped the agent at the caller's ear, a release waits this long for the run to go on."""


class CallerPause:
    """Whether, and until when, the agent stays paused for the caller's sound."""

    def __init__(self, ctx: CallContext, outbound: OutboundAudio) -> None:
        self._outbound = outbound
        self._duck = ctx.config.duck
        self._metrics = ctx.metrics
        self._log = ctx.log
        self._release_due: float | None = None  # a released duck that stopped the agent resumes then
        self._graced = False  # this duck's release was deferred once already
        self._hold_paused = False  # with the duck off: a hold paused the agent

    def duck(self, now: float, level_dbfs: float) -> None:
        """A loud frame: pause (again: the run goes on, still ducked)."""
        self._release_due = None
        self._outbound.pause(now)
        self._metrics.add("ducks")
        self._log.info("duck: caller loud (%.1f dBFS), sending paused", level_dbfs)

    def for_hold(self, now: float) -> None:
        """A hold for words begins, or an utterance joins it: with the duck off nothing paused the
        agent at the first loud frame (a click never pauses it), so the hold pauses it now (again
        for an utterance that joins, as its duck would: the duck fuse counts from the latest
        pause); its words decide as with the duck. Counted in ``hold_pauses``. Not when the agent
        is silent (it played out while the caller spoke): nothing to pause, and a barge-in the
        guards refuse would leave the next answer paused until the fuse (review rv29)."""
        if not self._duck and self._outbound.audible:
            self._outbound.pause(now)
            self._hold_paused = True
            self._metrics.add("hold_pauses")

    def run_released(self, now: float, impulse: bool) -> None:
        """A ducked run ended unconfirmed, no hold for it: resume, after the grace if it is due."""
        if not self._duck:
            return  # nothing paused the agent: nothing to release
        if self._outbound.duck_stopped_audio and not self._graced and not impulse:
            self._graced = True  # (an impulsive noise, a click or a knock, is no onset of words: at once)
            self._release_due = now + RELEASE_GRACE_S
            return
        self.release()

    def grace_over(self, now: float) -> bool:
        return self._release_due is not None and now >= self._release_due

    def grace_held(self) -> None:
        """The grace is over and the run is held for its words instead of released (a second
        release of this duck still resumes at once: it was graced)."""
        self._release_due = None

    def release(self) -> None:
        self.forget()
        self._outbound.resume()
        self._metrics.add("duck_releases")
        self._log.info("duck released: loud run ended before confirmation")

    def resume_backchannel(self) -> None:
        """A short utterance over the agent was a backchannel: the answer resumes where it paused
        (with the duck off, if a hold paused it)."""
        paused = self._duck or self._hold_paused
        self.forget()
        if paused:
            self._outbound.resume()
            self._metrics.add("duck_releases")
        self._metrics.add("backchannels")
        self._log.info("backchannel: a short utterance over the agent; the answer resumes where it paused")

    def forget(self) -> None:
        """Nothing pending: a barge-in ran, the fuse released the duck, or the agent resumed."""
        self._release_due, self._graced, self._hold_paused = None, False, False
