"""Mutation families of the malformed-input campaign, each through its real consumer.

A family is an original input, the consumer a real reader applies to it (open, verify,
decrypt, import, load), the meaning the consumer gives the original, and what counts as
the same input. :func:`run_family` mutates the original ``count`` times (seeded) and
classifies each mutant:

- *rejected*: the consumer raised an error of the ``EmrShareError`` tree;
- *accepted*: the consumer succeeded and gave a meaning other than the original's, or gave
  the original's meaning from bytes the format says must differ (malleability);
- *crashed* (counted in accepted too): an exception outside the ``EmrShareError`` tree;
- *excluded*, with a stated reason: the mutant is the original (a swap of equal bytes) or
  a form the format defines as the same input (JSON whitespace; hex letter case where the
  text is not authenticated; a CAR header re-encoded with the same roots).

No sockets: the proxy's HTTP family lives in ``benchmarks/reliability_report.py`` and
``tests/integration/proxy/test_http_robustness.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import itertools
import json
import random
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emrshare.crypto.entry import (
    COMPACT_ENTRY_SIZE,
    ENTRY_SIZE,
    EntryContext,
    IndexEntry,
    SealedEntry,
    open_entry,
    seal_entry,
)
from emrshare.crypto.envelope import SUITE_AES256GCM, DataKey, decrypt_bytes, encrypt_bytes
from emrshare.crypto.grants import (
    ProxyKeyFrag,
    make_grant,
    open_grantee_map,
    open_sealed_kfrag,
    reencrypt,
    verify_cfrags,
)
from emrshare.crypto.keys import MemberKeys, PatientKeys
from emrshare.crypto.keystore import load_keystore, save_keystore
from emrshare.crypto.writers import open_writer_authorization, seal_writer_authorization
from emrshare.errors import EmrShareError, VerificationError
from emrshare.storage.car import CarReader, export_car, import_car
from emrshare.storage.local import LocalStore
from emrshare.storage.unixfs import UnixfsProfile
from emrshare.types import Cid, PolicyId, RecordId

from .mutate import cbor_mutations, dumps, json_mutations, mutate_bytes

__all__ = ["FAMILIES", "Counts", "Family", "World", "run_family"]

CATEGORY = "lab-results"
PASSWORD = "fuzz-password"
#: Small chunks so that a 1 KiB file is a DAG of several blocks.
_CAR_PROFILE = UnixfsProfile("fuzz", 1, True, 256, 3)


@dataclass
class Counts:
    """What one family's run found."""

    tried: int = 0
    rejected: int = 0
    accepted: int = 0
    crashed: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)

    def add(self, other: Counts) -> None:
        self.tried += other.tried
        self.rejected += other.rejected
        self.accepted += other.accepted
        self.crashed += other.crashed
        for k, v in other.excluded.items():
            self.excluded[k] = self.excluded.get(k, 0) + v
        self.findings += other.findings

    def exclude(self, reason: str) -> None:
        self.excluded[reason] = self.excluded.get(reason, 0) + 1


@dataclass
class Family:
    """An original, its consumer and what counts as the same input."""

    name: str
    original: bytes
    consume: Callable[[bytes], Any]
    #: Why ``mutant`` is the same input as the original, or None (then it is tried).
    same: Callable[[bytes], str | None] = lambda _: None
    #: Structured mutants (JSON fields, …) tried before the random byte mutations.
    structured: Callable[[], Iterator[tuple[str, bytes]]] | None = None
    meaning: Any = None

    def __post_init__(self) -> None:
        self.meaning = self.consume(self.original)


class World:
    """One patient, grantee, writer and three proxies, with a grant and an entry."""

    def __init__(self, rng: random.Random, tmp: Path) -> None:
        self.tmp = tmp
        self.patient = PatientKeys(rng.randbytes(32))
        self.grantee = MemberKeys(rng.randbytes(32))
        self.writer = MemberKeys(rng.randbytes(32))
        self.proxies = [MemberKeys(rng.randbytes(32)) for _ in range(3)]
        self.policy_id = PolicyId(rng.randbytes(32))
        self.grant = make_grant(
            self.patient,
            category=CATEGORY,
            epoch=0,
            policy_id=self.policy_id,
            grantee=self.grantee.public_keys(),
            proxies=[p.public_keys() for p in self.proxies],
            threshold=2,
        )
        self.gmap = open_grantee_map(
            self.grant.sealed_grantee_map,
            self.grantee,
            patient_verifying_key=self.patient.verifying_key,
        )
        self.kfrag = self.verify_kfrag(
            open_sealed_kfrag(self.grant.sealed_kfrags[0], self.proxies[0])
        )
        self.body = rng.randbytes(200)
        self.data_key = DataKey(rng.randbytes(32))
        self.record_id = RecordId(rng.randbytes(32))
        self.entry = IndexEntry.create(
            patient=self.patient.address,
            record_id=self.record_id,
            cid=Cid("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"),
            data_key=self.data_key,
            plaintext_sha256=hashlib.sha256(self.body).digest(),
            size=len(self.body),
            media_type="application/fhir+json",
            category=CATEGORY,
            epoch=0,
            created_at=1_700_000_000,
            author_key=self.patient.ethereum_key,
        )
        self.sealed = seal_entry(self.entry, self.patient.category_public_key(CATEGORY, 0))
        #: What the chain event and the key give a 1.2 entry.
        self.context = EntryContext(self.record_id, self.entry.author, CATEGORY, 0)

    def verify_kfrag(self, kfrag: ProxyKeyFrag) -> Any:
        b = self.grant.binding
        return kfrag.verify(
            patient_verifying_key=self.patient.verifying_key,
            policy_id=self.policy_id,
            patient=self.patient.address,
            grantee=self.grantee.address,
            tag=b.tag,
            epoch=0,
            grantee_receiving_key=self.grantee.receiving_public_key,
        )


def _families(world: World, rng: random.Random) -> list[Family]:
    w = world
    out: list[Family] = []

    # Record envelopes: several chunks, so chunk framing is exercised too.
    envelope = encrypt_bytes(w.body * 3, w.data_key, w.record_id, chunk_size=128)
    out.append(Family("envelope", envelope, lambda d: decrypt_bytes(d, w.data_key, w.record_id)))
    aes = encrypt_bytes(w.body * 3, w.data_key, w.record_id, chunk_size=128, suite=SUITE_AES256GCM)
    out.append(Family("envelope-aes", aes, lambda d: decrypt_bytes(d, w.data_key, w.record_id)))

    def open_sealed_entry(d: bytes) -> bytes:
        entry = open_entry(SealedEntry.from_bytes(d), w.patient, CATEGORY, 0, origin=w.context)
        entry.verify_author(w.patient.address)
        return bytes(entry)

    out.append(Family("index-entry", bytes(w.sealed), open_sealed_entry))

    def plain_entry(d: bytes) -> bytes:
        entry = IndexEntry.from_bytes(d, context=w.context)
        entry.verify_author(w.patient.address)
        return bytes(entry)

    def plain_same(d: bytes) -> str | None:
        try:
            a = IndexEntry.from_bytes(bytes(w.entry), context=w.context)
            b = IndexEntry.from_bytes(d, context=w.context)
        except EmrShareError:
            return None
        if a.author_digest(w.patient.address) == b.author_digest(w.patient.address) and (
            a.author,
            a.author_signature,
        ) == (b.author, b.author_signature):
            return (
                "index-entry-plain: only fields outside the author signature changed "
                "(data_key, size, media_type, created_at); the sealing AEAD covers them, "
                "see family index-entry"
            )
        return None

    original = w.entry.encode(minor=1)  # the padded 1.1 form, still read and written
    out.append(
        Family(
            "index-entry-plain",
            original,
            plain_entry,
            plain_same,
            lambda: itertools.chain(
                _signature_twins(w, 1), cbor_mutations(original, padded_size=ENTRY_SIZE - 6)
            ),
        )
    )
    compact = bytes(w.entry)
    assert len(compact) == COMPACT_ENTRY_SIZE
    out.append(
        Family(
            "index-entry-compact",
            compact,
            plain_entry,
            plain_same,
            lambda: itertools.chain(_signature_twins(w, 2), _compact_mutations(compact)),
        )
    )

    def with_capsule(d: bytes) -> bytes:
        # The capsule inside an otherwise intact sealed entry, through the patient's open.
        framed = bytes(w.sealed)[:6] + len(d).to_bytes(2, "big") + d + w.sealed.ciphertext
        return open_sealed_entry(framed)

    out.append(Family("capsule", w.sealed.capsule_bytes, with_capsule))

    kfrag = bytes(w.kfrag)
    out.append(
        Family(
            "kfrag",
            kfrag,
            lambda d: bytes(w.verify_kfrag(ProxyKeyFrag.from_bytes(d))),
            structured=lambda: cbor_mutations(kfrag),
        )
    )
    out.append(
        Family(
            "sealed-kfrag",
            w.grant.sealed_kfrags[0],
            lambda d: bytes(w.verify_kfrag(open_sealed_kfrag(d, w.proxies[0]))),
        )
    )

    capsule = w.sealed.capsule
    cfrag = bytes(reencrypt(capsule, w.kfrag))

    def check_cfrag(d: bytes) -> bytes:
        check = verify_cfrags(capsule, {"p": d}, w.gmap, w.grantee.receiving_public_key)
        if "p" in check.failed:
            raise VerificationError(check.failed["p"])
        return bytes(check.verified["p"])

    out.append(Family("cfrag", cfrag, check_cfrag))

    out.append(
        Family(
            "grantee-map",
            w.grant.sealed_grantee_map,
            lambda d: open_grantee_map(
                d, w.grantee, patient_verifying_key=w.patient.verifying_key
            )._fields(),
        )
    )
    writer_auth = seal_writer_authorization(w.patient, w.writer.public_keys(), CATEGORY, 0)
    out.append(
        Family(
            "writer-authorization",
            writer_auth,
            lambda d: open_writer_authorization(
                d, w.writer, patient_verifying_key=w.patient.verifying_key
            )._fields(),
        )
    )
    out.append(_keystore_family(w))
    out.append(_car_family(w, rng))
    return out


_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


#: (name, start, end) of each field of a 1.2 entry, header included.
_COMPACT_FIELDS = (
    ("header", 0, 6),
    ("cid-form", 6, 7),
    ("cid-digest", 7, 39),
    ("data-key", 39, 71),
    ("sha256", 71, 103),
    ("size", 103, 109),
    ("created-at", 109, 114),
    ("media-code", 114, 115),
    ("signature", 115, 180),
)


def _compact_mutations(data: bytes) -> Iterator[tuple[str, bytes]]:
    """A 1.2 entry cut or extended at every field boundary, and each field all zeros or
    all ones."""
    for name, start, end in _COMPACT_FIELDS:
        yield f"cut-before:{name}", data[:start]
        yield f"extend-after:{name}", data[:end] + b"\x00" + data[end:]
        for fill in (0x00, 0xFF):
            yield f"{name}:{fill:02x}", data[:start] + bytes([fill]) * (end - start) + data[end:]
    yield "extended", data + b"\x00"


def _signature_twins(w: World, minor: int) -> Iterator[tuple[str, bytes]]:
    """Other encodings of the author's signature that generic ECDSA recovery accepts."""
    sig = w.entry.author_signature
    s = int.from_bytes(sig[32:64], "big")
    twins = {
        "high-s": sig[:32] + (_SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]]),
        "v-0/1": sig[:64] + bytes([sig[64] - 27]),
        "v-eip155": sig[:64] + bytes([sig[64] - 27 + 37]),
    }
    for name, twin in twins.items():
        twin_entry = dataclasses.replace(w.entry, author_signature=twin)
        yield f"signature:{name}", twin_entry.encode(minor=minor)


def _keystore_family(w: World) -> Family:
    path = w.tmp / "keystore.json"
    save_keystore(path, w.grantee, PASSWORD, opslimit=1, memlimit=8192)
    original = path.read_bytes()
    doc = json.loads(original)
    probe = w.tmp / "probe.json"

    def load(d: bytes) -> tuple[str, bytes]:
        probe.write_bytes(d)
        keys = load_keystore(probe, PASSWORD)
        return type(keys).__name__, bytes(keys.public_keys())

    def same(d: bytes) -> str | None:
        try:
            other = json.loads(d)
            if isinstance(other, dict) and isinstance(other.get("ciphertext"), str):
                other["ciphertext"] = bytes.fromhex(other["ciphertext"]).hex()
        except (ValueError, RecursionError):
            return None
        if other == doc:
            return (
                "keystore: the same JSON document (whitespace, or the ciphertext's hex "
                "case and spacing, which the AEAD covers as bytes, not as text)"
            )
        return None

    def structured() -> Iterator[tuple[str, bytes]]:
        for label, mutant in json_mutations(doc):
            with contextlib.suppress(RecursionError):
                yield label, dumps(mutant).encode()

    return Family("keystore", original, load, same, structured)


def _car_family(w: World, rng: random.Random) -> Family:
    source = LocalStore(w.tmp / "car-source", _CAR_PROFILE)
    root = source.put(rng.randbytes(1024))
    buf = io.BytesIO()
    export_car(source, [root], buf)
    original = buf.getvalue()
    reference = _car_sections(original)
    counter = iter(range(10**9))

    def load(d: bytes) -> tuple[list[str], list[str]]:
        with tempfile.TemporaryDirectory(dir=w.tmp) as tmp:
            store = LocalStore(Path(tmp) / f"s{next(counter)}", _CAR_PROFILE)
            roots = import_car(store, io.BytesIO(d))
            blocks = sorted(p.name for p in (store.path / "blocks").rglob("*.data"))
            return [str(r) for r in roots], blocks

    def same(d: bytes) -> str | None:
        try:
            sections = _car_sections(d)
        except EmrShareError:
            return None
        if sections == reference:
            return (
                "car: the same roots and sections (CARv1 does not require a canonical "
                "dag-cbor header; a repeated section stores the same verified block)"
            )
        return None

    return Family("car", original, load, same)


def _car_sections(d: bytes) -> tuple[list[str], list[tuple[str, bytes]]]:
    reader = CarReader(io.BytesIO(d))
    blocks = sorted({(str(c.cid), b) for c, b in reader.blocks()})
    return [str(r.cid) for r in reader.roots], blocks


def run_family(family: Family, rng: random.Random, count: int) -> Counts:
    """Try ``count`` mutants of the family (structured ones first), seeded by ``rng``."""
    counts = Counts()
    mutants: Iterator[tuple[str, bytes]] = iter(())
    if family.structured is not None:
        mutants = family.structured()
    n = 0
    while n < count:
        item = next(mutants, None)
        if item is None:
            label, mutant = mutate_bytes(rng, family.original)
        else:
            label, mutant = item
        n += 1
        _classify(family, label, mutant, counts)
    return counts


def _classify(family: Family, label: str, mutant: bytes, counts: Counts) -> None:
    if mutant == family.original:
        counts.exclude("the mutation left the bytes unchanged")
        return
    reason = family.same(mutant)
    try:
        meaning = family.consume(mutant)
    except EmrShareError:
        if reason is not None:
            counts.exclude(reason)
            return
        counts.tried += 1
        counts.rejected += 1
        return
    except Exception as exc:  # outside the error tree: a crash, whatever the mutant
        counts.tried += 1
        counts.accepted += 1
        counts.crashed += 1
        counts.findings.append(f"{family.name} {label}: crashed with {type(exc).__name__}: {exc}")
        return
    if reason is not None:
        counts.exclude(reason)
        return
    counts.tried += 1
    counts.accepted += 1
    same = "the original's" if meaning == family.meaning else "another"
    counts.findings.append(f"{family.name} {label}: accepted, with {same} meaning")


def build(seed: int, tmp: Path) -> list[Family]:
    """The families of one campaign (keys and plaintexts drawn from ``seed``)."""
    rng = random.Random(seed)
    return _families(World(rng, tmp), rng)


FAMILIES = (
    "envelope",
    "envelope-aes",
    "index-entry",
    "index-entry-plain",
    "index-entry-compact",
    "capsule",
    "kfrag",
    "sealed-kfrag",
    "cfrag",
    "grantee-map",
    "writer-authorization",
    "keystore",
    "car",
)
