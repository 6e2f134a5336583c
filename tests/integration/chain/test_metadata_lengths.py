"""What a chain observer sees of a category name: the event data lengths (issue #10 review)."""

from __future__ import annotations

import hashlib

from emrshare._media import MEDIA_TYPE_CODES
from emrshare.chain import EntryAppended, GrantCreated, WriterAuthorized
from emrshare.crypto import DataKey, IndexEntry, MemberKeys, PatientKeys, seal_entry
from emrshare.crypto.grants import make_grant
from emrshare.crypto.writers import seal_writer_authorization
from emrshare.types import Cid, PolicyId, RecordId

from .conftest import HOSPITAL, PATIENT, Net

#: The two sealed entry lengths (formats.md): compact 1.2 and padded 1.1.
COMPACT_SEALED, PADDED_SEALED = 333, 857

#: (category, media type): the first three media types have a compact one-byte code, the
#: last two do not (the padded 1.1 entry: one bit, "uncommon media type", documented in
#: threat-model.md), one of them the longest media type an entry may carry.
CASES = [
    ("hiv", "application/pdf"),
    ("lab-results", "application/fhir+json"),
    ("x" * 64, "text/plain"),
    ("hiv", "a/b"),
    ("x" * 64, "application/" + "z" * 115),
]


def test_attack_category_length_visible_on_chain(net: Net) -> None:
    """On a real node, the GrantCreated grantee map, the WriterAuthorized payload and the
    EntryAppended entry of "hiv", "lab-results" and a 64-byte name (PDF vs FHIR) have
    one length each: the event data does not tell the categories apart. An entry of an
    uncommon media type has the one other length, whatever its category and the type's
    own length (1 to 127 bytes)."""
    p, h = net.addr(PATIENT), net.addr(HOSPITAL)
    patient = PatientKeys.generate()
    grantee, writer = MemberKeys.generate(), MemberKeys.generate()
    proxies = [MemberKeys.generate().public_keys() for _ in net.proxies]
    mine = net.as_(PATIENT)  # one client: one nonce sequence
    pg, pi = mine.grants, mine.index
    hosp = net.as_(HOSPITAL).index
    maps, payloads, entries = set(), set(), set()
    for n, (category, media_type) in enumerate(CASES):
        tag = patient.tag(category, 0)
        made = make_grant(
            patient,
            category=category,
            epoch=0,
            policy_id=PolicyId(hashlib.sha256(b"p%d" % n).digest()),
            grantee=grantee.public_keys(),
            proxies=proxies,
            threshold=2,
        )
        g = pg.grant(
            net.grant_params(
                tag=tag,
                sealed_kfrags=list(made.sealed_kfrags),
                sealed_grantee_map=made.sealed_grantee_map,
            )
        )
        maps.add(len(g.event(GrantCreated).sealed_grantee_map))
        sealed_payload = seal_writer_authorization(patient, writer.public_keys(), category, 0)
        w = pi.authorize_writer(tag, h, sealed_payload)
        payloads.add(len(w.event(WriterAuthorized).sealed_payload))
        entry = IndexEntry.create(
            patient=patient.address,
            record_id=RecordId(hashlib.sha256(b"r%d" % n).digest()),
            cid=Cid("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"),
            data_key=DataKey(hashlib.sha256(b"k%d" % n).digest()),
            plaintext_sha256=hashlib.sha256(b"c%d" % n).digest(),
            size=1000 + n * 100_000,
            media_type=media_type,
            category=category,
            epoch=0,
            created_at=1_700_000_000,
            author_key=writer.ethereum_key,
        )
        sealed = bytes(seal_entry(entry, patient.category_public_key(category, 0)))
        a = hosp.append(p, tag, hosp.next_sequence(p, tag, h), sealed)
        entries.add((media_type in MEDIA_TYPE_CODES, len(a.event(EntryAppended).entry)))
    assert len(maps) == 1 and len(payloads) == 1, (maps, payloads)
    assert entries == {(True, COMPACT_SEALED), (False, PADDED_SEALED)}, entries
