"""``read_fhir``: a grantee's FHIR records back as ``fhir.resources`` objects, opened and
checked as every read is (proxies' capsule fragments, the entry against its chain event,
the author's signature, the CID, the AEAD, the plaintext SHA-256)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from emrshare.crypto import IndexEntry
from emrshare.errors import InvalidFhir, InvalidInput
from emrshare.fhir import FhirResource, FhirVersion, parse_model
from emrshare.fhir.importer import record_resources, restore_attachments
from emrshare.roles._blob_io import read_record
from emrshare.roles._listing import open_granted_sync
from emrshare.roles._reads import GrantedReader
from emrshare.types import FhirProblem

__all__ = ["Attachments", "Versions", "read_fhir"]

#: How ``read_fhir`` returns attachments: as stored (a marker extension naming the
#: attachment record), or with their data put back as the EHR exported it.
Attachments = Literal["reference", "inline"]
#: Which records of one resource ``read_fhir`` returns: the last written, or every one.
Versions = Literal["latest", "all"]


def read_fhir(
    reader: GrantedReader,
    patient: str,
    *,
    category: str | None = None,
    resource_types: Sequence[str] | None = None,
    encounter: str | None = None,
    attachments: Attachments = "reference",
    versions: Versions = "latest",
) -> list[Any]:
    """Every FHIR resource of ``patient``'s records that this member's active grants
    cover (of ``category``, ``resource_types`` and ``encounter`` if given), in index
    order, parsed and validated as the version its record's media type names.

    ``versions="latest"`` keeps, of the records holding one ``Type/id``, the one written
    last (a re-import of a new version is a new record; nothing is deleted); ``"all"``
    returns each, oldest first."""
    if attachments not in ("reference", "inline"):
        raise InvalidInput(f"attachments is 'reference' or 'inline', not {attachments!r}")
    if versions not in ("latest", "all"):
        raise InvalidInput(f"versions is 'latest' or 'all', not {versions!r}")
    entries = open_granted_sync(reader, patient, category)
    fhir: list[tuple[IndexEntry, FhirVersion]] = []
    # An import stores an attachment in its resource's category, by the same author: a
    # marker is looked up there only, so a record cannot pull in another category's (or
    # another author's) bytes by naming their SHA-256.
    stored: dict[tuple[str, str, str], IndexEntry] = {}
    for entry in entries.values():
        version = FhirVersion.of_media_type(entry.media_type)
        if version is None:
            stored[(entry.author, entry.category, entry.plaintext_sha256.hex())] = entry
        else:
            fhir.append((entry, version))
    types = set(resource_types) if resource_types else None

    found: list[tuple[tuple[int, int], str | None, Any]] = []
    for position, (entry, version) in enumerate(fhir):

        def data_of(digest: str, of: IndexEntry = entry) -> bytes | None:
            found = stored.get((of.author, of.category, digest))
            return read_record(reader.network.store, found) if found is not None else None

        for body in _resources(read_record(reader.network.store, entry), entry):
            res = FhirResource(str(body.get("resourceType")), body.get("id"), None, version, body)
            if types is not None and res.resource_type not in types:
                continue
            if encounter is not None and res.encounter != encounter:
                continue
            if attachments == "inline":
                body = restore_attachments(body, data_of)
            key = f"{res.resource_type}/{res.id}" if isinstance(res.id, str) else None
            try:
                found.append(((entry.created_at, position), key, parse_model(body, version)))
            except InvalidFhir as exc:
                raise _not_fhir(
                    entry, f"it holds an invalid {version.label} resource", exc
                ) from exc
    if versions == "all":
        return [model for _, _, model in found]
    newest: dict[str, tuple[int, int]] = {}
    for when, key, _ in found:
        if key is not None:
            newest[key] = max(newest.get(key, when), when)
    return [model for when, key, model in found if key is None or newest[key] == when]


def _not_fhir(entry: IndexEntry, why: str, exc: InvalidFhir | None = None) -> InvalidFhir:
    """The refusal of a record whose media type says FHIR JSON but whose content is not:
    it names the record and its author, and says what a reader can do."""
    record = f"record 0x{bytes(entry.record_id).hex()}"
    first = exc.problems[0] if exc is not None and exc.problems else None
    problem = FhirProblem(
        record,
        "",
        first.resource if first else "",
        first.path if first else "",
        first.reason if first else why,
    )
    detail = (
        f" ({first.resource or 'resource'} at {first.path or '/'}: {first.reason})" if first else ""
    )
    return InvalidFhir(
        [problem],
        f"{record} (by {entry.author}) says it is {entry.media_type} but {why}{detail}; "
        "read it as bytes with read() and ask its author to correct it",
    )


def _resources(data: bytes, entry: IndexEntry) -> list[dict[str, Any]]:
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise _not_fhir(entry, f"is not JSON ({exc})") from exc
    except RecursionError as exc:
        raise _not_fhir(entry, "is JSON nested too deeply to be FHIR") from exc
    if not isinstance(obj, dict):
        raise _not_fhir(entry, "is not a JSON object")
    return record_resources(obj)
