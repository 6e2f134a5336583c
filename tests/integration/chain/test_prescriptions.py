"""The Prescriptions contract on both nodes: issue, review, dispense at most the allowed
fills, cancel, expiry on chain time, roles, races in one block, the reader proofs, and gas
budgets."""

from __future__ import annotations

import os

import pytest
from eth_account import Account
from web3 import Web3

from emrshare.chain import (
    Action,
    ChainClient,
    Contracts,
    PrescriptionDispensed,
    PrescriptionIssued,
    PrescriptionStatus,
    ReaderKey,
    Role,
    deploy_contracts,
    prescription_id,
)
from emrshare.chain.bindings import Prescriptions
from emrshare.errors import ContractRevert

from .conftest import ADMINS, HOSPITAL, INSURER, OUTSIDER, PATIENT, PROXY_A, PROXY_C, Net, reverts

pytestmark = pytest.mark.integration

PHARMACY, PHARMACY_2 = OUTSIDER, INSURER
DAY = 86_400


@pytest.fixture
def rx(net: Net) -> Net:
    """The session deployment with two pharmacies (reverted after the test)."""
    _admit_pharmacy(net, PHARMACY)
    net.pass_proposal(Action.CHANGE_ROLE, PHARMACY_2, Role.PHARMACY)
    return net


def _admit_pharmacy(net: Net, i: int) -> None:
    net.as_(i).registry.apply(os.urandom(33), os.urandom(32), "")
    net.pass_proposal(Action.ADMIT, i, Role.PHARMACY)


#: The reader key of each prescription a test issued (its salt is made up: no document).
KEYS: dict[bytes, ReaderKey] = {}


def _issue(net: Net, fills: int = 1, days: int = 30, c: Prescriptions | None = None) -> bytes:
    """A new prescription (a made-up commitment) of ``c``'s caller; returns its id."""
    commitment, key = os.urandom(32), ReaderKey(os.urandom(32))
    c = c or net.as_(HOSPITAL).prescriptions
    r = c.issue(commitment, key.address, net.chain_time() + days * DAY, fills)
    pid = bytes(r.event(PrescriptionIssued).prescription_id)
    assert pid == prescription_id(c.client.address or "", commitment)
    KEYS[pid] = key
    return pid


def _proof(
    c: Prescriptions, pid: bytes, kind: str = "dispense", key: ReaderKey | None = None
) -> bytes:
    key = key or KEYS.get(pid) or ReaderKey(os.urandom(32))
    sign = key.dispense_proof if kind == "dispense" else key.review_proof
    return sign(pid, c.client.address or "", c.client.chain_id, c.address)


def _dispense(c: Prescriptions, pid: bytes) -> PrescriptionDispensed:
    """One fill by ``c``'s caller, with the proof of a reader of the document."""
    return c.dispense(pid, _proof(c, pid)).event(PrescriptionDispensed)


def test_issue_dispense_once_then_refused(rx: Net) -> None:
    commitment, key = os.urandom(32), ReaderKey(os.urandom(32))
    pid = prescription_id(rx.addr(HOSPITAL), commitment)
    KEYS[pid] = key
    until = rx.chain_time() + 30 * DAY
    r = rx.as_(HOSPITAL).prescriptions.issue(commitment, key.address, until, 1)
    ev = r.event(PrescriptionIssued)
    assert (ev.prescription_id, ev.prescriber, ev.valid_until, ev.fills) == (
        pid, rx.addr(HOSPITAL), until, 1
    )  # fmt: skip
    p = rx.as_(PHARMACY).prescriptions.prescription(pid)
    assert (p.status, p.fills, p.fills_used, p.prescriber, p.reader) == (
        PrescriptionStatus.ACTIVE, 1, 0, rx.addr(HOSPITAL), key.address
    )  # fmt: skip
    d = _dispense(rx.as_(PHARMACY).prescriptions, pid)
    assert (d.pharmacy, d.prescriber, d.fill) == (rx.addr(PHARMACY), rx.addr(HOSPITAL), 1)
    assert rx.as_(PHARMACY).prescriptions.status(pid) is PrescriptionStatus.DISPENSED
    for who in (PHARMACY, PHARMACY_2):
        reverts(
            lambda w=who: _dispense(rx.as_(w).prescriptions, pid),
            "Prescriptions_AlreadyDispensed",
            id=pid,
            fills=1,
        )


def test_refills_count_up_to_the_allowed_number(rx: Net) -> None:
    pid = _issue(rx, fills=3)
    fills = [_dispense(rx.as_(w).prescriptions, pid).fill for w in (PHARMACY, PHARMACY_2, PHARMACY)]
    assert fills == [1, 2, 3]
    reverts(lambda: _dispense(rx.as_(PHARMACY_2).prescriptions, pid),
            "Prescriptions_AlreadyDispensed", id=pid, fills=3)  # fmt: skip


def test_two_pharmacies_racing_in_one_block_dispense_once(rx: Net) -> None:
    pid = _issue(rx, fills=1)
    node = rx.node
    txs = []
    node.rpc(*(("evm_setAutomine", [False]) if node.kind == "anvil" else ("miner_stop", [])))
    try:
        for who in (PHARMACY, PHARMACY_2):
            c = rx.as_(who).prescriptions
            data = c._encode("dispense", [pid, _proof(c, pid)])
            signed = c.client.sign(c.address, data, gas=80_000)
            txs.append(c.client.broadcast(signed.raw))
    finally:
        if node.kind == "anvil":
            node.rpc("evm_setAutomine", [True])
        else:
            node.rpc("miner_start", [])
    node.rpc("evm_mine")
    receipts = [rx.w3.eth.wait_for_transaction_receipt(t, timeout=30) for t in txs]
    assert receipts[0]["blockNumber"] == receipts[1]["blockNumber"], "not one block"
    assert sorted(r["status"] for r in receipts) == [0, 1]
    p = rx.as_(PHARMACY).prescriptions.prescription(pid)
    assert (p.fills_used, p.status) == (1, PrescriptionStatus.DISPENSED)
    dispensed = list(rx.as_(PHARMACY).prescriptions.events(
        PrescriptionDispensed, prescription_id=pid, to_block=rx.w3.eth.block_number))  # fmt: skip
    assert len(dispensed) == 1


def test_only_pharmacies_dispense_and_only_providers_issue(rx: Net) -> None:
    pid = _issue(rx)
    for who in (HOSPITAL, PATIENT, PROXY_A, ADMINS[0]):
        reverts(lambda w=who: _dispense(rx.as_(w).prescriptions, pid),
                "Prescriptions_NotPharmacy", caller=rx.addr(who))  # fmt: skip
    for who in (PHARMACY, PATIENT, PROXY_A):
        reverts(
            lambda w=who: _issue(rx, c=rx.as_(w).prescriptions),
            "Prescriptions_NotPrescriber",
            caller=rx.addr(who),
        )
    # A suspended or removed provider can no longer issue.
    rx.pass_proposal(Action.REMOVE, HOSPITAL)
    reverts(lambda: _issue(rx), "Prescriptions_NotPrescriber", caller=rx.addr(HOSPITAL))
    # Nor is its earlier prescription dispensed: its authority ended with its role.
    reverts(lambda: _dispense(rx.as_(PHARMACY).prescriptions, pid),
            "Prescriptions_PrescriberInactive", id=pid, prescriber=rx.addr(HOSPITAL))  # fmt: skip
    assert rx.as_(PHARMACY).prescriptions.prescription(pid).fills_used == 0


def test_unknown_commitment_and_bad_parameters(rx: Net) -> None:
    unknown = os.urandom(32)
    reverts(lambda: _dispense(rx.as_(PHARMACY).prescriptions, unknown),
            "Prescriptions_Unknown", id=unknown)  # fmt: skip
    assert rx.as_(PHARMACY).prescriptions.status(unknown) is PrescriptionStatus.NONE
    h = rx.as_(HOSPITAL).prescriptions
    now, reader = rx.chain_time(), ReaderKey(os.urandom(32)).address
    reverts(lambda: h.issue(os.urandom(32), reader, now - 1, 1), "Prescriptions_InvalidValidity",
            validUntil=now - 1, chainTime=lambda t: t >= now)  # fmt: skip
    far = now + 400 * DAY
    reverts(lambda: h.issue(os.urandom(32), reader, far, 1), "Prescriptions_InvalidValidity",
            validUntil=far, chainTime=lambda t: t >= now)  # fmt: skip
    for fills in (0, 64):
        reverts(lambda f=fills: h.issue(os.urandom(32), reader, now + DAY, f),
                "Prescriptions_InvalidFills", fills=fills)  # fmt: skip
    commitment = os.urandom(32)
    h.issue(commitment, reader, now + DAY, 1)
    reverts(lambda: h.issue(commitment, reader, now + DAY, 1), "Prescriptions_Exists",
            id=prescription_id(rx.addr(HOSPITAL), commitment))  # fmt: skip
    fresh = os.urandom(32)
    reverts(lambda: h.issue(fresh, "0x" + "00" * 20, now + DAY, 1), "Prescriptions_NoReaderKey",
            id=prescription_id(rx.addr(HOSPITAL), fresh))  # fmt: skip


def test_attack_another_provider_front_runs_an_issue(rx: Net) -> None:
    """A provider copies an ``issue`` it saw in the mempool: it gets another id (its own),
    and the prescriber's issue still goes through under the prescriber's id."""
    rival = PROXY_C  # a second provider for this test (the fixture reverts it after)
    rx.pass_proposal(Action.CHANGE_ROLE, rival, Role.PROVIDER)
    commitment, key = os.urandom(32), ReaderKey(os.urandom(32))
    until = rx.chain_time() + DAY
    copied = rx.as_(rival).prescriptions.issue(commitment, key.address, until, 1)
    theirs = bytes(copied.event(PrescriptionIssued).prescription_id)
    mine = rx.as_(HOSPITAL).prescriptions.issue(commitment, key.address, until, 1)
    ours = bytes(mine.event(PrescriptionIssued).prescription_id)
    assert ours == prescription_id(rx.addr(HOSPITAL), commitment) != theirs
    assert rx.as_(PHARMACY).prescriptions.prescription(ours).prescriber == rx.addr(HOSPITAL)


def test_expiry_is_on_chain_time(rx: Net) -> None:
    pid = _issue(rx, fills=2, days=1)
    _dispense(rx.as_(PHARMACY).prescriptions, pid)
    rx.advance_time(DAY + 1)
    assert rx.as_(PHARMACY).prescriptions.status(pid) is PrescriptionStatus.EXPIRED
    until = rx.as_(PHARMACY).prescriptions.prescription(pid).valid_until
    reverts(lambda: _dispense(rx.as_(PHARMACY).prescriptions, pid), "Prescriptions_Expired",
            id=pid, validUntil=until, chainTime=lambda t: t >= until)  # fmt: skip


def test_cancel_by_the_prescriber_only_then_no_dispense(rx: Net) -> None:
    pid = _issue(rx, fills=2)
    for who in (PHARMACY, PATIENT, ADMINS[0]):
        reverts(lambda w=who: rx.as_(w).prescriptions.cancel(pid),
                "Prescriptions_NotIssuer", id=pid, caller=rx.addr(who))  # fmt: skip
    rx.as_(HOSPITAL).prescriptions.cancel(pid)
    assert rx.as_(PHARMACY).prescriptions.status(pid) is PrescriptionStatus.CANCELLED
    reverts(lambda: _dispense(rx.as_(PHARMACY).prescriptions, pid), "Prescriptions_Cancelled",
            id=pid)  # fmt: skip
    reverts(lambda: rx.as_(HOSPITAL).prescriptions.cancel(pid), "Prescriptions_Cancelled", id=pid)


def test_review_where_the_consortium_requires_it(rx: Net, dev_keys: list[bytes]) -> None:
    """A deployment with ``rx_review_required``: no dispense before a review by a pharmacy
    or provider other than the prescriber."""
    w3: Web3 = rx.w3
    mine = deploy_contracts(w3, dev_keys[0], names=["Prescriptions"], rx_review_required=True,
                            existing=dict(rx.deployment.addresses))  # fmt: skip
    address = mine.address_of("Prescriptions")

    def as_(i: int) -> Contracts:
        c = Contracts.from_deployment(ChainClient(w3, dev_keys[i]), rx.deployment)
        return Contracts(**{**{f: getattr(c, f) for f in c.__dataclass_fields__},
                            "prescriptions": type(c.prescriptions)(c.client, address)})  # fmt: skip

    assert as_(HOSPITAL).prescriptions.review_required()
    pid = _issue(rx, c=as_(HOSPITAL).prescriptions)
    assert as_(PHARMACY).prescriptions.status(pid) is PrescriptionStatus.NEEDS_REVIEW
    reverts(lambda: _dispense(as_(PHARMACY).prescriptions, pid), "Prescriptions_NotReviewed",
            id=pid)  # fmt: skip

    def review(i: int, proof: bytes | None = None) -> None:
        c = as_(i).prescriptions
        c.review(pid, _proof(c, pid, "review") if proof is None else proof)

    for who in (HOSPITAL, PATIENT, PROXY_A):  # the prescriber reviews not its own
        reverts(lambda w=who: review(w), "Prescriptions_NotReviewer", caller=rx.addr(who))
    # A reviewer who never read the document has no proof; nor does a dispense proof do.
    c2 = as_(PHARMACY_2).prescriptions
    for bad in (_proof(c2, pid, "review", ReaderKey(os.urandom(32))), _proof(c2, pid), b""):
        reverts(lambda p=bad: review(PHARMACY_2, p), "Prescriptions_NotRead", id=pid,
                caller=rx.addr(PHARMACY_2))  # fmt: skip
    review(PHARMACY_2)
    reverts(lambda: review(PHARMACY), "Prescriptions_AlreadyReviewed", id=pid)
    assert as_(PHARMACY).prescriptions.status(pid) is PrescriptionStatus.ACTIVE
    _dispense(as_(PHARMACY).prescriptions, pid)


def test_no_drug_or_patient_on_chain(rx: Net) -> None:
    """The issue transaction carries the commitment, the reader key's (random) address, the
    validity and the fill count only: its calldata is the selector and four words."""
    commitment, key = os.urandom(32), ReaderKey(os.urandom(32))
    r = rx.as_(HOSPITAL).prescriptions.issue(commitment, key.address, rx.chain_time() + DAY, 1)
    tx = rx.w3.eth.get_transaction(r.tx_hash)
    assert len(bytes(tx["input"])) == 4 + 4 * 32
    assert rx.addr(PATIENT).lower()[2:] not in bytes(tx["input"]).hex()


def test_gas_budgets(rx: Net) -> None:
    """Issue <= 80,000 gas and dispense <= 50,000 (benchmarks/gas_report.py prints them)."""
    commitment, key = os.urandom(32), ReaderKey(os.urandom(32))
    pid = prescription_id(rx.addr(HOSPITAL), commitment)
    KEYS[pid] = key
    h = rx.as_(HOSPITAL).prescriptions
    issue = h.issue(commitment, key.address, rx.chain_time() + DAY, 2).gas_used
    c = rx.as_(PHARMACY).prescriptions
    dispense = c.dispense(pid, _proof(c, pid)).gas_used
    assert issue <= 80_000, issue
    assert dispense <= 50_000, dispense


def test_a_revert_is_a_typed_contract_revert(rx: Net) -> None:
    with pytest.raises(ContractRevert, match="Prescriptions_Unknown"):
        rx.as_(PHARMACY).prescriptions.dispense(os.urandom(32), b"")


def test_a_pharmacy_that_never_read_the_document_cannot_dispense(rx: Net) -> None:
    """The ids are public (events); a fill needs the reader key's proof for its caller."""
    pid = _issue(rx, fills=2)
    c = rx.as_(PHARMACY).prescriptions
    stranger = ReaderKey(os.urandom(32))
    for bad in (b"", os.urandom(65), _proof(c, pid, key=stranger), _proof(c, pid, "review")):
        reverts(lambda p=bad: c.dispense(pid, p), "Prescriptions_NotRead", id=pid,
                caller=rx.addr(PHARMACY))  # fmt: skip
    assert c.prescription(pid).fills_used == 0


def test_a_proof_seen_in_the_mempool_serves_no_other_pharmacy(rx: Net) -> None:
    """PHARMACY_2 copies PHARMACY's proof (front-running, or replaying it later)."""
    pid = _issue(rx, fills=2)
    mine = _proof(rx.as_(PHARMACY).prescriptions, pid)
    other = rx.as_(PHARMACY_2).prescriptions
    reverts(lambda: other.dispense(pid, mine), "Prescriptions_NotRead", id=pid,
            caller=rx.addr(PHARMACY_2))  # fmt: skip
    assert _dispense(rx.as_(PHARMACY).prescriptions, pid).fill == 1


def test_proof_digests_are_the_contracts(rx: Net) -> None:
    """The off-chain EIP-712 messages recover, under the contract's own digests, to the
    reader key (so the Python encoding and the Solidity type hashes agree)."""
    pid = _issue(rx)
    c = rx.as_(PHARMACY).prescriptions
    who = rx.addr(PHARMACY)
    for digest, proof in (
        (c.hash_dispense(pid, who), _proof(c, pid)),
        (c.hash_review(pid, who), _proof(c, pid, "review")),
    ):
        assert Account._recover_hash(digest, signature=proof) == KEYS[pid].address
    assert c.hash_dispense(pid, who) != c.hash_review(pid, who)
    assert KEYS[pid]._secret.hex() not in repr(KEYS[pid]) and KEYS[pid].address in repr(KEYS[pid])
