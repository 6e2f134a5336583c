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
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import umbral_pre

from emrshare._files import damaged, private_dir, read_json_object, write_atomically
from emrshare.categories import normalize_category
from emrshare.chain import EmergencyPolicyCreated, Role
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
from emrshare.roles._common import checksum
from emrshare.roles._reads import MembershipCache, check_entry, read_record, verified_entries

__all__ = [
    "EMERGENCY_KEY_FILE",
    "EmergencyRecord",
    "emergency_read",
    "load_emergency_key",
    "save_emergency_key",
]

#: Where a member keeps the consortium emergency key, in its state dir, when its
#: hospital's emergency service hands it one (the devnet does so for EMERGENCY members).
EMERGENCY_KEY_FILE = "emergency-key.json"
_KEY_FORMAT = "emrshare-emergency-key"
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


def _opt_in_map(
    network: Network, keys: MemberKeys, patient: str, generation: int, category: str
) -> tuple[GranteeMap, EmergencyPolicyCreated]:
    em = network.contracts.emergency
    profile = network.contracts.profiles.profile(patient)
    vk = umbral_pre.PublicKey.from_compressed_bytes(bytes(profile.verifying_key))
    for ev in em.events(EmergencyPolicyCreated, patient=patient, generation=generation):
        for sealed in ev.sealed_maps:
            try:
                gmap = open_grantee_map(bytes(sealed), keys, patient_verifying_key=vk)
            except EmrShareError:
                continue  # not sealed to this emergency key, or not the patient's
            if gmap.category == category and bytes(gmap.tag) in {bytes(t) for t in ev.tags}:
                return gmap, ev
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
) -> list[EmergencyRecord]:
    """Every record of ``category`` of the declaration's patient, read with M-of-N
    proxies' fragments under declaration ``declaration_id`` (see the module docstring)."""
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
    gmap, opt_in = _opt_in_map(network, emergency_keys, patient, d.generation, category)
    block = network.chain.safe_block()
    events, _ = verified_entries(network.contracts.index, patient, block)
    mine = [ev for ev in events if bytes(ev.tag) == bytes(gmap.tag)]
    if not mine:
        return []
    registry = network.contracts.registry
    endpoints = [
        ProxyEndpoint(p, registry.member(p).endpoint)
        for p in opt_in.proxies
        if registry.has_role(p, Role.PROXY)
    ]
    policy = ThresholdPolicy(
        bytes(gmap.policy_id),
        gmap.threshold,
        tuple(endpoints),
        PolicyKeys(
            gmap.patient_verifying_key_bytes,
            gmap.category_public_key_bytes,
            emergency_keys.receiving_public_key.to_compressed_bytes(),
        ),
    )
    client = EmergencyClient(
        clinician_key,
        chain_id=network.deployment.chain_id,
        grants_contract=network.deployment.address_of("Grants"),
        emergency_contract=em.address,
        declaration_id=declaration_id,
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
                raise _refused(exc, declaration_id) from exc
            except Unavailable:  # a proxy has not indexed the newest entries yet
                if time.monotonic() >= until:
                    raise
                time.sleep(0.2)
        for i, (ev, s) in enumerate(zip(batch, sealed, strict=True)):
            entry = open_entry_as_grantee(s, emergency_keys, gmap, result.cfrags[i])
            entry = check_entry(entry, ev, patient, gmap.epoch, members)
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
