// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title RoleDraw
/// @notice The role order of a round's participants, from a seed no member can steer.
/// @dev The seed comes from the hash of the block that closed the join window (`drawBlock`):
/// when a member joins or closes the window, that block does not exist yet, so no timing of
/// its transactions can choose its role. Only the producer of `drawBlock` could
/// bias it (docs/threat-model.md).
/// The order is a forward Fisher-Yates shuffle of participant indexes: position k depends on
/// the swaps at i <= k only, so `indexAt` computes one position without the rest.
/// swarm/protocol.py (round_seed, role_order) mirrors both functions.
library RoleDraw {
    /// @notice Domain tag of the role-draw seed.
    bytes32 internal constant TAG = keccak256("swarm.v1.role-draw");

    /// @notice keccak256(abi.encode(TAG, drawBlockHash, ledger, round)).
    function seed(bytes32 drawBlockHash, address ledger, uint256 round) internal pure returns (bytes32) {
        return keccak256(abi.encode(TAG, drawBlockHash, ledger, round));
    }

    /// @notice The participant index at position `k` of the order of `n` participants.
    function indexAt(bytes32 seed_, uint256 n, uint256 k) internal pure returns (uint256) {
        if (n < 2) return k;
        uint256[] memory idx = _identity(n);
        uint256 last = k < n - 1 ? k : n - 2;
        for (uint256 i = 0; i <= last; i++) {
            _swap(idx, seed_, n, i);
        }
        return idx[k];
    }

    /// @notice The whole order: position -> participant index.
    function order(bytes32 seed_, uint256 n) internal pure returns (uint256[] memory idx) {
        idx = _identity(n);
        for (uint256 i = 0; i + 1 < n; i++) {
            _swap(idx, seed_, n, i);
        }
    }

    function _identity(uint256 n) private pure returns (uint256[] memory idx) {
        idx = new uint256[](n);
        for (uint256 i = 0; i < n; i++) {
            idx[i] = i;
        }
    }

    function _swap(uint256[] memory idx, bytes32 seed_, uint256 n, uint256 i) private pure {
        uint256 j = i + uint256(keccak256(abi.encode(seed_, i))) % (n - i);
        (idx[i], idx[j]) = (idx[j], idx[i]);
    }
}
