"""Does a waveform echo canceller hear the caller's onset over the agent's echo sooner than a level test?

The barge-in set's calls (``benchmarks/bargein_cases.case_set``: the same cases, onsets, answers,
echo paths and gains) are rebuilt open loop: the agent's greeting and answer play on (no duck),
the caller's clip starts at its labelled onset, and the microphone is the caller's own sound
plus :class:`~voicebridge.dev.sim.room.LoudspeakerEcho` of what the caller heard (loudspeaker
saturation, a room, the phone band, the case's 40-250 ms delay), mu-law coded as Twilio sends it.
Cases with a room bed are left out (what is measured is echo, not the room).

The canceller runs frame by frame as the bridge would: on each 20 ms tick its reference is the
mu-law frame the TX loop sends on that tick, its microphone the caller frame that arrives on it
(the caller's ``[t, t+20 ms)`` arrives at ``t+40 ms``: 20 ms of the frame, 20 ms up; the agent's
frame reaches the caller's loudspeaker 20-30 ms after it is sent). So the echo lags its reference
by the case's delay + 60-70 ms. Cancellers:

* ``aec3``: WebRTC AEC3 through ``livekit.rtc.AudioProcessingModule(echo_cancellation=True)``
  (10 ms frames at 8 kHz; its own delay estimator; ``aec3_delay`` also gets
  ``set_stream_delay_ms`` with the true bulk delay, as if the echo gate had told it; ``aec3_16k``
  runs it at 16 kHz, the frames resampled in and out, which adds 4 ms);
* ``speex``: speexdsp's MDF canceller with its residual-echo preprocessor, through ``pyaec``
  (a wheel with speexdsp inside), 20 ms frames; it has no delay estimator, so its reference is
  delayed by the true bulk delay less 20 ms and the filter is 128 ms long (as if the echo gate's
  delay estimate were exact); ``speex_linear`` the same without the preprocessor (the adaptive
  filter's output alone); ``speex_512ms`` with the preprocessor, no delay given, a 512 ms filter
  spanning every delay of the set.

Figures (per canceller): ERLE on echo-only frames (agent audible, no caller sound, echo over
-60 dBFS) by time since the call's first agent audio (convergence; with ``--no-greeting`` the
answer is the call's first audio); the residual level of echo-only answer frames against the
caller's first frames; and the onset a level threshold on the residual would find: the first
frame at or over a threshold set just over the loudest echo-only answer frame (all of the answer,
and from 1 s into it; one threshold for the set, and one per echo level: what a threshold taken
from the line's measured echo loss could do), as ms from the onset to the end of that frame (the bridge
ducks on the tick it arrives; add 20 ms for the caller's last sample heard). ``raw`` is the
same rule on the microphone itself (a level test, no canceller). CPU: thread CPU of the
canceller's calls (``time.thread_time``) and the process's (``time.process_time``, in case the
binding works on a thread of its own), per call-second.

``--in-bridge NAME`` instead runs the working tree's bridge closed loop on the same cases
(``bargein_cases.run_case``: duck, gate, detector, the model's VAD) twice, as it is and with the
canceller in front of its listening path (:class:`AecBridge`: each caller frame replaced by the
residual, the reference what the bridge sent to Twilio on each tick), and prints the bridge's own
figures for both: onset -> the caller's last sample heard and the ducking frame's end per group,
false barge-ins, backchannels cut, misses at the ear, underruns, CPU.

Needs the ``aec`` extra (``pip install -e '.[aec]'``: livekit, pyaec) and numpy.

Usage: python benchmarks/aec_onset.py [--json] [--n N] [--seed S] [--no-greeting]
       [--only aec3,aec3_delay,aec3_16k,speex,speex_linear,speex_512ms] [--drive D] [--in-bridge aec3|speex|speex_linear|speex_512ms]
"""
from __future__ import annotations

import argparse
import ctypes
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bargein_cases as bc  # noqa: E402
from benchmarks._common import machine, percentile  # noqa: E402
from voicebridge.dev.sim import room  # noqa: E402

FRAME = 160
RATE = 8000
SEND_TO_EAR_S = 0.020  # the agent's frame: sent -> the caller's loudspeaker (+0-10 ms jitter, per call here)
EAR_TO_BRIDGE_FRAMES = 2  # the caller's frame [t, t+20 ms) is processed on the tick t+40 ms
GREETING_AT = 0.1  # the greeting's first frame is sent
DRIVE = 3.0  # LoudspeakerEcho's drive (its default); --drive 0.3 is a nearly linear loudspeaker
ACTIVE_DBFS = -60.0  # an echo frame quieter than this carries no speech worth cancelling


def _need(module: str) -> None:
    raise SystemExit(f"benchmarks/aec_onset.py needs {module}: pip install -e '.[aec]' (livekit, pyaec)")


# ------------------------------------------------------------------------------ the cancellers
class Aec3:
    """WebRTC AEC3 (livekit's APM) on 10 ms halves of each 20 ms frame."""

    rate = RATE

    def __init__(self, delay_ms: int | None) -> None:
        try:
            from livekit import rtc
        except ImportError:
            _need("livekit")
        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(echo_cancellation=True)
        self._delay_ms = delay_ms

    def tick(self, ref: np.ndarray, mic: np.ndarray) -> np.ndarray:
        rtc, out, n = self._rtc, [], self.rate // 100
        ref, mic = self._to_rate(ref, mic)
        for h in (slice(0, n), slice(n, 2 * n)):
            self._apm.process_reverse_stream(rtc.AudioFrame(ref[h].tobytes(), self.rate, 1, n))
            if self._delay_ms is not None:
                self._apm.set_stream_delay_ms(self._delay_ms)
            frame = rtc.AudioFrame(mic[h].tobytes(), self.rate, 1, n)
            self._apm.process_stream(frame)
            out.append(np.frombuffer(frame.data, dtype=np.int16))
        return self._from_rate(np.concatenate(out))

    def _to_rate(self, ref: np.ndarray, mic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ref, mic

    def _from_rate(self, out: np.ndarray) -> np.ndarray:
        return out


class Halfband:
    """Streaming 2x resampling (8 <-> 16 kHz) with a 63-tap windowed-sinc low-pass (2 ms group delay)."""

    TAPS = np.sinc(np.arange(-31, 32) / 2) / 2 * np.hamming(63)

    def __init__(self) -> None:
        self._hist = np.zeros(len(self.TAPS) - 1)

    def _filter(self, x: np.ndarray) -> np.ndarray:
        y = np.convolve(np.concatenate([self._hist, x]), self.TAPS, mode="valid")
        self._hist = np.concatenate([self._hist, x])[-(len(self.TAPS) - 1):]
        return y

    def up(self, x: np.ndarray) -> np.ndarray:
        z = np.zeros(2 * len(x))
        z[::2] = x
        return np.clip(np.round(2 * self._filter(z)), -32768, 32767).astype(np.int16)

    def down(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.round(self._filter(x.astype(float))[::2]), -32768, 32767).astype(np.int16)


class Aec3Wide(Aec3):
    """AEC3 at 16 kHz (its native band split), the 8 kHz frames resampled in and out."""

    rate = 2 * RATE

    def __init__(self, delay_ms: int | None) -> None:
        super().__init__(delay_ms)
        self._ref, self._mic, self._out = Halfband(), Halfband(), Halfband()

    def _to_rate(self, ref: np.ndarray, mic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._ref.up(ref), self._mic.up(mic)

    def _from_rate(self, out: np.ndarray) -> np.ndarray:
        return self._out.down(out)


class Speex:
    """speexdsp MDF + residual echo suppression (pyaec), reference delayed by ``lead`` samples."""

    def __init__(self, lead: int, filter_len: int = 1024, preprocess: bool = True) -> None:
        try:
            import pyaec
        except ImportError:
            _need("pyaec")
        self._lib = pyaec.lib
        self._aec = self._lib.AecNew(FRAME, filter_len, RATE, preprocess)
        self._line = np.zeros(max(lead, 0), dtype=np.int16)
        self._out = np.zeros(FRAME, dtype=np.int16)
        self._ptr = ctypes.POINTER(ctypes.c_int16)

    def tick(self, ref: np.ndarray, mic: np.ndarray) -> np.ndarray:
        line = np.concatenate([self._line, ref])
        now, self._line = np.ascontiguousarray(line[:FRAME]), line[FRAME:]
        mic = np.ascontiguousarray(mic)
        self._lib.AecCancelEcho(self._aec, mic.ctypes.data_as(self._ptr), now.ctypes.data_as(self._ptr),
                                self._out.ctypes.data_as(self._ptr), FRAME)
        return self._out.copy()

    def __del__(self) -> None:
        if getattr(self, "_aec", None):
            self._lib.AecDestroy(self._aec)


# ------------------------------------------------------------------------------ one call, open loop
@dataclass
class Call:
    case: bc.Case
    onset: float  # the caller's clock, s
    answer_from: int  # first frame of the answer (caller's clock, the frame the caller hears it in)
    first_audio: int  # first frame with agent audio at the caller's loudspeaker
    bulk_ms: int  # reference -> its echo in the canceller's microphone stream
    ref: np.ndarray  # int16, per tick, what the TX loop sent
    mic: np.ndarray  # int16, decoded mu-law, caller's clock
    echo: np.ndarray  # float, the echo part of mic (before coding)
    own: np.ndarray  # float, the caller's own sound


def build(case: bc.Case) -> Call:
    """The case's signals, with its onset, answer and echo path as ``bargein_cases.run_case`` draws them."""
    rng = random.Random(case.seed)
    onset = bc.ANSWER_AT + 0.3 + rng.uniform(1.0, 1.5)
    jitter = random.Random(case.seed ^ 0x5EED).randrange(0, 81)  # samples, 0-10 ms
    n = int(bc.CASE_S * RATE) // FRAME * FRAME
    sent = np.zeros(n)
    if bc.GREETING_ON:
        g = room.ulaw_to_float(bc.GREETING)
        k = int(GREETING_AT * RATE)
        sent[k:k + len(g)] = g[:n - k]
    start = int(case.answer_at_s * RATE) // FRAME * FRAME
    answer = room.ulaw_to_float(bc.ANSWER[start:start + int(bc.ANSWER_S * RATE)])
    k = int(bc.ANSWER_AT * RATE)
    sent[k:k + len(answer)] = answer[:n - k]
    lag = int(SEND_TO_EAR_S * RATE) + jitter
    heard = np.concatenate([np.zeros(lag), sent])[:n]
    echo = room.LoudspeakerEcho(case.echo_db, case.delay_ms, seed=case.seed % 97, drive=DRIVE).process(heard)
    own = np.zeros(n)
    sound = bc.caller_sound(case)
    if sound:
        k = int(onset * RATE)
        x = room.ulaw_to_float(sound)[:n - k]
        own[k:k + len(x)] = x
    mic = room.ulaw_to_float(room.float_to_ulaw(own + echo))
    first = int(np.argmax(np.abs(heard) > 0)) // FRAME
    return Call(case, onset, (int(bc.ANSWER_AT * RATE) + lag) // FRAME, first,
                case.delay_ms + 1000 * (lag + EAR_TO_BRIDGE_FRAMES * FRAME) // RATE,
                np.clip(np.round(sent), -32768, 32767).astype(np.int16),
                np.clip(np.round(mic), -32768, 32767).astype(np.int16), echo, own)


def _frames(x: np.ndarray) -> np.ndarray:
    return x[:len(x) // FRAME * FRAME].reshape(-1, FRAME)


def _db(x: np.ndarray) -> np.ndarray:
    """Per-frame level in dBFS as the bridge measures it (of the mu-law coded frame)."""
    return np.array([bc._dbfs(f) for f in _frames(x.astype(float))])


def cancel(call: Call, make: Callable[[Call], object]) -> tuple[np.ndarray, float, float]:
    """The residual (caller's clock, int16) and the canceller's thread and process CPU seconds."""
    aec = make(call)
    refs, mics = _frames(call.ref), _frames(call.mic)
    zeros = np.zeros(FRAME, dtype=np.int16)
    out = np.zeros_like(call.mic)
    thread = process = 0.0
    for j in range(len(refs)):
        c = j - EAR_TO_BRIDGE_FRAMES
        mic = mics[c] if c >= 0 else zeros
        t0, p0 = time.thread_time(), time.process_time()
        res = aec.tick(refs[j], mic)
        thread += time.thread_time() - t0
        process += time.process_time() - p0
        if c >= 0:
            out[c * FRAME:(c + 1) * FRAME] = res
    return out, thread, process


IN_BRIDGE_SHOWN = ("by_group_stop_ms_exact_and_ducking_frame_end_p50_p90", "stop_ms_exact_p50_p90", "duck_ms_p50_p90",
                   "false_barge_in_pct", "backchannels_cut_pct", "missed_at_the_ear_pct", "underruns",
                   "server_turns_should_not", "listening_cpu_ms_per_call_second", "canceller_cpu_ms_per_call_s")

CANCELLERS: dict[str, Callable[[Call], object]] = {
    "aec3": lambda call: Aec3(None),
    "aec3_delay": lambda call: Aec3(call.bulk_ms),
    "aec3_16k": lambda call: Aec3Wide(None),
    "speex": lambda call: Speex(call.bulk_ms * RATE // 1000 - FRAME),
    "speex_linear": lambda call: Speex(call.bulk_ms * RATE // 1000 - FRAME, preprocess=False),
    "speex_512ms": lambda call: Speex(0, filter_len=4096),
}


# ------------------------------------------------------------------------------ figures
def _p(values: list[float], *ps: int) -> list[float | None]:
    return [round(float(percentile(values, p)), 1) if values else None for p in ps]


@dataclass
class Levels:
    """One call's per-frame levels (caller's clock) and where its echo-only and onset frames are."""
    call: Call
    raw: np.ndarray
    echo_e: np.ndarray  # echo energy per frame
    own_db: np.ndarray

    @property
    def onset_frame(self) -> int:
        return int(self.call.onset * RATE) // FRAME

    def echo_only(self) -> np.ndarray:
        """Frames with the agent's echo and nothing of the caller (before the onset, or no sound)."""
        n = len(self.raw)
        idx = np.arange(n)
        active = 10 * np.log10(np.maximum(self.echo_e / FRAME, 1e-12) / 32768.0 ** 2) > ACTIVE_DBFS
        quiet = idx < self.onset_frame - 1 if self.call.case.sound else np.ones(n, dtype=bool)
        return active & quiet


def levels(call: Call) -> Levels:
    e = _frames(call.echo)
    return Levels(call, _db(call.mic), (e * e).sum(axis=1), _db(call.own))


def erle_bins(lv: Levels, res: np.ndarray, bins_s: tuple[float, ...]) -> list[float | None]:
    """ERLE (echo energy at the mic / residual energy) over echo-only frames, per time bin since
    the call's first agent audio."""
    mask = lv.echo_only()
    r = _frames(res.astype(float))
    re = (r * r).sum(axis=1)
    out: list[float | None] = []
    for a, b in zip(bins_s, bins_s[1:]):
        f0, f1 = lv.call.first_audio + int(a * 50), lv.call.first_audio + int(b * 50)
        m = mask.copy()
        m[:f0] = False
        m[f1:] = False
        out.append(round(10 * np.log10(lv.echo_e[m].sum() / max(re[m].sum(), 1.0)), 1) if m.any() else None)
    return out


def detect(level: np.ndarray, onset_frame: int, onset: float, threshold: float) -> float | None:
    """ms from the onset to the end of the first frame (from the one holding the onset) at or over
    ``threshold``; None if none within 1 s."""
    for i in range(onset_frame, min(onset_frame + 50, len(level))):
        if level[i] >= threshold:
            return round(((i + 1) * FRAME / RATE - onset) * 1000, 1)
    return None


def _driven(cls: type) -> type:
    class Driven(cls):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kw: object) -> None:
            kw.setdefault("drive", DRIVE)
            super().__init__(*args, **kw)
    return Driven


def main() -> int:
    global DRIVE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--n", type=int, default=None, help="keep the first N cases of every kind")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-greeting", action="store_true")
    ap.add_argument("--only", default=",".join(CANCELLERS))
    ap.add_argument("--drive", type=float, default=DRIVE, help="the loudspeaker's drive (open loop only)")
    ap.add_argument("--in-bridge", metavar="CANCELLER", help="run the bridge closed loop (bargein_cases) without "
                    "and with this canceller (aec3, speex, speex_linear, speex_512ms) in front of it, on the cases with echo")
    args = ap.parse_args()
    bc.GREETING_ON = not args.no_greeting
    DRIVE = args.drive
    if DRIVE != room.LoudspeakerEcho.__init__.__defaults__[2]:  # bargein_cases' calls (--in-bridge) too
        room.LoudspeakerEcho = _driven(room.LoudspeakerEcho)
    names = [n for n in args.only.split(",") if n]
    cases = [c for c in bc.case_set(args.seed, args.n) if c.echo_db is not None and not c.bed]
    started = time.monotonic()
    if args.in_bridge:
        report = {"machine": machine(), "greeting": bc.GREETING_ON, "cases": len(cases),
                  **in_bridge(cases, args.in_bridge), "run_seconds": 0.0}
        report["run_seconds"] = round(time.monotonic() - started, 1)
        if not args.json:
            for key in [k for k in report if k.startswith("now")]:
                report[key] = {k: report[key][k] for k in IN_BRIDGE_SHOWN}
        show(report, args.json)
        return 0
    calls = [build(c) for c in cases]
    lvs = [levels(call) for call in calls]
    report: dict = {"machine": machine(), "calls": len(calls), "greeting": bc.GREETING_ON, "drive": DRIVE,
                    "with_caller_sound": sum(1 for c in cases if c.sound)}
    bins = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
    for name in ["raw"] + names:
        rows, thread, process = [], 0.0, 0.0
        for call, lv in zip(calls, lvs):
            if name == "raw":
                res = call.mic
            else:
                res, t_cpu, p_cpu = cancel(call, CANCELLERS[name])
                thread, process = thread + t_cpu, process + p_cpu
            rows.append((lv, _db(res), erle_bins(lv, res, bins) if name != "raw" else None))
        report[name] = summarize(rows, bins, thread, process, len(calls) * bc.CASE_S)
    report["run_seconds"] = round(time.monotonic() - started, 1)
    show(report, args.json)
    return 0


def show(report: dict, as_json: bool) -> None:
    """One JSON line, or one line per figure (``canceller.figure: compact JSON``, grep-able)."""
    if as_json:
        print(json.dumps(report, default=str))
        return
    flat = [(f"{key}.{k}", v) for key, value in report.items()
            for k, v in (value.items() if isinstance(value, dict) else [("", value)])]
    for name, value in flat:
        print(f"{name.rstrip('.')}: {json.dumps(value, default=str)}")


def summarize(rows: list[tuple[Levels, np.ndarray, list | None]], bins: tuple[float, ...], thread: float,
              process: float, call_s: float) -> dict:
    out: dict = {}
    if rows[0][2] is not None:
        per_bin = list(zip(*[r[2] for r in rows]))
        out["erle_db_p10_p50_by_s_since_first_audio"] = {
            f"{a}-{b}": _p([v for v in vals if v is not None], 10, 50) for a, b, vals in zip(bins, bins[1:], per_bin)}
        out["cpu_ms_per_call_s_thread_process"] = [round(1000 * thread / call_s, 2), round(1000 * process / call_s, 2)]
    answer_echo: list[tuple[Levels, np.ndarray, np.ndarray]] = []
    for lv, res, _ in rows:
        m = lv.echo_only()
        a = m.copy()
        a[:lv.call.answer_from] = False
        late = a.copy()
        late[:lv.call.answer_from + 50] = False
        answer_echo.append((lv, res[a], res[late]))
    by_db: dict = {}
    for echo_db in sorted({lv.call.case.echo_db for lv, _, _ in rows}):
        sel = [(lv, res) for lv, res, _ in rows if lv.call.case.echo_db == echo_db]
        echo_lv = np.concatenate([res[lv.echo_only() & (np.arange(len(res)) >= lv.call.answer_from)] for lv, res in sel])
        first = [res[lv.onset_frame:lv.onset_frame + 3] for lv, res in sel if lv.call.case.sound
                 and lv.call.case.label != "should_not"]
        by_db[echo_db] = {
            "echo_only_answer_frames_dbfs_p50_p99_max": _p(list(echo_lv), 50, 99, 100),
            "caller_first_3_frames_dbfs_p10_p50": _p([float(v) for f in first for v in f], 10, 50),
        }
    out["levels_by_echo_db"] = by_db
    for label, pick in (("whole_answer", 1), ("from_1s", 2)):
        thr = {}
        for echo_db in by_db:
            vals = [v for e in answer_echo if e[0].call.case.echo_db == echo_db for v in e[pick]]
            thr[echo_db] = float(max(vals) if vals else -90.0) + 0.5
        overall = max(thr.values())
        det: dict = {}
        for scope, t_of in (("one_threshold", lambda db: overall), ("threshold_per_echo_db", lambda db: thr[db])):
            found: dict[str, list[float]] = {}
            missed: dict[str, int] = {}
            for lv, res, _ in rows:
                case = lv.call.case
                if not case.sound:
                    continue
                group = case.label if case.label != "should" else f"should{case.echo_db}"
                ms = detect(res, lv.onset_frame, lv.call.onset, t_of(case.echo_db))
                if ms is None:
                    missed[group] = missed.get(group, 0) + 1
                else:
                    found.setdefault(group, []).append(ms)
            det[scope] = {g: {"n": len(v) + missed.get(g, 0), "frame_end_ms_p50_p90": _p(v, 50, 90),
                              "not_within_1s": missed.get(g, 0)} for g, v in sorted(found.items())}
            det[scope].update({g: {"n": k, "not_within_1s": k} for g, k in missed.items() if g not in found})
        out[f"threshold_{label}"] = {"dbfs": round(overall, 1), "per_echo_db": {k: round(v, 1) for k, v in thr.items()},
                                     **det}
    return out


class AecBridge(bc.Bridge):
    """The working tree's bridge with a canceller in front of its listening path: each caller
    frame is replaced by the canceller's residual (mu-law again) before the bridge sees it; the
    reference is what the bridge sent to Twilio, one frame per tick (silence when it sent none)."""

    def __init__(self, pkg: object, aec: object) -> None:
        super().__init__(pkg)
        self._aec = aec
        self._sent: list[np.ndarray] = []
        self.aec_cpu_s = 0.0

    def twilio_out(self, now: float) -> list:
        out = super().twilio_out(now)
        media = [p for kind, p in out if kind == "media"]
        frame = room.ulaw_to_float(media[0]) if media else np.zeros(FRAME)
        self._sent.append(np.clip(np.round(frame), -32768, 32767).astype(np.int16))
        return out

    def caller_frame(self, frame: bytes, now: float) -> None:
        mic = np.clip(np.round(room.ulaw_to_float(frame)), -32768, 32767).astype(np.int16)
        c0 = time.thread_time()
        ref = self._sent.pop(0) if self._sent else np.zeros(FRAME, dtype=np.int16)
        res = self._aec.tick(ref, mic)
        self.aec_cpu_s += time.thread_time() - c0
        super().caller_frame(room.float_to_ulaw(res.astype(float)), now)


def in_bridge(cases: list[bc.Case], name: str) -> dict:
    """The bridge's own figures (``bargein_cases.summarize``) on the cases, without and with the
    canceller in front of it: does the existing detector duck sooner on the residual?"""
    import importlib
    now = importlib.import_module("voicebridge")
    def lead(c: bc.Case) -> int:  # the echo lags the reference popped on its tick by the delay + 20-50 ms
        return c.delay_ms * RATE // 1000
    out: dict = {}
    for variant in ("now", f"now+{name}"):
        results, cpu, aec_cpu, seconds = [], 0.0, 0.0, 0.0
        for case in cases:
            if variant == "now":
                outcome, spent = bc.run_case(case, lambda: bc.Bridge(now))
            else:
                made: list[AecBridge] = []

                def make(case: bc.Case = case) -> AecBridge:
                    aec = Aec3(None) if name.startswith("aec3") else (
                        Speex(lead(case), preprocess=name == "speex") if name in ("speex", "speex_linear")
                        else Speex(0, filter_len=4096))
                    made.append(AecBridge(now, aec))
                    return made[-1]
                outcome, spent = bc.run_case(case, make)
                aec_cpu += made[-1].aec_cpu_s
            results.append((case, outcome))
            cpu += spent
            seconds += outcome.call_s
        summary = bc.summarize(results, cpu)
        summary["canceller_cpu_ms_per_call_s"] = round(1000 * aec_cpu / seconds, 2)
        stop: dict = {}
        frame_end: dict = {}
        for case, o in results:
            group = case.label if case.label != "should" else f"should{case.echo_db}"
            if case.sound and case.label != "should_not" and o.stop_ms is not None:
                stop.setdefault(group, []).append(o.stop_ms)
                frame_end.setdefault(group, []).append((o.parts or {}).get("ducking_frame_end"))
        summary["by_group_stop_ms_exact_and_ducking_frame_end_p50_p90"] = {
            g: [_p(v, 50, 90), _p([f for f in frame_end[g] if f is not None], 50, 90)] for g, v in sorted(stop.items())}
        out[variant] = summary
    return out


if __name__ == "__main__":
    raise SystemExit(main())
