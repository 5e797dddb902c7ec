"""What `swarm peer run` prints for the peer's events: rich, plain and JSON lines."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from cli.app import log_handler
from cli.events import EventPrinter, LogFormat, format_option, route_logging
from swarm.errors import ConfigError, PeerUnreachableError
from swarm.peer import Peer

LONG_HASH = "ab" * 32
#: values as the peer emits them, and ones that rich would read as markup
EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("started", {"addrs": ["/ip4/127.0.0.1/tcp/4001/p2p/16Uiu2HAm"], "model": LONG_HASH}),
    ("opened", {"round": 3}),
    ("trained", {"round": 3, "samples": 227}),
    ("committed", {"round": 3, "attempt": 0, "bytes": 1_234_567}),
    ("finalized", {"round": 3, "model": LONG_HASH}),
    ("metrics", {"round": 3, "accuracy": 0.8333333333333334, "auc": 0.91}),
    ("lapsed", {"round": 4, "reason": "lapsed (too_few_joined)"}),
    ("warning", {"message": "push update (round 3): [/] [bold]x[/bold] [] failed"}),
    ("raw bytes", {"digest": b"\x01\x02"}),
]
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"


def test_rich_output_prints_markup_like_values_as_text() -> None:
    """The default output (the fault: rich.errors.MarkupError on almost every event, from a
    ``[]`` style around event names and ``[`` in values): every event prints, values as
    written, the long hash whole."""
    out = io.StringIO()
    printer = EventPrinter(
        LogFormat.rich, "Cleveland", console=Console(file=out, width=60, soft_wrap=True)
    )
    for kind, data in EVENTS:
        printer.event(kind, data)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(EVENTS)  # never wrapped, however narrow the terminal
    assert "[/] [bold]x[/bold] [] failed" in lines[7]
    assert f"model={LONG_HASH}" in lines[0] and "Cleveland started" in lines[0]
    assert "digest=0x0102" in lines[8]


def test_plain_lines_have_timestamps_and_whole_values(capsys: pytest.CaptureFixture[str]) -> None:
    """``--plain`` (the faults: no date in a line, rounded floats): an ISO timestamp with its
    offset, the level, the site, the event, every value in full; spaces quoted."""
    printer = EventPrinter(LogFormat.plain, "VA Long Beach")
    for kind, data in EVENTS:
        printer.event(kind, data)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(EVENTS)
    assert all(re.match(TIMESTAMP + r" (INFO|WARNING) \[VA Long Beach\] ", x) for x in lines)
    assert lines[5].endswith("metrics round=3 accuracy=0.8333333333333334 auc=0.91")
    assert f"model={LONG_HASH}" in lines[4]
    assert 'reason="lapsed (too_few_joined)"' in lines[6]
    assert " WARNING " in lines[7] and 'message="push update (round 3): [/]' in lines[7]


def test_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """``--log-format json``: one object a line with timestamp, level, site, event, fields;
    bytes as 0x-hex, numbers as numbers."""
    printer = EventPrinter(LogFormat.json, "Cleveland")
    for kind, data in EVENTS:
        printer.event(kind, data)
    objects = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(objects) == len(EVENTS)
    assert all(set(o) == {"timestamp", "level", "site", "event", "fields"} for o in objects)
    assert all(re.fullmatch(TIMESTAMP, o["timestamp"]) for o in objects)
    assert objects[5]["fields"] == {"round": 3, "accuracy": 0.8333333333333334, "auc": 0.91}
    assert objects[7]["level"] == "warning" and objects[8]["fields"] == {"digest": "0x0102"}


@pytest.fixture
def verbose() -> Iterator[None]:
    """The ``swarm`` loggers at DEBUG, as `swarm --verbose` sets them."""
    logger = logging.getLogger("swarm")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    yield
    logger.setLevel(level)


def test_a_warning_is_printed_once(capsys: pytest.CaptureFixture[str], verbose: None) -> None:
    """The peer logs a warning and also emits it as an event, and with --verbose logs every
    event too (the fault: every warning, and with --verbose every event, twice in a peer's
    log). With the logging routed as `peer run` routes it, the real ``Peer._warn`` and
    ``Peer.emit`` print one line each; a warning of anyone else is still logged, in the same
    form, and so is the peer's own error."""
    printer = EventPrinter(LogFormat.plain, "Cleveland")
    fake_peer = SimpleNamespace(on_event=printer.event)
    with route_logging(log_handler(), printer):
        Peer._warn(fake_peer, "push update (round 3)", PeerUnreachableError("no route"))  # type: ignore[arg-type]
        Peer.emit(fake_peer, "joined", round=3)  # type: ignore[arg-type]
        logging.getLogger("swarm.p2p.host").warning("dial failed")
        logging.getLogger("swarm.peer.runner").error("event handler failed")
    captured = capsys.readouterr()
    both = captured.out + captured.err
    assert both.count("no route") == 1 and both.count("joined") == 1
    assert re.search(TIMESTAMP + r" WARNING swarm\.p2p\.host: dial failed", captured.err)
    assert "event handler failed" in captured.err


def test_json_routes_log_records_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    """With ``--log-format json`` a library's warning is a JSON line too (event "log"), and
    libp2p's records, which do not propagate, are not printed bare."""
    printer = EventPrinter(LogFormat.json, "Cleveland")
    with route_logging(log_handler(), printer):
        logging.getLogger("swarm.p2p.host").warning("dial failed")
        logging.getLogger("libp2p.transport.tcp.tcp").error("Failed to open TCP stream")
    lines = capsys.readouterr().err.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["fields"]["logger"] for r in records] == [
        "swarm.p2p.host",
        "libp2p.transport.tcp.tcp",
    ]
    assert {r["event"] for r in records} == {"log"}


def test_plain_and_log_format_must_agree() -> None:
    """``--plain --log-format json`` contradict each other: refused, not one silently chosen."""
    assert format_option(True, None) is LogFormat.plain
    assert format_option(False, None) is LogFormat.rich
    assert format_option(False, LogFormat.json) is LogFormat.json
    with pytest.raises(ConfigError, match="contradict"):
        format_option(True, LogFormat.json)
