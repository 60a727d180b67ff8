"""The scripted "model" behind the local Realtime server.

It exists so a whole call can be exercised without an OpenAI key, so its script is
shaped around what a phone bridge must get right:

* a **greeting** for a ``response.create`` before the caller has said anything;
* a **long answer** (about 20 s) to the caller's first turn, long enough to barge into;
* a **short reply** to later turns, saying how long the caller spoke;
* a **resume** of an interrupted answer from where the caller stopped hearing it, when a
  ``response.create`` carries instructions such as "continue where you left off";
* **tools**, whichever the session declares (:mod:`.tooluse`): "I would like to check my
  order" gets a request for the order number, keypad digits (a user text item) a call of the
  order lookup offered (``order_status``, else a tool named for orders, else the app's first
  tool) with arguments built from its JSON schema, its output a spoken answer; a tool's name
  spelled on the keypad (``*`` + its letters' keys [+ ``*`` + digits], ``#``) calls that tool;
  "goodbye" gets a goodbye and an ``end_call``; "a person" gets a handoff line and a
  ``transfer_call`` to the first configured destination (or the one the digits number);
* **instructions** the bridge sends are followed by their key words: a goodbye, a handoff line,
  "still checking" (a filler), "still there" (an idle nudge).

It "understands" a caller turn by recognising the bundled caller phrases in the audio it was
sent (the bridge forwards caller audio byte for byte), see :mod:`.recognizer`.

In ``tone`` mode every answer is :mod:`voicebridge.dev.tone` blocks instead, so a caller can
check order and completeness byte for byte.

Speech comes from a :class:`Voice`: live espeak-ng when installed, otherwise the prompts
bundled in ``voicebridge/prompts`` (generated from the same texts by ``make_prompts``).
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
import json
from typing import Literal

from ...audio import mulaw as audio
from .. import tone, tts
from .tooluse import Schemas, arguments, asks_by_name, named_tool, topical_tool
from . import structured

logger = logging.getLogger(__name__)

Part = tuple[str, str]  # (bundled prompt name, the words it says)

GREETING: Part = ("greeting", "Hello, thanks for calling the voice bridge demo line. How can I help you today?")
LONG_ANSWER: Part = (
    "long_answer",
    "Sure, here is how this call works. Your voice travels from the phone network to "
    "a small bridge server, which forwards it to the speech model. The model streams its "
    "reply back faster than real time, and the phone plays it at normal speed. If you start "
    "talking while I am still speaking, the bridge stops my audio and tells the model how "
    "much of this answer you heard, so try interrupting me.",
)
SHORT_REPLY: Part = ("short_reply", "Thanks, I heard you. Is there anything else I can help you with?")
SPOKE_PREFIX: Part = ("spoke_prefix", "You spoke for about")
SPOKE_SUFFIX: Part = ("spoke_suffix", "Thanks, is there anything else?")
STILL_THERE: Part = ("still_there", "Are you still there? I am happy to help when you are ready.")
APOLOGY: Part = ("apology", "Sorry, our assistant is not available right now. Please call again later.")
HOLD_ON: Part = ("hold_on", "One moment please, I am reconnecting.")  # the bridge's holding line
ASK_ORDER: Part = ("ask_order", "Sure. Please enter your order number on the keypad, then press the pound key.")
LET_ME_CHECK: Part = ("let_me_check", "Let me check that for you.")
ORDER_PREFIX: Part = ("order_prefix", "Your order")
ORDER_STATUS: dict[str, Part] = {
    "shipped": ("order_shipped", "has shipped and arrives tomorrow."),
    "processing": ("order_processing", "is being prepared and ships this week."),
    "unknown": ("order_unknown", "could not be found. Please check the number."),
}
TOOL_FAILED: Part = ("tool_failed", "Sorry, I could not look that up right now.")
STILL_CHECKING: Part = ("still_checking", "I am still checking, one moment please.")
GOODBYE: Part = ("goodbye", "Thank you for calling. Goodbye!")
HANDOFF: Part = ("handoff", "Connecting you to a colleague now. Please hold.")
VOICEMAIL: Part = ("voicemail", "Hello, this is the voice bridge demo line calling about your order. "
                                "Please call us back when you can. Thank you.")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ORDER_TOOL, END_CALL_TOOL, TRANSFER_TOOL = "order_status", "end_call", "transfer_call"
NUMBER_WORDS = (
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen", "twenty",
)
MAX_SECONDS = len(NUMBER_WORDS)
_CONTINUE = re.compile(r"\b(continue|resume|carry on|pick up|go on|keep going)\b", re.IGNORECASE)
_INSTRUCTED: list[tuple[re.Pattern, str]] = [  # key words of the bridge's instructions -> what to say
    (re.compile(r"\bvoicemail\b", re.IGNORECASE), "voicemail"),  # first: a message may mention anything
    (re.compile(r"still (checking|waiting)", re.IGNORECASE), "filler"),
    (re.compile(r"\bgoodbye\b", re.IGNORECASE), "goodbye"),
    (re.compile(r"\bconnect(ing)?\b|\btransfer", re.IGNORECASE), "handoff"),
    (re.compile(r"still there", re.IGNORECASE), "nudge"),
]
_HEARD: list[tuple[re.Pattern, str]] = [  # key words of a caller turn -> the scenario it starts
    (re.compile(r"\b(good ?bye|bye)\b", re.IGNORECASE), "goodbye"),
    (re.compile(r"\border\b", re.IGNORECASE), "order"),
    (re.compile(r"\b(person|human|someone|colleague)\b", re.IGNORECASE), "person"),
]
_DIGITS = re.compile(r"\b(\d{1,16})\b")


def seconds_part(n: int) -> Part:
    """The bundled prompt for "N second(s)", N clamped to 1..20."""
    n = min(MAX_SECONDS, max(1, n))
    word = NUMBER_WORDS[n - 1]
    return (f"seconds_{n}", f"{word} second" if n == 1 else f"{word} seconds")


def digit_part(digit: str) -> Part:
    return (f"digit_{digit}", DIGIT_WORDS[int(digit)])


def all_parts() -> list[Part]:
    """Every bundled prompt the agent (and the bridge's apology) may need."""
    fixed = [GREETING, LONG_ANSWER, SHORT_REPLY, SPOKE_PREFIX, SPOKE_SUFFIX, STILL_THERE, APOLOGY, HOLD_ON, ASK_ORDER,
             LET_ME_CHECK, ORDER_PREFIX, *ORDER_STATUS.values(), TOOL_FAILED, STILL_CHECKING, GOODBYE, HANDOFF,
             VOICEMAIL]
    return fixed + [seconds_part(n) for n in range(1, MAX_SECONDS + 1)] + [digit_part(str(d)) for d in range(10)]


def wants_continue(instructions: "str | None") -> bool:
    """True when response instructions ask to continue/resume the interrupted answer."""
    return bool(instructions and _CONTINUE.search(instructions))


class Voice:
    """Turns prompt parts into mu-law speech; thread-safe cache, shared by connections.

    ``live=None`` means: espeak-ng when it is installed, else the bundled prompts. Live
    synthesis speaks the whole sentence at once (natural prosody); bundled audio is the
    concatenation of the parts' prompts.
    """

    def __init__(self, live: "bool | None" = None) -> None:
        self.live = tts.espeak_available() if live is None else live
        self._cache: dict[tuple[Part, ...], bytes] = {}
        self._lock = threading.Lock()

    def say(self, parts: "list[Part] | tuple[Part, ...]") -> bytes:
        key = tuple(parts)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        data = self._synthesize(key)
        with self._lock:
            self._cache[key] = data
        return data

    def warm(self) -> None:
        """Synthesize the fixed answers ahead of the first call (live espeak takes ~0.4 s)."""
        for part in (GREETING, LONG_ANSWER, SHORT_REPLY):
            self.say([part])

    def _synthesize(self, parts: tuple[Part, ...]) -> bytes:
        if self.live:
            spoken = tts.speak(" ".join(text for _, text in parts))
            if spoken:
                return spoken
            logger.warning("espeak-ng failed; falling back to bundled prompts")
        return b"".join(tts.load_prompt(name) for name, _ in parts)


Call = tuple[str, dict]  # a function call the answer ends with: (tool name, arguments)


@dataclass
class Utterance:
    """One answer: the mu-law audio to stream, the words it says, the function calls after them."""

    kind: str  # greeting, long, short, resume, tone, tool, goodbye, handoff, filler (logs and tests)
    text: str
    audio: bytes
    tone_response: "int | None" = None  # tone mode: response number in the blocks
    tone_first_block: int = 0
    calls: list[Call] = field(default_factory=list)


@dataclass
class _Interruption:
    utterance: Utterance
    audio_ms: int


def _quiet_cut(data: bytes, offset: int, lookback_ms: int = 600, quiet_dbfs: float = -45.0) -> int:
    """A frame boundary at or before ``offset`` just after a pause, so a resume starts on a word.

    Scans back from ``offset`` for the latest quiet 20 ms frame within ``lookback_ms``;
    without one, cuts at the frame boundary at ``offset``.
    """
    frame = audio.FRAME_BYTES
    end = offset - offset % frame
    floor = max(0, end - lookback_ms * audio.BYTES_PER_MS)
    for pos in range(end - frame, floor - 1, -frame):
        if audio.dbfs(data[pos:pos + frame]) < quiet_dbfs:
            return pos + frame
    return end


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _replayed_part(text: str) -> "tuple[Part, float] | None":
    """The bundled prompt a replayed assistant turn began, and the share of its words heard."""
    heard = _words(text)
    for part in all_parts():
        words = _words(part[1])
        if heard and words[:len(heard)] == heard and len(words) > 1:
            return part, len(heard) / len(words)
    return None


def _resume(interrupted: _Interruption) -> "Utterance | None":
    """The unheard remainder of an interrupted utterance, or None if it was all heard."""
    utt = interrupted.utterance
    offset = min(len(utt.audio), interrupted.audio_ms * audio.BYTES_PER_MS)
    if utt.tone_response is not None:
        block = offset // audio.FRAME_BYTES
        rest = utt.audio[block * audio.FRAME_BYTES:]
        first = utt.tone_first_block + block
        text = f"tone {utt.tone_response} blocks {first}-{first + len(rest) // audio.FRAME_BYTES - 1}"
        return Utterance("tone", text, rest, utt.tone_response, first) if rest else None
    cut = _quiet_cut(utt.audio, offset)
    rest = utt.audio[cut:]
    if len(rest) < audio.FRAME_BYTES * 5:
        return None
    words = utt.text.split()
    skip = int(len(words) * cut / max(1, len(utt.audio)))
    return Utterance("resume", " ".join(words[skip:]) or utt.text, rest)


@dataclass
class ScriptedAgent:
    """Chooses what the next response says (and calls); one per connection (not thread-safe)."""

    voice: Voice
    mode: Literal["voice", "tone"] = "voice"
    tone_seconds: float = 3.0
    _user_turns: int = 0
    _answered_turns: int = 0
    _greeted: bool = False
    _last_speech_ms: "int | None" = None
    _heard: "str | None" = None  # the words of the last caller turn, if recognised
    _typed: "str | None" = None  # the last user text item (keypad digits arrive so)
    _said: "str | None" = None  # the caller's last recognised words (for a tool's text arguments)
    _outputs: list[tuple[str, str]] = field(default_factory=list)  # (tool name, output) not yet answered
    _by_item: dict[str, Utterance] = field(default_factory=dict)
    _interrupted: "_Interruption | None" = None
    _replayed: "str | None" = None  # the last assistant turn a bridge replayed into this session
    _numbered_before: int = 0  # tone mode: responses a replayed conversation already had (numbers go on)
    _nudge: bool = False
    _number: int = 0  # the response being chosen (tone mode numbers its blocks with it)

    def idle(self) -> None:
        """The caller stayed silent past ``idle_timeout_ms``: the next response checks on them."""
        self._nudge = True

    def user_turn(self, speech_ms: "int | None", words: "str | None" = None) -> None:
        """The caller finished a turn of ``speech_ms`` ms of speech, recognised as ``words``."""
        self._user_turns += 1
        self._last_speech_ms, self._heard, self._typed = speech_ms, words, None
        self._said = words or self._said

    def user_text(self, text: str) -> None:
        """A user text item: keypad digits as the bridge words them, or a caller turn it replays."""
        self._user_turns += 1
        self._last_speech_ms, self._heard, self._typed = None, text, text

    def assistant_text(self, text: str) -> None:
        """An assistant turn a bridge replayed (a new session taking over a call): it was said,
        so no greeting and no answer to the turns before it; a "continue" resumes from it."""
        self._greeted = True
        self._answered_turns = self._user_turns
        self._replayed = text
        tone_number = re.match(r"tone (\d+)", text)
        if tone_number:
            self._numbered_before = max(self._numbered_before, int(tone_number.group(1)) + 1)

    def tool_output(self, name: str, output: str) -> None:
        self._outputs.append((name, output))

    def interrupted(self, item_id: str, audio_ms: int) -> None:
        """The caller heard only ``audio_ms`` of item ``item_id`` (truncate or cancel)."""
        utt = self._by_item.get(item_id)
        if utt is not None:
            self._interrupted = _Interruption(utt, max(0, audio_ms))

    def respond(self, item_id: str, response_number: int, instructions: "str | None" = None,
                tools: "Schemas | None" = None) -> Utterance:
        """The utterance for a new response whose assistant item is ``item_id``; ``tools``: the
        session's tools, name -> parameters schema."""
        utt = self._choose(response_number, instructions, tools or {})
        self._by_item[item_id] = utt
        return utt

    def _choose(self, response_number: int, instructions: "str | None", tools: Schemas) -> Utterance:
        self._number = response_number + self._numbered_before
        schema = structured.requested_schema(instructions)
        if schema is not None:  # a text answer in the JSON asked for (a bridge's post-call analysis)
            return Utterance("structured", structured.answer(schema, self._summary()), b"")
        if wants_continue(instructions):
            cut, self._interrupted, self._replayed = self._interrupted or self._from_replay(), None, None
            resumed = _resume(cut) if cut is not None else None
            if resumed is not None:
                return resumed
        instructed = next((what for pattern, what in _INSTRUCTED if instructions and pattern.search(instructions)),
                          None)
        if instructed is not None:
            return self._instructed(instructed)
        if self._nudge:
            self._nudge = False
            return self._say("short", STILL_THERE)
        if self._outputs:
            return self._answer_outputs()
        new_turn = self._user_turns > self._answered_turns
        first_turn = new_turn and self._answered_turns == 0
        self._answered_turns = self._user_turns
        scenario = self._scenario(tools) if new_turn else None
        if scenario is not None:
            return scenario
        if self.mode == "tone":
            return self._tone(self._number)
        if self._user_turns == 0 and not self._greeted:
            self._greeted = True
            return self._say("greeting", GREETING)
        if first_turn:
            return self._say("long", LONG_ANSWER)
        if new_turn and self._last_speech_ms is not None:
            return self._spoke_for(self._last_speech_ms)
        return self._say("short", SHORT_REPLY)

    def _from_replay(self) -> "_Interruption | None":
        """Where a replayed assistant turn stopped, as an interruption of the utterance it began."""
        text = self._replayed or ""
        if self.mode == "tone":
            match = re.match(r"tone (\d+)", text)
            if match is None:
                return None
            utt = self._tone(int(match.group(1)))
            share = len(text.split()) / len(utt.text.split())
        else:
            found = _replayed_part(text)
            if found is None:
                return None
            part, share = found
            utt = Utterance("resume", part[1], self.voice.say([part]))
        return _Interruption(utt, int(len(utt.audio) * share) // audio.BYTES_PER_MS)

    def _scenario(self, tools: Schemas) -> "Utterance | None":
        """What the caller's words (or typed digits) ask for, when the tools allow it."""
        lookup = ORDER_TOOL if ORDER_TOOL in tools else topical_tool("order", tools)
        if self._typed is not None:
            named = named_tool(self._typed, tools)
            if named is not None:
                return self._call(named[0], named[1], tools)
            if asks_by_name(self._typed):  # a tool this session does not offer: an ordinary answer
                return None
            digits = _DIGITS.search(self._typed)
            if digits and lookup is not None:
                return self._call(lookup, digits.group(1), tools)
        heard = next((what for pattern, what in _HEARD if self._heard and pattern.search(self._heard)), None)
        if heard == "goodbye":
            return self._say("goodbye", GOODBYE, [(END_CALL_TOOL, {"reason": "the caller said goodbye"})]
                             if END_CALL_TOOL in tools else [])
        if heard == "order" and lookup is not None:
            return self._say("short", ASK_ORDER)
        if heard == "person" and TRANSFER_TOOL in tools:
            return self._call(TRANSFER_TOOL, None, tools)
        return None

    def _call(self, name: str, digits: "str | None", tools: Schemas) -> Utterance:
        """Say the line that goes with calling ``name``, then call it with schema-built arguments."""
        if name == END_CALL_TOOL:
            return self._say("goodbye", GOODBYE, [(END_CALL_TOOL, {"reason": "the caller asked to end the call"})])
        args = arguments(tools.get(name), digits, self._said)
        if name == TRANSFER_TOOL:
            return self._say("handoff", HANDOFF, [(TRANSFER_TOOL, args)])
        return self._say("tool", LET_ME_CHECK, [(name, args)])

    def _summary(self) -> str:
        last = f' The caller last said: "{self._said}".' if self._said else ""
        return f"A phone call of {self._user_turns} caller turn(s) and {self._number} response(s).{last}"

    def _instructed(self, what: str) -> Utterance:
        part = {"filler": STILL_CHECKING, "goodbye": GOODBYE, "handoff": HANDOFF, "nudge": STILL_THERE,
                "voicemail": VOICEMAIL}[what]
        return self._say(what, part)

    def _answer_outputs(self) -> Utterance:
        outputs, self._outputs = self._outputs, []
        for name, output in outputs:
            if name in (END_CALL_TOOL, TRANSFER_TOOL):
                continue
            try:
                result = json.loads(output)
            except ValueError:
                result = {}
            status = result.get("status") if isinstance(result, dict) else None
            order = str(result.get("order_id", "")) if isinstance(result, dict) else ""
            if isinstance(result, dict) and "error" in result:
                return self._say("tool", TOOL_FAILED)
            if status not in ORDER_STATUS or not order.isdigit():  # any other tool: its output is in the record
                return self._say("tool", TOOL_FAILED if name == ORDER_TOOL else SHORT_REPLY)
            parts = [ORDER_PREFIX, *(digit_part(d) for d in order), ORDER_STATUS[status]]
            if self.mode == "tone":
                return self._tone(self._number)
            text = " ".join(text for _, text in parts)
            return Utterance("tool", text, self.voice.say(parts))
        return self._say("short", SHORT_REPLY)

    def _say(self, kind: str, part: Part, calls: "list[Call] | None" = None) -> Utterance:
        """``part`` spoken (in tone mode: this response's tone blocks), then ``calls``."""
        if self.mode == "tone":
            utt = self._tone(self._number)
            utt.calls = list(calls or [])
            return utt
        return Utterance(kind, part[1], self.voice.say([part]), calls=list(calls or []))

    def _spoke_for(self, speech_ms: int) -> Utterance:
        parts = [SPOKE_PREFIX, seconds_part(round(speech_ms / 1000)), SPOKE_SUFFIX]
        text = f"{SPOKE_PREFIX[1]} {parts[1][1]}. {SPOKE_SUFFIX[1]}"
        return Utterance("short", text, self.voice.say(parts))

    def _tone(self, response_number: int) -> Utterance:
        nblocks = max(1, int(self.tone_seconds * 1000) // audio.FRAME_MS)
        text = f"tone {response_number} blocks 0-{nblocks - 1}"
        return Utterance("tone", text, tone.tone_audio(nblocks, response_number), response_number, 0)
