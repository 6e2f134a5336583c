// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AuditLog} from "../../contracts/AuditLog.sol";
import {ConsortiumRegistry} from "../../contracts/ConsortiumRegistry.sol";
import {Grants} from "../../contracts/Grants.sol";
import {PatientForwarder} from "../../contracts/PatientForwarder.sol";
import {PatientProfiles} from "../../contracts/PatientProfiles.sol";
import {RecordIndex} from "../../contracts/RecordIndex.sol";

/// The forge cheatcodes these tests use (no forge-std: everything runs offline).
interface Vm {
    function addr(uint256 privateKey) external pure returns (address);
    function sign(uint256 privateKey, bytes32 digest)
        external
        pure
        returns (uint8 v, bytes32 r, bytes32 s);
    function prank(address sender) external;
    function roll(uint256 blockNumber) external;
    function warp(uint256 timestamp) external;
    function getBlockNumber() external view returns (uint256);
    function getBlockTimestamp() external view returns (uint256);
}

Vm constant VM = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

/// Random actions of patients, writers, proxies, admins and strangers on the whole system,
/// with a model of what the chain must hold. A flag records any action that landed although
/// the model says the contracts must refuse it.
contract TrustHandler {
    ConsortiumRegistry public immutable registry;
    PatientProfiles public immutable profiles;
    RecordIndex public immutable index;
    Grants public immutable grants;
    AuditLog public immutable audit;

    uint256 public constant PATIENTS = 2;
    uint256 public constant WRITERS = 2;
    uint256 public constant PROXIES = 3;
    uint256 public constant CANDIDATES = 3; // admin churn
    bytes32[2] public tags = [bytes32(uint256(1)), bytes32(uint256(2))];

    // -------------------------------------------------------------- the model
    struct PolicyModel {
        bytes32 id;
        address patient;
        address grantee;
        uint256 granteeKey;
        bytes32 tag;
        uint16 generation;
        uint40 createdAt;
        uint40 expiry;
        uint40 revokedAt;
    }

    PolicyModel[] private _policies;
    mapping(bytes32 => bool) public everInactive; // revoked or tag-revoked at some point
    mapping(address => mapping(bytes32 => uint16)) public ghostGeneration;
    mapping(address => mapping(bytes32 => mapping(uint16 => uint40))) public ghostEndedAt;

    mapping(address => bytes28) public ghostHead;
    mapping(address => uint256) public ghostCount;
    mapping(address => mapping(bytes32 => mapping(address => uint64))) public ghostSeq;
    mapping(address => mapping(bytes32 => mapping(address => bool))) public ghostAuthorized;
    mapping(address => bool) public writerActive;
    mapping(address => bool) public proxySuspended;
    mapping(address => bool) public candidateIsAdmin;
    uint256 public ghostAdminCount = 1; // this handler

    bool public foreignStateChangeLanded; // a non-patient changed a grant
    bool public expelledAppendLanded; // a writer that is no active Provider appended
    bool public invalidLogLanded; // AccessLogged outside the window or without signature
    bool public suspendedProxyGranted; // a grant named a suspended proxy
    uint256 public validLogs; // liveness: how many valid logs landed
    uint256 public appends;

    constructor() {
        address[] memory admins = new address[](1);
        admins[0] = address(this);
        registry = new ConsortiumRegistry(admins, 1);
        PatientForwarder forwarder = new PatientForwarder();
        profiles = new PatientProfiles(forwarder);
        index = new RecordIndex(registry, forwarder);
        grants = new Grants(registry, profiles, forwarder);
        audit = new AuditLog(grants, registry);
        for (uint256 i = 0; i < PATIENTS; ++i) {
            VM.prank(patient(i));
            profiles.register(_key33(i), bytes32(uint256(i + 1)));
        }
        for (uint256 i = 0; i < WRITERS; ++i) {
            _admit(writer(i), ConsortiumRegistry.Role.Provider);
            writerActive[writer(i)] = true;
        }
        for (uint256 i = 0; i < PROXIES; ++i) _admit(proxy(i), ConsortiumRegistry.Role.Proxy);
        _admit(grantee(), ConsortiumRegistry.Role.Insurer);
    }

    // ------------------------------------------------------------- actors
    function patient(uint256 i) public pure returns (address) {
        return VM.addr(uint256(100) + (i % PATIENTS));
    }

    function writer(uint256 i) public pure returns (address) {
        return VM.addr(writerKey(i));
    }

    function writerKey(uint256 i) public pure returns (uint256) {
        return uint256(200) + (i % WRITERS);
    }

    function proxy(uint256 i) public pure returns (address) {
        return VM.addr(uint256(300) + (i % PROXIES));
    }

    function granteeKey() public pure returns (uint256) {
        return 400;
    }

    function grantee() public pure returns (address) {
        return VM.addr(granteeKey());
    }

    function candidate(uint256 i) public pure returns (address) {
        return VM.addr(uint256(500) + (i % CANDIDATES));
    }

    function proxyList() public pure returns (address[] memory list) {
        list = new address[](PROXIES);
        for (uint256 i = 0; i < PROXIES; ++i) list[i] = proxy(i);
    }

    function policyCount() external view returns (uint256) {
        return _policies.length;
    }

    function policyAt(uint256 i) external view returns (PolicyModel memory) {
        return _policies[i];
    }

    // ------------------------------------------------------------ time
    function advance(uint8 blocks, uint16 secs) external {
        VM.roll(VM.getBlockNumber() + 1 + (blocks % 8));
        VM.warp(VM.getBlockTimestamp() + 1 + (secs % 900));
    }

    // ---------------------------------------------------------- registry
    function expelWriter(uint256 w) external {
        address a = writer(w);
        if (!writerActive[a]) return;
        _execute(ConsortiumRegistry.Action.Remove, a, ConsortiumRegistry.Role.None);
        writerActive[a] = false;
    }

    function demoteWriter(uint256 w) external {
        address a = writer(w);
        if (!writerActive[a]) return;
        _execute(ConsortiumRegistry.Action.ChangeRole, a, ConsortiumRegistry.Role.Pharmacy);
        writerActive[a] = false;
    }

    function restoreWriter(uint256 w) external {
        address a = writer(w);
        if (writerActive[a]) return;
        if (registry.roleOf(a) == ConsortiumRegistry.Role.None) {
            _admit(a, ConsortiumRegistry.Role.Provider);
        } else {
            _execute(ConsortiumRegistry.Action.ChangeRole, a, ConsortiumRegistry.Role.Provider);
        }
        writerActive[a] = true;
    }

    function suspendProxy(uint256 x) external {
        address a = proxy(x);
        if (proxySuspended[a]) return;
        _execute(ConsortiumRegistry.Action.Suspend, a, ConsortiumRegistry.Role.None);
        proxySuspended[a] = true;
    }

    function reinstateProxy(uint256 x) external {
        address a = proxy(x);
        if (!proxySuspended[a]) return;
        _execute(ConsortiumRegistry.Action.Reinstate, a, ConsortiumRegistry.Role.None);
        proxySuspended[a] = false;
    }

    function admitAdmin(uint256 c) external {
        address a = candidate(c);
        if (registry.roleOf(a) != ConsortiumRegistry.Role.None) return;
        _admit(a, ConsortiumRegistry.Role.Admin);
        candidateIsAdmin[a] = true;
        ++ghostAdminCount;
    }

    function removeAdmin(uint256 c, bool byRoleChange) external {
        address a = candidate(c);
        if (!candidateIsAdmin[a]) return;
        if (byRoleChange) {
            _execute(ConsortiumRegistry.Action.ChangeRole, a, ConsortiumRegistry.Role.Regulator);
        } else {
            _execute(ConsortiumRegistry.Action.Remove, a, ConsortiumRegistry.Role.None);
        }
        candidateIsAdmin[a] = false;
        --ghostAdminCount;
    }

    /// A stranger tries to suspend a proxy or change roles without the admins: must fail.
    function strangerProposes(uint256 who, uint256 x) external {
        VM.prank(writer(who));
        try registry.propose(ConsortiumRegistry.Action.Suspend, proxy(x), ConsortiumRegistry.Role.None, 0)
        returns (uint256) {
            foreignStateChangeLanded = true;
        } catch {}
    }

    // ------------------------------------------------------------- index
    function authorize(uint256 p, uint256 w, uint256 t) external {
        address pa = patient(p);
        address wa = writer(w);
        bytes32 tag = tags[t % 2];
        VM.prank(pa);
        try index.authorizeWriter(tag, wa, hex"01") {
            if (!writerActive[wa]) expelledAppendLanded = true; // authorized a non-Provider
            ghostAuthorized[pa][tag][wa] = true;
        } catch {}
    }

    function revokeWriter(uint256 p, uint256 w, uint256 t) external {
        address pa = patient(p);
        address wa = writer(w);
        bytes32 tag = tags[t % 2];
        VM.prank(pa);
        try index.revokeWriter(tag, wa) {
            ghostAuthorized[pa][tag][wa] = false;
        } catch {}
    }

    function rekey(uint256 p, uint256 t) external {
        address pa = patient(p);
        bytes32 oldTag = tags[t % 2];
        bytes32 newTag = tags[(t % 2 + 1) % 2];
        address[] memory ws = new address[](WRITERS);
        bytes[] memory payloads = new bytes[](WRITERS);
        for (uint256 i = 0; i < WRITERS; ++i) {
            ws[i] = writer(i);
            payloads[i] = hex"02";
        }
        VM.prank(pa);
        try index.rekeyWriters(oldTag, newTag, ws, payloads) {
            for (uint256 i = 0; i < WRITERS; ++i) {
                if (!writerActive[ws[i]]) expelledAppendLanded = true;
                ghostAuthorized[pa][oldTag][ws[i]] = false;
                ghostAuthorized[pa][newTag][ws[i]] = true;
            }
        } catch {}
    }

    function append(uint256 p, uint256 w, uint256 t, uint256 seed, bool own) external {
        address pa = patient(p);
        address author = own ? pa : writer(w);
        bytes32 tag = tags[t % 2];
        uint64 seq = ghostSeq[pa][tag][author];
        bytes memory e = abi.encodePacked(keccak256(abi.encode(seed)), uint8(seed));
        bool allowed = own || (ghostAuthorized[pa][tag][author] && writerActive[author]);
        VM.prank(author);
        try index.append(pa, tag, seq, e) {
            if (!allowed) expelledAppendLanded = true;
            _model(pa, tag, author, seq, e);
        } catch {}
    }

    function appendBatch(uint256 p, uint256 w, uint256 t, uint256 seed, uint8 n) external {
        n = n % 4 + 1;
        address pa = patient(p);
        address author = writer(w);
        bytes32 tag = tags[t % 2];
        uint64 seq = ghostSeq[pa][tag][author];
        bytes[] memory es = new bytes[](n);
        for (uint256 i = 0; i < n; ++i) es[i] = abi.encodePacked(keccak256(abi.encode(seed, i)));
        bool allowed = ghostAuthorized[pa][tag][author] && writerActive[author];
        VM.prank(author);
        try index.appendBatch(pa, tag, seq, es) {
            if (!allowed) expelledAppendLanded = true;
            for (uint256 i = 0; i < n; ++i) _model(pa, tag, author, seq + uint64(i), es[i]);
        } catch {}
    }

    // ------------------------------------------------------------ grants
    function grant(uint256 p, uint256 t, uint16 life) external {
        address pa = patient(p);
        bytes32 tag = tags[t % 2];
        uint40 expiry = uint40(VM.getBlockTimestamp() + 60 + life);
        address[] memory proxies = proxyList();
        bytes[] memory kfrags = new bytes[](PROXIES);
        for (uint256 i = 0; i < PROXIES; ++i) kfrags[i] = hex"03";
        bytes32 nonce = keccak256(abi.encode(_policies.length, p));
        Grants.GrantParams memory params =
            Grants.GrantParams(
                nonce, grantee(), tag, expiry, proxies, 2, kfrags, hex"04", new bytes32[](0)
            );
        VM.prank(pa);
        try grants.grant(params) returns (bytes32 pid) {
            for (uint256 i = 0; i < PROXIES; ++i) {
                if (proxySuspended[proxies[i]]) suspendedProxyGranted = true;
            }
            _policies.push(
                PolicyModel(
                    pid,
                    pa,
                    grantee(),
                    granteeKey(),
                    tag,
                    ghostGeneration[pa][tag],
                    uint40(VM.getBlockNumber()),
                    expiry,
                    0
                )
            );
        } catch {}
    }

    function revoke(uint256 i) external {
        if (_policies.length == 0) return;
        PolicyModel storage m = _policies[i % _policies.length];
        VM.prank(m.patient);
        try grants.revoke(m.id) {
            m.revokedAt = uint40(VM.getBlockNumber());
            everInactive[m.id] = true;
        } catch {}
    }

    function revokeTag(uint256 p, uint256 t) external {
        address pa = patient(p);
        bytes32 tag = tags[t % 2];
        VM.prank(pa);
        grants.revokeTag(tag);
        uint16 old = ghostGeneration[pa][tag];
        ghostEndedAt[pa][tag][old] = uint40(VM.getBlockNumber());
        ghostGeneration[pa][tag] = old + 1;
        for (uint256 i = 0; i < _policies.length; ++i) {
            PolicyModel storage m = _policies[i];
            if (m.patient == pa && m.tag == tag) everInactive[m.id] = true;
        }
    }

    /// Anyone but the patient tries to revoke or re-tag a grant: nothing may change.
    function strangerActs(uint256 i, uint256 who) external {
        if (_policies.length == 0) return;
        PolicyModel storage m = _policies[i % _policies.length];
        address[4] memory strangers = [writer(who), proxy(who), grantee(), patient(who)];
        address s = strangers[who % 4];
        if (s == m.patient) return;
        VM.prank(s);
        try grants.revoke(m.id) {
            foreignStateChangeLanded = true;
        } catch {}
    }

    // ------------------------------------------------------------- audit
    /// A proxy logs one access with an evaluated block `back` blocks ago, honest time or
    /// a lie, signed by the grantee or by someone else.
    function logAccess(uint256 i, uint256 x, uint8 back, bool goodSig, bool lieTime, uint16 dl)
        external
    {
        if (_policies.length == 0) return;
        PolicyModel memory m = _policies[i % _policies.length];
        address px = proxy(x);
        uint256 nowBlock = VM.getBlockNumber();
        uint256 nowTime = VM.getBlockTimestamp();
        AuditLog.Access[] memory batch = new AuditLog.Access[](1);
        bytes32[] memory caps = new bytes32[](1);
        caps[0] = keccak256(abi.encode(i, x, back));
        uint64 at = uint64(nowBlock > back ? nowBlock - back : 0);
        uint64 time = uint64(lieTime ? nowTime + 1 : nowTime);
        uint256 deadline = nowTime + (dl % 2 == 0 ? 600 : 0) - (dl % 3 == 0 ? 1 : 0);
        bytes32 digest = grants.hashProxyRequest(px, m.id, caps, uint256(dl), deadline);
        (uint8 v, bytes32 r, bytes32 s) = VM.sign(goodSig ? m.granteeKey : writerKey(x), digest);
        batch[0] = AuditLog.Access(caps, uint256(dl), deadline, at, time, abi.encodePacked(r, s, v));
        bool valid = goodSig && !proxySuspended[px] && at >= m.createdAt && at <= nowBlock
            && _beforeEnd(m, at) && time < m.expiry && time <= nowTime && time <= deadline;
        address[] memory proxies = proxyList();
        VM.prank(px);
        try audit.logAccesses(m.id, m.grantee, proxies, batch) {
            if (!valid) invalidLogLanded = true;
            ++validLogs;
        } catch {}
    }

    // ---------------------------------------------------------- internal
    function _beforeEnd(PolicyModel memory m, uint64 at) private view returns (bool) {
        if (m.revokedAt != 0 && at >= m.revokedAt) return false;
        uint40 ended = ghostEndedAt[m.patient][m.tag][m.generation];
        if (ended != 0 && at >= ended) return false;
        return true;
    }

    function _model(address pa, bytes32 tag, address author, uint64 seq, bytes memory e) private {
        bytes32 rid = keccak256(abi.encode(pa, tag, author, seq));
        ghostHead[pa] = bytes28(keccak256(abi.encode(ghostHead[pa], rid, keccak256(e))));
        ++ghostCount[pa];
        ghostSeq[pa][tag][author] = seq + 1;
        ++appends;
    }

    function _admit(address a, ConsortiumRegistry.Role role) private {
        VM.prank(a);
        registry.applyForMembership(_key33(uint160(a)), bytes32(uint256(uint160(a))), "http://p");
        _execute(ConsortiumRegistry.Action.Admit, a, role);
    }

    function _execute(ConsortiumRegistry.Action action, address a, ConsortiumRegistry.Role role)
        private
    {
        uint256 id = registry.propose(action, a, role, 0);
        registry.execute(id);
    }

    function _key33(uint256 seed) private pure returns (bytes memory) {
        return abi.encodePacked(bytes1(0x02), keccak256(abi.encode(seed)));
    }
}

contract TrustInvariants {
    TrustHandler private _h;

    function setUp() public {
        _h = new TrustHandler();
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(_h);
    }

    /// The handler's model is not vacuous: valid actions land, the refused ones do not.
    function test_handlerLandsValidActionsOnly() public {
        TrustHandler h = _h;
        h.grant(0, 0, 1000);
        require(h.policyCount() == 1, "a valid grant did not land");
        h.logAccess(0, 0, 0, true, false, 0);
        require(h.validLogs() == 1, "a valid access was not logged");
        h.logAccess(0, 1, 0, false, false, 0); // signed by someone else
        h.logAccess(0, 1, 0, true, true, 0); // evaluated in the future
        require(h.validLogs() == 1, "an invalid access was logged");
        h.advance(1, 1);
        h.revoke(0);
        h.logAccess(0, 0, 0, true, false, 0); // evaluated at the revocation block
        require(h.validLogs() == 1, "an access after revocation was logged");
        h.logAccess(0, 0, 1, true, false, 0); // evaluated just before it
        require(h.validLogs() == 2, "an access before revocation was not logged");
        h.authorize(0, 0, 0);
        h.append(0, 0, 0, 1, false);
        require(h.appends() == 1, "an authorized Provider could not append");
        h.expelWriter(0);
        h.append(0, 0, 0, 2, false);
        h.appendBatch(0, 0, 0, 3, 2);
        require(h.appends() == 1, "an expelled writer appended");
        h.suspendProxy(0);
        h.grant(1, 1, 1000);
        require(h.policyCount() == 1, "a grant named a suspended proxy");
        h.reinstateProxy(0);
        h.grant(1, 1, 1000);
        require(h.policyCount() == 2, "a grant after reinstatement did not land");
        h.suspendProxy(2);
        h.logAccess(1, 2, 0, true, false, 0);
        require(h.validLogs() == 2, "a suspended proxy logged");
        require(!h.foreignStateChangeLanded() && !h.expelledAppendLanded(), "flags set");
        require(!h.invalidLogLanded() && !h.suspendedProxyGranted(), "flags set");
    }

    /// Grants: only the patient changes a grant's state. Every grant's revocation block and
    /// its tag's generation equal the model's, which only patients' own actions move.
    function invariant_onlyThePatientChangesAGrant() public view {
        require(!_h.foreignStateChangeLanded(), "a non-patient or non-admin changed state");
        require(!_h.suspendedProxyGranted(), "a grant named a suspended proxy");
        Grants g = _h.grants();
        uint256 n = _h.policyCount();
        for (uint256 i = 0; i < n; ++i) {
            TrustHandler.PolicyModel memory m = _h.policyAt(i);
            Grants.Policy memory p = g.policyOf(m.id);
            require(p.patient == m.patient && p.tag == m.tag, "grant owner or tag changed");
            require(p.revokedAt == m.revokedAt, "revocation differs from the model");
            require(
                g.generationOf(m.patient, m.tag) == _h.ghostGeneration(m.patient, m.tag),
                "tag generation differs from the model"
            );
        }
    }

    /// Grants: a revocation block, once set, is never 0 again.
    function invariant_revokedAtNeverReset() public view {
        Grants g = _h.grants();
        uint256 n = _h.policyCount();
        for (uint256 i = 0; i < n; ++i) {
            TrustHandler.PolicyModel memory m = _h.policyAt(i);
            if (m.revokedAt != 0) require(g.policyOf(m.id).revokedAt != 0, "revokedAt reset");
        }
    }

    /// Grants: a grant that was Revoked or TagRevoked is never Active again.
    function invariant_revokedNeverActiveAgain() public view {
        Grants g = _h.grants();
        uint256 n = _h.policyCount();
        for (uint256 i = 0; i < n; ++i) {
            TrustHandler.PolicyModel memory m = _h.policyAt(i);
            if (_h.everInactive(m.id)) {
                Grants.Status s = g.statusOf(m.id);
                require(s == Grants.Status.Revoked || s == Grants.Status.TagRevoked, "active again");
            }
        }
    }

    /// Registry: the admin count equals the number of members with the Admin role.
    function invariant_adminCountMatches() public view {
        ConsortiumRegistry r = _h.registry();
        uint256 total = r.memberCount();
        address[] memory all = r.members(0, total);
        uint256 admins = 0;
        for (uint256 i = 0; i < all.length; ++i) {
            if (r.roleOf(all[i]) == ConsortiumRegistry.Role.Admin) ++admins;
        }
        (uint256 adminCount,) = r.adminConfig();
        require(adminCount == admins, "admin count differs from the members");
        require(adminCount == _h.ghostAdminCount(), "admin count differs from the model");
    }

    /// Registry: a suspended member has no role and is no active member.
    function invariant_suspendedHasNoRole() public view {
        ConsortiumRegistry r = _h.registry();
        uint256 total = r.memberCount();
        address[] memory all = r.members(0, total);
        for (uint256 i = 0; i < all.length; ++i) {
            if (r.memberOf(all[i]).suspendedAt == 0) continue;
            require(!r.isActiveMember(all[i]), "a suspended member is active");
            for (uint8 role = 0; role <= uint8(ConsortiumRegistry.Role.Admin); ++role) {
                require(!r.hasRole(all[i], ConsortiumRegistry.Role(role)), "suspended hasRole");
            }
        }
    }

    /// RecordIndex: each patient's head and count, and every writer's sequence, equal the
    /// model's.
    function invariant_indexMatchesModel() public view {
        RecordIndex idx = _h.index();
        for (uint256 p = 0; p < _h.PATIENTS(); ++p) {
            address pa = _h.patient(p);
            RecordIndex.Chain memory c = idx.chainOf(pa);
            require(c.head == _h.ghostHead(pa), "head differs from the model");
            require(c.count == _h.ghostCount(pa), "count differs from the model");
            for (uint256 t = 0; t < 2; ++t) {
                bytes32 tag = _h.tags(t);
                for (uint256 w = 0; w < _h.WRITERS(); ++w) {
                    address wa = _h.writer(w);
                    require(
                        idx.nextSequence(pa, tag, wa) == _h.ghostSeq(pa, tag, wa),
                        "sequence differs from the model"
                    );
                    require(
                        idx.isAuthorized(pa, tag, wa) == _h.ghostAuthorized(pa, tag, wa),
                        "authorization differs from the model"
                    );
                }
            }
        }
    }

    /// RecordIndex: a writer that is not an active Provider never appends (nor is authorized).
    function invariant_expelledWriterCannotAppend() public view {
        require(!_h.expelledAppendLanded(), "an expelled or demoted writer appended");
    }

    /// AuditLog: no access is logged outside its grant's active window, by a suspended or
    /// unlisted proxy, or without the grantee's signature.
    function invariant_noAccessLoggedWithoutWindowAndSignature() public view {
        require(!_h.invalidLogLanded(), "an invalid access was logged");
    }
}
