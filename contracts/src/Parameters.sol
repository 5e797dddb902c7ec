// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Membership} from "./Membership.sol";

/// @title Parameters
/// @notice Consortium parameters, set by admins. A round copies what it needs when each phase
/// starts, so changing parameters never moves a deadline that is already running.
abstract contract Parameters is Membership {
    /// @notice Everything an admin can tune. Windows are durations in seconds.
    struct Params {
        uint16 minPeers; // fewest participants (and contributors) a round may proceed with; >= 3
        uint32 joinWindow; // from opening to the join deadline
        uint32 keyWindow; // for the key steward to publish the round key's hash
        uint32 commitWindow; // from the round key to the commit deadline
        uint32 mergeWindow; // from the commit deadline to the merge deadline
        uint32 ackWindow; // from the aggregate to the acknowledgement deadline
        uint16 ckksParamsId; // named CKKS parameter set, 1..MAX_CKKS_PARAMS_ID (docs/crypto.md)
        bytes32 taskId; // which task/model the consortium trains
        bytes32 initialModelHash; // base model of the first round
        bool metricsEnabled; // members report test metrics for each finalized model
    }

    /// @notice Fewest participants a round may have: with two contributors, each key holder could
    /// subtract its own update from the sum and read the other's (docs/threat-model.md).
    uint16 public constant MIN_PEERS_FLOOR = 3;
    /// @notice Shortest and longest window, in seconds (5 s; 1 day).
    uint32 public constant MIN_WINDOW = 5;
    uint32 public constant MAX_WINDOW = 86400;
    /// @notice Highest known CKKS parameter-set id (swarm.crypto.PARAMETER_SETS: ids 1..this).
    uint16 public constant MAX_CKKS_PARAMS_ID = 1;

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
        if (p.minPeers < MIN_PEERS_FLOOR) revert InvalidParameter("minPeers", p.minPeers);
        _checkWindow("joinWindow", p.joinWindow);
        _checkWindow("keyWindow", p.keyWindow);
        _checkWindow("commitWindow", p.commitWindow);
        _checkWindow("mergeWindow", p.mergeWindow);
        _checkWindow("ackWindow", p.ackWindow);
        if (p.ckksParamsId == 0 || p.ckksParamsId > MAX_CKKS_PARAMS_ID) {
            revert InvalidParameter("ckksParamsId", p.ckksParamsId);
        }
        _params = p;
        emit ParamsSet(p, msg.sender);
    }

    function _checkWindow(string memory name, uint32 seconds_) private pure {
        if (seconds_ < MIN_WINDOW || seconds_ > MAX_WINDOW) revert InvalidParameter(name, seconds_);
    }
}
