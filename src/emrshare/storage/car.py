"""CARv1 files: move DAGs between the embedded store, Kubo and IPFS Cluster.

A CARv1 file is ``varint(len) header`` followed by sections ``varint(len) CID block``.
The header is dag-cbor ``{"roots": [CID, …], "version": 1}`` with CIDs as CBOR tag 42
over ``0x00 + binary CID`` (CARv1 spec, ipld.io/specs/transport/car/carv1). The output of
:func:`export_car` is what ``ipfs dag import`` accepts; :func:`import_car` checks every
block against its CID before it is stored.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import BinaryIO

import cbor2

from emrshare.errors import WireFormatError
from emrshare.storage.cid import CidInfo, decode_varint, encode_varint
from emrshare.storage.local import LocalStore
from emrshare.storage.unixfs import MAX_BLOCK_SIZE
from emrshare.types import Cid

__all__ = ["CarReader", "encode_car_header", "export_car", "import_car"]

_MAX_HEADER = 1024 * 1024
_MAX_SECTION = MAX_BLOCK_SIZE + 1024


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes((major << 5 | n,))
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes((major << 5 | extra,)) + n.to_bytes(size, "big")
    raise ValueError("integer too large for CBOR")


def encode_car_header(roots: Sequence[CidInfo]) -> bytes:
    """The dag-cbor CARv1 header (keys in dag-cbor order: length first, then bytes)."""
    out = bytearray(_cbor_head(5, 2))
    out += _cbor_head(3, 5) + b"roots" + _cbor_head(4, len(roots))
    for root in roots:
        raw = b"\x00" + root.to_bytes()
        out += b"\xd8\x2a" + _cbor_head(2, len(raw)) + raw
    out += _cbor_head(3, 7) + b"version" + _cbor_head(0, 1)
    return bytes(out)


def export_car(store: LocalStore, roots: Sequence[Cid], out: BinaryIO) -> int:
    """Write the DAGs under ``roots`` to ``out`` as CARv1; return the bytes written.

    Blocks appear depth first, each once. Every block is verified as it is read.
    """
    infos = [CidInfo.parse(r) for r in roots]
    if not infos:
        raise WireFormatError("a CAR needs at least one root")
    header = encode_car_header(infos)
    written = out.write(encode_varint(len(header)) + header)
    seen: set[bytes] = set()
    for root in infos:
        for cid, block in store.walk_blocks(root):
            if cid.digest in seen:
                continue
            seen.add(cid.digest)
            raw = cid.to_bytes()
            written += out.write(encode_varint(len(raw) + len(block)) + raw)
            written += out.write(block)
    return written


def _read_varint(stream: BinaryIO) -> int | None:
    buf = bytearray()
    while True:
        b = stream.read(1)
        if not b:
            if buf:
                raise WireFormatError("CAR ends inside a section length")
            return None
        buf += b
        if not b[0] & 0x80:
            return decode_varint(bytes(buf))[0]
        if len(buf) > 9:
            raise WireFormatError("CAR section length varint too long")


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise WireFormatError("CAR file is truncated")
    return data


class CarReader:
    """Reads a CARv1 stream: ``roots`` from the header, then verified ``(cid, block)`` pairs.

    Blocks that do not hash to their CID raise :class:`~emrshare.errors.IntegrityError`.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        length = _read_varint(stream)
        if length is None or not 0 < length <= _MAX_HEADER:
            raise WireFormatError("not a CAR file: missing or oversized header")
        try:
            header = cbor2.loads(_read_exact(stream, length))
        except cbor2.CBORDecodeError as exc:
            raise WireFormatError("CAR header is not valid CBOR") from exc
        if not isinstance(header, dict) or header.get("version") != 1:
            version = header.get("version") if isinstance(header, dict) else None
            raise WireFormatError(f"unsupported CAR version {version!r}; only CARv1 is read")
        roots = header.get("roots")
        if not isinstance(roots, list) or not roots:
            raise WireFormatError("CAR header has no roots")
        self.roots: list[CidInfo] = []
        for r in roots:
            if not isinstance(r, cbor2.CBORTag) or r.tag != 42 or not isinstance(r.value, bytes):
                raise WireFormatError("CAR root is not a CID (CBOR tag 42)")
            if not r.value.startswith(b"\x00"):
                raise WireFormatError("CAR root CID lacks the 0x00 multibase prefix")
            self.roots.append(CidInfo.from_bytes(r.value[1:]))

    def blocks(self) -> Iterator[tuple[CidInfo, bytes]]:
        """Each section's CID and block, verified."""
        while True:
            length = _read_varint(self._stream)
            if length is None:
                return
            if not 0 < length <= _MAX_SECTION:
                raise WireFormatError(f"CAR section of {length} bytes is out of bounds")
            section = _read_exact(self._stream, length)
            cid, pos = CidInfo.read(section, 0)
            block = section[pos:]
            cid.verify(block)
            yield cid, block


def import_car(store: LocalStore, stream: BinaryIO, *, pin_roots: bool = True) -> list[Cid]:
    """Store every block of a CARv1 stream (each verified); pin and return the roots.

    Pinning walks each root's DAG, so a CAR that lacks blocks of its roots raises
    :class:`~emrshare.errors.BlobNotFound` naming the first missing block.
    """
    reader = CarReader(stream)
    with store.writing() as writer:
        for cid, block in reader.blocks():
            store.put_block(cid, block, writer)
        writer.flush()
        if pin_roots:  # inside the writer lock, so gc cannot take the new blocks first
            for root in reader.roots:
                store.pin_unlocked(root)
    return [r.cid for r in reader.roots]
