"""Signing, sending and calling: the :class:`ChainClient` every contract binding uses.

The client is given a :class:`~web3.Web3` (never looked up globally) and, for
transactions, a private key. Transactions are signed locally with eth-account; a
:class:`NonceManager` hands out nonces safely to concurrent threads; every revert is
decoded into :class:`~emrshare.errors.ContractRevert` with the custom error's name and
arguments, on anvil, ganache and geth-style nodes alike (see :mod:`emrshare.chain._revert`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from eth_account import Account
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound

from emrshare.chain._revert import decode_revert
from emrshare.chain._rpc import (
    NodeConnection,
    is_eth_tester,
    node_errors,
    quantity,
)
from emrshare.errors import (
    ChainError,
    ConfigurationError,
    ContractRevert,
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
]


#: What :meth:`ChainClient.transaction_state` says of a sent transaction.
TransactionState = Literal["confirmed", "failed", "unknown"]

#: One round trip for the fee fields: the latest block (its base fee) and the node's price.
_FEE_CALLS: tuple[tuple[str, list[Any]], ...] = (
    ("eth_getBlockByNumber", ["latest", False]),
    ("eth_gasPrice", []),
)


def _fees(head: Any, price: Any) -> dict[str, int]:
    """Fee fields priced by the node: its ``eth_gasPrice`` is what it asks of a
    transaction now (base fee plus the tip it expects; 0 on a free-gas consortium chain).

    EIP-1559 where blocks have a base fee: the node's tip (its price above the base fee)
    and a cap of four times the base fee plus that tip, so a transaction signed now and
    broadcast later (the proxies' audit logs) still gets mined as the base fee rises.
    A chain before London (no base fee) takes only legacy transactions at that price.
    """
    node_price = quantity(price)
    raw_base = (head or {}).get("baseFeePerGas")
    if raw_base is None:
        return {"gasPrice": node_price}
    base_fee = quantity(raw_base)
    tip = max(node_price - base_fee, 0)
    return {"maxPriorityFeePerGas": tip, "maxFeePerGas": 4 * base_fee + tip}


E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class Receipt:
    """The outcome of a mined, successful transaction.

    ``events`` holds the decoded events of the contract that was called (event
    dataclasses from :mod:`emrshare.chain.events`), in log order.
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
                with node_errors("reading the account nonce"):
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


class ChainClient(NodeConnection):
    """A connection to one EVM chain plus (optionally) a local signing key.

    ``confirmations`` is how many blocks (including the transaction's own) must exist
    before a transaction counts as done; 1 means "mined". Without ``private_key`` the
    client can only read. Calls and block reads come from :class:`NodeConnection`.
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
        super().__init__(w3, confirmations=confirmations)
        self._account = Account.from_key(private_key) if private_key is not None else None
        self.receipt_timeout = receipt_timeout
        self.poll_interval = poll_interval
        self.gas_multiplier = gas_multiplier
        self.nonces: NonceManager | None = None
        if self._account is not None:
            self.nonces = nonces or NonceManager(w3, self._account.address)

    def __repr__(self) -> str:
        return f"ChainClient(address={self.address!r}, confirmations={self.confirmations})"

    @property
    def address(self) -> str | None:
        """The checksummed address of the signing key, ``None`` for a read-only client."""
        return None if self._account is None else str(self._account.address)

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
        if is_eth_tester(self.w3):
            # eth-tester charges calls as transactions: a read-only caller borrows its
            # funded first account.
            if self.address is None:
                with node_errors("eth_accounts"):
                    tx["from"] = self.w3.eth.accounts[0]
        else:
            tx["gasPrice"] = "0x0"
        blk: int | str = block
        if isinstance(block, int) and not is_eth_tester(self.w3):
            # JSON-RPC nodes want a hex quantity; eth-tester (py-evm) wants the int itself.
            blk = hex(block)
        result = self._rpc("eth_call", [tx, blk])
        return bytes.fromhex(str(result)[2:])

    def send(
        self,
        to: str,
        data: bytes = b"",
        *,
        gas: int | None = None,
        value: int = 0,
        with_logs: bool = True,
    ) -> Receipt:
        """Sign and send a transaction, wait for it, and return its :class:`Receipt`.
        ``value`` is the wei it transfers (funding a development account).

        The gas is estimated first, so a transaction that would revert raises
        :class:`ContractRevert` before anything is sent. ``with_logs=False`` returns a
        receipt without logs (a bulk append does not need its hundreds of events, and
        formatting them costs more than the round trip).
        """
        if self._account is None or self.nonces is None:
            raise ConfigurationError("this ChainClient has no private key and cannot transact")
        sender = self._account.address
        base: dict[str, Any] = {"from": sender, "to": to, "data": "0x" + data.hex()}
        if value:
            # JSON-RPC nodes want a hex quantity; eth-tester (py-evm) wants the int itself.
            base["value"] = value if is_eth_tester(self.w3) else hex(value)
        # A nonce the node refuses as used means another process sent with this key (a
        # crashed writer, the CLI beside a library): nothing of ours was accepted, so once
        # the nonce is re-read (leaving ``allocate`` does that), sending again is safe.
        for attempt in range(2):
            try:
                tx_hash = self._sign_and_push(base, gas, value)
                break
            except NonceTooLow:
                if attempt:
                    raise
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

    def _sign_and_push(self, base: dict[str, Any], gas: int | None, value: int) -> bytes:
        """Sign ``base`` under the next nonce and hand it to the node; the tx hash.
        :class:`NonceTooLow` if the node holds that nonce already (it is then re-read)."""
        # Estimation happens under the account's nonce lock: it then sees the state after
        # this account's earlier transactions were sent (and ganache 7 has been seen to
        # stall on estimates racing its own automining).
        assert self._account is not None and self.nonces is not None
        sender, to = self._account.address, str(base["to"])
        with self.nonces.allocate() as nonce:
            gas, fees = self._gas_and_fees(base, gas)
            tx = self._transaction(to, base["data"], gas, fees, nonce, value)
            signed = self._account.sign_transaction(tx)
            tx_hash = bytes(signed.hash)
            if self._push(bytes(signed.raw_transaction)) == "nonce":
                # Leaving the block re-reads the nonce from the node (NonceManager.allocate).
                raise NonceTooLow(
                    f"the node refused nonce {nonce} of {sender} as already used, twice: "
                    "other processes keep sending with this key; send again"
                )
        return tx_hash

    def sign(
        self, to: str, data: bytes, *, gas: int | None = None, nonce: int | None = None
    ) -> SignedTransaction:
        """Sign a call of ``to`` with ``data`` locally, to :meth:`broadcast` later.

        Fees as :meth:`send` sets them (priced by the node, see :func:`_fees`). Without ``gas`` the
        call is estimated first (a call that would revert raises :class:`ContractRevert`).
        Without ``nonce`` the next one of the client's :class:`NonceManager` is taken and
        consumed: broadcast the result, or the account's later transactions wait on it.
        """
        if self._account is None or self.nonces is None:
            raise ConfigurationError("this ChainClient has no private key and cannot sign")
        hex_data = "0x" + data.hex()
        call = {"from": self._account.address, "to": to, "data": hex_data}
        gas, fees = self._gas_and_fees(call, gas)
        if nonce is None:
            with self.nonces.allocate() as allocated:
                tx = self._transaction(to, hex_data, gas, fees, allocated)
                signed = self._account.sign_transaction(tx)
        else:
            tx = self._transaction(to, hex_data, gas, fees, nonce)
            signed = self._account.sign_transaction(tx)
        return SignedTransaction(
            bytes(signed.raw_transaction), bytes(signed.hash), int(tx["nonce"])
        )

    def gas_with_margin(self, gas: int) -> int:
        """``gas`` (an estimate, or what a like transaction used) with the client's margin:
        times ``gas_multiplier``, plus 5,000."""
        return int(gas * self.gas_multiplier) + 5_000

    def _gas_and_fees(self, call: dict[str, Any], gas: int | None) -> tuple[int, dict[str, int]]:
        """The gas (``call`` estimated, with the margin, unless ``gas`` is given) and the
        fee fields (see :func:`_fees`) for a transaction signed now, in one round trip."""
        if gas is not None:
            head, price = self._rpc_batch(*_FEE_CALLS)
            return gas, _fees(head, price)
        estimated, head, price = self._rpc_batch(("eth_estimateGas", [call]), *_FEE_CALLS)
        return self.gas_with_margin(quantity(estimated)), _fees(head, price)

    def _transaction(
        self, to: str, hex_data: str, gas: int, fees: dict[str, int], nonce: int, value: int = 0
    ) -> dict[str, Any]:
        """The fields of a call to sign, with ``fees`` from :func:`_fees`."""
        return {
            "to": Web3.to_checksum_address(to),
            "data": hex_data,
            "value": value,
            "gas": gas,
            "nonce": nonce,
            "chainId": self.chain_id,
            **fees,
        }

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
        with node_errors(f"looking up transaction 0x{tx_hash.hex()}"):
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

    def account_nonce(self, block: int | str = "latest") -> int:
        """The signing account's transaction count at ``block`` ("latest", "pending", …)."""
        if self._account is None:
            raise ConfigurationError("this ChainClient has no private key, hence no nonce")
        with node_errors("eth_getTransactionCount"):
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
