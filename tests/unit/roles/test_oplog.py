"""The patient's operation log and epoch state: private, atomic, typed errors, one process."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from emrshare.crypto import PatientKeys
from emrshare.errors import ConfigurationError
from emrshare.roles._oplog import EpochState, Operation, OperationLog, new_operation
from emrshare.roles._ops import expires_arg


def _op() -> Operation:
    steps = [{"do": "grant", "grantee": "0x" + "11" * 20, "category": "lab", "epoch": e,
              "expiry": 2_000_000_000, "proxies": ["0x" + "22" * 20], "threshold": 1}
             for e in range(2)]  # fmt: skip
    return new_operation("ab" * 16, "grant", {"category": "lab", "expires": {"in": 60}}, steps)


def test_log_round_trip_is_private_and_removed_when_done(tmp_path: Path) -> None:
    log = OperationLog(tmp_path)
    op = _op()
    log.write(op)
    assert log.path.stat().st_mode & 0o777 == 0o700
    (f,) = log.path.glob("*.json")
    assert f.stat().st_mode & 0o777 == 0o600
    (back,) = OperationLog(tmp_path).pending()
    assert back == op
    log.done(op)
    assert log.pending() == []


def test_grant_ids_are_derived_from_the_operation(tmp_path: Path) -> None:
    keys = PatientKeys(b"\x01" * 32)
    op = _op()
    ids = op.grant_ids(keys)
    assert len(set(ids)) == 2 and ids == Operation.from_json(op.to_json()).grant_ids(keys)
    other = new_operation("cd" * 16, op.kind, op.args, list(op.steps))
    assert set(other.grant_ids(keys)).isdisjoint(ids)


def test_unreadable_or_unknown_log_is_a_typed_error(tmp_path: Path) -> None:
    log = OperationLog(tmp_path)
    log.path.mkdir()  # the log creates it on its first write
    (log.path / "x.json").write_text("{not json")
    with pytest.raises(ConfigurationError, match="unreadable"):
        log.pending()
    (log.path / "x.json").write_text(json.dumps({"version": 99}))
    with pytest.raises(ConfigurationError, match="version 99"):
        log.pending()


def _hold(
    path: str, ready: multiprocessing.synchronize.Event, stop: multiprocessing.synchronize.Event
) -> None:  # type: ignore[name-defined]
    with OperationLog(Path(path)).locked():
        ready.set()
        stop.wait(30)


def test_one_process_at_a_time(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(tmp_path), ready, stop))
    proc.start()
    try:
        assert ready.wait(30)
        with (
            pytest.raises(ConfigurationError, match="another process"),
            OperationLog(tmp_path).locked(),
        ):
            pass
    finally:
        stop.set()
        proc.join(30)
    with OperationLog(tmp_path).locked():  # free again once the holder is gone
        pass


def test_epochs_only_grow_and_are_private(tmp_path: Path) -> None:
    state = EpochState(tmp_path / "patient.json")
    assert state.remember("lab") == 0
    state.raise_to("lab", 2)
    state.raise_to("lab", 1)  # a repeated step never moves it back
    assert EpochState(tmp_path / "patient.json").get("lab") == 2
    assert (tmp_path / "patient.json").stat().st_mode & 0o777 == 0o600
    other = EpochState(tmp_path / "patient.json")
    other.raise_to("lab", 3)
    state.reload()
    assert state.get("lab") == 3


def test_expiry_argument_keeps_how_it_was_given() -> None:
    from datetime import UTC, datetime, timedelta

    assert expires_arg(timedelta(days=1)) == {"in": 86400}
    assert expires_arg(1_900_000_000) == {"at": 1_900_000_000}
    assert expires_arg(datetime.fromtimestamp(1_900_000_000, UTC)) == {"at": 1_900_000_000}
