"""The machinery every binding shares: ABI encoding with cached selectors, calls, sends,
log decoding into the event dataclasses, and paged event queries."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, TypeVar

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import EncodingError
from eth_utils.crypto import keccak
from web3 import Web3

from emrshare._addresses import checksum
from emrshare.chain._logs import EventCursor, event_topic, get_logs_paged, topic_for
from emrshare.chain._revert import abi_type, normalize_abi_value
from emrshare.chain.artifacts import load_artifact
from emrshare.chain.client import ChainClient, Receipt
from emrshare.chain.events import ChainEvent, EntryAppended
from emrshare.chain.ids import record_id
from emrshare.chain.values import Action, EmergencyReview, Role
from emrshare.errors import ChainError, InvalidInput

__all__ = ["Binding", "query_events"]

E = TypeVar("E", bound=ChainEvent)


_ENUM_FIELDS: dict[str, Callable[[int], Any]] = {
    "role": Role,
    "old_role": Role,
    "new_role": Role,
    "action": Action,
    "review": EmergencyReview,
}


#: ABI names that are not the snake_case of the Python field (Solidity reserved words).
_RENAMED = {"ref": "reference"}


def _snake(name: str) -> str:
    """The Python field name of an ABI parameter."""
    return _RENAMED.get(name) or re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _as_bytes(value: Any) -> bytes:
    """A log field as bytes: raw JSON-RPC logs carry 0x-hex, web3's carry bytes."""
    if isinstance(value, str):
        if not value.startswith("0x") or not value[2:].isalnum():
            raise ValueError("a log field is not 0x-hex")
        return bytes.fromhex(value[2:])
    if not isinstance(value, bytes | bytearray):
        raise TypeError("a log field is neither 0x-hex nor bytes")
    return bytes(value)


def _as_int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def _topic_value(type_: str, topic: bytes) -> Any:
    """An indexed value from its 32-byte topic (the common static types by hand, checked
    as eth-abi would; the rest through eth-abi)."""
    if len(topic) != 32:
        raise ValueError("a topic is not 32 bytes")
    if type_ == "address":
        if any(topic[:12]):
            raise ValueError("an address topic with nonzero padding")
        return checksum(topic[12:])
    if type_ == "bytes32":
        return topic
    if type_.startswith("uint") and type_[4:].isdigit():
        value = int.from_bytes(topic, "big")
        if value >> int(type_[4:]):
            raise ValueError(f"a {type_} topic out of range")
        return value
    return abi_decode([type_], topic)[0]


@dataclass(frozen=True, slots=True)
class _DecodePlan:
    """How one event's logs decode, worked out once per event (not per log): each field's
    Python name, ABI type and conversion."""

    cls: type[ChainEvent]
    indexed: tuple[tuple[str, str, Callable[[Any], Any]], ...]
    plain: tuple[tuple[str, Callable[[Any], Any]], ...]
    plain_types: tuple[str, ...]

    @classmethod
    def of(cls, event: type[ChainEvent], abi: Mapping[str, Any]) -> _DecodePlan:
        def conv(name: str) -> Callable[[Any], Any]:
            return _ENUM_FIELDS.get(_snake(name)) or normalize_abi_value

        indexed = [p for p in abi["inputs"] if p["indexed"]]
        plain = [p for p in abi["inputs"] if not p["indexed"]]
        return cls(
            event,
            tuple((_snake(p["name"]), abi_type(p), conv(p["name"])) for p in indexed),
            tuple((_snake(p["name"]), conv(p["name"])) for p in plain),
            tuple(abi_type(p) for p in plain),
        )


def _checksummed(type_: str, value: Any) -> Any:
    """An argument as eth-abi takes it: addresses checksummed (EIP-55)."""
    if type_ == "address":
        return checksum(value)
    if type_ == "address[]":
        return [checksum(v) for v in value]
    return value


def _encodes(type_: str, value: Any) -> bool:
    """Whether eth-abi can encode ``value`` as ``type_`` (to name the bad argument)."""
    try:
        abi_encode([type_], [value])
    except EncodingError:
        return False
    return True


@cache
def _function_abi(contract: str, fn: str) -> tuple[bytes, tuple[str, ...], tuple[str, ...]]:
    """Selector, argument and output types (canonical) of a function of a shipped contract."""
    (item,) = [
        i for i in load_artifact(contract).abi if i.get("type") == "function" and i["name"] == fn
    ]
    types = tuple(abi_type(p) for p in item["inputs"])
    outputs = tuple(abi_type(p) for p in item["outputs"])
    return keccak(text=f"{fn}({','.join(types)})")[:4], types, outputs


class Binding:
    """Shared plumbing: ABI encoding, calls, sends, event decoding and queries."""

    NAME: ClassVar[str]
    EVENTS: ClassVar[tuple[type[ChainEvent], ...]]

    def __init__(self, client: ChainClient, address: str, *, start_block: int = 0) -> None:
        self.client = client
        self.address = Web3.to_checksum_address(address)
        self.start_block = start_block
        abi = load_artifact(self.NAME).abi
        self._abi = abi
        by_name = {i["name"]: i for i in abi if i.get("type") == "event"}
        self._event_abi: dict[type[ChainEvent], Mapping[str, Any]] = {
            cls: by_name[cls.ABI_NAME] for cls in self.EVENTS
        }
        self._by_topic = {event_topic(a): (cls, a) for cls, a in self._event_abi.items()}
        self._plans: dict[bytes, _DecodePlan] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address})"

    def _encode(self, fn: str, args: Sequence[Any]) -> bytes:
        # eth-abi directly with a cached selector: web3's encode_abi walks every argument
        # through its ABI mappers, which costs more than a bulk append's other Python.
        # Addresses are checksummed here, once, instead of at each call site (an invalid
        # address raises InvalidInput, as does an argument out of its ABI type's range).
        selector, types, _ = _function_abi(self.NAME, fn)
        fixed = [_checksummed(t, a) for t, a in zip(types, args, strict=True)]
        try:
            return selector + abi_encode(types, fixed)
        except UnicodeEncodeError:
            raise InvalidInput(
                f"a text argument of {self.NAME}.{fn} is not valid text (a lone surrogate, "
                "from bytes that are not UTF-8); type it again"
            ) from None
        except EncodingError as exc:
            bad = next(
                ((t, a) for t, a in zip(types, fixed, strict=True) if not _encodes(t, a)),
                (",".join(types), tuple(fixed)),
            )
            raise InvalidInput(
                f"{bad[1]!r} does not fit the {bad[0]} argument of {self.NAME}.{fn}; "
                "check the value (ids and amounts are integers from 0 to 2**256 - 1)"
            ) from exc

    @classmethod
    def selector(cls, fn: str) -> bytes:
        """The 4-byte selector of function ``fn`` in the shipped ABI."""
        return _function_abi(cls.NAME, fn)[0]

    def _decode_input(self, fn: str, calldata: bytes) -> tuple[Any, ...] | None:
        """The arguments of a call of ``fn`` (the inverse of :meth:`_encode`); ``None`` if
        ``calldata`` is not such a call."""
        _, types, _ = _function_abi(self.NAME, fn)
        if calldata[:4] != self.selector(fn):
            return None
        try:
            return tuple(abi_decode(types, calldata[4:]))
        except Exception:  # eth-abi raises several decoding error types
            return None

    def _call(self, fn: str, *args: Any, block: int | None = None) -> tuple[Any, ...]:
        """``eth_call`` of ``fn`` at ``block`` (default: latest), decoded."""
        at: int | str = "latest" if block is None else block
        out = self.client.call_raw(self.address, self._encode(fn, args), at)
        try:
            return tuple(abi_decode(_function_abi(self.NAME, fn)[2], out))
        except Exception as exc:  # eth-abi raises several decoding error types
            # Typically empty output: no contract (or another one) at this address.
            raise ChainError(
                f"{self.NAME}.{fn} at {self.address} answered {len(out)} bytes that do not "
                f"decode as its outputs; check that the deployment matches this chain "
                "(Deployment.check)"
            ) from exc

    def _send(self, fn: str, *args: Any, gas: int | None = None) -> Receipt:
        r = self.client.send(self.address, self._encode(fn, args), gas=gas)
        events = tuple(
            ev
            for log in r.logs
            if Web3.to_checksum_address(log["address"]) == self.address
            for ev in [self.decode_log(log)]
            if ev is not None
        )
        return Receipt(r.tx_hash, r.block_number, r.gas_used, r.logs, events)

    def decode_log(self, log: Mapping[str, Any]) -> ChainEvent | None:
        """Decode one raw log of this contract into its event dataclass (None if unknown).

        A log with a known topic that does not decode raises :class:`ChainError`.
        """
        try:
            topics = [_as_bytes(t) for t in log["topics"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ChainError(
                f"a log of {self.address} has malformed topics; the node returned a malformed log"
            ) from exc
        if not topics or topics[0] not in self._by_topic:
            return None
        try:
            return self._decode_known(log, topics)
        except Exception as exc:  # eth-abi, a wrong topic count, a malformed field
            raise ChainError(
                f"a {self._by_topic[topics[0]][0].__name__} log of {self.address} in block "
                f"{log.get('blockNumber')} does not decode; the node returned a malformed "
                "log or the ABI does not match the deployed contract"
            ) from exc

    def _decode_known(self, log: Mapping[str, Any], topics: list[bytes]) -> ChainEvent:
        plan = self._plans.get(topics[0])
        if plan is None:
            plan = self._plans[topics[0]] = _DecodePlan.of(*self._by_topic[topics[0]])
        if len(topics) != len(plan.indexed) + 1:
            raise ValueError("wrong topic count")
        kwargs: dict[str, Any] = {
            "block_number": _as_int(log["blockNumber"]),
            "tx_hash": _as_bytes(log["transactionHash"]),
            "log_index": _as_int(log["logIndex"]),
        }
        for (key, type_, conv), t in zip(plan.indexed, topics[1:], strict=True):
            kwargs[key] = conv(_topic_value(type_, t))
        if plan.plain:
            values = abi_decode(plan.plain_types, _as_bytes(log["data"]))
            for (key, conv), v in zip(plan.plain, values, strict=True):
                kwargs[key] = conv(v)
        if plan.cls is EntryAppended:
            # Derived, not emitted: see RecordIndex.recordIdOf.
            kwargs["record_id"] = record_id(
                kwargs["patient"], kwargs["tag"], kwargs["author"], kwargs["sequence"]
            )
        return plan.cls(**kwargs)

    def _topics(self, cls: type[ChainEvent], filters: Mapping[str, Any]) -> list[Any]:
        abi = self._event_abi[cls]
        indexed = [p for p in abi["inputs"] if p["indexed"]]
        known = {_snake(p["name"]) for p in indexed}
        unknown = set(filters) - known
        if unknown:
            raise TypeError(
                f"{cls.__name__} can be filtered on {sorted(known)}, not {sorted(unknown)}"
            )
        topics: list[Any] = [event_topic(abi)]
        for p in indexed:
            v = filters.get(_snake(p["name"]))
            if v is None:
                topics.append(None)
            elif isinstance(v, list | tuple | set | frozenset):
                topics.append([topic_for(p["type"], x) for x in v])
            else:
                topics.append(topic_for(p["type"], v))
        return topics

    def _events_of_kinds(
        self,
        kinds: Sequence[type[ChainEvent]],
        from_block: int,
        to_block: int,
        **filters: Any,
    ) -> list[ChainEvent]:
        """Events of several ``kinds`` in one paged ``eth_getLogs``, in chain order.

        The filtered fields must sit at the same indexed positions in every kind.
        """
        per_kind = [self._topics(k, filters) for k in kinds]
        if any(t[1:] != per_kind[0][1:] for t in per_kind):
            raise TypeError("these events index the filtered fields at different positions")
        topics = [[t[0] for t in per_kind], *per_kind[0][1:]]
        return query_events([self], kinds, topics, from_block, to_block)

    def topic_of(self, cls: type[ChainEvent]) -> bytes:
        """topic0 of the event ``cls`` (``TypeError`` if this contract does not emit it)."""
        if cls not in self._event_abi:
            raise TypeError(f"{type(self).__name__} emits no {cls.__name__}")
        return event_topic(self._event_abi[cls])

    def events(
        self,
        cls: type[E],
        *,
        from_block: int | None = None,
        to_block: int | None = None,
        page_size: int = 2_000,
        **filters: Any,
    ) -> Iterator[E]:
        """Events of type ``cls`` in chain order, filtered on indexed fields.

        A filter value may be one value or a list (any of them). ``to_block`` defaults to
        the newest block with the client's confirmations.
        """
        if cls not in self._event_abi:
            raise TypeError(f"{type(self).__name__} emits no {cls.__name__}")
        start = self.start_block if from_block is None else from_block
        end = self.client.safe_block() if to_block is None else to_block
        for log in get_logs_paged(
            self.client.w3, self.address, self._topics(cls, filters), start, end, page_size
        ):
            ev = self.decode_log(log)
            if isinstance(ev, cls):
                yield ev

    def poll(
        self, cls: type[E], cursor: EventCursor, key: str, *, page_size: int = 2_000, **filters: Any
    ) -> list[E]:
        """New events since ``cursor``'s position for ``key``; advances and saves the cursor.

        **Warning:** the cursor is saved before the caller handles the events, so a crash
        in between skips them (at most once). For at least once, read with :meth:`events`
        and call ``cursor.advance(key, last_block + 1)`` after handling.
        """
        start = cursor.next_block(key, self.start_block)
        end = self.client.safe_block()
        if end < start:
            return []
        found = list(
            self.events(cls, from_block=start, to_block=end, page_size=page_size, **filters)
        )
        cursor.advance(key, end + 1)
        return found


def query_events(
    bindings: Sequence[Binding],
    kinds: Sequence[type[ChainEvent]],
    topics: Sequence[Any],
    from_block: int,
    to_block: int,
) -> list[ChainEvent]:
    """One paged ``eth_getLogs`` over the contracts of ``bindings``, each log decoded by
    its contract's binding; events of ``kinds`` only, in chain order (block, log index)."""
    by_address: dict[str, Binding] = {b.address: b for b in bindings}
    where: str | list[str] = bindings[0].address if len(by_address) == 1 else list(by_address)
    found: list[ChainEvent] = []
    for log in get_logs_paged(bindings[0].client.w3, where, topics, from_block, to_block):
        try:
            binding = by_address.get(checksum(log["address"]))
        except (KeyError, TypeError, ValueError) as exc:  # InvalidInput is a ValueError
            raise ChainError(
                f"eth_getLogs for blocks {from_block}..{to_block} returned a log without a "
                "valid contract address; the node is faulty"
            ) from exc
        ev = binding.decode_log(log) if binding is not None else None
        if ev is not None and type(ev) in kinds:
            found.append(ev)
    found.sort(key=lambda ev: (ev.block_number, ev.log_index))
    return found
