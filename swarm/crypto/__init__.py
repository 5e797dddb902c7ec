"""CKKS-encrypted model updates: the merge peer adds what it cannot read.

Pure library code (no I/O, no waiting; never imports ``swarm.p2p`` or ``swarm.ledger``).
The wire format and parameter sets are described in docs/crypto.md, what each party can learn
in docs/threat-model.md.

Steward::

    ctx = generate_round_keys()                    # SecretRoundContext
    publish(ctx.public_bytes); ledger(ctx.context_hash)
    binding = SealBinding.of(chain_id=cid, contract=ledger_address, round_id=r, attempt=a,
                             context_hash=ctx.context_hash, recipient=member.address)
    sealed = seal_secret_key(ctx, binding, member.encryption_key)   # HPKE, X25519

Participant::

    public = PublicRoundContext.from_bytes(data, params_id=1, expected_hash=ledger_hash)
    mine = open_sealed_key(sealed, public, binding=binding_with_my_address,
                           private_key=identity.encryption_private_key())
    blob = encrypt_update(delta, mine, layout=layout, weight=n_i, round_id=r, sender=me)
    commit(blob_id(blob))
    ...
    delta = mean_update(aggregate_blob, mine, round_id=r, layout=layout, total_weight=sum_n)

Merge peer (public context only)::

    agg = Aggregator(public, round_id=r, layout=layout, merge_peer=me)
    agg.add(blob, expected_sender=peer, expected_id=committed_id)   # for each update
    aggregate_blob = agg.finish()
"""

from swarm.crypto.blob import (
    HEADER_SIZE,
    BlobHeader,
    PayloadKind,
    blob_id,
    check_header,
    max_blob_size,
    read_header,
)
from swarm.crypto.codec import (
    Aggregator,
    aggregate,
    decrypt_aggregate,
    decrypt_blob,
    encrypt_update,
    encrypt_vector,
    mask_update_blob,
    mean_update,
)
from swarm.crypto.keys import (
    PublicRoundContext,
    SealBinding,
    SealedKeyHeader,
    SecretRoundContext,
    address_of,
    context_hash,
    generate_round_keys,
    max_public_context_size,
    max_sealed_key_size,
    open_sealed_key,
    read_sealed_key_header,
    seal_secret_key,
    sealed_key_id,
)
from swarm.crypto.layout import Layout, TensorSpec, flatten, layout_of, unflatten
from swarm.crypto.masking import (
    ROUNDING_GRID,
    MaskContext,
    MaskTerm,
    correction_terms,
    mask_secrets,
    mask_terms,
    new_self_seed,
    pairwise_seed,
    round_to_grid,
    threshold_for,
)
from swarm.crypto.params import DEFAULT_PARAMS_ID, PARAMETER_SETS, CkksParams, get_params
from swarm.crypto.shares import (
    HeldShares,
    ReconstructionState,
    ShareSetup,
    build_reveal,
    collect,
    open_shares,
    seal_shares,
    shares_hash,
    split,
)

__all__ = [
    "DEFAULT_PARAMS_ID",
    "HEADER_SIZE",
    "PARAMETER_SETS",
    "ROUNDING_GRID",
    "Aggregator",
    "BlobHeader",
    "CkksParams",
    "HeldShares",
    "Layout",
    "MaskContext",
    "MaskTerm",
    "PayloadKind",
    "PublicRoundContext",
    "ReconstructionState",
    "SealBinding",
    "SealedKeyHeader",
    "SecretRoundContext",
    "ShareSetup",
    "TensorSpec",
    "address_of",
    "aggregate",
    "blob_id",
    "build_reveal",
    "check_header",
    "collect",
    "context_hash",
    "correction_terms",
    "decrypt_aggregate",
    "decrypt_blob",
    "encrypt_update",
    "encrypt_vector",
    "flatten",
    "generate_round_keys",
    "get_params",
    "layout_of",
    "mask_secrets",
    "mask_terms",
    "mask_update_blob",
    "max_blob_size",
    "max_public_context_size",
    "max_sealed_key_size",
    "mean_update",
    "new_self_seed",
    "open_sealed_key",
    "open_shares",
    "pairwise_seed",
    "read_header",
    "read_sealed_key_header",
    "round_to_grid",
    "seal_secret_key",
    "seal_shares",
    "sealed_key_id",
    "shares_hash",
    "split",
    "threshold_for",
    "unflatten",
]
