"""RotatedPatientKeys: one object holds the current master and the retired ones; each
(category, epoch) is tagged and opened with the master that sealed it, everything else
(signer, box key, Ethereum key) is the current master's, and the address is the identity."""

from __future__ import annotations

from pathlib import Path

import pytest
from nacl.pwhash import argon2id

from emrshare.crypto import PatientKeys, load_patient_keystore, save_keystore
from emrshare.crypto.keys import Rng
from emrshare.crypto.rotated import RotatedPatientKeys
from emrshare.crypto.statelog import PatientState, RetiredMaster, open_state, seal_state


def _rng(seed: int) -> Rng:
    return lambda n: bytes((seed + i) % 256 for i in range(n))


def test_old_epochs_use_the_master_that_sealed_them_new_epochs_the_new_master() -> None:
    first = PatientKeys(b"\x01" * 32)
    second = RotatedPatientKeys.after(first, {"lab-results": 1, "imaging": 0}, rng=_rng(9))
    third = RotatedPatientKeys.after(second, {"lab-results": 2, "imaging": 1}, rng=_rng(77))
    assert second.master_secret != first.master_secret != third.master_secret
    for e in (0, 1):
        assert second.tag("lab-results", e) == first.tag("lab-results", e)
        assert third.tag("lab-results", e) == first.tag("lab-results", e)
        same = first.delegating_secret_key("lab-results", e).public_key()
        assert third.category_public_key("lab-results", e) == same
    assert second.tag("lab-results", 2) == PatientKeys(second.master_secret).tag("lab-results", 2)
    assert second.tag("lab-results", 2) != first.tag("lab-results", 2)
    assert third.tag("lab-results", 2) == second.tag("lab-results", 2)  # sealed by the 2nd
    assert third.tag("lab-results", 3) == PatientKeys(third.master_secret).tag("lab-results", 3)
    assert third.tag("imaging", 1) == second.tag("imaging", 1) != first.tag("imaging", 1)
    # A category the retired masters never sealed is the current master's from epoch 0.
    assert third.tag("notes", 0) == PatientKeys(third.master_secret).tag("notes", 0)
    assert third.first_epoch("lab-results") == 3 and third.first_epoch("notes") == 0


def test_identity_stays_and_the_signer_box_and_ethereum_keys_are_the_new_masters() -> None:
    old = PatientKeys(b"\x02" * 32)
    new = RotatedPatientKeys.after(old, {"lab-results": 0})
    plain = PatientKeys(new.master_secret)
    assert new.address == old.address != plain.address
    assert new.ethereum_key == plain.ethereum_key != old.ethereum_key
    assert new.verifying_key == plain.verifying_key != old.verifying_key
    assert bytes(new.box_public_key) == bytes(plain.box_public_key)
    assert new.state_log_key == plain.state_log_key != old.state_log_key
    pub = new.public_keys()
    assert pub.address == old.address and pub.verifying_key_bytes == bytes(
        plain.verifying_key.to_compressed_bytes()
    )
    assert new.to_mnemonic() == plain.to_mnemonic() != old.to_mnemonic()
    assert "RotatedPatientKeys(address=" in repr(new) and new.master_secret.hex() not in repr(new)


def test_the_new_mnemonic_and_its_state_log_rebuild_the_same_keys() -> None:
    old = PatientKeys(b"\x03" * 32)
    new = RotatedPatientKeys.after(old, {"lab-results": 4})
    retired = tuple(RetiredMaster(r.master_secret, dict(r.epochs)) for r in new.retired_masters())
    sealed = seal_state(new.state_log_key, PatientState({"lab-results": 5}, retired))
    # A fresh machine: only the 24 words, the identity from the forwarder, the state log.
    words = PatientKeys.from_mnemonic(new.to_mnemonic())
    state = open_state(words.state_log_key, sealed)
    again = RotatedPatientKeys(words.master_secret, identity=old.address, retired=state.retired)
    for e in range(6):
        assert again.tag("lab-results", e) == new.tag("lab-results", e)
    assert again.address == new.address


def test_a_rotated_patient_holds_at_least_one_retired_master() -> None:
    with pytest.raises(ValueError, match="at least one retired master"):
        RotatedPatientKeys(b"\x04" * 32, identity=PatientKeys(b"\x05" * 32).address, retired=())


def test_a_keystore_keeps_the_identity_and_every_retired_master(tmp_path: Path) -> None:
    first = PatientKeys(b"\x06" * 32)
    second = RotatedPatientKeys.after(first, {"lab-results": 1})
    third = RotatedPatientKeys.after(second, {"lab-results": 2, "imaging": 0})
    fast = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}
    path = save_keystore(tmp_path / "k.json", third, "pw", **fast)
    back = load_patient_keystore(path, "pw")
    assert isinstance(back, RotatedPatientKeys)
    assert back.address == first.address and back.master_secret == third.master_secret
    for c, e in (("lab-results", 0), ("lab-results", 2), ("lab-results", 3), ("imaging", 0)):
        assert back.tag(c, e) == third.tag(c, e)
    # A patient that never rotated keeps the first format.
    plain = load_patient_keystore(save_keystore(tmp_path / "p.json", first, "pw", **fast), "pw")
    assert type(plain) is PatientKeys and plain.address == first.address
