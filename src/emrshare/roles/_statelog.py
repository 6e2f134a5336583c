"""The patient-state log: the patient's categories and epochs, sealed on chain
(``PatientProfiles.logState``), so the mnemonic alone restores them on a new machine.

Entries are whole snapshots (:mod:`emrshare.crypto.statelog`): the newest one that opens
under the patient's state-log key is the state; one that does not open (changed bytes,
sealed under another master) is skipped, never trusted.

Publishing is crash-safe and idempotent. Every local change of the epochs (a category
first used, an epoch moved by a revocation) publishes a snapshot at once, one transaction.
``<state_dir>/statelog.json`` (0600) keeps a keyed digest of the epochs last published
(:func:`~emrshare.crypto.statelog.epochs_digest`, which reveals nothing without the key),
and every patient write compares it with the local epochs first: a crash between the
local change and its publication is published by the next write. Nothing is sent when
nothing changed, and before sending, the chain's newest snapshot is read: if it already
holds these epochs (a crash after the publication, before the digest was kept), only the
digest is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from emrshare._files import damaged, private_dir, read_json_object, write_atomically
from emrshare.chain import Contracts, StateLogged
from emrshare.crypto import PatientKeys
from emrshare.crypto.statelog import (
    PatientState,
    RetiredMaster,
    epochs_digest,
    open_state,
    seal_state,
)
from emrshare.errors import DecryptionError, WireFormatError
from emrshare.network import Network
from emrshare.roles._oplog import EpochState

__all__ = ["StateLog", "latest_state"]

_FILE = "statelog.json"


def latest_state(
    network: Network,
    keys: PatientKeys,
    *,
    patient: str | None = None,
    from_block: int | None = None,
) -> PatientState | None:
    """The newest entry of the state log of ``patient`` (default ``keys.address``), from
    ``from_block`` on, that opens under ``keys``' state-log key (``None``: none does).
    Entries that do not open are skipped."""
    profiles = network.contracts.profiles
    end = network.chain.latest_block()  # the patient's own just-mined entry counts
    entries = list(
        profiles.events(
            StateLogged, patient=patient or keys.address, from_block=from_block, to_block=end
        )
    )
    for ev in reversed(entries):
        try:
            return open_state(keys.state_log_key, bytes(ev.sealed_state))
        except (DecryptionError, WireFormatError):
            continue
    return None


class StateLog:
    """One patient's state log: its local epochs (:attr:`local`), what the chain holds,
    and the publishing of every change (``patient.state``).

    Example::

        patient.state.epochs         # {'lab-results': 1, 'imaging': 0}
        patient.state.retired        # masters an ``emrshare rotate`` retired
        patient.state.published()    # False: the chain already holds these epochs
    """

    def __init__(
        self,
        network: Network,
        keys: PatientKeys,
        signed: Contracts,
        state_dir: Path,
        known_categories: Iterable[str] = (),
    ) -> None:
        self.network = network
        self._keys = keys
        self._signed = signed
        self._path = Path(state_dir) / _FILE
        self._chain: PatientState | None = None
        self._read = False
        self.local = EpochState(
            Path(state_dir) / "patient.json",
            known=known_categories,
            restore=self._restored,
            changed=self.sync,
            sync=self.sync,
        )

    def __repr__(self) -> str:
        return f"StateLog({self._keys.address})"

    # -- what there is ------------------------------------------------------------------

    @property
    def epochs(self) -> dict[str, int]:
        """The current epoch of every category (restored from the chain on a new machine)."""
        return dict(self.local.epochs)

    @property
    def retired(self) -> tuple[RetiredMaster, ...]:
        """Master secrets a rotation retired, oldest first (from the chain's newest entry).
        **Secret**: their repr shows only the categories."""
        chain = self.latest()
        return chain.retired if chain is not None else ()

    def snapshot(self) -> PatientState:
        """The state as the next entry would hold it: the local epochs, the retired masters."""
        return PatientState(self.local.epochs, self.retired)

    def latest(self, *, refresh: bool = False) -> PatientState | None:
        """The chain's newest entry that opens (read once, then kept; ``refresh`` reads again)."""
        if refresh or not self._read:
            self._chain, self._read = latest_state(self.network, self._keys), True
        return self._chain

    def _restored(self) -> dict[str, int]:
        chain = self.latest(refresh=True)
        if chain is None:
            return {}
        self._keep(chain.epochs)
        return dict(chain.epochs)

    # -- publishing -----------------------------------------------------------------------

    def published(self) -> bool:
        """Whether the local epochs are the ones last published (no chain read)."""
        return self._kept() == epochs_digest(self._keys.state_log_key, self.local.epochs)

    def sync(self) -> bool:
        """Publish the local epochs unless they are the ones last published; True if it
        sent a transaction. The chain's newer epochs (another device) are taken in first."""
        if self.published():
            return False
        chain = self.latest(refresh=True)
        if chain is None and not self.local.epochs:
            return False  # a new patient: nothing to publish yet
        if chain is not None:
            self.local.absorb(chain.epochs)
            if chain.epochs == self.local.epochs:
                self._keep(chain.epochs)  # published before a crash lost the digest
                return False
        self.publish(PatientState(self.local.epochs, chain.retired if chain else ()))
        return True

    def publish(self, state: PatientState) -> None:
        """Append ``state`` as the newest entry (one transaction), and keep its digest.
        A rotation publishes its retired masters through here."""
        sealed = seal_state(self._keys.state_log_key, state)
        self._signed.profiles.log_state(sealed)
        self._chain, self._read = state, True
        self._keep(state.epochs)

    def _kept(self) -> bytes | None:
        try:
            doc = read_json_object(self._path, "state-log digest")
        except FileNotFoundError:
            return None
        value = doc.get("published")
        if doc.get("version") != 1 or not isinstance(value, str) or len(value) != 64:
            raise damaged(self._path, "state-log digest", "not a version 1 digest")
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise damaged(self._path, "state-log digest", "not hex") from None

    def _keep(self, epochs: dict[str, int]) -> None:
        digest = epochs_digest(self._keys.state_log_key, epochs)
        private_dir(self._path.parent)
        write_atomically(self._path, json.dumps({"version": 1, "published": digest.hex()}))
