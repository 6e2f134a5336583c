// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ConsortiumRegistry} from "./ConsortiumRegistry.sol";

/// @title DrugTrace
/// @notice Drug supply traceability on the consortium chain (seed 004's two-invoice policy,
/// seeds 000 and 003 §7.3): a manufacturer registers a production batch, every hand-over
/// is a shipment (with the digests of its waybill and of its invoice) that the recipient
/// confirms on receipt, a pharmacy dispenses to a patient through a blinded link, and the
/// manufacturer or a regulator recalls a batch. Stock reconciles on chain: nobody ships or
/// dispenses more of a batch than it registered or received.
///
/// Ids: a batch is `keccak256(abi.encode(uint64 gtin, string lot))` ({batchIdOf}), with
/// the GTIN as its 14-digit number (GS1 check digit verified); a shipment is
/// `keccak256(abi.encode(from, waybillDigest))` ({shipmentIdOf}). The invoice is on chain
/// only as `keccak256(abi.encode(salt, number, amountMinor, taxId, batchId, quantity))`:
/// the two parties keep the plaintext (and the salt) and hand it to the regulator, who
/// checks it against the digest; nobody else can confirm a guessed number or amount.
///
/// A dispense names the batch (and the unit, for a serialized batch) and a patient link
/// `keccak256(abi.encode("emrshare-drug-link/1", secret))`, the secret derived by the
/// patient's keys for that one dispense. Only the patient (and whoever the patient shows
/// the secret to, such as the regulator) can connect a dispense to a person; a recall
/// notice addressed to a link ({notifyRecall}) reaches the patient without the sender
/// learning who that is.
///
/// Serialized units (SGTIN) are committed at registration as a Merkle root over the leaves
/// `keccak256(bytes.concat(keccak256(abi.encode(uint256 index, string serial))))` (the
/// OpenZeppelin StandardMerkleTree leaf); a unit's dispense carries its proof and is
/// recorded in a bitmap, so the same serial is never dispensed twice. An unknown batch or
/// a serial outside the root is what the counterfeit check reports.
///
/// Storage per shipment is one slot (recipient, batch index, quantity, state): the sender
/// is in the id, the digests are only in {Shipped}. `ship` makes no registry call (stock
/// only ever reaches members: registration needs the Manufacturer role and a receipt the
/// recipient's), so a shipment to a non-member is never confirmed; its sender takes the
/// stock back with {cancelShipment}.
contract DrugTrace {
    /// @notice Most links one {notifyRecall} may name.
    uint256 public constant MAX_LINKS = 256;
    /// @notice Longest lot number and serial (GS1 application identifiers 10 and 21).
    uint256 public constant MAX_LOT_BYTES = 20;
    /// @notice Longest unit of measure (for example "pack", "vial", "tablet").
    uint256 public constant MAX_UNIT_BYTES = 16;
    /// @notice The `unitIndex` of a dispense from an unserialized batch.
    uint256 public constant NO_UNIT = type(uint256).max;
    /// @notice Highest adverse-event seriousness (1 non-serious .. 4 fatal).
    uint8 public constant MAX_SERIOUSNESS = 4;

    uint8 private constant _RECALLED = 1;
    uint8 private constant _SERIALIZED = 2;
    uint64 private constant _GTIN_LIMIT = 1e14;
    uint8 private constant _CAP_PHARMACY = 2; // ConsortiumRegistry.CAP_PHARMACY (a test compares)

    /// @notice A shipment's state.
    enum ShipmentState {
        None,
        InTransit,
        Received,
        Cancelled
    }

    struct Batch {
        address manufacturer;
        uint40 expiry; // unix seconds, chain time; shipping and dispensing need now < expiry
        uint32 index; // position in {batchIdAt}
        uint8 flags; // _RECALLED | _SERIALIZED
    }

    struct BatchExtra {
        uint48 quantity; // registered
        uint32 serialCount; // 0 if not serialized
        bytes32 serialRoot;
    }

    struct Shipment {
        address to;
        uint32 batch; // batch index
        uint48 quantity;
        ShipmentState state;
    }

    /// @notice One batch, as {batchOf} answers.
    struct BatchView {
        address manufacturer;
        uint40 expiry;
        uint32 index;
        bool recalled;
        uint48 quantity;
        uint32 serialCount;
        bytes32 serialRoot;
    }

    /// @notice One shipment, as {shipmentOf} answers.
    struct ShipmentView {
        address to;
        bytes32 batchId;
        uint48 quantity;
        ShipmentState state;
    }

    ConsortiumRegistry private immutable _registry;
    bytes32[] private _batchIds;
    mapping(bytes32 batchId => Batch) private _batches;
    mapping(bytes32 batchId => BatchExtra) private _extras;
    mapping(bytes32 batchId => mapping(address holder => uint256)) private _stock;
    mapping(bytes32 shipmentId => Shipment) private _shipments;
    mapping(bytes32 batchId => mapping(uint256 word => uint256)) private _dispensedUnits;
    mapping(uint64 gtin => address manufacturer) private _gtinOwners;

    /// @notice Which digest {Trace_MissingDigest} names.
    uint8 public constant DIGEST_CERTIFICATE = 1;
    uint8 public constant DIGEST_WAYBILL = 2;
    uint8 public constant DIGEST_INVOICE = 3;
    uint8 public constant DIGEST_REASON = 4;
    uint8 public constant DIGEST_REPORT = 5;

    /// @notice The caller is not an active Manufacturer.
    error Trace_NotManufacturer(address caller);
    /// @notice The caller is neither an active Pharmacy nor a Provider with CAP_PHARMACY.
    error Trace_NotPharmacy(address caller);
    /// @notice The caller may not receive drugs: not a Distributor, a Pharmacy or a
    /// Provider with CAP_PHARMACY (or suspended).
    error Trace_NotConsignee(address caller);
    /// @notice Only the batch's manufacturer or a regulator may recall it or notify.
    error Trace_NotRecaller(bytes32 batchId, address caller);
    /// @notice The caller is not an active Provider (adverse events are filed by clinicians).
    error Trace_NotClinician(address caller);
    /// @notice The GTIN is not a 14-digit number with a valid GS1 check digit.
    error Trace_InvalidGtin(uint64 gtin);
    /// @notice The lot number must be 1..{MAX_LOT_BYTES} bytes.
    error Trace_InvalidLot(uint256 length);
    /// @notice The unit of measure must be 1..{MAX_UNIT_BYTES} bytes.
    error Trace_InvalidUnit(uint256 length);
    /// @notice The expiry must be after chain time.
    error Trace_InvalidExpiry(uint40 expiry, uint256 chainTime);
    /// @notice A quantity must be positive.
    error Trace_InvalidQuantity();
    /// @notice A serialized batch has one serial per unit and a non-zero root; an
    /// unserialized one has neither.
    error Trace_InvalidSerials(uint32 serialCount, uint48 quantity);
    /// @notice A digest must not be zero: `which` is one of the DIGEST_* constants.
    error Trace_MissingDigest(uint8 which);
    /// @notice Another manufacturer registered this GTIN first: a GTIN is one company's.
    error Trace_GtinOwned(uint64 gtin, address owner);

    /// @notice A batch with that GTIN and lot is registered already.
    error Trace_BatchExists(bytes32 batchId);
    /// @notice No batch has that id: unknown GTIN and lot (a counterfeit, or a typo).
    error Trace_UnknownBatch(bytes32 batchId);
    /// @notice The batch was recalled.
    error Trace_Recalled(bytes32 batchId);
    /// @notice The batch expired at `expiry`.
    error Trace_Expired(bytes32 batchId, uint40 expiry, uint256 chainTime);
    /// @notice The holder has fewer units of the batch than the operation needs.
    error Trace_InsufficientStock(bytes32 batchId, address holder, uint256 available, uint256 requested);
    /// @notice The recipient must be another, non-zero account.
    error Trace_InvalidRecipient(address to);
    /// @notice The sender shipped with that waybill already (a shipment per waybill).
    error Trace_ShipmentExists(bytes32 shipmentId);
    /// @notice No shipment has that id.
    error Trace_UnknownShipment(bytes32 shipmentId);
    /// @notice Only the shipment's recipient may confirm it.
    error Trace_NotRecipient(bytes32 shipmentId, address caller);
    /// @notice The shipment was received (or cancelled) already.
    error Trace_AlreadyReceived(bytes32 shipmentId, ShipmentState state);
    /// @notice More units confirmed than shipped.
    error Trace_OverReceipt(bytes32 shipmentId, uint48 shipped, uint48 received);
    /// @notice The batch is serialized: dispense it unit by unit with {dispenseUnit}.
    error Trace_SerializedBatch(bytes32 batchId);
    /// @notice The batch is not serialized: dispense it with {dispense}.
    error Trace_NotSerialized(bytes32 batchId);
    /// @notice The serial (at that index) is not one the manufacturer committed.
    error Trace_UnknownSerial(bytes32 batchId, uint256 index);
    /// @notice That serialized unit was dispensed already (a duplicate serial).
    error Trace_SerialDispensed(bytes32 batchId, uint256 index);
    /// @notice A dispense needs a non-zero patient link.
    error Trace_MissingLink();
    /// @notice The batch was recalled already.
    error Trace_AlreadyRecalled(bytes32 batchId);
    /// @notice Recall notices are sent only for a recalled batch.
    error Trace_NotRecalled(bytes32 batchId);
    /// @notice A notice names 1..{MAX_LINKS} links.
    error Trace_InvalidLinks(uint256 count);
    /// @notice Seriousness must be 1..{MAX_SERIOUSNESS}.
    error Trace_InvalidSeriousness(uint8 seriousness);

    /// @notice Emitted after a manufacturer registers a batch.
    event BatchRegistered(
        bytes32 indexed batchId,
        address indexed manufacturer,
        uint64 gtin,
        string lot,
        uint40 expiry,
        uint48 quantity,
        string unit,
        bytes32 certificateDigest,
        bytes32 serialRoot,
        uint32 serialCount,
        uint32 index
    );
    /// @notice Emitted after a holder ships units of a batch.
    event Shipped(
        bytes32 indexed shipmentId,
        bytes32 indexed batchId,
        address indexed sender,
        address recipient,
        uint48 quantity,
        bytes32 waybillDigest,
        bytes32 invoiceDigest
    );
    /// @notice Emitted after the recipient confirms a shipment; `discrepancy` units short.
    event Received(
        bytes32 indexed shipmentId,
        bytes32 indexed batchId,
        address indexed recipient,
        uint48 quantity,
        uint48 discrepancy
    );
    /// @notice Emitted after the sender cancels a shipment never confirmed.
    event ShipmentCancelled(
        bytes32 indexed shipmentId, bytes32 indexed batchId, address indexed sender, uint48 quantity
    );
    /// @notice Emitted after a pharmacy dispenses to a patient link.
    event Dispensed(
        bytes32 indexed batchId,
        address indexed pharmacy,
        bytes32 indexed link,
        uint48 quantity,
        uint256 unitIndex,
        bytes32 prescriptionId
    );
    /// @notice Emitted after the manufacturer or a regulator recalls a batch.
    event Recalled(bytes32 indexed batchId, address indexed by, bytes32 reasonDigest);
    /// @notice A recall notice addressed to one patient link.
    event RecallNotice(bytes32 indexed link, bytes32 indexed batchId);
    /// @notice A clinician's adverse-event notice: the batch, never the patient.
    event AdverseEventReported(
        bytes32 indexed batchId, address indexed reporter, bytes32 reportDigest, uint8 seriousness
    );

    /// @notice Creates the contract on the consortium's registry.
    constructor(ConsortiumRegistry consortium) {
        _registry = consortium;
    }

    // ------------------------------------------------------------------ batches

    /// @notice Registers a production batch of `quantity` units; the caller holds them.
    /// Requirements: caller is an active Manufacturer; a valid GTIN-14; a lot of
    /// 1..{MAX_LOT_BYTES} bytes; expiry after chain time; quantity > 0; a unit of
    /// 1..{MAX_UNIT_BYTES} bytes; a certificate digest; for a serialized batch
    /// `serialCount == quantity` and a non-zero root; the batch is new; no other
    /// manufacturer registered the GTIN before (the first registration binds a GTIN to
    /// its manufacturer, {gtinOwner}). Emits: {BatchRegistered}.
    function registerBatch(
        uint64 gtin,
        string calldata lot,
        uint40 expiry,
        uint48 quantity,
        string calldata unit,
        bytes32 certificateDigest,
        bytes32 serialRoot,
        uint32 serialCount
    ) external returns (bytes32 batchId) {
        (ConsortiumRegistry.Role role,) = _registry.standing(msg.sender);
        if (role != ConsortiumRegistry.Role.Manufacturer) revert Trace_NotManufacturer(msg.sender);
        if (!_validGtin(gtin)) revert Trace_InvalidGtin(gtin);
        uint256 lotLength = bytes(lot).length;
        if (lotLength == 0 || lotLength > MAX_LOT_BYTES) revert Trace_InvalidLot(lotLength);
        uint256 unitLength = bytes(unit).length;
        if (unitLength == 0 || unitLength > MAX_UNIT_BYTES) revert Trace_InvalidUnit(unitLength);
        if (expiry <= block.timestamp) revert Trace_InvalidExpiry(expiry, block.timestamp);
        if (quantity == 0) revert Trace_InvalidQuantity();
        if (certificateDigest == bytes32(0)) revert Trace_MissingDigest(DIGEST_CERTIFICATE);
        bool serialized = serialRoot != bytes32(0);
        if (serialized ? serialCount != quantity : serialCount != 0) {
            revert Trace_InvalidSerials(serialCount, quantity);
        }
        address owner = _gtinOwners[gtin];
        if (owner == address(0)) {
            _gtinOwners[gtin] = msg.sender;
        } else if (owner != msg.sender) {
            revert Trace_GtinOwned(gtin, owner);
        }
        batchId = batchIdOf(gtin, lot);
        if (_batches[batchId].manufacturer != address(0)) revert Trace_BatchExists(batchId);
        uint32 index = uint32(_batchIds.length);
        _batchIds.push(batchId);
        _batches[batchId] = Batch(msg.sender, expiry, index, serialized ? _SERIALIZED : 0);
        _extras[batchId] = BatchExtra(quantity, serialCount, serialRoot);
        _stock[batchId][msg.sender] = quantity;
        emit BatchRegistered(
            batchId, msg.sender, gtin, lot, expiry, quantity, unit, certificateDigest, serialRoot, serialCount, index
        );
    }

    /// @notice Recalls a batch: no further shipment or dispense of it.
    /// Requirements: caller is the batch's (active) manufacturer or an active Regulator;
    /// a reason digest; the batch is not recalled yet. Emits: {Recalled}.
    function recall(bytes32 batchId, bytes32 reasonDigest) external {
        Batch storage b = _known(batchId);
        _checkRecaller(batchId, b);
        if (reasonDigest == bytes32(0)) revert Trace_MissingDigest(DIGEST_REASON);
        if (b.flags & _RECALLED != 0) revert Trace_AlreadyRecalled(batchId);
        b.flags |= _RECALLED;
        emit Recalled(batchId, msg.sender, reasonDigest);
    }

    /// @notice Sends a recall notice to each patient link (read from {Dispensed} of the
    /// batch by the caller; the patient checks its link is one of those).
    /// Requirements: caller may recall the batch; the batch is recalled; 1..{MAX_LINKS}
    /// links. Emits: {RecallNotice} per link.
    function notifyRecall(bytes32 batchId, bytes32[] calldata links) external {
        Batch storage b = _known(batchId);
        _checkRecaller(batchId, b);
        if (b.flags & _RECALLED == 0) revert Trace_NotRecalled(batchId);
        uint256 n = links.length;
        if (n == 0 || n > MAX_LINKS) revert Trace_InvalidLinks(n);
        for (uint256 i = 0; i < n; ++i) {
            emit RecallNotice(links[i], batchId);
        }
    }

    /// @notice A clinician's notice of an adverse event suspected of the batch; the report
    /// itself (a FHIR AdverseEvent) is a record in the patient's index, `reportDigest` its
    /// salted digest. Requirements: caller is an active Provider; the batch exists; a
    /// digest; seriousness 1..{MAX_SERIOUSNESS}. Emits: {AdverseEventReported}.
    function reportAdverseEvent(bytes32 batchId, bytes32 reportDigest, uint8 seriousness) external {
        (ConsortiumRegistry.Role role,) = _registry.standing(msg.sender);
        if (role != ConsortiumRegistry.Role.Provider) revert Trace_NotClinician(msg.sender);
        _known(batchId);
        if (reportDigest == bytes32(0)) revert Trace_MissingDigest(DIGEST_REPORT);
        if (seriousness == 0 || seriousness > MAX_SERIOUSNESS) revert Trace_InvalidSeriousness(seriousness);
        emit AdverseEventReported(batchId, msg.sender, reportDigest, seriousness);
    }

    // ---------------------------------------------------------------- shipments

    /// @notice Ships `quantity` units of a batch the caller holds to `to`.
    /// Requirements: the batch exists, is neither recalled nor expired; quantity > 0;
    /// `to` is another non-zero account; both digests are non-zero; the caller has not
    /// shipped with this waybill before and holds `quantity` units. Emits: {Shipped}.
    function ship(address to, bytes32 batchId, uint48 quantity, bytes32 waybillDigest, bytes32 invoiceDigest)
        external
        returns (bytes32 shipmentId)
    {
        Batch storage b = _usable(batchId);
        if (quantity == 0) revert Trace_InvalidQuantity();
        if (to == address(0) || to == msg.sender) revert Trace_InvalidRecipient(to);
        if (waybillDigest == bytes32(0)) revert Trace_MissingDigest(DIGEST_WAYBILL);
        if (invoiceDigest == bytes32(0)) revert Trace_MissingDigest(DIGEST_INVOICE);
        shipmentId = shipmentIdOf(msg.sender, waybillDigest);
        Shipment storage s = _shipments[shipmentId];
        if (s.state != ShipmentState.None) revert Trace_ShipmentExists(shipmentId);
        _take(batchId, quantity);
        (s.to, s.batch, s.quantity, s.state) = (to, b.index, quantity, ShipmentState.InTransit);
        emit Shipped(shipmentId, batchId, msg.sender, to, quantity, waybillDigest, invoiceDigest);
    }

    /// @notice Confirms a shipment on receipt: `quantity` units arrived (the rest is the
    /// discrepancy) and join the caller's stock. A recalled or expired batch is still
    /// received, so that stock stays accounted for.
    /// Requirements: the shipment is in transit; the caller is its recipient and an active
    /// Distributor, Pharmacy or Provider with CAP_PHARMACY; quantity <= shipped.
    /// Emits: {Received}.
    function confirmReceipt(bytes32 shipmentId, uint48 quantity) external {
        Shipment storage s = _shipments[shipmentId];
        ShipmentState state = s.state;
        if (state == ShipmentState.None) revert Trace_UnknownShipment(shipmentId);
        if (s.to != msg.sender) revert Trace_NotRecipient(shipmentId, msg.sender);
        if (state != ShipmentState.InTransit) revert Trace_AlreadyReceived(shipmentId, state);
        uint48 shipped = s.quantity;
        if (quantity > shipped) revert Trace_OverReceipt(shipmentId, shipped, quantity);
        (ConsortiumRegistry.Role role, uint8 caps) = _registry.standing(msg.sender);
        if (!(role == ConsortiumRegistry.Role.Distributor || _pharmacy(role, caps))) {
            revert Trace_NotConsignee(msg.sender);
        }
        s.state = ShipmentState.Received;
        bytes32 batchId = _batchIds[s.batch];
        _stock[batchId][msg.sender] += quantity;
        emit Received(shipmentId, batchId, msg.sender, quantity, shipped - quantity);
    }

    /// @notice Takes back a shipment its recipient never confirmed (a wrong address, a
    /// lost consignment). Requirements: the caller shipped with `waybillDigest` and the
    /// shipment is in transit. Emits: {ShipmentCancelled}.
    function cancelShipment(bytes32 waybillDigest) external {
        bytes32 shipmentId = shipmentIdOf(msg.sender, waybillDigest);
        Shipment storage s = _shipments[shipmentId];
        ShipmentState state = s.state;
        if (state == ShipmentState.None) revert Trace_UnknownShipment(shipmentId);
        if (state != ShipmentState.InTransit) revert Trace_AlreadyReceived(shipmentId, state);
        s.state = ShipmentState.Cancelled;
        bytes32 batchId = _batchIds[s.batch];
        _stock[batchId][msg.sender] += s.quantity;
        emit ShipmentCancelled(shipmentId, batchId, msg.sender, s.quantity);
    }

    // ---------------------------------------------------------------- dispenses

    /// @notice Dispenses `quantity` units of an unserialized batch to a patient link;
    /// `prescriptionId` ties the dispense to the e-prescription filled (zero for none):
    /// emrshare writes `keccak256(abi.encode("emrshare-drug-rx/1", link, rxId))`, so two
    /// fills of one prescription are not linked on chain; whoever knows the link and the
    /// prescription id (the patient, the pharmacy, the regulator shown them) checks it.
    /// Requirements: caller is an active Pharmacy or Provider with CAP_PHARMACY; the batch
    /// exists, is not serialized, neither recalled nor expired; quantity > 0; a link; the
    /// caller holds `quantity` units. Emits: {Dispensed}.
    function dispense(bytes32 batchId, uint48 quantity, bytes32 link, bytes32 prescriptionId) external {
        _checkPharmacy();
        Batch storage b = _usable(batchId);
        if (b.flags & _SERIALIZED != 0) revert Trace_SerializedBatch(batchId);
        if (quantity == 0) revert Trace_InvalidQuantity();
        if (link == bytes32(0)) revert Trace_MissingLink();
        _take(batchId, quantity);
        emit Dispensed(batchId, msg.sender, link, quantity, NO_UNIT, prescriptionId);
    }

    /// @notice Dispenses one serialized unit, proven to be in the batch's serial root.
    /// Requirements: as {dispense}, on a serialized batch; `proof` shows `(index, serial)`
    /// is a leaf of the root; the unit was not dispensed before. Emits: {Dispensed}.
    function dispenseUnit(
        bytes32 batchId,
        uint256 index,
        string calldata serial,
        bytes32[] calldata proof,
        bytes32 link,
        bytes32 prescriptionId
    ) external {
        _checkPharmacy();
        Batch storage b = _usable(batchId);
        if (b.flags & _SERIALIZED == 0) revert Trace_NotSerialized(batchId);
        if (link == bytes32(0)) revert Trace_MissingLink();
        if (!_inRoot(batchId, index, serial, proof)) revert Trace_UnknownSerial(batchId, index);
        uint256 bit = 1 << (index & 0xff);
        mapping(uint256 => uint256) storage words = _dispensedUnits[batchId];
        uint256 word = words[index >> 8];
        if (word & bit != 0) revert Trace_SerialDispensed(batchId, index);
        words[index >> 8] = word | bit;
        _take(batchId, 1);
        emit Dispensed(batchId, msg.sender, link, 1, index, prescriptionId);
    }

    // -------------------------------------------------------------------- reads

    /// @notice A batch's on-chain state. Requirements: the batch exists.
    function batchOf(bytes32 batchId) external view returns (BatchView memory) {
        Batch storage b = _known(batchId);
        BatchExtra storage e = _extras[batchId];
        return BatchView(
            b.manufacturer, b.expiry, b.index, b.flags & _RECALLED != 0, e.quantity, e.serialCount, e.serialRoot
        );
    }

    /// @notice Whether a batch with that id is registered.
    function isRegistered(bytes32 batchId) external view returns (bool) {
        return _batches[batchId].manufacturer != address(0);
    }

    /// @notice Units of the batch `holder` has in stock.
    function stockOf(bytes32 batchId, address holder) external view returns (uint256) {
        return _stock[batchId][holder];
    }

    /// @notice A shipment's state. Requirements: the shipment exists.
    function shipmentOf(bytes32 shipmentId) external view returns (ShipmentView memory) {
        Shipment storage s = _shipments[shipmentId];
        if (s.state == ShipmentState.None) revert Trace_UnknownShipment(shipmentId);
        return ShipmentView(s.to, _batchIds[s.batch], s.quantity, s.state);
    }

    /// @notice Whether the serialized unit at `index` was dispensed.
    function isUnitDispensed(bytes32 batchId, uint256 index) external view returns (bool) {
        return _dispensedUnits[batchId][index >> 8] & (1 << (index & 0xff)) != 0;
    }

    /// @notice Whether `(index, serial)` is a unit the manufacturer committed for the batch.
    function verifyUnit(bytes32 batchId, uint256 index, string calldata serial, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        return _batches[batchId].manufacturer != address(0) && _inRoot(batchId, index, serial, proof);
    }

    /// @notice The manufacturer that first registered `gtin` (zero if none): only it may
    /// register further batches of that GTIN.
    function gtinOwner(uint64 gtin) external view returns (address) {
        return _gtinOwners[gtin];
    }

    /// @notice Number of batches ever registered (indexes are 0 .. count-1).

    function batchCount() external view returns (uint256) {
        return _batchIds.length;
    }

    /// @notice The id of the batch registered `index`-th.
    function batchIdAt(uint256 index) external view returns (bytes32) {
        return _batchIds[index];
    }

    /// @notice The id of the batch with that GTIN-14 and lot.
    function batchIdOf(uint64 gtin, string calldata lot) public pure returns (bytes32) {
        return keccak256(abi.encode(gtin, lot));
    }

    /// @notice The id of the shipment `from` sends with that waybill.
    function shipmentIdOf(address from, bytes32 waybillDigest) public pure returns (bytes32) {
        return keccak256(abi.encode(from, waybillDigest));
    }

    /// @notice The registry this contract checks roles against.
    function registry() external view returns (ConsortiumRegistry) {
        return _registry;
    }

    // ------------------------------------------------------------------ private

    function _known(bytes32 batchId) private view returns (Batch storage b) {
        b = _batches[batchId];
        if (b.manufacturer == address(0)) revert Trace_UnknownBatch(batchId);
    }

    function _usable(bytes32 batchId) private view returns (Batch storage b) {
        b = _known(batchId);
        if (b.flags & _RECALLED != 0) revert Trace_Recalled(batchId);
        if (b.expiry <= block.timestamp) revert Trace_Expired(batchId, b.expiry, block.timestamp);
    }

    function _take(bytes32 batchId, uint256 quantity) private {
        uint256 have = _stock[batchId][msg.sender];
        if (have < quantity) revert Trace_InsufficientStock(batchId, msg.sender, have, quantity);
        unchecked {
            _stock[batchId][msg.sender] = have - quantity;
        }
    }

    function _checkPharmacy() private view {
        (ConsortiumRegistry.Role role, uint8 caps) = _registry.standing(msg.sender);
        if (!_pharmacy(role, caps)) revert Trace_NotPharmacy(msg.sender);
    }

    function _checkRecaller(bytes32 batchId, Batch storage b) private view {
        (ConsortiumRegistry.Role role,) = _registry.standing(msg.sender);
        bool ok = role == ConsortiumRegistry.Role.Regulator
            || (role == ConsortiumRegistry.Role.Manufacturer && b.manufacturer == msg.sender);
        if (!ok) revert Trace_NotRecaller(batchId, msg.sender);
    }

    function _inRoot(bytes32 batchId, uint256 index, string calldata serial, bytes32[] calldata proof)
        private
        view
        returns (bool)
    {
        BatchExtra storage e = _extras[batchId];
        if (index >= e.serialCount) return false;
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(index, serial))));
        return MerkleProof.verifyCalldata(proof, e.serialRoot, leaf);
    }

    function _pharmacy(ConsortiumRegistry.Role role, uint8 caps) private pure returns (bool) {
        return role == ConsortiumRegistry.Role.Pharmacy
            || (role == ConsortiumRegistry.Role.Provider && caps & _CAP_PHARMACY != 0);
    }

    function _validGtin(uint64 gtin) private pure returns (bool) {
        if (gtin == 0 || gtin >= _GTIN_LIMIT) return false;
        uint64 rest = gtin / 10;
        uint256 sum = 0;
        for (uint256 i = 0; i < 13; ++i) {
            uint256 digit = rest % 10;
            sum += i % 2 == 0 ? digit * 3 : digit;
            rest /= 10;
        }
        return (10 - (sum % 10)) % 10 == gtin % 10;
    }
}
