// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Grants} from "./Grants.sol";

/// @title AuditLog
/// @notice Proxies record the accesses they served, batched, so patients and regulators see
/// who read what and when. Only a proxy named in the grant may log for it: the caller passes
/// the grant's proxy list, which must hash to the one the grant stored. Entries live in
/// event data only.
contract AuditLog {
    /// @notice One served access.
    struct Access {
        address requester;
        bytes32 recordsHash; // keccak256 of the served record ids (or of their capsule hashes)
        uint32 count; // number of records served
        uint64 evaluatedAt; // block at which the proxy evaluated the grant
    }

    Grants private immutable _grants;

    /// @notice No grant with that id.
    error AuditLog_UnknownPolicy(bytes32 policyId);
    /// @notice The proxy list does not match the grant's.
    error AuditLog_ProxiesMismatch(bytes32 policyId);
    /// @notice The caller is not a proxy of the grant.
    error AuditLog_NotPolicyProxy(bytes32 policyId, address caller);
    /// @notice The batch is empty.
    error AuditLog_EmptyBatch();
    /// @notice An access claims to be evaluated at a future block.
    error AuditLog_FutureBlock(uint64 evaluatedAt, uint256 currentBlock);

    /// @notice Emitted for every logged access.
    event AccessLogged(
        bytes32 indexed policyId,
        address indexed proxy,
        address indexed requester,
        bytes32 recordsHash,
        uint32 count,
        uint64 evaluatedAt
    );

    /// @param grants_ The grants contract whose proxy lists are checked.
    constructor(Grants grants_) {
        _grants = grants_;
    }

    /// @notice Logs accesses served under one grant.
    /// Requirements: the grant exists; `proxies` is its proxy list; the caller is in it;
    /// `accesses` is not empty; no access is evaluated after the current block.
    /// Emits: {AccessLogged} per access.
    function logAccesses(bytes32 policyId, address[] calldata proxies, Access[] calldata accesses)
        external
    {
        bytes32 expected = _grants.proxiesHashOf(policyId);
        if (expected == bytes32(0)) revert AuditLog_UnknownPolicy(policyId);
        if (keccak256(abi.encode(proxies)) != expected) revert AuditLog_ProxiesMismatch(policyId);
        bool listed = false;
        for (uint256 i = 0; i < proxies.length; ++i) {
            if (proxies[i] == msg.sender) {
                listed = true;
                break;
            }
        }
        if (!listed) revert AuditLog_NotPolicyProxy(policyId, msg.sender);
        uint256 n = accesses.length;
        if (n == 0) revert AuditLog_EmptyBatch();
        for (uint256 i = 0; i < n; ++i) {
            Access calldata a = accesses[i];
            if (a.evaluatedAt > block.number) revert AuditLog_FutureBlock(a.evaluatedAt, block.number);
            emit AccessLogged(policyId, msg.sender, a.requester, a.recordsHash, a.count, a.evaluatedAt);
        }
    }

    /// @notice The grants contract this log checks against.
    function grants() external view returns (Grants) {
        return _grants;
    }
}
