"""After a local barge-in, was it the caller speaking? (Sans-IO; one watch per call.)

The local detector confirms a barge-in on the caller's level and voice alone, and a cough, a
laugh or an echo peak can pass it. The answer has been cancelled by then: if nothing of speech
follows, the model is asked to continue where it was cut. Speech shows as the model's VAD
starting a turn, or as caller text.

The model's VAD does not hear everything the caller says: a soft "stop, stop" from across a
reverberant room on a speakerphone passes the local detector and never starts the model's VAD
(it took the agent's echo for the room, and the words for its tail). Without a turn there are no
words, and the watch used to ask the model to continue over the caller's "stop". So after the
quiet, if the call transcribes its turns, the watch first asks for the words (``Recovery.ASK``:
the bridge commits the model's input buffer, and the service transcribes it as it does a VAD
turn, with no response), and the words decide:

* words that take the turn ("stop", "wait", a question): the interruption was real and the
  model answers it (``ANSWER``);
* no words, an acknowledgement ("mm-hm", "yeah") or the agent's own words (its echo): the
  answer continues (``CONTINUE``). For a barge-in the detector confirmed on a whisper the
  continue says so: the model, which has the audio, answers what the caller whispered if it
  holds words (a transcriber may write nothing for a whisper: outside check out1 found whispered
  "hang on a sec" talked over after their clear), and continues over a hiss or a rustle, which
  the detector also takes for a whisper (review rv20: answering every such empty turn dropped
  the rest of the answer for 45 of 72 of them);
* no words at all within ``words_s`` (or the transcription failed): the model, which has the
  audio, answers it (``ANSWER``): talking on over a "stop" is worse than asking about a cough.

If the model's VAD has a turn open then (it started on the caller's first word, and the bridge
judged that start a backchannel's, or on the room before the caller spoke), its own commit is
awaited instead (``adopt``), and that turn's words are judged as the bridge judges any VAD turn:
answered if they take the turn ("wait, hold on" after a start held as "mm-hm"), else the answer
continues. Before, the watch asked the model to continue while that turn was still open, and
then answered its "wait, hold on" too: the agent talked on first.
"""
from __future__ import annotations

import enum
import threading


WORDS_S = 3.0
"""How long the watch waits for the words of the audio it committed (a transcript comes some
300-1500 ms after a commit)."""
REPLY_S = 6.0
"""How long the reply to the bridge's commit may take and still be known as the reply to it."""


class Recovery(enum.Enum):
    """What the watch says now about the last local barge-in."""

    NONE = "none"  # nothing to do: not armed, speech showed, or still waiting
    ASK = "ask"  # quiet and no speech: commit the model's buffer for its words (said once)
    CONTINUE = "continue"  # it was no speech (or only "mm-hm"): ask the model to continue the answer
    ANSWER = "answer"  # its words take the turn, or never came: the model answers the caller

    def __bool__(self) -> bool:
        """Something to do (``poll`` answered a bool before the words were asked for)."""
        return self is not Recovery.NONE


class FalseTriggerMonitor:
    """Decides whether a local barge-in was a false trigger, after ``delay_s`` of quiet.

    Evidence of speech is kept with its time, not as flags a later ``start`` would reset: the
    server may report the caller's speech on its own thread before or after the barge-in has
    armed the watch, and either order means the interruption was real. Thread-safe.
    """

    def __init__(self, delay_s: float = 0.5, words_s: float = WORDS_S) -> None:
        self.delay_s = delay_s
        self.words_s = words_s
        self._lock = threading.Lock()
        self.armed = False
        self._since = 0.0  # evidence at or after this instant counts for the armed barge-in
        self._quiet_since: float | None = None
        self._speech_at = float("-inf")
        self._text_at = float("-inf")
        self._last = float("-inf")  # latest instant seen: the time of evidence given without one
        self._may_ask = False  # this barge-in's words may be asked for (the call transcribes)
        self._asked: float | None = None  # the bridge committed the buffer for its words then
        self._item: str | None = None  # ... and the service committed it as this item
        self._adopted = False  # the asked turn is the model's VAD turn open at the asking, not a commit of ours
        # the bridge's commit for the words went out then, and its reply has not come: kept through a
        # new barge-in or the watch's end, so the reply is never taken for the model's own turn
        self._sent_at: float | None = None
        self._verdict: Recovery | None = None  # what its words (or their failure) said
        self.whispered = False  # the barge-in watched was confirmed on a whisper (its continue says so)

    def start(self, now: float, loud: bool = True, since: float | None = None, ask: bool = False,
              whispered: bool = False) -> None:
        """A local barge-in just ran at ``now`` for a loud run that began at ``since``; ``ask``:
        its words may be asked for before it is judged false; ``whispered``: it was a whisper."""
        with self._lock:
            self.whispered = whispered
            self._seen(now)
            self.armed = True
            self._since = now if since is None else since
            self._quiet_since = None if loud else now
            self._may_ask, self._asked, self._item, self._verdict = ask, None, None, None
            self._adopted = False

    def level(self, loud: bool, now: float) -> None:
        with self._lock:
            self._seen(now)
            if not loud:
                if self._quiet_since is None:
                    self._quiet_since = now
            else:
                self._quiet_since = None

    def speech_started(self, now: float | None = None) -> None:
        """The server heard the caller speak: a barge-in on that speech was real."""
        with self._lock:
            self._speech_at = self._last if now is None else self._seen(now)

    def user_text(self, text: str, now: float | None = None) -> None:
        """Caller text came. Once the watch asked for its barge-in's words, only theirs decide
        (``words``): the agent's echo transcribed is text too."""
        if text.strip():
            with self._lock:
                self._text_at = self._last if now is None else self._seen(now)

    def cancel(self) -> None:
        with self._lock:
            self.armed = False

    # ------------------------------------------------------------------ the words asked for
    def sending(self, now: float) -> None:
        """The bridge is about to commit the buffer for the asked words (said before it goes out,
        so that its reply, on the model thread, cannot come first)."""
        with self._lock:
            self._sent_at = now

    def refused(self, now: float | None = None) -> bool:
        """The bridge's commit could not go out (no model session), or the service refused it
        (too little audio since the last commit: the run's was in a turn committed already, whose
        speech would have shown): nothing says it was speech. True if it was that commit (one
        sent more than ``REPLY_S`` before ``now`` lost its reply: a session switched; review rv17)."""
        with self._lock:
            if self._sent_at is None:
                return False
            stale = now is not None and now - self._sent_at > REPLY_S
            self._sent_at = None
            if stale:
                return False
            if self.armed and self._item is None and not self._adopted:
                self._settle(Recovery.CONTINUE)
            return True

    def session_replaced(self) -> None:
        """A new model session replaced the one the bridge's commit went to: its reply will never
        come (the words' wait still ends the watch: they never came, so it answers)."""
        with self._lock:
            self._sent_at = None

    def cannot_ask(self) -> None:
        """No commit can be sent (one of the bridge's awaits its reply): nothing says it was speech."""
        with self._lock:
            if self.armed and self._asked is not None:
                self._settle(Recovery.CONTINUE)

    def adopt(self) -> None:
        """The model's VAD has a turn open: the asked turn is that one, at its own commit."""
        with self._lock:
            self._adopted = self._asked is not None

    @property
    def adopted(self) -> bool:
        return self._adopted

    def committed(self, item_id: str, now: float, own: bool = False) -> bool:
        """A turn was committed (model thread): True if it is the reply to the bridge's commit for
        the words (the listener never knew of that commit: it must not be taken for the model's
        own turn, armed or not). The model's turn adopted is noted as the asked one, and False.
        ``own``: the model's VAD stopped just before it, so it is the model's own commit (the reply
        to the bridge's, if it is still due, comes after it; review rv17)."""
        with self._lock:
            due = self._sent_at is not None and now - self._sent_at <= REPLY_S
            if due and not own:
                self._sent_at = None
                if self.armed and self._item is None and not self._adopted:
                    self._item = item_id
                return True
            if not due:
                self._sent_at = None  # (a reply that never came: a session switched)
            if self.armed and self._adopted and self._item is None:
                self._item = item_id
            return False

    @property
    def whisper_committed(self) -> bool:
        """The barge-in watched was a whisper and its audio became a caller item (committed for
        its words, or the model's turn adopted): the continue may tell the model to answer it.
        Not when nothing was committed: the caller's last audio item is then the question the
        answer was for (review rv21)."""
        return self.whispered and self._item is not None

    def asking(self, item_id: str) -> bool:
        """Is ``item_id`` the turn whose words the watch waits for?"""
        return item_id == self._item and self._item is not None and self.armed and self._verdict is None

    def words(self, item_id: str, verdict: Recovery) -> bool:
        """The asked-for turn's words came, judged by the caller (``ANSWER``: they take the turn;
        ``CONTINUE``: none, an acknowledgement, the agent's own; ``NONE``: the bridge answered
        them already). True if ``item_id`` is that turn."""
        with self._lock:
            if item_id != self._item or self._item is None:
                return False
            self._settle(verdict)
            return True

    def _settle(self, verdict: Recovery) -> None:
        """(Under the lock.) The first verdict stands."""
        if self._verdict is None:
            self._verdict = verdict

    # ------------------------------------------------------------------ the run thread's timer
    def poll(self, now: float) -> Recovery:
        """What to do now (each verdict given once). Not armed (most polls of most calls, on
        the run thread's timer): answered without the lock, which ``start`` sets ``armed`` under
        (under gevent a lock is Python code; a poll that just missed a ``start`` on another
        thread sees it on the next tick)."""
        if not self.armed:
            if now > self._last:
                self._last = now  # (``_seen``: the time of evidence given without one)
            return Recovery.NONE
        with self._lock:
            self._seen(now)
            if not self.armed:
                return Recovery.NONE
            return self._decide(now)

    def _decide(self, now: float) -> Recovery:
        """(Under the lock, armed.)"""
        if self._speech_at >= self._since or (self._asked is None and self._text_at >= self._since):
            return self._done(Recovery.NONE)  # speech showed: the interruption was real
        if self._verdict is not None:
            return self._done(self._verdict)
        if self._asked is not None:  # (an adopted turn's start is no evidence: it began before the asking)
            return self._done(Recovery.ANSWER) if now - self._asked >= self.words_s - 1e-9 else Recovery.NONE
        if self._quiet_since is None or now - self._quiet_since < self.delay_s:
            return Recovery.NONE
        if self._may_ask:
            self._asked = now
            return Recovery.ASK
        return self._done(Recovery.CONTINUE)

    def _done(self, verdict: Recovery) -> Recovery:
        self.armed = False
        return verdict

    def _seen(self, now: float) -> float:
        self._last = max(self._last, now)
        return now
