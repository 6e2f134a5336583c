"""Proxy reports: write a read's evidence to disk, and check a published report against
the chain before an admin acts on it (see docs/proxy-operations.md)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from emrshare._files import private_dir
from emrshare.chain import GrantCreated, ProxyReported
from emrshare.errors import ContractRevert, InvalidEvidence, WireFormatError
from emrshare.network import Network
from emrshare.proxy import Evidence
from emrshare.roles._common import checksum, readable_repr
from emrshare.types import Address, PolicyId

__all__ = ["VerifiedReport", "keep_evidence", "verify_report"]


@dataclass(frozen=True, slots=True)
class VerifiedReport:
    """A registry report whose evidence proves that ``proxy`` signed a bad cfrag."""

    __repr__ = readable_repr

    report_id: int
    proxy: Address
    reporter: Address
    evidence_hash: bytes
    policy_id: PolicyId
    block: int


def keep_evidence(state_dir: Path, evidence: Sequence[Evidence]) -> list[Path]:
    """Write each piece of evidence to ``state_dir/evidence`` (0700 dir, 0600 files)."""
    if not evidence:
        return []
    folder = private_dir(state_dir / "evidence")
    paths = []
    for ev in evidence:
        path = folder / f"{ev.proxy}-{ev.evidence_hash.hex()[:16]}.emev"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(bytes(ev))
            fh.flush()
            os.fsync(fh.fileno())
        paths.append(path)
    return paths


def read_evidence(path: Path) -> Evidence:
    """An evidence file, parsed (:class:`InvalidEvidence` if it is none)."""
    return Evidence.read(path)


def report(network: Network, report_id: int) -> ProxyReported:
    """The ``ProxyReported`` event of ``report_id`` (:class:`InvalidEvidence` if none)."""
    found = list(network.contracts.registry.events(ProxyReported, report_id=report_id))
    if not found:
        raise InvalidEvidence(f"there is no proxy report {report_id} on chain; check the id")
    return found[0]


def verify_report(network: Network, report_id: int) -> VerifiedReport:
    """Check report ``report_id`` locally: its evidence parses, is about the reported
    proxy, and proves misbehaviour against this deployment's chain data (the grant's
    grantee, the patient's verifying and the grantee's receiving keys at the grant's
    block). Raises :class:`InvalidEvidence` naming the first failed check."""
    ev = report(network, report_id)
    try:
        evidence = Evidence.from_bytes(bytes(ev.evidence))
    except WireFormatError as exc:
        raise InvalidEvidence(f"report {report_id}: the evidence does not parse: {exc}") from exc
    contracts = network.contracts
    grants = list(contracts.grants.events(GrantCreated, policy_id=evidence.policy_id))
    if not grants:
        raise InvalidEvidence(f"report {report_id}: the evidence names no grant on this chain")
    grant = grants[0]
    if checksum(ev.proxy) not in {checksum(p) for p in grant.proxies}:
        raise InvalidEvidence(f"report {report_id}: {ev.proxy} is not a proxy of that grant")
    try:
        verifying = contracts.profiles.profile(grant.patient, block=grant.block_number)
        receiving = contracts.registry.member(grant.grantee, block=grant.block_number)
    except ContractRevert as exc:
        raise InvalidEvidence(f"report {report_id}: the grant's keys are not on chain") from exc
    try:
        evidence.check(
            proxy=ev.proxy,
            grantee=grant.grantee,
            chain_id=network.deployment.chain_id,
            grants_contract=network.deployment.address_of("Grants"),
            verifying_pk=bytes(verifying.verifying_key),
            receiving_pk=bytes(receiving.umbral_key),
        )
    except InvalidEvidence as exc:
        raise InvalidEvidence(
            f"report {report_id} does not prove that {ev.proxy} misbehaved: {exc}; do not act on it"
        ) from exc
    return VerifiedReport(
        report_id=report_id,
        proxy=checksum(ev.proxy),
        reporter=checksum(ev.reporter),
        evidence_hash=bytes(ev.evidence_hash),
        policy_id=PolicyId(evidence.policy_id),
        block=evidence.block,
    )
