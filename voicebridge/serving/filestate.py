"""State the worker processes of one host share: the call cap, used stream tokens, transfers.

With ``gunicorn -w N`` the webhook of a call and its media stream may be served by different
worker processes, and so may the stream and Twilio's request once it ends. The cap, the
single-use stream tokens and the transfer hand-off must therefore hold across processes. Each
primitive here works in-process when no directory is given (one worker: nothing on disk) and
across every process that shares a directory (``state_dir``) when one is: plain files,
``flock`` and ``O_EXCL``, no server, and nothing to repair after a crash -- the kernel drops a
dead process's locks, and expired files are swept by whoever comes next.

The model, and its limits:

* **One host.** The directory is for the processes of one machine (one container or pod),
  on a local filesystem or tmpfs; ``flock`` and ``O_EXCL`` are not to be trusted on network
  filesystems. Several hosts each keep their own directory, so their own cap (the deployment's
  capacity is the sum); a stream token is checked by any host (it is signed) but its "used"
  mark is per host.
* **Shared by the workers, private to them.** Whoever can write the directory can take call
  slots, burn tokens or plant a transfer target, so it must be owned by this user and not
  writable by group or others (checked: :class:`StateDirError`). Every process sharing it must
  use the same cap. ``examples/gunicorn.conf.py`` makes a fresh ``mkdtemp`` per master.
* **Untrusted names.** Call SIDs and token nonces come from requests; only names of
  ``[A-Za-z0-9_-]``, at most :data:`MAX_NAME_CHARS` long, become file names (:func:`safe_name`).
* **Fork.** A slot is held by an open file description; a process forked (without exec) while
  holding one shares it until both have let go. Build the bridge after the fork (gunicorn
  without ``--preload``).
* **Temp cleaners.** A directory under /tmp is aged by the host (systemd-tmpfiles deletes files
  untouched for 10 days on Debian 13 and Fedora/RHEL): a slot file made at start-up and never
  written again went while a call held it. Every subdirectory is recreated when found missing
  (:class:`_Subdir`), a held slot file is touched when taken and at least daily while held, and a
  held slot whose file was deleted anyway is moved to a new file (:meth:`CallSlots.repair`), so
  the cap still counts the live call. ``examples/gunicorn.conf.py`` puts the directory in a
  runtime directory (not aged) when there is one.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import re
import secrets
import stat
import threading
import time
from typing import Callable, TypeVar

from ..throttle import LogThrottle

log = logging.getLogger(__name__)
repairs_log = LogThrottle(log)  # a lost slot file is seen on every probe until its call ends
T = TypeVar("T")

MAX_NAME_CHARS = 64
FRESH_S = 24 * 3600.0
"""A held slot file is touched again once its modification time is this old (temp cleaners age files)."""
NAME = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_NAME_CHARS}}}")
SWEEP_INTERVAL_S = 10.0
"""How often (at most) one process sweeps expired markers and transfers from the directory."""
STALE_TEMP_S = 300.0
"""A half-written or half-taken transfer file older than this was left by a crash."""
OPEN_FLAGS = os.O_CLOEXEC | os.O_NOFOLLOW
COUNT_WIDTH = 20


class StateDirError(ValueError):
    """The state directory is not a directory this process alone (with its siblings) may write."""


def safe_name(name: object) -> str:
    """``name`` if it may become a file name here, else ValueError (it came from a request)."""
    if not isinstance(name, str) or NAME.fullmatch(name) is None:
        raise ValueError(f"not a safe state name: {str(name)[:20]!r}")
    return name


def state_subdir(directory: str, name: str) -> str:
    """``directory/name``, both created private (0700) if missing and both checked private."""
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except FileExistsError:
        pass  # a file of that name: check_private says so
    check_private(directory)
    path = os.path.join(directory, name)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    check_private(path)
    return path


class _Subdir:
    """``directory/name``, recreated (private) when an operation finds it gone: a temp cleaner, or
    an operator, may delete it under a running bridge, which must go on serving."""

    def __init__(self, directory: str, name: str) -> None:
        self._directory, self._name = directory, name
        self.path = state_subdir(directory, name)

    def retry(self, operation: "Callable[[], T]") -> "T":
        """``operation()``; if it finds a file or the directory missing, recreate it and try once more."""
        try:
            return operation()
        except FileNotFoundError:
            if os.path.isdir(self.path):
                raise  # the directory is there: what is missing is the operation's own business
            log.warning("state directory %s was removed under the running bridge (a temp cleaner?): recreated",
                        self.path)
            state_subdir(self._directory, self._name)
            return operation()


def check_private(path: str) -> None:
    """StateDirError unless ``path`` is a directory owned by us and writable by no one else."""
    info = os.stat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise StateDirError(f"{path} is not a directory")
    if info.st_uid != os.geteuid():
        raise StateDirError(f"{path} belongs to uid {info.st_uid}, not to this process (uid {os.geteuid()})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StateDirError(f"{path} is writable by group or others (mode {stat.S_IMODE(info.st_mode):o}); "
                            "the state directory must be private to the bridge's workers")


def _try_lock(path: str, flags: int) -> int | None:
    """An fd of ``path`` holding an exclusive flock, or None if another open file holds it."""
    fd = os.open(path, flags | OPEN_FLAGS, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


# ---------------------------------------------------------------------------- the call cap
class CallSlots:
    """The call cap: ``try_enter`` admits a call unless ``limit`` are active; ``leave`` ends one.

    Without a directory: a counter of this process (one worker). With a directory and a limit:
    ``limit`` slot files in ``directory/slots``; a call holds one with an exclusive
    non-blocking ``flock`` for its lifetime, so the cap holds over every process using the
    directory, and the kernel frees the slot of a process that dies, however it dies.

    With a directory and no limit nothing is refused, but ``active_all`` still counts every
    process's calls: each instance publishes its count in ``directory/active/active-<pid>-<id>``,
    a file it keeps flocked while it lives; a count file nobody holds belongs to a dead process
    and is ignored (and removed).

    ``active`` is this instance's calls; ``active_all`` all processes' (it probes the files:
    for health checks and logs, not for every frame).
    """

    reachable = True  # the files are always there to ask (a networked backend may not be)

    def __init__(self, limit: int | None = None, directory: str | None = None) -> None:
        if limit is not None and limit < 1:
            raise ValueError("max_calls must be >= 1 (or None for no cap)")
        self.limit = limit
        self.directory = directory
        self._lock = threading.Lock()
        self._active = 0
        self._held: list[int] = []  # fds of the slots this instance holds, one per active call
        self._slot_dir = _Subdir(directory, "slots") if directory and limit else None
        self._count_dir = _Subdir(directory, "active") if directory and not limit else None
        self._slots = self._slot_dir.path if self._slot_dir else None
        self._counts = self._count_dir.path if self._count_dir else None
        self._count_fd: int | None = None
        self._count_path = ""
        self._count_pid = 0

    @property
    def shared(self) -> bool:
        """True when the cap and the counts are shared through a directory."""
        return self.directory is not None

    @property
    def active(self) -> int:
        return self._active  # one int, read without the lock: safe from a signal handler

    @property
    def active_all(self) -> int:
        """Active calls of every process sharing the directory (this one's without a directory)."""
        if self._slot_dir is not None:
            assert self.limit is not None
            self.repair()
            return self.limit - self._slot_dir.retry(lambda: self._free_slots(stop_at=None))
        if self._count_dir is not None:
            return self._count_dir.retry(self._sum_counts)
        return self.active

    def full(self) -> bool:
        """True when every slot is taken (the webhook's check; the media stream's is ``try_enter``)."""
        if self.limit is None:
            return False
        if self._slot_dir is None:
            with self._lock:
                return self._active >= self.limit
        self.repair()
        return self._slot_dir.retry(lambda: self._free_slots(stop_at=1)) == 0

    def try_enter(self) -> bool:
        if self._slot_dir is not None:
            self.repair()
            fd = self._slot_dir.retry(self._take_slot)
            if fd is None:
                return False
            with self._lock:
                self._held.append(fd)
                self._active += 1
            return True
        with self._lock:
            if self.limit is not None and self._active >= self.limit:
                return False
            self._active += 1
            self._publish(self._active)
        return True

    def leave(self) -> None:
        fd = None
        with self._lock:
            if self._active == 0:
                return
            self._active -= 1
            if self._held:
                fd = self._held.pop()
            self._publish(self._active)
        if fd is not None:
            os.close(fd)  # the last fd of that open file: the slot's flock goes with it

    def close(self) -> None:
        """Give back every slot and the count file (idempotent; a later ``leave`` is a no-op)."""
        with self._lock:
            held, self._held, self._active = self._held, [], 0
            fd, self._count_fd = self._count_fd, None
        for slot in held:
            os.close(slot)
        if fd is not None:
            try:
                os.unlink(self._count_path)
            except FileNotFoundError:
                pass
            os.close(fd)

    def repair(self) -> None:
        """Keep this instance's held slot files fresh, and move a held slot whose file was deleted
        (a temp cleaner) to a new file, so the cap still counts its call (no-op without slots)."""
        if self._slot_dir is None:
            return
        now = time.time()
        with self._lock:  # leave() closes held fds under this lock: none is closed under us
            for index, fd in enumerate(self._held):
                info = os.fstat(fd)
                if info.st_nlink and now - info.st_mtime < FRESH_S:
                    continue
                if info.st_nlink:
                    os.utime(fd)
                    continue
                new = self._slot_dir.retry(self._take_slot)
                if new is None:  # every slot is taken meanwhile: this call goes uncounted until it ends
                    repairs_log.warning("no room", "a held call slot's file was deleted and no slot is free to "
                                        "move it to: that call goes uncounted until it ends")
                    continue
                self._held[index] = new
                os.close(fd)
                log.warning("a held call slot's file was deleted (a temp cleaner?): moved to a new one")

    # ------------------------------------------------------------------ slots
    def _take_slot(self) -> int | None:
        assert self._slots is not None and self.limit is not None
        # Two passes: a probe (``full``, ``active_all``) holds a free slot for microseconds.
        for _ in range(2):
            start = random.randrange(self.limit)  # spread the processes over the slots
            for i in range(self.limit):
                fd = _try_lock(self._slot_path((start + i) % self.limit), os.O_RDWR | os.O_CREAT)
                if fd is not None:
                    os.utime(fd)  # fresh: a temp cleaner ages files by their times
                    return fd
        return None

    def _free_slots(self, stop_at: int | None) -> int:
        assert self._slots is not None and self.limit is not None
        free = 0
        for index in range(self.limit):
            fd = _try_lock(self._slot_path(index), os.O_RDWR | os.O_CREAT)
            if fd is not None:
                os.close(fd)
                free += 1
                if stop_at is not None and free >= stop_at:
                    break
        return free

    def _slot_path(self, index: int) -> str:
        assert self._slots is not None
        return os.path.join(self._slots, f"slot-{index}")

    # ------------------------------------------------------------------ counts (no limit)
    def _publish(self, count: int) -> None:
        """Write this instance's count to its count file (under ``_lock``; no directory: nothing)."""
        if self._count_dir is None:
            return
        if self._count_fd is None or self._count_pid != os.getpid() or os.fstat(self._count_fd).st_nlink == 0:
            self._count_dir.retry(self._claim_count_file)  # none yet, inherited, or deleted by a temp cleaner
        assert self._count_fd is not None
        os.pwrite(self._count_fd, f"{count:0{COUNT_WIDTH}d}\n".encode("ascii"), 0)

    def _claim_count_file(self) -> None:
        """A new count file, flocked before it gets the name readers look for."""
        assert self._counts is not None
        if self._count_fd is not None:  # inherited across a fork, or deleted: not a file readers see
            os.close(self._count_fd)
            self._count_fd = None
        pid = os.getpid()
        name = f"{pid}-{secrets.token_hex(4)}"
        temp = os.path.join(self._counts, f".{name}.tmp")
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | OPEN_FLAGS, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else has it open
        self._count_path = os.path.join(self._counts, f"active-{name}")
        os.replace(temp, self._count_path)
        self._count_fd, self._count_pid = fd, pid

    def _sum_counts(self) -> int:
        assert self._counts is not None
        total = 0
        for entry in os.listdir(self._counts):
            if not entry.startswith("active-"):
                continue
            path = os.path.join(self._counts, entry)
            try:
                fd = os.open(path, os.O_RDONLY | OPEN_FLAGS)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # held: its process is alive
                    text = os.pread(fd, COUNT_WIDTH + 1, 0)
                    total += int(text) if text.strip().isdigit() else 0
                else:  # nobody holds it: its process is gone
                    log.debug("removing the count file of a dead process: %s", entry)
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
            finally:
                os.close(fd)
        return total


# ---------------------------------------------------------------------------- sweeping
class _Sweeps:
    """When a store last swept its expired entries: at most once per interval, whichever
    thread asks first (the markers and transfers share this pacing, not their storage)."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._next = float("-inf")

    def due(self, now: float) -> bool:
        with self._lock:
            if now < self._next:
                return False
            self._next = now + self._interval_s
            return True


# ---------------------------------------------------------------------------- single use
class SingleUse:
    """Markers that can be claimed once until they expire: the used nonces of stream tokens.

    A marker is the pair (name, expiry); ``claim`` is True the first time. Without a directory
    the markers live in this process; with one, each is a file ``<expiry>-<name>`` created with
    ``O_CREAT | O_EXCL``, which exactly one process can do. Expired markers are swept at most
    every ``sweep_interval_s`` (their owner refuses an expired token before asking here, so a
    swept marker is never needed again).
    """

    def __init__(self, directory: str | None = None, sweep_interval_s: float = SWEEP_INTERVAL_S) -> None:
        self._subdir = _Subdir(directory, "used") if directory else None
        self._dir = self._subdir.path if self._subdir else None
        self._sweeps = _Sweeps(sweep_interval_s)
        self._lock = threading.Lock()
        self._used: set[tuple[int, str]] = set()

    def claim(self, name: str, expires: float, now: float) -> bool:
        """True if (``name``, ``expires``) had not been claimed; it is claimed from now on."""
        safe_name(name)
        until = int(expires)
        self._maybe_sweep(now)
        if self._dir is None:
            with self._lock:
                if (until, name) in self._used:
                    return False
                self._used.add((until, name))
                return True
        assert self._subdir is not None
        path = os.path.join(self._dir, f"{until}-{name}")
        try:
            fd = self._subdir.retry(lambda: os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | OPEN_FLAGS, 0o600))
        except FileExistsError:
            return False
        os.close(fd)
        return True

    def _maybe_sweep(self, now: float) -> None:
        if not self._sweeps.due(now):
            return
        if self._dir is None:
            with self._lock:
                self._used = {marker for marker in self._used if marker[0] >= now}
            return
        assert self._subdir is not None
        for entry in self._subdir.retry(lambda: os.listdir(self._dir)):
            until, _, _ = entry.partition("-")
            if until.isdigit() and int(until) < now:
                try:
                    os.unlink(os.path.join(self._dir, entry))
                except FileNotFoundError:
                    pass  # another process swept it first


# ---------------------------------------------------------------------------- transfers
class TransferBoard:
    """Call SID -> transfer target, from the call's end to Twilio's ``<Connect action>`` request.

    The worker that ran the media stream ``put``s; whichever worker Twilio's next request
    reaches ``take``s, once. With a directory an entry is the file ``transfers/<call SID>``
    (written whole, then renamed into place); ``take`` renames it to a name of its own first, so
    exactly one process reads it. Entries expire (``expires``, wall-clock seconds).
    """

    def __init__(self, directory: str | None = None, sweep_interval_s: float = SWEEP_INTERVAL_S) -> None:
        self._subdir = _Subdir(directory, "transfers") if directory else None
        self._dir = self._subdir.path if self._subdir else None
        self._sweeps = _Sweeps(sweep_interval_s)
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, float]] = {}

    def put(self, call_sid: str, target: str, expires: float, now: float) -> None:
        """Leave ``target`` for ``call_sid`` until ``expires``; ValueError for an unsafe SID."""
        safe_name(call_sid)
        self._maybe_sweep(now)
        if self._dir is None:
            with self._lock:
                self._entries[call_sid] = (target, expires)
            return
        assert self._subdir is not None
        temp = os.path.join(self._dir, f".{call_sid}.{secrets.token_hex(4)}.tmp")
        fd = self._subdir.retry(lambda: os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | OPEN_FLAGS, 0o600))
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"target": target, "expires": expires}, out)
        os.replace(temp, os.path.join(self._dir, call_sid))

    def take(self, call_sid: str, now: float) -> str | None:
        """The target left for ``call_sid`` (removing it), or None: none, expired, or not a SID."""
        try:
            safe_name(call_sid)
        except ValueError:
            return None  # never stored
        self._maybe_sweep(now)
        if self._dir is None:
            with self._lock:
                entry = self._entries.pop(call_sid, None)
        else:
            entry = self._take_file(os.path.join(self._dir, call_sid))
        if entry is None or entry[1] < now:
            return None
        return entry[0]

    def _take_file(self, path: str) -> tuple[str, float] | None:
        assert self._dir is not None
        mine = os.path.join(self._dir, f".{os.path.basename(path)}.{secrets.token_hex(4)}.taken")
        try:
            os.rename(path, mine)  # atomic: of two takers, one finds it gone
        except FileNotFoundError:
            return None
        try:
            return _read_entry(mine)
        finally:
            os.unlink(mine)

    def _maybe_sweep(self, now: float) -> None:
        if not self._sweeps.due(now):
            return
        if self._dir is None:
            with self._lock:
                self._entries = {sid: e for sid, e in self._entries.items() if e[1] >= now}
            return
        assert self._subdir is not None
        for entry in self._subdir.retry(lambda: os.listdir(self._dir)):
            path = os.path.join(self._dir, entry)
            try:
                if entry.startswith("."):  # a crash mid-write or mid-take
                    stale = os.stat(path).st_mtime < time.time() - STALE_TEMP_S
                else:
                    found = _read_entry(path)
                    stale = found is None or found[1] < now
                if stale:
                    os.unlink(path)
            except FileNotFoundError:
                pass  # taken or swept meanwhile


def _read_entry(path: str) -> tuple[str, float] | None:
    """(target, expires) from a transfer file, or None if it is not one."""
    fd = os.open(path, os.O_RDONLY | OPEN_FLAGS)
    with os.fdopen(fd, "r", encoding="utf-8") as src:
        try:
            data = json.loads(src.read(4096))
        except ValueError:
            return None
    if not isinstance(data, dict):
        return None
    target, expires = data.get("target"), data.get("expires")
    if not isinstance(target, str) or not isinstance(expires, (int, float)):
        return None
    return target, float(expires)
