// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";

/// @title ConsortiumRegistry
/// @notice The consortium's members: their role, their public keys (Umbral receiving key,
/// X25519 box key) and, for proxies, an endpoint URL. Admission, role change, removal and
/// the approval threshold change only by M-of-N admin approval (propose / approve / execute).
/// A candidate first publishes its keys with {applyForMembership}, so keys on chain are always sent by
/// their owner; a member rotates its own keys.
///
/// Proxy accountability: any active member may {reportProxy} with evidence (published in
/// the event, hashed for reference); the admins verify it off chain and suspend the proxy by
/// the same M-of-N proposal flow ({Action.Suspend}, the evidence hash as the proposal's
/// `ref`). A suspended proxy keeps its record but {hasRole} and {isActiveMember} answer
/// false from the block of suspension on, so Grants, RecordIndex and AuditLog refuse it.
contract ConsortiumRegistry {
    using EnumerableSet for EnumerableSet.AddressSet;

    /// @notice A member's role. `None` means "not a member".
    enum Role {
        None,
        Provider,
        Proxy,
        Regulator,
        Insurer,
        Pharmacy,
        Admin,
        Researcher,
        Manufacturer,
        Distributor
    }

    /// @notice What a proposal does when executed.
    enum Action {
        Admit,
        ChangeRole,
        Remove,
        SetThreshold,
        Suspend,
        Reinstate,
        SetCapabilities
    }

    struct Member {
        Role role;
        uint64 admittedAt; // block number; 0 while only applied
        uint64 suspendedAt; // block number; 0 while not suspended
        uint8 capabilities; // bitmask of CAP_* granted by M-of-N proposal; same slot as role
        bytes umbralKey; // Umbral receiving public key (33-byte compressed point)
        bytes32 boxKey; // X25519 public key
        string endpoint; // proxies only: base URL of the re-encryption service
    }

    struct Proposal {
        Action action;
        Role role;
        bool executed;
        uint16 approvals;
        uint32 adminEpoch; // admin set version the approvals were counted against
        address target;
        uint256 threshold;
        address proposer;
        bytes32 ref; // a reference, e.g. the evidence hash of a Suspend; zero if none
    }

    mapping(address account => Member) private _members;
    EnumerableSet.AddressSet private _memberSet;
    uint256 private _adminCount;
    uint256 private _threshold;
    uint32 private _adminEpoch;
    Proposal[] private _proposals;
    uint256 private _reportCount;
    mapping(uint256 proposalId => mapping(address admin => bool)) private _approved;

    /// @notice The caller is not an admin.
    error Registry_NotAdmin(address account);
    /// @notice The caller is not a member.
    error Registry_NotMember(address account);
    /// @notice The account is already a member.
    error Registry_AlreadyMember(address account);
    /// @notice The account has not published its keys with {applyForMembership}.
    error Registry_NotApplied(address account);
    /// @notice A key had the wrong length (Umbral key: 33 bytes; box key: non-zero).
    error Registry_InvalidKey(uint256 length);
    /// @notice `None` is not a role a member can have.
    error Registry_InvalidRole(uint8 role);
    /// @notice The threshold must be between 1 and the number of admins.
    error Registry_InvalidThreshold(uint256 threshold, uint256 adminCount);
    /// @notice Only a proxy has an endpoint, and it must not be empty.
    error Registry_InvalidEndpoint(address account);
    /// @notice No proposal with that id.
    error Registry_UnknownProposal(uint256 proposalId);
    /// @notice The admin already approved the proposal.
    error Registry_AlreadyApproved(uint256 proposalId, address admin);
    /// @notice The proposal was already executed.
    error Registry_AlreadyExecuted(uint256 proposalId);
    /// @notice The proposal has fewer approvals than the threshold.
    error Registry_NotEnoughApprovals(uint256 proposalId, uint256 approvals, uint256 threshold);
    /// @notice The admin set changed after the proposal was made; propose it again.
    error Registry_ProposalStale(uint256 proposalId);
    /// @notice The account is not a proxy member.
    error Registry_NotProxy(address account);
    /// @notice The proxy has been suspended since block `suspendedAt`.
    error Registry_AlreadySuspended(address account, uint64 suspendedAt);
    /// @notice The account is not suspended (nothing to reinstate).
    error Registry_NotSuspended(address account);
    /// @notice Evidence must be 1..{MAX_EVIDENCE_BYTES} bytes.
    error Registry_InvalidEvidence(uint256 length);

    /// @notice Capability bitmask outside {CAP_ALL}.
    error Registry_InvalidCapabilities(uint256 capabilities);

    /// @notice Capability: may declare a break-glass emergency for a patient (Emergency).
    uint8 public constant CAP_EMERGENCY = 1;
    /// @notice Capability: a Provider's own pharmacy may receive and dispense drugs (DrugTrace).
    uint8 public constant CAP_PHARMACY = 2;
    /// @notice Every capability defined so far.
    uint8 public constant CAP_ALL = CAP_EMERGENCY | CAP_PHARMACY;

    /// @notice Largest evidence accepted by {reportProxy}, in bytes.
    uint256 public constant MAX_EVIDENCE_BYTES = 16384;

    /// @notice Emitted after a candidate publishes its keys.
    event MemberApplied(address indexed account, bytes umbralKey, bytes32 boxKey, string endpoint);
    /// @notice Emitted after an admin makes a proposal (which counts as its approval).
    event ProposalCreated(
        uint256 indexed proposalId,
        address indexed proposer,
        Action action,
        address indexed target,
        Role role,
        uint256 threshold,
        bytes32 ref
    );
    /// @notice Emitted after an admin approves a proposal.
    event ProposalApproved(uint256 indexed proposalId, address indexed admin, uint256 approvals);
    /// @notice Emitted after a proposal is executed.
    event ProposalExecuted(uint256 indexed proposalId, address indexed executor);
    /// @notice Emitted after a member is admitted.
    event MemberAdmitted(address indexed account, Role role);
    /// @notice Emitted after a member's role changes.
    event MemberRoleChanged(address indexed account, Role oldRole, Role newRole);
    /// @notice Emitted after a member is removed.
    event MemberRemoved(address indexed account);
    /// @notice Emitted after a proxy is suspended by proposal `proposalId`.
    event MemberSuspended(address indexed account, uint256 indexed proposalId);
    /// @notice Emitted after a suspended proxy is reinstated.
    event MemberReinstated(address indexed account);
    /// @notice Emitted after a member reports a proxy; `evidence` is published for the
    /// admins to verify, `evidenceHash = keccak256(evidence)` is what a Suspend proposal cites.
    event ProxyReported(
        uint256 indexed reportId,
        address indexed proxy,
        address indexed reporter,
        bytes32 evidenceHash,
        bytes evidence
    );
    /// @notice Emitted after the admin approval threshold changes.
    event ThresholdChanged(uint256 oldThreshold, uint256 newThreshold);
    /// @notice Emitted after a member's capabilities change by proposal `proposalId`.
    event CapabilitiesChanged(
        address indexed account, uint8 oldCapabilities, uint8 newCapabilities, uint256 indexed proposalId
    );
    /// @notice Emitted after a member rotates its keys.
    event KeysRotated(address indexed account, bytes umbralKey, bytes32 boxKey);
    /// @notice Emitted after a proxy changes its endpoint.
    event EndpointChanged(address indexed account, string endpoint);

    /// @notice Creates the registry with its first admins and approval threshold.
    /// Requirements: `admins` are distinct and non-zero; 1 <= `threshold` <= admins.length.
    /// Emits: {MemberAdmitted} per admin, {ThresholdChanged}.
    constructor(address[] memory admins, uint256 threshold) {
        for (uint256 i = 0; i < admins.length; ++i) {
            address a = admins[i];
            if (a == address(0) || !_memberSet.add(a)) revert Registry_AlreadyMember(a);
            _members[a].role = Role.Admin;
            _members[a].admittedAt = uint64(block.number);
            emit MemberAdmitted(a, Role.Admin);
        }
        _adminCount = admins.length;
        if (threshold == 0 || threshold > admins.length) {
            revert Registry_InvalidThreshold(threshold, admins.length);
        }
        _threshold = threshold;
        emit ThresholdChanged(0, threshold);
    }

    modifier onlyAdmin() {
        if (_members[msg.sender].role != Role.Admin) revert Registry_NotAdmin(msg.sender);
        _;
    }

    // ------------------------------------------------------------------ keys

    /// @notice Publishes the caller's keys (and endpoint, for a future proxy) before admission.
    /// Requirements: caller is not a member; `umbralKey` is 33 bytes; `boxKey` is non-zero.
    /// Emits: {MemberApplied}.
    function applyForMembership(bytes calldata umbralKey, bytes32 boxKey, string calldata endpoint) external {
        if (_members[msg.sender].role != Role.None) revert Registry_AlreadyMember(msg.sender);
        _checkKeys(umbralKey, boxKey);
        Member storage m = _members[msg.sender];
        m.umbralKey = umbralKey;
        m.boxKey = boxKey;
        m.endpoint = endpoint;
        emit MemberApplied(msg.sender, umbralKey, boxKey, endpoint);
    }

    /// @notice Replaces the caller's keys.
    /// Requirements: caller is a member; `umbralKey` is 33 bytes; `boxKey` is non-zero.
    /// Emits: {KeysRotated}.
    function rotateKeys(bytes calldata umbralKey, bytes32 boxKey) external {
        if (_members[msg.sender].role == Role.None) revert Registry_NotMember(msg.sender);
        _checkKeys(umbralKey, boxKey);
        Member storage m = _members[msg.sender];
        m.umbralKey = umbralKey;
        m.boxKey = boxKey;
        emit KeysRotated(msg.sender, umbralKey, boxKey);
    }

    /// @notice Sets the caller's proxy endpoint.
    /// Requirements: caller is a proxy member; `endpoint` is not empty.
    /// Emits: {EndpointChanged}.
    function setEndpoint(string calldata endpoint) external {
        if (_members[msg.sender].role != Role.Proxy || bytes(endpoint).length == 0) {
            revert Registry_InvalidEndpoint(msg.sender);
        }
        _members[msg.sender].endpoint = endpoint;
        emit EndpointChanged(msg.sender, endpoint);
    }

    // ------------------------------------------------------------- proposals

    /// @notice Proposes an admission, role change, removal, threshold change, suspension or
    /// reinstatement or capability change, with no reference; the proposer's approval is
    /// counted. `role` is used by Admit/ChangeRole, `threshold` by SetThreshold and, for
    /// SetCapabilities, carries the new capability bitmask (CAP_*).
    /// Requirements: caller is an admin; the action is valid now (see {execute}).
    /// Emits: {ProposalCreated}.
    function propose(Action action, address target, Role role, uint256 threshold)
        external
        onlyAdmin
        returns (uint256 proposalId)
    {
        return _propose(action, target, role, threshold, bytes32(0));
    }

    /// @notice As {propose}, citing `ref` (for a Suspend: the `evidenceHash` of the
    /// {ProxyReported} the admins verified).
    /// Requirements: caller is an admin; the action is valid now (see {execute}).
    /// Emits: {ProposalCreated}.
    function proposeWithReference(
        Action action,
        address target,
        Role role,
        uint256 threshold,
        bytes32 ref
    ) external onlyAdmin returns (uint256 proposalId) {
        return _propose(action, target, role, threshold, ref);
    }

    /// @notice Reports misbehaviour of a proxy (for example a re-encryption it served after a
    /// revocation), publishing the evidence. Reporting changes nothing by itself: admins
    /// verify the evidence and may then propose {Action.Suspend}.
    /// Requirements: caller is an active member; `proxy` has the Proxy role (suspended or
    /// not); `evidence` is 1..{MAX_EVIDENCE_BYTES} bytes.
    /// Emits: {ProxyReported}.
    function reportProxy(address proxy, bytes calldata evidence) external returns (uint256 reportId) {
        if (!isActiveMember(msg.sender)) revert Registry_NotMember(msg.sender);
        if (_members[proxy].role != Role.Proxy) revert Registry_NotProxy(proxy);
        if (evidence.length == 0 || evidence.length > MAX_EVIDENCE_BYTES) {
            revert Registry_InvalidEvidence(evidence.length);
        }
        reportId = _reportCount++;
        emit ProxyReported(reportId, proxy, msg.sender, keccak256(evidence), evidence);
    }

    /// @notice Approves a proposal.
    /// Requirements: caller is an admin that has not approved it; not executed; not stale.
    /// Emits: {ProposalApproved}.
    function approve(uint256 proposalId) external onlyAdmin {
        Proposal storage p = _openProposal(proposalId);
        if (_approved[proposalId][msg.sender]) {
            revert Registry_AlreadyApproved(proposalId, msg.sender);
        }
        _approved[proposalId][msg.sender] = true;
        uint16 approvals = p.approvals + 1;
        p.approvals = approvals;
        emit ProposalApproved(proposalId, msg.sender, approvals);
    }

    /// @notice Executes a proposal that reached the threshold.
    /// Requirements: caller is an admin; approvals >= threshold; not executed; not stale; the
    /// action is still valid (Admit: target applied and is no member; ChangeRole/Remove:
    /// target is a member and the admins left can still meet the threshold; Suspend: target
    /// is a proxy not suspended; Reinstate: target is suspended; SetCapabilities: target is
    /// a member, the mask within {CAP_ALL}).
    /// Emits: {ProposalExecuted} and one of {MemberAdmitted}, {MemberRoleChanged},
    /// {MemberRemoved}, {ThresholdChanged}, {MemberSuspended}, {MemberReinstated},
    /// {CapabilitiesChanged}.
    function execute(uint256 proposalId) external onlyAdmin {
        Proposal storage p = _openProposal(proposalId);
        if (p.approvals < _threshold) {
            revert Registry_NotEnoughApprovals(proposalId, p.approvals, _threshold);
        }
        _validate(p.action, p.target, p.role, p.threshold);
        p.executed = true;
        address target = p.target;
        if (p.action == Action.Admit) {
            _memberSet.add(target);
            _members[target].role = p.role;
            _members[target].admittedAt = uint64(block.number);
            if (p.role == Role.Admin) _adminSetChanged(1, true);
            emit MemberAdmitted(target, p.role);
        } else if (p.action == Action.ChangeRole) {
            Role old = _members[target].role;
            _members[target].role = p.role;
            if (old == Role.Admin) _adminSetChanged(1, false);
            if (p.role == Role.Admin) _adminSetChanged(1, true);
            emit MemberRoleChanged(target, old, p.role);
        } else if (p.action == Action.Remove) {
            if (_members[target].role == Role.Admin) _adminSetChanged(1, false);
            _memberSet.remove(target);
            delete _members[target];
            emit MemberRemoved(target);
        } else if (p.action == Action.Suspend) {
            _members[target].suspendedAt = uint64(block.number);
            emit MemberSuspended(target, proposalId);
        } else if (p.action == Action.Reinstate) {
            _members[target].suspendedAt = 0;
            emit MemberReinstated(target);
        } else if (p.action == Action.SetCapabilities) {
            uint8 old = _members[target].capabilities;
            uint8 caps = uint8(p.threshold);
            _members[target].capabilities = caps;
            emit CapabilitiesChanged(target, old, caps, proposalId);
        } else {
            uint256 old = _threshold;
            _threshold = p.threshold;
            ++_adminEpoch;
            emit ThresholdChanged(old, p.threshold);
        }
        emit ProposalExecuted(proposalId, msg.sender);
    }

    // ----------------------------------------------------------------- reads

    /// @notice A member's (or applicant's) role, keys and endpoint.
    /// Requirements: the account is a member or has applied.
    function memberOf(address account) external view returns (Member memory) {
        Member memory m = _members[account];
        if (m.role == Role.None && m.umbralKey.length == 0) revert Registry_NotMember(account);
        return m;
    }

    /// @notice The role of `account` (`None` if it is not a member).
    function roleOf(address account) external view returns (Role) {
        return _members[account].role;
    }

    /// @notice Whether `account` is a member with role `role` and not suspended.
    function hasRole(address account, Role role) public view returns (bool) {
        Member storage m = _members[account];
        return role != Role.None && m.role == role && m.suspendedAt == 0;
    }

    /// @notice Whether `account` is an active (not suspended) member holding every
    /// capability bit of `capability` (for example {CAP_EMERGENCY}).
    function hasCapability(address account, uint8 capability) external view returns (bool) {
        Member storage m = _members[account];
        return capability != 0 && m.role != Role.None && m.suspendedAt == 0
            && (m.capabilities & capability) == capability;
    }

    /// @notice The role and capability bits of `account` in one call; (`None`, 0) for a
    /// non-member or a suspended member.
    function standing(address account) external view returns (Role role, uint8 capabilities) {
        Member storage m = _members[account];
        if (m.suspendedAt != 0) return (Role.None, 0);
        return (m.role, m.capabilities);
    }

    /// @notice Whether `account` is a member (any role) and not suspended.
    function isActiveMember(address account) public view returns (bool) {
        Member storage m = _members[account];
        return m.role != Role.None && m.suspendedAt == 0;
    }

    /// @notice Whether every account has role `role` and is not suspended, in one call.
    /// @return ok True if all do (also for an empty list).
    /// @return firstBad The index of the first account that does not; `accounts.length` if ok.
    function allHaveRole(address[] calldata accounts, Role role)
        external
        view
        returns (bool ok, uint256 firstBad)
    {
        uint256 n = accounts.length;
        for (uint256 i = 0; i < n; ++i) {
            if (!hasRole(accounts[i], role)) return (false, i);
        }
        return (true, n);
    }

    /// @notice Number of proxy reports ever made (ids are 0 .. count-1).
    function reportCount() external view returns (uint256) {
        return _reportCount;
    }

    /// @notice Number of members.
    function memberCount() external view returns (uint256) {
        return _memberSet.length();
    }

    /// @notice Members `offset` .. `offset + limit` (fewer at the end).
    function members(uint256 offset, uint256 limit) external view returns (address[] memory page) {
        uint256 n = _memberSet.length();
        uint256 end = offset + limit < n ? offset + limit : n;
        if (offset >= end) return new address[](0);
        page = new address[](end - offset);
        for (uint256 i = offset; i < end; ++i) page[i - offset] = _memberSet.at(i);
    }

    /// @notice Number of admins and the approval threshold M.
    function adminConfig() external view returns (uint256 adminCount, uint256 threshold) {
        return (_adminCount, _threshold);
    }

    /// @notice A proposal by id.
    /// Requirements: the proposal exists.
    function proposal(uint256 proposalId) external view returns (Proposal memory) {
        if (proposalId >= _proposals.length) revert Registry_UnknownProposal(proposalId);
        return _proposals[proposalId];
    }

    /// @notice Number of proposals ever made (ids are 0 .. count-1).
    function proposalCount() external view returns (uint256) {
        return _proposals.length;
    }

    // -------------------------------------------------------------- internal

    function _checkKeys(bytes calldata umbralKey, bytes32 boxKey) private pure {
        if (umbralKey.length != 33) revert Registry_InvalidKey(umbralKey.length);
        if (boxKey == bytes32(0)) revert Registry_InvalidKey(0);
    }

    function _openProposal(uint256 proposalId) private view returns (Proposal storage p) {
        if (proposalId >= _proposals.length) revert Registry_UnknownProposal(proposalId);
        p = _proposals[proposalId];
        if (p.executed) revert Registry_AlreadyExecuted(proposalId);
        if (p.adminEpoch != _adminEpoch) revert Registry_ProposalStale(proposalId);
    }

    function _propose(
        Action action,
        address target,
        Role role,
        uint256 threshold,
        bytes32 ref
    ) private returns (uint256 proposalId) {
        _validate(action, target, role, threshold);
        proposalId = _proposals.length;
        _proposals.push(
            Proposal(action, role, false, 1, _adminEpoch, target, threshold, msg.sender, ref)
        );
        _approved[proposalId][msg.sender] = true;
        emit ProposalCreated(proposalId, msg.sender, action, target, role, threshold, ref);
    }

    function _validate(Action action, address target, Role role, uint256 threshold) private view {
        if (action == Action.SetThreshold) {
            if (threshold == 0 || threshold > _adminCount) {
                revert Registry_InvalidThreshold(threshold, _adminCount);
            }
            return;
        }
        Member storage m = _members[target];
        if (action == Action.SetCapabilities) {
            if (m.role == Role.None) revert Registry_NotMember(target);
            if (threshold > CAP_ALL) revert Registry_InvalidCapabilities(threshold);
            return;
        }
        if (action == Action.Suspend) {
            if (m.role != Role.Proxy) revert Registry_NotProxy(target);
            if (m.suspendedAt != 0) revert Registry_AlreadySuspended(target, m.suspendedAt);
            return;
        }
        if (action == Action.Reinstate) {
            if (m.suspendedAt == 0) revert Registry_NotSuspended(target);
            return;
        }
        if (action == Action.Admit) {
            if (m.role != Role.None) revert Registry_AlreadyMember(target);
            if (m.umbralKey.length == 0) revert Registry_NotApplied(target);
            if (role == Role.None) revert Registry_InvalidRole(uint8(role));
            if (role == Role.Proxy && bytes(m.endpoint).length == 0) {
                revert Registry_InvalidEndpoint(target);
            }
            return;
        }
        if (m.role == Role.None) revert Registry_NotMember(target);
        bool losesAdmin = m.role == Role.Admin
            && (action == Action.Remove || role != Role.Admin);
        if (action == Action.ChangeRole) {
            if (role == Role.None) revert Registry_InvalidRole(uint8(role));
            if (role == Role.Proxy && bytes(m.endpoint).length == 0) {
                revert Registry_InvalidEndpoint(target);
            }
        }
        if (losesAdmin && _adminCount - 1 < _threshold) {
            revert Registry_InvalidThreshold(_threshold, _adminCount - 1);
        }
    }

    /// @dev Any change of the admin set invalidates open proposals: approvals counted
    /// against the old set (for example by a removed admin) must not carry over.
    function _adminSetChanged(uint256 delta, bool added) private {
        _adminCount = added ? _adminCount + delta : _adminCount - delta;
        ++_adminEpoch;
    }
}
