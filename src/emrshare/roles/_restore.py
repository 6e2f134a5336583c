"""Restoring a patient on a new machine from its backup alone (24 words or SLIP-39 shares).

The keys come from the backup; the categories and epochs from the chain's sealed state
log (:mod:`emrshare.roles._statelog`); grants, writers and access requests were always
read from chain events, and the operation log (local, empty on a new machine) holds only
interrupted intents, so nothing depends on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emrshare.crypto import PatientKeys
from emrshare.crypto.backup import keys_from_shares, keys_from_words
from emrshare.errors import PatientNotFound, ProfileExists
from emrshare.network import Network
from emrshare.roles._common import AccessRequestInfo, GrantInfo
from emrshare.roles._patient_rotation import rotated_keys
from emrshare.roles.patient import Patient
from emrshare.roles.profiles import Profile, Profiles
from emrshare.types import Address

__all__ = [
    "RestoreReport",
    "backup_keys",
    "check_known",
    "report",
    "restore_patient",
    "restore_profile",
]


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What a restore found on chain for the patient."""

    address: Address
    registered: bool
    epochs: dict[str, int]  # category → current epoch
    retired: int  # masters a rotation retired (their secrets stay in ``patient.state``)
    grants: tuple[GrantInfo, ...]  # every grant, oldest first
    writers: dict[str, tuple[Address, ...]]  # category → writers of its current epoch
    requests: tuple[AccessRequestInfo, ...]  # pending access requests

    @property
    def active_grants(self) -> tuple[GrantInfo, ...]:
        return tuple(g for g in self.grants if g.active)

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "registered": self.registered,
            "categories": self.epochs,
            "retired_masters": self.retired,
            "grants": [
                {
                    "policy_id": "0x" + bytes(g.policy_id).hex(),
                    "grantee": g.grantee,
                    "category": g.category,
                    "epoch": g.epoch,
                    "status": str(g.status),
                }
                for g in self.grants
            ],
            "writers": {c: list(w) for c, w in self.writers.items()},
            "pending_requests": [
                {"request_id": r.request_id, "requester": r.requester, "category": r.category}
                for r in self.requests
            ],
        }


def backup_keys(
    *, mnemonic: str | None = None, shares: Sequence[str] | None = None, passphrase: bytes = b""
) -> PatientKeys:
    """The patient keys of a backup: 24 words, or SLIP-39 shares (with their passphrase).
    An :class:`~emrshare.errors.InvalidBackup` says what is wrong with it."""
    if (mnemonic is None) == (shares is None):
        raise ValueError("give the mnemonic or the shares, not both")
    if mnemonic is not None:
        return keys_from_words(mnemonic)
    assert shares is not None
    return keys_from_shares(shares, passphrase=passphrase)


def check_known(network: Network, keys: PatientKeys) -> bool:
    """Whether the patient has a profile on chain; a backup whose patient has neither a
    profile nor a state-log entry is a :class:`PatientNotFound`."""
    from emrshare.roles._statelog import latest_state

    registered = network.contracts.profiles.is_registered(keys.address)
    if not registered and latest_state(network, keys) is None:
        raise PatientNotFound(
            keys.address,
            f"the backup is valid, but its patient {keys.address} is not registered on "
            f"this network ({network.name}): check that this is the patient's network, and "
            "the passphrase if the shares have one; a patient never registered has nothing "
            "to restore",
        )
    return registered


def report(patient: Patient, registered: bool) -> RestoreReport:
    """What the chain holds for ``patient`` (the chain's epochs merged in first, also into
    a state dir that already has some)."""
    chain = patient.state.latest(refresh=True)
    if chain is not None:
        patient.state.local.absorb(chain.epochs)
    epochs = patient.state.epochs
    return RestoreReport(
        address=patient.address,
        registered=registered,
        epochs=epochs,
        retired=len(patient.state.retired),
        grants=tuple(patient.grants()),
        writers={c: tuple(patient.writers(c)) for c in sorted(epochs)},
        requests=tuple(patient.requests(pending_only=True)),
    )


def restore_patient(
    network: Network,
    *,
    state_dir: Path,
    mnemonic: str | None = None,
    shares: Sequence[str] | None = None,
    passphrase: bytes = b"",
) -> tuple[Patient, RestoreReport]:
    """The patient of a backup, its state restored from chain into ``state_dir``, and a
    report of what was found. Running it again on the same ``state_dir`` is harmless.

    Example::

        patient, found = restore_patient(net, mnemonic=words, state_dir=Path("alice"))
        found.epochs      # {'imaging': 1, 'lab-results': 2}
        found.requests    # the pending access requests

    Raises :class:`~emrshare.errors.InvalidBackup` for words or shares that make no
    secret, :class:`~emrshare.errors.PatientNotFound` for a valid backup whose patient
    this network does not know (nothing is written then).
    """
    keys = backup_keys(mnemonic=mnemonic, shares=shares, passphrase=passphrase)
    keys = rotated_keys(network, keys)  # a rotated-to mnemonic acts for its identity
    registered = check_known(network, keys)
    patient = Patient(network, keys, state_dir=state_dir)
    try:
        return patient, report(patient, registered)
    except BaseException:
        patient.close()
        raise


def restore_profile(
    profiles: Profiles,
    name: str,
    network: Network,
    keys: PatientKeys,
    password: Callable[[], str],
) -> tuple[Profile, Patient, RestoreReport, bool]:
    """Restore ``keys`` (from :func:`backup_keys`) as the patient profile ``name``:
    ``(profile, patient, report, created)``. Resumable: a profile of that name holding
    these keys (a restore interrupted after its keystore was written, or a finished one)
    is taken as it is and its state restored again; one holding another identity is a
    :class:`~emrshare.errors.ProfileExists`. A backup whose patient the network does not
    know writes nothing (:class:`~emrshare.errors.PatientNotFound`). ``password`` is asked
    only when a keystore is created."""
    keys = rotated_keys(network, keys)  # a rotated-to mnemonic restores as its identity
    existing = profiles.get(name) if profiles.exists(name) else None
    if existing is not None and (existing.kind != "patient" or existing.address != keys.address):
        raise ProfileExists(
            name,
            f"profile {name!r} already exists and holds another identity "
            f"({existing.kind} {existing.address}); restore into a new profile name",
        )
    registered = check_known(network, keys)
    created = existing is None
    if existing is None:
        existing, _ = profiles.create(name, "patient", password(), keys=keys)
    patient = Patient(network, keys, state_dir=existing.state_dir)
    try:
        return existing, patient, report(patient, registered), created
    except BaseException:
        patient.close()
        raise
