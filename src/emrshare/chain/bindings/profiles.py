"""The PatientProfiles binding: patients' kfrag-verifying and box keys, and their sealed
state logs."""

from __future__ import annotations

from web3 import Web3

from emrshare.chain.bindings._base import Binding
from emrshare.chain.client import Receipt
from emrshare.chain.events import ProfileRegistered, StateLogged
from emrshare.chain.values import PatientProfile

__all__ = ["PatientProfiles"]


class PatientProfiles(Binding):
    """Patients' kfrag-verifying and box keys, under their own addresses."""

    NAME = "PatientProfiles"
    EVENTS = (ProfileRegistered, StateLogged)

    def profile(self, patient: str, *, block: int | None = None) -> PatientProfile:
        """The profile (reverts with ``PatientProfiles_NotRegistered`` if there is none)."""
        (p,) = self._call("profileOf", patient, block=block)
        return PatientProfile(Web3.to_checksum_address(patient), p[0], p[1], p[2])

    def is_registered(self, patient: str, *, block: int | None = None) -> bool:
        """Whether the address has registered a profile."""
        return bool(self._call("isRegistered", patient, block=block)[0])

    def register(self, verifying_key: bytes, box_key: bytes) -> Receipt:
        """Register or replace the sender's profile keys."""
        return self._send("register", verifying_key, box_key)

    def log_state(self, sealed_state: bytes) -> Receipt:
        """Append a sealed entry (1..4096 bytes) to the sender's state log."""
        return self._send("logState", sealed_state)
