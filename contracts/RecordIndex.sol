// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ConsortiumRegistry} from "./ConsortiumRegistry.sol";
import {PatientContext} from "./PatientContext.sol";
import {PatientForwarder} from "./PatientForwarder.sol";

/// @title RecordIndex
/// @notice Each patient's append-only index of sealed entries (opaque bytes: header, Umbral
/// capsule, ciphertext), grouped by blinded category tag. Entries live in event data only;
/// storage keeps what the rules need: writer authorizations with a per-(patient, tag, writer)
/// next sequence number, and a per-patient hash-chain head and count in one slot.
///
/// Exactly-once: an append names the sequence number of its first entry, which must equal
/// the stored next sequence of (patient, tag, sender). Record ids are derived from
/// (patient, tag, writer, sequence), so a retried append either lands once or reverts with
/// {RecordIndex_WrongSequence}, whose `expected` tells the writer how far it got.
///
/// Membership: a writer other than the patient must be an active consortium Provider both
/// when it is authorized and at every append, so a hospital the consortium expelled (or
/// whose role changed) can no longer write, even under an authorization it still holds.
///
/// No epoch on chain: tags already differ per key epoch, and an epoch number in clear would
/// let observers link a category's tags across epochs. {rekeyWriters} moves a tag's writers
/// to the new tag in the same transaction that revokes them on the old one.
///
/// Hash chain: `head' = bytes28(keccak256(abi.encode(head, recordId, keccak256(entry))))`,
/// starting from zero; every {EntryAppended} carries the new head, so a reader that
/// recomputes the chain detects dropped, reordered or forged events, and compares the final
/// head and count with {chainOf} to detect events dropped at the end. The head is 224 bits
/// so that head and count (uint32) share one storage slot: one SSTORE per append instead of
/// two. Forging a chain that ends at the same head is a collision search on a 224-bit hash
/// (about 2**112 work), the same margin as the 224-bit grant bindings.
///
/// A patient acts directly or through the {PatientForwarder} (signed, relayed, no ETH);
/// writers (hospitals) call directly.
contract RecordIndex is PatientContext {
    /// @notice Largest sealed entry accepted, in bytes.
    uint256 public constant MAX_ENTRY_BYTES = 4096;
    /// @notice Largest sealed writer payload accepted, in bytes.
    uint256 public constant MAX_PAYLOAD_BYTES = 1024;

    struct Writer {
        uint64 nextSequence;
        uint64 authorizedAt; // block number; 0 if never authorized
        bool authorized;
    }

    struct Chain {
        bytes28 head;
        uint32 count;
    }

    ConsortiumRegistry private immutable _registry;
    mapping(address patient => mapping(bytes32 tag => mapping(address writer => Writer)))
        private _writers;
    /// `bytes28 head | uint32 count`: the head in the high 224 bits, the count in the low 32.
    mapping(address patient => uint256) private _chains;

    /// @notice The sender may not append to that patient's tag.
    error RecordIndex_NotAuthorized(address patient, bytes32 tag, address writer);
    /// @notice The append named the wrong first sequence number; `expected` is the next one.
    error RecordIndex_WrongSequence(
        address patient, bytes32 tag, address writer, uint64 expected, uint64 given
    );
    /// @notice An entry is empty or larger than {MAX_ENTRY_BYTES}.
    error RecordIndex_InvalidEntry(uint256 index, uint256 length);
    /// @notice A batch had no entries.
    error RecordIndex_EmptyBatch();
    /// @notice The writer address is zero or the patient itself.
    error RecordIndex_InvalidWriter(address writer);
    /// @notice The sealed payload for the writer is empty.
    error RecordIndex_EmptyPayload();
    /// @notice The sealed payload for the writer is larger than {MAX_PAYLOAD_BYTES}.
    error RecordIndex_PayloadTooLarge(uint256 length);
    /// @notice The writer is not authorized for that tag.
    error RecordIndex_NotWriter(address patient, bytes32 tag, address writer);
    /// @notice The writer is not an active consortium member with the Provider role.
    error RecordIndex_NotMember(address writer);
    /// @notice The writer and payload lists differ in length.
    error RecordIndex_LengthMismatch(uint256 writerCount, uint256 payloadCount);

    /// @notice Emitted after an entry is appended. Its record id is
    /// `keccak256(abi.encode(patient, tag, author, sequence))` ({recordIdOf}); it is not
    /// repeated in the event because every byte of event data costs gas on every record.
    /// Readers find entries by patient and tag; the author is data, not a topic (a topic
    /// costs 375 gas, a data word 256), and stays as visible as before.
    event EntryAppended(
        address indexed patient,
        bytes32 indexed tag,
        address author,
        uint64 sequence,
        bytes28 head,
        bytes entry
    );
    /// @notice Emitted after a patient authorizes a writer for a tag. `sealedPayload` is
    /// what the writer needs to seal entries (category key material) sealed to its X25519 key.
    event WriterAuthorized(
        address indexed patient, bytes32 indexed tag, address indexed writer, bytes sealedPayload
    );
    /// @notice Emitted after a patient revokes a writer's authorization for a tag.
    event WriterRevoked(address indexed patient, bytes32 indexed tag, address indexed writer);

    /// @param registry_ The consortium registry whose active Providers may write.
    /// @param forwarder_ The forwarder that relays patients' signed operations.
    constructor(ConsortiumRegistry registry_, PatientForwarder forwarder_) PatientContext(forwarder_) {
        _registry = registry_;
    }

    /// @notice Authorizes `writer` to append under the caller's `tag`.
    /// Requirements: `writer` is neither zero nor the caller; `writer` is an active Provider
    /// member; `sealedPayload` is 1..{MAX_PAYLOAD_BYTES} bytes.
    /// Emits: {WriterAuthorized}.
    function authorizeWriter(bytes32 tag, address writer, bytes calldata sealedPayload) external {
        _authorize(_actor(), tag, writer, sealedPayload);
    }

    /// @notice Revokes `writer`'s authorization for the caller's `tag`; its sequence is kept.
    /// Requirements: `writer` is authorized for that tag.
    /// Emits: {WriterRevoked}.
    function revokeWriter(bytes32 tag, address writer) external {
        _revoke(_actor(), tag, writer);
    }

    /// @notice Revokes several writers of the caller's `tag` at once.
    /// Requirements: every writer is authorized for that tag (else nothing changes).
    /// Emits: {WriterRevoked} per writer.
    function revokeWriters(bytes32 tag, address[] calldata writers) external {
        address patient = _actor();
        for (uint256 i = 0; i < writers.length; ++i) _revoke(patient, tag, writers[i]);
    }

    /// @notice Moves writers from the caller's `oldTag` to `newTag` (a new key epoch) in one
    /// transaction: writer `i` loses its authorization on `oldTag` if it had one and is
    /// authorized on `newTag` with `sealedPayloads[i]`.
    /// Requirements: equal list lengths; for every writer, as {authorizeWriter}.
    /// Emits: per writer, {WriterRevoked} (if it was authorized on `oldTag`) then
    /// {WriterAuthorized}.
    function rekeyWriters(
        bytes32 oldTag,
        bytes32 newTag,
        address[] calldata writers,
        bytes[] calldata sealedPayloads
    ) external {
        uint256 n = writers.length;
        if (sealedPayloads.length != n) revert RecordIndex_LengthMismatch(n, sealedPayloads.length);
        address patient = _actor();
        for (uint256 i = 0; i < n; ++i) {
            address writer = writers[i];
            if (_writers[patient][oldTag][writer].authorized) _revoke(patient, oldTag, writer);
            _authorize(patient, newTag, writer, sealedPayloads[i]);
        }
    }

    /// @notice Appends one sealed entry to `patient`'s index under `tag`.
    /// Requirements: the sender is the patient, or an authorized writer for `tag` that is an
    /// active Provider member now; `sequence` equals {nextSequence}; the entry is
    /// 1..{MAX_ENTRY_BYTES} bytes.
    /// Emits: {EntryAppended}.
    function append(address patient, bytes32 tag, uint64 sequence, bytes calldata entry)
        external
        returns (bytes32 recordId)
    {
        (Writer storage w, address author) = _checkedWriter(patient, tag, sequence);
        w.nextSequence = sequence + 1;
        uint256 chain = _chains[patient];
        bytes28 head;
        (recordId, head) = _link(bytes28(bytes32(chain)), patient, tag, author, sequence, entry, 0);
        _chains[patient] = _packChain(head, uint32(chain) + 1);
        emit EntryAppended(patient, tag, author, sequence, head, entry);
    }

    /// @notice Appends several sealed entries under one tag; entry `i` gets sequence
    /// `firstSequence + i`.
    /// Requirements: as {append} for every entry; `entries` is not empty.
    /// Emits: {EntryAppended} per entry, in order.
    function appendBatch(
        address patient,
        bytes32 tag,
        uint64 firstSequence,
        bytes[] calldata entries
    ) external returns (bytes32 lastRecordId) {
        uint256 n = entries.length;
        if (n == 0) revert RecordIndex_EmptyBatch();
        (Writer storage w, address author) = _checkedWriter(patient, tag, firstSequence);
        w.nextSequence = firstSequence + uint64(n);
        uint256 chain = _chains[patient];
        bytes28 head = bytes28(bytes32(chain));
        for (uint256 i = 0; i < n; ++i) {
            // Nothing allocated in one iteration is used by the next: rewinding the free
            // memory pointer keeps memory (and its quadratic cost) from growing with n.
            uint256 freeMemory;
            assembly ("memory-safe") {
                freeMemory := mload(0x40)
            }
            uint64 sequence = firstSequence + uint64(i);
            (lastRecordId, head) = _link(head, patient, tag, author, sequence, entries[i], i);
            emit EntryAppended(patient, tag, author, sequence, head, entries[i]);
            assembly ("memory-safe") {
                mstore(0x40, freeMemory)
            }
        }
        // Checked addition: a count past 2**32 - 1 reverts rather than wrapping (n itself,
        // bounded by calldata, is far below 2**32).
        _chains[patient] = _packChain(head, uint32(chain) + uint32(n));
    }

    // ----------------------------------------------------------------- reads

    /// @notice The sequence number the next append by `writer` under (`patient`, `tag`) must name.
    function nextSequence(address patient, bytes32 tag, address writer)
        external
        view
        returns (uint64)
    {
        return _writers[patient][tag][writer].nextSequence;
    }

    /// @notice Whether `writer` may append under (`patient`, `tag`) now: the patient itself,
    /// or an authorized writer that is an active Provider member.
    function isWriter(address patient, bytes32 tag, address writer) external view returns (bool) {
        if (writer == patient) return true;
        return _writers[patient][tag][writer].authorized
            && _registry.hasRole(writer, ConsortiumRegistry.Role.Provider);
    }

    /// @notice Whether `writer` holds an authorization for (`patient`, `tag`), whatever its
    /// membership now.
    function isAuthorized(address patient, bytes32 tag, address writer)
        external
        view
        returns (bool)
    {
        return _writers[patient][tag][writer].authorized;
    }

    /// @notice The consortium registry this index checks writers against.
    function registry() external view returns (ConsortiumRegistry) {
        return _registry;
    }

    /// @notice The patient's hash-chain head and number of entries.
    function chainOf(address patient) external view returns (Chain memory) {
        uint256 chain = _chains[patient];
        return Chain(bytes28(bytes32(chain)), uint32(chain));
    }

    /// @notice The record id of the entry `writer` appends under (`patient`, `tag`) with `sequence`.
    function recordIdOf(address patient, bytes32 tag, address writer, uint64 sequence)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(patient, tag, writer, sequence));
    }

    // -------------------------------------------------------------- internal

    /// The writer's slot and the author: a writer's direct call, or the patient itself
    /// (directly, or through the forwarder).
    function _checkedWriter(address patient, bytes32 tag, uint64 sequence)
        private
        view
        returns (Writer storage w, address author)
    {
        author = _msgSender();
        if (author == patient) {
            author = _actor(); // a patient that rotated its key writes only through the forwarder
        } else {
            if (!_writers[patient][tag][author].authorized) {
                revert RecordIndex_NotAuthorized(patient, tag, author);
            }
            if (!_registry.hasRole(author, ConsortiumRegistry.Role.Provider)) {
                revert RecordIndex_NotMember(author);
            }
        }
        w = _writers[patient][tag][author];
        uint64 expected = w.nextSequence;
        if (sequence != expected) {
            revert RecordIndex_WrongSequence(patient, tag, author, expected, sequence);
        }
    }

    function _packChain(bytes28 head, uint32 count) private pure returns (uint256) {
        return uint256(bytes32(head)) | count;
    }

    function _link(
        bytes28 head,
        address patient,
        bytes32 tag,
        address author,
        uint64 sequence,
        bytes calldata entry,
        uint256 index
    ) private pure returns (bytes32 recordId, bytes28 newHead) {
        if (entry.length == 0 || entry.length > MAX_ENTRY_BYTES) {
            revert RecordIndex_InvalidEntry(index, entry.length);
        }
        recordId = keccak256(abi.encode(patient, tag, author, sequence));
        newHead = bytes28(keccak256(abi.encode(head, recordId, keccak256(entry))));
    }

    function _authorize(address patient, bytes32 tag, address writer, bytes calldata sealedPayload)
        private
    {
        if (writer == address(0) || writer == patient) revert RecordIndex_InvalidWriter(writer);
        if (!_registry.hasRole(writer, ConsortiumRegistry.Role.Provider)) {
            revert RecordIndex_NotMember(writer);
        }
        uint256 len = sealedPayload.length;
        if (len == 0) revert RecordIndex_EmptyPayload();
        if (len > MAX_PAYLOAD_BYTES) revert RecordIndex_PayloadTooLarge(len);
        Writer storage w = _writers[patient][tag][writer];
        w.authorized = true;
        w.authorizedAt = uint64(block.number);
        emit WriterAuthorized(patient, tag, writer, sealedPayload);
    }

    function _revoke(address patient, bytes32 tag, address writer) private {
        Writer storage w = _writers[patient][tag][writer];
        if (!w.authorized) revert RecordIndex_NotWriter(patient, tag, writer);
        w.authorized = false;
        emit WriterRevoked(patient, tag, writer);
    }
}
