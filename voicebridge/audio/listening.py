"""The call's listening policy (sans-IO): what the caller's line carries, what the model hears
of it, and when the model's own VAD is believed.

One ``Listener`` per call. ``MediaSession``'s shell (through ``BargeIn``) and the barge-in
benchmark's adapter call the same methods, with the time passed in:

* ``played`` / ``cleared``: what the agent sent (the echo gate's reference);
* ``hear(frame, now, armed, timestamp_ms)``: one caller frame -> a ``Heard``: the bytes to append
  to the model (an echo-only frame becomes comfort noise at the line's floor), the echo verdict and
  the local barge-in decision (duck, confirm, release, backchannel); the echo gate places the frame
  at its capture time (its carrier ``timestamp``, see ``capture``), not its arrival;
* ``server_speech(now, audible)``: the model's VAD started -> a ``ServerSpeech``: interrupt, an
  ordinary turn, the local detector's to decide, or ignored with its reason;
* ``committed()``: the model's VAD committed a turn -> a ``Turn``: answer it or not (a
  backchannel, or a turn that was only echo or room sound);
* ``hold(now)`` / ``hold_outcome(now)``: a short voiced utterance ended while the agent was
  paused (the duck): the agent stays paused until its words decide (``Hold``): a backchannel
  resumes it where it paused, anything else ("wait", "stop") interrupts it; bounded by
  ``backchannel_hold_ms``; if the model's VAD took no turn for it, the bridge commits the held
  audio itself (``Hold.COMMIT``) so that its words come all the same;
* ``transcript(text)``: the words of a turn (a delta or the completed transcript): True if the
  turn, held or let pass as a backchannel, is words that interrupt ("wait", "stop").

Why the bridge and not the model's VAD decides: the bridge knows what it played (echo), hears
every frame at once (the model hears appends 100 ms later), and can tell a backchannel from a
barge-in without cancelling anything (the duck is reversible, a cancel is not).
"""
from __future__ import annotations

import difflib
import enum
import itertools
import re
import threading
from collections import deque
from typing import Callable, NamedTuple

from . import mulaw as audio, voicing
from .blind_frames import BlindFrames
from .capture import CaptureClock
from .detector import CallerLevel, Decision, Sound
from .held_agent import HeldAgent, Hold
from ..config import BridgeConfig
from .echo import ComfortNoise, EchoGate, Verdict, attenuation_table
from .model_turn import ModelTurn
from .hold_strictness import HoldStrictness, Strict
from .played_words import PlayedWords

VOICED_FRAMES = 3
"""Voiced frames a run needs before it may confirm (one voiced frame now and then is in babble)."""
NEAR_DB = 24.0
"""A barge-in's utterance peaks at least this far above the line's noise floor (a near voice)."""
EVIDENCE_S = 1.0
"""How far back the model's ``speech_started`` is checked against what the bridge heard: its
VAD reports ~200-500 ms after an onset (appends of 100 ms, its own window, the network)."""
BACKCHANNEL_TEXT_S = 6.0
"""How long after a backchannel its transcript may still turn it into an interruption."""
OPEN_COMMIT_S = 0.3
"""A held voice whose turn the model's VAD still has open this long after the hold began (the
room's tail under it) is committed by the bridge, inside that turn: its words come sooner, and
come at all when a TV or babble keeps the VAD in speech (its own commit would come after the
hold's bound, and the hold interrupt there)."""
BACKCHANNEL_WORDS = frozenset("""
mm mhm mmhm mm-hm mm-hmm mhmm mmhmm mmm hm hmm uh-huh uhhuh uh huh um ah oh yeah yes yep yup ya yah ok okay right
sure alright all i see got it cool great good fine nice true exactly correct gotcha totally indeed
""".split())
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")
_SPOKEN_WORD = re.compile(r"[a-z]+(?:['\u2019-][a-z]+)*")  # (a contraction is one word said)
AGENT_WORDS_KEPT = 300
"""The agent's latest words kept to recognise its own echo in a caller turn's transcript."""
ECHO_RUN = 3
"""Words in a row the agent said that make a transcript its echo (a caller's command is shorter)."""
TURN_WORDS = frozenset("""
stop wait hold hang no not nope never excuse sorry pardon cancel repeat again what why how where when who
hey hello actually but question second sec moment minute please help operator agent human person
""".split())
"""Words a caller takes the turn with: a one- or two-word transcript with one of them is never
judged the agent's echo, even if the agent said them ("hold on", "no no", "wait please")."""
MISHEARD_RATIO = 0.6
"""A stop word this like (``difflib`` ratio) the agent's word it stands in for, between two of
its own, is that word misheard in its echo ("know" -> "no", "whole" -> "hold"; review rv17)."""
STOP_WORDS = frozenset("stop wait hold hang no excuse sorry pardon cancel".split())
"""Commands that interrupt on their words alone, in a turn whose start was ignored as echo (a soft
"stop" at the echo's level): the agent says them rarely, a caller who wants it to stop often."""
WAIT_PHRASE = re.compile(
    r"^(?:(?:um|uh|er|oh|okay|ok|yeah|sorry) )*"
    r"(?:(?:just|give me|gimme|just give me) (?:one |a |half a |a quick |one quick )?|one |half (?:a )?)"
    r"(?:minute|moment|sec|second)(?: (?:please|sorry|okay|ok))?(?: let me (?:check|see|look|think))?$")
"""A caller's "just a minute", "one moment please", "one sec", "half a second", "just one second",
"give me a minute", "just a sec, let me check", the whole of a transcript (``is_wait_phrase``:
outside check out1 found "just a minute" and "one moment please" at the echo's level talked over;
no stop word is in them; rv21 the others). Not a TV's "in a moment", "one minute to go" or "just
a moment ago" (review rv20)."""
WAIT_ECHO_WORDS = 40  # the agent's latest words its echo of "one moment" may come from (~15 s of speech)
_WAIT_WORDS = frozenset(("minute", "moment", "sec", "second"))  # (heard for one another in the agent's echo)


class ServerSpeech(enum.Enum):
    """What the bridge makes of the model's ``input_audio_buffer.speech_started``."""

    INTERRUPT = "interrupt"  # the caller is heard here too: run the procedure
    TURN = "turn"  # the agent is not audible: an ordinary turn, nothing to interrupt
    LOCAL = "local"  # a voice is being heard here: the local detector confirms it or lets it pass
    ECHO = "echo"  # ignored: only the agent's own echo was on the line
    NOISE = "noise"  # ignored: a voiceless burst (knock, cough, click, door)
    TONE = "tone"  # ignored: a held note (music, a hum)
    BACKCHANNEL = "backchannel"  # ignored: a short acknowledgement, the answer goes on
    UNCLEAR = "unclear"  # ignored: sound above the noise, neither a voice nor a whisper (a TV, babble)
    FAR = "far"  # ignored: a voice too little over the line's floor to be at the handset (a TV, babble): only
    # a command in its turn interrupts
    NOTHING = "nothing"  # ignored: nothing of the caller above the line's noise

    @property
    def ignored(self) -> bool:
        return self not in (ServerSpeech.INTERRUPT, ServerSpeech.TURN, ServerSpeech.LOCAL)


IGNORE_REASONS = tuple(s for s in ServerSpeech if s.ignored)
"""The reasons of ``server_speech_ignored{reason}``."""


class Turn(enum.Enum):
    """Whether the bridge asks the model to answer a turn its VAD committed."""

    RESPOND = "respond"
    BACKCHANNEL = "backchannel"  # said while the agent talked: the answer goes on, no new response
    NOT_CALLER = "not_caller"  # the model's VAD heard echo or room sound: nothing to answer
    LEFT_OVER = "left_over"  # the rest of a turn its VAD closed, committed at an onset: said before the answer


class Heard(NamedTuple):
    """One caller frame, judged (a named tuple: one is made for every frame of every call)."""

    forward: bytes  # what the model is sent
    level_dbfs: float
    verdict: Verdict
    decision: Decision


def is_backchannel(text: str) -> bool:
    """A transcript that only acknowledges ("mm-hm", "yeah, okay", "I see"): at most four words,
    all from ``BACKCHANNEL_WORDS``. Anything else ("wait", "no no", a question) takes the turn."""
    words = _WORD.findall(text.lower())
    return 0 < len(words) <= 4 and all(w in BACKCHANNEL_WORDS for w in words)


def is_command(text: str) -> bool:
    """A short command ("wait", "stop", "no no", "hold on please") or one that opens a sentence
    ("no, that's not what I asked"): what a voice the bridge could not tell from the room must
    say to interrupt. A TV's or babble's turn says other words, or many more."""
    words = _WORD.findall(text.lower())
    return bool(STOP_WORDS.intersection(words)) and (len(words) <= 4 or words[0] in STOP_WORDS)


BARE_COMMAND_WORDS = STOP_WORDS | frozenset(
    "on up a second sec minute moment please just me one now that um uh oh okay ok".split())
"""Words a bare command is made of ("stop", "no no", "wait, hold on please", "hang on a sec")."""
_ASKS = frozenset("what why how pardon again repeat".split())  # (after a stop word: the caller asks)
_GOES_ON = frozenset("""go goes going ahead continue keep carry fine problem problems worries worry don't dont
thank thanks""".split())
"""Words that tell the agent to go on, or the agent's own "no problem": no bare command with them
("don't stop", "no, go on", "sorry, go ahead", "no worries", "no, thank you": review rv24)."""
BARE_COMMAND_SHORT = 3
"""A stop word with this many words in all is a bare command whatever the others ("stop talking")."""


def is_bare_command(text: str) -> bool:
    """A transcript that is a command and little more: a stop word with at most two other words
    ("stop it", "hey, stop", "no, that's wrong", "wait, what?": review rv23), or four opening with
    one and asking ("sorry, what was that?"), or words all of them
    ``BARE_COMMAND_WORDS``, one a stop word, at most six different ones ("wait, hold on a second
    please", "stop, stop, stop, stop, stop, stop, stop").
    A TV's "and then she said stop", "sorry about that, folks" or "the answer is no" is not
    (review rv22), nor words that say go on (``_GOES_ON``): what a ``strict`` hold interrupts on.
    ("that's" is one word here.)"""
    words = _SPOKEN_WORD.findall(text.lower())
    if not STOP_WORDS.intersection(words) or _GOES_ON.intersection(words):
        return False
    if len(words) <= BARE_COMMAND_SHORT or len(words) <= 4 and words[0] in STOP_WORDS and _ASKS.intersection(words):
        return True  # ("sorry, what was that?", "wait, say again?")
    return _command_words_only(words)


def is_pure_command(text: str) -> bool:
    """A transcript whose words are all ``BARE_COMMAND_WORDS``, one a stop word ("No, wait.",
    "hold on", "no, no, hang on a sec"): what the rest of a caller's turn said before the agent
    spoke must be to interrupt it ("the wait time?" is the rest of a question: reviews rv33-rv34)."""
    words = _SPOKEN_WORD.findall(text.lower())
    return bool(STOP_WORDS.intersection(words)) and not _GOES_ON.intersection(words) and _command_words_only(words)


def _command_words_only(words: list[str]) -> bool:
    return len(set(words)) <= 6 and all(w in BARE_COMMAND_WORDS for w in words)


def is_wait_phrase(text: str) -> bool:
    """A transcript that is a caller's "just a minute" or "one moment please" and nothing more."""
    return WAIT_PHRASE.match(" ".join(_WORD.findall(text.lower()))) is not None


def ends_in_command(text: str) -> bool:
    """A command, or one at the end of what the room said before it (a far hold's commit holds the
    buffer since the last commit: "so then we went over to the hold on"), or after a filler
    ("Um, wait, hold on a second"): its last four words are one (review rv12)."""
    words = _WORD.findall(text.lower())
    return is_command(text) or bool(STOP_WORDS.intersection(words[-4:]))


WORDS_PER_S = 5.0
"""More words than 3 + this many per second of a held voice's speech are not all its own: the
commit carried the room's (a TV's sentence in the buffer since the last commit)."""
ONSET_SLACK_WORDS = 2
"""Words a held voice may have said before the onset the detector heard (an unvoiced or soft
start under the echo): the corpus's fastest speech is 6 words a second over two words, so
``WORDS_PER_S`` per second of the span from the onset on and these cover every clip."""


def _command_so_far(text: str, words: list[str]) -> bool:
    """A partial transcript already holds a command ("wait", "no"), or ends in three letters or
    more of one ("wai", "sto"): the rest cannot undo it. Not the other words callers take the turn
    with ("what", "but", "how"): a TV's or babble's sentence in the commit before the held voice
    streams them first, and only the final's count tells the room's from the caller's."""
    complete = words if not text[-1:].isalpha() else words[:-1]
    last = words[-1] if words and text[-1:].isalpha() else ""
    return bool(STOP_WORDS.intersection(complete)) or (
        len(last) >= 3 and any(w.startswith(last) for w in STOP_WORDS))


def held_turn_taken(words: str, final: bool, far: bool, speech_s: float, span_s: float = float("inf")) -> bool:
    """Do a held turn's words so far (not the agent's own) take the turn from the agent?

    More words than the held voice can carry (``speech_s`` of speech) hold the room's too. A
    command interrupts anywhere in them (a room talking on after a "wait" pushes it back: review
    rv19). Another word callers take the turn with ("what", "how" after a TV's sentence) counts
    only among the words said since the held voice's onset: the last ``ONSET_SLACK_WORDS +
    WORDS_PER_S * span_s``, ``span_s`` from the onset to the end of the audio committed (a
    transcript is in time order, and that span never undercounts the voice as its speech does:
    review rv18), so a TV's "what" or "how" before an "mm-hm" does not. A last word that is no
    backchannel's takes it too (the caller's answer: "Tuesday": review rv13); a TV's sentence
    ending in the caller's "yeah" does not. A voice the detector could not judge (``far``): a
    command only (a stop word, among its last four words when its commit carried the room's).
    Before the final transcript, a delta takes it only with a command, or three letters of one:
    a TV's first streamed words ("but what nobody expected...") must not act before the final's
    count (rv13)."""
    said = _WORD.findall(words.lower())
    if len(said) > 3 + WORDS_PER_S * speech_s:
        reach = ONSET_SLACK_WORDS + WORDS_PER_S * max(span_s, speech_s)
        since_onset = said[-int(reach):] if reach < len(said) else said
        return final and (bool(STOP_WORDS.intersection(said)) or not far and (
            bool(TURN_WORDS.intersection(since_onset)) or said[-1] not in BACKCHANNEL_WORDS))
    if far:
        return final and ends_in_command(words)
    return takes_turn(words, final) and (final or _command_so_far(words, said))


def takes_turn(text: str, final: bool) -> bool:
    """Words that take the turn, judged on the transcript so far (``final`` False: the deltas
    received, which may end inside a word). A partial transcript takes it only once it is sure
    to: more than four words, a complete word that is no backchannel, or a last word that no
    backchannel word starts with ("st" may become "sure"; "wa" cannot become one)."""
    if final:
        return bool(_WORD.search(text.lower())) and not is_backchannel(text)
    words = _WORD.findall(text.lower())
    if not words:
        return False
    complete = words if not text[-1:].isalpha() else words[:-1]
    if len(words) > 4 or any(w not in BACKCHANNEL_WORDS for w in complete):
        return True
    last = words[-1]
    return len(complete) < len(words) and not any(b.startswith(last) for b in BACKCHANNEL_WORDS)


class AgentWords:
    """What the agent said lately (its transcript's deltas), to tell its own echo in a caller turn
    by the words: a turn the echo gate took for the caller (a loud echo peak, a voice under a TV)
    whose transcript is three or more words in a row of the agent's own is the agent, not a
    caller who wants the turn. A word or two words in a row the agent said, none of them a word
    callers take the turn with (``TURN_WORDS``), are its echo too: the model's VAD, started on an
    echo peak, transcribes a fragment of the agent ("speech model.", "to"), and taken for the
    caller's words it cut the answer. Commands ("wait", "hold on", "no no") are never judged
    this way."""

    def __init__(self) -> None:
        self._words: deque[str] = deque(maxlen=AGENT_WORDS_KEPT)
        self._runs: set[tuple[str, ...]] = set()
        self._pairs: set[tuple[str, ...]] = set()
        self._middles: dict[tuple[str, ...], set[str]] = {}  # (a, c) of each run (a, b, c) -> its b (misheard: its echo)
        self._tail = ""  # a word a delta ended inside
        self._played = PlayedWords()  # the latest answer's words, placed by the audio played
        self._answered = True  # the latest answer's transcript is complete: the next delta begins another

    def add(self, text: str, final: bool = False, played_frames: int = 0) -> None:
        """A delta of the agent's transcript (``final``: its response's transcript is complete),
        come with ``played_frames`` of the agent's audio played in the call so far."""
        text = self._tail + text
        words = _WORD.findall(text.lower())
        self._tail = words.pop() if words and text[-1:].isalpha() and not final else ""
        if words and self._answered:
            self._played.begin(played_frames)
            self._answered = False
        self._played.add(words)
        self._answered = self._answered or final
        for word in words:
            self._words.append(word)
            if len(self._words) >= ECHO_RUN:
                self._add_run(tuple(list(self._words)[-ECHO_RUN:]))
            if len(self._words) >= 2:
                self._pairs.add((self._words[-2], word))
        if len(self._runs) > 2 * AGENT_WORDS_KEPT:
            kept = list(self._words)
            self._runs, self._middles = set(), {}
            for i in range(len(kept) - ECHO_RUN + 1):
                self._add_run(tuple(kept[i:i + ECHO_RUN]))
            self._pairs = {tuple(kept[i:i + 2]) for i in range(len(kept) - 1)}

    def _add_run(self, run: tuple[str, ...]) -> None:
        self._runs.add(run)
        self._middles.setdefault((run[0], run[-1]), set()).add(run[1])

    def echoed(self, text: str, final: bool) -> "bool | None":
        """True if ``text`` is the agent's own words (half its runs of three words or more are
        the agent's), False if not, None while a partial transcript may still become so (fewer
        than three words, all of them words the agent said). A final one or two words are the
        agent's if it said them (two: in a row) and neither is a word callers take the turn with.
        Three or more with a command the agent did not say are not (the speakerphone's echo under
        the caller's "stop": a transcriber writes both down; review rv16)."""
        words = _WORD.findall(text.lower())
        if not final and text[-1:].isalpha():
            words = words[:-1]  # the last one may be cut
        if len(words) < ECHO_RUN:
            said = set(self._words)
            if not final:
                return None if words and all(w in said for w in words) else False
            if not words or TURN_WORDS.intersection(words):
                return False
            return words[0] in said if len(words) == 1 else tuple(words) in self._pairs
        said = set(self._words)
        if any(w in STOP_WORDS and w not in said and not self._misheard(words, i) for i, w in enumerate(words)):
            return False  # a command the agent did not say, after its echo ("Tuesday at noon. Stop."): the caller's
        runs = [tuple(words[i:i + ECHO_RUN]) for i in range(len(words) - ECHO_RUN + 1)]
        return 2 * sum(1 for r in runs if r in self._runs) >= len(runs)

    def _misheard(self, words: list[str], i: int) -> bool:
        """Is the stop word ``words[i]`` the agent's own, in its echo: in a run of its still known
        (its kept words rolled past it), or in place of the middle word of one ("as you know
        your" transcribed "as you, no, your"; review rv17)? A command after or before the echo
        is neither."""
        w = words[i]
        if any(w in r for r in self._runs):
            return True
        middles = self._middles.get((words[i - 1], words[i + 1]), ()) if 0 < i < len(words) - 1 else ()
        # (one that sounds like the agent's word: a caller's "stop" in place of the echo's "is" is the caller's)
        return any(len(b) >= 3 and difflib.SequenceMatcher(None, w, b).ratio() >= MISHEARD_RATIO for b in middles)

    def waits(self, text: str) -> bool:
        """A caller's "just a minute", "one moment please" (``is_wait_phrase``), unless the agent
        said such a word in its last ``WAIT_ECHO_WORDS`` (about 15 s): an agent says "one moment"
        before a lookup, and its echo misheard ("one minute") is no caller's (review rv20); its
        "at the moment" a minute ago does not silence the caller (rv21)."""
        recent = itertools.islice(reversed(self._words), WAIT_ECHO_WORDS)
        return is_wait_phrase(text) and not any(w in _WAIT_WORDS for w in recent)

    def callers_command(self, text: str) -> bool:
        """A command ("stop", "wait", or a "just a minute": ``waits``) that is not the agent's own
        words, in a turn the gate took for the echo (a "stop" at -34 dBFS over -20 dB echo must
        not be lost). Only commands: a TV or babble over the echo says other words, and the
        model's VAD started on them too."""
        said = bool(STOP_WORDS.intersection(_WORD.findall(text.lower()))) or self.waits(text)
        return said and self.echoed(text, True) is False and not self.all_said(text)

    def just_said(self, text: str, played_frames: int) -> bool:
        """Every word of ``text`` is one the agent's audio played about then (``played_frames``
        into the call: ``PlayedWords.around``): its echo, whatever the transcriber made of the
        turn ("No" of "No problem": review rv22). Not its last words received (its transcript runs
        ahead of its audio: review rv23), nor any of its answer's (not played yet: review rv24)."""
        around = self._played.around(played_frames)
        words = _WORD.findall(text.lower())
        return bool(words) and all(w in around for w in words)

    def all_said(self, text: str) -> bool:
        """Every word of ``text`` is one the agent said lately."""
        said = set(self._words)
        return all(w in said for w in _WORD.findall(text.lower()))


class Unanswered(enum.Enum):
    """Why a committed turn was left unanswered, and so which rule its words are judged by."""

    BACKCHANNEL = "backchannel"  # held or let pass as one: words that take the turn interrupt
    ECHO = "echo"  # its start was ignored as echo: a command the agent did not say interrupts
    COMMAND = "command"  # the room's stretch committed at an onset (a TV's): a command interrupts
    LEFT_OVER = "left_over"  # the rest of a closed turn committed at an onset: a pure command interrupts


class UnansweredTurns:
    """The turns left unanswered lately (``BACKCHANNEL_TEXT_S``), each awaiting its words: do
    they take the turn after all? (Under the listener's lock: it owns this one.) A ``strict``
    turn (a strict hold's, or the rest of its) takes it only with a bare command (and, ``UNSAID``,
    one the agent did not just say): a TV's "the answer is no", the agent's echoed "help with" do
    not (review rv22)."""

    def __init__(self, agent: AgentWords) -> None:
        self._agent = agent
        self._items: dict[str, tuple[Unanswered, float, Strict, int]] = {}  # item -> (why, when, strict, frames)

    def left(self, item_id: str, why: Unanswered, now: float, strict: Strict = Strict.NO,
             played_frames: int = 0) -> None:
        """``played_frames``: of the agent's audio, played in the call by then."""
        self._items = {i: v for i, v in self._items.items() if now - v[1] <= BACKCHANNEL_TEXT_S}
        self._items[item_id] = (why, now, strict, played_frames)

    def forget(self, item_id: str) -> None:
        self._items.pop(item_id, None)

    def words(self, item_id: str, text: str, now: float, final: bool) -> bool:
        """True if turn ``item_id``'s words (``final``: complete) take the turn after all."""
        entry = self._items.get(item_id)
        if entry is None or not final:
            return False
        why, when, strict, played_frames = self._items.pop(item_id)
        agent = self._agent
        if now - when > BACKCHANNEL_TEXT_S:
            return False
        if why is Unanswered.ECHO:
            return agent.callers_command(text)
        if why is Unanswered.LEFT_OVER:
            return is_pure_command(text) and not agent.echoed(text, True)
        if strict is Strict.UNSAID and agent.just_said(text, played_frames):
            return False  # the agent's own words lately, in a turn begun on its echo
        if why is Unanswered.COMMAND:
            command = is_command if strict is Strict.NO else is_bare_command
            return (command(text) or agent.waits(text)) and not agent.echoed(text, True)
        takes = takes_turn(text, True) if strict is Strict.NO else is_bare_command(text)
        return takes and not agent.echoed(text, True)


_HEARD_AT_RELEASE = frozenset((ServerSpeech.LOCAL, ServerSpeech.BACKCHANNEL, ServerSpeech.FAR))
_HEARD_AFTER_RELEASE = _HEARD_AT_RELEASE | {ServerSpeech.NOISE, ServerSpeech.UNCLEAR, ServerSpeech.ECHO}
"""(A start judged the agent's echo may hold its words, "No" of its "No problem", "help with":
such a hold is ``Strict.UNSAID``, its turns' words interrupt only as a bare command the agent did
not just say: review rv22. Only such a hold: a caller's "no no" when the agent said "no problem"
ten seconds before is the caller's, review rv23.)"""
_CALLER, _ECHO, _CONFIRM = Verdict.CALLER, Verdict.ECHO, Decision.CONFIRM  # (read per frame: a global, not a class lookup)
_new_tuple = tuple.__new__
_dbfs = audio.dbfs


class Listener:
    """The call's ears: echo gate, local detector, comfort noise, the model's VAD weighed."""

    def __init__(self, config: BridgeConfig, seed: int = 21) -> None:
        self.gate = EchoGate(config.echo_margin_db) if config.echo_gate else None
        self._capture = CaptureClock()  # the gate's time of a frame: its capture, not its arrival
        self.level = CallerLevel(config.barge_in_threshold_dbfs, config.barge_in_frames, config.duck,
                                 config.barge_in_dip_frames, config.noise_margin_db,
                                 voiced_needed=VOICED_FRAMES if config.barge_in_voicing else 0,
                                 min_speech_frames=(config.barge_in_min_speech_ms // audio.FRAME_MS
                                                    if config.ignore_backchannels else 0),
                                 near_db=NEAR_DB if config.barge_in_voicing else 0.0,
                                 near_clear=config.echo_gate)
        self._comfort = ComfortNoise(seed) if config.echo_comfort_noise else None
        self._quieter = (attenuation_table(config.echo_suppression_db)
                         if self._comfort is None and config.echo_suppression_db > 0 else None)
        self._backchannels = config.ignore_backchannels
        self._hold_s = config.backchannel_hold_ms / 1000
        audio.prepare()  # the levels' table, built with the call's parts, before its threads: not on its first frame
        if config.barge_in and config.barge_in_voicing:
            voicing.prepare()  # (the same for the voice checks: not on its first loud frame)
        self._transcribed = config.transcription_model is not None
        self._commit_unheard = self._transcribed and config.backchannel_commit
        self._held: HeldAgent | None = None  # the agent held for a short utterance's words (None: not held)
        self._strictness = HoldStrictness()  # the hold's (and its turns'): breath, or a run the model's VAD started on after its release
        self._frames_played = 0  # of the agent's audio, in the call (written by the sender alone)
        self._vad: ModelTurn[ServerSpeech] = ModelTurn()  # the model's VAD turn and the bridge's commits in it
        self._lock = threading.Lock()  # the turn's verdict: set on the model thread, read on both
        self._confirmed_at = float("-inf")  # the last local confirmation (run thread)
        self._agent = AgentWords()  # what the agent said lately (model thread)
        self._unanswered = UnansweredTurns(self._agent)  # turns left unanswered, awaiting their words
        self._blind = BlindFrames(self.level)  # the utterance's loud frames judged with no echo delay known (run thread)

    # ------------------------------------------------------------------ the agent's side
    def played(self, level_dbfs: float, now: float) -> None:
        """A frame of the agent's audio was sent (the sender's thread)."""
        self._frames_played += 1
        if self.gate is not None:
            self.gate.played(level_dbfs, now)

    def cleared(self, now: float) -> None:
        if self.gate is not None:
            self.gate.cleared(now)

    # ------------------------------------------------------------------ the caller's frames
    def hear(self, frame: bytes, now: float, armed: Callable[[], bool], timestamp_ms: int | None = None) -> Heard:
        """One caller frame that arrived at ``now`` stamped ``timestamp_ms`` by the carrier: what
        the model gets, and the local decision. The echo gate judges it at its capture time: a
        frame that arrived late in a bunch is the echo of what played before it was captured."""
        level = _dbfs(frame)
        caller_level, gate = self.level, self.gate  # (each read once: every frame of every call comes here)
        floor = caller_level.noise.floor_dbfs
        at = now if gate is None else self._capture.at(now, timestamp_ms)
        verdict = _CALLER if gate is None else gate.judge(level, at, floor)
        forward = frame
        if verdict is _ECHO:
            if self._comfort is not None:
                forward = self._comfort.frame(floor)
            elif self._quieter is not None:
                forward = frame.translate(self._quieter)
        caller, blind = verdict is _CALLER, self._blind
        if caller and blind.frames and gate is not None:
            blind.rejudge(level, gate)
        decision = caller_level.feed(level, now, caller, armed, frame, verdict is _ECHO,
                                     0.0 if gate is None else gate.headroom_db,
                                     caller and gate is not None and gate.delay_ms is None,
                                     caller and gate is not None and gate.over_echo)
        if caller and caller_level.loud and gate is not None:
            if gate.delay_ms is None:
                blind.judged(level, at)
            elif blind.frames:  # the run goes on, judged with the delay known: the caller's after all
                blind.frames = []
        if decision is _CONFIRM:
            self._confirmed_at = now
        return _new_tuple(Heard, (forward, level, verdict, decision))  # (Heard(...) runs a Python __new__)

    @property
    def floor_dbfs(self) -> float:
        return self.level.floor_dbfs

    # ------------------------------------------------------------------ the model's VAD
    def server_speech(self, now: float, audible: bool) -> ServerSpeech:
        """The model's VAD started: believe it only with the caller heard here too."""
        outcome = self._judge(now, audible)
        with self._lock:
            self._vad.started(now, outcome)
        return outcome

    def _judge(self, now: float, audible: bool) -> ServerSpeech:
        if not audible:
            return ServerSpeech.TURN
        sound = self.level.sound(now, EVIDENCE_S)
        if sound is Sound.VOICE or sound is Sound.FAR and (self.level.hearing or not self._backchannels):  # (a far
            if not self._backchannels:  # one: the detector releases it, and it is held for a command's words)
                return ServerSpeech.INTERRUPT
            if self.level.hearing:
                return ServerSpeech.LOCAL
            return ServerSpeech.INTERRUPT if self._confirmed_at >= now - EVIDENCE_S else ServerSpeech.BACKCHANNEL
        if sound is Sound.WHISPER:
            return ServerSpeech.INTERRUPT
        return {Sound.ECHO: ServerSpeech.ECHO, Sound.NOISE: ServerSpeech.NOISE, Sound.TONE: ServerSpeech.TONE,
                Sound.SOFT: ServerSpeech.UNCLEAR, Sound.FAR: ServerSpeech.FAR}.get(sound, ServerSpeech.NOTHING)

    def server_stopped(self) -> None:
        """The model's VAD ended its turn (``speech_stopped``): the commit that comes next is its
        own, even with a commit of the bridge's on its way (that one will be refused, or carry
        what came after)."""
        with self._lock:
            self._vad.stopped()

    def committed(self, now: float, item_id: str = "") -> Turn:
        """The model's VAD committed the caller's turn (``item_id``): answer it? (Or the bridge's
        own commit inside the model's open turn: that turn goes on, and its rest is judged anew.)"""
        with self._lock:
            judged, split = self._vad.judged, self._vad.split_at
            strict = self._strictness.of_commit(self._held is not None, self._vad.started_at)
            left_over = self._vad.left_over_pending
            flushed, sent = self._vad.reply(now)
        held = not flushed
        if split is not None:  # the rest of a turn the bridge committed part of: what was heard since
            judged = (ServerSpeech.INTERRUPT if self._confirmed_at > split else ServerSpeech.BACKCHANNEL
                      if self.level.backchannel_at > split else ServerSpeech.NOTHING)
            held = held and self.level.utterance_start >= split  # (the held voice's audio was in the part)
            flushed = flushed or (judged is ServerSpeech.NOTHING and not held)  # (a far voice's rest: review rv12)
        if flushed and judged not in (ServerSpeech.ECHO, ServerSpeech.TURN, ServerSpeech.INTERRUPT):
            with self._lock:  # the room's stretch before an onset (a TV's): only a command in it is the caller's
                self._unanswered.left(item_id, Unanswered.LEFT_OVER if left_over else Unanswered.COMMAND, now, strict,
                                      self._frames_played)  # (strict: rv22; a closed turn's rest: rv32-rv34)
            return Turn.LEFT_OVER if left_over else Turn.NOT_CALLER
        return self._judged_turn(judged, now, item_id, held, now if sent is None or flushed else sent, strict)

    def _judged_turn(self, judged: ServerSpeech | None, now: float, item_id: str, held: bool,
                     audio_to: float | None = None, strict: Strict = Strict.NO) -> Turn:
        """A committed turn as judged (``held``: the held voice may be in it)."""
        if held and self._held is not None:  # the held utterance is in this turn (its VAD may have started on
            judged = ServerSpeech.BACKCHANNEL  # echo, or on a TV before the agent spoke): its words decide
        if judged is ServerSpeech.LOCAL:  # the local detector has decided by now (the VAD waited for silence)
            judged = (ServerSpeech.INTERRUPT if self._confirmed_at >= self.level.backchannel_at
                      else ServerSpeech.BACKCHANNEL)
        if judged is ServerSpeech.INTERRUPT:
            return Turn.RESPOND
        if judged is None and self._own_reply(now):  # the bridge's own commit of a held utterance, come
            judged = ServerSpeech.BACKCHANNEL  # after its hold ended: not answered unless its words take the turn
        if judged is ServerSpeech.TURN:
            return Turn.RESPOND
        if judged is None:
            return Turn.RESPOND
        if judged is ServerSpeech.BACKCHANNEL:
            with self._lock:
                held_agent = self._held
                if held and held_agent is not None:
                    if not self._transcribed:  # no words will come: "stop" must not be missed
                        held_agent.verdict = Hold.CONFIRM
                        return Turn.RESPOND
                    # (the bridge's own commit holds the audio sent before it went: a run begun since
                    # is in no held turn, review rv12)
                    held_agent.committed_at = now if audio_to is None else audio_to
                    held_agent.turns.committed(item_id, held_agent.committed_at)
                self._unanswered.left(item_id, Unanswered.BACKCHANNEL, now, strict if held else Strict.NO,
                                      self._frames_played)
            return Turn.BACKCHANNEL
        if judged is ServerSpeech.ECHO or judged is ServerSpeech.FAR:  # its words may still be a command the gate
            with self._lock:  # took for echo; or, a TV's sentence no turn of the caller's, a "wait" from across the room
                self._unanswered.left(item_id, Unanswered.ECHO if judged is ServerSpeech.ECHO else Unanswered.COMMAND,
                                      now, Strict.NO, self._frames_played)
        return Turn.NOT_CALLER

    def flush_due(self, now: float) -> bool:
        """A loud run began over the agent (the duck, run thread): commit the buffer first? At a
        new utterance's first frame, with commits on: inside a model turn open ``ONSET_OPEN_S``
        (``model_turn``) with nothing committed for as long (a TV keeps it open), or with none
        open and the caller heard after its last commit (``STALE_S``: a question's rest). What
        came before the onset is a turn of its own; a held voice after it is committed alone."""
        with self._lock:
            if not (self._commit_unheard and self._backchannels and self._hold_s) or self._held is not None \
                    or self.level.utterance_start != now:
                return False
            return self._vad.onset_commit_due(now, self.level.evidence.unarmed_loud_at)

    def _own_reply(self, now: float) -> bool:
        """A commit with no VAD turn before it is the reply to the bridge's own commit, if one was
        sent lately and not answered yet (the bridge sends no other)."""
        with self._lock:
            return self._vad.own_reply(now)

    def agent_said(self, text: str, final: bool = False) -> None:
        """A delta of the agent's own transcript (model thread)."""
        with self._lock:
            self._agent.add(text, final, self._frames_played)

    def transcript(self, text: str, now: float, item_id: str = "", final: bool = True) -> bool:
        """Words of turn ``item_id`` arrived (a delta, or the completed transcript with ``final``):
        True if it was held or let pass as a backchannel but is words that take the turn ("wait",
        "stop", "no no"): the bridge interrupts and answers now. A held turn whose final words are
        a backchannel, none, or the agent's own (its echo) lets the agent resume."""
        with self._lock:
            held = self._held
            if held is not None and item_id in held.turns:
                return self._held_words(held, item_id, text, final)
            return self._unanswered.words(item_id, text, now, final)

    def transcript_failed(self, item_id: str) -> None:
        """A held turn will have no words: interrupt (missing a "stop" is worse than cutting "mm-hm")."""
        with self._lock:
            held = self._held
            if held is not None and item_id in held.turns:
                held.verdict = Hold.RESUME if held.far else Hold.CONFIRM

    def _held_words(self, held: HeldAgent, item_id: str, text: str, final: bool) -> bool:
        turns = held.turns
        words = turns.said(item_id, text, final)
        echoed = self._agent.echoed(words, final)
        if echoed is None or (echoed and not final):
            return False  # may be the agent's own words: wait for more of them
        strict = self._strictness.held
        if strict is not Strict.NO:
            takes = final and not echoed and (is_bare_command(words) or self._agent.waits(words))
        else:
            takes = not echoed and (held_turn_taken(words, final, held.far, turns.speech_s, turns.span_s(item_id))
                                    or final and held.far and self._agent.waits(words))  # (a far "just a minute": rv21)
        if takes and strict is Strict.UNSAID and self._agent.just_said(words, held.frames):
            takes = False  # words of the agent's lately, in a hold begun on its echo (review rv22; only there: rv23)
        if takes:
            held.verdict = Hold.CONFIRM
            self._unanswered.forget(item_id)
            return True
        if final:
            turns.done(item_id)
            if not turns:  # a whisper with no words in it: a whispered "stop" the transcription lost
                if held.whisper and not _WORD.search(words.lower()):
                    held.verdict = Hold.CONFIRM
                elif self._later_utterance(held):
                    held.resume_deferred = True  # its own words (or length, or the bound) decide
                else:
                    held.verdict = Hold.RESUME
        return False

    def _later_utterance(self, held: HeldAgent) -> bool:
        """An utterance that began after the held turns' last commit joined the hold or is being
        heard (under the lock): its words are in none of them, and theirs (none, an "mm-hm") must
        not resume the answer over it (an echo peak held, its turn committed, then "stop, stop")."""
        level = self.level
        if level.hearing and held.asked is not None and level.run_start >= held.asked:
            return True  # a run begun once the bridge's commit was sent: in no held turn (review rv12)
        return held.after_commit(max(held.joined_start, level.utterance_start if level.hearing else float("-inf")))

    # ------------------------------------------------------------------ a barge-in's words, asked for
    def may_ask(self) -> bool:
        """May the bridge commit now for a confirmed barge-in's words (``false_trigger``)? Commits
        on, nothing held, and the next commit known as the one sent now (``ModelTurn.idle``)."""
        with self._lock:
            return self._commit_unheard and self._held is None and self._vad.idle

    def model_turn_open(self) -> bool:
        with self._lock:
            return self._vad.open

    def model_turn_started_at(self) -> float:
        """When the model's VAD began its current (or last) turn: which turn a commit closes."""
        with self._lock:
            return self._vad.started_at

    def model_turn_closing(self) -> bool:
        with self._lock:
            return self._vad.closing

    def session_replaced(self, resent_from: float = float("-inf")) -> None:
        with self._lock:  # (its turn and the replies to the bridge's commits went with the old session;
            self._vad.forget(resent_from)  # its buffer is sent again from ``resent_from``: ``ModelTurn.forget``)

    def asked_words_take_turn(self, text: str) -> bool:
        """A barge-in's words, asked for: words, not an acknowledgement nor the agent's own (its echo)."""
        with self._lock:
            return takes_turn(text, True) and self._agent.echoed(text, True) is not True

    # ------------------------------------------------------------------ the held agent
    def heard_by_model(self, after_release: bool = False) -> bool:
        """A run the detector released as no near voice (run thread): did the model's VAD start a
        turn on it (after its onset), still open? Then it is held for its words instead (``hold(far=True)``): a
        "wait" from across a room over music is too far for the detector, and the model heard it
        (issue 21: never throw away the model's start for a voice heard too quietly to judge).

        ``after_release``: asked when a released run's grace is over (the duck held on for it,
        ``BargeIn``): a start judged then as noise or unclear by what the line carried (a soft
        "wait" over -15 dB echo is two frames over the echo and the rest at its level: no voice, a
        "burst") counts too; such a hold is ``strict``. One judged echo does not (rv22)."""
        judged = _HEARD_AFTER_RELEASE if after_release else _HEARD_AT_RELEASE
        with self._lock:
            vad = self._vad
            return (self._held is None and vad.open and self._commit_unheard and self._backchannels
                    and vad.judged in judged and self._hold_s > 0
                    and vad.started_at >= self.level.utterance_start)  # (on this sound: not a TV's long turn)

    @property
    def holds_for_words(self) -> bool:
        """A hold's words can come and decide: transcription and the bridge's commit on, and
        holds at all (a breath hold without them would interrupt on a hiss: review rv22)."""
        return self._commit_unheard and self._backchannels and self._hold_s > 0

    def hold(self, now: float, far: bool = False, strict: bool = False, after_release: bool = False) -> None:
        """A short voiced utterance ended with the agent paused: keep it paused until its words
        decide (a second one while held joins the first). ``far``: a voice released as not near
        that the model heard: only a command's words interrupt it, anything else resumes.
        ``strict`` (with ``far``): a short breathy run, or a released run the model's VAD started
        on after its grace: only a bare command (``is_bare_command``) interrupts; a whisper that
        joins it keeps it so (the agent paused, its echo gone, a paper's next crackle reads as a
        whisper, which would interrupt with no words: review rv22). ``after_release``: a strict
        hold on the model's start after a release's grace; if that start was judged the agent's
        echo, the words must also be none the agent just said (``Strict.UNSAID``)."""
        with self._lock:
            start = self.level.utterance_start
            strictness, held = self._strictness, self._held
            kept = held is not None and strictness.held is not Strict.NO and self.level.whispered
            far = kept or far and (held is None or held.far)
            if not kept:
                strictness.joined(held is not None, far and strict,
                                  after_release and self._vad.judged is ServerSpeech.ECHO)
            if held is None:  # (after a release's grace the voice ended that long ago: its words need not wait more)
                held = self._held = HeldAgent(now, self._frames_played, 0.0 if after_release else OPEN_COMMIT_S)
            elif held.after_commit(start):  # (``_later_utterance``: a resume waits for its own words)
                held.joined_after_commit(start, now)
            held.far = far
            held.turns.voice(start, self.level.utterance.speech_s)
            held.whisper = held.whisper or self.level.whispered and strictness.held is Strict.NO  # (an "mm" stays one)

    def _hold_ended(self, now: float | None = None) -> None:
        """The hold is over (under the lock; ``now`` None: a barge-in ended it). Its strictness
        goes with it, but for the rest of the model's turn it held and the turns begun just after
        (``HoldStrictness``)."""
        vad = self._vad
        self._strictness.ended(now, vad.started_at if vad.open else None)
        self._held = None

    @property
    def holding(self) -> bool:
        return self._held is not None

    def hold_outcome(self, now: float) -> Hold:
        """The held agent's fate, given once: WAIT while the words are not in; at
        ``backchannel_hold_ms`` CONFIRM if the model took a turn (committed, or still open) whose
        words never came.

        If the model took none (no ``speech_started`` within a second, and none still open: a
        turn its VAD started earlier, on the echo or a TV, takes the utterance in and brings its
        words at the commit), its VAD did not hear the utterance (a reverberant "wait" on a
        speakerphone, a faint "yeah"). Its level cannot tell a command from an acknowledgement
        then (held ones peak alike); its words can: COMMIT, once: the bridge commits the model's
        input buffer itself (no response follows a client commit; its transcript comes as a VAD
        turn's does) and the words decide as above. Without transcription (or
        ``backchannel_commit`` off, or the commit refused) RESUME for a voice, too faint for the
        model to answer. A whisper CONFIRMs at once, words or none: the model's VAD often misses
        whispers, a whispered "stop" must not be lost (nor wait for words a transcriber may give
        as "Okay.": review rv8), and nobody whispers "mm-hm" (docs/barge-in.md, step 4)."""
        with self._lock:
            held = self._held
            if held is None:
                return Hold.NONE
            if held.resume_deferred and held.verdict is Hold.WAIT and not held.turns \
                    and not self._later_utterance(held):  # the later sound ended unheld (a noise), or its turn's words are in
                held.verdict = Hold.RESUME
            verdict = held.verdict
            unheard = Hold.CONFIRM if held.whisper else Hold.RESUME
            vad = self._vad
            waiting = verdict is Hold.WAIT and not held.turns and held.asked is None  # (for a turn of the model's)
            if waiting and vad.open and self._commit_unheard and not held.whisper and not self.level.hearing \
                    and now - held.since >= held.open_commit_s - 1e-9:  # (a TV may keep the model's turn open; not
                # through a voice going on: "yeah ... wait" split inside the "wait" lost it, review rv12)
                held.asked = vad.own_commit = now
                return Hold.COMMIT
            if waiting and now - held.since >= EVIDENCE_S - 1e-9 and vad.started_at < held.since - EVIDENCE_S \
                    and not vad.open:
                if self._commit_unheard and not held.whisper:
                    held.asked = vad.own_commit = now
                    return Hold.COMMIT
                verdict = unheard
            if verdict is Hold.WAIT and now - held.since >= self._hold_s - 1e-9:
                # a turn the model committed, or still has open (over babble its VAD may never
                # close it), took the words in and they never came: a "stop" must not be lost
                # (a far voice is not known to be the caller's: its words must say so)
                verdict = Hold.CONFIRM if (held.turns or vad.open) and not held.far \
                    else Hold.RESUME if held.far else unheard
            if verdict is not Hold.WAIT:
                self._hold_ended(now)
            return verdict

    def commit_refused(self) -> None:
        """The model refused the bridge's commit of the held audio (too little buffered): no words
        will come for it; the held voice resumes as one the model did not hear."""
        with self._lock:
            if self._vad.refused():  # the commit at an onset (sent first): nothing held waits on it
                return
            held = self._held
            if held is not None and held.asked is not None and not held.turns:
                held.verdict = Hold.CONFIRM if held.whisper else Hold.RESUME

    def end_hold(self) -> None:
        """The barge-in ran (on whatever trigger): nothing is held any more."""
        with self._lock:
            self._hold_ended()
