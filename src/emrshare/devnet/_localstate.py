"""What :class:`~emrshare.devnet.LocalNetwork` keeps under its directory, and how a new
start deals with what an earlier one left there.

The in-process chain lives in memory: every :meth:`LocalNetwork.start` is a new chain.
State on disk that an earlier start derived from its chain (the store's blobs, the
proxies' kfrags and watcher positions, the members' journals) therefore belongs to a
chain that is gone, and resuming it ends in confusing errors (a proxy sees the chain
"reorganised" below the block it remembers, or has no kfrag for a new grant). So a start
begins clean: it removes exactly the entries its predecessor recorded in the marker file
``local-network.json`` (never the directory itself, nothing it did not create, no
symlink), says so in one log line, and writes a new marker. Entries that look like ours
but are not in a marker (an older emrshare, another tool) are a
:class:`~emrshare.errors.LocalStateError`: nothing is deleted. A flock on ``.lock``
keeps two live networks out of one directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import stat
from pathlib import Path

from emrshare._files import read_json_object, write_atomically
from emrshare.errors import LocalStateError

__all__ = ["MARKER", "claim", "lock"]

log = logging.getLogger("emrshare.devnet")

#: The marker file: which chain run the directory's state belongs to, and what it created.
MARKER = "local-network.json"
_VERSION = 1


def lock(path: Path) -> int:
    """An exclusive flock on ``path/.lock`` (held until the fd is closed; it dies with
    the process). :class:`LocalStateError` if another live network holds it."""
    fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LocalStateError(
            path,
            f"{path} is in use by another running LocalNetwork; close it first, or start "
            "this one in another directory",
        ) from None
    return fd


def claim(path: Path, created: list[str], *, chain_id: int, genesis: str) -> str:
    """Make ``path`` ready for a new in-process chain and record it; returns the run id.

    ``created`` names the entries (direct children of ``path``) this start will create.
    Those an earlier start recorded are removed; any of them present but unrecorded is a
    :class:`LocalStateError`. Call with the :func:`lock` held."""
    marker = path / MARKER
    try:
        previous = _recorded(marker)
    except FileNotFoundError:
        previous = None
    if previous is None:
        strays = sorted(n for n in created if os.path.lexists(path / n))
        if strays:
            raise LocalStateError(
                path,
                f"{path} holds {', '.join(strays)} that no LocalNetwork recorded creating "
                f"(there is no {MARKER}); LocalNetwork will not delete them: move them "
                "aside, or start the network in an empty directory",
            )
    else:
        run, names = previous
        removed = [n for n in names if _remove(path, n)]
        log.info(
            "LocalNetwork: %s held the state of an earlier in-process chain (run %s, "
            "gone with its process); starting clean, removed %s",
            path,
            run,
            ", ".join(removed) or "nothing",
        )
    run = secrets.token_hex(8)
    write_atomically(
        marker,
        json.dumps(
            {
                "version": _VERSION,
                "run": run,
                "chain_id": chain_id,
                "genesis": genesis,
                "created": sorted(set(created)),
            },
            indent=2,
        )
        + "\n",
    )
    return run


def _recorded(marker: Path) -> tuple[str, list[str]]:
    data = read_json_object(marker, "LocalNetwork marker")
    names = data.get("created")
    if (
        data.get("version") != _VERSION
        or not isinstance(names, list)
        or not all(isinstance(n, str) and _plain_name(n) for n in names)
    ):
        raise LocalStateError(
            marker,
            f"{marker} is not a LocalNetwork marker this version writes; move it (and "
            "what it lists) aside, or start the network in an empty directory",
        )
    return str(data.get("run", "?")), names


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


def _remove(path: Path, name: str) -> bool:
    """Remove ``path/name`` if it is a directory or file (never a symlink: LocalNetwork
    creates none, so one there is not ours and stays)."""
    target = path / name
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise LocalStateError(
            target,
            f"{target} is a symlink, which LocalNetwork never creates; it is left alone: "
            "remove it, or start the network in another directory",
        )
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(target)
    else:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
    return True
