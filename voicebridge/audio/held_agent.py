"""One hold of the agent for a short utterance's words (sans-IO; made by ``Listener.hold``, read
and written under the listener's lock, and dropped when the hold ends).

A short voice over the answer ("mm-hm", "wait") keeps the agent paused until its words decide
(docs/barge-in.md, step 4). Everything that hold knows lives here, so that the next hold starts
from nothing: when it began, what the agent had played by then, the model's turns holding it
and their words, whether the bridge asked for them, and the verdict so far. What outlives a
hold (the strictness of the model's turn it held, ``HoldStrictness``) stays with the listener.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .held_turns import HeldTurns


class Hold(enum.Enum):
    """What becomes of an agent paused for a short utterance (a backchannel, or "wait"?)."""

    NONE = "none"  # nothing is held
    WAIT = "wait"  # held: the words are not in yet
    COMMIT = "commit"  # still held: the model's VAD took no turn, the bridge commits the audio for its words
    RESUME = "resume"  # a backchannel (or a sound the model took for no turn): the answer goes on
    CONFIRM = "confirm"  # words that take the turn, or a turn whose words will not come: interrupt


@dataclass
class HeldAgent:
    """The agent held for a short utterance's words, from the hold to its verdict."""

    since: float  # when it was held (moved on when an utterance joins after every held turn was committed)
    frames: int  # the agent's frames played in the call by then (``Strict.UNSAID``: what it had just said)
    open_commit_s: float  # how long its words wait for the model's VAD to close a turn it keeps open
    far: bool = False  # a voice the detector released (not near) that the model's VAD heard: commands only
    whisper: bool = False  # whispered: no words from the model -> interrupt
    verdict: Hold = Hold.WAIT
    asked: float | None = None  # when the bridge committed the held audio itself (None: not asked)
    resume_deferred: bool = False  # the held turns' words said resume, but a later utterance's are to come
    joined_start: float = float("-inf")  # the onset of the latest utterance that joined after a commit
    committed_at: float = float("-inf")  # when the model last committed a turn for it (-inf: none yet)
    turns: HeldTurns = field(default_factory=HeldTurns)  # its utterances and the model's turns for it

    def after_commit(self, start: float) -> bool:
        """An utterance begun at ``start`` is in none of the held turns: some were committed, and
        it began after the last (or as it came: the model cannot have committed it)."""
        return self.committed_at > float("-inf") and start >= self.committed_at

    def joined_after_commit(self, start: float, now: float) -> None:
        """An utterance begun at ``start`` joined after every held turn was committed: its words
        are in none of them. Theirs still decide if they take the turn, fail, or never come (a
        "stop" held before it); a resume waits for its own, and the bridge's commit and the
        bound count from now, for it."""
        self.joined_start = max(self.joined_start, start)
        self.since, self.asked = now, None
        if self.verdict is Hold.RESUME:
            self.verdict, self.resume_deferred = Hold.WAIT, True
