"""Ethereum addresses: the one EIP-55 checksum helper every layer uses.

Cached: the EIP-55 hash is costly, and a bulk write checks the same few addresses
(patient, author, writer) for every record. Invalid input raises and is never cached.
"""

from __future__ import annotations

import functools

from eth_utils.address import is_checksum_address, to_canonical_address, to_checksum_address

from emrshare.errors import InvalidInput
from emrshare.types import Address

__all__ = ["address_bytes", "checksum"]


@functools.lru_cache(maxsize=4096)
def checksum(address: str | bytes) -> Address:
    """The EIP-55 form of ``address`` (0x-hex in any case, or its 20 raw bytes).

    Raises :class:`~emrshare.errors.InvalidInput` (a ``ValueError``) for anything that is
    not an address: public methods take addresses from their callers.
    """
    try:
        return Address(to_checksum_address(address))
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"{address!r} is not an Ethereum address; give 0x followed by 40 hex digits"
        ) from exc


@functools.lru_cache(maxsize=4096)
def address_bytes(address: str) -> bytes:
    """The 20 bytes of an address that must already be in EIP-55 form (a wire format's
    field, where a wrong checksum means a typo or tampering)."""
    if not is_checksum_address(address):
        raise ValueError(f"{address!r} is not an EIP-55 checksummed address")
    return bytes(to_canonical_address(address))
