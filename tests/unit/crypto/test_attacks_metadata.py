"""Attacks on what sealed bytes and decrypted text reveal or do: lengths on chain, and
control characters meant for the patient's terminal."""

from __future__ import annotations

import dataclasses
import unicodedata

import pytest

from emrshare._media import MEDIA_TYPE_CODES
from emrshare.crypto import MemberKeys, PatientKeys, make_grant, seal_writer_authorization
from emrshare.crypto._wire import cbor_encode, header, pad
from emrshare.crypto.entry import COMPACT_ENTRY_SIZE, ENTRY_SIZE, MAX_MEDIA_TYPE_BYTES, seal_entry
from emrshare.crypto.keys import _address_bytes, validate_category
from emrshare.crypto.requests import (
    PADDED_SIZE,
    REQUEST_BRAND,
    SEALED_REQUEST_BRAND,
    AccessRequestBody,
    open_request,
    seal_request,
)
from emrshare.crypto.sealing import seal
from emrshare.errors import (
    ConfigurationError,
    InvalidCategory,
    InvalidMediaType,
    InvalidText,
    WireFormatError,
)
from emrshare.types import Cid, PolicyId

from .conftest import World, make_entry, seed

LONG = "x" * 64  # the longest category name (64 UTF-8 bytes)
CATEGORIES = ["hiv", "lab-results", "mental-health", LONG, "处方" * 10 + "abcd"]
MEDIA_TYPES = ["application/pdf", "application/fhir+json", "a/" + "b" * (MAX_MEDIA_TYPE_BYTES - 2)]

UNSAFE = [
    "\x00",  # NUL
    "\x1b",  # ESC (starts ANSI sequences)
    "\x1b[2K\rlab",  # erase the line, write "lab"
    "\x07",  # BEL
    "\n",
    "\x7f",  # DEL
    "\x9b",  # C1 CSI
    "\u202e",  # RIGHT-TO-LEFT OVERRIDE
    "\u202a",
    "\u2066",  # LEFT-TO-RIGHT ISOLATE
    "\u2069",
    "\u200b",  # ZERO WIDTH SPACE
    "\u200d",  # ZERO WIDTH JOINER
    "\u2060",  # WORD JOINER
    "\ufeff",  # BOM
    "\u2028",  # LINE SEPARATOR
]


def _grant_map_len(world: World, category: str) -> int:
    grant = make_grant(
        world.patient,
        category=category,
        epoch=2**32 - 1,
        policy_id=PolicyId(seed("policy-" + category)),
        grantee=world.grantee.public_keys(),
        proxies=[p.public_keys() for p in world.proxies[:3]],
        threshold=2,
    )
    return len(grant.sealed_grantee_map)


def test_attack_category_length_visible_on_chain(world: World) -> None:
    """The grantee map, the writer payload and the index entry once grew with the category
    name (292 B for "hiv", 300 for "lab-results") and the media type: an observer told
    "hiv" from "lab-results" for every tag. Now every one has one length."""
    maps = {_grant_map_len(world, c) for c in CATEGORIES}
    writers = {
        len(seal_writer_authorization(world.patient, world.writer.public_keys(), c, e))
        for c in CATEGORIES
        for e in (0, 2**32 - 1)
    }
    entries = set()
    for c in CATEGORIES:
        for m in MEDIA_TYPES:
            for cid in ("bafkrei", "b" * 256):
                e = make_entry(world, c)
                e = dataclasses.replace(e, media_type=m, cid=Cid(cid), size=2**64 - 1)
                assert len(bytes(e)) == ENTRY_SIZE
                entries.add(len(bytes(seal_entry(e, world.patient.category_public_key(c, 0)))))
    assert len(maps) == 1 and len(writers) == 1 and len(entries) == 1, (maps, writers, entries)
    # ... and within the chain's limits (contracts/*.sol).
    assert maps.pop() <= 2048 and writers.pop() <= 1024 and entries.pop() <= 4096


def test_attack_compact_entry_length_tells_nothing_but_a_common_media_type(world: World) -> None:
    """Every entry whose media type is in the table (any category, epoch, CID form, size,
    time) seals to one length, 333 bytes; every other entry to one other, 857. The length
    tells an observer one bit: whether the media type is uncommon (docs/formats.md)."""
    cids = (
        "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
        "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
    )
    common, uncommon = set(), set()
    for c in CATEGORIES:
        for epoch in (0, 2**32 - 1):
            base = make_entry(world, c, epoch)
            key = world.patient.category_public_key(c, epoch)
            for m in MEDIA_TYPE_CODES:
                for cid in cids:
                    for size, t in ((0, 0), (2**48 - 1, 2**40 - 1)):
                        e = dataclasses.replace(
                            base, media_type=m, cid=Cid(cid), size=size, created_at=t
                        )
                        assert len(bytes(e)) == COMPACT_ENTRY_SIZE
                        common.add(len(bytes(seal_entry(e, key))))
            for m in [*MEDIA_TYPES[2:], "application/x-rare"]:
                e = dataclasses.replace(base, media_type=m)
                uncommon.add(len(bytes(seal_entry(e, key))))
    assert common == {333} and uncommon == {857}, (common, uncommon)


def test_media_type_longer_than_the_bucket_is_a_typed_error(world: World) -> None:
    for bad in ("", "a/" + "b" * MAX_MEDIA_TYPE_BYTES, "text/plain\x1b[2K", "tëxt/plain"):
        with pytest.raises(InvalidMediaType):
            make_entry_with_media(world, bad)


def make_entry_with_media(world: World, media_type: str) -> object:
    from emrshare.crypto import DataKey, IndexEntry
    from emrshare.types import RecordId

    return IndexEntry.create(
        patient=world.patient.address,
        record_id=RecordId(seed("r")),
        cid=Cid("bafkrei"),
        data_key=DataKey(seed("k")),
        plaintext_sha256=seed("s"),
        size=1,
        media_type=media_type,
        category="labs",
        epoch=0,
        created_at=1,
        author_key=world.writer.ethereum_key,
    )


@pytest.mark.parametrize("bad", UNSAFE)
def test_attack_control_chars_in_category(bad: str, world: World) -> None:
    """A category name with an ESC sequence, a bidi override or a zero-width character
    shows as another name in a terminal ("mental-health" drawn as "lab"); refused."""
    name = "mental-health" + bad
    with pytest.raises(InvalidCategory) as info:
        validate_category(name)
    assert isinstance(info.value, ValueError)  # callers that catch ValueError still do
    assert bad not in str(info.value)  # the message does not echo the control
    with pytest.raises(InvalidCategory):
        world.patient.tag(name, 0)
    with pytest.raises(ConfigurationError):
        AccessRequestBody(world.patient.address, world.grantee.address, name, "TREAT", "x", 1)


def test_plain_categories_still_valid() -> None:
    for ok in ("lab-results", "mental health", "处方", "Lab_2024", "é"):
        assert validate_category(ok) == ok


def _hostile_request(patient: PatientKeys, requester: MemberKeys, reason: str) -> bytes:
    body = cbor_encode(
        [
            _address_bytes(patient.address),
            _address_bytes(requester.address),
            "mental-health",
            "TREAT",
            reason,
            1_700_000_000,
        ]
    )
    plain = header(REQUEST_BRAND, 1) + pad(body, PADDED_SIZE - 6, "access request")
    return seal(patient.box_public_key, SEALED_REQUEST_BRAND, plain)


@pytest.mark.parametrize("bad", UNSAFE)
def test_attack_terminal_escape_in_request_reason(bad: str, world: World) -> None:
    """A requester's reason with ESC sequences or bidi overrides could rewrite the
    patient's `request list` screen. Refused when sealing; a hostile requester's own
    sealed request opens with every such character replaced by U+FFFD."""
    p, r = world.patient, world.grantee
    with pytest.raises(InvalidText):
        AccessRequestBody(p.address, r.address, "lab", "TREAT", f"claim {bad} 12", 1)
    reason = f"claim{bad}"
    while len((reason + f"claim{bad}").encode()) <= 200:  # as long as a reason may be
        reason += f"claim{bad}"
    opened = open_request(
        _hostile_request(p, r, reason), p.box_private_key, patient=p.address, requester=r.address
    )
    assert opened.category == "mental-health"
    assert bad not in opened.reason
    assert len(opened.reason) == len(reason)  # one U+FFFD per unsafe character
    for shown, sent in zip(opened.reason, reason, strict=True):
        unsafe = unicodedata.category(sent) in {"Cc", "Cf", "Zl", "Zp"}
        assert shown == ("\ufffd" if unsafe else sent)
    assert "\ufffd" in opened.reason
    # An honest reason round-trips unchanged.
    ok = AccessRequestBody(p.address, r.address, "lab", "TREAT", "prior auth — ünïcode", 1)
    sealed = seal_request(p.box_public_key, ok)
    assert open_request(sealed, p.box_private_key, patient=p.address, requester=r.address) == ok


def test_hostile_category_in_sealed_request_is_refused(world: World) -> None:
    p, r = world.patient, world.grantee
    body = cbor_encode(
        [_address_bytes(p.address), _address_bytes(r.address), "lab\u202e", "TREAT", "x", 1]
    )
    plain = header(REQUEST_BRAND, 1) + pad(body, PADDED_SIZE - 6, "access request")
    sealed = seal(p.box_public_key, SEALED_REQUEST_BRAND, plain)
    with pytest.raises(WireFormatError):
        open_request(sealed, p.box_private_key, patient=p.address, requester=r.address)
