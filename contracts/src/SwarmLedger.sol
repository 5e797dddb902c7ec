// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IConsortium, ISwarmLedger} from "./IConsortium.sol";
import {RoleDraw} from "./RoleDraw.sol";

/// @notice Errors declared apart because an event of the same name exists in SwarmLedger.
library LedgerErrors {
    /// @notice `account` missed too many commits in a row: it sits out until `untilRound`.
    error SittingOut(address account, uint256 untilRound);
}

/// @title SwarmLedger
/// @notice The round core of a swarm consortium: the merge rounds of swarm learning. It holds
/// hashes, sample counts and roles; never data, never weights. Membership and parameters live
/// in the Consortium contract it reads.
/// @dev One round, as docs/protocol.md describes it:
///  1. `openRound` with the hash of the last finalized model; the round snapshots the newest
///     parameter version and uses it throughout;
///  2. members `join` until all active members (less those sitting out) joined, or the join
///     deadline passed with at least `minPeers` joined (`closeJoin`). Closing fixes `drawBlock`,
///     the next block: its hash, unknown to everyone at the close, seeds the role order
///     (RoleDraw); the round is Drawing until that block exists;
///  3. the key steward (order[1]) posts the round key's hash (`postRoundKey`);
///  4. participants commit sha256(ciphertext) and their sample count (`commitUpdate`), with the
///     hash of their mask-share manifest (where the round masks) and their privacy spending
///     (where the round has an epsilon budget: `epsilonSpent` never decreases nor exceeds it);
///  5. the merge peer (order[0]) submits the aggregate's hash and its contributors, a bitmap over
///     participant indexes (`submitAggregate`);
///  6. contributors acknowledge the new model's hash; a strict majority of the key-holding
///     contributors (at least MIN_ACKS) finalizes it (`acknowledge`).
/// A steward or merge peer that misses its deadline, or leaves the consortium, is replaced by the
/// next in the order. A merge peer's replacement starts a new `attempt`: a new round key (the
/// new merge peer holds the old one's secret) and fresh commitments. The round's state is
/// derived in `roundState`; a lapse that was only derived is recorded, with an event, when the
/// next round opens.
contract SwarmLedger is ISwarmLedger {
    /// @notice Derived state of a round. The order is part of the interface (bit i of an
    /// `expectedMask` is state i).
    enum RoundState {
        None,
        Joining,
        Drawing,
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
        NoAgreement,
        DrawExpired
    }

    /// @notice One participant's commitment to its encrypted update.
    struct Commitment {
        bytes32 updateHash; // sha256 of the ciphertext blob
        uint64 sampleCount; // n_i, the weight of its update
    }

    /// @dev The first slot is what every call's state check reads (the header: deadlines,
    /// counts, flags); the hashes are read only where they are used.
    struct Round {
        // slot 0: the header
        uint32 joinDeadline; // 0: no such round
        uint32 keyDeadline;
        uint32 commitDeadline;
        uint32 mergeDeadline;
        uint32 ackDeadline;
        uint40 drawBlock; // 0 while the join window is open
        uint8 count; // participants
        uint8 leftCount; // participants removed from the consortium during the round
        uint8 minPeers;
        uint8 cap; // most participants (the CKKS set's maxContributors)
        uint8 attempt;
        uint8 sitters; // active members sitting this round out or out of privacy budget
        uint8 flags; // F_FINALIZED | F_KEY | F_AGGREGATE | F_SEED | F_LAPSED | F_MASK | F_DP
        // slot 1: roles and accounting
        uint64 totalSamples;
        uint64 metricsBits; // reported metrics
        uint32 paramsVersion;
        uint8 mergePos; // position of the merge peer in the order
        // Stored XOR their initial values (1 and 2), so that the closing join writes nothing
        // here: read them through _stewardPos and _nextPos.
        uint8 stewardPosX; // position of the key steward in the order, xor 1
        uint8 nextPosX; // next fallback's position, xor 2
        uint8 mergeIdx; // the merge peer's participant index, stored with the aggregate
        LapseReason recordedLapse;
        // slot 2: bitmaps over participant indexes
        uint64 commitBits; // committed in the current attempt
        uint64 contributorBits; // in the aggregate
        uint64 ackBits; // acknowledged
        uint64 leftBits; // removed from the consortium while the round ran
        // hashes
        bytes32 baseModel;
        bytes32 seed; // stored by the first call that needs the roles (_fixSeed)
        bytes32 keyHash;
        bytes32 aggregateHash;
        bytes32 finalModel;
    }

    uint8 private constant F_FINALIZED = 1;
    uint8 private constant F_KEY = 2; // the current attempt's key is posted
    uint8 private constant F_AGGREGATE = 4;
    uint8 private constant F_SEED = 8; // the seed is stored
    uint8 private constant F_LAPSED = 16; // the lapse is recorded (recordedLapse)
    uint8 private constant F_MASK = 32; // the round's maskThresholdPct > 0: commits carry a sharesHash
    uint8 private constant F_DP = 64; // the round's epsilonBudget > 0: commits carry epsilons

    /// @dev The parameters a round needs after opening, one slot per parameter version.
    struct Snapshot {
        uint32 joinWindow;
        uint32 keyWindow;
        uint32 commitWindow;
        uint32 mergeWindow;
        uint32 ackWindow;
        uint16 minPeers;
        uint16 maxMissedCommits;
        uint16 sitOutRounds;
        uint8 cap;
        bool metricsEnabled;
        bool stored;
        uint8 maskThresholdPct;
        uint64 epsilonBudget; // micro-epsilon
    }

    /// @dev A member's record of missed commits.
    struct Standing {
        uint16 missed; // consecutive missed commits
        uint64 sittingOutFrom; // first round it sits out
        uint64 sittingOutUntil; // last round it sits out (0: none)
        uint64 epsilonSpent; // cumulative privacy spending, micro-epsilon (kept across removals)
    }

    /// @notice Everything about a round in one read (for clients and auditors).
    struct RoundView {
        uint256 id;
        RoundState state;
        LapseReason lapseReason;
        bytes32 baseModel;
        bytes32 seed; // zero while Drawing (and once the draw expired unstored)
        bytes32 keyHash;
        bytes32 aggregateHash;
        bytes32 finalModel;
        uint32 attempt;
        uint16 minPeers;
        uint16 commitCount;
        uint16 ackEligible;
        address mergePeer; // zero until the roles are drawn
        address keySteward; // zero until the roles are drawn
        address[] participants; // by index (join order)
        address[] order; // role order (empty until the roles are drawn)
        address[] contributors; // ascending by address
        uint64 totalSamples;
        uint64 joinDeadline;
        uint64 keyDeadline;
        uint64 commitDeadline;
        uint64 mergeDeadline;
        uint64 ackDeadline;
        uint64 drawBlock;
        uint32 paramsVersion;
        bool seedStored;
        uint64 commitBits;
        uint64 contributorBits;
        uint64 ackBits;
        uint64 leftBits;
    }

    /// @notice What a peer reads once per poll, all of it at one block (see `peerView`).
    struct PeerView {
        uint256 blockNumber;
        uint256 blockTime; // block.timestamp: what the deadlines are compared with
        uint256 currentRound;
        uint256 lastFinalizedRound;
        uint256 finalizedRounds;
        bytes32 latestModel;
        uint256 paramsVersion; // the newest
        IConsortium.Params params; // the newest (the next round opens with them)
        IConsortium.Params roundParams; // the round's snapshot (its version: round.paramsVersion)
        RoundView round;
        // Aligned with round.participants: commitment in the current attempt, acknowledged model
        // hash (zero where none), and whether it left the consortium during the round.
        bytes32[] commitHashes;
        uint64[] commitSamples;
        bytes32[] acks;
        bool[] left;
        bytes32[] sharesHashes; // mask-share manifest hashes of the current attempt's commitments
    }

    /// @notice Blocks between the join close and the block whose hash seeds the roles: 0, the
    /// closing block itself. Its hash does not exist when the closing transaction is sent, and
    /// the roles are known as soon as the block is (a read at the pending block; no wait for
    /// another block, which on a chain that mines on demand could take seconds).
    uint256 public constant DRAW_DELAY = 0;
    /// @notice Fewest acknowledgements that finalize a round.
    uint256 public constant MIN_ACKS = 2;
    /// @notice Largest sample count one commitment may claim (2^48 - 1).
    uint64 public constant MAX_SAMPLES = type(uint48).max;
    /// @notice Largest accuracy/AUC, in parts per million.
    uint32 public constant MAX_PPM = 1_000_000;

    /// @notice The caller is not an active member of the consortium.
    error NotAMember(address account);
    /// @notice Only the consortium calls this.
    error NotConsortium(address account);
    /// @notice `round` is in state `found`; the call needs one of `expectedMask` (bit i: state i).
    error WrongRoundState(uint256 round, RoundState found, uint256 expectedMask);
    /// @notice A round must start from the last finalized model.
    error WrongBaseModel(bytes32 expected, bytes32 given);
    /// @notice Too late: the deadline was `deadline`, the block's time is `timestamp`.
    error DeadlinePassed(uint256 round, uint64 deadline, uint256 timestamp);
    /// @notice Too early: this call needs `deadline` to have passed first.
    error DeadlineNotPassed(uint256 round, uint64 deadline, uint256 timestamp);
    error AlreadyJoined(uint256 round, address account);
    error AlreadyCommitted(uint256 round, uint32 attempt, address account);
    error AlreadyAcknowledged(uint256 round, address account);
    error MetricsAlreadyReported(uint256 round, address account);
    /// @notice The round's roles were drawn and stored already.
    error RolesAlreadyDrawn(uint256 round);
    /// @notice The account did not join this round (or left it).
    error NotParticipant(uint256 round, address account);
    /// @notice Only the aggregate's key-holding contributors acknowledge.
    error NotContributor(uint256 round, address account);
    error NotMergePeer(uint256 round, address account, address mergePeer);
    error NotKeySteward(uint256 round, address account, address keySteward);
    /// @notice Contributors must be participants that committed in this attempt.
    error InvalidContributors(uint256 round, uint256 contributorBits, uint256 commitBits);
    error TooFewContributors(uint256 round, uint256 count, uint256 minPeers);
    /// @notice The round has `cap` participants, the most its CKKS parameter set allows.
    error RoundFull(uint256 round, uint256 cap);
    /// @notice Metrics are reported for the newest finalized round only (`lastFinalized`).
    error NotLatestFinalized(uint256 round, uint256 lastFinalized);
    /// @notice The round's parameters do not collect metrics.
    error MetricsDisabled(uint256 round);
    /// @notice A value is out of range; `value` is what was given.
    error InvalidParameter(string name, uint256 value);
    /// @notice `sharesHash` must be nonzero exactly when the round masks (`maskThresholdPct` > 0).
    error InvalidSharesHash(uint256 round, uint256 maskThresholdPct, bytes32 sharesHash);
    /// @notice `account`'s cumulative epsilon would go over the round's budget (micro-epsilon).
    error PrivacyBudgetExceeded(address account, uint256 totalEpsilon, uint256 budget);
    /// @notice A cumulative epsilon below the one recorded (`previous`) for `account`.
    error EpsilonDecreased(address account, uint256 totalEpsilon, uint256 previous);
    /// @notice `account` spent its whole privacy budget: it can no longer join rounds.
    error PrivacyBudgetExhausted(address account, uint256 spent, uint256 budget);

    event RoundOpened(
        uint256 indexed round,
        bytes32 baseModel,
        uint256 paramsVersion,
        uint16 minPeers,
        uint64 joinDeadline,
        address indexed by
    );
    /// @notice `account` joined `round` as participant `index`.
    event Joined(uint256 indexed round, address indexed account, uint256 index);
    /// @notice The join window closed; the roles come from the hash of block `drawBlock`.
    event JoinClosed(uint256 indexed round, uint64 drawBlock, uint64 keyDeadline, address indexed by);
    /// @notice The seed was stored: order[0] merges, order[1] keys.
    event RolesDrawn(uint256 indexed round, bytes32 seed, address mergePeer, address keySteward);
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
    /// @notice The merge peer missed its deadline or left; `attempt` starts over from the key.
    event MergePeerReplaced(
        uint256 indexed round,
        uint32 attempt,
        address indexed previous,
        address indexed next,
        uint64 keyDeadline,
        address by
    );
    /// @notice `sharesHash`: hash of the committer's mask-share manifest (zero where the round
    /// does not mask).
    event UpdateCommitted(
        uint256 indexed round,
        uint32 attempt,
        address indexed account,
        bytes32 updateHash,
        uint64 sampleCount,
        bytes32 sharesHash
    );
    /// @notice `account` trained `round`'s update spending `roundEpsilon`; its cumulative spending
    /// is now `totalEpsilon` (both micro-epsilon).
    event PrivacySpent(uint256 indexed round, address indexed account, uint64 roundEpsilon, uint64 totalEpsilon);
    /// @notice `contributorBits`: bit i is participant i (see the Joined events' indexes).
    event AggregateSubmitted(
        uint256 indexed round,
        uint32 attempt,
        address indexed mergePeer,
        bytes32 aggregateHash,
        uint256 contributorBits,
        uint64 totalSamples,
        uint64 ackDeadline
    );
    /// @notice `account` did not commit in the round's final attempt; `consecutiveMisses` in a row.
    event CommitMissed(uint256 indexed round, address indexed account, uint256 consecutiveMisses);
    /// @notice `account` may not join rounds `fromRound`..`untilRound`.
    event SittingOut(address indexed account, uint256 fromRound, uint256 untilRound);
    /// @notice `account` was removed from the consortium while `round` ran.
    event ParticipantLeft(uint256 indexed round, address indexed account);
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

    /// @notice The consortium: membership and parameters.
    IConsortium public immutable consortiumContract;
    /// @notice The newest round opened (0 before the first).
    uint256 public currentRound;
    /// @notice The newest finalized round (0 before the first).
    uint128 public lastFinalizedRound;
    /// @notice How many rounds were finalized (lapsed ones do not count).
    uint128 public finalizedRounds;

    mapping(uint256 => Round) private _rounds;
    mapping(uint256 => mapping(uint256 => address)) private _participants;
    mapping(uint256 => mapping(address => uint256)) private _index; // index + 1
    mapping(uint256 => bytes32) private _commitHash; // _key(round, attempt, index)
    mapping(uint256 => uint64[64]) private _samples; // _key(round, attempt, 0) -> by index
    mapping(uint256 => bytes32) private _acks; // _key(round, 0, index)
    mapping(uint256 => mapping(bytes32 => uint256)) private _ackCounts;
    mapping(uint256 => Snapshot) private _snapshots; // by parameter version
    mapping(address => Standing) private _standing;
    address[] private _sitters; // active members sitting out the current round
    mapping(uint256 => bytes32) private _sharesHash; // _key(round, attempt, index)
    address[] private _spenders; // every account that ever recorded privacy spending

    /// @param consortium_ the Consortium contract (bind this ledger there with `bindLedger`)
    constructor(address consortium_) {
        consortiumContract = IConsortium(consortium_);
    }

    modifier onlyMember() {
        if (!consortiumContract.isMember(msg.sender)) revert NotAMember(msg.sender);
        _;
    }

    // --- the round protocol ------------------------------------------------------------------

    /// @notice Open the next round from the last finalized model, with the newest parameters.
    /// The previous round must be finalized or lapsed; a lapse that was only derived is
    /// recorded here (with the missed commits of a TooFewCommitted lapse).
    /// @param baseModel must equal `latestModel()`: a peer with a stale model is told so
    function openRound(bytes32 baseModel) external onlyMember returns (uint256 round) {
        uint256 prev = currentRound;
        if (prev != 0) {
            (RoundState s, LapseReason why) = _status(prev);
            if (s != RoundState.Finalized && s != RoundState.Lapsed) {
                revert WrongRoundState(prev, s, _bit(RoundState.Finalized) | _bit(RoundState.Lapsed));
            }
            Round storage p = _rounds[prev];
            if (s == RoundState.Lapsed && p.flags & F_LAPSED == 0) {
                p.flags |= F_LAPSED;
                p.recordedLapse = why;
                emit RoundLapsed(prev, why);
                if (why == LapseReason.TooFewCommitted) _recordMisses(prev, p);
            }
        }
        bytes32 expected = latestModel();
        if (baseModel != expected) revert WrongBaseModel(expected, baseModel);

        round = prev + 1;
        currentRound = round;
        _pruneSitters(round);
        uint256 version = consortiumContract.paramsVersion();
        Snapshot memory sn = _snapshot(version);
        Round storage r = _rounds[round];
        r.baseModel = baseModel;
        r.paramsVersion = uint32(version);
        r.minPeers = uint8(sn.minPeers);
        r.cap = sn.cap;
        uint256 sitters = _sitters.length;
        if (sn.maskThresholdPct != 0) r.flags = F_MASK;
        if (sn.epsilonBudget != 0) {
            r.flags |= F_DP;
            sitters += _exhaustedCount(round, sn.epsilonBudget);
        }
        r.sitters = uint8(sitters);
        r.joinDeadline = uint32(block.timestamp + sn.joinWindow);
        emit RoundOpened(round, baseModel, version, sn.minPeers, r.joinDeadline, msg.sender);
    }

    /// @notice Join the current round. The window closes by itself once every active member
    /// (less those sitting out or out of privacy budget) joined. A member whose `epsilonSpent`
    /// reached the round's budget cannot join.
    function join(uint256 round) external onlyMember {
        _expect(round, _bit(RoundState.Joining));
        Round storage r = _rounds[round];
        if (block.timestamp > r.joinDeadline) revert DeadlinePassed(round, r.joinDeadline, block.timestamp);
        Standing storage st = _standing[msg.sender];
        uint64 until = st.sittingOutUntil;
        if (until >= round) revert LedgerErrors.SittingOut(msg.sender, until);
        if (r.flags & F_DP != 0) {
            uint64 budget = _snapshots[r.paramsVersion].epsilonBudget;
            if (st.epsilonSpent >= budget) revert PrivacyBudgetExhausted(msg.sender, st.epsilonSpent, budget);
        }
        if (_index[round][msg.sender] != 0) revert AlreadyJoined(round, msg.sender);
        uint256 n = r.count;
        if (n >= r.cap) revert RoundFull(round, r.cap);
        _participants[round][n] = msg.sender;
        _index[round][msg.sender] = n + 1;
        r.count = uint8(n + 1);
        emit Joined(round, msg.sender, n);
        if (_everyoneJoined(r)) _closeJoin(round, r);
    }

    /// @notice Close the join window: after its deadline (with at least `minPeers` joined; with
    /// fewer the round is Lapsed), or before it once every active member not sitting out joined.
    function closeJoin(uint256 round) external onlyMember {
        _expect(round, _bit(RoundState.Joining));
        Round storage r = _rounds[round];
        if (block.timestamp <= r.joinDeadline && !_everyoneJoined(r)) {
            revert DeadlineNotPassed(round, r.joinDeadline, block.timestamp);
        }
        _closeJoin(round, r);
    }

    /// @notice Store the round's seed (and so its roles) before the draw block's hash leaves
    /// the 256-block horizon of `blockhash`. Any call that needs the roles does it too.
    function drawRoles(uint256 round) external onlyMember {
        _expect(round, _roleStates());
        Round storage r = _rounds[round];
        if (r.flags & F_SEED != 0) revert RolesAlreadyDrawn(round);
        _fixSeed(round, r);
    }

    /// @notice The key steward publishes the hash of this attempt's public CKKS context.
    function postRoundKey(uint256 round, bytes32 keyHash) external onlyMember {
        _expect(round, _bit(RoundState.Keying));
        Round storage r = _rounds[round];
        bytes32 seed = _fixSeed(round, r);
        address steward = _participantAt(round, r, seed, _stewardPos(r));
        if (msg.sender != steward) revert NotKeySteward(round, msg.sender, steward);
        if (block.timestamp > r.keyDeadline) revert DeadlinePassed(round, r.keyDeadline, block.timestamp);
        if (keyHash == bytes32(0)) revert InvalidParameter("keyHash", 0);
        Snapshot storage sn = _snapshots[r.paramsVersion];
        r.keyHash = keyHash;
        uint32 commitDeadline = uint32(block.timestamp + sn.commitWindow);
        r.commitDeadline = commitDeadline;
        r.mergeDeadline = commitDeadline + sn.mergeWindow;
        r.flags |= F_KEY;
        emit RoundKeyPosted(round, r.attempt, msg.sender, keyHash, commitDeadline, r.mergeDeadline);
    }

    /// @notice Replace a key steward that missed its deadline (or left) with the next in the order.
    function replaceKeySteward(uint256 round) external onlyMember {
        _expect(round, _bit(RoundState.Keying));
        Round storage r = _rounds[round];
        _participantIndex(round, r);
        bytes32 seed = _fixSeed(round, r);
        uint256 n = r.count;
        uint256 prevIdx = RoleDraw.indexAt(seed, n, _stewardPos(r));
        if (!_hasLeft(r, prevIdx) && block.timestamp <= r.keyDeadline) {
            revert DeadlineNotPassed(round, r.keyDeadline, block.timestamp);
        }
        // _status reports Lapsed(NoStewardLeft) when no fallback is left: one is left here.
        uint256 pos = _nextFallback(r, seed, n);
        r.stewardPosX = uint8(pos ^ 1);
        r.nextPosX = uint8((pos + 1) ^ 2);
        r.keyDeadline = uint32(block.timestamp + _snapshots[r.paramsVersion].keyWindow);
        emit KeyStewardReplaced(
            round,
            r.attempt,
            _participants[round][prevIdx],
            _participantAt(round, r, seed, pos),
            r.keyDeadline,
            msg.sender
        );
    }

    /// @notice Commit sha256(ciphertext) and the sample count of your update, before the deadline.
    /// @param sharesHash the hash of your mask-share manifest: nonzero exactly when the round's
    /// `maskThresholdPct` > 0 (docs/protocol.md)
    /// @param roundEpsilon the privacy this round's training spent, micro-epsilon
    /// @param totalEpsilon your cumulative privacy spending with this round, micro-epsilon: where the
    /// round's `epsilonBudget` > 0 it must be > 0, at least `epsilonSpent(you)` and at most the
    /// budget, and is recorded; where the budget is 0 both epsilons must be 0
    function commitUpdate(
        uint256 round,
        bytes32 updateHash,
        uint64 sampleCount,
        bytes32 sharesHash,
        uint64 roundEpsilon,
        uint64 totalEpsilon
    ) external onlyMember {
        _expect(round, _bit(RoundState.Committing));
        Round storage r = _rounds[round];
        uint256 i = _participantIndex(round, r);
        if (updateHash == bytes32(0)) revert InvalidParameter("updateHash", 0);
        if (sampleCount == 0 || sampleCount > MAX_SAMPLES) revert InvalidParameter("sampleCount", sampleCount);
        uint256 flags = r.flags;
        if ((sharesHash != bytes32(0)) != (flags & F_MASK != 0)) {
            revert InvalidSharesHash(round, _snapshots[r.paramsVersion].maskThresholdPct, sharesHash);
        }
        uint64 bit = _b(i);
        uint32 attempt = r.attempt;
        if (r.commitBits & bit != 0) revert AlreadyCommitted(round, attempt, msg.sender);
        Standing storage st = _standing[msg.sender];
        if (flags & F_DP != 0) {
            uint64 budget = _snapshots[r.paramsVersion].epsilonBudget;
            uint64 previous = st.epsilonSpent;
            if (totalEpsilon == 0) revert InvalidParameter("totalEpsilon", 0);
            if (totalEpsilon < previous) revert EpsilonDecreased(msg.sender, totalEpsilon, previous);
            if (totalEpsilon > budget) revert PrivacyBudgetExceeded(msg.sender, totalEpsilon, budget);
            if (previous == 0) _spenders.push(msg.sender);
            st.epsilonSpent = totalEpsilon;
            emit PrivacySpent(round, msg.sender, roundEpsilon, totalEpsilon);
        } else if (roundEpsilon != 0 || totalEpsilon != 0) {
            revert InvalidParameter(roundEpsilon != 0 ? "roundEpsilon" : "totalEpsilon", roundEpsilon != 0 ? roundEpsilon : totalEpsilon);
        }
        r.commitBits |= bit;
        uint256 key = _key(round, attempt, i);
        _commitHash[key] = updateHash;
        if (sharesHash != bytes32(0)) _sharesHash[key] = sharesHash;
        _samples[_key(round, attempt, 0)][i] = sampleCount;
        if (st.missed != 0) st.missed = 0;
        emit UpdateCommitted(round, attempt, msg.sender, updateHash, sampleCount, sharesHash);
    }

    /// @notice The merge peer submits the aggregate's hash and its contributors: bit i of
    /// `contributorBits` is participant i, and each must have committed in this attempt.
    /// Their sample counts are summed here. Participants that did not commit are recorded
    /// (CommitMissed; SittingOut at the round's maxMissedCommits).
    function submitAggregate(uint256 round, bytes32 aggregateHash, uint256 contributorBits)
        external
        onlyMember
    {
        _expect(round, _bit(RoundState.Merging));
        Round storage r = _rounds[round];
        uint256 mergeIdx = RoleDraw.indexAt(_fixSeed(round, r), r.count, r.mergePos);
        address mergePeer = _participants[round][mergeIdx];
        if (msg.sender != mergePeer) revert NotMergePeer(round, msg.sender, mergePeer);
        if (block.timestamp > r.mergeDeadline) revert DeadlinePassed(round, r.mergeDeadline, block.timestamp);
        if (aggregateHash == bytes32(0)) revert InvalidParameter("aggregateHash", 0);
        uint64 commits = r.commitBits;
        if (contributorBits & ~uint256(commits) != 0) {
            revert InvalidContributors(round, contributorBits, commits);
        }
        uint256 count = _popcount(contributorBits);
        if (count < r.minPeers) revert TooFewContributors(round, count, r.minPeers);

        uint32 attempt = r.attempt;
        uint64[64] storage samples = _samples[_key(round, attempt, 0)];
        uint64 total;
        for (uint256 i = 0; i < r.count; i++) {
            if (contributorBits & (uint256(1) << i) != 0) total += samples[i];
        }
        uint32 ackDeadline = uint32(block.timestamp + _snapshots[r.paramsVersion].ackWindow);
        r.contributorBits = uint64(contributorBits);
        r.aggregateHash = aggregateHash;
        r.totalSamples = total;
        r.mergeIdx = uint8(mergeIdx);
        r.ackDeadline = ackDeadline;
        r.flags |= F_AGGREGATE;
        emit AggregateSubmitted(round, attempt, msg.sender, aggregateHash, contributorBits, total, ackDeadline);
        _recordMisses(round, r);
    }

    /// @notice Replace a merge peer that missed its deadline (or left at any time before the
    /// aggregate). Starts a new attempt: the key steward issues a new round key (the new merge
    /// peer holds the old secret key) and everyone commits again.
    function replaceMergePeer(uint256 round) external onlyMember {
        _expect(
            round, _bit(RoundState.Keying) | _bit(RoundState.Committing) | _bit(RoundState.Merging)
        );
        Round storage r = _rounds[round];
        _participantIndex(round, r);
        bytes32 seed = _fixSeed(round, r);
        uint256 n = r.count;
        uint256 prevIdx = RoleDraw.indexAt(seed, n, r.mergePos);
        if (!_hasLeft(r, prevIdx)) {
            (RoundState s,) = _status(round);
            if (s != RoundState.Merging) revert WrongRoundState(round, s, _bit(RoundState.Merging));
            if (block.timestamp <= r.mergeDeadline) {
                revert DeadlineNotPassed(round, r.mergeDeadline, block.timestamp);
            }
        }
        uint256 pos = _nextFallback(r, seed, n);
        r.mergePos = uint8(pos);
        r.nextPosX = uint8((pos + 1) ^ 2);
        r.attempt += 1;
        r.keyHash = bytes32(0);
        r.flags &= ~F_KEY;
        r.commitBits = 0;
        r.commitDeadline = 0;
        r.mergeDeadline = 0;
        r.keyDeadline = uint32(block.timestamp + _snapshots[r.paramsVersion].keyWindow);
        emit MergePeerReplaced(
            round,
            r.attempt,
            _participants[round][prevIdx],
            _participantAt(round, r, seed, pos),
            r.keyDeadline,
            msg.sender
        );
    }

    /// @notice A key-holding contributor acknowledges the model it obtained by applying the
    /// decrypted aggregate. A strict majority of the eligible contributors (and at least
    /// MIN_ACKS) on one hash finalizes the round; later acknowledgements are still recorded
    /// until the deadline, so dissent stays visible.
    function acknowledge(uint256 round, bytes32 modelHash) external onlyMember {
        _expect(round, _bit(RoundState.Acknowledging) | _bit(RoundState.Finalized));
        Round storage r = _rounds[round];
        if (block.timestamp > r.ackDeadline) revert DeadlinePassed(round, r.ackDeadline, block.timestamp);
        uint256 idx = _index[round][msg.sender];
        uint256 mergeIdx = r.mergeIdx;
        uint64 bit = idx == 0 ? 0 : _b(idx - 1);
        if (r.contributorBits & bit == 0 || idx - 1 == mergeIdx || r.leftBits & bit != 0) {
            revert NotContributor(round, msg.sender);
        }
        if (r.ackBits & bit != 0) revert AlreadyAcknowledged(round, msg.sender);
        if (modelHash == bytes32(0)) revert InvalidParameter("modelHash", 0);
        r.ackBits |= bit;
        _acks[_key(round, 0, idx - 1)] = modelHash;
        uint256 count = ++_ackCounts[round][modelHash];
        emit Acknowledged(round, msg.sender, modelHash);
        if (r.flags & F_FINALIZED == 0 && count >= MIN_ACKS) {
            uint256 eligible = _ackEligible(r, mergeIdx);
            if (count * 2 > eligible) _finalize(round, r, modelHash, count, eligible);
        }
    }

    /// @notice A participant reports test metrics of the newest finalized model on its own data
    /// (where the round's parameters collect them). Values in parts per million.
    function reportMetrics(uint256 round, uint32 testSamples, uint32 accuracyPpm, uint32 aucPpm, uint64 lossPpm)
        external
        onlyMember
    {
        _expect(round, _bit(RoundState.Finalized));
        uint256 last = lastFinalizedRound;
        if (round != last) revert NotLatestFinalized(round, last);
        Round storage r = _rounds[round];
        if (!_snapshots[r.paramsVersion].metricsEnabled) revert MetricsDisabled(round);
        uint256 i = _participantIndex(round, r);
        if (testSamples == 0) revert InvalidParameter("testSamples", 0);
        if (accuracyPpm > MAX_PPM) revert InvalidParameter("accuracyPpm", accuracyPpm);
        if (aucPpm > MAX_PPM) revert InvalidParameter("aucPpm", aucPpm);
        uint64 bit = _b(i);
        if (r.metricsBits & bit != 0) revert MetricsAlreadyReported(round, msg.sender);
        r.metricsBits |= bit;
        emit MetricsReported(round, msg.sender, r.finalModel, testSamples, accuracyPpm, aucPpm, lossPpm);
    }

    /// @inheritdoc ISwarmLedger
    /// @dev Never reverts for a known caller: a removal must always go through.
    function memberRemoved(address account) external {
        if (msg.sender != address(consortiumContract)) revert NotConsortium(msg.sender);
        uint256 round = currentRound;
        Round storage r = _rounds[round];
        Standing storage st = _standing[account];
        if (_dropSitter(account) && st.sittingOutFrom <= round) {
            if (r.sitters > 0) r.sitters -= 1; // it was counted when the round opened
        } else if (r.flags & F_DP != 0 && r.sitters > 0 && st.epsilonSpent >= _snapshots[r.paramsVersion].epsilonBudget)
        {
            r.sitters -= 1; // counted as out of budget when the round opened
        }
        uint64 spent = st.epsilonSpent;
        delete _standing[account];
        if (spent != 0) st.epsilonSpent = spent; // privacy spending outlives membership
        uint256 idx = _index[round][account];
        if (idx == 0) return;
        (RoundState s,) = _status(round);
        if (s == RoundState.Finalized || s == RoundState.Lapsed) return;
        uint64 bit = _b(idx - 1);
        if (r.leftBits & bit != 0) return;
        r.leftBits |= bit;
        r.leftCount += 1;
        emit ParticipantLeft(round, account);
        // A contributor that leaves without acknowledging no longer counts: the acknowledgements
        // already given may now be a majority (nobody else may be left to acknowledge).
        if (s == RoundState.Acknowledging && r.ackBits & bit == 0) _finalizeIfMajority(round, r);
    }

    // --- views -------------------------------------------------------------------------------

    /// @inheritdoc ISwarmLedger
    function consortium() external view returns (address) {
        return address(consortiumContract);
    }

    /// @notice The model the next round must start from.
    function latestModel() public view returns (bytes32) {
        uint256 last = lastFinalizedRound;
        if (last != 0) return _rounds[last].finalModel;
        return consortiumContract.paramsAt(consortiumContract.paramsVersion()).initialModelHash;
    }

    /// @notice The derived state of `round` at the latest block.
    function roundState(uint256 round) external view returns (RoundState s) {
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
    /// the block, the ledger's head, the newest parameters and `round`'s snapshot, `round`
    /// (0: the current round) and, for each of its participants, its commitment in the current
    /// attempt, its acknowledgement and whether it left.
    function peerView(uint256 round) external view returns (PeerView memory v) {
        if (round == 0) round = currentRound;
        v.blockNumber = block.number;
        v.blockTime = block.timestamp;
        v.currentRound = currentRound;
        v.lastFinalizedRound = lastFinalizedRound;
        v.finalizedRounds = finalizedRounds;
        v.paramsVersion = consortiumContract.paramsVersion();
        v.params = consortiumContract.paramsAt(v.paramsVersion);
        v.latestModel = lastFinalizedRound == 0 ? v.params.initialModelHash : _rounds[lastFinalizedRound].finalModel;
        v.round = _roundView(round);
        if (v.round.state == RoundState.None) return v;
        v.roundParams = consortiumContract.paramsAt(v.round.paramsVersion);
        uint256 n = v.round.participants.length;
        uint32 attempt = v.round.attempt;
        uint64[64] storage samples = _samples[_key(round, attempt, 0)];
        v.commitHashes = new bytes32[](n);
        v.commitSamples = new uint64[](n);
        v.acks = new bytes32[](n);
        v.left = new bool[](n);
        v.sharesHashes = new bytes32[](n);
        for (uint256 i = 0; i < n; i++) {
            if (v.round.commitBits & (_b(i)) != 0) {
                v.commitHashes[i] = _commitHash[_key(round, attempt, i)];
                v.commitSamples[i] = samples[i];
            }
            v.acks[i] = _acks[_key(round, 0, i)];
            v.sharesHashes[i] = _sharesHash[_key(round, attempt, i)];
            v.left[i] = v.round.leftBits & (_b(i)) != 0;
        }
    }

    /// @notice The mask-share manifest hash `account` committed in `round`'s `attempt` (zero if
    /// none, or if the round does not mask).
    function sharesHashOf(uint256 round, uint32 attempt, address account) external view returns (bytes32) {
        uint256 idx = _index[round][account];
        if (idx == 0) return bytes32(0);
        return _sharesHash[_key(round, attempt, idx - 1)];
    }

    /// @notice `account`'s cumulative privacy spending, micro-epsilon (0 if none recorded).
    function epsilonSpent(address account) external view returns (uint256) {
        return _standing[account].epsilonSpent;
    }

    /// @notice Whether `account` joined `round`.
    function hasJoined(uint256 round, address account) external view returns (bool) {
        return _index[round][account] != 0;
    }

    /// @notice `account`'s commitment in `round`'s `attempt` (zero if none).
    function getCommitment(uint256 round, uint32 attempt, address account)
        external
        view
        returns (Commitment memory c)
    {
        uint256 idx = _index[round][account];
        if (idx == 0 || attempt > _rounds[round].attempt) return c;
        c.updateHash = _commitHash[_key(round, attempt, idx - 1)];
        if (c.updateHash != bytes32(0)) c.sampleCount = _samples[_key(round, attempt, 0)][idx - 1];
    }

    /// @notice The model hash `account` acknowledged in `round` (zero if none).
    function getAck(uint256 round, address account) external view returns (bytes32) {
        uint256 idx = _index[round][account];
        return idx == 0 ? bytes32(0) : _acks[_key(round, 0, idx - 1)];
    }

    /// @notice How many acknowledgements `modelHash` received in `round`.
    function ackCount(uint256 round, bytes32 modelHash) external view returns (uint256) {
        return _ackCounts[round][modelHash];
    }

    /// @notice `account`'s consecutive missed commits (reset by a commit and by sitting out).
    function missedCommits(address account) external view returns (uint256) {
        return _standing[account].missed;
    }

    /// @notice The last round `account` sits out (0 if it never sat out).
    function sittingOutUntil(address account) external view returns (uint256) {
        return _standing[account].sittingOutUntil;
    }

    // --- internals: state --------------------------------------------------------------------

    function _status(uint256 round) internal view returns (RoundState, LapseReason) {
        Round storage r = _rounds[round];
        if (r.joinDeadline == 0) return (RoundState.None, LapseReason.None); // never opened
        uint256 flags = r.flags;
        if (flags & F_FINALIZED != 0) return (RoundState.Finalized, LapseReason.None);
        if (flags & F_LAPSED != 0) return (RoundState.Lapsed, r.recordedLapse);
        uint256 t = block.timestamp;
        if (r.drawBlock == 0) {
            if (t <= r.joinDeadline || r.count - r.leftCount >= r.minPeers) {
                return (RoundState.Joining, LapseReason.None);
            }
            return (RoundState.Lapsed, LapseReason.TooFewJoined);
        }
        if (block.number <= r.drawBlock) return (RoundState.Drawing, LapseReason.None);
        if (flags & F_SEED == 0 && blockhash(r.drawBlock) == bytes32(0)) {
            return (RoundState.Lapsed, LapseReason.DrawExpired);
        }
        if (flags & F_AGGREGATE != 0) {
            if (t <= r.ackDeadline) return (RoundState.Acknowledging, LapseReason.None);
            return (RoundState.Lapsed, LapseReason.NoAgreement);
        }
        bool anyLeft = r.leftCount != 0;
        bool mergeLeft = anyLeft && _hasLeft(r, RoleDraw.indexAt(_seedOf(round, r), r.count, r.mergePos));
        if (flags & F_KEY == 0) {
            bool stewardGone = t > r.keyDeadline
                || (anyLeft && _hasLeft(r, RoleDraw.indexAt(_seedOf(round, r), r.count, _stewardPos(r))));
            if ((stewardGone || mergeLeft) && !_fallbackLeft(round, r)) {
                return (RoundState.Lapsed, mergeLeft ? LapseReason.NoMergePeerLeft : LapseReason.NoStewardLeft);
            }
            return (RoundState.Keying, LapseReason.None);
        }
        uint64 commits = r.commitBits;
        if (t <= r.commitDeadline && (commits | r.leftBits) != _all(r.count)) {
            if (mergeLeft && !_fallbackLeft(round, r)) return (RoundState.Lapsed, LapseReason.NoMergePeerLeft);
            return (RoundState.Committing, LapseReason.None);
        }
        if (_popcount(commits) < r.minPeers) return (RoundState.Lapsed, LapseReason.TooFewCommitted);
        if ((t > r.mergeDeadline || mergeLeft) && !_fallbackLeft(round, r)) {
            return (RoundState.Lapsed, LapseReason.NoMergePeerLeft);
        }
        return (RoundState.Merging, LapseReason.None);
    }

    /// @dev Revert WrongRoundState unless `round`'s state is in `mask`.
    function _expect(uint256 round, uint256 mask) private view {
        (RoundState s,) = _status(round);
        if (mask & _bit(s) == 0) revert WrongRoundState(round, s, mask);
    }

    function _bit(RoundState s) private pure returns (uint256) {
        return uint256(1) << uint256(s);
    }

    function _roleStates() private pure returns (uint256) {
        return _bit(RoundState.Keying) | _bit(RoundState.Committing) | _bit(RoundState.Merging)
            | _bit(RoundState.Acknowledging);
    }

    /// @dev The stored seed, else the one `blockhash` still gives (zero once it is gone).
    function _seedOf(uint256 round, Round storage r) private view returns (bytes32) {
        if (r.flags & F_SEED != 0) return r.seed;
        bytes32 h = blockhash(r.drawBlock);
        return h == bytes32(0) ? bytes32(0) : RoleDraw.seed(h, address(this), round);
    }

    /// @dev Store the seed if it is not yet (the caller checked the state: past Drawing, not
    /// expired).
    function _fixSeed(uint256 round, Round storage r) private returns (bytes32 seed) {
        if (r.flags & F_SEED != 0) return r.seed;
        seed = RoleDraw.seed(blockhash(r.drawBlock), address(this), round);
        r.seed = seed;
        r.flags |= F_SEED;
        uint256 n = r.count;
        emit RolesDrawn(
            round,
            seed,
            _participants[round][RoleDraw.indexAt(seed, n, r.mergePos)],
            _participants[round][RoleDraw.indexAt(seed, n, _stewardPos(r))]
        );
    }

    function _stewardPos(Round storage r) private view returns (uint256) {
        return r.stewardPosX ^ 1;
    }

    function _nextPos(Round storage r) private view returns (uint256) {
        return r.nextPosX ^ 2;
    }

    function _everyoneJoined(Round storage r) private view returns (bool) {
        uint256 joined = r.count - r.leftCount;
        return joined >= r.minPeers && joined + r.sitters >= consortiumContract.activeMemberCount();
    }

    function _closeJoin(uint256 round, Round storage r) private {
        uint40 drawBlock = uint40(block.number + DRAW_DELAY);
        r.drawBlock = drawBlock;
        uint32 keyDeadline = uint32(block.timestamp + _snapshots[r.paramsVersion].keyWindow);
        r.keyDeadline = keyDeadline;
        emit JoinClosed(round, drawBlock, keyDeadline, msg.sender);
    }

    function _participantIndex(uint256 round, Round storage r) private view returns (uint256 i) {
        uint256 idx = _index[round][msg.sender];
        if (idx == 0 || r.leftBits & (_b(idx - 1)) != 0) revert NotParticipant(round, msg.sender);
        return idx - 1;
    }

    function _participantAt(uint256 round, Round storage r, bytes32 seed, uint256 pos)
        private
        view
        returns (address)
    {
        return _participants[round][RoleDraw.indexAt(seed, r.count, pos)];
    }

    function _hasLeft(Round storage r, uint256 idx) private view returns (bool) {
        return r.leftBits & (_b(idx)) != 0;
    }

    /// @dev Whether some position from nextPos on holds a participant that did not leave.
    function _fallbackLeft(uint256 round, Round storage r) private view returns (bool) {
        uint256 pos = _nextPos(r);
        uint256 n = r.count;
        if (pos >= n) return false;
        if (r.leftCount == 0) return true;
        uint256[] memory order = RoleDraw.order(_seedOf(round, r), n);
        for (; pos < n; pos++) {
            if (!_hasLeft(r, order[pos])) return true;
        }
        return false;
    }

    /// @dev The first position from nextPos on whose participant did not leave (one exists).
    function _nextFallback(Round storage r, bytes32 seed, uint256 n) private view returns (uint256 pos) {
        pos = _nextPos(r);
        if (r.leftCount == 0) return pos;
        uint256[] memory order = RoleDraw.order(seed, n);
        while (_hasLeft(r, order[pos])) pos++;
    }

    function _finalize(uint256 round, Round storage r, bytes32 modelHash, uint256 count, uint256 eligible)
        private
    {
        r.flags |= F_FINALIZED;
        r.finalModel = modelHash;
        lastFinalizedRound = uint128(round);
        finalizedRounds += 1;
        emit RoundFinalized(round, modelHash, count, eligible);
    }

    /// @dev After the eligible count dropped: finalize on an acknowledged hash that now has a
    /// majority (at most one can).
    function _finalizeIfMajority(uint256 round, Round storage r) private {
        uint256 eligible = _ackEligible(r, r.mergeIdx);
        uint64 acked = r.ackBits;
        for (uint256 i = 0; i < r.count; i++) {
            if (acked & _b(i) == 0) continue;
            bytes32 modelHash = _acks[_key(round, 0, i)];
            uint256 count = _ackCounts[round][modelHash];
            if (count >= MIN_ACKS && count * 2 > eligible) {
                _finalize(round, r, modelHash, count, eligible);
                return;
            }
        }
    }

    function _ackEligible(Round storage r, uint256 mergeIdx) private view returns (uint256) {
        uint64 gone = r.leftBits & ~r.ackBits; // removed before acknowledging
        return _popcount(r.contributorBits & ~(_b(mergeIdx)) & ~gone);
    }

    // --- internals: standing -----------------------------------------------------------------

    /// @dev CommitMissed for every participant that did not commit in the final attempt and did
    /// not leave; SittingOut at the round's maxMissedCommits.
    function _recordMisses(uint256 round, Round storage r) private {
        uint256 missing = _all(r.count) & ~uint256(r.commitBits | r.leftBits);
        if (missing == 0) return;
        Snapshot storage sn = _snapshots[r.paramsVersion];
        uint256 maxMissed = sn.maxMissedCommits;
        uint256 n = r.count;
        for (uint256 i = 0; i < n; i++) {
            if (missing & (uint256(1) << i) == 0) continue;
            address account = _participants[round][i];
            Standing storage st = _standing[account];
            uint256 misses = uint256(st.missed) + 1;
            emit CommitMissed(round, account, misses);
            if (maxMissed != 0 && misses >= maxMissed) {
                uint256 until = round + sn.sitOutRounds;
                st.missed = 0;
                st.sittingOutFrom = uint64(round + 1);
                st.sittingOutUntil = uint64(until);
                _sitters.push(account);
                emit SittingOut(account, round + 1, until);
            } else {
                st.missed = uint16(misses);
            }
        }
    }

    /// @dev Drop sitters whose sit-out ended before `round`.
    function _pruneSitters(uint256 round) private {
        for (uint256 i = _sitters.length; i > 0; i--) {
            if (_standing[_sitters[i - 1]].sittingOutUntil < round) _removeSitter(i - 1);
        }
    }

    /// @dev Active members, not sitting out `round`, whose spending reached `budget`: they cannot
    /// join, so the join window does not wait for them.
    function _exhaustedCount(uint256 round, uint64 budget) private view returns (uint256 count) {
        uint256 n = _spenders.length;
        for (uint256 i = 0; i < n; i++) {
            address account = _spenders[i];
            Standing storage st = _standing[account];
            if (st.epsilonSpent < budget || st.sittingOutUntil >= round) continue;
            if (consortiumContract.isMember(account)) count++;
        }
    }

    function _dropSitter(address account) private returns (bool dropped) {
        for (uint256 i = _sitters.length; i > 0; i--) {
            if (_sitters[i - 1] == account) {
                _removeSitter(i - 1);
                dropped = true;
            }
        }
    }

    function _removeSitter(uint256 i) private {
        _sitters[i] = _sitters[_sitters.length - 1];
        _sitters.pop();
    }

    function _snapshot(uint256 version) private returns (Snapshot memory sn) {
        sn = _snapshots[version];
        if (sn.stored) return sn;
        IConsortium.Params memory p = consortiumContract.paramsAt(version);
        sn = Snapshot({
            joinWindow: p.joinWindow,
            keyWindow: p.keyWindow,
            commitWindow: p.commitWindow,
            mergeWindow: p.mergeWindow,
            ackWindow: p.ackWindow,
            minPeers: p.minPeers,
            maxMissedCommits: p.maxMissedCommits,
            sitOutRounds: p.sitOutRounds,
            cap: uint8(consortiumContract.maxContributors(p.ckksParamsId)),
            metricsEnabled: p.metricsEnabled,
            stored: true,
            maskThresholdPct: p.maskThresholdPct,
            epsilonBudget: p.epsilonBudget
        });
        _snapshots[version] = sn;
    }

    // --- internals: views --------------------------------------------------------------------

    function _roundView(uint256 round) private view returns (RoundView memory v) {
        Round storage r = _rounds[round];
        v.id = round;
        (v.state, v.lapseReason) = _status(round);
        if (v.state == RoundState.None) return v;
        uint256 n = r.count;
        v.baseModel = r.baseModel;
        v.keyHash = r.keyHash;
        v.aggregateHash = r.aggregateHash;
        v.finalModel = r.finalModel;
        v.attempt = r.attempt;
        v.minPeers = r.minPeers;
        v.commitBits = r.commitBits;
        v.contributorBits = r.contributorBits;
        v.ackBits = r.ackBits;
        v.leftBits = r.leftBits;
        v.commitCount = uint16(_popcount(v.commitBits));
        v.totalSamples = r.totalSamples;
        v.joinDeadline = r.joinDeadline;
        v.keyDeadline = r.keyDeadline;
        v.commitDeadline = r.commitDeadline;
        v.mergeDeadline = r.mergeDeadline;
        v.ackDeadline = r.ackDeadline;
        v.drawBlock = r.drawBlock;
        v.paramsVersion = r.paramsVersion;
        v.seedStored = r.flags & F_SEED != 0;
        v.participants = new address[](n);
        for (uint256 i = 0; i < n; i++) {
            v.participants[i] = _participants[round][i];
        }
        if (r.drawBlock != 0 && block.number > r.drawBlock) v.seed = _seedOf(round, r);
        if (v.seed != bytes32(0)) {
            uint256[] memory idx = RoleDraw.order(v.seed, n);
            v.order = new address[](n);
            for (uint256 k = 0; k < n; k++) {
                v.order[k] = v.participants[idx[k]];
            }
            v.mergePeer = v.order[r.mergePos];
            v.keySteward = v.order[_stewardPos(r)];
            if (r.flags & F_AGGREGATE != 0) {
                v.contributors = _ascending(v.participants, v.contributorBits);
                v.ackEligible = uint16(_ackEligible(r, r.mergeIdx));
            }
        }
    }

    function _ascending(address[] memory participants, uint64 bits) private pure returns (address[] memory list) {
        list = new address[](_popcount(bits));
        uint256 count;
        for (uint256 i = 0; i < participants.length; i++) {
            if (bits & (_b(i)) != 0) list[count++] = participants[i];
        }
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

    // --- internals: bits ---------------------------------------------------------------------

    function _key(uint256 round, uint256 attempt, uint256 index) private pure returns (uint256) {
        return (round << 16) | (attempt << 8) | index;
    }

    function _b(uint256 i) private pure returns (uint64) {
        return uint64(uint256(1) << i);
    }

    function _all(uint256 n) private pure returns (uint64) {
        return n == 64 ? type(uint64).max : uint64((uint256(1) << n) - 1);
    }

    function _popcount(uint256 x) private pure returns (uint256 c) {
        for (; x != 0; x &= x - 1) c++;
    }
}
