"""`swarm admin`: what a consortium admin does on the ledger."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cli.common import (
    ChainUrlOpt,
    ContractOpt,
    JsonOpt,
    PasswordFileOpt,
    console,
    err_console,
    ledger_client,
    load_identity,
    print_json,
    resolve_chain,
)
from swarm.errors import ConfigError
from swarm.ledger import LedgerClient, Params, check_member_card, connect
from swarm.sizing import DERIVED, MODEL_ONLY, Throughput, size_round, too_short

app = typer.Typer(
    help="Deploy the consortium's contract, admit and remove hospitals, set parameters."
)

AdminKeyOpt = Annotated[
    Path,
    typer.Option(
        "--keystore", "-k", envvar="SWARM_KEYSTORE", help="The admin's encrypted key file."
    ),
]

MinPeersOpt = Annotated[
    int | None, typer.Option(help="Fewest hospitals a round may proceed with (at least 3).")
]
JoinOpt = Annotated[int | None, typer.Option(help="Seconds a round stays open for joining.")]
KeyOpt = Annotated[int | None, typer.Option(help="Seconds the key steward has to publish the key.")]
CommitOpt = Annotated[int | None, typer.Option(help="Seconds to train, encrypt and commit.")]
MergeOpt = Annotated[
    int | None, typer.Option(help="Seconds the merge peer has after commits close.")
]
AckOpt = Annotated[int | None, typer.Option(help="Seconds to decrypt and acknowledge the model.")]
CkksOpt = Annotated[
    int | None,
    typer.Option(
        help="CKKS parameter-set id (default on deploy: 2): 1 carries 4096 values per "
        "ciphertext, 2 carries 8192 (complex packing: half the bytes); see docs/crypto.md."
    ),
]
TaskOpt = Annotated[
    str | None,
    typer.Option(
        help="Task name (swarm task info NAME): the ledger records its task id and the hash "
        "of its initial model."
    ),
]
TaskFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--task-file",
        help="The consortium's task file (docs/own-data.md): the ledger records its task id "
        "and the hash of the initial model it builds (swarm task info FILE). Instead of --task.",
        show_default=False,
    ),
]
SeedOpt = Annotated[
    int | None,
    typer.Option(
        min=0, help="Seed of the task's initial model (default 0); every peer's [task] seed."
    ),
]
InitialOpt = Annotated[
    str | None,
    typer.Option(
        help="sha256 (hex) of the initial model, for a check only: it must be the task's "
        "(swarm task info)."
    ),
]
MetricsOpt = Annotated[
    bool | None,
    typer.Option("--metrics/--no-metrics", help="Hospitals report test metrics per model."),
]
MaxMissedOpt = Annotated[
    int | None,
    typer.Option(
        help="Consecutive missed commits after which a hospital sits out rounds (0: never)."
    ),
]
SitOutOpt = Annotated[
    int | None,
    typer.Option(help="Rounds such a hospital sits out (1 to 1000; with --max-missed-commits)."),
]

MaskThresholdOpt = Annotated[
    int | None,
    typer.Option(
        "--mask-threshold",
        help="Secure-aggregation share threshold, percent of a round's participants (51 to "
        "100; 0 turns masking off): how many must hand in shares to unmask a dropout. "
        "On deploy the default is 66.",
    ),
]
EpsilonBudgetOpt = Annotated[
    float | None,
    typer.Option(
        "--epsilon-budget",
        help="Each hospital's total differential-privacy budget (epsilon, e.g. 8.0; 0 turns "
        "DP off). A hospital that spent it can no longer join rounds. Needs --dp-delta, "
        "--dp-noise and --dp-clip.",
    ),
]
DpDeltaOpt = Annotated[
    float | None,
    typer.Option("--dp-delta", help="DP delta (e.g. 1e-5; above 0, below 1; with a budget)."),
]
DpNoiseOpt = Annotated[
    float | None,
    typer.Option("--dp-noise", help="DP-SGD noise multiplier (e.g. 1.1; above 0 with a budget)."),
]
DpClipOpt = Annotated[
    float | None,
    typer.Option(
        "--dp-clip",
        help="DP-SGD per-sample gradient clipping norm (e.g. 1.0; above 0 with a budget).",
    ),
]
_DEFAULT_THROUGHPUT = Throughput()
LinkOpt = Annotated[
    float | None,
    typer.Option(
        "--link-mb-s",
        min=0.001,
        help="The hospitals' network link in MB/s, for the windows that follow the task's "
        "model (docs/admin-guide.md, Windows; default "
        f"{_DEFAULT_THROUGHPUT.link_mb_s:g}): the merge peer's link carries every update.",
        show_default=False,
    ),
]
TrainOpt = Annotated[
    float | None,
    typer.Option(
        "--train-s",
        min=0,
        help="Seconds your slowest hospital takes to train a round: the commit window must "
        f"hold them (unset: {_DEFAULT_THROUGHPUT.train_s:g} s in the derived windows, none in "
        "the least).",
        show_default=False,
    ),
]
HospitalsOpt = Annotated[
    int | None,
    typer.Option(
        "--hospitals",
        min=1,
        help="How many hospitals usually take part, for the windows that follow the model "
        "(default: --min-peers on deploy, the active members on set-params).",
        show_default=False,
    ),
]
ForceWindowsOpt = Annotated[
    bool,
    typer.Option(
        "--force-windows",
        help="Accept a window shorter than the task's model needs (its rounds may lapse).",
    ),
]


def _hex32(value: str, name: str) -> bytes:
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError as exc:
        raise ConfigError(f"--{name} is not hex") from exc
    if len(raw) != 32:
        raise ConfigError(f"--{name} must be 32 bytes (64 hex digits)")
    return raw


#: bounds the contract enforces (contracts/src/Consortium.sol), checked here first so a bad value
#: is one clear line and no transaction
MIN_PEERS_FLOOR = 3
MIN_WINDOW_S = 5
MAX_WINDOW_S = 86_400
MAX_SIT_OUT_ROUNDS = 1000
MAX_UINT16 = 2**16 - 1
MIN_MASK_THRESHOLD_PCT = 51
#: largest epsilon budget the contract holds (uint64 micro-epsilon)
MAX_EPSILON_BUDGET = (2**64 - 1) / 1_000_000
#: largest noise multiplier / clip norm the contract holds (uint32 thousandths)
MAX_MILLI = (2**32 - 1) / 1_000

_WINDOWS = ("join_window", "key_window", "commit_window", "merge_window", "ack_window")


def _option(field: str) -> str:
    return "--" + field.replace("_", "-")


def check_params(p: Params) -> None:
    """ConfigError (one line, naming the option) for parameters the contract would refuse."""
    from swarm.crypto import PARAMETER_SETS

    if p.min_peers < MIN_PEERS_FLOOR:
        raise ConfigError(
            f"--min-peers {p.min_peers} is too low: at least {MIN_PEERS_FLOOR} (with two "
            "contributors each could read the other's update from the sum)"
        )
    for name in _WINDOWS:
        value = getattr(p, name)
        if not MIN_WINDOW_S <= value <= MAX_WINDOW_S:
            raise ConfigError(
                f"{_option(name)} {value} is out of range: {MIN_WINDOW_S} to {MAX_WINDOW_S} "
                "seconds (1 day)"
            )
    if p.ckks_params_id not in PARAMETER_SETS:
        known = ", ".join(str(i) for i in sorted(PARAMETER_SETS))
        raise ConfigError(
            f"--ckks-params-id {p.ckks_params_id} is not a known CKKS parameter set "
            f"(known: {known}; docs/crypto.md)"
        )
    # most contributors an aggregate may have (Consortium.maxContributors, the same numbers)
    cap = PARAMETER_SETS[p.ckks_params_id].max_contributors
    if p.min_peers > cap:
        raise ConfigError(
            f"--min-peers {p.min_peers} is too high: CKKS parameter set {p.ckks_params_id} "
            f"sums at most {cap} updates"
        )
    if not 0 <= p.max_missed_commits <= MAX_UINT16:
        raise ConfigError(
            f"--max-missed-commits {p.max_missed_commits} is out of range: 0 (never) to "
            f"{MAX_UINT16}"
        )
    if p.max_missed_commits > 0 and not 1 <= p.sit_out_rounds <= MAX_SIT_OUT_ROUNDS:
        raise ConfigError(
            f"--sit-out-rounds {p.sit_out_rounds} is out of range: 1 to {MAX_SIT_OUT_ROUNDS} "
            "rounds when --max-missed-commits is set"
        )
    if not 0 <= p.sit_out_rounds <= MAX_UINT16:
        raise ConfigError(f"--sit-out-rounds {p.sit_out_rounds} is out of range")
    if p.mask_threshold_pct != 0 and not MIN_MASK_THRESHOLD_PCT <= p.mask_threshold_pct <= 100:
        raise ConfigError(
            f"--mask-threshold {p.mask_threshold_pct} is out of range: 0 (off) or "
            f"{MIN_MASK_THRESHOLD_PCT} to 100 percent"
        )
    if not 0 <= p.epsilon_budget <= MAX_EPSILON_BUDGET:
        raise ConfigError(f"--epsilon-budget {p.epsilon_budget} is out of range: 0 (off) or more")
    if p.epsilon_budget > 0:
        if not 0 < p.dp_delta < 1:
            raise ConfigError(
                f"--dp-delta {p.dp_delta} is out of range: above 0 and below 1 with a budget"
            )
        for value, option in ((p.dp_noise_multiplier, "--dp-noise"), (p.dp_clip_norm, "--dp-clip")):
            if not 0 < value <= MAX_MILLI:
                raise ConfigError(f"{option} {value} is out of range: above 0 with a budget")


def _merge_params(
    base: Params,
    min_peers: int | None,
    join_window: int | None,
    key_window: int | None,
    commit_window: int | None,
    merge_window: int | None,
    ack_window: int | None,
    ckks_params_id: int | None,
    task: str | None,
    seed: int | None,
    initial_model_hash: str | None,
    metrics: bool | None,
    max_missed_commits: int | None = None,
    sit_out_rounds: int | None = None,
    mask_threshold_pct: int | None = None,
    epsilon_budget: float | None = None,
    dp_delta: float | None = None,
    dp_noise_multiplier: float | None = None,
    dp_clip_norm: float | None = None,
) -> Params:
    """``base`` with the options given; checked (:func:`check_params`). A task (or a seed)
    sets both the task id and the initial-model hash (swarm.training.task_id); an
    --initial-model-hash must be that task's."""
    changes: dict[str, object] = {
        k: v
        for k, v in {
            "min_peers": min_peers,
            "join_window": join_window,
            "key_window": key_window,
            "commit_window": commit_window,
            "merge_window": merge_window,
            "ack_window": ack_window,
            "ckks_params_id": ckks_params_id,
            "metrics_enabled": metrics,
            "max_missed_commits": max_missed_commits,
            "sit_out_rounds": sit_out_rounds,
            "mask_threshold_pct": mask_threshold_pct,
            "epsilon_budget": epsilon_budget,
            "dp_delta": dp_delta,
            "dp_noise_multiplier": dp_noise_multiplier,
            "dp_clip_norm": dp_clip_norm,
        }.items()
        if v is not None
    }
    if seed is not None and task is None:
        raise ConfigError("--seed needs --task: the task id and initial model are both the task's")
    if task is not None:
        from swarm.training.task_id import task_fingerprint

        fp = task_fingerprint(task, seed or 0)
        changes["task_id"] = fp.task_id
        changes["initial_model_hash"] = fp.initial_model_hash
    if initial_model_hash is not None:
        given = _hex32(initial_model_hash, "initial-model-hash")
        expected = changes.get("initial_model_hash", base.initial_model_hash)
        assert isinstance(expected, bytes)
        if given != expected:
            raise ConfigError(
                f"--initial-model-hash 0x{given.hex()} is not the task's initial model "
                f"(0x{expected.hex()}, see `swarm task info`): check --task and --seed"
            )
    params = dataclasses.replace(base, **changes)  # type: ignore[arg-type]
    check_params(params)
    return params


def fit_windows(
    params: Params,
    given: dict[str, int | None],
    param_count: int,
    *,
    link_mb_s: float | None = None,
    train_s: float | None = None,
    hospitals: int | None = None,
    force: bool = False,
    derive: bool = True,
    anyway: str = "deploy anyway",
) -> tuple[Params, list[str]]:
    """Windows that follow the model (swarm.sizing, docs/admin-guide.md "Windows").

    A given window shorter than the least this model needs (its bytes and CKKS work, and the
    training time if ``train_s`` is given: swarm.sizing.MODEL_ONLY) is a ConfigError naming the
    option, the seconds needed and the estimate's parts, unless ``force``. A window not given
    (None) is raised when ``params`` has less than the derived window (``derive``: with the
    allowances for training and transactions, on deploy over the documented defaults) or than
    the least (on set-params, over the current values, which the admin chose). Returns the
    parameters and one note per window raised or forced."""
    link = {"link_mb_s": link_mb_s} if link_mb_s is not None else {}
    least_tp = dataclasses.replace(MODEL_ONLY, train_s=train_s or 0.0, **link)
    derived_tp = dataclasses.replace(
        _DEFAULT_THROUGHPUT, **link, **({"train_s": train_s} if train_s is not None else {})
    )
    least = size_round(
        param_count, params.min_peers, least_tp, expected=hospitals, params_id=params.ckks_params_id
    )
    derived = size_round(
        param_count,
        params.min_peers,
        derived_tp,
        expected=hospitals,
        params_id=params.ckks_params_id,
    )
    raise_to = derived if derive else least
    changes: dict[str, int] = {}
    notes: list[str] = []
    for name in DERIVED:
        value = given.get(name)
        if value is None:
            target = raise_to.least(name)
            if int(getattr(params, name)) >= target:
                continue
            step = raise_to.steps[name]
            if target > MAX_WINDOW_S:
                raise ConfigError(
                    f"{_option(name)}: {param_count:,} parameters need {target} s, more than the "
                    f"contract's {MAX_WINDOW_S} s (1 day) ({step.explain()}); a faster "
                    "--link-mb-s, a shorter --train-s or fewer --hospitals"
                )
            changes[name] = target
            notes.append(
                f"{_option(name)[2:]} {target} s for {param_count:,} parameters and "
                f"{raise_to.hospitals} hospitals ({step.explain()})"
            )
            continue
        problem = too_short(least, name, value)
        if problem is None:
            continue
        if not force:
            raise ConfigError(
                f"{problem}; --link-mb-s or --hospitals if the estimate is off, or "
                f"--force-windows to {anyway}"
            )
        notes.append(f"forced: {problem}")
    return dataclasses.replace(params, **changes), notes  # type: ignore[arg-type]


def _print_notes(notes: list[str], *, json_out: bool = False) -> None:
    """Each raised window on stdout (stderr under --json), each forced one as a warning on
    stderr."""
    for note in notes:
        where = err_console if json_out or note.startswith("forced: ") else console
        where.print(
            f"warning: {note[8:]}" if note.startswith("forced: ") else f"window: {note}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


_LABELS = {
    "min_peers": "min-peers",
    "join_window": "join-window",
    "key_window": "key-window",
    "commit_window": "commit-window",
    "merge_window": "merge-window",
    "ack_window": "ack-window",
    "ckks_params_id": "ckks-params-id",
    "task_id": "task-id",
    "initial_model_hash": "initial-model-hash",
    "metrics_enabled": "metrics",
    "max_missed_commits": "max-missed-commits",
    "sit_out_rounds": "sit-out-rounds",
    "mask_threshold_pct": "mask-threshold",
    "epsilon_budget": "epsilon-budget",
    "dp_delta": "dp-delta",
    "dp_noise_multiplier": "dp-noise",
    "dp_clip_norm": "dp-clip",
}


def _show(name: str, value: object) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, bool):
        return "on" if value else "off"
    if name in _WINDOWS:
        return f"{value} s"
    if name == "mask_threshold_pct":
        return f"{value} %" if value else "off"
    if name == "epsilon_budget":
        return f"{value:g}" if value else "off (no differential privacy)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def params_rows(p: Params) -> list[tuple[str, str]]:
    """(label, value) of every parameter, as `swarm admin params` prints them."""
    return [(_LABELS[f.name], _show(f.name, getattr(p, f.name))) for f in dataclasses.fields(p)]


def params_changes(old: Params, new: Params) -> list[tuple[str, str, str]]:
    """(label, old, new) of each parameter that differs."""
    return [
        (_LABELS[f.name], _show(f.name, getattr(old, f.name)), _show(f.name, getattr(new, f.name)))
        for f in dataclasses.fields(old)
        if getattr(old, f.name) != getattr(new, f.name)
    ]


def _params_json(p: Params) -> dict[str, object]:
    return {
        f.name: ("0x" + v.hex()) if isinstance(v := getattr(p, f.name), bytes) else v
        for f in dataclasses.fields(p)
    }


@app.command("deploy")
def deploy(
    keystore: AdminKeyOpt,
    chain_url: ChainUrlOpt = None,
    password_file: PasswordFileOpt = None,
    min_peers: MinPeersOpt = None,
    join_window: JoinOpt = None,
    key_window: KeyOpt = None,
    commit_window: CommitOpt = None,
    merge_window: MergeOpt = None,
    ack_window: AckOpt = None,
    ckks_params_id: CkksOpt = None,
    task: TaskOpt = None,
    task_file: TaskFileOpt = None,
    seed: SeedOpt = None,
    initial_model_hash: InitialOpt = None,
    metrics: MetricsOpt = None,
    max_missed_commits: MaxMissedOpt = None,
    sit_out_rounds: SitOutOpt = None,
    mask_threshold: MaskThresholdOpt = None,
    epsilon_budget: EpsilonBudgetOpt = None,
    dp_delta: DpDeltaOpt = None,
    dp_noise: DpNoiseOpt = None,
    dp_clip: DpClipOpt = None,
    link_mb_s: LinkOpt = None,
    train_s: TrainOpt = None,
    hospitals: HospitalsOpt = None,
    force_windows: ForceWindowsOpt = False,
    owner_delay: Annotated[
        int,
        typer.Option(
            min=0,
            help="Seconds between beginning and accepting a handover of the consortium's "
            "ownership (0 is fine on a development chain).",
        ),
    ] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Deploy a new consortium (its Consortium and SwarmLedger contracts). Your key becomes its
    owner and first admin.

    The ledger records the task's id and its initial model's hash (`swarm task info FILE`):
    those of --task-file, or of the built-in --task. Unset parameters take the defaults of
    docs/admin-guide.md; the key, commit, merge and ack windows at least what the task's model
    needs (--link-mb-s, --train-s, --hospitals), and a shorter one given is refused. Prints the
    contract's address: every hospital's config needs it.
    """
    from localnet.network import DEFAULT_TASK, default_params

    if task_file is not None:
        from swarm.training.taskfile import TaskFile, fingerprint

        if task is not None or seed is not None:
            raise ConfigError(
                "--task-file or --task/--seed, not both: the task file names its task and seed"
            )
        spec = TaskFile.load(task_file)
        fp = fingerprint(spec)
        task, seed, source = fp.name, fp.seed, str(spec.path)
    else:
        from swarm.training.task_id import task_fingerprint

        task = task or DEFAULT_TASK
        fp = task_fingerprint(task, seed or 0)
        source = ""
    base = default_params(fingerprint=fp)
    given = {
        "key_window": key_window,
        "commit_window": commit_window,
        "merge_window": merge_window,
        "ack_window": ack_window,
    }
    params = _merge_params(
        base,
        min_peers, join_window, key_window, commit_window, merge_window, ack_window,
        ckks_params_id, None, None, initial_model_hash, metrics,
        max_missed_commits, sit_out_rounds,
        mask_threshold, epsilon_budget, dp_delta, dp_noise, dp_clip,
    )  # fmt: skip
    params, notes = fit_windows(
        params,
        given,
        fp.param_count,
        link_mb_s=link_mb_s,
        train_s=train_s,
        hospitals=hospitals,
        force=force_windows,
    )
    check_params(params)
    identity = load_identity(keystore, password_file)
    url, _ = resolve_chain(chain_url, None)
    chain = connect(url)
    ledger = LedgerClient.deploy(chain, identity, params, admin_delay=owner_delay)
    if json_out:
        print_json(
            {
                "contract": ledger.address,
                "consortium": ledger.consortium_address,
                "chain_url": url,
                "chain_id": chain.chain_id,
                "task": task,
                "task_file": source or None,
                "seed": seed or 0,
                "task_id": "0x" + params.task_id.hex(),
                "initial_model_hash": "0x" + params.initial_model_hash.hex(),
                "param_count": fp.param_count,
                **{name: getattr(params, name) for name in _WINDOWS},
            }
        )
        _print_notes(notes, json_out=True)
    else:
        _print_notes(notes)
        console.print(f"deployed SwarmLedger at [bold]{ledger.address}[/] on {url}")
        console.print(f"its Consortium (members, parameters) is at {ledger.consortium_address}")
        console.print(
            f"task {escape(task)}{f' ({escape(source)})' if source else ''} (seed {seed or 0}): "
            f"task id 0x{params.task_id.hex()}, initial model 0x{params.initial_model_hash.hex()}",
            highlight=False,
            soft_wrap=True,
        )


@app.command("add-member")
def add_member(
    keystore: AdminKeyOpt,
    name: Annotated[
        str, typer.Option(help="Display name of the hospital, e.g. 'Cleveland Clinic'.")
    ],
    card: Annotated[
        Path | None,
        typer.Option(help="The hospital's member card: the JSON of `swarm keys show --json`."),
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="The hospital's address (without --card).")
    ] = None,
    public_key: Annotated[
        str | None, typer.Option(help="Its public key, hex (without --card).")
    ] = None,
    encryption_key: Annotated[
        str | None, typer.Option(help="Its X25519 encryption key, hex (without --card).")
    ] = None,
    encryption_key_sig: Annotated[
        str | None,
        typer.Option(help="Its identity key's signature over the encryption key (without --card)."),
    ] = None,
    multiaddr: Annotated[
        list[str] | None,
        typer.Option(help="Where its peer listens, e.g. /ip4/10.0.0.5/tcp/4001 (repeatable)."),
    ] = None,
    fund: Annotated[
        str | None,
        typer.Option(
            help="Give the hospital this much ETH for gas, e.g. 1 (a development chain, anvil, "
            "only; docs/admin-guide.md, Gas).",
            show_default=False,
        ),
    ] = None,
    chain_url: ChainUrlOpt = None,
    contract: ContractOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Admit a hospital. Its public key must belong to its address and its encryption key must
    carry its signature (the contract checks both; the card from `swarm keys show --json` has
    everything)."""
    from swarm.ledger.gas import can_mint, eth, top_up

    wei = _eth_to_wei(fund) if fund is not None else None
    if card is not None:
        try:
            card_data = json.loads(card.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read member card {card}: {exc}") from exc
    elif address and public_key and encryption_key and encryption_key_sig:
        card_data = {
            "address": address,
            "public_key": public_key,
            "encryption_key": encryption_key,
            "encryption_key_sig": encryption_key_sig,
        }
    else:
        raise ConfigError(
            "give --card, or all of --address, --public-key, --encryption-key and "
            "--encryption-key-sig"
        )
    for m in multiaddr or []:
        check_listen_multiaddr(m)
    account, key, peer_id, enc_key, enc_sig = check_member_card(card_data)
    ledger = ledger_client(chain_url, contract, load_identity(keystore, password_file))
    if wei is not None and not can_mint(ledger.chain):
        raise ConfigError(
            f"--fund works on a development chain (anvil) only; {ledger.chain.url} is not one: "
            f"send ETH to {account} from a funded account instead"
        )
    ledger.add_member(
        account,
        key,
        name,
        multiaddr or [],
        peer_id,
        encryption_key=enc_key,
        encryption_key_sig=enc_sig,
    )
    console.print(f"admitted {escape(name)} ({account}, peer {peer_id})")
    if wei is not None:
        balance = top_up(ledger.chain, account, wei)
        console.print(f"sent {eth(wei)} to {account} (balance {eth(balance)})", highlight=False)


def check_listen_multiaddr(multiaddr: str) -> None:
    """ConfigError (one line) for an address other peers cannot dial: an unspecified host
    (0.0.0.0, ::) or port 0 are what a host binds to, not where it can be reached."""
    parts = multiaddr.split("/")
    if len(parts) < 3 or parts[0] != "":
        raise ConfigError(
            f"--multiaddr {multiaddr} is not a multiaddr (e.g. /ip4/10.0.0.5/tcp/4001)"
        )
    for proto, value in zip(parts[1::2], parts[2::2], strict=False):
        if proto in ("ip4", "ip6") and value in ("0.0.0.0", "::", "0:0:0:0:0:0:0:0"):
            raise ConfigError(
                f"--multiaddr {multiaddr}: {value} is where a host listens, not where peers can "
                "reach it: give the hospital's reachable address"
            )
        if proto in ("tcp", "udp") and value.isdigit() and int(value) == 0:
            raise ConfigError(
                f"--multiaddr {multiaddr}: port 0 is chosen at start-up; give the fixed port "
                "its peer listens on"
            )


def _eth_to_wei(value: str) -> int:
    from decimal import Decimal, InvalidOperation

    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ConfigError(f"--fund {value!r} is not an amount of ETH (e.g. 1 or 0.5)") from None
    if not amount.is_finite() or amount <= 0:
        raise ConfigError(f"--fund must be a positive amount of ETH, not {value}")
    return int(amount * 10**18)


@app.command("remove-member")
def remove_member(
    keystore: AdminKeyOpt,
    address: Annotated[str, typer.Argument(help="Address of the hospital to remove.")],
    chain_url: ChainUrlOpt = None,
    contract: ContractOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Remove a hospital. Its record stays on the ledger; it can no longer take part."""
    ledger = ledger_client(chain_url, contract, load_identity(keystore, password_file))
    ledger.remove_member(address)
    console.print(f"removed {address}")


@app.command("add-admin")
def add_admin(
    keystore: AdminKeyOpt,
    address: Annotated[str, typer.Argument(help="Address to grant the admin role.")],
    chain_url: ChainUrlOpt = None,
    contract: ContractOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Grant the admin role (admit and remove hospitals, set parameters). The owner only."""
    ledger = ledger_client(chain_url, contract, load_identity(keystore, password_file))
    ledger.add_admin(address)
    console.print(f"{address} is an admin")


@app.command("remove-admin")
def remove_admin(
    keystore: AdminKeyOpt,
    address: Annotated[str, typer.Argument(help="Address to revoke the admin role from.")],
    chain_url: ChainUrlOpt = None,
    contract: ContractOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Revoke the admin role. The owner only (the owner's own role is handed over, not revoked:
    `swarm admin transfer-ownership`)."""
    ledger = ledger_client(chain_url, contract, load_identity(keystore, password_file))
    ledger.remove_admin(address)
    console.print(f"{address} is no longer an admin")


@app.command("transfer-ownership")
def transfer_ownership(
    keystore: AdminKeyOpt,
    new_owner: Annotated[str, typer.Argument(help="Address of the consortium's next owner.")],
    chain_url: ChainUrlOpt = None,
    contract: ContractOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Begin handing the consortium's ownership over (step 1 of 2). The new owner accepts with
    `swarm admin accept-ownership` once the consortium's delay (deploy --owner-delay) passed;
    until then you stay the owner, and a new transfer replaces this one."""
    ledger = ledger_client(chain_url, contract, load_identity(keystore, password_file))
    ledger.begin_ownership_transfer(new_owner)
    pending, after = ledger.consortium.functions.pendingDefaultAdmin().call()
    console.print(
        f"ownership offered to {pending}: it can accept after {_when_utc(after)} "
        "(swarm admin accept-ownership)"
    )


@app.command("accept-ownership")
def accept_ownership(
    keystore: AdminKeyOpt,
    chain_url: ChainUrlOpt = None,
    contract: ContractOpt = None,
    password_file: PasswordFileOpt = None,
) -> None:
    """Accept the ownership offered to your key (step 2 of 2): you become the consortium's
    owner; the previous owner loses the role."""
    identity = load_identity(keystore, password_file)
    ledger = ledger_client(chain_url, contract, identity)
    ledger.accept_ownership_transfer()
    console.print(f"{identity.address} is now the consortium's owner")


def _when_utc(timestamp: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@app.command("set-params")
def set_params(
    keystore: AdminKeyOpt,
    chain_url: ChainUrlOpt = None,
    contract: ContractOpt = None,
    password_file: PasswordFileOpt = None,
    min_peers: MinPeersOpt = None,
    join_window: JoinOpt = None,
    key_window: KeyOpt = None,
    commit_window: CommitOpt = None,
    merge_window: MergeOpt = None,
    ack_window: AckOpt = None,
    ckks_params_id: CkksOpt = None,
    task: TaskOpt = None,
    task_file: TaskFileOpt = None,
    seed: SeedOpt = None,
    initial_model_hash: InitialOpt = None,
    metrics: MetricsOpt = None,
    max_missed_commits: MaxMissedOpt = None,
    sit_out_rounds: SitOutOpt = None,
    mask_threshold: MaskThresholdOpt = None,
    epsilon_budget: EpsilonBudgetOpt = None,
    dp_delta: DpDeltaOpt = None,
    dp_noise: DpNoiseOpt = None,
    dp_clip: DpClipOpt = None,
    link_mb_s: LinkOpt = None,
    train_s: TrainOpt = None,
    hospitals: HospitalsOpt = None,
    force_windows: ForceWindowsOpt = False,
) -> None:
    """Change consortium parameters; the ones not given keep their current values. Prints
    what changed (old -> new). --task-file switches the consortium to another task file's task
    id and initial model (every hospital needs the new file; a new consortium is usually the
    cleaner way).

    With --task-file (the consortium's own file changes no task) or --task, the windows are
    checked against the task's model as on deploy: a shorter one given is refused, a current
    one shorter than the model needs is raised (--link-mb-s, --train-s, --hospitals).

    The change is a new parameter version: rounds opened from now on use it; a running round
    keeps the version it opened with.
    """
    ledger = ledger_client(chain_url, contract, load_identity(keystore, password_file))
    old = ledger.params()
    base = old
    param_count: int | None = None
    if task_file is not None:
        from swarm.training.taskfile import TaskFile, fingerprint

        if task is not None or seed is not None:
            raise ConfigError(
                "--task-file or --task/--seed, not both: the task file names its task and seed"
            )
        fp = fingerprint(TaskFile.load(task_file))
        param_count = fp.param_count
        base = dataclasses.replace(
            old, task_id=fp.task_id, initial_model_hash=fp.initial_model_hash
        )
    params = _merge_params(
        base,
        min_peers, join_window, key_window, commit_window, merge_window, ack_window,
        ckks_params_id, task, seed, initial_model_hash, metrics,
        max_missed_commits, sit_out_rounds,
        mask_threshold, epsilon_budget, dp_delta, dp_noise, dp_clip,
    )  # fmt: skip
    if task is not None:
        from swarm.training.task_id import task_fingerprint

        param_count = task_fingerprint(task, seed or 0).param_count
    notes: list[str] = []
    if param_count is not None:
        params, notes = fit_windows(
            params,
            {
                "key_window": key_window,
                "commit_window": commit_window,
                "merge_window": merge_window,
                "ack_window": ack_window,
            },
            param_count,
            link_mb_s=link_mb_s,
            train_s=train_s,
            hospitals=hospitals if hospitals is not None else ledger.active_member_count(),
            force=force_windows,
            derive=False,
            anyway="set it anyway",
        )
        check_params(params)
    elif link_mb_s is not None or train_s is not None or hospitals is not None or force_windows:
        raise ConfigError(
            "--link-mb-s, --train-s, --hospitals and --force-windows size the windows for a "
            "task's model: give the consortium's --task-file too"
        )
    changes = params_changes(old, params)
    if not changes:
        console.print("nothing to change: the ledger has these parameters already")
        return
    ledger.set_params(params)
    _print_notes(notes)
    for label, before, after in changes:
        console.print(f"{label}: {before} -> {after}", markup=False, highlight=False)


@app.command("params")
def show_params(
    chain_url: ChainUrlOpt = None,
    contract: ContractOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show the consortium's current parameters (anyone may read them)."""
    params = ledger_client(chain_url, contract).params()
    if json_out:
        print_json(_params_json(params))
        return
    for label, value in params_rows(params):
        console.print(f"{label:<20}{value}", markup=False, highlight=False, soft_wrap=True)
