// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IConsortium
/// @notice What the round core (SwarmLedger) reads from the consortium: membership and the
/// versioned parameters. Declared apart so that both contracts share the `Params` type.
interface IConsortium {
    /// @notice Everything an admin can tune. Windows are durations in seconds.
    struct Params {
        uint16 minPeers; // fewest participants (and contributors) a round may proceed with; >= 3
        uint32 joinWindow; // from opening to the join deadline
        uint32 keyWindow; // for the key steward to publish the round key's hash
        uint32 commitWindow; // from the round key to the commit deadline
        uint32 mergeWindow; // from the commit deadline to the merge deadline
        uint32 ackWindow; // from the aggregate to the acknowledgement deadline
        uint16 ckksParamsId; // named CKKS parameter set (docs/crypto.md)
        bytes32 taskId; // which task/model the consortium trains
        bytes32 initialModelHash; // base model of the first round
        bool metricsEnabled; // members report test metrics for each finalized model
        uint16 maxMissedCommits; // consecutive missed commits before a member sits out; 0 = never
        uint16 sitOutRounds; // how many rounds such a member sits out (1..1000 if the above > 0)
        uint8 maskThresholdPct; // secure-aggregation share threshold, percent of participants; 0 = no masking, else 51..100
        uint64 epsilonBudget; // each member's differential-privacy budget, micro-epsilon; 0 = DP off
        uint64 dpDelta; // DP delta in 1e-12 units (0 < delta < 1e12 when the budget is > 0)
        uint32 dpNoiseMultiplier; // DP-SGD noise multiplier, thousandths (> 0 when the budget is > 0)
        uint32 dpClipNorm; // DP-SGD per-sample clipping norm, thousandths (> 0 when the budget is > 0)
    }

    /// @notice Whether `account` is an active member.
    function isMember(address account) external view returns (bool);

    /// @notice How many members are active.
    function activeMemberCount() external view returns (uint256);

    /// @notice The newest parameter version's index (0 is the deployment's).
    function paramsVersion() external view returns (uint256);

    /// @notice The parameters of `version`.
    function paramsAt(uint256 version) external view returns (Params memory);

    /// @notice Most contributors an aggregate may have under CKKS parameter set `ckksParamsId`
    /// (0 if the set is unknown).
    function maxContributors(uint16 ckksParamsId) external pure returns (uint256);
}

/// @title ISwarmLedger
/// @notice What the consortium calls on the round core it is bound to.
interface ISwarmLedger {
    /// @notice The consortium this ledger reads membership and parameters from.
    function consortium() external view returns (address);

    /// @notice `account` was removed from the consortium: it leaves the running round.
    function memberRemoved(address account) external;
}
