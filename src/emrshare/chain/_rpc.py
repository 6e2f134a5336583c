"""JSON-RPC plumbing under :class:`~emrshare.chain.client.ChainClient`: one connection,
every failure typed, block reads and the one place a node's refusal of a transaction is
classified.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, cast

import requests
from hexbytes import HexBytes
from requests.adapters import HTTPAdapter
from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound
from web3.types import RPCEndpoint

from emrshare.chain._revert import (
    decode_revert,
    is_revert,
    revert_data_from_error,
    revert_data_from_exception,
)
from emrshare.errors import ChainError, EmrShareError, TransactionFailed

__all__ = [
    "NodeConnection",
    "http_web3",
    "node_errors",
    "quantity",
    "scrub_url_secrets",
    "unreachable",
]

_URL_PATH = re.compile(r"(url: )\S+|(://)[^/\s@]*@")


def scrub_url_secrets(exc: BaseException) -> str:
    """``str(exc)`` without URL paths or credentials: RPC URLs often carry an API key
    (``…/v3/<key>``) and requests repeats the path in its messages."""
    return _URL_PATH.sub(
        lambda m: (m.group(1) or m.group(2)) + "…" + ("@" if m.group(2) else ""), str(exc)
    )


@contextlib.contextmanager
def node_errors(what: str) -> Iterator[None]:
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
        raise unreachable(what, exc) from exc


def unreachable(what: str, exc: BaseException) -> ChainError:
    """The :class:`ChainError` for a transport failure while doing ``what`` (scrubbed)."""
    return ChainError(f"{what} failed: {scrub_url_secrets(exc)}; is the node reachable?")


def refusal(error: Any) -> Literal["known", "nonce", "refused"]:
    """Why a node refused ``eth_sendRawTransaction``, from its error object.

    ``known``: this very transaction is already pooled or mined; ``nonce``: the nonce was
    used by another transaction of the account (anvil, geth and Besu say "nonce too low",
    ganache "doesn't have the correct nonce", Nethermind "OldNonce", others "nonce already
    used"); ``refused``: anything else (intrinsic gas,
    fees, a malformed envelope), which no resend of the same bytes changes.
    """
    text = str(error.get("message", error) if isinstance(error, Mapping) else error).lower()
    # The nonce first: "nonce already used" (some clients' wording) is a used nonce, not
    # this transaction already known.
    if re.search(r"nonce too low|correct nonce|old ?nonce|nonce (has )?already", text):
        return "nonce"
    if re.search(r"\balready\b|(?<!un)known", text):
        return "known"
    return "refused"


def http_web3(url: str, *, timeout: float, pool: int = 10) -> Web3:
    """A :class:`Web3` speaking JSON-RPC over HTTP to ``url``, its environment read once.

    requests re-reads the proxy and CA-bundle environment variables (``HTTPS_PROXY``,
    ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``, …) on every call otherwise: about 1 ms of each
    JSON-RPC call, a quarter of an add's chain time. They are resolved for ``url`` here,
    once, and honoured as before; a change to them needs a new connection. ``pool``
    bounds the pooled connections (one per thread that talks to the node at once).
    """
    session = requests.Session()
    session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}, session=session))


def quantity(value: Any) -> int:
    """A JSON-RPC quantity (hex string; some in-process providers answer ints)."""
    return value if isinstance(value, int) else int(str(value), 16)


def is_eth_tester(w3: Web3) -> bool:
    """Whether ``w3`` is the in-process py-evm chain, which speaks its own JSON-RPC dialect."""
    return type(w3.provider).__name__ == "EthereumTesterProvider"


class NodeConnection:
    """A JSON-RPC connection to one node: calls with typed errors and block reads.

    Plain ``make_request`` where web3's formatters would cost more than the call; every
    failure is an :class:`~emrshare.errors.EmrShareError`.
    """

    def __init__(self, w3: Web3, *, confirmations: int = 1) -> None:
        self.w3 = w3
        self.confirmations = confirmations
        self._chain_id: int | None = None

    @property
    def chain_id(self) -> int:
        """The node's chain id (asked once, then cached)."""
        if self._chain_id is None:
            with node_errors("eth_chainId"):
                self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    def _rpc(self, method: str, params: Sequence[Any]) -> Any:
        try:
            resp = self.w3.provider.make_request(RPCEndpoint(method), list(params))
        except Exception as exc:
            data = revert_data_from_exception(exc)
            if data is not None:
                raise decode_revert(data) from exc
            raise unreachable(method, exc) from exc
        return self._result(method, resp)

    def _rpc_batch(self, *calls: tuple[str, Sequence[Any]]) -> list[Any]:
        """Several calls in one JSON-RPC batch (one round trip) where the provider can;
        each answer is checked exactly as :meth:`_rpc` checks it, in order."""
        batch = getattr(self.w3.provider, "make_batch_request", None)
        if batch is None or is_eth_tester(self.w3):
            return [self._rpc(*call) for call in calls]
        try:
            resps = batch([(RPCEndpoint(m), list(p)) for m, p in calls])
        except Exception as exc:
            raise unreachable(calls[0][0], exc) from exc
        if not isinstance(resps, list) or len(resps) != len(calls):
            # A node without batch support answers with one error: ask one by one.
            return [self._rpc(*call) for call in calls]
        return [self._result(call[0], resp) for call, resp in zip(calls, resps, strict=True)]

    def _result(self, method: str, resp: Mapping[str, Any]) -> Any:
        error = resp.get("error")
        if error is not None:
            if isinstance(error, Mapping):
                data = revert_data_from_error(error)
                if data is not None and (len(data) >= 4 or is_revert(error)):
                    raise decode_revert(data)
                if is_revert(error):
                    raise decode_revert(b"")
            raise ChainError(f"{method} failed: {error}")
        return resp.get("result")

    def _push(self, raw: bytes) -> Literal["sent", "known", "nonce"]:
        """``eth_sendRawTransaction``: ``sent``, or why the node did not take it anew.

        The one place a node's refusal is classified (see :func:`refusal`); a refusal
        for good raises :class:`TransactionFailed`, a transport failure :class:`ChainError`.
        """
        method = "eth_sendRawTransaction"
        try:
            resp = self.w3.provider.make_request(RPCEndpoint(method), ["0x" + raw.hex()])
        except Exception as exc:
            data = revert_data_from_exception(exc)
            if data is not None:
                raise decode_revert(data) from exc
            raise unreachable(method, exc) from exc
        error = resp.get("error")
        if error is None:
            return "sent"
        kind = refusal(error)
        if kind == "refused":
            message = error.get("message", error) if isinstance(error, Mapping) else error
            raise TransactionFailed(
                f"the node refused the transaction: {message}; it can never be mined as is"
            )
        return kind

    def _block(self, number: int | str) -> Mapping[str, Any]:
        """A block header (``number``, ``hash``, ``timestamp``, ``gasLimit``,
        ``baseFeePerGas``) with int and bytes values; ``{}`` if the node has no such block.

        Plain JSON-RPC on a node: web3's block formatters cost more than the call.
        """
        if is_eth_tester(self.w3):
            with node_errors("eth_getBlockByNumber"):
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
                out[key] = quantity(raw[key])
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

    def _receipt(self, tx_hash: bytes, with_logs: bool) -> Mapping[str, Any] | None:
        """The receipt, or None while the transaction is not mined (one round trip)."""
        if with_logs or is_eth_tester(self.w3):
            # web3's formatting (HexBytes, checksummed addresses) is what the bindings
            # decode events from.
            with node_errors("eth_getTransactionReceipt"):
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
        return quantity(self._rpc("eth_blockNumber", []))

    def chain_time(self) -> int:
        """Timestamp of the latest block (contracts judge expiry by this, not the wall clock)."""
        return int(self._block("latest")["timestamp"])

    def latest_header(self) -> tuple[int, int]:
        """The latest block's number and timestamp, from one read (two reads could
        straddle a new block)."""
        block = self._block("latest")
        return int(block["number"]), int(block["timestamp"])

    def latest_head(self) -> tuple[int, int, bytes]:
        """The latest block's number, timestamp and hash, from one read."""
        block = self._block("latest")
        return int(block["number"]), int(block["timestamp"]), bytes(block["hash"])

    def safe_block(self) -> int:
        """The newest block with the configured number of confirmations."""
        return self.latest_block() - (self.confirmations - 1)
