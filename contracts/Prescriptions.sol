// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ConsortiumRegistry} from "./ConsortiumRegistry.sol";

/// @title Prescriptions
/// @notice E-prescriptions as the guideline's §7.1.2 describes them: issued by a prescriber,
/// reviewed where the consortium requires it (处方审核), dispensed by pharmacies at most
/// the allowed number of fills, cancelled by the prescriber, and counted by the regulator.
///
/// The prescription itself is a record (a FHIR MedicationRequest) in the patient's
/// `prescriptions` category, read by the pharmacy through the patient's grant. Here sits only
/// its commitment `keccak256(abi.encode(salt, docHash))`, where `docHash` is the SHA-256 of
/// the record's bytes and `salt` 32 random bytes carried inside the record, bound to its
/// prescriber: the id is `keccak256(abi.encode(prescriber, commitment))`, so another
/// provider copying an `issue` from the mempool makes another id and cannot block it. No
/// drug, patient or dose is on chain, and the salt stops anyone confirming a guessed
/// prescription by hashing candidates.
///
/// Only a member who read the document (or got a proof from one who did) may review or
/// dispense it: the reader key is a bearer credential of the document's readers. The prescriber derives
/// a one-off key pair from the salt (the reader key) and registers its address at issue;
/// a review or a fill carries the reader key's EIP-712 signature over the prescription and
/// the caller ({hashReview}, {hashDispense}). Ids seen in events are therefore useless to a
/// pharmacy that never read the document, and a proof seen in the mempool is useless to any
/// other caller. The reader key's address is random: it links nothing to the patient.
///
/// Storage per prescription is two slots: (prescriber, issue time, validity end, fills
/// allowed, state), where `state` packs the fills used (low 6 bits), "reviewed" (bit 6) and
/// "cancelled" (bit 7); and the reader key's address. Counts per prescriber and per
/// pharmacy are read from the indexed events, so issuing and dispensing write nothing else.
///
/// Who held which role at issue time is the registry's state at the {PrescriptionIssued}
/// block: `issue` checks it as it runs, and a pharmacy re-checks it with an `eth_call` of
/// `hasRole` at that block. `dispense` checks it again: a prescriber suspended or removed
/// since leaves no fill behind it.
contract Prescriptions is EIP712 {
    /// @notice Most fills one prescription may allow (the fills-used field has 6 bits).
    uint8 public constant MAX_FILLS = 63;
    /// @notice Longest validity from issue, in seconds (one year).
    uint40 public constant MAX_VALIDITY = 366 days;

    /// @notice EIP-712 type of a reviewer's proof of having read the prescription.
    bytes32 public constant REVIEW_TYPEHASH =
        keccak256("Review(bytes32 prescriptionId,address reviewer)");
    /// @notice EIP-712 type of a pharmacy's proof of having read the prescription.
    bytes32 public constant DISPENSE_TYPEHASH =
        keccak256("Dispense(bytes32 prescriptionId,address pharmacy)");

    uint8 private constant _USED_MASK = 0x3f;
    uint8 private constant _REVIEWED = 0x40;
    uint8 private constant _CANCELLED = 0x80;

    /// @notice Life-cycle state of a prescription, evaluated on chain time.
    enum Status {
        None,
        Active,
        NeedsReview,
        Dispensed,
        Cancelled,
        Expired
    }

    /// @notice One prescription's on-chain part.
    struct Prescription {
        address prescriber;
        uint40 issuedAt; // unix seconds, chain time
        uint40 validUntil; // unix seconds, chain time; dispensing needs now < validUntil
        uint8 fills; // fills allowed
        uint8 state; // fills used (bits 0-5) | reviewed (bit 6) | cancelled (bit 7)
        address reader; // the reader key's address (second slot)
    }

    /// @notice The same prescription, unpacked, as {prescriptionOf} answers.
    struct PrescriptionView {
        address prescriber;
        uint40 issuedAt;
        uint40 validUntil;
        uint8 fills;
        uint8 fillsUsed;
        bool reviewed;
        bool cancelled;
        Status status;
        address reader;
    }

    ConsortiumRegistry private immutable _registry;
    bool private immutable _reviewRequired;
    mapping(bytes32 id => Prescription) private _prescriptions;

    /// @notice The caller does not hold the Provider role (or is suspended).
    error Prescriptions_NotPrescriber(address caller);
    /// @notice The caller does not hold the Pharmacy role (or is suspended).
    error Prescriptions_NotPharmacy(address caller);
    /// @notice The caller may not review: not a pharmacy or provider, or the prescriber.
    error Prescriptions_NotReviewer(address caller);
    /// @notice Only the prescription's prescriber may cancel it.
    error Prescriptions_NotIssuer(bytes32 id, address caller);
    /// @notice A prescription with that id exists already (draw another salt).
    error Prescriptions_Exists(bytes32 id);
    /// @notice No prescription has that id: the document is not the one issued, or forged.
    error Prescriptions_Unknown(bytes32 id);
    /// @notice The validity must end after chain time and within {MAX_VALIDITY}.
    error Prescriptions_InvalidValidity(uint40 validUntil, uint256 chainTime);
    /// @notice The number of fills must be 1..{MAX_FILLS}.
    error Prescriptions_InvalidFills(uint8 fills);
    /// @notice Every allowed fill was dispensed already.
    error Prescriptions_AlreadyDispensed(bytes32 id, uint8 fills);
    /// @notice The prescription was cancelled by its prescriber.
    error Prescriptions_Cancelled(bytes32 id);
    /// @notice The prescription's validity ended at `validUntil`.
    error Prescriptions_Expired(bytes32 id, uint40 validUntil, uint256 chainTime);
    /// @notice The consortium requires a review before dispensing, and none was recorded.
    error Prescriptions_NotReviewed(bytes32 id);
    /// @notice The prescription was reviewed already.
    error Prescriptions_AlreadyReviewed(bytes32 id);
    /// @notice The prescriber is no longer an active Provider (suspended or removed by the
    /// consortium): none of its prescriptions is dispensed.
    error Prescriptions_PrescriberInactive(bytes32 id, address prescriber);
    /// @notice The reader key's address is missing (zero).
    error Prescriptions_NoReaderKey(bytes32 id);
    /// @notice The proof is not the reader key's signature over (`id`, `caller`): the caller
    /// did not read the prescription document, or the proof was made for another caller.
    error Prescriptions_NotRead(bytes32 id, address caller);

    /// @notice Emitted when a prescriber issues a prescription.
    event PrescriptionIssued(
        bytes32 indexed prescriptionId, address indexed prescriber, uint40 validUntil, uint8 fills
    );
    /// @notice Emitted when a pharmacist or physician approves a prescription.
    event PrescriptionReviewed(bytes32 indexed prescriptionId, address indexed reviewer);
    /// @notice Emitted for each fill a pharmacy dispenses; `fill` counts from 1.
    event PrescriptionDispensed(
        bytes32 indexed prescriptionId, address indexed pharmacy, address indexed prescriber, uint8 fill
    );
    /// @notice Emitted when the prescriber cancels a prescription.
    event PrescriptionCancelled(bytes32 indexed prescriptionId, address indexed prescriber);

    /// @param registry_ The consortium registry: prescribers, reviewers and pharmacies are
    /// checked against it.
    /// @param reviewRequired_ Whether every prescription needs a review before dispensing.
    constructor(ConsortiumRegistry registry_, bool reviewRequired_)
        EIP712("emrshare-prescriptions", "1")
    {
        _registry = registry_;
        _reviewRequired = reviewRequired_;
    }

    /// @notice Issues the prescription of `commitment` allowing `fills` fills until
    /// `validUntil`, as id {idOf}(caller, `commitment`); reviews and fills must carry a
    /// signature by `reader`, the address of the reader key derived from the document's salt.
    /// Requirements: the caller holds the Provider role; the id is unused; `reader` is
    /// non-zero; chain time < `validUntil` <= chain time + {MAX_VALIDITY};
    /// 1 <= `fills` <= {MAX_FILLS}.
    /// Emits: {PrescriptionIssued}.
    function issue(bytes32 commitment, address reader, uint40 validUntil, uint8 fills)
        external
        returns (bytes32 id)
    {
        if (!_registry.hasRole(msg.sender, ConsortiumRegistry.Role.Provider)) {
            revert Prescriptions_NotPrescriber(msg.sender);
        }
        id = idOf(msg.sender, commitment);
        if (_prescriptions[id].prescriber != address(0)) revert Prescriptions_Exists(id);
        if (reader == address(0)) revert Prescriptions_NoReaderKey(id);
        if (validUntil <= block.timestamp || validUntil > block.timestamp + MAX_VALIDITY) {
            revert Prescriptions_InvalidValidity(validUntil, block.timestamp);
        }
        if (fills == 0 || fills > MAX_FILLS) revert Prescriptions_InvalidFills(fills);
        _prescriptions[id] =
            Prescription(msg.sender, uint40(block.timestamp), validUntil, fills, 0, reader);
        emit PrescriptionIssued(id, msg.sender, validUntil, fills);
    }

    /// @notice Records a review (approval) of prescription `id`.
    /// Requirements: the caller holds the Pharmacy or Provider role and is not the
    /// prescriber; the prescription is active (not cancelled, expired or fully dispensed)
    /// and not reviewed yet; `proof` is the reader key's signature of {hashReview}(`id`,
    /// caller).
    /// Emits: {PrescriptionReviewed}.
    function review(bytes32 id, bytes calldata proof) external {
        Prescription storage p = _live(id);
        bool mayReview = _registry.hasRole(msg.sender, ConsortiumRegistry.Role.Pharmacy)
            || _registry.hasRole(msg.sender, ConsortiumRegistry.Role.Provider);
        if (!mayReview || msg.sender == p.prescriber) revert Prescriptions_NotReviewer(msg.sender);
        if (p.state & _REVIEWED != 0) revert Prescriptions_AlreadyReviewed(id);
        _checkRead(id, p.reader, hashReview(id, msg.sender), proof);
        p.state |= _REVIEWED;
        emit PrescriptionReviewed(id, msg.sender);
    }

    /// @notice Dispenses one fill of prescription `id`.
    /// Requirements: the caller holds the Pharmacy role; the prescription exists, is not
    /// cancelled, chain time < its validity end, a fill is left, and, where the consortium
    /// requires it, it was reviewed; its prescriber is still an active Provider; `proof` is
    /// the reader key's signature of {hashDispense}(`id`, caller).
    /// Emits: {PrescriptionDispensed}.
    function dispense(bytes32 id, bytes calldata proof) external {
        if (!_registry.hasRole(msg.sender, ConsortiumRegistry.Role.Pharmacy)) {
            revert Prescriptions_NotPharmacy(msg.sender);
        }
        Prescription storage p = _live(id);
        uint8 state = p.state;
        if (_reviewRequired && state & _REVIEWED == 0) revert Prescriptions_NotReviewed(id);
        // A prescriber the consortium suspended or removed leaves no fill behind it.
        address prescriber = p.prescriber;
        if (!_registry.hasRole(prescriber, ConsortiumRegistry.Role.Provider)) {
            revert Prescriptions_PrescriberInactive(id, prescriber);
        }
        _checkRead(id, p.reader, hashDispense(id, msg.sender), proof);
        uint8 fill = (state & _USED_MASK) + 1;
        p.state = state + 1;
        emit PrescriptionDispensed(id, msg.sender, prescriber, fill);
    }

    /// @notice Cancels prescription `id`; no fill can be dispensed after.
    /// Requirements: the caller is its prescriber; it is active.
    /// Emits: {PrescriptionCancelled}.
    function cancel(bytes32 id) external {
        Prescription storage p = _live(id);
        if (msg.sender != p.prescriber) revert Prescriptions_NotIssuer(id, msg.sender);
        p.state |= _CANCELLED;
        emit PrescriptionCancelled(id, msg.sender);
    }

    /// @notice Prescription `id`, unpacked, with its status on chain time.
    function prescriptionOf(bytes32 id) external view returns (PrescriptionView memory v) {
        Prescription memory p = _prescriptions[id];
        v = PrescriptionView(
            p.prescriber,
            p.issuedAt,
            p.validUntil,
            p.fills,
            p.state & _USED_MASK,
            p.state & _REVIEWED != 0,
            p.state & _CANCELLED != 0,
            _status(p),
            p.reader
        );
    }

    /// @notice The id of `prescriber`'s prescription of `commitment`.
    function idOf(address prescriber, bytes32 commitment) public pure returns (bytes32) {
        return keccak256(abi.encode(prescriber, commitment));
    }

    /// @notice EIP-712 digest the reader key signs for `reviewer` to review `id`.
    function hashReview(bytes32 id, address reviewer) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(REVIEW_TYPEHASH, id, reviewer)));
    }

    /// @notice EIP-712 digest the reader key signs for `pharmacy` to dispense `id`.
    function hashDispense(bytes32 id, address pharmacy) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(DISPENSE_TYPEHASH, id, pharmacy)));
    }

    /// @notice The status of prescription `id` on chain time (`None` if unknown).
    function statusOf(bytes32 id) external view returns (Status) {
        return _status(_prescriptions[id]);
    }

    /// @notice Whether every prescription needs a review before dispensing.
    function reviewRequired() external view returns (bool) {
        return _reviewRequired;
    }

    /// @notice The consortium registry roles are checked against.
    function registry() external view returns (ConsortiumRegistry) {
        return _registry;
    }

    /// The prescription `id`, reverting unless it exists, is not cancelled, is within its
    /// validity and has a fill left (in that order: an unknown id, then cancellation, then
    /// expiry, then exhaustion).
    function _live(bytes32 id) private view returns (Prescription storage p) {
        p = _prescriptions[id];
        if (p.prescriber == address(0)) revert Prescriptions_Unknown(id);
        if (p.state & _CANCELLED != 0) revert Prescriptions_Cancelled(id);
        if (block.timestamp >= p.validUntil) {
            revert Prescriptions_Expired(id, p.validUntil, block.timestamp);
        }
        if (p.state & _USED_MASK >= p.fills) revert Prescriptions_AlreadyDispensed(id, p.fills);
    }

    function _checkRead(bytes32 id, address reader, bytes32 digest, bytes calldata proof)
        private
        view
    {
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, proof);
        if (err != ECDSA.RecoverError.NoError || signer != reader) {
            revert Prescriptions_NotRead(id, msg.sender);
        }
    }

    function _status(Prescription memory p) private view returns (Status) {
        if (p.prescriber == address(0)) return Status.None;
        if (p.state & _CANCELLED != 0) return Status.Cancelled;
        if (p.state & _USED_MASK >= p.fills) return Status.Dispensed;
        if (block.timestamp >= p.validUntil) return Status.Expired;
        if (_reviewRequired && p.state & _REVIEWED == 0) return Status.NeedsReview;
        return Status.Active;
    }
}
