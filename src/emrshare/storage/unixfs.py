"""UnixFS v1 files in dag-pb, built exactly as Kubo's ``ipfs add`` builds them.

Encoding (dag-pb spec, UnixFS spec; both are small protobufs, hand-written here):

* ``PBNode``  = ``Links`` (field 2, repeated) **then** ``Data`` (field 1). dag-pb's canonical
  form writes links first; Kubo does the same, so CIDs match byte for byte.
* ``PBLink``  = ``Hash`` (1, binary CID), ``Name`` (2, always present, empty for file
  chunks), ``Tsize`` (3, bytes of the whole child sub-DAG).
* ``Data``    = UnixFS ``Type=File`` (1), ``Data`` (2, the chunk, leaves only), ``filesize``
  (3), ``blocksizes`` (4, one unpacked varint per child).

Layout is boxo's *balanced* builder: the first leaf alone is the root of a one-chunk file;
otherwise leaves sit at one depth under nodes of at most ``max_links`` children, and the
tree grows a level only when the current root is full. :class:`DagBuilder` reproduces
that in a single streaming pass keeping one pending link list per level (bounded memory).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from emrshare.errors import ConfigurationError, IntegrityError, WireFormatError
from emrshare.storage.cid import DAG_PB, RAW, CidInfo, decode_varint, encode_varint
from emrshare.types import Cid

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "UNIXFS_V1_2025",
    "DagBuilder",
    "UnixfsProfile",
    "compute_cid",
    "decode_dag_pb",
    "iter_chunks",
    "iter_file",
]

_FILE = 2  # UnixFS DataType.File
_RAW_TYPE = 0  # UnixFS DataType.Raw (very old Kubo leaves)
#: Largest block Kubo will exchange over bitswap; chunks above it are refused.
MAX_BLOCK_SIZE = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class UnixfsProfile:
    """How bytes become a UnixFS DAG: the knobs of ``ipfs add``.

    ``chunker`` gives Kubo's ``--chunker`` string for the same setting.
    """

    name: str
    cid_version: int
    raw_leaves: bool
    chunk_size: int
    max_links: int

    def __post_init__(self) -> None:
        if self.cid_version not in (0, 1):
            raise ConfigurationError(f"profile {self.name}: cid_version must be 0 or 1")
        if self.raw_leaves and self.cid_version == 0:
            raise ConfigurationError(f"profile {self.name}: raw leaves need CIDv1")
        if not 1 <= self.chunk_size <= MAX_BLOCK_SIZE - 64:
            raise ConfigurationError(f"profile {self.name}: chunk size must be in 1..~2 MiB")
        if self.max_links < 2:
            raise ConfigurationError(f"profile {self.name}: max_links must be at least 2")

    @property
    def chunker(self) -> str:
        """Kubo's ``--chunker`` value (``size-262144``)."""
        return f"size-{self.chunk_size}"


#: Kubo's ``ipfs add`` defaults: CIDv0, dag-pb leaves, 256 KiB chunks, 174 links per node.
DEFAULT_PROFILE = UnixfsProfile("kubo-default", 0, False, 256 * 1024, 174)
#: Kubo's ``unixfs-v1-2025`` profile (IPIP-499): CIDv1, raw leaves, 1 MiB chunks, 1024 links.
UNIXFS_V1_2025 = UnixfsProfile("unixfs-v1-2025", 1, True, 1024 * 1024, 1024)
#: Profiles by name.
PROFILES = {p.name: p for p in (DEFAULT_PROFILE, UNIXFS_V1_2025)}

#: Receives each finished block: its CID and its bytes as consecutive parts (a leaf is a
#: small protobuf header followed by the chunk, kept apart to avoid copying the chunk).
BlockSink = Callable[[CidInfo, Sequence[bytes]], None]


def _field_bytes(field: int, value: bytes) -> bytes:
    return bytes((field << 3 | 2,)) + encode_varint(len(value)) + value


def _field_varint(field: int, value: int) -> bytes:
    return bytes((field << 3,)) + encode_varint(value)


@dataclass(frozen=True, slots=True)
class _Link:
    cid: CidInfo
    tsize: int  # bytes of the child's whole sub-DAG (Kubo's "cumulative size")
    filesize: int  # file bytes under the child


class DagBuilder:
    """Streaming balanced-layout builder: feed chunks, get the root CID.

    Every finished block goes to ``sink`` (a block store, a CAR writer, or nothing when
    only the CID is wanted). Memory: one pending link list per tree level.
    """

    def __init__(
        self, profile: UnixfsProfile = DEFAULT_PROFILE, sink: BlockSink | None = None
    ) -> None:
        self._p = profile
        self._sink = sink
        self._levels: list[list[_Link]] = [[]]
        self._leaves = 0
        self._first: _Link | None = None
        self.size = 0

    def _emit(self, parts: Sequence[bytes], codec: int) -> CidInfo:
        h = hashlib.sha256()
        for part in parts:
            h.update(part)
        cid = CidInfo(self._p.cid_version, codec, h.digest())
        if self._sink is not None:
            self._sink(cid, parts)
        return cid

    def _leaf(self, data: bytes) -> _Link:
        if self._p.raw_leaves:
            return _Link(self._emit((data,), RAW), len(data), len(data))
        n = len(data)
        if not n:
            block = _field_bytes(1, _field_varint(1, _FILE) + _field_varint(3, 0))
            return _Link(self._emit((block,), DAG_PB), len(block), 0)
        # PBNode{Data: UnixFS{Type: File, Data: chunk, filesize: n}}, written as a header,
        # the chunk itself, and the trailing filesize field.
        tail = _field_varint(3, n)
        inner_head = _field_varint(1, _FILE) + b"\x12" + encode_varint(n)
        inner_len = len(inner_head) + n + len(tail)
        head = b"\x0a" + encode_varint(inner_len) + inner_head
        size = len(head) + n + len(tail)
        return _Link(self._emit((head, data, tail), DAG_PB), size, n)

    def _node(self, links: list[_Link]) -> _Link:
        filesize = sum(link.filesize for link in links)
        unixfs = bytearray(_field_varint(1, _FILE) + _field_varint(3, filesize))
        parts = bytearray()
        for link in links:
            body = _field_bytes(1, link.cid.to_bytes()) + b"\x12\x00" + _field_varint(3, link.tsize)
            parts += _field_bytes(2, body)
            unixfs += _field_varint(4, link.filesize)
        parts += _field_bytes(1, bytes(unixfs))
        block = bytes(parts)
        cid = self._emit((block,), DAG_PB)
        return _Link(cid, len(block) + sum(link.tsize for link in links), filesize)

    def _push(self, level: int, link: _Link) -> None:
        if level == len(self._levels):
            self._levels.append([])
        pending = self._levels[level]
        if len(pending) == self._p.max_links:
            self._push(level + 1, self._node(pending))
            pending = self._levels[level] = []
        pending.append(link)

    def add_chunk(self, data: bytes) -> None:
        """Add the next chunk (exactly ``chunk_size`` bytes, except the last)."""
        if not data:
            return
        self.size += len(data)
        self._leaves += 1
        self._push(0, self._leaf(data))

    def finish(self) -> CidInfo:
        """Close the DAG and return the root CID (in the profile's CID version)."""
        if self._leaves == 0:
            return self._leaf(b"").cid
        if self._leaves == 1:
            return self._levels[0][0].cid
        level = 0
        while True:
            pending = self._levels[level]
            higher = any(self._levels[level + 1 :])
            if len(pending) == 1 and not higher:
                return pending[0].cid
            if pending:
                self._levels[level] = []
                self._push(level + 1, self._node(pending))
            level += 1


def iter_chunks(data: bytes | BinaryIO | Iterable[bytes], size: int) -> Iterator[bytes]:
    """Cut ``data`` (bytes, a binary file object, or an iterable of bytes) into ``size`` chunks.

    Like Kubo's fixed-size chunker every chunk is full except the last, however the
    input arrives.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        for off in range(0, len(view), size):
            yield bytes(view[off : off + size])
        return
    reader = getattr(data, "read", None)
    if reader is not None:
        while True:
            parts: list[bytes] = []
            n = 0
            while n < size:
                piece = reader(size - n)
                if not piece:
                    break
                parts.append(piece)
                n += len(piece)
            if n == 0:
                return
            yield b"".join(parts)
            if n < size:
                return
    pending = bytearray()
    for piece in data:
        pending += piece
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
    if pending:
        yield bytes(pending)


def compute_cid(
    data: bytes | BinaryIO | Iterable[bytes],
    profile: UnixfsProfile = DEFAULT_PROFILE,
    sink: BlockSink | None = None,
) -> Cid:
    """The CID ``ipfs add`` would print for ``data`` under ``profile`` (streaming)."""
    builder = DagBuilder(profile, sink)
    for chunk in iter_chunks(data, profile.chunk_size):
        builder.add_chunk(chunk)
    return builder.finish().cid


@dataclass(frozen=True, slots=True)
class PbNode:
    """A decoded dag-pb node with its UnixFS payload (unverified structure)."""

    links: tuple[tuple[CidInfo, int], ...]  # (child CID, Tsize)
    data: bytes | None  # UnixFS Data message, if any


def decode_dag_pb(block: bytes | memoryview) -> PbNode:
    """Decode a dag-pb block: links (CID, Tsize) and the Data bytes."""
    buf = memoryview(block)
    pos = 0
    links: list[tuple[CidInfo, int]] = []
    data: bytes | None = None
    while pos < len(buf):
        tag, pos = decode_varint(buf, pos)
        if tag == 0x12:
            length, pos = decode_varint(buf, pos)
            links.append(_decode_link(buf[pos : pos + length]))
            pos += length
        elif tag == 0x0A:
            length, pos = decode_varint(buf, pos)
            data = bytes(buf[pos : pos + length])
            pos += length
        else:
            raise WireFormatError(f"unexpected field tag {tag} in dag-pb node")
        if pos > len(buf):
            raise WireFormatError("truncated dag-pb node")
    return PbNode(tuple(links), data)


def _decode_link(buf: memoryview) -> tuple[CidInfo, int]:
    pos = 0
    cid: CidInfo | None = None
    tsize = 0
    while pos < len(buf):
        tag, pos = decode_varint(buf, pos)
        if tag in (0x0A, 0x12):
            length, pos = decode_varint(buf, pos)
            if tag == 0x0A:
                cid = CidInfo.from_bytes(buf[pos : pos + length])
            pos += length
        elif tag == 0x18:
            tsize, pos = decode_varint(buf, pos)
        else:
            raise WireFormatError(f"unexpected field tag {tag} in dag-pb link")
    if cid is None or pos > len(buf):
        raise WireFormatError("dag-pb link without a hash")
    return cid, tsize


def _decode_unixfs(data: bytes) -> tuple[int, bytes, int | None, list[int]]:
    """UnixFS Data → (type, inline data, filesize, blocksizes)."""
    buf = memoryview(data)
    pos = 0
    kind = -1
    payload = b""
    filesize: int | None = None
    blocksizes: list[int] = []
    while pos < len(buf):
        tag, pos = decode_varint(buf, pos)
        wire = tag & 7
        field = tag >> 3
        if wire == 0:
            value, pos = decode_varint(buf, pos)
            if field == 1:
                kind = value
            elif field == 3:
                filesize = value
            elif field == 4:
                blocksizes.append(value)
        elif wire == 2:
            length, pos = decode_varint(buf, pos)
            if field == 2:
                payload = bytes(buf[pos : pos + length])
            elif field == 4:  # tolerate packed blocksizes
                end = pos + length
                while pos < end:
                    value, pos = decode_varint(buf, pos)
                    blocksizes.append(value)
                continue
            pos += length
        else:
            raise WireFormatError(f"unexpected wire type {wire} in UnixFS data")
        if pos > len(buf):
            raise WireFormatError("truncated UnixFS data")
    return kind, payload, filesize, blocksizes


def file_size_of_root(cid: CidInfo, block: bytes) -> int:
    """The file size recorded in a (verified) root block."""
    if cid.codec == RAW:
        return len(block)
    node = decode_dag_pb(block)
    if node.data is None:
        raise WireFormatError(f"{cid} is a dag-pb node without UnixFS data: not a file")
    kind, payload, filesize, _ = _decode_unixfs(node.data)
    if kind not in (_FILE, _RAW_TYPE):
        raise WireFormatError(f"{cid} is not a UnixFS file (type {kind})")
    return filesize if filesize is not None else len(payload)


def iter_file(cid: CidInfo, get_block: Callable[[CidInfo], bytes]) -> Iterator[bytes]:
    """Yield the file bytes under ``cid``, depth first, each block verified before use.

    ``get_block`` returns a block's bytes (from disk, HTTP, a CAR): they are checked here
    against the CID that links to them, so nothing unverified is ever yielded. A DAG
    whose sizes do not add up raises :class:`IntegrityError`.
    """
    yield from _walk(cid, get_block, None, 0)


#: Deepest file DAG read. Balanced layouts need 4 levels for petabytes; a deeper DAG is
#: hostile (it would exhaust Python's recursion limit, an untyped crash, in every reader).
MAX_DAG_DEPTH = 64


def _walk(
    cid: CidInfo, get_block: Callable[[CidInfo], bytes], expected: int | None, depth: int
) -> Iterator[bytes]:
    if depth > MAX_DAG_DEPTH:
        raise WireFormatError(
            f"the DAG under {cid} is deeper than {MAX_DAG_DEPTH} levels; emrshare and Kubo "
            "never write such files: do not trust this record"
        )
    block = get_block(cid)
    cid.verify(block)
    if cid.codec == RAW:
        if expected is not None and expected != len(block):
            raise IntegrityError(
                str(cid), f"block {cid} has {len(block)} bytes, parent says {expected}"
            )
        if block:
            yield block
        return
    node = decode_dag_pb(block)
    if node.data is None:
        raise WireFormatError(f"{cid} is a dag-pb node without UnixFS data: not a file")
    kind, payload, filesize, blocksizes = _decode_unixfs(node.data)
    if kind not in (_FILE, _RAW_TYPE):
        raise WireFormatError(f"{cid} is not a UnixFS file (type {kind}); only files are stored")
    if node.links and len(blocksizes) != len(node.links):
        raise IntegrityError(
            str(cid), f"node {cid} has {len(node.links)} links but {len(blocksizes)} block sizes"
        )
    total = len(payload) + sum(blocksizes)
    if filesize is not None and filesize != total:
        raise IntegrityError(str(cid), f"node {cid} says {filesize} bytes but holds {total}")
    if expected is not None and expected != total:
        raise IntegrityError(str(cid), f"node {cid} holds {total} bytes, parent says {expected}")
    if payload:
        yield payload
    for (child, _tsize), size in zip(node.links, blocksizes, strict=True):
        yield from _walk(child, get_block, size, depth + 1)


def child_links(cid: CidInfo, block: bytes) -> list[CidInfo]:
    """The CIDs a block links to (none for raw blocks)."""
    if cid.codec == RAW:
        return []
    return [link for link, _ in decode_dag_pb(block).links]
