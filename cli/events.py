"""What `swarm peer run` prints: one line per peer event, and the log records in the same form.

Three formats (``--log-format``):

- ``rich`` (default): for a person at a terminal; the time, the site in bold, the event in
  colour. Every value is printed as text (``rich.text.Text``), never read as markup: values
  come from the ledger and other peers, and a ``[`` in one is not a style.
- ``plain``: for files and services; one line per event, nothing styled:
  ``2025-05-01T12:00:00.123+02:00 INFO [Cleveland] finalized round=3 model=ab…`` (logfmt-like:
  ``key=value``, a value with a space or quote in it is quoted as JSON quotes strings).
- ``json``: one JSON object per line: ``timestamp``, ``level``, ``site``, ``event``, ``fields``.

Log records (warnings of the libraries, ``--verbose`` steps) go to stderr in the same format,
events to stdout. The peer both logs and emits each of its events; the log record of an event
is dropped here so that every event, warnings included, is printed once.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.text import Text


class LogFormat(enum.StrEnum):
    rich = "rich"
    plain = "plain"
    json = "json"


#: events printed at a level other than INFO
_LEVELS = {"warning": "WARNING", "privacy budget spent": "WARNING"}
#: the colour of an event in the rich format
_STYLES = {
    "finalized": "green",
    "done": "green",
    "warning": "yellow",
    "lapsed": "red",
    "privacy budget spent": "yellow",
}


def timestamp(seconds: float | None = None) -> str:
    """ISO 8601, local time with its UTC offset, to the millisecond."""
    moment = dt.datetime.now() if seconds is None else dt.datetime.fromtimestamp(seconds)
    return moment.astimezone().isoformat(timespec="milliseconds")


def plain_value(value: Any) -> str:
    """A value in full: bytes as 0x-hex, floats as Python prints them (no rounding), lists
    comma-separated; quoted (JSON) when it holds a space, a quote, an ``=`` or nothing."""
    if isinstance(value, bytes):
        text = "0x" + value.hex()
    elif isinstance(value, list | tuple | set | frozenset):
        text = ",".join(plain_value(v) for v in value)
    else:
        text = str(value)
    if text == "" or any(c in text for c in ' "=\t\n\\'):
        return json.dumps(text, ensure_ascii=False)
    return text


def json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class EventPrinter:
    """Prints a peer's events (``Peer(on_event=printer.event)``) in one of the formats."""

    def __init__(self, fmt: LogFormat, site: str, *, console: Console | None = None) -> None:
        self.fmt = LogFormat(fmt)
        self.site = site
        self._console = console

    @property
    def console(self) -> Console:
        # Made when first used, so it writes to the sys.stdout of that moment.
        if self._console is None:
            self._console = Console(soft_wrap=True)
        return self._console

    def event(self, kind: str, data: Mapping[str, Any]) -> None:
        level = _LEVELS.get(kind, "INFO")
        if self.fmt is LogFormat.json:
            line = json.dumps(
                {
                    "timestamp": timestamp(),
                    "level": level.lower(),
                    "site": self.site,
                    "event": kind,
                    "fields": json_value(dict(data)),
                },
                ensure_ascii=False,
            )
            self._write(line)
        elif self.fmt is LogFormat.plain:
            fields = "".join(f" {k}={plain_value(v)}" for k, v in data.items())
            self._write(f"{timestamp()} {level} [{self.site}] {kind}{fields}")
        else:
            text = Text(dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S "), style="dim")
            text.append(self.site, style="bold")
            text.append(f" {kind}", style=_STYLES.get(kind, ""))
            for k, v in data.items():
                shown = f"{v:.6g}" if isinstance(v, float) else plain_value(v)
                text.append(f" {k}=", style="dim")
                text.append(shown)
            self.console.print(text, highlight=False, soft_wrap=True)

    @staticmethod
    def _write(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def log_formatter(self) -> logging.Formatter:
        """Log records in this printer's format (plain text for the rich format: stderr)."""
        return _JsonFormatter() if self.fmt is LogFormat.json else _PlainFormatter()


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{timestamp(record.created)} {record.levelname} {record.name}: "
        line += record.getMessage()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {"logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            fields["traceback"] = self.formatException(record.exc_info)
        return json.dumps(
            {
                "timestamp": timestamp(record.created),
                "level": record.levelname.lower(),
                "event": "log",
                "fields": fields,
            },
            ensure_ascii=False,
        )


#: the peer's own echo of an event: ``Peer.emit`` logs it, ``Peer._warn`` logs a warning
_ECHOES = {("swarm.peer.runner", "emit"), ("swarm.peer.runner", "_warn")}


def is_event_echo(record: logging.LogRecord) -> bool:
    """A log record that repeats an event the printer prints anyway. Marked by the peer with
    ``extra={"swarm_event": True}``, or known by where it is logged. An ERROR (a failing
    event handler) is never an echo."""
    if record.levelno >= logging.ERROR:
        return False
    return bool(getattr(record, "swarm_event", False)) or (
        (record.name, record.funcName) in _ECHOES
    )


@contextmanager
def route_logging(handler: logging.Handler, printer: EventPrinter) -> Iterator[None]:
    """Within the block, ``handler`` prints records in the printer's format, without the
    peer's echoes of its events."""
    previous = handler.formatter
    handler.setFormatter(printer.log_formatter())
    echo_filter = _EchoFilter()
    handler.addFilter(echo_filter)
    # libp2p's loggers do not propagate (libp2p.utils.logging): their records would reach
    # stderr bare through logging's last resort, not in this format (nor as JSON).
    detached = [
        logger
        for logger in (logging.getLogger(name) for name in _NON_PROPAGATING)
        if not logger.propagate and handler not in logger.handlers
    ]
    for logger in detached:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in detached:
            logger.removeHandler(handler)
        handler.removeFilter(echo_filter)
        handler.setFormatter(previous)


#: libraries whose loggers are set not to propagate to the root logger
_NON_PROPAGATING = ("libp2p",)


class _EchoFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not is_event_echo(record)


def format_option(plain: bool, log_format: LogFormat | None) -> LogFormat:
    """``--plain`` is ``--log-format plain``; the two must not disagree."""
    from swarm.errors import ConfigError

    if plain and log_format not in (None, LogFormat.plain):
        raise ConfigError(f"--plain and --log-format {log_format} contradict each other")
    if plain:
        return LogFormat.plain
    return log_format or LogFormat.rich


__all__ = ["EventPrinter", "LogFormat", "format_option", "route_logging"]
