"""A patient rotates its master secret (``Patient.rotate``, the CLI's ``emrshare rotate``).

The patient's identity (its address: profile, index, grants) stays. One resumable run:

1. **plan** (no transaction): a fresh master, the current epochs and the active grants are
   written to ``<state_dir>/rotation.json`` (0600), the new master sealed under a key of the
   OLD master, before the first transaction: a crash at any later point resumes with the
   same new master;
2. **signer**: ``PatientForwarder.rotateSigner(new Ethereum address)``; from then on every
   write of the identity goes through the forwarder, signed by the new key (the old key is
   ``MustRelay`` directly and ``InvalidSigner`` through the forwarder);
3. **profile**: the identity's profile re-registered with the new verifying and box keys;
4. **state log**: the new epochs and every retired master, sealed under the new master's
   state-log key (so the new mnemonic alone recovers them);
5. **one step per category**: ``revokeTag`` on its current tag (every grant of it ends),
   ``rekeyWriters`` to the next epoch's tag under the NEW master with payloads sealed by
   the new keys, what is left of the old tag's writers withdrawn;
6. **one step per re-issued grant**: every active grant again for its epoch, and a grant
   of a category's current epoch for the new epoch too (old epochs' kfrags from the
   retired master that sealed them, signed by the new signer), same grantee, expiry,
   proxies and threshold.

Each step checks the chain first and sends only what is missing.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import nacl.exceptions
import nacl.secret
from eth_account import Account

from emrshare._files import private_dir, read_json_object, write_atomically
from emrshare.chain import (
    Contracts,
    GrantCreated,
    GrantStatus,
    Role,
    TagRevoked,
    policy_id,
)
from emrshare.chain.forwarding import accept_identity
from emrshare.chain.relayed import DirectSubmitter, ForwardingClient, Submitter
from emrshare.crypto import PatientKeys, seal_writer_authorization
from emrshare.crypto.keys import MASTER_SECRET_SIZE, Rng, _random
from emrshare.crypto.rotated import RotatedPatientKeys
from emrshare.crypto.statelog import PatientState, RetiredMaster, seal_state
from emrshare.errors import (
    ContractRevert,
    LocalStateError,
    NotFound,
    RotationInterrupted,
)
from emrshare.network import Network
from emrshare.roles._common import Progress, checksum
from emrshare.roles._oplog import EpochState, OperationResult
from emrshare.roles._ops import authorized_writers, build_grant, member_keys
from emrshare.roles._relayed import patient_contracts
from emrshare.roles._statelog import latest_state
from emrshare.types import Address

__all__ = [
    "RotationPlan",
    "forwarding_contracts",
    "patient_rotate",
    "restore_rotated",
    "rotated_keys",
]

_FILE = "rotation.json"
#: Reverts of a re-issued grant that no retry can change (the grant is then not re-issued,
#: as a revocation's re-issue skips it); ``Grants_PolicyExists``: sent before a crash.
_FINAL_REFUSALS = frozenset(
    {"Grants_NotMember", "Grants_NotProxy", "Grants_ExpiryInPast", "Grants_PolicyExists"}
)


class _PatientParts(Protocol):
    """What the rotation needs of the patient facade (no import of the facade)."""

    network: Network
    keys: PatientKeys
    state_dir: Path
    _contracts: Contracts
    _state: EpochState

    def _grant_events(self) -> list[GrantCreated]: ...

    def _tags(self) -> dict[bytes, tuple[str, int]]: ...

    def resume(self, *, progress: Progress | None = None) -> list[OperationResult]: ...


@dataclass(frozen=True, slots=True)
class RotationPlan:
    """What ``rotation.json`` holds (the new master only sealed, on disk)."""

    op_id: str
    start_block: int
    new_master: bytes
    epochs: dict[str, int]
    grants: tuple[dict[str, Any], ...]


def _box(old: PatientKeys) -> nacl.secret.SecretBox:
    key = hashlib.blake2b(old.master_secret, digest_size=32, person=b"emrshare-rotate").digest()
    return nacl.secret.SecretBox(key)


def _save(path: Path, old: PatientKeys, plan: RotationPlan) -> None:
    sealed = bytes(_box(old).encrypt(plan.new_master))
    doc = {
        "version": 1,
        "op_id": plan.op_id,
        "start_block": plan.start_block,
        "new_master": sealed.hex(),
        "epochs": plan.epochs,
        "grants": list(plan.grants),
    }
    private_dir(path.parent)
    write_atomically(path, json.dumps(doc, indent=2, sort_keys=True))


def _sealers(keys: PatientKeys) -> list[PatientKeys]:
    """The masters a pending rotation file may be sealed under: the current one, and (a
    rotation that finished but whose file is left) the one it retired last."""
    out = [keys]
    if isinstance(keys, RotatedPatientKeys):
        out.append(PatientKeys(keys.retired_masters()[-1].master_secret))
    return out


def _open_master(sealed: bytes, keys: PatientKeys) -> bytes:
    for k in _sealers(keys):
        try:
            return bytes(_box(k).decrypt(sealed))
        except nacl.exceptions.CryptoError:
            continue
    raise ValueError("not sealed under this patient's masters")


def _load(path: Path, old: PatientKeys) -> RotationPlan | None:
    try:
        doc = read_json_object(path, "the pending rotation")
    except FileNotFoundError:
        return None
    try:
        master = _open_master(bytes.fromhex(str(doc["new_master"])), old)
        if len(master) != MASTER_SECRET_SIZE:
            raise ValueError("size")
        return RotationPlan(
            str(doc["op_id"]),
            int(doc["start_block"]),
            master,
            {str(c): int(e) for c, e in dict(doc["epochs"]).items()},
            tuple(dict(g) for g in doc["grants"]),
        )
    except (KeyError, TypeError, ValueError, nacl.exceptions.CryptoError) as exc:
        raise LocalStateError(
            path,
            f"{path} does not hold a rotation this patient started (damaged, or sealed under "
            "another master); restore it from a backup, or remove it and rotate again",
        ) from exc


def _new_keys(old: PatientKeys, plan: RotationPlan) -> RotatedPatientKeys:
    retired: list[RetiredMaster] = []
    if isinstance(old, RotatedPatientKeys):
        retired = [RetiredMaster(r.master_secret, dict(r.epochs)) for r in old.retired_masters()]
    retired.append(RetiredMaster(old.master_secret, dict(plan.epochs)))
    return RotatedPatientKeys(plan.new_master, identity=old.address, retired=retired)


def forwarding_contracts(
    network: Network,
    keys: PatientKeys,
    submitter: Submitter | None,
    funded_key: bytes,
    current: object = None,
) -> Contracts:
    """The identity's contracts, every send a forward request signed by ``keys``' current
    Ethereum key, handed to ``submitter`` (default: the submitter of ``current``, the
    patient's present chain client, if it is a :class:`ForwardingClient`; else execute
    sent with ``funded_key``)."""
    if submitter is None and isinstance(current, ForwardingClient):
        submitter = current.submitter  # a relayed patient: the same relay or relayer
    if submitter is None:
        fwd = network.contracts.forwarder.address
        submitter = DirectSubmitter(network.chain.with_key(funded_key), fwd)
    return patient_contracts(network, keys, submitter)


def _plan(patient: _PatientParts, rng: Rng | None) -> RotationPlan:
    network, keys = patient.network, patient.keys
    if not network.contracts.profiles.is_registered(keys.address):
        raise NotFound(
            f"{keys.address} has no patient profile on chain: register before rotating the "
            "master secret (a patient that never registered has nothing to rotate)"
        )
    # Interrupted grants and revocations first, with the old keys that logged them.
    patient.resume()
    patient._state.reload()
    epochs = dict(patient._state.epochs)
    tags = patient._tags()
    now = network.chain_time()
    # Each active grant again for its own epoch, and a grant of a category's current epoch
    # for the new epoch too (one per grantee and epoch: the one that lasts longest).
    best: dict[tuple[str, str, int], GrantCreated] = {}
    for ev in patient._grant_events():
        named = tags.get(bytes(ev.tag))
        if named is None or ev.expiry <= now:
            continue
        if network.contracts.grants.status(ev.policy_id) is not GrantStatus.ACTIVE:
            continue
        if ev.records:
            # Its records keep the old tag's ids, which the new keys do not name: a grant
            # scoped to records ends with the rotation (the patient grants them again).
            continue
        c, e = named
        for epoch in (e, e + 1) if e == epochs.get(c) else (e,):
            k = (checksum(ev.grantee), c, epoch)
            if k not in best or ev.expiry > best[k].expiry:
                best[k] = ev
    grants = tuple(
        {
            "grantee": g,
            "category": c,
            "epoch": e,
            "expiry": ev.expiry,
            "proxies": [checksum(p) for p in ev.proxies],
            "threshold": ev.threshold,
        }
        for (g, c, e), ev in sorted(best.items())
    )
    master = _random(rng, MASTER_SECRET_SIZE)
    op_id = hashlib.sha256(b"emrshare-rotate" + master).hexdigest()[:32]
    return RotationPlan(op_id, network.chain.latest_block(), master, epochs, grants)


class _Run:
    def __init__(self, patient: _PatientParts, plan: RotationPlan, submitter: Submitter | None):
        self.p = patient
        self.net = patient.network
        self.old = patient.keys
        self.plan = plan
        self.new = _new_keys(self.old, plan)
        self.signed = forwarding_contracts(
            self.net,
            self.new,
            submitter,
            self.old.ethereum_key,
            patient._contracts.forwarder.client,
        )
        self.new_epochs = {c: e + 1 for c, e in plan.epochs.items()}

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        out: list[tuple[str, Callable[[], None]]] = [
            ("signer", self.signer),
            ("profile", self.profile),
            ("state log", self.state_log),
        ]
        for c in sorted(self.plan.epochs):
            out.append((f"category {c}", functools.partial(self.category, c)))
        for k, g in enumerate(self.plan.grants):
            out.append((f"grant {k + 1}", functools.partial(self.grant, g, int(g["epoch"]), k)))
        return out

    def signer(self) -> None:
        fwd = self.net.contracts.forwarder
        new = Account.from_key(self.new.ethereum_key).address
        if checksum(fwd.signer_of(self.old.address)) != checksum(new):
            consent = accept_identity(
                self.new.ethereum_key, self.old.address, self.net.chain.chain_id, fwd.address
            )
            self.p._contracts.forwarder.rotate_signer(new, consent)

    def profile(self) -> None:
        pub = self.new.public_keys()
        have = self.net.contracts.profiles.profile(self.old.address)
        if (
            bytes(have.verifying_key) != pub.verifying_key_bytes
            or bytes(have.box_key) != pub.box_key_bytes
        ):
            self.signed.profiles.register(pub.verifying_key_bytes, pub.box_key_bytes)

    def state_log(self) -> None:
        since = self.plan.start_block
        if latest_state(self.net, self.new, patient=self.old.address, from_block=since):
            return  # published before the interruption
        retired = tuple(
            RetiredMaster(r.master_secret, dict(r.epochs)) for r in self.new.retired_masters()
        )
        state = PatientState(dict(self.new_epochs), retired)
        self.signed.profiles.log_state(seal_state(self.new.state_log_key, state))

    def category(self, c: str) -> None:
        e = self.plan.epochs[c]
        old_tag, new_tag = self.new.tag(c, e), self.new.tag(c, e + 1)
        me, end = self.old.address, self.net.chain.latest_block()
        revoked = self.net.contracts.grants.events(
            TagRevoked, patient=me, tag=old_tag, from_block=self.plan.start_block, to_block=end
        )
        if not any(True for _ in revoked):
            self.signed.grants.revoke_tag(old_tag)
        registry = self.net.contracts.registry
        active = [
            w
            for w in authorized_writers(self.net, me, old_tag)
            if registry.has_role(w, Role.PROVIDER)
        ]
        if active:
            payloads = [
                seal_writer_authorization(self.new, member_keys(self.net, w, "provider"), c, e + 1)
                for w in active
            ]
            self.signed.index.rekey_writers(old_tag, new_tag, active, payloads)
        left = authorized_writers(self.net, me, old_tag)
        if left:
            self.signed.index.revoke_writers(old_tag, left)
        # Saved locally without publishing: the state log entry of this rotation (sealed
        # under the new master, sent by the new signer) already holds the new epochs.
        self.p._state.absorb({c: e + 1})

    def grant(self, g: Mapping[str, Any], epoch: int, k: int) -> None:
        nonce = self.new.operation_nonce(bytes.fromhex(self.plan.op_id), k)
        if self.net.contracts.grants.binding(policy_id(self.old.address, nonce)) != bytes(27):
            return
        if int(g["expiry"]) <= self.net.chain_time():
            return  # it ended meanwhile: nothing to re-issue
        try:
            params = build_grant(
                self.net,
                self.new,
                nonce=nonce,
                grantee=str(g["grantee"]),
                category=str(g["category"]),
                epoch=epoch,
                expiry=int(g["expiry"]),
                proxies=list(g["proxies"]),
                threshold=int(g["threshold"]),
            )
            self.signed.grants.grant(params)
        except NotFound:
            return  # the grantee left the consortium: its grant ends with the old tag
        except ContractRevert as exc:
            # For good, whatever the retries: the grantee or a proxy left, or it expired.
            if exc.name not in _FINAL_REFUSALS:
                raise


def patient_rotate(
    patient: _PatientParts,
    *,
    progress: Progress | None = None,
    submitter: Submitter | None = None,
    on_done: Callable[[PatientKeys], None] | None = None,
    rng: Rng | None = None,
) -> str:
    """``Patient.rotate()``: rotate the master secret (module docstring); returns the NEW
    24-word mnemonic, to be shown once and backed up: from now on it alone (with the
    network) recovers the patient (:func:`restore_rotated`).

    Resumable: run the same call again (on the patient opened with the OLD keys) after any
    interruption; ``progress(done, total)`` is called after each step. A step that fails
    raises :class:`~emrshare.errors.RotationInterrupted` (its cause chained), and nothing
    done is undone. An unregistered patient is :class:`~emrshare.errors.NotFound` before
    anything is written. ``submitter`` brings the new signer's requests on chain (a relay);
    by default they are sent with the patient's current, funded Ethereum key. ``on_done``
    gets the new keys (a :class:`~emrshare.crypto.rotated.RotatedPatientKeys`) once every
    step is on chain, before the pending file goes: save them there (a keystore).
    """
    path = Path(patient.state_dir) / _FILE
    plan = _load(path, patient.keys)
    if plan is not None and plan.new_master == patient.keys.master_secret:
        path.unlink()  # finished, and the keys already saved (on_done) before a crash
        return patient.keys.to_mnemonic()
    if plan is None:
        plan = _plan(patient, rng)
        _save(path, patient.keys, plan)  # before the first transaction
    run = _Run(patient, plan, submitter)
    steps = run.steps()
    for i, (name, step) in enumerate(steps):
        try:
            step()
            if progress is not None:
                progress(i + 1, len(steps))
        except Exception as exc:  # a chain error, a crash in the progress callback, …
            raise RotationInterrupted(
                f"the key rotation stopped at step {i + 1} of {len(steps)} ({name}): {exc}; "
                "run the same rotation again to finish it",
                i,
                len(steps),
            ) from exc
    if on_done is not None:
        on_done(run.new)  # e.g. the CLI's keystore, replaced while the file still exists
    path.unlink()
    return run.new.to_mnemonic()


def rotated_keys(network: Network, keys: PatientKeys) -> PatientKeys:
    """``keys`` of a mnemonic, as the identity it was rotated to acts: a
    :class:`RotatedPatientKeys` (identity from ``PatientForwarder.identityOf``, retired
    masters from the newest state-log entry that opens) if the mnemonic's key is a
    rotated-to signer, else ``keys`` unchanged."""
    identity = Address(checksum(network.contracts.forwarder.identity_of(keys.address)))
    if identity == keys.address:
        return keys
    state = latest_state(network, keys, patient=identity)
    if state is None or not state.retired:
        raise NotFound(
            f"{keys.address} acts for the patient {identity}, but no state-log entry of it "
            "opens under this mnemonic: its rotation did not finish; finish it on the device "
            "that started it (emrshare rotate)"
        )
    return RotatedPatientKeys(keys.master_secret, identity=identity, retired=state.retired)


def restore_rotated(
    network: Network, mnemonic: str, state_dir: Path
) -> tuple[PatientKeys, dict[str, int]]:
    """The keys and epochs of a patient from its (possibly rotated-to) mnemonic alone:
    the identity from ``PatientForwarder.identityOf``, the retired masters and epochs from
    its latest state-log entry that opens under the mnemonic's state-log key. The epochs
    are written to ``state_dir`` (so ``Patient(network, keys, state_dir=…)`` names every
    tag). A mnemonic that never rotated gives plain :class:`PatientKeys`."""
    keys = rotated_keys(network, PatientKeys.from_mnemonic(mnemonic))
    state = latest_state(network, keys)
    epochs = dict(state.epochs) if state is not None else {}
    saved = EpochState(Path(state_dir) / "patient.json")
    for c, e in epochs.items():
        saved.remember(c)
        saved.raise_to(c, e)
    return keys, epochs
