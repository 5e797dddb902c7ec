"""Read a directory of checkpoint files for the verifier: the one piece of audit that reads disk.

Kept apart from ``swarm.audit.verify`` (pure) and imported only when checkpoints are checked,
because reading a checkpoint needs torch, which a ledger-only audit should not have to load.
"""

from __future__ import annotations

import re
from pathlib import Path

from swarm.audit.verify import CheckpointRecord
from swarm.errors import CheckpointError, ConfigError
from swarm.training.checkpoint import model_hash, read_checkpoint

_NAME = re.compile(r"round-(\d+)\.ckpt")


def read_checkpoints(directory: Path) -> list[CheckpointRecord]:
    """Every ``round-NNNNNN.ckpt`` in ``directory``, its model hash recomputed from the weights.

    A file that cannot be read, or whose weights do not hash to the hash in its own header, is
    recorded with the problem rather than raised: it is a finding, not a failure of the audit.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"checkpoint directory {directory} does not exist")
    records = []
    for path in sorted(directory.iterdir()):
        match = _NAME.fullmatch(path.name)
        if match is None:
            continue
        round_id = int(match.group(1))
        try:
            checkpoint = read_checkpoint(path)
            # read_checkpoint checks the bytes against the header; re-encoding the weights also
            # catches a file whose bytes are not the canonical encoding peers hash.
            recomputed = model_hash(checkpoint.state_dict)
        except CheckpointError as exc:
            records.append(CheckpointRecord(path.name, round_id, None, problem=str(exc)))
            continue
        if recomputed != checkpoint.model_hash:
            records.append(
                CheckpointRecord(
                    path.name, round_id, None, problem="the weights are not canonically encoded"
                )
            )
            continue
        records.append(CheckpointRecord(path.name, round_id, recomputed, checkpoint.round_id))
    return records
