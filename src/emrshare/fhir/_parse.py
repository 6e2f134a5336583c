"""Reading FHIR input: Bundles, Bulk Data NDJSON and single resources, each resource
validated with ``fhir.resources`` as one FHIR version (named, or detected).

Every resource is validated on its own, so a refusal names its file, its place in the
file (``entry[3].resource``, ``line 17``), its ``Type/id`` and the element that failed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pydantic
from fhir.resources import get_fhir_model_class as _r5_model
from fhir.resources.R4B import get_fhir_model_class as _r4b_model

from emrshare.errors import InvalidFhir, InvalidInput, MixedFhirVersions
from emrshare.fhir._resource import FhirResource, FhirVersion, canonical_json
from emrshare.types import FhirProblem

__all__ = ["OnInvalid", "ParseResult", "parse_model", "read_resources", "validate_json"]

#: What an import does with an invalid resource: refuse the whole input, or skip it.
OnInvalid = Literal["stop", "skip"]

_NDJSON = {".ndjson", ".jsonl"}
# Bundle entries of these search modes carry no patient data (an OperationOutcome).
_NOT_DATA_MODES = {"outcome"}


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What :func:`read_resources` read: the valid resources (in input order, each
    identity once), the refused ones, and the version they were read as."""

    resources: list[FhirResource]
    problems: list[FhirProblem] = field(default_factory=list)
    version: FhirVersion = FhirVersion.R4


@dataclass(slots=True)
class _Item:
    obj: Any
    source: str
    location: str
    full_url: str = ""
    error: dict[FhirVersion, FhirProblem | None] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if not isinstance(self.obj, dict):
            return ""
        rtype, rid = self.obj.get("resourceType"), self.obj.get("id")
        if not isinstance(rtype, str):
            return ""
        return f"{rtype}/{rid}" if isinstance(rid, str) else rtype


def _model_class(resource_type: str, version: FhirVersion) -> Any:
    get = _r5_model if version is FhirVersion.R5 else _r4b_model
    try:
        return get(resource_type)
    except (ValueError, KeyError, AttributeError):
        return None


def _path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _check(
    obj: Any, version: FhirVersion, source: str, location: str, label: str
) -> FhirProblem | None:
    """The problem with ``obj`` as a ``version`` resource, or ``None`` if it is valid."""
    return _validated(obj, version, source, location, label)[1]


def _validated(
    obj: Any, version: FhirVersion, source: str, location: str, label: str
) -> tuple[Any, FhirProblem | None]:
    """``obj`` as its ``fhir.resources`` model, or the problem that refuses it."""

    def problem(path: str, reason: str) -> tuple[Any, FhirProblem]:
        return None, FhirProblem(source, location, label, path, reason)

    if not isinstance(obj, dict):
        return problem("", "not a JSON object")
    rtype = obj.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        return problem("resourceType", "missing: every FHIR resource names its resourceType")
    model = _model_class(rtype, version)
    if model is None:
        return problem("resourceType", f"{rtype!r} is not a FHIR {version.label} resource type")
    if _too_deep(obj, _MAX_RESOURCE_DEPTH):
        return problem("", _TOO_DEEP)
    try:
        return model.model_validate(obj), None
    except pydantic.ValidationError as exc:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": str(exc)}
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return problem(_path(first.get("loc", ())), f"{first.get('msg', 'invalid')}{more}")
    except (ValueError, TypeError) as exc:  # fhir.resources' own checks
        return problem("", " ".join(str(exc).split())[:300])
    except RecursionError:  # its validators recurse in Python, one call per element
        return problem("", _TOO_DEEP)


def validate_json(obj: Mapping[str, Any], version: FhirVersion) -> None:
    """Check one resource (a JSON object) as ``version``: :class:`InvalidFhir` naming the
    failing element if it is not valid."""
    parse_model(obj, version)


def parse_model(
    resource: FhirResource | Mapping[str, Any], version: FhirVersion | None = None
) -> Any:
    """The ``fhir.resources`` object of ``resource`` (R4 and R4B: the ``fhir.resources.R4B``
    models; R5: ``fhir.resources``). ``version`` defaults to the resource's own (R4 for a
    plain mapping). :class:`InvalidFhir` if it does not validate."""
    if isinstance(resource, FhirResource):
        obj, version = resource.json, version or resource.version
    else:
        obj, version = dict(resource), version or FhirVersion.R4
    model, found = _validated(obj, version, "<input>", "", _Item(obj, "<input>", "").label)
    if found is not None:
        raise InvalidFhir([found])
    return model


def read_own_record(
    data: bytes, resource_type: str, *, kind: str, max_bytes: int
) -> dict[str, Any]:
    """The R4 resource of type ``resource_type`` in a record's bytes, validated: the first
    check of every reader of a document emrshare writes (a claim, a prescription, an
    adverse-event report). ``kind`` names it in the :class:`InvalidInput` ("a claim")."""
    if len(data) > max_bytes:
        raise InvalidInput(f"the record is not {kind} (larger than any)")
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidInput(f"the record is not {kind} (not JSON)") from exc
    if not isinstance(obj, dict) or obj.get("resourceType") != resource_type:
        raise InvalidInput(f"the record is not {kind} (not a FHIR {resource_type})")
    parse_model(obj, FhirVersion.R4)
    return obj


# -- reading sources ----------------------------------------------------------------------


def _open_json(path: Path, source: str) -> Iterator[tuple[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFhir(
            [FhirProblem(source, "", "", "", f"not UTF-8 text ({exc.reason})")]
        ) from exc
    if path.suffix.lower() in _NDJSON:
        yield from _ndjson(text)
        return
    try:
        yield "", json.loads(text)
    except json.JSONDecodeError as exc:
        if text.lstrip().startswith("{") and "\n{" in text.strip():
            yield from _ndjson(text)  # NDJSON under a .json name
            return
        yield f"line {exc.lineno}", _NotJson(exc.msg)
    except RecursionError:
        yield "", _NotJson(_TOO_DEEP)


#: Why JSON nested deeper than the parser recurses is refused (no FHIR resource nests so).
_TOO_DEEP = "the JSON is nested too deeply to be a FHIR resource"
#: The deepest resource (objects and arrays) validated: fhir.resources' validators recurse
#: in Python, several calls a level, so a deeper one would raise RecursionError or not
#: depending on the caller's stack. A Questionnaire nesting items 30 deep takes about 90.
_MAX_RESOURCE_DEPTH = 128
#: The deepest input read at all (Bundles nest); deeper, a mapping passed in overflowed
#: the C stack inside the validators (a crash, not an exception). A file's parser stops
#: before it.
_MAX_DEPTH = 512


def _too_deep(obj: Any, limit: int = _MAX_DEPTH) -> bool:
    """Whether ``obj`` nests more than ``limit`` levels (counted without recursion, which
    is what it guards)."""
    level: list[Any] = [obj]
    for _ in range(limit + 1):
        level = [
            v
            for x in level
            for v in (x.values() if isinstance(x, dict) else x if isinstance(x, list) else ())
            if isinstance(v, (dict, list))
        ]
        if not level:
            return False
    return True


class _NotJson:
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _ndjson(text: str) -> Iterator[tuple[str, Any]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"line {number}", json.loads(line)
        except json.JSONDecodeError as exc:
            yield f"line {number}", _NotJson(exc.msg)
        except RecursionError:
            yield f"line {number}", _NotJson(_TOO_DEEP)


def _is_manifest(obj: Any) -> bool:
    """A Bulk Data ``$export`` complete-status response (``output: [{type, url}]``)."""
    return (
        isinstance(obj, dict)
        and "resourceType" not in obj
        and isinstance(obj.get("output"), list)
        and "transactionTime" in obj
    )


def _manifest_files(obj: dict[str, Any], base: Path, source: str) -> list[Path]:
    """The NDJSON files a manifest names, each inside the manifest's folder (as an
    attachment file must be: a manifest must not make the importer read other files)."""
    files = []
    folder = base.resolve()
    for i, out in enumerate(obj["output"]):
        url = out.get("url") if isinstance(out, dict) else None
        if not isinstance(url, str) or "://" in url:
            raise InvalidInput(
                f"{source}: output[{i}] of the Bulk Data manifest is not a local file url "
                "(download the export first, then import the manifest or its NDJSON files)"
            )
        try:
            target = (folder / url).resolve()
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{source}: output[{i}].url {url!r} names no file ({exc})") from exc
        if not target.is_relative_to(folder):
            raise InvalidInput(
                f"{source}: output[{i}].url {url!r} is outside the folder of the manifest; "
                "put the NDJSON files beside it"
            )
        files.append(target)
    return files


def _flatten(obj: Any, source: str, location: str, full_url: str = "") -> Iterator[_Item]:
    """``obj`` and, for a Bundle, the resources of its entries (nested bundles too), each
    with its entry's ``fullUrl``."""
    if not (isinstance(obj, dict) and obj.get("resourceType") == "Bundle"):
        yield _Item(obj, source, location, full_url)
        return
    entries = obj.get("entry", [])
    if not isinstance(entries, list):
        yield _Item(obj, source, location)  # validation names the broken element
        return
    prefix = f"{location}." if location else ""
    for i, entry in enumerate(entries):
        where = f"{prefix}entry[{i}]"
        if not isinstance(entry, dict):
            yield _Item(_NotJson("a Bundle entry is not a JSON object"), source, where)
            continue
        search = entry.get("search")
        if isinstance(search, dict) and search.get("mode") in _NOT_DATA_MODES:
            continue
        request = entry.get("request")
        method = request.get("method") if isinstance(request, dict) else None
        if method == "DELETE":
            yield _Item(_NotJson("a DELETE entry: records are never deleted"), source, where)
            continue
        if "resource" not in entry:
            continue  # a response or a search link without a resource
        url = entry.get("fullUrl")
        yield from _flatten(
            entry["resource"], source, f"{where}.resource", url if isinstance(url, str) else ""
        )


def _items(
    sources: Iterable[Path | str | Mapping[str, Any]], manifest: str | None = None
) -> Iterator[_Item]:
    """The items of ``sources``; ``manifest`` names the manifest they were listed in (its
    files hold resources, never another manifest: a manifest naming itself would loop)."""
    for src in sources:
        if isinstance(src, Mapping):
            loaded = dict(src)
            yield from _flatten(_NotJson(_TOO_DEEP) if _too_deep(loaded) else loaded, "<input>", "")
            continue
        path = Path(src)
        source = str(src)
        if not path.is_file():
            raise InvalidInput(f"{source}: no such FHIR file; give a .json or .ndjson file")
        for location, parsed in _open_json(path, source):
            obj: Any = _NotJson(_TOO_DEEP) if _too_deep(parsed) else parsed
            if not _is_manifest(obj):
                yield from _flatten(obj, source, location)
            elif manifest is not None:
                raise InvalidInput(
                    f"{manifest}: names {source}, another Bulk Data manifest; a manifest's "
                    "output files are NDJSON resources"
                )
            else:
                yield from _items(_manifest_files(obj, path.parent, source), source)


# -- versions -------------------------------------------------------------------------------


def _error(item: _Item, version: FhirVersion) -> FhirProblem | None:
    if version not in item.error:
        if isinstance(item.obj, _NotJson):
            item.error[version] = FhirProblem(item.source, item.location, "", "", item.obj.reason)
        else:
            item.error[version] = _check(item.obj, version, item.source, item.location, item.label)
    return item.error[version]


def _decide(items: list[_Item]) -> FhirVersion:
    """The version of an import that names none: R4 if every resource is valid as R4, else
    R5 if every resource valid as either is valid as R5; :class:`MixedFhirVersions` if
    some are valid only as R4 and others only as R5."""
    failed_r4 = [it for it in items if _error(it, FhirVersion.R4) is not None]
    only_r5 = [it for it in failed_r4 if _error(it, FhirVersion.R5) is None]
    if not only_r5:
        return FhirVersion.R4
    only_r4 = [
        it for it in items if _error(it, FhirVersion.R4) is None and _error(it, FhirVersion.R5)
    ]
    if not only_r4:
        return FhirVersion.R5
    minority, other = (only_r4, "R5") if len(only_r4) <= len(only_r5) else (only_r5, "R4")
    mine = "R4" if other == "R5" else "R5"
    raise MixedFhirVersions(
        [
            FhirProblem(
                it.source,
                it.location,
                it.label,
                "",
                f"valid only as {mine}, while {len(only_r5 if mine == 'R4' else only_r4)} "
                f"other resource(s) are valid only as {other}",
            )
            for it in minority
        ],
        f"the input mixes FHIR versions: {len(only_r4)} resource(s) are valid only as R4 and "
        f"{len(only_r5)} only as R5 (first: {minority[0].label or 'a resource'} in "
        f"{minority[0].source} {minority[0].location}); import each version on its own and "
        "name it (version='R4' or 'R5')",
    )


def read_resources(
    sources: Iterable[Path | str | Mapping[str, Any]],
    *,
    version: FhirVersion | str | None = None,
    on_invalid: OnInvalid = "stop",
) -> ParseResult:
    """Read and validate every resource of ``sources``.

    A source is a path — ``.json`` (a Bundle of any type, flattened with the bundles it
    nests, or one resource; a Bulk Data manifest: its NDJSON files), ``.ndjson`` /
    ``.jsonl`` (Bulk Data ``$export``: a resource per line) — or a mapping already
    loaded. Search entries of mode ``outcome`` are not data and are left out; a
    transaction's ``DELETE`` entry is refused (records are never deleted).

    ``version`` (``R4``, ``R4B``, ``R5``) names the FHIR version; ``None`` detects it
    (R4 unless only R5 accepts some resource) and refuses a mix with
    :class:`MixedFhirVersions`. The same resource twice is read once; two different
    resources of one ``Type/id`` and ``meta.versionId`` (or both without one) are
    refused. ``on_invalid="stop"`` raises :class:`InvalidFhir` naming every refused
    resource; ``"skip"`` returns them in
    ``problems`` beside the valid ones.

    Example::

        result = read_resources([Path("export/Observation.ndjson")], version="R4")
        for r in result.resources:
            print(r.reference, r.category_codes)
    """
    if on_invalid not in ("stop", "skip"):
        raise InvalidInput(f"on_invalid must be 'stop' or 'skip', not {on_invalid!r}")
    items = list(_items(sources))
    chosen = FhirVersion.parse(version) if version is not None else _decide(items)
    problems: list[FhirProblem] = []
    out: dict[str, FhirResource] = {}
    bodies: dict[str, bytes] = {}
    for it in items:
        found = _error(it, chosen)
        if found is not None:
            problems.append(found)
            continue
        res = _resource(it, chosen)
        body = canonical_json(it.obj)
        # Type/id and versionId (none: the same key), not the identity: without a
        # versionId the identity is the content's digest, and never clashes.
        key = f"{res.reference}/_history/{res.version_id or ''}" if res.id else res.identity
        if key not in bodies:
            bodies[key] = body
            out[key] = res
        elif bodies[key] != body:  # both refused: neither may win silently
            named = res.reference + (
                f"/_history/{res.version_id}" if res.version_id else " (no meta.versionId)"
            )
            for clash in (out.pop(key, None), res):
                if clash is not None:
                    problems.append(
                        FhirProblem(
                            clash.source,
                            clash.location,
                            clash.reference,
                            "meta.versionId",
                            f"two different resources of the input are {named}; give each "
                            "version its own meta.versionId",
                        )
                    )
    if problems and on_invalid == "stop":
        raise InvalidFhir(problems)
    return ParseResult(list(out.values()), problems, chosen)


def _resource(it: _Item, version: FhirVersion) -> FhirResource:
    obj = it.obj
    meta = obj.get("meta")
    vid = meta.get("versionId") if isinstance(meta, dict) else None
    rid = obj.get("id")
    return FhirResource(
        resource_type=obj["resourceType"],
        id=rid if isinstance(rid, str) else None,
        version_id=vid if isinstance(vid, str) else None,
        version=version,
        json=obj,
        source=it.source,
        location=it.location,
        full_url=it.full_url,
    )
