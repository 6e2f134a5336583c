// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ConsortiumRegistry} from "./ConsortiumRegistry.sol";

/// @title Studies
/// @notice Research cohorts (issue 16, the guideline's §7.2.4). A researcher publishes a
/// study: a commitment to its protocol, the categories it needs, the de-identification
/// profile, a digest of the ethics approval, an end date and the de-identification service
/// (a consortium member's process) that reads the records. Patients join by granting the
/// service, never the researcher, the named categories until the end date; the service
/// releases de-identified datasets sealed to the researcher and credits each included
/// participant with incentive points (a counter, no currency).
///
/// A participant is not the patient's account: it is a key the patient derives for this
/// study alone (`participant`), so joining, leaving and the points link nothing on chain to
/// the patient's address or to another study. A join or a leave carries the participant
/// key's EIP-712 signature ({hashJoin}, {hashLeave}) over its next nonce in that study
/// (kept in the participant's own slot), so anybody (in practice the service) may submit
/// it, and a leave cannot be undone by replaying the join.
///
/// The grants themselves are ordinary grants of the Grants contract to the service: they
/// show the patient's address and the service, not the study. What a patient gives a study
/// cannot be taken back once released (docs/research.md).
contract Studies is EIP712 {
    /// @notice Most categories or FHIR types one study may name.
    uint256 public constant MAX_NEEDS = 32;
    /// @notice Longest name of one need, in bytes.
    uint256 public constant MAX_NEED_BYTES = 64;
    /// @notice Longest study, from publication to its end, in seconds (five years).
    uint40 public constant MAX_DURATION = 1827 days;
    /// @notice Most participants one release may credit.
    uint256 public constant MAX_CREDITED = 512;
    /// @notice Longest dataset CID, in bytes.
    uint256 public constant MAX_CID_BYTES = 128;

    /// @notice EIP-712 type of a participant key's consent to join a study.
    bytes32 public constant JOIN_TYPEHASH =
        keccak256("Join(bytes32 studyId,address participant,uint256 nonce)");
    /// @notice EIP-712 type of a participant key's leaving a study.
    bytes32 public constant LEAVE_TYPEHASH =
        keccak256("Leave(bytes32 studyId,address participant,uint256 nonce)");

    /// @notice A study's state on chain time.
    enum Status {
        None,
        Open, // published, before its end, not closed
        Ended, // its end date passed
        Closed // closed early by its researcher
    }

    /// @notice One study's on-chain part (three slots).
    struct Study {
        address researcher;
        uint40 publishedAt; // unix seconds, chain time
        uint40 endsAt; // unix seconds, chain time
        bool closed;
        address service; // the de-identification service's account
        uint32 participants; // joined and not left
        uint32 releases; // datasets released
        bytes32 profile; // sha256 of the de-identification profile's name
    }

    /// @notice The same study, with its status, as {studyOf} answers.
    struct StudyView {
        address researcher;
        uint40 publishedAt;
        uint40 endsAt;
        bool closed;
        address service;
        uint32 participants;
        uint32 releases;
        bytes32 profile;
        Status status;
    }

    /// @notice One participant of one study (one slot).
    struct Participant {
        bool joined; // joined and not left
        uint40 joinedAt; // unix seconds of the last join
        uint32 points; // incentive points credited, kept after leaving
        uint32 nonce; // the next proof nonce (each join and leave uses one)
    }

    ConsortiumRegistry private immutable _registry;
    mapping(bytes32 id => Study) private _studies;
    mapping(bytes32 id => mapping(address participant => Participant)) private _participants;

    /// @notice The caller does not hold the Researcher role (or is suspended).
    error Studies_NotResearcher(address caller);
    /// @notice The de-identification service must be an active Provider or Proxy member.
    error Studies_InvalidService(address service);
    /// @notice A study with that id exists already (commit to another protocol document).
    error Studies_Exists(bytes32 id);
    /// @notice The end must be after chain time and within {MAX_DURATION}.
    error Studies_InvalidEnd(uint40 endsAt, uint256 chainTime);
    /// @notice A study names 1..{MAX_NEEDS} needs.
    error Studies_InvalidNeedCount(uint256 count);
    /// @notice Need `index` is empty or longer than {MAX_NEED_BYTES} bytes.
    error Studies_InvalidNeed(uint256 index);
    /// @notice No study has that id.
    error Studies_Unknown(bytes32 id);
    /// @notice The study was closed by its researcher.
    error Studies_Closed(bytes32 id);
    /// @notice The study ended at `endsAt`.
    error Studies_Ended(bytes32 id, uint40 endsAt, uint256 chainTime);
    /// @notice The participant is in the study already.
    error Studies_AlreadyJoined(bytes32 id, address participant);
    /// @notice The participant is not in the study (never joined, or left).
    error Studies_NotJoined(bytes32 id, address participant);
    /// @notice The proof is not the participant key's signature over its next nonce.
    error Studies_BadProof(bytes32 id, address participant);
    /// @notice Only the study's de-identification service may release and credit.
    error Studies_NotService(bytes32 id, address caller);
    /// @notice Only the study's researcher may close it.
    error Studies_NotOwner(bytes32 id, address caller);
    /// @notice A release needs a CID of 1..{MAX_CID_BYTES} bytes and at most
    /// {MAX_CREDITED} credited participants, strictly ascending.
    error Studies_InvalidRelease(bytes32 id);

    /// @notice Emitted when a researcher publishes a study; `needs` lists the categories
    /// (or FHIR resource types) it reads.
    event StudyPublished(
        bytes32 indexed studyId,
        address indexed researcher,
        address indexed service,
        bytes32 protocol,
        bytes32 profile,
        bytes32 ethics,
        uint40 endsAt,
        string[] needs
    );
    /// @notice Emitted when a participant joins a study.
    event StudyJoined(bytes32 indexed studyId, address indexed participant);
    /// @notice Emitted when a participant leaves a study.
    event StudyLeft(bytes32 indexed studyId, address indexed participant);
    /// @notice Emitted for each dataset the service releases: `cid` is where the dataset
    /// (sealed to the researcher) is stored, `digest` its SHA-256.
    event DatasetReleased(
        bytes32 indexed studyId,
        uint32 indexed release,
        string cid,
        bytes32 digest,
        uint32 participants,
        uint32 resources
    );
    /// @notice Emitted for each participant a release credits; `total` is its new count.
    event PointsAwarded(
        bytes32 indexed studyId, address indexed participant, uint32 points, uint32 total
    );
    /// @notice Emitted when the researcher closes a study early.
    event StudyClosed(bytes32 indexed studyId);

    /// @param registry_ The consortium registry: researchers and services are checked
    /// against it.
    constructor(ConsortiumRegistry registry_) EIP712("emrshare-studies", "1") {
        _registry = registry_;
    }

    /// @notice Publishes the study of `protocol` (a commitment to its protocol document) as
    /// id {idOf}(caller, `protocol`).
    /// Requirements: the caller holds the Researcher role; `service` is an active Provider
    /// or Proxy member; the id is unused; chain time < `endsAt` <= chain time +
    /// {MAX_DURATION}; 1..{MAX_NEEDS} needs of 1..{MAX_NEED_BYTES} bytes each.
    /// Emits: {StudyPublished}.
    function publish(
        bytes32 protocol,
        bytes32 profile,
        bytes32 ethics,
        uint40 endsAt,
        address service,
        string[] calldata needs
    ) external returns (bytes32 id) {
        if (!_registry.hasRole(msg.sender, ConsortiumRegistry.Role.Researcher)) {
            revert Studies_NotResearcher(msg.sender);
        }
        bool serviceOk = _registry.hasRole(service, ConsortiumRegistry.Role.Provider)
            || _registry.hasRole(service, ConsortiumRegistry.Role.Proxy);
        if (!serviceOk) revert Studies_InvalidService(service);
        id = idOf(msg.sender, protocol);
        if (_studies[id].researcher != address(0)) revert Studies_Exists(id);
        if (endsAt <= block.timestamp || endsAt > block.timestamp + MAX_DURATION) {
            revert Studies_InvalidEnd(endsAt, block.timestamp);
        }
        if (needs.length == 0 || needs.length > MAX_NEEDS) revert Studies_InvalidNeedCount(needs.length);
        for (uint256 i = 0; i < needs.length; ++i) {
            uint256 n = bytes(needs[i]).length;
            if (n == 0 || n > MAX_NEED_BYTES) revert Studies_InvalidNeed(i);
        }
        _studies[id] =
            Study(msg.sender, uint40(block.timestamp), endsAt, false, service, 0, 0, profile);
        emit StudyPublished(id, msg.sender, service, protocol, profile, ethics, endsAt, needs);
    }

    /// @notice Adds `participant` to study `id`.
    /// Requirements: the study is open; the participant is not in it; `proof` is the
    /// participant key's signature of {hashJoin}(`id`, `participant`, its next nonce).
    /// Emits: {StudyJoined}.
    function join(bytes32 id, address participant, bytes calldata proof) external {
        Study storage s = _open(id);
        Participant storage p = _participants[id][participant];
        if (p.joined) revert Studies_AlreadyJoined(id, participant);
        _checkProof(id, p, participant, JOIN_TYPEHASH, proof);
        p.joined = true;
        p.joinedAt = uint40(block.timestamp);
        s.participants += 1;
        emit StudyJoined(id, participant);
    }

    /// @notice Removes `participant` from study `id`; later releases leave it out. Allowed
    /// after the study ended or closed too.
    /// Requirements: the participant is in the study; `proof` is the participant key's
    /// signature of {hashLeave}(`id`, `participant`, its next nonce).
    /// Emits: {StudyLeft}.
    function leave(bytes32 id, address participant, bytes calldata proof) external {
        Study storage s = _known(id);
        Participant storage p = _participants[id][participant];
        if (!p.joined) revert Studies_NotJoined(id, participant);
        _checkProof(id, p, participant, LEAVE_TYPEHASH, proof);
        p.joined = false;
        s.participants -= 1;
        emit StudyLeft(id, participant);
    }

    /// @notice Records a de-identified dataset of study `id` at `cid` (SHA-256 `digest`, of
    /// `resources` resources) and credits each of `credited` still in the study with
    /// `points` (one who left is skipped).
    /// Requirements: the caller is the study's service; the study is open; the CID has
    /// 1..{MAX_CID_BYTES} bytes; at most {MAX_CREDITED} credited, strictly ascending.
    /// Emits: {DatasetReleased} (with the number credited), and {PointsAwarded} per
    /// credited participant.
    function release(
        bytes32 id,
        string calldata cid,
        bytes32 digest,
        uint32 resources,
        address[] calldata credited,
        uint32 points
    ) external returns (uint32 number) {
        Study storage s = _open(id);
        if (msg.sender != s.service) revert Studies_NotService(id, msg.sender);
        uint256 n = bytes(cid).length;
        if (n == 0 || n > MAX_CID_BYTES || credited.length > MAX_CREDITED) {
            revert Studies_InvalidRelease(id);
        }
        uint32 creditedCount;
        address previous;
        for (uint256 i = 0; i < credited.length; ++i) {
            address who = credited[i];
            if (who <= previous) revert Studies_InvalidRelease(id); // strictly ascending
            previous = who;
            Participant storage p = _participants[id][who];
            // One who left since the service read the chain is skipped, not a revert: a
            // participant leaving at the right moment must not block everyone's release.
            if (!p.joined) continue;
            uint32 total = p.points + points;
            p.points = total;
            creditedCount += 1;
            emit PointsAwarded(id, who, points, total);
        }
        number = s.releases + 1;
        s.releases = number;
        emit DatasetReleased(id, number, cid, digest, creditedCount, resources);
    }

    /// @notice Closes study `id` early: no join or release after.
    /// Requirements: the caller is its researcher; it is open.
    /// Emits: {StudyClosed}.
    function close(bytes32 id) external {
        Study storage s = _open(id);
        if (msg.sender != s.researcher) revert Studies_NotOwner(id, msg.sender);
        s.closed = true;
        emit StudyClosed(id);
    }

    /// @notice Study `id` with its status on chain time.
    function studyOf(bytes32 id) external view returns (StudyView memory v) {
        Study memory s = _studies[id];
        v = StudyView(
            s.researcher,
            s.publishedAt,
            s.endsAt,
            s.closed,
            s.service,
            s.participants,
            s.releases,
            s.profile,
            _status(s)
        );
    }

    /// @notice Whether `participant` is in study `id`, since when, its points and its next
    /// proof nonce.
    function participantOf(bytes32 id, address participant)
        external
        view
        returns (Participant memory)
    {
        return _participants[id][participant];
    }

    /// @notice The id of `researcher`'s study of `protocol`.
    function idOf(address researcher, bytes32 protocol) public pure returns (bytes32) {
        return keccak256(abi.encode(researcher, protocol));
    }

    /// @notice EIP-712 digest the participant key signs to join study `id` at `nonce`.
    function hashJoin(bytes32 id, address participant, uint256 nonce)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(JOIN_TYPEHASH, id, participant, nonce)));
    }

    /// @notice EIP-712 digest the participant key signs to leave study `id` at `nonce`.
    function hashLeave(bytes32 id, address participant, uint256 nonce)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(LEAVE_TYPEHASH, id, participant, nonce)));
    }

    /// @notice The consortium registry roles are checked against.
    function registry() external view returns (ConsortiumRegistry) {
        return _registry;
    }

    function _known(bytes32 id) private view returns (Study storage s) {
        s = _studies[id];
        if (s.researcher == address(0)) revert Studies_Unknown(id);
    }

    function _open(bytes32 id) private view returns (Study storage s) {
        s = _known(id);
        if (s.closed) revert Studies_Closed(id);
        if (block.timestamp >= s.endsAt) revert Studies_Ended(id, s.endsAt, block.timestamp);
    }

    function _checkProof(
        bytes32 id,
        Participant storage p,
        address participant,
        bytes32 typehash,
        bytes calldata proof
    ) private {
        uint256 nonce = p.nonce;
        p.nonce += 1; // checked: reverts rather than wrap back to a used nonce
        bytes32 digest =
            _hashTypedDataV4(keccak256(abi.encode(typehash, id, participant, nonce)));
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, proof);
        if (err != ECDSA.RecoverError.NoError || signer != participant) {
            revert Studies_BadProof(id, participant);
        }
    }

    function _status(Study memory s) private view returns (Status) {
        if (s.researcher == address(0)) return Status.None;
        if (s.closed) return Status.Closed;
        if (block.timestamp >= s.endsAt) return Status.Ended;
        return Status.Open;
    }
}
