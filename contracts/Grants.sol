// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ConsortiumRegistry} from "./ConsortiumRegistry.sol";

/// @title Grants
/// @notice A patient's grants of one blinded category tag to a grantee through M-of-N proxies,
/// their revocation, and access requests from consortium members that the patient approves
/// (creating the grant) or denies.
///
/// Storage per grant is three slots (patient, expiry, generation and revocation block packed
/// into one; the tag; the proxy-list hash) plus its entry in the patient's list. The grantee,
/// proxy list, threshold, sealed kfrags and sealed grantee map travel in calldata and in
/// {GrantCreated}; the grant keeps `keccak256(abi.encode(proxies))` so the audit log can
/// check a proxy against it.
///
/// "Revoke all grants of a tag" is O(1): a per-(patient, tag) generation counter that every
/// grant snapshots; bumping it ({revokeTag}) makes every older grant of that tag inactive.
///
/// The contract is also the EIP-712 verifying contract of proxy requests
/// (domain name "emrshare-proxy", version "1"): see {hashProxyRequest}.
contract Grants is EIP712 {
    /// @notice Most proxies one grant may name.
    uint256 public constant MAX_PROXIES = 32;

    /// @notice EIP-712 type hash of a proxy request signed by a grantee.
    bytes32 public constant PROXY_REQUEST_TYPEHASH = keccak256(
        "ProxyRequest(address proxy,bytes32 policyId,bytes32[] capsuleHashes,uint256 nonce,uint256 deadline)"
    );

    /// @notice Life-cycle state of a grant, evaluated on chain time.
    enum Status {
        None,
        Active,
        Revoked,
        Expired,
        TagRevoked
    }

    /// @notice State of an access request.
    enum RequestStatus {
        None,
        Pending,
        Approved,
        Denied
    }

    /// @notice What a patient signs into a grant.
    struct GrantParams {
        bytes32 nonce; // random; policyId = keccak256(abi.encode(patient, nonce))
        address grantee;
        bytes32 tag;
        uint32 epoch;
        uint40 expiry; // unix seconds, chain time
        address[] proxies;
        uint8 threshold;
        bytes[] sealedKfrags; // aligned with proxies
        bytes sealedGranteeMap;
    }

    struct Policy {
        address patient;
        uint40 expiry; // unix seconds
        uint16 generation; // of (patient, tag) when granted
        uint40 revokedAt; // block number; 0 while not revoked
        bytes32 tag;
        bytes32 proxiesHash; // keccak256(abi.encode(proxies))
    }

    struct AccessRequest {
        address requester;
        RequestStatus status;
        address patient;
        bytes32 policyId; // set when approved
    }

    ConsortiumRegistry private immutable _registry;
    mapping(bytes32 policyId => Policy) private _policies;
    mapping(address patient => mapping(bytes32 tag => uint16)) private _generations;
    mapping(address patient => bytes32[]) private _patientPolicies;
    mapping(uint256 requestId => AccessRequest) private _requests;
    uint256 private _requestCount;

    /// @notice A grant with that id already exists (pick another nonce).
    error Grants_PolicyExists(bytes32 policyId);
    /// @notice No grant with that id.
    error Grants_UnknownPolicy(bytes32 policyId);
    /// @notice Only the grant's patient may do that.
    error Grants_NotPatient(bytes32 policyId, address caller);
    /// @notice The grant was already revoked at `revokedAt` (block).
    error Grants_AlreadyRevoked(bytes32 policyId, uint40 revokedAt);
    /// @notice The grantee is zero or the patient itself.
    error Grants_InvalidGrantee(address grantee);
    /// @notice The expiry is not after the current chain time.
    error Grants_ExpiryInPast(uint40 expiry, uint256 chainTime);
    /// @notice The threshold must be between 1 and the number of proxies.
    error Grants_InvalidThreshold(uint8 threshold, uint256 proxyCount);
    /// @notice More proxies than {MAX_PROXIES}.
    error Grants_TooManyProxies(uint256 proxyCount, uint256 max);
    /// @notice A proxy is zero or named twice.
    error Grants_InvalidProxy(address proxy);
    /// @notice One sealed kfrag per proxy is needed.
    error Grants_KfragCountMismatch(uint256 kfragCount, uint256 proxyCount);
    /// @notice The requester is not a consortium member.
    error Grants_NotMember(address account);
    /// @notice The purpose is not an upper-case FHIR PurposeOfUse code (such as "TREAT").
    error Grants_InvalidPurpose(bytes32 purpose);
    /// @notice The patient address is zero or the requester itself.
    error Grants_InvalidPatient(address patient);
    /// @notice No access request with that id.
    error Grants_UnknownRequest(uint256 requestId);
    /// @notice Only the request's patient may answer it.
    error Grants_NotRequestPatient(uint256 requestId, address caller);
    /// @notice The request was already answered.
    error Grants_RequestClosed(uint256 requestId, RequestStatus status);
    /// @notice The grant approving a request must name the requester as grantee.
    error Grants_GranteeMismatch(uint256 requestId, address requester, address grantee);

    /// @notice Emitted after a grant is created. The proxies read their sealed kfrag here.
    event GrantCreated(
        bytes32 indexed policyId,
        address indexed patient,
        address indexed grantee,
        bytes32 tag,
        uint32 epoch,
        uint40 expiry,
        uint16 generation,
        uint8 threshold,
        address[] proxies,
        bytes[] sealedKfrags,
        bytes sealedGranteeMap
    );
    /// @notice Emitted after a grant is revoked; honest proxies refuse from `revokedAt` on.
    event GrantRevoked(bytes32 indexed policyId, address indexed patient, uint40 revokedAt);
    /// @notice Emitted after a patient revokes every grant of a tag (epoch bump).
    event TagRevoked(address indexed patient, bytes32 indexed tag, uint16 generation);
    /// @notice Emitted after a member requests access to a patient's category.
    event AccessRequested(
        uint256 indexed requestId,
        address indexed patient,
        address indexed requester,
        bytes32 category,
        bytes32 purpose,
        bytes32 reasonHash
    );
    /// @notice Emitted after a patient approves a request (the grant is created first).
    event AccessRequestApproved(
        uint256 indexed requestId, address indexed patient, address indexed requester, bytes32 policyId
    );
    /// @notice Emitted after a patient denies a request.
    event AccessRequestDenied(
        uint256 indexed requestId, address indexed patient, address indexed requester
    );

    /// @param registry_ The consortium registry whose members may request access.
    constructor(ConsortiumRegistry registry_) EIP712("emrshare-proxy", "1") {
        _registry = registry_;
    }

    // ---------------------------------------------------------------- grants

    /// @notice Grants `p.grantee` access to the caller's tag `p.tag` through `p.proxies`.
    /// Requirements: the policy id `keccak256(abi.encode(msg.sender, p.nonce))` is unused;
    /// grantee is neither zero nor the caller; expiry is after chain time; 1 <= threshold <=
    /// proxies <= {MAX_PROXIES}; proxies are distinct and non-zero; one sealed kfrag per proxy.
    /// Emits: {GrantCreated}.
    function grant(GrantParams calldata p) external returns (bytes32 policyId) {
        return _grant(p);
    }

    /// @notice Revokes one of the caller's grants, recording the block.
    /// Requirements: the grant exists, belongs to the caller and is not revoked.
    /// Emits: {GrantRevoked}.
    function revoke(bytes32 policyId) external {
        Policy storage pol = _policies[policyId];
        address patient = pol.patient;
        if (patient == address(0)) revert Grants_UnknownPolicy(policyId);
        if (patient != msg.sender) revert Grants_NotPatient(policyId, msg.sender);
        uint40 revokedAt = pol.revokedAt;
        if (revokedAt != 0) revert Grants_AlreadyRevoked(policyId, revokedAt);
        revokedAt = uint40(block.number);
        pol.revokedAt = revokedAt;
        emit GrantRevoked(policyId, msg.sender, revokedAt);
    }

    /// @notice Revokes every grant of the caller's `tag` at once by bumping its generation;
    /// the patient then moves the category to a new epoch (new tag) off chain.
    /// Emits: {TagRevoked}.
    function revokeTag(bytes32 tag) external {
        uint16 generation = _generations[msg.sender][tag] + 1;
        _generations[msg.sender][tag] = generation;
        emit TagRevoked(msg.sender, tag, generation);
    }

    /// @notice Whether the grant is active now (exists, not revoked, not expired by chain
    /// time, its tag not revoked).
    function isActive(bytes32 policyId) external view returns (bool) {
        return statusOf(policyId) == Status.Active;
    }

    /// @notice The grant's state on chain time.
    function statusOf(bytes32 policyId) public view returns (Status) {
        Policy storage pol = _policies[policyId];
        if (pol.patient == address(0)) return Status.None;
        if (pol.revokedAt != 0) return Status.Revoked;
        if (_generations[pol.patient][pol.tag] != pol.generation) return Status.TagRevoked;
        if (block.timestamp >= pol.expiry) return Status.Expired;
        return Status.Active;
    }

    /// @notice A grant by id.
    /// Requirements: the grant exists.
    function policyOf(bytes32 policyId) external view returns (Policy memory) {
        Policy memory pol = _policies[policyId];
        if (pol.patient == address(0)) revert Grants_UnknownPolicy(policyId);
        return pol;
    }

    /// @notice `keccak256(abi.encode(proxies))` of a grant, zero if there is no such grant.
    function proxiesHashOf(bytes32 policyId) external view returns (bytes32) {
        return _policies[policyId].proxiesHash;
    }

    /// @notice The current generation of a patient's tag (grants of older ones are inactive).
    function generationOf(address patient, bytes32 tag) external view returns (uint16) {
        return _generations[patient][tag];
    }

    /// @notice Number of grants a patient ever created.
    function policyCount(address patient) external view returns (uint256) {
        return _patientPolicies[patient].length;
    }

    /// @notice A page of a patient's grant ids, oldest first.
    function policiesOf(address patient, uint256 offset, uint256 limit)
        external
        view
        returns (bytes32[] memory page)
    {
        bytes32[] storage all = _patientPolicies[patient];
        uint256 n = all.length;
        uint256 end = offset + limit < n ? offset + limit : n;
        if (offset >= end) return new bytes32[](0);
        page = new bytes32[](end - offset);
        for (uint256 i = offset; i < end; ++i) page[i - offset] = all[i];
    }

    /// @notice The policy id a patient's nonce yields.
    function policyIdOf(address patient, bytes32 nonce) public pure returns (bytes32) {
        return keccak256(abi.encode(patient, nonce));
    }

    /// @notice EIP-712 digest of a proxy request, as the grantee signs it.
    function hashProxyRequest(
        address proxy,
        bytes32 policyId,
        bytes32[] calldata capsuleHashes,
        uint256 nonce,
        uint256 deadline
    ) external view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    PROXY_REQUEST_TYPEHASH,
                    proxy,
                    policyId,
                    keccak256(abi.encodePacked(capsuleHashes)),
                    nonce,
                    deadline
                )
            )
        );
    }

    // ------------------------------------------------------- access requests

    /// @notice Asks `patient` for access to a category for a purpose of use.
    /// `category` is an opaque 32-byte reference agreed off chain (never a category name);
    /// `purpose` is a FHIR PurposeOfUse code left-aligned in ASCII ("TREAT", "ETREAT", ...);
    /// `reasonHash` commits to a free-text reason kept off chain.
    /// Requirements: the caller is a consortium member; `patient` is neither zero nor the
    /// caller; `purpose` is 1..32 upper-case letters followed by zero bytes.
    /// Emits: {AccessRequested}.
    function requestAccess(address patient, bytes32 category, bytes32 purpose, bytes32 reasonHash)
        external
        returns (uint256 requestId)
    {
        if (_registry.roleOf(msg.sender) == ConsortiumRegistry.Role.None) {
            revert Grants_NotMember(msg.sender);
        }
        if (patient == address(0) || patient == msg.sender) revert Grants_InvalidPatient(patient);
        _checkPurpose(purpose);
        requestId = ++_requestCount;
        _requests[requestId] = AccessRequest(msg.sender, RequestStatus.Pending, patient, 0);
        emit AccessRequested(requestId, patient, msg.sender, category, purpose, reasonHash);
    }

    /// @notice Approves a pending request by creating the grant `p` for the requester.
    /// Requirements: the caller is the request's patient; the request is pending;
    /// `p.grantee` is the requester; everything {grant} requires.
    /// Emits: {GrantCreated}, {AccessRequestApproved}.
    function approveRequest(uint256 requestId, GrantParams calldata p)
        external
        returns (bytes32 policyId)
    {
        AccessRequest storage r = _pendingRequest(requestId);
        address requester = r.requester;
        if (p.grantee != requester) revert Grants_GranteeMismatch(requestId, requester, p.grantee);
        policyId = _grant(p);
        r.status = RequestStatus.Approved;
        r.policyId = policyId;
        emit AccessRequestApproved(requestId, msg.sender, requester, policyId);
    }

    /// @notice Denies a pending request.
    /// Requirements: the caller is the request's patient; the request is pending.
    /// Emits: {AccessRequestDenied}.
    function denyRequest(uint256 requestId) external {
        AccessRequest storage r = _pendingRequest(requestId);
        r.status = RequestStatus.Denied;
        emit AccessRequestDenied(requestId, msg.sender, r.requester);
    }

    /// @notice An access request by id.
    /// Requirements: the request exists.
    function requestOf(uint256 requestId) external view returns (AccessRequest memory) {
        AccessRequest memory r = _requests[requestId];
        if (r.status == RequestStatus.None) revert Grants_UnknownRequest(requestId);
        return r;
    }

    /// @notice Number of access requests ever made (ids are 1 .. count).
    function requestCount() external view returns (uint256) {
        return _requestCount;
    }

    /// @notice The consortium registry this contract checks requesters against.
    function registry() external view returns (ConsortiumRegistry) {
        return _registry;
    }

    // -------------------------------------------------------------- internal

    function _grant(GrantParams calldata p) private returns (bytes32 policyId) {
        policyId = keccak256(abi.encode(msg.sender, p.nonce));
        Policy storage pol = _policies[policyId];
        if (pol.patient != address(0)) revert Grants_PolicyExists(policyId);
        if (p.grantee == address(0) || p.grantee == msg.sender) {
            revert Grants_InvalidGrantee(p.grantee);
        }
        if (p.expiry <= block.timestamp) revert Grants_ExpiryInPast(p.expiry, block.timestamp);
        uint256 n = p.proxies.length;
        if (n > MAX_PROXIES) revert Grants_TooManyProxies(n, MAX_PROXIES);
        if (p.threshold == 0 || p.threshold > n) revert Grants_InvalidThreshold(p.threshold, n);
        if (p.sealedKfrags.length != n) revert Grants_KfragCountMismatch(p.sealedKfrags.length, n);
        for (uint256 i = 0; i < n; ++i) {
            address proxy = p.proxies[i];
            if (proxy == address(0)) revert Grants_InvalidProxy(proxy);
            for (uint256 j = 0; j < i; ++j) {
                if (p.proxies[j] == proxy) revert Grants_InvalidProxy(proxy);
            }
        }
        uint16 generation = _generations[msg.sender][p.tag];
        pol.patient = msg.sender;
        pol.expiry = p.expiry;
        pol.generation = generation;
        pol.tag = p.tag;
        pol.proxiesHash = keccak256(abi.encode(p.proxies));
        _patientPolicies[msg.sender].push(policyId);
        emit GrantCreated(
            policyId,
            msg.sender,
            p.grantee,
            p.tag,
            p.epoch,
            p.expiry,
            generation,
            p.threshold,
            p.proxies,
            p.sealedKfrags,
            p.sealedGranteeMap
        );
    }

    function _pendingRequest(uint256 requestId) private view returns (AccessRequest storage r) {
        r = _requests[requestId];
        RequestStatus status = r.status;
        if (status == RequestStatus.None) revert Grants_UnknownRequest(requestId);
        if (r.patient != msg.sender) revert Grants_NotRequestPatient(requestId, msg.sender);
        if (status != RequestStatus.Pending) revert Grants_RequestClosed(requestId, status);
    }

    function _checkPurpose(bytes32 purpose) private pure {
        if (purpose == bytes32(0)) revert Grants_InvalidPurpose(purpose);
        bool ended = false;
        for (uint256 i = 0; i < 32; ++i) {
            bytes1 c = purpose[i];
            if (c == 0) {
                ended = true;
            } else if (ended || c < "A" || c > "Z") {
                revert Grants_InvalidPurpose(purpose);
            }
        }
    }
}
