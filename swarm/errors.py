"""The one error hierarchy of swarm.

Every error the library raises on purpose derives from :class:`SwarmError`, one class per meaning,
so callers (and the CLI, which prints one line and exits non-zero) can catch exactly what they
handle. Where a built-in exception means the same thing, the class subclasses it too
(``KeystoreNotFoundError`` is a ``FileNotFoundError``), as web3.py does.

Contract reverts are decoded into :class:`ContractRevertError` subclasses by
``swarm.ledger.revert`` whichever chain backend raised them; each carries the custom error's
arguments by name in ``values``.
"""

from __future__ import annotations

from typing import Any


class SwarmError(Exception):
    """Root of every error swarm raises on purpose."""

    #: exit code the CLI uses for this kind of error
    exit_code: int = 1


# --- configuration -------------------------------------------------------------------------


class ConfigError(SwarmError, ValueError):
    """A configuration file or option is missing, malformed or inconsistent."""

    exit_code = 2


# --- identity ------------------------------------------------------------------------------


class KeystoreError(SwarmError):
    """A keystore file could not be used."""


class KeystoreNotFoundError(KeystoreError, FileNotFoundError):
    """The keystore file does not exist."""


class KeystoreCorruptError(KeystoreError, ValueError):
    """The keystore file is truncated, not JSON, or not a valid encrypted key."""


class WrongPasswordError(KeystoreError, ValueError):
    """The keystore's MAC did not verify: the password is wrong."""


class PasswordUnavailableError(KeystoreError):
    """No password was given and none can be asked for (no terminal)."""


# --- ledger --------------------------------------------------------------------------------


class LedgerError(SwarmError):
    """Something went wrong talking to the ledger."""


class ChainUnavailableError(LedgerError, ConnectionError):
    """The chain's JSON-RPC endpoint cannot be reached."""


class ContractNotFoundError(LedgerError):
    """No contract code at the configured address (wrong address, or a chain that restarted)."""


class TransactionError(LedgerError):
    """A transaction failed for a reason that is not a decoded contract error."""

    #: the transaction's hash, where it was sent (and mined, or not)
    tx_hash: str | None = None


class OutOfGasError(TransactionError):
    """A mined transaction ran out of gas: it used all of its ``gas_limit`` and replaying it
    succeeds. The ledger did not change; the caller decides again from it."""

    def __init__(self, message: str, *, tx_hash: str, gas_limit: int, gas_used: int) -> None:
        self.tx_hash = tx_hash
        self.gas_limit = gas_limit
        self.gas_used = gas_used
        super().__init__(message)


class ContractRevertError(LedgerError):
    """The contract refused a call with one of its custom errors.

    ``name`` is the Solidity error's name and ``values`` its arguments by name.
    """

    error_name: str = ""
    #: the transaction's hash when a mined transaction reverted (None when a call or a gas
    #: estimate was refused before anything was sent)
    tx_hash: str | None = None

    def __init__(self, name: str, values: dict[str, Any] | None = None) -> None:
        self.name = name
        self.values = dict(values or {})
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.values.items())
        super().__init__(f"{name}({shown})" if shown else name)


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


class NotAdminError(ContractRevertError):
    """The sender does not hold the admin role."""


class NotAMemberError(ContractRevertError):
    """The sender (or named account) is not an active member of the consortium."""


class MemberExistsError(ContractRevertError):
    """The account is already a member."""


class PublicKeyMismatchError(ContractRevertError):
    """The registered public key does not hash to the member's address."""


class InvalidParameterError(ContractRevertError):
    """A consortium parameter or argument is out of range."""


class WrongRoundError(ContractRevertError):
    """The call names a round that is not the current one (or does not exist)."""


class WrongRoundStateError(ContractRevertError):
    """The round is not in the state this call needs."""


class DeadlinePassedError(ContractRevertError):
    """The call came after its deadline."""


class DeadlineNotPassedError(ContractRevertError):
    """The call needs a deadline to have passed first."""


class NotParticipantError(ContractRevertError):
    """The sender did not join this round."""


class AlreadyDoneError(ContractRevertError):
    """The sender already did this for this round (joined, committed, acknowledged)."""


class NotYourRoleError(ContractRevertError):
    """The sender does not hold the role (merge peer, key steward) this call needs."""


class InvalidContributorsError(ContractRevertError):
    """The aggregate's contributor list is not a subset of the committed participants."""


# --- training and checkpoints --------------------------------------------------------------


class CheckpointError(SwarmError, ValueError):
    """A model encoding or checkpoint file is corrupt, truncated, or does not match its hash."""


# --- crypto --------------------------------------------------------------------------------


class CryptoError(SwarmError):
    """A ciphertext, key or context could not be used."""


class CryptoWorkerError(CryptoError):
    """A worker process that encrypts or decrypts for the peer (swarm.peer.cores) died; the
    step is retried, with fresh workers."""


class UnknownParameterSetError(CryptoError, ValueError):
    """A blob, context or call names a CKKS parameter-set id this version does not know."""

    def __init__(self, params_id: int) -> None:
        self.params_id = params_id
        super().__init__(f"unknown CKKS parameter set id {params_id}")


class MalformedBlobError(CryptoError, ValueError):
    """Bytes that should be an encrypted blob are truncated, corrupted or not one at all."""


class MalformedContextError(CryptoError, ValueError):
    """A public round context is unreadable, carries a secret key, or does not match its
    parameter set."""


class BlobMismatchError(CryptoError):
    """A well-formed blob (or sealed key) belongs elsewhere: another round, another context,
    another sender, another model.

    ``field`` names the header field that differs; ``expected`` and ``actual`` its values.
    """

    def __init__(self, field: str, expected: Any, actual: Any) -> None:
        self.field = field
        self.expected = expected
        self.actual = actual
        super().__init__(f"{field}: expected {_show_field(expected)}, got {_show_field(actual)}")


def _show_field(value: Any) -> str:
    # kept apart from the ledger section's helper so the two sections can change independently
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return repr(value)


class LayoutMismatchError(BlobMismatchError):
    """The model's tensors (names, shapes, dtypes, parameter count) are not the ones the blob
    or the update was made for."""


class OversizedBlobError(CryptoError, ValueError):
    """A blob is larger than anything the model could produce: refuse it before reading on."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"blob of {size} bytes exceeds the limit of {limit} bytes")


class DuplicateUpdateError(CryptoError):
    """The merge peer already accepted an update from this sender in this round."""


class ValueRangeError(CryptoError, ValueError):
    """An update holds values CKKS cannot carry with this parameter set (NaN, inf, too large)."""


class SealedKeyError(CryptoError):
    """A sealed round key cannot be opened: not sealed to this recipient, tampered with, or
    not the secret key of the round's public context."""


class SealedKeyMismatchError(BlobMismatchError, SealedKeyError):
    """A sealed round key is bound to another round, context or recipient (a replay)."""


class SecretKeyUnavailableError(CryptoError):
    """Decryption was asked of a context that holds no secret key (the merge peer's)."""


class MaskError(CryptoError):
    """Masked aggregation cannot proceed: a mask, its seeds or its shares are unusable."""


class MaskShareError(MaskError, ValueError):
    """A mask share blob, manifest or share is malformed, tampered with, or bound elsewhere
    (another round, owner or holder), or does not match the ``sharesHash`` on the ledger."""


class MaskRevealError(MaskError, ValueError):
    """A reveal is malformed, or holds a share the reveal rule forbids (a pairwise seed between
    two contributors, anything of a non-contributor)."""


class MaskReconstructionError(MaskError):
    """Too few valid shares were revealed to rebuild a secret the correction needs."""


# --- p2p -----------------------------------------------------------------------------------


class P2PError(SwarmError):
    """A peer-to-peer connection or transfer failed."""


class PeerUnreachableError(P2PError, ConnectionError):
    """No connection to the peer could be made (down, wrong address, or it refused us)."""


class NotAMemberPeerError(P2PError, PermissionError):
    """The peer's authenticated key does not derive to an active member's address."""


class TransferTimeoutError(P2PError, TimeoutError):
    """A transfer did not finish before its deadline (a stalled stream, or a slow peer)."""


class TransferInterruptedError(P2PError, ConnectionError):
    """The stream or connection broke in the middle of a transfer (peer gone, stream reset)."""


class TransferRefusedError(P2PError):
    """The remote peer answered and refused the transfer; ``code`` says why, ``reason`` in words.

    Codes: ``not_member``, ``too_large``, ``refused`` (the receiver's validator said no),
    ``hash_mismatch``, ``not_found``, ``not_accepting``, ``bad_request``.
    """

    def __init__(self, code: str, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{code}: {reason}" if reason else code)


class PayloadHashMismatchError(P2PError, ValueError):
    """The bytes received do not hash to the expected sha256; nothing was accepted."""


class PayloadTooLargeError(P2PError, ValueError):
    """A payload (or announcement) is larger than the limit the receiver set."""

    def __init__(self, size: int, limit: int, what: str = "payload") -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"{what} of {size} bytes exceeds the limit of {limit} bytes")


class ProtocolViolationError(P2PError):
    """The peer sent something the protocol does not allow (bad frame, bad header)."""


# --- audit ---------------------------------------------------------------------------------


class AuditFailedError(SwarmError):
    """`swarm audit verify` found error-level findings: the history breaks the protocol's rules.

    Its own exit code, so a script tells "the ledger failed the audit" (3) from "the audit could
    not run" (1, 2).
    """

    exit_code = 3


# --- p2p: one peer per key and port ----------------------------------------------------------


class PortInUseError(P2PError, OSError):
    """Another process (a second peer, or another program) already listens on the port this
    peer was configured to listen on. py-libp2p sets SO_REUSEPORT, so without this check both
    would listen and share the port's connections."""


class DuplicatePeerError(P2PError):
    """Another peer with this key is already running: it answers with this key at the address
    the ledger lists for the member. Two peers on one key spoil rounds (they join, commit and
    acknowledge as one member)."""


# --- consortium setup: task, parameters, gas -------------------------------------------------


class TaskMismatchError(ConfigError):
    """The peer's task (name and seed) is not the one the consortium's ledger records: its task
    id differs from the ledger's ``taskId``."""


class TaskFileError(ConfigError):
    """A task file is not one the swarm can train: malformed TOML, an unknown kind or key, a
    value out of range, a weights file whose hash differs, a plugin that does not import."""


class SiteDataError(ConfigError):
    """A hospital's data does not fit the consortium's task: a missing file or column, a value
    of the wrong type, a category or class the task does not know, no rows, one class only."""


class InsufficientFundsError(LedgerError):
    """This account has no ETH to pay for its transactions on a chain whose gas costs ETH."""
