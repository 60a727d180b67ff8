"""The library under gevent's monkey-patching, as ``gunicorn -k gevent`` runs it.

Threads become greenlets, locks, queues, sleeps, ``select.poll`` and sockets become cooperative.
Every blocking wait the library uses must still end on time there (a kernel socket timeout, for
one, never fires on gevent's non-blocking descriptors). The same tests that pin those waits
with real threads are run again, in a fresh interpreter patched before anything is imported.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gevent")

ROOT = Path(__file__).resolve().parent.parent
GROUPS = {  # each group one gevent-patched interpreter, so that xdist spreads them over its workers
    "session": ["tests/test_session.py", "tests/test_session_bargein.py"],
    "sockets": ["tests/test_wsserver.py", "tests/test_faults_socket.py"],
    "wire": ["tests/test_mediasocket.py", "tests/test_sockio.py", "tests/test_realtime_client.py"],
}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_sessions_sockets_and_faults_behave_the_same_under_gevent(group):
    code = ("from gevent import monkey; monkey.patch_all()\n"
            "import sys, pytest\n"
            f"sys.exit(pytest.main(['-o', 'addopts=', '-q', '-m', 'not timing', '-p', 'no:randomly', '-p', 'no:cacheprovider',"
            f" *{GROUPS[group]!r}]))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    summary = [line for line in done.stdout.splitlines() if "passed" in line or "FAILED" in line or "Error" in line]
    assert done.returncode == 0, "\n".join(summary[-20:]) or done.stdout[-3000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed and int(passed.group(1)) >= 15, summary  # they ran
