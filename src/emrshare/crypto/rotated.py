"""A patient's keys after master-secret rotations: one object, every master it had.

A patient who rotates its master secret keeps its identity (the address its records,
grants and profile are filed under; ``PatientForwarder.rotateSigner`` hands it to the new
master's Ethereum key) and moves every category to a new epoch under the new master. The
old epochs stay sealed under the master that was current when they were written, so
:class:`RotatedPatientKeys` answers :meth:`~RotatedPatientKeys.tag` and
:meth:`~RotatedPatientKeys.delegating_secret_key` of ``(category, epoch)`` with the master
that sealed that epoch, and everything else (signer, box key, Ethereum key, operation
nonces, state-log key, mnemonic) with the current master.

The retired masters are recoverable from the new mnemonic alone: they travel in the
patient-state log (:class:`~emrshare.crypto.statelog.PatientState` ``retired``), sealed
under the new master's :attr:`~emrshare.crypto.keys.PatientKeys.state_log_key`.

**Warning:** whoever holds a retired master's mnemonic can still open every record of the
epochs sealed under it. Rotation protects what is written after it, not what was before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import umbral_pre

from emrshare.crypto.keys import PatientKeys, Rng, _random, validate_category
from emrshare.types import Address, CategoryTag

__all__ = ["RetiredMasterLike", "RotatedPatientKeys"]


class RetiredMasterLike(Protocol):
    """A master secret rotated away from and the last epoch of each category it sealed
    (:class:`emrshare.crypto.statelog.RetiredMaster` is one)."""

    @property
    def master_secret(self) -> bytes: ...

    @property
    def epochs(self) -> Mapping[str, int]: ...


class RotatedPatientKeys(PatientKeys):
    """:class:`PatientKeys` of the current ``master_secret``, plus the ``retired`` masters
    (oldest first) and the patient's ``identity`` (its original address).

    >>> keys = PatientKeys.generate()
    >>> rotated = RotatedPatientKeys.after(keys, {"lab-results": 0})
    >>> rotated.address == keys.address  # the identity stays
    True
    >>> rotated.tag("lab-results", 0) == keys.tag("lab-results", 0)  # the old epoch's
    True
    """

    __slots__ = ("_identity", "_retired")

    def __init__(
        self,
        master_secret: bytes,
        *,
        identity: Address,
        retired: Sequence[RetiredMasterLike],
        ethereum_key: bytes | None = None,
    ) -> None:
        super().__init__(master_secret, ethereum_key=ethereum_key)
        self._identity = identity
        self._retired = tuple(
            (
                PatientKeys(r.master_secret),
                {validate_category(c): int(e) for c, e in r.epochs.items()},
            )
            for r in retired
        )
        if not self._retired:
            raise ValueError("a rotated patient has at least one retired master")

    def __repr__(self) -> str:
        return f"RotatedPatientKeys(address={self.address}, retired={len(self._retired)})"

    @classmethod
    def after(
        cls, keys: PatientKeys, epochs: Mapping[str, int], *, rng: Rng | None = None
    ) -> RotatedPatientKeys:
        """The keys after one more rotation of ``keys``: a fresh master secret, ``keys``'
        current master retired with ``epochs`` (each category's last epoch under it; the
        caller moves each category to the next epoch, under the new master)."""
        retired: list[RetiredMasterLike] = (
            list(keys.retired_masters()) if isinstance(keys, RotatedPatientKeys) else []
        )
        retired.append(_Retired(keys.master_secret, dict(epochs)))
        return cls(_random(rng, 32), identity=keys.address, retired=retired)

    # -- which master sealed an epoch ----------------------------------------------------

    def _sealer(self, category: str, epoch: int) -> PatientKeys | None:
        """The retired master that sealed (category, epoch); None: the current one."""
        for keys, last in self._retired:
            if epoch <= last.get(category, -1):
                return keys
        return None

    def delegating_secret_key(self, category: str, epoch: int) -> umbral_pre.SecretKey:
        """The Umbral secret key of (category, epoch), from the master that sealed it."""
        keys = self._sealer(category, epoch)
        if keys is None:
            return super().delegating_secret_key(category, epoch)
        return keys.delegating_secret_key(category, epoch)

    def tag(self, category: str, epoch: int) -> CategoryTag:
        """The blinded tag of (category, epoch), under the master that sealed it."""
        keys = self._sealer(category, epoch)
        return super().tag(category, epoch) if keys is None else keys.tag(category, epoch)

    @property
    def address(self) -> Address:
        """The patient's identity: the address of its first master (never changes)."""
        return self._identity

    def retired_masters(self) -> tuple[RetiredMasterLike, ...]:
        """The retired masters, oldest first (**secret**: for the patient-state log)."""
        return tuple(_Retired(k.master_secret, dict(e)) for k, e in self._retired)

    def first_epoch(self, category: str) -> int:
        """The first epoch of ``category`` under the current master (0 for a category
        the retired masters never sealed)."""
        return max((e.get(category, -1) + 1 for _, e in self._retired), default=0)


class _Retired:
    __slots__ = ("epochs", "master_secret")

    def __init__(self, master_secret: bytes, epochs: dict[str, int]) -> None:
        self.master_secret = master_secret
        self.epochs = epochs

    def __repr__(self) -> str:
        return f"RetiredMaster(categories={sorted(self.epochs)})"
