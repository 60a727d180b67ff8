"""The model's VAD turn as the bridge knows it (sans-IO; one per call, owned by ``Listener``).

Whether the model's VAD has a turn open, how the bridge judged it when it began, and which of
the commits inside it were the bridge's own. The bridge commits inside an open turn twice over:
at a new voice's onset (the room's stretch before it becomes an item of its own) and for a held
voice's words. The service keeps such a turn going ("unless the client manually commits the
audio buffer during VAD activation", its reference for ``input_audio_buffer.speech_started``),
so a ``committed`` may answer the bridge's commit or close the model's turn: this object tells
which. Its state is read and written under the ``Listener``'s lock.
"""
from __future__ import annotations

from typing import Generic, TypeVar

J = TypeVar("J")  # how the bridge judged the turn's start (``listening.ServerSpeech``)

REPLY_S = 6.0
"""How long a commit of the bridge's may wait for its reply and still be known as its own."""
ONSET_OPEN_S = 1.0
"""A turn open this long, with nothing committed for as long, when a new voice begins: the
bridge commits at its onset (``Listener.flush_due``)."""
STALE_S = 0.1
"""The caller was heard this long after the last commit came in (the audio sent before it went
is in it), talking to a quiet agent, and no turn is open: the model's VAD closed their turn at a
pause and never heard the rest (a speakerphone's question), which waits in the buffer. The
bridge commits it at the next voice's onset over the agent: a held voice's own commit would
carry its words ("...hours? mm-hm": the turn taken)."""


class ModelTurn(Generic[J]):
    """The model's current (or last) VAD turn and the bridge's commits inside it."""

    def __init__(self) -> None:
        self.last_commit = float("-inf")  # the last commit (the model's or the bridge's) came then
        self.forget()

    def forget(self, resent_from: float = float("-inf")) -> None:
        """Nothing known: a new call, or a new session replaced the model's (its turn and the
        replies to the bridge's commits went with the old one). The last commit is kept: the new
        session is sent again what the old one had after it (``InboundAudio.backlog``), from
        ``resent_from`` on (its bound): what came before is in no buffer now, as if committed."""
        self.last_commit = max(self.last_commit, resent_from)
        self.judged: J | None = None  # the current (or last) turn, as judged when it began
        self.started_at = float("-inf")  # the model's VAD last started (believed or not)
        self.open = False  # ... and has not committed that turn yet (its words will come with it)
        self.split_at: float | None = None  # the bridge's commit split it then (its rest is judged anew)
        self.onset_commit: float | None = None  # the bridge committed at an onset then; no reply yet
        self.left_over = False  # ... the rest of a closed turn, not a stretch of an open one
        self.own_commit: float | None = None  # the bridge committed a held voice then; no reply yet
        self._closing = False  # the VAD stopped: the next commit is its own

    def started(self, now: float, judged: J) -> None:
        self.judged, self.split_at, self.started_at, self.open = judged, None, now, True

    def stopped(self) -> None:
        """``speech_stopped``: the commit that comes next is the model's own, even with one of the
        bridge's on its way (that one will be refused, or carry what came after)."""
        self._closing = True

    @property
    def idle(self) -> bool:
        """No turn open and no commit of the bridge's awaiting its reply: the next commit answers
        one sent now."""
        return not self.open and self.onset_commit is None and self.own_commit is None

    @property
    def left_over_pending(self) -> bool:
        """The commit at an onset awaiting its reply carries the rest of a closed turn."""
        return self.onset_commit is not None and self.left_over

    @property
    def closing(self) -> bool:
        return self._closing

    def reply(self, now: float) -> tuple[bool, float | None]:
        """A commit came: (True, when sent) if it answers the bridge's commit at an onset ((True,
        None) once the model's turn had closed before it), (False, when sent) if it answers the
        bridge's commit of a held voice inside the open turn, (False, None) if it is the model's
        own. Updates the turn: closed by the model's own, split by the bridge's (its rest is what
        came after the commit went)."""
        closing, self._closing = self._closing, False
        onset, sent = False, None
        if self.open and not closing:
            if self.onset_commit is not None:
                at, self.onset_commit = self.onset_commit, None
                onset, sent = (True, at) if now - at <= REPLY_S else (False, None)
            elif self.own_commit is not None:
                sent, self.own_commit = self.own_commit, None
        elif not self.open and not closing and self.onset_commit is not None:
            # the model closed its turn before the bridge's onset commit came in (speech_stopped,
            # its own commit, then ours with what came after): this is ours, its room's stretch
            at, self.onset_commit = self.onset_commit, None
            self.last_commit = now
            return now - at <= REPLY_S, None
        self.last_commit = now
        if sent is None:
            self.judged, self.split_at, self.open = None, None, False
        else:
            self.split_at = sent
        return onset, sent

    def own_reply(self, now: float) -> bool:
        """A commit with no VAD turn before it answers the bridge's own commit of a held voice, if
        one was sent lately and not answered yet (the bridge sends no other)."""
        sent, self.own_commit = self.own_commit, None
        return sent is not None and now - sent <= REPLY_S

    def onset_commit_due(self, now: float, voice_end: float = float("-inf")) -> bool:
        """A new voice begins over the agent: commit the buffer at its onset? Never with a commit
        of the bridge's pending. Inside a turn open ``ONSET_OPEN_S`` with nothing committed for as
        long (a TV or babble keeps it open); with none open (and none closing), when the caller
        was last heard talking to a quiet agent ``STALE_S`` or more after the last commit
        (``voice_end``: the rest of their turn waits in the buffer: ``left_over``). Marks it sent."""
        if self.onset_commit is not None or self.own_commit is not None:
            return False
        if self.open:
            due = now - self.started_at >= ONSET_OPEN_S and now - self.last_commit >= ONSET_OPEN_S
        else:
            due = not self._closing and voice_end > float("-inf") and voice_end - self.last_commit >= STALE_S
        if due:
            self.onset_commit, self.left_over = now, not self.open
        return due

    def refused(self) -> bool:
        """The service refused a commit of the bridge's (too little audio): True if it was the one
        at an onset (sent first; nothing waits on it), else the held voice's."""
        if self.onset_commit is not None:
            self.onset_commit = None
            return True
        self.own_commit = None
        return False
