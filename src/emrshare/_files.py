"""Owner-only local files: crash-safe replacement, safe reads, private dirs and databases.

Shared by every layer that keeps files in a data directory (keystores, profiles, patient
state, event cursors, deployment files, the write journal, the proxy database, devnet
state and logs). The rules they enforce:

* files are created 0600 from the start (``O_CREAT`` with the mode, or ``mkstemp``), never
  chmod'ed afterwards; directories are created 0700. Files and directories left
  group/world-readable by release 1 are tightened when opened.
* a symlink (or a FIFO, a directory, a device) planted where we read or write a file is
  refused, never followed: writes replace the path atomically (``rename`` replaces a
  symlink, it does not write through it) and reads and appends use ``O_NOFOLLOW``.
* a damaged file is a :class:`~emrshare.errors.LocalStateError` naming the path and what
  to do; the damaged file is left byte-identical.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import stat
import tempfile
from pathlib import Path
from typing import Any

from emrshare.errors import LocalStateError

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
#: Local JSON state is small; a larger file is damage (or an attempt to exhaust memory).
MAX_JSON_BYTES = 4 * 1024 * 1024
_ASIDE = "restore it from a backup or move it aside"


def write_atomically(path: Path, text: str | bytes) -> None:
    """Replace ``path`` with ``text``, mode 0600: unique temp file, fsync, rename, dir fsync.

    A crash (even a power loss) leaves the old content or the new one, never a torn file,
    and two processes writing at once cannot interleave inside one temp file. The temp
    file is created 0600 by ``mkstemp`` (no window with a looser mode), and a symlink
    planted at ``path`` is replaced, never written through. The parent directory must
    exist; OS errors propagate for the caller to put in its own terms.
    """
    data = text.encode() if isinstance(text, str) else text
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def private_dir(path: Path) -> Path:
    """Make ``path`` (and missing parents) a directory, each one it creates 0700.

    Any failure is a :class:`LocalStateError`. An existing directory with group or other
    bits (release 1 made them 0755) is tightened to 0700 if this user owns it. Returns
    ``path``.
    """
    path = Path(path)
    missing: list[Path] = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, PRIVATE_DIR)  # the umask can only remove bits from 0700
        except FileExistsError:
            pass
        except OSError as exc:
            raise LocalStateError(
                d,
                f"cannot create the directory {d} ({exc.strerror or exc}); check the "
                "permissions of its parent",
            ) from exc
    if not path.is_dir():
        raise LocalStateError(
            path, f"{path} should be a directory but is not; move it aside and retry"
        )
    tighten(path)
    return path


def tighten(path: Path) -> None:
    """Remove group and other permission bits from ``path`` (not following a symlink), if
    this user owns it; silently nothing otherwise."""
    with contextlib.suppress(OSError):
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid() or not st.st_mode & 0o077:
            return
        os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)


def tighten_tree(root: Path) -> None:
    """:func:`tighten` ``root`` and everything below it (symlinks are not followed)."""
    if not Path(root).is_dir():
        return
    tighten(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            tighten(Path(dirpath) / name)


def tighten_data_dir(root: Path) -> None:
    """If ``root`` is a directory of ours with group or other bits (as release 1 left data
    directories), :func:`tighten_tree` it once; a 0700 ``root`` costs one ``stat``."""
    with contextlib.suppress(OSError):
        st = os.lstat(root)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077:
            tighten_tree(root)


def read_private(path: Path, what: str, *, max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of the regular file ``path``, opened without following a symlink.

    ``FileNotFoundError`` propagates (the caller decides what a missing file means);
    anything else wrong is a :class:`LocalStateError` saying what ``what`` is and what to
    do. A file with loose permission bits is tightened after it was read.
    """
    fd, st = _open_regular(path, os.O_RDONLY | os.O_NONBLOCK, what)
    try:
        if st.st_size > max_bytes:
            raise LocalStateError(
                path, f"{what} {path} is too large ({st.st_size} bytes) to be ours; {_ASIDE}"
            )
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            if sum(map(len, chunks)) > max_bytes:
                raise LocalStateError(path, f"{what} {path} is too large to be ours; {_ASIDE}")
    except OSError as exc:
        raise LocalStateError(path, f"{what} {path} {_why(path, exc)}; {_ASIDE}") from exc
    finally:
        os.close(fd)
    tighten(path)
    return b"".join(chunks)


def _open_regular(path: Path, flags: int, what: str) -> tuple[int, os.stat_result]:
    """``path`` opened with ``flags`` without following a symlink, and its status; a
    :class:`LocalStateError` unless it is a regular file (``FileNotFoundError`` passes)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise LocalStateError(path, f"{what} {path} {_why(path, exc)}; {_ASIDE}") from exc
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise LocalStateError(path, f"{what} {path} {_why(path, exc)}; {_ASIDE}") from exc
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise LocalStateError(path, f"{what} {path} is not a regular file; {_ASIDE}")
    return fd, st


def _why(path: Path, exc: OSError) -> str:
    if os.path.islink(path):
        return "is a symbolic link (refused: it could point anywhere)"
    if os.path.isdir(path):
        return "is a directory, not a file"
    if isinstance(exc, PermissionError):
        return "cannot be read (permission denied)"
    return f"cannot be read ({exc.strerror or exc})"


#: Our JSON nests a few levels; py_ecc raises the recursion limit to 100000, so the C JSON
#: scanner would overflow the stack (a segfault, not an exception) on ``[[[[…``.
MAX_JSON_DEPTH = 64
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def nesting_depth(text: str) -> int:
    """How deep brackets and braces nest in ``text``, outside JSON strings (an upper
    bound for TOML, where ``'`` strings are not skipped)."""
    depth = deepest = 0
    for m in _BRACKETS.finditer(_STRINGS.sub("", text)):
        if m.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def loads_json(text: str) -> Any:
    """``json.loads`` that raises ``ValueError`` for input nested deeper than
    :data:`MAX_JSON_DEPTH` instead of crashing the interpreter."""
    if nesting_depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return json.loads(text)


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path`` (see :func:`read_private`); any other JSON value, bad
    UTF-8 or bad JSON is a :class:`LocalStateError`."""
    raw = read_private(path, what)
    try:
        data = loads_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise LocalStateError(
            path, f"{what} {path} is not valid JSON (truncated or damaged); {_ASIDE}"
        ) from exc
    if not isinstance(data, dict):
        raise LocalStateError(
            path,
            f"{what} {path} holds a JSON {type(data).__name__}, not an object; {_ASIDE}",
        )
    return data


def damaged(path: Path, what: str, problem: str) -> LocalStateError:
    """The error for a file that parsed but has the wrong shape (``problem`` says how)."""
    return LocalStateError(path, f"{what} {path} is damaged: {problem}; {_ASIDE}")


def open_private_append(path: Path) -> int:
    """An ``O_APPEND`` descriptor on ``path`` (a log), created 0600, never through a symlink;
    a log left 0644 by release 1 is tightened. Raises :class:`LocalStateError`."""
    try:
        fd = os.open(
            path,
            os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
            PRIVATE_FILE,
        )
    except OSError as exc:
        raise LocalStateError(path, f"log {path} {_why(path, exc)}; {_ASIDE}") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise LocalStateError(path, f"log {path} is not a regular file; {_ASIDE}")
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        os.fchmod(fd, PRIVATE_FILE)
    return fd


def open_private_write(path: Path) -> int:
    """``path`` opened for writing and truncated, created 0600 (a file left looser is
    tightened), never through a symlink. Returns the descriptor; OS errors propagate."""
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE
    )
    os.fchmod(fd, PRIVATE_FILE)
    return fd


def connect_sqlite(path: Path, what: str, schema: str, **kwargs: Any) -> sqlite3.Connection:
    """Open the SQLite database ``path``, or create it (0600 from the start) with
    ``schema``, in WAL mode, and check that it is one.

    A new database is built in a private temp file and linked into place complete, so an
    empty ``path`` is never one of ours: a symlink, a directory, an unreadable, empty,
    garbage or truncated file is a :class:`LocalStateError` and the file is left as it
    was. SQLite gives the ``-wal`` and ``-shm`` files the database file's mode.
    ``kwargs`` go to :func:`sqlite3.connect`.
    """
    private_dir(path.parent)
    if not os.path.lexists(path):
        _create_sqlite(path, schema)
    try:
        fd, st = _open_regular(path, os.O_RDWR, what)
    except FileNotFoundError as exc:  # removed between the check above and the open
        raise LocalStateError(path, f"{what} {path} {_why(path, exc)}; {_ASIDE}") from exc
    try:
        if st.st_size == 0:
            raise LocalStateError(path, f"{what} {path} is empty (truncated); {_ASIDE}")
        if st.st_mode & 0o077 and st.st_uid == os.geteuid():
            os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    for side in ("-wal", "-shm"):
        tighten(Path(f"{path}{side}"))
    db: sqlite3.Connection | None = None
    try:
        db = sqlite3.connect(path, **kwargs)
        rows = db.execute("PRAGMA quick_check").fetchall()
        if rows != [("ok",)]:
            raise sqlite3.DatabaseError("quick_check: " + "; ".join(str(r[0]) for r in rows[:3]))
    except sqlite3.Error as exc:
        if db is not None:
            db.close()
        raise LocalStateError(
            path, f"{what} {path} is not a readable SQLite database (damaged); {_ASIDE}"
        ) from exc
    return db


def _create_sqlite(path: Path, schema: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    os.close(fd)
    try:
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(schema)
        finally:
            db.close()
        with contextlib.suppress(FileExistsError):  # another process created it first
            os.link(tmp, path)
    finally:
        for name in (tmp, f"{tmp}-wal", f"{tmp}-shm"):
            Path(name).unlink(missing_ok=True)
