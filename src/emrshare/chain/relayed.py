"""Patient writes through the ``PatientForwarder``: a client whose every transaction is a
signed :class:`~emrshare.chain.forwarding.ForwardRequest`, handed to a
:class:`Submitter` (a relay service, or a funded key of one's own) and then *found on
chain*, never taken on the submitter's word.

Exactly once: a request carries the patient's next forwarder nonce, so it runs at most
once. After handing it over, the client waits for that nonce to be used and checks that
the transaction that used it carried this very request (decoded from its input): then the
operation happened, once. If the nonce is unused, the same signed request is handed over
again (a relay that died half way, a transaction a node dropped). If another request of
the patient used the nonce (another device, a guardian), this one did not run, and it is
signed again under the next nonce.

"This very request" means the same patient, target, calldata, nonce and chain: an
earlier signing of the same operation under the same nonce (one a relay kept and sent
late, with another deadline) is the operation having happened, not a reason to sign it
once more. Nothing a submitter says is believed: a claimed revert is checked with an
``eth_call`` of the client's own, a claimed transaction hash is ignored.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

from eth_account import Account
from hexbytes import HexBytes

from emrshare._addresses import checksum
from emrshare.chain._rpc import is_eth_tester
from emrshare.chain.bindings.forwarder import PatientForwarder
from emrshare.chain.client import ChainClient, Receipt
from emrshare.chain.events import Relayed
from emrshare.chain.forwarding import ForwardRequest
from emrshare.errors import ChainError, ConfigurationError, ContractRevert, RelayError
from emrshare.types import Address

__all__ = ["DirectSubmitter", "ForwardingClient", "Submitter"]

#: How long a signed request stays valid (chain time): a relay may hold it that long.
DEFAULT_TTL = 900
#: Refusals a relay gives before doing anything, which handing the same request to it
#: again at once does not change: looked for on chain once, then raised.
_FINAL = frozenset({"rate_limited", "bad_request", "not_relayed_here"})
#: Reverts that mean "ran already" or "too late": look on chain.
_LOOK = frozenset({"PatientForwarder_NonceUsed", "PatientForwarder_Expired"})


class Submitter(Protocol):
    """Hands a signed request to the chain. It may return the transaction hash it sent,
    a hint the client never trusts; it raises :class:`RelayError` (or
    :class:`ContractRevert` for a request that would revert) when it could not."""

    def submit(self, request: ForwardRequest, signature: bytes) -> bytes | None: ...


class DirectSubmitter:
    """Sends ``execute`` with a funded key of one's own (a patient or guardian who holds
    ETH, or a test's relayer account)."""

    def __init__(self, client: ChainClient, forwarder: str) -> None:
        self._forwarder = PatientForwarder(client, forwarder)

    def __repr__(self) -> str:
        return f"DirectSubmitter({self._forwarder.client.address})"

    def submit(self, request: ForwardRequest, signature: bytes) -> bytes | None:
        return self._forwarder.execute(request, signature).tx_hash


class ForwardingClient(ChainClient):
    """A :class:`ChainClient` whose sends are patient operations through the forwarder.

    ``reader`` is the node connection (and settings) to read and wait through;
    ``signing_key`` signs for ``patient`` (the patient's own key, a rotated-to key, or a
    guardian's); ``submitter`` brings the signed request on chain. ``address`` is the
    patient: contracts see the patient as the sender.

    ``attempts`` bounds the hand-overs of one signed request (and the signings of one
    operation); ``land_timeout`` is how long to wait for the request on chain after a
    submitter said it sent it (default: ``reader``'s receipt timeout), ``recheck_wait``
    after a hand-over failed. So a submitter that lies is found out within about
    ``attempts × land_timeout`` seconds. A relay's ``rate_limited`` with ``Retry-After`` is
    waited out, up to ``rate_wait`` seconds per hand-over.
    """

    def __init__(
        self,
        reader: ChainClient,
        signing_key: bytes,
        patient: str,
        forwarder: str,
        submitter: Submitter,
        *,
        ttl: int = DEFAULT_TTL,
        attempts: int = 4,
        land_timeout: float | None = None,
        recheck_wait: float = 2.0,
        rate_wait: float = 30.0,
    ) -> None:
        super().__init__(
            reader.w3,
            None,
            confirmations=reader.confirmations,
            receipt_timeout=reader.receipt_timeout,
            poll_interval=reader.poll_interval,
            gas_multiplier=reader.gas_multiplier,
        )
        self._key = signing_key
        self._reader = reader
        self.signer = Address(checksum(Account.from_key(signing_key).address))
        self.patient = Address(checksum(patient))
        self.forwarder = PatientForwarder(self, forwarder)
        self.submitter = submitter
        self.ttl = ttl
        self.attempts = attempts
        self.land_timeout = reader.receipt_timeout if land_timeout is None else land_timeout
        self.recheck_wait = recheck_wait
        self.rate_wait = rate_wait
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ForwardingClient(patient={self.patient}, signer={self.signer})"

    @property
    def address(self) -> str | None:
        """The patient the operations act for."""
        return self.patient

    def with_key(self, private_key: bytes) -> ChainClient:
        """A direct client on the same connection and settings, signing with that key."""
        return self._reader.with_key(private_key)

    def call_raw(self, to: str, data: bytes, block: int | str = "latest") -> bytes:
        """``eth_call`` from the patient; on the in-process py-evm chain, which charges
        calls as transactions and the patient holds no ETH, from the reader."""
        if is_eth_tester(self.w3):
            return self._reader.call_raw(to, data, block)
        return super().call_raw(to, data, block)

    def account_nonce(self, block: int | str = "latest") -> int:
        """The patient's next forwarder nonce (the patient sends no transactions itself)."""
        return self.forwarder.nonce(self.patient, block=block if isinstance(block, int) else None)

    def sign_request(self, to: str, data: bytes) -> tuple[ForwardRequest, bytes]:
        """A request for ``data`` at ``to`` under the patient's next nonce, and its
        signature."""
        request = ForwardRequest(
            patient=self.patient,
            to=Address(checksum(to)),
            nonce=self.forwarder.nonce(self.patient),
            deadline=self.chain_time() + self.ttl,
            chain_id=self.chain_id,
            data=data,
        )
        return request, request.sign(self._key, self.forwarder.address)

    def send(
        self,
        to: str,
        data: bytes = b"",
        *,
        gas: int | None = None,
        value: int = 0,
        with_logs: bool = True,
    ) -> Receipt:
        """Sign ``data`` for ``to`` as a patient operation, have it submitted, and return
        the receipt of the transaction that ran it (found on chain)."""
        if value:
            raise ConfigurationError("a relayed patient operation cannot transfer ETH")
        with self._lock:
            for _ in range(self.attempts):
                request, signature = self.sign_request(to, data)
                # A request that would revert raises the target's own error here, before
                # anything is handed over.
                self.call_raw(
                    self.forwarder.address, self.forwarder.execute_data(request, signature)
                )
                receipt = self._bring_on_chain(request, signature, with_logs)
                if receipt is not None:
                    return receipt
            raise RelayError(
                "nonce_raced",
                f"another device or guardian of {self.patient} kept using the forwarder "
                f"nonce this operation needed ({self.attempts} tries); retry",
            )

    def _bring_on_chain(
        self, request: ForwardRequest, signature: bytes, with_logs: bool
    ) -> Receipt | None:
        """The receipt of the transaction that ran ``request``; ``None`` if another
        request used its nonce (sign again)."""
        since = self.latest_block()
        last: Exception | None = None
        for attempt in range(self.attempts):
            final = False
            try:
                self._submit(request, signature)
                last = None
            except ContractRevert as exc:
                last = exc if exc.name in _LOOK else self._own_check(request, signature, exc)
            except RelayError as exc:
                last, final = exc, exc.reason in _FINAL
            except ChainError as exc:
                last = exc  # the relay died or lied: look on chain before anything else
            wait = self.land_timeout if last is None else self.recheck_wait
            found = self._landed(request, since, wait=wait)
            if found is not None:
                return found if found is not False else None
            if final or self.chain_time() > request.deadline:
                break
            time.sleep(min(0.2 * (attempt + 1), 1.0))
        reason = "not_landed" if last is None else getattr(last, "reason", "refused")
        detail = f": {last}" if last is not None else ""
        raise RelayError(
            reason,
            f"the patient operation (forwarder nonce {request.nonce}) is not on chain after "
            f"{attempt + 1} hand-over(s){detail}; the same operation again cannot run twice "
            "(a kept copy of this request is valid until its deadline, and counts as it)",
        )

    def _submit(self, request: ForwardRequest, signature: bytes) -> None:
        """Hand the request over; a relay that says "not so fast" (``rate_limited`` with
        a ``Retry-After``) is waited out and asked again, up to :attr:`rate_wait` seconds
        in all per hand-over, then its refusal stands."""
        budget = self.rate_wait
        while True:
            try:
                self.submitter.submit(request, signature)
                return
            except RelayError as exc:
                pause = exc.retry_after
                if exc.reason != "rate_limited" or pause is None or pause > budget:
                    raise
                budget -= pause
                time.sleep(pause)

    def _own_check(
        self, request: ForwardRequest, signature: bytes, claimed: ContractRevert
    ) -> RelayError:
        """A submitter said ``request`` would revert: raise the revert if our own
        ``eth_call`` sees it too; else the submitter's word is worth nothing (a
        :class:`RelayError` to record, and the hand-over is retried)."""
        self.call_raw(self.forwarder.address, self.forwarder.execute_data(request, signature))
        return RelayError(
            "refused",
            f"the submitter said the request reverts ({claimed.name}), but it does not",
        )

    def _landed(self, request: ForwardRequest, since: int, *, wait: float) -> Any:
        """The receipt that ran ``request``; ``False`` if another request used its
        nonce; ``None`` if the nonce is still unused after ``wait`` seconds."""
        deadline = time.monotonic() + wait
        pause = 0.005
        while self.forwarder.nonce(self.patient) <= request.nonce:
            if time.monotonic() >= deadline:
                return None
            time.sleep(pause)
            pause = min(pause * 2, self.poll_interval)
        for ev in self.forwarder.events(
            Relayed, patient=self.patient, from_block=since, to_block=self.latest_block()
        ):
            if ev.nonce != request.nonce:
                continue
            if not self._carries(ev.tx_hash, request):
                return False
            receipt = self._wait(ev.tx_hash, with_logs=True)
            return Receipt(
                tx_hash=ev.tx_hash,
                block_number=int(receipt["blockNumber"]),
                gas_used=int(receipt["gasUsed"]),
                logs=tuple(receipt["logs"]),
            )
        return False

    def _carries(self, tx_hash: bytes, request: ForwardRequest) -> bool:
        """Whether transaction ``tx_hash`` called ``execute`` with ``request``."""
        try:
            tx: Mapping[str, Any] = self.w3.eth.get_transaction(HexBytes(tx_hash))
        except Exception as exc:  # web3 raises several types for a missing transaction
            raise ChainError(f"cannot read transaction 0x{tx_hash.hex()}: {exc}") from exc
        sent = self.forwarder.decode_execute(bytes(tx["input"]))
        # Everything but the deadline: the same operation signed again (a retry) counts.
        return (
            sent is not None and dataclasses.replace(sent[0], deadline=request.deadline) == request
        )
