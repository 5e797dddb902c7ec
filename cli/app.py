"""The `swarm` application: command groups wired together, errors turned into one line."""

from __future__ import annotations

import logging
import sys

import typer
from typer.exceptions import TyperException

from cli import admin, audit, keys, localnet, peer
from cli.common import err_console
from cli.demo import demo
from swarm.errors import SwarmError

app = typer.Typer(
    name="swarm",
    help="Swarm learning for hospitals: train one model together, with no central server and "
    "no patient data leaving the hospital.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(keys.app, name="keys")
app.add_typer(admin.app, name="admin")
app.add_typer(peer.app, name="peer")
app.add_typer(audit.app, name="audit")
app.add_typer(localnet.app, name="localnet")
app.command("demo")(demo)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens, step by step."),
) -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if verbose:  # our own steps, not every JSON-RPC request web3 makes
        logging.getLogger("swarm").setLevel(logging.DEBUG)
        logging.getLogger("localnet").setLevel(logging.DEBUG)


def run(argv: list[str] | None = None) -> int:
    """Run the app on ``argv``; a SwarmError becomes one clear line and a non-zero exit code."""
    try:
        app(args=argv, standalone_mode=False)
    except (SwarmError, FileExistsError) as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code if isinstance(exc, SwarmError) else 1
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code)
    except TyperException as exc:  # usage errors: unknown command, bad option value, ...
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err_console.print(f"[red]error:[/] {exc.format_message()}", highlight=False)
        return int(exc.exit_code)
    return 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
