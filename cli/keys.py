"""`swarm keys`: a hospital's one key, its Ethereum address and its libp2p PeerID."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    JsonOpt,
    KeystoreOpt,
    PasswordFileOpt,
    console,
    load_identity,
    print_json,
    read_password,
)
from swarm.identity import Identity, member_card, save_keystore

app = typer.Typer(help="Create and inspect a hospital's key (one key: address and PeerID).")


@app.command("new")
def new(
    keystore: KeystoreOpt = Path("swarm-key.json"),
    password_file: PasswordFileOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing key file.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Create a new secp256k1 key in an encrypted keystore file.

    The same key signs the hospital's ledger transactions and identifies its peer on the network.
    Give its member card (`swarm keys show --json`: address, public key, PeerID, encryption key
    and its signature) to the consortium admin.
    """
    password = read_password(password_file, confirm=True)
    identity = Identity.generate()
    save_keystore(identity, keystore, password, overwrite=force)
    _show(identity, keystore, json_out)


@app.command("show")
def show(
    keystore: KeystoreOpt = Path("swarm-key.json"),
    password_file: PasswordFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Print the key's Ethereum address, PeerID, public key and encryption key (with --json: the
    member card an admin needs, the encryption key's signature included)."""
    _show(load_identity(keystore, password_file), keystore, json_out)


def _show(identity: Identity, keystore: Path, json_out: bool) -> None:
    card = member_card(identity)
    if json_out:
        print_json({**card, "keystore": str(keystore)})
        return
    console.print(f"keystore    {keystore}")
    console.print(f"address     {card['address']}")
    console.print(f"peer id     {card['peer_id']}")
    console.print(f"public key  {card['public_key']}")
    console.print(f"encryption  {card['encryption_key']}")
