"""EIP-712 re-encryption requests: signing, recovery, wire round trip, refusal reasons."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from emrshare.errors import WireFormatError
from emrshare.proxy.request import (
    MAX_BATCH,
    ReencryptRequest,
    RefusalReason,
    SignedRequest,
    capsule_hash,
)

KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
OTHER = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")
GRANTS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
PROXY = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def _req(**kw: object) -> ReencryptRequest:
    args: dict[str, object] = {
        "proxy": PROXY,
        "policy_id": b"\x11" * 32,
        "capsule_hashes": [capsule_hash(b"capsule-1"), capsule_hash(b"capsule-2")],
        "deadline": 1_900_000_000,
        "nonce": 42,
    }
    args.update(kw)
    return ReencryptRequest.new(**args)  # type: ignore[arg-type]


def test_sign_and_recover_round_trip() -> None:
    req = _req()
    sig = req.sign(KEY, 31337, GRANTS)
    assert len(sig) == 65
    assert req.recover(sig, 31337, GRANTS) == Account.from_key(KEY).address


@pytest.mark.parametrize(
    "change",
    [
        {"chain_id": 1},
        {"contract": "0x0000000000000000000000000000000000000001"},
    ],
)
def test_other_domain_recovers_another_address(change: dict[str, object]) -> None:
    req = _req()
    sig = req.sign(KEY, 31337, GRANTS)
    chain_id = int(change.get("chain_id", 31337))  # type: ignore[call-overload]
    contract = str(change.get("contract", GRANTS))
    assert req.recover(sig, chain_id, contract) != Account.from_key(KEY).address


@pytest.mark.parametrize(
    "field",
    ["proxy", "policy_id", "capsule_hashes", "nonce", "deadline"],
)
def test_every_field_is_signed(field: str) -> None:
    req = _req()
    sig = req.sign(KEY, 31337, GRANTS)
    changed = {
        "proxy": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        "policy_id": b"\x12" * 32,
        "capsule_hashes": [capsule_hash(b"capsule-1")],
        "nonce": 43,
        "deadline": 1_900_000_001,
    }[field]
    other = _req(**{field: changed})
    assert other.recover(sig, 31337, GRANTS) != Account.from_key(KEY).address


def test_matches_eth_account_sign_typed_data() -> None:
    """Our typed data is the standard EIP-712 encoding (wallets can sign it)."""
    req = _req()
    full = req.typed_data(31337, GRANTS)
    ours = req.sign(KEY, 31337, GRANTS)
    theirs = Account.sign_typed_data(KEY, full_message=full).signature
    assert ours == bytes(theirs)
    assert encode_typed_data(full_message=full).version == b"\x01"


def test_wire_round_trip() -> None:
    req = _req()
    signed = SignedRequest(
        request=req,
        chain_id=31337,
        verifying_contract=GRANTS,  # type: ignore[arg-type]
        signature=req.sign(KEY, 31337, GRANTS),
        capsules=(b"capsule-1", b"capsule-2"),
    )
    back = SignedRequest.from_json(signed.to_json())
    assert back == signed


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("nonce"),
        lambda d: d.update(policy_id="0x1234"),
        lambda d: d.update(capsule_hashes=["zz"]),
        lambda d: d.update(proxy="not-an-address"),
        lambda d: d.update(nonce=str(2**256)),
        lambda d: d.update(deadline="soon"),
    ],
)
def test_malformed_wire_requests_are_wire_format_errors(mutate: object) -> None:
    req = _req()
    data = SignedRequest(
        req,
        31337,
        GRANTS,
        req.sign(KEY, 31337, GRANTS),
        (b"a", b"b"),  # type: ignore[arg-type]
    ).to_json()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(WireFormatError):
        SignedRequest.from_json(data)


def test_malformed_signature_is_wire_format_error() -> None:
    with pytest.raises(WireFormatError):
        _req().recover(b"\x00" * 10, 31337, GRANTS)


def test_fresh_nonces_differ() -> None:
    a = ReencryptRequest.new(PROXY, b"\x01" * 32, [b"\x02" * 32], 10)
    b = ReencryptRequest.new(PROXY, b"\x01" * 32, [b"\x02" * 32], 10)
    assert a.nonce != b.nonce


def test_refusal_reasons_are_stable_strings() -> None:
    assert RefusalReason("not_grantee") is RefusalReason.NOT_GRANTEE
    assert RefusalReason.POLICY_REVOKED.denies_access
    assert not RefusalReason.CHAIN_UNAVAILABLE.denies_access
    assert not RefusalReason.CAPSULE_NOT_IN_INDEX.denies_access  # a lagging index
    assert RefusalReason.CAPSULE_WRONG_CATEGORY.denies_access
    assert MAX_BATCH >= 32
    assert OTHER != KEY


def test_threshold_errors_tell_no_from_not_now() -> None:
    from emrshare.errors import AccessDenied, GrantRevoked, Unavailable
    from emrshare.proxy.client import (
        PolicyKeys,
        ProxyEndpoint,
        ProxyFailure,
        ThresholdPolicy,
        _threshold_error,
    )

    policy = ThresholdPolicy(
        b"\x01" * 32,
        2,
        tuple(ProxyEndpoint(f"0xP{i}", f"http://p{i}") for i in range(3)),
        PolicyKeys(b"", b"", b""),
    )
    down = ProxyFailure("0xP0", "http://p0", "down", "unreachable")
    bad = ProxyFailure("0xP1", "http://p1", "bad_fragment", "cfrag_verification_failed")
    revoked = ProxyFailure("0xP2", "http://p2", "refused", "policy_revoked")
    busy = ProxyFailure("0xP2", "http://p2", "refused", "chain_unavailable")
    err = _threshold_error(policy, 1, [down, bad])
    assert isinstance(err, Unavailable) and err.failures == {
        "0xP0": "unreachable",
        "0xP1": "cfrag_verification_failed",
    }
    assert isinstance(_threshold_error(policy, 0, [down, bad, busy]), Unavailable)
    err = _threshold_error(policy, 0, [down, bad, revoked])
    assert isinstance(err, GrantRevoked) and err.reasons["0xP2"] == "policy_revoked"
    other = ProxyFailure("0xP1", "http://p1", "refused", "not_grantee")
    err = _threshold_error(policy, 0, [other, revoked])
    assert type(err) is AccessDenied
    assert "0xP1" in str(err) and "0xP2" in str(err)
