"""FHIR at the edges: what an EHR exports goes in as records, and grants, the audit trail
and record authorship come out as FHIR resources.

A pure layer (beside crypto, storage and chain): it parses and validates with
``fhir.resources``, maps resources to categories, plans and runs imports against any
:class:`RecordSink` (a :class:`~emrshare.roles.Provider` is one), and builds Consent,
AuditEvent and Provenance resources from plain facts. It reads no chain and no store.

Modules: ``_resource`` (:class:`FhirVersion`, :class:`FhirResource`), ``_parse``
(:func:`read_resources`, :func:`parse_model`), :mod:`~emrshare.fhir.mapping`
(:class:`CategoryMapping`), :mod:`~emrshare.fhir.importer` (:func:`plan_import`,
:func:`import_fhir`; attachments in ``_attachments``), :mod:`~emrshare.fhir.export`
(:func:`consent`, :func:`audit_event`, :func:`provenance`, :func:`bundle` from plain facts),
:mod:`~emrshare.fhir.deid` (:class:`Deidentifier`, :data:`DEID_PROFILES`: HIPAA Safe Harbor
de-identification for research; its rules as data in ``_deid_rules``).
"""

from emrshare.fhir._parse import OnInvalid, ParseResult, parse_model, read_resources, validate_json
from emrshare.fhir._resource import FHIR_JSON, FhirResource, FhirVersion, canonical_json
from emrshare.fhir.deid import DEID_PROFILES, Deidentifier, DeidProfile, profile_id
from emrshare.fhir.export import (
    CATEGORY_SYSTEM,
    AuditFacts,
    ConsentFacts,
    ProvenanceFacts,
    account_reference,
    audit_event,
    bundle,
    category_resource_types,
    consent,
    provenance,
    record_reference,
    security_labels,
)
from emrshare.fhir.importer import (
    ImportPlan,
    ImportReport,
    PlacedResource,
    PlannedRecord,
    RecordSink,
    import_fhir,
    plan_import,
)
from emrshare.fhir.mapping import CategoryMapping, MappingRule, Placement

__all__ = [
    "CATEGORY_SYSTEM",
    "DEID_PROFILES",
    "FHIR_JSON",
    "AuditFacts",
    "CategoryMapping",
    "ConsentFacts",
    "DeidProfile",
    "Deidentifier",
    "FhirResource",
    "FhirVersion",
    "ImportPlan",
    "ImportReport",
    "MappingRule",
    "OnInvalid",
    "ParseResult",
    "PlacedResource",
    "Placement",
    "PlannedRecord",
    "ProvenanceFacts",
    "RecordSink",
    "account_reference",
    "audit_event",
    "bundle",
    "canonical_json",
    "category_resource_types",
    "consent",
    "import_fhir",
    "parse_model",
    "plan_import",
    "profile_id",
    "provenance",
    "read_resources",
    "record_reference",
    "security_labels",
    "validate_json",
]
