"""The lock for state a call's loops share: ``threading.Lock``, or under gevent the semaphore beneath it.

Every frame passes a few of these (the call's counters, the outbound state, the echo gate's
reference, the send lock, the media socket's write lock): about 440 acquisitions per
call-second in a yappi count of a gevent worker (docs/performance.md, fifth round). Under
gevent's monkey-patching ``threading.Lock()`` is ``gevent.thread.LockType``, a
``BoundedSemaphore(1)`` whose ``acquire`` is re-written in Python to take the stdlib's
signature (``timeout=-1``), check its arguments, and let a non-blocking caller that failed run
the hub (a courtesy to spin locks); every ``with`` goes through it. The semaphore's own
``acquire`` is compiled, and for the blocking, timed and non-blocking acquires used here it is
the same lock (held by one greenlet at a time, usable from gevent's native threads). A
non-blocking acquire that fails returns False without running the hub, which none of these
callers spins on.

It is not a drop-in ``threading.Lock`` for every caller: ``acquire``'s timeout is gevent's, so
``None`` waits as long as it takes and the stdlib's ``-1`` returns False at once while the lock
is held; an over-release raises ValueError, not RuntimeError. The callers here use ``with``, a
non-blocking acquire, or a timeout of ``None`` or above 0.
"""
from __future__ import annotations

import sys
import threading
from typing import Any


def state_lock() -> Any:
    """A new mutex: gevent's compiled ``BoundedSemaphore(1)`` under gevent, else ``threading.Lock()``."""
    if green():
        from gevent.lock import BoundedSemaphore
        return BoundedSemaphore(1)
    return threading.Lock()


def green() -> bool:
    """``threading`` is gevent's (``monkey.patch_all()``, as ``gunicorn -k gevent`` does)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")
