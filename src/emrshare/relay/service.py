"""The relay's decisions, without HTTP: parse a body, check the target, ``eth_call``
the forwarder, apply the limits, send ``execute`` from the relayer's key.

:meth:`RelayService.handle` returns an :class:`Answer` (status and JSON body) for every
input; nothing a client sends makes it raise. Log lines name the patient (shortened),
the nonce, the target and the outcome, never the signature or the calldata.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from web3 import Web3

from emrshare._addresses import checksum
from emrshare.chain import ChainClient, Deployment, ForwardRequest
from emrshare.chain.bindings.forwarder import PatientForwarder
from emrshare.errors import ChainError, ContractRevert
from emrshare.relay.limits import InFlight, TokenBuckets
from emrshare.types import Address

__all__ = ["RELAYED_CONTRACTS", "Answer", "RelayService", "parse_body"]

log = logging.getLogger("emrshare.relay")

#: The deployment's contracts a relay sends patient operations to (Emergency: a patient's
#: opt-in, withdrawal and early end of a declaration, issue 15; Claims: a patient's consent
#: to a claim, issue 16: filing and adjudicating check the direct sender, never relayed).
RELAYED_CONTRACTS = (
    "PatientProfiles",
    "RecordIndex",
    "Grants",
    "PatientForwarder",
    "Emergency",
    "Claims",
)

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_UINT = re.compile(r"[0-9]{1,78}")
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_FIELDS = ("patient", "to", "nonce", "deadline", "chain_id", "data")


class BadRequest(ValueError):
    """A body that is not a well-formed relay request (the message says what)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: ``status``, JSON ``body`` and extra ``headers``."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def refusal(
        cls,
        status: int,
        reason: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Answer:
        """A refusal: ``{"error": reason, "detail": detail, **extra}``."""
        return cls(status, {"error": reason, "detail": detail, **(extra or {})}, headers or {})


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise BadRequest(f"the body repeats the key {key[:40]!r}")
        seen[key] = value
    return seen


def _no_number(text: str) -> Any:
    raise BadRequest("the body holds a number; every relay field is a string")


def parse_body(body: bytes, *, max_data: int) -> tuple[ForwardRequest, bytes]:
    """The request and signature a body carries; :class:`BadRequest` if it is not
    exactly ``{"request": {six string fields}, "signature": "0x…65 bytes"}``."""
    if body.count(b"{") + body.count(b"[") > 4:
        raise BadRequest("the body nests more than a relay request does")
    try:
        data = json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_strict_object,
            parse_int=_no_number,
            parse_float=_no_number,
            parse_constant=_no_number,
        )
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8 (invalid byte at offset {exc.start})") from exc
    except ValueError as exc:  # BadRequest is one too
        if isinstance(exc, BadRequest):
            raise
        raise BadRequest(f"the body is not JSON ({str(exc)[:80]})") from exc
    if not isinstance(data, dict) or set(data) != {"request", "signature"}:
        raise BadRequest('the body is an object with exactly "request" and "signature"')
    req, sig = data["request"], data["signature"]
    if not isinstance(req, dict) or set(req) != set(_FIELDS):
        raise BadRequest(f"request is an object with exactly the fields {', '.join(_FIELDS)}")
    for name in _FIELDS:
        if not isinstance(req[name], str):
            raise BadRequest(f"request.{name} is a string, not {type(req[name]).__name__}")
    for name in ("patient", "to"):
        if not _ADDRESS.fullmatch(req[name]):
            raise BadRequest(f"request.{name} is a 0x-prefixed 20-byte hex address")
    for name in ("nonce", "deadline", "chain_id"):
        if not _UINT.fullmatch(req[name]) or int(req[name]) >= 2**256:
            raise BadRequest(f"request.{name} is a uint256 as a decimal string")
    if len(req["data"]) > 2 + 2 * max_data:
        raise BadRequest(f"request.data is over {max_data} bytes; a patient operation is less")
    if not _HEX.fullmatch(req["data"]) or len(req["data"]) < 10:
        raise BadRequest("request.data is 0x-prefixed hex, at least a 4-byte selector")
    if not isinstance(sig, str) or not re.fullmatch(r"0x[0-9a-fA-F]{130}", sig):
        raise BadRequest("signature is a 65-byte signature as 0x-prefixed hex")
    request = ForwardRequest(
        patient=Address(checksum(req["patient"])),
        to=Address(checksum(req["to"])),
        nonce=int(req["nonce"]),
        deadline=int(req["deadline"]),
        chain_id=int(req["chain_id"]),
        data=bytes.fromhex(req["data"][2:]),
    )
    return request, bytes.fromhex(sig[2:])


def _plain(value: Any) -> Any:
    """A decoded ABI value as JSON (bytes as 0x hex, tuples as lists)."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


class RelayService:
    """Relays signed patient operations to the deployment's patient contracts, paying
    the gas from ``client``'s key: ``rate`` operations a minute per patient (``burst``
    at once) and ``global_rate`` a minute for all patients together. ``fault`` is a
    testing hook (see :data:`emrshare.relay.config.FAULTS`)."""

    def __init__(
        self,
        client: ChainClient,
        deployment: Deployment,
        *,
        rate: float = 30.0,
        burst: int = 10,
        global_rate: float = 600.0,
        max_in_flight: int = 8,
        max_data: int = 128 * 1024,
        fault: str | None = None,
    ) -> None:
        if client.address is None:
            raise ValueError("a relay needs a client with a funded key")
        self.client = client
        self.relayer = client.address
        self.deployment = deployment
        self.forwarder = PatientForwarder(client, deployment.address_of("PatientForwarder"))
        self.targets = {checksum(deployment.address_of(name)): name for name in RELAYED_CONTRACTS}
        self.buckets = TokenBuckets(rate, burst)
        # Fresh keys cost nothing, so a bucket per patient does not bound the relay's
        # spending: one bucket for everyone does (holding 10 seconds' worth, at least a
        # patient's burst).
        self.all_patients = TokenBuckets(global_rate, max(burst, math.ceil(global_rate / 6)))
        self.in_flight = InFlight(max_in_flight)
        self.max_data = max_data
        self.fault = fault
        self._send_lock = threading.Lock()  # one send at a time: one nonce sequence
        self.relayed = 0

    def __repr__(self) -> str:
        return f"RelayService(relayer={self.client.address})"

    def health(self) -> Answer:
        try:
            balance = int(self.client.w3.eth.get_balance(Web3.to_checksum_address(self.relayer)))
            chain_id = self.client.chain_id
        except Exception as exc:  # web3 raises several transport errors
            return _unavailable(exc)
        return Answer(
            200,
            {
                "chain_id": chain_id,
                "forwarder": self.forwarder.address,
                "relayer": self.relayer,
                "balance": str(balance),
                "relayed": self.relayed,
            },
        )

    def handle(self, body: bytes) -> Answer:
        """The answer to one ``POST /v1/relay`` body."""
        with self.in_flight.slot() as got:
            if not got:
                return Answer.refusal(
                    429,
                    "rate_limited",
                    f"the relay is handling {self.in_flight.limit} requests; retry shortly",
                    headers={"Retry-After": "1"},
                )
            try:
                request, signature = parse_body(body, max_data=self.max_data)
            except BadRequest as exc:
                return Answer.refusal(400, "bad_request", str(exc))
            except ValueError as exc:  # ForwardRequest's own checks
                return Answer.refusal(400, "bad_request", str(exc)[:200])
            return self._relay(request, signature)

    def _relay(self, request: ForwardRequest, signature: bytes) -> Answer:
        who = f"patient {_short(request.patient)} nonce {request.nonce}"
        target = self.targets.get(checksum(request.to))
        if target is None:
            log.info("refused %s: target %s is not relayed here", who, _short(request.to))
            return Answer.refusal(
                403,
                "not_relayed_here",
                f"this relay sends only to the deployment's {', '.join(RELAYED_CONTRACTS)}",
            )
        data = self.forwarder.execute_data(request, signature)
        try:
            self.client.call_raw(self.forwarder.address, data)
        except ContractRevert as exc:
            log.info("refused %s to %s: would revert with %s", who, target, exc.name)
            return _would_revert(exc)
        except ChainError as exc:
            return _unavailable(exc)
        wait, whose = self.buckets.take(request.patient), "this patient's"
        if wait == 0:
            wait, whose = self.all_patients.take(""), "all patients'"
            if wait > 0:
                self.buckets.give_back(request.patient)
        if wait > 0:
            log.info("refused %s: rate limited (%s operations)", who, whose)
            after = self.buckets.retry_after(wait)
            return Answer.refusal(
                429,
                "rate_limited",
                f"the relay limits {whose} operations; retry in {after} s",
                headers={"Retry-After": str(after)},
            )
        return self._send(request, signature, who, target)

    def _send(self, request: ForwardRequest, signature: bytes, who: str, target: str) -> Answer:
        if self.fault == "lie":
            log.warning("FAULT INJECTION (lie): answering %s without sending", who)
            return Answer(200, {"tx_hash": "0x" + os.urandom(32).hex()})
        if self.fault == "exit-before-send":
            log.warning("FAULT INJECTION (exit-before-send): dying before sending %s", who)
            logging.shutdown()
            os._exit(17)
        with self._send_lock:
            try:
                receipt = self.forwarder.execute(request, signature)
            except ContractRevert as exc:  # raced: another relayer, another device
                log.info("refused %s to %s: reverted at send with %s", who, target, exc.name)
                return _would_revert(exc)
            except ChainError as exc:
                return _unavailable(exc, "could not send its transaction (is its key funded?)")
            self.relayed += 1
        log.info("relayed %s to %s in 0x%s", who, target, receipt.tx_hash.hex())
        if self.fault == "exit-after-send":
            log.warning("FAULT INJECTION (exit-after-send): dying before answering %s", who)
            logging.shutdown()
            os._exit(17)
        return Answer(200, {"tx_hash": "0x" + receipt.tx_hash.hex()})


def _would_revert(exc: ContractRevert) -> Answer:
    args = {k: _plain(v) for k, v in exc.args_by_name.items()}
    return Answer.refusal(
        409,
        "would_revert",
        f"the forwarder refuses this request: {exc.name}",
        extra={"revert": {"name": exc.name, "args": args}},
    )


def _unavailable(exc: BaseException, what: str = "cannot reach its chain node") -> Answer:
    log.warning("chain unavailable: the relay %s (%s)", what, type(exc).__name__)
    return Answer.refusal(
        503,
        "chain_unavailable",
        f"the relay {what}; retry later or use another relay",
        headers={"Retry-After": "5"},
    )
