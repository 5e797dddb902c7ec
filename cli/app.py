"""The `swarm` application: command groups wired together, errors turned into one line."""

from __future__ import annotations

import logging
import sys

import typer

from cli import admin, audit, keys, localnet
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
app.add_typer(audit.app, name="audit")
app.add_typer(localnet.app, name="localnet")
app.command("demo")(demo)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens, step by step."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    """Entry point: run the app; a SwarmError becomes one clear line and a non-zero exit."""
    try:
        app(standalone_mode=False)
    except SwarmError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except FileExistsError as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
