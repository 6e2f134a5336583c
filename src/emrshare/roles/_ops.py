"""Resumable multi-transaction patient operations: a durable log and idempotent steps.

A grant of every epoch (one transaction per epoch), an approval (grants, then the sealed
answer) and a revocation that moves the category to a new epoch (revoke, epoch bump,
writer re-keying, re-issued grants) each take several transactions. Before the first one,
the whole operation (id, kind, the call's arguments and the plan of steps, every argument
of every step resolved) is written to ``<state_dir>/operations/<id>.json`` (0600 in a 0700
directory, atomic replace). The file goes away once every step is done.

Each step is idempotent by construction, so a resumed operation re-runs its steps from the
first and only the missing ones send a transaction:

- ``grant``: the nonce is derived from the operation id and the step
  (:meth:`PatientKeys.operation_nonce`), so the policy id is known in advance; a policy
  already on chain is not granted again (a race ends in ``Grants_PolicyExists``: done).
- ``revoke``: sent only while the grant is still active on chain.
- ``rekey``: raises the local epoch to the new one (never lowers it), then moves the active
  writers still authorized on the old tag (``isAuthorized``) in one ``rekeyWriters``.
- ``expel``: withdraws whatever authorization is left on the old tag.
- ``answer``: sent only while the request is pending.
- ``reauthorize``: authorizes a writer again (its box key rotated) unless its latest
  authorization is newer than its latest key rotation (:mod:`emrshare.roles._rotation`).

No step keeps "done" marks: the chain is the record, the log only the intent.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from emrshare.chain import (
    Contracts,
    GrantCreated,
    GrantParams,
    GrantStatus,
    KeysRotated,
    Member,
    RequestStatus,
    Role,
    WriterAuthorized,
    policy_id,
)
from emrshare.crypto import MemberPublicKeys, PatientKeys, make_grant, seal_writer_authorization
from emrshare.crypto.guardian import GrantingKeys
from emrshare.errors import ConfigurationError, ContractRevert, GrantRevoked, InvalidInput, NotFound
from emrshare.network import Network
from emrshare.roles._common import Progress, checksum
from emrshare.roles._oplog import (
    EpochState,
    Operation,
    OperationLog,
    OperationResult,
    Step,
    new_operation,
)
from emrshare.roles._requests import list_requests, sealed_answer
from emrshare.types import Address, CategoryTag, PolicyId

__all__ = [
    "Operations",
    "authorized_writers",
    "build_grant",
    "expires_arg",
    "grant_steps",
    "member_keys",
    "plan_revoke",
    "resolve_proxies",
]


def member_public_keys(member: Member) -> MemberPublicKeys:
    """A registered member's public keys, as the crypto core takes them."""
    return MemberPublicKeys(
        checksum(member.account), bytes(member.umbral_key), bytes(member.box_key)
    )


def member_keys(network: Network, who: str, role_hint: str = "member") -> MemberPublicKeys:
    """The public keys of an admitted member (:class:`NotFound` for anyone else)."""
    if network.contracts.registry.role_of(who) is Role.NONE:
        raise NotFound(
            f"{who} is not an admitted consortium {role_hint}; ask the consortium "
            "admin to admit it first"
        )
    return member_public_keys(network.member(who))


def resolve_proxies(
    network: Network, proxies: Sequence[str] | None, threshold: int | None
) -> tuple[list[str], int]:
    """The proxies (default: every registered proxy) and threshold M a grant uses."""
    members = [network.member(p) for p in proxies] if proxies else network.proxies()
    if not members:
        raise ConfigurationError("the consortium has no proxies registered; admit some first")
    default = min(network.threshold, len(members))
    # ``None`` means the default; 0 is a caller's mistake, not a request for the default.
    if threshold is not None and not 1 <= threshold <= len(members):
        raise InvalidInput(
            f"threshold {threshold} is out of range: use 1 to {len(members)} (the number "
            f"of proxies), or leave it unset for the consortium's ({default})"
        )
    return [checksum(m.account) for m in members], default if threshold is None else threshold


#: Most records one scoped grant names (``Grants.MAX_SCOPE_RECORDS``).
MAX_SCOPE_RECORDS = 256


def build_grant(
    network: Network,
    keys: GrantingKeys,
    *,
    nonce: bytes,
    grantee: str,
    category: str,
    epoch: int,
    expiry: int,
    proxies: Sequence[str],
    threshold: int,
    records: Sequence[str] = (),
) -> GrantParams:
    """The parameters of one grant (fresh kfrags, sealed to each proxy) under ``nonce``;
    ``records`` (hex ids) scope it."""
    pub = member_keys(network, checksum(grantee), "member")
    grant = make_grant(
        keys,
        category=category,
        epoch=epoch,
        policy_id=policy_id(keys.address, nonce),
        grantee=pub,
        proxies=[member_public_keys(network.member(p)) for p in proxies],
        threshold=threshold,
    )
    return GrantParams(
        nonce=nonce,
        grantee=pub.address,
        tag=keys.tag(category, epoch),
        expiry=expiry,
        proxies=list(grant.proxies),
        threshold=threshold,
        sealed_kfrags=list(grant.sealed_kfrags),
        sealed_grantee_map=grant.sealed_grantee_map,
        records=sorted(bytes.fromhex(r) for r in records),
    )


def expires_arg(expires: timedelta | datetime | int) -> dict[str, int]:
    """How the caller gave the expiry (a duration stays a duration), to compare calls."""
    if isinstance(expires, timedelta):
        return {"in": int(expires.total_seconds())}
    if isinstance(expires, datetime):
        return {"at": int(expires.timestamp())}
    return {"at": int(expires)}


def grant_steps(
    grantee: str,
    category: str,
    epochs: Sequence[int],
    expiry: int,
    proxies: Sequence[str],
    threshold: int,
    records: Mapping[int, Sequence[str]] | None = None,
) -> list[Step]:
    """One ``grant`` step per epoch (scoped to ``records[epoch]``, hex ids, if given)."""
    steps: list[Step] = []
    for e in epochs:
        step: Step = {
            "do": "grant",
            "grantee": checksum(grantee),
            "category": category,
            "epoch": e,
            "expiry": expiry,
            "proxies": list(proxies),
            "threshold": threshold,
        }
        if records is not None:
            step["records"] = list(records[e])
        steps.append(step)
    return steps


def plan_revoke(
    network: Network,
    keys: PatientKeys,
    events: Mapping[bytes, GrantCreated],
    tags: Mapping[bytes, tuple[str, int]],
    pid: bytes,
    new_epoch: bool,
) -> list[Step]:
    """The steps of revoking grant ``pid`` (``events``: the patient's grants by id; ``tags``:
    every tag it can name, up to the current epochs): revoke, and for a grant of the
    current epoch with ``new_epoch``, move to the next epoch (rekey, expel) and re-issue
    one grant per remaining active grantee of the category (the one that lasts longest).
    """
    ev = events.get(pid)
    if ev is None:
        raise NotFound(
            f"0x{pid.hex()} is not a grant of this patient; see Patient.grants() for the "
            "grants it made"
        )
    grants = network.contracts.grants
    revoked_at = grants.policy(PolicyId(pid)).revoked_at
    if revoked_at:
        # Revoking again must not move the category to yet another epoch.
        raise GrantRevoked(
            f"grant 0x{pid.hex()} was already revoked at block {revoked_at}; nothing "
            "to do (Patient.grants(active_only=True) lists the grants still active)",
            {"chain": "policy_revoked"},
        )
    steps: list[Step] = [{"do": "revoke", "policy": pid.hex()}]
    category, epoch = tags.get(bytes(ev.tag), (None, 0))
    # The grantee's grants of the category's other epochs go too: a grant or an approval
    # made one per epoch, and revoking only the id the caller holds left the older epochs
    # readable (found by the adversarial review of issue #10).
    revoked = checksum(ev.grantee)
    for other in events.values():
        if (
            category is not None
            and bytes(other.policy_id) != pid
            and checksum(other.grantee) == revoked
            and tags.get(bytes(other.tag), (None, 0))[0] == category
            and grants.status(other.policy_id) is GrantStatus.ACTIVE
        ):
            steps.append({"do": "revoke", "policy": bytes(other.policy_id).hex()})
    if (
        not new_epoch
        or category is None
        or epoch != max(e for c, e in tags.values() if c == category)
    ):
        return steps  # an old epoch's grant: the current epoch is already beyond it
    old_tag = keys.tag(category, epoch)
    # One re-issued grant per remaining grantee: the one that lasts longest.
    remaining: dict[str, GrantCreated] = {}
    for e in events.values():
        grantee = checksum(e.grantee)
        if (
            bytes(e.tag) == bytes(old_tag)
            and not e.records  # a scoped grant covers its records, none of a new epoch
            and grantee != checksum(ev.grantee)
            and grants.status(e.policy_id) is GrantStatus.ACTIVE
            and (grantee not in remaining or e.expiry > remaining[grantee].expiry)
        ):
            remaining[grantee] = e
    steps += [
        {"do": "rekey", "category": category, "epoch": epoch},
        {"do": "expel", "category": category, "epoch": epoch},
    ]
    for e in remaining.values():
        steps += grant_steps(
            e.grantee, category, [epoch + 1], e.expiry, list(e.proxies), e.threshold
        )
    return steps


def authorized_writers(network: Network, patient: str, tag: CategoryTag) -> list[Address]:
    """Members holding an authorization for ``tag``, whether active members or not."""
    index = network.contracts.index
    end = network.chain.latest_block()  # an operation's own, just-mined changes count
    seen = {
        checksum(ev.writer)
        for ev in index.events(WriterAuthorized, patient=patient, tag=tag, to_block=end)
    }
    return sorted(w for w in seen if index.is_authorized(patient, tag, w))


class Operations:
    """A patient's logged operations: runs new ones, resumes interrupted ones.

    ``signed`` are the contracts with the patient's key; ``epochs`` the patient's epochs.
    """

    def __init__(
        self,
        network: Network,
        keys: PatientKeys,
        signed: Contracts,
        epochs: EpochState,
        state_dir: Path,
    ) -> None:
        self.network = network
        self.keys = keys
        self.signed = signed
        self.epochs = epochs
        self.log = OperationLog(state_dir)
        #: What the latest call finished of the operations it found interrupted.
        self.resumed: list[OperationResult] = []

    def pending(self) -> list[Operation]:
        return self.log.pending()

    def resume(self, progress: Progress | None = None) -> list[OperationResult]:
        """Finish every interrupted operation, oldest first."""
        with self.log.locked():
            return self._resume(progress)

    @contextmanager
    def exclusive(self) -> Iterator[list[OperationResult]]:
        """For a write outside the log: interrupted operations are finished first, and no
        other process runs an operation of this patient meanwhile."""
        with self.log.locked():
            yield self._resume(None)

    def _resume(self, progress: Progress | None) -> list[OperationResult]:
        self.epochs.reload()
        self.resumed = [self._run(op, True, progress) for op in self.log.pending()]
        return self.resumed

    def run(
        self,
        kind: str,
        args: dict[str, Any],
        plan: Callable[[], list[Step]],
        progress: Progress | None = None,
    ) -> OperationResult:
        """Finish what is pending, then plan, log and run a new operation. The same call
        made again after a crash (same kind and arguments) is the pending one: it is
        finished once and returned, not done a second time."""
        op = new_operation(secrets.token_hex(16), kind, args, [])
        with self.log.locked():
            for done in self._resume(None):
                if done.kind == kind and done.args == op.args:
                    return done
            op = dataclasses.replace(op, steps=tuple(plan()))
            self.log.write(op)  # before the first transaction
            return self._run(op, False, progress)

    def _run(self, op: Operation, resumed: bool, progress: Progress | None) -> OperationResult:
        """Every step of ``op`` (each sends only what the chain does not show done), then
        drop it from the log; ``progress(steps_done, steps_total)`` after each step. An
        error leaves it in the log for the next call; there, a step the chain reverts (or
        that its state rules out) is skipped with a note: retrying could never succeed."""
        steps = {
            "grant": self._grant,
            "revoke": self._revoke,
            "rekey": self._rekey,
            "expel": self._expel,
            "answer": self._answer,
            "reauthorize": self._reauthorize,
        }
        unknown = [s.get("do") for s in op.steps if s.get("do") not in steps]
        if unknown:
            raise ConfigurationError(
                f"operation {op.op_id} has steps this version does not know: {unknown}"
            )
        sent = 0
        notes: list[str] = []
        for i, step in enumerate(op.steps):
            try:
                sent += steps[step["do"]](op, i, step, notes)
            except (ContractRevert, ConfigurationError) as exc:
                # The chain refuses this step for good, or the chain state rules it out
                # before sending (the grantee left the consortium, the expiry passed): the
                # caller of a new operation sees the error; a resumed one skips the step,
                # says so, and does the rest.
                if not resumed:
                    raise
                notes.append(f"step {i + 1} ({step['do']}) was refused: {exc}")
            if progress is not None:
                progress(i + 1, len(op.steps))
        self.log.done(op)
        return OperationResult(
            op.op_id,
            op.kind,
            op.args,
            len(op.steps),
            sent,
            tuple(op.grant_ids(self.keys)),
            resumed,
            tuple(notes),
        )

    # -- steps: each returns the number of transactions it sent ----------------------------

    def _grant(self, op: Operation, i: int, s: Step, notes: list[str]) -> int:
        nonce = op.nonce(self.keys, i)
        pid = policy_id(self.keys.address, nonce)
        if self.network.contracts.grants.binding(pid) != bytes(27):
            return 0  # granted before the interruption
        params = build_grant(
            self.network,
            self.keys,
            nonce=nonce,
            grantee=s["grantee"],
            category=s["category"],
            epoch=int(s["epoch"]),
            expiry=int(s["expiry"]),
            proxies=s["proxies"],
            threshold=int(s["threshold"]),
            records=s.get("records", ()),
        )
        try:
            self.signed.grants.grant(params)
        except ContractRevert as exc:
            if exc.name != "Grants_PolicyExists":  # sent twice at once: it is there
                raise
            return 0
        return 1

    def _revoke(self, op: Operation, i: int, s: Step, notes: list[str]) -> int:
        pid = PolicyId(bytes.fromhex(s["policy"]))
        if self.network.contracts.grants.status(pid) is not GrantStatus.ACTIVE:
            return 0  # revoked before the interruption (or expired: nothing to revoke)
        try:
            self.signed.grants.revoke(pid)
        except ContractRevert as exc:
            if exc.name != "Grants_AlreadyRevoked":
                raise
            return 0
        return 1

    def _rekey(self, op: Operation, i: int, s: Step, notes: list[str]) -> int:
        category, epoch = s["category"], int(s["epoch"])
        self.epochs.raise_to(category, epoch + 1)  # new records use the new epoch from now
        old, new = self.keys.tag(category, epoch), self.keys.tag(category, epoch + 1)
        registry = self.network.contracts.registry
        # A writer no longer an active Provider cannot be re-authorized: ``expel`` drops it.
        active = [
            w
            for w in authorized_writers(self.network, self.keys.address, old)
            if registry.has_role(w, Role.PROVIDER)
        ]
        if not active:
            return 0
        payloads = [
            seal_writer_authorization(
                self.keys, member_keys(self.network, w, "provider"), category, epoch + 1
            )
            for w in active
        ]
        self.signed.index.rekey_writers(old, new, active, payloads)
        return 1

    def _expel(self, op: Operation, i: int, s: Step, notes: list[str]) -> int:
        old = self.keys.tag(s["category"], int(s["epoch"]))
        left = authorized_writers(self.network, self.keys.address, old)
        if not left:
            return 0
        self.signed.index.revoke_writers(old, left)
        return 1

    def _reauthorize(self, op: Operation, i: int, s: Step, notes: list[str]) -> int:
        # A writer that rotated its keys: authorize it again, sealed to its new box key.
        # Done once the latest authorization seals to the registered key (sent after the
        # writer's latest rotation); skipped if the patient deauthorized it meanwhile.
        category, epoch, writer = s["category"], int(s["epoch"]), checksum(s["writer"])
        tag = self.keys.tag(category, epoch)
        index = self.network.contracts.index
        if not index.is_authorized(self.keys.address, tag, writer):
            return 0
        end = self.network.chain.latest_block()
        auths = index.events(
            WriterAuthorized, patient=self.keys.address, tag=tag, writer=writer, to_block=end
        )
        rots = self.network.contracts.registry.events(KeysRotated, account=writer, to_block=end)
        last = max(((a.block_number, a.log_index) for a in auths), default=(0, 0))
        if last > max(((r.block_number, r.log_index) for r in rots), default=(0, 0)):
            return 0
        pub = member_keys(self.network, writer, "provider")
        payload = seal_writer_authorization(self.keys, pub, category, epoch)
        self.signed.index.authorize_writer(tag, writer, payload)
        return 1

    def _answer(self, op: Operation, i: int, s: Step, notes: list[str]) -> int:
        rid, decision = int(s["request"]), str(s["decision"])
        grants = self.network.contracts.grants
        policies = [  # the current epoch's first; a grant the chain refused is not named
            p for p in reversed(op.grant_ids(self.keys)) if grants.binding(p) != bytes(27)
        ]
        if decision == "approved" and not policies:
            notes.append(f"no grant of request #{rid} was made: it stays pending")
            return 0
        closed = f"access request #{rid} was answered by another device of this patient"
        if grants.request(rid).status is not RequestStatus.PENDING:
            if not self._answered_as(rid, decision, policies):
                notes.append(closed)
            return 0
        blob = sealed_answer(self.network, self.keys, rid, s["requester"], decision, policies)
        try:
            self.signed.grants.answer_request(rid, blob)
        except ContractRevert as exc:
            if exc.name != "Grants_RequestClosed":
                raise
            notes.append(closed)
            return 0
        return 1

    def _answered_as(self, rid: int, decision: str, policies: list[PolicyId]) -> bool:
        """Whether the request's answer on chain is this operation's."""
        for r in list_requests(self.network, self.keys):
            if r.request_id == rid:
                return r.status == decision and set(policies[:8]) <= set(r.policy_ids)
        return False
