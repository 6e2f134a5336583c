"""Revert decoding: every custom error of the shipped contracts, by selector, into
:class:`~emrshare.errors.ContractRevert` with its name, arguments and a what-to-do hint.

Nodes put revert data in different places (anvil and geth in ``error.data``, ganache
nested for estimates, eth-tester in the exception it raises); the helpers here find it.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak

from emrshare._addresses import checksum
from emrshare.chain._trace_hints import TRACE_HINTS
from emrshare.chain.artifacts import artifact_names, load_artifact
from emrshare.errors import (
    ClaimRefused,
    ContractRevert,
    EmergencyRefused,
    PrescriptionRefused,
    StudyRefused,
    SupplyRefused,
)

__all__ = ["abi_type", "decode_revert", "normalize_abi_value", "revert_data_from_error"]


@dataclass(frozen=True, slots=True)
class _ErrorAbi:
    name: str
    types: tuple[str, ...]
    names: tuple[str, ...]


def abi_type(param: Mapping[str, Any]) -> str:
    """The canonical ABI type of a parameter (tuples spelled out, as selectors need)."""
    t = str(param["type"])
    if t.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){t[5:]}"
    return t


@cache
def _error_table() -> dict[bytes, _ErrorAbi]:
    """Every custom error of every shipped contract (and Error/Panic), by selector."""
    table: dict[bytes, _ErrorAbi] = {
        bytes.fromhex("08c379a0"): _ErrorAbi("Error", ("string",), ("message",)),
        bytes.fromhex("4e487b71"): _ErrorAbi("Panic", ("uint256",), ("code",)),
    }
    for name in artifact_names():
        for item in load_artifact(name).abi:
            if item.get("type") != "error":
                continue
            types = tuple(abi_type(p) for p in item["inputs"])
            sig = f"{item['name']}({','.join(types)})"
            table[keccak(text=sig)[:4]] = _ErrorAbi(
                item["name"], types, tuple(p["name"] for p in item["inputs"])
            )
    return table


# What to do next, for the errors a caller most often meets. Filled with the arguments.
_HINTS: dict[str, str] = {
    "RecordIndex_WrongSequence": (
        "append named sequence {given} but the next one for writer {writer} is {expected}: "
        "entries before {expected} are already on chain; continue from {expected}"
    ),
    "RecordIndex_NotAuthorized": (
        "{writer} may not append to patient {patient}'s tag {tag}; "
        "ask the patient to authorize it for that category"
    ),
    "Grants_AlreadyRevoked": "grant {policyId} was already revoked at block {revokedAt}",
    "Grants_ExpiryInPast": (
        "grant expiry {expiry} is not after chain time {chainTime}; choose a later expiry"
    ),
    "Grants_PolicyExists": "a grant with id {policyId} exists; use a fresh random nonce",
    "Grants_InvalidScope": (
        "a grant's records must be distinct, in ascending order and at most 256 "
        "(record {index} of {count} is not); name fewer records"
    ),
    "Grants_NotMember": "{account} is not a consortium member; ask the admins to admit it",
    "AuditLog_NotPolicyProxy": "{caller} is not a proxy of grant {policyId} and may not log",
    "AuditLog_NotProxy": (
        "{account} is not an active consortium proxy (removed or suspended) and may not log"
    ),
    "AuditLog_BadRequestSignature": (
        "access {index} logged under grant {policyId} does not carry the grantee's signature "
        "of that request; log only requests the grantee signed"
    ),
    "AuditLog_OutsideGrantWindow": (
        "an access evaluated at block {evaluatedAt} is outside grant {policyId}'s active "
        "blocks; the grant did not allow it then"
    ),
    "AuditLog_OutsideGrantTime": (
        "an access evaluated at time {evaluatedTime} is after grant {policyId}'s expiry, "
        "the request's deadline or the chain's time"
    ),
    "RecordIndex_NotMember": (
        "{writer} is not an active Provider of the consortium and may not write; "
        "ask the admins about its membership"
    ),
    "Grants_NoProfile": "{caller} has no patient profile; register one in PatientProfiles first",
    "Grants_NotProxy": (
        "{proxy} is not an active consortium proxy (never one, removed or suspended); "
        "choose proxies from the registry"
    ),
    "Grants_SealedTooLarge": (
        "sealed item {index} is {length} bytes: it must be non-empty and within the "
        "contract's limit"
    ),
    "Emergency_NotCapable": (
        "{account} does not hold the EMERGENCY capability (or is suspended); ask the "
        "consortium admins to grant it by an M-of-N proposal"
    ),
    "Emergency_NotOptedIn": (
        "patient {patient} has not opted in to emergency access; use the patient's own "
        "grants or ask the patient (or guardian) for access"
    ),
    "Emergency_NotActive": (
        "declaration {declarationId} is not active (status {status}: 2 ended, 3 time box "
        "passed, 4 opt-in withdrawn); declare again if the emergency continues"
    ),
    "Emergency_CategoryNotOptedIn": (
        "tag {tag} is outside the patient's emergency opt-in under declaration "
        "{declarationId}; read only the categories the patient opened for emergencies"
    ),
    "Emergency_CoolDown": (
        "{clinician} declared an emergency too recently; wait until {availableAt} "
        "(unix seconds) or ask another EMERGENCY clinician to declare"
    ),
    "Emergency_NotRegulator": (
        "{account} is not an active Regulator; only the regulator reviews declarations"
    ),
    "Emergency_BadCosignature": (
        "the co-signature of {cosigner} does not verify (wrong signer, past its deadline, "
        "the declarer itself, not an active Provider or no EMERGENCY capability); ask "
        "another EMERGENCY clinician to co-sign this declaration"
    ),
    "Emergency_CosignRequired": (
        "this consortium requires a second EMERGENCY clinician's co-signature on every "
        "declaration; have one sign it and declare again"
    ),
    "Emergency_NotProvider": (
        "{account} holds the EMERGENCY capability but is not an active Provider; only a "
        "care provider's clinician declares emergencies (a proxy, insurer or regulator "
        "cannot); ask the admins to withdraw the capability or declare from a Provider"
    ),
    "Emergency_KeysAlreadySet": (
        "the consortium emergency keys are set once and already are; deploy a new "
        "Emergency contract to rotate them (every patient then opts in again)"
    ),
    "Emergency_InvalidKeys": (
        "only the deployer ({caller} is not it, or the keys were malformed) publishes "
        "the emergency keys: a 33-byte Umbral key and a non-zero 32-byte box key"
    ),
    "Emergency_KeysNotSet": (
        "the consortium has not published its emergency keys yet, so nobody can opt in; "
        "ask the consortium admins to publish them"
    ),
    "Emergency_NoProfile": (
        "{caller} has no patient profile; register the patient in PatientProfiles first, "
        "then opt in"
    ),
    "Emergency_InvalidWindow": (
        "an emergency window of {window} s is out of range; choose 1 s .. 7 days (for example 24 h)"
    ),
    "Emergency_InvalidTags": (
        "the opt-in names {count} tag(s): it needs 1 .. MAX_TAGS (64) distinct non-zero "
        "tags (one per category epoch); opt in to fewer categories"
    ),
    "Emergency_InvalidThreshold": (
        "threshold {threshold} of {proxyCount} proxies is invalid: it needs "
        "1 <= threshold <= proxies <= 32; pick a threshold within the proxies named"
    ),
    "Emergency_InvalidProxy": (
        "{proxy} is zero, named twice, or not an active consortium proxy; choose the "
        "proxies from the registry's active ones"
    ),
    "Emergency_KfragCountMismatch": (
        "{kfragCount} sealed kfrags for {expected} (tag, proxy) pairs; build the opt-in "
        "with one sealed kfrag per tag and proxy"
    ),
    "Emergency_MapCountMismatch": (
        "{mapCount} sealed grantee maps for {expected} tags; build the opt-in with one "
        "sealed map per tag"
    ),
    "Emergency_SealedTooLarge": (
        "sealed item {index} is {length} bytes: it must be non-empty and within 2048 "
        "bytes; shorten the justification or check the opt-in's sealed blobs"
    ),
    "Emergency_UnknownDeclaration": (
        "there is no emergency declaration {declarationId}; check the id (a clinician's "
        "own declarations are listed by its declarations())"
    ),
    "Emergency_NotAllowedToEnd": (
        "{caller} may not end declaration {declarationId}: only its patient (or a "
        "guardian, through the forwarder) or the clinician who declared it may"
    ),
    "Emergency_NotPolicyProxy": (
        "{caller} is not an active proxy of the opt-in declaration {declarationId} "
        "opened (or the proxy list is not the opt-in's, in its order); only its proxies log"
    ),
    "Emergency_InvalidReview": (
        "verdict {review} is not a review; mark a declaration Reviewed (1) or Disputed (2)"
    ),
    "Emergency_InvalidCapsules": (
        "a serve log names {count} capsule hashes; log 1 .. 64 per serve (split larger serves)"
    ),
    "Emergency_ServedOutsideDeclaration": (
        "a serve dated {servedAt} is outside declaration {declarationId}'s active span "
        "[{from}, {until}); date a log with the chain time of the block the serve was "
        "judged at, which must be while the declaration was active"
    ),
    "Emergency_ServedInFuture": (
        "a serve log of declaration {declarationId} is dated {servedAt}, after the chain "
        "time {chainTime}; date it with the time of the block the serve was judged at"
    ),
    "Emergency_CosignDeadlineTooFar": (
        "the co-signature's deadline {deadline} is later than {latest} (15 minutes after "
        "chain time); ask the co-signing clinician for a fresh, short-lived co-signature"
    ),
    "Emergency_CosignatureUsed": (
        "{cosigner}'s co-signature already backed a declaration and is single-use; ask "
        "the co-signing clinician to co-sign this declaration anew"
    ),
    "Claims_NotProvider": ("{caller} is not an active Provider member; only hospitals file claims"),
    "Claims_InsurerInactive": (
        "{insurer} is not an active Insurer member (suspended, removed or another role); "
        "file the claim with an insurer of the consortium"
    ),
    "Claims_NotWriter": (
        "hospital {hospital} holds no writer authorization for patient {patient} (in the "
        "claims category); ask the patient to authorize it as a writer first"
    ),
    "Claims_InvalidRecords": (
        "a claim names 1 to 256 record ids in strictly ascending order; record {index} of "
        "{count} is out of order, repeated, or the count is out of range"
    ),
    "Claims_TooManyItems": "a claim bills at most {max} items, not {count}; split the claim",
    "Claims_InvalidAmount": "a claim's amount must be more than 0 minor units, not {amount}",
    "Claims_Exists": (
        "you filed claim {id} already (the same document and salt); file a new document"
    ),
    "Claims_Unknown": "no claim {id} was filed on chain; check the id",
    "Claims_NotPatient": "{caller} is not the patient of claim {id}; only its patient consents",
    "Claims_GrantNotPatients": (
        "grant {policyId} is not patient {patient}'s; consent with a grant of your own"
    ),
    "Claims_WrongGrantee": (
        "grant {policyId} is not to the claim's insurer {insurer} (or the proxies given are "
        "not the grant's); grant the claim's insurer"
    ),
    "Claims_WrongScope": (
        "grant {policyId} is scoped to records hashing to {scope}, not to exactly the "
        "claim's records ({recordsHash}); grant exactly the claim's records"
    ),
    "Claims_GrantInactive": (
        "grant {policyId} is not active (status {status}: unknown, revoked, expired or its "
        "tag revoked); make a new grant for the claim"
    ),
    "Claims_NotOpen": ("claim {id} is no longer open to consent (status {status}); nothing to do"),
    "Claims_NotInsurer": (
        "{caller} is not the insurer of claim {id}; only its insurer adjudicates"
    ),
    "Claims_AlreadyAdjudicated": (
        "claim {id} was adjudicated already (status {status}); a claim is decided once"
    ),
    "Claims_NotConsented": (
        "the patient has not consented to claim {id}; read its records after the consent, "
        "or deny it with a reason"
    ),
    "Claims_OverApproved": (
        "approved {approved} is more than claim {id}'s amount {amount}; approve at most the "
        "amount billed"
    ),
    "Claims_ReasonRequired": (
        "a partial approval or a denial of claim {id} needs a non-zero reason code "
        "(emrshare.roles.ClaimReason)"
    ),
    "Prescriptions_AlreadyDispensed": (
        "prescription {id} was dispensed all {fills} fill(s) it allows; "
        "the patient needs a new prescription"
    ),
    "Prescriptions_Expired": (
        "prescription {id} expired at {validUntil} (chain time {chainTime}); "
        "the patient needs a new prescription"
    ),
    "Prescriptions_Cancelled": "prescription {id} was cancelled by its prescriber; do not dispense",
    "Prescriptions_NotReviewed": (
        "prescription {id} needs a pharmacist's or physician's review on chain before it is "
        "dispensed; have another reviewer approve it"
    ),
    "Prescriptions_Unknown": "no prescription {id} was issued on chain; do not dispense it",
    "Prescriptions_NotPharmacy": (
        "{caller} is not an active Pharmacy member; only pharmacies dispense"
    ),
    "Prescriptions_NotPrescriber": (
        "{caller} is not an active Provider member; only providers issue prescriptions"
    ),
    "Prescriptions_NotReviewer": (
        "{caller} may not review: reviewers are active Pharmacy or Provider members other "
        "than the prescriber"
    ),
    "Prescriptions_NotIssuer": (
        "{caller} did not issue prescription {id}; only its prescriber cancels"
    ),
    "Prescriptions_AlreadyReviewed": "prescription {id} was reviewed already",
    "Prescriptions_NotRead": (
        "{caller} gave no proof of having read prescription {id} (the reader key's "
        "signature for this caller); read the prescription record through the patient's "
        "grant, then dispense or review it from that record"
    ),
    "Prescriptions_NoReaderKey": "prescription {id} needs a reader key address; issue it again",
    "Prescriptions_PrescriberInactive": (
        "the prescriber {prescriber} of prescription {id} is no longer an active Provider "
        "(suspended or removed by the consortium); do not dispense it: the patient needs a "
        "new prescription"
    ),
    "Prescriptions_Exists": (
        "you issued prescription {id} already (the same document and salt); issue a new one"
    ),
    "Prescriptions_InvalidFills": "fills must be 1 to 63, not {fills}",
    "Prescriptions_InvalidValidity": (
        "validity end {validUntil} must be after chain time {chainTime} and within 366 days"
    ),
    "Studies_NotResearcher": (
        "{caller} is not an active Researcher member; only researchers publish studies"
    ),
    "Studies_InvalidService": (
        "{service} is not an active Provider or Proxy member; name a consortium member's "
        "de-identification service"
    ),
    "Studies_Exists": (
        "you published study {id} already (the same protocol commitment); publish another"
    ),
    "Studies_InvalidEnd": (
        "the study's end {endsAt} must be after chain time {chainTime} and within five years"
    ),
    "Studies_InvalidNeedCount": "a study names 1 to 32 categories or types, not {count}",
    "Studies_InvalidNeed": "need number {index} is empty or longer than 64 bytes",
    "Studies_Unknown": "no study {id} was published on chain; check the study id",
    "Studies_Closed": "study {id} was closed by its researcher; it takes no joins or releases",
    "Studies_Ended": "study {id} ended at {endsAt} (chain time {chainTime})",
    "Studies_AlreadyJoined": "participant {participant} is in study {id} already",
    "Studies_NotJoined": "participant {participant} is not in study {id} (never joined, or left)",
    "Studies_BadProof": (
        "the proof is not participant {participant}'s signature over its next nonce for "
        "study {id}; sign a fresh proof with the patient's participant key"
    ),
    "Studies_NotService": (
        "{caller} is not study {id}'s de-identification service; only it releases datasets"
    ),
    "Studies_NotOwner": "{caller} did not publish study {id}; only its researcher closes it",
    "Studies_InvalidRelease": (
        "a release of study {id} needs a CID of 1 to 128 bytes and credits at most 512 "
        "participants, in ascending order of address"
    ),
    "Registry_NotEnoughApprovals": (
        "proposal {proposalId} has {approvals} approval(s); it needs {threshold}"
    ),
    "Registry_ProposalStale": (
        "the admin set changed since proposal {proposalId} was made; propose it again"
    ),
    **TRACE_HINTS,
}


# The contracts whose refusals have an exception class of their own.
_KINDS: dict[str, type[ContractRevert]] = {
    "Claims": ClaimRefused,
    "Emergency": EmergencyRefused,
    "Prescriptions": PrescriptionRefused,
    "Studies": StudyRefused,
    "Trace": SupplyRefused,
}


def _render(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    return str(value)


def decode_revert(data: bytes) -> ContractRevert:
    """Decode revert data into :class:`ContractRevert` (name ``"unknown"`` if unrecognised)."""
    if len(data) < 4:
        return ContractRevert(
            "unknown", {}, "contract reverted without an error (out of gas or bad call)", data
        )
    abi = _error_table().get(data[:4])
    if abi is None:
        return ContractRevert(
            "unknown", {}, f"contract reverted with unknown error 0x{data[:4].hex()}", data
        )
    try:
        values = abi_decode(list(abi.types), data[4:])
    except Exception as exc:  # malformed revert data from a misbehaving node
        return ContractRevert(abi.name, {}, f"contract reverted with {abi.name} ({exc})", data)
    args = {
        n or f"arg{i}": normalize_abi_value(v)
        for i, (n, v) in enumerate(zip(abi.names, values, strict=True))
    }
    message: str | None = None
    hint = _HINTS.get(abi.name)
    if hint is not None:
        message = f"{abi.name}: " + hint.format(**{k: _render(v) for k, v in args.items()})
    elif abi.name == "Error":
        message = f"contract reverted: {args['message']}"
    kind = _KINDS.get(abi.name.split("_", 1)[0], ContractRevert)
    return kind(abi.name, args, message, data)


def normalize_abi_value(value: Any) -> Any:
    """A decoded ABI value with checksummed addresses and tuples for arrays."""
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return checksum(value)  # cached: logs name the same few addresses over and over
    if isinstance(value, list | tuple):
        return tuple(normalize_abi_value(v) for v in value)
    return value


def revert_data_from_error(error: Any) -> bytes | None:
    """Find revert data in a JSON-RPC error object, whatever shape the node uses.

    anvil and geth put a hex string in ``error.data``; ganache does so for ``eth_call``
    but nests it as ``error.data.result`` for ``eth_estimateGas`` (and, in older
    versions, as ``error.data[txhash].return``).
    """
    if isinstance(error, str):
        if error.startswith("0x") and len(error) % 2 == 0:
            try:
                return bytes.fromhex(error[2:])
            except ValueError:
                return None
        return None
    if isinstance(error, Mapping):
        for key in ("data", "result", "return"):
            if key in error:
                found = revert_data_from_error(error[key])
                if found is not None:
                    return found
        for value in error.values():
            if isinstance(value, Mapping):
                found = revert_data_from_error(value)
                if found is not None:
                    return found
    return None


def revert_data_from_exception(exc: Exception) -> bytes | None:
    """Revert data of an in-process chain (eth-tester raises instead of answering).

    eth-tester's ``TransactionFailed`` carries ``"execution reverted: b'...'"``.
    """
    if type(exc).__name__ != "TransactionFailed" or not exc.args:
        return None
    arg = exc.args[0]
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str) and arg.startswith("execution reverted: b"):
        try:
            value = ast.literal_eval(arg[len("execution reverted: ") :])
        except (ValueError, SyntaxError):
            return None
        return value if isinstance(value, bytes) else None
    return None


def is_revert(error: Mapping[str, Any]) -> bool:
    """Whether a JSON-RPC error says the call reverted (with or without data)."""
    msg = str(error.get("message", "")).lower()
    return "revert" in msg or error.get("code") == 3
