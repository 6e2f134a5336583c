"""A grantee's listing with what the index entries say (media type, size, creation time).

Those fields are inside the sealed index entry, which a grantee opens only with M
proxies' capsule fragments. So a detailed listing asks the proxies, as a read does, for
every entry under each *active* grant: one batched request per proxy and grant (up to
:data:`~emrshare.proxy.request.MAX_BATCH` capsules each). Each served request is a logged
access: it is on the patient's audit trail as one read of those records (which the
grantee can now decrypt: it holds their data keys). Entries under revoked or expired
grants, or that the proxies refuse or do not answer, keep their details unknown.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

from emrshare.categories import normalize_category
from emrshare.chain import EntryAppended, GrantCreated, GrantStatus
from emrshare.crypto import GranteeMap, IndexEntry, SealedEntry, open_entry_as_grantee
from emrshare.errors import AccessDenied, Unavailable
from emrshare.proxy import ThresholdPolicy, ThresholdResult
from emrshare.proxy.request import MAX_BATCH
from emrshare.roles._common import checksum, run_blocking
from emrshare.roles._reads import GrantedReader, Runner, check_entry, inline
from emrshare.roles._reports import keep_evidence
from emrshare.roles._scope import covers
from emrshare.types import Address

__all__ = ["open_granted", "open_granted_sync"]

log = logging.getLogger("emrshare.roles")

_Batch = tuple[GranteeMap, ThresholdPolicy, list[EntryAppended]]


def _batches(
    reader: GrantedReader, patient: Address, category: str | None
) -> tuple[list[_Batch], int]:
    """Per active grant (the newest of each tag, of ``category`` if given), its policy and
    the entries it covers, cut to ``MAX_BATCH``; and one chain deadline for all."""
    block, now = reader.at()
    chain = reader.patient_chain(patient, block)
    grants = reader.grant_events(patient, block)
    if category is not None:  # an alias ("lab") names its category, as in the listing
        category = normalize_category(category, known={gmap.category for _, gmap in grants})
    active = [
        (grant, gmap)
        for grant, gmap in grants
        if (category is None or gmap.category == category)
        and reader.status(grant, block) is GrantStatus.ACTIVE
    ]
    # Each entry is asked for under the newest active grant that names it: a tag's
    # newest grant of the whole tag, else the newest scoped grant listing the record.
    chosen: dict[bytes, tuple[GrantCreated, GranteeMap]] = {}
    for ev in chain.values():
        for grant, gmap in reversed(active):
            if bytes(grant.tag) == bytes(ev.tag) and covers(grant, bytes(ev.record_id)):
                chosen[bytes(ev.record_id)] = (grant, gmap)
                break
    by_grant: dict[bytes, tuple[GrantCreated, GranteeMap, list[EntryAppended]]] = {}
    for ev in chain.values():
        if bytes(ev.record_id) in chosen:
            grant, gmap = chosen[bytes(ev.record_id)]
            by_grant.setdefault(bytes(grant.policy_id), (grant, gmap, []))[2].append(ev)
    out: list[_Batch] = []
    for grant, gmap, events in by_grant.values():
        policy = reader.policy(grant, gmap, block)
        for i in range(0, len(events), MAX_BATCH):
            out.append((gmap, policy, events[i : i + MAX_BATCH]))
    return out, now + 300


def _open(
    reader: GrantedReader,
    patient: Address,
    gmap: GranteeMap,
    events: Sequence[EntryAppended],
    sealed: Sequence[SealedEntry],
    result: ThresholdResult,
) -> dict[bytes, IndexEntry]:
    out = {}
    for ev, entry, cfrags in zip(events, sealed, result.cfrags, strict=True):
        opened = open_entry_as_grantee(entry, reader.keys, gmap, cfrags, origin=ev)
        out[bytes(ev.record_id)] = check_entry(opened, ev, patient, gmap.epoch, reader.members)
    return out


async def open_granted(
    reader: GrantedReader, patient: str, category: str | None, run: Runner
) -> dict[bytes, IndexEntry]:
    """Every entry of ``patient`` (of ``category`` if given) that this member's active
    grants cover, opened through the proxies and verified as a read's, by record id.
    Batches the proxies refuse or do not answer are left out; an entry that does not
    verify raises, as its read would."""
    who = checksum(patient)
    batches, deadline = await run(functools.partial(_batches, reader, who, category))
    opened: dict[bytes, IndexEntry] = {}
    if not batches:
        return opened
    async with reader.client() as client:
        for gmap, policy, events in batches:
            sealed = [SealedEntry.from_bytes(bytes(ev.entry)) for ev in events]
            try:
                result = await reader.reencrypt(client, policy, sealed, deadline)
            except (AccessDenied, Unavailable) as exc:
                log.info("listing: entries of one grant left unopened: %s", exc)
                continue
            step = functools.partial(_open, reader, who, gmap, events, sealed, result)
            opened.update(await run(step))
        evidence = list(client.evidence)
    reader.last_evidence = await run(functools.partial(keep_evidence, reader.state_dir, evidence))
    for path in reader.last_evidence:
        log.warning("a proxy signed a bad capsule fragment; evidence written to %s", path)
    return opened


def open_granted_sync(
    reader: GrantedReader, patient: str, category: str | None
) -> dict[bytes, IndexEntry]:
    """:func:`open_granted` for a sync caller (refused inside a running event loop, where
    it would block every other task: use the async facades there)."""
    return run_blocking(
        open_granted(reader, patient, category, inline), "records(..., open_entries=True)"
    )
