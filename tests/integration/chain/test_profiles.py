"""PatientProfiles: a patient registers its own keys, no admin needed."""

from __future__ import annotations

import os

from emrshare.chain import ProfileRegistered

from .conftest import OUTSIDER, PATIENT, Net, reverts


def test_register_and_read(net: Net) -> None:
    vk, box = os.urandom(33), os.urandom(32)
    r = net.as_(PATIENT).profiles.register(vk, box)
    ev = r.event(ProfileRegistered)
    assert (ev.patient, ev.verifying_key, ev.box_key) == (net.addr(PATIENT), vk, box)
    p = net.as_(OUTSIDER).profiles.profile(net.addr(PATIENT))
    assert (p.verifying_key, p.box_key, p.registered_at) == (vk, box, r.block_number)


def test_rules(net: Net) -> None:
    prof = net.as_(PATIENT).profiles
    reverts(
        lambda: prof.register(os.urandom(32), os.urandom(32)),
        "PatientProfiles_InvalidKey",
        length=32,
    )
    reverts(
        lambda: prof.register(os.urandom(33), bytes(32)), "PatientProfiles_InvalidKey", length=0
    )
    out = net.addr(OUTSIDER)
    reverts(lambda: prof.profile(out), "PatientProfiles_NotRegistered", patient=out)
