// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IConsortium, ISwarmLedger} from "./IConsortium.sol";

/// @title Consortium
/// @notice Who belongs to a swarm consortium, who administers it, and its parameters.
/// @dev Roles (OpenZeppelin AccessControlDefaultAdminRules):
///  - DEFAULT_ADMIN_ROLE: the consortium's owner, handed over in two steps (begin, then accept
///    after the delay set at deployment); it grants and revokes ADMIN_ROLE and binds the ledger.
///  - ADMIN_ROLE: admits and removes members, sets parameters.
/// Members are records, not a role: a member's record carries its secp256k1 public key (checked
/// to hash to its address, so peers derive each other's address from an authenticated libp2p
/// connection) and its X25519 encryption key, signed by the identity key (round keys are sealed
/// to it). Removed members keep their record (auditors need it) with `active` false.
/// Parameters are versioned: `setParams` appends a version; a round keeps the version it opened
/// with, so a change never moves a running round.
contract Consortium is IConsortium, AccessControlDefaultAdminRules {
    /// @notice A hospital admitted to the consortium.
    struct Member {
        bytes publicKey; // 64 bytes, uncompressed, without the 0x04 prefix
        bytes32 encryptionKey; // X25519 public key, signed by the identity key
        string peerId; // libp2p PeerID of the identity key
        string[] multiaddrs; // where its libp2p host listens
        string name; // display name
        uint64 addedAt;
        bool active;
    }

    /// @notice Admits/removes members and sets parameters.
    bytes32 public constant ADMIN_ROLE = keccak256("swarm.ADMIN_ROLE");
    /// @notice Domain tag of the encryption-key signature (see `encryptionKeyDigest`).
    bytes32 public constant ENCRYPTION_KEY_TAG = keccak256("swarm.v1.encryption-key");
    /// @notice Fewest participants a round may have: with two contributors, each key holder could
    /// subtract its own update from the sum and read the other's (docs/threat-model.md).
    uint16 public constant MIN_PEERS_FLOOR = 3;
    /// @notice Shortest and longest window, in seconds (5 s; 1 day).
    uint32 public constant MIN_WINDOW = 5;
    uint32 public constant MAX_WINDOW = 86400;
    /// @notice Highest known CKKS parameter-set id (swarm.crypto.PARAMETER_SETS: ids 1..this).
    uint16 public constant MAX_CKKS_PARAMS_ID = 2;
    /// @notice Longest sit-out a parameter version may impose.
    uint16 public constant MAX_SIT_OUT_ROUNDS = 1000;
    /// @notice Lowest nonzero masking threshold, percent: a strict majority of the participants.
    uint8 public constant MIN_MASK_THRESHOLD_PCT = 51;
    /// @notice dpDelta is in 1e-12 units: it must stay below this (delta < 1).
    uint64 public constant DP_DELTA_ONE = 1e12;
    /// @notice Most listen addresses a member may announce.
    uint256 public constant MAX_MULTIADDRS = 16;

    /// @notice The account is not an active member.
    error NotAMember(address account);
    /// @notice The account is already an active member.
    error MemberAlreadyExists(address account);
    /// @notice The public key hashes to `derived`, not to `account`.
    error PublicKeyMismatch(address account, address derived);
    /// @notice A public key must be 64 bytes (uncompressed, no prefix).
    error InvalidPublicKeyLength(uint256 length);
    /// @notice The encryption key's signature recovers to `recovered`, not to `account`.
    error EncryptionKeySignatureInvalid(address account, address recovered);
    /// @notice The zero address cannot be a member, an admin or the ledger.
    error InvalidAccount(address account);
    /// @notice A parameter is out of range; `value` is what was given.
    error InvalidParameter(string name, uint256 value);
    /// @notice No parameter version `version` exists; the newest is `newest`.
    error UnknownParamsVersion(uint256 version, uint256 newest);
    /// @notice The ledger is bound already (to `ledger`).
    error LedgerAlreadyBound(address ledger);
    /// @notice `ledger` reads another consortium (`itsConsortium`).
    error LedgerMismatch(address ledger, address itsConsortium);

    /// @notice A hospital was admitted, with everything its record holds.
    event MemberAdded(
        address indexed account,
        bytes publicKey,
        bytes32 encryptionKey,
        string peerId,
        string[] multiaddrs,
        string name,
        address indexed by
    );
    /// @notice A hospital was removed; it can no longer take part in rounds.
    event MemberRemoved(address indexed account, address indexed by);
    /// @notice A member announced new listen addresses for its libp2p host.
    event MemberAddressesUpdated(address indexed account, string[] multiaddrs);
    /// @notice `account`'s encryption key is now `key` (admission or rotation).
    event EncryptionKeySet(address indexed account, bytes32 key);
    /// @notice Parameter version `version` was set by `by`; the event carries all of it.
    event ParamsSet(uint256 indexed version, Params params, address indexed by);
    /// @notice The round core that this consortium notifies of removals.
    event LedgerBound(address indexed ledger, address indexed by);

    /// @notice The bound SwarmLedger (zero until `bindLedger`).
    address public ledger;
    /// @notice How many members are active.
    uint256 public activeMemberCount;

    mapping(address => Member) private _members;
    address[] private _everMembers;
    Params[] private _params;

    /// @param initialDelay seconds between beginning and accepting a handover of the default
    /// admin role (0 is fine on a development chain)
    /// @param initial the parameters of version 0
    constructor(uint48 initialDelay, Params memory initial)
        AccessControlDefaultAdminRules(initialDelay, msg.sender)
    {
        _grantRole(ADMIN_ROLE, msg.sender);
        _setParams(initial);
    }

    modifier onlyMember() {
        if (!_members[msg.sender].active) revert NotAMember(msg.sender);
        _;
    }

    // --- binding --------------------------------------------------------------------------

    /// @notice Bind the round core, once: it is told of every removal from then on.
    function bindLedger(address ledger_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (ledger != address(0)) revert LedgerAlreadyBound(ledger);
        if (ledger_ == address(0)) revert InvalidAccount(ledger_);
        address its = ISwarmLedger(ledger_).consortium();
        if (its != address(this)) revert LedgerMismatch(ledger_, its);
        ledger = ledger_;
        emit LedgerBound(ledger_, msg.sender);
    }

    // --- members --------------------------------------------------------------------------

    /// @notice Admit a hospital. Its public key must hash to its address, and its encryption key
    /// must carry the identity key's signature (see `encryptionKeyDigest`).
    /// @param account the hospital's Ethereum address
    /// @param publicKey its 64-byte uncompressed secp256k1 public key
    /// @param encryptionKey its X25519 public key (round keys are sealed to it)
    /// @param encryptionKeySig 65 bytes r||s||v (v 27 or 28) by `account` over the digest
    /// @param peerId its libp2p PeerID (derived from the same key; checked off chain)
    /// @param multiaddrs its libp2p listen addresses (at most MAX_MULTIADDRS)
    /// @param name a display name for people reading the ledger
    function addMember(
        address account,
        bytes calldata publicKey,
        bytes32 encryptionKey,
        bytes calldata encryptionKeySig,
        string calldata peerId,
        string[] calldata multiaddrs,
        string calldata name
    ) external onlyRole(ADMIN_ROLE) {
        if (account == address(0)) revert InvalidAccount(account);
        if (_members[account].active) revert MemberAlreadyExists(account);
        if (publicKey.length != 64) revert InvalidPublicKeyLength(publicKey.length);
        address derived = address(uint160(uint256(keccak256(publicKey))));
        if (derived != account) revert PublicKeyMismatch(account, derived);
        if (multiaddrs.length > MAX_MULTIADDRS) revert InvalidParameter("multiaddrs", multiaddrs.length);
        _checkEncryptionKey(account, encryptionKey, encryptionKeySig);

        Member storage m = _members[account];
        if (m.addedAt == 0) _everMembers.push(account);
        m.publicKey = publicKey;
        m.encryptionKey = encryptionKey;
        m.peerId = peerId;
        m.multiaddrs = multiaddrs;
        m.name = name;
        m.addedAt = uint64(block.timestamp);
        m.active = true;
        activeMemberCount += 1;
        emit MemberAdded(account, publicKey, encryptionKey, peerId, multiaddrs, name, msg.sender);
        emit EncryptionKeySet(account, encryptionKey);
    }

    /// @notice Remove a hospital. Its record stays readable; it can no longer act, and it leaves
    /// the running round (the bound ledger is told).
    function removeMember(address account) external onlyRole(ADMIN_ROLE) {
        if (!_members[account].active) revert NotAMember(account);
        _members[account].active = false;
        activeMemberCount -= 1;
        emit MemberRemoved(account, msg.sender);
        address l = ledger;
        if (l != address(0)) ISwarmLedger(l).memberRemoved(account);
    }

    /// @notice A member updates its own libp2p listen addresses.
    function updateMultiaddrs(string[] calldata multiaddrs) external onlyMember {
        if (multiaddrs.length > MAX_MULTIADDRS) revert InvalidParameter("multiaddrs", multiaddrs.length);
        _members[msg.sender].multiaddrs = multiaddrs;
        emit MemberAddressesUpdated(msg.sender, multiaddrs);
    }

    /// @notice A member rotates its encryption key (signed by its identity key, as at admission).
    function setEncryptionKey(bytes32 key, bytes calldata sig) external onlyMember {
        _checkEncryptionKey(msg.sender, key, sig);
        _members[msg.sender].encryptionKey = key;
        emit EncryptionKeySet(msg.sender, key);
    }

    // --- parameters -----------------------------------------------------------------------

    /// @notice Append a new parameter version; rounds opened from now on use it.
    function setParams(Params calldata p) external onlyRole(ADMIN_ROLE) {
        _setParams(p);
    }

    /// @notice The newest parameters.
    function params() external view returns (Params memory) {
        return _params[_params.length - 1];
    }

    /// @inheritdoc IConsortium
    function paramsVersion() external view returns (uint256) {
        return _params.length - 1;
    }

    /// @inheritdoc IConsortium
    function paramsAt(uint256 version) external view returns (Params memory) {
        if (version >= _params.length) revert UnknownParamsVersion(version, _params.length - 1);
        return _params[version];
    }

    /// @inheritdoc IConsortium
    function maxContributors(uint16 ckksParamsId) public pure returns (uint256) {
        // Sets 1 and 2 (docs/crypto.md; 2 is 1 with complex packing): 64 contributors before
        // the sum may overflow its precision.
        if (ckksParamsId == 1 || ckksParamsId == 2) return 64;
        return 0;
    }

    // --- views ----------------------------------------------------------------------------

    /// @notice Whether `account` is an active member.
    function isMember(address account) external view returns (bool) {
        return _members[account].active;
    }

    /// @notice The record of `account` (active or removed; all zero if never admitted).
    function getMember(address account) external view returns (Member memory) {
        return _members[account];
    }

    /// @notice Every address ever admitted, in order of first admission.
    function memberAddresses() external view returns (address[] memory) {
        return _everMembers;
    }

    /// @notice The digest an identity key signs to bind `encryptionKey` to `account`:
    /// keccak256(abi.encode(keccak256("swarm.v1.encryption-key"), account, encryptionKey)).
    function encryptionKeyDigest(address account, bytes32 encryptionKey) public pure returns (bytes32) {
        return keccak256(abi.encode(ENCRYPTION_KEY_TAG, account, encryptionKey));
    }

    // --- internals ------------------------------------------------------------------------

    /// @dev No role for the zero address (a typo must not grant anything).
    function _grantRole(bytes32 role, address account) internal override returns (bool) {
        if (account == address(0)) revert InvalidAccount(account);
        return super._grantRole(role, account);
    }

    function _checkEncryptionKey(address account, bytes32 key, bytes calldata sig) private pure {
        if (key == bytes32(0)) revert InvalidParameter("encryptionKey", 0);
        (address recovered, ECDSA.RecoverError err,) =
            ECDSA.tryRecoverCalldata(encryptionKeyDigest(account, key), sig);
        if (err != ECDSA.RecoverError.NoError || recovered != account) {
            revert EncryptionKeySignatureInvalid(account, recovered);
        }
    }

    function _setParams(Params memory p) private {
        if (p.minPeers < MIN_PEERS_FLOOR) revert InvalidParameter("minPeers", p.minPeers);
        uint256 cap = maxContributors(p.ckksParamsId);
        if (cap == 0) revert InvalidParameter("ckksParamsId", p.ckksParamsId);
        if (p.minPeers > cap) revert InvalidParameter("minPeers", p.minPeers);
        _checkWindow("joinWindow", p.joinWindow);
        _checkWindow("keyWindow", p.keyWindow);
        _checkWindow("commitWindow", p.commitWindow);
        _checkWindow("mergeWindow", p.mergeWindow);
        _checkWindow("ackWindow", p.ackWindow);
        if (p.taskId == bytes32(0)) revert InvalidParameter("taskId", 0);
        if (p.initialModelHash == bytes32(0)) revert InvalidParameter("initialModelHash", 0);
        if (p.maxMissedCommits > 0 && (p.sitOutRounds == 0 || p.sitOutRounds > MAX_SIT_OUT_ROUNDS)) {
            revert InvalidParameter("sitOutRounds", p.sitOutRounds);
        }
        if (p.maskThresholdPct != 0 && (p.maskThresholdPct < MIN_MASK_THRESHOLD_PCT || p.maskThresholdPct > 100)) {
            revert InvalidParameter("maskThresholdPct", p.maskThresholdPct);
        }
        if (p.epsilonBudget > 0) {
            if (p.dpDelta == 0 || p.dpDelta >= DP_DELTA_ONE) revert InvalidParameter("dpDelta", p.dpDelta);
            if (p.dpNoiseMultiplier == 0) revert InvalidParameter("dpNoiseMultiplier", 0);
            if (p.dpClipNorm == 0) revert InvalidParameter("dpClipNorm", 0);
        }
        _params.push(p);
        emit ParamsSet(_params.length - 1, p, msg.sender);
    }

    function _checkWindow(string memory name, uint32 seconds_) private pure {
        if (seconds_ < MIN_WINDOW || seconds_ > MAX_WINDOW) revert InvalidParameter(name, seconds_);
    }
}
