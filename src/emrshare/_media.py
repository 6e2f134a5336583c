"""What a record's media type may be: shared by the index entry (which carries it) and the
FHIR importer (which must refuse an attachment's ``contentType`` before it writes anything,
not part-way through an import)."""

from __future__ import annotations

from emrshare.errors import InvalidMediaType

__all__ = ["MAX_MEDIA_TYPE_BYTES", "validate_media_type"]

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
