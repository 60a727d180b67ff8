"""State shared by worker processes through a directory: real processes (spawned), real files.

Children are started with multiprocessing's spawn context (a fresh interpreter, as a gunicorn
worker is a separate process), always joined or killed, and every wait is bounded.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import stat
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from voicebridge.serving.filestate import MAX_NAME_CHARS, CallSlots, SingleUse, StateDirError, TransferBoard, safe_name
from voicebridge.carrier.streamtoken import StreamTokens, TokenCheck

CTX = multiprocessing.get_context("spawn")
WAIT_S = 20.0  # spawning imports the test module: seconds, not milliseconds, on a busy machine
CALL = "CA" + "1" * 32


@pytest.fixture
def children() -> Iterator[list[Any]]:
    """Processes started by a test; any still alive afterwards are killed and joined."""
    started: list[Any] = []
    yield started
    for process in started:
        if process.is_alive():
            process.kill()
        process.join(5)


def spawn(children: list[Any], target: Any, *args: Any) -> Any:
    process = CTX.Process(target=target, args=args, daemon=True)
    process.start()
    children.append(process)
    return process


# ---------------------------------------------------------------------------- children
def hold_calls(directory: str, limit: int | None, attempts: int, start: Any, report: Any, release: Any) -> None:
    """Try ``attempts`` calls under a shared cap (all children at once), report how many got in, hold them."""
    slots = CallSlots(limit, directory)
    start.wait(WAIT_S)
    report.put(sum(slots.try_enter() for _ in range(attempts)))
    release.wait(WAIT_S)
    for _ in range(slots.active):
        slots.leave()
    slots.close()


def claim_nonce(directory: str, name: str, expires: float, now: float, report: Any) -> None:
    report.put(SingleUse(directory).claim(name, expires, now))


def take_transfers(directory: str, sids: list[str], now: float, start: Any, report: Any) -> None:
    board = TransferBoard(directory)
    start.wait(WAIT_S)
    report.put({sid: board.take(sid, now) for sid in sids})


def put_transfer(directory: str, sid: str, target: str, expires: float, now: float) -> None:
    TransferBoard(directory).put(sid, target, expires, now)


# ---------------------------------------------------------------------------- the cap
def test_a_cap_of_two_shared_by_two_processes_admits_exactly_two(tmp_path: Path, children: list[Any]) -> None:
    state = str(tmp_path / "state")
    start, release, report = CTX.Barrier(3), CTX.Event(), CTX.Queue()
    for _ in range(2):
        spawn(children, hold_calls, state, 2, 2, start, report, release)
    start.wait(WAIT_S)  # both children try their two calls at the same moment
    admitted = [report.get(timeout=WAIT_S) for _ in range(2)]
    assert sum(admitted) == 2
    here = CallSlots(2, state)
    assert here.full() and not here.try_enter() and here.active_all == 2 and here.active == 0
    release.set()
    for child in children:
        child.join(WAIT_S)
        assert child.exitcode == 0
    assert not here.full() and here.active_all == 0
    assert here.try_enter() and here.try_enter() and not here.try_enter()
    assert here.active == 2 and here.active_all == 2
    here.leave()
    assert here.active == 1 and not here.full()
    here.close()
    assert here.active_all == 0


def test_a_slot_is_freed_when_its_holder_is_killed(tmp_path: Path, children: list[Any]) -> None:
    state = str(tmp_path / "state")
    start, release, report = CTX.Barrier(2), CTX.Event(), CTX.Queue()
    holder = spawn(children, hold_calls, state, 1, 1, start, report, release)
    start.wait(WAIT_S)
    assert report.get(timeout=WAIT_S) == 1
    here = CallSlots(1, state)
    assert here.full() and not here.try_enter()
    os.kill(holder.pid, signal.SIGKILL)  # no leave(), no close(), no atexit: the kernel lets go
    holder.join(WAIT_S)
    assert holder.exitcode == -signal.SIGKILL
    assert not here.full() and here.try_enter()
    here.close()


def test_counts_without_a_cap_add_up_over_processes_and_forget_the_dead(tmp_path: Path,
                                                                        children: list[Any]) -> None:
    state = str(tmp_path / "state")
    start, release, report = CTX.Barrier(2), CTX.Event(), CTX.Queue()
    other = spawn(children, hold_calls, state, None, 3, start, report, release)
    start.wait(WAIT_S)
    assert report.get(timeout=WAIT_S) == 3  # no cap: nothing is refused
    here = CallSlots(None, state)
    assert here.try_enter() and not here.full()
    assert (here.active, here.active_all) == (1, 4)
    os.kill(other.pid, signal.SIGKILL)
    other.join(WAIT_S)
    assert here.active_all == 1
    names = [p.name for p in (tmp_path / "state" / "active").iterdir()]  # the dead one's file is gone
    assert len(names) == 1 and names[0].startswith(f"active-{os.getpid()}-")
    here.leave()
    assert here.active_all == 0
    here.close()
    assert list((tmp_path / "state" / "active").iterdir()) == []


@pytest.mark.parametrize("removed", ["slots", "."])
def test_a_state_directory_deleted_under_a_live_call_is_recreated_and_still_counts_it(tmp_path: Path,
                                                                                      removed: str) -> None:
    """What systemd-tmpfiles' age rule did to a directory in /tmp: the bridge goes on, and the cap
    still counts the call that held a slot when its file went."""
    state = tmp_path / "state"
    here, other = CallSlots(2, str(state)), CallSlots(2, str(state))  # two workers
    used, board = SingleUse(str(state)), TransferBoard(str(state))
    assert here.try_enter()  # the live call
    shutil.rmtree(state / removed)
    assert not other.full() and other.active_all == 0  # the other worker cannot know yet ...
    assert not here.full() and here.active_all == 1  # ... until this one looks: the call moves to a new file
    assert other.active_all == 1
    assert other.try_enter() and other.full() and not here.try_enter()  # the cap of 2 holds
    assert used.claim("nonce", 2000, now=1000) and not used.claim("nonce", 2000, now=1001)
    board.put(CALL, "+15551234567", 2000, now=1000)
    assert board.take(CALL, now=1001) == "+15551234567"
    counts = CallSlots(None, str(state))
    assert counts.try_enter()
    shutil.rmtree(state / "active")
    counts.leave()
    assert counts.try_enter() and counts.active_all == 1  # its count file is written again
    for slots in (here, other, counts):
        slots.close()
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700


def test_held_slot_files_are_kept_fresh_for_temp_cleaners(tmp_path: Path) -> None:
    state = tmp_path / "state"
    slots = CallSlots(3, str(state))
    assert not slots.full()  # the probe makes the slot files
    old = time.time() - 20 * 24 * 3600
    for path in (state / "slots").iterdir():
        os.utime(path, (old, old))
    assert slots.try_enter()
    fresh = [p.name for p in (state / "slots").iterdir() if p.stat().st_mtime > old + 3600]
    assert len(fresh) == 1  # the file taken is touched, the free ones are left alone
    held = state / "slots" / fresh[0]
    os.utime(held, (old, old))  # as if the call had held it for 20 days
    assert not slots.full()
    assert held.stat().st_mtime > time.time() - 3600  # touched again while held
    slots.close()


def test_without_a_directory_the_cap_is_this_process_only(tmp_path: Path) -> None:
    slots = CallSlots(1)
    assert not slots.shared and slots.try_enter() and slots.full() and not slots.try_enter()
    assert (slots.active, slots.active_all) == (1, 1)
    slots.leave()
    slots.leave()  # one too many: never below zero
    assert slots.active == 0 and not slots.full()
    assert not CallSlots(None).full()
    with pytest.raises(ValueError):
        CallSlots(0)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- single use
def test_a_nonce_is_single_use_across_stores_and_processes(tmp_path: Path, children: list[Any]) -> None:
    state = str(tmp_path / "state")
    first, second = SingleUse(state), SingleUse(state)
    assert first.claim("nonce_A", 1030, now=1000) is True
    assert second.claim("nonce_A", 1030, now=1001) is False
    assert first.claim("nonce_A", 1030, now=1002) is False
    report = CTX.Queue()
    spawn(children, claim_nonce, state, "nonce_B", 1030.0, 1000.0, report)
    assert report.get(timeout=WAIT_S) is True
    assert second.claim("nonce_B", 1030, now=1001) is False
    # Tokens signed with the same auth token: any worker checks them, each is redeemed once.
    issuer, checker = StreamTokens("auth-token", store=first), StreamTokens("auth-token", store=second)
    token = issuer.issue(CALL, now=time.time())
    assert checker.redeem(token, CALL, now=time.time()) is TokenCheck.VALID
    assert issuer.redeem(token, CALL, now=time.time()) is TokenCheck.REUSED


def test_expired_markers_are_swept(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = SingleUse(str(state), sweep_interval_s=10)
    assert store.claim("old", 1010, now=1000) and store.claim("new", 1100, now=1000)
    assert sorted(p.name for p in (state / "used").iterdir()) == ["1010-old", "1100-new"]
    assert store.claim("other", 1200, now=1005)  # within the interval: no sweep yet
    assert len(list((state / "used").iterdir())) == 3
    assert store.claim("later", 1300, now=1050)
    assert sorted(p.name for p in (state / "used").iterdir()) == ["1100-new", "1200-other", "1300-later"]
    memory = SingleUse(sweep_interval_s=10)
    assert memory.claim("x", 1010, now=1000) and not memory.claim("x", 1010, now=1001)
    assert memory.claim("y", 1100, now=1050) and memory._used == {(1100, "y")}


# ---------------------------------------------------------------------------- transfers
def test_a_transfer_written_in_one_process_is_read_once_in_another(tmp_path: Path, children: list[Any]) -> None:
    state = str(tmp_path / "state")
    now = time.time()
    writer = spawn(children, put_transfer, state, CALL, "+15551234567", now + 60, now)
    writer.join(WAIT_S)
    assert writer.exitcode == 0
    board = TransferBoard(state)
    assert board.take(CALL, now + 1) == "+15551234567"
    assert board.take(CALL, now + 1) is None  # read once
    board.put(CALL, "sip:desk@example.com", now + 60, now)
    assert board.take(CALL, now + 61) is None  # expired
    assert board.take("CA" + "2" * 32, now) is None  # never written
    memory = TransferBoard()
    memory.put(CALL, "+15550000000", now + 60, now)
    assert memory.take(CALL, now) == "+15550000000" and memory.take(CALL, now) is None


def test_two_processes_taking_the_same_transfers_get_each_exactly_once(tmp_path: Path,
                                                                      children: list[Any]) -> None:
    state = str(tmp_path / "state")
    now = time.time()
    board = TransferBoard(state)
    sids = [f"CA{i:032d}" for i in range(40)]
    for sid in sids:
        board.put(sid, f"+1555{sid[-7:]}", now + 60, now)
    start, report = CTX.Barrier(3), CTX.Queue()
    for _ in range(2):
        spawn(children, take_transfers, state, sids, now, start, report)
    start.wait(WAIT_S)
    results = [report.get(timeout=WAIT_S) for _ in range(2)]
    for sid in sids:
        got = [r[sid] for r in results if r[sid] is not None]
        assert got == [f"+1555{sid[-7:]}"], sid
    assert [p.name for p in (tmp_path / "state" / "transfers").iterdir()] == []


# ---------------------------------------------------------------------------- hostile input
@pytest.mark.parametrize("name", ["", "../../etc/passwd", "a/b", ".hidden", "x" * (MAX_NAME_CHARS + 1), "caf\u00e9",
                                  "CA1\n", "nul\x00", "a b", None, 42])
def test_hostile_names_never_reach_the_filesystem(tmp_path: Path, name: Any) -> None:
    state = tmp_path / "state"
    with pytest.raises(ValueError):
        safe_name(name)
    board, store = TransferBoard(str(state)), SingleUse(str(state))
    assert board.take(name, time.time()) is None
    with pytest.raises(ValueError):
        board.put(name, "+15551234567", time.time() + 60, time.time())
    with pytest.raises(ValueError):
        store.claim(name, time.time() + 30, time.time())
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files == []
    assert safe_name("CA" + "f" * 32) == "CA" + "f" * 32 and safe_name("a" * MAX_NAME_CHARS)


def test_the_state_directory_must_be_private(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(StateDirError, match="writable by group or others"):
        CallSlots(2, str(shared))
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(StateDirError, match="not a directory"):
        TransferBoard(str(not_a_dir))
    made = tmp_path / "made" / "here"
    SingleUse(str(made))
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    assert stat.S_IMODE((made / "used").stat().st_mode) == 0o700
