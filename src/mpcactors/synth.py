"""A synthetic heart-failure cohort: the default data of ``mpcactors simulate``.

The TNO pilot this project follows used synthetic hospital and insurer tables too
(van Egmond et al., BMC Med Inform Decis Mak 21:266, 2021). This module makes a
pair of tables with the same shape and known ground truth:

* ``rows`` patients per party, ``round(overlap * rows)`` of them at both;
* ids are distinct 9-digit strings drawn uniformly from ``range(id_space)``; each
  party's rows come in random order;
* attributes on realistic raw scales, correlated through a latent disease severity
  (a standard normal per patient):

  ====================  ===================================  ===============
  column                 distribution                         range
  ====================  ===================================  ===============
  age                    normal, mean 70, sd 10 (years)       40 - 95
  ejection_fraction      normal, mean 38, sd ~11 (%)          10 - 70
  nt_probnp              log-normal, median 1800 (pg/mL)      100 - 35000
  creatinine             log-normal, median 105 (umol/L)      40 - 400
  systolic_bp            normal, mean 128, sd ~17 (mmHg)      80 - 200
  gp_visits              Poisson, mean ~6 (per year)          0 - 30
  medication_cost        log-normal, median 2500 (euro)       0 - 100000
  prior_admissions       Poisson, mean ~1                     0 - 10
  chronic_conditions     Poisson, mean ~2                     0 - 8
  e_coaching             0 or 1, about half enrolled          0 - 1
  readmitted_30d         0 or 1, logistic model, ~15%         0 - 1
  specialist_visits      Poisson, linear mean ~6 (per year)   0 - 25
  lab_k (hospital)       log-normal lab values, cycling       see _LABS
                         sodium, potassium, haemoglobin, ...
  claims_k (insurer)     claim counts and costs, cycling      see _CLAIMS
  ====================  ===================================  ===============

* the target ``hospital_days`` (owned by the insurer, as the protocol's default) is
  an exact *sparse* linear function of the joined attributes plus Gaussian noise
  (sd :data:`NOISE_SD`): about half of the coefficients are exactly zero, so a
  lasso has something to find. It is computed from the values as written (after
  rounding), so an ordinary least-squares fit on the plaintext join recovers
  :attr:`Cohort.true_coefficients` up to the noise. It is a teaching model, not a
  clinical one, and it can (rarely) be slightly negative.

* the intervention study (issue 17's example, after the Zuyderland/CZ/CBS e-coaching pilot):
  the hospital enrols patients in an e-coaching programme (``e_coaching``), more often
  the younger and those with more chronic conditions or prior admissions, so a naive
  comparison is confounded. Its true effect on the insurer's ``specialist_visits`` (a
  Poisson count whose mean is *linear* in age, chronic conditions, prior admissions
  and e-coaching) is :data:`E_COACHING_EFFECT` visits per year, so a linear model
  adjusted for those three recovers it without bias. The hospital's
  ``readmitted_30d`` follows an exact logistic model in age, ejection fraction, prior
  admissions and e-coaching. Both models are in :attr:`Cohort.true_models`; neither
  column enters ``hospital_days``.

Every patient has every attribute, so insurer rows of patients the hospital does
not have also get a target (the insurer cannot know who is shared). A fraction
``missing_rate`` of attribute cells (never ids) is left empty.

**More data parties** (``parties=3`` or more names, see :func:`make_cohort`): the first
two tables stay exactly the hospital's and the insurer's above (same arguments, same
tables), and the target does not change. Party 3 (``cbs`` by default) holds a
Statistics-Netherlands-like register table, parties 4 on a family doctor's record:

  ====================  ===================================  ===============
  column                 distribution                         range
  ====================  ===================================  ===============
  education_level        ordinal code, lower when older       1 - 7
  household_income       log-normal, median ~36000 (euro/y)   6000 - 350000
  deprivation_index      neighbourhood score, higher = worse  -4 - 4
  household_size         1 + Poisson, smaller when older      1 - 8
  gp_consults_k          Poisson, mean ~5 (per year)          0 - 40
  bmi_k                  normal, mean ~27 (kg/m2)             15 - 50
  smoker_k               0 or 1, ~20% smoke                   0 - 1
  ====================  ===================================  ===============

(``_k`` is the party's position, 4, 5, ..., so every column name is unique.) They
follow a latent socio-economic position per person that is lower for sicker people
and for those whose stay is longer than the clinical model predicts (the target's
noise: deprivation and living alone lengthen stays), and age (older people have less
formal education, smaller households and, once retired, lower incomes). A model on
the k-way join therefore finds them, and explains more of the target than on the
two-party join, although :attr:`Cohort.true_coefficients` names the first two
parties' attributes only: the others relate to the target through severity, age and
the noise, not through a linear term of their own. Everything is synthetic: no value comes from, or says anything about, a real
person.

Everything is vectorised with numpy and seeded through ``numpy.random.SeedSequence``
(one child stream per purpose), so a seed always gives the same cohort.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .protocol.roster import DEFAULT_DATA_PARTIES, Roster, default_names

if TYPE_CHECKING:
    from .data import PartyTable

__all__ = [
    "CBS_COLUMNS",
    "E_COACHING_EFFECT",
    "GP_COLUMNS",
    "HOSPITAL_COLUMNS",
    "INSURER_COLUMNS",
    "INTERVENTION_COLUMNS",
    "NOISE_SD",
    "TARGET",
    "TRUE_MODELS",
    "Cohort",
    "SynthTable",
    "TrueModel",
    "cohort_tables",
    "cohort_tables_by_party",
    "make_cohort",
    "write_cohort",
    "write_cohort_by_party",
]

HOSPITAL_COLUMNS = ("age", "ejection_fraction", "nt_probnp", "creatinine", "systolic_bp")
INSURER_COLUMNS = (
    "gp_visits",
    "medication_cost",
    "prior_admissions",
    "chronic_conditions",
    "hospital_days",
)
#: The intervention study's columns (``make_cohort(intervention=True)``, the default): the
#: first two end the first party's table, the last comes before the second party's target.
INTERVENTION_COLUMNS = ("e_coaching", "readmitted_30d", "specialist_visits")
TARGET = "hospital_days"
#: The third data party's columns: a Statistics-Netherlands-like register table.
CBS_COLUMNS = ("education_level", "household_income", "deprivation_index", "household_size")
#: The columns of data party k >= 4 (a family doctor's record) are these with ``_k`` appended.
GP_COLUMNS = ("gp_consults", "bmi", "smoker")
#: standard deviation of the Gaussian noise on the target (days)
NOISE_SD = 1.5
#: The true effect of e-coaching on specialist visits (visits per year), see :data:`TRUE_MODELS`.
E_COACHING_EFFECT = -1.0

ID_COLUMN = "id"
_ID_DIGITS = 9

# True model on the base attributes: (coefficient per raw unit). Zero means the
# attribute does not influence the target (but is still correlated with it through
# the latent severity, which is what makes variable selection non-trivial).
_BASE_COEFFICIENTS = {
    "age": 0.05,
    "ejection_fraction": -0.08,
    "nt_probnp": 0.0004,
    "creatinine": 0.0,
    "systolic_bp": 0.0,
    "gp_visits": 0.0,
    "medication_cost": 0.0,
    "prior_admissions": 0.9,
    "chronic_conditions": 0.6,
    "e_coaching": 0.0,
    "readmitted_30d": 0.0,
    "specialist_visits": 0.0,
}
_BASE_INTERCEPT = 4.0


@dataclass(frozen=True)
class TrueModel:
    """An outcome's true model: ``link(E[outcome]) = intercept + sum(coef * column)``.

    ``link`` is ``"identity"`` (a linear model, as ``linear`` fits) or ``"logit"`` (a
    logistic model, as ``logistic`` fits); the columns are raw, as written.
    """

    link: str
    intercept: float
    coefficients: dict[str, float]


#: The intervention study's outcomes (the module docstring). E-coaching is assigned by
#: ``logit P(e_coaching) = _E_COACHING_ENROLMENT`` (same form), and specialist visits
#: are Poisson with the identity-link mean below, which is at least 0.5 for every
#: value in range (age >= 40), so no clipping bends the linear model.
TRUE_MODELS = {
    "specialist_visits": TrueModel(
        "identity", 1.5,
        {"age": 0.05, "chronic_conditions": 0.6, "prior_admissions": 0.4, "e_coaching": E_COACHING_EFFECT},
    ),
    "readmitted_30d": TrueModel(
        "logit", -2.9,
        {"age": 0.03, "ejection_fraction": -0.03, "prior_admissions": 0.35, "e_coaching": -0.5},
    ),
}
_E_COACHING_ENROLMENT = TrueModel(
    "logit", 1.5, {"age": -0.035, "chronic_conditions": 0.3, "prior_admissions": 0.25}
)

# Extra hospital columns lab_k mimic these analytes, cycling:
# (analyte, median, log-sd of the noise, loading on severity, decimals)
_LABS = (
    ("sodium mmol/L", 138.0, 0.025, -0.01, 0),
    ("potassium mmol/L", 4.4, 0.1, 0.03, 1),
    ("haemoglobin mmol/L", 8.3, 0.1, -0.05, 1),
    ("urea mmol/L", 9.0, 0.35, 0.25, 1),
    ("CRP mg/L", 8.0, 1.0, 0.3, 0),
    ("albumin g/L", 38.0, 0.1, -0.05, 0),
    ("bilirubin umol/L", 12.0, 0.4, 0.15, 0),
    ("glucose mmol/L", 6.5, 0.25, 0.05, 1),
    ("troponin ng/L", 25.0, 0.8, 0.35, 0),
    ("HbA1c mmol/mol", 48.0, 0.2, 0.05, 0),
)
# Extra insurer columns claims_k, cycling: (kind, mean or median, log-sd, loading)
_CLAIMS = (
    ("specialist visits (count)", 2.0, 0.0, 0.3),
    ("physiotherapy cost (euro)", 300.0, 0.6, 0.2),
    ("emergency visits (count)", 0.5, 0.0, 0.5),
    ("pharmacy claims (count)", 12.0, 0.0, 0.2),
    ("home care cost (euro)", 800.0, 0.7, 0.4),
)
# An extra column's coefficient, when not zero, moves the target by this many days
# per nominal standard deviation of the column.
_EXTRA_EFFECT_DAYS = 0.4

# Parties 3 on. The latent socio-economic position of a person (a standard normal,
# higher = better off) loads on severity and on the target's noise (standardised):
_SES_LOADINGS = (-0.4, -0.4)
# education_level k is taken when a standard-normal latent falls between cut k-1 and
# cut k: the normal quantiles of the cumulative shares 12, 30, 52, 72, 84 and 94%.
_EDUCATION_CUTS = np.array([-1.175, -0.524, 0.05, 0.583, 0.994, 1.555])
_MEDIAN_INCOME = 36000.0
_RETIREMENT_AGE = 67
# Random streams: SeedSequence(seed).spawn(6) feeds the first two tables (children
# 0 to 5); child 6 is everyone's socio-economic noise and children (7, k, ...) are
# party k's, so a party's table is the same whatever the number of parties after it.
_SOCIAL_STREAM = 6
_PARTY_STREAM = 7
_STUDY_STREAM = 8  # the intervention study's columns: adding them changed no other column


@dataclass(frozen=True)
class SynthTable:
    """One party's synthetic table: a header starting with ``"id"``, rows of strings."""

    header: tuple[str, ...]
    rows: list[list[str]] = field(repr=False)


@dataclass(frozen=True)
class Cohort:
    """A hospital table and an insurer table with known ground truth, and maybe more.

    Rows are lists of strings as read from a CSV file (id first, empty string for a
    missing value); headers start with ``"id"``. ``true_coefficients`` maps every
    joined attribute of the first two tables except the target (hospital columns,
    then insurer columns) to its coefficient in
    ``hospital_days = true_intercept + sum(coef * x) + noise``.

    ``parties`` names every data party in roster order; the first two own the
    hospital and insurer tables, ``more_tables`` are the tables of the others, in the
    same order (see :attr:`tables`). ``intersection_ids`` are the ids in every table.
    """

    hospital_header: tuple[str, ...]
    hospital_rows: list[list[str]] = field(repr=False)
    insurer_header: tuple[str, ...]
    insurer_rows: list[list[str]] = field(repr=False)
    true_coefficients: dict[str, float]
    true_intercept: float
    intersection_ids: frozenset[str] = field(repr=False)
    id_space: int
    parties: tuple[str, ...] = DEFAULT_DATA_PARTIES
    more_tables: tuple[SynthTable, ...] = field(default=(), repr=False)

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """The joined attributes in join order (hospital, then insurer), without the target."""
        return tuple(self.true_coefficients)

    @property
    def tables(self) -> dict[str, SynthTable]:
        """Every party's table by party name, in roster order."""
        first_two = (
            SynthTable(self.hospital_header, self.hospital_rows),
            SynthTable(self.insurer_header, self.insurer_rows),
        )
        return dict(zip(self.parties, first_two + self.more_tables, strict=True))


def make_cohort(
    rows: int = 1000,
    overlap: float = 0.5,
    seed: int = 0,
    *,
    hospital_attributes: int = 5,
    insurer_attributes: int = 5,
    missing_rate: float = 0.01,
    id_space: int = 10**9,
    parties: int | Sequence[str] = 2,
    intervention: bool = True,
) -> Cohort:
    """A synthetic cohort of ``rows`` patients per party (see the module docstring).

    Args:
        rows: rows per party.
        overlap: fraction of each party's rows whose ids are in *every* table:
            exactly ``shared = round(overlap * rows)`` ids are in all tables (the
            k-way intersection, :attr:`Cohort.intersection_ids`), whatever the number
            of parties. With two parties these are the ids in both tables. Party 3 on
            has every shared id, ``(rows - shared) // 2`` ids drawn uniformly from the
            people at exactly one of the first two parties, and the rest people that
            no other party has; so an id outside the shared ones is never at both of
            the first two parties, and never in every table.
        seed: the cohort is a pure function of its arguments. The first two tables
            do not depend on ``parties``, nor party k's on the parties after it.
        hospital_attributes: hospital columns besides the id (first the five of
            :data:`HOSPITAL_COLUMNS`, then ``lab_1``, ``lab_2``, ...).
        insurer_attributes: insurer columns besides the id, the target included
            (the first ones of :data:`INSURER_COLUMNS` without the target, then
            ``claims_1``, ..., and the target last).
        missing_rate: probability that an attribute cell is left empty.
        id_space: ids are drawn from ``range(id_space)``, at most ``10**9``.
        parties: the data parties: a count (named by
            :func:`~mpcactors.protocol.roster.default_names`: hospital, insurer, cbs,
            party4, ...) or their names in roster order. Tables go by position: the
            first two are the hospital's and the insurer's whatever their names, the
            third the CBS-like table, the others a family doctor's.
        intervention: add :data:`INTERVENTION_COLUMNS` (the e-coaching study, see the
            module docstring): ``e_coaching`` and ``readmitted_30d`` after the first
            table's attributes, ``specialist_visits`` before the second's target. They
            come from random streams of their own and do not enter the target, so
            every other cell, the target and the tables of parties 3 on are the same
            with or without them (their ``true_coefficients`` are 0).

    Raises:
        ValueError: an argument is out of range, the parties are not a valid roster,
            or ``id_space`` is too small for the distinct ids needed
            (``2 * rows - shared``, plus ``rows - shared - (rows - shared) // 2`` per
            party after the second).
    """
    names = _party_names(parties)
    _check_arguments(
        rows, overlap, hospital_attributes, insurer_attributes, missing_rate, id_space, len(names)
    )
    shared = round(overlap * rows)
    people = 2 * rows - shared
    ids_rng, order_rng, base_rng, extra_rng, noise_rng, missing_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)
    )

    # People 0..shared-1 are at both parties, then hospital-only, then insurer-only.
    person_ids = _draw_distinct(ids_rng, people, id_space)
    hospital_people = order_rng.permutation(rows)  # indices 0..rows-1
    insurer_people = order_rng.permutation(rows)
    insurer_people = np.where(insurer_people < shared, insurer_people, insurer_people + rows - shared)

    severity = base_rng.standard_normal(people)
    base = _base_attributes(base_rng, severity)
    hospital_names = HOSPITAL_COLUMNS[:hospital_attributes] + tuple(
        f"lab_{k}" for k in range(1, hospital_attributes - len(HOSPITAL_COLUMNS) + 1)
    )
    insurer_base = INSURER_COLUMNS[:-1][: insurer_attributes - 1]
    insurer_features = insurer_base + tuple(
        f"claims_{k}" for k in range(1, insurer_attributes - len(INSURER_COLUMNS) + 1)
    )
    # The intervention study's columns come from streams of their own, values and missing
    # cells alike, so every other cell is what it is without them.
    hospital_missing = [missing_rng] * len(hospital_names)
    insurer_missing = [missing_rng] * (len(insurer_features) + 1)
    if intervention:
        study_values_rng, study_missing_rng = (_rng(seed, _STUDY_STREAM, k) for k in (0, 1))
        base.update(_study_attributes(study_values_rng, base))
        hospital_names += INTERVENTION_COLUMNS[:2]
        hospital_missing += [study_missing_rng] * 2
        insurer_features += INTERVENTION_COLUMNS[2:]
        insurer_missing.insert(-1, study_missing_rng)
    columns: dict[str, np.ndarray] = {}
    coefficients: dict[str, float] = {}
    intercept = _BASE_INTERCEPT
    for name in hospital_names + insurer_features:
        if name in base:
            columns[name] = base[name]
            coefficients[name] = _BASE_COEFFICIENTS[name]
        else:
            kind, k = name.split("_")
            values, coefficient, centre = _extra_attribute(extra_rng, severity, kind, int(k))
            columns[name] = values
            coefficients[name] = coefficient
            intercept -= coefficient * centre  # keeps the target's mean near the base model's

    target = noise_rng.normal(intercept, NOISE_SD, people)
    noise = (target - intercept) / NOISE_SD  # a new array: the target itself is unchanged
    for name, coefficient in coefficients.items():
        if coefficient:
            target += coefficient * columns[name]
    columns[TARGET] = _round(target, 2)

    hospital_header = (ID_COLUMN, *hospital_names)
    insurer_header = (ID_COLUMN, *insurer_features, TARGET)
    id_text = _format_ids(person_ids)
    hospital_rows = _format_rows(
        id_text, hospital_people, [columns[n] for n in hospital_names], hospital_missing, missing_rate
    )
    insurer_rows = _format_rows(
        id_text,
        insurer_people,
        [columns[n] for n in insurer_header[1:]],
        insurer_missing,
        missing_rate,
    )
    return Cohort(
        hospital_header=hospital_header,
        hospital_rows=hospital_rows,
        insurer_header=insurer_header,
        insurer_rows=insurer_rows,
        true_coefficients=coefficients,
        true_intercept=float(intercept),
        intersection_ids=frozenset(id_text[:shared]),
        id_space=id_space,
        parties=names,
        more_tables=_more_tables(
            seed, len(names), rows, shared, missing_rate, id_space,
            (person_ids, id_text, severity, base["age"], noise),
        ),
    )


def write_cohort_by_party(cohort: Cohort, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``<party>.csv`` for every party into ``out_dir`` (created if needed).

    Returns the paths by party name, in roster order (``hospital.csv``,
    ``insurer.csv``, ``cbs.csv``, ... by default). Lines end with ``\\n``; the id
    column is named ``id``.
    """
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, table in cohort.tables.items():
        paths[name] = directory / f"{name}.csv"
        _write_csv(paths[name], table.header, table.rows)
    return paths


def write_cohort(cohort: Cohort, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write every party's CSV (:func:`write_cohort_by_party`); return the first two paths.

    With the default two parties: ``hospital.csv`` and ``insurer.csv``.
    """
    paths = write_cohort_by_party(cohort, out_dir)
    return paths[cohort.parties[0]], paths[cohort.parties[1]]


def cohort_tables_by_party(
    cohort: Cohort, *, params: Any = None, min_rows: int = 10
) -> dict[str, PartyTable]:
    """Every party's table, validated like CSV input, by party name in roster order.

    Each is labelled ``<synthetic NAME>`` in error messages.
    """
    return {
        name: _validated(name, table, params, min_rows) for name, table in cohort.tables.items()
    }


def cohort_tables(
    cohort: Cohort, *, params: Any = None, min_rows: int = 10
) -> tuple[PartyTable, PartyTable]:
    """The first two parties' tables, validated like CSV input: ``(hospital, insurer)``."""
    first, second = cohort.parties[:2]
    tables = cohort.tables
    return (
        _validated(first, tables[first], params, min_rows),
        _validated(second, tables[second], params, min_rows),
    )


# ---- helpers -------------------------------------------------------------------------


def _validated(name: str, table: SynthTable, params: Any, min_rows: int) -> PartyTable:
    from .crypto.fixedpoint import Params
    from .data import table_from_rows

    return table_from_rows(
        f"<synthetic {name}>", table.header, table.rows, id_column=ID_COLUMN, columns=None,
        params=params if params is not None else Params(), min_rows=min_rows,
    )


def _party_names(parties: int | Sequence[str]) -> tuple[str, ...]:
    from .errors import ConfigError

    if isinstance(parties, int) and not isinstance(parties, bool):
        if parties < 2:
            raise ValueError(f"a cohort has at least two data parties, got {parties!r}")
        return default_names(parties)
    if isinstance(parties, str):
        raise ValueError(f"parties must be a count or a sequence of names, got {parties!r}")
    try:
        return Roster(tuple(parties)).data_parties
    except ConfigError as exc:
        raise ValueError(str(exc)) from exc


def _check_arguments(
    rows: int,
    overlap: float,
    hospital_attributes: int,
    insurer_attributes: int,
    missing_rate: float,
    id_space: int,
    party_count: int,
) -> None:
    if not isinstance(rows, int) or rows < 1:
        raise ValueError(f"rows must be a positive integer, got {rows!r}")
    if not 0.0 <= overlap <= 1.0:
        raise ValueError(f"overlap must be between 0 and 1, got {overlap!r}")
    if not isinstance(hospital_attributes, int) or hospital_attributes < 1:
        raise ValueError(f"hospital_attributes must be at least 1, got {hospital_attributes!r}")
    if not isinstance(insurer_attributes, int) or insurer_attributes < 1:
        raise ValueError(
            f"insurer_attributes must be at least 1 (the target), got {insurer_attributes!r}"
        )
    if not 0.0 <= missing_rate < 1.0:
        raise ValueError(f"missing_rate must be in [0, 1), got {missing_rate!r}")
    if not isinstance(id_space, int) or not 1 <= id_space <= 10**_ID_DIGITS:
        raise ValueError(f"id_space must be between 1 and 10**{_ID_DIGITS}, got {id_space!r}")
    shared = round(overlap * rows)
    needed = 2 * rows - shared + (party_count - 2) * _new_people(rows, shared)
    if needed > id_space:
        raise ValueError(f"{needed} distinct ids are needed but id_space is only {id_space}")


def _draw_distinct(
    rng: np.random.Generator, count: int, space: int, taken: np.ndarray | None = None
) -> np.ndarray:
    """``count`` distinct integers drawn uniformly without replacement from ``range(space)``.

    Sequential draws that skip repeats (in blocks, with ``np.unique``): a uniformly
    random ordered sample, without the cost of ``Generator.choice(replace=False)``
    or a permutation of the whole space. When the sample is a large part of the
    space, rejection would need many rounds, so a permutation is used instead.
    Values in ``taken`` (distinct) are never drawn; without them the draws are what
    they always were.
    """
    taken = np.empty(0, dtype=np.int64) if taken is None else taken
    if 2 * (count + len(taken)) > space:
        order = rng.permutation(space)
        return order[~np.isin(order, taken)][:count] if len(taken) else order[:count]
    drawn = np.empty(0, dtype=np.int64)
    while len(drawn) < count:
        extra = count - len(drawn)
        draws = rng.integers(0, space, size=extra + extra // 8 + 16)
        candidates = np.concatenate([taken, drawn, draws])
        _, first = np.unique(candidates, return_index=True)
        first.sort()  # keep the first occurrence of each value, in draw order
        drawn = candidates[first][len(taken) :][:count]  # taken values come first: drop them
    return drawn


def _round(values: np.ndarray, decimals: int) -> np.ndarray:
    return np.round(values, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0


def _age(s: np.ndarray, noise: np.ndarray) -> np.ndarray:
    return np.clip(_round(70 + 10 * (0.4 * s + 0.92 * noise), 0), 40, 95)


def _base_attributes(rng: np.random.Generator, s: np.ndarray) -> dict[str, np.ndarray]:
    """The nine base attributes of every person, given the latent severity ``s``."""
    n = len(s)

    def noise() -> np.ndarray:
        return rng.standard_normal(n)

    def poisson(mean: float, loading: float, top: int) -> np.ndarray:
        return np.minimum(rng.poisson(mean * np.exp(loading * s)), top).astype(np.float64)

    return {
        "age": _age(s, noise()),
        "ejection_fraction": np.clip(_round(38 - 7 * s + 9 * noise(), 0), 10, 70),
        "nt_probnp": np.clip(_round(np.exp(math.log(1800) + 0.7 * s + 0.8 * noise()), 0), 100, 35000),
        "creatinine": np.clip(_round(np.exp(math.log(105) + 0.18 * s + 0.3 * noise()), 0), 40, 400),
        "systolic_bp": np.clip(_round(128 - 6 * s + 16 * noise(), 0), 80, 200),
        "gp_visits": poisson(6.0, 0.35, 30),
        "medication_cost": np.clip(
            _round(np.exp(math.log(2500) + 0.45 * s + 0.9 * noise()), 2), 0, 100000
        ),
        "prior_admissions": poisson(0.9, 0.5, 10),
        "chronic_conditions": poisson(2.2, 0.25, 8),
    }


def _linear_predictor(model: TrueModel, columns: dict[str, np.ndarray]) -> np.ndarray:
    return model.intercept + sum(c * columns[name] for name, c in model.coefficients.items())


def _study_attributes(rng: np.random.Generator, base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``e_coaching``, ``readmitted_30d`` and ``specialist_visits`` of every person (:data:`TRUE_MODELS`)."""
    n = len(base["age"])

    def bernoulli(logit: np.ndarray) -> np.ndarray:
        return (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float64)

    columns = dict(base)
    columns["e_coaching"] = bernoulli(_linear_predictor(_E_COACHING_ENROLMENT, columns))
    columns["readmitted_30d"] = bernoulli(_linear_predictor(TRUE_MODELS["readmitted_30d"], columns))
    visits = rng.poisson(_linear_predictor(TRUE_MODELS["specialist_visits"], columns))
    return {
        "e_coaching": columns["e_coaching"],
        "readmitted_30d": columns["readmitted_30d"],
        "specialist_visits": visits.astype(np.float64),
    }


def _extra_attribute(
    rng: np.random.Generator, s: np.ndarray, kind: str, k: int
) -> tuple[np.ndarray, float, float]:
    """Values of ``lab_k`` or ``claims_k``, its coefficient and its nominal centre.

    Odd ``k`` get a non-zero coefficient of alternating sign, sized so that one
    nominal standard deviation moves the target by ``_EXTRA_EFFECT_DAYS``.
    """
    n = len(s)
    if kind == "lab":
        _, median, log_sd, loading, decimals = _LABS[(k - 1) % len(_LABS)]
        total_sd = math.hypot(log_sd, loading)
        raw = median * np.exp(np.clip(loading * s + log_sd * rng.standard_normal(n),
                                      -3.5 * total_sd, 3.5 * total_sd))
        values = _round(raw, decimals)
        centre, spread = median, median * total_sd
    else:
        _, centre, log_sd, loading = _CLAIMS[(k - 1) % len(_CLAIMS)]
        if log_sd == 0.0:  # a count
            counts = rng.poisson(centre * np.exp(loading * s))
            values = np.minimum(counts, math.ceil(5 * centre + 5)).astype(np.float64)
            spread = math.sqrt(centre) + centre * loading
        else:  # a cost
            total_sd = math.hypot(log_sd, loading)
            raw = centre * np.exp(np.clip(loading * s + log_sd * rng.standard_normal(n),
                                          -3.5 * total_sd, 3.5 * total_sd))
            values = _round(raw, 2)
            spread = centre * total_sd
    if k % 2 == 0:
        return values, 0.0, centre
    sign = 1.0 if (k // 2) % 2 == 0 else -1.0
    return values, sign * _EXTRA_EFFECT_DAYS / spread, centre


# ---- parties 3 on ---------------------------------------------------------------------


@dataclass(frozen=True)
class _People:
    """What the tables of parties 3 on need to know of some people (arrays by person).

    ``noise`` is the target's noise divided by :data:`NOISE_SD` (a standard normal) and
    ``social`` the latent socio-economic position (higher = better off).
    """

    ids: np.ndarray
    id_text: list[str]
    severity: np.ndarray
    age: np.ndarray
    noise: np.ndarray
    social: np.ndarray

    def __add__(self, other: _People) -> _People:
        return _People(
            np.concatenate([self.ids, other.ids]),
            self.id_text + other.id_text,
            *(np.concatenate([a, b]) for a, b in (
                (self.severity, other.severity), (self.age, other.age),
                (self.noise, other.noise), (self.social, other.social),
            )),
        )


def _rng(seed: int, *key: int) -> np.random.Generator:
    """The stream ``SeedSequence(seed).spawn(...)[key[0]]``, or its descendant ``key``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _new_people(rows: int, shared: int) -> int:
    """How many people a party from the third on has that no other party has."""
    others = rows - shared
    return others - others // 2


def _socioeconomic(severity: np.ndarray, noise: np.ndarray, own: np.ndarray) -> np.ndarray:
    """A standard normal that loads on severity and the target's noise (:data:`_SES_LOADINGS`)."""
    a, b = _SES_LOADINGS
    return a * severity + b * noise + math.sqrt(1 - a * a - b * b) * own


def _more_tables(
    seed: int,
    party_count: int,
    rows: int,
    shared: int,
    missing_rate: float,
    id_space: int,
    known: tuple[np.ndarray, list[str], np.ndarray, np.ndarray, np.ndarray],
) -> tuple[SynthTable, ...]:
    """The tables of parties 3 to ``party_count``.

    ``known`` are the people of the first two tables (integer ids, id text, severity,
    age, standardised target noise), the shared ones first, then those at exactly
    one of the two parties.
    """
    if party_count <= 2:
        return ()
    ids, id_text, severity, age, noise = known
    social = _socioeconomic(severity, noise, _rng(seed, _SOCIAL_STREAM).standard_normal(len(ids)))
    people = _People(ids, id_text, severity, age, noise, social)
    single = rows - shared  # people at exactly one of the first two parties: 2 * single
    taken = ids
    tables = []
    for k in range(3, party_count + 1):
        ids_rng, members_rng, values_rng, missing_rng = (
            _rng(seed, _PARTY_STREAM, k, purpose) for purpose in range(4)
        )
        new_ids = _draw_distinct(ids_rng, _new_people(rows, shared), id_space, taken)
        taken = np.concatenate([taken, new_ids])
        pool = people + _draw_people(values_rng, new_ids)
        members = np.concatenate([
            np.arange(shared),
            shared + members_rng.choice(2 * single, single // 2, replace=False),
            np.arange(len(people.ids), len(pool.ids)),
        ])
        if k == 3:
            header, columns = (ID_COLUMN, *CBS_COLUMNS), _cbs_attributes(values_rng, pool)
        else:
            header = (ID_COLUMN, *(f"{name}_{k}" for name in GP_COLUMNS))
            columns = _gp_attributes(values_rng, pool)
        rows_k = _format_rows(
            pool.id_text, members_rng.permutation(members), columns, missing_rng, missing_rate
        )
        tables.append(SynthTable(header, rows_k))
    return tuple(tables)


def _draw_people(rng: np.random.Generator, ids: np.ndarray) -> _People:
    """People only one party has: severity, age and noise as for everyone else."""
    n = len(ids)
    severity = rng.standard_normal(n)
    age = _age(severity, rng.standard_normal(n))
    noise = rng.standard_normal(n)
    social = _socioeconomic(severity, noise, rng.standard_normal(n))
    return _People(ids, _format_ids(ids), severity, age, noise, social)


def _cbs_attributes(rng: np.random.Generator, p: _People) -> list[np.ndarray]:
    """The :data:`CBS_COLUMNS` of everyone in ``p``, in that order."""
    n = len(p.ids)
    age_z = (p.age - 70) / 10
    latent = 0.6 * p.social - 0.25 * age_z + 0.76 * rng.standard_normal(n)
    education = 1.0 + np.searchsorted(_EDUCATION_CUTS, latent)
    # Older people live in smaller households; living alone lengthens a stay (the noise).
    size = np.minimum(1 + rng.poisson(np.exp(-0.45 * age_z - 0.3 * p.noise)), 8).astype(np.float64)
    log_income = (
        math.log(_MEDIAN_INCOME)
        + 0.3 * p.social
        + 0.08 * (education - 4)
        + 0.25 * np.log(size)
        - 0.2 * (p.age >= _RETIREMENT_AGE)
        + 0.35 * rng.standard_normal(n)
    )
    income = np.clip(_round(np.exp(log_income), 0), 6000, 350000)
    deprivation = np.clip(_round(-0.6 * p.social + 0.8 * rng.standard_normal(n), 2), -4, 4)
    return [education, income, deprivation, size]


def _gp_attributes(rng: np.random.Generator, p: _People) -> list[np.ndarray]:
    """The :data:`GP_COLUMNS` of everyone in ``p``, in that order."""
    n = len(p.ids)
    age_z = (p.age - 70) / 10
    consults = rng.poisson(5.0 * np.exp(0.35 * p.severity + 0.15 * age_z - 0.1 * p.social))
    bmi = np.clip(_round(27 + 1.2 * p.severity - 0.8 * p.social + 4 * rng.standard_normal(n), 1), 15, 50)
    smokes = rng.random(n) < 1 / (1 + np.exp(1.5 + 0.5 * p.social - 0.2 * p.severity))
    return [np.minimum(consults, 40).astype(np.float64), bmi, smokes.astype(np.float64)]


def _format_ids(person_ids: np.ndarray) -> list[str]:
    """Zero-padded decimal ids (numpy's string routines beat an f-string per id)."""
    if not len(person_ids):
        return []  # np.char.zfill cannot size an empty array
    text = person_ids.astype(f"U{_ID_DIGITS}")
    return np.char.zfill(text, _ID_DIGITS).tolist()


def _format_column(values: np.ndarray) -> list[str]:
    """Cells as text that parses back to exactly ``values``.

    Values with at most two decimals over a modest range are formatted through a
    table of shared strings (ten times faster than formatting each cell, and a
    million cells share a few thousand string objects); whole numbers are written
    without a decimal point. Anything else uses ``repr``, the shortest text that
    round-trips.
    """
    for decimals in (0, 1, 2):
        scale = 10.0**decimals
        steps = np.rint(values * scale)
        if np.array_equal(steps / scale, values):
            break
    else:
        return list(map(repr, values.tolist()))
    low, high = int(steps.min()), int(steps.max())
    if high - low + 1 > len(values) // 2 + 1000:  # a table would cost more than it saves
        if decimals == 0:
            return list(map(str, steps.astype(np.int64).tolist()))
        return list(map(repr, values.tolist()))
    if decimals == 0:
        table = [str(v) for v in range(low, high + 1)]
    else:
        table = [repr(v + 0.0) for v in (np.arange(low, high + 1) / scale).tolist()]
    return list(map(table.__getitem__, (steps - low).astype(np.int64).tolist()))


def _format_rows(
    id_text: list[str],
    people: np.ndarray,
    columns: Sequence[np.ndarray],
    rng: np.random.Generator | Sequence[np.random.Generator],
    missing_rate: float,
) -> list[list[str]]:
    """Rows of text; each column's missing cells are drawn from ``rng`` (or its own in a list)."""
    rngs = [rng] * len(columns) if isinstance(rng, np.random.Generator) else rng
    cells = []
    for values, rng in zip(columns, rngs, strict=True):
        texts = _format_column(values[people])
        if missing_rate > 0:
            for index in np.flatnonzero(rng.random(len(people)) < missing_rate).tolist():
                texts[index] = ""
        cells.append(texts)
    ids = list(map(id_text.__getitem__, people.tolist()))
    with _gc_paused():
        return list(map(list, zip(ids, *cells, strict=True)))


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of row lists.

    Each new list is a tracked container; with the collector on, the repeated
    collections over the growing set of live rows cost five times the building
    itself. The rows hold only strings, so they cannot form cycles.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    chunk = 1 << 16
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.write(",".join(header) + "\n")
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            f.write("\n".join(map(",".join, part)) + "\n")
