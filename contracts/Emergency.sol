// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ConsortiumRegistry} from "./ConsortiumRegistry.sol";
import {PatientContext} from "./PatientContext.sol";
import {PatientForwarder} from "./PatientForwarder.sol";
import {PatientProfiles} from "./PatientProfiles.sol";

/// @title Emergency
/// @notice Break-glass access (issue 15). A patient opts in ahead of time: a dormant
/// emergency policy of some blinded category tags, a time window, and kfrags sealed to M-of-N
/// proxies towards the consortium emergency key (published here once, by the deployer). A
/// clinician of a member holding the registry's {ConsortiumRegistry-CAP_EMERGENCY} declares
/// an emergency for the patient; while the declaration is active on chain time
/// (`declaredAt + window`, not ended, the opt-in not withdrawn) the policy's proxies serve
/// re-encryptions for requests the declaring clinician signed, and log each serve here.
///
/// The emergency key is not the gate, the proxies are: without cfrags from M proxies the key
/// opens nothing. The patient (or a guardian, through the forwarder) can end a declaration
/// early; the regulator reviews each one (the justification is sealed to the patient and to
/// the regulator, never in clear on chain).
///
/// The contract is the EIP-712 verifying contract (domain "emrshare-emergency", version "1")
/// of a co-signature ({hashCosign}) and of a clinician's emergency proxy request
/// ({hashEmergencyRequest}).
contract Emergency is EIP712, PatientContext {
    /// @notice Most proxies one opt-in may name.
    uint256 public constant MAX_PROXIES = 32;
    /// @notice Most tags one opt-in may open: each category is opted in with the tag of
    /// every epoch it has had (and the next), so a few categories take several tags.
    uint256 public constant MAX_TAGS = 64;
    /// @notice Largest sealed kfrag, sealed map and sealed justification, in bytes.
    uint256 public constant MAX_SEALED_BYTES = 2048;
    /// @notice Longest emergency window a patient may choose, in seconds (7 days).
    uint32 public constant MAX_WINDOW = 7 days;
    /// @notice Latest deadline a co-signature may carry, in seconds after chain time.
    uint256 public constant MAX_COSIGN_TTL = 15 minutes;
    /// @notice HL7 PurposeOfUse of every declaration: emergency treatment.
    bytes32 public constant PURPOSE_OF_USE = "ETREAT";

    /// @notice EIP-712 type hash of a second clinician's co-signature of a declaration.
    bytes32 public constant COSIGN_TYPEHASH = keccak256(
        "EmergencyCosign(address clinician,address patient,uint8 reasonCode,uint256 deadline)"
    );
    /// @notice EIP-712 type hash of the declaring clinician's request to one proxy.
    bytes32 public constant EMERGENCY_REQUEST_TYPEHASH = keccak256(
        "EmergencyRequest(address proxy,uint256 declarationId,bytes32 tag,bytes32[] capsuleHashes,uint256 nonce,uint256 deadline)"
    );

    /// @notice A declaration's state on chain time.
    enum Status {
        None,
        Active,
        Ended, // ended early by the patient, a guardian or the clinician
        Expired, // the time box passed
        Withdrawn // the patient withdrew or replaced the opt-in it opened
    }

    /// @notice The regulator's verdict on a declaration.
    enum Review {
        Pending,
        Reviewed,
        Disputed
    }

    /// @notice What a patient signs into an opt-in.
    struct OptInParams {
        bytes32[] tags; // blinded category tags an emergency may open
        uint32 window; // seconds a declaration stays active
        address[] proxies;
        uint8 threshold;
        bytes[] sealedKfrags; // tags.length * proxies.length, index t * proxies.length + p
        bytes[] sealedMaps; // one grantee map per tag, sealed to the emergency box key
    }

    struct Policy {
        uint16 generation; // 1.. for each opt-in; 0: never opted in
        uint32 window;
        uint40 createdAt; // block
        uint40 withdrawnAt; // block; 0 while standing
        uint8 threshold;
        bytes27 binding; // bytes27(keccak256(abi.encode(proxies)))
    }

    struct Declaration {
        address patient;
        uint40 declaredAt; // unix seconds
        uint40 endsAt; // unix seconds: declaredAt + window
        uint16 generation; // of the patient's opt-in
        address clinician;
        uint40 endedAt; // unix seconds; 0 while not ended early
        uint8 reasonCode;
        Review review;
        address cosigner; // zero if none
    }

    ConsortiumRegistry private immutable _registry;
    PatientProfiles private immutable _profiles;
    address private immutable _deployer;
    uint64 private immutable _cooldown;
    bool private immutable _cosignRequired;
    bytes private _umbralKey;
    bytes32 private _boxKey;
    mapping(address patient => Policy) private _policies;
    mapping(address patient => mapping(bytes32 tag => uint16 generation)) private _tagGeneration;
    mapping(address clinician => uint40 declaredAt) private _lastDeclared;
    mapping(uint256 declarationId => Declaration) private _declarations;
    uint256 private _declarationCount;
    mapping(bytes32 cosignDigest => bool used) private _cosignUsed;

    /// @notice The emergency keys are set once and were already set.
    error Emergency_KeysAlreadySet();
    /// @notice Only the deployer sets the emergency keys; or a key had the wrong length.
    error Emergency_InvalidKeys(address caller);
    /// @notice The emergency keys are not published yet: nothing can be opted in.
    error Emergency_KeysNotSet();
    /// @notice The caller has no patient profile.
    error Emergency_NoProfile(address caller);
    /// @notice The window must be 1..{MAX_WINDOW} seconds.
    error Emergency_InvalidWindow(uint32 window);
    /// @notice 1..{MAX_TAGS} distinct non-zero tags.
    error Emergency_InvalidTags(uint256 count);
    /// @notice 1 <= threshold <= proxies <= {MAX_PROXIES}.
    error Emergency_InvalidThreshold(uint8 threshold, uint256 proxyCount);
    /// @notice A proxy is zero, named twice, or not an active consortium proxy.
    error Emergency_InvalidProxy(address proxy);
    /// @notice One sealed kfrag per (tag, proxy) is needed.
    error Emergency_KfragCountMismatch(uint256 kfragCount, uint256 expected);
    /// @notice One sealed grantee map per tag is needed.
    error Emergency_MapCountMismatch(uint256 mapCount, uint256 expected);
    /// @notice A sealed blob is empty or larger than {MAX_SEALED_BYTES}.
    error Emergency_SealedTooLarge(uint256 index, uint256 length);
    /// @notice The patient has no standing opt-in.
    error Emergency_NotOptedIn(address patient);
    /// @notice The caller is not an active member with the EMERGENCY capability.
    error Emergency_NotCapable(address account);
    /// @notice The caller holds the EMERGENCY capability but is not an active Provider (a
    /// proxy operator, an insurer or the regulator must not declare and serve itself).
    error Emergency_NotProvider(address account);
    /// @notice The clinician declared within the cool-down; try again at `availableAt`.
    error Emergency_CoolDown(address clinician, uint256 availableAt);
    /// @notice The contract requires a co-signature by another EMERGENCY member.
    error Emergency_CosignRequired(address clinician);
    /// @notice The co-signature is not `cosigner`'s signature of this declaration, is past
    /// its deadline, or `cosigner` is the clinician, lacks the capability or is not an
    /// active Provider.
    error Emergency_BadCosignature(address cosigner);
    /// @notice A co-signature's deadline is more than {MAX_COSIGN_TTL} after chain time.
    error Emergency_CosignDeadlineTooFar(uint256 deadline, uint256 latest);
    /// @notice The co-signature already backed a declaration: each is single-use.
    error Emergency_CosignatureUsed(address cosigner);
    /// @notice No declaration with that id.
    error Emergency_UnknownDeclaration(uint256 declarationId);
    /// @notice The declaration is not active (see {Status}).
    error Emergency_NotActive(uint256 declarationId, Status status);
    /// @notice Only the patient (or its guardian, through the forwarder) or the declaring
    /// clinician may end a declaration.
    error Emergency_NotAllowedToEnd(uint256 declarationId, address caller);
    /// @notice The caller is not a proxy of the declaration's opt-in, or is not an active proxy.
    error Emergency_NotPolicyProxy(uint256 declarationId, address caller);
    /// @notice The tag is not one the patient's opt-in opens.
    error Emergency_CategoryNotOptedIn(uint256 declarationId, bytes32 tag);
    /// @notice The caller is not an active Regulator.
    error Emergency_NotRegulator(address account);
    /// @notice A verdict must be Reviewed or Disputed.
    error Emergency_InvalidReview(uint8 review);
    /// @notice Nothing to log: 1..64 capsule hashes per serve.
    error Emergency_InvalidCapsules(uint256 count);
    /// @notice A serve log is dated (`servedAt`, the chain time the proxy judged the
    /// declaration at) outside the declaration's active span `[from, until)` (the time box,
    /// cut at the early end).
    error Emergency_ServedOutsideDeclaration(
        uint256 declarationId, uint40 servedAt, uint40 from, uint40 until
    );
    /// @notice A serve log is dated after the chain time of the block that logs it.
    error Emergency_ServedInFuture(uint256 declarationId, uint40 servedAt, uint256 chainTime);

    /// @notice Emitted after the deployer publishes the consortium emergency keys.
    event EmergencyKeysSet(bytes umbralKey, bytes32 boxKey);
    /// @notice Emitted after a patient opts in; the proxies read their sealed kfrags here.
    event EmergencyPolicyCreated(
        address indexed patient,
        uint16 indexed generation,
        uint32 window,
        uint8 threshold,
        bytes32[] tags,
        address[] proxies,
        bytes[] sealedKfrags,
        bytes[] sealedMaps
    );
    /// @notice Emitted after a patient withdraws its opt-in; proxies delete its kfrags.
    event EmergencyPolicyWithdrawn(address indexed patient, uint16 indexed generation);
    /// @notice Emitted after a clinician declares an emergency for a patient.
    event EmergencyDeclared(
        uint256 indexed declarationId,
        address indexed patient,
        address indexed clinician,
        address cosigner,
        uint8 reasonCode,
        bytes32 purposeOfUse,
        uint40 endsAt,
        bytes sealedForPatient,
        bytes sealedForRegulator
    );
    /// @notice Emitted after a declaration is ended early.
    event EmergencyEnded(uint256 indexed declarationId, address indexed endedBy, uint40 endedAt);
    /// @notice Emitted after a proxy served an emergency re-encryption.
    event EmergencyAccessLogged(
        uint256 indexed declarationId,
        address indexed patient,
        address indexed proxy,
        bytes32 tag,
        bytes32[] capsuleHashes
    );
    /// @notice Emitted after the regulator reviews a declaration.
    event EmergencyReviewed(uint256 indexed declarationId, address indexed regulator, Review review);

    /// @param registry_ The consortium registry (capabilities, proxies, regulators).
    /// @param profiles_ The patient profiles: opting in and being declared for need one.
    /// @param forwarder_ The forwarder that relays patients' (and guardians') operations.
    /// @param cooldown_ Seconds a clinician must wait between two declarations.
    /// @param cosignRequired_ Whether every declaration needs a second clinician's signature.
    constructor(
        ConsortiumRegistry registry_,
        PatientProfiles profiles_,
        PatientForwarder forwarder_,
        uint64 cooldown_,
        bool cosignRequired_
    ) EIP712("emrshare-emergency", "1") PatientContext(forwarder_) {
        _registry = registry_;
        _profiles = profiles_;
        _deployer = msg.sender;
        _cooldown = cooldown_;
        _cosignRequired = cosignRequired_;
    }

    // ------------------------------------------------------------------ keys

    /// @notice Publishes the consortium emergency keys, once.
    /// Requirements: the caller deployed the contract; keys not set yet; `umbralKey` is 33
    /// bytes, `boxKey` non-zero.
    /// Emits: {EmergencyKeysSet}.
    function setEmergencyKeys(bytes calldata umbralKey, bytes32 boxKey) external {
        if (msg.sender != _deployer || umbralKey.length != 33 || boxKey == bytes32(0)) {
            revert Emergency_InvalidKeys(msg.sender);
        }
        if (_boxKey != bytes32(0)) revert Emergency_KeysAlreadySet();
        _umbralKey = umbralKey;
        _boxKey = boxKey;
        emit EmergencyKeysSet(umbralKey, boxKey);
    }

    // --------------------------------------------------------------- opt-in

    /// @notice Opts the caller (a patient, or its guardian through the forwarder) in to
    /// emergency access of `p.tags` for `p.window` seconds per declaration, replacing any
    /// earlier opt-in.
    /// Requirements: keys are set; the caller has a profile; 1..{MAX_TAGS} distinct tags;
    /// 1 <= window <= {MAX_WINDOW}; 1 <= threshold <= proxies <= {MAX_PROXIES}, proxies
    /// distinct active Proxy members; one sealed kfrag per (tag, proxy); one sealed map per
    /// tag; sealed blobs 1..{MAX_SEALED_BYTES} bytes (a bad map `t` reports index
    /// `type(uint256).max - t`).
    /// Emits: {EmergencyPolicyWithdrawn} for a replaced opt-in, {EmergencyPolicyCreated}.
    function optIn(OptInParams calldata p) external returns (uint16 generation) {
        address patient = _actor();
        if (_boxKey == bytes32(0)) revert Emergency_KeysNotSet();
        if (!_profiles.isRegistered(patient)) revert Emergency_NoProfile(patient);
        if (p.window == 0 || p.window > MAX_WINDOW) revert Emergency_InvalidWindow(p.window);
        _checkOptIn(p);
        Policy storage pol = _policies[patient];
        if (pol.generation != 0 && pol.withdrawnAt == 0) {
            emit EmergencyPolicyWithdrawn(patient, pol.generation);
        }
        generation = pol.generation + 1;
        pol.generation = generation;
        pol.window = p.window;
        pol.createdAt = uint40(block.number);
        pol.withdrawnAt = 0;
        pol.threshold = p.threshold;
        pol.binding = bindingFor(p.proxies);
        for (uint256 t = 0; t < p.tags.length; ++t) {
            // Distinctness checked here, in one pass: a tag seen earlier in this loop
            // already holds the new generation.
            if (_tagGeneration[patient][p.tags[t]] == generation) {
                revert Emergency_InvalidTags(p.tags.length);
            }
            _tagGeneration[patient][p.tags[t]] = generation;
        }
        emit EmergencyPolicyCreated(
            patient,
            generation,
            p.window,
            p.threshold,
            p.tags,
            p.proxies,
            p.sealedKfrags,
            p.sealedMaps
        );
    }

    /// @notice Withdraws the caller's opt-in: active declarations stop being served.
    /// Requirements: the caller has a standing opt-in.
    /// Emits: {EmergencyPolicyWithdrawn}.
    function withdraw() external {
        address patient = _actor();
        Policy storage pol = _policies[patient];
        if (pol.generation == 0 || pol.withdrawnAt != 0) revert Emergency_NotOptedIn(patient);
        pol.withdrawnAt = uint40(block.number);
        emit EmergencyPolicyWithdrawn(patient, pol.generation);
    }

    // ---------------------------------------------------------- declarations

    /// @notice Declares an emergency for `patient`: for the patient's window from now, the
    /// opt-in's proxies serve the caller. `sealedForPatient` and `sealedForRegulator` are
    /// the free-text justification sealed to the patient's and the regulator's box keys.
    /// Requirements: the caller is an active Provider with CAP_EMERGENCY; the patient has a
    /// standing opt-in; the caller did not declare within the cool-down; when
    /// {cosignRequired}, `cosigner` is another active Provider with CAP_EMERGENCY whose
    /// EIP-712 signature ({hashCosign}) is `cosignature`, before `cosignDeadline`, which is
    /// at most {MAX_COSIGN_TTL} after chain time, and which backed no declaration before (a
    /// co-signature given is checked the same way when not required); sealed blobs
    /// 1..{MAX_SEALED_BYTES}.
    /// Emits: {EmergencyDeclared}.
    function declare(
        address patient,
        uint8 reasonCode,
        bytes calldata sealedForPatient,
        bytes calldata sealedForRegulator,
        address cosigner,
        uint256 cosignDeadline,
        bytes calldata cosignature
    ) external returns (uint256 declarationId) {
        address clinician = msg.sender;
        if (!_registry.hasCapability(clinician, _registry.CAP_EMERGENCY())) {
            revert Emergency_NotCapable(clinician);
        }
        if (!_registry.hasRole(clinician, ConsortiumRegistry.Role.Provider)) {
            revert Emergency_NotProvider(clinician);
        }
        Policy storage pol = _policies[patient];
        if (pol.generation == 0 || pol.withdrawnAt != 0) revert Emergency_NotOptedIn(patient);
        uint40 last = _lastDeclared[clinician];
        if (last != 0 && block.timestamp < uint256(last) + _cooldown) {
            revert Emergency_CoolDown(clinician, uint256(last) + _cooldown);
        }
        if (cosigner == address(0)) {
            if (_cosignRequired) revert Emergency_CosignRequired(clinician);
        } else {
            _checkCosign(clinician, patient, reasonCode, cosigner, cosignDeadline, cosignature);
        }
        _checkSealed(0, sealedForPatient.length);
        _checkSealed(1, sealedForRegulator.length);
        uint40 now_ = uint40(block.timestamp);
        _lastDeclared[clinician] = now_;
        declarationId = ++_declarationCount;
        uint40 endsAt = now_ + pol.window;
        _declarations[declarationId] = Declaration(
            patient, now_, endsAt, pol.generation, clinician, 0, reasonCode, Review.Pending, cosigner
        );
        emit EmergencyDeclared(
            declarationId,
            patient,
            clinician,
            cosigner,
            reasonCode,
            PURPOSE_OF_USE,
            endsAt,
            sealedForPatient,
            sealedForRegulator
        );
    }

    /// @notice Ends an active declaration early.
    /// Requirements: the declaration is active; the caller is its patient (directly or
    /// through the forwarder, also as its guardian) or its declaring clinician.
    /// Emits: {EmergencyEnded}.
    function end(uint256 declarationId) external {
        Declaration storage d = _declaration(declarationId);
        Status s = statusOf(declarationId);
        if (s != Status.Active) revert Emergency_NotActive(declarationId, s);
        address caller = msg.sender == d.clinician ? msg.sender : _actor();
        if (caller != d.patient && caller != d.clinician) {
            revert Emergency_NotAllowedToEnd(declarationId, caller);
        }
        uint40 now_ = uint40(block.timestamp);
        d.endedAt = now_;
        emit EmergencyEnded(declarationId, caller, now_);
    }

    /// @notice Logs one emergency re-encryption a proxy served (its capsule hashes) under
    /// a declaration that was active at `servedAt`, the chain time of the block the proxy
    /// judged the declaration at. `proxies` is the opt-in's proxy list, in opt-in order.
    /// A serve stays loggable after the declaration ended or expired, so a clinician who
    /// ends its own declaration right after reading cannot keep the serve off chain.
    /// Requirements: the declaration exists and its opt-in is still standing (not withdrawn
    /// or replaced); `declaredAt <= servedAt < endsAt`, and `servedAt <= endedAt` when it
    /// was ended (a block judged before the end may share the end's second); `servedAt` is
    /// not after this block's time; `proxies` binds to the opt-in and names the caller, an
    /// active Proxy member; the tag is one the opt-in opens; 1..64 capsules.
    /// Emits: {EmergencyAccessLogged}.
    function logEmergencyAccess(
        uint256 declarationId,
        address[] calldata proxies,
        bytes32 tag,
        bytes32[] calldata capsuleHashes,
        uint40 servedAt
    ) external {
        Declaration storage d = _declaration(declarationId);
        address patient = d.patient;
        Policy storage pol = _policies[patient];
        if (pol.generation != d.generation || pol.withdrawnAt != 0) {
            revert Emergency_NotActive(declarationId, Status.Withdrawn);
        }
        uint40 until = d.endsAt;
        if (d.endedAt != 0) until = d.endedAt + 1; // end() needs Active: endedAt < endsAt
        if (servedAt < d.declaredAt || servedAt >= until) {
            revert Emergency_ServedOutsideDeclaration(declarationId, servedAt, d.declaredAt, until);
        }
        if (servedAt > block.timestamp) {
            revert Emergency_ServedInFuture(declarationId, servedAt, block.timestamp);
        }
        if (
            bindingFor(proxies) != _policies[patient].binding || !_named(proxies, msg.sender)
                || !_registry.hasRole(msg.sender, ConsortiumRegistry.Role.Proxy)
        ) revert Emergency_NotPolicyProxy(declarationId, msg.sender);
        if (_tagGeneration[patient][tag] != d.generation) {
            revert Emergency_CategoryNotOptedIn(declarationId, tag);
        }
        if (capsuleHashes.length == 0 || capsuleHashes.length > 64) {
            revert Emergency_InvalidCapsules(capsuleHashes.length);
        }
        emit EmergencyAccessLogged(declarationId, patient, msg.sender, tag, capsuleHashes);
    }

    /// @notice Records the regulator's verdict on a declaration (a later verdict replaces
    /// an earlier one).
    /// Requirements: the caller is an active Regulator; the declaration exists; `review` is
    /// Reviewed or Disputed.
    /// Emits: {EmergencyReviewed}.
    function review(uint256 declarationId, Review verdict) external {
        if (!_registry.hasRole(msg.sender, ConsortiumRegistry.Role.Regulator)) {
            revert Emergency_NotRegulator(msg.sender);
        }
        Declaration storage d = _declaration(declarationId);
        if (verdict == Review.Pending) revert Emergency_InvalidReview(uint8(verdict));
        d.review = verdict;
        emit EmergencyReviewed(declarationId, msg.sender, verdict);
    }

    // ----------------------------------------------------------------- reads

    /// @notice A declaration's state on chain time.
    function statusOf(uint256 declarationId) public view returns (Status) {
        Declaration storage d = _declarations[declarationId];
        if (d.patient == address(0)) return Status.None;
        if (d.endedAt != 0) return Status.Ended;
        Policy storage pol = _policies[d.patient];
        if (pol.generation != d.generation || pol.withdrawnAt != 0) return Status.Withdrawn;
        if (block.timestamp >= d.endsAt) return Status.Expired;
        return Status.Active;
    }

    /// @notice A declaration by id.
    /// Requirements: the declaration exists.
    function declarationOf(uint256 declarationId) external view returns (Declaration memory) {
        return _declaration(declarationId);
    }

    /// @notice Number of declarations ever made (ids are 1 .. count).
    function declarationCount() external view returns (uint256) {
        return _declarationCount;
    }

    /// @notice A patient's opt-in (generation 0: never opted in).
    function policyOf(address patient) external view returns (Policy memory) {
        return _policies[patient];
    }

    /// @notice Whether the patient's standing opt-in opens `tag`.
    function opensTag(address patient, bytes32 tag) external view returns (bool) {
        Policy storage pol = _policies[patient];
        return pol.generation != 0 && pol.withdrawnAt == 0
            && _tagGeneration[patient][tag] == pol.generation;
    }

    /// @notice The consortium emergency keys: Umbral receiving key and X25519 box key.
    function emergencyKeys() external view returns (bytes memory umbralKey, bytes32 boxKey) {
        return (_umbralKey, _boxKey);
    }

    /// @notice The cool-down between two declarations by one clinician, in seconds.
    function cooldown() external view returns (uint64) {
        return _cooldown;
    }

    /// @notice Whether every declaration needs a second clinician's co-signature.
    function cosignRequired() external view returns (bool) {
        return _cosignRequired;
    }

    /// @notice The binding of an opt-in to its proxy list.
    function bindingFor(address[] calldata proxies) public pure returns (bytes27) {
        return bytes27(keccak256(abi.encode(proxies)));
    }

    /// @notice EIP-712 digest a co-signing clinician signs.
    function hashCosign(address clinician, address patient, uint8 reasonCode, uint256 deadline)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(COSIGN_TYPEHASH, clinician, patient, reasonCode, deadline))
        );
    }

    /// @notice EIP-712 digest of a declaring clinician's request to one proxy.
    function hashEmergencyRequest(
        address proxy,
        uint256 declarationId,
        bytes32 tag,
        bytes32[] calldata capsuleHashes,
        uint256 nonce,
        uint256 deadline
    ) external view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    EMERGENCY_REQUEST_TYPEHASH,
                    proxy,
                    declarationId,
                    tag,
                    keccak256(abi.encodePacked(capsuleHashes)),
                    nonce,
                    deadline
                )
            )
        );
    }

    /// @notice The consortium registry.
    function registry() external view returns (ConsortiumRegistry) {
        return _registry;
    }

    // -------------------------------------------------------------- internal

    function _declaration(uint256 declarationId) private view returns (Declaration storage d) {
        d = _declarations[declarationId];
        if (d.patient == address(0)) revert Emergency_UnknownDeclaration(declarationId);
    }

    function _checkOptIn(OptInParams calldata p) private view {
        uint256 nt = p.tags.length;
        if (nt == 0 || nt > MAX_TAGS) revert Emergency_InvalidTags(nt);
        for (uint256 i = 0; i < nt; ++i) {
            if (p.tags[i] == bytes32(0)) revert Emergency_InvalidTags(nt);
        }
        uint256 n = p.proxies.length;
        if (n > MAX_PROXIES || p.threshold == 0 || p.threshold > n) {
            revert Emergency_InvalidThreshold(p.threshold, n);
        }
        for (uint256 i = 0; i < n; ++i) {
            address proxy = p.proxies[i];
            if (proxy == address(0)) revert Emergency_InvalidProxy(proxy);
            for (uint256 j = 0; j < i; ++j) {
                if (p.proxies[j] == proxy) revert Emergency_InvalidProxy(proxy);
            }
        }
        (bool ok, uint256 firstBad) =
            _registry.allHaveRole(p.proxies, ConsortiumRegistry.Role.Proxy);
        if (!ok) revert Emergency_InvalidProxy(p.proxies[firstBad]);
        if (p.sealedKfrags.length != nt * n) {
            revert Emergency_KfragCountMismatch(p.sealedKfrags.length, nt * n);
        }
        for (uint256 i = 0; i < p.sealedKfrags.length; ++i) {
            _checkSealed(i, p.sealedKfrags[i].length);
        }
        if (p.sealedMaps.length != nt) revert Emergency_MapCountMismatch(p.sealedMaps.length, nt);
        for (uint256 t = 0; t < nt; ++t) {
            _checkSealed(type(uint256).max - t, p.sealedMaps[t].length);
        }
    }

    function _checkCosign(
        address clinician,
        address patient,
        uint8 reasonCode,
        address cosigner,
        uint256 deadline,
        bytes calldata signature
    ) private {
        if (
            cosigner == clinician || block.timestamp > deadline
                || !_registry.hasCapability(cosigner, _registry.CAP_EMERGENCY())
                || !_registry.hasRole(cosigner, ConsortiumRegistry.Role.Provider)
        ) revert Emergency_BadCosignature(cosigner);
        if (deadline > block.timestamp + MAX_COSIGN_TTL) {
            revert Emergency_CosignDeadlineTooFar(deadline, block.timestamp + MAX_COSIGN_TTL);
        }
        bytes32 digest = hashCosign(clinician, patient, reasonCode, deadline);
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        if (err != ECDSA.RecoverError.NoError || signer != cosigner) {
            revert Emergency_BadCosignature(cosigner);
        }
        if (_cosignUsed[digest]) revert Emergency_CosignatureUsed(cosigner);
        _cosignUsed[digest] = true;
    }

    function _named(address[] calldata proxies, address who) private pure returns (bool) {
        for (uint256 i = 0; i < proxies.length; ++i) {
            if (proxies[i] == who) return true;
        }
        return false;
    }

    function _checkSealed(uint256 index, uint256 length) private pure {
        if (length == 0 || length > MAX_SEALED_BYTES) revert Emergency_SealedTooLarge(index, length);
    }
}
