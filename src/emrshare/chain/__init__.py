"""Chain layer: contract bindings, deployment, event queries, signing and revert decoding.

:class:`ChainClient` (``client``) signs, sends, waits and reads blocks; the bindings
(``bindings``: one class per contract, gathered in :class:`Contracts`) are the one way to
encode a call and decode its results and events (``events``, ``values``); ``ids`` derives
the contracts' identifiers off chain.

Typical use::

    client = ChainClient(Web3(Web3.HTTPProvider(url)), private_key)
    contracts = Contracts.from_deployment(client, Deployment.read(path))
    receipt = contracts.grants.grant(params)
    pid = receipt.event(GrantCreated).policy_id
"""

from emrshare._recursion import cap_recursion_limit
from emrshare.chain._logs import EventCursor
from emrshare.chain._rpc import scrub_url_secrets
from emrshare.chain.bindings import (
    AuditLog,
    ConsortiumRegistry,
    Contracts,
    Grants,
    PatientForwarder,
    PatientProfiles,
    RecordIndex,
)
from emrshare.chain.client import (
    ChainClient,
    NonceManager,
    Receipt,
    SignedTransaction,
    TransactionState,
    decode_revert,
)
from emrshare.chain.deploy import DEPLOY_ORDER, Deployment, deploy_contracts
from emrshare.chain.events import (
    AccessLogged,
    AccessRequestAnswered,
    AccessRequested,
    ChainEvent,
    EndpointChanged,
    EntryAppended,
    GrantCreated,
    GrantRevokedEvent,
    GuardianSet,
    GuardianWithdrawn,
    KeysRotated,
    MemberAdmitted,
    MemberApplied,
    MemberReinstated,
    MemberRemoved,
    MemberRoleChanged,
    MemberSuspended,
    ProfileRegistered,
    ProposalApproved,
    ProposalCreated,
    ProposalExecuted,
    ProxyReported,
    Relayed,
    SignerRotated,
    StateLogged,
    TagRevoked,
    ThresholdChanged,
    WriterAuthorized,
    WriterRevoked,
)
from emrshare.chain.forwarding import ForwardRequest
from emrshare.chain.ids import (
    BINDING_BYTES,
    FHIR_PURPOSES,
    ZERO_HEAD,
    binding_for,
    next_head,
    policy_id,
    proxies_hash,
    purpose_code,
    record_id,
    record_ids,
    records_hash,
    verify_chain,
)
from emrshare.chain.values import (
    AccessEntry,
    AccessRequest,
    Action,
    ActiveWindow,
    AdminConfig,
    Appended,
    GrantParams,
    GrantStatus,
    IndexHead,
    Member,
    PatientProfile,
    Policy,
    Proposal,
    RequestStatus,
    Role,
)

# web3 is imported by now, and py_ecc with it: undo its recursion limit before anything
# decodes JSON from a node (see emrshare._recursion).
cap_recursion_limit()

__all__ = [
    "BINDING_BYTES",
    "DEPLOY_ORDER",
    "FHIR_PURPOSES",
    "ZERO_HEAD",
    "AccessEntry",
    "AccessLogged",
    "AccessRequest",
    "AccessRequestAnswered",
    "AccessRequested",
    "Action",
    "ActiveWindow",
    "AdminConfig",
    "Appended",
    "AuditLog",
    "ChainClient",
    "StateLogged",
    "SignerRotated",
    "Relayed",
    "PatientForwarder",
    "GuardianWithdrawn",
    "GuardianSet",
    "ForwardRequest",
    "ChainEvent",
    "ConsortiumRegistry",
    "Contracts",
    "Deployment",
    "EndpointChanged",
    "EntryAppended",
    "EventCursor",
    "GrantCreated",
    "GrantParams",
    "GrantRevokedEvent",
    "GrantStatus",
    "Grants",
    "IndexHead",
    "KeysRotated",
    "Member",
    "MemberAdmitted",
    "MemberApplied",
    "MemberReinstated",
    "MemberRemoved",
    "MemberRoleChanged",
    "MemberSuspended",
    "NonceManager",
    "PatientProfiles",
    "Policy",
    "PatientProfile",
    "ProfileRegistered",
    "Proposal",
    "ProposalApproved",
    "ProposalCreated",
    "ProposalExecuted",
    "ProxyReported",
    "Receipt",
    "RecordIndex",
    "RequestStatus",
    "Role",
    "SignedTransaction",
    "TagRevoked",
    "ThresholdChanged",
    "TransactionState",
    "WriterAuthorized",
    "WriterRevoked",
    "binding_for",
    "decode_revert",
    "deploy_contracts",
    "next_head",
    "policy_id",
    "proxies_hash",
    "purpose_code",
    "record_id",
    "record_ids",
    "records_hash",
    "scrub_url_secrets",
    "verify_chain",
]
