"""Evidence that a proxy returned a capsule fragment that does not verify (format ``EMEV``).

When a proxy's signed answer carries a cfrag that fails verification, the grantee keeps
the proof: its own signed request, the proxy's signed response, the capsule, the cfrag
and the three public keys it was verified against. Anyone can check it with public data:

1. the request is signed by the policy's grantee (EIP-712 ``ProxyRequest``) and
   addressed to the reported proxy;
2. the proxy signed (:mod:`emrshare.proxy.response`) a serve of that request that names
   this cfrag (by hash, at its position), the block it evaluated and the delegating key it
   used, for this chain and grants contract;
3. the capsule hashes to the request's capsule hash at that position;
4. the verifying key (the patient's, on chain) and receiving key (the grantee's, on
   chain) are the ones the grant was made with;
5. the cfrag does not verify for (capsule, verifying key, delegating key as the proxy
   signed it, receiving key).

An honest proxy's cfrag always verifies (it re-encrypted with a kfrag it verified
against the same keys), so (1)–(5) prove misbehaviour. A reporter cannot swap the cfrag,
the capsule or the delegating key without breaking (2) or (3).

umbral-pre's ``ReencryptionEvidence`` is not used: it is built from a *verified* cfrag
(it proves a correct re-encryption to a contract), so it cannot carry a bad one.

Encoding: the 6-byte header ``EMEV`` 1.0, then a canonical CBOR array of the 17 fields
of :class:`Evidence` in declaration order (addresses 20 raw bytes, the nonce 32 bytes
big-endian, lists of 32-byte hashes). At most 16384 bytes (the registry's limit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import umbral_pre
from eth_utils.address import to_canonical_address, to_checksum_address
from eth_utils.crypto import keccak

from emrshare.crypto._wire import (
    cbor_decode_list,
    cbor_encode,
    expect_bytes,
    expect_int,
    header,
    split_header,
)
from emrshare.errors import EmrShareError, InvalidEvidence, VerificationError, WireFormatError
from emrshare.proxy import _crypto, response
from emrshare.proxy.request import ReencryptRequest, SignedRequest
from emrshare.types import Address, PolicyId

__all__ = ["BRAND", "MAX_EVIDENCE_BYTES", "Evidence"]

BRAND = b"EMEV"
MAJOR, MINOR = 1, 0
#: ``ConsortiumRegistry.MAX_EVIDENCE_BYTES``.
MAX_EVIDENCE_BYTES = 16384
_FIELDS = 17


def _hashes(value: Any, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= 256:
        raise InvalidEvidence(f"{what}: expected a list of 1..256 hashes")
    return tuple(expect_bytes(v, what, 32) for v in value)


@dataclass(frozen=True, slots=True)
class Evidence:
    """A grantee's signed request, a proxy's signed serve of it, and the bad cfrag."""

    chain_id: int
    grants_contract: str
    proxy: str
    policy_id: bytes
    capsule_hashes: tuple[bytes, ...]
    nonce: int
    deadline: int
    request_signature: bytes = field(repr=False)
    block: int
    delegating_pk: bytes
    cfrag_hashes: tuple[bytes, ...] = field(repr=False)
    response_signature: bytes = field(repr=False)
    index: int
    capsule: bytes = field(repr=False)
    cfrag: bytes = field(repr=False)
    verifying_pk: bytes
    receiving_pk: bytes

    @classmethod
    def build(
        cls,
        signed: SignedRequest,
        *,
        block: int,
        delegating_pk: bytes,
        cfrags: tuple[bytes, ...],
        response_signature: bytes,
        index: int,
        verifying_pk: bytes,
        receiving_pk: bytes,
    ) -> Evidence:
        """From the request the client sent and the proxy's signed answer to it."""
        req = signed.request
        return cls(
            chain_id=signed.chain_id,
            grants_contract=to_checksum_address(signed.verifying_contract),
            proxy=to_checksum_address(req.proxy),
            policy_id=bytes(req.policy_id),
            capsule_hashes=tuple(req.capsule_hashes),
            nonce=req.nonce,
            deadline=req.deadline,
            request_signature=signed.signature,
            block=block,
            delegating_pk=delegating_pk,
            cfrag_hashes=tuple(keccak(c) for c in cfrags),
            response_signature=response_signature,
            index=index,
            capsule=signed.capsules[index],
            cfrag=cfrags[index],
            verifying_pk=verifying_pk,
            receiving_pk=receiving_pk,
        )

    @property
    def request(self) -> ReencryptRequest:
        return ReencryptRequest(
            proxy=Address(self.proxy),
            policy_id=PolicyId(self.policy_id),
            capsule_hashes=self.capsule_hashes,
            nonce=self.nonce,
            deadline=self.deadline,
        )

    def __bytes__(self) -> bytes:
        return header(BRAND, MAJOR, MINOR) + cbor_encode(
            [
                self.chain_id,
                to_canonical_address(self.grants_contract),
                to_canonical_address(self.proxy),
                self.policy_id,
                list(self.capsule_hashes),
                self.nonce.to_bytes(32, "big"),
                self.deadline,
                self.request_signature,
                self.block,
                self.delegating_pk,
                list(self.cfrag_hashes),
                self.response_signature,
                self.index,
                self.capsule,
                self.cfrag,
                self.verifying_pk,
                self.receiving_pk,
            ]
        )

    @property
    def evidence_hash(self) -> bytes:
        """``keccak256`` of the encoding: what the registry's report and a suspension cite."""
        return keccak(bytes(self))

    @classmethod
    def read(cls, path: Path) -> Evidence:
        """An evidence file, parsed (:class:`InvalidEvidence` if it is none)."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidEvidence(f"cannot read the evidence file {path}: {exc.strerror}") from exc
        try:
            return cls.from_bytes(data)
        except WireFormatError as exc:
            raise InvalidEvidence(f"{path} is not proxy evidence: {exc}") from exc

    @classmethod
    def from_bytes(cls, data: bytes) -> Evidence:
        """Parse; :class:`WireFormatError` (or :class:`InvalidEvidence`) when malformed."""
        if len(data) > MAX_EVIDENCE_BYTES:
            raise InvalidEvidence(f"evidence is {len(data)} bytes, over {MAX_EVIDENCE_BYTES}")
        _, body = split_header(bytes(data), BRAND, MAJOR, "proxy evidence", max_minor=MINOR)
        f = cbor_decode_list(body, "proxy evidence", _FIELDS)
        return cls(
            chain_id=expect_int(f[0], "chain id"),
            grants_contract=to_checksum_address(expect_bytes(f[1], "grants contract", 20)),
            proxy=to_checksum_address(expect_bytes(f[2], "proxy", 20)),
            policy_id=expect_bytes(f[3], "policy id", 32),
            capsule_hashes=_hashes(f[4], "capsule hashes"),
            nonce=int.from_bytes(expect_bytes(f[5], "nonce", 32), "big"),
            deadline=expect_int(f[6], "deadline"),
            request_signature=expect_bytes(f[7], "request signature", 65),
            block=expect_int(f[8], "block"),
            delegating_pk=expect_bytes(f[9], "delegating key", 33),
            cfrag_hashes=_hashes(f[10], "cfrag hashes"),
            response_signature=expect_bytes(f[11], "response signature", 65),
            index=expect_int(f[12], "index", 0, 255),
            capsule=expect_bytes(f[13], "capsule"),
            cfrag=expect_bytes(f[14], "cfrag"),
            verifying_pk=expect_bytes(f[15], "verifying key", 33),
            receiving_pk=expect_bytes(f[16], "receiving key", 33),
        )

    def check(
        self,
        *,
        proxy: str,
        grantee: str,
        chain_id: int,
        grants_contract: str,
        verifying_pk: bytes,
        receiving_pk: bytes,
    ) -> None:
        """Check that this proves ``proxy`` misbehaved, against public data: the reported
        proxy, the policy's grantee, the deployment's chain and grants contract, and the
        patient's verifying and grantee's receiving keys the grant was made with (on chain).

        Raises :class:`InvalidEvidence` naming the first check that failed.
        """
        if self.chain_id != chain_id or self.grants_contract.lower() != grants_contract.lower():
            raise InvalidEvidence("the evidence is for another chain or grants contract")
        if self.proxy.lower() != proxy.lower():
            raise InvalidEvidence(f"the evidence is about {self.proxy}, not the reported {proxy}")
        req = self.request
        try:
            signer = req.recover(self.request_signature, self.chain_id, self.grants_contract)
        except EmrShareError as exc:
            raise InvalidEvidence("the request signature is malformed") from exc
        if signer.lower() != grantee.lower():
            raise InvalidEvidence("the request is not signed by the policy's grantee")
        if len(self.cfrag_hashes) != len(self.capsule_hashes) or self.index >= len(
            self.capsule_hashes
        ):
            raise InvalidEvidence("the response does not align with the request's capsules")
        if keccak(self.capsule) != self.capsule_hashes[self.index]:
            raise InvalidEvidence("the capsule is not the one the request names")
        if keccak(self.cfrag) != self.cfrag_hashes[self.index]:
            raise InvalidEvidence("the cfrag is not the one the proxy signed")
        digest = response.served_digest(
            response.Bound(
                self.chain_id,
                self.grants_contract,
                self.proxy,
                req.digest(self.chain_id, self.grants_contract),
            ),
            cfrag_hashes=self.cfrag_hashes,
            block=self.block,
            delegating_pk=self.delegating_pk,
        )
        try:
            responder = response.recover_response(digest, self.response_signature)
        except VerificationError as exc:
            raise InvalidEvidence("the response signature is malformed") from exc
        if responder.lower() != self.proxy.lower():
            raise InvalidEvidence("the response is not signed by the reported proxy")
        if self.verifying_pk != verifying_pk or self.receiving_pk != receiving_pk:
            raise InvalidEvidence(
                "the verifying or receiving key is not the one the grant was made with"
            )
        try:
            capsule = umbral_pre.Capsule.from_bytes(self.capsule)
        except Exception as exc:
            raise InvalidEvidence("the capsule does not parse") from exc
        try:
            _crypto.verify_cfrag(
                self.cfrag,
                capsule,
                verifying_pk=self.verifying_pk,
                delegating_pk=self.delegating_pk,
                receiving_pk=self.receiving_pk,
            )
        except EmrShareError:
            return  # signed by the proxy, and it does not verify: misbehaviour proven
        raise InvalidEvidence("the cfrag verifies: the proxy answered correctly")
