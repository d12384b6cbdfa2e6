"""The synthetic heart-failure cohort.

The key property is checked against an independent oracle: an ordinary least-squares
fit (scikit-learn ``LinearRegression``) on the plaintext join of the two tables, as
loaded by ``mpcactors.data``, must recover the documented true coefficients within
a few standard errors, and its residuals must have the documented noise level.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from mpcactors.crypto.fixedpoint import Params
from mpcactors.data import load_table, plaintext_join, table_from_rows
from mpcactors.synth import (
    HOSPITAL_COLUMNS,
    INSURER_COLUMNS,
    NOISE_SD,
    TARGET,
    Cohort,
    make_cohort,
    write_cohort,
)

PARAMS = Params()


def ids_of(rows: list[list[str]]) -> list[str]:
    return [row[0] for row in rows]


def test_same_seed_same_cohort_other_seed_other_cohort() -> None:
    a, b = make_cohort(300, 0.4, seed=11), make_cohort(300, 0.4, seed=11)
    assert a == b
    c = make_cohort(300, 0.4, seed=12)
    assert c.hospital_rows != a.hospital_rows
    assert c.intersection_ids != a.intersection_ids


@pytest.mark.parametrize(("rows", "overlap"), [(100, 0.5), (7, 0.5), (101, 0.33), (50, 0.0), (50, 1.0)])
def test_overlap_is_exact(rows: int, overlap: float) -> None:
    cohort = make_cohort(rows, overlap, seed=3)
    hospital, insurer = set(ids_of(cohort.hospital_rows)), set(ids_of(cohort.insurer_rows))
    assert len(cohort.hospital_rows) == len(cohort.insurer_rows) == rows
    assert len(hospital) == len(insurer) == rows  # unique within each party
    assert hospital & insurer == cohort.intersection_ids
    assert len(cohort.intersection_ids) == round(overlap * rows)


def test_ids_are_nine_digit_strings_from_the_id_space() -> None:
    cohort = make_cohort(2000, 0.5, seed=5)
    ids = ids_of(cohort.hospital_rows) + ids_of(cohort.insurer_rows)
    assert all(len(i) == 9 and i.isdigit() for i in ids)
    numbers = np.array(sorted({int(i) for i in ids}), dtype=np.float64)
    assert cohort.id_space == 10**9
    assert numbers.max() < 10**9
    # Uniform on [0, 1e9): the sample mean is within 5 standard errors of the middle.
    assert abs(numbers.mean() / 1e9 - 0.5) < 5 * math.sqrt(1 / 12 / len(numbers))


def test_a_small_id_space_can_be_used_up_exactly() -> None:
    cohort = make_cohort(30, 0.5, seed=1, id_space=45)  # needs 2*30 - 15 = 45 ids
    ids = set(ids_of(cohort.hospital_rows)) | set(ids_of(cohort.insurer_rows))
    assert ids == {f"{i:09d}" for i in range(45)}


def test_rows_are_shuffled() -> None:
    cohort = make_cohort(200, 1.0, seed=2)
    # Full overlap: same id set, but each party has its own random order.
    assert ids_of(cohort.hospital_rows) != ids_of(cohort.insurer_rows)
    assert ids_of(cohort.hospital_rows) != sorted(ids_of(cohort.hospital_rows))


def test_default_headers() -> None:
    cohort = make_cohort(20, 0.5)
    assert cohort.hospital_header == ("id", *HOSPITAL_COLUMNS)
    assert cohort.insurer_header == ("id", *INSURER_COLUMNS)
    assert cohort.insurer_header[-1] == TARGET
    assert cohort.feature_columns == HOSPITAL_COLUMNS + INSURER_COLUMNS[:-1]


def test_fifteen_plus_fifteen_attributes() -> None:
    cohort = make_cohort(50, 0.5, hospital_attributes=15, insurer_attributes=15)
    assert len(cohort.hospital_header) == 16 and len(cohort.insurer_header) == 16
    assert cohort.hospital_header[6:] == tuple(f"lab_{k}" for k in range(1, 11))
    assert cohort.insurer_header[5:-1] == tuple(f"claims_{k}" for k in range(1, 11))
    assert cohort.insurer_header[-1] == TARGET
    assert len(cohort.true_coefficients) == 29
    assert all(len(row) == 16 for row in cohort.hospital_rows + cohort.insurer_rows)


def test_fewer_attributes() -> None:
    cohort = make_cohort(20, 0.5, hospital_attributes=2, insurer_attributes=1)
    assert cohort.hospital_header == ("id", "age", "ejection_fraction")
    assert cohort.insurer_header == ("id", TARGET)
    assert tuple(cohort.true_coefficients) == ("age", "ejection_fraction")


def test_model_is_sparse() -> None:
    for cohort in (make_cohort(10), make_cohort(10, hospital_attributes=15, insurer_attributes=15)):
        coefficients = list(cohort.true_coefficients.values())
        zeros = sum(c == 0.0 for c in coefficients)
        assert 0.35 <= zeros / len(coefficients) <= 0.65


RANGES = {
    "age": (40, 95),
    "ejection_fraction": (10, 70),
    "nt_probnp": (100, 35000),
    "creatinine": (40, 400),
    "systolic_bp": (80, 200),
    "gp_visits": (0, 30),
    "medication_cost": (0, 100000),
    "prior_admissions": (0, 10),
    "chronic_conditions": (0, 8),
}


def columns_of(header: tuple[str, ...], rows: list[list[str]]) -> dict[str, list[float]]:
    return {
        name: [float(row[j]) for row in rows if row[j] != ""]
        for j, name in enumerate(header)
        if j > 0
    }


def test_values_are_realistic_two_decimal_numbers_within_the_bound() -> None:
    cohort = make_cohort(3000, 0.5, seed=4, hospital_attributes=15, insurer_attributes=15)
    values = columns_of(cohort.hospital_header, cohort.hospital_rows)
    values |= columns_of(cohort.insurer_header, cohort.insurer_rows)
    for name, column in values.items():
        assert all(abs(x) < 2**20 for x in column), name
        assert all(round(x, 2) == x for x in column), name
        if name in RANGES:
            low, high = RANGES[name]
            assert low <= min(column) and max(column) <= high, name
    # The latent severity correlates the attributes (e.g. NT-proBNP and ejection fraction).
    joined_rows = [r for r in cohort.hospital_rows if "" not in r]
    ef = np.array([float(r[2]) for r in joined_rows])
    bnp = np.log([float(r[3]) for r in joined_rows])
    assert np.corrcoef(ef, bnp)[0, 1] < -0.2


def test_missing_values_follow_the_rate_and_never_hit_ids() -> None:
    rows, rate = 4000, 0.02
    cohort = make_cohort(rows, 0.5, seed=6, missing_rate=rate)
    for table in (cohort.hospital_rows, cohort.insurer_rows):
        assert all(row[0] for row in table)
        cells = rows * (len(table[0]) - 1)
        empty = sum(cell == "" for row in table for cell in row[1:])
        # Binomial(cells, rate): within 5 standard deviations.
        assert abs(empty - cells * rate) < 5 * math.sqrt(cells * rate * (1 - rate))
    none = make_cohort(500, 0.5, missing_rate=0.0)
    assert all("" not in row for row in none.hospital_rows + none.insurer_rows)


def test_insurer_only_rows_have_a_target_too() -> None:
    cohort = make_cohort(500, 0.2, seed=8, missing_rate=0.0)
    insurer_only = [r for r in cohort.insurer_rows if r[0] not in cohort.intersection_ids]
    assert len(insurer_only) == 400
    assert all(r[-1] != "" for r in insurer_only)


def joined_arrays(cohort: Cohort) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    hospital = table_from_rows(
        "<synthetic hospital>", cohort.hospital_header, cohort.hospital_rows, min_rows=1
    )
    insurer = table_from_rows(
        "<synthetic insurer>", cohort.insurer_header, cohort.insurer_rows, min_rows=1
    )
    columns, matrix = plaintext_join(hospital, insurer)
    real = matrix / 2.0**PARAMS.frac_bits
    target = columns.index(TARGET)
    features = tuple(c for c in columns if c != TARGET)
    return np.delete(real, target, axis=1), real[:, target], features


@pytest.mark.parametrize(
    ("hospital_attributes", "insurer_attributes"), [(5, 5), (15, 15), (3, 2)]
)
def test_target_follows_the_sparse_linear_model_on_the_join(
    hospital_attributes: int, insurer_attributes: int
) -> None:
    cohort = make_cohort(
        4000,
        0.8,
        seed=9,
        hospital_attributes=hospital_attributes,
        insurer_attributes=insurer_attributes,
    )
    x, y, features = joined_arrays(cohort)
    assert features == cohort.feature_columns
    fit = LinearRegression().fit(x, y)
    residuals = y - fit.predict(x)
    m, d = x.shape
    # Residual sd: the Gaussian noise plus rounding the target to 0.01 (negligible).
    sigma = math.sqrt(residuals @ residuals / (m - d - 1))
    assert abs(sigma - NOISE_SD) < 0.1 * NOISE_SD
    # Each OLS coefficient is within 5 standard errors of the truth:
    # se_j = sigma * sqrt([(Xc^T Xc)^-1]_jj) with Xc the centred design.
    centred = x - x.mean(axis=0)
    standard_errors = sigma * np.sqrt(np.diag(np.linalg.inv(centred.T @ centred)))
    truth = np.array([cohort.true_coefficients[f] for f in features])
    assert np.all(np.abs(fit.coef_ - truth) < 5 * standard_errors), (fit.coef_, truth)
    # The intercept agrees as well (its error is dominated by the slopes' errors, so
    # compare predictions at the mean point instead of the raw intercept).
    mean_point = x.mean(axis=0)
    predicted = fit.intercept_ + mean_point @ fit.coef_
    true_mean = cohort.true_intercept + mean_point @ truth
    assert abs(predicted - true_mean) < 5 * sigma / math.sqrt(m)


def test_csv_files_load_back_with_the_right_missing_counts(tmp_path: Path) -> None:
    cohort = make_cohort(400, 0.5, seed=10, missing_rate=0.03)
    hospital_path, insurer_path = write_cohort(cohort, tmp_path / "nested" / "out")
    assert hospital_path == tmp_path / "nested" / "out" / "hospital.csv"
    assert insurer_path.name == "insurer.csv"
    for path, header, rows in (
        (hospital_path, cohort.hospital_header, cohort.hospital_rows),
        (insurer_path, cohort.insurer_header, cohort.insurer_rows),
    ):
        loaded = load_table(path)
        in_memory = table_from_rows("<m>", header, rows)
        assert loaded.dropped_missing == sum("" in row for row in rows) > 0
        assert loaded.columns == header[1:]
        assert loaded.ids == in_memory.ids == tuple(r[0] for r in rows if "" not in r)
        assert np.array_equal(loaded.values, in_memory.values)
    assert path.read_text().startswith("id,")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rows": 0},
        {"overlap": 1.5},
        {"overlap": -0.1},
        {"missing_rate": 1.0},
        {"hospital_attributes": 0},
        {"insurer_attributes": 0},
        {"id_space": 10**9 + 1},
        {"rows": 10, "overlap": 0.0, "id_space": 19},
    ],
)
def test_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        make_cohort(**kwargs)  # type: ignore[arg-type]
