// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title Membership
/// @notice Admins and hospital members of a swarm consortium.
/// @dev A member's record carries its secp256k1 public key, checked on chain to hash to its
/// address, so that peers can derive each other's Ethereum address from an authenticated libp2p
/// connection and seal round keys to it. Removed members keep their record (auditors need it)
/// with `active` false.
abstract contract Membership {
    /// @notice A hospital admitted to the consortium.
    struct Member {
        bytes publicKey; // 64 bytes, uncompressed, without the 0x04 prefix
        string peerId; // libp2p PeerID of the same key
        string[] multiaddrs; // where its libp2p host listens
        string name; // display name
        uint64 addedAt;
        bool active;
    }

    /// @notice The caller is not an admin.
    error NotAdmin(address account);
    /// @notice The account is not an active member.
    error NotAMember(address account);
    /// @notice The account is already an active member.
    error MemberAlreadyExists(address account);
    /// @notice The account is already an admin.
    error AdminAlreadyExists(address account);
    /// @notice The public key hashes to `derived`, not to `account`.
    error PublicKeyMismatch(address account, address derived);
    /// @notice A public key must be 64 bytes (uncompressed, no prefix).
    error InvalidPublicKeyLength(uint256 length);
    /// @notice The last admin cannot be removed: the consortium would be unmanageable.
    error LastAdmin(address account);

    /// @notice `account` was granted the admin role by `by`.
    event AdminAdded(address indexed account, address indexed by);
    /// @notice `account` lost the admin role, removed by `by`.
    event AdminRemoved(address indexed account, address indexed by);
    /// @notice A hospital was admitted, with everything its record holds.
    event MemberAdded(
        address indexed account,
        bytes publicKey,
        string peerId,
        string[] multiaddrs,
        string name,
        address indexed by
    );
    /// @notice A hospital was removed; it can no longer take part in rounds.
    event MemberRemoved(address indexed account, address indexed by);
    /// @notice A member announced new listen addresses for its libp2p host.
    event MemberAddressesUpdated(address indexed account, string[] multiaddrs);

    mapping(address => bool) public isAdmin;
    uint256 public adminCount;

    mapping(address => Member) private _members;
    address[] private _everMembers;
    uint256 public activeMemberCount;

    constructor() {
        _addAdmin(msg.sender);
    }

    modifier onlyAdmin() {
        if (!isAdmin[msg.sender]) revert NotAdmin(msg.sender);
        _;
    }

    modifier onlyMember() {
        if (!_members[msg.sender].active) revert NotAMember(msg.sender);
        _;
    }

    /// @notice Grant the admin role.
    function addAdmin(address account) external onlyAdmin {
        if (isAdmin[account]) revert AdminAlreadyExists(account);
        _addAdmin(account);
    }

    /// @notice Revoke the admin role; the last admin cannot be removed.
    function removeAdmin(address account) external onlyAdmin {
        if (!isAdmin[account]) revert NotAdmin(account);
        if (adminCount == 1) revert LastAdmin(account);
        isAdmin[account] = false;
        adminCount -= 1;
        emit AdminRemoved(account, msg.sender);
    }

    /// @notice Admit a hospital. Its public key must hash to its address.
    /// @param account the hospital's Ethereum address
    /// @param publicKey its 64-byte uncompressed secp256k1 public key
    /// @param peerId its libp2p PeerID (derived from the same key; checked off chain)
    /// @param multiaddrs its libp2p listen addresses
    /// @param name a display name for people reading the ledger
    function addMember(
        address account,
        bytes calldata publicKey,
        string calldata peerId,
        string[] calldata multiaddrs,
        string calldata name
    ) external onlyAdmin {
        if (_members[account].active) revert MemberAlreadyExists(account);
        if (publicKey.length != 64) revert InvalidPublicKeyLength(publicKey.length);
        address derived = address(uint160(uint256(keccak256(publicKey))));
        if (derived != account) revert PublicKeyMismatch(account, derived);

        Member storage m = _members[account];
        if (m.addedAt == 0) _everMembers.push(account);
        m.publicKey = publicKey;
        m.peerId = peerId;
        m.multiaddrs = multiaddrs;
        m.name = name;
        m.addedAt = uint64(block.timestamp);
        m.active = true;
        activeMemberCount += 1;
        emit MemberAdded(account, publicKey, peerId, multiaddrs, name, msg.sender);
    }

    /// @notice Remove a hospital. Its record stays readable; it can no longer act.
    function removeMember(address account) external onlyAdmin {
        if (!_members[account].active) revert NotAMember(account);
        _members[account].active = false;
        activeMemberCount -= 1;
        emit MemberRemoved(account, msg.sender);
    }

    /// @notice A member updates its own libp2p listen addresses.
    function updateMultiaddrs(string[] calldata multiaddrs) external onlyMember {
        _members[msg.sender].multiaddrs = multiaddrs;
        emit MemberAddressesUpdated(msg.sender, multiaddrs);
    }

    /// @notice Whether `account` is an active member.
    function isMember(address account) public view returns (bool) {
        return _members[account].active;
    }

    /// @notice The record of `account` (active or removed).
    function getMember(address account) external view returns (Member memory) {
        return _members[account];
    }

    /// @notice Every address ever admitted, in order of first admission.
    function memberAddresses() external view returns (address[] memory) {
        return _everMembers;
    }

    function _addAdmin(address account) private {
        isAdmin[account] = true;
        adminCount += 1;
        emit AdminAdded(account, msg.sender);
    }
}
