"""The FHIR import's errors in CLI terms (issue 14 review): the library's messages name
its parameters (``subject=``, ``on_invalid=``), never a CLI flag; the CLI adds its flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from emrshare.cli._context import State
from emrshare.cli._errors import message_for
from emrshare.errors import AccessDenied, InvalidFhir, InvalidInput, MixedFhirVersions
from emrshare.fhir import plan_import
from emrshare.types import FhirProblem

pytestmark = pytest.mark.unit


def two_patients() -> InvalidInput:
    obs = [
        {"resourceType": "Observation", "id": f"o{i}", "status": "final", "code": {"text": "x"},
         "subject": {"reference": f"Patient/p{i}"}}
        for i in (1, 2)
    ]  # fmt: skip
    with pytest.raises(InvalidInput) as caught:
        plan_import([{"resourceType": "Bundle", "type": "collection",
                      "entry": [{"resource": o} for o in obs]}])  # fmt: skip
    return caught.value


def test_the_library_names_no_cli_flag_for_a_several_patient_input() -> None:
    message = str(two_patients())
    assert "--" not in message and "subject='Patient/" in message


def test_fhir_import_adds_its_flags_to_the_library_errors(tmp_path: Path) -> None:
    st = State(tmp_path, "hospital", command="fhir import")
    assert "`--fhir-patient Patient/…`" in message_for(two_patients(), st)
    refused = InvalidFhir([FhirProblem("b.json", "line 1", "Observation/o1", "status", "bad")])
    assert "`--skip-invalid`" in message_for(refused, st)
    assert "--skip-invalid" not in message_for(refused, State(tmp_path, "h", command="x"))


def test_mixed_versions_name_the_version_flag_in_the_cli_only(tmp_path: Path) -> None:
    mixed = MixedFhirVersions(
        [FhirProblem("b.json", "", "Media/m1", "", "valid only as R4")],
        "the input mixes FHIR versions; import each version on its own and name it "
        "(version='R4' or 'R5')",
    )
    st = State(tmp_path, "hospital", command="fhir import")
    assert message_for(mixed, st).endswith("name the version with `--fhir-version R4|R5`")


def test_an_unauthorized_category_names_the_mapping_flag_in_the_cli_only(tmp_path: Path) -> None:
    from emrshare.fhir import import_fhir

    class NotAllowed:  # a sink the patient authorized for nothing: refused before a write
        def writable_categories(self, patient: str) -> dict[str, int]:
            return {}

        def add_records(self, *args: object, **kwargs: object) -> list[bytes]:
            raise AssertionError("nothing is written")

    plan = plan_import([{"resourceType": "Patient", "id": "p1"}])
    with pytest.raises(AccessDenied) as caught:
        import_fhir(NotAllowed(), "0x" + "11" * 20, plan)  # type: ignore[arg-type]
    assert "--" not in str(caught.value) and "mapping" in str(caught.value)
    st = State(tmp_path, "hospital", command="fhir import")
    assert "`--mapping FILE`" in message_for(caught.value, st)
