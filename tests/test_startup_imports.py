"""What is imported when: ``import voicebridge`` stays light (no numpy), and a bridge's
construction (an app factory, once per gunicorn worker) imports what its calls compute with, so
no call's setup imports it: under gevent that import holds the worker's one thread for 0.1-1 s
while the calls already up go unpaced."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(body)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_the_library_import_leaves_numpy_for_later_and_the_bridge_takes_it_at_start() -> None:
    proc = _run("""
        import sys
        import voicebridge
        from voicebridge import BridgeConfig, VoiceBridge
        from voicebridge.audio import mulaw
        from voicebridge.audio import echo
        print("numpy" in sys.modules, mulaw.numeric.cache_info().currsize, echo._noise_frames.cache_info().currsize)
        from flask import Flask
        VoiceBridge(Flask("t"), BridgeConfig(), metrics=False)
        print("numpy" in sys.modules, mulaw.numeric.cache_info().currsize, echo._noise_frames.cache_info().currsize)
        """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # light import; the levels' table and the comfort noise's frames made by the bridge
    assert proc.stdout.split("\n")[:2] == ["False 0 0", "True 1 1"]
