"""The durable log of a patient's multi-transaction operations, and the patient's local
epoch state (see :mod:`emrshare.roles._ops` for the steps).

Both live in the patient's state dir: private files (0600) in private directories (0700),
replaced atomically, so a crash leaves the old content or the new, never a torn file.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emrshare._files import damaged, loads_json, private_dir, read_private, write_atomically
from emrshare.chain import policy_id
from emrshare.crypto import PatientKeys, validate_category
from emrshare.errors import ConfigurationError
from emrshare.roles._state import load_epochs, save_epochs
from emrshare.types import PolicyId

__all__ = ["EpochState", "Operation", "OperationLog", "OperationResult", "Step", "new_operation"]

_VERSION = 1
Step = dict[str, Any]


class EpochState:
    """The current epoch of each category (``patient.json``), mirrored to the chain's
    sealed state log (:mod:`emrshare.roles._statelog`).

    ``restore`` gives the chain's epochs: on a state dir without ``patient.json`` (a new
    machine) they are merged in on first use, not in the constructor (which contacts
    nothing). ``changed`` runs after every local change (publishes it); ``sync`` at the
    start of every patient write (publishes what a crash left unpublished).
    ``known`` names categories to add at epoch 0 (the older ``known_categories``).
    """

    def __init__(
        self,
        path: Path,
        *,
        known: Iterable[str] = (),
        restore: Callable[[], Mapping[str, int]] | None = None,
        changed: Callable[[], object] | None = None,
        sync: Callable[[], object] | None = None,
    ) -> None:
        self.path = path
        self._known = [validate_category(c) for c in known]
        self._restore, self._changed, self._sync = restore, changed, sync
        self._epochs: dict[str, int] | None = None

    @property
    def epochs(self) -> dict[str, int]:
        """Category → current epoch (the same dict for the object's life)."""
        if self._epochs is None:
            fresh = not self.path.exists()
            self._epochs = self._load()
            if fresh and self._restore is not None:
                found = self._restore()
                self.absorb(found)
            for c in self._known:
                self._epochs.setdefault(c, 0)
        return self._epochs

    def _load(self) -> dict[str, int]:
        # Checked: a damaged patient.json is a LocalStateError and is never overwritten.
        return load_epochs(self.path)

    def reload(self) -> None:
        """Take in what another process of this patient moved forward (epochs only grow),
        then publish what is unpublished (every write starts here)."""
        for c, e in self._load().items():
            self.epochs[c] = max(e, self.epochs.get(c, 0))
        if self._sync is not None:
            self._sync()

    def absorb(self, epochs: Mapping[str, int]) -> bool:
        """Raise categories to ``epochs`` (the chain's) and save, without publishing them
        back; True if anything moved."""
        moved = False
        for c, e in epochs.items():
            if self.epochs.get(c, -1) < e:
                self.epochs[validate_category(c)] = e
                moved = True
        if moved:
            self._save(publish=False)
        return moved

    def _save(self, *, publish: bool = True) -> None:
        private_dir(self.path.parent)
        save_epochs(self.path, self.epochs)
        if publish and self._changed is not None:
            self._changed()

    def get(self, category: str) -> int:
        return self.epochs.get(validate_category(category), 0)

    def remember(self, category: str) -> int:
        """The category's epoch, recording a new category at epoch 0."""
        category = validate_category(category)
        if category not in self.epochs:
            self.epochs[category] = 0
            self._save()
        return self.epochs[category]

    def raise_to(self, category: str, epoch: int) -> None:
        """Move the category to ``epoch`` unless it is there or beyond (idempotent)."""
        if self.epochs.get(category, 0) < epoch:
            self.epochs[category] = epoch
            self._save()


@dataclass(frozen=True, slots=True)
class Operation:
    """One logged multi-transaction operation: what was asked and the plan of steps."""

    op_id: str  # 32 hex digits
    kind: str  # "grant" | "approve" | "revoke"
    args: dict[str, Any]  # the call as made (JSON values): a re-run with equal args is this one
    steps: tuple[Step, ...]
    created: int = 0  # ns since the epoch, orders pending operations

    def nonce(self, keys: PatientKeys, index: int) -> bytes:
        return keys.operation_nonce(bytes.fromhex(self.op_id), index)

    def policy_id(self, keys: PatientKeys, index: int) -> PolicyId:
        return policy_id(keys.address, self.nonce(keys, index))

    def grant_ids(self, keys: PatientKeys) -> list[PolicyId]:
        """Policy ids of the operation's grant steps, in step order."""
        return [self.policy_id(keys, i) for i, s in enumerate(self.steps) if s["do"] == "grant"]

    def to_json(self) -> str:
        body = {
            "version": _VERSION,
            "id": self.op_id,
            "kind": self.kind,
            "args": self.args,
            "steps": list(self.steps),
            "created": self.created,
        }
        return json.dumps(body, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Operation:
        data = loads_json(text)
        if data.get("version") != _VERSION:
            raise ValueError(f"unknown operation log version {data.get('version')!r}")
        return cls(
            str(data["id"]),
            str(data["kind"]),
            dict(data["args"]),
            tuple(dict(s) for s in data["steps"]),
            int(data.get("created", 0)),
        )


@dataclass(frozen=True, slots=True)
class OperationResult:
    """What running (or resuming) one operation did."""

    op_id: str
    kind: str
    args: dict[str, Any]
    steps: int
    sent: int  # transactions this run sent (0: everything was already on chain)
    policy_ids: tuple[PolicyId, ...]  # the operation's grants, in step order
    resumed: bool  # finished after an interruption
    notes: tuple[str, ...] = field(default_factory=tuple)


class OperationLog:
    """The pending operations of one patient, one private file each."""

    def __init__(self, state_dir: Path) -> None:
        # Created on the first operation (a reading patient writes nothing).
        self.path = Path(state_dir) / "operations"

    def _file(self, op_id: str) -> Path:
        return self.path / f"{op_id}.json"

    def pending(self) -> list[Operation]:
        """Every operation not yet finished, oldest first."""
        out: list[Operation] = []
        if not self.path.is_dir():
            return out
        for f in self.path.glob("*.json"):
            raw = read_private(f, "operation log")  # no symlinks; LocalStateError if odd
            try:
                out.append(Operation.from_json(raw.decode("utf-8")))
            except (UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError) as exc:
                raise damaged(
                    f,
                    "operation log",
                    f"{exc} (check the patient's grants on chain before removing it)",
                ) from exc
        return sorted(out, key=lambda o: (o.created, o.op_id))

    def write(self, op: Operation) -> None:
        """Durably record ``op`` (before its first transaction)."""
        private_dir(self.path)
        write_atomically(self._file(op.op_id), op.to_json())

    def done(self, op: Operation) -> None:
        self._file(op.op_id).unlink(missing_ok=True)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive use of the log: one process at a time runs this patient's operations
        (the lock dies with its process, even on SIGKILL)."""
        private_dir(self.path)
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigurationError(
                    "another process is running an operation of this patient; wait for it "
                    "to finish, then try again"
                ) from None
            yield
        finally:
            os.close(fd)


def new_operation(op_id: str, kind: str, args: dict[str, Any], steps: list[Step]) -> Operation:
    # A JSON round trip, so the args compare equal to a later call's after a restart.
    return Operation(op_id, kind, json.loads(json.dumps(args)), tuple(steps), time.time_ns())
