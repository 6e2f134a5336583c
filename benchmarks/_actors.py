"""The devnet and the three actors the end-to-end benchmarks drive (e2e_bench, flame).

A devnet of anvil, three proxy processes at 2-of-3 and a LocalStore in a temp dir;
hospital A (a writer the patient authorized for ``lab`` and a new ``bulk`` category),
hospital B (a reader) and the patient, each with its own state dir. Used by e2e_bench,
flame and fhir_bench.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from emrshare.crypto import MemberKeys, PatientKeys
from emrshare.devnet import DEVNET_PASSWORD, devnet_down, devnet_up
from emrshare.network import Network
from emrshare.roles import Patient, Profiles, Provider


@dataclass
class Actors:
    net: Network
    a: Provider
    b: Provider
    patient: Patient
    patient_keys: PatientKeys


@contextlib.contextmanager
def devnet_actors(where: str | Path, *, authorize: bool = True) -> Iterator[Actors]:
    """A fresh devnet and its actors, stopped afterwards. ``where``: a prefix for a new
    temp dir (removed afterwards) or a directory of the caller's (kept). ``authorize``:
    the patient authorizes hospital A for ``lab`` and a new ``bulk`` category."""
    tmp = Path(tempfile.mkdtemp(prefix=where)) if isinstance(where, str) else where
    data = tmp / "data"
    print("starting devnet (anvil, 3 proxies at 2-of-3, LocalStore)…", flush=True)
    devnet_up(data, password=DEVNET_PASSWORD)
    try:
        profiles = Profiles(data)
        net = Network.from_config(profiles.network_path)
        a_keys = profiles.unlock("hospital-a", DEVNET_PASSWORD)
        b_keys = profiles.unlock("hospital-b", DEVNET_PASSWORD)
        p_keys = profiles.unlock("patient", DEVNET_PASSWORD)
        assert isinstance(a_keys, MemberKeys) and isinstance(b_keys, MemberKeys)
        assert isinstance(p_keys, PatientKeys)
        actors = Actors(
            net,
            Provider(net, a_keys, state_dir=tmp / "a"),
            Provider(net, b_keys, state_dir=tmp / "b"),
            Patient(net, p_keys, state_dir=tmp / "p"),
            p_keys,
        )
        if authorize:
            actors.patient.authorize_writer(actors.a.address, "lab")
            actors.patient.authorize_writer(actors.a.address, "bulk", new_category=True)
        try:
            yield actors
        finally:
            for actor in (actors.a, actors.b, actors.patient):
                actor.close()
            net.close()
    finally:
        devnet_down(data)
        if isinstance(where, str):
            shutil.rmtree(tmp, ignore_errors=True)
