"""A held "yeah", then a command: does the answer resume over the command before its clear?

Whole simulated calls (``bargein_cases.run_case``, Silero as the model's VAD): a short "yeah" over
the answer (held for its words), then after a gap of 0.5-1.8 s "stop, stop", "wait" or "stop",
over no echo or -20 dB echo. The transcriber says "Yeah." for a turn over the first sound, the
command's words for one over the second, "" for neither. Per bridge: the calls where the agent
was released (resumed) during the command before its clear, how many of those 0.15 s or more into
it, and the clear's time after the command's onset. Written by review rv10 (2026-12-03).

Usage: PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/held_then_command.py [COMMIT ...]
(each COMMIT's bridge beside the working tree's, "now"; about 25 s per bridge)"""
import sys, importlib, logging, random, collections
import numpy as np
sys.path.insert(0, "benchmarks")
import bargein_cases as bc

logging.disable(logging.WARNING)
FIRST = "backchannel_02_0"  # yeah
CMDS = ["interruption_05_0", "interruption_00_0", "interruption_01_0"]  # stop, stop / wait / stop
gaps = [0.5, 0.7, 0.9, 1.1, 1.3, 1.5, 1.8]
state = {}

def caller_sound(case):
    a = bc.corpus.load(FIRST)
    b = bc.corpus.load(state["cmd"])
    gap = b"\xff" * (int(state["gap"] * 8000))
    return a + gap + b

orig_tr = bc._transcriber
def transcriber(case, onset, sound_s, heard_by):
    la = len(bc.corpus.load(FIRST)) / 8000
    b0 = onset + la + state["gap"]
    text = bc.corpus.clip(state["cmd"]).text
    def tr(s_ms, e_ms):
        t0, t1 = s_ms / 1000 - bc.NET_S, e_ms / 1000 - bc.NET_S
        if t0 < sound_s + onset and t1 > b0:
            return text.capitalize() + "."
        if t0 < onset + la and t1 > onset:
            return "Yeah."
        return ""
    return tr

bc.caller_sound = caller_sound
bc._transcriber = transcriber
vs = {c: bc.load_before(c) for c in sys.argv[1:]}
vs["now"] = importlib.import_module("voicebridge")
rng = random.Random(3)
res = collections.defaultdict(list)
late = collections.defaultdict(list)
for cmd in CMDS:
    for gap in gaps:
        for echo in (None, -20):
            for k in range(2):
                state.update(cmd=cmd, gap=gap)
                case = bc.Case("mm_stop", "should", sound=FIRST, echo_db=echo, seed=rng.randrange(1 << 30),
                               answer_at_s=rng.choice((0.0, 4.0, 8.0)))
                row = []
                for name, pkg in vs.items():
                    out, _ = bc.run_case(case, lambda p=pkg: bc.Bridge(p), "silero")
                    onset = out.parts["onset_s"] if out.parts else None
                    b0 = None if onset is None else onset + len(bc.corpus.load(FIRST)) / 8000 + gap
                    acts = [(round(t - b0, 2), a) for t, a in out.actions if b0 is not None and t >= b0 - 0.05]
                    clear = next((t for t, a in acts if a == "clear"), None)
                    rel = [t for t, a in acts if a == "release" and (clear is None or t < clear)]
                    res[name].append((clear, bool(rel)))
                    late[name].append(rel)
                    row.append((name, clear, rel[:2]))
                print(cmd, gap, echo, row, flush=True)
for name, r in res.items():
    clears = [c for c, _ in r if c is not None]
    print(name, "n", len(r), "resumed 0.15 s or more into the command", sum(any(t >= 0.15 for t in rl) for rl in late[name]), "no clear", sum(c is None for c, _ in r), "released (agent resumed) during the command before its clear",
          sum(x for _, x in r), "clear after cmd onset p50/max", np.percentile(clears, 50).round(2) if clears else None,
          max(clears) if clears else None)
