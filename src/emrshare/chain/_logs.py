"""Raw log queries: topics of indexed values, ``eth_getLogs`` paged over block ranges,
and the persisted :class:`EventCursor` watchers resume from. The bindings decode what
these return (see :mod:`emrshare.chain.bindings`)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import EncodingError
from eth_utils.crypto import keccak
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint

from emrshare._addresses import checksum
from emrshare._files import private_dir, read_json_object, write_atomically
from emrshare.chain._revert import abi_type
from emrshare.chain._rpc import scrub_url_secrets
from emrshare.errors import ChainError, ConfigurationError, InvalidInput, LocalStateError

__all__ = ["EventCursor", "event_topic", "get_logs_paged", "topic_for"]


def event_topic(abi_item: Mapping[str, Any]) -> bytes:
    """topic0 of an event: keccak256 of its canonical signature."""
    types = ",".join(abi_type(p) for p in abi_item["inputs"])
    return keccak(text=f"{abi_item['name']}({types})")


def topic_for(abi_type: str, value: Any) -> bytes:
    """The 32-byte topic of an indexed value of a static ABI type
    (:class:`~emrshare.errors.InvalidInput` for a value the type cannot hold)."""
    if abi_type == "address":
        value = checksum(value)
    try:
        return abi_encode([abi_type], [value])
    except EncodingError as exc:
        raise InvalidInput(
            f"{value!r} cannot be an event filter of type {abi_type}; check the value "
            "(ids are integers from 0 to 2**256 - 1)"
        ) from exc


def get_logs_paged(
    w3: Web3,
    address: str | Sequence[str],
    topics: Sequence[bytes | Sequence[bytes] | None],
    from_block: int,
    to_block: int,
    page_size: int = 2_000,
) -> Iterator[Mapping[str, Any]]:
    """``eth_getLogs`` over ``[from_block, to_block]`` in pages of ``page_size`` blocks.

    Nodes cap the range (and result size) of one query; paging keeps each request small
    and yields logs in chain order. ``address`` may name several contracts (one query).
    Logs are the node's JSON objects as they are (0x-hex fields, unverified): the
    bindings' ``decode_log`` checks and decodes them.
    """
    if page_size < 1:
        raise ConfigurationError("page_size must be at least 1 block")
    enc: list[Any] = []
    for t in topics:
        if t is None:
            enc.append(None)
        elif isinstance(t, bytes):
            enc.append("0x" + t.hex())
        else:
            enc.append(["0x" + x.hex() for x in t])
    while enc and enc[-1] is None:
        enc.pop()
    where: str | list[str] = (
        Web3.to_checksum_address(address)
        if isinstance(address, str)
        else [Web3.to_checksum_address(a) for a in address]
    )
    start = from_block
    while start <= to_block:
        end = min(start + page_size - 1, to_block)
        query = {"address": where, "topics": enc, "fromBlock": hex(start), "toBlock": hex(end)}
        try:
            # The provider directly: web3's result formatters (HexBytes, checksums and an
            # AttributeDict per log) cost more than decoding the logs; the bindings decode
            # the 0x-hex fields themselves.
            # (An in-process test chain takes only web3's formatted requests.)
            if isinstance(w3.provider, HTTPProvider):
                answer = w3.provider.make_request(RPCEndpoint("eth_getLogs"), [query])
                if "error" in answer:
                    raise ChainError(str(answer["error"]))
                logs = answer["result"]
            else:
                logs = w3.eth.get_logs({**query, "fromBlock": start, "toBlock": end})  # type: ignore[typeddict-item]
            if not isinstance(logs, list):
                raise ChainError(f"the node answered {type(logs).__name__}, not a list of logs")
        except Exception as exc:
            raise ChainError(
                f"eth_getLogs for blocks {start}..{end} failed: {scrub_url_secrets(exc)}; "
                "try a smaller page_size or check the node"
            ) from exc
        yield from logs
        start = end + 1


class EventCursor:
    """Remembers, per named query, the next block to read; persisted to a JSON file.

    A watcher reads ``next_block(key, default)``, processes the events up to some block
    ``b`` and then calls ``advance(key, b + 1)``. The file is replaced atomically, so a
    crash leaves either the old or the new position, never a torn one. Events may be seen
    twice after a crash between processing and advancing: handlers must be idempotent.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._positions: dict[str, int] = {}
        if path is not None and path.exists():
            try:
                data = read_json_object(path, "event cursor file")
                self._positions = {str(k): int(v) for k, v in data.items()}
            except (LocalStateError, ValueError, TypeError, AttributeError) as exc:
                raise LocalStateError(
                    path, f"event cursor file {path} is not valid; delete it to rescan"
                ) from exc

    def next_block(self, key: str, default: int) -> int:
        """The next block to read for ``key`` (``default`` if never advanced)."""
        with self._lock:
            return self._positions.get(key, default)

    def advance(self, key: str, next_block: int) -> None:
        """Record that blocks before ``next_block`` were processed; never moves back."""
        with self._lock:
            if next_block <= self._positions.get(key, -1):
                return
            self._positions[key] = next_block
            if self.path is not None:
                text = json.dumps(self._positions, indent=1, sort_keys=True) + "\n"
                try:
                    private_dir(self.path.parent)
                    write_atomically(self.path, text)
                except (OSError, LocalStateError) as exc:
                    raise ConfigurationError(
                        f"cannot save the event cursor to {self.path} "
                        f"({getattr(exc, 'strerror', None) or exc}); check the directory's "
                        "permissions"
                    ) from exc
