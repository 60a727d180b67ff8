"""What the simulated caller does: a list of steps, and a compact text form for the CLI.

A step only *describes* behaviour (its audio is resolved once before dialing, by
:mod:`voicebridge.dev.sim.sounds`, and it is executed frame by frame by
:mod:`voicebridge.dev.sim.runner`), so scripts are cheap to build, compare and print.

Compact form (comma-separated; a comma inside spoken text is fine because splitting only
happens before a known command name)::

    silence:MS                  say:TEXT | say:@PROMPT | say:FILE.wav | say:#CLIP
    click[:MS]                  wait_agent[:TIMEOUT_MS]
    cough[:MS]                  (a loud cough, default 350 ms: a false trigger that sounds human)
    sound:KIND[:SEED]           (a room or handset noise: knock, door, keyboard, click, cough)
    wait_quiet[:QUIET_MS[:TIMEOUT_MS]]
    interrupt[:AFTER_MS]:TEXT   (or @PROMPT / FILE.wav / #CLIP)  hangup
    dtmf:KEYS[:GAP_MS]          (keypad keys, e.g. dtmf:1234#, one every GAP_MS, default 150)
    wait_hangup[:TIMEOUT_MS]    (silence until the bridge ends the call)
    tool:NAME[:DIGITS]          (ask the local test agent for tool NAME, with DIGITS for its
                                 id-like argument: keys * + NAME spelled on the keypad [+ * DIGITS] #)

``#CLIP`` speaks from the committed corpus (:mod:`voicebridge.dev.sim.corpus`): a clip name
(``#whisper_04_0``), a category (``#backchannel``: a seeded pick) or a category and an index
(``#interruption:3``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from ...call.keypad import keypad_code


@dataclass(frozen=True)
class Silence:
    """Send silence for ``ms``."""

    ms: int


@dataclass(frozen=True)
class Say:
    """Speak: from ``audio`` (raw mu-law), a ``wav`` file, a corpus ``clip``, a bundled ``prompt`` or ``text``."""

    text: "str | None" = None
    prompt: "str | None" = None
    wav: "str | None" = None
    audio: "bytes | None" = None
    clip: "str | None" = None


@dataclass(frozen=True)
class Click:
    """A short loud noise burst: something a naive barge-in detector mistakes for speech."""

    ms: int = 40


@dataclass(frozen=True)
class Cough:
    """A cough: loud, broadband and short, like speech to an energy detector but not a barge-in.

    Closer to what really interrupts a call by accident than :class:`Click`; its audio comes
    from :func:`voicebridge.dev.sim.acoustics.cough`.
    """

    ms: int = 350


@dataclass(frozen=True)
class Sound:
    """A room or handset noise from :func:`voicebridge.dev.sim.room.event` (knock, door, keyboard,
    click, cough): loud, and no barge-in."""

    kind: str
    seed: int = 0


@dataclass(frozen=True)
class WaitForAgent:
    """Send silence until agent audio is heard (or ``timeout_ms`` passes)."""

    timeout_ms: int = 10000


@dataclass(frozen=True)
class WaitForAgentSilence:
    """Send silence until the agent has been quiet for ``quiet_ms`` during this wait."""

    quiet_ms: int = 800
    timeout_ms: int = 15000


@dataclass(frozen=True)
class Interrupt:
    """Barge in: wait for agent audio, let it play ``after_ms``, then speak over it.

    The first spoken frame is the barge-in *onset* every interruption metric is measured
    from. If the agent never talks within ``timeout_ms`` the caller speaks anyway (reported
    with ``agent_talking=False``).
    """

    text: "str | None" = None
    prompt: "str | None" = None
    wav: "str | None" = None
    audio: "bytes | None" = None
    after_ms: int = 1000
    timeout_ms: int = 10000
    clip: "str | None" = None


@dataclass(frozen=True)
class Hangup:
    """End the call: Twilio sends ``stop`` and closes the socket."""


@dataclass(frozen=True)
class Dtmf:
    """Press keypad keys, one ``dtmf`` message every ``gap_ms`` (silence meanwhile)."""

    keys: str
    gap_ms: int = 150


@dataclass(frozen=True)
class WaitForHangup:
    """Send silence until the bridge ends the call (a test of the agent hanging up)."""

    timeout_ms: int = 15000


Step = Union[Silence, Say, Click, Cough, Sound, WaitForAgent, WaitForAgentSilence, Interrupt, Hangup, Dtmf, WaitForHangup]


# -- constructors (the public, readable way to write a script) ---------------------------
def silence(ms: int) -> Silence:
    """Silence for ``ms`` milliseconds."""
    return Silence(int(ms))


def say(text: "str | None" = None, *, prompt: "str | None" = None, wav: "str | None" = None,
        audio: "bytes | None" = None, clip: "str | None" = None) -> Say:
    """Speak ``text`` (espeak-ng, or a bundled prompt), a ``prompt``, a ``wav`` file, raw ``audio``
    or a corpus ``clip`` (a clip name, ``category`` or ``category:N``)."""
    if text is None and prompt is None and wav is None and audio is None and clip is None:
        raise ValueError("say() needs text, prompt, wav, audio or clip")
    return Say(text=text, prompt=prompt, wav=wav, audio=audio, clip=clip)


def click(ms: int = 40) -> Click:
    """A ``ms`` loud noise burst (a false barge-in trigger)."""
    return Click(int(ms))


def cough(ms: int = 350) -> Cough:
    """A ``ms`` cough (a false barge-in trigger that sounds like a person)."""
    if int(ms) <= 0:
        raise ValueError("a cough lasts at least 1 ms")
    return Cough(int(ms))


def wait_for_agent(timeout_ms: int = 10000) -> WaitForAgent:
    """Silence until the caller starts hearing agent audio."""
    return WaitForAgent(int(timeout_ms))


def wait_for_agent_silence(quiet_ms: int = 800, timeout_ms: int = 15000) -> WaitForAgentSilence:
    """Silence until the agent has been quiet for ``quiet_ms``."""
    return WaitForAgentSilence(int(quiet_ms), int(timeout_ms))


def interrupt(text: "str | None" = None, *, prompt: "str | None" = None, wav: "str | None" = None,
              audio: "bytes | None" = None, clip: "str | None" = None, after_ms: int = 1000,
              timeout_ms: int = 10000) -> Interrupt:
    """Speak over the agent ``after_ms`` after its audio starts; marks the barge-in onset."""
    if text is None and prompt is None and wav is None and audio is None and clip is None:
        raise ValueError("interrupt() needs text, prompt, wav, audio or clip")
    return Interrupt(text=text, prompt=prompt, wav=wav, audio=audio, clip=clip,
                     after_ms=int(after_ms), timeout_ms=int(timeout_ms))


SOUND_KINDS = ("knock", "door", "keyboard", "click", "cough")


def sound(kind: str, seed: int = 0) -> Sound:
    """A room or handset noise (``knock``, ``door``, ``keyboard``, ``click``, ``cough``)."""
    if kind not in SOUND_KINDS:
        raise ValueError(f"unknown sound {kind!r}; expected one of {', '.join(SOUND_KINDS)}")
    return Sound(kind, int(seed))


def hangup() -> Hangup:
    """Hang up."""
    return Hangup()


DTMF_KEYS = frozenset("0123456789*#ABCD")


def dtmf(keys: str, gap_ms: int = 150) -> Dtmf:
    """Press ``keys`` on the keypad (0-9, *, #, A-D)."""
    if not keys or set(keys) - DTMF_KEYS:
        raise ValueError("keys must be 0-9, *, #, A-D")
    return Dtmf(keys, int(gap_ms))


def wait_for_hangup(timeout_ms: int = 15000) -> WaitForHangup:
    """Silence until the bridge hangs up (or ``timeout_ms``)."""
    return WaitForHangup(int(timeout_ms))


def syntax() -> str:
    """The compact form's reference (this module's docstring from "Compact form" on), for ``--help``."""
    return "script steps (--script)" + (__doc__ or "").split("Compact form", 1)[1].rstrip()


DEFAULT_SCRIPT = (
    "wait_agent:10000,wait_quiet:800,say:What can you tell me?,wait_agent:8000,"
    "interrupt:1500:Stop please,wait_quiet:1000,click,wait_quiet:1500,"
    "say:Thank you, goodbye.,wait_quiet:1500,hangup"
)
"""``voicebridge call``'s default: greeting, a question, a barge-in, a click, a goodbye (the click
comes once the agent has been quiet for 1 s, so it tests nothing of barge-in; ``voicebridge demo``'s
script clicks while the agent talks)."""


# -- compact text form ---------------------------------------------------------------------
_ALIASES = {
    "silence": "silence", "say": "say", "click": "click", "cough": "cough", "sound": "sound", "hangup": "hangup",
    "wait_agent": "wait_agent", "wait_for_agent": "wait_agent",
    "wait_quiet": "wait_quiet", "wait_for_agent_silence": "wait_quiet",
    "interrupt": "interrupt", "dtmf": "dtmf", "wait_hangup": "wait_hangup", "tool": "tool",
}
_SPLIT = re.compile(r",(?=\s*(?:%s)\s*(?::|,|$))" % "|".join(sorted(_ALIASES, key=len, reverse=True)))


def parse_script(text: str) -> list[Step]:
    """Parse the compact command-line form; raises ValueError naming the bad item."""
    steps: list[Step] = []
    for item in _SPLIT.split(text.strip()):
        item = item.strip()
        if item:
            steps.append(_parse_item(item))
    if not steps:
        raise ValueError("empty script")
    return steps


def _parse_item(item: str) -> Step:
    name, _, arg = item.partition(":")
    kind = _ALIASES.get(name.strip().lower())
    if kind is None:
        raise ValueError(f"unknown script command {name.strip()!r} in {item!r}")
    arg = arg.strip()
    try:
        return _BUILDERS[kind](arg)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad script item {item!r}: {exc}") from None


def _int(arg: str, default: "int | None" = None) -> int:
    if not arg:
        if default is None:
            raise ValueError("a number of milliseconds is required")
        return default
    value = int(arg)
    if value < 0:
        raise ValueError("milliseconds must not be negative")
    return value


def _speech_source(arg: str) -> dict:
    """``@name`` is a bundled prompt, ``#clip`` a corpus clip, ``*.wav`` a file, anything else text."""
    if not arg:
        raise ValueError("nothing to say")
    if arg.startswith("@"):
        return {"prompt": arg[1:]}
    if arg.startswith("#"):
        return {"clip": arg[1:]}
    if arg.lower().endswith(".wav"):
        return {"wav": arg}
    return {"text": arg}


def _build_wait_quiet(arg: str) -> WaitForAgentSilence:
    quiet, _, timeout = arg.partition(":")
    return wait_for_agent_silence(_int(quiet, 800), _int(timeout, 15000))


def _build_interrupt(arg: str) -> Interrupt:
    head, sep, rest = arg.partition(":")
    if sep and head.strip().isdigit():
        return interrupt(after_ms=int(head), **_speech_source(rest.strip()))
    return interrupt(**_speech_source(arg))


def _build_hangup(arg: str) -> Hangup:
    if arg:
        raise ValueError("hangup takes no argument")
    return hangup()


def _build_dtmf(arg: str) -> Dtmf:
    keys, _, gap = arg.partition(":")
    return dtmf(keys.strip(), _int(gap, 150))


TOOL_KEY_GAP_MS = 80
"""A ``tool:`` step's keys come quicker than a person types them: they are a code, not a number."""


def _build_tool(arg: str) -> Dtmf:
    """``tool:NAME[:DIGITS]``: the keys that name a tool to the local test agent (voicebridge.dev.local.tooluse)."""
    name, _, digits = arg.partition(":")
    name, digits = name.strip(), digits.strip()
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise ValueError("a tool name (letters, digits, _ or -) is required")
    if digits and not digits.isdigit():
        raise ValueError(f"tool arguments are keypad digits, not {digits!r}")
    return dtmf("*" + keypad_code(name) + (f"*{digits}" if digits else "") + "#", TOOL_KEY_GAP_MS)


_BUILDERS = {
    "silence": lambda a: silence(_int(a)),
    "say": lambda a: say(**_speech_source(a)),
    "click": lambda a: click(_int(a, 40)),
    "cough": lambda a: cough(_int(a, 350)),
    "sound": lambda a: sound(a.partition(":")[0].strip(), _int(a.partition(":")[2], 0)),
    "wait_agent": lambda a: wait_for_agent(_int(a, 10000)),
    "wait_quiet": _build_wait_quiet,
    "interrupt": _build_interrupt,
    "hangup": _build_hangup,
    "dtmf": _build_dtmf,
    "wait_hangup": lambda a: wait_for_hangup(_int(a, 15000)),
    "tool": _build_tool,
}


def format_step(step: Step) -> str:
    """The compact form of one step (raw ``audio`` shows as its length)."""
    if isinstance(step, Silence):
        return f"silence:{step.ms}"
    if isinstance(step, Click):
        return f"click:{step.ms}"
    if isinstance(step, Cough):
        return f"cough:{step.ms}"
    if isinstance(step, Sound):
        return f"sound:{step.kind}:{step.seed}"
    if isinstance(step, WaitForAgent):
        return f"wait_agent:{step.timeout_ms}"
    if isinstance(step, WaitForAgentSilence):
        return f"wait_quiet:{step.quiet_ms}:{step.timeout_ms}"
    if isinstance(step, Hangup):
        return "hangup"
    if isinstance(step, Dtmf):
        return f"dtmf:{step.keys}:{step.gap_ms}"
    if isinstance(step, WaitForHangup):
        return f"wait_hangup:{step.timeout_ms}"
    source = _format_source(step)
    if isinstance(step, Interrupt):
        return f"interrupt:{step.after_ms}:{source}"
    return f"say:{source}"


def _format_source(step: "Say | Interrupt") -> str:
    if step.audio is not None:
        return f"<{len(step.audio)} bytes>"
    if step.wav:
        return step.wav
    if step.clip:
        return "#" + step.clip
    if step.prompt and not step.text:
        return "@" + step.prompt
    return step.text or ""


def format_script(steps: "list[Step]") -> str:
    """The compact form of a script (round-trips through :func:`parse_script` except raw audio)."""
    return ",".join(format_step(s) for s in steps)
