// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {PatientContext} from "./PatientContext.sol";
import {PatientForwarder} from "./PatientForwarder.sol";

/// @title PatientProfiles
/// @notice Each patient registers, under its own pseudonymous address, the public keys the
/// consortium needs: the Umbral key that verifies its kfrags and its X25519 box key.
/// Patients need no admin, and no ETH: every call may come through the {PatientForwarder}.
///
/// The patient-state log ({logState}): a patient's client appends, sealed under a key only
/// its master secret derives, what the chain does not otherwise hold (its categories and
/// their epochs, earlier master secrets after a rotation), so the 24 words alone restore a
/// patient on a new machine. Entries are opaque, padded bytes to anyone else.
contract PatientProfiles is PatientContext {
    /// @notice Largest sealed patient-state entry, in bytes.
    uint256 public constant MAX_STATE_BYTES = 4096;

    struct Profile {
        bytes verifyingKey; // Umbral verifying key (33-byte compressed point)
        bytes32 boxKey; // X25519 public key
        uint64 registeredAt; // block number
    }

    mapping(address patient => Profile) private _profiles;

    /// @notice A key had the wrong length.
    error PatientProfiles_InvalidKey(uint256 length);

    /// @notice The address has no profile.
    error PatientProfiles_NotRegistered(address patient);

    /// @notice A sealed state entry is empty or longer than {MAX_STATE_BYTES}.
    error PatientProfiles_InvalidState(uint256 length);

    /// @notice Emitted after a patient registers or replaces its profile.
    event ProfileRegistered(address indexed patient, bytes verifyingKey, bytes32 boxKey);
    /// @notice Emitted after a patient appends to its sealed state log.
    event StateLogged(address indexed patient, bytes sealedState);

    /// @param forwarder_ The forwarder that relays patients' signed operations.
    constructor(PatientForwarder forwarder_) PatientContext(forwarder_) {}

    /// @notice Registers or replaces the caller's profile.
    /// Requirements: `verifyingKey` is a 33-byte compressed secp256k1 point; `boxKey` is non-zero.
    /// Emits: {ProfileRegistered}.
    function register(bytes calldata verifyingKey, bytes32 boxKey) external {
        if (verifyingKey.length != 33) revert PatientProfiles_InvalidKey(verifyingKey.length);
        if (boxKey == bytes32(0)) revert PatientProfiles_InvalidKey(0);
        address patient = _actor();
        _profiles[patient] = Profile(verifyingKey, boxKey, uint64(block.number));
        emit ProfileRegistered(patient, verifyingKey, boxKey);
    }

    /// @notice Appends a sealed entry to the caller's state log (see the contract notes).
    /// Requirements: `sealedState` is 1..{MAX_STATE_BYTES} bytes.
    /// Emits: {StateLogged}.
    function logState(bytes calldata sealedState) external {
        uint256 n = sealedState.length;
        if (n == 0 || n > MAX_STATE_BYTES) revert PatientProfiles_InvalidState(n);
        emit StateLogged(_actor(), sealedState);
    }

    /// @notice Whether `patient` has registered a profile.
    function isRegistered(address patient) external view returns (bool) {
        return _profiles[patient].registeredAt != 0;
    }

    /// @notice Returns a patient's profile.
    /// Requirements: the patient has registered.
    function profileOf(address patient) external view returns (Profile memory) {
        Profile memory p = _profiles[patient];
        if (p.registeredAt == 0) revert PatientProfiles_NotRegistered(patient);
        return p;
    }
}
