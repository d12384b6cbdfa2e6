"""``mpcactors audit verify`` and ``mpcactors audit show``: read a party's audit file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import InputError, MpcactorsError
from ._options import _fail

__all__ = ["audit"]


@click.group()
def audit() -> None:
    """Check or list a party's audit file (one signed, hash-chained record per run)."""


@audit.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--cert", "certs", multiple=True, type=click.Path(path_type=Path),
    help="The signer's certificate or public key (PEM); every record must be signed by it (repeat for a renewed key).",
)
@click.option("--head", help="The SHA-256 the last record must have (from an earlier verify): catches records cut from the end.")
def verify(file: Path, certs: tuple[Path, ...], head: str | None) -> None:
    """Check FILE's hash chain and every record's signature; name the first record that breaks.

    Exit codes: 0 intact, 2 the file or a --cert cannot be read, 3 a record does not verify.
    """
    from ..audit import public_keys, verify_file

    try:
        keys = public_keys(certs)
        verdict = verify_file(file, keys)
        if verdict.broken is not None:
            good = f"records 1 to {verdict.records} verify" if verdict.records else "no record before it verifies"
            raise InputError(f"{verdict.broken} ({good})", file=str(file))
        if head is not None and head.lower() != verdict.head:
            raise InputError(
                f"the last record (record {verdict.records}) hashes to {verdict.head}, not --head {head}: "
                "records were cut from the end, or added", file=str(file),
            )
    except MpcactorsError as exc:
        _fail(exc)
        return
    signed = ", ".join(verdict.signers) or "nobody"
    against = "the given certificate" if certs else "the key each record names; give --cert to check whose it is"
    click.echo(f"{file}: {verdict.records} records, chain intact, every signature valid")
    click.echo(f"  signed by {signed} ({against})")
    click.echo(f"  head {verdict.head}")


def _outcome(outcome: Any) -> str:
    if not isinstance(outcome, dict):
        return "?"
    if outcome.get("status") == "ok":
        return f"ok {str(outcome.get('digest'))[:16]}"
    step = outcome.get("step")
    return f"{outcome.get('status')}: {outcome.get('error')}" + (f" at step {step}" if step is not None else "")


@audit.command()
@click.argument("file", type=click.Path(path_type=Path))
def show(file: Path) -> None:
    """List FILE's records: time, party, session, outcome and outputs (no checks: see `audit verify`)."""
    from ..audit import read_records

    try:
        records = read_records(file)
    except MpcactorsError as exc:
        _fail(exc)
        return
    table = Table(title=f"{file}: {len(records)} records")
    for column in ("#", "time", "party", "session", "outcome", "outputs"):
        table.add_column(column, justify="right" if column == "#" else "left")
    for number, record in enumerate(records, 1):
        if record is None:
            table.add_row(str(number), "(not a record)", "", "", "", "")
            continue
        outputs = record.get("outputs") or []
        cells = (
            str(record.get("time")), str(record.get("party")), str(record.get("session") or "-")[:8],
            _outcome(record.get("outcome")),
            ", ".join(f"{o.get('name')} {str(o.get('sha256'))[:12]}" for o in outputs if isinstance(o, dict)) or "-",
        )
        table.add_row(str(number), *map(escape, cells))  # a file's text, never markup
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)
    console.print(table)
