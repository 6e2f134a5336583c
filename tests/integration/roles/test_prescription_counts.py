"""The regulator's prescription counts (issue 15) read the events at one block and ask
the contract only for live prescriptions: they must agree with the contract's
``statusOf`` of every prescription, whatever settled it (cancelled, every fill used,
past its validity, or the precedence among those)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from tests.integration.roles.test_prescriptions_roles import World, world  # noqa: F401

pytestmark = pytest.mark.integration


def test_counts_agree_with_the_contracts_status_of_every_prescription(
    world: World,  # noqa: F811
) -> None:
    p, doctor, pharmacy = world.patient.address, world.doctor, world.pharmacy

    def issue(fills: int, valid_for: timedelta = timedelta(days=30)) -> tuple[bytes, object]:
        rx = doctor.prescriptions.issue(
            p, "amoxicillin 500 mg capsule", dosage="1 capsule", fills=fills, valid_for=valid_for
        )
        return rx.prescription_id, rx.record_id

    short = timedelta(hours=1)
    live, _ = issue(2)
    partly, partly_rid = issue(2)
    pharmacy.prescriptions.dispense(p, partly_rid)
    used_up, used_up_rid = issue(1, short)  # every fill used, then past its validity
    pharmacy.prescriptions.dispense(p, used_up_rid)
    cancelled, _ = issue(1)
    doctor.prescriptions.cancel(cancelled)
    filled_then_cancelled, ftc_rid = issue(2, short)  # cancelled, then past its validity
    pharmacy.prescriptions.dispense(p, ftc_rid)
    doctor.prescriptions.cancel(filled_then_cancelled)
    expired, _ = issue(3, short)
    world.net.w3.testing.timeTravel(world.net.chain_time() + 2 * 3600)
    after, _ = issue(1)  # a block past the time travel
    ids = [live, partly, used_up, cancelled, filled_then_cancelled, expired, after]

    counts = world.pharmacy.prescriptions.counts()

    rx = world.net.contracts.prescriptions
    block = world.net.chain.safe_block()
    statuses = Counter(rx.status(i, block=block).name.lower() for i in ids)
    # (This consortium requires no review: the live ones are active.) A fresh network for
    # this module: the doctor issued these prescriptions only.
    assert statuses == {"active": 3, "dispensed": 1, "cancelled": 2, "expired": 1}
    want = Counter({"issued": len(ids), "fills": 3}) + statuses
    assert counts.by_prescriber[doctor.address] == want
    assert counts.by_pharmacy[pharmacy.address] == Counter({"fills": 3, "prescriptions": 3})
