"""Bad input files and configurations: each case's exact message and exit code, via the real CLI.

The table of cases below is the specification: every case runs the real command line
(``mpcactors simulate --hospital ... --insurer ...`` for input files, ``mpcactors party
--config ...`` for configurations) in a scratch directory, and must

* exit with the case's code, printing exactly ``error: <message>`` on stderr;
* write no result (no JSON document on stdout, no ``--result`` file);
* create no key: input and configuration are checked before any key exists or any
  byte leaves the party (key generation and the joint hashing key are watched).

``docs/errors.md`` is generated from the same table::

    python tests/robustness/test_bad_input.py > docs/errors.md

and ``test_the_error_reference_matches_the_cases`` fails when the two disagree.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "errors.md"

#: A valid hospital table; cases replace it, or break one line of it.
HOSPITAL = [
    "id,age,creatinine",
    *(f"P{n:03d},{40 + n},{60 + 2 * n}" for n in range(1, 13)),
]
#: A valid insurer table sharing every id.
INSURER = [
    "id,gp_visits,hospital_days",
    *(f"P{n:03d},{n % 7},{n % 5 + 1}" for n in range(1, 13)),
]


def hospital_with(row: int, line: str) -> bytes:
    """The valid hospital table with line ``row`` (1-based, header = 1) replaced."""
    lines = list(HOSPITAL)
    lines[row - 1] = line
    return ("\n".join(lines) + "\n").encode()


def write_sparse_2gib_line(path: Path) -> None:
    """A header, then one 2 GiB "line" of NUL bytes: a sparse file, nothing written to disk."""
    with open(path, "wb") as handle:
        handle.write(b"id,age,creatinine\n")
        handle.truncate(2 * 1024**3 + 18)


@dataclass(frozen=True)
class Case:
    """One bad input or configuration and exactly what the user must see."""

    id: str
    what: str  # the doc's description
    command: str  # "simulate" or "party"
    message: str  # the stderr line after "error: "
    exit_code: int
    hospital: bytes | Callable[[Path], None] | None = None  # simulate: hospital.csv
    options: tuple[str, ...] = ()
    edit: Callable[[Path], None] | None = None  # party: change the deployment


def _replace_in(file: str, old: str, new: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / file
        text = path.read_text()
        assert old in text, (file, old)
        path.write_text(text.replace(old, new, 1))

    return edit


def _remove(file: str) -> Callable[[Path], None]:
    return lambda root: (root / file).unlink()


def _chmod(file: str, mode: int) -> Callable[[Path], None]:
    return lambda root: os.chmod(root / file, mode)


def _with_plan(text: str | None) -> Callable[[Path], None]:
    """hospital.toml names plan.toml ([plan] file), which holds ``text`` (None: no such file)."""
    def edit(root: Path) -> None:
        _replace_in("hospital.toml", "[deadlines]", '[plan]\nfile = "plan.toml"\n\n[deadlines]')(root)
        if text is not None:
            (root / "plan.toml").write_text(text)

    return edit


BOUND = "|x| < 2**20 = 1048576"
SAME_ID = "duplicate id: this row has the same id as row 2"

CASES = [
    # ---- input files (mpcactors simulate --hospital hospital.csv --insurer insurer.csv) ----
    Case("missing-file", "The input file does not exist", "simulate",
         "hospital.csv: the file does not exist", 3, hospital=None),
    Case("empty-file", "Empty file", "simulate",
         "hospital.csv: the file is empty (expected a header row)", 3, hospital=b""),
    Case("header-only", "Header only, no data rows", "simulate",
         "hospital.csv: there are no data rows; the minimum is 10", 3, hospital=b"id,age,creatinine\n"),
    Case("unknown-id-column", "The id column named by `--id-column` is not in the header", "simulate",
         "hospital.csv, row 1: the id column 'patient' is not in the header; the header has: 'id', 'age', 'creatinine'",
         3, hospital=hospital_with(1, "id,age,creatinine"), options=("--id-column", "patient")),
    Case("unknown-target", "The target named by `--target` is in neither table", "simulate",
         "--target 'length_of_stay' is not a column of either CSV (hospital: ['age', 'creatinine'], "
         "insurer: ['gp_visits', 'hospital_days'])", 2,
         hospital=hospital_with(1, "id,age,creatinine"), options=("--target", "length_of_stay")),
    Case("duplicate-column", "A column name appears twice in the header", "simulate",
         "hospital.csv, row 1, column 'age': the column name 'age' appears twice in the header (fields 2 and 3)",
         3, hospital=hospital_with(1, "id,age,age")),
    Case("wrong-field-count", "A row has more fields than the header", "simulate",
         "hospital.csv, row 4: the row has 4 fields but the header has 3", 3, hospital=hospital_with(4, "P003,42,66,1")),
    Case("non-numeric", "A value is not a number", "simulate",
         "hospital.csv, row 3, column 'age': the value is not a number", 3, hospital=hospital_with(3, "P002,old,64")),
    Case("nan", "A value is NaN", "simulate",
         f"hospital.csv, row 3, column 'creatinine': the value is not a finite number (values must satisfy {BOUND})",
         3, hospital=hospital_with(3, "P002,42,nan")),
    Case("infinity", "A value is infinite", "simulate",
         f"hospital.csv, row 5, column 'age': the value is not a finite number (values must satisfy {BOUND})",
         3, hospital=hospital_with(5, "P004,-inf,68")),
    Case("beyond-bound", "A value is beyond the fixed-point bound (2^20 with the default parameters)", "simulate",
         f"hospital.csv, row 6, column 'creatinine': the value is outside the fixed-point bound {BOUND}",
         3, hospital=hospital_with(6, "P005,45,2000000")),
    Case("duplicate-id", "Two rows have the same id", "simulate",
         f"hospital.csv, row 4, column 'id': {SAME_ID}", 3, hospital=hospital_with(4, "P001,43,66")),
    Case("ids-differ-in-case-or-space", "Two ids differ only in letter case or surrounding whitespace", "simulate",
         f"hospital.csv, row 4, column 'id': {SAME_ID} (the two ids differ only in surrounding whitespace, "
         "letter case or Unicode normalisation, which are ignored when matching ids)",
         3, hospital=hospital_with(4, " p001 ,43,66")),
    Case("empty-id", "An id is empty", "simulate",
         "hospital.csv, row 3, column 'id': the id is empty", 3, hospital=hospital_with(3, ",42,64")),
    Case("not-utf8", "The file is not UTF-8 (e.g. Latin-1)", "simulate",
         "hospital.csv, row 3: the line is not valid UTF-8 (first bad byte at position 2 of the line); "
         "save the file as UTF-8", 3, hospital=hospital_with(3, "P002,42,64").replace(b"P002", b"P\xe9002")),
    Case("multiline-field", "A quoted field contains a line break", "simulate",
         "hospital.csv, row 3: a quoted field contains a line break (or a quote is not closed); "
         "every record must fit on one line", 3, hospital=hospital_with(3, '"P0\n02",42,64')),
    Case("line-of-2-gib", "A 2 GiB line (a corrupt or non-CSV file); rejected after reading about 1 MiB of it",
         "simulate",
         "hospital.csv, row 2: the line is longer than 1048576 bytes (1 MiB); is this really a CSV table?",
         3, hospital=write_sparse_2gib_line),
    Case("too-few-rows", "Too few usable rows once rows with a missing value are dropped", "simulate",
         "hospital.csv: only 11 usable data rows (1 row dropped for a missing value); the minimum is 12", 3,
         hospital=hospital_with(7, "P006,NA,72"), options=("--min-intersection", "12")),
    # ---- configurations (mpcactors party --config hospital.toml), from `deploy-example` ----
    Case("missing-certificate", "The certificate file named in [tls] does not exist", "party",
         "hospital.toml: [tls] certificate: certs/hospital.crt does not exist", 2, edit=_remove("certs/hospital.crt")),
    Case("key-permissions", "The private key is readable by group or others", "party",
         "hospital.toml: [tls] key: certs/hospital.key: permissions 0644 are too open: the private key must not be "
         "accessible by group or others (run: chmod 600 certs/hospital.key)", 2,
         edit=_chmod("certs/hospital.key", 0o644)),
    Case("unknown-key", "An unknown key in a table (here a typo in [party])", "party",
         "hospital.toml: unknown key [party] listne (known keys: executor, listen, role, workers)", 2,
         edit=_replace_in("hospital.toml", "listen =", "listne =")),
    Case("bad-fingerprint", "A pinned fingerprint ([peers.NAME] fingerprint) without the `sha256:` prefix", "party",
         "hospital.toml: [peers.insurer] fingerprint: must be \"sha256:\" and the 64 hex digits of the certificate's "
         "SHA-256 fingerprint, got 'EB:63:2D:E8' (run: mpcactors certs inspect CERT; it prints the line to paste)", 2,
         edit=_replace_in("hospital.toml", 'identity = "insurer.mpcactors.test"',
                          'identity = "insurer.mpcactors.test"\nfingerprint = "EB:63:2D:E8"')),
    Case("unknown-table", "An unknown table", "party",
         "hospital.toml: unknown table [inputs] (known: audit, deadlines, input, party, peers, plan, protocol, tls)", 2,
         edit=_replace_in("hospital.toml", "[input]", "[inputs]")),
    Case("insecure-sigma", "[protocol] sigma below the statistical security floor (masks too short)", "party",
         "hospital.toml: [protocol] parameter sigma = 1 is below the statistical security floor 40: masks that short "
         "let the parties learn each other's values", 2,
         edit=_replace_in("hospital.toml", "alpha = 0.1", "alpha = 0.1\nsigma = 1")),
    Case("frac-bits-too-small", "[protocol] frac_bits too small for the secure lasso's scaling", "party",
         "hospital.toml: [protocol] parameter frac_bits = 12 is too small: step 8 scales columns by secret powers of "
         "two down to 2**-23, exact only with frac_bits >= 23", 2,
         edit=_replace_in("hospital.toml", "alpha = 0.1", "alpha = 0.1\nfrac_bits = 12")),
    Case("bits-over-the-field", "[protocol] frac_bits and int_bits that step 8's field cannot hold", "party",
         "hospital.toml: [protocol] parameters frac_bits = 24, int_bits = 24, sigma = 40 and max_rows = 2097152 need "
         "a Shamir prime above 2**193 in step 8 (its covariance operation), but the prime has 191 bits: lower one of "
         "them", 2, edit=_replace_in("hospital.toml", "alpha = 0.1", "alpha = 0.1\nint_bits = 24")),
    Case("unknown-id-fold", "[protocol] id_fold is not a known case folding", "party",
         "hospital.toml: [protocol] id fold must be one of 'casefold', 'none', got 'lower'", 2,
         edit=_replace_in("hospital.toml", "alpha = 0.1", 'alpha = 0.1\nid_fold = "lower"')),
    Case("two-column-forms", "[protocol] has both hospital_columns/insurer_columns and a [protocol.columns] table",
         "party", "hospital.toml: [protocol.columns] and [protocol] hospital_columns, insurer_columns: two forms of the "
         "parties' columns; use one ([protocol.columns] has one key per data party)", 2,
         edit=_replace_in("hospital.toml", "alpha = 0.1", 'alpha = 0.1\n\n[protocol.columns]\nhospital = ["age"]\n'
                                                          'insurer = ["hospital_days"]')),
    Case("party-without-peer", "[protocol] parties adds a data party that has no [peers.<name>] table", "party",
         "hospital.toml: [peers.cbs] is missing (it needs at least identity, and address if we dial it)", 2,
         edit=_replace_in("hospital.toml", "alpha = 0.1", 'alpha = 0.1\nparties = ["hospital", "insurer", "cbs"]')),
    Case("compute-not-a-party", "[protocol] compute names a party that is not in [protocol] parties", "party",
         "hospital.toml: [protocol] compute: compute parties must be two distinct data parties of ['hospital', "
         "'insurer'], got ['hospital', 'cbs']", 2,
         edit=_replace_in("hospital.toml", "alpha = 0.1", 'alpha = 0.1\ncompute = ["hospital", "cbs"]')),
    Case("unknown-column", "[protocol] names a column that the party's CSV does not have", "party",
         "hospital: data/hospital.csv, row 1, column 'bmi': the column 'bmi' is not in the header; the header has: "
         "'id', 'age', 'ejection_fraction', 'nt_probnp', 'creatinine', 'systolic_bp', 'e_coaching', 'readmitted_30d'", 3,
         edit=_replace_in("hospital.toml", '"readmitted_30d"]', '"readmitted_30d", "bmi"]')),
    Case("missing-plan", "The study plan named in [plan] file does not exist", "party",
         "hospital.toml: [plan] file: plan.toml does not exist", 2, edit=_with_plan(None)),
    Case("plan-unknown-target", "The study plan's lasso names a target that is no party's column", "party",
         "plan.toml: [[analysis]] 1 (days) target: 'length_of_stay' is no party's column (hospital: age, "
         "ejection_fraction, nt_probnp, creatinine, systolic_bp, e_coaching, readmitted_30d; insurer: gp_visits, "
         "medication_cost, prior_admissions, chronic_conditions, specialist_visits, hospital_days)", 2,
         edit=_with_plan('title = "t"\n[[analysis]]\nname = "days"\nkind = "lasso"\ntarget = "length_of_stay"\nalpha = 0.1\n')),
    Case("plan-unknown-kind", "The study plan names an analysis kind that does not exist", "party",
         "plan.toml: [[analysis]] 1 (table) kind: must be one of describe, lasso, linear, logistic, got a string ('crosstab')", 2,
         edit=_with_plan('title = "t"\n[[analysis]]\nname = "table"\nkind = "crosstab"\n')),
    Case("missing-input", "The CSV named in [input] does not exist", "party",
         "hospital: data/hospital.csv: the file does not exist", 3, edit=_remove("data/hospital.csv")),
    Case("audit-path-is-a-directory", "[audit] path names a directory, not the audit file", "party",
         "hospital.toml: [audit] path: data is a directory; name a file in it (e.g. data/audit.jsonl)", 2,
         edit=_replace_in("hospital.toml", "[input]", '[audit]\npath = "data"\n\n[input]')),
    Case("audit-directory-missing", "[audit] path is in a directory that does not exist", "party",
         "hospital.toml: [audit] path: the directory logs does not exist", 2,
         edit=_replace_in("hospital.toml", "[input]", '[audit]\npath = "logs/audit.jsonl"\n\n[input]')),
]


# ---- running a case --------------------------------------------------------------------------


class KeyCount:
    """Counts key objects created during a command (none may be, for a bad input)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from mpcactors.crypto import hashing, paillier

        self.created: list[str] = []
        generate, joint = paillier.generate_keypair, hashing.JointKey.from_contributions

        def counted_generate(*args, **kwargs):
            self.created.append("paillier_secret")
            return generate(*args, **kwargs)

        def counted_joint(*args, **kwargs):
            self.created.append("hash_key")
            return joint(*args, **kwargs)

        monkeypatch.setattr(paillier, "generate_keypair", counted_generate)
        monkeypatch.setattr(hashing.JointKey, "from_contributions", staticmethod(counted_joint))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """A valid three-party loopback deployment (1024-bit test keys), copied per case."""
    from mpcactors.cli import main

    out = tmp_path_factory.mktemp("deployment") / "example"
    result = CliRunner().invoke(main, ["deploy-example", "--out", str(out), "--rows", "20", "--insecure-test-keys"])
    assert result.exit_code == 0, result.output
    return out


def run_case(case: Case, tmp_path: Path, deployment: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[object, KeyCount]:
    from mpcactors.cli import main

    if case.command == "simulate":
        work = tmp_path
        (work / "insurer.csv").write_text("\n".join(INSURER) + "\n")
        if isinstance(case.hospital, bytes):
            (work / "hospital.csv").write_bytes(case.hospital)
        elif case.hospital is not None:
            case.hospital(work / "hospital.csv")
        args = ["simulate", "--hospital", "hospital.csv", "--insurer", "insurer.csv", "--json", *case.options]
    else:
        work = tmp_path / "deployment"
        shutil.copytree(deployment, work)
        assert case.edit is not None
        case.edit(work)
        args = ["party", "--config", "hospital.toml", "--result", "result.json", "--log-level", "error", *case.options]
    monkeypatch.chdir(work)
    keys = KeyCount(monkeypatch)
    return CliRunner().invoke(main, args), keys


def one_line(text: str) -> str:
    """stderr as one line: the console may wrap long messages at its width."""
    return " ".join(text.split())


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_with_its_exact_message_and_exit_code(case, tmp_path, deployment, monkeypatch):
    result, keys = run_case(case, tmp_path, deployment, monkeypatch)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert one_line(result.stderr) == one_line(f"error: {case.message}"), result.stderr
    assert result.exit_code == case.exit_code
    assert result.stdout == ""  # no result document
    assert not Path("result.json").exists()
    assert keys.created == []  # checked before any key exists: nothing to destroy, nothing sent
    assert "Traceback" not in result.output


def test_the_harness_sees_keys_and_results_when_the_input_is_good(tmp_path, deployment, monkeypatch):
    """Control: the same harness on valid tables creates keys and prints a result, so the
    checks above (no key, no result) can fail."""
    case = Case("valid", "", "simulate", "", 0, hospital=hospital_with(1, HOSPITAL[0]),
                options=("--key-bits", "2048", "--alpha", "1"))
    result, keys = run_case(case, tmp_path, deployment, monkeypatch)
    assert result.exit_code == 0, result.output
    assert '"intersection_size": 12' in result.stdout
    assert {"paillier_secret", "hash_key"} <= set(keys.created)


def test_a_2gib_line_is_rejected_with_bounded_memory(tmp_path, deployment, monkeypatch):
    """The 2 GiB line costs about two 1 MiB read blocks, never the line."""
    case = next(c for c in CASES if c.id == "line-of-2-gib")
    gc.collect()
    tracemalloc.start()
    try:
        result, _ = run_case(case, tmp_path, deployment, monkeypatch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 3
    assert (tmp_path / "hospital.csv").stat().st_size > 2 * 1024**3
    assert (tmp_path / "hospital.csv").stat().st_blocks * 512 < 1024**2  # sparse: nothing on disk
    assert peak < 16 * 1024**2, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("name", ["[/]", "[bold]x"])
def test_a_column_name_with_square_brackets_is_reported_verbatim(name, tmp_path, deployment, monkeypatch):
    case = Case("brackets", "", "simulate",
                f"hospital.csv, row 1, column '{name}': the column name '{name}' appears twice in the header "
                "(fields 2 and 3)", 3, hospital=hospital_with(1, f"id,{name},{name}"))
    result, _ = run_case(case, tmp_path, deployment, monkeypatch)
    assert result.exit_code == 3
    assert one_line(result.stderr) == one_line(f"error: {case.message}")


# ---- the reference in docs/errors.md ---------------------------------------------------------

EXIT_CODES = [
    (0, "success", "the result was written"),
    (1, "internal error", "a bug (or a crash); `--log-level debug` shows the traceback"),
    (2, "configuration", "`ConfigError`: a command-line option or the party's TOML file is wrong"),
    (3, "input", "`InputError`: this party's CSV is wrong, or the intersection is below the minimum; "
     "`audit verify`: a record of the audit file does not verify"),
    (4, "peer protocol or connection", "`PeerProtocolError`, `CodecError`, `TransportError`: a peer sent "
     "something illegal or undecodable, or a link broke"),
    (5, "TLS", "`TLSError`: the handshake or the peer's identity check failed"),
    (6, "timeout", "`StepTimeout`: a step deadline passed while waiting for a peer"),
    (7, "aborted", "`AbortedError`: another party stopped the run; the message quotes its reason"),
]


def cell(text: str) -> str:
    """Markdown table cell: a ``|`` (as in ``|x| < 2**20``) must be escaped, even in code."""
    return text.replace("|", "\\|")


def render() -> str:
    lines = [
        "# Errors: messages and exit codes",
        "",
        "<!-- generated by `python tests/robustness/test_bad_input.py > docs/errors.md`;",
        "     tests/robustness/test_bad_input.py checks that it matches the cases it runs -->",
        "",
        "Every error is one line on stderr, `error: <message>`, and an exit code that says whose",
        "fault it is. Messages name the file, row and column, or the config file, table and key;",
        "they never contain a cell value or an id (those may be personal data, and messages end up",
        "in logs). Bad input and configuration are detected before any key exists and before any",
        "byte is sent, and no result file is written.",
        "",
        "## Exit codes",
        "",
        "| code | class | meaning |",
        "|---:|---|---|",
        *(f"| {code} | {name} | {meaning} |" for code, name, meaning in EXIT_CODES),
        "",
        "## Bad input files",
        "",
        "Each case below is run by the test suite exactly as shown: `mpcactors simulate --hospital",
        "hospital.csv --insurer insurer.csv` (with the options listed) on a small valid insurer table",
        "and a hospital table with the defect. `mpcactors party` prints the same messages for its own",
        "CSV, prefixed with the party's role.",
        "",
        "| case | options | exit | message |",
        "|---|---|---:|---|",
    ]
    for case in CASES:
        if case.command == "simulate":
            lines.append(f"| {case.what} | {' '.join(f'`{o}`' for o in case.options) or '-'} | "
                         f"{case.exit_code} | `error: {cell(case.message)}` |")
    lines += [
        "",
        "## Bad configurations",
        "",
        "Each case starts from the loopback deployment written by `mpcactors deploy-example`, changes",
        "one thing, and runs `mpcactors party --config hospital.toml --result result.json` in its",
        "directory. Paths in messages are as the config file names them (relative to it).",
        "",
        "| case | exit | message |",
        "|---|---:|---|",
    ]
    for case in CASES:
        if case.command == "party":
            lines.append(f"| {case.what} | {case.exit_code} | `error: {cell(case.message)}` |")
    lines += [
        "",
        "## Failures during a run",
        "",
        "Faults after the start (a crashed or unreachable party, a late, duplicated, reordered,",
        "corrupt or foreign message) are tested for every step and every party in",
        "`tests/robustness/test_faults.py`; hostile bytes in `tests/robustness/test_fuzz.py`. The party",
        "that detects the fault exits with the code of its class and names the party, the step and",
        "the cause; the others exit with 7 and quote that reason. Messages from those tests (default",
        "deadlines):",
        "",
        "| fault | exit | example (from the fault tests) |",
        "|---|---:|---|",
        "| a peer crashes (the crashed party itself exits 1) | 7 | `hospital aborted the run at step 5: internal error (InjectedCrash)` |",
        "| a connection drops | 4 | `ttp: waiting for masks from insurer at step 5, the link ended: insurer closed the link to ttp` |",
        "| a peer stalls past the deadline | 6 | `insurer: waiting for masked from ttp at step 6 (mask and forward) took longer than 600 s` |",
        "| a message is duplicated or reordered | 4 | `ttp: at step 4 (intersect): hospital sent message number 0 where 1 was expected (duplicated, dropped or reordered)` |",
        "| a message of the wrong kind | 4 | `insurer: at step 3 (encrypt): hospital -> insurer: message 'mpc' is not legal at step 3 (STEP_3)` |",
        "| a message from another session | 4 | `hospital: at step 8 (secure lasso): insurer sent a message from another session` |",
        "| undecodable bytes | 4 | `ttp: at step 4: hospital sent undecodable bytes: malformed message (ExtraData)` |",
        "| a peer's Paillier key is not of the agreed size, or its DJN base is not the one this session derives "
        "| 4 | `insurer: at step 3: hospital sent a Paillier public key that is refused: Paillier public key modulus "
        "has 512 bits; the run agreed on 1024` |",
        "",
    ]
    return "\n".join(lines)


def test_the_error_reference_matches_the_cases():
    assert DOC.read_text() == render(), (
        "docs/errors.md is out of date: python tests/robustness/test_bad_input.py > docs/errors.md"
    )


if __name__ == "__main__":
    sys.stdout.write(render())
