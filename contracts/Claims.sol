// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ConsortiumRegistry} from "./ConsortiumRegistry.sol";
import {Grants} from "./Grants.sol";
import {PatientContext} from "./PatientContext.sol";
import {PatientForwarder} from "./PatientForwarder.sol";
import {RecordIndex} from "./RecordIndex.sol";

/// @title Claims
/// @notice Insurance claims for one encounter: filed by a hospital, consented to by the
/// patient with a grant scoped to exactly the claim's records, adjudicated once by the
/// claim's insurer, and settled in the same transaction (seed 000, 003 §7.2.1).
///
/// The claim document (a FHIR R4 `Claim`) is a record in the patient's index, read by the
/// insurer through the patient's scoped grant. Here sits its commitment
/// `keccak256(abi.encode(salt, sha256(document)))`, the salt carried inside the document,
/// and the id is `keccak256(abi.encode(hospital, commitment))` ({idOf}), as for
/// prescriptions: a copied `file` from the mempool makes another id.
///
/// **Warning:** in clear on chain are the hospital, the insurer, the patient's address,
/// the billed and approved amounts (minor units), the encounter's record ids, the billed
/// prescription ids and the adjudication's reason code (an administrative code from a
/// small public table that says nothing of a diagnosis). Settlement has to be auditable
/// by the insurance bureau, so the amounts are public; the clinical content is not.
///
/// Storage per claim is four slots: (hospital, amount, status, reason); (insurer,
/// approved amount); (patient, filing time); the hash of the record list
/// ({recordsHashOf}, `keccak256(abi.encodePacked(records))`, the same hash as
/// {Grants-scopeOf}). The lists themselves are only in {ClaimFiled}.
///
/// Consent is a link: the patient grants the insurer (in {Grants}) a grant scoped to
/// exactly the claim's records, then calls {consent}, which checks on chain that the grant
/// is the patient's, names the insurer, has that scope and is active. Approving any amount
/// needs that consent (the insurer has to read the records to approve them); denying does
/// not, so an insurer can close a claim the patient never consents to.
///
/// A patient acts directly or through the {PatientForwarder} (signed, relayed, no ETH);
/// hospitals and insurers call directly.
contract Claims is PatientContext {
    /// @notice Most records one claim may name (the same limit as a scoped grant).
    uint256 public constant MAX_RECORDS = 256;
    /// @notice Most billed prescription ids one claim may name.
    uint256 public constant MAX_ITEMS = 256;

    /// @notice Life-cycle state of a claim.
    enum Status {
        None,
        Filed,
        Consented,
        Approved,
        PartiallyApproved,
        Denied
    }

    struct Claim {
        address hospital;
        uint64 amount; // minor units
        Status status;
        uint16 reason; // administrative reason code; 0 for a full approval
        address insurer; // second slot
        uint64 approved; // minor units
        address patient; // third slot
        uint40 filedAt; // unix seconds, chain time
        bytes32 recordsHash; // fourth slot
    }

    /// @notice A claim, as {claimOf} answers.
    struct ClaimView {
        address hospital;
        address insurer;
        address patient;
        uint64 amount;
        uint64 approved;
        uint16 reason;
        uint40 filedAt;
        Status status;
        bytes32 recordsHash;
    }

    ConsortiumRegistry private immutable _registry;
    RecordIndex private immutable _index;
    Grants private immutable _grants;
    mapping(bytes32 claimId => Claim) private _claims;

    /// @notice The caller does not hold the Provider role (or is suspended).
    error Claims_NotProvider(address caller);
    /// @notice The insurer does not hold the Insurer role (or is suspended).
    error Claims_InsurerInactive(address insurer);
    /// @notice The hospital holds no writer authorization for `patient` under the tag named.
    error Claims_NotWriter(address patient, address hospital);
    /// @notice The records must be 1..{MAX_RECORDS} strictly ascending ids; `index` is the
    /// first offending one.
    error Claims_InvalidRecords(uint256 index, uint256 count);
    /// @notice More billed items than {MAX_ITEMS}.
    error Claims_TooManyItems(uint256 count, uint256 max);
    /// @notice The amount must be more than zero.
    error Claims_InvalidAmount(uint64 amount);
    /// @notice A claim with that id exists already (draw another salt).
    error Claims_Exists(bytes32 id);
    /// @notice No claim has that id.
    error Claims_Unknown(bytes32 id);
    /// @notice Only the claim's patient may consent to it.
    error Claims_NotPatient(bytes32 id, address caller);
    /// @notice The grant is not the patient's.
    error Claims_GrantNotPatients(bytes32 policyId, address patient);
    /// @notice The grant's grantee (with `proxies`) is not the claim's insurer.
    error Claims_WrongGrantee(bytes32 policyId, address insurer);
    /// @notice The grant's scope is not exactly the claim's records.
    error Claims_WrongScope(bytes32 policyId, bytes32 scope, bytes32 recordsHash);
    /// @notice The grant is not active (unknown, revoked, expired or its tag revoked).
    error Claims_GrantInactive(bytes32 policyId, Grants.Status status);
    /// @notice The claim is no longer open to consent (consented or adjudicated already).
    error Claims_NotOpen(bytes32 id, Status status);
    /// @notice Only the claim's insurer may adjudicate it.
    error Claims_NotInsurer(bytes32 id, address caller);
    /// @notice The claim was adjudicated already.
    error Claims_AlreadyAdjudicated(bytes32 id, Status status);
    /// @notice Approving any amount needs the patient's consent first.
    error Claims_NotConsented(bytes32 id);
    /// @notice The approved amount is more than the amount billed.
    error Claims_OverApproved(bytes32 id, uint64 approved, uint64 amount);
    /// @notice A partial approval or a denial needs a non-zero reason code.
    error Claims_ReasonRequired(bytes32 id);

    /// @notice Emitted when a hospital files a claim: its records and billed items.
    event ClaimFiled(
        bytes32 indexed claimId,
        address indexed patient,
        address indexed insurer,
        address hospital,
        bytes32 commitment,
        uint64 amount,
        bytes32[] records,
        bytes32[] items
    );
    /// @notice Emitted when the patient links a grant scoped to the claim's records.
    event ClaimConsented(bytes32 indexed claimId, address indexed patient, bytes32 indexed policyId);
    /// @notice Emitted when the insurer adjudicates a claim.
    event ClaimAdjudicated(
        bytes32 indexed claimId,
        address indexed patient,
        address indexed insurer,
        Status status,
        uint64 approvedAmount,
        uint16 reason
    );
    /// @notice Emitted with {ClaimAdjudicated} when any amount is approved: the settlement.
    event ClaimSettled(
        bytes32 indexed claimId, address indexed hospital, address indexed insurer, uint64 amount
    );

    /// @param registry_ The consortium registry: hospitals and insurers are checked against it.
    /// @param index_ The record index: a hospital's writer authorization is checked in it.
    /// @param grants_ The grants: a consent's grant is checked in it.
    /// @param forwarder_ The forwarder that relays patients' signed operations.
    constructor(
        ConsortiumRegistry registry_,
        RecordIndex index_,
        Grants grants_,
        PatientForwarder forwarder_
    ) PatientContext(forwarder_) {
        _registry = registry_;
        _index = index_;
        _grants = grants_;
    }

    /// @notice Files a claim of `amount` minor units with `insurer` for `patient`'s encounter
    /// `records`, billing the prescriptions `items`, as id {idOf}(caller, `commitment`).
    /// `tag` is the blinded tag under which the caller is `patient`'s authorized writer (the
    /// claims category's); it is checked, not stored.
    /// Requirements: the caller holds the Provider role and is not `patient`; `insurer`
    /// holds the Insurer role; the caller is an authorized writer of (`patient`, `tag`);
    /// `amount` > 0; `records` are 1..{MAX_RECORDS} strictly ascending ids; at most
    /// {MAX_ITEMS} items; the id is unused.
    /// Emits: {ClaimFiled}.
    function file(
        address patient,
        address insurer,
        bytes32 tag,
        bytes32 commitment,
        uint64 amount,
        bytes32[] calldata records,
        bytes32[] calldata items
    ) external returns (bytes32 id) {
        if (!_registry.hasRole(msg.sender, ConsortiumRegistry.Role.Provider)) {
            revert Claims_NotProvider(msg.sender);
        }
        if (!_registry.hasRole(insurer, ConsortiumRegistry.Role.Insurer)) {
            revert Claims_InsurerInactive(insurer);
        }
        if (patient == msg.sender || !_index.isWriter(patient, tag, msg.sender)) {
            revert Claims_NotWriter(patient, msg.sender);
        }
        if (amount == 0) revert Claims_InvalidAmount(amount);
        bytes32 recordsHash = _recordsHash(records);
        if (items.length > MAX_ITEMS) revert Claims_TooManyItems(items.length, MAX_ITEMS);
        id = idOf(msg.sender, commitment);
        Claim storage c = _claims[id];
        if (c.hospital != address(0)) revert Claims_Exists(id);
        c.hospital = msg.sender;
        c.amount = amount;
        c.status = Status.Filed;
        c.insurer = insurer;
        c.patient = patient;
        c.filedAt = uint40(block.timestamp);
        c.recordsHash = recordsHash;
        emit ClaimFiled(id, patient, insurer, msg.sender, commitment, amount, records, items);
    }

    /// @notice Links the patient's grant `policyId` to claim `id` as its consent; `proxies`
    /// are the grant's proxies (with the insurer they make the grant's binding).
    /// Requirements: the claim exists and is filed (not consented or adjudicated); the caller
    /// is its patient; the grant is active, is the patient's, its grantee is the claim's
    /// insurer, and its scope is exactly the claim's records.
    /// Emits: {ClaimConsented}.
    function consent(bytes32 id, bytes32 policyId, address[] calldata proxies) external {
        Claim storage c = _claims[id];
        Status status = c.status;
        if (status == Status.None) revert Claims_Unknown(id);
        address patient = c.patient;
        address caller = _actor();
        if (caller != patient) revert Claims_NotPatient(id, caller);
        if (status != Status.Filed) revert Claims_NotOpen(id, status);
        Grants.Status g = _grants.statusOf(policyId);
        if (g != Grants.Status.Active) revert Claims_GrantInactive(policyId, g);
        Grants.Policy memory pol = _grants.policyOf(policyId);
        if (pol.patient != patient) revert Claims_GrantNotPatients(policyId, patient);
        if (pol.binding != _grants.bindingFor(c.insurer, proxies)) {
            revert Claims_WrongGrantee(policyId, c.insurer);
        }
        bytes32 scope = _grants.scopeOf(policyId);
        if (scope != c.recordsHash) revert Claims_WrongScope(policyId, scope, c.recordsHash);
        c.status = Status.Consented;
        emit ClaimConsented(id, patient, policyId);
    }

    /// @notice Adjudicates claim `id`: approves `approvedAmount` of its amount (all of it:
    /// approved; part: partially approved; none: denied) for administrative `reason`.
    /// Requirements: the claim exists; the caller is its insurer and still holds the
    /// Insurer role; it was not adjudicated; `approvedAmount` <= its amount; a partial
    /// approval or a denial has `reason` != 0; approving any amount needs the patient's
    /// consent.
    /// Emits: {ClaimAdjudicated}, and {ClaimSettled} when `approvedAmount` > 0.
    function adjudicate(bytes32 id, uint64 approvedAmount, uint16 reason) external {
        Claim storage c = _claims[id];
        Status status = c.status;
        if (status == Status.None) revert Claims_Unknown(id);
        address insurer = c.insurer;
        if (msg.sender != insurer) revert Claims_NotInsurer(id, msg.sender);
        if (!_registry.hasRole(insurer, ConsortiumRegistry.Role.Insurer)) {
            revert Claims_InsurerInactive(insurer);
        }
        if (status != Status.Filed && status != Status.Consented) {
            revert Claims_AlreadyAdjudicated(id, status);
        }
        uint64 amount = c.amount;
        if (approvedAmount > amount) revert Claims_OverApproved(id, approvedAmount, amount);
        if (approvedAmount < amount && reason == 0) revert Claims_ReasonRequired(id);
        if (approvedAmount != 0 && status != Status.Consented) revert Claims_NotConsented(id);
        Status outcome = approvedAmount == amount
            ? Status.Approved
            : (approvedAmount == 0 ? Status.Denied : Status.PartiallyApproved);
        c.status = outcome;
        c.reason = reason;
        c.approved = approvedAmount;
        emit ClaimAdjudicated(id, c.patient, insurer, outcome, approvedAmount, reason);
        if (approvedAmount != 0) emit ClaimSettled(id, c.hospital, insurer, approvedAmount);
    }

    /// @notice Claim `id`, unpacked (`status` is `None` if there is none).
    function claimOf(bytes32 id) external view returns (ClaimView memory) {
        Claim memory c = _claims[id];
        return ClaimView(
            c.hospital,
            c.insurer,
            c.patient,
            c.amount,
            c.approved,
            c.reason,
            c.filedAt,
            c.status,
            c.recordsHash
        );
    }

    /// @notice The hash `keccak256(abi.encodePacked(records))` of claim `id`'s records
    /// (zero if there is no such claim); a consenting grant's {Grants-scopeOf} equals it.
    function recordsHashOf(bytes32 id) external view returns (bytes32) {
        return _claims[id].recordsHash;
    }

    /// @notice The id of `hospital`'s claim of `commitment`.
    function idOf(address hospital, bytes32 commitment) public pure returns (bytes32) {
        return keccak256(abi.encode(hospital, commitment));
    }

    /// @notice The consortium registry roles are checked against.
    function registry() external view returns (ConsortiumRegistry) {
        return _registry;
    }

    /// @notice The record index writer authorizations are checked in.
    function recordIndex() external view returns (RecordIndex) {
        return _index;
    }

    /// @notice The grants consents are checked in.
    function grants() external view returns (Grants) {
        return _grants;
    }

    function _recordsHash(bytes32[] calldata records) private pure returns (bytes32) {
        uint256 n = records.length;
        if (n == 0 || n > MAX_RECORDS) revert Claims_InvalidRecords(0, n);
        for (uint256 i = 1; i < n; ++i) {
            if (records[i] <= records[i - 1]) revert Claims_InvalidRecords(i, n);
        }
        return keccak256(abi.encodePacked(records));
    }
}
