"""The synthetic heart-failure cohort.

The key property is checked against an independent oracle: an ordinary least-squares
fit (scikit-learn ``LinearRegression``) on the plaintext join of the two tables, as
loaded by ``mpcactors.data``, must recover the documented true coefficients within
a few standard errors, and its residuals must have the documented noise level.

With more data parties, the first two tables are pinned to what they were before
there could be more (a digest), and the others are checked on the k-way plaintext join.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
import statsmodels.api as sm
from sklearn.linear_model import LinearRegression

from mpcactors.cli import main
from mpcactors.crypto.fixedpoint import Params
from mpcactors.data import load_table, plaintext_join, table_from_rows
from mpcactors.synth import (
    CBS_COLUMNS,
    E_COACHING_EFFECT,
    GP_COLUMNS,
    HOSPITAL_COLUMNS,
    INSURER_COLUMNS,
    INTERVENTION_COLUMNS,
    NOISE_SD,
    TARGET,
    TRUE_MODELS,
    Cohort,
    cohort_tables,
    cohort_tables_by_party,
    make_cohort,
    write_cohort,
    write_cohort_by_party,
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
    assert cohort.hospital_header == ("id", *HOSPITAL_COLUMNS, "e_coaching", "readmitted_30d")
    assert cohort.insurer_header == ("id", *INSURER_COLUMNS[:-1], "specialist_visits", TARGET)
    assert cohort.feature_columns == cohort.hospital_header[1:] + cohort.insurer_header[1:-1]
    plain = make_cohort(20, 0.5, intervention=False)
    assert plain.hospital_header == ("id", *HOSPITAL_COLUMNS)
    assert plain.insurer_header == ("id", *INSURER_COLUMNS)
    assert plain.feature_columns == HOSPITAL_COLUMNS + INSURER_COLUMNS[:-1]


def test_fifteen_plus_fifteen_attributes() -> None:
    cohort = make_cohort(50, 0.5, hospital_attributes=15, insurer_attributes=15, intervention=False)
    assert len(cohort.hospital_header) == 16 and len(cohort.insurer_header) == 16
    assert cohort.hospital_header[6:] == tuple(f"lab_{k}" for k in range(1, 11))
    assert cohort.insurer_header[5:-1] == tuple(f"claims_{k}" for k in range(1, 11))
    assert cohort.insurer_header[-1] == TARGET
    assert len(cohort.true_coefficients) == 29
    assert all(len(row) == 16 for row in cohort.hospital_rows + cohort.insurer_rows)


def test_fewer_attributes() -> None:
    cohort = make_cohort(20, 0.5, hospital_attributes=2, insurer_attributes=1, intervention=False)
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


def test_the_intervention_study_follows_its_true_models_on_the_join() -> None:
    """statsmodels on the loaded plaintext join recovers :data:`TRUE_MODELS`.

    The estimates are within 4 standard errors of the truth (a correct model fails
    this with probability ~1e-4 per coefficient); the unadjusted e-coaching effect is
    more than 4 standard errors off, which is what makes the adjustment necessary.
    """
    cohort = make_cohort(12000, 0.5, seed=5)
    columns, matrix = plaintext_join(*cohort_tables(cohort, params=PARAMS))
    join = dict(zip(columns, (np.asarray(matrix, dtype=float) / 2.0**PARAMS.frac_bits).T, strict=True))
    assert 0.35 < join["e_coaching"].mean() < 0.65 and 0.08 < join["readmitted_30d"].mean() < 0.25
    for outcome, model in TRUE_MODELS.items():
        design = sm.add_constant(np.column_stack([join[c] for c in model.coefficients]))
        fit = (sm.OLS if model.link == "identity" else sm.Logit)(join[outcome], design).fit(disp=0)
        truth = np.array([model.intercept, *model.coefficients.values()])
        assert np.all(np.abs(fit.params - truth) < 4 * fit.bse), (outcome, fit.params, truth)
    naive = sm.OLS(join["specialist_visits"], sm.add_constant(join["e_coaching"])).fit()
    assert abs(naive.params[1] - E_COACHING_EFFECT) > 4 * naive.bse[1]


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


# ---- more than two data parties ------------------------------------------------------


def digest(cohort: Cohort) -> str:
    """The first two tables, the true model and the intersection, as one hash."""
    h = hashlib.sha256()
    for header, rows in ((cohort.hospital_header, cohort.hospital_rows), (cohort.insurer_header, cohort.insurer_rows)):
        h.update((",".join(header) + "\n").encode())
        for row in rows:
            h.update((",".join(row) + "\n").encode())
    h.update(json.dumps([cohort.true_coefficients, cohort.true_intercept, sorted(cohort.intersection_ids)]).encode())
    return h.hexdigest()[:32]


# Computed with make_cohort before it could make more than two tables (commit 323c010), and
# before the intervention study's columns: tests and benchmarks that pin numbers on the
# two-party cohort keep them (``intervention=False``).
PINNED = [
    ((300, 0.4, 11), {}, "d30114231296369441228a87f499a69f"),
    ((1000, 0.5, 0), {}, "83c4927ead5f7e297e7e1bbbdf159015"),
    ((500, 0.3, 7), {"hospital_attributes": 15, "insurer_attributes": 15, "missing_rate": 0.03},
     "22b522189916e1cad757350bb4922b95"),
]


@pytest.mark.parametrize(("args", "kwargs", "expected"), PINNED)
@pytest.mark.parametrize("parties", [2, 3, 5, ("a", "b", "c")])
def test_the_first_two_tables_are_as_before_whatever_the_parties(
    args: tuple[int, float, int], kwargs: dict[str, float], expected: str, parties: int | tuple[str, ...]
) -> None:
    assert digest(make_cohort(*args, **kwargs, parties=parties, intervention=False)) == expected  # type: ignore[arg-type]


def without_intervention(cohort: Cohort) -> Cohort:
    """``cohort`` with the intervention study's columns (and their zero coefficients) removed."""

    def drop(header: tuple[str, ...], rows: list[list[str]]) -> tuple[tuple[str, ...], list[list[str]]]:
        keep = [j for j, name in enumerate(header) if name not in INTERVENTION_COLUMNS]
        return tuple(header[j] for j in keep), [[row[j] for j in keep] for row in rows]

    hospital_header, hospital_rows = drop(cohort.hospital_header, cohort.hospital_rows)
    insurer_header, insurer_rows = drop(cohort.insurer_header, cohort.insurer_rows)
    coefficients = {k: v for k, v in cohort.true_coefficients.items() if k not in INTERVENTION_COLUMNS}
    return dataclasses.replace(
        cohort, hospital_header=hospital_header, hospital_rows=hospital_rows, insurer_header=insurer_header,
        insurer_rows=insurer_rows, true_coefficients=coefficients,
    )


@pytest.mark.parametrize(("args", "kwargs", "expected"), PINNED)
def test_the_intervention_columns_change_no_other_cell(
    args: tuple[int, float, int], kwargs: dict[str, float], expected: str
) -> None:
    """Every other cell, the target, the intersection and the third table are as without them."""
    cohort = make_cohort(*args, **kwargs, parties=3)  # type: ignore[arg-type]
    assert {name for name, c in cohort.true_coefficients.items() if name in INTERVENTION_COLUMNS and c == 0} == set(
        INTERVENTION_COLUMNS
    )
    assert digest(without_intervention(cohort)) == expected
    assert cohort.more_tables == make_cohort(*args, **kwargs, parties=3, intervention=False).more_tables  # type: ignore[arg-type]


def test_two_parties_by_default() -> None:
    cohort = make_cohort(20)
    assert cohort.parties == ("hospital", "insurer") and cohort.more_tables == ()
    assert list(cohort.tables) == ["hospital", "insurer"]
    assert cohort.tables["hospital"].rows is cohort.hospital_rows


def test_parties_by_count_or_name() -> None:
    assert make_cohort(20, parties=5).parties == ("hospital", "insurer", "cbs", "party4", "party5")
    named = make_cohort(20, parties=["h", "i", "stats", "gp"])
    default = make_cohort(20, parties=4)
    # Tables go by position, names only label them.
    assert [t.header for t in named.tables.values()] == [t.header for t in default.tables.values()]
    assert named.tables["stats"] == default.tables["cbs"]


def test_a_party_table_does_not_depend_on_the_parties_after_it() -> None:
    three, five = make_cohort(300, 0.5, seed=2, parties=3), make_cohort(300, 0.5, seed=2, parties=5)
    assert three.tables["cbs"] == five.tables["cbs"]
    assert make_cohort(300, 0.5, seed=3, parties=3).tables["cbs"] != three.tables["cbs"]


@pytest.mark.parametrize("parties", [3, 5])
@pytest.mark.parametrize(("rows", "overlap"), [(1000, 0.5), (101, 0.33), (7, 0.5), (50, 0.0), (50, 1.0)])
def test_k_parties_have_unique_columns_and_exactly_the_stated_intersection(
    parties: int, rows: int, overlap: float
) -> None:
    cohort = make_cohort(rows, overlap, seed=4, parties=parties)
    tables = list(cohort.tables.values())
    assert len(tables) == parties
    columns = [c for t in tables for c in t.header[1:]]
    assert len(set(columns)) == len(columns)
    assert tables[2].header == ("id", *CBS_COLUMNS)
    assert [t.header for t in tables[3:]] == [("id", *(f"{c}_{k}" for c in GP_COLUMNS)) for k in range(4, parties + 1)]
    id_sets = [set(ids_of(t.rows)) for t in tables]
    assert all(len(t.rows) == len(ids) == rows for t, ids in zip(tables, id_sets))  # unique within a party
    assert all(len(i) == 9 and i.isdigit() for ids in id_sets for i in ids)
    # The k-way intersection is exact, tolerance zero: by construction every shared id
    # is in every table, and every other id is at most at one of the first two parties.
    shared = round(overlap * rows)
    assert set.intersection(*id_sets) == cohort.intersection_ids
    assert len(cohort.intersection_ids) == shared
    # Beyond the shared ids, party 3 on meets half of the others at the first two parties.
    for ids in id_sets[2:]:
        assert len(ids & (id_sets[0] | id_sets[1])) == shared + (rows - shared) // 2


def test_k_parties_can_use_up_a_small_id_space_exactly() -> None:
    # 2 * 30 - 15 ids for the first two parties, then 15 - 7 = 8 new people per party.
    cohort = make_cohort(30, 0.5, seed=1, id_space=45 + 2 * 8, parties=4)
    ids = set().union(*(ids_of(t.rows) for t in cohort.tables.values()))
    assert ids == {f"{i:09d}" for i in range(61)}
    with pytest.raises(ValueError, match="60"):
        make_cohort(30, 0.5, seed=1, id_space=60, parties=4)


@pytest.mark.parametrize("parties", [1, 0, "cbs", ["hospital"], ["a", "a"], ["ttp", "b"], ["A", "b"]])
def test_bad_parties(parties: object) -> None:
    with pytest.raises(ValueError):
        make_cohort(20, parties=parties)  # type: ignore[arg-type]


@pytest.mark.parametrize("parties", [3, 5])
def test_every_table_validates_and_loads_back_from_csv(tmp_path: Path, parties: int) -> None:
    cohort = make_cohort(400, 0.5, seed=10, missing_rate=0.03, parties=parties)
    tables = cohort_tables_by_party(cohort, params=PARAMS)
    assert list(tables) == list(cohort.parties)
    assert (tables["hospital"].ids, tables["insurer"].ids) == tuple(t.ids for t in cohort_tables(cohort))
    paths = write_cohort_by_party(cohort, tmp_path)
    assert [p.name for p in paths.values()] == [f"{name}.csv" for name in cohort.parties]
    assert write_cohort(cohort, tmp_path / "again") == (tmp_path / "again" / "hospital.csv", tmp_path / "again" / "insurer.csv")
    assert len(list((tmp_path / "again").iterdir())) == parties
    for name, table in cohort.tables.items():
        loaded = load_table(paths[name])
        assert loaded.columns == table.header[1:] == tables[name].columns
        assert loaded.ids == tables[name].ids
        assert np.array_equal(loaded.values, tables[name].values)
        assert loaded.dropped_missing == sum("" in row for row in table.rows) > 0


def test_missing_values_in_the_new_tables_follow_the_rate() -> None:
    rows, rate = 4000, 0.02
    cohort = make_cohort(rows, 0.5, seed=6, missing_rate=rate, parties=4)
    for table in cohort.more_tables:
        assert all(row[0] for row in table.rows)
        cells = rows * (len(table.header) - 1)
        empty = sum(cell == "" for row in table.rows for cell in row[1:])
        assert abs(empty - cells * rate) < 5 * math.sqrt(cells * rate * (1 - rate))
    none = make_cohort(500, 0.5, missing_rate=0.0, parties=4)
    assert all("" not in row for table in none.more_tables for row in table.rows)


MORE_RANGES = {
    "education_level": (1, 7),
    "household_income": (6000, 350000),
    "deprivation_index": (-4, 4),
    "household_size": (1, 8),
    "gp_consults_4": (0, 40),
    "bmi_4": (15, 50),
    "smoker_4": (0, 1),
}


def k_way_join(cohort: Cohort) -> dict[str, np.ndarray]:
    """The plaintext join of every table, as real values by column."""
    columns, matrix = plaintext_join(*cohort_tables_by_party(cohort, params=PARAMS, min_rows=1).values())
    return dict(zip(columns, (matrix / 2.0**PARAMS.frac_bits).T, strict=True))


def test_the_new_attributes_are_plausible() -> None:
    cohort = make_cohort(4000, 0.5, seed=4, parties=4)
    values = {}
    for table in cohort.more_tables:
        values |= columns_of(table.header, table.rows)
    for name, (low, high) in MORE_RANGES.items():
        column = np.array(values[name])
        assert low <= column.min() and column.max() <= high, name
        assert np.all(np.round(column, 2) == column), name
    for name in ("education_level", "household_size", "gp_consults_4", "smoker_4"):
        assert np.all(np.round(values[name]) == values[name]), name
    assert set(values["education_level"]) == set(range(1, 8))  # every level occurs
    assert 25000 < np.median(values["household_income"]) < 50000
    assert np.quantile(values["household_income"], 0.9) > 1.8 * np.quantile(values["household_income"], 0.1)
    assert abs(np.mean(values["deprivation_index"])) < 0.1
    assert 1.7 < np.mean(values["household_size"]) < 2.6
    assert 0.1 < np.mean(values["smoker_4"]) < 0.3


# Pearson correlations on the k-way join of make_cohort(4000, 0.6, seed=9, parties=4)
# (about 2,000 rows once rows with a missing cell are dropped). The standard error of r
# is about (1 - r^2) / sqrt(n) < 0.025, and each threshold is at least 5 standard errors
# inside the value the generator gives (measured: -0.43, -0.32, -0.37, +0.25, +0.49),
# so a different numpy stream would still pass, and a generator that lost the
# dependence would not.
CORRELATIONS = [
    ("household_size", "age", "<", -0.25),  # older people live in smaller households
    ("education_level", "age", "<", -0.15),  # older cohorts had less formal education
    ("household_income", TARGET, "<", -0.2),  # via severity, age and the target's noise
    ("deprivation_index", TARGET, ">", 0.12),
    ("gp_consults_4", "gp_visits", ">", 0.35),  # a family doctor's record and the claims
]


@pytest.mark.parametrize(("column", "other", "sign", "threshold"), CORRELATIONS)
def test_the_new_attributes_correlate_with_the_first_two_tables(
    column: str, other: str, sign: str, threshold: float
) -> None:
    joined = k_way_join(make_cohort(4000, 0.6, seed=9, parties=4))
    assert len(joined[TARGET]) > 1800
    r = np.corrcoef(joined[column], joined[other])[0, 1]
    assert (r < threshold) if sign == "<" else (r > threshold), r


def ols(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Residual standard deviation and the slopes' t statistics of an OLS fit with intercept."""
    design = np.column_stack([x, np.ones(len(y))])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    residuals = y - design @ beta
    sigma = math.sqrt(residuals @ residuals / (len(y) - design.shape[1]))
    standard_errors = sigma * np.sqrt(np.diag(np.linalg.inv(design.T @ design)))
    return sigma, (beta / standard_errors)[:-1]


def test_a_model_on_the_three_way_join_finds_the_cbs_attributes() -> None:
    cohort = make_cohort(4000, 0.6, seed=9, parties=3)
    joined = k_way_join(cohort)
    y = joined[TARGET]
    clinical = np.column_stack([joined[c] for c in cohort.feature_columns])
    sigma_two, _ = ols(clinical, y)
    sigma_three, t = ols(np.column_stack([clinical, *(joined[c] for c in CBS_COLUMNS)]), y)
    # The CBS table explains part of what the first two leave as noise (measured: the
    # residual sd falls from 1.47 to 1.36), and living alone is a clear effect (t = -8.6).
    assert sigma_two > 0.9 * NOISE_SD
    assert sigma_three < 0.96 * sigma_two
    assert t[-1] < -4  # household_size, the last column


def synth_cli(*args: str):
    return CliRunner().invoke(main, ["synth", *args], catch_exceptions=False)


def test_synth_command_writes_a_csv_per_party_that_loads(tmp_path: Path) -> None:
    result = synth_cli("--rows", "200", "--overlap", "0.6", "--seed", "4", "--parties", "3", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cbs.csv", "hospital.csv", "insurer.csv"]
    tables = [load_table(tmp_path / f"{name}.csv", params=PARAMS) for name in ("hospital", "insurer", "cbs")]
    assert tables[2].columns == CBS_COLUMNS
    columns, matrix = plaintext_join(*tables)
    assert len(columns) == 7 + 6 + 4 and 0 < len(matrix) <= 120
    assert "120 ids in every table" in result.output
    cohort = make_cohort(200, 0.6, 4, parties=3)
    assert (tmp_path / "cbs.csv").read_text().splitlines()[1:] == list(map(",".join, cohort.tables["cbs"].rows))


def test_synth_command_takes_party_names_and_keeps_two_by_default(tmp_path: Path) -> None:
    assert synth_cli("--rows", "20", "--parties", "a, b,c,d", "--out", str(tmp_path / "named")).exit_code == 0
    assert sorted(p.name for p in (tmp_path / "named").iterdir()) == ["a.csv", "b.csv", "c.csv", "d.csv"]
    assert synth_cli("--rows", "20", "--out", str(tmp_path / "two")).exit_code == 0
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["hospital.csv", "insurer.csv"]


@pytest.mark.parametrize("parties", ["1", "65", "a,a", "ttp,b", "x"])
def test_synth_command_refuses_a_bad_roster_in_one_line(tmp_path: Path, parties: str) -> None:
    result = CliRunner().invoke(main, ["synth", "--parties", parties, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
