"""A patient's grants as the facade returns them, and the plans of its grant and approve
operations (split from the patient facade; the steps run in :mod:`emrshare.roles._ops`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from emrshare._time import utc_text
from emrshare.categories import normalize_category
from emrshare.chain import EntryAppended, GrantCreated, GrantStatus
from emrshare.crypto import PatientKeys, validate_category
from emrshare.errors import InvalidInput, NotFound
from emrshare.network import Network
from emrshare.roles._common import AccessRequestInfo, GrantInfo, checksum
from emrshare.roles._oplog import EpochState, OperationResult, Step
from emrshare.roles._ops import (
    MAX_SCOPE_RECORDS,
    expires_arg,
    grant_steps,
    member_keys,
    resolve_proxies,
)
from emrshare.roles._requests import pending_request
from emrshare.types import Address, CategoryTag, PolicyId, RecordId

__all__ = [
    "MIN_GRANT_SECONDS",
    "Expiry",
    "approve_args",
    "checked_expiry",
    "expiry_of",
    "grant_args",
    "grant_info",
    "keys_tags",
    "made_grant",
    "plan_approve",
    "plan_grant",
]

#: When a grant ends: a duration from now (chain time), a datetime or unix seconds.
Expiry = timedelta | datetime | int

#: A new grant must last at least this long past the chain's latest block: its transaction
#: is mined a block or more later, and a grant that ends before anyone reads is a mistake.
MIN_GRANT_SECONDS = 60


def expiry_of(network: Network, expires: Expiry) -> int:
    """``expires`` in unix seconds (a duration counts from the chain's time)."""
    if isinstance(expires, timedelta):
        return network.chain_time() + int(expires.total_seconds())
    if isinstance(expires, datetime):
        return int(expires.timestamp())
    return int(expires)


def checked_expiry(network: Network, expires: Expiry) -> int:
    """``expires`` in unix seconds, refused (:class:`InvalidInput`, before any transaction)
    if it is zero, negative, in the past or less than :data:`MIN_GRANT_SECONDS` after the
    chain's latest block time."""
    if isinstance(expires, timedelta) and expires <= timedelta(0):
        raise InvalidInput(f"a grant must last a positive time, not {expires}; e.g. 30 days")
    if isinstance(expires, bool) or not isinstance(expires, timedelta | datetime | int):
        raise InvalidInput(
            f"expires must be a timedelta, a datetime or unix seconds, not {type(expires).__name__}"
        )
    now = network.chain_time()
    at = now + int(expires.total_seconds()) if isinstance(expires, timedelta) else None
    at = expiry_of(network, expires) if at is None else at
    if at < now + MIN_GRANT_SECONDS:
        when, chain = utc_text(at), utc_text(now)
        past = "is in the past" if at <= now else "is less than a minute away"
        raise InvalidInput(
            f"the expiry {when} {past} (chain time {chain}); give a later date or a "
            "duration such as 30 days"
        )
    return at


def grant_info(
    network: Network,
    ev: GrantCreated,
    tags: Mapping[bytes, tuple[str, int]],
    status: GrantStatus | None = None,
    by: Address | None = None,
) -> GrantInfo:
    """A grant the patient made, named with its own tags (the chain no longer carries the
    epoch: category ``None`` and epoch 0 for a tag this machine cannot name); ``by``: the
    guardian that made it."""
    category, epoch = tags.get(bytes(ev.tag), (None, 0))
    if status is None:
        status = network.contracts.grants.status(ev.policy_id)
    return GrantInfo(
        policy_id=PolicyId(bytes(ev.policy_id)),
        patient=checksum(ev.patient),
        grantee=checksum(ev.grantee),
        category=category,
        epoch=epoch,
        tag=CategoryTag(bytes(ev.tag)),
        expiry=ev.expiry,
        threshold=ev.threshold,
        proxies=tuple(checksum(p) for p in ev.proxies),
        status=status,
        block_number=ev.block_number,
        by=by,
        records=tuple(RecordId(bytes(r)) for r in ev.records),
    )


def made_grant(
    network: Network, result: OperationResult, tags: Mapping[bytes, tuple[str, int]]
) -> GrantInfo:
    """The current epoch's grant of a finished grant or approve operation."""
    end = network.chain.latest_block()  # the operation's own, just-mined grants count
    pid = result.policy_ids[-1]
    found = list(network.contracts.grants.events(GrantCreated, policy_id=pid, to_block=end))
    if not found:
        raise NotFound(f"the grant was not made: {'; '.join(result.notes)}")
    return grant_info(network, found[0], tags)


def grant_args(
    grantee: str,
    category: str,
    expires: Expiry,
    proxies: Sequence[str] | None,
    threshold: int | None,
    all_epochs: bool,
    records: Sequence[bytes] | None = None,
) -> dict[str, Any]:
    """The arguments of :meth:`Patient.grant`, checked and as the operation log keeps them
    (a duration stays a duration, so a retried call compares equal). ``records`` (32-byte
    ids) scope the grant; they are kept sorted and distinct."""
    if records is not None and not records:
        # Empty means "no record", never "the whole category": say so rather than widen.
        raise InvalidInput(
            "records=[] names no record; pass the records to grant, or leave records out "
            "to grant the whole category"
        )
    scope = sorted({bytes(r) for r in records or ()})
    if len(scope) > MAX_SCOPE_RECORDS:
        raise InvalidInput(
            f"a grant names at most {MAX_SCOPE_RECORDS} records, not {len(scope)}; "
            "grant the category, or make several grants"
        )
    args: dict[str, Any] = {
        "grantee": checksum(grantee),
        "category": validate_category(category),
        "expires": expires_arg(expires),
        "proxies": [checksum(p) for p in proxies] if proxies else None,
        "threshold": threshold,
        "all_epochs": all_epochs,
    }
    if scope:
        args["records"] = [r.hex() for r in scope]
    return args


def _scope_by_epoch(
    network: Network,
    patient: str,
    category: str,
    records: Sequence[str],
    tags: Mapping[bytes, tuple[str, int]],
) -> dict[int, list[str]]:
    """The scope's records grouped by the epoch of their tag (one grant per epoch), each
    checked to be one of the patient's records of ``category``."""
    wanted = {bytes.fromhex(r) for r in records}
    end = network.chain.latest_block()
    found: dict[bytes, bytes] = {}
    for ev in network.contracts.index.events(EntryAppended, patient=patient, to_block=end):
        if bytes(ev.record_id) in wanted:
            found[bytes(ev.record_id)] = bytes(ev.tag)
    by_epoch: dict[int, list[str]] = {}
    for rid in sorted(wanted):
        named = tags.get(found[rid]) if rid in found else None
        if named is None or named[0] != category:
            raise NotFound(
                f"record 0x{rid.hex()} is not one of this patient's {category!r} records; "
                "see Patient.records() for their ids"
            )
        by_epoch.setdefault(named[1], []).append(rid.hex())
    return by_epoch


def plan_grant(
    network: Network,
    epochs: EpochState,
    args: Mapping[str, Any],
    expires: Expiry,
    patient: str = "",
    tags: Mapping[bytes, tuple[str, int]] | None = None,
) -> list[Step]:
    """The steps of :meth:`Patient.grant` (``args`` from :func:`grant_args`): one grant
    per epoch granted; for a grant scoped to records, one per epoch holding them
    (``patient`` and ``tags``, its nameable tags, find their epochs)."""
    grantee, category = str(args["grantee"]), str(args["category"])
    expiry = checked_expiry(network, expires)
    member_keys(network, grantee, "member")
    epoch = epochs.remember(category)
    chosen, m = resolve_proxies(network, args["proxies"], args["threshold"])
    if args.get("records"):
        scope = _scope_by_epoch(network, patient, category, args["records"], tags or {})
        return grant_steps(grantee, category, sorted(scope), expiry, chosen, m, scope)
    granted = range(epoch + 1) if args["all_epochs"] else [epoch]
    return grant_steps(grantee, category, granted, expiry, chosen, m)


def approve_args(
    epochs: Mapping[str, int],
    request_id: int,
    expires: Expiry,
    category: str | None,
    threshold: int | None,
) -> dict[str, Any]:
    """The arguments of :meth:`Patient.approve` as the operation log keeps them; a category
    the patient names is normalized (a new one allowed: approving names it explicitly)."""
    if category is not None:
        category = normalize_category(category, known=epochs, new_category=True)
    return {
        "request": request_id,
        "expires": expires_arg(expires),
        "category": category,
        "threshold": threshold,
    }


def plan_approve(
    network: Network,
    keys: PatientKeys,
    epochs: EpochState,
    args: Mapping[str, Any],
    expires: Expiry,
) -> list[Step]:
    """The steps of :meth:`Patient.approve` (``args`` from :func:`approve_args`): the
    grants of every epoch, then the answer. The request's own category is normalized as
    the patient's would be; the approval is the explicit ask for a new one."""
    req: AccessRequestInfo = pending_request(network, keys, int(args["request"]))
    name = args["category"] or req.category
    if name is None:
        raise InvalidInput(
            f"request #{req.request_id} cannot be opened by this patient (it names no "
            "category it can read); pass the category name explicitly, or deny it"
        )
    name = normalize_category(name, known=epochs.epochs, new_category=True)
    expiry = checked_expiry(network, expires)
    member_keys(network, req.requester, "member")
    epoch = epochs.remember(name)
    chosen, m = resolve_proxies(network, None, args["threshold"])
    steps = grant_steps(req.requester, name, range(epoch + 1), expiry, chosen, m)
    # The answer names the grants, derived from the operation id when it runs.
    answer = {"do": "answer", "request": req.request_id, "requester": req.requester}
    return [*steps, {**answer, "decision": "approved"}]


def keys_tags(keys: PatientKeys, epochs: Mapping[str, int]) -> dict[bytes, tuple[str, int]]:
    """Every (category, epoch) tag the patient can name, up to the current epochs."""
    return {bytes(keys.tag(c, e)): (c, e) for c, cur in epochs.items() for e in range(cur + 1)}
