"""Signing, sending and calling: the :class:`ChainClient` every contract binding uses.

The client is given a :class:`~web3.Web3` (never looked up globally) and, for
transactions, a private key. Transactions are signed locally with eth-account; a
:class:`NonceManager` hands out nonces safely to concurrent threads; every revert is
decoded into :class:`~emrshare.errors.ContractRevert` with the custom error's name and
arguments, on anvil, ganache and geth-style nodes alike.
"""

from __future__ import annotations

import ast
import contextlib
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, TypeVar, cast

from eth_abi.abi import decode as abi_decode
from eth_account import Account
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound
from web3.types import RPCEndpoint

from emrshare.chain.artifacts import artifact_names, load_artifact
from emrshare.errors import (
    ChainError,
    ConfigurationError,
    ContractRevert,
    EmrShareError,
    NonceTooLow,
    TransactionFailed,
    TransactionMinedFailed,
)

__all__ = [
    "ChainClient",
    "NonceManager",
    "Receipt",
    "SignedTransaction",
    "TransactionState",
    "decode_revert",
    "revert_data_from_error",
]

#: What :meth:`ChainClient.transaction_state` says of a sent transaction.
TransactionState = Literal["confirmed", "failed", "unknown"]

#: Priority fee of locally signed EIP-1559 transactions (1 gwei).
_TIP = 1_000_000_000


E = TypeVar("E")


_URL_PATH = re.compile(r"(url: )\S+|(://)[^/\s@]*@")


def _scrub(exc: BaseException) -> str:
    """``str(exc)`` without URL paths or credentials: RPC URLs often carry an API key
    (``…/v3/<key>``) and requests repeats the path in its messages."""
    return _URL_PATH.sub(
        lambda m: (m.group(1) or m.group(2)) + "…" + ("@" if m.group(2) else ""), str(exc)
    )


@contextlib.contextmanager
def _node_errors(what: str) -> Iterator[None]:
    """Re-raise a web3/transport failure while doing ``what`` as :class:`ChainError`.

    web3.py raises requests', aiohttp's and its own exception types for an unreachable or
    misbehaving node; callers (the journal, the proxy) tell outages from reverts by the
    ``EmrShareError`` tree, so nothing untyped may escape a public method.
    """
    try:
        yield
    except EmrShareError:
        raise
    except Exception as exc:
        raise ChainError(f"{what} failed: {_scrub(exc)}; is the node reachable?") from exc


@dataclass(frozen=True, slots=True)
class Receipt:
    """The outcome of a mined, successful transaction.

    ``events`` holds the decoded events of the contract that was called (event
    dataclasses from :mod:`emrshare.chain.contracts`), in log order.
    """

    tx_hash: bytes
    block_number: int
    gas_used: int
    logs: tuple[Mapping[str, Any], ...]
    events: tuple[Any, ...] = ()

    def events_of(self, cls: type[E]) -> list[E]:
        """The decoded events of type ``cls``, in log order."""
        return [e for e in self.events if isinstance(e, cls)]

    def event(self, cls: type[E]) -> E:
        """The first decoded event of type ``cls``; :class:`ChainError` if there is none."""
        found = self.events_of(cls)
        if not found:
            raise ChainError(f"transaction 0x{self.tx_hash.hex()} emitted no {cls.__name__} event")
        return found[0]


@dataclass(frozen=True, slots=True, repr=False)
class SignedTransaction:
    """A transaction signed by :meth:`ChainClient.sign`, to :meth:`ChainClient.broadcast`.

    ``raw`` is the signed envelope (public once broadcast, not a secret); the repr names
    only the hash and the nonce.
    """

    raw: bytes
    tx_hash: bytes
    nonce: int

    def __repr__(self) -> str:
        return f"SignedTransaction(tx_hash=0x{self.tx_hash.hex()}, nonce={self.nonce})"


def _refusal(error: Any) -> Literal["known", "nonce", "refused"]:
    """Why a node refused ``eth_sendRawTransaction``, from its error object.

    ``known``: this very transaction is already pooled or mined; ``nonce``: the nonce was
    used by another transaction of the account (anvil and geth say "nonce too low",
    ganache "doesn't have the correct nonce"); ``refused``: anything else (intrinsic gas,
    fees, a malformed envelope), which no resend of the same bytes changes.
    """
    text = str(error.get("message", error) if isinstance(error, Mapping) else error).lower()
    if re.search(r"\balready\b|(?<!un)known", text):
        return "known"
    if "nonce too low" in text or "correct nonce" in text:
        return "nonce"
    return "refused"


@dataclass(frozen=True, slots=True)
class _ErrorAbi:
    name: str
    types: tuple[str, ...]
    names: tuple[str, ...]


def _abi_type(param: Mapping[str, Any]) -> str:
    t = str(param["type"])
    if t.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){t[5:]}"
    return t


@cache
def _error_table() -> dict[bytes, _ErrorAbi]:
    """Every custom error of every shipped contract (and Error/Panic), by selector."""
    table: dict[bytes, _ErrorAbi] = {
        bytes.fromhex("08c379a0"): _ErrorAbi("Error", ("string",), ("message",)),
        bytes.fromhex("4e487b71"): _ErrorAbi("Panic", ("uint256",), ("code",)),
    }
    for name in artifact_names():
        for item in load_artifact(name).abi:
            if item.get("type") != "error":
                continue
            types = tuple(_abi_type(p) for p in item["inputs"])
            sig = f"{item['name']}({','.join(types)})"
            table[keccak(text=sig)[:4]] = _ErrorAbi(
                item["name"], types, tuple(p["name"] for p in item["inputs"])
            )
    return table


# What to do next, for the errors a caller most often meets. Filled with the arguments.
_HINTS: dict[str, str] = {
    "RecordIndex_WrongSequence": (
        "append named sequence {given} but the next one for writer {writer} is {expected}: "
        "entries before {expected} are already on chain; continue from {expected}"
    ),
    "RecordIndex_NotAuthorized": (
        "{writer} may not append to patient {patient}'s tag {tag}; "
        "ask the patient to authorize it for that category"
    ),
    "Grants_AlreadyRevoked": "grant {policyId} was already revoked at block {revokedAt}",
    "Grants_ExpiryInPast": (
        "grant expiry {expiry} is not after chain time {chainTime}; choose a later expiry"
    ),
    "Grants_PolicyExists": "a grant with id {policyId} exists; use a fresh random nonce",
    "Grants_NotMember": "{account} is not a consortium member; ask the admins to admit it",
    "AuditLog_NotPolicyProxy": "{caller} is not a proxy of grant {policyId} and may not log",
    "AuditLog_NotProxy": (
        "{account} is not an active consortium proxy (removed or suspended) and may not log"
    ),
    "AuditLog_BadRequestSignature": (
        "access {index} logged under grant {policyId} does not carry the grantee's signature "
        "of that request; log only requests the grantee signed"
    ),
    "AuditLog_OutsideGrantWindow": (
        "an access evaluated at block {evaluatedAt} is outside grant {policyId}'s active "
        "blocks; the grant did not allow it then"
    ),
    "AuditLog_OutsideGrantTime": (
        "an access evaluated at time {evaluatedTime} is after grant {policyId}'s expiry, "
        "the request's deadline or the chain's time"
    ),
    "RecordIndex_NotMember": (
        "{writer} is not an active Provider of the consortium and may not write; "
        "ask the admins about its membership"
    ),
    "Grants_NoProfile": "{caller} has no patient profile; register one in PatientProfiles first",
    "Grants_NotProxy": (
        "{proxy} is not an active consortium proxy (never one, removed or suspended); "
        "choose proxies from the registry"
    ),
    "Grants_SealedTooLarge": (
        "sealed item {index} is {length} bytes: it must be non-empty and within the "
        "contract's limit"
    ),
    "Registry_NotEnoughApprovals": (
        "proposal {proposalId} has {approvals} approval(s); it needs {threshold}"
    ),
    "Registry_ProposalStale": (
        "the admin set changed since proposal {proposalId} was made; propose it again"
    ),
}


def _render(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    return str(value)


def decode_revert(data: bytes) -> ContractRevert:
    """Decode revert data into :class:`ContractRevert` (name ``"unknown"`` if unrecognised)."""
    if len(data) < 4:
        return ContractRevert(
            "unknown", {}, "contract reverted without an error (out of gas or bad call)", data
        )
    abi = _error_table().get(data[:4])
    if abi is None:
        return ContractRevert(
            "unknown", {}, f"contract reverted with unknown error 0x{data[:4].hex()}", data
        )
    try:
        values = abi_decode(list(abi.types), data[4:])
    except Exception as exc:  # malformed revert data from a misbehaving node
        return ContractRevert(abi.name, {}, f"contract reverted with {abi.name} ({exc})", data)
    args = {
        n or f"arg{i}": _normalize(v)
        for i, (n, v) in enumerate(zip(abi.names, values, strict=True))
    }
    message: str | None = None
    hint = _HINTS.get(abi.name)
    if hint is not None:
        message = f"{abi.name}: " + hint.format(**{k: _render(v) for k, v in args.items()})
    elif abi.name == "Error":
        message = f"contract reverted: {args['message']}"
    return ContractRevert(abi.name, args, message, data)


def _normalize(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return Web3.to_checksum_address(value)
    if isinstance(value, list | tuple):
        return tuple(_normalize(v) for v in value)
    return value


def revert_data_from_error(error: Any) -> bytes | None:
    """Find revert data in a JSON-RPC error object, whatever shape the node uses.

    anvil and geth put a hex string in ``error.data``; ganache does so for ``eth_call``
    but nests it as ``error.data.result`` for ``eth_estimateGas`` (and, in older
    versions, as ``error.data[txhash].return``).
    """
    if isinstance(error, str):
        if error.startswith("0x") and len(error) % 2 == 0:
            try:
                return bytes.fromhex(error[2:])
            except ValueError:
                return None
        return None
    if isinstance(error, Mapping):
        for key in ("data", "result", "return"):
            if key in error:
                found = revert_data_from_error(error[key])
                if found is not None:
                    return found
        for value in error.values():
            if isinstance(value, Mapping):
                found = revert_data_from_error(value)
                if found is not None:
                    return found
    return None


def _revert_data_from_exception(exc: Exception) -> bytes | None:
    """Revert data of an in-process chain (eth-tester raises instead of answering).

    eth-tester's ``TransactionFailed`` carries ``"execution reverted: b'...'"``.
    """
    if type(exc).__name__ != "TransactionFailed" or not exc.args:
        return None
    arg = exc.args[0]
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str) and arg.startswith("execution reverted: b"):
        try:
            value = ast.literal_eval(arg[len("execution reverted: ") :])
        except (ValueError, SyntaxError):
            return None
        return value if isinstance(value, bytes) else None
    return None


def _quantity(value: Any) -> int:
    """A JSON-RPC quantity (hex string; some in-process providers answer ints)."""
    return value if isinstance(value, int) else int(str(value), 16)


def _is_eth_tester(w3: Web3) -> bool:
    return type(w3.provider).__name__ == "EthereumTesterProvider"


def _is_revert(error: Mapping[str, Any]) -> bool:
    msg = str(error.get("message", "")).lower()
    return "revert" in msg or error.get("code") == 3


class NonceManager:
    """Hands out consecutive nonces for one account, safely across threads.

    Share one manager between every :class:`ChainClient` that signs with the same key.
    The first nonce comes from the node's pending count; after a failed send the
    manager re-reads it, so a rejected transaction does not leave a gap.
    """

    def __init__(self, w3: Web3, address: str) -> None:
        self._w3 = w3
        self._address = Web3.to_checksum_address(address)
        self._lock = threading.Lock()
        self._next: int | None = None

    @contextlib.contextmanager
    def allocate(self) -> Iterator[int]:
        """Hold the next nonce while a transaction is signed and sent.

        The nonce is consumed when the block exits normally and released (re-read from
        the node next time) when it raises.
        """
        with self._lock:
            if self._next is None:
                with _node_errors("reading the account nonce"):
                    self._next = int(self._w3.eth.get_transaction_count(self._address, "pending"))
            nonce = self._next
            try:
                yield nonce
            except BaseException:
                self._next = None
                raise
            self._next = nonce + 1

    def resync(self) -> None:
        """Forget the local counter; the next allocation asks the node."""
        with self._lock:
            self._next = None


class ChainClient:
    """A connection to one EVM chain plus (optionally) a local signing key.

    ``confirmations`` is how many blocks (including the transaction's own) must exist
    before a transaction counts as done; 1 means "mined". Without ``private_key`` the
    client can only read.
    """

    def __init__(
        self,
        w3: Web3,
        private_key: bytes | None = None,
        *,
        confirmations: int = 1,
        receipt_timeout: float = 120.0,
        poll_interval: float = 0.05,
        gas_multiplier: float = 1.25,
        nonces: NonceManager | None = None,
    ) -> None:
        if confirmations < 1:
            raise ConfigurationError("confirmations must be at least 1 (1 = mined)")
        self.w3 = w3
        self._account = Account.from_key(private_key) if private_key is not None else None
        self.confirmations = confirmations
        self.receipt_timeout = receipt_timeout
        self.poll_interval = poll_interval
        self.gas_multiplier = gas_multiplier
        self._chain_id: int | None = None
        self.nonces: NonceManager | None = None
        if self._account is not None:
            self.nonces = nonces or NonceManager(w3, self._account.address)

    def __repr__(self) -> str:
        return f"ChainClient(address={self.address!r}, confirmations={self.confirmations})"

    @property
    def address(self) -> str | None:
        """The checksummed address of the signing key, ``None`` for a read-only client."""
        return None if self._account is None else str(self._account.address)

    @property
    def chain_id(self) -> int:
        """The node's chain id (asked once, then cached)."""
        if self._chain_id is None:
            with _node_errors("eth_chainId"):
                self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    def with_key(self, private_key: bytes) -> ChainClient:
        """A client on the same connection and settings, signing with another key."""
        return ChainClient(
            self.w3,
            private_key,
            confirmations=self.confirmations,
            receipt_timeout=self.receipt_timeout,
            poll_interval=self.poll_interval,
            gas_multiplier=self.gas_multiplier,
        )

    # ------------------------------------------------------------------ RPC

    def _rpc(self, method: str, params: Sequence[Any]) -> Any:
        try:
            resp = self.w3.provider.make_request(RPCEndpoint(method), list(params))
        except Exception as exc:
            data = _revert_data_from_exception(exc)
            if data is not None:
                raise decode_revert(data) from exc
            raise ChainError(f"{method} failed: {_scrub(exc)}; is the node reachable?") from exc
        return self._result(method, resp)

    def _rpc_pair(
        self, first: tuple[str, Sequence[Any]], second: tuple[str, Sequence[Any]]
    ) -> tuple[Any, Any]:
        """Two calls in one JSON-RPC batch (one round trip) where the provider can; each
        answer is checked exactly as :meth:`_rpc` checks it, the first one first."""
        batch = getattr(self.w3.provider, "make_batch_request", None)
        if batch is None or _is_eth_tester(self.w3):
            return self._rpc(*first), self._rpc(*second)
        calls = [(RPCEndpoint(m), list(p)) for m, p in (first, second)]
        try:
            resps = batch(calls)
        except Exception as exc:
            raise ChainError(f"{first[0]} failed: {_scrub(exc)}; is the node reachable?") from exc
        if not isinstance(resps, list) or len(resps) != 2:
            # A node without batch support answers with one error: ask one by one.
            return self._rpc(*first), self._rpc(*second)
        return self._result(first[0], resps[0]), self._result(second[0], resps[1])

    def _result(self, method: str, resp: Mapping[str, Any]) -> Any:
        error = resp.get("error")
        if error is not None:
            if isinstance(error, Mapping):
                data = revert_data_from_error(error)
                if data is not None and (len(data) >= 4 or _is_revert(error)):
                    raise decode_revert(data)
                if _is_revert(error):
                    raise decode_revert(b"")
            raise ChainError(f"{method} failed: {error}")
        return resp.get("result")

    def call_raw(self, to: str, data: bytes, block: int | str = "latest") -> bytes:
        """``eth_call``; a revert raises :class:`ContractRevert`."""
        # Some nodes (eth-tester) require a sender even for calls; the zero address is neutral.
        # Gas price 0: a call spends nothing, and a read-only caller (the zero address
        # stands in for it) may hold no funds.
        tx: dict[str, Any] = {
            "from": self.address or "0x" + "00" * 20,
            "to": to,
            "data": "0x" + data.hex(),
        }
        if _is_eth_tester(self.w3):
            # eth-tester charges calls as transactions: a read-only caller borrows its
            # funded first account.
            if self.address is None:
                with _node_errors("eth_accounts"):
                    tx["from"] = self.w3.eth.accounts[0]
        else:
            tx["gasPrice"] = "0x0"
        blk: int | str = block
        if isinstance(block, int) and not _is_eth_tester(self.w3):
            # JSON-RPC nodes want a hex quantity; eth-tester (py-evm) wants the int itself.
            blk = hex(block)
        result = self._rpc("eth_call", [tx, blk])
        return bytes.fromhex(str(result)[2:])

    def send(
        self, to: str, data: bytes, *, gas: int | None = None, with_logs: bool = True
    ) -> Receipt:
        """Sign and send a transaction, wait for it, and return its :class:`Receipt`.

        The gas is estimated first, so a transaction that would revert raises
        :class:`ContractRevert` before anything is sent. ``with_logs=False`` returns a
        receipt without logs (a bulk append does not need its hundreds of events, and
        formatting them costs more than the round trip).
        """
        if self._account is None or self.nonces is None:
            raise ConfigurationError("this ChainClient has no private key and cannot transact")
        sender = self._account.address
        base: dict[str, Any] = {"from": sender, "to": to, "data": "0x" + data.hex()}
        # Estimation happens under the account's nonce lock: it then sees the state after
        # this account's earlier transactions were sent (and ganache 7 has been seen to
        # stall on estimates racing its own automining).
        with self.nonces.allocate() as nonce:
            if gas is None:
                # Estimate and gas price in one round trip.
                estimated, price = self._rpc_pair(("eth_estimateGas", [base]), ("eth_gasPrice", []))
                gas = int(_quantity(estimated) * self.gas_multiplier) + 5_000
                gas_price = _quantity(price)
            else:
                with _node_errors("eth_gasPrice"):
                    gas_price = int(self.w3.eth.gas_price)
            tx = {
                "to": to,
                "data": base["data"],
                "value": 0,
                "gas": gas,
                "gasPrice": gas_price,
                "nonce": nonce,
                "chainId": self.chain_id,
            }
            signed = self._account.sign_transaction(tx)
            tx_hash = bytes(signed.hash)
            if self._push(bytes(signed.raw_transaction)) == "nonce":
                # Leaving the block re-reads the nonce from the node (NonceManager.allocate).
                raise NonceTooLow(
                    f"the node refused nonce {nonce} of {sender} as already used: another "
                    "process sent with this key; the nonce was re-read, send again"
                )
        receipt = self._wait(tx_hash, with_logs)
        if int(receipt["status"]) != 1:
            # Replay at the block it failed in, to recover the custom error.
            try:
                self.call_raw(to, data, int(receipt["blockNumber"]) - 1)
            except ContractRevert:
                raise
            except ChainError:
                pass
            raise TransactionMinedFailed(
                f"transaction 0x{tx_hash.hex()} failed in block {int(receipt['blockNumber'])} "
                f"after using {int(receipt['gasUsed'])} gas; raise the gas limit or retry",
                tx_hash=tx_hash,
                block_number=int(receipt["blockNumber"]),
                gas_used=int(receipt["gasUsed"]),
            )
        return Receipt(
            tx_hash=tx_hash,
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            logs=tuple(receipt["logs"]) if with_logs else (),
        )

    def _push(self, raw: bytes) -> Literal["sent", "known", "nonce"]:
        """``eth_sendRawTransaction``: ``sent``, or why the node did not take it anew.

        The one place a node's refusal is classified (see :func:`_refusal`); a refusal
        for good raises :class:`TransactionFailed`, a transport failure :class:`ChainError`.
        """
        method = "eth_sendRawTransaction"
        try:
            resp = self.w3.provider.make_request(RPCEndpoint(method), ["0x" + raw.hex()])
        except Exception as exc:
            data = _revert_data_from_exception(exc)
            if data is not None:
                raise decode_revert(data) from exc
            raise ChainError(f"{method} failed: {_scrub(exc)}; is the node reachable?") from exc
        error = resp.get("error")
        if error is None:
            return "sent"
        kind = _refusal(error)
        if kind == "refused":
            message = error.get("message", error) if isinstance(error, Mapping) else error
            raise TransactionFailed(
                f"the node refused the transaction: {message}; it can never be mined as is"
            )
        return kind

    def sign(
        self, to: str, data: bytes, *, gas: int | None = None, nonce: int | None = None
    ) -> SignedTransaction:
        """Sign a call of ``to`` with ``data`` locally, to :meth:`broadcast` later.

        EIP-1559 fees: a 1 gwei tip and a fee cap of four times the latest base fee plus
        the tip, so a transaction kept for a while still gets mined. Without ``gas`` the
        call is estimated first (a call that would revert raises :class:`ContractRevert`).
        Without ``nonce`` the next one of the client's :class:`NonceManager` is taken and
        consumed: broadcast the result, or the account's later transactions wait on it.
        """
        if self._account is None or self.nonces is None:
            raise ConfigurationError("this ChainClient has no private key and cannot sign")
        sender = self._account.address
        hex_data = "0x" + data.hex()
        if gas is None:
            estimated = self._rpc("eth_estimateGas", [{"from": sender, "to": to, "data": hex_data}])
            gas = int(_quantity(estimated) * self.gas_multiplier) + 5_000
        base_fee = int(self._block("latest").get("baseFeePerGas", 0) or 0)
        tx: dict[str, Any] = {
            "to": Web3.to_checksum_address(to),
            "data": hex_data,
            "value": 0,
            "gas": gas,
            "maxPriorityFeePerGas": _TIP,
            "maxFeePerGas": 4 * base_fee + _TIP,
            "chainId": self.chain_id,
        }
        if nonce is None:
            with self.nonces.allocate() as allocated:
                tx["nonce"] = allocated
                signed = self._account.sign_transaction(tx)
        else:
            tx["nonce"] = nonce
            signed = self._account.sign_transaction(tx)
        return SignedTransaction(
            bytes(signed.raw_transaction), bytes(signed.hash), int(tx["nonce"])
        )

    def broadcast(self, raw: bytes) -> bytes:
        """Send a signed transaction (again); returns its hash without waiting.

        Sending one that the node already holds or has mined ("already known", "nonce
        too low") is not an error: a stored transaction can be re-broadcast after a
        restart. A refusal for good (intrinsic gas, fees) raises
        :class:`TransactionFailed`; a node that cannot be reached, :class:`ChainError`.
        """
        self._push(raw)
        return bytes(keccak(raw))

    def transaction_state(self, tx_hash: bytes, *, timeout: float = 10.0) -> TransactionState:
        """Wait up to ``timeout`` seconds for a sent transaction to be mined, and say how
        it went.

        ``confirmed``: mined with status 1. ``failed``: mined with status 0, or the node
        does not know it (dropped by a restart, replaced): send again. ``unknown``: still
        pending. A node that cannot answer raises :class:`ChainError`.
        """
        deadline = time.monotonic() + timeout
        pause = min(0.002, self.poll_interval)
        while True:
            with contextlib.suppress(ChainError):
                receipt = self._receipt(tx_hash, with_logs=False)
                if receipt is not None:
                    return "confirmed" if int(receipt["status"]) == 1 else "failed"
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(pause, left))
            pause = min(pause * 2, self.poll_interval)
        with _node_errors(f"looking up transaction 0x{tx_hash.hex()}"):
            try:
                self.w3.eth.get_transaction(HexBytes(tx_hash))
            except TransactionNotFound:
                return "failed"
        return "unknown"

    def receipt_block(self, tx_hash: bytes) -> int | None:
        """The block a transaction was mined in with status 1; ``None`` if it is not
        mined (yet) or failed."""
        receipt = self._receipt(tx_hash, with_logs=False)
        if receipt is None or int(receipt["status"]) != 1:
            return None
        return int(receipt["blockNumber"])

    def _block(self, number: int | str) -> Mapping[str, Any]:
        """A block header (``number``, ``hash``, ``timestamp``, ``gasLimit``,
        ``baseFeePerGas``) with int and bytes values; ``{}`` if the node has no such block.

        Plain JSON-RPC on a node: web3's block formatters cost more than the call.
        """
        if _is_eth_tester(self.w3):
            with _node_errors("eth_getBlockByNumber"):
                try:
                    return cast(Mapping[str, Any], self.w3.eth.get_block(number))  # type: ignore[arg-type]
                except BlockNotFound:
                    return {}
        tag = hex(number) if isinstance(number, int) else number
        raw = self._rpc("eth_getBlockByNumber", [tag, False])
        if raw is None:
            return {}
        out: dict[str, Any] = {"hash": bytes.fromhex(str(raw["hash"]).removeprefix("0x"))}
        for key in ("number", "timestamp", "gasLimit", "baseFeePerGas"):
            if raw.get(key) is not None:
                out[key] = _quantity(raw[key])
        return out

    def block_time(self, number: int) -> int:
        """The timestamp of block ``number`` (:class:`ChainError` if there is no such block)."""
        block = self._block(number)
        if not block:
            raise ChainError(f"the node has no block {number}; is it synced that far?")
        return int(block["timestamp"])

    def block_hash(self, number: int) -> bytes | None:
        """The hash of block ``number``, ``None`` if the node has no such block (yet)."""
        block = self._block(number)
        return bytes(block["hash"]) if block else None

    def block_gas_limit(self) -> int:
        """The gas limit of the latest block."""
        return int(self._block("latest")["gasLimit"])

    def account_nonce(self, block: int | str = "latest") -> int:
        """The signing account's transaction count at ``block`` ("latest", "pending", …)."""
        if self._account is None:
            raise ConfigurationError("this ChainClient has no private key, hence no nonce")
        with _node_errors("eth_getTransactionCount"):
            return int(self.w3.eth.get_transaction_count(self._account.address, block))  # type: ignore[arg-type]

    def _wait(self, tx_hash: bytes, with_logs: bool = True) -> Mapping[str, Any]:
        deadline = time.monotonic() + self.receipt_timeout
        receipt: Mapping[str, Any] | None = None
        # Automining dev nodes answer within milliseconds: poll fast at first, then back
        # off to ``poll_interval`` (a fixed 50 ms sleep was most of a single write).
        pause = min(0.002, self.poll_interval)
        while time.monotonic() < deadline:
            receipt = self._receipt(tx_hash, with_logs)
            if receipt is not None:
                mined = int(receipt["blockNumber"])
                # One confirmation is the block the receipt names: it exists, no need
                # to ask for the head.
                if self.confirmations == 1 or self.latest_block() - mined + 1 >= self.confirmations:
                    return receipt
            time.sleep(pause)
            pause = min(pause * 2, self.poll_interval)
        what = "mined" if receipt is None else f"{self.confirmations} confirmations"
        raise TransactionFailed(
            f"transaction 0x{tx_hash.hex()} was not {what} within {self.receipt_timeout:.0f}s; "
            "check the node, then look the hash up before resending"
        )

    def _receipt(self, tx_hash: bytes, with_logs: bool) -> Mapping[str, Any] | None:
        """The receipt, or None while the transaction is not mined (one round trip)."""
        if with_logs or _is_eth_tester(self.w3):
            # web3's formatting (HexBytes, checksummed addresses) is what the bindings
            # decode events from.
            with _node_errors("eth_getTransactionReceipt"):
                try:
                    return cast(
                        Mapping[str, Any], self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
                    )
                except TransactionNotFound:
                    return None
        # JSON-RPC nodes answer in hex; skip web3's formatting of (many) logs.
        raw = self._rpc("eth_getTransactionReceipt", ["0x" + tx_hash.hex()])
        if raw is None:
            return None
        return {
            "status": int(str(raw["status"]), 16),
            "blockNumber": int(str(raw["blockNumber"]), 16),
            "gasUsed": int(str(raw["gasUsed"]), 16),
        }

    def latest_block(self) -> int:
        """The node's newest block number."""
        with _node_errors("eth_blockNumber"):
            return int(self.w3.eth.block_number)

    def safe_block(self) -> int:
        """The newest block with the configured number of confirmations."""
        return self.latest_block() - (self.confirmations - 1)

    def chain_time(self) -> int:
        """Timestamp of the latest block (contracts judge expiry by this, not the wall clock)."""
        with _node_errors("eth_getBlockByNumber"):
            return int(self.w3.eth.get_block("latest")["timestamp"])
