"""Which patient category each FHIR resource lands in: :class:`CategoryMapping`.

The defaults, in order (docs/fhir.md, "Category mapping", draws them as a table):

1. a DS4P security label in ``meta.security`` (its own or a ``contained`` resource's;
   HL7 v3 sensitivity or confidentiality:
   ``HIV``, ``PSY``, ``SUD``, ``R``, ``V`` …) → its sensitive category; of several, the
   first in :data:`~emrshare.categories.SENSITIVITY_CATEGORIES` (sensitivity codes before
   confidentiality ``R`` and ``V``), whatever their order in the resource;
2. a US Core / HL7 category code (``laboratory``, ``vital-signs``, ``LAB``, ``RAD`` …);
3. the resource type (``Immunization`` → ``immunizations``);
4. reference data (Organization, Practitioner, Medication …) is not a patient record:
   it is skipped, and said so;
5. anything else is refused (no rule places it) unless the mapping names a ``fallback``.

A TOML file adds rules tried before the defaults (or instead of them)::

    fallback = "clinical-notes"        # optional: where a resource no rule places goes
    replace_defaults = false           # optional: true drops defaults 2 and 3 (never 1)

    [[rule]]
    name = "dermatology photos"        # shown by --explain
    resource_type = ["Media", "DocumentReference"]   # any of (omitted: any type)
    category_code = ["dermatology"]    # any of
    security_label = []                # any of
    code = ["http://loinc.org|72170-4"]  # the resource's code: "system|code" or "code"
    category = "dermatology"           # a category or alias; a new name must be a slug
    # skip = true                      # instead of category: not a record, left out

A resource carrying a sensitivity label never lands outside a sensitive category: a rule
that would put it in an everyday one is overruled by the label (``--explain`` says so),
so a mapping mistake cannot file an HIV result with the everyday labs.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emrshare.categories import (
    CATEGORIES,
    FHIR_CATEGORY_CODES,
    FHIR_RESOURCE_CATEGORIES,
    SENSITIVITY_CATEGORIES,
    normalize_category,
)
from emrshare.errors import EmrShareError, InvalidInput
from emrshare.fhir._resource import FhirResource, FhirVersion

__all__ = ["FHIR_TYPE_DEFAULTS", "REFERENCE_TYPES", "CategoryMapping", "MappingRule", "Placement"]

#: Resource types placed by type when no label or category code decides, beyond
#: :data:`emrshare.categories.FHIR_RESOURCE_CATEGORIES` (reports and observations without
#: a category code are filed as clinical notes, never dropped).
FHIR_TYPE_DEFAULTS: Mapping[str, str] = {
    **FHIR_RESOURCE_CATEGORIES,
    "Observation": "clinical-notes",
    "DiagnosticReport": "clinical-notes",
    "QuestionnaireResponse": "clinical-notes",
    "Communication": "clinical-notes",
    "ClinicalImpression": "clinical-notes",
    "ServiceRequest": "procedures",
    "NutritionOrder": "care-plans",
    "RiskAssessment": "conditions",
    "AdverseEvent": "allergies",
    "Appointment": "encounters",
    "EpisodeOfCare": "encounters",
    "DeviceRequest": "devices",
    "DeviceUseStatement": "devices",
    "DeviceUsage": "devices",
    "Binary": "clinical-notes",
}

#: Resource types that describe the world, not the patient: skipped by default.
REFERENCE_TYPES: frozenset[str] = frozenset(
    {
        "Organization", "Practitioner", "PractitionerRole", "Location", "HealthcareService",
        "Endpoint", "Medication", "Substance", "Group", "OperationOutcome", "Provenance",
        "AuditEvent", "CapabilityStatement", "StructureDefinition", "ValueSet", "CodeSystem",
        "Bundle", "Parameters",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one resource goes: ``category`` (``None``: not a record, skipped; see
    ``refused`` for a resource no rule places) and the ``rule`` that decided, as text."""

    category: str | None
    rule: str
    refused: bool = False


@dataclass(frozen=True, slots=True)
class MappingRule:
    """One rule of a mapping file: every criterion given must match (each is "any of")."""

    name: str
    category: str | None
    resource_types: frozenset[str] = frozenset()
    category_codes: frozenset[str] = frozenset()
    security_labels: frozenset[str] = frozenset()
    codes: frozenset[str] = frozenset()
    origin: str = "mapping"

    def matches(self, resource: FhirResource) -> bool:
        if self.resource_types and resource.resource_type not in self.resource_types:
            return False
        if self.category_codes and not self.category_codes & set(resource.category_codes):
            return False
        if self.security_labels and not self.security_labels & set(resource.security_labels):
            return False
        return not self.codes or bool(self.codes & _codes(resource.json))


def _codes(obj: Mapping[str, Any]) -> set[str]:
    """The resource's ``code`` codings, as ``system|code`` and as bare ``code``."""
    code = obj.get("code")
    if isinstance(code, dict) and isinstance(code.get("concept"), dict):  # R5 CodeableReference
        code = code["concept"]
    codings = code.get("coding") if isinstance(code, dict) else None
    out: set[str] = set()
    for c in codings if isinstance(codings, list) else ():
        if isinstance(c, dict) and isinstance(c.get("code"), str):
            out.add(c["code"])
            if isinstance(c.get("system"), str):
                out.add(f"{c['system']}|{c['code']}")
    return out


def _sensitive(category: str) -> bool:
    known = CATEGORIES.get(category)
    return known is not None and known.sensitive


class CategoryMapping:
    """Places FHIR resources in patient categories (see the module docstring).

    Example::

        mapping = CategoryMapping.from_toml(Path("mapping.toml"))
        placed = mapping.place(resource)
        print(placed.category, "because", placed.rule)
    """

    def __init__(
        self,
        rules: Iterable[MappingRule] = (),
        *,
        fallback: str | None = None,
        replace_defaults: bool = False,
    ) -> None:
        self.rules = tuple(rules)
        self.fallback = fallback
        self.replace_defaults = replace_defaults

    def __repr__(self) -> str:
        return f"CategoryMapping({len(self.rules)} rules, fallback={self.fallback!r})"

    @classmethod
    def default(cls) -> CategoryMapping:
        """The built-in rules only."""
        return cls()

    @classmethod
    def from_toml(cls, source: Path | str) -> CategoryMapping:
        """A mapping file (a path, or TOML text); :class:`InvalidInput` naming the bad key."""
        name = str(source) if isinstance(source, Path) else "mapping"
        try:
            text = source.read_text(encoding="utf-8") if isinstance(source, Path) else source
            data = tomllib.loads(text)
        except OSError as exc:
            raise InvalidInput(
                f"cannot read the mapping file {source} ({exc.strerror or exc})"
            ) from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{name} is not valid TOML: {exc}") from exc
        unknown = set(data) - {"fallback", "replace_defaults", "rule"}
        if unknown:
            raise InvalidInput(
                f"{name}: unknown key(s) {', '.join(sorted(unknown))}; a mapping has "
                "fallback, replace_defaults and [[rule]] tables"
            )
        rules = [_rule(r, i, name) for i, r in enumerate(_list(data, "rule", name))]
        fallback = data.get("fallback")
        if fallback is not None:
            fallback = _category(fallback, f"{name}: fallback")
        replace = data.get("replace_defaults", False)
        if not isinstance(replace, bool):
            raise InvalidInput(f"{name}: replace_defaults must be true or false")
        return cls(rules, fallback=fallback, replace_defaults=replace)

    def place(self, resource: FhirResource) -> Placement:
        """The category ``resource`` lands in, and the rule that decided."""
        # The vocabulary's order, not the labels': a sensitivity code (HIV) wins over a
        # confidentiality one (R, V, listed last), whatever order the EHR wrote them in.
        labels = set(resource.security_labels)
        labelled = next((x for x in SENSITIVITY_CATEGORIES if x in labels), None)
        for rule in self.rules:
            if not rule.matches(resource):
                continue
            if labelled is not None and (rule.category is None or not _sensitive(rule.category)):
                label_cat = SENSITIVITY_CATEGORIES[labelled]
                return Placement(
                    label_cat,
                    f"rule {rule.name!r} ({rule.origin}) overruled: security label {labelled} "
                    f"→ {label_cat} (a labelled resource stays in a sensitive category)",
                )
            if rule.category is None:
                return Placement(None, f"rule {rule.name!r} ({rule.origin}): skipped")
            return Placement(rule.category, f"rule {rule.name!r} ({rule.origin}) → {rule.category}")
        if labelled is not None:
            cat = SENSITIVITY_CATEGORIES[labelled]
            return Placement(cat, f"security label {labelled} → {cat} (default)")
        if not self.replace_defaults:
            for code in resource.category_codes:
                if code in FHIR_CATEGORY_CODES:
                    cat = FHIR_CATEGORY_CODES[code]
                    return Placement(cat, f"category code {code} → {cat} (default)")
            rtype = resource.resource_type
            if rtype in FHIR_TYPE_DEFAULTS:
                cat = FHIR_TYPE_DEFAULTS[rtype]
                return Placement(cat, f"resource type {rtype} → {cat} (default)")
        if resource.resource_type in REFERENCE_TYPES:
            return Placement(
                None, f"reference data ({resource.resource_type}): not a patient record, skipped"
            )
        if self.fallback is not None:
            return Placement(
                self.fallback,
                f"no rule places {resource.resource_type}: fallback → {self.fallback}",
            )
        return Placement(
            None,
            f"no rule places a {resource.resource_type}; add a [[rule]] or a fallback "
            "to the mapping",
            refused=True,
        )

    def categories_for(
        self, resource_types: Iterable[str], category_codes: Iterable[str] = ()
    ) -> list[str]:
        """The categories resources of ``resource_types`` (with any of ``category_codes``,
        if given) land in, sorted: how a request in FHIR terms (``--fhir-types
        Observation,DiagnosticReport --fhir-category laboratory``) names its categories.
        :class:`InvalidInput` if a type is placed nowhere."""
        codes: list[str | None] = [*category_codes] or [None]
        out: set[str] = set()
        for rtype in resource_types:
            for code in codes:
                obj: dict[str, Any] = {"resourceType": rtype}
                if code is not None:
                    obj["category"] = [{"coding": [{"code": code}]}]
                placed = self.place(FhirResource(rtype, None, None, FhirVersion.R4, obj))
                if placed.category is None:
                    raise InvalidInput(f"{rtype} resources are not records ({placed.rule})")
                out.add(placed.category)
        if not out:
            raise InvalidInput("name at least one FHIR resource type (e.g. Observation)")
        return sorted(out)


def _list(data: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key, [])
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise InvalidInput(f"{where}: {key} must be a list")
    return value


def _category(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: a category is a name such as 'lab-results'")
    try:
        return normalize_category(value, new_category=True)
    except EmrShareError as exc:
        raise InvalidInput(f"{where}: {exc}") from exc


def _rule(raw: Any, index: int, origin: str) -> MappingRule:
    where = f"{origin}: rule {index + 1}"
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where} is not a table")
    keys = {"name", "resource_type", "category_code", "security_label", "code", "category", "skip"}
    unknown = set(raw) - keys
    if unknown:
        raise InvalidInput(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    skip = raw.get("skip", False)
    if not isinstance(skip, bool):
        raise InvalidInput(f"{where}: skip must be true or false")
    if skip == ("category" in raw):
        raise InvalidInput(f'{where}: give either category = "..." or skip = true')
    criteria = {
        k: frozenset(str(x) for x in _list(raw, k, where))
        for k in keys & {"resource_type", "category_code", "security_label", "code"}
    }
    if not any(criteria.values()):
        raise InvalidInput(
            f"{where}: name at least one of resource_type, category_code, security_label, code"
        )
    return MappingRule(
        name=str(raw.get("name", f"rule {index + 1}")),
        category=None if skip else _category(raw["category"], where),
        resource_types=criteria["resource_type"],
        category_codes=criteria["category_code"],
        security_labels=criteria["security_label"],
        codes=criteria["code"],
        origin=origin,
    )
