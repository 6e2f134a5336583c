"""Key rotation: a member replaces its keys; a patient's client follows members that did.

A member (hospital, proxy, insurer) rotates with :func:`rotate_member_keys` (keys in
memory) or :func:`rotate_member_keystore` (its keystore file, resumable): fresh
seed-derived Umbral and X25519 keys under the SAME Ethereum key, published with
``ConsortiumRegistry.rotateKeys``. From the rotation block on, the proxies refuse to
re-encrypt a grant whose kfrags target the old receiving key (``grantee_keys_rotated``),
and a writer authorization sealed to the old box key opens for nobody but the old key.

The patient's client then re-issues (:func:`refresh_rotated`, one logged operation of
:mod:`emrshare.roles._ops`): every active grant whose grantee or one of whose proxies
rotated after it was made is granted again (same category, epoch, expiry, proxies and
threshold) to the new keys and the old grant revoked, without moving the epoch; every
writer of a current epoch whose box key rotated after its authorization is authorized
again with a payload sealed to the new box key.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from emrshare._files import loads_json, write_atomically
from emrshare.chain import GrantCreated, GrantStatus, KeysRotated, Role, WriterAuthorized
from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.crypto.keys import Rng
from emrshare.crypto.keystore import load_member_keystore, save_keystore
from emrshare.errors import KeystoreError, NotFound
from emrshare.network import Network
from emrshare.roles._common import Progress, checksum
from emrshare.roles._oplog import OperationResult, Step
from emrshare.roles._ops import Operations, authorized_writers, grant_steps

__all__ = [
    "keystore_kdf_limits",
    "patient_refresh_rotated",
    "plan_refresh",
    "refresh_rotated",
    "rotate_member_keys",
    "rotate_member_keystore",
    "rotation_files",
]

#: A chain position: (block number, log index), ordered as the chain orders events.
Position = tuple[int, int]


def _require_member(network: Network, keys: MemberKeys) -> None:
    if network.contracts.registry.role_of(keys.address) is Role.NONE:
        raise NotFound(
            f"{keys.address} is not a consortium member: only a member's registered keys "
            "can be rotated (apply and be admitted first)"
        )


def _on_chain(network: Network, keys: MemberKeys) -> bool:
    m = network.contracts.registry.member(keys.address)
    pub = keys.public_keys()
    return bytes(m.umbral_key) == pub.receiving_key_bytes and bytes(m.box_key) == pub.box_key_bytes


def rotate_member_keys(network: Network, keys: MemberKeys, *, rng: Rng | None = None) -> MemberKeys:
    """Publish fresh keys for the member ``keys`` (same Ethereum key and address) and
    return them. The caller must keep the returned keys: nothing else holds them.
    Prefer :func:`rotate_member_keystore`, which is resumable."""
    _require_member(network, keys)
    new = keys.rotated(rng=rng)
    pub = new.public_keys()
    network.contracts_for(keys.ethereum_key).registry.rotate_keys(
        pub.receiving_key_bytes, pub.box_key_bytes
    )
    return new


def rotation_files(keystore: Path) -> tuple[Path, Path]:
    """The backup of the old keystore and the pending new one, beside ``keystore``."""
    keystore = Path(keystore)
    return (
        keystore.with_name(keystore.name + ".pre-rotation"),
        keystore.with_name(keystore.name + ".rotating"),
    )


def keystore_kdf_limits(path: Path) -> tuple[int, int]:
    """The argon2id (opslimit, memlimit) a keystore file was written with."""
    try:
        doc = loads_json(path.read_text())
        return int(doc["kdf"]["opslimit"]), int(doc["kdf"]["memlimit"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeystoreError(f"cannot read the KDF settings of {path}; the file is damaged") from exc


def rotate_member_keystore(
    network: Network, keystore: Path, password: str, *, rng: Rng | None = None
) -> MemberKeys:
    """Rotate the keys of the member keystore at ``keystore``; returns the new keys.

    Resumable at every point (the same call finishes an interrupted rotation):

    1. the old keystore is copied to ``<keystore>.pre-rotation`` (0600);
    2. the new keys are written to ``<keystore>.rotating`` (0600, same password and KDF
       cost) BEFORE the transaction, so a crash after it loses nothing;
    3. ``rotateKeys`` is sent unless the chain already holds the new keys;
    4. the pending keystore replaces the old one atomically, and the backup goes.

    A wrong password is a :class:`KeystoreError` before anything is written.
    """
    keystore = Path(keystore)
    backup, pending = rotation_files(keystore)
    current = load_member_keystore(keystore, password)
    if not pending.exists():
        if backup.exists():
            old = load_member_keystore(backup, password)
            if old.seed != current.seed:
                # Interrupted after the replace: the rotation is done, only the backup left.
                backup.unlink()
                return current
        _require_member(network, current)
        write_atomically(backup, keystore.read_bytes())  # 0600 from its first byte
        ops, mem = keystore_kdf_limits(keystore)
        save_keystore(pending, current.rotated(rng=rng), password, opslimit=ops, memlimit=mem)
    new = load_member_keystore(pending, password)
    if new.address != current.address:
        raise KeystoreError(
            f"{pending} holds the keys of {new.address}, not {current.address}; remove it "
            "and rotate again"
        )
    if not _on_chain(network, new):
        _require_member(network, new)
        pub = new.public_keys()
        network.contracts_for(new.ethereum_key).registry.rotate_keys(
            pub.receiving_key_bytes, pub.box_key_bytes
        )
    os.replace(pending, keystore)
    with contextlib.suppress(FileNotFoundError):
        backup.unlink()
    return new


# -- the patient's side ---------------------------------------------------------------


def _rotations(network: Network, accounts: Iterable[str]) -> dict[str, Position]:
    """The chain position of each account's latest key rotation (absent: never rotated)."""
    wanted = sorted({checksum(a) for a in accounts})
    if not wanted:
        return {}
    end = network.chain.latest_block()
    out: dict[str, Position] = {}
    registry = network.contracts.registry
    for ev in registry.events(KeysRotated, account=wanted, to_block=end):
        out[checksum(ev.account)] = (ev.block_number, ev.log_index)
    return out


def _after(rotations: Mapping[str, Position], account: str, pos: Position) -> bool:
    at = rotations.get(checksum(account))
    return at is not None and at > pos


def plan_refresh(
    network: Network,
    keys: PatientKeys,
    events: Sequence[GrantCreated],
    tags: Mapping[bytes, tuple[str, int]],
    epochs: Mapping[str, int],
) -> list[Step]:
    """The steps that follow members' key rotations (module docstring): for each active
    grant whose grantee or a proxy rotated after it, a new grant then the old one's
    revocation; for each writer of a current epoch whose keys rotated after its
    authorization, a new authorization. Empty when nothing rotated."""
    grants, registry = network.contracts.grants, network.contracts.registry
    accounts = {a for ev in events for a in (ev.grantee, *ev.proxies)}
    steps: list[Step] = []
    writers: dict[tuple[str, int], list[str]] = {}
    for category, epoch in epochs.items():
        writers[(category, epoch)] = list(
            authorized_writers(network, keys.address, keys.tag(category, epoch))
        )
    rotations = _rotations(network, accounts | {w for ws in writers.values() for w in ws})
    if not rotations:
        return []
    for ev in events:
        named = tags.get(bytes(ev.tag))
        if named is None:
            continue
        pos = (ev.block_number, ev.log_index)
        if not any(_after(rotations, a, pos) for a in (ev.grantee, *ev.proxies)):
            continue
        if grants.status(ev.policy_id) is not GrantStatus.ACTIVE:
            continue
        if registry.role_of(ev.grantee) is Role.NONE:
            continue  # it left the consortium: nothing to re-issue to
        category, epoch = named
        scope = {epoch: [bytes(r).hex() for r in ev.records]} if ev.records else None
        steps += grant_steps(
            ev.grantee, category, [epoch], ev.expiry, list(ev.proxies), ev.threshold, scope
        )
        steps.append({"do": "revoke", "policy": bytes(ev.policy_id).hex()})
    index = network.contracts.index
    end = network.chain.latest_block()
    for (category, epoch), ws in writers.items():
        tag = keys.tag(category, epoch)
        for w in ws:
            auths = list(
                index.events(
                    WriterAuthorized, patient=keys.address, tag=tag, writer=w, to_block=end
                )
            )
            last = max(((a.block_number, a.log_index) for a in auths), default=(0, 0))
            if _after(rotations, w, last) and registry.has_role(w, Role.PROVIDER):
                steps.append(
                    {"do": "reauthorize", "writer": w, "category": category, "epoch": epoch}
                )
    return steps


def refresh_rotated(
    ops: Operations,
    events: Sequence[GrantCreated],
    tags: Mapping[bytes, tuple[str, int]],
    progress: Progress | None = None,
) -> OperationResult | None:
    """Re-issue what members' key rotations left pointing at old keys (module docstring),
    as one logged, resumable operation of ``ops`` (the patient's); None when nothing
    needed it and nothing was pending."""
    network, keys = ops.network, ops.keys
    if not plan_refresh(network, keys, events, tags, dict(ops.epochs.epochs)):
        return None

    def plan() -> list[Step]:
        return plan_refresh(network, keys, events, tags, dict(ops.epochs.epochs))

    return ops.run("refresh-rotated", {}, plan, progress)


class _PatientParts(Protocol):
    """What ``Patient.refresh_rotated`` needs of its facade (no import of the facade)."""

    _ops: Operations

    def _grant_events(self) -> list[GrantCreated]: ...

    def _tags(self) -> dict[bytes, tuple[str, int]]: ...


def patient_refresh_rotated(
    patient: _PatientParts, *, progress: Progress | None = None
) -> OperationResult | None:
    """``Patient.refresh_rotated()``: re-issue the grants and writer authorizations that
    members' key rotations left pointing at old keys (:func:`refresh_rotated`); None when
    no member the patient deals with rotated since. Safe to call any time: the CLI runs it
    in ``resume`` and ``grant list``.

    >>> patient.refresh_rotated()  # doctest: +SKIP
    """
    return refresh_rotated(
        patient._ops,
        patient._grant_events(),
        patient._tags(),
        progress,
    )
