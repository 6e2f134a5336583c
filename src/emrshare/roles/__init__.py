"""The facades a hospital integration, a patient app or an insurer imports.

- :class:`Patient` — owns the keys; authorizes writers, grants, revokes, answers requests,
  reads own records and the audit trail (and exports them as FHIR: :class:`PatientFhir`).
- :class:`Provider` — a hospital EHR: writes records (journaled, exactly once), reads
  what it was granted.
- :class:`Requester` — insurers, pharmacies, researchers: request access and read.
- :class:`AsyncProvider`, :class:`AsyncRequester` — the same, for code running an event
  loop (FastAPI, Jupyter).
- :class:`ConsortiumAdmin` — admits members.
- :class:`Regulator` — the health commission: the two-invoice check, dispense traces,
  recalls, prescription and claims reports. Every member has ``member.drugs``
  (:class:`MemberDrugs`: batches, shipments, receipts, dispenses) and a patient
  ``patient.drugs`` (:class:`PatientDrugs`: dispense links, recall notices, pack checks).
- :class:`Guardian` — a parent or legal representative acting for a patient
  (``Patient.guardians`` names one).
- :func:`restore_patient` — a patient on a new machine, from its 24 words or SLIP-39 shares.
"""

from emrshare.crypto.emergency import Cosignature
from emrshare.fhir.claim import ClaimItem
from emrshare.roles._claims import (
    ClaimInfo,
    ClaimRead,
    ClaimReason,
    ClaimsReport,
    FiledClaim,
    MemberClaims,
    UnbilledItem,
)
from emrshare.roles._common import (
    AccessEvent,
    AccessRequestInfo,
    AccessRequestStatus,
    GrantInfo,
    ReadEvent,
    RecordInfo,
)
from emrshare.roles._drug_checks import (
    BatchTrace,
    Holder,
    Hop,
    PackCheck,
    PackStatus,
    batch_trace,
    check_pack,
    epcis_export,
)
from emrshare.roles._drugs import AdverseReport, MemberDrugs, RegisteredBatch, SentShipment
from emrshare.roles._emergency_read import (
    EMERGENCY_KEY_FILE,
    EmergencyRead,
    EmergencyRecord,
    load_emergency_key,
    save_emergency_key,
)
from emrshare.roles._fhir_export import PatientFhir
from emrshare.roles._guardians import GuardianAction, GuardianInfo
from emrshare.roles._oplog import Operation, OperationResult
from emrshare.roles._patient_claims import ClaimStep, PatientClaims
from emrshare.roles._patient_drugs import DispenseLink, PatientDispense, PatientDrugs
from emrshare.roles._prescriptions import (
    DispensedFill,
    IssuedPrescription,
    MemberPrescriptions,
    PrescriptionCounts,
    VerifiedPrescription,
)
from emrshare.roles._restore import RestoreReport, restore_patient
from emrshare.roles._sealing_pool import InProcessSealer, PoolSealer, Sealer
from emrshare.roles.admin import ConsortiumAdmin
from emrshare.roles.guardian import Guardian
from emrshare.roles.patient import Patient
from emrshare.roles.profiles import Profile, Profiles, default_data_dir
from emrshare.roles.provider import AsyncProvider, Provider
from emrshare.roles.regulator import Regulator
from emrshare.roles.requester import AsyncRequester, Requester

__all__ = [
    "AccessEvent",
    "AccessRequestInfo",
    "AccessRequestStatus",
    "AdverseReport",
    "AsyncProvider",
    "AsyncRequester",
    "BatchTrace",
    "ClaimInfo",
    "ClaimItem",
    "ClaimRead",
    "ClaimReason",
    "ClaimStep",
    "ClaimsReport",
    "ConsortiumAdmin",
    "Cosignature",
    "DispenseLink",
    "DispensedFill",
    "EMERGENCY_KEY_FILE",
    "EmergencyRead",
    "EmergencyRecord",
    "FiledClaim",
    "GrantInfo",
    "Guardian",
    "GuardianAction",
    "GuardianInfo",
    "Holder",
    "Hop",
    "InProcessSealer",
    "IssuedPrescription",
    "MemberClaims",
    "MemberDrugs",
    "MemberPrescriptions",
    "Operation",
    "OperationResult",
    "PackCheck",
    "PackStatus",
    "Patient",
    "PatientClaims",
    "PatientDispense",
    "PatientDrugs",
    "PatientFhir",
    "PoolSealer",
    "PrescriptionCounts",
    "Profile",
    "Profiles",
    "Provider",
    "ReadEvent",
    "RecordInfo",
    "RegisteredBatch",
    "Regulator",
    "Requester",
    "RestoreReport",
    "Sealer",
    "SentShipment",
    "UnbilledItem",
    "VerifiedPrescription",
    "batch_trace",
    "check_pack",
    "default_data_dir",
    "epcis_export",
    "load_emergency_key",
    "restore_patient",
    "save_emergency_key",
]
