"""Step 1: loading and validating a party's input table.

Oracles: ``Params.encode`` for the fixed-point values, ``normalise_id`` for the ids,
and a dictionary join written here for :func:`plaintext_join`. Each validation case
checks the exception type, the located row/column and that the message says what is
wrong without echoing the offending cell.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpcactors.crypto.fixedpoint import OutOfBoundError, Params
from mpcactors.crypto.hashing import normalise_id
from mpcactors.data import (
    MAX_LINE_BYTES,
    PartyTable,
    load_table,
    plaintext_join,
    table_from_rows,
)
from mpcactors.errors import ConfigError, InputError

PARAMS = Params()


def write(tmp_path: Path, text: str | bytes, name: str = "table.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def csv_text(header: str, rows: list[str]) -> str:
    return "\n".join([header, *rows]) + "\n"


def good_rows(count: int, start: int = 0) -> list[str]:
    return [f"{i:09d},{i * 0.25 - 3:.2f},{100 + i}" for i in range(start, start + count)]


def load_error(path: Path, **kwargs: object) -> InputError:
    with pytest.raises(InputError) as info:
        load_table(path, **kwargs)  # type: ignore[arg-type]
    assert info.value.file == str(path)
    return info.value


# ---- the happy path -------------------------------------------------------------------


def test_values_are_fixed_point_encoded_like_params_encode(tmp_path: Path) -> None:
    rows = ["p1,1.5,-2.25,x", "p2,0,1048575.99,y", "p3,-1048575.5,3e2,z"] + [
        f"q{i},{i / 7:.6f},{-i},w" for i in range(10)
    ]
    path = write(tmp_path, csv_text("id,a,b,note", rows))
    table = load_table(path, columns=["a", "b"])
    reals = [[float(r.split(",")[1]), float(r.split(",")[2])] for r in rows]
    expected = [PARAMS.encode(row) for row in reals]
    assert table.values.dtype == np.int64
    assert table.values.tolist() == expected
    assert table.columns == ("a", "b")
    assert table.ids == tuple(r.split(",")[0] for r in rows)
    assert table.source == str(path)
    assert len(table) == len(rows)
    assert table.dropped_missing == 0


def test_values_are_read_only(tmp_path: Path) -> None:
    table = load_table(write(tmp_path, csv_text("id,a,b", good_rows(10))))
    with pytest.raises(ValueError):
        table.values[0, 0] = 1


def test_columns_none_means_all_but_the_id_in_header_order(tmp_path: Path) -> None:
    rows = [f"{i},{i}.5,{i}" for i in range(10)]
    table = load_table(write(tmp_path, csv_text("b,key,a", rows)), id_column="key")
    assert table.columns == ("b", "a")
    assert table.ids == tuple(f"{i}.5" for i in range(10))
    assert table.values[:, 0].tolist() == PARAMS.encode(range(10))


def test_requested_columns_come_in_the_requested_order(tmp_path: Path) -> None:
    table = load_table(write(tmp_path, csv_text("id,a,b", good_rows(10))), columns=["b", "a"])
    assert table.columns == ("b", "a")
    assert table.values[3].tolist() == PARAMS.encode([103, 3 * 0.25 - 3])


def test_ids_are_normalised(tmp_path: Path) -> None:
    raw = ["  AB1 ", "Straße", "e\u0301x"] + [f"id{i}" for i in range(7)]
    rows = [f"{r},{k}" for k, r in enumerate(raw)]
    table = load_table(write(tmp_path, csv_text("id,a", rows)))
    assert table.ids == tuple(normalise_id(r) for r in raw)
    assert table.ids[:3] == ("ab1", "strasse", "\u00e9x")


@pytest.mark.parametrize("missing", ["", "NA", "na", " Na ", "   "])
def test_missing_values_drop_the_row_and_are_counted(tmp_path: Path, missing: str) -> None:
    rows = good_rows(12)
    rows[3] = f"000000003,{missing},7"
    rows[8] = f"000000008,1.0,{missing}"
    table = load_table(write(tmp_path, csv_text("id,a,b", rows)))
    assert table.dropped_missing == 2
    assert len(table) == 10
    assert "000000003" not in table.ids and "000000008" not in table.ids


def test_missing_value_in_an_unused_column_keeps_the_row(tmp_path: Path) -> None:
    rows = [r + "," for r in good_rows(10)]
    table = load_table(write(tmp_path, csv_text("id,a,b,unused", rows)), columns=["a", "b"])
    assert table.dropped_missing == 0 and len(table) == 10


def test_unused_columns_are_not_parsed(tmp_path: Path) -> None:
    rows = [r + ",free text" for r in good_rows(10)]
    table = load_table(write(tmp_path, csv_text("id,a,b,name", rows)), columns=["a"])
    assert table.columns == ("a",)


def test_crlf_bom_blank_lines_and_no_final_newline_are_accepted(tmp_path: Path) -> None:
    text = "\ufeffid,a,b\r\n" + "\r\n".join(good_rows(5)) + "\r\n\r\n" + "\r\n".join(
        good_rows(5, start=5)
    )
    table = load_table(write(tmp_path, text))
    assert len(table) == 10
    assert table.columns == ("a", "b")


def test_quoted_fields_are_unquoted(tmp_path: Path) -> None:
    rows = [f'"{i}","{i}"' for i in range(10)]
    table = load_table(write(tmp_path, csv_text('"id","a"', rows)))
    assert table.values[:, 0].tolist() == PARAMS.encode(range(10))


def test_repr_shows_no_ids_or_values(tmp_path: Path) -> None:
    rows = [f"secret-id-{i},{123456 + i}" for i in range(10)]
    table = load_table(write(tmp_path, csv_text("id,a", rows)))
    text = repr(table)
    assert "secret-id" not in text and "123456" not in text
    assert "rows=10" in text


def test_party_table_makes_a_writable_array_read_only() -> None:
    values = np.zeros((1, 1), dtype=np.int64)
    table = PartyTable("<t>", ("a",), ("x",), values, 0)
    assert not table.values.flags.writeable
    values[0, 0] = 5  # the caller's array is not shared
    assert table.values[0, 0] == 0
    with pytest.raises(ValueError, match="int64 of shape"):
        PartyTable("<t>", ("a",), ("x", "y"), values, 0)


# ---- the file itself ------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    error = load_error(tmp_path / "nope.csv")
    assert "does not exist" in str(error)
    assert isinstance(error, InputError) and error.exit_code == 3


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    assert "is a directory" in str(load_error(tmp_path))


def test_fifo_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    assert "not a regular file" in str(load_error(fifo))


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The tests may run as root, for whom chmod 000 does not deny reading; simulate it.
    path = write(tmp_path, csv_text("id,a", good_rows(10)))

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("mpcactors.data.open", denied, raising=False)
    assert "permission denied" in str(load_error(path))


@pytest.mark.parametrize("text", ["", "\n\n", "\r\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    assert "empty" in str(load_error(write(tmp_path, text)))


def test_header_only(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "id,a,b\n"))
    assert "no data rows" in str(error) and "minimum is 10" in str(error)


def test_too_few_usable_rows_says_how_many_were_dropped(tmp_path: Path) -> None:
    rows = good_rows(9)
    rows[0] = "000000000,,1"
    rows[1] = "000000001,NA,1"
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert "only 7 usable data rows (2 rows dropped for a missing value)" in str(error)
    assert "minimum is 10" in str(error)
    assert len(load_table(write(tmp_path, csv_text("id,a,b", rows)), min_rows=7)) == 7


# ---- header ---------------------------------------------------------------------------


def test_id_column_not_in_header_lists_the_header(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, csv_text("patient,a,b", good_rows(10))))
    assert error.row == 1
    assert "'id' is not in the header" in str(error)
    assert "'patient', 'a', 'b'" in str(error)


def test_semicolon_separated_file_gets_a_hint(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "id;a\n1;2\n"))
    assert "';'" in str(error) and "only ','" in str(error)


def test_requested_column_not_in_header_lists_what_is_there(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, csv_text("id,a,b", good_rows(10))), columns=["a", "c"])
    assert error.row == 1 and error.column == "c"
    assert "'c' is not in the header" in str(error) and "'id', 'a', 'b'" in str(error)


def test_id_column_requested_as_attribute(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, csv_text("id,a,b", good_rows(10))), columns=["id"])
    assert "cannot also be an attribute" in str(error)


def test_column_requested_twice(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, csv_text("id,a,b", good_rows(10))), columns=["a", "a"])
    assert "requested twice" in str(error)


def test_duplicate_column_name_in_header(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, csv_text("id,a, a", good_rows(10))))
    assert (error.row, error.column) == (1, "a")
    assert "appears twice" in str(error) and "fields 2 and 3" in str(error)


def test_header_with_only_the_id_column(tmp_path: Path) -> None:
    assert "no attribute columns" in str(load_error(write(tmp_path, "id\n1\n")))


# ---- rows -----------------------------------------------------------------------------


@pytest.mark.parametrize("bad_row", ["000000004,1", "000000004,1,2,3"])
def test_wrong_number_of_fields(tmp_path: Path, bad_row: str) -> None:
    rows = good_rows(10)
    rows[4] = bad_row
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert error.row == 6
    assert "header has 3" in str(error)


def test_non_utf8_bytes_name_the_row(tmp_path: Path) -> None:
    data = csv_text("id,a,b", good_rows(10)).encode()
    lines = data.split(b"\n")
    lines[7] = lines[7].replace(b",", b",\xe9", 1)  # latin-1 'é'
    error = load_error(write(tmp_path, b"\n".join(lines)))
    assert error.row == 8
    assert "not valid UTF-8" in str(error)


def test_non_utf8_bytes_far_into_a_large_file(tmp_path: Path) -> None:
    # More than one read block: the line number must survive block boundaries.
    rows = good_rows(100_000)
    rows[95_000] = "000095000,\udcff,1"  # a lone 0xff byte after encoding
    data = csv_text("id,a,b", rows).encode("utf-8", "surrogateescape")
    assert len(data) > 2 * 2**20
    error = load_error(write(tmp_path, data))
    assert error.row == 95_002


def test_non_number_names_row_and_column_but_not_the_value(tmp_path: Path) -> None:
    rows = good_rows(10)
    rows[2] = "000000002,1.5,Jansen-1962"
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert (error.row, error.column) == (4, "b")
    assert "is not a number" in str(error)
    assert "Jansen" not in str(error)


def test_non_number_in_a_row_that_also_has_a_missing_value(tmp_path: Path) -> None:
    rows = good_rows(10)
    rows[2] = "000000002,,secret"
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert (error.row, error.column) == (4, "b")
    assert "secret" not in str(error)


def test_the_first_bad_row_in_file_order_is_reported(tmp_path: Path) -> None:
    rows = good_rows(10)
    rows[0] = "000000000,NA,1"  # dropped
    rows[1] = "000000001,abc,1"  # the first error
    rows[2] = "000000002,,def"  # a later error, in a row that also has an empty cell
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert (error.row, error.column) == (3, "a")


def test_whitespace_only_line_is_a_row_with_one_field(tmp_path: Path) -> None:
    rows = good_rows(10)
    rows[3] = "   "
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert error.row == 5 and "has 1 field but the header has 3" in str(error)


@pytest.mark.parametrize("literal", ["nan", "NaN", "inf", "-Infinity", "+inf"])
def test_nan_and_infinity_are_not_finite(tmp_path: Path, literal: str) -> None:
    rows = good_rows(10)
    rows[5] = f"000000005,{literal},1"
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert (error.row, error.column) == (7, "a")
    assert "not a finite number" in str(error)


@pytest.mark.parametrize("value", ["1048576", "-1048576", "1234567.89", "-1e300"])
def test_value_outside_the_bound_says_the_bound(tmp_path: Path, value: str) -> None:
    rows = good_rows(10)
    rows[9] = f"000000009,1,{value}"
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert (error.row, error.column) == (11, "b")
    assert "outside the fixed-point bound" in str(error) and "2**20" in str(error)
    assert "1234567" not in str(error) and "e300" not in str(error)


def test_bound_follows_params(tmp_path: Path) -> None:
    rows = good_rows(10)
    rows[0] = "000000000,1000,1"
    path = write(tmp_path, csv_text("id,a,b", rows))
    error = load_error(path, params=Params(int_bits=9))
    assert "2**9" in str(error)
    assert load_table(path, params=Params(int_bits=10)).values[0, 0] == 1000 * 2**24


def test_value_that_rounds_to_the_bound_is_rejected_like_params_encode(tmp_path: Path) -> None:
    edge = 2.0**20 - 2.0**-26  # below 2**20, but x * 2**24 rounds to 2**44
    with pytest.raises(OutOfBoundError):
        PARAMS.encode([edge])
    rows = good_rows(10)
    rows[1] = f"000000001,{edge!r},1"
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert (error.row, error.column) == (3, "a")
    assert "rounds to the fixed-point bound" in str(error)


def test_duplicate_id_names_both_rows(tmp_path: Path) -> None:
    rows = good_rows(10)
    rows[7] = "000000002,1,1"
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert (error.row, error.column) == (9, "id")
    assert "same id as row 4" in str(error)
    assert "whitespace" not in str(error)
    assert "000000002" not in str(error)


@pytest.mark.parametrize("variant", [" ab-12", "AB-12", "Ab-12\t"])
def test_duplicate_after_normalisation_says_so(tmp_path: Path, variant: str) -> None:
    rows = good_rows(10)
    rows[1] = "ab-12,1,1"
    rows[6] = f"{variant},2,2"
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert error.row == 8
    assert "same id as row 3" in str(error)
    assert "differ only in surrounding whitespace, letter case" in str(error)


def test_duplicate_id_in_a_dropped_row_is_still_an_error(tmp_path: Path) -> None:
    rows = good_rows(10)
    rows[5] = "000000001,,1"
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert error.row == 7 and "same id as row 3" in str(error)


@pytest.mark.parametrize("empty", ["", "   ", '""'])
def test_empty_id(tmp_path: Path, empty: str) -> None:
    rows = good_rows(10)
    rows[3] = f"{empty},1,1"
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert (error.row, error.column) == (5, "id")
    assert "id is empty" in str(error)


def test_quoted_line_break_is_rejected(tmp_path: Path) -> None:
    rows = good_rows(10)
    rows[4] = '000000004,"1\n2",3'
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert error.row == 6 and "line break" in str(error)


def test_unclosed_quote_is_rejected(tmp_path: Path) -> None:
    rows = good_rows(10)
    rows[9] = '000000009,"1,3'
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert "never closed" in str(error) or "line break" in str(error)


def test_carriage_return_inside_a_line(tmp_path: Path) -> None:
    rows = good_rows(10)
    rows[0] = "000000000,1\r2,3"
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert error.row == 2 and "carriage return" in str(error)


def test_line_longer_than_the_limit_is_rejected(tmp_path: Path) -> None:
    rows = good_rows(10)
    rows[2] = "000000002,1," + "9" * MAX_LINE_BYTES
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert error.row == 4 and "longer than" in str(error)


def test_a_4_gib_line_is_rejected_without_reading_it(tmp_path: Path) -> None:
    # A sparse file: 4 GiB of NUL bytes after the header, taking no disk space.
    # If the loader read the whole line, peak memory would be gigabytes.
    path = tmp_path / "huge.csv"
    with path.open("wb") as f:
        f.write(b"id,a\n")
        f.truncate(4 * 2**30)
    tracemalloc.start()
    try:
        error = load_error(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.row == 2 and "longer than" in str(error)
    assert peak < 16 * 2**20


def test_rows_across_chunk_boundaries(tmp_path: Path) -> None:
    # Enough rows for several internal chunks; errors keep their line numbers.
    rows = good_rows(10_000)
    for k in range(0, 10_000, 97):
        rows[k] = f"{k:09d},,1"
    rows[5000] = ""  # a blank line: row numbers still equal line numbers
    table = load_table(write(tmp_path, csv_text("id,a,b", rows)))
    dropped = len(range(0, 10_000, 97))
    assert table.dropped_missing == dropped
    assert len(table) == 10_000 - 1 - dropped
    rows[9_001] = "000000003,1,1"  # duplicates row 5 (id 3)
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert error.row == 9_003 and "same id as row 5" in str(error)
    rows[9_001] = "000009001,1,x"
    error = load_error(write(tmp_path, csv_text("id,a,b", rows)))
    assert (error.row, error.column) == (9_003, "b")


# ---- in-memory rows -------------------------------------------------------------------


def test_table_from_rows_validates_the_same_way() -> None:
    header = ["id", "a"]
    rows = [[f"{i}", f"{i}.5"] for i in range(10)]
    table = table_from_rows("<synthetic hospital>", header, rows, id_column="id")
    assert table.source == "<synthetic hospital>"
    assert table.values[:, 0].tolist() == PARAMS.encode(i + 0.5 for i in range(10))
    rows[4][1] = "oops"
    with pytest.raises(InputError) as info:
        table_from_rows("<synthetic hospital>", header, rows)
    assert (info.value.file, info.value.row, info.value.column) == ("<synthetic hospital>", 6, "a")
    with pytest.raises(InputError, match="empty"):
        table_from_rows("<t>", [], [])


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.floats(min_value=-(2.0**20) + 1, max_value=2.0**20 - 1, allow_nan=False),
        min_size=1,
        max_size=30,
    )
)
def test_encoding_matches_params_encode(values: list[float]) -> None:
    rows = [[str(k), repr(v)] for k, v in enumerate(values)]
    table = table_from_rows("<t>", ["id", "x"], rows, min_rows=1)
    assert table.values[:, 0].tolist() == PARAMS.encode(values)


# ---- the plaintext join ---------------------------------------------------------------


def test_plaintext_join_matches_a_dictionary_join() -> None:
    hospital = table_from_rows(
        "<h>",
        ["id", "h1", "h2"],
        [[f"p{i}", str(i), str(-i)] for i in (5, 3, 9, 1, 7, 2)],
        min_rows=1,
    )
    insurer = table_from_rows(
        "<i>", ["id", "y"], [[f"P{i} ", str(10 * i)] for i in (2, 8, 9, 5, 4)], min_rows=1
    )
    columns, matrix = plaintext_join(hospital, insurer)
    assert columns == ("h1", "h2", "y")
    h = dict(zip(hospital.ids, hospital.values.tolist(), strict=True))
    i = dict(zip(insurer.ids, insurer.values.tolist(), strict=True))
    shared = sorted(h.keys() & i.keys())
    assert shared == ["p2", "p5", "p9"]
    assert matrix.dtype == np.int64
    assert matrix.tolist() == [h[k] + i[k] for k in shared]


def test_plaintext_join_rejects_clashing_column_names() -> None:
    a = table_from_rows("<h>", ["id", "x"], [["1", "1"]], min_rows=1)
    with pytest.raises(ValueError, match="'x'"):
        plaintext_join(a, a)


def test_the_id_fold_decides_whether_case_variants_are_one_person() -> None:
    rows = [["AB12", "1"], ["ab12", "2"]]
    with pytest.raises(InputError, match="duplicate"):
        table_from_rows("<t>", ["id", "x"], rows, min_rows=1)  # casefold (default): one person twice
    table = table_from_rows("<t>", ["id", "x"], rows, min_rows=1, id_fold="none")
    assert table.ids == ("AB12", "ab12")
    with pytest.raises(ConfigError, match="id fold must be one of"):
        table_from_rows("<t>", ["id", "x"], rows, min_rows=1, id_fold="lower")
