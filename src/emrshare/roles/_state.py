"""The small JSON files of the roles (``profile.json``, ``patient.json``), checked on read.

A file of the right syntax but the wrong shape (a list, a string address, a negative or
boolean epoch, a category the crypto core would refuse, an epoch so large that deriving
its tags would never end) is a :class:`~emrshare.errors.LocalStateError` naming the file,
never a ``KeyError`` or ``TypeError`` from deep inside a command, and never silently
accepted. Nothing here writes to a damaged file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from emrshare._files import damaged, read_json_object, write_atomically
from emrshare.crypto import validate_category
from emrshare.types import Address

__all__ = [
    "MAX_LOCAL_EPOCH",
    "MAX_LOCAL_TAGS",
    "check_profile_doc",
    "load_epochs",
    "save_epochs",
]

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
#: A category's epoch moves up by one per revocation; more than this is damage, and would
#: make the patient derive an unbounded number of tags.
MAX_LOCAL_EPOCH = 100_000
#: Every (category, epoch) the patient derives a tag for, summed over categories.
MAX_LOCAL_TAGS = 1_000_000


def check_profile_doc(
    path: Path, doc: dict[str, Any]
) -> tuple[Literal["patient", "member"], Address, str | None]:
    """``(kind, address, role)`` of a parsed ``profile.json``, or ``LocalStateError``."""
    kind = doc.get("kind")
    if kind not in ("patient", "member"):
        raise damaged(path, "profile", f"kind is {_show(kind)}, not 'patient' or 'member'")
    address = doc.get("address")
    if not isinstance(address, str) or not _ADDRESS.match(address):
        raise damaged(path, "profile", f"address is {_show(address)}, not a 0x… address")
    role = doc.get("role")
    if role is not None and (not isinstance(role, str) or not 0 < len(role) <= 64):
        raise damaged(path, "profile", f"role is {_show(role)}, not a role name")
    return kind, Address(address), role


def load_epochs(path: Path) -> dict[str, int]:
    """The category epochs in a patient's ``patient.json`` (``{}`` if there is none)."""
    try:
        data = read_json_object(path, "patient state")
    except FileNotFoundError:
        return {}
    epochs = data.get("epochs")
    if not isinstance(epochs, dict):
        raise damaged(path, "patient state", f"'epochs' is {_show(epochs)}, not an object")
    out: dict[str, int] = {}
    for category, epoch in epochs.items():
        try:
            validate_category(category)
        except ValueError:
            raise damaged(
                path, "patient state", f"{_show(category)} is not a category name"
            ) from None
        if not isinstance(epoch, int) or isinstance(epoch, bool):
            raise damaged(
                path, "patient state", f"the epoch of {category!r} is {_show(epoch)}, not a number"
            )
        if not 0 <= epoch <= MAX_LOCAL_EPOCH:
            raise damaged(
                path,
                "patient state",
                f"the epoch of {category!r} is {epoch}, outside 0..{MAX_LOCAL_EPOCH}",
            )
        out[category] = epoch
    if sum(e + 1 for e in out.values()) > MAX_LOCAL_TAGS:
        raise damaged(path, "patient state", f"more than {MAX_LOCAL_TAGS} category epochs")
    return out


def save_epochs(path: Path, epochs: dict[str, int]) -> None:
    """Replace ``patient.json`` atomically (0600; a symlink there is replaced, not
    followed)."""
    write_atomically(path, json.dumps({"epochs": epochs}, indent=2, sort_keys=True))


def _show(value: object) -> str:
    text = repr(value) if isinstance(value, str) else type(value).__name__
    if isinstance(value, bool | int | float) or value is None:
        text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"
