"""EIP-712 typed data as eth-account signs it, for the contracts' domains (name, version
``1``, chain id, verifying contract): one place for the domain's shape."""

from __future__ import annotations

from typing import Any

from eth_utils.address import to_checksum_address

__all__ = ["DOMAIN_TYPE", "typed_data"]

#: ``EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)``.
DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def typed_data(
    name: str,
    chain_id: int,
    contract: str,
    primary: str,
    fields: list[tuple[str, str]],
    message: dict[str, Any],
    *,
    version: str = "1",
    types: dict[str, list[dict[str, str]]] | None = None,
) -> dict[str, Any]:
    """The full message of ``primary`` (``fields``: its ``(name, type)`` list; ``types``:
    any other struct types it uses) in the domain ``name`` of ``contract`` on ``chain_id``."""
    return {
        "domain": {
            "name": name,
            "version": version,
            "chainId": chain_id,
            "verifyingContract": to_checksum_address(contract),
        },
        "types": {
            "EIP712Domain": DOMAIN_TYPE,
            primary: [{"name": n, "type": t} for n, t in fields],
            **(types or {}),
        },
        "primaryType": primary,
        "message": message,
    }
