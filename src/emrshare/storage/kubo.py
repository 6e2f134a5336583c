"""``KuboStore``: a Kubo daemon (or IPFS Cluster's Kubo-compatible proxy) over its HTTP RPC.

Every Kubo RPC call is ``POST /api/v0/<command>?arg=…``; errors come back as HTTP 500
with ``{"Message": …, "Code": …, "Type": "error"}``. ``ipfshttpclient`` 0.7 refuses
Kubo ≥ 0.8, so this talks HTTP directly with httpx.

Trust: the daemon is storage, not an authority. ``put`` recomputes the CID locally under
the same profile and refuses a different answer; ``get`` fetches blocks one by one
(``block/get``) and verifies each against its CID before yielding a byte.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

import httpx

from emrshare._files import loads_json
from emrshare.errors import (
    BlobNotFound,
    ConfigurationError,
    IntegrityError,
    StorageError,
    StoreUnavailable,
    WireFormatError,
)
from emrshare.storage.base import BlobSource, BlobStat, GcResult, unpin_orphans
from emrshare.storage.cid import CidInfo
from emrshare.storage.unixfs import (
    DEFAULT_PROFILE,
    DagBuilder,
    UnixfsProfile,
    file_size_of_root,
    iter_chunks,
    iter_file,
)
from emrshare.types import Cid

__all__ = ["KuboStore"]

# Kubo: "block was not found locally (offline)", "ipld: could not find …"; js-ipfs, whose
# flatfs blockstore has no such file: "ENOENT: no such file or directory, open …".
_NOT_FOUND_HINTS = (
    "not found",
    "could not find",
    "no link named",
    "failed to fetch",
    "no such file or directory",
)
_RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout)


def _redacted(url: str) -> str:
    """``url`` without a password, for reprs and messages (Cluster proxies use basic auth)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _json(response: httpx.Response) -> Any:
    """An RPC answer as JSON; ``ValueError`` for bad or deeply nested JSON (the decoder
    would overflow the C stack under the recursion limit py_ecc sets on import)."""
    return loads_json(response.text)


class _HashingReader:
    """A file-like view of the input that feeds each chunk to a local DAG builder.

    httpx reads the multipart body through ``read``; the builder sees exactly the bytes
    sent, so the CID Kubo answers can be checked against our own.
    """

    def __init__(self, data: BlobSource, profile: UnixfsProfile) -> None:
        self._chunks = iter_chunks(data, profile.chunk_size)
        self.builder = DagBuilder(profile)
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while not self._buf:
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self.builder.add_chunk(chunk)
            self._buf = chunk
        if n < 0 or n >= len(self._buf):
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


def _same_cid(answer: str, expected: Cid) -> bool:
    """Whether the node's ``answer`` names ``expected`` (same version, codec and multihash,
    in whatever multibase the node prints)."""
    try:
        return CidInfo.parse(answer) == CidInfo.parse(expected)
    except WireFormatError:
        return False


def _canonical(cid: str) -> Cid:
    try:
        return CidInfo.parse(cid).cid
    except WireFormatError:
        return Cid(cid)


def _rpc_error(
    shown_url: str, command: str, params: list[tuple[str, str]] | None, response: httpx.Response
) -> StorageError | ConfigurationError:
    arg = next((v for k, v in params or [] if k == "arg"), "")
    try:
        message = str(_json(response).get("Message", ""))
    except (ValueError, AttributeError):
        message = response.text[:200]
    if response.status_code in (404, 405):
        return ConfigurationError(
            f"{shown_url} answered {response.status_code} to {command}: "
            "not a Kubo RPC endpoint (expected http://host:5001)"
        )
    if response.status_code in (401, 403):
        return StoreUnavailable(
            f"Kubo RPC at {shown_url} refused {command} ({response.status_code}); "
            "check the API credentials or Access-Control settings"
        )
    if arg and any(h in message.lower() for h in _NOT_FOUND_HINTS):
        return BlobNotFound(arg, f"Kubo has no block {arg} ({message}); pin it there first")
    return StorageError(f"Kubo RPC {command} failed: {message or response.status_code}")


def _ndjson(response: httpx.Response) -> list[dict[str, Any]]:
    out = []
    for line in response.text.splitlines():
        if line.strip():
            entry = loads_json(line)
            if not isinstance(entry, dict):
                raise ValueError("expected one JSON object per line")
            out.append(entry)
    return out


class KuboStore:
    """Blob storage on a Kubo node through its RPC API (``http://127.0.0.1:5001``).

    ``profile`` is sent as explicit ``cid-version`` / ``raw-leaves`` / ``chunker`` (and,
    for non-default fan-out, ``max-file-links``) flags so the node builds the same DAG as
    :class:`~emrshare.storage.local.LocalStore`. Connection failures are retried
    ``retries`` times with exponential backoff; then :class:`StoreUnavailable`.

    **Warning:** the RPC API is admin access to the node: keep it on loopback or behind
    authentication; never expose it publicly.
    """

    def __init__(
        self,
        api_url: str = "http://127.0.0.1:5001",
        *,
        profile: UnixfsProfile = DEFAULT_PROFILE,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.25,
        client: httpx.Client | None = None,
        on_retry: Callable[[int, Exception], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if retries < 0:
            raise ConfigurationError("retries must be >= 0")
        self.api_url = api_url.rstrip("/")
        self._shown_url = _redacted(self.api_url)
        self.profile = profile
        self._retries = retries
        self._backoff = backoff
        self._on_retry = on_retry
        self._sleep = sleep
        self._client = client or httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0))
        )
        self._owns_client = client is None

    def __repr__(self) -> str:
        return f"KuboStore({self._shown_url!r}, profile={self.profile.name!r})"

    def close(self) -> None:
        """Close the HTTP connection pool (if this store created it)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> KuboStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------

    def _request(
        self,
        command: str,
        params: list[tuple[str, str]] | None = None,
        *,
        files: dict[str, Any] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        url = f"{self.api_url}/api/v0/{command}"
        attempt = 0
        while True:
            try:
                request = self._client.build_request(
                    "POST", url, params=tuple(params or ()), files=files
                )
                response = self._client.send(request, stream=stream)
            except _RETRYABLE as exc:
                if attempt >= self._retries:
                    raise StoreUnavailable(
                        f"Kubo RPC at {self._shown_url} is unreachable after {attempt + 1} "
                        f"attempts ({exc.__class__.__name__}); is the daemon running?"
                    ) from exc
                if self._on_retry is not None:
                    self._on_retry(attempt + 1, exc)
                self._sleep(self._backoff * (2**attempt))
                attempt += 1
                continue
            except httpx.TimeoutException as exc:
                raise StoreUnavailable(
                    f"Kubo RPC {command} at {self._shown_url} timed out; raise the timeout "
                    "or check the daemon's load"
                ) from exc
            except httpx.HTTPError as exc:
                raise StoreUnavailable(f"Kubo RPC {command} failed: {exc}") from exc
            if response.status_code == 200:
                return response
            if stream:
                response.read()
            response.close()
            raise _rpc_error(self._shown_url, command, params, response)

    @contextlib.contextmanager
    def _answer(self, command: str) -> Iterator[None]:
        """Turn a malformed answer (bad JSON, a missing field) into :class:`StorageError`."""
        try:
            yield
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
            raise StorageError(
                f"Kubo RPC {command} at {self._shown_url} gave an answer that is not Kubo's "
                f"({exc.__class__.__name__}); check that the endpoint is a Kubo RPC API"
            ) from exc

    # -- BlobStore ----------------------------------------------------------------------

    def add_params(self, pin: bool) -> list[tuple[str, str]]:
        """The ``add`` query for this profile (explicit flags; never the node's defaults)."""
        p = self.profile
        params = [
            ("cid-version", str(p.cid_version)),
            ("raw-leaves", str(p.raw_leaves).lower()),
            ("chunker", p.chunker),
            ("pin", str(pin).lower()),
            ("hash", "sha2-256"),
            ("trickle", "false"),
            ("inline", "false"),
            ("progress", "false"),
        ]
        if p.cid_version == 1:
            # Kubo prints v1 CIDs in base32 by default; js-ipfs in base58btc ("z…").
            params.append(("cid-base", "base32"))
        if p.max_links != DEFAULT_PROFILE.max_links:
            params.append(("max-file-links", str(p.max_links)))  # Kubo >= 0.35
        return params

    def put(self, data: BlobSource, *, pin: bool = True) -> Cid:
        """``add`` the data (streamed) and check Kubo's CID against a local computation."""
        reader = _HashingReader(data, self.profile)
        files = {"file": ("blob", reader, "application/octet-stream")}
        response = self._request("add", self.add_params(pin), files=files)
        try:
            entries = _ndjson(response)
            answer = str(next(e["Hash"] for e in reversed(entries) if "Hash" in e))
        except (ValueError, StopIteration, KeyError) as exc:
            raise StorageError(f"Kubo add returned no CID: {response.text[:200]!r}") from exc
        while reader.read(1 << 20):  # drain, in case the node stopped reading early
            pass
        expected = reader.builder.finish().cid
        if not _same_cid(answer, expected):
            raise IntegrityError(
                answer,
                f"Kubo stored the data as {answer} but profile {self.profile.name} gives "
                f"{expected}; the node ignored a DAG flag (max-file-links needs Kubo >= 0.35; "
                "js-ipfs ignores it and keeps 174 links per node)",
            )
        return expected

    def block_get(self, cid: CidInfo) -> bytes:
        """One raw block (unverified; :meth:`get` verifies)."""
        return self._request("block/get", [("arg", str(cid))]).content

    def get(self, cid: Cid) -> Iterator[bytes]:
        """Stream the blob block by block; each block is verified before use."""
        return iter_file(CidInfo.parse(cid), self.block_get)

    def cat(self, cid: Cid) -> Iterator[bytes]:
        """``cat`` in one request, verified before the first byte is yielded.

        The bytes are spooled (memory, then a temp file) while the CID is recomputed
        under this store's profile; only a match releases them. A DAG built under another
        profile cannot be checked that way, so it is read block by block with :meth:`get`
        instead. Use for small and medium blobs; :meth:`get` starts yielding sooner.
        """
        info = CidInfo.parse(cid)
        return self._cat(info)

    def _cat(self, info: CidInfo) -> Iterator[bytes]:
        builder = DagBuilder(self.profile)
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
            response = self._request("cat", [("arg", str(info))], stream=True)
            try:
                for chunk in iter_chunks(response.iter_bytes(), self.profile.chunk_size):
                    builder.add_chunk(chunk)
                    spool.write(chunk)
            except httpx.HTTPError as exc:
                raise StoreUnavailable(f"Kubo cat {info} broke off: {exc}") from exc
            finally:
                response.close()
            if builder.finish().digest != info.digest:
                yield from self.get(info.cid)
                return
            spool.seek(0)
            while piece := spool.read(1024 * 1024):
                yield piece

    def has(self, cid: Cid) -> bool:
        """``block/stat --offline``: whether the node holds the root block itself."""
        info = CidInfo.parse(cid)
        try:
            self._request("block/stat", [("arg", str(info)), ("offline", "true")])
        except BlobNotFound:
            return False
        return True

    def pin(self, cid: Cid) -> None:
        """``pin/add`` (recursive): the node fetches whatever blocks it lacks."""
        self._request("pin/add", [("arg", str(CidInfo.parse(cid))), ("recursive", "true")])

    def unpin(self, cid: Cid) -> None:
        """``pin/rm``; a CID that was not pinned is not an error."""
        try:
            self._request("pin/rm", [("arg", str(CidInfo.parse(cid))), ("recursive", "true")])
        except StorageError as exc:
            if "not pinned" not in str(exc):
                raise

    def pins(self) -> list[Cid]:
        """``pin/ls --type=recursive``."""
        response = self._request("pin/ls", [("type", "recursive")])
        with self._answer("pin/ls"):
            keys = _json(response).get("Keys") or {}
        # Spelled the way put() spells CIDs (js-ipfs lists v1 CIDs in base58btc, "z…");
        # pins this library cannot parse (another codec: not a blob) are kept verbatim.
        return sorted(_canonical(str(c)) for c in keys)

    def stat(self, cid: Cid) -> BlobStat:
        """File size from the verified root block; pin state from ``pin/ls``."""
        info = CidInfo.parse(cid)
        block = self.block_get(info)
        info.verify(block)
        try:
            self._request("pin/ls", [("arg", str(info)), ("type", "recursive")])
            pinned = True
        except StorageError as exc:
            if isinstance(exc, BlobNotFound) or "not pinned" in str(exc):
                pinned = False
            else:
                raise
        return BlobStat(Cid(cid), file_size_of_root(info, block), pinned)

    def block_stat(self, cid: Cid) -> int:
        """``block/stat``: the size of one block on the node."""
        response = self._request("block/stat", [("arg", str(CidInfo.parse(cid)))])
        with self._answer("block/stat"):
            return int(_json(response)["Size"])

    def gc(self) -> GcResult:
        """``repo/gc``: the node deletes unpinned blocks (it does not report bytes freed)."""
        response = self._request("repo/gc")
        with self._answer("repo/gc"):
            entries = _ndjson(response)
        errors = [e["Error"] for e in entries if e.get("Error")]
        if errors:
            raise StorageError(f"Kubo repo/gc reported errors: {errors[0]}")
        return GcResult(sum(1 for e in entries if e.get("Key")), 0)

    def unpin_orphans(
        self, referenced: Collection[Cid], candidates: Iterable[Cid] | None = None
    ) -> list[Cid]:
        """Unpin pins that are not in ``referenced`` (see :class:`BlobStore`)."""
        return unpin_orphans(self, referenced, candidates)

    # -- CAR ----------------------------------------------------------------------------

    def export_car(self, cid: Cid, out: BinaryIO) -> int:
        """``dag/export``: write the DAG under ``cid`` to ``out`` as CARv1 (streamed).

        **Warning:** these are the node's bytes, not verified here; read the file with
        :func:`~emrshare.storage.import_car`, which checks every block against its CID.
        """
        response = self._request("dag/export", [("arg", str(CidInfo.parse(cid)))], stream=True)
        written = 0
        try:
            for piece in response.iter_bytes():
                written += out.write(piece)
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"Kubo dag/export {cid} broke off: {exc}") from exc
        finally:
            response.close()
        return written

    def import_car(self, car: BinaryIO, *, pin_roots: bool = True) -> list[Cid]:
        """``dag/import``: the node verifies and stores the blocks; returns the roots."""
        files = {"file": ("dag.car", car, "application/vnd.ipld.car")}
        params = [("pin-roots", str(pin_roots).lower())]
        roots: list[Cid] = []
        response = self._request("dag/import", params, files=files)
        with self._answer("dag/import"):
            for entry in _ndjson(response):
                root = entry.get("Root")
                if root:
                    if root.get("PinErrorMsg"):
                        raise StorageError(f"Kubo could not pin CAR root: {root['PinErrorMsg']}")
                    roots.append(Cid(str(root["Cid"]["/"])))
        return roots
