"""Revert data is found in every node's error shape and decoded into ContractRevert."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from emrshare.chain import decode_revert
from emrshare.chain._revert import revert_data_from_error
from emrshare.chain.artifacts import artifact_names, load_artifact
from emrshare.errors import ContractRevert

DATA = "0x9f4c734d" + "01" * 32


def _selector(sig: str) -> bytes:
    return keccak(text=sig)[:4]


@pytest.mark.parametrize(
    "error",
    [
        {"code": 3, "message": "execution reverted: custom error", "data": DATA},  # anvil/geth
        {"code": -32000, "message": "VM Exception", "data": DATA},  # ganache eth_call
        {
            "message": "revert",
            "data": {"hash": None, "result": DATA, "reason": None},
        },  # ganache est.
        {"message": "revert", "data": {"0xabc": {"error": "revert", "return": DATA}}},  # ganache v6
    ],
)
def test_revert_data_is_found_in_every_shape(error: object) -> None:
    assert revert_data_from_error(error) == bytes.fromhex(DATA[2:])


def test_no_revert_data() -> None:
    assert revert_data_from_error({"code": -32000, "message": "nonce too low"}) is None
    assert revert_data_from_error("not hex") is None


def test_custom_error_with_arguments() -> None:
    patient, tag, writer = "0x" + "11" * 20, b"\x22" * 32, "0x" + "33" * 20
    sig = "RecordIndex_WrongSequence(address,bytes32,address,uint64,uint64)"
    data = _selector(sig) + encode(
        ["address", "bytes32", "address", "uint64", "uint64"], [patient, tag, writer, 7, 3]
    )
    err = decode_revert(data)
    assert isinstance(err, ContractRevert)
    assert err.name == "RecordIndex_WrongSequence"
    assert err.args_by_name == {
        "patient": "0x" + "11" * 20,
        "tag": tag,
        "writer": "0x" + "33" * 20,
        "expected": 7,
        "given": 3,
    }
    assert "continue from 7" in str(err) and err.data == data


def test_error_without_hint_renders_arguments() -> None:
    pid = b"\xab" * 32
    err = decode_revert(_selector("AuditLog_BindingMismatch(bytes32)") + pid)
    assert err.name == "AuditLog_BindingMismatch" and err.args_by_name == {"policyId": pid}
    assert "AuditLog_BindingMismatch(policyId=0xabab" in str(err)


def test_require_string_panic_and_unknown() -> None:
    err = decode_revert(_selector("Error(string)") + encode(["string"], ["nope"]))
    assert (err.name, err.args_by_name, str(err)) == (
        "Error",
        {"message": "nope"},
        "contract reverted: nope",
    )
    panic = decode_revert(_selector("Panic(uint256)") + encode(["uint256"], [0x11]))
    assert (panic.name, panic.args_by_name) == ("Panic", {"code": 0x11})
    assert decode_revert(b"\xde\xad\xbe\xef").name == "unknown"
    assert decode_revert(b"").name == "unknown"
    assert "unknown error 0xdeadbeef" in str(decode_revert(b"\xde\xad\xbe\xef"))


def test_every_custom_error_is_prefixed_and_decodable() -> None:
    prefixes = {
        "ConsortiumRegistry": "Registry_",
        "PatientProfiles": "PatientProfiles_",
        "RecordIndex": "RecordIndex_",
        "Grants": "Grants_",
        "AuditLog": "AuditLog_",
        "PatientForwarder": "PatientForwarder_",
    }
    assert set(prefixes) <= set(artifact_names())
    for name, prefix in prefixes.items():
        errors = [i for i in load_artifact(name).abi if i["type"] == "error"]
        own = [e for e in errors if e["name"].startswith(prefix)]
        assert own, name
        for e in own:
            types = [p["type"] for p in e["inputs"]]
            sig = f"{e['name']}({','.join(types)})"
            zeros = encode(types, [_zero(t) for t in types])
            assert decode_revert(_selector(sig) + zeros).name == e["name"]


def _zero(t: str) -> object:
    if t == "address":
        return "0x" + "00" * 20
    if t.startswith("bytes"):
        return b"\0" * int(t[5:]) if t != "bytes" else b""
    return 0


def test_every_custom_error_has_an_integration_test() -> None:
    from pathlib import Path

    tests = Path(__file__).resolve().parents[2] / "integration" / "chain"
    text = "".join(p.read_text() for p in sorted(tests.glob("test_*.py")))
    prefixes = (
        "Registry_",
        "PatientProfiles_",
        "RecordIndex_",
        "Grants_",
        "AuditLog_",
        "PatientForwarder_",
        "Emergency_",
        "Trace_",
    )
    missing = sorted(
        e["name"]
        for name in artifact_names()
        for e in load_artifact(name).abi
        if e["type"] == "error" and e["name"].startswith(prefixes) and f'"{e["name"]}"' not in text
    )
    assert missing == [], f"custom errors no integration test asserts: {missing}"


@pytest.mark.parametrize(
    ("contract", "prefix", "at_least"),
    [("Emergency", "Emergency_", 25), ("DrugTrace", "Trace_", 30)],
)
def test_every_error_of_a_role_contract_says_what_to_do(
    contract: str, prefix: str, at_least: int
) -> None:
    from emrshare.chain._revert import _HINTS

    errors = [
        e
        for e in load_artifact(contract).abi
        if e["type"] == "error" and str(e["name"]).startswith(prefix)
    ]
    names = {e["name"] for e in errors}
    assert len(names) >= at_least
    assert sorted(n for n in names if n not in _HINTS) == []
    for e in errors:
        # Each hint renders with the error's own arguments (no stray placeholder).
        values = {str(i["name"]): 0 for i in e["inputs"]}
        assert _HINTS[e["name"]].format(**values)
