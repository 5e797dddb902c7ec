// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Membership} from "./Membership.sol";

/// @title Parameters
/// @notice Consortium parameters, set by admins. A round copies what it needs when each phase
/// starts, so changing parameters never moves a deadline that is already running.
abstract contract Parameters is Membership {
    /// @notice Everything an admin can tune. Windows are durations in seconds.
    struct Params {
        uint16 minPeers; // fewest participants (and contributors) a round may proceed with; >= 2
        uint32 joinWindow; // from opening to the join deadline
        uint32 keyWindow; // for the key steward to publish the round key's hash
        uint32 commitWindow; // from the round key to the commit deadline
        uint32 mergeWindow; // from the commit deadline to the merge deadline
        uint32 ackWindow; // from the aggregate to the acknowledgement deadline
        uint16 ckksParamsId; // named CKKS parameter set (see docs/crypto.md)
        bytes32 taskId; // which task/model the consortium trains
        bytes32 initialModelHash; // base model of the first round
        bool metricsEnabled; // members report test metrics for each finalized model
    }

    /// @notice A parameter is out of range; `value` is what was given.
    error InvalidParameter(string name, uint256 value);

    /// @notice The parameters were changed by `by`; the event carries all of them.
    event ParamsSet(Params params, address indexed by);

    Params internal _params;

    constructor(Params memory initial) {
        _setParams(initial);
    }

    /// @notice Replace the consortium parameters.
    function setParams(Params calldata p) external onlyAdmin {
        _setParams(p);
    }

    /// @notice The current parameters.
    function params() external view returns (Params memory) {
        return _params;
    }

    function _setParams(Params memory p) private {
        // Two distinct roles (merge peer, key steward) need two participants.
        if (p.minPeers < 2) revert InvalidParameter("minPeers", p.minPeers);
        if (p.joinWindow == 0) revert InvalidParameter("joinWindow", 0);
        if (p.keyWindow == 0) revert InvalidParameter("keyWindow", 0);
        if (p.commitWindow == 0) revert InvalidParameter("commitWindow", 0);
        if (p.mergeWindow == 0) revert InvalidParameter("mergeWindow", 0);
        if (p.ackWindow == 0) revert InvalidParameter("ackWindow", 0);
        if (p.ckksParamsId == 0) revert InvalidParameter("ckksParamsId", 0);
        _params = p;
        emit ParamsSet(p, msg.sender);
    }
}
