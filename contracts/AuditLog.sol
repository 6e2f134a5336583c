// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ConsortiumRegistry} from "./ConsortiumRegistry.sol";
import {Grants} from "./Grants.sol";

/// @title AuditLog
/// @notice Proxies record the accesses they served, batched, so patients and regulators see
/// who read what and when. Entries live in event data only.
///
/// A proxy cannot forge the trail on its own: every logged access carries the grantee's own
/// EIP-712 `ProxyRequest` signature (the one the proxy served, naming that proxy, the grant
/// and the capsules), the requester logged is the grant's grantee (never chosen by the
/// caller), and the access must fall inside the grant's window: evaluated at a block from
/// the grant's creation up to (excluding) its revocation or the end of its tag generation,
/// at a chain time before its expiry and the request's deadline. Only an active (neither
/// removed nor suspended) proxy named in the grant may log.
///
/// What the chain cannot check: that `evaluatedTime` really is the timestamp of block
/// `evaluatedAt` (old block timestamps are not available to contracts); readers cross-check
/// it against the block header. Nor can it tell a served access from one a colluding grantee
/// signed but never received, or stop a proxy logging the same signed request twice (readers
/// de-duplicate on (proxy, policyId, nonce)).
contract AuditLog {
    /// @notice Most capsule hashes one logged access may name.
    uint256 public constant MAX_CAPSULES = 256;

    bytes32 private constant _DOMAIN_TYPEHASH = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    );
    bytes32 private constant _PROXY_REQUEST_TYPEHASH = keccak256(
        "ProxyRequest(address proxy,bytes32 policyId,bytes32[] capsuleHashes,uint256 nonce,uint256 deadline)"
    );

    /// @notice One served access: the grantee's signed request and when the proxy evaluated it.
    struct Access {
        bytes32[] capsuleHashes; // as signed by the grantee
        uint256 nonce; // the request's nonce, as signed
        uint256 deadline; // the request's deadline (unix seconds), as signed
        uint64 evaluatedAt; // block at which the proxy evaluated the grant
        uint64 evaluatedTime; // timestamp of that block
        bytes signature; // the grantee's EIP-712 signature of the ProxyRequest
    }

    Grants private immutable _grants;
    ConsortiumRegistry private immutable _registry;
    bytes32 private immutable _cachedDomainSeparator;
    uint256 private immutable _cachedChainId;

    /// @notice No grant with that id.
    error AuditLog_UnknownPolicy(bytes32 policyId);
    /// @notice The grantee and proxy list do not match the grant's binding.
    error AuditLog_BindingMismatch(bytes32 policyId);
    /// @notice The caller is not a proxy of the grant.
    error AuditLog_NotPolicyProxy(bytes32 policyId, address caller);
    /// @notice The caller is not an active consortium proxy (removed, suspended or never one).
    error AuditLog_NotProxy(address account);
    /// @notice The batch is empty.
    error AuditLog_EmptyBatch();
    /// @notice Access `index` names no capsule or more than {MAX_CAPSULES}.
    error AuditLog_InvalidAccess(uint256 index);
    /// @notice The access was evaluated at a block outside the grant's active window.
    error AuditLog_OutsideGrantWindow(bytes32 policyId, uint64 evaluatedAt);
    /// @notice The access was evaluated at a time at or after expiry, after the request's
    /// deadline or in the future.
    error AuditLog_OutsideGrantTime(bytes32 policyId, uint64 evaluatedTime);
    /// @notice Access `index` does not carry the grantee's signature of that request.
    error AuditLog_BadRequestSignature(bytes32 policyId, uint256 index);

    /// @notice Emitted for every logged access.
    event AccessLogged(
        bytes32 indexed policyId,
        address indexed patient,
        address indexed proxy,
        address requester,
        bytes32[] capsuleHashes,
        uint256 nonce,
        uint64 evaluatedAt,
        uint64 evaluatedTime
    );

    /// @param grants_ The grants contract whose windows, bindings and EIP-712 domain are used.
    /// @param registry_ The consortium registry the caller must be an active proxy of.
    constructor(Grants grants_, ConsortiumRegistry registry_) {
        _grants = grants_;
        _registry = registry_;
        _cachedChainId = block.chainid;
        _cachedDomainSeparator = _domainSeparator();
    }

    /// @notice Logs accesses served under one grant to `grantee` (the requester of each).
    /// Requirements: the grant exists; `grantee` and `proxies` match its binding; the caller
    /// is in `proxies` and is an active Proxy member; `accesses` is not empty; for each
    /// access: 1..{MAX_CAPSULES} capsule hashes; `createdAt <= evaluatedAt <= block.number`
    /// and `evaluatedAt` before the grant's end block if any ({Grants-activeWindow});
    /// `evaluatedTime` before expiry, not after the current time nor the request's deadline;
    /// `signature` is the grantee's EIP-712 signature of
    /// `ProxyRequest(caller, policyId, capsuleHashes, nonce, deadline)`.
    /// Emits: {AccessLogged} per access.
    function logAccesses(
        bytes32 policyId,
        address grantee,
        address[] calldata proxies,
        Access[] calldata accesses
    ) external {
        address patient;
        uint40 createdAt;
        uint40 endBlock;
        uint40 expiry;
        bytes27 binding;
        try _grants.activeWindow(policyId) returns (
            address patient_, uint40 createdAt_, uint40 endBlock_, uint40 expiry_, bytes27 binding_
        ) {
            (patient, createdAt, endBlock, expiry, binding) =
                (patient_, createdAt_, endBlock_, expiry_, binding_);
        } catch {
            revert AuditLog_UnknownPolicy(policyId);
        }
        // Same as Grants.bindingFor, computed here to save a call.
        if (bytes27(keccak256(abi.encode(grantee, proxies))) != binding) {
            revert AuditLog_BindingMismatch(policyId);
        }
        _checkCaller(policyId, proxies);
        uint256 n = accesses.length;
        if (n == 0) revert AuditLog_EmptyBatch();
        bytes32 domain = _domainSeparatorV4();
        for (uint256 i = 0; i < n; ++i) {
            Access calldata a = accesses[i];
            uint256 c = a.capsuleHashes.length;
            if (c == 0 || c > MAX_CAPSULES) revert AuditLog_InvalidAccess(i);
            uint64 at = a.evaluatedAt;
            if (at < createdAt || at > block.number || (endBlock != 0 && at >= endBlock)) {
                revert AuditLog_OutsideGrantWindow(policyId, at);
            }
            uint64 time = a.evaluatedTime;
            if (time >= expiry || time > block.timestamp || time > a.deadline) {
                revert AuditLog_OutsideGrantTime(policyId, time);
            }
            bytes32 digest = _digest(domain, policyId, a);
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, a.signature);
            if (err != ECDSA.RecoverError.NoError || signer != grantee) {
                revert AuditLog_BadRequestSignature(policyId, i);
            }
            emit AccessLogged(
                policyId, patient, msg.sender, grantee, a.capsuleHashes, a.nonce, at, time
            );
        }
    }

    /// @notice The grants contract this log checks against.
    function grants() external view returns (Grants) {
        return _grants;
    }

    /// @notice The consortium registry this log checks proxies against.
    function registry() external view returns (ConsortiumRegistry) {
        return _registry;
    }

    /// @notice The EIP-712 domain separator of proxy requests (the Grants contract's).
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // -------------------------------------------------------------- internal

    function _checkCaller(bytes32 policyId, address[] calldata proxies) private view {
        bool listed = false;
        for (uint256 i = 0; i < proxies.length; ++i) {
            if (proxies[i] == msg.sender) {
                listed = true;
                break;
            }
        }
        if (!listed) revert AuditLog_NotPolicyProxy(policyId, msg.sender);
        if (!_registry.hasRole(msg.sender, ConsortiumRegistry.Role.Proxy)) {
            revert AuditLog_NotProxy(msg.sender);
        }
    }

    function _digest(bytes32 domain, bytes32 policyId, Access calldata a)
        private
        view
        returns (bytes32)
    {
        bytes32 structHash = keccak256(
            abi.encode(
                _PROXY_REQUEST_TYPEHASH,
                msg.sender,
                policyId,
                keccak256(abi.encodePacked(a.capsuleHashes)),
                a.nonce,
                a.deadline
            )
        );
        return keccak256(abi.encodePacked(hex"1901", domain, structHash));
    }

    function _domainSeparatorV4() private view returns (bytes32) {
        if (block.chainid == _cachedChainId) return _cachedDomainSeparator;
        return _domainSeparator();
    }

    function _domainSeparator() private view returns (bytes32) {
        return keccak256(
            abi.encode(
                _DOMAIN_TYPEHASH,
                keccak256("emrshare-proxy"),
                keccak256("1"),
                block.chainid,
                address(_grants)
            )
        );
    }
}
