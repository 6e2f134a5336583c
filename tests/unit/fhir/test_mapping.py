"""CategoryMapping: defaults, TOML rules, --explain texts, sensitive labels never overruled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emrshare.categories import CATEGORIES
from emrshare.errors import InvalidInput
from emrshare.fhir import CategoryMapping, FhirResource, FhirVersion
from emrshare.fhir.mapping import FHIR_TYPE_DEFAULTS, REFERENCE_TYPES

pytestmark = pytest.mark.unit

V3 = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def res(
    rtype: str, *, codes: tuple[str, ...] = (), labels: tuple[str, ...] = (), **extra: Any
) -> FhirResource:
    obj: dict[str, Any] = {"resourceType": rtype, "id": "x", **extra}
    if codes:
        obj["category"] = [{"coding": [{"code": c} for c in codes]}]
    if labels:
        obj["meta"] = {"security": [{"system": V3, "code": c} for c in labels]}
    return FhirResource(rtype, "x", None, FhirVersion.R4, obj)


DEFAULT = CategoryMapping.default()


@pytest.mark.parametrize(
    ("resource", "category", "because"),
    [
        (res("Observation", codes=("laboratory",)), "lab-results", "category code laboratory"),
        (res("Observation", codes=("vital-signs",)), "vital-signs", "category code vital-signs"),
        (res("DiagnosticReport", codes=("RAD",)), "imaging", "category code RAD"),
        (res("Immunization"), "immunizations", "resource type Immunization"),
        (res("MedicationRequest"), "prescriptions", "resource type MedicationRequest"),
        (res("Observation"), "clinical-notes", "resource type Observation"),
        (res("Patient"), "demographics", "resource type Patient"),
        (res("Consent"), "consents", "resource type Consent"),
        (res("Observation", codes=("laboratory",), labels=("HIV",)), "hiv", "security label HIV"),
        (res("Condition", labels=("PSY",)), "mental-health", "security label PSY"),
        (res("Condition", labels=("SUD",)), "substance-use", "security label SUD"),
        (res("DocumentReference", labels=("R",)), "restricted", "security label R"),
        (res("Encounter", labels=("V",)), "restricted", "security label V"),
    ],
)
def test_defaults(resource: FhirResource, category: str, because: str) -> None:
    placed = DEFAULT.place(resource)
    assert placed.category == category
    assert placed.rule.startswith(because) and placed.rule.endswith("(default)")


def test_reference_data_is_skipped_and_unknown_types_refused() -> None:
    skipped = DEFAULT.place(res("Organization"))
    assert skipped.category is None and not skipped.refused and "reference data" in skipped.rule
    refused = DEFAULT.place(res("SupplyDelivery"))
    assert refused.category is None and refused.refused and "add a [[rule]]" in refused.rule
    assert CategoryMapping(fallback="clinical-notes").place(res("SupplyDelivery")).category == (
        "clinical-notes"
    )


def test_every_default_lands_in_the_vocabulary() -> None:
    assert set(FHIR_TYPE_DEFAULTS.values()) <= set(CATEGORIES)
    assert not set(FHIR_TYPE_DEFAULTS) & REFERENCE_TYPES


TOML = """
fallback = "clinical notes"

[[rule]]
name = "dermatology photos"
resource_type = ["Media", "DocumentReference"]
code = ["http://loinc.org|72170-4"]
category = "dermatology"

[[rule]]
name = "labs as everyday"
security_label = ["HIV"]
category = "lab"

[[rule]]
name = "psychotherapy"
security_label = ["PSY"]
category = "mental health"

[[rule]]
name = "no devices"
resource_type = "Device"
skip = true
"""


def test_toml_rules_come_first_and_explain_themselves(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text(TOML)
    mapping = CategoryMapping.from_toml(path)
    photo = res("Media", code={"coding": [{"system": "http://loinc.org", "code": "72170-4"}]})
    placed = mapping.place(photo)
    assert placed.category == "dermatology"
    assert placed.rule == f"rule 'dermatology photos' ({path}) → dermatology"
    assert mapping.place(res("Media")).category == "imaging"  # the rule needs the code
    assert mapping.place(res("Device")).category is None
    assert mapping.place(res("SupplyDelivery")).category == "clinical-notes"  # the fallback
    assert mapping.place(res("Condition", labels=("PSY",))).category == "mental-health"


def test_a_rule_cannot_file_a_labelled_resource_with_everyday_records() -> None:
    mapping = CategoryMapping.from_toml(TOML)
    placed = mapping.place(res("Observation", codes=("laboratory",), labels=("HIV",)))
    assert placed.category == "hiv"
    assert "overruled" in placed.rule and "security label HIV" in placed.rule
    skip = CategoryMapping.from_toml(
        '[[rule]]\nname = "drop"\nsecurity_label = ["SUD"]\nskip = true\n'
    )
    assert skip.place(res("Condition", labels=("SUD",))).category == "substance-use"


def test_replace_defaults_keeps_the_labels() -> None:
    mapping = CategoryMapping.from_toml(
        'replace_defaults = true\n[[rule]]\nresource_type = ["Observation"]\ncategory = "lab"\n'
    )
    assert mapping.place(res("Observation", codes=("vital-signs",))).category == "lab-results"
    assert mapping.place(res("Immunization")).refused
    assert mapping.place(res("Immunization", labels=("R",))).category == "restricted"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fallback = 3", "a category is a name"),
        ("colour = 'red'", "unknown key"),
        ("[[rule]]\ncategory = 'lab'", "name at least one"),
        ("[[rule]]\nresource_type = ['X']", "either category"),
        ("[[rule]]\nresource_type = ['X']\ncategory = 'lab'\nskip = true", "either category"),
        ("[[rule]]\nresource_type = ['X']\ncategory = 'Not A Slug!'", "rule 1"),
        ("[[rule]]\nresource_type = ['X']\ncategry = 'lab'", "unknown key"),
        ("replace_defaults = 'yes'", "true or false"),
        ("= broken", "not valid TOML"),
    ],
)
def test_bad_mapping_files_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        CategoryMapping.from_toml(text)


def test_a_missing_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read the mapping file"):
        CategoryMapping.from_toml(tmp_path / "nope.toml")


def test_categories_for_requests_in_fhir_terms() -> None:
    assert DEFAULT.categories_for(["Observation", "DiagnosticReport"], ["laboratory"]) == [
        "lab-results"
    ]
    assert DEFAULT.categories_for(["Immunization", "AllergyIntolerance"]) == [
        "allergies",
        "immunizations",
    ]
    with pytest.raises(InvalidInput, match="not records"):
        DEFAULT.categories_for(["Organization"])
    with pytest.raises(InvalidInput, match="at least one"):
        DEFAULT.categories_for([])
