"""De-identification of FHIR resources for research cohorts (HIPAA Safe Harbor, 45 CFR
164.514(b)(2)): an allow-list per resource type, ids and references replaced by study
pseudonyms, dates reduced to the year or shifted per patient.

The rules are data (``_deid_rules``, printed in docs/research.md); :class:`Deidentifier`
compiles them once into a per-type dispatch tree and walks each resource with it, copying
only what a rule keeps. Pure: no I/O, no pydantic on the way (tests parse the output).

Example::

    deid = Deidentifier(DEID_PROFILES["hipaa-safe-harbor-shifted/1"], study_key)
    rows = deid.deidentify_many(resources)

**Warning:** de-identification lowers the risk of re-identification, it does not remove
it: rare diagnoses, quasi-identifiers in codes and the shape of a history remain.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import date, timedelta
from typing import Any

from emrshare.errors import InvalidInput
from emrshare.fhir._deid_profile import (
    AGE_90_EXTENSION,
    DEID_PROFILES,
    DEID_TAG_SYSTEM,
    PSEUDONYM_SYSTEM,
    SHIFT_DAYS,
    DeidProfile,
    profile_id,
)
from emrshare.fhir._deid_rules import ACTIONS
from emrshare.fhir._deid_values import PRIMITIVE, address, each, keep, quantity

__all__ = ["DEID_PROFILES", "DeidProfile", "Deidentifier", "profile_id"]


class _Refused(Exception):
    """Internal: raised by a handler, turned into InvalidInput with the resource named."""


class _Ctx:
    """What the handlers of one resource share."""

    __slots__ = ("contained", "engine", "extensions", "rtype", "shift", "urls")

    def __init__(
        self,
        engine: Deidentifier,
        rtype: str,
        shift: int | None,
        urls: Mapping[str, str],
        contained: bool = False,
    ) -> None:
        self.engine = engine
        self.rtype = rtype
        self.shift = shift
        self.urls = urls
        self.contained = contained
        self.extensions: list[dict[str, Any]] = []


Handler = Callable[[Any, Any, _Ctx], Any]
Node = dict[str, tuple[Handler, Any]]
_REF = re.compile(
    r"(?:^|/)([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$"
)
#: What a Coding keeps: its system and code, of a standard terminology only. A display, a
#: version or a local system's code can carry anything an EHR typed (a name, an MRN, a
#: date), so they go.
_CODING_KEYS = frozenset({"system", "code"})
#: Terminologies whose codes name concepts, not people (prefixes of ``Coding.system``).
STANDARD_SYSTEMS = (
    "http://loinc.org",
    "http://snomed.info/sct",
    "http://www.nlm.nih.gov/research/umls/rxnorm",
    "http://hl7.org/fhir/sid/",  # ICD-9/10(-CM), NDC, CVX, …
    "http://terminology.hl7.org/",
    "http://hl7.org/fhir/",
    "http://unitsofmeasure.org",
    "http://www.whocc.no/atc",
    "http://dicom.nema.org/resources/ontology/DCM",
    "http://www.ama-assn.org/go/cpt",
    "urn:ietf:bcp:47",
    "urn:iso:std:iso:3166",
)
#: DICOM's own UIDs (SOP classes, transfer syntaxes: kinds of object, not instances).
_DICOM_CLASSES = "urn:oid:1.2.840.10008."
#: A ``code`` value as FHIR terminologies spell one (no free text).
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-_:/]{0,63}")


def _object(value: Any, node: Node, ctx: _Ctx) -> Any:
    if isinstance(value, list):
        out = [r for v in value if (r := _object1(v, node, ctx)) is not None]
        return out or None
    return _object1(value, node, ctx)


def _object1(obj: Any, node: Node, ctx: _Ctx) -> dict[str, Any] | None:
    if not isinstance(obj, dict):
        return None
    if "modifierExtension" in obj:
        raise _Refused(
            "it has a modifierExtension, which changes its meaning and which no rule keeps: "
            "leave the resource out, or add the extension to the profile's rules"
        )
    out = {}
    for key, value in obj.items():
        rule = node.get(key)
        if rule is not None:
            kept = rule[0](value, rule[1], ctx)
            if kept is not None:
                out[key] = kept
    return out or None


def _id(value: Any, _: Any, ctx: _Ctx) -> str | None:
    if not isinstance(value, str):
        return None
    return ctx.engine.pseudonym("#" if ctx.contained else ctx.rtype, value)


def _ref_string(ref: str, ctx: _Ctx) -> str | None:
    engine = ctx.engine
    if ref.startswith("#"):
        return f"#{engine.pseudonym('#', ref[1:])}" if len(ref) > 1 else ref
    if ref.startswith(("urn:uuid:", "urn:oid:")):
        return engine._urn(ref)
    found = _REF.search(ref)
    if found is None:
        return None  # a search URL or a logical reference: nothing to point at
    return f"{found[1]}/{engine.pseudonym(found[1], found[2])}"


def _reference(value: Any, _: Any, ctx: _Ctx) -> Any:
    if isinstance(value, list):
        return each(value, lambda v: _reference(v, None, ctx))
    if isinstance(value, str):
        return _ref_string(value, ctx)
    if not isinstance(value, dict):
        return None
    out: dict[str, Any] = {}
    ref = value.get("reference")
    if isinstance(ref, str):
        kept = _ref_string(ref, ctx)
        if kept is not None:
            out["reference"] = kept
            if isinstance(value.get("type"), str):
                out["type"] = value["type"]
    elif isinstance(ref, dict):  # a CodeableReference's
        kept = _reference(ref, None, ctx)
        if kept is not None:
            out["reference"] = kept
    if "concept" in value:
        concept = _concept(value["concept"], None, ctx)
        if concept is not None:
            out["concept"] = concept
    return out or None


def _concept(value: Any, _: Any, ctx: _Ctx) -> Any:
    if isinstance(value, str):
        return value if _CODE.fullmatch(value) else None  # a code, not free text
    if isinstance(value, list):
        return each(value, lambda v: _concept(v, None, ctx))
    if not isinstance(value, dict):
        return None
    if "code" in value or "system" in value:  # a Coding: of a standard terminology only
        system, code = value.get("system"), value.get("code")
        if not isinstance(code, str) or not _CODE.fullmatch(code):
            return None
        if not isinstance(system, str) or not (
            system.startswith(STANDARD_SYSTEMS)
            or (system == "urn:ietf:rfc:3986" and code.startswith(_DICOM_CLASSES))
        ):
            return None
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in _CODING_KEYS:
            if isinstance(item, PRIMITIVE):
                out[key] = item
        elif key == "coding" or key == "concept":
            kept = _concept(item, None, ctx)
            if kept is not None:
                out[key] = kept
        elif key == "reference":
            kept = _reference(item, None, ctx)
            if kept is not None:
                out[key] = kept
    return out or None


def _date(value: Any, _: Any, ctx: _Ctx) -> Any:
    if isinstance(value, list):
        return each(value, lambda v: _date(v, None, ctx))
    if not isinstance(value, str) or len(value) < 4 or not value[:4].isdigit():
        return None
    if ctx.shift is None:
        return value[:4]  # the year profile, or a resource of no patient
    return ctx.engine._shifted(value, ctx.shift)


def _instant(value: Any, _: Any, ctx: _Ctx) -> Any:
    if ctx.shift is None:
        return None  # an instant cannot be a bare year
    return _date(value, None, ctx)


def _birth_date(value: Any, _: Any, ctx: _Ctx) -> Any:
    if not isinstance(value, str):
        return None
    try:
        born = date(int(value[:4]), int(value[5:7] or 1), int(value[8:10] or 1))
    except ValueError:
        return None
    today = ctx.engine.today
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if age >= 90:  # the earliest date the value allows: never under-counts an age
        ctx.extensions.append({"url": AGE_90_EXTENSION, "valueBoolean": True})
        return None
    return _date(value, None, ctx)


def _uid(value: Any, _: Any, ctx: _Ctx) -> str | None:
    if not isinstance(value, str):
        return None
    return f"2.25.{int.from_bytes(ctx.engine._mac_of(b'uid', value)[:16], 'big')}"


def _meta(value: Any, _: Any, ctx: _Ctx) -> Any:
    if not isinstance(value, dict):
        return None
    engine = ctx.engine
    out: dict[str, Any] = {}
    security = _concept(value.get("security"), None, ctx)
    if security is not None:
        out["security"] = security
    tags = value.get("tag")
    kept = [
        t
        for t in (tags if isinstance(tags, list) else ())
        if isinstance(t, dict) and t.get("system") in engine.profile.kept_tag_systems
    ]
    tagged = ({k: t[k] for k in ("system", "code") if isinstance(t.get(k), str)} for t in kept)
    out["tag"] = [*(t for t in tagged if _CODE.fullmatch(t.get("code", ""))), dict(engine._tag)]
    return out


def _contained(value: Any, _: Any, ctx: _Ctx) -> Any:
    if not isinstance(value, list):
        return None
    return [ctx.engine._resource(r, ctx, contained=True) for r in value] or None


def _entry_resource(value: Any, _: Any, ctx: _Ctx) -> Any:
    return ctx.engine._resource(value, ctx)


def _full_url(value: Any, _: Any, ctx: _Ctx) -> str | None:
    if isinstance(value, str) and value.startswith("urn:uuid:"):
        return ctx.engine._urn(value)
    return None  # a server's URL: it names the source; entries are matched by reference


def _identifier_pseudonym(value: Any, _: Any, ctx: _Ctx) -> Any:
    def one(ident: Any) -> Any:
        if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
            return None
        seen = f"{ident.get('system', '')}|{ident['value']}"
        return {"system": PSEUDONYM_SYSTEM, "value": ctx.engine.pseudonym("Identifier", seen)}

    return each(value, one)


_LEAVES: dict[str, Handler] = {
    "keep": keep, "id": _id, "reference": _reference, "date": _date, "instant": _instant,
    "birth_date": _birth_date, "concept": _concept, "address": address, "uid": _uid,
    "quantity": quantity,
    "meta": _meta, "contained": _contained, "resource": _entry_resource,
    "full_url": _full_url, "identifier_pseudonym": _identifier_pseudonym,
}  # fmt: skip
assert set(_LEAVES) == set(ACTIONS), "every documented action has a handler"


def _compile(rules: Mapping[str, str], profile: DeidProfile, seen: tuple[str, ...] = ()) -> Node:
    """The dispatch tree of one rules table: key → (handler, child tree)."""
    root: Node = {}
    for path, action in rules.items():
        *parents, last = path.split(".")
        node = root
        for part in parents:
            handler, child = node.setdefault(part, (_object, {}))
            if handler is not _object:
                raise InvalidInput(f"profile {profile.name}: {path} is under a leaf action")
            node = child
        if action in _LEAVES:
            node[last] = (_LEAVES[action], None)
        elif action in profile.datatypes and action not in seen:
            node[last] = (_object, _compile(profile.datatypes[action], profile, (*seen, action)))
        else:
            raise InvalidInput(
                f"profile {profile.name}: {path} has action {action!r}, which is neither an "
                f"action ({', '.join(ACTIONS)}) nor a data type ({', '.join(profile.datatypes)})"
            )
    return root


class Deidentifier:
    """De-identifies FHIR JSON with one profile and one study's 32-byte secret ``key``.

    Pseudonyms and date shifts are HMAC-SHA256 of the key: the same within a study, unlinkable
    across studies. ``today`` is the date ages are counted at (90 or more → birthDate
    dropped). The key is never in the repr. Example::

        deid = Deidentifier(DEID_PROFILES["hipaa-safe-harbor/1"], os.urandom(32))
        out = deid.deidentify({"resourceType": "Patient", "id": "p1", "birthDate": "1970-05-02"})
        # {"resourceType": "Patient", "id": "<32 hex>", "birthDate": "1970", "meta": …}
    """

    __slots__ = ("_cache", "_days", "_mac", "_nodes", "_shifts", "_tag", "profile", "today")

    def __init__(self, profile: DeidProfile, key: bytes, *, today: date | None = None) -> None:
        if not isinstance(key, bytes) or len(key) != 32:
            raise InvalidInput(
                "a study key is 32 bytes (os.urandom(32)), kept secret by the study's "
                "de-identification service"
            )
        self.profile = profile
        self.today = today or date.today()
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self._nodes = {
            rtype: _compile({**profile.common, **rules}, profile)
            for rtype, rules in profile.rules.items()
        }
        self._tag = {"system": DEID_TAG_SYSTEM, "code": profile.name}
        self._cache: dict[tuple[str, str], str] = {}
        self._shifts: dict[str, int] = {}
        self._days: dict[tuple[str, int], str] = {}

    def __repr__(self) -> str:
        return f"Deidentifier(profile={self.profile.name!r})"

    def _mac_of(self, kind: bytes, value: str) -> bytes:
        mac = self._mac.copy()
        mac.update(kind + b"\x00" + value.encode())
        return mac.digest()

    def pseudonym(self, kind: str, original_id: str) -> str:
        """The study pseudonym of ``original_id`` of ``kind`` (a resource type): 32 hex
        characters of HMAC-SHA256, a valid FHIR id."""
        cached = self._cache.get((kind, original_id))
        if cached is None:
            if len(self._cache) > 200_000:
                self._cache.clear()
            cached = self._mac_of(b"id:" + kind.encode(), original_id)[:16].hex()
            self._cache[kind, original_id] = cached
        return cached

    def _urn(self, urn: str) -> str:
        return f"urn:uuid:{uuid.UUID(bytes=self._mac_of(b'urn', urn)[:16], version=4)}"

    def date_shift_days(self, patient_ref: str) -> int:
        """The days (−365 to −1) every date of the patient ``patient_ref`` (``Patient/p1``,
        or an absolute URL ending in it) moves by; the same for all their resources."""
        found = _REF.search(patient_ref)
        key = f"{found[1]}/{found[2]}" if found else patient_ref
        shift = self._shifts.get(key)
        if shift is None:
            if len(self._shifts) > 200_000:
                self._shifts.clear()
            shift = -1 - int.from_bytes(self._mac_of(b"date-shift", key)[:8], "big") % SHIFT_DAYS
            self._shifts[key] = shift
        return shift

    def _shifted(self, value: str, days: int) -> str | None:
        delta = timedelta(days=days)
        try:
            if len(value) == 4:  # a year: shift its middle
                return f"{(date(int(value), 7, 1) + delta).year:04d}"
            if len(value) == 7:
                moved = date(int(value[:4]), int(value[5:7]), 15) + delta
                return f"{moved.year:04d}-{moved.month:02d}"
            day = self._days.get((value[:10], days))
            if day is None:  # a patient's resources share few days: shift each once
                if len(self._days) > 200_000:
                    self._days.clear()
                day = (date.fromisoformat(value[:10]) + delta).isoformat()
                self._days[value[:10], days] = day
            return day + value[10:]
        except ValueError:
            return None

    def _patient_of(self, obj: dict[str, Any], rtype: str, urls: Mapping[str, str]) -> str | None:
        if rtype == "Patient":
            rid = obj.get("id")
            return f"Patient/{rid}" if isinstance(rid, str) else None
        for name in ("subject", "patient", "beneficiary", "individual", "for"):
            ref = obj.get(name)
            ref = ref.get("reference") if isinstance(ref, dict) else None
            if isinstance(ref, str):
                ref = urls.get(ref, ref)
                found = _REF.search(ref)
                if found is not None and found[1] == "Patient":
                    return f"Patient/{found[2]}"
                if ref.startswith("urn:"):
                    return ref
        return None

    def _resource(
        self, obj: Any, parent: _Ctx | None = None, *, contained: bool = False
    ) -> dict[str, Any]:
        rtype = obj.get("resourceType") if isinstance(obj, dict) else None
        node = self._nodes.get(rtype) if isinstance(rtype, str) else None
        if node is None or not isinstance(rtype, str):
            raise InvalidInput(
                f"{rtype!r} resources have no rules in de-identification profile "
                f"{self.profile.name}: leave them out of the study's resource types, or add "
                "rules for them to the profile (docs/research.md)"
            )
        urls = parent.urls if parent is not None else {}
        if rtype == "Bundle":
            urls = _bundle_urls(obj)
        if contained and parent is not None:
            shift = parent.shift
        else:
            patient = self._patient_of(obj, rtype, urls)
            shift = (
                self.date_shift_days(patient)
                if patient is not None and self.profile.dates == "shift"
                else None
            )
        ctx = _Ctx(self, rtype, shift, urls, contained)
        try:
            out = _object1(obj, node, ctx) or {}
        except _Refused as exc:
            rid = obj.get("id")  # named by its pseudonym: messages get logged, ids are PHI
            shown = self.pseudonym(rtype, rid) if isinstance(rid, str) else "(no id)"
            raise InvalidInput(f"{rtype}/{shown} refused: {exc}") from None
        if ctx.extensions:
            out["extension"] = ctx.extensions
        return out

    def deidentify(self, resource: dict[str, Any]) -> dict[str, Any]:
        """A de-identified copy of one FHIR resource (a Bundle: of every entry); the input
        is not changed. :class:`InvalidInput` for a resource type the profile has no rules
        for, or one with a ``modifierExtension``."""
        return self._resource(resource)

    def deidentify_many(self, resources: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`deidentify` of each resource, in order."""
        return [self._resource(r) for r in resources]


def _bundle_urls(bundle: dict[str, Any]) -> dict[str, str]:
    """``fullUrl`` → ``Type/id`` of a Bundle's entries: what tells an entry's patient."""
    urls: dict[str, str] = {}
    entries = bundle.get("entry")
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict) or not isinstance(entry.get("fullUrl"), str):
            continue
        res = entry.get("resource")
        if isinstance(res, dict) and isinstance(res.get("id"), str):
            urls[entry["fullUrl"]] = f"{res.get('resourceType')}/{res['id']}"
    return urls
