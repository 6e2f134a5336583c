// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {RecordIndex} from "../../contracts/RecordIndex.sol";
import {Grants} from "../../contracts/Grants.sol";
import {ConsortiumRegistry} from "../../contracts/ConsortiumRegistry.sol";
import {PatientForwarder} from "../../contracts/PatientForwarder.sol";
import {PatientProfiles} from "../../contracts/PatientProfiles.sol";

/// A writer the patient (the handler) authorizes; appends through it have it as msg.sender.
contract Writer {
    /// Publishes keys so the handler (the registry's admin) can admit this contract.
    function applyTo(ConsortiumRegistry registry) external {
        registry.applyForMembership(abi.encodePacked(bytes1(0x02), bytes32(uint256(1))), bytes32(uint256(1)), "http://w");
    }

    function append(RecordIndex index, address patient, bytes32 tag, uint64 seq, bytes calldata e)
        external
    {
        index.append(patient, tag, seq, e);
    }

    function appendBatch(
        RecordIndex index,
        address patient,
        bytes32 tag,
        uint64 seq,
        bytes[] calldata es
    ) external {
        index.appendBatch(patient, tag, seq, es);
    }
}

/// Random appends, retries and revocations, with a model of what the chain must hold.
contract IndexHandler {
    RecordIndex public immutable index;
    Grants public immutable grants;
    ConsortiumRegistry public immutable registry;
    Writer[2] public writers;
    Writer public immutable proxy;
    Writer public immutable grantee;
    bytes32[2] public tags = [bytes32(uint256(1)), bytes32(uint256(2))];

    bytes28 public ghostHead;
    uint256 public ghostCount;
    mapping(address => mapping(bytes32 => uint64)) public ghostSeq;
    bool public duplicateLanded;
    bool public activeAfterRevoke;
    bytes32[] public revokedPolicies;
    uint256 private _nonce;

    constructor() {
        address[] memory admins = new address[](1);
        admins[0] = address(this);
        registry = new ConsortiumRegistry(admins, 1);
        PatientForwarder forwarder = new PatientForwarder();
        PatientProfiles profiles = new PatientProfiles(forwarder);
        index = new RecordIndex(registry, forwarder);
        grants = new Grants(registry, profiles, forwarder);
        profiles.register(abi.encodePacked(bytes1(0x02), bytes32(uint256(7))), bytes32(uint256(7)));
        proxy = _member(ConsortiumRegistry.Role.Proxy);
        grantee = _member(ConsortiumRegistry.Role.Insurer);
        for (uint256 i = 0; i < 2; ++i) {
            writers[i] = _member(ConsortiumRegistry.Role.Provider);
            for (uint256 t = 0; t < 2; ++t) index.authorizeWriter(tags[t], address(writers[i]), hex"01");
        }
    }

    function _member(ConsortiumRegistry.Role role) private returns (Writer w) {
        w = new Writer();
        w.applyTo(registry);
        uint256 id = registry.propose(ConsortiumRegistry.Action.Admit, address(w), role, 0);
        registry.execute(id);
    }

    function _entry(uint256 seed) private pure returns (bytes memory e) {
        e = abi.encodePacked(keccak256(abi.encode(seed)), uint8(seed));
    }

    function _model(address writer, bytes32 tag, uint64 seq, bytes memory e) private {
        bytes32 rid = keccak256(abi.encode(address(this), tag, writer, seq));
        ghostHead = bytes28(keccak256(abi.encode(ghostHead, rid, keccak256(e))));
        ++ghostCount;
        ghostSeq[writer][tag] = seq + 1;
    }

    function append(uint256 w, uint256 t, uint256 seed) external {
        Writer writer = writers[w % 2];
        bytes32 tag = tags[t % 2];
        uint64 seq = ghostSeq[address(writer)][tag];
        bytes memory e = _entry(seed);
        writer.append(index, address(this), tag, seq, e);
        _model(address(writer), tag, seq, e);
    }

    function appendBatch(uint256 w, uint256 t, uint256 seed, uint8 n) external {
        n = n % 5 + 1;
        Writer writer = writers[w % 2];
        bytes32 tag = tags[t % 2];
        uint64 seq = ghostSeq[address(writer)][tag];
        bytes[] memory es = new bytes[](n);
        for (uint256 i = 0; i < n; ++i) es[i] = _entry(uint256(keccak256(abi.encode(seed, i))));
        writer.appendBatch(index, address(this), tag, seq, es);
        for (uint256 i = 0; i < n; ++i) _model(address(writer), tag, seq + uint64(i), es[i]);
    }

    function appendOwn(uint256 t, uint256 seed) external {
        bytes32 tag = tags[t % 2];
        uint64 seq = ghostSeq[address(this)][tag];
        bytes memory e = _entry(seed);
        index.append(address(this), tag, seq, e);
        _model(address(this), tag, seq, e);
    }

    /// Replays an already used sequence: it must never land.
    function retry(uint256 w, uint256 t, uint256 back, uint256 seed) external {
        Writer writer = writers[w % 2];
        bytes32 tag = tags[t % 2];
        uint64 next = ghostSeq[address(writer)][tag];
        if (next == 0) return;
        uint64 seq = uint64(back % next);
        try writer.append(index, address(this), tag, seq, _entry(seed)) {
            duplicateLanded = true;
        } catch {}
    }

    function grantAndRevoke(uint256 seed, bool byTag) external {
        address[] memory proxies = new address[](1);
        proxies[0] = address(proxy);
        bytes[] memory kfrags = new bytes[](1);
        kfrags[0] = hex"02";
        bytes32 tag = tags[seed % 2];
        bytes32 pid = grants.grant(
            Grants.GrantParams(
                bytes32(++_nonce), address(grantee), tag, uint40(block.timestamp + 1 days),
                proxies, 1, kfrags, hex"03", new bytes32[](0)
            )
        );
        if (byTag) grants.revokeTag(tag);
        else grants.revoke(pid);
        revokedPolicies.push(pid);
    }

    function revokedCount() external view returns (uint256) {
        return revokedPolicies.length;
    }
}

contract RecordIndexInvariants {
    RecordIndex private _index;
    IndexHandler private _handler;

    function setUp() public {
        _handler = new IndexHandler();
        _index = _handler.index();
    }

    /// Only the handler is called by the fuzzer.
    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(_handler);
    }

    /// The hash-chain head and count on chain equal the model's.
    function invariant_chainMatchesModel() public view {
        RecordIndex.Chain memory c = _index.chainOf(address(_handler));
        require(c.head == _handler.ghostHead(), "head differs from the model");
        require(c.count == _handler.ghostCount(), "count differs from the model");
    }

    /// Every writer's next sequence equals the number of entries it appended per tag.
    function invariant_sequencesMatchModel() public view {
        for (uint256 w = 0; w < 2; ++w) {
            address writer = address(_handler.writers(w));
            for (uint256 t = 0; t < 2; ++t) {
                bytes32 tag = _handler.tags(t);
                require(
                    _index.nextSequence(address(_handler), tag, writer)
                        == _handler.ghostSeq(writer, tag),
                    "sequence differs from the model"
                );
            }
        }
    }

    /// A record id (a used sequence) is never appended twice.
    function invariant_noDuplicateAppend() public view {
        require(!_handler.duplicateLanded(), "a retried append landed twice");
    }

    /// A revoked grant (one by one or through its tag) is never active again.
    function invariant_revokedStaysInactive() public view {
        Grants g = _handler.grants();
        uint256 n = _handler.revokedCount();
        for (uint256 i = 0; i < n; ++i) {
            require(!g.isActive(_handler.revokedPolicies(i)), "a revoked grant is active");
        }
    }
}
