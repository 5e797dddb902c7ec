"""swarm.peer.cores: the worker processes a peer encrypts and decrypts a large model with.

Real processes (spawned, as a peer starts them): an aggregate decrypted by two of them is the
serial decryption bit for bit, an update encrypted by them decrypts to its values, and a
malformed aggregate is refused with the codec's typed error from inside a worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from swarm.crypto import aggregate, decrypt_aggregate, generate_round_keys, layout_of
from swarm.crypto.blob import HEADER_SIZE
from swarm.crypto.parallel import decrypt_aggregate_split, encrypt_vector_split
from swarm.errors import CryptoWorkerError, MalformedBlobError
from swarm.peer import cores as cores_module
from swarm.peer.cores import AUTO_MAX_WORKERS, CryptoCores, workers_for
from tests.support.blobs import rewritten

SENDERS = [bytes([i + 1]) * 20 for i in range(3)]


def test_auto_uses_processes_only_for_large_models_on_hosts_with_cores_to_spare() -> None:
    """0 (auto): 1 (the peer's own process) for a small model or a small host; otherwise a
    process per core, up to a cap. A number set by the operator is taken as it is."""
    assert workers_for(0, 36, cores=64) == 1
    assert workers_for(0, 11_187_138, cores=2) == 1  # four hospitals on this 2-core machine
    assert workers_for(0, 11_187_138, cores=6) == 6
    assert workers_for(0, 11_187_138, cores=64) == AUTO_MAX_WORKERS
    assert workers_for(3, 36, cores=2) == 3
    assert workers_for(1, 11_187_138, cores=64) == 1
    with pytest.raises(ValueError):
        CryptoCores(1)


@pytest.fixture(scope="module")
def cores() -> Iterator[CryptoCores]:
    pool = CryptoCores(2)
    yield pool
    pool.close()
    pool.close()  # twice: harmless


def test_worker_processes_encrypt_and_decrypt_as_the_peer_itself_would(
    cores: CryptoCores,
) -> None:
    steward = generate_round_keys()
    # 300,004 values: 37 chunks, so values, update parts, the aggregate's parts and the
    # decrypted values (1.2-2.4 MB each) all cross in shared memory, not through the pipes
    layout = layout_of(torch.nn.Linear(75_000, 4).state_dict())
    blocks_before = _shared_blocks()
    rng = np.random.default_rng(0)
    values = [rng.normal(0, 1e-2, layout.param_count).astype(np.float32) for _ in SENDERS]
    options = dict(layout=layout, weight=1.0, round_id=3)
    blobs = [
        encrypt_vector_split(v, steward, sender=s, run=cores.run, parts=2, **options)  # type: ignore[arg-type]
        for v, s in zip(values, SENDERS, strict=True)
    ]
    agg = aggregate(blobs, steward.public, round_id=3, layout=layout, merge_peer=SENDERS[0])
    serial = decrypt_aggregate(agg, steward, round_id=3, layout=layout)
    split = decrypt_aggregate_split(
        agg, steward, round_id=3, layout=layout, run=cores.run, parts=cores.workers
    )
    assert split.tobytes() == serial.tobytes()
    assert np.abs(split - np.sum(values, axis=0)).max() < 1e-5

    # a malformed ciphertext found inside a worker (the header's digest matches it): the
    # codec's typed error, here; in the last part, then in the first, whose sibling's result
    # must still be collected and its block unlinked
    def coefficient_too_large(at: int) -> Callable[[bytearray], None]:
        def change(payload: bytearray) -> None:
            payload[at : at + 8] = b"\xff" * 8

        return change

    poly = steward._bridge.packed_poly_size
    for at in (len(agg) - HEADER_SIZE - 3 * 65 - poly, 4):  # last chunk's, first chunk's
        broken = rewritten(agg, coefficient_too_large(at))
        with pytest.raises(MalformedBlobError, match="not below the modulus"):
            decrypt_aggregate_split(
                broken, steward, round_id=3, layout=layout, run=cores.run, parts=2
            )
    cores.run(_pid, [(), ()])  # (both workers are done with the refused run's parts)
    assert _shared_blocks() == blocks_before  # every block unlinked, refused runs included


def _shared_blocks() -> set[str]:
    folder = Path("/dev/shm")
    if not folder.exists():
        return set()
    return {p.name for p in folder.iterdir() if p.name.startswith("psm_")}


def _die() -> None:
    os._exit(3)  # a worker killed mid-job (the OOM killer, an operator)


def _pid() -> int:
    return os.getpid()


def test_a_worker_that_dies_is_a_typed_error_and_the_next_run_has_fresh_workers() -> None:
    """A dead peer-side process: the step fails with CryptoWorkerError (which the peer's loop
    logs in one line and retries after a cool-down), and the pool serves the retry."""
    pool = CryptoCores(2)
    try:
        with pytest.raises(CryptoWorkerError):
            pool.run(_die, [()])
        assert len(pool.run(_pid, [(), ()])) == 2
    finally:
        pool.close()


def test_without_room_in_shared_memory_values_go_through_the_pipes(
    cores: CryptoCores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container's /dev/shm is often 64 MB: a block beyond it would kill the process when
    written (SIGBUS). Without room, the peer sends the values pickled instead; same result."""
    monkeypatch.setattr(cores_module, "SHM_DIR", "/nonexistent/shm")
    steward = generate_round_keys()
    layout = layout_of(torch.nn.Linear(75_000, 4).state_dict())
    values = np.random.default_rng(1).normal(0, 1e-2, layout.param_count).astype(np.float32)
    blob = encrypt_vector_split(
        values, steward, layout=layout, weight=1.0, round_id=3, sender=SENDERS[0],
        run=cores.run, parts=2,
    )  # fmt: skip
    agg = aggregate([blob], steward.public, round_id=3, layout=layout, merge_peer=SENDERS[0])
    split = decrypt_aggregate_split(agg, steward, round_id=3, layout=layout, run=cores.run, parts=2)
    serial = decrypt_aggregate(agg, steward, round_id=3, layout=layout)
    assert split.tobytes() == serial.tobytes()
