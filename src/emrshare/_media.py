"""What a record's media type may be: shared by the index entry (which carries it) and the
FHIR importer (which must refuse an attachment's ``contentType`` before it writes anything,
not part-way through an import)."""

from __future__ import annotations

from emrshare.errors import InvalidMediaType

__all__ = [
    "MAX_MEDIA_TYPE_BYTES",
    "MEDIA_TYPE_CODES",
    "media_type_code",
    "media_type_of",
    "validate_media_type",
]

#: The longest media type an entry carries (RFC 6838: 127 characters per name part).
MAX_MEDIA_TYPE_BYTES = 127


def validate_media_type(media_type: str) -> str:
    """Return ``media_type`` if it is a usable media type, else raise
    :class:`InvalidMediaType` (a ``ValueError``).

    A media type is 1 to :data:`MAX_MEDIA_TYPE_BYTES` (127, RFC 6838's limit for each of
    type and subtype) printable ASCII characters, e.g. ``application/fhir+json``. The
    limit lets every index entry be padded to one size, so its length does not tell a
    PDF from a FHIR bundle.
    """
    if (
        not isinstance(media_type, str)
        or not media_type
        or len(media_type) > MAX_MEDIA_TYPE_BYTES
        or not all(" " <= c <= "~" for c in media_type)
    ):
        raise InvalidMediaType(
            f"{media_type!r} is not a usable media type: use 1 to {MAX_MEDIA_TYPE_BYTES} "
            "printable ASCII characters such as 'application/pdf'"
        )
    return media_type


#: The media types a compact (1.2) index entry names by a one-byte code. The codes are part
#: of the wire format: never renumber or reuse one; append new types at the end. An entry of
#: any other media type is written in the padded 1.1 format (857 bytes sealed instead of
#: 333), which tells a chain observer that its media type is not one of these.
MEDIA_TYPE_CODES: dict[str, int] = {
    "application/fhir+json": 1,
    "application/fhir+xml": 2,
    "application/json": 3,
    "application/xml": 4,
    "application/pdf": 5,
    "application/octet-stream": 6,
    "application/dicom": 7,
    "application/hl7-v2": 8,
    "application/zip": 9,
    "text/plain": 10,
    "text/csv": 11,
    "text/html": 12,
    "text/markdown": 13,
    "text/xml": 14,
    "image/jpeg": 15,
    "image/png": 16,
    "image/tiff": 17,
    "image/gif": 18,
    "image/webp": 19,
    "audio/mpeg": 20,
    "audio/wav": 21,
    "video/mp4": 22,
    "application/cbor": 23,
    "application/ld+json": 24,
}
_BY_CODE = {code: media for media, code in MEDIA_TYPE_CODES.items()}


def media_type_code(media_type: str) -> int | None:
    """The one-byte code of ``media_type`` in :data:`MEDIA_TYPE_CODES`, or None."""
    return MEDIA_TYPE_CODES.get(media_type)


def media_type_of(code: int) -> str | None:
    """The media type a code stands for, or None for an unassigned code."""
    return _BY_CODE.get(code)
