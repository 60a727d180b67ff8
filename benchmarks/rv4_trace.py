"""Review trace (rv4): one probe case with the echo gate's room tail under later audio off (main's
rule) and on (h21l), the working tree's bridge both times; the gate's verdicts around the onset
and the bridge's actions, side by side.

Usage: PYTHONPATH=. python benchmarks/rv4_trace.py SOUND ECHO_DB DELAY_MS GAIN SEED ANSWER_AT ONSET [--answer-s S]
"""
from __future__ import annotations

import argparse
import logging

import rv4_probe as probe  # (sets the harness's onset and sound hooks)
import bargein_cases as bc
from voicebridge.audio import echo as echo_mod

_trace: list[tuple[float, float, str, float]] = []
_tail = [True]
_judge = echo_mod.EchoGate.judge


def _traced(self, level_dbfs, now, floor_dbfs=echo_mod.MIN_DBFS):
    self.room_tail = _tail[0]
    plain = _plain_headroom(self, level_dbfs, now)
    verdict = _judge(self, level_dbfs, now, floor_dbfs)
    _trace.append((now, level_dbfs, verdict.value, self.headroom_db, plain))
    return verdict


def _plain_headroom(gate, level: float, now: float) -> float | None:
    """The frame's headroom over the echo main's rule predicts (no tail under later audio); None
    with the delay unknown or nothing played."""
    lag, slot, played = gate._lag, round(now / echo_mod.SLOT_S), gate._played
    if lag is None:
        return None
    reference = played.loudest(slot - lag - echo_mod.WINDOW, slot - lag + echo_mod.WINDOW)
    if reference < echo_mod.PLAYED_FLOOR_DBFS:
        reference = played.tail(slot - lag - echo_mod.WINDOW - 1, echo_mod.TAIL_SLOTS, echo_mod.TAIL_DB)
    return None if reference < echo_mod.PLAYED_FLOOR_DBFS else level - (reference - gate._loss)


echo_mod.EchoGate.judge = _traced


def main() -> int:
    ap = argparse.ArgumentParser()
    for name in ("sound", "echo_db", "delay_ms", "gain", "seed", "answer_at", "onset"):
        ap.add_argument(name)
    ap.add_argument("--answer-s", type=float)
    ap.add_argument("--no-greeting", action="store_true")
    ap.add_argument("--brief", action="store_true", help="only the frames the tail changed, and the actions")
    a = ap.parse_args()
    logging.disable(logging.WARNING)
    probe.setup(a.no_greeting, a.answer_s)
    case = bc.Case("trace", "should", sound=a.sound, echo_db=float(a.echo_db), delay_ms=int(a.delay_ms),
                   gain_db=float(a.gain), seed=int(a.seed), answer_at_s=float(a.answer_at))
    now = bc.variants("auto")["now"]
    runs = {}
    for tail in (False, True):
        _tail[0], _trace[:] = tail, []
        probe._forced[:] = [float(a.onset)]
        out, _ = bc.run_case(case, now)
        runs[tail] = (list(_trace), out)
    onset = bc.ANSWER_AT + 0.3 + float(a.onset)
    for tail, (_, out) in runs.items():
        print(f"tail={tail}: clear_ms={out.clear_ms} stop_ms={out.stop_ms} duck_ms={out.duck_ms} "
              f"heard_again={out.heard_again_ms} ear_missed={bc.ear_missed(out)}")
        print("   actions after onset-0.1:", [(round(t - onset, 3), x) for t, x in out.actions if t > onset - 0.1][:30])
    main_t, now_t = runs[False][0], runs[True][0]
    print(" t-onset  level(main/h21l)  main(verdict, headroom)  h21l(verdict, headroom, main's rule's headroom)")
    for (t, lv, v0, h0, _), (t1, lv1, v1, h1, p1) in zip(main_t, now_t):
        if onset - 0.3 <= t <= onset + 1.2:
            mark = " <--" if v0 != v1 else ""
            tailed = p1 is not None and p1 > 3.0 and v1 != "caller"
            if a.brief and not tailed:
                continue
            mark += " TAIL" if tailed else ""
            plain = "" if p1 is None or v1 == "quiet" else f" ({p1:+6.1f})"
            print(f"{t - onset:+.3f} {lv:6.1f}{'' if lv == lv1 else f'/{lv1:6.1f}'}  {v0:7s} {h0:+6.1f}   "
                  f"{v1:7s} {h1:+6.1f}{plain}{mark}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
