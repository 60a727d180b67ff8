"""Barge-in against real ears: a labelled set of simulated calls on the speech corpus.

Every case is one call of a few seconds in virtual time (no sockets, no threads, no sleeps).
The agent greets (not interruptible), then answers; during the answer the caller makes a sound,
or nothing. What the caller's microphone sends is built from the committed material:
:mod:`voicebridge.dev.sim.corpus` speech (espeak-ng voices, accents, rates, pitches, whispers, soft
and unvoiced onsets, backchannels), :mod:`voicebridge.dev.sim.room` sounds (music, distant babble,
TV, car, mains hum, knocks, door, keyboard, clicks, coughs) and the echo of exactly what the
caller heard through :class:`~voicebridge.dev.sim.room.LoudspeakerEcho` (loudspeaker saturation, a
room, the phone band, a 40-250 ms delay, -30..-10 dB). The model's side is a small server
emulation whose VAD is the local server's (:func:`voicebridge.dev.local.vad.make_vad`: Silero when
the ``vad`` extra is installed): it hears the bridge's uplink (echo included, as OpenAI's does),
sends ``speech_started``/``speech_stopped``/``committed``, with ``interrupt_response`` true
cancels the answer itself, as the real service does, and transcribes committed turns when the
session asks for it (the caller's clip text, or the agent's echoed words; 0.3/0.5 s after the
commit). ``create_response`` is not acted on: no answer to a committed turn is generated, the
turns are counted. Network: 20 ms each way to the caller
(+0-10 ms jitter on the agent's audio), 30 ms each way to the model; the model streams its
audio at twice real time.

Labels: ``should`` (a real interruption: a bridge ``clear`` within 1 s of the onset is wanted),
``backchannel`` (the answer must go on: no clear, no cancel, nothing lost) and ``should_not``
(anything else: echo only, room and handset sounds). After the first 326 cases (unchanged, so old
figures stay comparable) come kinds of real callers they missed: echo only under 20 s answers
(``echo_long-20/-15/-10``: the local server's answers last ~23 s, and the gate's misjudged echo
peaks and room tail show as ducks and underruns), an interruption 11.3-11.8 s into a 20 s answer
over -15 dB echo (``interrupt_late_echo-15``) and callers on a speakerphone in a reverberant room
(``interrupt_reverb``: RT60 0.4-0.8 s, -30 dBFS, no echo or -20/-15 dB), and backchannels from
the same speakerphone (``backchannel_reverb``). Figures per kind and overall: false
barge-ins, backchannels that cut (and how long the answer paused for the others, p50/p90/max), the
pause the caller hears per should-not sound kind (click, cough, door, knock, keyboard; p50/max),
missed interruptions three ways (no clear within 1 s; none within 3 s; *at the caller's ear*:
no clear at all, or the agent heard again for over 60 ms after it had stopped for the caller and
before the clear), interruptions cleared and then continued over (the bridge's false-trigger
recovery asked the model to continue: a call runs on while that watch has not decided), onset
-> the caller stops hearing the agent (the duck, measured at the
caller's ear) p50/p90, onset -> clear at Twilio (and cancel sent) p50/p90/max, answers heard
whole, cancels sent, server-side cancels, underruns, and the bridge's listening CPU (its
per-frame inbound path and the echo gate, in thread CPU time) per call-second. A call runs on
past its nominal end (up to ``OVERTIME_S``) while an answer paused by the caller still plays, so
a pause is not counted as audio lost. A case whose answer a false trigger had already cut when
the caller spoke is counted as "cut before onset", not as a miss.

"before" and "now" run in the same invocation. "before" is the bridge of commit 653910d exactly
as committed: ``git archive`` extracts its ``voicebridge`` package into a cache directory and it
is imported under another name (``vb_653910d``), so later changes to the tree cannot rewrite it.
"now" is the working tree's ``voicebridge``.

The bridge under test (the adapter)
-----------------------------------
:class:`Bridge` is all the harness knows of a bridge. Per 20 ms tick the harness calls::

    bridge.caller_frame(frame, now)   # one 160-byte mu-law frame from Twilio (after the network)
    bridge.mark(name, now)            # a mark Twilio echoed
    bridge.server_event(event, now)   # one Realtime server event (a dict)
    bridge.timers(now)                # the run thread's timers
    bridge.twilio_out(now)  -> [("media", frame) | ("mark", name) | ("clear", "")]
    bridge.model_out()      -> [client event dicts]   (appends carry the uplink the model hears)
    bridge.actions          -> [(now, "duck" | "duck_clear" | "release" | "clear")]  decisions, in order
    bridge.listening_cpu_s  -> CPU seconds spent in the bridge's listening path
    bridge.session_config   -> the session.update's ``session`` (the emulated server honours its
                               turn_detection and transcription)
    bridge.counters()       -> optional: the call's counters (which trigger ran the barge-in)

The default :class:`Bridge` builds a real ``MediaSession`` of a given package (its threads never
start) and drives the same sans-IO parts MediaSession wires (``InboundAudio``, ``BargeIn``,
``EchoGate``, ``ModelEvents``, ``Turns``...), replacing only the two thread-and-socket
parts: ``OutboundAudio`` by :class:`SimOutbound` (the same Framer, Pacer and PlaybackTracker,
stepped by the harness: one frame per 20 ms slot, a mark every ``mark_every_frames``, the duck
and the flush) and ``ModelLink`` by :class:`SimModelLink` (records what is sent). A new policy
that lives inside MediaSession's parts is measured with no change here; one that needs a new
method of OutboundAudio adds it to SimOutbound; a bridge that is not a MediaSession at all is
any object with the methods above (pass a factory to :func:`run_case`).

Usage: python benchmarks/bargein_cases.py [--json] [--only KIND] [--n N] [--seed S] [--vad auto|silero|energy]
       [--variant before|now|COMMIT] [--also COMMIT] [--no-greeting] [--question[-muted]] [--answer-s S (the kinds of
       the set's own length)] [--onset-late-s S] [--set NAME=JSON (a setting of "now")]
"""
from __future__ import annotations

import argparse
import base64
import bisect
import importlib
import importlib.util
import json
import logging
import math
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import machine, percentile, setting  # noqa: E402
from voicebridge.dev import tts  # noqa: E402
from voicebridge.dev.local.vad import ServerVad, VadConfig, make_vad  # noqa: E402
from voicebridge.dev.local.agent import GREETING as GREETING_PART, LONG_ANSWER  # noqa: E402
from voicebridge.dev.sim import corpus, room  # noqa: E402
from voicebridge.dev.sim.playout import PlayoutBuffer  # noqa: E402
from voicebridge.audio.mulaw import dbfs as BRIDGE_DBFS  # noqa: E402

BEFORE_COMMIT = "653910d"
TICK = 0.02
NET_S, JITTER_S, MODEL_NET_S = 0.020, 0.010, 0.030
MODEL_SPEED = 2.0  # the model streams audio this much faster than real time
TRANSCRIBE_S = (0.3, 0.5)  # commit -> the transcript's delta, and its completion
BED_WORDS_S = 1.0  # a turn with this much of a TV's or babble's speech (not masked by the caller) has its words
BED_WORDS = {  # (one per case, by its seed: about half with a word callers take the turn with, "but", "what", "how")
    "tv": ("and tonight the forecast for the weekend", "but what nobody expected was the ending",
           "the team scored twice in the final minutes", "how to make the perfect roast at home"),
    "room_babble": ("so then we went over to the", "yeah I know but he said it was fine",
                    "and the kids were out all day")}
DELTA_BYTES = 800  # 100 ms per audio delta
GREETING_S, ANSWER_AT, ANSWER_S = 2.0, 2.5, 3.6
ONSET_LATE_S = 0.0  # every caller's onset this much later into the answer (``--onset-late-s``)
LINE_DBFS: "float | None" = None  # the line's own noise under every call (``--line-dbfs``; None: digital silence)
CASE_S = ANSWER_AT + ANSWER_S + 0.9
OVERTIME_S = 3.5  # a call goes on past CASE_S (this much at most) while a paused answer still plays
DETECT_WITHIN_S = 1.0
BED_ON_FROM_START, BED_SWITCHED_ON = "bed on from the start", "bed switched on"  # (a bed kind's two halves)
SID = "MZbench"
GREETING_ON = True  # --no-greeting: the answer is the call's first audio (the echo gate has learned nothing)
QUESTION_ON = False  # --question: the caller asks a question before the answer, as in a real call
QUESTION_MUTED = False  # --question-muted: its control (the answer as late, the question silent)
QUESTION_SLOT_S, QUESTION_GAP_S = 2.2, 0.9
"""With ``--question``: the caller's question (a corpus question, 1.0-2.1 s) ends ``QUESTION_GAP_S``
before the answer starts (the model's VAD commits 0.5 s after it, and its answer follows); the
answer starts ``QUESTION_SLOT_S + QUESTION_GAP_S`` after the greeting's end plus 0.6 s (the caller
takes the turn), or after 0.5 s without a greeting."""
cpu_clock = time.thread_time  # CPU of this thread: a busy machine does not inflate it


class CpuMeter:
    """CPU seconds of the bridge's listening path, summed over timed windows (``c0 =
    cpu_clock(); ...; meter.add(cpu_clock() - c0)``) less each window's own timer overhead.

    That overhead (about one clock read) is measured where the windows are and while they run:
    after every ``SAMPLE_EVERY``-th window an empty window is timed (outside the measured time),
    and the mean of those samples is taken off every window. A figure measured once at start-up
    is taken in a tight loop with warm caches; the windows run among the harness's own work and
    the other processes of a busy machine, where a clock read costs more, and the difference
    would be counted as the bridge's."""

    SAMPLE_EVERY = 8

    def __init__(self) -> None:
        self.raw_s = 0.0
        self.windows = 0
        self._empty_s, self._samples = 0.0, 0

    def add(self, spent_s: float) -> None:
        """One window's CPU (not inside another window: this samples the overhead)."""
        self.raw_s += spent_s
        self.windows += 1
        if self.windows % self.SAMPLE_EVERY == 0 or not self._samples:
            c0 = cpu_clock()
            self._empty_s += cpu_clock() - c0
            self._samples += 1

    @property
    def timer_cost_s(self) -> float:
        return self._empty_s / self._samples if self._samples else 0.0

    @property
    def seconds(self) -> float:
        return self.raw_s - self.windows * self.timer_cost_s


GREETING = tts.load_prompt("greeting")[:int(GREETING_S * 8000)]
GREETING_FULL_S = len(tts.load_prompt("greeting")) / 8000  # the greeting's words span the whole prompt
ANSWER = tts.load_prompt("long_answer")
ANSWER_TEXT = LONG_ANSWER[1]  # its words (--answer-s repeats both)
EVENTS = ("click", "cough", "door", "knock", "keyboard")
BEDS = {"babble": "room_babble", "tv": "tv", "car": "car", "music": "music", "hum": "hum50"}


# ------------------------------------------------------------------------------ the labelled set
@dataclass(frozen=True)
class Case:
    kind: str
    label: str  # should, backchannel, should_not
    sound: str = ""  # a corpus clip name, or an event "knock:SEED"; "" = nothing
    gain_db: float = 0.0
    echo_db: float | None = None
    delay_ms: int = 120
    bed: str | None = None  # a room bed kind, playing the whole call (or from the onset)
    bed_dbfs: float = -40.0
    bed_from_onset: bool = False  # the bed starts at the onset (a radio switched on, a car passing)
    answer_at_s: float = 0.0  # where in the long answer the agent's audio starts
    seed: int = 0
    answer_s: float | None = None  # the answer's length (None: the set's, ``ANSWER_S`` or ``--answer-s``)
    onset_late_s: float = 0.0  # the caller's onset this much later into the answer
    reverb_rt60_s: float | None = None  # the caller on a speakerphone in a room of this RT60 (``speakerphone``)


def case_set(seed: int = 0, per_kind: int | None = None) -> list[Case]:
    """The labelled set (at least 300 cases); ``per_kind`` keeps the first N of every kind."""
    rng = random.Random(seed)
    out: list[Case] = []

    def add(kind: str, label: str, n: int, **fields: Any) -> None:
        for i in range(n):
            resolved = {k: (v(i) if callable(v) else v) for k, v in fields.items()}
            out.append(Case(kind, label, answer_at_s=rng.choice((0.0, 4.0, 8.0, 12.0)), seed=rng.randrange(1 << 30),
                            **resolved))

    delays = (40, 80, 120, 160, 200, 250)
    for echo_db in (-30, -25, -20, -15, -10):
        add(f"echo{echo_db}", "should_not", 8, echo_db=echo_db, delay_ms=lambda i: delays[i % 6])
    for kind in EVENTS:
        add(kind, "should_not", 8, sound=lambda i, k=kind: f"{k}:{i}", echo_db=lambda i: -20 if i % 2 else None,
            gain_db=lambda i: (-6, 0, 4, -3)[i % 4])
    for kind, bed in BEDS.items():
        levels = (-45, -40, -35, -30)
        add(kind, "should_not", 8, bed=bed if kind != "hum" else None, echo_db=lambda i: -20 if i % 4 >= 2 else None,
            bed_dbfs=lambda i: levels[i // 2], bed_from_onset=lambda i: i % 2 == 1)
        if kind == "hum":  # half 50 Hz, half 60 Hz mains
            for j in range(1, 9):
                out[-j] = Case(**{**asdict(out[-j]), "bed": "hum50" if j % 2 else "hum60"})
    backchannels = corpus.by_category("backchannel")
    add("backchannel", "backchannel", 40, sound=lambda i: backchannels[i % len(backchannels)].name,
        echo_db=lambda i: (None, -20, -30, -15)[i % 4], gain_db=lambda i: (0, -4, 3, -8)[i % 4])
    talk = corpus.by_category("interruption") + corpus.by_category("question")
    add("interrupt", "should", len(talk), sound=lambda i: talk[i].name, echo_db=lambda i: (None, -30, -20)[i % 3],
        gain_db=lambda i: (0, -6, 4)[i % 3])
    for category in ("whisper", "soft", "unvoiced"):
        clips = corpus.by_category(category)
        add(category, "should", len(clips), sound=lambda i, c=clips: c[i].name,
            echo_db=lambda i: (None, -20, -30)[i % 3])
    inter = corpus.by_category("interruption")
    add("interrupt_echo-15", "should", 40, sound=lambda i: inter[i % len(inter)].name, echo_db=-15,
        delay_ms=lambda i: delays[i % 6], gain_db=lambda i: (0, -6, 3, -3)[i % 4])
    add("interrupt_noise", "should", 20, sound=lambda i: inter[(i * 7) % len(inter)].name, echo_db=-20,
        bed=lambda i: ("room_babble", "car", "music", "tv")[i % 4], bed_dbfs=-40)
    _add_long_and_reverberant(add, inter, delays)
    if per_kind is not None:
        kept: Counter = Counter()
        out = [c for c in out if kept.update([c.kind]) or kept[c.kind] <= per_kind]
    return out


LONG_ANSWER_S = 20.0  # the long kinds' answers (the local server's answers through the example app: ~23 s)
LATE_ONSET_S = 10.0  # the late interruption's onset: 11.3-11.8 s into the answer (the gate has learned the line)
REVERB_RT60_S = (0.4, 0.6, 0.8)
REVERB_DBFS = -30.0  # a speakerphone caller's level (long-run RMS, as tests/test_reverberant_callers.py)
# that test's clips and rooms (not its two talk clips: the manifest labels them talk, not interrupt)
REVIEW_REVERB = (("soft_04_2", 0.8), ("question_01_0", 0.5), ("question_01_1", 0.6), ("interruption_02_1", 0.4),
                 ("soft_03_1", 0.4), ("question_00_0", 0.4))


def _add_long_and_reverberant(add: Callable[..., None], inter: list, delays: tuple[int, ...]) -> None:
    """The kinds added after the first 326 cases (appended, so the old cases keep their seeds):
    echo only under 20 s answers at -20/-15/-10 dB (the gate's misjudged echo peaks and room tail
    show as ducks and underruns), an interruption late into a 20 s answer over -15 dB echo (after
    the gate has heard the line's echo for ~11 s), and callers on a speakerphone in a reverberant
    room (RT60 0.4-0.8 s: the room's tail fills the word gaps, as a TV's does), and backchannels
from the same speakerphone (appended after those: the room's tail carries a "yeah" past the
minimum speech, review rv6)."""
    for echo_db in (-20, -15, -10):
        add(f"echo_long{echo_db}", "should_not", 8, echo_db=echo_db, delay_ms=lambda i: delays[i % 6],
            answer_s=LONG_ANSWER_S)
    add("interrupt_late_echo-15", "should", 12, sound=lambda i: inter[(i * 3 + 1) % len(inter)].name, echo_db=-15,
        delay_ms=lambda i: delays[i % 6], gain_db=lambda i: (0, -6, 3, -3)[i % 4], answer_s=LONG_ANSWER_S,
        onset_late_s=LATE_ONSET_S)
    clips = {cat: corpus.by_category(cat) for cat in ("interruption", "soft", "whisper")}
    crossed = [(cat, rt60, echo_db) for echo_db in (None, -20, -15) for rt60 in REVERB_RT60_S for cat in clips]
    reverb = [(clips[cat][(i * 5) % len(clips[cat])].name, rt60, echo_db)
              for i, (cat, rt60, echo_db) in enumerate(crossed)] + [(n, rt60, -20) for n, rt60 in REVIEW_REVERB]
    add("interrupt_reverb", "should", len(reverb), sound=lambda i: reverb[i][0], reverb_rt60_s=lambda i: reverb[i][1],
        echo_db=lambda i: reverb[i][2], delay_ms=lambda i: delays[i % 6])
    backchannels = corpus.by_category("backchannel")
    crossed_back = [(rt60, echo_db) for echo_db in (None, -20, -15) for rt60 in REVERB_RT60_S for _ in range(3)]
    add("backchannel_reverb", "backchannel", len(crossed_back),
        sound=lambda i: backchannels[(i * 5) % len(backchannels)].name,
        reverb_rt60_s=lambda i: crossed_back[i][0], echo_db=lambda i: crossed_back[i][1],
        delay_ms=lambda i: delays[i % 6])
    for category in ("whisper", "soft"):  # (outside check out1: the set had them at -20 and -30 dB only)
        quiet = corpus.by_category(category)
        add(f"{category}_echo-15", "should", len(quiet), sound=lambda i, c=quiet: c[i].name, echo_db=-15,
            delay_ms=lambda i: delays[i % 6])


def speakerphone(data: bytes, rt60_s: float, seed: int) -> bytes:
    """``data`` as a speakerphone across a room hears it: the direct path and the room's
    reflections and tail (``room.room_response``, RT60 ``rt60_s``, 400 ms), at ``REVERB_DBFS``."""
    wet = np.convolve(room.ulaw_to_float(data), room.room_response(seed, rt60_s=rt60_s, ms=400, direct=1.0))
    return room.float_to_ulaw(room.at_level(wet, REVERB_DBFS))


def caller_sound(case: Case) -> bytes:
    """The caller's own sound at the microphone (through the caller's room if it has one), gain applied."""
    if not case.sound:
        return b""
    name, _, seed = case.sound.partition(":")
    data = room.event(name, int(seed)) if name in room.EVENT_KINDS else corpus.load(name)
    return through_the_callers_room(case, data)


class Question(NamedTuple):
    """``--question``: the caller's question before the answer (silent, no words: its control)."""

    start: float  # on the caller's clock
    audio: bytes  # at the caller's microphone
    text: str
    said: tuple[float, float] = (0.0, 0.0)  # its words are said between these (the caller's clock)

    @property
    def end(self) -> float:
        return self.start + len(self.audio) / 8000

    def words(self, t0: float, t1: float) -> str:
        """Its words whose middle falls between ``t0`` and ``t1``, spread evenly over its speech
        (not over the clip's silences): a turn the model's VAD closed as the last word's end
        decayed under its threshold holds that word, as a transcriber hears it."""
        s0, s1 = self.said
        ws = self.text.split()
        if s1 <= s0:
            return ""
        def at(t: float) -> int:  # the first word whose middle is at or after t
            return max(0, min(len(ws), math.ceil(len(ws) * (t - s0) / (s1 - s0) - 0.5)))
        return " ".join(ws[at(t0):at(t1)])


def speech_span(data: bytes) -> tuple[float, float]:
    """Where a clip's speech is (s from its start): its first and last 20 ms frame within 30 dB
    of its loudest."""
    x = room.ulaw_to_float(data)
    n = len(x) // 160
    power = np.mean(x[:n * 160].reshape(n, 160) ** 2, axis=1)
    on = np.flatnonzero(10 * np.log10(power + 1e-12) >= 10 * np.log10(power.max() + 1e-12) - 30)
    return float(on[0]) * 0.02, float(on[-1] + 1) * 0.02


def question_of(case: Case) -> Question:
    """With ``--question``: when the caller's question starts, its sound at the microphone (the
    caller's room and gain, as their later sound) and its words. A question of the corpus other
    than the case's own clip, chosen by the case's seed (its own generator: every other draw of
    the call is the same as without the question)."""
    clips = [c for c in corpus.by_category("question") if c.name != case.sound]
    clip = clips[random.Random(case.seed ^ 0x51A7).randrange(len(clips))]
    start = ANSWER_AT - QUESTION_GAP_S - len(clip.audio()) / 8000
    if QUESTION_MUTED:
        return Question(start, b"", "")
    s0, s1 = speech_span(clip.audio())  # (the dry clip's: the room smears the words, it does not move them)
    return Question(start, through_the_callers_room(case, clip.audio()), clip.text, (start + s0, start + s1))


def through_the_callers_room(case: Case, data: bytes) -> bytes:
    """``data`` as the caller's microphone picks it up: their room (a speakerphone) and gain."""
    if case.reverb_rt60_s:
        data = speakerphone(data, case.reverb_rt60_s, case.seed % 97)
    if case.gain_db:
        data = room.float_to_ulaw(room.ulaw_to_float(data) * 10 ** (case.gain_db / 20))
    return data


# ------------------------------------------------------------------------------ the bridge side
def load_before(commit: str = BEFORE_COMMIT) -> ModuleType:
    """The ``voicebridge`` package of ``commit``, exactly as committed, imported as ``vb_<commit>``.
    Its extraction is kept by the commit's hash: a name that moves (``HEAD``, a branch) is never
    served an older commit's tree."""
    name = f"vb_{commit}"
    if name in sys.modules:
        return sys.modules[name]
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{commit}^{{commit}}"], check=True,
                         capture_output=True, text=True).stdout.strip()
    base = Path(tempfile.gettempdir()) / f"voicebridge-bench-{commit}-{sha[:12]}"
    if not (base / name / "__init__.py").exists():
        tmp = Path(tempfile.mkdtemp(prefix=base.name + ".", dir=base.parent))
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "voicebridge"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        (tmp / "voicebridge").rename(tmp / name)
        try:
            tmp.rename(base)
        except OSError:  # another run extracted it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
    sys.path.insert(0, str(base))
    return importlib.import_module(name)


# the modules the harness drives, by their flat names (before the layer packages) and where they live now
LAYERED = {"session": "call.session", "framing": "audio.framing", "pacing": "audio.pacing",
           "playback": "audio.playback", "twilio_protocol": "carrier.twilio.protocol",
           "realtime_protocol": "model.protocol", "audio": "audio.mulaw", "config": "config"}


OPTIONAL = {"unplayed": "audio.unplayed"}  # modules a later bridge has (the duck's clear)


def submodules(pkg: ModuleType) -> dict[str, ModuleType]:
    """The harness's modules of ``pkg``, whether ``pkg`` has the layer packages or is flat."""
    layered = importlib.util.find_spec(f"{pkg.__name__}.call") is not None
    mods = {n: importlib.import_module(f"{pkg.__name__}.{path if layered else n}") for n, path in LAYERED.items()}
    for n, path in OPTIONAL.items():
        if layered and importlib.util.find_spec(f"{pkg.__name__}.{path}") is not None:
            mods[n] = importlib.import_module(f"{pkg.__name__}.{path}")
    return mods


class SimOutbound:
    """OutboundAudio without its threads: the same Framer, Pacer and PlaybackTracker, stepped by
    :meth:`tick` (one frame per slot of the pacer, a mark every ``mark_every_frames`` and after an
    item's last frame), the duck (``pause``/``resume``, which refills the caller's buffer like
    the TX loop does; with ``duck_clear``, a clear at the duck and the unheard frames taken back
    by the bridge's own ``Unplayed``, to go first on the release) and the flush (``interrupt``: a
    clear, the generation bumped)."""

    def __init__(self, mods: dict[str, ModuleType], config: Any, echo: Any, actions: list, cpu: list,
                 stops_audio: bool = False) -> None:
        self._m = mods
        self._echo = echo
        self._actions = actions
        self._cpu = cpu
        self._mark_every = config.mark_every_frames
        self._pacer = mods["pacing"].Pacer(lead_frames=config.lead_frames,
                                           late_tolerance_s=config.late_tolerance_ms / 1000)
        self._playback = mods["playback"].PlaybackTracker()
        self._framer = mods["framing"].Framer()
        self._queue: deque = deque()  # (item_id, frame, level or None) or (item_id, None, None) = the item's end
        self._levels = getattr(mods["audio"], "levels", None)  # a bridge that levels a delta's frames when framed
        self._out: list = []
        self._paused_at: float | None = None
        self._resumed = False
        self._item: str | None = None
        self._unmarked = 0
        self.now = 0.0
        # (what the caller has not heard: a duck's clear takes it back; without the clear, a bridge
        # that has ``duck_stopped_audio`` still asks whether a clear was due)
        self._unplayed = mods["unplayed"].Unplayed() if stops_audio or getattr(config, "duck_clear", False) else None
        self._duck_clear = getattr(config, "duck_clear", False)
        self._duck_cleared = self._duck_stopped = False

    # the surface MediaSession's parts use
    def push(self, item_id: str, data: bytes) -> None:
        self._queue.extend(self._framed(item_id, self._framer.push(data)))

    def end(self, item_id: str) -> None:
        self._queue.extend(self._framed(item_id, self._framer.end()))
        self._queue.append((item_id, None, None))

    def _framed(self, item_id: str, frames: list[bytes]) -> "zip[tuple[str, bytes, float | None]]":
        """The queue's entries for ``frames``: levelled here (the echo gate's bookkeeping, timed)
        by a bridge that does it when framing, else when each is sent (``tick``)."""
        if self._levels is None or self._echo is None or not frames:
            return zip([item_id] * len(frames), frames, [None] * len(frames))
        c0 = cpu_clock()
        levels = self._levels(frames)
        self._cpu.add(cpu_clock() - c0)
        return zip([item_id] * len(frames), frames, levels)

    def play(self, item_id: str, data: bytes) -> None:
        if data:
            self.push(item_id, data)
        self.end(item_id)

    def pause(self, now: float) -> None:
        self._paused_at = now
        self._actions.append((now, "duck"))
        due = self._unplayed is not None and self._unplayed.worth_clearing(now)
        self._duck_stopped = self._duck_stopped or due  # (until a resume: as duck_cleared)
        if due and self._duck_clear:
            self._queue.extendleft(reversed(self._unplayed.take_back(now, self._playback)))
            self._out.append(("clear", ""))
            if self._echo is not None:
                self._echo.cleared(now)
            self._pacer.cleared(now)
            self._duck_cleared = True
            self._actions.append((now, "duck_clear"))  # not a barge-in: the answer may resume

    @property
    def duck_cleared(self) -> bool:
        return self._duck_cleared

    @property
    def duck_stopped_audio(self) -> bool:
        return self._duck_stopped

    def resume(self) -> None:
        self._duck_cleared = self._duck_stopped = False
        if self._paused_at is not None:
            self._resumed = True
            if self._unplayed is not None:
                self._unplayed.released(self.now)
        self._paused_at = None
        self._actions.append((self.now, "release"))

    def interrupt(self, clear: bool = True) -> int:
        flushed = sum(1 for _, f, _ in self._queue if f is not None)
        self._duck_cleared = self._duck_stopped = False
        self._queue.clear()
        self._framer.drop()
        self._paused_at = None
        self._playback.cleared()
        if self._unplayed is not None:
            self._unplayed.forget()
        if clear:
            self._out.append(("clear", ""))
            if self._echo is not None:
                self._echo.cleared(self.now)
        self._actions.append((self.now, "clear"))
        return flushed

    @property
    def audible(self) -> bool:
        return bool(self._queue) or self._playback.pending_marks > 0

    def mark_echoed(self, name: str, now: float) -> Any:
        return self._playback.echoed(name, now)

    def heard_ms(self, item_id: str, now: float) -> int:
        return self._playback.heard_ms(item_id, now)

    def played_out(self, item_id: str) -> bool:
        return self._playback.played_out(item_id)

    @property
    def pacer_stats(self) -> Any:
        return self._pacer.stats

    def release_stuck_duck(self, now: float, limit_s: float) -> bool:
        if self._paused_at is None or now - self._paused_at <= limit_s:
            return False
        self.resume()
        return True

    def forget_unechoed_marks(self) -> int:
        return 0 if self._queue else self._playback.forget_pending()

    def stop(self) -> None:
        pass

    def drain(self) -> None:
        pass

    # the harness's side: the TX loop, one step
    def tick(self, now: float) -> list[tuple[str, Any]]:
        self.now = now
        while self._queue and self._paused_at is None:
            entry = self._queue[0]
            item_id, frame, level = entry
            if frame is None:
                self._queue.popleft()
                self._playback.ended(item_id)
                if self._unplayed is not None:
                    self._unplayed.ended(entry, item_id, self._playback.sent_bytes(item_id))
                if self._unmarked:
                    self._out.append(("mark", self._playback.new_mark(item_id)))
                self._item, self._unmarked = None, 0
                continue
            if item_id != self._item:
                self._item, self._unmarked = item_id, 0
                self._pacer.follow_on(now)
            if self._resumed:
                self._pacer.resume(now)
                self._resumed = False
            if self._pacer.delay(now) > 1e-9:
                break
            self._queue.popleft()
            self._pacer.sent(now)
            c0 = cpu_clock()
            if self._echo is not None:
                self._echo.played(self._m["audio"].dbfs(frame) if level is None else level, now)
            self._cpu.add(cpu_clock() - c0)
            if self._unplayed is not None:
                position = self._playback.sent_bytes(item_id)
                self._unplayed.sent(entry, item_id, position, len(frame), now)
            self._playback.sent(item_id, len(frame), now)
            self._out.append(("media", frame))
            self._unmarked += 1
            if self._mark_every and self._unmarked >= self._mark_every:
                self._out.append(("mark", self._playback.new_mark(item_id)))
                self._unmarked = 0
        out, self._out = self._out, []
        return out


class SimModelLink:
    """ModelLink without a socket: always ready, records every client event sent."""

    def __init__(self, *args: Any) -> None:
        self.sent: list[str] = []  # parsed by the harness, outside the bridge's measured CPU
        self.ready, self.lost, self.last_event_at = True, False, 0.0

    def send(self, text: str) -> bool:
        self.sent.append(text)
        return True

    def __getattr__(self, name: str) -> Callable[..., None]:  # replace, lose, close...: nothing to do
        return lambda *a, **k: None


class Bridge:
    """A MediaSession of package ``pkg`` driven tick by tick (see the module docstring)."""

    def __init__(self, pkg: ModuleType, config: Any = None) -> None:
        m = self._m = submodules(pkg)
        self.config = config or m["config"].BridgeConfig()
        self.actions: list[tuple[float, str]] = []
        self._cpu = CpuMeter()
        parts: dict[str, Any] = {}

        def outbound(link: Any, *args: Any) -> SimOutbound:
            # (link, ctx, echo) since the call's context; (link, config, metrics, clock, log, echo) before
            cfg, echo = (args[0].config, args[1] if len(args) > 1 else None) if hasattr(args[0], "config") \
                else (args[0], args[4] if len(args) > 4 else None)
            parts["out"] = SimOutbound(m, cfg, echo, self.actions, self._cpu, stops_audio)
            return parts["out"]

        def model_link(*args: Any) -> SimModelLink:
            parts["model"] = SimModelLink()
            return parts["model"]

        session_mod = m["session"]
        stops_audio = hasattr(session_mod.OutboundAudio, "duck_stopped_audio")  # (a bridge that asks it)
        saved = session_mod.OutboundAudio, session_mod.ModelLink
        session_mod.OutboundAudio, session_mod.ModelLink = outbound, model_link
        try:
            self.session = session_mod.MediaSession(_NoSocket(), self.config, connect=None, clock=lambda: self.now)
        finally:
            session_mod.OutboundAudio, session_mod.ModelLink = saved
        self.now = 0.0
        self.session.stream_sid = SID
        self._out: SimOutbound = parts["out"]
        self._model: SimModelLink = parts["model"]
        self._tw = m["twilio_protocol"]
        # the run thread's handler of one carrier event (named for Twilio before the carrier seam)
        self._on_carrier = getattr(self.session, "_on_carrier", None) or self.session._on_twilio
        # Queueing and encoding the appends is not listening: the frame the path hands on is kept
        # and forwarded just after the timed window (nothing in between: the handler returns),
        # rather than timed by a window nested in it, whose own clock reads and bookkeeping
        # would count as the bridge's.
        inbound = self.session._inbound
        self._forward, self._handed_on = inbound._forward, []
        inbound._forward = lambda payload, now, kept=self._handed_on: kept.append((payload, now))

    @property
    def session_config(self) -> dict:
        """The ``session`` this bridge configures (its session.update)."""
        return json.loads(self._m["realtime_protocol"].session_update(self.config))["session"]

    @property
    def listening_cpu_s(self) -> float:
        """The inbound media path (metrics, echo gate, detector, what the model is sent) and the
        echo gate's bookkeeping of sent frames (their levels too, wherever the bridge computes
        them: per frame sent, or per delta when framed), without the appends' queueing and
        encoding."""
        return self._cpu.seconds

    def caller_frame(self, frame: bytes, now: float) -> None:
        self.now = now
        event = self._tw.Media(SID, frame, None, "inbound")  # made by the carrier's parser: not listening
        c0 = cpu_clock()
        self._on_carrier(event, now)
        self._cpu.add(cpu_clock() - c0)
        for payload, at in self._handed_on:
            self._forward(payload, at)
        self._handed_on.clear()

    def mark(self, name: str, now: float) -> None:
        self.now = now
        self._on_carrier(self._tw.Mark(SID, name), now)

    def server_event(self, event: dict, now: float) -> None:
        self.now = now
        self.session._model_events.handle(json.dumps(event), now)

    def timers(self, now: float) -> None:
        """What MediaSession's run thread does on its timer that concerns one answer."""
        self.now = now
        s = self.session
        s.barge_in.poll(now)
        s._inbound.flush(now)
        s.requests.poll(now)
        s.barge_in.release_stuck_duck(now)

    def twilio_out(self, now: float) -> list[tuple[str, Any]]:
        self.now = now
        return self._out.tick(now)

    @property
    def watching(self) -> bool:
        """A barge-in's false-trigger watch has not decided yet (continue the answer, or not)."""
        return self.session.barge_in._false_trigger.armed

    def counters(self) -> dict:
        """The call's counters (``voicebridge.call.metrics.COUNTERS``): barge_in_local, barge_in_server..."""
        return self.session._metrics.snapshot()

    def model_out(self) -> list[dict]:
        out, self._model.sent = self._model.sent, []
        return [json.loads(text) for text in out]


class _NoSocket:
    def send(self, data: str) -> None:
        pass

    def receive(self, timeout: float | None = None) -> None:
        return None

    def close(self, reason: int | None = None, message: str | None = None) -> None:
        pass


# ------------------------------------------------------------------------------ the model side
_MODELS: dict[str, Any] = {}


def _vad(config: VadConfig, kind: str) -> ServerVad:
    """A fresh detector; a neural model is loaded once per run and reset for every call."""
    if kind not in _MODELS:
        _MODELS[kind] = make_vad(VadConfig(), kind=kind).model
    model = _MODELS[kind]
    if model is not None:
        model.reset()
    return ServerVad(config, model=model)


class ModelServer:
    """The Realtime service as the bridge meets it: streams responses faster than real time, hears
    the uplink with the local server's VAD (server_vad semantics) and acts on it as OpenAI does."""

    def __init__(self, session: dict, vad_kind: str, transcribe: "Callable[[int, int], str] | None" = None) -> None:
        audio_in = session.get("audio", {}).get("input", {})
        td = audio_in.get("turn_detection") or {}
        self.td = td
        self.transcribe = transcribe if audio_in.get("transcription") else None
        self.pending: list[tuple[float, dict]] = []  # (due, event): transcripts come after the commit
        self.vad = _vad(VadConfig(threshold=td.get("threshold", 0.5), prefix_padding_ms=td.get("prefix_padding_ms", 300),
                                  silence_duration_ms=td.get("silence_duration_ms", 500)), vad_kind)
        self.out: list[dict] = []
        self.response: dict | None = None
        self.n = 0
        self.speech_started: list[float] = []
        self.cancelled_at: list[float] = []  # the server cancelled a response itself (interrupt_response)
        self.committed_at: list[float] = []  # turns the server committed (with create_response, answered)
        self.continues = 0
        self.created_at: list[float] = []  # the bridge asked for a response (an answer, or the cut one continued)
        self.uplink = bytearray()
        self.buffer_from_ms = 0  # where the uncommitted input buffer starts (uplink ms)
        self.client_commits = 0
        self.split_activations, self.split = 0, False  # client commits inside a VAD activation (this one: split)

    def start(self, kind: str | None, data: bytes, now: float, text: str = "") -> None:
        """A response of ``data`` whose words are ``text`` (sent as its transcript at once, as the
        service's transcript deltas run ahead of its audio)."""
        self.n += 1
        rid, iid = f"resp_{self.n}", f"item_{self.n}"
        self.response = {"id": rid, "item": iid, "data": data, "pos": 0, "t0": now, "text": text}
        meta = {"voicebridge": kind} if kind else {}
        self.out += [{"type": "response.created", "response": {"id": rid, "status": "in_progress", "metadata": meta}},
                     {"type": "response.output_item.added", "response_id": rid, "item": {"id": iid, "type": "message"}}]
        if text:
            self.out.append({"type": "response.output_audio_transcript.delta", "response_id": rid, "item_id": iid,
                             "delta": text})

    def tick(self, now: float) -> None:
        while self.pending and self.pending[0][0] <= now + 1e-9:
            self.out.append(self.pending.pop(0)[1])
        r = self.response
        if r is None:
            return
        due = min(len(r["data"]), int((now - r["t0"]) * 8000 * MODEL_SPEED) + DELTA_BYTES)
        while r["pos"] < due:
            chunk = r["data"][r["pos"]:r["pos"] + DELTA_BYTES]
            r["pos"] += len(chunk)
            self.out.append({"type": "response.output_audio.delta", "response_id": r["id"], "item_id": r["item"],
                             "delta": base64.b64encode(chunk).decode()})
        if r["pos"] >= len(r["data"]):
            self._finish("completed", None)

    def _finish(self, status: str, reason: str | None) -> None:
        r = self.response
        assert r is not None
        self.out.append({"type": "response.output_audio.done", "response_id": r["id"], "item_id": r["item"]})
        if r["text"]:
            self.out.append({"type": "response.output_audio_transcript.done", "response_id": r["id"],
                             "item_id": r["item"], "transcript": r["text"]})
        self.out.append({"type": "response.done", "response": {"id": r["id"], "status": status,
                                                                "status_details": {"reason": reason}}})
        self.response = None

    def client(self, event: dict, now: float) -> None:
        kind = event.get("type")
        if kind == "input_audio_buffer.append":
            data = base64.b64decode(event["audio"])
            self.uplink += data
            for edge in self.vad.push(data):
                self._edge(edge, now)
        elif kind == "response.cancel" and self.response is not None:
            self._finish("cancelled", "client_cancelled")
        elif kind == "response.create":
            self.continues += 1
            self.created_at.append(now)
        elif kind == "input_audio_buffer.commit":
            self._client_commit(now)

    def _client_commit(self, now: float) -> None:
        """The bridge committed the buffer itself: an item and its transcript, no response (as the
        service answers a client commit with server VAD on), or an error under 100 ms buffered."""
        end_ms = len(self.uplink) // 8
        if end_ms - self.buffer_from_ms < 100:
            self.out.append({"type": "error", "error": {"type": "invalid_request_error",
                                                        "code": "input_audio_buffer_commit_empty",
                                                        "message": "buffer too small"}})
            return
        self.client_commits += 1
        item, start_ms = f"item_c{self.client_commits}", self.buffer_from_ms
        self.buffer_from_ms = end_ms
        if self.vad.speaking:  # inside an activation: it goes on, and its speech_stopped names a new item
            self.split_activations += 1  # (the reference: "unless the client manually commits ... during VAD activation")
            self.split = True
        self.out.append({"type": "input_audio_buffer.committed", "item_id": item, "previous_item_id": None})
        self._transcript(item, start_ms, end_ms, now)

    def _transcript(self, item: str, start_ms: int, end_ms: int, now: float) -> None:
        if self.transcribe is None:
            return
        text = self.transcribe(start_ms, end_ms)
        base = {"item_id": item, "content_index": 0}
        words = text.split(" ")
        pieces = [" ".join(words[i:i + 2]) + (" " if i + 2 < len(words) else "") for i in range(0, len(words), 2)]
        step = (TRANSCRIBE_S[1] - TRANSCRIBE_S[0]) / (len(pieces) + 1)  # (streamed two words a delta, as the service does)
        self.pending += [(now + TRANSCRIBE_S[0] + k * step, {"type": "conversation.item.input_audio_transcription.delta",
                                                             **base, "delta": piece})
                         for k, piece in enumerate(pieces)]
        self.pending.append((now + TRANSCRIBE_S[1], {"type": "conversation.item.input_audio_transcription.completed",
                                                     **base, "transcript": text}))
        self.pending.sort(key=lambda p: p[0])

    def _edge(self, edge: Any, now: float) -> None:
        item = f"item_in{len(self.speech_started) + (edge.kind == 'start')}"
        if edge.kind != "start" and self.split:
            item, self.split = f"{item}_rest{self.split_activations}", False  # the rest after a client's commit
        if edge.kind == "start":
            self.speech_started.append(now)
            self.out.append({"type": "input_audio_buffer.speech_started", "audio_start_ms": edge.ms, "item_id": item})
            if self.td.get("interrupt_response", True) and self.response is not None:
                self.cancelled_at.append(now)
                self._finish("cancelled", "turn_detected")
        else:
            self.committed_at.append(now)
            # the item holds its prefix padding too (``audio_start_ms`` "includes prefix padding")
            start_ms = max(edge.ms - edge.speech_ms - self.td.get("silence_duration_ms", 500)
                           - self.td.get("prefix_padding_ms", 300), self.buffer_from_ms)
            self.buffer_from_ms = edge.ms
            self.out += [{"type": "input_audio_buffer.speech_stopped", "audio_end_ms": edge.ms, "item_id": item},
                         {"type": "input_audio_buffer.committed", "item_id": item, "previous_item_id": None}]
            self._transcript(item, start_ms, edge.ms, now)


# ------------------------------------------------------------------------------ one call
@dataclass
class Outcome:
    barged_in: bool  # a clear by the bridge, or the server cancelled the answer
    clear_ms: float | None  # onset -> the bridge's clear reaches Twilio
    cancel_ms: float | None  # onset -> the bridge sent response.cancel
    duck_ms: float | None  # onset -> the caller stopped hearing the agent
    cancels_sent: int
    server_cancels: int  # the server cancelled the answer itself (interrupt_response)
    server_speech: int  # speech_started during the answer
    server_turns: int  # turns the server committed in the whole call (with create_response, the model answers them)
    greeting_cut: bool  # the server cancelled the greeting itself (its VAD heard the greeting's echo)
    heard_full: bool
    lost_ms: float  # answer audio that never reached the caller's ear
    underruns: int
    ducks: int
    cut_before_onset: bool = False  # the answer was already cut (echo, noise) when the caller made the sound
    heard_again_ms: float = 0.0  # agent audio the caller heard after it had stopped for them, before the clear
    heard_twice_ms: float = 0.0  # of the answer, heard more than once (a duck's clear took back too much)
    skipped_ms: float = 0.0  # of the answer, never heard although a later part was (taken back too little)
    call_s: float = CASE_S  # the call's length (longer while a paused answer still played)
    paused_ms: float = 0.0  # how long the answer stopped at the caller's ear after the onset (gaps summed)
    continued: bool = False  # the bridge asked the model to continue the cut answer (its false-trigger recovery)
    words_answered: bool = False  # ... or, asked for the barge-in's words, had the model answer them
    source: str = ""  # what ran the bridge's barge-in: "local" (its detector), "server" (the model's VAD), ""
    actions: list = field(default_factory=list)
    stop_ms: float | None = None  # onset -> the last agent sample the caller heard (exact, not per tick)
    truncate_err_ms: float | None = None  # the truncate's audio_end_ms - the answer heard when the clear landed
    parts: dict | None = None  # where onset -> the caller stops hearing goes (``duck_parts``)
    asked_early_ms: float | None = None  # a response asked for this long before the caller's sound ended
    asked_after_ms: float | None = None  # ... or the first one after it, this long after it ended
    question_unheard: bool = False  # --question: the model's VAD committed no turn for the caller's question


def answer_of(case: Case) -> tuple[float, float, bytes, str]:
    """The case's answer length, its call's nominal length, and the long answer's audio and words
    it plays from (repeated, both alike, when the case's stretch runs past its end: a word's
    position by time is unchanged)."""
    answer_s = case.answer_s or ANSWER_S
    audio, text = ANSWER, ANSWER_TEXT
    if (case.answer_at_s + answer_s) * 8000 > len(audio):
        repeat = int((case.answer_at_s + answer_s) * 8000 / len(audio)) + 1
        audio, text = audio * repeat, " ".join([text] * repeat)
    return answer_s, ANSWER_AT + answer_s + 0.9, audio, text


def line_noise(n: int, seed: int) -> np.ndarray:
    """The line's own hiss at ``LINE_DBFS``: white noise through the phone band. A real line is
    never digitally silent (the set's default is; a quiet line lets the detector's threshold
    reach 8 dB lower, and the simulated VAD heard reverberant words differently: h21r)."""
    rng = np.random.default_rng(seed)
    hiss = np.convolve(rng.normal(0.0, 1.0, n), room.band_fir(), mode="same")
    return room.at_level(hiss, LINE_DBFS if LINE_DBFS is not None else -60.0)


def run_case(case: Case, make_bridge: Callable[[], Any], vad_kind: str = "auto") -> tuple[Outcome, float]:
    """One call; returns its outcome and the bridge's listening CPU seconds."""
    rng = random.Random(case.seed)
    bridge = make_bridge()
    answer_s, case_s, full_answer, full_text = answer_of(case)
    start = int(case.answer_at_s * 8000) // 160 * 160
    answer = distinct_frames(full_answer[start:start + int(answer_s * 8000)])
    sound = caller_sound(case)
    onset = ANSWER_AT + 0.3 + ONSET_LATE_S + case.onset_late_s + rng.uniform(1.0, 1.5)
    heard_by: list[tuple[float, int]] = []  # (caller's clock, bytes of the answer heard by then), per tick
    question = question_of(case) if QUESTION_ON else None
    server = ModelServer(bridge.session_config, vad_kind, _transcriber(case, onset, len(sound) / 8000, heard_by,
                                                                       question))
    echo = room.LoudspeakerEcho(case.echo_db, case.delay_ms, seed=case.seed % 97) if case.echo_db is not None else None
    own = np.zeros(int((case_s + OVERTIME_S) * 8000) + 160)
    bed = None
    if case.bed:
        bed = room.at_level(np.asarray(room.bed(case.bed, case.seed % 5)), case.bed_dbfs)
        bed = np.roll(bed, rng.randrange(len(bed)))[:len(own)]
        if len(bed) < len(own):  # a long call (--answer-s): the bed goes round again
            bed = np.resize(bed, len(own))
        if case.bed_from_onset:
            k = int(onset * 8000)
            bed[:k] = 0.0
            bed[k:k + 400] *= np.linspace(0.0, 1.0, 400)[:len(bed[k:k + 400])]  # 50 ms fade-in
    if sound:
        k = int(onset * 8000)
        x = room.ulaw_to_float(sound)[:len(own) - k]
        own[k:k + len(x)] = x
    if question is not None:
        k = int(question.start * 8000)
        x = room.ulaw_to_float(question.audio)
        own[k:k + len(x)] += x
    line = line_noise(len(own), case.seed) if LINE_DBFS is not None else None
    playout = PlayoutBuffer(0.0)
    stream = Stream(answer)
    to_caller: deque = deque()  # (arrival, kind, payload)
    to_bridge: deque = deque()  # (arrival, kind, payload)
    to_server: deque = deque()
    to_model_events: deque = deque()
    last_arrival = 0.0
    heard_gap_at: float | None = None
    agent_heard = 0
    t, i = 0.0, 0
    answer_started = False
    question_unheard = False
    cancel_times: list[float] = []
    truncates: list[tuple[float, int]] = []  # (when, audio_end_ms) of the answer's truncates
    mic_levels: list[tuple[float, float, float]] = []  # (frame start, the mic's level, the caller's own) from the onset
    while t < case_s - 1e-9 or (t < case_s + OVERTIME_S - 1e-9 and (
            bridge.watching  # (whether the model is asked to continue a cut answer is part of the outcome)
            or agent_heard < len(answer) - 160 and not any(a == "clear" for _, a in bridge.actions)
            and not server.cancelled_at)):
        # the model
        if i == 5 and GREETING_ON:
            server.start("greeting", GREETING, t, spoken(GREETING_PART[1], 0.0, GREETING_S, GREETING_FULL_S))
        if not answer_started and t >= ANSWER_AT - MODEL_NET_S:
            answer_started = True
            if question is not None and question.text and not any(c >= question.start for c in server.committed_at):
                # the model's VAD never committed the question (a speakerphone's, one over a TV): a real caller
                # would get no answer; the set plays it all the same, and counts the call (``question_unheard``).
                # What the model heard is taken as the question's turn, or the bridge's own commit of a later
                # "mm-hm" would carry the question's words, which take the turn
                question_unheard = True
                server.buffer_from_ms = max(server.buffer_from_ms, len(server.uplink) // 8)
            server.start(None, answer, t, spoken(full_text, case.answer_at_s, case.answer_at_s + answer_s,
                                                 len(full_answer) / 8000))
        while to_server and to_server[0][0] <= t + 1e-9:
            server.client(to_server.popleft()[1], t)
        server.tick(t)
        for ev in server.out:
            to_model_events.append((t + MODEL_NET_S, ev))
        server.out = []
        # the bridge
        while to_bridge and to_bridge[0][0] <= t + 1e-9:
            _, kind, payload = to_bridge.popleft()
            bridge.caller_frame(payload, t) if kind == "media" else bridge.mark(payload, t)
        while to_model_events and to_model_events[0][0] <= t + 1e-9:
            bridge.server_event(to_model_events.popleft()[1], t)
        bridge.timers(t)
        for kind, payload in bridge.twilio_out(t):
            last_arrival = max(last_arrival, t + NET_S + (rng.uniform(0, JITTER_S) if kind == "media" else 0))
            to_caller.append((last_arrival, kind, payload))
        for ev in bridge.model_out():
            to_server.append((t + MODEL_NET_S, ev))
            if ev.get("type") == "response.cancel":
                cancel_times.append(t)
            elif ev.get("type") == "conversation.item.truncate" and t >= ANSWER_AT:
                truncates.append((t, ev.get("audio_end_ms", 0)))
        # the caller
        while to_caller and to_caller[0][0] <= t + 1e-9:
            arrival, kind, payload = to_caller.popleft()
            if kind == "media":
                playout.media(payload, arrival)
                stream.media(payload, arrival >= ANSWER_AT - 0.05)
                continue
            before = playout.cleared_bytes
            for name in playout.mark(payload, arrival) if kind == "mark" else playout.clear(arrival):
                to_bridge.append((arrival + NET_S, "mark", name))
            stream.dropped(playout.cleared_bytes - before)
        played = playout.advance(t)
        for name in played.marks:
            to_bridge.append((t + NET_S, "mark", name))
        if t >= ANSWER_AT:
            agent_heard += played.agent_bytes
            heard_by.append((t, agent_heard))
        if heard_gap_at is None and t >= onset and played.agent_bytes < len(played.audio) and t > ANSWER_AT + 0.3:
            heard_gap_at = t
        mic = own[i * 160:(i + 1) * 160].copy()
        if echo is not None:
            heard = room.ulaw_to_float(played.audio)
            e = echo.process(heard)
            n = min(160, len(e))
            mic[:n] += e[:n]
        if bed is not None:
            mic += bed[i * 160:(i + 1) * 160]
        if line is not None:
            mic += line[i * 160:(i + 1) * 160]
        if sound and onset - 0.02 < t < onset + 0.5:
            mic_levels.append((t, _dbfs(mic), _dbfs(own[i * 160:(i + 1) * 160])))
        to_bridge.append((t + NET_S, "media", room.float_to_ulaw(mic)))
        i += 1
        t = round(i * TICK, 6)
    stream.dropped(playout.buffered_bytes)  # never played: the call ended first
    if question is not None and question.text:  # the question's own turn is the call's, not the answer's sounds'
        server.committed_at = [c for c in server.committed_at if not question.start <= c < ANSWER_AT]
    outcome = _outcome(case, bridge, server, onset, len(sound) / 8000, playout, heard_gap_at, len(answer),
                       agent_heard, cancel_times, t)
    outcome.heard_twice_ms, outcome.skipped_ms = stream.twice_and_skipped_ms()
    outcome.question_unheard = question_unheard
    if truncates:  # what the caller had heard of the answer when that decision's clear reached Twilio
        landing = truncates[0][0] + NET_S
        heard = next((b for at, b in reversed(heard_by) if at <= landing + 1e-9), 0)
        outcome.truncate_err_ms = round(truncates[0][1] - heard / 8, 1)
    if sound and outcome.duck_ms is not None:
        outcome.stop_ms, outcome.parts = duck_parts(sound, onset, playout, mic_levels, bridge.actions)
    return outcome, bridge.listening_cpu_s


def scan_call(job: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any], Outcome]:
    """One call of a scan (``beds_held.py``, ``sibilants.py``; a pool's worker): ``Case(**fields)``
    through the bridge of ``commit`` ("now": the working tree's), Silero as the model's VAD."""
    commit, fields = job
    logging.disable(logging.WARNING)
    import voicebridge
    pkg = voicebridge if commit == "now" else load_before(commit)
    outcome, _ = run_case(Case(**fields), lambda: Bridge(pkg), "silero")
    return commit, fields, outcome


def _dbfs(x: np.ndarray) -> float:
    """A frame's level as the bridge measures it (mu-law bytes in)."""
    return float(BRIDGE_DBFS(room.float_to_ulaw(x)))


def duck_parts(sound: bytes, onset: float, playout: PlayoutBuffer, mic_levels: list[tuple[float, float, float]],
               actions: list[tuple[float, str]]) -> tuple[float | None, dict | None]:
    """Where onset -> the caller stops hearing the agent goes, in ms: the clip's lead-in before its
    sound (its first sample at 2 % of its peak, the corpus's trim rule), the sound -> the end of
    the frame the bridge ducked on (the attack and the frame's own 20 ms), the bridge's reaction
    (that frame's arrival -> the duck), the network down (the duck -> the last sample heard) and
    the tick the harness's ``duck_ms`` adds (it is the end of the first silent 20 ms); with the
    levels of the mic's frames from the onset to the ducking frame (the mic: the caller, the echo,
    the room) and the first frame at -35 dBFS or more."""
    x = np.abs(room.ulaw_to_float(sound))
    sound_at = onset + int(np.argmax(x > x.max() * 0.02)) / 8000
    ducks = [t for t, a in actions if a in ("duck", "clear") and t >= onset - 0.02]
    if not ducks:
        return None, None
    duck_at = ducks[0]
    segs = [seg for seg in _answer_segments(playout, onset) if seg[1] >= duck_at]  # (a jitter gap before it is no stop)
    stop = next((end for (_, end), (nxt, _) in zip(segs, segs[1:]) if nxt - end > 0.005), None)
    if stop is None and segs:
        stop = segs[-1][1]
    if stop is None:
        return None, None
    frame_start = duck_at - NET_S  # the ducking frame's first sample (it arrives as it ends, at ``duck_at``)
    before = [(round(lv, 1), round(own, 1)) for t, lv, own in mic_levels if t < frame_start - 1e-6]
    loud = next((t for t, lv, _ in mic_levels if lv >= -35.0 and t + 0.02 > onset), None)
    return round((stop - onset) * 1000, 1), {
        "onset_s": onset,
        "lead_in": (sound_at - onset) * 1000,
        "attack_and_frame": (frame_start + 0.02 - sound_at) * 1000,
        "first_-35dBFS_frame_end": None if loud is None else (loud + 0.02 - onset) * 1000,
        "ducking_frame_end": (frame_start + 0.02 - onset) * 1000,
        "bridge": (duck_at - (frame_start + NET_S)) * 1000,
        "network_down": (stop - duck_at) * 1000,
        "frames_before_duck_mic_own_dbfs": before,
    }


def distinct_frames(audio: bytes) -> bytes:
    """``audio`` with every digital-silence frame told apart by the sign of its zeros (mu-law
    0xFF and 0x7F both decode to 0: not a sample changes), so that :class:`Stream` knows which
    frame of a pause the caller heard (an answer's pauses are runs of identical frames)."""
    out = bytearray(audio)
    for k in range(len(audio) // 160):
        if audio[k * 160:(k + 1) * 160] == b"\xff" * 160:
            for bit in range(11):
                if k >> bit & 1:
                    out[k * 160 + bit] = 0x7F
    return bytes(out)


class Stream:
    """Which bytes of the answer the caller heard, and how often: the media reaching Twilio in
    order, each payload found in the answer (the next frame, else the nearest equal one: a frame
    sent again), less what a clear dropped before it played (and what never played)."""

    def __init__(self, answer: bytes) -> None:
        self._answer = answer
        self._where: dict[bytes, list[int]] = {}
        for k in range(len(answer) // 160):
            self._where.setdefault(answer[k * 160:(k + 1) * 160], []).append(k)
        self._payloads: list[tuple[int, int]] = []  # (stream position, answer frame or -1)
        self._end = 0  # stream position of the end of what was received
        self._cuts: list[tuple[int, int]] = []  # stream ranges dropped unplayed
        self._next = 0

    def media(self, payload: bytes, of_the_answer: bool) -> None:
        k = -1
        if of_the_answer and len(payload) == 160:
            if self._answer[self._next * 160:(self._next + 1) * 160] == payload:
                k = self._next
            else:
                k = min(self._where.get(payload, []), key=lambda c: abs(c - self._next), default=-1)
            if k >= 0:
                self._next = k + 1
        self._payloads.append((self._end, k))
        self._end += len(payload)

    def dropped(self, nbytes: int) -> None:
        """The last ``nbytes`` received were dropped before they played (a clear, the call's end)."""
        if nbytes:
            self._cuts.append((self._end - nbytes, self._end))

    def twice_and_skipped_ms(self) -> tuple[float, float]:
        heard = np.zeros(len(self._answer), dtype=np.int32)
        for at, k in self._payloads:
            if k < 0:
                continue
            n = 160 - max((min(at + 160, b) - max(at, a) for a, b in self._cuts if a < at + 160 and b > at), default=0)
            heard[k * 160:k * 160 + n] += 1  # a cut drops a payload's tail (what had not played)
        played = np.nonzero(heard)[0]
        skipped = int(np.count_nonzero(heard[:played[-1]] == 0)) if len(played) else 0
        return round(float(np.maximum(heard - 1, 0).sum()) / 8, 1), round(skipped / 8, 1)


def spoken(part: str, s0: float, s1: float, total_s: float) -> str:
    """The words of ``part`` (spoken over ``total_s``) said between ``s0`` and ``s1`` s into it."""
    ws = part.split()
    return " ".join(ws[max(0, int(len(ws) * s0 / total_s)):max(0, int(len(ws) * s1 / total_s))])


def _room_words(parts: list[str], sentences: "tuple[str, ...]", seed: int, turn: tuple[float, float],
                bed_from: float, caller: "tuple[float, float] | None") -> list[str]:
    """``parts`` (the caller's words, or none) with a TV's or babble's sentence on each side of the
    caller's sound that holds ``BED_WORDS_S`` of the room unmasked, in time order: a real
    transcriber writes what it heard in the order it heard it ("yeah and tonight the forecast",
    "wait the team scored twice"), not the room's first. When neither side holds that much alone
    but both together do, the sentence goes on the side with more of the room. Whole sentences at
    every level: pessimistic (about half of them hold a word callers take the turn with)."""
    t0, t1 = turn
    start = max(t0, bed_from)
    if caller is None:
        return [sentences[seed % len(sentences)]] if t1 - start >= BED_WORDS_S else parts
    before = max(0.0, min(t1, caller[0]) - start)
    after = max(0.0, t1 - max(start, caller[1]))
    first = before >= BED_WORDS_S or (after < BED_WORDS_S <= before + after and before >= after)
    last = after >= BED_WORDS_S or (before < BED_WORDS_S <= before + after and after > before)
    return ([sentences[seed % len(sentences)]] if first else []) + parts + (
        [sentences[(seed + 1) % len(sentences)]] if last else [])


def _transcriber(case: Case, onset: float, sound_s: float, heard_by: "list[tuple[float, int]]",
                 question: "Question | None" = None) -> Callable[[int, int], str]:
    """What the model's transcription says of a committed turn spanning ``[start_ms, end_ms)`` of
    the uplink (one uplink ms is one ms of the caller's clock, less the network): the caller's
    words when their sound is in it (a corpus clip's text; nothing for a noise), with a TV's or
    babble's (``BED_WORDS``) before or after them, as the turn held ``BED_WORDS_S`` of the room
    the caller's sound does not mask (``_room_words``: a real transcriber writes down the room's
    voices too, in time order; pessimistic, every level), else the agent's
    own words it heard as echo: the greeting's by position, the answer's by what of it the
    caller's loudspeaker had played (``heard_by``: a duck's pause plays nothing, and a turn that
    runs on past the answer's end hears no more of it), else nothing."""
    text = corpus.clip(case.sound).text if case.sound and case.sound in _CLIP_NAMES else ""
    delay_s = case.delay_ms / 1000 + 2 * NET_S
    _, _, full_answer, full_text = answer_of(case)

    words = spoken

    def answer_s(t: float) -> float:
        """Seconds of the answer the caller had heard by ``t`` (caller's clock)."""
        i = bisect.bisect_right(heard_by, (t, float("inf")))
        return heard_by[i - 1][1] / 8000 if i else 0.0

    sentences = BED_WORDS.get(case.bed or "")
    bed_from = onset if case.bed_from_onset else 0.0

    def transcribe(start_ms: int, end_ms: int) -> str:
        t0, t1 = start_ms / 1000 - NET_S, end_ms / 1000 - NET_S
        caller = bool(case.sound) and t0 < onset + sound_s and t1 > onset
        parts = [text] if caller else []
        if sentences:  # a real transcriber writes down the TV's words too, in time order (the clip: the caller's)
            parts = _room_words(parts, sentences, case.seed, (t0, t1), bed_from, (onset, onset + sound_s) if caller else None)
        if question is not None and question.text and t0 < question.end and t1 > question.start:
            # (``--question``: the words of the caller's question the turn holds, before the answer and its
            # sounds: a turn the model's VAD closed at a pause has its first words, the buffer after it the rest)
            said = question.words(t0, t1)
            if said:
                parts.insert(0, said)
        if parts:
            return " ".join(p for p in parts if p)
        if case.echo_db is None:
            return ""
        heard0, heard1 = t0 - delay_s, t1 - delay_s
        if heard1 < ANSWER_AT:
            return words(GREETING_PART[1], heard0 - 0.1, min(heard1 - 0.1, GREETING_S), GREETING_FULL_S)
        played0, played1 = t0 - case.delay_ms / 1000, t1 - case.delay_ms / 1000  # when the echo left the loudspeaker
        return words(full_text, case.answer_at_s + answer_s(played0), case.answer_at_s + answer_s(played1),
                     len(full_answer) / 8000)
    return transcribe


_CLIP_NAMES = frozenset(c.name for c in corpus.clips())


def _outcome(case: Case, bridge: Any, server: ModelServer, onset: float, sound_s: float, playout: PlayoutBuffer,
             heard_gap_at: float | None, answer_bytes: int, agent_heard: int, cancel_times: list[float],
             call_s: float = CASE_S) -> Outcome:
    actions = [(round(t, 3), a) for t, a in bridge.actions if t >= ANSWER_AT - 0.1]
    clears = [t for t, a in actions if a == "clear"]
    cancels = [t for t in cancel_times if t >= ANSWER_AT - 0.1]
    server_cut = [t for t in server.cancelled_at if t >= ANSWER_AT - 0.1]
    timed = bool(case.sound)
    lost = max(0, answer_bytes - agent_heard)
    counters = bridge.counters() if hasattr(bridge, "counters") else {}
    source = "local" if counters.get("barge_in_local") else "server" if counters.get("barge_in_server") else ""
    return Outcome(
        barged_in=bool(clears or cancels or server_cut),
        clear_ms=round((clears[0] + NET_S - onset) * 1000, 1) if clears and timed else None,
        cancel_ms=round((cancels[0] - onset) * 1000, 1) if cancels and timed else None,
        duck_ms=round((heard_gap_at - onset) * 1000, 1) if heard_gap_at is not None and timed else None,
        cancels_sent=len(cancels), server_cancels=len(server_cut),
        server_speech=sum(1 for t in server.speech_started if t >= ANSWER_AT),
        server_turns=len(server.committed_at),
        greeting_cut=any(t < ANSWER_AT - 0.1 for t in server.cancelled_at), source=source,
        heard_full=not (clears or cancels or server_cut) and lost <= 160, lost_ms=lost / 8,
        underruns=underruns(playout, onset, sound_s), ducks=sum(1 for _, a in actions if a == "duck"),
        cut_before_onset=any(t < onset - 0.1 for t in clears + cancels + server_cut), actions=actions,
        heard_again_ms=round(heard_again(playout, onset, clears[0] + NET_S if clears else None,
                                         answer_of(case)[1] + OVERTIME_S) * 1000, 1),
        paused_ms=round(paused(playout, onset) * 1000, 1), call_s=call_s,
        # (asked on the bridge's side: the request may still be on its way)
        continued=bool(counters.get("false_barge_ins")), words_answered=bool(counters.get("false_trigger_answered")),
        asked_early_ms=asked_early_ms(server.created_at, onset, sound_s) if timed else None,
        asked_after_ms=asked_after_ms(server.created_at, onset, sound_s) if timed else None)


SPOKE_TAIL_S = 0.15
"""The end of a caller's clip that is no speech (its trim's pad, a fading tail)."""


def asked_early_ms(created_at: list[float], onset: float, sound_s: float) -> float | None:
    """How long before the caller's sound ended the bridge asked the model for a response (an
    answer to the first words of "wait, hold on, I need to check", or the cut answer continued):
    the reply plays over the caller's rest (found from outside, out2). None: not before it ended.
    (The request reaches the harness's server ``MODEL_NET_S`` after the bridge sent it.)"""
    end = onset + sound_s - SPOKE_TAIL_S
    early = [end - (t - MODEL_NET_S) for t in created_at if onset <= t - MODEL_NET_S < end]
    return round(max(early) * 1000, 1) if early else None


def asked_after_ms(created_at: list[float], onset: float, sound_s: float) -> float | None:
    """How long after the caller's sound ended the bridge first asked for a response (None: it
    asked before, or never): with the model's own latency, the wait for the reply."""
    end = onset + sound_s - SPOKE_TAIL_S
    asked = [t - MODEL_NET_S for t in created_at if t - MODEL_NET_S >= onset]
    return round((asked[0] - end) * 1000, 1) if asked and asked[0] >= end else None


def _answer_segments(playout: PlayoutBuffer, onset: float) -> list[tuple[float, float]]:
    return [seg for seg in playout.segments if seg[1] > max(onset, ANSWER_AT + NET_S)]


def heard_again(playout: PlayoutBuffer, onset: float, clear_at: float | None, end_s: float) -> float:
    """Seconds of the agent the caller heard after it had stopped for their sound (the first gap
    of over 40 ms after the onset: the duck) and before the clear reached Twilio (or the call's
    end without one). More than a frame or two of it is a miss at the caller's ear: the agent
    went on over them, however late the clear came (``end_s``: the call's latest end)."""
    segs = _answer_segments(playout, onset)
    stop = next((end for (_, end), (nxt, _) in zip(segs, segs[1:]) if nxt - end > 0.04), None)
    if stop is None:  # it never stopped: heard the whole way, unless a clear ended it
        return 0.0 if clear_at is not None else end_s
    return playout.heard_between(stop + 1e-3, clear_at if clear_at is not None else end_s)


def paused(playout: PlayoutBuffer, onset: float) -> float:
    """Seconds the answer stopped at the caller's ear from the onset on (its gaps summed; the
    pause a backchannel costs)."""
    segs = _answer_segments(playout, onset)
    return sum(max(0.0, nxt - end) for (_, end), (nxt, _) in zip(segs, segs[1:]) if nxt - end > 0.005)


def underruns(playout: PlayoutBuffer, onset: float, sound_s: float) -> int:
    """Gaps in the answer at the caller that are not a yield to the caller's own sound."""
    segments = [seg for seg in playout.segments if seg[1] > ANSWER_AT + NET_S]
    gaps = 0
    for (_, end), (nxt, _) in zip(segments, segments[1:]):
        if nxt - end > 0.005 and not (onset - 0.02 <= end <= onset + sound_s + 0.1):
            gaps += 1
    return gaps


# ------------------------------------------------------------------------------ the report
def caught(out: Outcome) -> bool:
    """A wanted barge-in: the bridge's clear reached Twilio within ``DETECT_WITHIN_S`` of the onset
    (a case whose answer a false trigger had already cut is neither caught nor missed: it is
    counted as ``cut before onset``, and that false trigger is what to fix)."""
    return out.clear_ms is not None and 0 <= out.clear_ms <= DETECT_WITHIN_S * 1000


def ear_missed(out: Outcome) -> bool:
    """A miss at the caller's ear: no clear at all, or the agent's audio heard again (over 60 ms)
    after it had stopped for the caller and before the clear."""
    return out.clear_ms is None or out.heard_again_ms > 60


def _pcts(values: list[float], *ps: int) -> list[float | None]:
    return [round(percentile(values, p), 1) if values else None for p in ps]


def summarize(results: list[tuple[Case, Outcome]], cpu_s: float) -> dict:
    by_kind: dict[str, dict] = {}
    for case, out in results:
        row = by_kind.setdefault(case.kind, Counter(cases=0))
        row["cases"] += 1
        if case.label == "should":
            row["caught" if caught(out) else "cut before onset" if out.cut_before_onset else "missed"] += 1
            row["missed at the ear"] += ear_missed(out) and not out.cut_before_onset
        elif case.label == "backchannel":
            row["cut" if not out.heard_full else "resumed whole"] += 1
        else:
            row["false" if out.barged_in else "ok"] += 1
            if out.barged_in:
                row[f"false by {out.source or 'server cancel only'}"] += 1
            if case.bed is not None:  # a room's bed on from the call's start, or switched on at the onset
                start = BED_SWITCHED_ON if case.bed_from_onset else BED_ON_FROM_START
                row[start] += 1
                row[f"false, {start}"] += out.barged_in
        row["server speech_started"] += out.server_speech
        row["server cancels"] += out.server_cancels
        row["server turns"] += out.server_turns
        row["cancels sent"] += out.cancels_sent
        row["underruns"] += out.underruns
        row["ducks"] += out.ducks
        row["clears"] += any(a == "clear" for _, a in out.actions)
        row["continued"] += out.continued
        row["asked while the caller spoke"] += out.asked_early_ms is not None
        row["words answered"] += out.words_answered
    for kind, row in by_kind.items():  # onset -> the caller stops hearing the agent, per kind of caller
        stops = [o.stop_ms for c, o in results if c.kind == kind and c.label == "should" and o.stop_ms is not None]
        if stops:
            row["stop_ms_exact_p50_p90"] = _pcts(stops, 50, 90)
    should = [o for c, o in results if c.label == "should"]
    back = [o for c, o in results if c.label == "backchannel"]
    quiet = [o for c, o in results if c.label == "should_not"]
    over15 = [o for c, o in results if c.kind == "interrupt_echo-15"]
    long_echo = [(c, o) for c, o in results if c.kind.startswith("echo_long")]
    sounded = [o for c, o in results if c.sound and c.label != "should_not"]

    def pct(n: int, d: int) -> float | None:
        return round(100 * n / d, 1) if d else None

    return {
        "cases": len(results), "should": len(should), "backchannel": len(back), "should_not": len(quiet),
        "false_barge_in_pct": pct(sum(o.barged_in for o in quiet), len(quiet)),
        "false_by_local_detector_model_vad_words_or_server_cancel": [  # (the third: neither the detector nor the
            sum(o.barged_in and o.source == "local" for o in quiet),  # model's start ran it: a held utterance's or a
            sum(o.barged_in and o.source == "server" for o in quiet),  # turn's words, or the server cancelling itself)
            sum(o.barged_in and not o.source for o in quiet)],
        "backchannels_cut_pct": pct(sum(not o.heard_full for o in back), len(back)),
        "backchannel_audio_lost_ms_max": max((o.lost_ms for o in back), default=None),
        "answer_heard_twice_ms_total_max": [round(sum(o.heard_twice_ms for _, o in results), 1),
                                            max((o.heard_twice_ms for _, o in results), default=None)],
        "answer_skipped_ms_total_max": [round(sum(o.skipped_ms for _, o in results), 1),
                                        max((o.skipped_ms for _, o in results), default=None)],
        "ducks_duck_clears": [sum(o.ducks for _, o in results),
                              sum(1 for _, o in results for _, a in o.actions if a == "duck_clear")],
        # a real interruption the bridge confirmed, then took for a false trigger and asked the model
        # to continue over (the agent talks on over "stop"): a miss the clear alone does not show
        "continued_should_backchannel_should_not": [sum(o.continued for o in should), sum(o.continued for o in back),
                                                    sum(o.continued for o in quiet)],
        # the same watch, asked for the words, had the model answer them (right for a real one;
        # for a backchannel or a should-not sound the model answers what it heard instead of going on)
        "words_answered_should_backchannel_should_not": [sum(o.words_answered for o in should),
                                                         sum(o.words_answered for o in back),
                                                         sum(o.words_answered for o in quiet)],
        # a response asked for before the caller's sound ended (its reply plays over their rest: out2),
        # of the real interruptions, with how early (p50, p90, max ms)
        "asked_while_caller_spoke_should_n_p50_p90_max": [
            sum(o.asked_early_ms is not None for o in should),
            *_pcts([o.asked_early_ms for o in should if o.asked_early_ms is not None], 50, 90, 100)],
        # ... or asked for after it ended (p50, p90 ms): the wait for the reply, the model's own apart
        "asked_after_caller_spoke_should_p50_p90": _pcts([o.asked_after_ms for o in should
                                                          if o.asked_after_ms is not None], 50, 90),
        "missed_pct": pct(sum(not caught(o) and not o.cut_before_onset for o in should), len(should)),
        "should_cut_before_onset": sum(o.cut_before_onset for o in should),
        "missed_within_3s_pct": pct(sum(not (o.clear_ms is not None and o.clear_ms <= 3000) and not o.cut_before_onset
                                        for o in should), len(should)),
        "missed_at_the_ear_pct": pct(sum(ear_missed(o) and not o.cut_before_onset for o in should), len(should)),
        "missed_whisper_soft_unvoiced_1s_ear": [
            f"{sum(not caught(o) for c, o in results if c.kind == k)}/"
            f"{sum(ear_missed(o) for c, o in results if c.kind == k)} of {sum(1 for c, _ in results if c.kind == k)}"
            for k in ("whisper", "soft", "unvoiced")],
        "backchannel_paused_ms_p50_p90_max": _pcts([o.paused_ms for o in back if o.heard_full], 50, 90, 100),
        "should_not_sound_paused_ms_p50_max": {
            kind: _pcts([o.paused_ms for c, o in results if c.kind == kind and o.heard_full], 50, 100)
            for kind in EVENTS if any(c.kind == kind for c, _ in results)},
        "duck_ms_p50_p90": _pcts([o.duck_ms for o in sounded if o.duck_ms is not None], 50, 90),
        "truncates_err_ms_p10_p50_p90_n": _pcts(truncated := [o.truncate_err_ms for _, o in results
                                                          if o.truncate_err_ms is not None], 10, 50, 90) + [len(truncated)],
        "stop_ms_exact_p50_p90": _pcts([o.stop_ms for o in sounded if o.stop_ms is not None], 50, 90),
        "duck_parts_ms_p50_p90": {
            k: _pcts([o.parts[k] for o in sounded if o.parts and o.parts[k] is not None], 50, 90)
            for k in ("lead_in", "attack_and_frame", "first_-35dBFS_frame_end", "ducking_frame_end", "bridge",
                      "network_down")},
        "duck_frames_before_p50_p90_of_their_peak_dbfs_mic_own": [
            _pcts([max(m for m, _ in o.parts["frames_before_duck_mic_own_dbfs"]) for o in sounded
                   if o.parts and o.parts["frames_before_duck_mic_own_dbfs"]], 50, 90),
            _pcts([max(w for _, w in o.parts["frames_before_duck_mic_own_dbfs"]) for o in sounded
                   if o.parts and o.parts["frames_before_duck_mic_own_dbfs"]], 50, 90)],
        "clear_ms_p50_p90_max": _pcts([o.clear_ms for o in should if caught(o)], 50, 90, 100),
        "clear_ms_over_-15dB_echo_p50_p90_max": _pcts([o.clear_ms for o in over15 if caught(o)], 50, 90, 100),
        # (the two above count the clears within DETECT_WITHIN_S only: every clear, however late)
        "clear_ms_every_p50_p90_max": _pcts([o.clear_ms for o in should if o.clear_ms is not None], 50, 90, 100),
        "clear_ms_every_over_-15dB_echo_p50_p90_max": _pcts([o.clear_ms for o in over15 if o.clear_ms is not None],
                                                            50, 90, 100),
        "cancel_ms_p50_p90_max": _pcts([o.cancel_ms for o in should if o.cancel_ms is not None], 50, 90, 100),
        "answers_heard_whole_pct": {
            "should_not": pct(sum(o.heard_full for o in quiet), len(quiet)),
            "backchannel": pct(sum(o.heard_full for o in back), len(back))},
        "echo_-20_-15dB_clears_cancels_whole": [
            sum(1 for c, o in results if c.kind in ("echo-20", "echo-15") and any(a == "clear" for _, a in o.actions)),
            sum(o.cancels_sent + o.server_cancels for c, o in results if c.kind in ("echo-20", "echo-15")),
            f"{sum(o.heard_full for c, o in results if c.kind in ('echo-20', 'echo-15'))}/"
            f"{sum(1 for c in results if c[0].kind in ('echo-20', 'echo-15'))}"],
        "echo_long_20s_answers_ducks_underruns_false": [sum(o.ducks for _, o in long_echo),
                                                        sum(o.underruns for _, o in long_echo),
                                                        sum(o.barged_in for _, o in long_echo)],
        "missed_late_reverb_1s_ear": [
            f"{sum(not caught(o) for c, o in results if c.kind == k)}/"
            f"{sum(ear_missed(o) for c, o in results if c.kind == k)} of {sum(1 for c, _ in results if c.kind == k)}"
            for k in ("interrupt_late_echo-15", "interrupt_reverb")],
        "cancels_sent": sum(o.cancels_sent for _, o in results),
        "server_cancels": sum(o.server_cancels for _, o in results),
        "server_turns_should_not": sum(o.server_turns for c, o in results if c.label == "should_not"),
        "greetings_cut_by_server": sum(o.greeting_cut for _, o in results),
        "underruns": sum(o.underruns for _, o in results),
        "listening_cpu_ms_per_call_second": round(cpu_s * 1000 / sum(o.call_s for _, o in results), 3)
        if results else None,
        "by_kind": {kind: dict(row) for kind, row in by_kind.items()},
        **({"questions_unheard_by_kind": dict(Counter(c.kind for c, o in results if o.question_unheard))}
           if QUESTION_ON and not QUESTION_MUTED else {}),
    }


def variants(vad_kind: str, settings: dict[str, Any] | None = None,
             also: "tuple[str, ...]" = ()) -> dict[str, Callable[[], Any]]:
    """The bridges to compare: the code of ``BEFORE_COMMIT``, of each commit in ``also`` and the
    working tree, all at defaults (``settings`` changes the working tree's: the trade of a
    setting, measured)."""
    before = load_before()
    now = importlib.import_module("voicebridge")
    config = now.BridgeConfig(**settings) if settings else None
    chosen: dict[str, Callable[[], Any]] = {"before": lambda: Bridge(before)}
    for commit in also:
        chosen[commit] = lambda pkg=load_before(commit): Bridge(pkg)
    chosen["now"] = lambda: Bridge(now, config)
    return chosen


def main() -> int:
    global GREETING_ON, ANSWER_S, CASE_S, ANSWER, ANSWER_TEXT, ONSET_LATE_S, LINE_DBFS, QUESTION_ON, ANSWER_AT, \
        QUESTION_MUTED
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", help="run only the cases of this kind (e.g. echo-20, music, backchannel, whisper)")
    ap.add_argument("--n", type=int, help="at most N cases of every kind (a quick run)")
    ap.add_argument("--seed", type=int, default=0, help="the set's seed (answer offsets, onsets, jitter)")
    ap.add_argument("--vad", default="auto", choices=("auto", "silero", "energy"), help="the model's VAD")
    ap.add_argument("--variant", action="append", help="run only this variant (before, now); repeatable")
    ap.add_argument("--also", action="append", default=[], metavar="COMMIT",
                    help="also run the bridge of this commit, as a column between before and now; repeatable")
    ap.add_argument("--no-greeting", action="store_true",
                    help="no greeting: the answer is the call's first audio (as in the example app)")
    ap.add_argument("--answer-s", type=float, metavar="S",
                    help=f"the answer lasts S seconds (default {ANSWER_S}; the long answer repeated; the kinds with "
                         "their own length, echo_long-K and interrupt_late_echo-15, keep it): long calls, "
                         "where the echo path's correlation is amortised (read listening_cpu_ms_per_call_second)")
    ap.add_argument("--onset-late-s", type=float, default=0.0, metavar="S",
                    help="every caller's onset S seconds later into the answer (with --answer-s: an interruption "
                         "after the echo gate has heard the line's echo for a while; the set's "
                         "interrupt_late_echo-15 has it built in)")
    ap.add_argument("--line-dbfs", type=float, metavar="DBFS",
                    help="the line's own noise under every call at DBFS (e.g. -60; default: digital silence, "
                         "as the set was built): a real line's hiss")
    ap.add_argument("--question", action="store_true",
                    help="the caller asks a question before the answer (a corpus question, through the caller's "
                         "room), as in a real call: the bridge hears the caller's voice before the agent's")
    ap.add_argument("--question-muted", action="store_true",
                    help="--question's control: the answer as late, the question silent (what the later answer "
                         "changes, told from what the question does)")
    ap.add_argument("--set", action="append", type=setting, default=[], metavar="NAME=JSON",
                    help="a BridgeConfig setting of 'now' (e.g. barge_in_min_speech_ms=600); repeatable")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # the bridges' per-call log lines
    GREETING_ON = not args.no_greeting
    QUESTION_ON, QUESTION_MUTED = args.question or args.question_muted, args.question_muted
    if QUESTION_ON:
        ANSWER_AT = (GREETING_S + 0.6 if GREETING_ON else 0.5) + QUESTION_SLOT_S + QUESTION_GAP_S
        CASE_S = ANSWER_AT + ANSWER_S + 0.9
    ONSET_LATE_S = args.onset_late_s
    LINE_DBFS = args.line_dbfs
    if args.answer_s:
        ANSWER_S = args.answer_s
        CASE_S = ANSWER_AT + ANSWER_S + 0.9
        repeat = int((12.0 + ANSWER_S) * 8000 / len(ANSWER)) + 1  # (answers start up to 12 s in)
        ANSWER, ANSWER_TEXT = ANSWER * repeat, " ".join([ANSWER_TEXT] * repeat)
    cases = [c for c in case_set(args.seed, args.n) if not args.only or c.kind == args.only]
    vad_name = make_vad(VadConfig(), kind=args.vad).kind
    report: dict = {"machine": machine(), "cases": len(cases), "model_vad": vad_name, "greeting": GREETING_ON,
                    "question": QUESTION_ON, "line_dbfs": LINE_DBFS,
                    "net_ms": {"caller": NET_S * 1000, "model": MODEL_NET_S * 1000}}
    started = time.monotonic()
    chosen = {name: make for name, make in variants(args.vad, dict(args.set), tuple(args.also)).items() if not args.variant or name in args.variant}
    runs: dict[str, tuple[list, list]] = {name: ([], [0.0]) for name in chosen}
    for name, make in chosen.items():  # warm-up: first-use tables and imports are not per-call costs
        run_case(cases[0], make, args.vad)
    for case in cases:  # interleaved, so a busy moment of the machine costs every variant alike
        for name, make in chosen.items():
            outcome, spent = run_case(case, make, args.vad)
            runs[name][0].append((case, outcome))
            runs[name][1][0] += spent
    for name, (results, cpu) in runs.items():
        report[name] = summarize(results, cpu[0])
        report[f"{name}_misjudged"] = [
            {"kind": c.kind, "sound": c.sound, "echo_db": c.echo_db, "bed": c.bed, "seed": c.seed,
             "clear_ms": o.clear_ms, "server_cancels": o.server_cancels, "lost_ms": o.lost_ms,
             "heard_again_ms": o.heard_again_ms, "paused_ms": o.paused_ms, "heard_twice_ms": o.heard_twice_ms,
             "skipped_ms": o.skipped_ms, "continued": o.continued, "actions": o.actions}
            for c, o in results if (c.label == "should" and (not caught(o) or ear_missed(o) or o.continued))
            or (c.label != "should" and not o.heard_full)]
    report["run_seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps(report))
        return 0
    for key, value in report.items():
        if key.endswith("_misjudged"):
            print(f"{key}: {len(value)} cases (--json lists them)")
        elif isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                if isinstance(v, dict):
                    print(f"  {k}:")
                    for kk, vv in v.items():
                        print(f"    {kk}: {vv}")
                else:
                    print(f"  {k}: {v}")
        else:
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
