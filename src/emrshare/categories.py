"""The category and purpose vocabularies: what a name typed by a person or sent by an EHR
means, before it reaches the wire.

Two rules, two places:

- **The wire rule** (:func:`emrshare.crypto.validate_category`): a category name on the
  wire is any NFC string of at most 64 UTF-8 bytes without control or format characters,
  compared byte for byte. It stays that loose so that every record, grant and writer
  authorization written before this vocabulary existed stays readable.
- **The boundary rule** (:func:`normalize_category`, here): a name *entering* the library
  (a grant, a writer authorization, a record added, an access request, a listing filter)
  is looked up in :data:`CATEGORIES` and :data:`ALIASES`, case- and separator-insensitively
  (``LAB``, ``Lab Results`` and ``lab_results`` all become ``lab-results``). A name that
  is neither is an :class:`~emrshare.errors.UnknownCategory` with a did-you-mean, unless
  the caller already uses it (``known``: an exact or normalized match of the patient's own
  categories or of a provider's writer authorizations) or asks for a new one explicitly
  (``new_category=True``); a new name must then be a slug ``[a-z0-9]+(-[a-z0-9]+)*`` of
  at most 64 bytes (after the same case and separator folding).

The vocabulary is modelled on the FHIR R4 resource types and the US Core category value
sets (Observation category: ``laboratory``, ``imaging``, ``vital-signs``,
``social-history``; DiagnosticReport category: ``LAB``, ``RAD``), plus the separate,
sensitive categories of the HL7 v3 ``InformationSensitivityPolicy`` codes that DS4P
security labels carry (``HIV``, ``PSY``, ``SUD``, ``STD``, ``SEX``, ``GDIS``, ``SDV``)
and the ``R``/``V`` confidentiality codes. :func:`fhir_category` is the default mapping
from a FHIR resource to a category, shared with the FHIR importer.

Purposes are FHIR PurposeOfUse codes (HL7 v3 ``ActReason``, the ``v3-PurposeOfUse`` value
set): :func:`normalize_purpose` upper-cases them and maps a few words (``treatment``,
``payment``, ``research``, …, after the NHIN PurposeOfUse concept map) to their code.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from emrshare.errors import InvalidCategory, UnknownCategory, UnknownPurpose

__all__ = [
    "ALIASES",
    "CATEGORIES",
    "FHIR_CATEGORY_CODES",
    "FHIR_RESOURCE_CATEGORIES",
    "MAX_CATEGORY_BYTES",
    "PURPOSES",
    "SENSITIVITY_CATEGORIES",
    "Category",
    "category_key",
    "fhir_category",
    "normalize_category",
    "normalize_purpose",
]

#: The longest category name in UTF-8 bytes (the wire rule's limit too).
MAX_CATEGORY_BYTES = 64

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_SEPARATORS = re.compile(r"[\s_\-]+")


@dataclass(frozen=True, slots=True)
class Category:
    """One category of the vocabulary: its slug, a title to show, and whether it is one of
    the sensitive categories (HL7 sensitivity or confidentiality codes) that a patient
    should grant on its own, never bundled with everyday records."""

    slug: str
    title: str
    sensitive: bool = False


_VOCABULARY = (
    # Everyday clinical data: US Core profiles and FHIR resource types.
    Category("lab-results", "Laboratory results"),
    Category("imaging", "Imaging studies and reports"),
    Category("vital-signs", "Vital signs"),
    Category("medications", "Medications taken"),
    Category("prescriptions", "Prescriptions"),
    Category("allergies", "Allergies and intolerances"),
    Category("immunizations", "Immunizations"),
    Category("conditions", "Conditions and diagnoses"),
    Category("procedures", "Procedures"),
    Category("clinical-notes", "Clinical notes and documents"),
    Category("encounters", "Encounters and visits"),
    Category("care-plans", "Care plans, goals and care teams"),
    Category("social-history", "Social history"),
    Category("family-history", "Family history"),
    Category("devices", "Devices and implants"),
    Category("insurance", "Insurance, coverage and claims"),
    Category("emergency-summary", "Emergency summary"),
    Category("demographics", "Demographics and contacts"),
    Category("consents", "Consents and advance directives"),
    # Sensitive data: HL7 v3 InformationSensitivityPolicy and confidentiality codes.
    Category("mental-health", "Mental and behavioral health", sensitive=True),
    Category("substance-use", "Substance use", sensitive=True),
    Category("hiv", "HIV/AIDS", sensitive=True),
    Category("sexual-health", "Sexual health and STIs", sensitive=True),
    Category("reproductive-health", "Reproductive health", sensitive=True),
    Category("genetics", "Genetic information", sensitive=True),
    Category("domestic-violence", "Sexual and domestic violence", sensitive=True),
    Category("restricted", "Restricted (R/V confidentiality)", sensitive=True),
)

#: The canonical categories, by slug.
CATEGORIES: Mapping[str, Category] = {c.slug: c for c in _VOCABULARY}

_ALIAS_LISTS: Mapping[str, Sequence[str]] = {
    "lab-results": (
        "lab", "labs", "laboratory", "lab-result", "lab-report", "lab-reports",
        "lab-tests", "pathology", "specimens",
    ),
    "imaging": (
        "radiology", "xray", "x-ray", "x-rays", "xrays", "scans", "mri", "ct", "dicom",
        "ultrasound",
    ),
    "vital-signs": ("vitals", "vital-sign", "vital"),
    "medications": ("medication", "meds", "drugs", "medication-list"),
    "prescriptions": ("prescription", "rx", "medication-requests", "eprescriptions"),
    "allergies": ("allergy", "allergy-intolerance", "intolerances"),
    "immunizations": (
        "immunization", "immunisations", "immunisation", "vaccinations", "vaccination",
        "vaccines", "vaccine",
    ),
    "conditions": ("condition", "problems", "problem-list", "diagnoses", "diagnosis"),
    "procedures": ("procedure", "surgery", "surgeries"),
    "clinical-notes": (
        "notes", "note", "clinical-note", "documents", "progress-notes",
        "discharge-summaries", "referrals", "referral",
    ),
    "encounters": ("encounter", "visits", "visit", "admissions"),
    "care-plans": ("care-plan", "careplan", "careplans", "goals", "care-team"),
    "social-history": ("sdoh", "lifestyle"),
    "family-history": ("family",),
    "devices": ("device", "implants"),
    "insurance": ("coverage", "claims", "billing", "payer"),
    "emergency-summary": ("emergency", "ips", "patient-summary", "summary"),
    "demographics": ("demographic", "patient", "contacts", "identity"),
    "consents": ("consent", "advance-directives", "advance-directive", "directives"),
    "mental-health": (
        "psychiatry", "psychiatric", "behavioral-health", "behavioural-health",
        "psychology", "psychotherapy",
    ),
    "substance-use": ("substance-abuse", "addiction", "sud", "alcohol"),
    "hiv": ("hiv-aids", "aids"),
    "sexual-health": ("std", "sti", "stis", "stds"),
    "reproductive-health": (
        "reproductive", "pregnancy", "obstetrics", "prenatal", "fertility", "contraception",
    ),
    "genetics": ("genetic", "genomics", "genomic", "genetic-testing", "dna"),
    "domestic-violence": ("sdv", "violence", "abuse"),
    "restricted": ("very-restricted", "confidential"),
}  # fmt: skip

#: Other names of the canonical categories (already folded, see :func:`category_key`).
ALIASES: Mapping[str, str] = {a: slug for slug, names in _ALIAS_LISTS.items() for a in names}

#: The default category of a FHIR resource type, where the type alone decides it
#: (Observation and DiagnosticReport need their category code: :data:`FHIR_CATEGORY_CODES`).
FHIR_RESOURCE_CATEGORIES: Mapping[str, str] = {
    "AllergyIntolerance": "allergies",
    "Immunization": "immunizations",
    "Condition": "conditions",
    "Procedure": "procedures",
    "MedicationRequest": "prescriptions",
    "MedicationStatement": "medications",
    "MedicationAdministration": "medications",
    "MedicationDispense": "medications",
    "Encounter": "encounters",
    "CarePlan": "care-plans",
    "CareTeam": "care-plans",
    "Goal": "care-plans",
    "ImagingStudy": "imaging",
    "Media": "imaging",
    "Specimen": "lab-results",
    "DocumentReference": "clinical-notes",
    "Composition": "clinical-notes",
    "FamilyMemberHistory": "family-history",
    "Device": "devices",
    "Coverage": "insurance",
    "Claim": "insurance",
    "ExplanationOfBenefit": "insurance",
    "Patient": "demographics",
    "RelatedPerson": "demographics",
    "Consent": "consents",
}

#: US Core / HL7 category codes (Observation ``observation-category``, DiagnosticReport
#: ``v2-0074`` and the LOINC report groups of US Core) to categories.
FHIR_CATEGORY_CODES: Mapping[str, str] = {
    "laboratory": "lab-results",
    "imaging": "imaging",
    "vital-signs": "vital-signs",
    "social-history": "social-history",
    "sdoh": "social-history",
    "procedure": "procedures",
    "therapy": "procedures",
    "exam": "encounters",
    "LAB": "lab-results",
    "RAD": "imaging",
    "LP29684-5": "imaging",  # LOINC Radiology
    "LP7839-6": "lab-results",  # LOINC Pathology
}

#: HL7 v3 sensitivity (``InformationSensitivityPolicy``) and confidentiality codes, as
#: DS4P security labels carry them, to their sensitive categories; a label wins over the
#: resource type and the category code.
SENSITIVITY_CATEGORIES: Mapping[str, str] = {
    "HIV": "hiv",
    "PSY": "mental-health",
    "MH": "mental-health",
    "BH": "mental-health",
    "PSYTHPN": "mental-health",
    "SUD": "substance-use",
    "ETH": "substance-use",
    "ETHUD": "substance-use",
    "OPIOIDUD": "substance-use",
    "STD": "sexual-health",
    "SEX": "reproductive-health",
    "GDIS": "genetics",
    "SDV": "domestic-violence",
    "R": "restricted",
    "V": "restricted",
}


def category_key(name: str) -> str:
    """``name`` folded for lookup: NFKC, case-folded, runs of spaces, ``_`` and ``-``
    turned into one ``-``, none at either end (``" Lab_Results "`` → ``"lab-results"``)."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return _SEPARATORS.sub("-", folded).strip("-")


def normalize_category(name: str, *, known: Iterable[str] = (), new_category: bool = False) -> str:
    """The category ``name`` means, as it goes on the wire.

    In order: a name in ``known`` exactly (the caller's existing categories, any name the
    wire rule allows) is itself; then the folded name (:func:`category_key`) if it is a
    canonical category, or the category it is an alias of; then a ``known`` name that
    folds to the same key; then, with ``new_category``, the folded name as a new custom
    category, which must be a slug ``[a-z0-9]+(-[a-z0-9]+)*`` of at most 64 bytes
    (:class:`InvalidCategory` if not). Anything else is an :class:`UnknownCategory` with
    the closest name.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidCategory("category must be a non-empty name such as 'lab-results'")
    names = list(known)
    if name in names:
        return name
    key = category_key(name)
    if key in CATEGORIES:
        return key
    if key in ALIASES:
        return ALIASES[key]
    for k in names:
        if category_key(k) == key:
            return k
    if not new_category:
        raise UnknownCategory(name, _closest_category(key, names))
    if not _SLUG.fullmatch(key) or len(key.encode()) > MAX_CATEGORY_BYTES:
        raise InvalidCategory(
            f"a new category name must be lower-case letters, digits and single hyphens "
            f"(e.g. 'home-measurements'), at most {MAX_CATEGORY_BYTES} bytes; "
            f"{name!r} is not"
        )
    return key


def _closest_category(key: str, known: Sequence[str]) -> str | None:
    words = [*CATEGORIES, *ALIASES, *known]
    found = difflib.get_close_matches(key, words, n=1, cutoff=0.6)
    if not found:
        return None
    return ALIASES.get(found[0], found[0])


def fhir_category(
    resource_type: str,
    category_codes: Iterable[str] = (),
    security_labels: Iterable[str] = (),
) -> str | None:
    """The default category of a FHIR resource: a sensitivity label first (``PSY`` →
    ``mental-health``), then a category code (``laboratory`` → ``lab-results``), then the
    resource type (``Immunization`` → ``immunizations``); ``None`` if none decides."""
    for label in security_labels:
        if label in SENSITIVITY_CATEGORIES:
            return SENSITIVITY_CATEGORIES[label]
    for code in category_codes:
        if code in FHIR_CATEGORY_CODES:
            return FHIR_CATEGORY_CODES[code]
    return FHIR_RESOURCE_CATEGORIES.get(resource_type)


#: FHIR PurposeOfUse codes (HL7 v3 ``ActReason``, value set ``v3-PurposeOfUse``) and what
#: each means.
PURPOSES: Mapping[str, str] = {
    "TREAT": "treatment",
    "ETREAT": "emergency treatment",
    "BTG": "break the glass",
    "ERTREAT": "emergency room treatment",
    "CAREMGT": "care management",
    "CLINTRL": "clinical trial",
    "COC": "continuity of care",
    "POPHLTH": "population health",
    "HPAYMT": "healthcare payment",
    "CLMATTCH": "claim attachment",
    "COVAUTH": "coverage authorization",
    "COVERAGE": "coverage under policy or program",
    "ELIGDTRM": "eligibility determination",
    "ELIGVER": "eligibility verification",
    "ENROLLM": "enrollment",
    "REMITADV": "remittance advice",
    "HOPERAT": "healthcare operations",
    "DONAT": "donation",
    "FRAUD": "fraud",
    "GOV": "government",
    "HACCRED": "health accreditation",
    "HCOMPL": "health compliance",
    "HDECD": "decedent",
    "HDIRECT": "directory",
    "HLEGAL": "legal",
    "HOUTCOMS": "health outcome measure",
    "HPRGRP": "health program reporting",
    "HQUALIMP": "health quality improvement",
    "HSYSADMIN": "health system administration",
    "MEMADMIN": "member administration",
    "PATADMIN": "patient administration",
    "PATSFTY": "patient safety",
    "PERFMSR": "performance measure",
    "RECORDMGT": "records management",
    "TRAIN": "training",
    "HMARKT": "healthcare marketing",
    "HRESCH": "healthcare research",
    "CLINTRCH": "clinical trial research",
    "PATRQT": "patient requested",
    "FAMRQT": "family requested",
    "PWATRNY": "power of attorney",
    "SUPNWK": "support network",
    "PUBHLTH": "public health",
    "DISASTER": "disaster",
    "THREAT": "threat",
}

_PURPOSE_WORDS: Mapping[str, str] = {
    "TREATMENT": "TREAT",
    "EMERGENCY": "ETREAT",
    "PAYMENT": "HPAYMT",
    "OPERATIONS": "HOPERAT",
    "RESEARCH": "HRESCH",
    "PUBLICHEALTH": "PUBHLTH",
    "LEGAL": "HLEGAL",
    "TRAINING": "TRAIN",
    "MARKETING": "HMARKT",
    "DONATION": "DONAT",
    "DIRECTORY": "HDIRECT",
}


def normalize_purpose(purpose: str) -> str:
    """The FHIR PurposeOfUse code ``purpose`` names: a code of :data:`PURPOSES` in any case
    (``treat`` → ``TREAT``) or one of a few words (``treatment``, ``payment``, ``research``,
    ``public health``); anything else is an :class:`UnknownPurpose` with the closest code."""
    if not isinstance(purpose, str):
        raise UnknownPurpose(repr(purpose), None)
    code = re.sub(r"[\s_\-]+", "", unicodedata.normalize("NFKC", purpose)).upper()
    if code in PURPOSES:
        return code
    if code in _PURPOSE_WORDS:
        return _PURPOSE_WORDS[code]
    found = difflib.get_close_matches(code, [*PURPOSES, *_PURPOSE_WORDS], n=1, cutoff=0.6)
    closest = _PURPOSE_WORDS.get(found[0], found[0]) if found else None
    raise UnknownPurpose(purpose, closest)
