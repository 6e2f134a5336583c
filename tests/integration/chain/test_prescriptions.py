"""The Prescriptions contract on both nodes: issue, review, dispense at most the allowed
fills, cancel, expiry on chain time, roles, races in one block, and gas budgets."""

from __future__ import annotations

import os

import pytest
from web3 import Web3

from emrshare.chain import (
    Action,
    ChainClient,
    Contracts,
    PrescriptionDispensed,
    PrescriptionIssued,
    PrescriptionStatus,
    Role,
    deploy_contracts,
)
from emrshare.errors import ContractRevert

from .conftest import ADMINS, HOSPITAL, INSURER, OUTSIDER, PATIENT, PROXY_A, Net, reverts

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


def _issue(net: Net, fills: int = 1, days: int = 30) -> bytes:
    pid = os.urandom(32)
    net.as_(HOSPITAL).prescriptions.issue(pid, net.chain_time() + days * DAY, fills)
    return pid


def test_issue_dispense_once_then_refused(rx: Net) -> None:
    pid = os.urandom(32)
    until = rx.chain_time() + 30 * DAY
    r = rx.as_(HOSPITAL).prescriptions.issue(pid, until, 1)
    ev = r.event(PrescriptionIssued)
    assert (ev.prescription_id, ev.prescriber, ev.valid_until, ev.fills) == (
        pid, rx.addr(HOSPITAL), until, 1
    )  # fmt: skip
    p = rx.as_(PHARMACY).prescriptions.prescription(pid)
    assert (p.status, p.fills, p.fills_used, p.prescriber) == (
        PrescriptionStatus.ACTIVE, 1, 0, rx.addr(HOSPITAL)
    )  # fmt: skip
    d = rx.as_(PHARMACY).prescriptions.dispense(pid).event(PrescriptionDispensed)
    assert (d.pharmacy, d.prescriber, d.fill) == (rx.addr(PHARMACY), rx.addr(HOSPITAL), 1)
    assert rx.as_(PHARMACY).prescriptions.status(pid) is PrescriptionStatus.DISPENSED
    for who in (PHARMACY, PHARMACY_2):
        reverts(
            lambda w=who: rx.as_(w).prescriptions.dispense(pid),
            "Prescriptions_AlreadyDispensed",
            id=pid,
            fills=1,
        )


def test_refills_count_up_to_the_allowed_number(rx: Net) -> None:
    pid = _issue(rx, fills=3)
    fills = [rx.as_(w).prescriptions.dispense(pid).event(PrescriptionDispensed).fill
             for w in (PHARMACY, PHARMACY_2, PHARMACY)]  # fmt: skip
    assert fills == [1, 2, 3]
    reverts(lambda: rx.as_(PHARMACY_2).prescriptions.dispense(pid),
            "Prescriptions_AlreadyDispensed", id=pid, fills=3)  # fmt: skip


def test_two_pharmacies_racing_in_one_block_dispense_once(rx: Net) -> None:
    pid = _issue(rx, fills=1)
    node = rx.node
    txs = []
    node.rpc(*(("evm_setAutomine", [False]) if node.kind == "anvil" else ("miner_stop", [])))
    try:
        for who in (PHARMACY, PHARMACY_2):
            c = rx.as_(who).prescriptions
            signed = c.client.sign(c.address, c._encode("dispense", [pid]), gas=80_000)
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
        reverts(lambda w=who: rx.as_(w).prescriptions.dispense(pid),
                "Prescriptions_NotPharmacy", caller=rx.addr(who))  # fmt: skip
    for who in (PHARMACY, PATIENT, PROXY_A):
        reverts(
            lambda w=who: rx.as_(w).prescriptions.issue(os.urandom(32), rx.chain_time() + DAY, 1),
            "Prescriptions_NotPrescriber",
            caller=rx.addr(who),
        )
    # A suspended or removed provider can no longer issue.
    rx.pass_proposal(Action.REMOVE, HOSPITAL)
    reverts(lambda: _issue(rx), "Prescriptions_NotPrescriber", caller=rx.addr(HOSPITAL))
    # Its earlier prescription stays dispensable: the role counted at issue time.
    rx.as_(PHARMACY).prescriptions.dispense(pid)


def test_unknown_commitment_and_bad_parameters(rx: Net) -> None:
    unknown = os.urandom(32)
    reverts(lambda: rx.as_(PHARMACY).prescriptions.dispense(unknown),
            "Prescriptions_Unknown", id=unknown)  # fmt: skip
    assert rx.as_(PHARMACY).prescriptions.status(unknown) is PrescriptionStatus.NONE
    h = rx.as_(HOSPITAL).prescriptions
    now = rx.chain_time()
    reverts(lambda: h.issue(os.urandom(32), now - 1, 1), "Prescriptions_InvalidValidity",
            validUntil=now - 1, chainTime=lambda t: t >= now)  # fmt: skip
    far = now + 400 * DAY
    reverts(lambda: h.issue(os.urandom(32), far, 1), "Prescriptions_InvalidValidity",
            validUntil=far, chainTime=lambda t: t >= now)  # fmt: skip
    for fills in (0, 64):
        reverts(lambda f=fills: h.issue(os.urandom(32), now + DAY, f),
                "Prescriptions_InvalidFills", fills=fills)  # fmt: skip
    pid = _issue(rx)
    reverts(lambda: h.issue(pid, now + DAY, 1), "Prescriptions_Exists", id=pid)
    reverts(lambda: h.issue(b"\x00" * 32, now + DAY, 1), "Prescriptions_Unknown", id=b"\x00" * 32)


def test_expiry_is_on_chain_time(rx: Net) -> None:
    pid = _issue(rx, fills=2, days=1)
    rx.as_(PHARMACY).prescriptions.dispense(pid)
    rx.advance_time(DAY + 1)
    assert rx.as_(PHARMACY).prescriptions.status(pid) is PrescriptionStatus.EXPIRED
    until = rx.as_(PHARMACY).prescriptions.prescription(pid).valid_until
    reverts(lambda: rx.as_(PHARMACY).prescriptions.dispense(pid), "Prescriptions_Expired",
            id=pid, validUntil=until, chainTime=lambda t: t >= until)  # fmt: skip


def test_cancel_by_the_prescriber_only_then_no_dispense(rx: Net) -> None:
    pid = _issue(rx, fills=2)
    for who in (PHARMACY, PATIENT, ADMINS[0]):
        reverts(lambda w=who: rx.as_(w).prescriptions.cancel(pid),
                "Prescriptions_NotIssuer", id=pid, caller=rx.addr(who))  # fmt: skip
    rx.as_(HOSPITAL).prescriptions.cancel(pid)
    assert rx.as_(PHARMACY).prescriptions.status(pid) is PrescriptionStatus.CANCELLED
    reverts(lambda: rx.as_(PHARMACY).prescriptions.dispense(pid), "Prescriptions_Cancelled", id=pid)
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
    pid = os.urandom(32)
    as_(HOSPITAL).prescriptions.issue(pid, rx.chain_time() + DAY, 1)
    assert as_(PHARMACY).prescriptions.status(pid) is PrescriptionStatus.NEEDS_REVIEW
    reverts(lambda: as_(PHARMACY).prescriptions.dispense(pid), "Prescriptions_NotReviewed", id=pid)
    for who in (HOSPITAL, PATIENT, PROXY_A):  # the prescriber reviews not its own
        reverts(lambda w=who: as_(w).prescriptions.review(pid),
                "Prescriptions_NotReviewer", caller=rx.addr(who))  # fmt: skip
    as_(PHARMACY_2).prescriptions.review(pid)
    reverts(lambda: as_(PHARMACY).prescriptions.review(pid), "Prescriptions_AlreadyReviewed",
            id=pid)  # fmt: skip
    assert as_(PHARMACY).prescriptions.status(pid) is PrescriptionStatus.ACTIVE
    as_(PHARMACY).prescriptions.dispense(pid)


def test_no_drug_or_patient_on_chain(rx: Net) -> None:
    """The issue transaction carries the commitment, the validity and the fill count only:
    its calldata is the selector and three words."""
    pid = os.urandom(32)
    r = rx.as_(HOSPITAL).prescriptions.issue(pid, rx.chain_time() + DAY, 1)
    tx = rx.w3.eth.get_transaction(r.tx_hash)
    assert len(bytes(tx["input"])) == 4 + 3 * 32
    assert rx.addr(PATIENT).lower()[2:] not in bytes(tx["input"]).hex()


def test_gas_budgets(rx: Net) -> None:
    """Issue <= 80,000 gas and dispense <= 50,000 (benchmarks/gas_report.py prints them)."""
    pid = os.urandom(32)
    issue = rx.as_(HOSPITAL).prescriptions.issue(pid, rx.chain_time() + DAY, 2).gas_used
    dispense = rx.as_(PHARMACY).prescriptions.dispense(pid).gas_used
    assert issue <= 80_000, issue
    assert dispense <= 50_000, dispense


def test_a_revert_is_a_typed_contract_revert(rx: Net) -> None:
    with pytest.raises(ContractRevert, match="Prescriptions_Unknown"):
        rx.as_(PHARMACY).prescriptions.dispense(os.urandom(32))
