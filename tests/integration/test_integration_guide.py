"""The code of docs/integration.md (on a real devnet) and docs/quickstart.md runs as written.

The guide's paths are mapped into this test's directory (``/etc/emrshare`` holds the
devnet's ``network.json`` and hospital A's keystore; ``/var/lib/emrshare`` is a fresh
state dir). Between the blocks the patient does what the prose says the patient does:
authorize the hospital to write ``lab``, then grant it ``lab``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from emrshare import Patient
from emrshare.crypto import PatientKeys
from emrshare.devnet import DEVNET_PASSWORD, devnet_down, devnet_up
from emrshare.fhir import plan_import
from emrshare.network import Network
from emrshare.roles.profiles import Profiles

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "integration.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[Path]:
    data_dir = tmp_path / "devnet-data"
    try:
        devnet_up(data_dir, password=DEVNET_PASSWORD)
        yield data_dir
    finally:
        devnet_down(data_dir, wipe=True)


def test_guide_code_runs(devnet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    connect, write, publish, read, in_a_loop = _blocks()  # the guide's code blocks, in order
    etc, var = tmp_path / "etc", tmp_path / "var"
    etc.mkdir()
    profiles = Profiles(devnet)
    shutil.copy(profiles.network_path, etc / "network.json")
    shutil.copy(profiles.get("hospital-a").keystore_path, etc / "hospital.keystore")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cbc.pdf").write_bytes(b"%PDF-1.7 complete blood count " * 100)

    patient_keys = profiles.unlock("patient", DEVNET_PASSWORD)
    assert isinstance(patient_keys, PatientKeys)
    patient_net = Network.from_config(profiles.network_path)
    patient = Patient(patient_net, patient_keys, state_dir=profiles.get("patient").state_dir)
    ns: dict[str, Any] = {"password": DEVNET_PASSWORD, "patient_address": patient.address}

    def run(block: str) -> None:
        code = block.replace("/etc/emrshare", str(etc)).replace("/var/lib/emrshare", str(var))
        exec(compile(code, str(GUIDE), "exec"), ns)

    try:
        run(connect)
        hospital = ns["hospital"]
        patient.authorize_writer(hospital.address, "lab")
        run(write)
        assert len(ns["ids"]) == len(ns["messages"])
        _synthetic_export(tmp_path / "export")
        plan = plan_import([tmp_path / "export" / "patient-0001.json"])
        for category in plan.categories:  # what the block tells the patient to authorize
            patient.authorize_writer(hospital.address, category)
        run(publish)
        assert ns["report"].resources == len(plan.placements) - len(plan.skipped)
        patient.grant(hospital.address, "lab", expires=timedelta(days=30))
        run(read)
        assert (tmp_path / "out.pdf").read_bytes() == (tmp_path / "cbc.pdf").read_bytes()
        published = [r.content for r in plan.records if isinstance(r.content, bytes)]
        assert ns["data"] in [*ns["messages"], (tmp_path / "cbc.pdf").read_bytes(), *published]
        run(in_a_loop)
        assert ns["fetched"] == ns["messages"]  # the records the write block added
        assert len(ns["new_ids"]) == 1 and ns["new_ids"][0] not in ns["ids"]
    finally:
        if "hospital" in ns:
            ns["hospital"].close()
        if "net" in ns:
            ns["net"].close()
        patient.close()
        patient_net.close()


def _synthetic_export(out: Path) -> None:
    """One synthetic patient from scripts/synth_fhir.py, as the EHR's export."""
    import importlib.util
    import sys

    path = GUIDE.parents[1] / "scripts" / "synth_fhir.py"
    spec = importlib.util.spec_from_file_location("synth_fhir_for_guide", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.write_population(out, patients=1, seed=5, observations=5)


def test_quickstart_python_runs(tmp_path: Path) -> None:
    """docs/quickstart.md's in-process script, with its /tmp paths moved into tmp_path."""
    quickstart = GUIDE.with_name("quickstart.md")
    (block,) = re.findall(r"```python\n(.*?)```", quickstart.read_text(), flags=re.DOTALL)
    ns: dict[str, Any] = {}
    exec(compile(block.replace("/tmp/", f"{tmp_path}/"), str(quickstart), "exec"), ns)
    audit = ns["patient"].audit()
    assert ns["b"].address in {e.requester for e in audit}
    ns["net"].close()
