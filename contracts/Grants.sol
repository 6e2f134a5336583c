// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ConsortiumRegistry} from "./ConsortiumRegistry.sol";
import {PatientContext} from "./PatientContext.sol";
import {PatientForwarder} from "./PatientForwarder.sol";
import {PatientProfiles} from "./PatientProfiles.sol";

/// @title Grants
/// @notice A patient's grants of one blinded category tag to a grantee through M-of-N proxies,
/// their revocation, and sealed access requests between consortium members and patients.
///
/// Storage per grant is three slots: (patient, expiry, generation, revocation block); the
/// tag; (creation block, binding). The grantee, proxy list, threshold, sealed kfrags and
/// sealed grantee map travel in calldata and in {GrantCreated}. The binding is the first 27
/// bytes of `keccak256(abi.encode(grantee, proxies))` ({bindingFor}): 216 bits, so finding
/// another (grantee, proxies) with the same binding is a second-preimage search of about
/// 2^216 work, far out of reach; 27 bytes is what fits next to the 5-byte creation block.
/// The audit log checks a logged access's grantee and proxy against it.
///
/// "Revoke all grants of a tag" is O(1): a per-(patient, tag) generation counter that every
/// grant snapshots; bumping it ({revokeTag}) makes every older grant of that tag inactive,
/// and records the block at which the old generation ended ({generationEndedAt}).
///
/// Access requests carry no category, purpose or reason in clear: the requester seals them
/// off chain to the patient's box key ({requestAccess}) and the patient seals its answer to
/// the requester ({answerRequest}). An approval is an ordinary {grant} in its own
/// transaction, with nothing on chain linking it to the request.
///
/// The contract is also the EIP-712 verifying contract of proxy requests
/// (domain name "emrshare-proxy", version "1"): see {hashProxyRequest}.
///
/// A grant may be scoped to some records of its tag (`GrantParams.records`, strictly
/// ascending ids; empty for the whole tag): {scopeOf} holds their hash and {GrantScoped},
/// emitted beside {GrantCreated}, lists them, and proxies serve no capsule of a record outside them. The ids are in clear,
/// as the grant's patient, grantee and tag are: a scoped grant says which records the
/// grantee may read, not what they hold.
///
/// A patient acts directly or through the {PatientForwarder} (signed, relayed, no ETH);
/// a guardian acts through it in the patient's name (grant, revoke, revokeTag, answer).
contract Grants is EIP712, PatientContext {
    /// @notice Most proxies one grant may name.
    uint256 public constant MAX_PROXIES = 32;
    /// @notice Largest sealed kfrag, sealed request and sealed answer, in bytes.
    uint256 public constant MAX_SEALED_BYTES = 1024;
    /// @notice Largest sealed grantee map, in bytes.
    uint256 public constant MAX_GRANTEE_MAP_BYTES = 2048;
    /// @notice Most records a scoped grant may name.
    uint256 public constant MAX_SCOPE_RECORDS = 256;

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
        Answered
    }

    /// @notice What a patient signs into a grant.
    struct GrantParams {
        bytes32 nonce; // random; policyId = keccak256(abi.encode(patient, nonce))
        address grantee;
        bytes32 tag;
        uint40 expiry; // unix seconds, chain time
        address[] proxies;
        uint8 threshold;
        bytes[] sealedKfrags; // aligned with proxies
        bytes sealedGranteeMap;
        bytes32[] records; // strictly ascending record ids the grant is scoped to; empty: the whole tag
    }

    struct Policy {
        address patient;
        uint40 expiry; // unix seconds
        uint16 generation; // of (patient, tag) when granted
        uint40 revokedAt; // block number; 0 while not revoked
        bytes32 tag;
        uint40 createdAt; // block number
        bytes27 binding; // bytes27(keccak256(abi.encode(grantee, proxies)))
    }

    struct AccessRequest {
        address requester;
        RequestStatus status;
        address patient;
    }

    ConsortiumRegistry private immutable _registry;
    PatientProfiles private immutable _profiles;
    mapping(bytes32 policyId => Policy) private _policies;
    mapping(address patient => mapping(bytes32 tag => uint16)) private _generations;
    mapping(address patient => mapping(bytes32 tag => mapping(uint16 generation => uint40 endedAt)))
        private _generationEnds;
    mapping(address patient => bytes32[]) private _patientPolicies;
    mapping(bytes32 policyId => bytes32 recordsHash) private _scopes;
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
    /// @notice A proxy does not hold the Proxy role, or is suspended.
    error Grants_NotProxy(address proxy);
    /// @notice One sealed kfrag per proxy is needed.
    error Grants_KfragCountMismatch(uint256 kfragCount, uint256 proxyCount);
    /// @notice A sealed blob is empty or too large. `index` is the kfrag's index, 0 for a
    /// sealed request or answer, and `type(uint256).max` for the sealed grantee map.
    error Grants_SealedTooLarge(uint256 index, uint256 length);
    /// @notice A scope's record ids must be strictly ascending (sorted, no repeats) and
    /// at most {MAX_SCOPE_RECORDS}; `index` is the first offending one.
    error Grants_InvalidScope(uint256 index, uint256 count);
    /// @notice The caller has no patient profile (register one in PatientProfiles first).
    error Grants_NoProfile(address caller);
    /// @notice The account is not an active consortium member.
    error Grants_NotMember(address account);
    /// @notice The patient has no profile or is the requester itself.
    error Grants_InvalidPatient(address patient);
    /// @notice No access request with that id.
    error Grants_UnknownRequest(uint256 requestId);
    /// @notice Only the request's patient may answer it.
    error Grants_NotRequestPatient(uint256 requestId, address caller);
    /// @notice The request was already answered.
    error Grants_RequestClosed(uint256 requestId, RequestStatus status);

    /// @notice Emitted after a grant is created. The proxies read their sealed kfrag here.
    event GrantCreated(
        bytes32 indexed policyId,
        address indexed patient,
        address indexed grantee,
        bytes32 tag,
        uint40 expiry,
        uint16 generation,
        uint8 threshold,
        address[] proxies,
        bytes[] sealedKfrags,
        bytes sealedGranteeMap
    );
    /// @notice Emitted with {GrantCreated} for a grant scoped to records: the records.
    event GrantScoped(
        bytes32 indexed policyId, address indexed patient, address indexed grantee, bytes32[] records
    );
    /// @notice Emitted after a grant is revoked; honest proxies refuse from `revokedAt` on.
    event GrantRevoked(bytes32 indexed policyId, address indexed patient, uint40 revokedAt);
    /// @notice Emitted after a patient revokes every grant of a tag; `generation` is the new one.
    event TagRevoked(address indexed patient, bytes32 indexed tag, uint16 generation);
    /// @notice Emitted after a member sends a patient a sealed access request.
    event AccessRequested(
        uint256 indexed requestId,
        address indexed patient,
        address indexed requester,
        bytes sealedRequest
    );
    /// @notice Emitted after a patient answers a request with a sealed answer.
    event AccessRequestAnswered(
        uint256 indexed requestId,
        address indexed patient,
        address indexed requester,
        bytes sealedAnswer
    );

    /// @param registry_ The consortium registry: grantees, requesters and proxies are checked
    /// against it.
    /// @param profiles_ The patient profiles: granting and being asked need a profile.
    /// @param forwarder_ The forwarder that relays patients' signed operations.
    constructor(ConsortiumRegistry registry_, PatientProfiles profiles_, PatientForwarder forwarder_)
        EIP712("emrshare-proxy", "1")
        PatientContext(forwarder_)
    {
        _registry = registry_;
        _profiles = profiles_;
    }

    // ---------------------------------------------------------------- grants

    /// @notice Grants `p.grantee` access to the caller's tag `p.tag` through `p.proxies`.
    /// Requirements: the policy id `keccak256(abi.encode(patient, p.nonce))` is unused;
    /// the caller has a patient profile; the grantee is neither zero nor the caller and is an
    /// active member; expiry is after chain time; 1 <= threshold <= proxies <= {MAX_PROXIES};
    /// proxies are distinct and non-zero and all hold the Proxy role, not suspended; one
    /// sealed kfrag per proxy, each 1..{MAX_SEALED_BYTES} bytes; the sealed grantee map is
    /// 1..{MAX_GRANTEE_MAP_BYTES} bytes; `p.records` is empty or strictly ascending, at most
    /// {MAX_SCOPE_RECORDS}.
    /// Emits: {GrantCreated}.
    function grant(GrantParams calldata p) external returns (bytes32 policyId) {
        address patient = _actor();
        policyId = keccak256(abi.encode(patient, p.nonce));
        Policy storage pol = _policies[policyId];
        if (pol.patient != address(0)) revert Grants_PolicyExists(policyId);
        if (!_profiles.isRegistered(patient)) revert Grants_NoProfile(patient);
        if (p.grantee == address(0) || p.grantee == patient) {
            revert Grants_InvalidGrantee(p.grantee);
        }
        if (!_registry.isActiveMember(p.grantee)) revert Grants_NotMember(p.grantee);
        if (p.expiry <= block.timestamp) revert Grants_ExpiryInPast(p.expiry, block.timestamp);
        _checkProxies(p);
        uint16 generation = _generations[patient][p.tag];
        pol.patient = patient;
        pol.expiry = p.expiry;
        pol.generation = generation;
        pol.tag = p.tag;
        pol.createdAt = uint40(block.number);
        pol.binding = bindingFor(p.grantee, p.proxies);
        _patientPolicies[patient].push(policyId);
        emit GrantCreated(
            policyId,
            patient,
            p.grantee,
            p.tag,
            p.expiry,
            generation,
            p.threshold,
            p.proxies,
            p.sealedKfrags,
            p.sealedGranteeMap
        );
        if (p.records.length != 0) {
            _scopes[policyId] = _scopeHash(p.records);
            emit GrantScoped(policyId, patient, p.grantee, p.records);
        }
    }

    /// @notice Revokes one of the caller's grants, recording the block.
    /// Requirements: the grant exists, belongs to the caller and is not revoked.
    /// Emits: {GrantRevoked}.
    function revoke(bytes32 policyId) external {
        Policy storage pol = _policies[policyId];
        address patient = pol.patient;
        if (patient == address(0)) revert Grants_UnknownPolicy(policyId);
        address caller = _actor();
        if (patient != caller) revert Grants_NotPatient(policyId, caller);
        uint40 revokedAt = pol.revokedAt;
        if (revokedAt != 0) revert Grants_AlreadyRevoked(policyId, revokedAt);
        revokedAt = uint40(block.number);
        pol.revokedAt = revokedAt;
        emit GrantRevoked(policyId, patient, revokedAt);
    }

    /// @notice Revokes every grant of the caller's `tag` at once by bumping its generation,
    /// recording the current block as the end of the old generation; the patient then moves
    /// the category to a new epoch (new tag) off chain and its writers with {RecordIndex-rekeyWriters}.
    /// Requirements: fewer than 65535 earlier bumps of this tag.
    /// Emits: {TagRevoked}.
    function revokeTag(bytes32 tag) external {
        address patient = _actor();
        uint16 old = _generations[patient][tag];
        uint16 generation = old + 1;
        _generations[patient][tag] = generation;
        _generationEnds[patient][tag][old] = uint40(block.number);
        emit TagRevoked(patient, tag, generation);
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

    /// @notice The hash `keccak256(abi.encodePacked(records))` of the records a grant is
    /// scoped to, or zero if it covers its whole tag (or does not exist).
    function scopeOf(bytes32 policyId) external view returns (bytes32) {
        return _scopes[policyId];
    }

    /// @notice The blocks and time during which a grant could be served, in one call.
    /// `endBlock` is the first block at which it no longer is (its revocation or the end of
    /// its tag generation, whichever came first), 0 while neither happened; a serve evaluated
    /// at block b and chain time t was within the grant iff
    /// `createdAt <= b && (endBlock == 0 || b < endBlock) && t < expiry`.
    /// Requirements: the grant exists.
    function activeWindow(bytes32 policyId)
        external
        view
        returns (address patient, uint40 createdAt, uint40 endBlock, uint40 expiry, bytes27 binding)
    {
        Policy storage pol = _policies[policyId];
        patient = pol.patient;
        if (patient == address(0)) revert Grants_UnknownPolicy(policyId);
        createdAt = pol.createdAt;
        expiry = pol.expiry;
        binding = pol.binding;
        endBlock = pol.revokedAt;
        uint40 ended = _generationEnds[patient][pol.tag][pol.generation];
        if (ended != 0 && (endBlock == 0 || ended < endBlock)) endBlock = ended;
    }

    /// @notice The stored binding of a grant to its grantee and proxies, zero if there is no
    /// such grant (see {bindingFor}).
    function bindingOf(bytes32 policyId) external view returns (bytes27) {
        return _policies[policyId].binding;
    }

    /// @notice The first 27 bytes of `keccak256(abi.encode(grantee, proxies))`: what a grant
    /// stores to bind its grantee and proxy list (216 bits, second-preimage safe).
    function bindingFor(address grantee, address[] calldata proxies) public pure returns (bytes27) {
        return bytes27(keccak256(abi.encode(grantee, proxies)));
    }

    /// @notice The current generation of a patient's tag (grants of older ones are inactive).
    function generationOf(address patient, bytes32 tag) external view returns (uint16) {
        return _generations[patient][tag];
    }

    /// @notice The block at which generation `generation` of a patient's tag ended
    /// ({revokeTag}); 0 while it is the current one (or never was).
    function generationEndedAt(address patient, bytes32 tag, uint16 generation)
        external
        view
        returns (uint40)
    {
        return _generationEnds[patient][tag][generation];
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

    /// @notice Sends `patient` a sealed access request. What is asked (category), why
    /// (purpose of use, reason) and any reply address live only inside `sealedRequest`,
    /// sealed off chain to the patient's box key: an observer sees that a member asked a
    /// patient something, not what.
    /// Requirements: the caller is an active member; `patient` has a profile and is not the
    /// caller; `sealedRequest` is 1..{MAX_SEALED_BYTES} bytes.
    /// Emits: {AccessRequested}.
    function requestAccess(address patient, bytes calldata sealedRequest)
        external
        returns (uint256 requestId)
    {
        if (!_registry.isActiveMember(msg.sender)) revert Grants_NotMember(msg.sender);
        if (patient == msg.sender || !_profiles.isRegistered(patient)) {
            revert Grants_InvalidPatient(patient);
        }
        _checkSealed(0, sealedRequest.length, MAX_SEALED_BYTES);
        requestId = ++_requestCount;
        _requests[requestId] = AccessRequest(msg.sender, RequestStatus.Pending, patient);
        emit AccessRequested(requestId, patient, msg.sender, sealedRequest);
    }

    /// @notice Answers a pending request with an answer sealed to the requester (approved
    /// or denied, and for an approval the policy id of a grant made in a separate {grant}
    /// transaction); the request is closed.
    /// Requirements: the request exists; the caller is its patient; it is pending;
    /// `sealedAnswer` is 1..{MAX_SEALED_BYTES} bytes.
    /// Emits: {AccessRequestAnswered}.
    function answerRequest(uint256 requestId, bytes calldata sealedAnswer) external {
        AccessRequest storage r = _requests[requestId];
        RequestStatus status = r.status;
        if (status == RequestStatus.None) revert Grants_UnknownRequest(requestId);
        address caller = _actor();
        if (r.patient != caller) revert Grants_NotRequestPatient(requestId, caller);
        if (status != RequestStatus.Pending) revert Grants_RequestClosed(requestId, status);
        _checkSealed(0, sealedAnswer.length, MAX_SEALED_BYTES);
        r.status = RequestStatus.Answered;
        emit AccessRequestAnswered(requestId, caller, r.requester, sealedAnswer);
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

    /// @notice The consortium registry this contract checks members and proxies against.
    function registry() external view returns (ConsortiumRegistry) {
        return _registry;
    }

    /// @notice The patient profiles this contract checks patients against.
    function profiles() external view returns (PatientProfiles) {
        return _profiles;
    }

    // -------------------------------------------------------------- internal

    function _checkProxies(GrantParams calldata p) private view {
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
            _checkSealed(i, p.sealedKfrags[i].length, MAX_SEALED_BYTES);
        }
        _checkSealed(type(uint256).max, p.sealedGranteeMap.length, MAX_GRANTEE_MAP_BYTES);
        (bool ok, uint256 firstBad) =
            _registry.allHaveRole(p.proxies, ConsortiumRegistry.Role.Proxy);
        if (!ok) revert Grants_NotProxy(p.proxies[firstBad]);
    }

    function _scopeHash(bytes32[] calldata records) private pure returns (bytes32) {
        uint256 n = records.length;
        if (n > MAX_SCOPE_RECORDS) revert Grants_InvalidScope(MAX_SCOPE_RECORDS, n);
        for (uint256 i = 1; i < n; ++i) {
            if (records[i] <= records[i - 1]) revert Grants_InvalidScope(i, n);
        }
        return keccak256(abi.encodePacked(records));
    }

    function _checkSealed(uint256 index, uint256 length, uint256 max) private pure {
        if (length == 0 || length > max) revert Grants_SealedTooLarge(index, length);
    }
}
