"""Step 1: a party's input table, loaded and validated before anything is sent.

A data party (hospital or insurer) brings a CSV file: a header row, one id column and
numeric attribute columns. :func:`load_table` turns it into a :class:`PartyTable`
whose values are already fixed-point encoded (``crypto.fixedpoint.Params``), or
raises :class:`~mpcactors.errors.InputError` naming the file, the row (1-based line
number, header = row 1) and the column. Every check happens here, locally, so a bad
file stops the run before a single message leaves the party.

Error messages never contain a cell value or an id: both may be personal data, and
messages end up in logs. They name the place and the rule instead ("is not a
number"). Column names are public metadata and may appear.

Rules:

* the file is comma-separated UTF-8 (a byte-order mark is ignored), LF or CRLF lines;
* ids are normalised with :func:`~mpcactors.crypto.hashing.normalise_id`; an empty id,
  or two rows whose ids are equal after normalisation, is an error (rows dropped for a
  missing value included: a duplicate id is a data error whatever the row holds);
* a used attribute cell that is empty, blank or ``NA`` (any case) makes the row
  *missing*: it is dropped and counted in :attr:`PartyTable.dropped_missing`;
* any other used cell must parse as a finite float (Python ``float`` syntax) with
  ``|x| < 2**params.int_bits``;
* columns that are neither the id nor a used attribute are not parsed;
* blank lines are skipped;
* a record must fit on one line of at most :data:`MAX_LINE_BYTES` bytes; a longer line
  is rejected after reading at most about that many bytes of it, so a corrupt
  multi-gigabyte "line" is never held in memory.

:func:`plaintext_join` is the god-view oracle: the plaintext inner join that the
protocol computes obliviously, for simulations and tests only.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import stat
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice
from operator import itemgetter

import numpy as np

from .crypto.fixedpoint import Params
from .crypto.hashing import IdFold, id_normaliser
from .errors import ConfigError, InputError

__all__ = [
    "MAX_LINE_BYTES",
    "PartyTable",
    "check_binary",
    "load_table",
    "plaintext_join",
    "table_from_rows",
    "with_indicators",
]

#: the longest line accepted, in bytes, line terminator included
MAX_LINE_BYTES = 1 << 20

_HEADER_ROW = 1
#: bytes read from the file at a time
_BLOCK_BYTES = 1 << 20
#: rows validated and parsed together (bounds the memory held as text)
_CHUNK_ROWS = 1 << 11

# A chunk of consecutive records: (row number of the first, the records' fields).
_Chunk = tuple[int, list[Sequence[str]]]


@dataclass(frozen=True, eq=False)
class PartyTable:
    """One party's validated input, ready for steps 2 and 3.

    Attributes:
        source: the file path, or a label such as ``"<synthetic hospital>"``.
        ids: the normalised ids, in file order (rows with a missing value removed).
        columns: the attribute names, in the order of ``values``' columns.
        values: ``int64`` array of shape ``(len(ids), len(columns))`` holding
            ``round(x * 2**params.frac_bits)`` for each attribute value; read-only.
        dropped_missing: how many rows were dropped for a missing attribute value.
    """

    source: str
    ids: tuple[str, ...] = field(repr=False)
    columns: tuple[str, ...]
    values: np.ndarray = field(repr=False)
    dropped_missing: int

    def __post_init__(self) -> None:
        values = self.values
        expected = (len(self.ids), len(self.columns))
        if values.dtype != np.int64 or values.shape != expected:
            raise ValueError(
                f"values must be int64 of shape {expected}, got {values.dtype} {values.shape}"
            )
        if values.flags.writeable:
            values = values.copy()
            values.setflags(write=False)
            object.__setattr__(self, "values", values)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:  # never prints ids or values
        return (
            f"PartyTable(source={self.source!r}, rows={len(self)}, columns={self.columns!r}, "
            f"dropped_missing={self.dropped_missing})"
        )


# ---- public entry points -------------------------------------------------------------


def load_table(
    path: str | os.PathLike[str],
    *,
    id_column: str = "id",
    columns: Sequence[str] | None = None,
    params: Params = Params(),
    min_rows: int = 10,
    id_fold: IdFold | str = IdFold.CASEFOLD,
) -> PartyTable:
    """Load and validate a party's CSV file (comma-separated, UTF-8).

    Args:
        path: the CSV file.
        id_column: name of the id column in the header.
        columns: the attribute columns to use, in this order; ``None`` means every
            column except the id column, in header order.
        params: the run's fixed-point parameters (the value bound and the encoding).
        min_rows: fewest usable rows (after dropping missing values) accepted.
        id_fold: the case folding of ids (:class:`~mpcactors.crypto.hashing.IdFold`), a
            protocol parameter every data party must share.

    Raises:
        InputError: the file is missing, unreadable or invalid; the message names the
            file, row and column and never contains a cell value or an id.
        ConfigError: ``params`` encode values wider than ``int64``.
    """
    source = os.fspath(path)
    try:
        mode = os.stat(source).st_mode
    except FileNotFoundError:
        raise InputError("the file does not exist", file=source) from None
    except OSError as exc:
        raise InputError(f"the file cannot be read ({exc.strerror})", file=source) from None
    if stat.S_ISDIR(mode):
        raise InputError("is a directory, not a file", file=source)
    if not stat.S_ISREG(mode):
        raise InputError("is not a regular file", file=source)
    try:
        handle = open(source, "rb")  # noqa: SIM115 - closed by the with below
    except PermissionError:
        raise InputError("the file cannot be read (permission denied)", file=source) from None
    except OSError as exc:
        raise InputError(f"the file cannot be read ({exc.strerror})", file=source) from None
    with handle:
        reader = csv.reader(_text_lines(handle, source), strict=True)
        header = _read_header(reader, source)
        if header is None:
            raise InputError("the file is empty (expected a header row)", file=source)
        return _build_table(
            source,
            reader.line_num,
            header,
            _csv_chunks(reader, source),
            id_column=id_column,
            columns=columns,
            params=params,
            min_rows=min_rows,
            id_fold=id_fold,
        )


def table_from_rows(
    source: str,
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    id_column: str = "id",
    columns: Sequence[str] | None = None,
    params: Params = Params(),
    min_rows: int = 10,
    id_fold: IdFold | str = IdFold.CASEFOLD,
) -> PartyTable:
    """:func:`load_table` for in-memory rows (e.g. built-in synthetic data).

    ``header`` counts as row 1 and ``rows[k]`` as row ``k + 2`` in error messages.
    Every cell should be a ``str``, as if read from a CSV file.
    """
    if not header:
        raise InputError("the table is empty (expected a header row)", file=source)
    return _build_table(
        source,
        _HEADER_ROW,
        list(header),
        _row_chunks(rows),
        id_column=id_column,
        columns=columns,
        params=params,
        min_rows=min_rows,
        id_fold=id_fold,
    )


def with_indicators(
    table: PartyTable, categorical: Mapping[str, Sequence[int]], names: Callable[[str, Sequence[int]], Sequence[str]],
    params: Params,
) -> PartyTable:
    """``table`` with the one-hot columns of its categorical columns appended (the owner's
    encoding before step 3): per column, one column per level and one for every other
    value (``names(column, levels)`` names them), each 0 or 1, encoded like any value.

    Raises:
        InputError: a categorical column holds a value that is not a whole number (naming
            the file, the column and the first such row of the table; never the value).
    """
    if not categorical:
        return table
    one = 1 << params.frac_bits
    extra = []
    for column, levels in categorical.items():
        codes = table.values[:, table.columns.index(column)]
        fractional = np.flatnonzero(codes % one)
        if fractional.size:
            raise InputError(
                f"{table.source}: column {column!r} is categorical in the study plan (integer-coded levels), "
                f"but {fractional.size} of its values are not whole numbers (the first in data row "
                f"{int(fractional[0]) + 1} of the rows read)"
            )
        whole = codes // one
        hot = [whole == level for level in levels]
        hot.append(~np.any(hot, axis=0) if hot else np.ones(len(codes), bool))
        extra.extend(h.astype(np.int64) * one for h in hot)
    columns = table.columns + tuple(n for column, levels in categorical.items() for n in names(column, levels))
    values = np.column_stack([table.values, *extra]) if len(table) else np.zeros((0, len(columns)), np.int64)
    return PartyTable(table.source, table.ids, columns, values, table.dropped_missing)


def check_binary(table: PartyTable, columns: Sequence[str], params: Params) -> None:
    """Raise :class:`InputError` unless every value of ``columns`` is 0 or 1 (a logistic
    regression's target), naming the file, the column and the first other row; never the value."""
    one = 1 << params.frac_bits
    for column in columns:
        codes = table.values[:, table.columns.index(column)]
        other = np.flatnonzero((codes != 0) & (codes != one))
        if other.size:
            raise InputError(
                f"{table.source}: column {column!r} is the target of a logistic regression in the study plan, "
                f"so it must be 0 or 1, but {other.size} of its values are not (the first in data row "
                f"{int(other[0]) + 1} of the rows read)"
            )


def plaintext_join(*tables: PartyTable) -> tuple[tuple[str, ...], np.ndarray]:
    """The plaintext inner join on ids: the god view and the oracle of the protocol.

    Returns ``(columns, matrix)``: every table's columns, in the order the tables are
    given, and an ``int64`` matrix of encoded values with one row per id present in
    every table, in sorted id order. Never used by a real party (it needs every table
    in one place).

    Raises:
        ValueError: two tables share a column name (the joined columns would be
            ambiguous).
    """
    columns = tuple(c for table in tables for c in table.columns)
    if len(set(columns)) != len(columns):
        shared = sorted({c for c in columns if columns.count(c) > 1})
        raise ValueError(f"several tables have columns named {shared!r}")
    common = sorted(set(tables[0].ids).intersection(*(t.ids for t in tables[1:])))
    parts = []
    for table in tables:
        index = {id_: k for k, id_ in enumerate(table.ids)}
        rows = np.fromiter((index[i] for i in common), np.int64, len(common))
        parts.append(table.values[rows])
    return columns, np.concatenate(parts, axis=1)


# ---- reading CSV safely --------------------------------------------------------------


def _text_lines(handle: io.BufferedIOBase, source: str) -> Iterator[str]:
    """The file's decoded lines, each ending in ``\\n`` (except perhaps the last).

    The file is read in blocks of ``_BLOCK_BYTES``; an incomplete last line is carried
    over to the next block. A line longer than MAX_LINE_BYTES is rejected as soon as
    that many bytes without a newline have been seen, so at most about two blocks are
    ever held in memory. Blocks are decoded whole (much faster than line by line)
    and a decoding error is mapped back to its line. Only ``\\n`` ends a line (a
    ``\\r`` before it is left for the csv module, which accepts CRLF).
    """
    lines_before = 0
    carry = b""
    first = True
    while True:
        block = handle.read(_BLOCK_BYTES)
        if first:
            first = False
            if block.startswith(codecs.BOM_UTF8):
                block = block[len(codecs.BOM_UTF8) :]
        if not block:
            if carry:
                yield from _decode_lines(carry, lines_before, source)
            return
        data = carry + block
        cut = data.rfind(b"\n") + 1
        complete, carry = data[:cut], data[cut:]
        if len(carry) >= MAX_LINE_BYTES:  # with its newline it would exceed the limit
            _raise_too_long(source, lines_before + complete.count(b"\n") + 1)
        if not complete:
            continue
        lines = _decode_lines(complete, lines_before, source)
        # A line of more than MAX_LINE_BYTES bytes has more than a quarter as many
        # characters (UTF-8 uses at most 4 bytes per character): a cheap pre-check.
        if max(map(len, lines)) > MAX_LINE_BYTES // 4:
            for offset, line in enumerate(lines, start=1):
                if len(line.encode("utf-8")) > MAX_LINE_BYTES:
                    _raise_too_long(source, lines_before + offset)
        lines_before += len(lines)
        yield from lines


def _raise_too_long(source: str, row: int) -> None:
    raise InputError(
        f"the line is longer than {MAX_LINE_BYTES} bytes (1 MiB); is this really a CSV table?",
        file=source,
        row=row,
    )


def _decode_lines(data: bytes, lines_before: int, source: str) -> list[str]:
    """Decode ``data`` (whole lines) and split it after every ``\\n``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        raise InputError(
            f"the line is not valid UTF-8 (first bad byte at position "
            f"{exc.start - line_start + 1} of the line); save the file as UTF-8",
            file=source,
            row=lines_before + data.count(b"\n", 0, exc.start) + 1,
        ) from None
    return list(io.StringIO(text, newline="\n"))  # splits on "\n" only, keeps it


def _next_records(reader: Iterator[list[str]], count: int, source: str) -> list[list[str]]:
    try:
        return list(islice(reader, count))
    except csv.Error as exc:
        row = reader.line_num  # type: ignore[attr-defined]
        raise InputError(_csv_error_message(exc), file=source, row=row) from None


def _csv_error_message(exc: csv.Error) -> str:
    text = str(exc)
    if "new-line character" in text:
        return (
            "is not valid CSV: a carriage return inside an unquoted field "
            "(lines must end with LF or CRLF)"
        )
    if "unexpected end of data" in text:
        return "is not valid CSV: a quote opened on or before this row is never closed"
    return f"is not valid CSV ({text})"


def _read_header(reader: Iterator[list[str]], source: str) -> list[str] | None:
    """The first non-blank record, or None at the end of the file."""
    while True:
        before = reader.line_num  # type: ignore[attr-defined]
        records = _next_records(reader, 1, source)
        if not records:
            return None
        if records[0]:
            _check_single_line(records, before + 1, reader.line_num, source)  # type: ignore[attr-defined]
            return records[0]


def _csv_chunks(reader: Iterator[list[str]], source: str) -> Iterator[_Chunk]:
    """Chunks of records, each record exactly one line, so row numbers are line numbers."""
    while True:
        first_row = reader.line_num + 1  # type: ignore[attr-defined]
        records = _next_records(reader, _CHUNK_ROWS, source)
        if not records:
            return
        _check_single_line(records, first_row, reader.line_num, source)  # type: ignore[attr-defined]
        yield first_row, records  # type: ignore[misc]


def _check_single_line(
    records: list[list[str]], first_row: int, last_line: int, source: str
) -> None:
    """Reject a quoted field spanning lines (it would make rows and lines disagree).

    The records start on line ``first_row`` and the reader has consumed lines up to
    ``last_line``; if that is more lines than records, some field contains a line
    break, and the first such field names the row.
    """
    if last_line - first_row + 1 == len(records):
        return
    for offset, record in enumerate(records):
        if any("\n" in cell or "\r" in cell for cell in record):
            raise InputError(
                "a quoted field contains a line break (or a quote is not closed); "
                "every record must fit on one line",
                file=source,
                row=first_row + offset,
            )
    raise AssertionError("the csv reader consumed more lines than records without a line break")


def _row_chunks(rows: Iterable[Sequence[str]]) -> Iterator[_Chunk]:
    iterator = iter(rows)
    first_row = _HEADER_ROW + 1
    while chunk := list(islice(iterator, _CHUNK_ROWS)):
        yield first_row, chunk
        first_row += len(chunk)


# ---- validation ----------------------------------------------------------------------


def _has_no_empty_cell(cells: Sequence[str]) -> bool:
    return "" not in cells


def _is_missing(cell: str) -> bool:
    text = cell.strip()
    return not text or text.casefold() == "na"


def _select_columns(
    source: str,
    header_row: int,
    header: list[str],
    id_column: str,
    columns: Sequence[str] | None,
) -> tuple[int, list[int], tuple[str, ...]]:
    """Validate the header; return (id index, attribute indices, attribute names)."""
    names = [name.strip() for name in header]
    first_seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        earlier = first_seen.setdefault(name, position)
        if earlier != position:
            raise InputError(
                f"the column name {name!r} appears twice in the header "
                f"(fields {earlier} and {position})",
                file=source,
                row=header_row,
                column=name,
            )
    listing = ", ".join(repr(n) for n in names)
    hint = ""
    if len(names) == 1 and any(sep in names[0] for sep in (";", "\t")):
        hint = " (the file seems to use ';' or a tab as separator; only ',' is supported)"
    if id_column not in first_seen:
        raise InputError(
            f"the id column {id_column!r} is not in the header; the header has: {listing}{hint}",
            file=source,
            row=header_row,
        )
    id_index = first_seen[id_column] - 1
    if columns is None:
        wanted = [n for n in names if n != id_column]
    else:
        if isinstance(columns, str):
            raise TypeError("columns must be a sequence of column names, not a str")
        wanted = list(columns)
        for name in wanted:
            if name == id_column:
                raise InputError(
                    f"the id column {id_column!r} cannot also be an attribute column",
                    file=source,
                    column=name,
                )
            if name not in first_seen:
                raise InputError(
                    f"the column {name!r} is not in the header; the header has: {listing}{hint}",
                    file=source,
                    row=header_row,
                    column=name,
                )
        if len(set(wanted)) != len(wanted):
            raise InputError("an attribute column is requested twice", file=source)
    if not wanted:
        raise InputError(
            "there are no attribute columns (the header has only the id column)",
            file=source,
            row=header_row,
        )
    return id_index, [first_seen[n] - 1 for n in wanted], tuple(wanted)


class _Accumulator:
    """Validates chunks of records and collects ids and parsed values.

    The work is done per chunk with C-level loops (``map``, ``list.index``,
    ``np.fromiter``) rather than per row in Python: three times faster on a million
    rows. A chunk that fails a fast check is redone row by row, which finds missing
    values and locates the first error.
    """

    def __init__(
        self,
        source: str,
        width: int,
        id_index: int,
        id_column: str,
        used: list[int],
        names: tuple[str, ...],
        normalise: Callable[[str], str],
    ) -> None:
        self.source = source
        self.normalise = normalise
        self.width = width
        self.id_column = id_column
        self.names = names
        self.get_id = itemgetter(id_index)
        self.take: Callable[[Sequence[str]], Sequence[str]]
        if len(used) == 1:
            only = used[0]
            self.take = lambda row: (row[only],)
        else:
            self.take = itemgetter(*used)
        # every data row, dropped ones included: for the duplicate-id check at the end
        self.all_ids: list[str] = []
        self.all_rows = array("q")
        self.raw_if_changed: dict[int, str] = {}  # row -> raw id, where it differs
        # kept rows
        self.ids: list[str] = []
        self.kept_rows = array("q")
        self.blocks: list[np.ndarray] = []
        self.dropped = 0

    def add(self, first_row: int, records: list[Sequence[str]]) -> None:
        rows: Sequence[int] = range(first_row, first_row + len(records))
        widths = set(map(len, records))
        if widths != {self.width}:
            if 0 in widths:  # blank lines
                rows = [r for r, record in zip(rows, records, strict=True) if record]
                records = [record for record in records if record]
            for row, record in zip(rows, records, strict=True):
                if len(record) != self.width:
                    raise InputError(
                        f"the row has {len(record)} field{'s' if len(record) != 1 else ''} "
                        f"but the header has {self.width}",
                        file=self.source,
                        row=row,
                    )
            if not records:
                return
        raw_ids = list(map(self.get_id, records))
        try:
            ids = list(map(self.normalise, raw_ids))
        except (AttributeError, TypeError):
            bad = next(k for k, raw in enumerate(raw_ids) if not isinstance(raw, str))
            raise InputError(
                "the id is not text", file=self.source, row=rows[bad], column=self.id_column
            ) from None
        if "" in ids:
            raise InputError(
                "the id is empty", file=self.source, row=rows[ids.index("")], column=self.id_column
            )
        if raw_ids != ids:
            for row, raw, id_ in zip(rows, raw_ids, ids, strict=True):
                if raw != id_:
                    self.raw_if_changed[row] = raw
        self.all_ids.extend(ids)
        self.all_rows.extend(rows)

        cells = list(map(self.take, records))
        # The usual spelling of a missing value is an empty cell: parse the other rows
        # in one go. Any other failure (an "NA", a non-number, ...) redoes the chunk
        # row by row, in order, so that the first error in the file is reported.
        complete = list(map(_has_no_empty_cell, cells))
        if all(complete):
            keep: Sequence[int] = range(len(cells))
            kept_cells = cells
        else:
            keep = [k for k, ok in enumerate(complete) if ok]
            kept_cells = [cells[k] for k in keep]
        try:
            flat = map(float, chain.from_iterable(kept_cells))
            block = np.fromiter(flat, np.float64, len(kept_cells) * len(self.names))
        except (ValueError, TypeError):
            self._add_row_by_row(rows, cells, ids)
            return
        if len(keep) != len(cells):
            for k, ok in enumerate(complete):
                if not ok:
                    self._check_missing_row(rows[k], cells[k])
                    self.dropped += 1
        self.blocks.append(block)
        self.ids.extend(ids[k] for k in keep)
        self.kept_rows.extend(rows[k] for k in keep)

    def _add_row_by_row(
        self, rows: Sequence[int], cells: list[Sequence[str]], ids: list[str]
    ) -> None:
        parsed: list[float] = []
        for row, row_cells, id_ in zip(rows, cells, ids, strict=True):
            try:
                values = tuple(map(float, row_cells))
            except (ValueError, TypeError):
                self._check_missing_row(row, row_cells)
                self.dropped += 1
                continue
            parsed.extend(values)
            self.ids.append(id_)
            self.kept_rows.append(row)
        self.blocks.append(np.array(parsed, dtype=np.float64))

    def _check_missing_row(self, row: int, cells: Sequence[str]) -> None:
        """Raise unless the row's cells are numbers or missing, and one is missing."""
        missing = False
        for name, cell in zip(self.names, cells, strict=True):
            if isinstance(cell, str) and _is_missing(cell):
                missing = True
                continue
            try:
                float(cell)
            except (ValueError, TypeError):
                raise InputError(
                    "the value is not a number", file=self.source, row=row, column=name
                ) from None
        if not missing:  # pragma: no cover - float() failed on the row, so one cell did
            raise AssertionError("a row failed to parse but every cell parses")

    def check_unique_ids(self) -> None:
        """Raise for the first id (in file order) that repeats an earlier one."""
        if len(set(self.all_ids)) == len(self.all_ids):
            return
        first_row_of: dict[str, int] = {}
        for id_, row in zip(self.all_ids, self.all_rows, strict=True):
            earlier = first_row_of.setdefault(id_, row)
            if earlier == row:
                continue
            first_raw = self.raw_if_changed.get(earlier, id_)
            this_raw = self.raw_if_changed.get(row, id_)
            why = (
                " (the two ids differ only in surrounding whitespace, letter case or "
                "Unicode normalisation, which are ignored when matching ids)"
                if first_raw != this_raw
                else ""
            )
            raise InputError(
                f"duplicate id: this row has the same id as row {earlier}{why}",
                file=self.source,
                row=row,
                column=self.id_column,
            )


def _build_table(
    source: str,
    header_row: int,
    header: list[str],
    chunks: Iterable[_Chunk],
    *,
    id_column: str,
    columns: Sequence[str] | None,
    params: Params,
    min_rows: int,
    id_fold: IdFold | str,
) -> PartyTable:
    if params.value_bits - 1 > 62:
        raise ConfigError(
            f"encoded values need {params.value_bits} bits, more than int64 holds "
            f"(int_bits + frac_bits must be at most 62)"
        )
    if min_rows < 0:
        raise ValueError("min_rows must not be negative")
    id_index, used, names = _select_columns(source, header_row, header, id_column, columns)
    acc = _Accumulator(source, len(header), id_index, id_column, used, names, id_normaliser(id_fold))
    for first_row, records in chunks:
        acc.add(first_row, records)
    acc.check_unique_ids()
    real = np.concatenate([np.empty(0), *acc.blocks]).reshape(len(acc.ids), len(names))
    encoded = _encode(source, real, acc.kept_rows, names, params)
    if len(acc.ids) < min_rows:
        if not acc.ids and not acc.dropped:
            detail = "there are no data rows"
        else:
            dropped = f"{acc.dropped} row{'s' if acc.dropped != 1 else ''}"
            detail = (
                f"only {len(acc.ids)} usable data row{'s' if len(acc.ids) != 1 else ''} "
                f"({dropped} dropped for a missing value)"
            )
        raise InputError(f"{detail}; the minimum is {min_rows}", file=source)
    return PartyTable(
        source=source,
        ids=tuple(acc.ids),
        columns=names,
        values=encoded,
        dropped_missing=acc.dropped,
    )


def _encode(
    source: str,
    real: np.ndarray,
    kept_rows: array[int],
    names: tuple[str, ...],
    params: Params,
) -> np.ndarray:
    """Fixed-point encode exactly as ``Params.encode`` does, after checking every bound.

    ``np.rint`` and Python's ``round`` both round half to even, and scaling by a power
    of two is exact, so the result equals ``params.encode`` value for value.
    """
    scale = float(1 << params.frac_bits)
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.rint(real * scale)
        bad = (
            ~np.isfinite(real)
            | (np.abs(real) >= params.bound)
            | (np.abs(scaled) >= params.offset)
        )
    if bad.any():
        position = int(np.argmax(bad))  # the first bad cell in file order
        index, column = divmod(position, len(names))
        value = real[index, column]
        bound = f"|x| < 2**{params.int_bits} = {2**params.int_bits}"
        if not np.isfinite(value):
            message = f"the value is not a finite number (values must satisfy {bound})"
        elif abs(value) >= params.bound:
            message = f"the value is outside the fixed-point bound {bound}"
        else:
            message = f"the value rounds to the fixed-point bound ({bound} after encoding)"
        raise InputError(message, file=source, row=kept_rows[index], column=names[column])
    encoded = scaled.astype(np.int64)
    encoded.setflags(write=False)
    return encoded
