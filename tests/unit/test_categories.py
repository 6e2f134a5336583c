"""The category and purpose vocabularies (issue 12, items 5 and 9): one name per category
whatever its case, separators or alias; unknown names refused with a did-you-mean."""

from __future__ import annotations

import pytest

from emrshare.categories import (
    ALIASES,
    CATEGORIES,
    FHIR_CATEGORY_CODES,
    FHIR_RESOURCE_CATEGORIES,
    PURPOSES,
    SENSITIVITY_CATEGORIES,
    category_key,
    fhir_category,
    normalize_category,
    normalize_purpose,
)
from emrshare.crypto import validate_category
from emrshare.errors import InvalidCategory, InvalidInput, UnknownCategory, UnknownPurpose


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("lab-results", "lab-results"),
        ("LAB", "lab-results"),
        ("lab", "lab-results"),
        ("Lab", "lab-results"),
        ("labs", "lab-results"),
        ("laboratory", "lab-results"),
        ("Lab Results", "lab-results"),
        ("lab_results", "lab-results"),
        ("  LAB--RESULTS ", "lab-results"),
        ("xray", "imaging"),
        ("X-Ray", "imaging"),
        ("radiology", "imaging"),
        ("Psychiatry", "mental-health"),
        ("vitals", "vital-signs"),
        ("notes", "clinical-notes"),
        ("Ｌａｂ", "lab-results"),  # full-width letters fold (NFKC)
    ],
)
def test_names_fold_to_one_category(given: str, canonical: str) -> None:
    assert normalize_category(given) == canonical


def test_the_issue_names_are_one_category_or_refused() -> None:
    """`LAB`, `lab` and `Lab Results/é!` were three categories; a newline was accepted."""
    assert normalize_category("LAB") == normalize_category("lab") == "lab-results"
    with pytest.raises(UnknownCategory) as refused:
        normalize_category("Lab Results/é!")
    assert refused.value.suggestion == "lab-results"
    assert "did you mean 'lab-results'" in str(refused.value)
    assert "new_category" in str(refused.value)
    # A newline never reaches the wire: trailing whitespace is folded away, and one inside
    # a name is a separator, leaving an unknown name.
    assert normalize_category("lab\n") == "lab-results"
    with pytest.raises(UnknownCategory):
        normalize_category("lab\nresults2")


def test_unknown_names_are_typed_input_errors_with_a_suggestion() -> None:
    with pytest.raises(InvalidInput) as typo:
        normalize_category("imagng")
    assert isinstance(typo.value, UnknownCategory)
    assert typo.value.suggestion == "imaging"
    with pytest.raises(UnknownCategory) as far:
        normalize_category("qqqqqq")
    assert far.value.suggestion is None and "did you mean" not in str(far.value)


def test_a_suggestion_names_the_canonical_category_not_an_alias() -> None:
    with pytest.raises(UnknownCategory) as refused:
        normalize_category("vaccins")
    assert refused.value.suggestion == "immunizations"


def test_new_categories_need_the_flag_and_a_slug() -> None:
    with pytest.raises(UnknownCategory):
        normalize_category("home-measurements")
    assert normalize_category("home-measurements", new_category=True) == "home-measurements"
    assert normalize_category("Home Measurements", new_category=True) == "home-measurements"
    for bad in ("Lab Results/é!", "a.b", "ünïcode", "x" * 65):
        with pytest.raises(InvalidCategory, match="lower-case letters"):
            normalize_category(bad, new_category=True)
    assert normalize_category("x" * 64, new_category=True) == "x" * 64
    # The flag never turns a vocabulary name into a new one.
    assert normalize_category("LAB", new_category=True) == "lab-results"


def test_a_category_already_in_use_needs_no_flag() -> None:
    known = ["home-measurements", "Legacy Notes/é"]
    assert normalize_category("home-measurements", known=known) == "home-measurements"
    assert normalize_category("Home_Measurements", known=known) == "home-measurements"
    # A name written before the vocabulary existed stays usable, byte for byte.
    assert normalize_category("Legacy Notes/é", known=known) == "Legacy Notes/é"
    # An exact match of an existing category wins over an alias: data under "lab" stays
    # reachable for a patient who used that name before.
    assert normalize_category("lab", known=["lab"]) == "lab"
    with pytest.raises(UnknownCategory) as refused:
        normalize_category("home-measurments", known=known)
    assert refused.value.suggestion == "home-measurements"


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_empty_or_non_string_names_are_refused(bad: object) -> None:
    with pytest.raises(InvalidCategory):
        normalize_category(bad)  # type: ignore[arg-type]


def test_the_vocabulary_is_consistent_and_passes_the_wire_rule() -> None:
    for slug, cat in CATEGORIES.items():
        assert cat.slug == slug == category_key(slug)
        assert validate_category(slug) == slug
    for alias, slug in ALIASES.items():
        assert alias == category_key(alias), alias
        assert slug in CATEGORIES and alias not in CATEGORIES, alias
    maps = (FHIR_RESOURCE_CATEGORIES, FHIR_CATEGORY_CODES, SENSITIVITY_CATEGORIES)
    for table in maps:
        assert set(table.values()) <= set(CATEGORIES)
    assert all(CATEGORIES[c].sensitive for c in SENSITIVITY_CATEGORIES.values())


def test_fhir_resources_map_to_categories_label_first() -> None:
    assert fhir_category("Immunization") == "immunizations"
    assert fhir_category("Observation", ["laboratory"]) == "lab-results"
    assert fhir_category("DiagnosticReport", ["RAD"]) == "imaging"
    # A sensitivity label puts the resource in its own sensitive category.
    assert fhir_category("Observation", ["laboratory"], ["HIV"]) == "hiv"
    assert fhir_category("Condition", (), ["PSY"]) == "mental-health"
    assert fhir_category("Observation") is None


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("TREAT", "TREAT"),
        ("treat", "TREAT"),
        (" Treat ", "TREAT"),
        ("hpaymt", "HPAYMT"),
        ("treatment", "TREAT"),
        ("public health", "PUBHLTH"),
        ("research", "HRESCH"),
    ],
)
def test_purposes_normalize_to_the_fhir_code(given: str, code: str) -> None:
    assert normalize_purpose(given) == code


def test_unknown_purposes_are_refused_with_a_suggestion() -> None:
    with pytest.raises(UnknownPurpose) as typo:
        normalize_purpose("tret")
    assert typo.value.suggestion == "TREAT" and "did you mean TREAT" in str(typo.value)
    with pytest.raises(InvalidInput):
        normalize_purpose("NOTACODE")


def test_every_purpose_passes_the_wire_rule() -> None:
    from emrshare.crypto.requests import validate_purpose

    for code in PURPOSES:
        assert validate_purpose(code) == code
