from __future__ import annotations

from emrshare.errors import ContractRevert, DecryptionError, IntegrityError


def test_contract_revert_renders_name_and_args() -> None:
    err = ContractRevert("Grants_NotGrantee", {"caller": "0xabc", "policyId": b"\x01" * 32})
    assert err.name == "Grants_NotGrantee"
    assert err.args_by_name["caller"] == "0xabc"
    assert str(err).startswith("contract reverted with Grants_NotGrantee(caller='0xabc'")


def test_decryption_error_is_vague() -> None:
    assert "tampered" in str(DecryptionError())


def test_integrity_error_names_cid() -> None:
    assert "bafy" in str(IntegrityError("bafy123"))
