"""Local identities ("profiles") in a data directory: keystore, role, per-identity state.

One data directory (``--data-dir``, ``$EMRSHARE_DATA_DIR``, default ``~/.emrshare``) holds
any number of named profiles, so one machine can act as a patient, a hospital and an
insurer (the demo does)::

    <data-dir>/
      network.json               which chain, deployment, store and proxies to use
      profiles/<name>/
        profile.json             kind (patient | member), address, role
        keystore.json            the password-protected keys (0600)
        state/                   write journal, event cursors (per identity)
      devnet/                    state of ``emrshare devnet`` (anvil state, pids, logs, store)
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nacl.pwhash import argon2id

from emrshare._files import private_dir, read_json_object, tighten_data_dir, write_atomically
from emrshare.crypto import MemberKeys, PatientKeys, load_keystore, save_keystore
from emrshare.crypto.keys import bip39_entropy_to_mnemonic, bip39_mnemonic_to_entropy
from emrshare.errors import ConfigurationError, InvalidInput, ProfileExists, ProfileNotFound
from emrshare.roles._state import check_profile_doc
from emrshare.types import Address

__all__ = [
    "DEFAULT_PROFILE",
    "Kind",
    "Profile",
    "Profiles",
    "default_data_dir",
]

Kind = Literal["patient", "member"]
DEFAULT_PROFILE = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def default_data_dir() -> Path:
    """``$EMRSHARE_DATA_DIR`` or ``~/.emrshare``."""
    return Path(os.environ.get("EMRSHARE_DATA_DIR") or Path.home() / ".emrshare").expanduser()


@dataclass(frozen=True, slots=True)
class Profile:
    """One local identity: its name, kind, on-chain address and where its files live."""

    name: str
    kind: Kind
    address: Address
    directory: Path
    role: str | None = None

    @property
    def keystore_path(self) -> Path:
        return self.directory / "keystore.json"

    @property
    def state_dir(self) -> Path:
        """Per-identity state: the write journal and event cursors."""
        return self.directory / "state"


class Profiles:
    """The profiles of one data directory.

    Example::

        profiles = Profiles(Path("~/.emrshare").expanduser())
        profile, words = profiles.create("alice", "patient", password="…")
        keys = profiles.unlock("alice", "…")
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        # A data directory release 1 left group/world-readable is tightened, all of it.
        tighten_data_dir(self.data_dir)

    @property
    def network_path(self) -> Path:
        """The network configuration the CLI uses (written by ``emrshare devnet up``)."""
        return self.data_dir / "network.json"

    def _dir(self, name: str) -> Path:
        if not _NAME.match(name):
            raise InvalidInput(
                f"profile name {name!r} is not valid: use letters, digits, '.', '_' or '-'"
            )
        return self.data_dir / "profiles" / name

    def exists(self, name: str) -> bool:
        return (self._dir(name) / "profile.json").exists()

    def create(
        self,
        name: str,
        kind: Kind,
        password: str,
        *,
        role: str | None = None,
        mnemonic: str | None = None,
        ethereum_key: bytes | None = None,
        fast_kdf: bool = False,
        keys: PatientKeys | None = None,
    ) -> tuple[Profile, str]:
        """Create profile ``name`` with new keys (or keys restored from ``mnemonic``, or
        the patient ``keys`` given: a restored rotated identity).

        Returns the profile and the 24-word mnemonic that restores it: show it to the user
        once; it is not stored anywhere in clear. ``ethereum_key`` pins the Ethereum
        account (a funded development key); ``fast_kdf`` uses libsodium's INTERACTIVE
        argon2id cost instead of MODERATE (development networks only).
        """
        directory = self._dir(name)
        if (directory / "profile.json").exists():
            raise ProfileExists(
                name,
                f"profile {name!r} already exists in {self.data_dir}; pick another name "
                "or another data directory",
            )
        made: PatientKeys | MemberKeys
        if kind == "patient":
            made = keys or (
                PatientKeys.from_mnemonic(mnemonic, ethereum_key=ethereum_key)
                if mnemonic
                else PatientKeys(os.urandom(32), ethereum_key=ethereum_key)
            )
            words = made.to_mnemonic()
        elif kind == "member":
            seed = bip39_mnemonic_to_entropy(mnemonic) if mnemonic else os.urandom(32)
            made = MemberKeys(seed, ethereum_key=ethereum_key)
            words = bip39_entropy_to_mnemonic(made.seed)
        else:
            raise InvalidInput(f"unknown profile kind {kind!r}: use patient or member")
        private_dir(directory)
        limits = (
            {"opslimit": argon2id.OPSLIMIT_INTERACTIVE, "memlimit": argon2id.MEMLIMIT_INTERACTIVE}
            if fast_kdf
            else {}
        )
        save_keystore(directory / "keystore.json", made, password, **limits)
        profile = Profile(name, kind, made.address, directory, role)
        doc = {"name": name, "kind": kind, "address": made.address, "role": role}
        write_atomically(
            directory / "profile.json", json.dumps(doc, indent=2, sort_keys=True) + "\n"
        )
        return profile, words

    def get(self, name: str) -> Profile:
        """The profile called ``name``."""
        directory = self._dir(name)
        try:
            doc = read_json_object(directory / "profile.json", f"profile {name!r}")
        except FileNotFoundError:
            raise self._unknown(name, "no profile") from None
        kind, address, role = check_profile_doc(directory / "profile.json", doc)
        private_dir(directory)  # release 1 left profile directories 0755
        return Profile(name=name, kind=kind, address=address, directory=directory, role=role)

    def _unknown(self, name: str, what: str, *, reference: bool = False) -> ProfileNotFound:
        known = tuple(p.name for p in self.list())
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        suggestion = close[0] if close else None
        message = f"{what} {name!r} in {self.data_dir}"
        if suggestion is not None:
            message += f": did you mean {suggestion!r}?"
        else:
            message += f" (known: {', '.join(known) or 'none'})"
        return ProfileNotFound(
            name, message, known=known, suggestion=suggestion, reference=reference
        )

    def list(self) -> list[Profile]:
        """Every profile in the data directory, by name."""
        root = self.data_dir / "profiles"
        if not root.is_dir():
            return []
        return [self.get(p.name) for p in sorted(root.iterdir()) if (p / "profile.json").exists()]

    def set_role(self, name: str, role: str) -> Profile:
        """Record the consortium role a member profile was admitted with."""
        profile = self.get(name)
        doc = {"name": name, "kind": profile.kind, "address": profile.address, "role": role}
        write_atomically(
            profile.directory / "profile.json", json.dumps(doc, indent=2, sort_keys=True) + "\n"
        )
        return self.get(name)

    def unlock(self, name: str, password: str) -> PatientKeys | MemberKeys:
        """Open the keystore of ``name`` (raises ``KeystoreError`` on a wrong password)."""
        profile = self.get(name)
        keys = load_keystore(profile.keystore_path, password)
        if keys.address != profile.address:
            raise ConfigurationError(
                f"the keystore of profile {name!r} holds {keys.address}, not "
                f"{profile.address}; the profile directory was tampered with"
            )
        return keys

    def resolve(self, who: str) -> Address:
        """An address from ``who``: a checksummed/hex address or a local profile name."""
        from eth_utils.address import is_address, to_checksum_address

        if who.startswith("0x"):
            if not is_address(who):
                raise InvalidInput(f"{who!r} is not an Ethereum address")
            return Address(to_checksum_address(who))
        if not self.exists(who):
            raise self._unknown(who, "no address or profile", reference=True)
        return self.get(who).address
