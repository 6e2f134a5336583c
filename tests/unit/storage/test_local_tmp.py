"""LocalStore temp files (issue 12, item 1): a writer killed or interrupted mid-put left
its ``tmp/*.tmp`` files behind for good. Now an interrupted put deletes its own, opening
the store reclaims a dead writer's, and a live writer's (in another process) survive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from emrshare.storage import LocalStore, read_all
from emrshare.storage._disk import RECLAIM_LIMIT, reclaim_stale, tmp_name, writer_pid
from emrshare.types import Cid

# Puts 4 MiB (16 blocks: temp files, not yet renamed: a batch is 64 MiB), says "ready",
# then either dies by SIGKILL (no cleanup runs) or waits for a line and finishes the put.
WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from emrshare.storage import LocalStore

    store = LocalStore(sys.argv[1])
    mode = sys.argv[2]

    def content():
        for i in range(16):
            yield bytes([i]) * (256 * 1024)
        print("ready", flush=True)
        if mode == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        sys.stdin.readline()
        yield b"tail"

    print(store.put(content()), flush=True)
    """
)


def _writer(tmp_path: Path, store: Path, mode: str) -> subprocess.Popen[str]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _tmp_of(store: Path, pid: int) -> list[Path]:
    return [p for p in (store / "tmp").iterdir() if writer_pid(p) == pid]


def test_attack_interrupts_leave_temp_files_forever(tmp_path: Path) -> None:
    path = tmp_path / "store"
    LocalStore(path)
    dead = _writer(tmp_path, path, "die")
    assert dead.wait(timeout=60) == -signal.SIGKILL
    assert len(_tmp_of(path, dead.pid)) >= 16, "the killed writer left its temp files"

    live = _writer(tmp_path, path, "live")
    try:
        mine = _tmp_of(path, live.pid)
        assert len(mine) >= 16
        # Another process opens the store: the dead writer's files go, the live one's stay.
        LocalStore(path)
        assert _tmp_of(path, dead.pid) == []
        assert _tmp_of(path, live.pid) == mine
        assert LocalStore(path).reclaim_temp_files() == 0
    finally:
        assert live.stdin is not None and live.stdout is not None
        live.stdin.write("go\n")
        live.stdin.flush()
        cid = Cid(live.stdout.readline().strip())
        assert live.wait(timeout=60) == 0
    # The live writer's put completed with its temp files intact.
    expected = b"".join(bytes([i]) * (256 * 1024) for i in range(16)) + b"tail"
    assert read_all(LocalStore(path), cid, max_size=len(expected)) == expected
    assert list((path / "tmp").iterdir()) == []


def test_an_interrupted_put_deletes_its_own_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")

    def content() -> object:
        for i in range(8):
            yield bytes([i]) * (256 * 1024)
        raise KeyboardInterrupt  # Ctrl-C in the middle of a put

    try:
        store.put(content())  # type: ignore[arg-type]
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the put should have been interrupted")
    assert list((tmp_path / "store" / "tmp").iterdir()) == []


def test_reclaim_is_bounded_and_leaves_foreign_names(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    for n in range(5):
        (tmp / f"key{n}.data.{pid}.1.{n}.tmp").write_bytes(b"x")
    (tmp / "notes.txt").write_bytes(b"not ours")
    (tmp / f"key.data.{os.getpid()}.1.0.tmp").write_bytes(b"mine, alive")
    first = reclaim_stale(tmp, limit=3)  # bounded: at most 3 names looked at
    assert first <= 3 and len(list(tmp.iterdir())) == 7 - first
    assert reclaim_stale(tmp) == 5 - first
    assert sorted(p.name for p in tmp.iterdir()) == sorted(
        ["notes.txt", f"key.data.{os.getpid()}.1.0.tmp"]
    )
    assert RECLAIM_LIMIT >= 1000


def test_attack_a_writer_in_another_pid_space_loses_its_temp_files(tmp_path: Path) -> None:
    # A store shared with a container (its own pid namespace) or another host: their
    # writers' pids are dead or unrelated here, so their live temp files must not go.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    ours = tmp_name(tmp, "a.data")
    space = ours.name.rsplit(".", 4)[2].rpartition("-")[2]
    assert space and ours.name.startswith(f"a.data.{os.getpid()}.")
    here = tmp / f"b.data.{pid}.1-{space}.0.tmp"
    foreign = tmp / f"c.data.{pid}.1-{'0' if space[0] != '0' else '1'}{space[1:]}.0.tmp"
    for p in (here, foreign):
        p.write_bytes(b"x")
    assert reclaim_stale(tmp) == 1
    assert sorted(p.name for p in tmp.iterdir()) == [foreign.name]


def test_attack_an_odd_name_in_tmp_keeps_the_store_from_opening(tmp_path: Path) -> None:
    # A name with a "pid" too large for kill(2), and a directory under a dead pid's
    # name: opening the store raised OverflowError / IsADirectoryError (a traceback).
    path = tmp_path / "store"
    LocalStore(path)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    huge = path / "tmp" / f"a.data.{10**20}.1.0.tmp"
    huge.write_bytes(b"x")
    odd_dir = path / "tmp" / f"b.data.{int(dead.stdout)}.1.0.tmp"
    odd_dir.mkdir()
    LocalStore(path)
    assert huge.exists() and odd_dir.is_dir()  # left alone
