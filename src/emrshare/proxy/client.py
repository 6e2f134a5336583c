"""The threshold client: asks the N proxies of a policy and keeps the first M verified answers.

Example::

    async with ThresholdClient(grantee_eth_key, chain_id=31337,
                               grants_contract=deployment.addresses["Grants"]) as client:
        result = await client.reencrypt(policy, [capsule], deadline=chain_now + 300)
    cfrags = result.cfrags[0]          # M verified cfrags for the first capsule

All N proxies are asked concurrently (one nonce per read); the client stops once M
proxies returned fragments that verify for every capsule, and tolerates N−M proxies that
are down, slow, refuse, or return bad fragments, each reported with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, NamedTuple

import httpx
import umbral_pre
from eth_account import Account

from emrshare._files import loads_json
from emrshare.crypto.grants import GranteeMap
from emrshare.errors import (
    AccessDenied,
    ConfigurationError,
    GrantExpired,
    GrantRevoked,
    NotGrantee,
    Unavailable,
    VerificationError,
    WireFormatError,
)
from emrshare.proxy import _crypto, response
from emrshare.proxy.evidence import Evidence
from emrshare.proxy.request import ReencryptRequest, RefusalReason, SignedRequest, capsule_hash

__all__ = [
    "FailureKind",
    "PolicyKeys",
    "ProxyEndpoint",
    "ProxyFailure",
    "ThresholdClient",
    "ThresholdPolicy",
    "ThresholdResult",
]

FailureKind = Literal["down", "timeout", "refused", "bad_fragment", "bad_response"]
#: Signed requests a client keeps for retries (each well under 1 KiB with its capsules).
_SIGNED_KEPT = 4096


class _Prepared(NamedTuple):
    """A signed request kept for retries, with its JSON body and the digest its answer
    is bound to."""

    signed: SignedRequest
    body: dict[str, Any]
    digest: bytes


@dataclass(frozen=True, slots=True)
class ProxyEndpoint:
    """One proxy: its Ethereum address (as listed in the grant) and its base URL."""

    address: str
    url: str


@dataclass(frozen=True, slots=True)
class PolicyKeys:
    """The public keys a cfrag is verified against (from the grantee's sealed map).

    ``verifying_pk``: the patient's kfrag-verifying key; ``delegating_pk``: the category
    (epoch) public key; ``receiving_pk``: the grantee's Umbral receiving key.
    """

    verifying_pk: bytes
    delegating_pk: bytes
    receiving_pk: bytes


@dataclass(frozen=True, slots=True)
class ThresholdPolicy:
    """What the client needs to know of a grant."""

    policy_id: bytes
    threshold: int
    proxies: tuple[ProxyEndpoint, ...]
    keys: PolicyKeys

    @classmethod
    def from_grantee_map(
        cls,
        grantee_map: GranteeMap,
        proxies: Sequence[ProxyEndpoint],
        receiving_public_key: bytes,
    ) -> ThresholdPolicy:
        """From an opened grantee map, the grant's proxies (in grant order, with their
        registered endpoints) and the grantee's own receiving key (33 bytes)."""
        return cls(
            policy_id=bytes(grantee_map.policy_id),
            threshold=grantee_map.threshold,
            proxies=tuple(proxies),
            keys=PolicyKeys(
                verifying_pk=grantee_map.patient_verifying_key_bytes,
                delegating_pk=grantee_map.category_public_key_bytes,
                receiving_pk=receiving_public_key,
            ),
        )


@dataclass(frozen=True, slots=True)
class ProxyFailure:
    """Why one proxy did not contribute. ``reason`` is the refusal reason when refused."""

    proxy: str
    url: str
    kind: FailureKind
    reason: str
    message: str = ""

    def describe(self) -> str:
        return f"{self.proxy} ({self.url}): {self.kind}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    """M verified cfrags per capsule (aligned with the capsules asked for).

    ``evidence``: proof against each proxy whose signed cfrag failed verification
    (:class:`~emrshare.proxy.evidence.Evidence`), to report to the consortium.
    """

    cfrags: tuple[tuple[umbral_pre.VerifiedCapsuleFrag, ...], ...] = field(repr=False)
    served_by: tuple[str, ...]
    blocks: dict[str, int]
    failures: tuple[ProxyFailure, ...]
    evidence: tuple[Evidence, ...] = ()


class _Failed(Exception):
    def __init__(self, failure: ProxyFailure, evidence: Evidence | None = None) -> None:
        self.failure = failure
        self.evidence = evidence


class ThresholdClient:
    """Async client for the proxies of one chain and grants contract.

    ``timeout`` bounds each proxy's answer (seconds); ``connect_timeout`` bounds reaching
    it. ``transport`` lets an embedding application pass its own httpx transport.
    """

    def __init__(
        self,
        grantee_key: bytes,
        *,
        chain_id: int,
        grants_contract: str,
        timeout: float = 10.0,
        connect_timeout: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._key = grantee_key
        self.address = str(Account.from_key(grantee_key).address)
        self.chain_id = chain_id
        self.grants_contract = grants_contract
        self._http_options: dict[str, Any] = {
            "timeout": httpx.Timeout(timeout, connect=connect_timeout),
            "transport": transport,
            "limits": httpx.Limits(max_connections=200, max_keepalive_connections=50),
        }
        self._http = httpx.AsyncClient(**self._http_options)
        # One signed request per (proxy, policy, capsules, deadline): a retry within one
        # read sends the same request, which a proxy answers again without logging twice.
        # One nonce per read for all its proxies: the patient's audit groups a read by it.
        # Both bounded (oldest out): a long-lived client reads on.
        self._signed: OrderedDict[tuple[str, bytes, tuple[bytes, ...], int], _Prepared]
        self._signed = OrderedDict()
        self._nonces: OrderedDict[tuple[bytes, tuple[bytes, ...], int], int] = OrderedDict()
        #: Evidence gathered by every call so far (also on calls that raised).
        self.evidence: list[Evidence] = []

    def __repr__(self) -> str:
        return f"ThresholdClient(address={self.address!r}, chain_id={self.chain_id})"

    async def __aenter__(self) -> ThresholdClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def reencrypt(
        self,
        policy: ThresholdPolicy,
        capsules: Sequence[umbral_pre.Capsule],
        *,
        deadline: int,
    ) -> ThresholdResult:
        """Collect ``policy.threshold`` verified cfrags for every capsule.

        ``deadline`` is chain time (unix seconds) after which proxies refuse the request.
        Raises :class:`AccessDenied` (or :class:`GrantRevoked`, :class:`GrantExpired`,
        :class:`NotGrantee` when the proxies agree on why) if proxies refused, and
        :class:`Unavailable` if too few answered; both carry each proxy's reason.
        """
        return await self._reencrypt(self._http, policy, capsules, deadline)

    async def _reencrypt(
        self,
        http: httpx.AsyncClient,
        policy: ThresholdPolicy,
        capsules: Sequence[umbral_pre.Capsule],
        deadline: int,
    ) -> ThresholdResult:
        if not capsules:
            raise ValueError("reencrypt needs at least one capsule")
        capsule_bytes = [bytes(c) for c in capsules]
        hashes = [capsule_hash(b) for b in capsule_bytes]
        tasks = {
            asyncio.create_task(
                self._ask(http, p, policy, list(capsules), capsule_bytes, hashes, deadline)
            ): p
            for p in policy.proxies
        }
        good: list[tuple[ProxyEndpoint, int, list[umbral_pre.VerifiedCapsuleFrag]]] = []
        failures: list[ProxyFailure] = []
        evidence: list[Evidence] = []
        seen: set[bytes] = set()
        answered = 0
        try:
            for fut in asyncio.as_completed(tasks):
                answered += 1
                try:
                    proxy, block, cfrags = await fut
                except _Failed as f:
                    failures.append(f.failure)
                    if f.evidence is not None:
                        evidence.append(f.evidence)
                        self.evidence.append(f.evidence)
                    if f.failure.kind == "refused" and (
                        len(good) + len(tasks) - answered < policy.threshold
                    ):
                        break  # refusals put the threshold out of reach: stop asking
                    continue
                # A proxy echoing another proxy's fragment adds nothing: combining needs
                # M distinct fragments.
                keys = {bytes(c) for c in cfrags}
                if keys & seen:
                    failures.append(
                        ProxyFailure(proxy.address, proxy.url, "bad_fragment", "duplicate_fragment")
                    )
                    continue
                seen |= keys
                good.append((proxy, block, cfrags))
                if len(good) >= policy.threshold:
                    break
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if len(good) < policy.threshold:
            raise _threshold_error(policy, len(good), failures, len(tasks) - answered)
        good = good[: policy.threshold]
        per_capsule = tuple(tuple(g[2][i] for g in good) for i in range(len(capsules)))
        return ThresholdResult(
            cfrags=per_capsule,
            served_by=tuple(g[0].address for g in good),
            blocks={g[0].address: g[1] for g in good},
            failures=tuple(failures),
            evidence=tuple(evidence),
        )

    async def _ask(
        self,
        http: httpx.AsyncClient,
        proxy: ProxyEndpoint,
        policy: ThresholdPolicy,
        capsules: list[umbral_pre.Capsule],
        capsule_bytes: list[bytes],
        hashes: list[bytes],
        deadline: int,
    ) -> tuple[ProxyEndpoint, int, list[umbral_pre.VerifiedCapsuleFrag]]:
        signed, body_json, request_digest, path = self._prepare(
            proxy, policy, hashes, capsule_bytes, deadline
        )

        def fail(
            kind: FailureKind, reason: str, message: str = "", evidence: Evidence | None = None
        ) -> _Failed:
            return _Failed(ProxyFailure(proxy.address, proxy.url, kind, reason, message), evidence)

        def signed_by_proxy(digest: bytes, signature: Any) -> bool:
            try:
                sig = bytes.fromhex(str(signature).removeprefix("0x"))
                return response.recover_response(digest, sig).lower() == proxy.address.lower()
            except (ValueError, VerificationError):
                return False

        common = response.Bound(self.chain_id, self.grants_contract, proxy.address, request_digest)
        try:
            resp = await http.post(proxy.url.rstrip("/") + path, json=body_json)
        except httpx.TimeoutException as exc:
            raise fail("timeout", "timeout", type(exc).__name__) from exc
        except httpx.HTTPError as exc:
            raise fail("down", "unreachable", type(exc).__name__) from exc
        try:
            body: Any = loads_json(resp.text)
        except ValueError as exc:
            raise fail("bad_response", f"http_{resp.status_code}", "not JSON") from exc
        if resp.status_code != 200:
            if isinstance(body, dict) and isinstance(body.get("refused"), str):
                reason = body["refused"]
                block_raw = body.get("block")
                digest = response.refused_digest(
                    common, reason=reason, block=block_raw if isinstance(block_raw, int) else 0
                )
                # An unsigned refusal is no one's word: it counts as no answer.
                if not signed_by_proxy(digest, body.get("signature")):
                    raise fail("bad_response", "unsigned_refusal", reason)
                raise fail("refused", reason, str(body.get("message", "")))
            raise fail("bad_response", f"http_{resp.status_code}")
        try:
            raw = tuple(bytes.fromhex(str(c).removeprefix("0x")) for c in body["cfrags"])
            block = int(body["block"])
            delegating_pk = bytes.fromhex(str(body["delegating_pk"]).removeprefix("0x"))
            signature_hex = body["signature"]
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise fail("bad_response", "malformed_body") from exc
        digest = response.served_digest(
            common,
            cfrag_hashes=[capsule_hash(c) for c in raw],
            block=block,
            delegating_pk=delegating_pk,
        )
        if not signed_by_proxy(digest, signature_hex):
            raise fail("bad_response", "bad_response_signature")
        if len(raw) != len(capsules):
            raise fail("bad_fragment", "wrong_count")
        verified = []
        for i, (cfrag, capsule) in enumerate(zip(raw, capsules, strict=True)):
            try:
                verified.append(
                    _crypto.verify_cfrag(
                        cfrag,
                        capsule,
                        verifying_pk=policy.keys.verifying_pk,
                        delegating_pk=delegating_pk,
                        receiving_pk=policy.keys.receiving_pk,
                    )
                )
            except (VerificationError, WireFormatError) as exc:
                if signed is None:  # no evidence format for this kind of request
                    raise fail("bad_fragment", "cfrag_verification_failed") from exc
                # Signed by the proxy and wrong for the keys it signed: proof.
                proof = Evidence.build(
                    signed,
                    block=block,
                    delegating_pk=delegating_pk,
                    cfrags=raw,
                    response_signature=bytes.fromhex(str(signature_hex).removeprefix("0x")),
                    index=i,
                    verifying_pk=policy.keys.verifying_pk,
                    receiving_pk=policy.keys.receiving_pk,
                )
                raise fail("bad_fragment", "cfrag_verification_failed", evidence=proof) from exc
        if delegating_pk != policy.keys.delegating_pk:
            # Verifies, but for another delegating key than the grant's: not usable.
            raise fail("bad_fragment", "wrong_delegating_key")
        return proxy, block, verified

    def _prepare(
        self,
        proxy: ProxyEndpoint,
        policy: ThresholdPolicy,
        hashes: list[bytes],
        capsule_bytes: list[bytes],
        deadline: int,
    ) -> tuple[SignedRequest | None, dict[str, Any], bytes, str]:
        """The signed request for ``proxy``: (the request, or None for a kind that has no
        evidence format; its JSON body; its digest the answer is bound to; the route)."""
        key = (proxy.address.lower(), bytes(policy.policy_id), tuple(hashes), deadline)
        kept = self._signed.get(key)
        if kept is None:
            nonce = self._nonce(key[1:])
            req = ReencryptRequest.new(proxy.address, key[1], hashes, deadline, nonce=nonce)
            # The digest once: signed here, and the proxy's answer is bound to it.
            digest = req.digest(self.chain_id, self.grants_contract)
            signed = SignedRequest(
                request=req,
                chain_id=self.chain_id,
                verifying_contract=self.grants_contract,  # type: ignore[arg-type]
                signature=bytes(Account.unsafe_sign_hash(digest, self._key).signature),
                capsules=tuple(capsule_bytes),
            )
            kept = self._signed[key] = _Prepared(signed, signed.to_json(), digest)
            while len(self._signed) > _SIGNED_KEPT:
                self._signed.popitem(last=False)
        signed, body, digest = kept
        return signed, body, digest, "/v1/reencrypt"

    def _nonce(self, key: tuple[bytes, tuple[bytes, ...], int]) -> int:
        """One nonce per read (policy, capsules, deadline) for all its proxies."""
        nonce = self._nonces.setdefault(key, secrets.randbits(256))
        while len(self._nonces) > _SIGNED_KEPT:
            self._nonces.popitem(last=False)
        return nonce

    def reencrypt_sync(
        self,
        policy: ThresholdPolicy,
        capsules: Sequence[umbral_pre.Capsule],
        *,
        deadline: int,
    ) -> ThresholdResult:
        """Blocking form of :meth:`reencrypt` for synchronous callers (not inside a loop).

        May be called again (after :class:`Unavailable`): each call runs its own event
        loop and connections. In a running loop: :class:`ConfigurationError` (await it).
        """
        with contextlib.suppress(RuntimeError):  # raised when no loop runs: go ahead
            asyncio.get_running_loop()
            raise ConfigurationError(
                "ThresholdClient.reencrypt_sync blocks, and this thread runs an event loop "
                "(FastAPI, Jupyter, asyncio): await ThresholdClient.reencrypt there"
            )

        async def go() -> ThresholdResult:
            http = httpx.AsyncClient(**self._http_options)
            try:
                return await self._reencrypt(http, policy, capsules, deadline)
            finally:
                # Connections belong to this call's loop and close with it; a transport
                # passed in serves the next call with new ones (a closed client would not).
                await http.aclose()

        return asyncio.run(go())


def _threshold_error(
    policy: ThresholdPolicy, got: int, failures: list[ProxyFailure], unasked: int = 0
) -> AccessDenied | Unavailable:
    reasons = {f.proxy: f.reason for f in failures}
    named = "; ".join(f.describe() for f in failures)
    if unasked:
        named += f"; {unasked} more not waited for (the threshold was out of reach)"
    denials = [
        f.reason
        for f in failures
        if f.kind == "refused"
        and f.reason in RefusalReason.__members__.values()
        and RefusalReason(f.reason).denies_access
    ]
    need = policy.threshold
    if denials:
        kinds = set(denials)
        cls: type[AccessDenied] = AccessDenied
        if kinds == {RefusalReason.POLICY_REVOKED.value}:
            cls = GrantRevoked
        elif kinds == {RefusalReason.POLICY_EXPIRED.value}:
            cls = GrantExpired
        elif kinds == {RefusalReason.NOT_GRANTEE.value}:
            cls = NotGrantee
        return cls(
            f"access refused: {got} of {need} proxies served policy "
            f"0x{policy.policy_id.hex()[:16]}…; {named}",
            reasons,
        )
    return Unavailable(
        f"only {got} of the {need} proxies needed answered for policy "
        f"0x{policy.policy_id.hex()[:16]}…; {named}; retry later or ask the operators",
        failures=reasons,
        needed=need,
        got=got,
    )
