"""Attachments of a ``DocumentReference``, ``Media`` or ``Binary``: taken out of the
resource as records of their own on import (inline ``data`` decoded, a local file its
``url`` names streamed from disk), and put back on read.

The resource keeps a marker naming each attachment record by its SHA-256: an extension on
the Attachment (:data:`ATTACHMENT_SHA256` for inline data, :data:`ATTACHMENT_FILE_SHA256`
for a stored file), or a ``meta.tag`` (:data:`BINARY_SHA256`) on a Binary, which has no
extensions.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emrshare._media import validate_media_type
from emrshare.errors import InvalidMediaType
from emrshare.fhir._resource import FhirResource

__all__ = [
    "ATTACHMENT_FILE_SHA256",
    "ATTACHMENT_SHA256",
    "BINARY_SHA256",
    "Attachment",
    "AttachmentProblem",
    "restore_attachments",
    "take_attachments",
]

#: The extension (on an Attachment) naming the record that holds its inline data (taken
#: out of the resource), by SHA-256.
ATTACHMENT_SHA256 = "https://emrshare.example/fhir/StructureDefinition/attachment-sha256"
#: The extension naming the record that holds the local file its ``url`` named.
ATTACHMENT_FILE_SHA256 = "https://emrshare.example/fhir/StructureDefinition/attachment-file-sha256"
#: The ``meta.tag`` system that does the same on a Binary.
BINARY_SHA256 = "https://emrshare.example/fhir/CodeSystem/attachment-sha256"


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attachment to store: its place among the resource's, media type and content."""

    index: int
    media_type: str
    content: bytes | Path = field(repr=False)


class AttachmentProblem(Exception):
    """An attachment that cannot be stored: ``path`` is its element, ``reason`` why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


def _attachments(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The Attachment elements of a DocumentReference (``content[].attachment``) or Media
    (``content``), with their paths."""
    if body["resourceType"] == "Media" and isinstance(body.get("content"), dict):
        return [("content", body["content"])]
    if body["resourceType"] == "DocumentReference":
        return [
            (f"content[{i}].attachment", c["attachment"])
            for i, c in enumerate(body.get("content") or [])
            if isinstance(c, dict) and isinstance(c.get("attachment"), dict)
        ]
    return []


def take_attachments(res: FhirResource) -> tuple[dict[str, Any], list[Attachment]]:
    """The resource's record body (inline data taken out, each attachment named by an
    extension) and a record per attachment. A resource of another type is its own body
    (not copied: nothing in it changes)."""
    if _MARKERS & _marker_urls(res.json):
        raise AttachmentProblem(
            "",
            "the resource already carries emrshare's attachment markers; import the EHR's export",
        )
    if res.resource_type not in ("Binary", "DocumentReference", "Media"):
        return res.json, []
    body = copy.deepcopy(res.json)
    out: list[Attachment] = []
    if res.resource_type == "Binary":
        if isinstance(body.get("data"), str):
            data = _decode(body.pop("data"), "data")
            meta = body.setdefault("meta", {})
            meta.setdefault("tag", []).append(
                {"system": BINARY_SHA256, "code": hashlib.sha256(data).hexdigest()}
            )
            kind = _media_type(body.get("contentType"), "contentType")
            out.append(Attachment(0, kind, data))
        return body, out
    for i, (path, att) in enumerate(_attachments(body)):
        if isinstance(att.get("data"), str):
            data = _decode(att.pop("data"), f"{path}.data")
            content: bytes | Path = data
            digest, marker = hashlib.sha256(data).hexdigest(), ATTACHMENT_SHA256
        elif isinstance(att.get("url"), str) and (local := _local_file(res, att["url"], path)):
            content, digest, marker = local, _file_sha256(local), ATTACHMENT_FILE_SHA256
        else:
            continue  # a remote URL stays a reference; nothing to store
        kind = _media_type(att.get("contentType"), f"{path}.contentType")
        att.setdefault("extension", []).append({"url": marker, "valueString": digest})
        out.append(Attachment(i, kind, content))
    return body, out


_MARKERS = {ATTACHMENT_SHA256, ATTACHMENT_FILE_SHA256, BINARY_SHA256}


def _marker_urls(body: dict[str, Any]) -> set[str]:
    urls = {str(t.get("system")) for t in (body.get("meta") or {}).get("tag") or []}
    for _, att in _attachments(body):
        urls |= {str(e.get("url")) for e in att.get("extension") or [] if isinstance(e, dict)}
    return urls


def _media_type(value: Any, path: str) -> str:
    """The attachment record's media type: its ``contentType``, refused here (as a problem
    of the resource) if no index entry can carry it, so an import never stops part-way."""
    kind = str(value or "application/octet-stream")
    try:
        return validate_media_type(kind)
    except InvalidMediaType as exc:
        raise AttachmentProblem(path, str(exc)) from exc


def _decode(data: str, path: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AttachmentProblem(path, f"attachment data is not base64 ({exc})") from exc


def _local_file(res: FhirResource, url: str, path: str) -> Path | None:
    """The file a relative (or ``file:``) attachment URL names, beside the input that
    holds the resource; ``None`` for a remote URL. A file outside the input's folder, or
    hidden (``.ssh/…``, a name starting with ``.``), is refused: an input must not make
    the importer publish an arbitrary local file."""
    if "://" in url and not url.startswith("file:"):
        return None
    if url.startswith(("urn:", "#", "data:")) or not res.source or res.source.startswith("<"):
        return None
    folder = Path(res.source).resolve().parent
    name = url.removeprefix("file://").removeprefix("file:")
    try:
        target = (folder / name).resolve()
        inside, is_file = target.is_relative_to(folder), target.is_file()
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long, a loop of links
        raise AttachmentProblem(
            f"{path}.url", f"the attachment url {url!r} names no file ({exc})"
        ) from exc
    if not inside:
        raise AttachmentProblem(
            f"{path}.url",
            f"the attachment file {url!r} is outside the folder of {res.source}; "
            "put the file beside the export",
        )
    if any(part.startswith(".") for part in target.relative_to(folder).parts):
        # An export saved in a home directory has ~/.ssh and the data dir in its folder.
        raise AttachmentProblem(
            f"{path}.url",
            f"the attachment file {url!r} is hidden (a name starting with '.'), as keys and "
            "settings are: an export's attachments are not; put the file beside the export",
        )
    if not is_file:
        raise AttachmentProblem(
            f"{path}.url", f"the attachment file {url!r} is not there beside {res.source}"
        )
    return target


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while piece := fh.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()


def restore_attachments(
    body: dict[str, Any], data_of: Callable[[str], bytes | None]
) -> dict[str, Any]:
    """The resource as it was imported: each attachment's data put back from the record
    ``data_of(sha256_hex)`` returns (the data left out, marker kept, when it returns
    ``None``: a record this reader cannot open), the markers of stored files removed."""
    out = copy.deepcopy(body)
    if out.get("resourceType") == "Binary":
        meta = out.get("meta") or {}
        for tag in [t for t in meta.get("tag") or [] if t.get("system") == BINARY_SHA256]:
            data = data_of(str(tag.get("code")))
            if data is not None:
                out["data"] = base64.b64encode(data).decode()
                _drop(meta, "tag", tag)
        if meta == {} and "meta" in out:
            del out["meta"]
        return out
    for _, att in _attachments(out):
        for ext in list(att.get("extension") or []):
            if ext.get("url") == ATTACHMENT_FILE_SHA256:
                _drop(att, "extension", ext)
            elif ext.get("url") == ATTACHMENT_SHA256:
                data = data_of(str(ext.get("valueString")))
                if data is not None:
                    att["data"] = base64.b64encode(data).decode()
                    _drop(att, "extension", ext)
    return out


def _drop(holder: dict[str, Any], key: str, item: Any) -> None:
    holder[key].remove(item)
    if not holder[key]:
        del holder[key]
