"""The emergency (break-glass) read of a declaring clinician (issue 15), and the
consortium emergency key file a member hospital's emergency service holds.

The read opens the patient's opt-in (one sealed grantee map per tag, sealed to the
consortium emergency box key) to find the category's tag, keys and threshold, asks the
opt-in's proxies for capsule fragments under the declaration (each request signed by the
clinician), verifies every fragment against the opened map and decrypts each index entry
with the consortium emergency secret key. The proxies, not the key, are the gate:
refusals come back as :class:`~emrshare.errors.EmergencyRefused` named by the proxies'
reason (``declaration_expired``, ``not_declarer``, …).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

import umbral_pre

from emrshare._files import damaged, private_dir, read_json_object, write_atomically
from emrshare.categories import normalize_category
from emrshare.chain import EmergencyPolicyCreated, EntryAppended, Role
from emrshare.crypto import GranteeMap, MemberKeys, SealedEntry, open_grantee_map
from emrshare.crypto.grants import open_entry_as_grantee
from emrshare.errors import (
    AccessDenied,
    ConfigurationError,
    EmergencyRefused,
    EmrShareError,
    Unavailable,
)
from emrshare.network import Network
from emrshare.proxy import PolicyKeys, ProxyEndpoint, ThresholdPolicy
from emrshare.proxy.emergency import MAX_DEADLINE_AHEAD, EmergencyClient
from emrshare.proxy.request import MAX_BATCH
from emrshare.roles._blob_io import read_record
from emrshare.roles._common import checksum
from emrshare.roles._reads import MembershipCache, check_entry, verified_entries

__all__ = [
    "EMERGENCY_KEY_FILE",
    "EmergencyRead",
    "EmergencyRecord",
    "emergency_read",
    "load_emergency_key",
    "save_emergency_key",
]

#: Where a member keeps the consortium emergency key, in its state dir, when its
#: hospital's emergency service hands it one (the devnet does so for EMERGENCY members).
EMERGENCY_KEY_FILE = "emergency-key.json"
_KEY_FORMAT = "emrshare-emergency-key"
log = logging.getLogger("emrshare.emergency")
#: The contract logs at most 64 capsule hashes per serve: one request per 64 records.
_PER_REQUEST = min(64, MAX_BATCH)


def save_emergency_key(path: Path, keys: MemberKeys) -> Path:
    """Write the consortium emergency key (its seed) to ``path``, mode 0600, its directory
    0700. **Warning:** whoever holds it and M colluding proxies reads every opted-in
    category of every opted-in patient (docs/threat-model.md)."""
    path = Path(path)
    private_dir(path.parent)
    body = {"format": _KEY_FORMAT, "version": 1, "seed": keys.seed.hex()}
    write_atomically(path, json.dumps(body, sort_keys=True) + "\n")
    return path


def load_emergency_key(path: Path) -> MemberKeys:
    """The consortium emergency key from a file :func:`save_emergency_key` wrote
    (:class:`LocalStateError` if it is damaged, unsafe or of another format)."""
    path = Path(path)
    try:
        data = read_json_object(path, "emergency key file")
    except FileNotFoundError as exc:
        raise ConfigurationError(
            f"no emergency key file at {path}; ask your hospital's emergency service for it"
        ) from exc
    if data.get("format") != _KEY_FORMAT or data.get("version") != 1:
        raise damaged(path, "emergency key file", "not an emrshare emergency key, version 1")
    try:
        return MemberKeys(bytes.fromhex(str(data["seed"])))
    except (KeyError, ValueError, EmrShareError) as exc:
        raise damaged(path, "emergency key file", "the seed is not 32 bytes of hex") from exc


@dataclass(frozen=True, slots=True)
class EmergencyRecord:
    """One record read in an emergency: its id, category, media type, author, when it was
    written (unix seconds) and its verified plaintext."""

    record_id: str
    category: str
    media_type: str
    author: str
    created_at: int
    content: bytes = field(repr=False)


def _refused(exc: AccessDenied, declaration_id: int) -> EmergencyRefused:
    reasons = Counter(exc.reasons.values())
    reason = reasons.most_common(1)[0][0] if reasons else "refused"
    return EmergencyRefused(
        reason,
        {"declarationId": declaration_id},
        f"the proxies refused emergency declaration {declaration_id} ({reason}): {exc}",
    )


@dataclass(frozen=True, slots=True)
class EmergencyRead(Sequence[EmergencyRecord]):
    """What an emergency read of one category returned: its records (iterate, index or
    ``len`` it as a sequence of :class:`EmergencyRecord`), the epochs of the category the
    patient's opt-in covers (``epochs``), and whether records may be missing.

    ``may_be_incomplete`` is True when records exist under the **last** epoch the opt-in
    covers: the patient may since have moved the category to a later epoch (a revocation),
    whose records the opt-in does not cover; ``warning`` then says so, and what to do."""

    records: tuple[EmergencyRecord, ...]
    category: str
    epochs: tuple[int, ...]
    may_be_incomplete: bool = False

    @property
    def warning(self) -> str | None:
        """Why records may be missing, or None."""
        if not self.may_be_incomplete:
            return None
        last = max(self.epochs)
        return (
            f"the patient's opt-in covers {self.category} up to epoch {last} and records of "
            f"epoch {last} exist: records after epoch {last} (if the patient moved on) are "
            "not covered; ask the patient (or a guardian) to opt in again"
        )

    @overload
    def __getitem__(self, i: int) -> EmergencyRecord: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[EmergencyRecord]: ...
    def __getitem__(self, i: int | slice) -> EmergencyRecord | Sequence[EmergencyRecord]:
        return self.records[i]

    def __len__(self) -> int:
        return len(self.records)


def _opt_in_maps(
    network: Network, keys: MemberKeys, patient: str, generation: int, category: str
) -> tuple[list[GranteeMap], EmergencyPolicyCreated]:
    """Every opened map of ``category`` in the opt-in (one per epoch), by epoch."""
    em = network.contracts.emergency
    profile = network.contracts.profiles.profile(patient)
    vk = umbral_pre.PublicKey.from_compressed_bytes(bytes(profile.verifying_key))
    for ev in em.events(EmergencyPolicyCreated, patient=patient, generation=generation):
        tags = {bytes(t) for t in ev.tags}
        found: dict[int, GranteeMap] = {}
        for sealed in ev.sealed_maps:
            try:
                gmap = open_grantee_map(bytes(sealed), keys, patient_verifying_key=vk)
            except EmrShareError:
                continue  # not sealed to this emergency key, or not the patient's
            if gmap.category == category and bytes(gmap.tag) in tags:
                found.setdefault(gmap.epoch, gmap)
        if found:
            return [found[e] for e in sorted(found)], ev
    raise EmergencyRefused(
        "category_not_opted_in",
        {"category": category},
        f"patient {patient}'s opt-in does not open {category} in an emergency",
    )


def emergency_read(
    network: Network,
    clinician_key: bytes,
    emergency_keys: MemberKeys,
    members: MembershipCache,
    declaration_id: int,
    category: str,
    *,
    retry_for: float = 10.0,
) -> EmergencyRead:
    """Every record of ``category`` of the declaration's patient, of every epoch the
    opt-in covers, read with M-of-N proxies' fragments under declaration
    ``declaration_id`` (see the module docstring); flagged (and logged) when records may
    be missing (:attr:`EmergencyRead.may_be_incomplete`)."""
    em = network.contracts.emergency
    umbral, _ = em.emergency_keys()
    if emergency_keys.receiving_public_key.to_compressed_bytes() != umbral:
        raise ConfigurationError(
            "the emergency key file does not hold the consortium's published emergency key; "
            "ask your hospital's emergency service for the current one"
        )
    d = em.declaration(declaration_id)  # Emergency_UnknownDeclaration if there is none
    patient = checksum(d.patient)
    category = normalize_category(category)
    gmaps, opt_in = _opt_in_maps(network, emergency_keys, patient, d.generation, category)
    block = network.chain.safe_block()
    events, _ = verified_entries(network.contracts.index, patient, block)
    registry = network.contracts.registry
    endpoints = tuple(
        ProxyEndpoint(p, registry.member(p).endpoint)
        for p in opt_in.proxies
        if registry.has_role(p, Role.PROXY)
    )
    reader = _TagReader(
        network, clinician_key, emergency_keys, members, declaration_id, patient, endpoints
    )
    out: list[EmergencyRecord] = []
    for gmap in gmaps:
        mine = [ev for ev in events if bytes(ev.tag) == bytes(gmap.tag)]
        if mine:
            out += reader.read(gmap, mine, retry_for)
    # Records under the last epoch covered: the patient may have moved past it since.
    last = bytes(gmaps[-1].tag)
    incomplete = any(bytes(ev.tag) == last for ev in events)
    result = EmergencyRead(tuple(out), category, tuple(g.epoch for g in gmaps), incomplete)
    if result.warning is not None:
        log.warning("emergency declaration %d: %s", declaration_id, result.warning)
    return result


@dataclass(frozen=True, slots=True)
class _TagReader:
    """Reads the entries of one tag of the opt-in through its proxies."""

    network: Network
    clinician_key: bytes = field(repr=False)
    emergency_keys: MemberKeys = field(repr=False)
    members: MembershipCache
    declaration_id: int
    patient: str
    endpoints: tuple[ProxyEndpoint, ...]

    def read(
        self, gmap: GranteeMap, mine: Sequence[EntryAppended], retry_for: float
    ) -> list[EmergencyRecord]:
        network, keys = self.network, self.emergency_keys
        policy = ThresholdPolicy(
            bytes(gmap.policy_id),
            gmap.threshold,
            self.endpoints,
            PolicyKeys(
                gmap.patient_verifying_key_bytes,
                gmap.category_public_key_bytes,
                keys.receiving_public_key.to_compressed_bytes(),
            ),
        )
        client = EmergencyClient(
            self.clinician_key,
            chain_id=network.deployment.chain_id,
            grants_contract=network.deployment.address_of("Grants"),
            emergency_contract=network.contracts.emergency.address,
            declaration_id=self.declaration_id,
            tag=bytes(gmap.tag),
            transport=network.proxy_transport,
        )
        # Well within what proxies accept (MAX_DEADLINE_AHEAD), with room for retries.
        deadline = network.chain_time() + MAX_DEADLINE_AHEAD // 2
        out: list[EmergencyRecord] = []
        for start in range(0, len(mine), _PER_REQUEST):
            batch = mine[start : start + _PER_REQUEST]
            sealed = [SealedEntry.from_bytes(bytes(ev.entry)) for ev in batch]
            until = time.monotonic() + retry_for
            while True:
                try:
                    result = client.reencrypt_sync(
                        policy, [s.capsule for s in sealed], deadline=deadline
                    )
                    break
                except AccessDenied as exc:
                    raise _refused(exc, self.declaration_id) from exc
                except Unavailable:  # a proxy has not indexed the newest entries yet
                    if time.monotonic() >= until:
                        raise
                    time.sleep(0.2)
            for i, (ev, s) in enumerate(zip(batch, sealed, strict=True)):
                entry = open_entry_as_grantee(s, keys, gmap, result.cfrags[i], origin=ev)
                entry = check_entry(entry, ev, self.patient, gmap.epoch, self.members)
                out.append(
                    EmergencyRecord(
                        "0x" + bytes(entry.record_id).hex(),
                        entry.category,
                        entry.media_type,
                        checksum(entry.author),
                        entry.created_at,
                        read_record(network.store, entry),
                    )
                )
        return out
