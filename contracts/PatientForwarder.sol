// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

/// @title PatientForwarder
/// @notice Patient operations signed off chain (EIP-712 typed data) and sent by anyone who
/// pays the gas: a hospital's or the consortium's relayer. The target contracts
/// (PatientProfiles, RecordIndex, Grants) trust this forwarder through OpenZeppelin's
/// ERC2771Context: for a call it makes, the acting patient is the 20 bytes it appends.
///
/// Built from OpenZeppelin 5's `EIP712`, `Nonces` and `ECDSA`, not its `ERC2771Forwarder`:
/// that one reads the nonce from storage into the hash, so a replayed, reordered, tampered
/// and wrong-chain request all fail as one "invalid signer"; it knows one signer per
/// account; and it cannot let a guardian act in a patient's name. Here the nonce and the
/// chain id are signed fields, checked before the signature, each with its own error, and
/// the signer may be the patient's current signing key or one of its guardians.
///
/// - **Nonces** are per patient and sequential: request `n` runs only after `n - 1`, once.
///   A relayer can delay a request or drop it, never change, replay or reorder it.
/// - **Deadline**: a request is refused after `deadline` (unix seconds, chain time).
/// - **Chain id** is both in the EIP-712 domain and a signed field (own error).
/// - **Atomic**: if the target reverts, the whole call reverts with the target's error and
///   the nonce stays unused, so the same signed request can be sent again.
/// - **Signer rotation** ({rotateSigner}): a patient who fears its key leaked hands its
///   identity (its address: its index, grants and profile) to a new signing key. From that
///   block on only the new key's requests run, and the old address can no longer act
///   directly on the target contracts ({mustRelay}).
/// - **Guardians** ({setGuardian}): a parent or legal representative whose signature may
///   grant, revoke, answer requests and end emergencies in the patient's name until a
///   date, or until the patient withdraws it. Every relayed call emits {Relayed} naming its signer, so the
///   patient's trail shows "by guardian X".
contract PatientForwarder is EIP712, Nonces {
    /// @notice EIP-712 type hash of a forwarded request.
    bytes32 public constant FORWARD_REQUEST_TYPEHASH = keccak256(
        "ForwardRequest(address patient,address to,uint256 nonce,uint256 deadline,uint256 chainId,bytes data)"
    );
    /// @notice EIP-712 type hash of a new signing key's acceptance of an identity: without
    /// it, anyone could "rotate" onto someone else's address and lock it out.
    bytes32 public constant ACCEPT_IDENTITY_TYPEHASH =
        keccak256("AcceptIdentity(address patient,address signer)");
    /// @notice Largest sealed key bundle a guardianship may carry, in bytes.
    uint256 public constant MAX_GUARDIAN_KEYS_BYTES = 8192;

    // What a guardian may do in the patient's name (function selectors of Grants, and Emergency.end).
    bytes4 private constant _GRANT = bytes4(
        keccak256("grant((bytes32,address,bytes32,uint40,address[],uint8,bytes[],bytes,bytes32[]))")
    );
    bytes4 private constant _REVOKE = bytes4(keccak256("revoke(bytes32)"));
    bytes4 private constant _REVOKE_TAG = bytes4(keccak256("revokeTag(bytes32)"));
    bytes4 private constant _ANSWER = bytes4(keccak256("answerRequest(uint256,bytes)"));
    /// Emergency.end: a guardian may end a break-glass declaration early (issue 15).
    bytes4 private constant _EMERGENCY_END = bytes4(keccak256("end(uint256)"));

    /// @notice One patient operation, as the patient (or its guardian) signs it. The data
    /// is the target function's calldata, without the patient appended.
    struct ForwardRequest {
        address patient;
        address to;
        uint256 nonce;
        uint256 deadline; // unix seconds, chain time
        uint256 chainId;
        bytes data;
    }

    struct Guardianship {
        uint40 until; // unix seconds, chain time: the guardianship ends then
        uint40 since; // block number it was named at; 0 if not a guardian
    }

    mapping(address patient => address signer) private _signers; // zero: the patient itself
    mapping(address signer => address patient) private _identities;
    mapping(address account => bool) private _mustRelay;
    mapping(address patient => mapping(address guardian => Guardianship)) private _guardians;

    /// @notice The request was signed for another chain.
    error PatientForwarder_WrongChain(uint256 signedFor, uint256 chainId);
    /// @notice The request's deadline has passed.
    error PatientForwarder_Expired(uint256 deadline, uint256 chainTime);
    /// @notice The request's nonce was used already (a replay): `next` is the next one.
    error PatientForwarder_NonceUsed(address patient, uint256 nonce, uint256 next);
    /// @notice The request's nonce is ahead of the next one (sent out of order).
    error PatientForwarder_NonceAhead(address patient, uint256 nonce, uint256 next);
    /// @notice The signature is neither the patient's current signing key's nor a guardian's
    /// (a changed request, a withdrawn guardian, a retired key).
    error PatientForwarder_InvalidSigner(address patient, address signer);
    /// @notice The signer's guardianship of the patient ended at `until`.
    error PatientForwarder_GuardianshipEnded(address patient, address guardian, uint40 until);
    /// @notice A guardian may grant, revoke and answer requests, not this.
    error PatientForwarder_NotDelegated(address patient, address guardian, bytes4 selector);
    /// @notice The request's data has no function selector.
    error PatientForwarder_NoSelector();
    /// @notice The account is a zero address, the patient itself, or its signing key.
    error PatientForwarder_InvalidGuardian(address guardian);
    /// @notice A guardianship must end after the current chain time.
    error PatientForwarder_InvalidUntil(uint40 until, uint256 chainTime);
    /// @notice The account is not a guardian of the patient.
    error PatientForwarder_NotGuardian(address patient, address guardian);
    /// @notice The sealed guardian keys are empty or longer than {MAX_GUARDIAN_KEYS_BYTES}.
    error PatientForwarder_InvalidKeys(uint256 length);
    /// @notice The new signing key is zero, already used by an identity, or the patient.
    error PatientForwarder_InvalidNewSigner(address signer);
    /// @notice The new signing key did not sign its acceptance of the identity.
    error PatientForwarder_NotAccepted(address patient, address signer);
    /// @notice The account handed its identity to another key, or is a key acting for
    /// another identity: it acts only through {execute}.
    error PatientForwarder_MustRelay(address account);

    /// @notice Emitted for every executed request; `signer` is the patient's signing key or
    /// a guardian.
    event Relayed(address indexed patient, address indexed signer, uint256 nonce, address to, bytes4 selector);
    /// @notice Emitted after a patient names (or renews) a guardian. `sealedKeys` is what
    /// the guardian needs to grant (category keys, not the master secret), sealed to its
    /// X25519 key.
    event GuardianSet(address indexed patient, address indexed guardian, uint40 until, bytes sealedKeys);
    /// @notice Emitted after a patient withdraws a guardianship.
    event GuardianWithdrawn(address indexed patient, address indexed guardian);
    /// @notice Emitted after a patient hands its identity to a new signing key.
    event SignerRotated(address indexed patient, address indexed oldSigner, address indexed newSigner);

    constructor() EIP712("emrshare-forwarder", "1") {}

    // --------------------------------------------------------------- execute

    /// @notice Runs `req` as its patient, if the signature is the patient's current signing
    /// key's (or a guardian's, for what guardians may do).
    /// Requirements, checked in this order: `req.chainId` is this chain; the deadline has
    /// not passed; `req.nonce` is the patient's next nonce; the signature recovers to the
    /// patient's signer or a guardian of it (whose guardianship has not ended, and who asks
    /// for a grant, a revocation or an answer); the target does not revert (its error is
    /// bubbled up unchanged and the nonce stays unused).
    /// Emits: the target's events, then {Relayed}.
    function execute(ForwardRequest calldata req, bytes calldata signature)
        external
        returns (bytes memory result)
    {
        if (req.chainId != block.chainid) revert PatientForwarder_WrongChain(req.chainId, block.chainid);
        if (block.timestamp > req.deadline) revert PatientForwarder_Expired(req.deadline, block.timestamp);
        uint256 next = nonces(req.patient);
        if (req.nonce < next) revert PatientForwarder_NonceUsed(req.patient, req.nonce, next);
        if (req.nonce > next) revert PatientForwarder_NonceAhead(req.patient, req.nonce, next);
        if (req.data.length < 4) revert PatientForwarder_NoSelector();
        bytes4 selector = bytes4(req.data[:4]);
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(hashRequest(req), signature);
        if (err != ECDSA.RecoverError.NoError) signer = address(0);
        _checkSigner(req.patient, signer, selector);
        _useNonce(req.patient);
        bool ok;
        (ok, result) = req.to.call(abi.encodePacked(req.data, req.patient));
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 32), mload(result))
            }
        }
        emit Relayed(req.patient, signer, req.nonce, req.to, selector);
    }

    /// @notice The EIP-712 digest of a request, as its signer signs it.
    function hashRequest(ForwardRequest calldata req) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    FORWARD_REQUEST_TYPEHASH,
                    req.patient,
                    req.to,
                    req.nonce,
                    req.deadline,
                    req.chainId,
                    keccak256(req.data)
                )
            )
        );
    }

    // ------------------------------------------------------------- guardians

    /// @notice Names `guardian` (or renews it) until `until`, with the key bundle it needs
    /// sealed to its X25519 key.
    /// Requirements: the caller is a patient acting as itself (directly or through
    /// {execute}); `guardian` is neither zero, the patient nor its signing key; `until` is
    /// after chain time; `sealedKeys` is 1..{MAX_GUARDIAN_KEYS_BYTES} bytes.
    /// Emits: {GuardianSet}.
    function setGuardian(address guardian, uint40 until, bytes calldata sealedKeys) external {
        address patient = _patient();
        if (guardian == address(0) || guardian == patient || guardian == signerOf(patient)) {
            revert PatientForwarder_InvalidGuardian(guardian);
        }
        if (until <= block.timestamp) revert PatientForwarder_InvalidUntil(until, block.timestamp);
        if (sealedKeys.length == 0 || sealedKeys.length > MAX_GUARDIAN_KEYS_BYTES) {
            revert PatientForwarder_InvalidKeys(sealedKeys.length);
        }
        _guardians[patient][guardian] = Guardianship(until, uint40(block.number));
        emit GuardianSet(patient, guardian, until, sealedKeys);
    }

    /// @notice Ends a guardianship now: the guardian's next request reverts.
    /// Requirements: `guardian` is a guardian of the calling patient.
    /// Emits: {GuardianWithdrawn}.
    function withdrawGuardian(address guardian) external {
        address patient = _patient();
        if (_guardians[patient][guardian].since == 0) revert PatientForwarder_NotGuardian(patient, guardian);
        delete _guardians[patient][guardian];
        emit GuardianWithdrawn(patient, guardian);
    }

    /// @notice A guardianship: when it ends (unix seconds) and the block it was named at
    /// (0 if `guardian` is not a guardian of `patient`).
    function guardianOf(address patient, address guardian) external view returns (uint40 until, uint40 since) {
        Guardianship memory g = _guardians[patient][guardian];
        return (g.until, g.since);
    }

    // -------------------------------------------------------- signer rotation

    /// @notice Hands the calling patient's identity to `newSigner`: from this block on only
    /// requests signed by `newSigner` run for it, and neither the patient's address nor an
    /// earlier signer acts directly on the target contracts.
    /// Requirements: the caller is a patient acting as itself; `newSigner` is non-zero, not
    /// the patient, and not a signer or identity already; `acceptance` is `newSigner`'s
    /// EIP-712 signature of `AcceptIdentity(patient, newSigner)` ({hashAcceptance}).
    /// Emits: {SignerRotated}.
    function rotateSigner(address newSigner, bytes calldata acceptance) external {
        address patient = _patient();
        if (
            newSigner == address(0) || newSigner == patient || _identities[newSigner] != address(0)
                || _signers[newSigner] != address(0)
        ) revert PatientForwarder_InvalidNewSigner(newSigner);
        (address signed, ECDSA.RecoverError err,) =
            ECDSA.tryRecover(hashAcceptance(patient, newSigner), acceptance);
        if (err != ECDSA.RecoverError.NoError || signed != newSigner) {
            revert PatientForwarder_NotAccepted(patient, newSigner);
        }
        address old = signerOf(patient);
        _signers[patient] = newSigner;
        _identities[newSigner] = patient;
        _mustRelay[patient] = true;
        _mustRelay[newSigner] = true;
        emit SignerRotated(patient, old, newSigner);
    }

    /// @notice The EIP-712 digest a new signing key signs to accept `patient`'s identity.
    function hashAcceptance(address patient, address signer) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(ACCEPT_IDENTITY_TYPEHASH, patient, signer)));
    }

    /// @notice The key whose signature acts for `patient`: the patient's own address until
    /// it rotates.
    function signerOf(address patient) public view returns (address) {
        address s = _signers[patient];
        return s == address(0) ? patient : s;
    }

    /// @notice The identity `signer` acts for: itself unless it is a rotated-to key.
    function identityOf(address signer) external view returns (address) {
        address p = _identities[signer];
        return p == address(0) ? signer : p;
    }

    /// @notice Whether `account` may act only through {execute} (a rotated identity, or a
    /// key that signs for another identity). The target contracts refuse its direct calls.
    function mustRelay(address account) external view returns (bool) {
        return _mustRelay[account];
    }

    // -------------------------------------------------------------- internal

    /// The patient acting on this contract itself: the appended patient when called by
    /// {execute}, else the caller, which must not be one that acts only through {execute}.
    function _patient() private view returns (address patient) {
        if (msg.sender == address(this) && msg.data.length >= 20) {
            return address(bytes20(msg.data[msg.data.length - 20:]));
        }
        if (_mustRelay[msg.sender]) revert PatientForwarder_MustRelay(msg.sender);
        return msg.sender;
    }

    function _checkSigner(address patient, address signer, bytes4 selector) private view {
        // A key that signs for another identity is no identity of its own.
        if (_identities[patient] != address(0)) revert PatientForwarder_InvalidSigner(patient, signer);
        if (signer != address(0) && signer == signerOf(patient)) return;
        Guardianship memory g = _guardians[patient][signer];
        if (signer == address(0) || g.since == 0) revert PatientForwarder_InvalidSigner(patient, signer);
        if (block.timestamp >= g.until) revert PatientForwarder_GuardianshipEnded(patient, signer, g.until);
        if (
            selector != _GRANT && selector != _REVOKE && selector != _REVOKE_TAG && selector != _ANSWER
                && selector != _EMERGENCY_END
        ) {
            revert PatientForwarder_NotDelegated(patient, signer, selector);
        }
    }
}
