"""Seeded synthetic FHIR populations: patients with encounters, labs, vitals, reports,
imaging, notes, prescriptions, conditions (some DS4P-labelled) and a Consent, as FHIR R4,
R4B or R5, every resource valid for :func:`emrshare.fhir.read_resources`.

    python scripts/synth_fhir.py OUT [--patients 10] [--seed 0] [--fhir-version R4|R4B|R5]
        [--format bundle|ndjson] [--observations 200] [--large-attachment MIB]

``--format bundle`` writes one collection Bundle per patient (``patient-0001.json`` …);
``--format ndjson`` writes FHIR Bulk Data output: one ``<Type>.ndjson`` per resource type
and a ``manifest.json`` listing them. ``--large-attachment 64`` also writes
``attachment-0001.bin`` (64 MiB of seeded random bytes) and an imaging resource of patient
0001 that points at it by relative ``url`` with its ``size`` and SHA-1 ``hash``.

The same arguments give byte-identical files. Nothing here is real: names and addresses
come from Faker, numbers from a seeded :class:`random.Random`, phone numbers are 555-01xx,
emails are at example.com, there are no SSNs, and every resource carries the ``meta.tag``
``https://emrshare.example/synthetic|synthetic``.

Benchmarks and tests load this file by path and call :func:`write_population` or
:func:`patient_resources`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import struct
import sys
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, NamedTuple

from faker import Faker

__all__ = ["VERSIONS", "patient_resources", "reference_resources", "write_population"]

Json = dict[str, Any]

#: The FHIR versions this script writes (``--fhir-version``).
VERSIONS = ("R4", "R4B", "R5")
FORMATS = ("bundle", "ndjson")

BASE = "https://emrshare.example/fhir"
SYNTHETIC_TAG = {"system": "https://emrshare.example/synthetic", "code": "synthetic"}
# A fixed clock: the same seed gives the same files whenever they are written.
NOW = datetime(2026, 1, 1, tzinfo=UTC)
MIB = 1024 * 1024

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
SYNTH_IDS = "https://emrshare.example/synthetic"

# The laboratory panels (LOINC, display) and their tests: (LOINC, display, UCUM unit,
# normal low, normal high, decimals). A visit's labs are reported one panel a report.
PANELS = {
    ("58410-2", "CBC panel - Blood by Automated count"): (
        ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.0, 17.5, 1),
        ("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "%", 36.0, 50.0, 1),
        ("789-8", "Erythrocytes [#/volume] in Blood by Automated count", "10*6/uL", 4.2, 5.9, 2),
        ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4.0, 11.0, 1),
        ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 150.0, 400.0, 0),
    ),
    ("24323-8", "Comprehensive metabolic 2000 panel - Serum or Plasma"): (
        ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70.0, 140.0, 0),
        ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.3, 2),
        ("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL", 7.0, 20.0, 0),
        ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 135.0, 145.0, 0),
        ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 1),
        ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 8.5, 10.5, 1),
        ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 3.5, 5.0, 1),
        ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
         "U/L", 7.0, 56.0, 0),
        ("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
         "U/L", 10.0, 40.0, 0),
    ),
    ("57698-3", "Lipid panel with direct LDL - Serum or Plasma"): (
        ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 140.0, 240.0, 0),
        ("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", 40.0, 80.0, 0),
        ("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", 50.0, 200.0, 0),
    ),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"): (
        ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.5, 6.4, 1),
    ),
}  # fmt: skip
# Every test with its panel, in one list to draw from.
LABS = tuple((panel, *test) for panel, tests in PANELS.items() for test in tests)
HIV_VIRAL_LOAD = (
    "20447-9",
    "HIV 1 RNA [#/volume] (viral load) in Serum or Plasma by NAA with probe signal amplification",
)
# (LOINC, display, UCUM unit, low, high, decimals); weight is drawn per patient.
VITALS = (
    ("8867-4", "Heart rate", "/min", 55.0, 100.0, 0),
    ("8480-6", "Systolic blood pressure", "mm[Hg]", 100.0, 150.0, 0),
    ("29463-7", "Body weight", "kg", 50.0, 110.0, 1),
)
# (SNOMED, display, ICD-10-CM, RxNorm, drug, dosage text)
CONDITIONS = (
    ("38341003", "Hypertensive disorder", "I10", "314076", "lisinopril 10 MG Oral Tablet",
     "Take 1 tablet by mouth once daily"),
    ("44054006", "Diabetes mellitus type 2", "E11.9", "860975",
     "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet",
     "Take 1 tablet by mouth daily with the evening meal"),
    ("55822004", "Hyperlipidemia", "E78.5", "259255", "atorvastatin 80 MG Oral Tablet",
     "Take 1 tablet by mouth at bedtime"),
    ("396275006", "Osteoarthritis", "M19.90", "310965", "ibuprofen 200 MG Oral Tablet",
     "Take 1 to 2 tablets by mouth every 6 hours as needed for pain"),
    ("195967001", "Asthma", "J45.909", "895994",
     "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler",
     "Inhale 2 puffs twice daily"),
    ("25064002", "Headache", "R51.9", "313782", "acetaminophen 325 MG Oral Tablet",
     "Take 2 tablets by mouth every 6 hours as needed"),
)  # fmt: skip
# The sensitive condition of patient n is SENSITIVE[n % 4]: (label, SNOMED, display, ICD-10);
# the label None means confidentiality R alone.
SENSITIVE = (
    ("HIV", "86406008", "Human immunodeficiency virus infection", "B20"),
    ("PSY", "35489007", "Depressive disorder", "F32.9"),
    ("SUD", "7200002", "Alcoholism", "F10.20"),
    (None, "128302006", "Chronic hepatitis C", "B18.2"),
)
MODALITIES = {
    "DX": ("Digital Radiography", "1.2.840.10008.5.1.4.1.1.1.1", "Chest X-ray"),
    "CT": ("Computed Tomography", "1.2.840.10008.5.1.4.1.1.2", "CT of the abdomen"),
}


def _coding(system: str, code: str, display: str | None = None) -> Json:
    out = {"system": system, "code": code}
    if display is not None:
        out["display"] = display
    return out


def _concept(system: str, code: str, display: str | None = None) -> Json:
    out: Json = {"coding": [_coding(system, code, display)]}
    if display is not None:
        out["text"] = display
    return out


def _ref(rtype: str, rid: str) -> Json:
    return {"reference": f"{rtype}/{rid}"}


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _label(code: str) -> Json:
    if code == "R":
        return _coding(CONFIDENTIALITY, "R", "restricted")
    return _coding(ACT_CODE, code)


def _png(rng: random.Random, width: int = 64, height: int = 48) -> bytes:
    """A real grayscale PNG of seeded noise (a few KB: noise does not compress)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    rows = b"".join(b"\x00" + rng.randbytes(width) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


@lru_cache(maxsize=1)
def _faker() -> Faker:
    # One instance, reseeded per patient: building a Faker costs far more than seeding it.
    return Faker("en_US")


class _Patient:
    """What one patient's resources share while they are built.

    A plain class, not a dataclass: loaded by path without a ``sys.modules`` entry, this
    module cannot define dataclasses (they look their module up there)."""

    __slots__ = ("name", "pid", "rng", "sensitive", "updated", "version")

    def __init__(
        self, pid: str, version: str, rng: random.Random, updated: str, sensitive: int
    ) -> None:
        self.pid = pid
        self.version = version
        self.rng = rng
        self.updated = updated
        self.sensitive = sensitive
        self.name = ""  # "Given Family", set by _patient: notes name their patient

    @property
    def r5(self) -> bool:
        return self.version == "R5"

    def meta(self, *security: str) -> Json:
        out: Json = {"versionId": "1", "lastUpdated": self.updated, "tag": [SYNTHETIC_TAG]}
        if security:
            out["security"] = [_label(code) for code in security]
        return out

    def base(self, rtype: str, suffix: str, *security: str) -> Json:
        return {"resourceType": rtype, "id": f"{self.pid}-{suffix}", "meta": self.meta(*security)}

    @property
    def subject(self) -> Json:
        return _ref("Patient", self.pid)


def _org_id(seed: int) -> str:
    return f"synth-{seed}-org"


def _practitioner_id(seed: int) -> str:
    return f"synth-{seed}-practitioner"


def reference_resources(*, seed: int, version: str = "R4") -> list[Json]:
    """The population's Organization and Practitioner (reference data, not records; the
    same in every patient file of one seed)."""
    _check_version(version)
    fake = _faker()
    fake.seed_instance(f"{seed}:reference")
    meta = {"versionId": "1", "lastUpdated": _instant(NOW), "tag": [SYNTHETIC_TAG]}
    address = {
        "line": [fake.street_address()],
        "city": fake.city(),
        "state": fake.state_abbr(),
        "postalCode": fake.zipcode(),
        "country": "US",
    }
    org = {
        "resourceType": "Organization",
        "id": _org_id(seed),
        "meta": meta,
        "identifier": [{"system": f"{SYNTH_IDS}/organization", "value": f"ORG-{seed}"}],
        "active": True,
        "type": [
            _concept(
                "http://terminology.hl7.org/CodeSystem/organization-type",
                "prov",
                "Healthcare Provider",
            )
        ],
        "name": f"{address['city']} General Hospital (synthetic)",
    }
    telecom = [{"system": "phone", "value": "+1-555-555-0100", "use": "work"}]
    if version == "R5":  # R5 moved them into contact (ExtendedContactDetail)
        org["contact"] = [{"telecom": telecom, "address": address}]
    else:
        org |= {"telecom": telecom, "address": [address]}
    practitioner = {
        "resourceType": "Practitioner",
        "id": _practitioner_id(seed),
        "meta": meta,
        "identifier": [{"system": f"{SYNTH_IDS}/practitioner", "value": f"PR-{seed}"}],
        "active": True,
        "name": [{"family": fake.last_name(), "given": [fake.first_name()], "prefix": ["Dr."]}],
    }
    return [org, practitioner]


def _check_version(version: str) -> None:
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {', '.join(VERSIONS)}, not {version!r}")


def patient_resources(index: int, *, seed: int, version: str, observations: int) -> list[Json]:
    """Patient number ``index`` (1, 2, …; id ``p0001``) of the population ``seed``: its
    Patient (with an email, a next-of-kin contact, and over 89 for every tenth patient),
    Encounters, ``observations`` laboratory Observations (the last one an HIV
    viral load labelled ``HIV``), vital signs, DiagnosticReports, an ImagingStudy and its
    image (Media in R4/R4B, DocumentReference in R5), a clinical note naming the patient,
    MedicationRequests, Conditions (one DS4P-labelled, the first with a note naming the
    patient), and a Consent. The same arguments give the same list."""
    _check_version(version)
    if index < 1:
        raise ValueError("patients are numbered from 1")
    if observations < 1:
        raise ValueError("observations must be at least 1 (the HIV viral load)")
    rng = random.Random(f"emrshare-synth:{seed}:{index}")
    updated = _instant(NOW - timedelta(minutes=rng.randrange(60 * 24 * 30)))
    p = _Patient(f"p{index:04d}", version, rng, updated, index % len(SENSITIVE))
    org = _ref("Organization", _org_id(seed))
    practitioner = _ref("Practitioner", _practitioner_id(seed))

    out = [_patient(p, index, seed, org, practitioner)]
    visits = _encounters(p, org, practitioner)
    out += [visit.resource for visit in visits]
    labs = [_lab(p, i, visits[i % len(visits)]) for i in range(observations - 1)]
    out += [obs for obs, _ in labs]
    out.append(_hiv_viral_load(p, observations - 1, visits[-1]))
    out += _vitals(p, visits)
    out += _reports(p, labs, visits, org)
    study, image = _imaging(p, visits[rng.randrange(len(visits))])
    out += [study, image, _note(p, visits[0], practitioner)]
    conditions = _conditions(p, visits)
    out += conditions
    out += _prescriptions(p, conditions, visits, practitioner)
    out.append(_consent(p, org))
    return out


def _patient(p: _Patient, index: int, seed: int, org: Json, practitioner: Json) -> Json:
    fake = _faker()
    fake.seed_instance(f"{seed}:{index}")
    gender = p.rng.choice(("female", "male"))
    given = fake.first_name_female() if gender == "female" else fake.first_name_male()
    born = NOW.date() - timedelta(days=p.rng.randrange(18 * 365, 90 * 365))
    # What a de-identifier must remove beyond the basics, drawn from their own generator so
    # that every other value of the patient stays as it was: an email, a relative to
    # contact, and (one patient in ten) an age over 89.
    extra = random.Random(f"emrshare-synth:{seed}:{index}:extra")
    if index % 10 == 0:
        born = NOW.date() - timedelta(days=extra.randrange(90 * 365 + 30, 99 * 365))
    patient: Json = {
        "resourceType": "Patient",
        "id": p.pid,
        "meta": p.meta(),
        "identifier": [
            {
                "use": "usual",
                "type": _concept(
                    "http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical record number"
                ),
                "system": f"{SYNTH_IDS}/mrn",
                "value": f"SYN{seed}-{index:06d}",
            }
        ],
        "active": True,
        "name": [{"use": "official", "family": fake.last_name(), "given": [given]}],
        "telecom": [
            {"system": "phone", "value": f"+1-555-555-01{p.rng.randrange(100):02d}", "use": "home"}
        ],
        "gender": gender,
        "birthDate": born.isoformat(),
        "address": [
            {
                "use": "home",
                "line": [fake.street_address()],
                "city": fake.city(),
                "state": fake.state_abbr(),
                "postalCode": fake.zipcode(),
                "country": "US",
            }
        ],
        "generalPractitioner": [practitioner],
        "managingOrganization": org,
    }
    family = patient["name"][0]["family"]
    p.name = f"{given} {family}"
    email = f"{given}.{family}.{index}@example.com".lower().replace(" ", "")
    patient["telecom"].append({"system": "email", "value": email, "use": "home"})
    relative = {"family": fake.last_name(), "given": [fake.first_name()]}
    patient["contact"] = [
        {
            "relationship": [
                _concept("http://terminology.hl7.org/CodeSystem/v2-0131", "N", "Next-of-Kin")
            ],
            "name": relative,
            "telecom": [{"system": "phone", "value": f"+1-555-555-01{extra.randrange(100):02d}"}],
        }
    ]
    return patient


class _Visit(NamedTuple):
    resource: Json
    start: datetime
    end: datetime

    @property
    def ref(self) -> Json:
        return _ref("Encounter", self.resource["id"])

    @property
    def period(self) -> Json:
        return {"start": _instant(self.start), "end": _instant(self.end)}

    def during(self, rng: random.Random) -> datetime:
        """A moment of the visit (within its first two hours)."""
        span = min(self.end - self.start, timedelta(hours=2))
        return self.start + timedelta(seconds=rng.randrange(int(span.total_seconds()) or 1))


def _encounters(p: _Patient, org: Json, practitioner: Json) -> list[_Visit]:
    """2–4 visits over the last three years, oldest first, about one in four inpatient."""
    rng = p.rng
    out = []
    for i, days_ago in enumerate(sorted(rng.sample(range(40, 3 * 365), rng.randint(2, 4)))[::-1]):
        inpatient = rng.random() < 0.25
        day = NOW - timedelta(days=days_ago)
        start = day.replace(hour=rng.randrange(7, 18), minute=rng.choice((0, 15, 30, 45)))
        if inpatient:
            end = start + timedelta(days=rng.randint(1, 6), hours=rng.randrange(8))
            cls = _coding(ACT_CODE, "IMP", "inpatient encounter")
            kind = _concept(SNOMED, "32485007", "Hospital admission")
        else:
            end = start + timedelta(minutes=rng.choice((20, 30, 45, 60)))
            cls = _coding(ACT_CODE, "AMB", "ambulatory")
            kind = _concept(SNOMED, "185349003", "Encounter for check up")
        enc = p.base("Encounter", f"enc-{i:02d}")
        visit = _Visit(enc, start, end)
        if p.r5:
            enc |= {
                "status": "completed",
                "class": [{"coding": [cls]}],
                "type": [kind],
                "subject": p.subject,
                "participant": [{"actor": practitioner}],
                "actualPeriod": visit.period,
                "serviceProvider": org,
            }
        else:
            enc |= {
                "status": "finished",
                "class": cls,
                "type": [kind],
                "subject": p.subject,
                "participant": [{"individual": practitioner}],
                "period": visit.period,
                "serviceProvider": org,
            }
        out.append(visit)
    return out


def _number(rng: random.Random, low: float, high: float, places: int) -> float | int:
    """Mostly within ``low``–``high``, sometimes out of range (never below zero)."""
    spread = high - low
    value = rng.gauss((low + high) / 2, spread / 3)
    value = min(max(value, low - 0.3 * spread, spread / 100), high + 0.6 * spread)
    return round(value) if places == 0 else round(value, places)


def _quantity(value: float | int, unit: str, comparator: str | None = None) -> Json:
    out: Json = {"value": value}
    if comparator is not None:
        out["comparator"] = comparator
    return out | {"unit": unit, "system": UCUM, "code": unit}


def _flag(value: float | int, low: float, high: float) -> Json:
    if value < low:
        return _concept(INTERPRETATION, "L", "Low")
    if value > high:
        return _concept(INTERPRETATION, "H", "High")
    return _concept(INTERPRETATION, "N", "Normal")


def _observation(p: _Patient, suffix: str, category: str, visit: _Visit, *security: str) -> Json:
    at = visit.during(p.rng)
    display = "Laboratory" if category == "laboratory" else "Vital Signs"
    return p.base("Observation", suffix, *security) | {
        "status": "final",
        "category": [_concept(OBS_CATEGORY, category, display)],
        "subject": p.subject,
        "encounter": visit.ref,
        "effectiveDateTime": _instant(at),
        "issued": _instant(at + timedelta(minutes=p.rng.randrange(30, 360))),
    }


def _lab(p: _Patient, i: int, visit: _Visit) -> tuple[Json, tuple[str, str]]:
    """A laboratory Observation and its panel."""
    panel, code, display, unit, low, high, places = LABS[p.rng.randrange(len(LABS))]
    obs = _observation(p, f"obs-{i:04d}", "laboratory", visit)
    value = _number(p.rng, low, high, places)
    obs["code"] = _concept(LOINC, code, display)
    obs["valueQuantity"] = _quantity(value, unit)
    obs["interpretation"] = [_flag(value, low, high)]
    obs["referenceRange"] = [{"low": _quantity(low, unit), "high": _quantity(high, unit)}]
    return _ordered(obs), panel


def _hiv_viral_load(p: _Patient, i: int, visit: _Visit) -> Json:
    obs = _observation(p, f"obs-{i:04d}", "laboratory", visit, "HIV", "R")
    obs["code"] = _concept(LOINC, *HIV_VIRAL_LOAD)
    if SENSITIVE[p.sensitive][0] == "HIV":
        obs["valueQuantity"] = _quantity(p.rng.randrange(40, 80_000), "{copies}/mL")
        obs["interpretation"] = [_concept(INTERPRETATION, "DET", "Detected")]
    else:
        obs["valueQuantity"] = _quantity(20, "{copies}/mL", comparator="<")
        obs["interpretation"] = [_concept(INTERPRETATION, "ND", "Not detected")]
    return _ordered(obs)


_OBSERVATION_ORDER = (
    "resourceType", "id", "meta", "status", "category", "code", "subject", "encounter",
    "effectiveDateTime", "issued", "valueQuantity", "interpretation", "referenceRange",
)  # fmt: skip


def _ordered(obs: Json) -> Json:
    """The Observation's elements in the order of the FHIR specification (easier to read)."""
    return {k: obs[k] for k in _OBSERVATION_ORDER if k in obs}


def _vitals(p: _Patient, visits: Sequence[_Visit]) -> list[Json]:
    """Heart rate, systolic pressure and weight at every visit."""
    weight = p.rng.uniform(55.0, 105.0)
    out: list[Json] = []
    for visit in visits:
        for code, display, unit, low, high, places in VITALS:
            obs = _observation(p, f"vs-{len(out):04d}", "vital-signs", visit)
            if code == "29463-7":
                value: float | int = round(weight + p.rng.uniform(-2.0, 2.0), places)
            else:
                value = _number(p.rng, low, high, places)
            obs["code"] = _concept(LOINC, code, display)
            obs["valueQuantity"] = _quantity(value, unit)
            out.append(_ordered(obs))
    return out


def _reports(
    p: _Patient, labs: Sequence[tuple[Json, tuple[str, str]]], visits: Sequence[_Visit], org: Json
) -> list[Json]:
    """A laboratory DiagnosticReport for each panel of each visit, naming its results
    (never the HIV viral load: an unlabelled report must not point at a labelled result)."""
    out: list[Json] = []
    for visit in visits:
        for panel in PANELS:
            mine = [obs for obs, of in labs if of == panel and obs["encounter"] == visit.ref]
            if not mine:
                continue
            report = p.base("DiagnosticReport", f"dr-{len(out):02d}") | {
                "status": "final",
                "category": [
                    _concept("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB", "Laboratory")
                ],
                "code": _concept(LOINC, *panel),
                "subject": p.subject,
                "encounter": visit.ref,
                "effectiveDateTime": min(obs["effectiveDateTime"] for obs in mine),
                "issued": max(obs["issued"] for obs in mine),
                "performer": [org],
                "result": [_ref("Observation", obs["id"]) for obs in mine],
            }
            out.append(report)
    return out


def _uid(rng: random.Random) -> str:
    # DICOM UIDs under 2.25 are a 128-bit integer (as from a UUID), at most 44 characters.
    return f"2.25.{rng.getrandbits(128)}"


def _modality(code: str, r5: bool) -> Json:
    coding = _coding(DICOM, code, MODALITIES[code][0])
    return {"coding": [coding]} if r5 else coding


def _imaging(p: _Patient, visit: _Visit) -> tuple[Json, Json]:
    """An ImagingStudy (DX or CT) and one image of it: a Media (R4, R4B) or an imaging
    DocumentReference (R5) holding a small PNG inline."""
    rng = p.rng
    modality = rng.choice(sorted(MODALITIES))
    _, sop_class, description = MODALITIES[modality]
    started = visit.during(rng)
    series: list[Json] = []
    for number in range(1, rng.randint(1, 2) + 1):
        count = rng.randint(1, 2) if modality == "DX" else rng.randint(2, 4)
        series.append(
            {
                "uid": _uid(rng),
                "number": number,
                "modality": _modality(modality, p.r5),
                "description": f"{description}, series {number}",
                "numberOfInstances": count,
                "started": _instant(started),
                "instance": [
                    {
                        "uid": _uid(rng),
                        "sopClass": _coding("urn:ietf:rfc:3986", f"urn:oid:{sop_class}"),
                        "number": n,
                    }
                    for n in range(1, count + 1)
                ],
            }
        )
    study = p.base("ImagingStudy", "img-00") | {
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{_uid(rng)}"}],
        "status": "available",
        "modality": [_modality(modality, p.r5)],
        "subject": p.subject,
        "encounter": visit.ref,
        "started": _instant(started),
        "numberOfSeries": len(series),
        "numberOfInstances": sum(s["numberOfInstances"] for s in series),
        "description": description,
        "series": series,
    }
    png = _png(rng)
    attachment = {
        "contentType": "image/png",
        "data": _b64(png),
        "size": str(len(png)) if p.r5 else len(png),
        "hash": _b64(hashlib.sha1(png, usedforsecurity=False).digest()),
        "title": f"{description} (synthetic noise)",
        "creation": _instant(started),
    }
    return study, _image(p.version, study, attachment, "00")


def _image(version: str, study: Json, attachment: Json, suffix: str) -> Json:
    """The resource holding an image of ``study`` (of its patient, with its meta): Media in
    R4/R4B (gone in R5), else a DocumentReference of category imaging."""
    pid = study["subject"]["reference"].removeprefix("Patient/")
    meta = study["meta"]

    def base(rtype: str, name: str) -> Json:
        return {"resourceType": rtype, "id": f"{pid}-{name}", "meta": meta}

    modality = study["modality"][0]
    coding = modality["coding"][0] if "coding" in modality else modality
    concept = {"coding": [coding]}
    when = study["started"]
    if version != "R5":
        return base("Media", f"media-{suffix}") | {
            "partOf": [_ref("ImagingStudy", study["id"])],
            "status": "completed",
            "type": _concept("http://terminology.hl7.org/CodeSystem/media-type", "image", "Image"),
            "modality": concept,
            "subject": study["subject"],
            "encounter": study["encounter"],
            "createdDateTime": when,
            "issued": when,
            "content": attachment,
        }
    return base("DocumentReference", f"imgdoc-{suffix}") | {
        "status": "current",
        "docStatus": "final",
        "modality": [concept],
        "type": _concept(LOINC, "18748-4", "Diagnostic imaging study"),
        "category": [_concept(OBS_CATEGORY, "imaging", "Imaging")],
        "subject": study["subject"],
        "context": [study["encounter"]],
        "date": when,
        "event": [{"reference": _ref("ImagingStudy", study["id"])}],
        "content": [{"attachment": attachment}],
    }


def _note(p: _Patient, visit: _Visit, practitioner: Json) -> Json:
    """A progress note of the first visit, as a text/plain DocumentReference."""
    rng = p.rng
    text = (
        f"Progress note (synthetic) for {p.name}, {visit.start.date().isoformat()}.\n"
        f"Blood pressure {rng.randint(105, 145)}/{rng.randint(65, 92)} mmHg, heart rate "
        f"{rng.randint(58, 96)}/min.\nPatient reports feeling "
        f"{rng.choice(('well', 'tired', 'better than last visit', 'much the same'))}.\n"
        f"Plan: continue current medications; follow up in {rng.randint(2, 12)} weeks.\n"
    ).encode()
    attachment = {
        "contentType": "text/plain",
        "data": _b64(text),
        "size": str(len(text)) if p.r5 else len(text),
        "title": "Progress note",
        "creation": _instant(visit.end),
    }
    note = p.base("DocumentReference", "note-00") | {
        "status": "current",
        "docStatus": "final",
        "type": _concept(LOINC, "11506-3", "Progress note"),
        "category": [
            _concept(
                "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                "clinical-note",
                "Clinical Note",
            )
        ],
        "subject": p.subject,
        "date": _instant(visit.end),
        "author": [practitioner],
        "content": [{"attachment": attachment}],
    }
    if p.r5:
        return note | {"context": [visit.ref], "period": visit.period}
    return note | {"context": {"encounter": [visit.ref], "period": visit.period}}


def _conditions(p: _Patient, visits: Sequence[_Visit]) -> list[Json]:
    """1–3 everyday conditions, then one sensitive condition carrying DS4P labels."""
    rng = p.rng
    chosen = [(row[0], row[1], row[2], ()) for row in rng.sample(CONDITIONS, rng.randint(1, 3))]
    label, snomed, display, icd = SENSITIVE[p.sensitive]
    security = (label, "R") if label is not None else ("R",)
    out = []
    for i, (code, text, icd10, labels) in enumerate([*chosen, (snomed, display, icd, security)]):
        visit = visits[rng.randrange(len(visits))]
        onset = visit.start - timedelta(days=rng.randrange(0, 5 * 365))
        out.append(
            p.base("Condition", f"cond-{i:02d}", *labels)
            | {
                "clinicalStatus": _concept(
                    "http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"
                ),
                "verificationStatus": _concept(
                    "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed",
                    "Confirmed",
                ),
                "category": [
                    _concept("http://terminology.hl7.org/CodeSystem/condition-category",
                             "problem-list-item", "Problem List Item")
                ],
                "code": {
                    "coding": [_coding(SNOMED, code, text), _coding(ICD10, icd10)],
                    "text": text,
                },
                "subject": p.subject,
                "encounter": visit.ref,
                "onsetDateTime": onset.date().isoformat(),
                "recordedDate": _instant(visit.start),
            }
        )  # fmt: skip
        if i == 0:  # free text naming the patient, as clinicians write it
            out[-1]["note"] = [{"text": f"History given by {p.name} at the visit."}]
    return out


def _prescriptions(
    p: _Patient, conditions: Sequence[Json], visits: Sequence[_Visit], practitioner: Json
) -> list[Json]:
    """A MedicationRequest for each everyday condition (the sensitive one gets none: an
    unlabelled prescription would tell what the label hides)."""
    drugs = {row[0]: row[3:] for row in CONDITIONS}
    out: list[Json] = []
    for cond in conditions:
        found = drugs.get(cond["code"]["coding"][0]["code"])
        if found is None or "security" in cond["meta"]:
            continue
        rxnorm, drug, dosage = found
        visit = next(v for v in visits if v.ref == cond["encounter"])
        medication = _concept(RXNORM, rxnorm, drug)
        reason = _ref("Condition", cond["id"])
        request = p.base("MedicationRequest", f"rx-{len(out):02d}") | {
            "status": "active",
            "intent": "order",
        }
        if p.r5:
            request |= {"medication": {"concept": medication}}
        else:
            request |= {"medicationCodeableConcept": medication}
        request |= {
            "subject": p.subject,
            "encounter": visit.ref,
            "authoredOn": _instant(visit.start),
            "requester": practitioner,
        }
        request |= {"reason": [{"reference": reason}]} if p.r5 else {"reasonReference": [reason]}
        request["dosageInstruction"] = [{"sequence": 1, "text": dosage}]
        out.append(request)
    return out


def _consent(p: _Patient, org: Json) -> Json:
    """An active privacy consent: R4/R4B ``scope``, ``category``, ``patient``, ``provision``;
    R5 ``category``, ``subject``, ``decision`` and a list of provisions."""
    signed = NOW - timedelta(days=p.rng.randrange(31, 3 * 365))
    category = [_concept(LOINC, "59284-0", "Patient Consent")]
    purpose = [_coding("http://terminology.hl7.org/CodeSystem/v3-ActReason", "TREAT", "treatment")]
    consent = p.base("Consent", "consent-00") | {"status": "active"}
    if p.r5:
        return consent | {
            "category": category,
            "subject": p.subject,
            "date": signed.date().isoformat(),
            "controller": [org],
            "decision": "permit",
            "provision": [{"period": {"start": _instant(signed)}, "purpose": purpose}],
        }
    return consent | {
        "scope": _concept(
            "http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy",
            "Privacy Consent",
        ),
        "category": category,
        "patient": p.subject,
        "dateTime": _instant(signed),
        "organization": [org],
        "policyRule": _concept(ACT_CODE, "OPTIN", "opt-in"),
        "provision": {"type": "permit", "period": {"start": _instant(signed)}, "purpose": purpose},
    }  # fmt: skip


# -- writing a population -------------------------------------------------------------------

ATTACHMENT = "attachment-0001.bin"


def _dumps(obj: Json) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _write_attachment(path: Path, seed: int, mib: int) -> tuple[int, str]:
    """``mib`` MiB of seeded random bytes, a MiB at a time; their size and base64 SHA-1
    (``Attachment.hash``)."""
    rng = random.Random(f"emrshare-synth:{seed}:attachment")
    sha1 = hashlib.sha1(usedforsecurity=False)
    with path.open("wb") as f:
        for _ in range(mib):
            block = rng.randbytes(MIB)
            sha1.update(block)
            f.write(block)
    return mib * MIB, _b64(sha1.digest())


def _large_image(version: str, resources: Sequence[Json], size: int, sha1: str) -> Json:
    study = next(r for r in resources if r["resourceType"] == "ImagingStudy")
    attachment = {
        "contentType": "application/dicom",
        "url": ATTACHMENT,
        "size": str(size) if version == "R5" else size,
        "hash": sha1,
        "title": f"{study['description']} (synthetic, {size // MIB} MiB of random bytes)",
        "creation": study["started"],
    }
    return _image(version, study, attachment, "large")


def _write_bundles(out: Path, seed: int, population: Iterable[list[Json]]) -> list[Path]:
    files = []
    for index, resources in enumerate(population, 1):
        bundle = {
            "resourceType": "Bundle",
            "id": f"synth-{seed}-p{index:04d}",
            "meta": {"lastUpdated": _instant(NOW), "tag": [SYNTHETIC_TAG]},
            "type": "collection",
            "timestamp": _instant(NOW),
            "entry": [
                {"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": r}
                for r in resources
            ],
        }
        path = out / f"patient-{index:04d}.json"
        path.write_text(_dumps(bundle) + "\n", encoding="utf-8")
        files.append(path)
    return files


def _write_ndjson(out: Path, population: Iterable[list[Json]]) -> list[Path]:
    """One ``<Type>.ndjson`` per type (each resource once) and a Bulk Data manifest."""
    counts: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    with ExitStack() as stack:
        handles: dict[str, IO[str]] = {}
        for resources in population:
            for r in resources:
                rtype = r["resourceType"]
                if (rtype, r["id"]) in seen:
                    continue  # the reference data every patient shares
                seen.add((rtype, r["id"]))
                if rtype not in handles:
                    path = out / f"{rtype}.ndjson"
                    handles[rtype] = stack.enter_context(
                        path.open("w", encoding="utf-8", newline="\n")
                    )
                handles[rtype].write(_dumps(r) + "\n")
                counts[rtype] += 1
    types = sorted(counts)
    manifest = {
        "transactionTime": _instant(NOW),
        "request": f"{BASE}/Patient/$export?_type={','.join(types)}",
        "requiresAccessToken": False,
        "output": [{"type": t, "url": f"{t}.ndjson", "count": counts[t]} for t in types],
        "error": [],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return [*(out / f"{t}.ndjson" for t in types), out / "manifest.json"]


def _population(
    patients: int, seed: int, version: str, observations: int, large: tuple[int, str] | None
) -> Iterable[list[Json]]:
    reference = reference_resources(seed=seed, version=version)
    for index in range(1, patients + 1):
        resources = patient_resources(index, seed=seed, version=version, observations=observations)
        if index == 1 and large is not None:
            resources.append(_large_image(version, resources, *large))
        yield [*resources, *reference]


def write_population(
    out: Path,
    *,
    patients: int = 10,
    seed: int = 0,
    version: str = "R4",
    fmt: str = "bundle",
    observations: int = 200,
    large_attachment: int = 0,
) -> list[Path]:
    """Write ``patients`` synthetic patients into ``out`` (created) and return the files
    written.

    ``fmt="bundle"``: ``patient-0001.json`` … each a collection Bundle of one patient's
    resources (:func:`patient_resources`) and the shared Organization and Practitioner.
    ``fmt="ndjson"``: ``<Type>.ndjson`` files and a Bulk Data ``manifest.json`` (each
    resource once). ``large_attachment`` MiB > 0 also writes ``attachment-0001.bin``
    and, for patient 0001, a Media (R4, R4B) or DocumentReference (R5) whose attachment
    points at it by ``url``, with its ``size`` and ``hash``. The same arguments write
    the same bytes.

    Example::

        files = write_population(Path("synth"), patients=4, seed=7, version="R5")
        result = read_resources(files, version="R5")
    """
    _check_version(version)
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if patients < 1:
        raise ValueError("patients must be at least 1")
    if observations < 1:
        raise ValueError("observations must be at least 1 (the HIV viral load)")
    if large_attachment < 0 or (version != "R5" and large_attachment * MIB >= 2**31):
        raise ValueError(
            "large_attachment is a size in MiB, from 0 to 2047 for R4/R4B "
            "(Attachment.size is an unsignedInt)"
        )
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    large = None
    if large_attachment:
        large = _write_attachment(out / ATTACHMENT, seed, large_attachment)
        files.append(out / ATTACHMENT)
    population = _population(patients, seed, version, observations, large)
    if fmt == "bundle":
        return files + _write_bundles(out, seed, population)
    return files + _write_ndjson(out, population)


def _count(files: Iterable[Path]) -> int:
    total = 0
    for path in files:
        if path.suffix == ".ndjson":
            with path.open(encoding="utf-8") as f:
                total += sum(1 for line in f if line.strip())
        elif path.name.startswith("patient-"):
            total += len(json.loads(path.read_text(encoding="utf-8"))["entry"])
    return total


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="synth_fhir.py",
        description="Write a seeded synthetic FHIR population (docs/fhir.md).",
    )
    parser.add_argument("out", metavar="OUT", type=Path, help="directory to write (created)")
    parser.add_argument("--patients", metavar="N", type=int, default=10)
    parser.add_argument("--seed", metavar="S", type=int, default=0)
    parser.add_argument("--fhir-version", choices=VERSIONS, default="R4")
    parser.add_argument("--format", choices=FORMATS, default="bundle")
    parser.add_argument(
        "--observations", metavar="N", type=int, default=200,
        help="laboratory Observations per patient, the HIV viral load included",
    )  # fmt: skip
    parser.add_argument(
        "--large-attachment", metavar="MIB", type=int, default=0,
        help="also write attachment-0001.bin of MIB MiB, referenced by url from patient 0001",
    )  # fmt: skip
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        files = write_population(
            args.out,
            patients=args.patients,
            seed=args.seed,
            version=args.fhir_version,
            fmt=args.format,
            observations=args.observations,
            large_attachment=args.large_attachment,
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(
        f"wrote {len(files)} files, {_count(files):,} resources (FHIR {args.fhir_version}, "
        f"{args.format}, seed {args.seed}) to {args.out} in {time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
