// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Parameters} from "./Parameters.sol";

/// @title SwarmLedger
/// @notice The consortium's ledger: membership, parameters and the merge rounds of swarm
/// learning. It holds hashes, sample counts and roles; never data, never weights.
/// @dev One round, as docs/protocol.md describes it:
///  1. `openRound` with the hash of the last finalized model;
///  2. members `join` until all active members joined, or the join deadline passed with at least
///     `minPeers` joined (`closeJoin`); the closing fixes a pseudo-random order of the
///     participants: order[0] merges, order[1] is the key steward, the rest are fallbacks;
///  3. the key steward posts the round key's hash (`postRoundKey`);
///  4. participants commit sha256(ciphertext) and their sample count (`commitUpdate`);
///  5. the merge peer submits the aggregate's hash and its contributors (`submitAggregate`);
///  6. contributors acknowledge the new model's hash; a strict majority of the key-holding
///     contributors finalizes it (`acknowledge`).
/// A steward or merge peer that misses its deadline is replaced by the next in the order. A merge
/// peer's replacement starts a new `attempt`: a new round key (the new merge peer holds the old
/// one's secret) and fresh commitments. The round's state is derived from its deadlines and
/// block.timestamp in `roundState`; a lapse that was only derived is recorded, with an event,
/// when the next round opens.
contract SwarmLedger is Parameters {
    /// @notice Derived state of a round.
    enum RoundState {
        None,
        Joining,
        Keying,
        Committing,
        Merging,
        Acknowledging,
        Finalized,
        Lapsed
    }

    /// @notice Why a round ended without a model.
    enum LapseReason {
        None,
        TooFewJoined,
        TooFewCommitted,
        NoStewardLeft,
        NoMergePeerLeft,
        NoAgreement
    }

    /// @notice One participant's commitment to its encrypted update.
    struct Commitment {
        bytes32 updateHash; // sha256 of the ciphertext blob
        uint64 sampleCount; // n_i, the weight of its update
    }

    struct Round {
        bytes32 baseModel;
        bytes32 seed;
        bytes32 keyHash;
        bytes32 aggregateHash;
        bytes32 finalModel;
        uint64 joinDeadline;
        uint64 keyDeadline;
        uint64 commitDeadline;
        uint64 mergeDeadline;
        uint64 ackDeadline;
        uint64 totalSamples;
        uint32 attempt;
        uint16 minPeers;
        uint16 nextIdx; // next fallback's position in the order
        uint16 commitCount;
        uint16 ackEligible;
        bool closed;
        LapseReason recordedLapse;
        address mergePeer;
        address keySteward;
        // The order is derived from `seed` and `participants` (see `_order`), and the
        // contributors from `_contributed`: storing either would cost ~22k gas per participant.
        address[] participants;
    }

    /// @notice Everything about a round in one read (for clients and auditors).
    struct RoundView {
        uint256 id;
        RoundState state;
        LapseReason lapseReason;
        bytes32 baseModel;
        bytes32 seed;
        bytes32 keyHash;
        bytes32 aggregateHash;
        bytes32 finalModel;
        uint32 attempt;
        uint16 minPeers;
        uint16 commitCount;
        uint16 ackEligible;
        address mergePeer;
        address keySteward;
        address[] participants;
        address[] order;
        address[] contributors;
        uint64 totalSamples;
        uint64 joinDeadline;
        uint64 keyDeadline;
        uint64 commitDeadline;
        uint64 mergeDeadline;
        uint64 ackDeadline;
    }

    /// @notice What a peer reads once per poll, all of it at one block (see `peerView`).
    struct PeerView {
        uint256 blockNumber;
        uint256 blockTime; // block.timestamp: what the deadlines are compared with
        uint256 currentRound;
        uint256 lastFinalizedRound;
        uint256 finalizedRounds;
        bytes32 latestModel;
        Params params;
        RoundView round;
        // Aligned with round.participants: each one's commitment in the current attempt and the
        // model hash it acknowledged (zero where none).
        bytes32[] commitHashes;
        uint64[] commitSamples;
        bytes32[] acks;
    }

    /// @notice The previous round is neither finalized nor lapsed.
    error RoundNotOver(uint256 round, RoundState state);
    /// @notice A round must start from the last finalized model.
    error WrongBaseModel(bytes32 expected, bytes32 given);
    /// @notice The call names round `given`, but the current round is `current`.
    error WrongRound(uint256 current, uint256 given);
    /// @notice The round is in `actual`, the call needs `expected`.
    error WrongRoundState(uint256 round, RoundState actual, RoundState expected);
    /// @notice Too late: the deadline was `deadline`, the block's time is `timestamp`.
    error DeadlinePassed(uint256 round, uint64 deadline, uint256 timestamp);
    /// @notice Too early: this call needs `deadline` to have passed first.
    error DeadlineNotPassed(uint256 round, uint64 deadline, uint256 timestamp);
    /// @notice The join window cannot close with fewer than `minPeers` participants.
    error TooFewJoined(uint256 round, uint256 joined, uint256 minPeers);
    error AlreadyJoined(uint256 round, address account);
    error AlreadyCommitted(uint256 round, uint32 attempt, address account);
    error AlreadyAcknowledged(uint256 round, address account);
    error MetricsAlreadyReported(uint256 round, address account);
    /// @notice The account did not join this round.
    error NotParticipant(uint256 round, address account);
    /// @notice Only the aggregate's key-holding contributors acknowledge.
    error NotContributor(uint256 round, address account);
    error NotMergePeer(uint256 round, address account, address mergePeer);
    error NotKeySteward(uint256 round, address account, address keySteward);
    /// @notice A contributor that did not commit in this attempt, or a list not strictly ascending.
    error InvalidContributor(uint256 round, address account);
    error TooFewContributors(uint256 round, uint256 count, uint256 minPeers);
    /// @notice The consortium does not collect metrics.
    error MetricsDisabled();

    event RoundOpened(
        uint256 indexed round, bytes32 baseModel, uint16 minPeers, uint64 joinDeadline, address indexed by
    );
    event Joined(uint256 indexed round, address indexed account);
    /// @notice The join window closed; `order` fixes the roles: order[0] merges, order[1] keys.
    event JoinClosed(
        uint256 indexed round,
        bytes32 seed,
        address[] order,
        address mergePeer,
        address keySteward,
        uint64 keyDeadline,
        address indexed by
    );
    event RoundKeyPosted(
        uint256 indexed round,
        uint32 attempt,
        address indexed keySteward,
        bytes32 keyHash,
        uint64 commitDeadline,
        uint64 mergeDeadline
    );
    event KeyStewardReplaced(
        uint256 indexed round,
        uint32 attempt,
        address indexed previous,
        address indexed next,
        uint64 keyDeadline,
        address by
    );
    /// @notice The merge peer missed its deadline; `attempt` starts over from the round key.
    event MergePeerReplaced(
        uint256 indexed round,
        uint32 attempt,
        address indexed previous,
        address indexed next,
        uint64 keyDeadline,
        address by
    );
    event UpdateCommitted(
        uint256 indexed round, uint32 attempt, address indexed account, bytes32 updateHash, uint64 sampleCount
    );
    event AggregateSubmitted(
        uint256 indexed round,
        uint32 attempt,
        address indexed mergePeer,
        bytes32 aggregateHash,
        address[] contributors,
        uint64 totalSamples,
        uint64 ackDeadline
    );
    event Acknowledged(uint256 indexed round, address indexed account, bytes32 modelHash);
    event RoundFinalized(uint256 indexed round, bytes32 modelHash, uint256 acks, uint256 eligible);
    event RoundLapsed(uint256 indexed round, LapseReason reason);
    event MetricsReported(
        uint256 indexed round,
        address indexed account,
        bytes32 modelHash,
        uint32 testSamples,
        uint32 accuracyPpm,
        uint32 aucPpm,
        uint64 lossPpm
    );

    /// @notice The newest round opened (0 before the first).
    uint256 public currentRound;
    /// @notice The newest finalized round (0 before the first).
    uint128 public lastFinalizedRound;
    /// @notice How many rounds were finalized (lapsed ones do not count). Shares a storage slot
    /// with `lastFinalizedRound`: finalizing writes both for the price of one.
    uint128 public finalizedRounds;

    mapping(uint256 => Round) private _rounds;
    mapping(uint256 => mapping(address => bool)) private _joined;
    mapping(uint256 => mapping(uint32 => mapping(address => Commitment))) private _commitments;
    mapping(uint256 => mapping(address => bool)) private _contributed;
    mapping(uint256 => mapping(address => bytes32)) private _acks;
    mapping(uint256 => mapping(bytes32 => uint256)) private _ackCounts;
    mapping(uint256 => mapping(address => bool)) private _metricsReported;

    constructor(Params memory initial) Parameters(initial) {}

    // --- the round protocol ------------------------------------------------------------------

    /// @notice Open the next round from the last finalized model. The previous round must be
    /// finalized or lapsed; a lapse that was only derived is recorded here.
    /// @param baseModel must equal `latestModel()`: a peer with a stale model is told so
    function openRound(bytes32 baseModel) external onlyMember returns (uint256 round) {
        uint256 prev = currentRound;
        if (prev != 0) {
            (RoundState s, LapseReason why) = _status(prev);
            if (s != RoundState.Finalized && s != RoundState.Lapsed) revert RoundNotOver(prev, s);
            if (s == RoundState.Lapsed && _rounds[prev].recordedLapse == LapseReason.None) {
                _rounds[prev].recordedLapse = why;
                emit RoundLapsed(prev, why);
            }
        }
        bytes32 expected = latestModel();
        if (baseModel != expected) revert WrongBaseModel(expected, baseModel);

        round = prev + 1;
        currentRound = round;
        Round storage r = _rounds[round];
        r.baseModel = baseModel;
        r.minPeers = _params.minPeers;
        r.joinDeadline = uint64(block.timestamp) + _params.joinWindow;
        emit RoundOpened(round, baseModel, r.minPeers, r.joinDeadline, msg.sender);
    }

    /// @notice Join the current round. The window closes by itself once every active member joined.
    function join(uint256 round) external onlyMember {
        Round storage r = _current(round);
        if (r.closed) revert WrongRoundState(round, roundState(round), RoundState.Joining);
        if (block.timestamp > r.joinDeadline) revert DeadlinePassed(round, r.joinDeadline, block.timestamp);
        if (_joined[round][msg.sender]) revert AlreadyJoined(round, msg.sender);
        _joined[round][msg.sender] = true;
        r.participants.push(msg.sender);
        emit Joined(round, msg.sender);
        if (r.participants.length >= activeMemberCount && r.participants.length >= r.minPeers) {
            _closeJoin(round, r);
        }
    }

    /// @notice Close the join window after its deadline with at least `minPeers` participants.
    function closeJoin(uint256 round) external onlyMember {
        Round storage r = _current(round);
        if (r.closed) revert WrongRoundState(round, roundState(round), RoundState.Joining);
        if (block.timestamp <= r.joinDeadline) revert DeadlineNotPassed(round, r.joinDeadline, block.timestamp);
        if (r.participants.length < r.minPeers) revert TooFewJoined(round, r.participants.length, r.minPeers);
        _closeJoin(round, r);
    }

    /// @notice The key steward publishes the hash of this attempt's public CKKS context.
    function postRoundKey(uint256 round, bytes32 keyHash) external onlyMember {
        Round storage r = _current(round);
        _requireState(round, RoundState.Keying);
        address steward = r.keySteward;
        if (msg.sender != steward) revert NotKeySteward(round, msg.sender, steward);
        if (block.timestamp > r.keyDeadline) revert DeadlinePassed(round, r.keyDeadline, block.timestamp);
        if (keyHash == bytes32(0)) revert InvalidParameter("keyHash", 0);
        r.keyHash = keyHash;
        r.commitDeadline = uint64(block.timestamp) + _params.commitWindow;
        r.mergeDeadline = r.commitDeadline + _params.mergeWindow;
        emit RoundKeyPosted(round, r.attempt, msg.sender, keyHash, r.commitDeadline, r.mergeDeadline);
    }

    /// @notice Replace a key steward that missed its deadline with the next in the order.
    function replaceKeySteward(uint256 round) external onlyMember {
        Round storage r = _current(round);
        _requireParticipant(round);
        _requireState(round, RoundState.Keying);
        if (block.timestamp <= r.keyDeadline) revert DeadlineNotPassed(round, r.keyDeadline, block.timestamp);
        // _status reports Lapsed once no fallback is left, so one is left here.
        address previous = r.keySteward;
        r.keySteward = _order(r)[r.nextIdx];
        r.nextIdx += 1;
        r.keyDeadline = uint64(block.timestamp) + _params.keyWindow;
        emit KeyStewardReplaced(round, r.attempt, previous, r.keySteward, r.keyDeadline, msg.sender);
    }

    /// @notice Commit sha256(ciphertext) and the sample count of your update, before the deadline.
    function commitUpdate(uint256 round, bytes32 updateHash, uint64 sampleCount) external onlyMember {
        Round storage r = _current(round);
        _requireParticipant(round);
        if (r.keyHash == bytes32(0) || r.aggregateHash != bytes32(0) || r.recordedLapse != LapseReason.None) {
            revert WrongRoundState(round, roundState(round), RoundState.Committing);
        }
        if (block.timestamp > r.commitDeadline) revert DeadlinePassed(round, r.commitDeadline, block.timestamp);
        if (updateHash == bytes32(0)) revert InvalidParameter("updateHash", 0);
        if (sampleCount == 0) revert InvalidParameter("sampleCount", 0);
        Commitment storage c = _commitments[round][r.attempt][msg.sender];
        if (c.updateHash != bytes32(0)) revert AlreadyCommitted(round, r.attempt, msg.sender);
        c.updateHash = updateHash;
        c.sampleCount = sampleCount;
        r.commitCount += 1;
        emit UpdateCommitted(round, r.attempt, msg.sender, updateHash, sampleCount);
    }

    /// @notice The merge peer submits the aggregate's hash and its contributors, sorted ascending.
    /// Each contributor must have committed in this attempt; their sample counts are summed here.
    function submitAggregate(uint256 round, bytes32 aggregateHash, address[] calldata contributors)
        external
        onlyMember
    {
        Round storage r = _current(round);
        RoundState s = roundState(round);
        if (s != RoundState.Committing && s != RoundState.Merging) {
            revert WrongRoundState(round, s, RoundState.Merging);
        }
        address mergePeer = r.mergePeer;
        if (msg.sender != mergePeer) revert NotMergePeer(round, msg.sender, mergePeer);
        if (block.timestamp > r.mergeDeadline) revert DeadlinePassed(round, r.mergeDeadline, block.timestamp);
        if (aggregateHash == bytes32(0)) revert InvalidParameter("aggregateHash", 0);
        if (contributors.length < r.minPeers) revert TooFewContributors(round, contributors.length, r.minPeers);

        uint64 total;
        address previous;
        for (uint256 i = 0; i < contributors.length; i++) {
            address c = contributors[i];
            uint64 n = _commitments[round][r.attempt][c].sampleCount;
            if (c <= previous || n == 0) revert InvalidContributor(round, c);
            total += n;
            _contributed[round][c] = true;
            previous = c;
        }
        r.totalSamples = total;
        r.aggregateHash = aggregateHash;
        r.ackDeadline = uint64(block.timestamp) + _params.ackWindow;
        // The merge peer never holds the round's secret key, so it cannot decrypt and vote.
        r.ackEligible = uint16(contributors.length - (_contributed[round][mergePeer] ? 1 : 0));
        emit AggregateSubmitted(round, r.attempt, msg.sender, aggregateHash, contributors, total, r.ackDeadline);
    }

    /// @notice Replace a merge peer that missed its deadline. Starts a new attempt: the key steward
    /// issues a new round key (the new merge peer holds the old secret key) and everyone commits
    /// again.
    function replaceMergePeer(uint256 round) external onlyMember {
        Round storage r = _current(round);
        _requireParticipant(round);
        _requireState(round, RoundState.Merging);
        if (block.timestamp <= r.mergeDeadline) revert DeadlineNotPassed(round, r.mergeDeadline, block.timestamp);
        address previous = r.mergePeer;
        r.mergePeer = _order(r)[r.nextIdx];
        r.nextIdx += 1;
        r.attempt += 1;
        r.keyHash = bytes32(0);
        r.commitCount = 0;
        r.commitDeadline = 0;
        r.mergeDeadline = 0;
        r.keyDeadline = uint64(block.timestamp) + _params.keyWindow;
        emit MergePeerReplaced(round, r.attempt, previous, r.mergePeer, r.keyDeadline, msg.sender);
    }

    /// @notice A key-holding contributor acknowledges the model it obtained by applying the
    /// decrypted aggregate. A strict majority on one hash finalizes the round; later
    /// acknowledgements are still recorded until the deadline, so dissent stays visible.
    function acknowledge(uint256 round, bytes32 modelHash) external onlyMember {
        Round storage r = _rounds[round];
        RoundState s = roundState(round);
        bool open = s == RoundState.Acknowledging
            || (s == RoundState.Finalized && block.timestamp <= r.ackDeadline);
        if (!open) revert WrongRoundState(round, s, RoundState.Acknowledging);
        if (!_contributed[round][msg.sender] || msg.sender == r.mergePeer) {
            revert NotContributor(round, msg.sender);
        }
        if (_acks[round][msg.sender] != bytes32(0)) revert AlreadyAcknowledged(round, msg.sender);
        if (modelHash == bytes32(0)) revert InvalidParameter("modelHash", 0);
        _acks[round][msg.sender] = modelHash;
        uint256 count = ++_ackCounts[round][modelHash];
        emit Acknowledged(round, msg.sender, modelHash);
        if (r.finalModel == bytes32(0) && count * 2 > r.ackEligible) {
            r.finalModel = modelHash;
            lastFinalizedRound = uint128(round);
            finalizedRounds += 1;
            emit RoundFinalized(round, modelHash, count, r.ackEligible);
        }
    }

    /// @notice Report test metrics of a finalized round's model on your own data (opt-in per
    /// consortium). Values in parts per million.
    function reportMetrics(uint256 round, uint32 testSamples, uint32 accuracyPpm, uint32 aucPpm, uint64 lossPpm)
        external
        onlyMember
    {
        if (!_params.metricsEnabled) revert MetricsDisabled();
        _requireState(round, RoundState.Finalized);
        if (_metricsReported[round][msg.sender]) revert MetricsAlreadyReported(round, msg.sender);
        _metricsReported[round][msg.sender] = true;
        emit MetricsReported(
            round, msg.sender, _rounds[round].finalModel, testSamples, accuracyPpm, aucPpm, lossPpm
        );
    }

    // --- views -------------------------------------------------------------------------------

    /// @notice The model the next round must start from.
    function latestModel() public view returns (bytes32) {
        uint256 last = lastFinalizedRound;
        return last == 0 ? _params.initialModelHash : _rounds[last].finalModel;
    }

    /// @notice The derived state of `round` at the latest block.
    function roundState(uint256 round) public view returns (RoundState s) {
        (s,) = _status(round);
    }

    /// @notice Why `round` lapsed (None unless its state is Lapsed).
    function lapseReason(uint256 round) external view returns (LapseReason why) {
        (, why) = _status(round);
    }

    /// @notice Everything about `round` in one call.
    function getRound(uint256 round) external view returns (RoundView memory) {
        return _roundView(round);
    }

    /// @notice Everything a peer needs to decide its next step, in one call and so at one block:
    /// the block, the ledger's head (current and last finalized round, how many rounds were
    /// finalized, the latest model), the parameters, `round` (0: the current round) and, for
    /// each of its participants, its commitment in the current attempt and its acknowledgement.
    function peerView(uint256 round) external view returns (PeerView memory v) {
        if (round == 0) round = currentRound;
        v.blockNumber = block.number;
        v.blockTime = block.timestamp;
        v.currentRound = currentRound;
        v.lastFinalizedRound = lastFinalizedRound;
        v.finalizedRounds = finalizedRounds;
        v.latestModel = latestModel();
        v.params = _params;
        v.round = _roundView(round);
        address[] memory participants = v.round.participants;
        uint32 attempt = v.round.attempt;
        uint256 n = participants.length;
        v.commitHashes = new bytes32[](n);
        v.commitSamples = new uint64[](n);
        v.acks = new bytes32[](n);
        for (uint256 i = 0; i < n; i++) {
            Commitment storage c = _commitments[round][attempt][participants[i]];
            v.commitHashes[i] = c.updateHash;
            v.commitSamples[i] = c.sampleCount;
            v.acks[i] = _acks[round][participants[i]];
        }
    }

    /// @notice Whether `account` joined `round`.
    function hasJoined(uint256 round, address account) external view returns (bool) {
        return _joined[round][account];
    }

    /// @notice `account`'s commitment in `round`'s `attempt` (zero if none).
    function getCommitment(uint256 round, uint32 attempt, address account)
        external
        view
        returns (Commitment memory)
    {
        return _commitments[round][attempt][account];
    }

    /// @notice The model hash `account` acknowledged in `round` (zero if none).
    function getAck(uint256 round, address account) external view returns (bytes32) {
        return _acks[round][account];
    }

    /// @notice How many acknowledgements `modelHash` received in `round`.
    function ackCount(uint256 round, bytes32 modelHash) external view returns (uint256) {
        return _ackCounts[round][modelHash];
    }

    // --- internals ---------------------------------------------------------------------------

    function _status(uint256 round) internal view returns (RoundState, LapseReason) {
        if (round == 0 || round > currentRound) return (RoundState.None, LapseReason.None);
        Round storage r = _rounds[round];
        if (r.finalModel != bytes32(0)) return (RoundState.Finalized, LapseReason.None);
        if (r.recordedLapse != LapseReason.None) return (RoundState.Lapsed, r.recordedLapse);
        uint256 t = block.timestamp;
        if (!r.closed) {
            if (t <= r.joinDeadline || r.participants.length >= r.minPeers) {
                return (RoundState.Joining, LapseReason.None);
            }
            return (RoundState.Lapsed, LapseReason.TooFewJoined);
        }
        bool fallbackLeft = r.nextIdx < r.participants.length;
        if (r.keyHash == bytes32(0)) {
            if (t > r.keyDeadline && !fallbackLeft) return (RoundState.Lapsed, LapseReason.NoStewardLeft);
            return (RoundState.Keying, LapseReason.None);
        }
        if (r.aggregateHash == bytes32(0)) {
            if (t <= r.commitDeadline && r.commitCount < r.participants.length) {
                return (RoundState.Committing, LapseReason.None);
            }
            if (r.commitCount < r.minPeers) return (RoundState.Lapsed, LapseReason.TooFewCommitted);
            if (t > r.mergeDeadline && !fallbackLeft) return (RoundState.Lapsed, LapseReason.NoMergePeerLeft);
            return (RoundState.Merging, LapseReason.None);
        }
        if (t <= r.ackDeadline) return (RoundState.Acknowledging, LapseReason.None);
        return (RoundState.Lapsed, LapseReason.NoAgreement);
    }

    /// @dev `getRound` and `peerView` share it.
    function _roundView(uint256 round) private view returns (RoundView memory v) {
        Round storage r = _rounds[round];
        v.id = round;
        (v.state, v.lapseReason) = _status(round);
        v.baseModel = r.baseModel;
        v.seed = r.seed;
        v.keyHash = r.keyHash;
        v.aggregateHash = r.aggregateHash;
        v.finalModel = r.finalModel;
        v.attempt = r.attempt;
        v.minPeers = r.minPeers;
        v.commitCount = r.commitCount;
        v.ackEligible = r.ackEligible;
        v.mergePeer = r.mergePeer;
        v.keySteward = r.keySteward;
        v.participants = r.participants;
        if (r.closed) v.order = _order(r);
        if (r.aggregateHash != bytes32(0)) v.contributors = _contributors(round, r);
        v.totalSamples = r.totalSamples;
        v.joinDeadline = r.joinDeadline;
        v.keyDeadline = r.keyDeadline;
        v.commitDeadline = r.commitDeadline;
        v.mergeDeadline = r.mergeDeadline;
        v.ackDeadline = r.ackDeadline;
    }

    function _current(uint256 round) private view returns (Round storage) {
        if (round != currentRound) revert WrongRound(currentRound, round);
        return _rounds[round];
    }

    function _requireState(uint256 round, RoundState expected) private view {
        RoundState s = roundState(round);
        if (s != expected) revert WrongRoundState(round, s, expected);
    }

    function _requireParticipant(uint256 round) private view {
        if (!_joined[round][msg.sender]) revert NotParticipant(round, msg.sender);
    }

    function _closeJoin(uint256 round, Round storage r) private {
        // The seed comes from the previous block's hash: unpredictable to members when they
        // join, though a block producer could bias it (see docs/threat-model.md).
        r.seed = keccak256(abi.encode(blockhash(block.number - 1), address(this), round, r.participants));
        r.closed = true;
        address[] memory order = _order(r);
        r.mergePeer = order[0];
        r.keySteward = order[1];
        r.nextIdx = 2;
        r.keyDeadline = uint64(block.timestamp) + _params.keyWindow;
        emit JoinClosed(round, r.seed, order, order[0], order[1], r.keyDeadline, msg.sender);
    }

    /// @dev The participants in role order: a Fisher-Yates shuffle driven by the round's seed.
    /// Anyone can recompute it from the JoinClosed event's seed and the Joined events.
    function _order(Round storage r) private view returns (address[] memory order) {
        order = r.participants;
        bytes32 seed = r.seed;
        for (uint256 i = order.length - 1; i > 0; i--) {
            uint256 j = uint256(keccak256(abi.encode(seed, i))) % (i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
    }

    function _contributors(uint256 round, Round storage r) private view returns (address[] memory list) {
        address[] memory all = r.participants;
        uint256 count;
        list = new address[](all.length);
        for (uint256 i = 0; i < all.length; i++) {
            if (_contributed[round][all[i]]) list[count++] = all[i];
        }
        assembly {
            mstore(list, count) // shrink to the contributors found
        }
        _sortAscending(list);
    }

    function _sortAscending(address[] memory list) private pure {
        for (uint256 i = 1; i < list.length; i++) {
            address key = list[i];
            uint256 j = i;
            while (j > 0 && list[j - 1] > key) {
                list[j] = list[j - 1];
                j--;
            }
            list[j] = key;
        }
    }
}
