"""CPU per call as the outside sees it: the serving process's CPU over whole calls.

``benchmarks/scale.py`` reports CPU per call-second over the window where all N calls are up:
what a call costs once it runs. A deployment sizes its machines by what the process costs from
the first upgrade to the last teardown, so this benchmark measures that, for the documented
serving commands, beside the inside figure from the same run:

* **the server**: ``gunicorn -c examples/gunicorn.conf.py 'examples.twilio_app:create_app()'``
  with ``WEB_CONCURRENCY=1`` and ``WORKER_CLASS`` gevent or gthread (docs/deploy.md), from this
  checkout or another one (``--old DIR``, e.g. ``git archive`` of an older commit: old against
  new in one run); or, with ``--sample DIR``, the Twilio sample app (FastAPI under uvicorn,
  twilio-samples/speech-assistant-openai-realtime-api-python, fetched by you, never part of this
  repository) with its OpenAI URL pointed at the fake server (its own code unchanged);
* **a fake Realtime server**: ``voicebridge.cli local-server --mode tone`` in its own process;
* **independent callers**: ``scale.py``'s driver processes (a raw WebSocket client, not the
  bridge's code), behaving as Twilio does (``connected``, ``start``, a ``media`` every 20 ms,
  marks echoed when played, ``clear`` honoured, ``stop``); they offer no WebSocket extension,
  as Twilio's upgrade request offers none (``--offer-deflate`` makes them offer
  permessage-deflate as a browser or the ``websockets`` client would).

CPU is utime+stime of the worker process (``/proc/PID/stat``), from before the first call
starts until its CPU is flat again after the last one ended (teardown included); its idle rate,
measured just before, is reported (it is 0 for every server here). Calls of two lengths (default 10 s and 25 s) separate the
per-call setup from the steady cost: whole(T) = N x (setup + T x steady).

The outside figure is split into user and system time (``utime`` and ``stime`` apart). Part of
the system time on this bench is not the server's own: on loopback a ``send`` runs the receiving
socket's TCP input (and the wake-up of its reader) in the sender's context, and this kernel
(tick accounting, no IRQ time accounting) charges it to the sender; behind a real NIC the peer
is another machine. ``--perf DIR`` records the worker with ``perf`` (call graphs, on-CPU
samples) and reports the share of its samples in that receive-side input (``perf_split``).
How long the worker was ready to run but waited for a core is read from
``/proc/PID/task/*/schedstat`` (ms per second of the run).

Underruns are counted at the callers: agent audio arriving after the caller's playout (the
audio received so far, played in real time) ran dry, within one utterance.

Usage: python benchmarks/outside_cpu.py [--n 20] [--seconds 10,25] [--servers gevent,gthread]
       [--old DIR] [--sample DIR --sample-python PY] [--repeat 1] [--perf DIR] [--json out.json]
Server names: gevent, gthread (this checkout), old-gevent, old-gthread (``--old``), sample.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)

from benchmarks._common import machine  # noqa: E402
from benchmarks.scale import _children, _free_port, _hist, _hist_pct, _proc_times, _wait_port  # noqa: E402

SCALE = os.path.join(ROOT, "benchmarks", "scale.py")
RAMP_S = 3.0
SAMPLE_SHIM = """
import sys, websockets, uvicorn
rt = sys.argv[2]
_connect = websockets.connect
def connect(url, *a, **kw):  # the sample dials api.openai.com: send it to the fake server instead
    return _connect(url.replace("wss://api.openai.com", "ws://127.0.0.1:" + rt), *a, **kw)
websockets.connect = connect
sys.path.insert(0, ".")
import main
uvicorn.run(main.app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def _server(kind: str, port: int, rt_port: int, args: argparse.Namespace, log: Any) -> tuple[subprocess.Popen, str]:
    """Start one server; return it and the command a reader would type."""
    env = dict(os.environ, OPENAI_REALTIME_URL=f"ws://127.0.0.1:{rt_port}/v1/realtime", OPENAI_API_KEY="sk-fake",
               PYTHONUNBUFFERED="1", STARTUP_CHECK="0", HOST="127.0.0.1", PORT=str(port), WEB_CONCURRENCY="1")
    for name in ("MAX_CALLS", "PROMETHEUS_MULTIPROC_DIR", "VOICEBRIDGE_STATE_DIR", "LOG_LEVEL"):
        env.pop(name, None)
    if kind == "sample":
        py = args.sample_python
        return subprocess.Popen([py, "-c", SAMPLE_SHIM, str(port), str(rt_port)], cwd=args.sample, env=env,
                                stdout=subprocess.DEVNULL, stderr=log), f"{py} main.py (uvicorn, {args.sample})"
    worker_class = kind.split("-")[-1]
    root = args.old if kind.startswith("old-") else ROOT
    env.update(WORKER_CLASS=worker_class, PYTHONPATH=root)
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    cmd = [gunicorn, "-c", "examples/gunicorn.conf.py", "--no-control-socket", "examples.twilio_app:create_app()"]
    return (subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=log),
            f"WEB_CONCURRENCY=1 WORKER_CLASS={worker_class} gunicorn -c examples/gunicorn.conf.py "
            f"'examples.twilio_app:create_app()'")


def _workers(kind: str, proc: subprocess.Popen) -> list[int]:
    if kind == "sample":
        return [proc.pid]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = _children(proc.pid)
        if kids:
            return kids
        time.sleep(0.1)
    raise RuntimeError("no gunicorn worker")


def _cpu(pids: list[int]) -> float:
    return sum(_times(pids))


def _times(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of the worker processes."""
    pairs = [_proc_times(p) for p in pids]
    return sum(u for u, _ in pairs), sum(s for _, s in pairs)


def _waited_s(pids: list[int]) -> float:
    """Seconds the workers' threads spent runnable but waiting for a core (``/proc/PID/task/*/schedstat``)."""
    total = 0
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[1])
            except OSError:
                pass  # the thread ended between listdir and open
    return total / 1e9


# Kernel functions of a receiving socket's input path. On loopback a sender's send() runs the
# peer's whole TCP input (and the wake-up of its reader) in its own context, as a softirq at the
# end of the transmit; this kernel (tick accounting, no IRQ time accounting) charges that to the
# sender's system time. Behind a real NIC the peer is another machine and does that work there.
RECEIVE_SIDE = ("__netif_receive_skb", "process_backlog", "net_rx_action")


def perf_split(script_text: str) -> dict[str, float]:
    """Shares of a ``perf script`` (cpu-clock, call graphs) of one process: user, kernel, and the
    kernel's receive-side input (any frame in ``RECEIVE_SIDE``) run in that process's context."""
    counts = {"user": 0, "kernel": 0, "receive_side": 0}
    total = 0
    for sample in script_text.split("\n\n"):
        frames = [line.split() for line in sample.strip().splitlines()]  # "addr symbol (dso)", leaf first
        frames = [f for f in frames if len(f) >= 3]
        if not frames:
            continue
        total += 1
        if frames[0][-1] == "([kernel.kallsyms])":
            counts["kernel"] += 1
            if any(f[1] in RECEIVE_SIDE for f in frames):
                counts["receive_side"] += 1
        else:
            counts["user"] += 1
    return {k: round(v / total, 4) if total else 0.0 for k, v in counts.items()} | {"samples": total}


def run_one(kind: str, n: int, seconds: float, args: argparse.Namespace) -> dict[str, Any]:
    """One server, N calls of ``seconds``: whole-call CPU, window CPU, what the callers heard."""
    py = sys.executable
    rt_port, port = _free_port(), _free_port()
    tag = f"{kind}-{n}-{int(seconds)}"
    rt = subprocess.Popen([py, "-m", "voicebridge.cli", "local-server", "--port", str(rt_port), "--mode", "tone",
                           "--speed", "4", "--tone-seconds", "3"], cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=open(os.path.join(args.logdir, f"rt-{tag}.log"), "w"))
    server, command = _server(kind, port, rt_port, args, open(os.path.join(args.logdir, f"server-{tag}.log"), "w"))
    spy = None
    try:
        _wait_port(rt_port)
        _wait_port(port)
        time.sleep(1.0)
        pids = _workers(kind, server)
        a, ta = _cpu(pids), time.monotonic()
        time.sleep(2.0)
        b, tb = _cpu(pids), time.monotonic()
        ub, sb = _times(pids)
        wait_b = _waited_s(pids)
        idle_rate = (b - a) / (tb - ta)  # reported, not subtracted: 0 here, and one tick is 10 ms
        start_at = time.monotonic() + 1.5
        ramp = RAMP_S if n > 1 else 0.0
        path = "/media-stream" if kind == "sample" else "/media"
        drivers = [subprocess.Popen(
            [py, SCALE, "--driver", "--host", "127.0.0.1", "--port", str(port), "--n", str(n), "--part", str(p),
             "--parts", "2", "--start-at", repr(start_at), "--ramp", str(ramp), "--seconds", str(seconds),
             "--interrupt-after", "0.6", "--path", path, *(["--offer-deflate"] if args.offer_deflate else [])],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=open(os.path.join(args.logdir, f"driver-{tag}-{p}.log"), "w"))
            for p in range(min(2, n))]
        if args.profile:
            spy = subprocess.Popen([os.path.join(os.path.dirname(py), "py-spy"), "record", "-p", str(pids[0]),
                                    "-d", str(int(seconds + 8)), "-r", "200", "--nonblocking", "--format", "raw",
                                    "-o", os.path.join(args.profile, f"{tag}.txt")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        perf = None
        if args.perf:
            perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "-g", "-p", str(pids[0]),
                                     "-o", os.path.join(args.perf, f"{tag}.data"), "--", "sleep", str(int(seconds + 6))],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        w0, w1 = start_at + ramp + 1.5, start_at + seconds - 0.5
        time.sleep(max(0.0, w0 - time.monotonic()))
        c0, t0 = _cpu(pids), time.monotonic()
        time.sleep(max(0.0, w1 - time.monotonic()))
        c1, t1 = _cpu(pids), time.monotonic()
        results = [json.loads(d.communicate(timeout=seconds + 90)[0]) for d in drivers]
        # the last teardown: wait until the worker is idle again (at most one tick in 0.5 s)
        last = _cpu(pids)
        for _ in range(60):
            time.sleep(0.5)
            now_cpu = _cpu(pids)
            if now_cpu - last <= 0.011:
                break
            last = now_cpu
        end = _cpu(pids)
        ue, se = _times(pids)
        wait_e, t_end = _waited_s(pids), time.monotonic()
        if spy is not None:
            spy.wait(60)
        if perf is not None:
            perf.wait(60)
    finally:
        for proc in (server, rt):
            proc.terminate()
        for proc in (server, rt):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    whole = end - b
    window = c1 - c0
    errors = sum(len(r["errors"]) for r in results)
    late = _hist()
    for r in results:
        for i, c in enumerate(r["lateness_hist"]):
            late[i] += c
    result = {
        "server": kind, "command": command, "n": n, "seconds": seconds,
        "whole_cpu_s": round(whole, 3),
        "outside_ms_per_call_s": round(whole * 1000 / (n * seconds), 2),
        "inside_ms_per_call_s": round(window * 1000 / (n * (t1 - t0)), 2),
        # the outside figure split: user space, and the kernel (syscalls, and on loopback the
        # peers' TCP input run inside our sends: ``perf_split``)
        "user_ms_per_call_s": round((ue - ub) * 1000 / (n * seconds), 2),
        "system_ms_per_call_s": round((se - sb) * 1000 / (n * seconds), 2),
        "idle_ms_per_s": round(idle_rate * 1000, 2),
        # how long the worker was ready to run but had no core, per second of the run (a
        # starved worker paces late whatever its code costs)
        "core_wait_ms_per_s": round((wait_e - wait_b) * 1000 / (t_end - tb), 1),
        "underruns": sum(r["underruns"] for r in results),
        # the callers' own timing error: underruns while they ran late are partly theirs
        "caller_late_p99_ms": _hist_pct(late, 99), "caller_late_max_ms": max(r["lateness_max_ms"] for r in results),
        "frames_received": sum(r["frames_received"] for r in results),
        "deflate_negotiated": sum(r["deflate"] for r in results),
        "call_errors": errors, "error_sample": [e for r in results for e in r["errors"]][:3],
        "barge_ins": sum(1 for r in results for i in r["interruptions"] if i["clear_ms"] is not None),
    }
    if perf is not None:
        script = subprocess.run(["perf", "script", "-i", os.path.join(args.perf, f"{tag}.data"), "-F", "ip,sym,dso"],
                                capture_output=True, text=True).stdout
        result["perf"] = perf_split(script)
    return result


def summary(runs: list[dict[str, Any]], lengths: list[float]) -> list[dict[str, Any]]:
    """Per server and N: setup and steady cost from the two call lengths (means over repeats)."""
    out = []
    short, long_ = min(lengths), max(lengths)
    keys = sorted({(r["server"], r["n"]) for r in runs}, key=lambda k: (k[1], k[0]))
    for server, n in keys:
        mine = [r for r in runs if r["server"] == server and r["n"] == n]

        def mean(field: str, secs: float) -> float:
            vals = [r[field] for r in mine if r["seconds"] == secs]
            return sum(vals) / len(vals) if vals else float("nan")

        w_short, w_long = mean("whole_cpu_s", short), mean("whole_cpu_s", long_)
        steady = (w_long - w_short) / (n * (long_ - short)) if long_ > short else float("nan")
        setup = w_short / n - short * steady
        out.append({
            "server": server, "n": n,
            "outside_short": [r["outside_ms_per_call_s"] for r in mine if r["seconds"] == short],
            "outside_long": [r["outside_ms_per_call_s"] for r in mine if r["seconds"] == long_],
            "inside": [r["inside_ms_per_call_s"] for r in mine],
            "steady_ms_per_call_s": round(steady * 1000, 2), "setup_ms_per_call": round(setup * 1000, 1),
            "user": [r["user_ms_per_call_s"] for r in mine], "system": [r["system_ms_per_call_s"] for r in mine],
            "receive_side": [r["perf"]["receive_side"] for r in mine if "perf" in r],
            "core_wait": [r["core_wait_ms_per_s"] for r in mine],
            "underruns": [r["underruns"] for r in mine], "call_errors": sum(r["call_errors"] for r in mine),
            "deflate_negotiated": sum(r["deflate_negotiated"] for r in mine),
        })
    return out


def table(rows: list[dict[str, Any]], lengths: list[float]) -> str:
    short, long_ = int(min(lengths)), int(max(lengths))

    def fmt(vals: list[float]) -> str:
        return " / ".join(f"{v:g}" for v in vals)

    lines = [f"| server | N | outside, {short} s calls | outside, {long_} s calls | steady | setup per call | "
             "inside (all-up window) | user / system (outside) | receive side (perf) | waiting for a core (ms/s) | "
             "underruns at the callers | call errors |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['server']} | {r['n']} | {fmt(r['outside_short'])} | {fmt(r['outside_long'])} | "
                     f"{r['steady_ms_per_call_s']:g} | {r['setup_ms_per_call']:g} ms | {fmt(r['inside'])} | "
                     f"{' / '.join(f'{u:g}+{s:g}' for u, s in zip(r['user'], r['system']))} | "
                     f"{fmt([round(100 * x, 1) for x in r['receive_side']]) or '-'} | {fmt(r['core_wait'])} | "
                     f"{fmt(r['underruns'])} | {r['call_errors']} |")
    lines.append("")
    lines.append("CPU in ms per call-second. Outside: the worker's whole CPU from before the first call to after "
                 "the last teardown, over N x call length. Steady and setup: from the two lengths. Inside: the "
                 "window where every call is up (scale.py's figure), which leaves out each call's setup (upgrade, "
                 "dial and configure the model, session threads) and teardown (joins, report, close), and the "
                 "ramp while calls start.")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="20", help="concurrent calls (comma-separated for several)")
    ap.add_argument("--seconds", default="10,25", help="call lengths (the shortest and longest give setup/steady)")
    ap.add_argument("--servers", default="gevent,gthread")
    ap.add_argument("--old", help="another checkout for old-gevent / old-gthread")
    ap.add_argument("--sample", help="directory of the Twilio sample (main.py)")
    ap.add_argument("--sample-python", default=sys.executable, help="a Python with the sample's requirements")
    ap.add_argument("--offer-deflate", action="store_true", help="callers offer permessage-deflate")
    ap.add_argument("--repeat", type=int, default=1, help="runs per server and length, interleaved")
    ap.add_argument("--profile", help="py-spy raw profiles of each run's worker into this directory")
    ap.add_argument("--perf", help="perf call graphs of each run's worker into this directory (the kernel's "
                    "share, and the receive-side input run in the worker's sends)")
    ap.add_argument("--json", help="write every run here")
    ap.add_argument("--logdir", default="/tmp/voicebridge-outside")
    args = ap.parse_args()
    os.makedirs(args.logdir, exist_ok=True)
    for d in (args.profile, args.perf):
        if d:
            os.makedirs(d, exist_ok=True)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if any(s.startswith("old-") for s in servers) and not args.old:
        ap.error("old-* servers need --old DIR")
    if "sample" in servers and not args.sample:
        ap.error("the sample server needs --sample DIR")
    lengths = [float(x) for x in args.seconds.split(",")]
    ns = [int(x) for x in args.n.split(",")]
    runs = []
    for rep in range(args.repeat):
        for n in ns:
            for secs in lengths:
                for kind in servers:
                    r = run_one(kind, n, secs, args)
                    r["repeat"] = rep
                    runs.append(r)
                    print(json.dumps(r), file=sys.stderr, flush=True)
    rows = summary(runs, lengths)
    print(f"python benchmarks/outside_cpu.py {' '.join(sys.argv[1:])}")
    print(f"machine: {machine()}")
    print(table(rows, lengths))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": sys.argv, "machine": machine(), "runs": runs, "summary": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
