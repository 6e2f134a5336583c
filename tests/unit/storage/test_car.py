"""CARv1 export/import: round trip, structure per the CARv1 spec, verification on import."""

from __future__ import annotations

import io
import random
from pathlib import Path

import cbor2
import pytest

from emrshare.errors import BlobNotFound, IntegrityError, WireFormatError
from emrshare.storage import UNIXFS_V1_2025, CarReader, LocalStore, export_car, import_car, read_all
from emrshare.storage.car import encode_car_header
from emrshare.storage.cid import CidInfo, decode_varint, encode_varint


def blobs() -> list[bytes]:
    rng = random.Random(21)
    return [rng.randbytes(n) for n in (0, 5, 262_144 * 3 + 11, 1_000_000)]


def car_of(store: LocalStore, roots: list[str]) -> bytes:
    out = io.BytesIO()
    n = export_car(store, roots, out)  # type: ignore[arg-type]
    assert n == len(out.getvalue())
    return out.getvalue()


@pytest.mark.parametrize("profile_name", ["kubo-default", "unixfs-v1-2025"])
def test_round_trip(tmp_path: Path, profile_name: str) -> None:
    from emrshare.storage import PROFILES

    src = LocalStore(tmp_path / "src", PROFILES[profile_name])
    cids = [src.put(b) for b in blobs()]
    car = car_of(src, cids)
    dst = LocalStore(tmp_path / "dst")
    assert import_car(dst, io.BytesIO(car)) == cids
    for cid, data in zip(cids, blobs(), strict=True):
        assert read_all(dst, cid) == data
        assert dst.stat(cid).pinned


def test_structure_matches_carv1_spec(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, UNIXFS_V1_2025)
    data = random.Random(2).randbytes(3 * (1 << 20) + 5)
    root = store.put(data)
    car = car_of(store, [root])
    # Header: varint length, then dag-cbor {"roots": [tag 42 (0x00 + CID)], "version": 1}.
    hlen, pos = decode_varint(car)
    header_bytes = car[pos : pos + hlen]
    header = cbor2.loads(header_bytes)
    assert header == {
        "roots": [cbor2.CBORTag(42, b"\x00" + CidInfo.parse(root).to_bytes())],
        "version": 1,
    }
    # dag-cbor is canonical CBOR (length-first key order, minimal integers).
    assert header_bytes == cbor2.dumps(header, canonical=True)
    pos += hlen
    sections: list[CidInfo] = []
    while pos < len(car):
        length, pos = decode_varint(car, pos)
        cid, body_at = CidInfo.read(car, pos)
        block = car[body_at : pos + length]
        cid.verify(block)
        sections.append(cid)
        pos += length
    assert pos == len(car)
    assert sections[0] == CidInfo.parse(root)  # root first, then depth first
    expected = [c for c, _ in store.walk_blocks(CidInfo.parse(root))]
    assert sections == expected
    assert len(sections) == 5  # root + 4 raw leaves


def test_header_encoder_handles_many_roots() -> None:
    roots = [CidInfo.for_block(bytes([i]), 0x55, 1) for i in range(30)]
    header = cbor2.loads(encode_car_header(roots))
    assert [CidInfo.from_bytes(r.value[1:]) for r in header["roots"]] == roots


def test_tampered_block_is_refused(tmp_path: Path) -> None:
    src = LocalStore(tmp_path / "src")
    root = src.put(b"tamper with me")
    car = bytearray(car_of(src, [root]))
    car[-1] ^= 0x01
    dst = LocalStore(tmp_path / "dst")
    with pytest.raises(IntegrityError, match=root):
        import_car(dst, io.BytesIO(bytes(car)))
    assert not dst.has(root)


def test_truncated_and_foreign_input(tmp_path: Path) -> None:
    src = LocalStore(tmp_path / "src")
    root = src.put(random.Random(3).randbytes(700_000))
    car = car_of(src, [root])
    dst = LocalStore(tmp_path / "dst")
    with pytest.raises(WireFormatError):
        import_car(dst, io.BytesIO(car[:-100]))
    with pytest.raises(WireFormatError):
        CarReader(io.BytesIO(b"not a car file at all"))
    v2 = cbor2.dumps({"roots": [], "version": 2}, canonical=True)
    with pytest.raises(WireFormatError, match="version"):
        CarReader(io.BytesIO(encode_varint(len(v2)) + v2))


def test_car_missing_blocks_cannot_be_pinned(tmp_path: Path) -> None:
    src = LocalStore(tmp_path / "src")
    root = src.put(random.Random(4).randbytes(600_000))
    info = CidInfo.parse(root)
    header = encode_car_header([info])
    block = src.get_block(info)
    raw = info.to_bytes()
    only_root = (
        encode_varint(len(header)) + header + encode_varint(len(raw) + len(block)) + raw + block
    )
    dst = LocalStore(tmp_path / "dst")
    with pytest.raises(BlobNotFound):
        import_car(dst, io.BytesIO(only_root))
    assert import_car(dst, io.BytesIO(only_root), pin_roots=False) == [root]
    assert dst.pins() == []
