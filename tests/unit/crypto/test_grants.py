"""Threshold grants: kfrag sealing and binding, cfrag checks, thresholds, epochs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emrshare.crypto import (
    ProxyKeyFrag,
    make_grant,
    open_entry_as_grantee,
    open_grantee_map,
    open_sealed_kfrag,
    reencrypt,
    verify_cfrags,
)
from emrshare.crypto.grants import SEALED_KFRAG_BRAND, PolicyBinding
from emrshare.crypto.sealing import seal
from emrshare.errors import (
    DecryptionError,
    EmrShareError,
    Unavailable,
    VerificationError,
    WireFormatError,
)
from emrshare.types import PolicyId

from .conftest import GrantSetup, World, grant_for, make_entry, origin_for, sealed_for, seed


def _verify_kwargs(world: World, g: GrantSetup) -> dict[str, object]:
    return {
        "patient_verifying_key": world.patient.verifying_key,
        "policy_id": g.policy_id,
        "patient": world.patient.address,
        "grantee": world.grantee.address,
        "tag": world.patient.tag(g.category, g.epoch),
        "epoch": g.epoch,
        "grantee_receiving_key": world.grantee.receiving_public_key,
    }


def _cfrags(g: GrantSetup, capsule: object, world: World) -> dict[str, bytes]:
    return {
        world.proxies[i].address: bytes(reencrypt(capsule, k))  # type: ignore[arg-type]
        for i, k in enumerate(g.kfrags)
    }


def test_grantee_opens_with_m_verified_cfrags(world: World, labs_grant: GrantSetup) -> None:
    sealed = sealed_for(world)
    check = verify_cfrags(
        sealed.capsule,
        _cfrags(labs_grant, sealed.capsule, world),
        labs_grant.gmap,
        world.grantee.receiving_public_key,
    )
    assert not check.failed and len(check.verified) == 3
    entry = open_entry_as_grantee(
        sealed, world.grantee, labs_grant.gmap, check.verified.values(), origin=origin_for(world)
    )
    assert entry == make_entry(world)
    assert labs_grant.gmap.category == "labs" and labs_grant.gmap.threshold == 2
    # Any two of the three suffice.
    values = list(check.verified.values())
    for pair in ([values[0], values[2]], [values[1], values[2]]):
        assert (
            open_entry_as_grantee(
                sealed, world.grantee, labs_grant.gmap, pair, origin=origin_for(world)
            )
            == entry
        )


def test_3_of_5(world: World) -> None:
    g = grant_for(world, m=3, n=5)
    sealed = sealed_for(world, n=7)
    check = verify_cfrags(
        sealed.capsule,
        _cfrags(g, sealed.capsule, world),
        g.gmap,
        world.grantee.receiving_public_key,
    )
    chosen = [check.verified[world.proxies[i].address] for i in (4, 1, 3)]
    assert open_entry_as_grantee(
        sealed, world.grantee, g.gmap, chosen, origin=origin_for(world, n=7)
    ) == make_entry(world, n=7)
    with pytest.raises(Unavailable) as info:
        open_entry_as_grantee(
            sealed, world.grantee, g.gmap, chosen[:2], origin=origin_for(world, n=7)
        )
    assert (info.value.needed, info.value.got) == (3, 2)


def test_too_few_or_duplicated_cfrags_fail(world: World, labs_grant: GrantSetup) -> None:
    sealed = sealed_for(world)
    check = verify_cfrags(
        sealed.capsule,
        _cfrags(labs_grant, sealed.capsule, world),
        labs_grant.gmap,
        world.grantee.receiving_public_key,
    )
    one = next(iter(check.verified.values()))
    with pytest.raises(Unavailable):
        open_entry_as_grantee(
            sealed, world.grantee, labs_grant.gmap, [one], origin=origin_for(world)
        )
    with pytest.raises(Unavailable):
        open_entry_as_grantee(
            sealed, world.grantee, labs_grant.gmap, [one, one, one], origin=origin_for(world)
        )
    with pytest.raises(TypeError):
        open_entry_as_grantee(
            sealed, world.grantee, labs_grant.gmap, [one.unverify()], origin=origin_for(world)
        )  # type: ignore[list-item]


def test_bad_cfrags_are_reported_by_proxy(world: World, labs_grant: GrantSetup) -> None:
    sealed = sealed_for(world)
    other = sealed_for(world, n=1)
    answers = _cfrags(labs_grant, sealed.capsule, world)
    p0, p1, p2 = (p.address for p in world.proxies[:3])
    answers[p0] = answers[p0][:-3] + bytes(3)  # corrupted
    answers[p1] = bytes(reencrypt(other.capsule, labs_grant.kfrags[1]))  # for another capsule
    answers["junk-proxy"] = b"not a cfrag"
    check = verify_cfrags(
        sealed.capsule, answers, labs_grant.gmap, world.grantee.receiving_public_key
    )
    assert set(check.verified) == {p2}
    assert set(check.failed) == {p0, p1, "junk-proxy"}
    assert check.failed["junk-proxy"] == "malformed capsule fragment"


def test_wrong_grantee_cannot_use_cfrags(world: World, labs_grant: GrantSetup) -> None:
    sealed = sealed_for(world)
    answers = _cfrags(labs_grant, sealed.capsule, world)
    # The stranger's receiving key does not match: every fragment fails verification.
    check = verify_cfrags(
        sealed.capsule, answers, labs_grant.gmap, world.stranger.receiving_public_key
    )
    assert not check.verified
    # And the grantee map is sealed to the grantee only.
    with pytest.raises(DecryptionError):
        open_grantee_map(
            labs_grant.grant.sealed_grantee_map,
            world.stranger,
            patient_verifying_key=world.patient.verifying_key,
        )
    # Even with the grantee's verified cfrags, the stranger's secret key cannot open.
    good = verify_cfrags(
        sealed.capsule, answers, labs_grant.gmap, world.grantee.receiving_public_key
    )
    with pytest.raises(DecryptionError):
        open_entry_as_grantee(
            sealed,
            world.stranger,
            labs_grant.gmap,
            good.verified.values(),
            origin=origin_for(world),
        )


def test_kfrag_for_category_a_cannot_open_category_b(world: World, labs_grant: GrantSetup) -> None:
    imaging = sealed_for(world, category="imaging")
    answers = _cfrags(labs_grant, imaging.capsule, world)
    check = verify_cfrags(
        imaging.capsule, answers, labs_grant.gmap, world.grantee.receiving_public_key
    )
    # Umbral's capsule does not commit to the delegating key, so these fragments even
    # pass cfrag verification (proxies must check the capsule's tag on chain); what
    # matters is that they cannot decrypt an entry sealed to another category's key.
    assert len(check.verified) == 3
    with pytest.raises(DecryptionError):
        open_entry_as_grantee(
            imaging,
            world.grantee,
            labs_grant.gmap,
            check.verified.values(),
            origin=origin_for(world),
        )


def test_old_epoch_kfrags_cannot_open_new_epoch_entries(
    world: World, labs_grant: GrantSetup
) -> None:
    new_entry = sealed_for(world, epoch=1)
    answers = _cfrags(labs_grant, new_entry.capsule, world)
    check = verify_cfrags(
        new_entry.capsule, answers, labs_grant.gmap, world.grantee.receiving_public_key
    )
    with pytest.raises(DecryptionError):
        open_entry_as_grantee(
            new_entry,
            world.grantee,
            labs_grant.gmap,
            check.verified.values(),
            origin=origin_for(world),
        )
    # A fresh grant for epoch 1 works.
    g1 = grant_for(world, epoch=1)
    ok = verify_cfrags(
        new_entry.capsule,
        _cfrags(g1, new_entry.capsule, world),
        g1.gmap,
        world.grantee.receiving_public_key,
    )
    assert open_entry_as_grantee(
        new_entry, world.grantee, g1.gmap, ok.verified.values(), origin=origin_for(world)
    ) == (make_entry(world, epoch=1))


def test_verified_kfrag_reloads_from_bytes(world: World, labs_grant: GrantSetup) -> None:
    stored = bytes(labs_grant.kfrags[0])
    reloaded = ProxyKeyFrag.from_bytes(stored).verify(**_verify_kwargs(world, labs_grant))  # type: ignore[arg-type]
    assert bytes(reloaded) == stored
    assert reloaded.binding == labs_grant.grant.binding
    assert "kfrag" not in repr(reloaded).lower().replace("verifiedproxykeyfrag", "")


def test_kfrag_bound_to_another_policy_is_rejected(world: World, labs_grant: GrantSetup) -> None:
    sealed = labs_grant.grant.sealed_kfrags[0]
    pkf = open_sealed_kfrag(sealed, world.proxies[0])
    kwargs = _verify_kwargs(world, labs_grant)
    for key, value in (
        ("policy_id", PolicyId(seed("other policy"))),
        ("grantee", world.stranger.address),
        ("patient", world.grantee.address),
        ("tag", world.patient.tag("labs", 1)),
        ("epoch", 1),
        ("grantee_receiving_key", world.stranger.receiving_public_key),
    ):
        with pytest.raises(VerificationError):
            pkf.verify(**{**kwargs, key: value})  # type: ignore[arg-type]
    # Another proxy cannot open it.
    with pytest.raises(DecryptionError):
        open_sealed_kfrag(sealed, world.proxies[1])


def test_kfrag_sealed_by_a_stranger_is_rejected(world: World, labs_grant: GrantSetup) -> None:
    from emrshare.crypto import PatientKeys

    impostor = PatientKeys(seed("impostor"))
    # The impostor makes a grant with its own keys but claims the real patient's policy.
    fake = make_grant(
        impostor,
        category="labs",
        epoch=0,
        policy_id=labs_grant.policy_id,
        grantee=world.grantee.public_keys(),
        proxies=[p.public_keys() for p in world.proxies[:3]],
        threshold=2,
    )
    pkf = open_sealed_kfrag(fake.sealed_kfrags[0], world.proxies[0])
    kwargs = _verify_kwargs(world, labs_grant)
    with pytest.raises(VerificationError):
        pkf.verify(**kwargs)  # type: ignore[arg-type]
    # Re-wrapping a genuine kfrag under a forged binding breaks the patient's signature.
    genuine = open_sealed_kfrag(labs_grant.grant.sealed_kfrags[0], world.proxies[0])
    b = genuine.binding
    forged_binding = PolicyBinding(
        PolicyId(seed("other policy")),
        b.patient,
        b.grantee,
        b.tag,
        b.epoch,
        b.category_public_key_bytes,
        b.grantee_receiving_key_bytes,
    )
    forged = ProxyKeyFrag(forged_binding, genuine.kfrag, genuine.signature)
    resealed = seal(world.proxies[0].public_keys().box_key, SEALED_KFRAG_BRAND, bytes(forged))
    with pytest.raises(VerificationError):
        open_sealed_kfrag(resealed, world.proxies[0]).verify(
            **{**kwargs, "policy_id": forged_binding.policy_id}  # type: ignore[arg-type]
        )
    # A grantee map from the impostor is refused against the registered verifying key.
    with pytest.raises(VerificationError):
        open_grantee_map(
            fake.sealed_grantee_map,
            world.grantee,
            patient_verifying_key=world.patient.verifying_key,
        )


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_bit_flip_in_a_sealed_kfrag_is_rejected(
    world: World, labs_grant: GrantSetup, data: st.DataObject
) -> None:
    sealed = labs_grant.grant.sealed_kfrags[0]
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1))
    bad = bytearray(sealed)
    bad[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(EmrShareError):
        open_sealed_kfrag(bytes(bad), world.proxies[0]).verify(**_verify_kwargs(world, labs_grant))  # type: ignore[arg-type]


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_any_bit_flip_in_a_cfrag_is_rejected(
    world: World, labs_grant: GrantSetup, data: st.DataObject
) -> None:
    sealed = sealed_for(world)
    cfrag = bytes(reencrypt(sealed.capsule, labs_grant.kfrags[0]))
    bit = data.draw(st.integers(0, len(cfrag) * 8 - 1))
    bad = bytearray(cfrag)
    bad[bit // 8] ^= 1 << (bit % 8)
    check = verify_cfrags(
        sealed.capsule, {"p": bytes(bad)}, labs_grant.gmap, world.grantee.receiving_public_key
    )
    assert not check.verified and "p" in check.failed


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_any_bit_flip_in_a_capsule_is_rejected(
    world: World, labs_grant: GrantSetup, data: st.DataObject
) -> None:
    raw = bytes(sealed_for(world))
    cap_len = int.from_bytes(raw[6:8], "big")
    bit = data.draw(st.integers(8 * 8, (8 + cap_len) * 8 - 1))  # inside the capsule
    bad = bytearray(raw)
    bad[bit // 8] ^= 1 << (bit % 8)
    from emrshare.crypto import SealedEntry, open_entry

    try:
        parsed = SealedEntry.from_bytes(bytes(bad))
    except WireFormatError:
        return  # rejected at parse time
    with pytest.raises(EmrShareError):
        open_entry(parsed, world.patient, "labs", 0, origin=origin_for(world))
    answers = _cfrags(labs_grant, sealed_for(world).capsule, world)
    check = verify_cfrags(
        parsed.capsule, answers, labs_grant.gmap, world.grantee.receiving_public_key
    )
    assert not check.verified


def test_grant_parameters_are_checked(world: World) -> None:
    proxies = [p.public_keys() for p in world.proxies[:3]]
    common = {
        "category": "labs",
        "epoch": 0,
        "policy_id": PolicyId(seed("p")),
        "grantee": world.grantee.public_keys(),
    }
    with pytest.raises(ValueError):
        make_grant(world.patient, proxies=proxies, threshold=4, **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        make_grant(world.patient, proxies=proxies, threshold=0, **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        make_grant(world.patient, proxies=[proxies[0], proxies[0]], threshold=1, **common)  # type: ignore[arg-type]


@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_opening_needs_exactly_m_distinct_fragments(world: World, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 5), label="n")
    m = data.draw(st.integers(1, n), label="m")
    g = grant_for(world, m=m, n=n)
    sealed = sealed_for(world, n=3)
    check = verify_cfrags(
        sealed.capsule,
        _cfrags(g, sealed.capsule, world),
        g.gmap,
        world.grantee.receiving_public_key,
    )
    frags = list(check.verified.values())
    chosen = data.draw(st.lists(st.sampled_from(range(n)), max_size=2 * n), label="picks")
    distinct = len(set(chosen))
    picked = [frags[i] for i in chosen]
    if distinct >= m:
        assert open_entry_as_grantee(
            sealed, world.grantee, g.gmap, picked, origin=origin_for(world, n=3)
        ) == make_entry(world, n=3)
    else:
        with pytest.raises(Unavailable):
            open_entry_as_grantee(
                sealed, world.grantee, g.gmap, picked, origin=origin_for(world, n=3)
            )
