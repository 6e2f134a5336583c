"""PatientProfiles.logState on anvil and ganache: the sender's sealed entry is logged
under its own address, and an empty or oversized entry is refused."""

from __future__ import annotations

from emrshare.chain import StateLogged
from tests.integration.chain.conftest import PATIENT, Net, reverts


def test_log_state_is_logged_under_the_sender(net: Net) -> None:
    r = net.as_(PATIENT).profiles.log_state(b"\x01" * 256)
    ev = r.event(StateLogged)
    assert ev.patient == net.addr(PATIENT) and ev.sealed_state == b"\x01" * 256


def test_log_state_refuses_empty_and_oversized_entries(net: Net) -> None:
    mine = net.as_(PATIENT).profiles
    reverts(lambda: mine.log_state(b""), "PatientProfiles_InvalidState", length=0)
    reverts(lambda: mine.log_state(bytes(4097)), "PatientProfiles_InvalidState", length=4097)
    mine.log_state(bytes(4096))  # the limit itself is allowed
