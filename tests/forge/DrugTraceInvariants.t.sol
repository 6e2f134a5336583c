// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ConsortiumRegistry} from "../../contracts/ConsortiumRegistry.sol";
import {DrugTrace} from "../../contracts/DrugTrace.sol";

/// The forge cheatcodes these tests use (no forge-std: everything runs offline).
interface DrugVm {
    function addr(uint256 privateKey) external pure returns (address);
    function prank(address sender) external;
    function warp(uint256 timestamp) external;
}

DrugVm constant DVM = DrugVm(address(uint160(uint256(keccak256("hevm cheat code")))));

/// Random registrations, shipments, receipts (short ones too), cancellations, dispenses,
/// recalls and time by a manufacturer, two distributors, a pharmacy, a hospital with the
/// pharmacy capability and a stranger, with a model of every holder's stock. A flag
/// records any action that landed although the model says DrugTrace must refuse it.
contract DrugHandler {
    ConsortiumRegistry public immutable registry;
    DrugTrace public immutable trace;

    uint256 public constant HOLDERS = 6; // 0 maker, 1-2 distributors, 3 pharmacy, 4 hospital, 5 stranger
    uint64 private constant _GTIN = 9506000134352;

    struct ShipmentModel {
        bytes32 waybill;
        bytes32 id;
        bytes32 batch;
        address from;
        address to;
        uint48 quantity;
        uint8 state; // 1 in transit, 2 received, 3 cancelled
    }

    bytes32[] public batchIds;
    mapping(bytes32 => uint256) public registered;
    mapping(bytes32 => uint256) public expiry;
    mapping(bytes32 => bool) public recalled;
    mapping(bytes32 => mapping(address => uint256)) public ghostStock;
    mapping(bytes32 => uint256) public inTransit;
    mapping(bytes32 => uint256) public dispensed;
    mapping(bytes32 => uint256) public lost; // receipt discrepancies
    ShipmentModel[] private _shipments;

    bool public overdrawLanded; // shipped, dispensed or received more than held or shipped
    bool public unusableMoved; // a recalled or expired batch shipped or dispensed
    bool public settledTwice; // a shipment received or cancelled when not in transit
    bool public strangerActed; // a non-consignee received, a non-pharmacy dispensed
    uint256 public landed; // liveness: how many state changes landed

    constructor() {
        address[] memory admins = new address[](1);
        admins[0] = address(this);
        registry = new ConsortiumRegistry(admins, 1);
        trace = new DrugTrace(registry);
        _admit(holder(0), ConsortiumRegistry.Role.Manufacturer);
        _admit(holder(1), ConsortiumRegistry.Role.Distributor);
        _admit(holder(2), ConsortiumRegistry.Role.Distributor);
        _admit(holder(3), ConsortiumRegistry.Role.Pharmacy);
        _admit(holder(4), ConsortiumRegistry.Role.Provider);
        uint256 id = registry.propose(
            ConsortiumRegistry.Action.SetCapabilities, holder(4), ConsortiumRegistry.Role.None, 2
        );
        registry.execute(id);
        _admit(holder(5), ConsortiumRegistry.Role.Insurer); // a member, not in the supply chain
    }

    function holder(uint256 i) public pure returns (address) {
        return DVM.addr(uint256(500) + (i % HOLDERS));
    }

    function batchCount() external view returns (uint256) {
        return batchIds.length;
    }

    function _consignee(uint256 i) private pure returns (bool) {
        uint256 k = i % HOLDERS;
        return k >= 1 && k <= 4;
    }

    function _pharmacy(uint256 i) private pure returns (bool) {
        uint256 k = i % HOLDERS;
        return k == 3 || k == 4;
    }

    function _usable(bytes32 id) private view returns (bool) {
        return !recalled[id] && block.timestamp < expiry[id];
    }

    // ------------------------------------------------------------------ actions
    function register(uint256 seed, uint48 quantity) external {
        uint48 q = 1 + quantity % 1000;
        string memory lot = string(abi.encodePacked("L", bytes1(uint8(65 + seed % 8))));
        uint40 until = uint40(block.timestamp + 365 days);
        DVM.prank(holder(0));
        try trace.registerBatch(_GTIN, lot, until, q, "pack", keccak256(abi.encode(seed)), 0, 0)
        returns (bytes32 id) {
            batchIds.push(id);
            registered[id] = q;
            expiry[id] = until;
            ghostStock[id][holder(0)] = q;
            ++landed;
        } catch {}
    }

    function ship(uint256 from, uint256 to, uint256 b, uint48 quantity, uint256 nonce) external {
        if (batchIds.length == 0) return;
        bytes32 id = batchIds[b % batchIds.length];
        (address src, address dst) = (holder(from), holder(to));
        uint48 q = quantity % 1200;
        bytes32 waybill = keccak256(abi.encode("waybill", nonce));
        DVM.prank(src);
        try trace.ship(dst, id, q, waybill, bytes32(uint256(1))) returns (bytes32 sid) {
            if (q == 0 || q > ghostStock[id][src]) {
                overdrawLanded = true;
                return;
            }
            if (!_usable(id)) unusableMoved = true;
            ghostStock[id][src] -= q;
            inTransit[id] += q;
            _shipments.push(ShipmentModel(waybill, sid, id, src, dst, q, 1));
            ++landed;
        } catch {}
    }

    function confirm(uint256 s, uint48 quantity, bool asRecipient) external {
        if (_shipments.length == 0) return;
        uint256 k = s % _shipments.length;
        ShipmentModel storage m = _shipments[k];
        uint48 q = quantity % (m.quantity + 2);
        address caller = asRecipient ? m.to : holder(quantity);
        DVM.prank(caller);
        try trace.confirmReceipt(m.id, q) {
            if (m.state != 1) {
                settledTwice = true;
                return;
            }
            if (q > m.quantity) {
                overdrawLanded = true;
                return;
            }
            if (caller != m.to || !_consignee(_index(caller))) strangerActed = true;
            ghostStock[m.batch][caller] += q;
            inTransit[m.batch] -= m.quantity;
            lost[m.batch] += m.quantity - q;
            m.state = 2;
            ++landed;
        } catch {}
    }

    function cancel(uint256 s) external {
        if (_shipments.length == 0) return;
        ShipmentModel storage m = _shipments[s % _shipments.length];
        DVM.prank(m.from);
        try trace.cancelShipment(m.waybill) {
            if (m.state != 1) {
                settledTwice = true;
                return;
            }
            ghostStock[m.batch][m.from] += m.quantity;
            inTransit[m.batch] -= m.quantity;
            m.state = 3;
            ++landed;
        } catch {}
    }

    function dispense(uint256 h, uint256 b, uint48 quantity) external {
        if (batchIds.length == 0) return;
        bytes32 id = batchIds[b % batchIds.length];
        address who = holder(h);
        uint48 q = quantity % 200;
        DVM.prank(who);
        try trace.dispense(id, q, keccak256(abi.encode(h, b, quantity)), 0) {
            if (q == 0 || q > ghostStock[id][who]) {
                overdrawLanded = true;
                return;
            }
            if (!_usable(id)) unusableMoved = true;
            if (!_pharmacy(h)) strangerActed = true;
            ghostStock[id][who] -= q;
            dispensed[id] += q;
            ++landed;
        } catch {}
    }

    function recall(uint256 b) external {
        if (batchIds.length == 0) return;
        bytes32 id = batchIds[b % batchIds.length];
        DVM.prank(holder(0));
        try trace.recall(id, bytes32(uint256(7))) {
            recalled[id] = true;
            ++landed;
        } catch {}
    }

    function advance(uint256 seconds_) external {
        DVM.warp(block.timestamp + seconds_ % 60 days);
    }

    function _index(address a) private pure returns (uint256) {
        for (uint256 i = 0; i < HOLDERS; ++i) {
            if (holder(i) == a) return i;
        }
        return type(uint256).max;
    }

    function _admit(address a, ConsortiumRegistry.Role role) private {
        DVM.prank(a);
        registry.applyForMembership(
            abi.encodePacked(bytes1(0x02), keccak256(abi.encode(a))), bytes32(uint256(uint160(a))), ""
        );
        uint256 id = registry.propose(ConsortiumRegistry.Action.Admit, a, role, 0);
        registry.execute(id);
    }
}

contract DrugTraceInvariants {
    DrugHandler private _h;

    function setUp() public {
        _h = new DrugHandler();
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(_h);
    }

    /// The model is not vacuous: a valid chain of actions lands, over-shipping does not.
    function test_drugHandlerLandsValidActionsOnly() public {
        DrugHandler h = _h;
        h.register(1, 99); // 100 units
        require(h.batchCount() == 1, "a valid registration did not land");
        h.ship(0, 1, 0, 60, 1);
        h.confirm(0, 58, true); // two short
        h.ship(1, 3, 0, 50, 2);
        h.confirm(1, 50, true);
        h.dispense(3, 0, 5);
        require(h.landed() == 6, "a valid action did not land");
        h.ship(1, 3, 0, 9, 3); // the distributor holds 8
        h.dispense(5, 0, 1); // a stranger
        h.confirm(1, 50, true); // twice
        require(h.landed() == 6, "an invalid action landed");
        require(!h.overdrawLanded() && !h.strangerActed() && !h.settledTwice(), "flagged");
        invariant_unitsAreConserved();
        invariant_stockMatchesModel();
    }

    /// Every unit of every batch is somewhere: held, in transit, dispensed or lost on the way.
    function invariant_unitsAreConserved() public view {
        DrugTrace t = _h.trace();
        for (uint256 b = 0; b < _h.batchCount(); ++b) {
            bytes32 id = _h.batchIds(b);
            uint256 held;
            for (uint256 i = 0; i < _h.HOLDERS(); ++i) {
                held += t.stockOf(id, _h.holder(i));
            }
            require(
                held + _h.inTransit(id) + _h.dispensed(id) + _h.lost(id) == _h.registered(id),
                "units appeared or vanished"
            );
        }
    }

    /// The chain's stock of every holder equals the model's (never negative, never more
    /// than it received).
    function invariant_stockMatchesModel() public view {
        DrugTrace t = _h.trace();
        for (uint256 b = 0; b < _h.batchCount(); ++b) {
            bytes32 id = _h.batchIds(b);
            for (uint256 i = 0; i < _h.HOLDERS(); ++i) {
                address a = _h.holder(i);
                require(t.stockOf(id, a) == _h.ghostStock(id, a), "stock differs from the model");
            }
        }
    }

    /// Nobody ships, dispenses or receives more than it holds or was shipped.
    function invariant_noOverdraw() public view {
        require(!_h.overdrawLanded(), "more units moved than were held");
    }

    /// A recalled or expired batch never moves on; a shipment settles once; only a
    /// consignee receives and only a pharmacy dispenses.
    function invariant_onlyAllowedMovesLand() public view {
        require(!_h.unusableMoved(), "a recalled or expired batch moved");
        require(!_h.settledTwice(), "a shipment was settled twice");
        require(!_h.strangerActed(), "a stranger received or dispensed");
    }
}
