// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title PatientProfiles
/// @notice Each patient registers, under its own pseudonymous address, the public keys the
/// consortium needs: the Umbral key that verifies its kfrags and its X25519 box key.
/// Patients need no admin.
contract PatientProfiles {
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

    /// @notice Emitted after a patient registers or replaces its profile.
    event ProfileRegistered(address indexed patient, bytes verifyingKey, bytes32 boxKey);

    /// @notice Registers or replaces the caller's profile.
    /// Requirements: `verifyingKey` is a 33-byte compressed secp256k1 point; `boxKey` is non-zero.
    /// Emits: {ProfileRegistered}.
    function register(bytes calldata verifyingKey, bytes32 boxKey) external {
        if (verifyingKey.length != 33) revert PatientProfiles_InvalidKey(verifyingKey.length);
        if (boxKey == bytes32(0)) revert PatientProfiles_InvalidKey(0);
        _profiles[msg.sender] = Profile(verifyingKey, boxKey, uint64(block.number));
        emit ProfileRegistered(msg.sender, verifyingKey, boxKey);
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
