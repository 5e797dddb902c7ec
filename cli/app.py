"""The `swarm` application: command groups wired together, errors turned into one line."""

from __future__ import annotations

import logging
import sys

import typer
from typer.exceptions import TyperException

from cli import admin, audit, keys, localnet, model, peer, task
from cli.common import Interrupted, err_console, print_error
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
app.add_typer(model.app, name="model")
app.add_typer(task.app, name="task")
app.command("demo")(demo)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens, step by step."),
) -> None:
    log_handler()
    if verbose:  # our own steps, not every JSON-RPC request web3 makes
        logging.getLogger("swarm").setLevel(logging.DEBUG)
        logging.getLogger("localnet").setLevel(logging.DEBUG)


class _StderrHandler(logging.Handler):
    """Log records to whatever ``sys.stderr`` is now (a test's capture, a redirected file)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def log_handler() -> logging.Handler:
    """The one handler of the root logger that prints records (WARNING and up, and the
    ``swarm``/``localnet`` steps with --verbose) to stderr; installed once per process.
    ``swarm peer run`` gives it the format of its own lines (cli/events.py)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, _StderrHandler):
            return handler
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    return handler


def run(argv: list[str] | None = None) -> int:
    """Run the app on ``argv``; a SwarmError becomes one clear line and a non-zero exit code."""
    try:
        # Not standalone, click returns the code of a typer.Exit instead of raising it.
        result = app(args=argv, standalone_mode=False)
    except (SwarmError, FileExistsError) as exc:
        print_error(str(exc))
        return exc.exit_code if isinstance(exc, SwarmError) else 1
    except Interrupted as exc:  # SIGTERM or SIGHUP, after the command cleaned up
        err_console.print(f"stopped by {exc.name}", markup=False, highlight=False)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):  # typer itself returns 130 for a Ctrl-C
        err_console.print("aborted")
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code)
    except TyperException as exc:  # usage errors: unknown command, bad option value, ...
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            print_error(exc.format_message())
        return int(exc.exit_code)
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    # ``python -m cli.app`` (how localnet starts its peers) runs this file as __main__, and the
    # commands import cli.app again: run that copy, so that the process has one log handler
    # (with two, every record was written twice, once in the wrong format).
    from cli.app import main as _main

    _main()
