"""Deployed parties: config validation, connection establishment over real loopback TCP,
the ``check`` and ``party`` commands, and real ``mpcactors party`` processes (three for
the default two data parties, four and five for three and four data parties).

Loopback tests bind ports chosen free at test time on 127.0.0.1 and keep every wait
under an absolute ``trio.fail_after`` (or a subprocess timeout).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from click.testing import CliRunner

from mpcactors.cli.daemon import check as check_command
from mpcactors.cli.daemon import deploy_example
from mpcactors.cli.daemon import party as party_command
from mpcactors.certs import init_ca, issue_certificate
from mpcactors.daemon import (
    PartyConfig,
    PeerConfig,
    check_peers,
    default_dials,
    establish_links,
    load_input,
    load_party_config,
    parameters_digest,
)
from mpcactors.errors import ConfigError, PeerProtocolError, StepTimeout, TLSError
from mpcactors.protocol.roster import Roster, default_names

ROLES = ("hospital", "insurer", "ttp")
#: The members of a three-data-party session.
MEMBERS3 = ("hospital", "insurer", "cbs", "ttp")
TIMEOUT = 30


def make_deployment(directory: Path, *, rows: int = 60, parties: int = 2) -> dict[str, Path]:
    """``mpcactors deploy-example`` with 1024-bit test keys: configs, certificates, CSVs."""
    result = CliRunner().invoke(
        deploy_example,
        ["--out", str(directory), "--rows", str(rows), "--insecure-test-keys", *(["--parties", str(parties)] if parties != 2 else [])],
    )
    assert result.exit_code == 0, result.output
    return {role: directory / f"{role}.toml" for role in Roster(default_names(parties)).members}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_deployment(tmp_path_factory.mktemp("template"))


@pytest.fixture
def deployment(tmp_path: Path) -> dict[str, Path]:
    return make_deployment(tmp_path / "dep")


@pytest.fixture(scope="module")
def template3(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_deployment(tmp_path_factory.mktemp("template3"), parties=3)


@pytest.fixture
def deployment3(tmp_path: Path) -> dict[str, Path]:
    return make_deployment(tmp_path / "dep3", parties=3)


def edit(path: Path, old: str, new: str) -> Path:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))
    return path


def append(path: Path, text: str) -> Path:
    path.write_text(path.read_text() + text)
    return path


def set_deadlines(path: Path, **values: float) -> Path:
    text = path.read_text()
    for key, value in values.items():
        if re.search(rf"^{key} = ", text, re.M):
            text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
        else:
            text = text.replace("[deadlines]  # seconds\n", f"[deadlines]  # seconds\n{key} = {value}\n")
    path.write_text(text)
    return path


def copy_config(source: Path, directory: Path) -> Path:
    """``source`` copied into ``directory`` with its certificate and data paths made absolute."""
    path = directory / source.name
    parent = source.parent
    path.write_text(source.read_text().replace('"certs/', f'"{parent}/certs/').replace('"data/', f'"{parent}/data/'))
    return path


# ---- configuration ---------------------------------------------------------------------------


def test_a_generated_config_loads_with_defaults_and_paths_relative_to_the_file(template: dict[str, Path]) -> None:
    h = load_party_config(template["hospital"])
    i = load_party_config(template["insurer"])
    t = load_party_config(template["ttp"])
    assert (h.role, i.role, t.role) == ROLES
    # default dial directions: H and I dial T, I dials H; so only T and H listen
    assert {(c.role, p.role) for c in (h, i, t) for p in c.peers.values() if p.dial} == {
        ("hospital", "ttp"), ("insurer", "ttp"), ("insurer", "hospital"),
    }
    assert i.listen is None and h.listen is not None and t.listen is not None
    assert h.tls.certificate == template["hospital"].parent / "certs" / "hospital.crt"
    assert h.input is not None and h.input.csv == template["hospital"].parent / "data" / "hospital.csv"
    assert h.input.columns == h.run.columns_of("hospital") and t.input is None
    assert h.role_by_identity == {"insurer.mpcactors.test": "insurer", "ttp.mpcactors.test": "ttp"}
    assert h.run.key_bits == 1024 and h.run.allow_test_key_sizes
    assert parameters_digest(h.run) == parameters_digest(i.run) == parameters_digest(t.run)


def test_deploy_example_writes_a_ready_deployment_with_2048_bit_keys_and_prints_the_commands(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(deploy_example, ["--out", str(out), "--rows", "50"])
    assert result.exit_code == 0, result.output
    configs = {role: load_party_config(out / f"{role}.toml") for role in ROLES}
    assert {c.run.key_bits for c in configs.values()} == {2048}
    assert not any(c.run.allow_test_key_sizes for c in configs.values())
    # the dialers' addresses are the listeners' ports, on loopback
    assert configs["insurer"].peers["ttp"].address == configs["ttp"].listen == configs["hospital"].peers["ttp"].address
    assert configs["insurer"].peers["hospital"].address == configs["hospital"].listen
    assert configs["hospital"].listen[0] == "127.0.0.1"  # type: ignore[index]
    for role in ROLES:
        assert f"mpcactors party --config {out / (role + '.toml')} --result" in result.output
    assert CliRunner().invoke(deploy_example, ["--out", str(out)]).exit_code == 2  # not over an existing one


def test_the_parameter_digest_covers_the_computation_but_not_local_deadlines(tmp_path: Path, template: dict[str, Path]) -> None:
    base = load_party_config(template["insurer"])
    path = tmp_path / "insurer.toml"
    path.write_text(template["insurer"].read_text().replace('"certs/', f'"{template["insurer"].parent}/certs/').replace('"data/', f'"{template["insurer"].parent}/data/'))
    set_deadlines(path, step_3=5, connect=7)
    assert parameters_digest(load_party_config(path).run) == parameters_digest(base.run)
    edit(path, "alpha = 0.1", "alpha = 0.2")
    assert parameters_digest(load_party_config(path).run) != parameters_digest(base.run)


def test_parties_that_fold_ids_differently_do_not_agree_on_the_parameters(tmp_path: Path, template: dict[str, Path]) -> None:
    # the hello compares this digest, so a party that matches ids case-sensitively never
    # runs with one that folds case: their hashed ids would silently fail to meet
    base = load_party_config(template["insurer"])
    path = tmp_path / "insurer.toml"
    path.write_text(template["insurer"].read_text().replace('"certs/', f'"{template["insurer"].parent}/certs/').replace('"data/', f'"{template["insurer"].parent}/data/'))
    edit(path, "alpha = 0.1", 'alpha = 0.1\nid_fold = "casefold"')
    assert parameters_digest(load_party_config(path).run) == parameters_digest(base.run)  # the default, said aloud
    edit(path, 'id_fold = "casefold"', 'id_fold = "none"')
    changed = load_party_config(path).run
    assert changed.id_fold == "none" and parameters_digest(changed) != parameters_digest(base.run)


def test_the_sigma_floor_is_lifted_only_by_the_test_switch(tmp_path: Path, template: dict[str, Path]) -> None:
    path = tmp_path / "insurer.toml"
    path.write_text(template["insurer"].read_text().replace('"certs/', f'"{template["insurer"].parent}/certs/').replace('"data/', f'"{template["insurer"].parent}/data/'))
    edit(path, "alpha = 0.1", "alpha = 0.1\nsigma = 30\ninsecure_test_sigma = true")
    assert load_party_config(path).run.params.sigma == 30


def test_a_three_party_config_names_every_member_and_the_dials_cover_every_link_once(template3: dict[str, Path]) -> None:
    configs = {role: load_party_config(path) for role, path in template3.items()}
    assert tuple(configs) == MEMBERS3
    for role, config in configs.items():
        assert config.role == role
        assert config.run.roster.members == MEMBERS3 and config.run.compute == ("hospital", "insurer")
        assert list(config.peers) == [m for m in MEMBERS3 if m != role]
    dials = {(c.role, p.role) for c in configs.values() for p in c.peers.values() if p.dial}
    # every data party dials the TTP, later data parties dial earlier ones: each link has one dialer
    assert dials == default_dials(configs["ttp"].run.roster) == {
        ("hospital", "ttp"), ("insurer", "ttp"), ("cbs", "ttp"),
        ("insurer", "hospital"), ("cbs", "hospital"), ("cbs", "insurer"),
    }
    for dialer, listener in dials:
        assert not configs[listener].peers[dialer].dial
        assert configs[dialer].peers[listener].address == configs[listener].listen
    assert configs["cbs"].listen is None
    assert len({configs[r].listen for r in ("hospital", "insurer", "ttp")}) == 3
    cbs = configs["cbs"]
    assert cbs.input is not None and cbs.input.csv == template3["cbs"].parent / "data" / "cbs.csv"
    assert cbs.input.columns == cbs.run.columns_of("cbs") and len(cbs.input.columns) == 4
    assert configs["ttp"].role_by_identity == {f"{m}.mpcactors.test": m for m in MEMBERS3 if m != "ttp"}
    assert len({parameters_digest(c.run) for c in configs.values()}) == 1


def test_the_parameter_digest_covers_the_roster_order_the_compute_parties_and_every_partys_columns(tmp_path: Path, template3: dict[str, Path]) -> None:
    path = copy_config(template3["ttp"], tmp_path)
    base = parameters_digest(load_party_config(path).run)
    parties = 'parties = ["hospital", "insurer", "cbs"]'
    edit(path, parties, f'{parties}\ncompute = ["hospital", "insurer"]')
    assert parameters_digest(load_party_config(path).run) == base  # the default, said aloud
    for old, new in [
        (parties, 'parties = ["hospital", "cbs", "insurer"]'),  # same columns and compute, another order
        ('compute = ["hospital", "insurer"]', 'compute = ["hospital", "cbs"]'),
        ('"household_size"]', '"household_size", "rent"]'),
    ]:
        edit(path, old, new)
        changed = load_party_config(path).run
        assert parameters_digest(changed) != base, new
        edit(path, new, old)
    assert parameters_digest(load_party_config(path).run) == base


def test_the_two_column_forms_describe_the_same_two_party_session(tmp_path: Path, template: dict[str, Path]) -> None:
    path = copy_config(template["ttp"], tmp_path)
    legacy = load_party_config(path).run
    text = path.read_text()
    hospital = re.search(r"^hospital_columns = (.*)$", text, re.M).group(1)  # type: ignore[union-attr]
    insurer = re.search(r"^insurer_columns = (.*)$", text, re.M).group(1)  # type: ignore[union-attr]
    text = re.sub(r"^(hospital|insurer)_columns = .*\n", "", text, flags=re.M)
    table = f'\n[protocol.columns]\nhospital = {hospital}\ninsurer = {insurer}\n'
    path.write_text(text.replace("alpha = 0.1\n", f'alpha = 0.1\nparties = ["hospital", "insurer"]\n{table}'))
    table_form = load_party_config(path).run
    assert table_form == legacy and parameters_digest(table_form) == parameters_digest(legacy)


def test_the_two_party_column_keys_do_not_serve_another_roster(tmp_path: Path, template3: dict[str, Path]) -> None:
    path = copy_config(template3["ttp"], tmp_path)
    text = path.read_text()
    without_table = text.replace(text[text.index("[protocol.columns]") : text.index("[deadlines]")], "")
    path.write_text(without_table)
    with pytest.raises(ConfigError) as info:
        load_party_config(path)
    assert str(info.value) == f"{path}: [protocol.columns] is required: one key per data party (hospital, insurer, cbs)"
    path.write_text(without_table.replace("alpha = 0.1\n", 'alpha = 0.1\nhospital_columns = ["age"]\ninsurer_columns = ["hospital_days"]\n\n'))
    with pytest.raises(ConfigError) as info:
        load_party_config(path)
    assert str(info.value) == (
        f"{path}: [protocol] hospital_columns: serves only the parties hospital and insurer; with [protocol] parties = "
        "['hospital', 'insurer', 'cbs'], give every party's columns in [protocol.columns]"
    )
    path.write_text(without_table.replace("alpha = 0.1\n", "alpha = 0.1\ncolumns = 5\n"))
    with pytest.raises(ConfigError, match=re.escape("[protocol] columns: must be a table ([protocol.columns]), got an integer (5)")):
        load_party_config(path)


BAD_CONFIGS = [
    # (role file, old text, new text, expected message after "<file>: ")
    ("hospital", 'role = "hospital"', 'role = "lab"', '[party] role: must be one of hospital, insurer, ttp, got \'lab\''),
    ("hospital", "[party]\n", "[party]\ncolour = 1\n", "unknown key [party] colour (known keys: executor, listen, role, workers)"),
    ("hospital", "[party]\n", "[party]\nexecutor = \"gpu\"\n", "[party] executor: must be one of auto, inline, thread, process, got 'gpu'"),
    ("hospital", "[party]\n", "[party]\nworkers = 0\n", "[party] workers: must be at least 1, got 0"),
    ("hospital", "[tls]", "[tsl]\nx = 1\n[tls]", "unknown table [tsl]"),
    ("insurer", "dial = true", "dial = true\nadress = \"x:1\"", "unknown key [peers.hospital] adress (known keys: address, dial, fingerprint, identity)"),
    ("insurer", 'address = "127.0.0.1:', 'address = "127.0.0.1', "[peers.hospital] address: must be \"host:port\""),
    ("hospital", 'identity = "insurer.mpcactors.test"', 'identity = 7', "[peers.insurer] identity: must be a non-empty string, got an integer (7)"),
    ("ttp", '[peers.hospital]', '[peers.lab]\nidentity = "x"\n[peers.hospital]', "unknown table [peers.lab]: the peers of the ttp are hospital and insurer"),
    ("ttp", 'identity = "insurer.mpcactors.test"', 'identity = "insurer.mpcactors.test"\nfingerprint = "sha1:' + "ab" * 20 + '"',
     '[peers.insurer] fingerprint: must be "sha256:" and the 64 hex digits of the certificate\'s SHA-256 fingerprint, got \'sha1:'),
    ("ttp", 'identity = "insurer.mpcactors.test"', 'identity = "insurer.mpcactors.test"\nfingerprint = "sha256:' + "ab" * 31 + '"',
     "[peers.insurer] fingerprint: must be \"sha256:\" and the 64 hex digits"),
    ("ttp", 'identity = "insurer.mpcactors.test"', 'identity = "insurer.mpcactors.test"\nfingerprint = true',
     "[peers.insurer] fingerprint: must be a non-empty string, got a boolean (True)"),
    ("hospital", "listen = ", "# listen = ", "[party] listen is required, since insurer dial(s) us"),
    ("insurer", "dial = true", "dial = false", "[party] listen is required, since hospital dial(s) us"),
    ("hospital", "key_bits = 1024", "key_bits = 1536", "[protocol] key_bits must be one of [512, 1024, 2048, 3072, 4096], got 1536"),
    ("hospital", "insecure_test_key_bits = true", "insecure_test_key_bits = false", "[protocol] key_bits must be one of [2048, 3072, 4096], got 1024"),
    ("hospital", 'target = "hospital_days"', 'target = "mortality"', "[protocol] target column 'mortality' is in neither party's columns"),
    ("hospital", "alpha = 0.1", 'alpha = "0.1"', "[protocol] alpha: must be a number, got a string ('0.1')"),
    ("hospital", "alpha = 0.1", "alpha = 0.1\nsigma = 1", "[protocol] parameter sigma = 1 is below the statistical security floor 40"),
    ("hospital", "alpha = 0.1", "alpha = 0.1\nfrac_bits = 12", "[protocol] parameter frac_bits = 12 is too small"),
    ("hospital", "alpha = 0.1", "alpha = 0.1\nfrac_bits = 30", "[protocol] parameters frac_bits = 30, int_bits = 20, sigma = 40 and max_rows"),
    ("hospital", "alpha = 0.1", "alpha = 0.1\nint_bits = 24", "[protocol] parameters frac_bits = 24, int_bits = 24, sigma = 40 and max_rows"),
    ("hospital", "alpha = 0.1", 'alpha = 0.1\nid_fold = "lower"', "[protocol] id fold must be one of 'casefold', 'none', got 'lower'"),
    ("hospital", "connect = 120", "connect = -1", "[deadlines] connect: must be positive, got -1"),
    ("hospital", "[deadlines]  # seconds\n", "[deadlines]  # seconds\nstep_10 = 5\n", "unknown key [deadlines] step_10"),
    ("ttp", "[protocol]", '[input]\ncsv = "x.csv"\n\n[protocol]', "the TTP has no input; remove the [input] table"),
    ("hospital", 'id_column = "id"', 'id_column = "id"\ncolumns = ["age"]', "[input] columns: ['age'] differs from [protocol] hospital_columns"),
    ("hospital", 'certificate = "certs/hospital.crt"', 'certificate = "certs/nope.crt"', "[tls] certificate: "),
    ("hospital", 'key = "certs/hospital.key"', 'key = "certs/insurer.key"', "[tls] key: "),
    ("hospital", "[party]", "[party\n", "invalid TOML"),
    # the roster and the columns ([protocol] parties, compute, [protocol.columns])
    ("hospital", "alpha = 0.1", 'alpha = 0.1\n\n[protocol.columns]\nhospital = ["age"]\ninsurer = ["hospital_days"]',
     "[protocol.columns] and [protocol] hospital_columns, insurer_columns: two forms of the parties' columns; use one"),
    ("hospital", "alpha = 0.1", 'alpha = 0.1\nparties = ["hospital", "hospital"]', "[protocol] parties: lists a party twice"),
    ("hospital", "alpha = 0.1", 'alpha = 0.1\nparties = "hospital"', "[protocol] parties: must be a list of non-empty strings, got a string ('hospital')"),
    ("hospital", "alpha = 0.1", 'alpha = 0.1\nparties = ["hospital"]', "[protocol] parties: a session needs at least two data parties, got ['hospital']"),
    ("hospital", "alpha = 0.1", 'alpha = 0.1\nparties = ["hospital", "ttp"]', "[protocol] parties: 'ttp' is the trusted third party's name"),
    ("hospital", "alpha = 0.1", 'alpha = 0.1\nparties = ["hospital", "Insurer"]', "[protocol] parties: party name 'Insurer' is not valid"),
    ("hospital", "alpha = 0.1", 'alpha = 0.1\nparties = ["hospital", "insurer", "cbs"]', "[peers.cbs] is missing"),
    ("hospital", "alpha = 0.1", 'alpha = 0.1\ncompute = ["hospital", "cbs"]',
     "[protocol] compute: compute parties must be two distinct data parties of ['hospital', 'insurer'], got ['hospital', 'cbs']"),
    ("hospital", "alpha = 0.1", 'alpha = 0.1\ncompute = ["insurer"]', "[protocol] compute: compute parties must be two distinct data parties"),
]

#: The same, from a three-data-party deployment (``deploy-example --parties 3``).
BAD_CONFIGS_3 = [
    ("cbs", 'role = "cbs"', 'role = "lab"', "[party] role: must be one of hospital, insurer, cbs, ttp, got 'lab'"),
    ("cbs", "[peers.ttp]", '[peers.lab]\nidentity = "x"\n[peers.ttp]', "unknown table [peers.lab]: the peers of the cbs are hospital, insurer and ttp"),
    ("ttp", "[peers.cbs]\nidentity = \"cbs.mpcactors.test\"", '[peers.cbs]\nidentity = "insurer.mpcactors.test"',
     "[peers.insurer] identity and [peers.cbs] identity must differ"),
    ("ttp", "[peers.cbs]", "[peers.cbx]", "unknown table [peers.cbx]: the peers of the ttp are hospital, insurer and cbs"),
    ("hospital", "listen = ", "# listen = ", "[party] listen is required, since insurer and cbs dial(s) us"),
    ("ttp", "\ncbs = [", "\nlab = [", "[protocol.columns] lab: not a data party; the data parties ([protocol] parties) are hospital, insurer and cbs"),
    ("ttp", "\ncbs = [", "\n# cbs = [", "[protocol.columns] cbs is required"),
    ("ttp", 'hospital = ["age", ', 'hospital = ["age", "age", ', "[protocol.columns] hospital: lists a column twice"),
    ("ttp", 'hospital = ["age", ', 'hospital = [7, ', "[protocol.columns] hospital: must be a list of non-empty strings, got a list"),
    ("ttp", "alpha = 0.1", 'alpha = 0.1\ninsurer_columns = ["gp_visits"]', "[protocol.columns] and [protocol] insurer_columns: two forms"),
    ("ttp", "alpha = 0.1", 'alpha = 0.1\ncompute = ["hospital", "ttp"]',
     "[protocol] compute: compute parties must be two distinct data parties of ['hospital', 'insurer', 'cbs'], got ['hospital', 'ttp']"),
    ("ttp", 'target = "hospital_days"', 'target = "mortality"', "[protocol] target column 'mortality' is in no party's columns"),
    ("cbs", 'id_column = "id"', 'id_column = "id"\ncolumns = ["x"]', "[input] columns: ['x'] differs from [protocol.columns] cbs ["),
]


@pytest.mark.parametrize(("role", "old", "new", "message"), BAD_CONFIGS, ids=[m[:40] for *_, m in BAD_CONFIGS])
def test_config_errors_name_the_file_and_the_key(deployment: dict[str, Path], role: str, old: str, new: str, message: str) -> None:
    assert_config_error(edit(deployment[role], old, new), message)


@pytest.mark.parametrize(("role", "old", "new", "message"), BAD_CONFIGS_3, ids=[m[:40] for *_, m in BAD_CONFIGS_3])
def test_three_party_config_errors_name_the_file_and_the_key(deployment3: dict[str, Path], role: str, old: str, new: str, message: str) -> None:
    assert_config_error(edit(deployment3[role], old, new), message)


def assert_config_error(path: Path, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_party_config(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_a_pin_is_read_as_certs_inspect_prints_it_or_as_the_logs_show_the_fingerprint(deployment: dict[str, Path]) -> None:
    from mpcactors.certs import inspect_certificate

    (info,) = inspect_certificate(deployment["ttp"].parent / "certs" / "insurer.crt")
    assert load_party_config(deployment["ttp"]).pins == {}
    for written in (info.pin, f"SHA256:{info.fingerprint}"):
        path = edit(deployment["ttp"], 'identity = "insurer.mpcactors.test"', f'identity = "insurer.mpcactors.test"\nfingerprint = "{written}"')
        assert load_party_config(path).pins == {"insurer": info.pin}
        edit(path, f'\nfingerprint = "{written}"', "")


def test_missing_and_mismatched_tls_files_are_explained(deployment: dict[str, Path]) -> None:
    path = edit(deployment["hospital"], 'certificate = "certs/hospital.crt"', 'certificate = "certs/nope.crt"')
    with pytest.raises(ConfigError, match=re.escape(f"{path}: [tls] certificate: {path.parent / 'certs' / 'nope.crt'} does not exist")):
        load_party_config(path)
    path = edit(deployment["insurer"], 'key = "certs/insurer.key"', 'key = "certs/ttp.key"')
    with pytest.raises(ConfigError, match=re.escape(f"{path}: [tls] key: {path.parent / 'certs' / 'ttp.key'} is not the key of [tls] certificate")):
        load_party_config(path)


def test_a_private_key_readable_by_others_is_refused_like_ssh_does(deployment: dict[str, Path]) -> None:
    key = deployment["ttp"].parent / "certs" / "ttp.key"
    key.chmod(0o644)
    with pytest.raises(ConfigError) as info:
        load_party_config(deployment["ttp"])
    assert str(info.value) == (
        f"{deployment['ttp']}: [tls] key: {key}: permissions 0644 are too open: the private key must not be "
        f"accessible by group or others (run: chmod 600 {key})"
    )


def test_an_expired_own_certificate_is_refused_at_start(deployment: dict[str, Path]) -> None:
    import datetime

    certs = deployment["hospital"].parent / "certs"
    issue_certificate(
        certs, name="hospital", identities=["hospital.mpcactors.test"], ca_certificate=certs / "ca.crt",
        ca_key=certs / "ca.key", days=2, overwrite=True,
        not_before=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=5),
    )
    with pytest.raises(ConfigError, match=r"\[tls\] certificate: .*hospital.crt \(hospital.mpcactors.test\) is EXPIRED 3 days ago"):
        load_party_config(deployment["hospital"])


def test_the_party_command_exits_2_with_one_line_for_a_config_error(deployment: dict[str, Path]) -> None:
    path = edit(deployment["hospital"], "alpha = 0.1", "alpha = 0")
    result = CliRunner().invoke(party_command, ["--config", str(path)])
    assert result.exit_code == 2
    assert result.output == f"error: {path}: [protocol] alpha: must be positive, got 0\n"


def test_the_party_command_exits_3_for_an_input_error_before_connecting(deployment: dict[str, Path]) -> None:
    csv = deployment["insurer"].parent / "data" / "insurer.csv"
    lines = csv.read_text().splitlines()
    lines[3] = lines[3].split(",", 1)[0] + ",not-a-number" + "," * (lines[3].count(",") - 1)
    csv.write_text("\n".join(lines) + "\n")
    set_deadlines(deployment["insurer"], connect=0.5)
    result = CliRunner().invoke(party_command, ["--config", str(deployment["insurer"])])
    assert result.exit_code == 3, result.output
    assert result.output.startswith(f"error: insurer: {csv}, row 4, column ")
    assert "not-a-number" not in result.output  # never echo a cell value


# ---- establishment over loopback TCP ---------------------------------------------------------


async def establish_all(configs: dict[str, PartyConfig], *, delay: dict[str, float] | None = None) -> dict[str, Any]:
    outcomes: dict[str, Any] = {}

    async def one(role: str) -> None:
        await trio.sleep((delay or {}).get(role, 0))
        session = os.urandom(16) if role == "hospital" else None
        try:
            outcomes[role] = (await establish_links(configs[role], session=session), session)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcomes[role] = exc

    async with trio.open_nursery() as nursery:
        for role in configs:
            nursery.start_soon(one, role)
    return outcomes


def assert_every_pair_linked(outcomes: dict[str, Any]) -> bytes:
    """Every member has a run link to every other, all in the hospital's session; returns it."""
    for role, outcome in outcomes.items():
        assert not isinstance(outcome, Exception), (role, outcome)
    hospital_session = outcomes["hospital"][1]
    for role, ((links, session), _) in outcomes.items():
        assert session == hospital_session
        assert sorted(links) == sorted(r for r in outcomes if r != role)
        assert all(link.session == hospital_session and link.purpose == "run" for link in links.values())
    return hospital_session


async def close_all(outcomes: dict[str, Any]) -> None:
    for outcome in outcomes.values():
        if isinstance(outcome, tuple):
            for channel in outcome[0][0].values():
                await channel.aclose()


async def test_three_parties_connect_in_any_order_and_learn_the_hospitals_session(deployment: dict[str, Path]) -> None:
    configs = {role: load_party_config(path) for role, path in deployment.items()}
    with trio.fail_after(TIMEOUT):
        # the TTP starts last: the hospital's and the insurer's dials are retried until it listens
        outcomes = await establish_all(configs, delay={"ttp": 0.6})
        try:
            hospital_session = assert_every_pair_linked(outcomes)
            # the links really connect the right pairs: an envelope goes through
            from mpcactors.codec import Envelope

            (h_links, _), _ = outcomes["hospital"]
            (t_links, _), _ = outcomes["ttp"]
            await h_links["ttp"].send(Envelope(hospital_session, 1, "hospital", 0, "hash_contribution", {"value": b"x"}))
            assert (await t_links["hospital"].receive()).sender == "hospital"
        finally:
            await close_all(outcomes)


def rerouted(configs: dict[str, PartyConfig], dials: set[tuple[str, str]]) -> dict[str, PartyConfig]:
    """The configs with these ``(dialer, listener)`` directions, each listener on a free loopback port."""
    from dataclasses import replace

    from mpcactors.cli.daemon import _free_ports

    ports = _free_ports(sorted({listener for _, listener in dials}))
    return {
        role: replace(
            config,
            listen=("127.0.0.1", ports[role]) if role in ports else None,
            peers={
                other: PeerConfig(other, peer.identity, (role, other) in dials, ("127.0.0.1", ports[other]) if (role, other) in dials else None)
                for other, peer in config.peers.items()
            },
        )
        for role, config in configs.items()
    }


@pytest.mark.parametrize("parties", [3, pytest.param(4, marks=pytest.mark.slow)])
@pytest.mark.parametrize("directions", ["default", "reversed"])
async def test_k_parties_link_every_pair_and_learn_the_session_when_its_creator_starts_last(tmp_path: Path, parties: int, directions: str) -> None:
    # reversed: the TTP dials every data party and earlier data parties dial later ones, so
    # the parties that wait for the session are dialled by others that wait for it too
    configs = {role: load_party_config(path) for role, path in make_deployment(tmp_path / "dep", parties=parties).items()}
    if directions == "reversed":
        configs = rerouted(configs, {(listener, dialer) for dialer, listener in default_dials(configs["ttp"].run.roster)})
    with trio.fail_after(TIMEOUT):
        outcomes = await establish_all(configs, delay={"hospital": 0.5})
        try:
            assert_every_pair_linked(outcomes)
        finally:
            await close_all(outcomes)


async def test_check_reports_every_link_of_a_three_party_deployment(deployment3: dict[str, Path]) -> None:
    configs = {role: load_party_config(set_deadlines(path, connect=10)) for role, path in deployment3.items()}
    reports: dict[str, Any] = {}
    command: Any = None

    def cbs_command() -> Any:  # the cbs runs the real command, the others check in-process
        return CliRunner().invoke(check_command, ["--config", str(deployment3["cbs"])])

    async def check(role: str) -> None:
        reports[role] = await check_peers(configs[role])

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            for role in ("hospital", "insurer", "ttp"):
                nursery.start_soon(check, role)
            command = await trio.to_thread.run_sync(cbs_command)
    for role, role_reports in reports.items():
        assert [r.role for r in role_reports] == [m for m in MEMBERS3 if m != role]
        assert all(r.ok for r in role_reports), role_reports
    assert command.exit_code == 0, command.output
    assert re.search(r"cbs: config .*cbs\.toml is valid", command.output)
    for peer in ("hospital", "insurer", "ttp"):
        assert re.search(rf"^  {peer}: OK \(we dial 127\.0\.0\.1:\d+; TLSv1\.3; peer SAN {peer}\.mpcactors\.test", command.output, re.M)


async def test_a_closed_port_times_out_with_the_reason_within_the_connect_deadline(deployment: dict[str, Path]) -> None:
    config = load_party_config(set_deadlines(deployment["hospital"], connect=1.5))
    started = time.monotonic()
    with trio.fail_after(TIMEOUT), pytest.raises(StepTimeout) as info:
        await establish_links(config, session=os.urandom(16))
    assert time.monotonic() - started < 5
    ttp = config.peers["ttp"].address_text
    message = str(info.value)
    assert message.startswith("hospital: connecting to the peers took longer than 1.5 s: ")
    assert re.search(rf"could not reach ttp at {re.escape(ttp)} \((\d+) attempts: Connection refused", message), message
    assert int(re.search(r"\((\d+) attempts", message).group(1)) >= 3  # type: ignore[union-attr]  # it retried
    assert f"insurer did not connect to {config.listen[0]}:{config.listen[1]}" in message  # type: ignore[index]
    assert info.value.exit_code == 6


async def test_different_protocol_parameters_fail_fast_on_both_sides(deployment: dict[str, Path]) -> None:
    edit(deployment["insurer"], "alpha = 0.1", "alpha = 0.5")
    configs = {role: load_party_config(deployment[role]) for role in ("hospital", "insurer")}
    configs = {role: _with_connect(config, 10) for role, config in configs.items()}
    started = time.monotonic()
    with trio.fail_after(TIMEOUT):
        outcomes = await establish_all(configs)
    assert time.monotonic() - started < 5  # not the connect deadline: a refusal is final
    for role in ("hospital", "insurer"):
        assert isinstance(outcomes[role], PeerProtocolError), outcomes[role]
        assert "the [protocol] parameters differ" in str(outcomes[role])


def _with_connect(config: PartyConfig, seconds: float) -> PartyConfig:
    from dataclasses import replace

    return replace(config, connect_deadline=seconds)


async def insurer_dials_hospital(deployment: dict[str, Path]) -> tuple[Any, Any]:
    """The insurer's and the hospital's outcomes when only they run (the hospital gives up after 2 s)."""
    configs = {
        "hospital": _with_connect(load_party_config(deployment["hospital"]), 2.0),
        "insurer": _with_connect(load_party_config(deployment["insurer"]), 10),
    }
    with trio.fail_after(TIMEOUT):
        outcomes = await establish_all(configs)
    return outcomes["insurer"], outcomes["hospital"]


async def test_a_peer_with_a_certificate_from_another_ca_is_told_and_the_listener_keeps_listening(deployment: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "other"
    init_ca(other)
    issue_certificate(other, name="insurer", identities=["insurer.mpcactors.test"], ca_certificate=other / "ca.crt", ca_key=other / "ca.key")
    edit(deployment["insurer"], 'certificate = "certs/insurer.crt"', f'certificate = "{other}/insurer.crt"')
    edit(deployment["insurer"], 'key = "certs/insurer.key"', f'key = "{other}/insurer.key"')
    insurer, hospital = await insurer_dials_hospital(deployment)
    assert isinstance(insurer, TLSError)
    assert re.match(r"hospital at 127\.0\.0\.1:\d+ does not trust the CA that issued our certificate", str(insurer)), insurer
    assert isinstance(hospital, StepTimeout)
    assert "the last refused incoming connection: the peer at 127.0.0.1:" in str(hospital)
    assert "presented a certificate that is not signed by our CA" in str(hospital)


def pin_peers(deployment: dict[str, Path], pins: dict[str, str]) -> None:
    """Pin each peer named in ``pins`` to that fingerprint in the other parties' configs."""
    for role, path in deployment.items():
        for peer, fingerprint in pins.items():
            if peer != role:
                edit(path, f'identity = "{peer}.mpcactors.test"', f'identity = "{peer}.mpcactors.test"\nfingerprint = "{fingerprint}"')


async def test_pinned_peers_connect(deployment: dict[str, Path]) -> None:
    from mpcactors.certs import inspect_certificate

    certs = deployment["hospital"].parent / "certs"
    pin_peers(deployment, {role: inspect_certificate(certs / f"{role}.crt")[0].pin for role in ROLES})
    configs = {role: load_party_config(path) for role, path in deployment.items()}
    assert all(len(config.pins) == 2 for config in configs.values())
    with trio.fail_after(TIMEOUT):
        outcomes = await establish_all(configs)
        try:
            for role in ROLES:
                assert not isinstance(outcomes[role], Exception), outcomes[role]
        finally:
            await close_all(outcomes)


async def test_a_peer_whose_certificate_is_not_the_pinned_one_is_refused_and_the_listener_keeps_listening(
    deployment: dict[str, Path],
) -> None:
    from mpcactors.certs import inspect_certificate

    certs = deployment["hospital"].parent / "certs"
    pinned = inspect_certificate(certs / "insurer.crt")[0].pin
    pin_peers(deployment, {"insurer": pinned})
    # the CA holder issues the insurer's identity again (a new key, a new certificate)
    issue_certificate(certs, name="insurer", identities=["insurer.mpcactors.test"], ca_certificate=certs / "ca.crt",
                      ca_key=certs / "ca.key", overwrite=True)
    presented = inspect_certificate(certs / "insurer.crt")[0].pin
    insurer, hospital = await insurer_dials_hospital(deployment)
    fact = f"presented SAN insurer.mpcactors.test (role insurer) with fingerprint {presented}, but [peers.insurer] fingerprint pins {pinned}"
    assert isinstance(insurer, TLSError) and insurer.exit_code == 5
    assert re.fullmatch(rf"hospital at 127\.0\.0\.1:\d+ refused the connection: hospital refuses: we {re.escape(fact)}", str(insurer)), insurer
    assert isinstance(hospital, StepTimeout)
    assert re.search(rf"the last refused incoming connection: the peer at 127\.0\.0\.1:\d+ {re.escape(fact)}$", str(hospital)), hospital


@pytest.mark.slow
async def test_check_reports_each_peer_and_a_running_party_answers_checks(deployment: dict[str, Path]) -> None:
    configs = {role: load_party_config(set_deadlines(path, connect=3)) for role, path in deployment.items()}
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            reports: dict[str, Any] = {}

            async def check(role: str) -> None:
                reports[role] = await check_peers(configs[role])

            async def hospital_party() -> None:
                # a hospital that runs the real party answers the insurer's check and keeps waiting
                with pytest.raises(StepTimeout, match="insurer did not connect"):
                    await establish_links(configs["hospital"], session=os.urandom(16))

            nursery.start_soon(hospital_party)
            nursery.start_soon(check, "ttp")
            nursery.start_soon(check, "insurer")
    insurer = {r.role: r for r in reports["insurer"]}
    ttp = {r.role: r for r in reports["ttp"]}
    assert insurer["hospital"].ok and insurer["ttp"].ok, reports
    assert insurer["hospital"].peer_sans == ("hospital.mpcactors.test",)
    assert insurer["hospital"].tls_version == "TLSv1.3"
    assert ttp["insurer"].ok
    # the hospital ran a party (not a check): its run link to the TTP was answered as a check
    assert ttp["hospital"].ok


def test_the_check_command_reports_per_peer_and_exits_non_zero_if_one_failed(deployment: dict[str, Path]) -> None:
    path = set_deadlines(deployment["insurer"], connect=1)
    result = CliRunner().invoke(check_command, ["--config", str(path)])
    assert result.exit_code == 6, result.output
    assert "insurer: config" in result.output and "is valid" in result.output
    assert re.search(r"hospital: FAILED \(we dial 127\.0\.0\.1:\d+\): timed out after 1 s: could not reach hospital", result.output)
    assert "Connection refused" in result.output
    assert re.search(r"ttp: FAILED \(we dial", result.output)


# ---- three real `mpcactors party` processes ------------------------------------------------------


class PartyProcess:
    """One ``python -m mpcactors party`` subprocess whose stderr is collected as it comes."""

    def __init__(self, role: str, config: Path, result: Path) -> None:
        self.role, self.config, self.result = role, config, result
        self.stderr = bytearray()
        self.lines: list[str] = []
        self.process: trio.Process | None = None
        self.step8 = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        command = [sys.executable, "-m", "mpcactors", "party", "--config", str(self.config), "--result", str(self.result), "--log-level", "info"]
        self.process = await trio.lowlevel.open_process(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        task_status.started()
        assert self.process.stderr is not None
        async with self.process.stderr:
            while chunk := await self.process.stderr.receive_some():
                self.stderr += chunk
                *complete, rest = self.stderr.split(b"\n")
                for line in complete:
                    self._line(line.decode(errors="replace"))
                self.stderr = bytearray(rest)
        await self.process.wait()

    def _line(self, line: str) -> None:
        self.lines.append(line)
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "step begins" and event.get("step") == 8:
                self.step8.set()

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    @property
    def error_line(self) -> str:
        errors = [line for line in self.lines if line.startswith("error: ")]
        return errors[-1] if errors else ""


def fast_protocol(deployment: dict[str, Path], *, max_iter: int = 15, step_deadline: float = 30) -> None:
    for path in deployment.values():
        edit(path, "alpha = 0.1", f"alpha = 0.1\nmax_iter = {max_iter}")
        set_deadlines(path, connect=30, **{f"step_{n}": step_deadline for n in range(1, 9)})


async def run_to_the_end(deployment: dict[str, Path], results: Path, *, last: str | None = None, seconds: float = 120) -> dict[str, Any]:
    """Run every member as a ``mpcactors party`` process (``last`` half a second after the
    others); check that each succeeded with a link to every other member and that all agree.
    Returns the result documents by role."""
    parties = {role: PartyProcess(role, path, results / f"{role}.json") for role, path in deployment.items()}
    with trio.fail_after(seconds):
        async with trio.open_nursery() as nursery:
            for role, party in parties.items():
                if role != last:
                    await nursery.start(party.run)
            if last is not None:
                await trio.sleep(0.5)
                nursery.start_soon(parties[last].run)
    for party in parties.values():
        assert party.returncode == 0, (party.role, party.lines[-5:])
    documents = {role: json.loads(party.result.read_text()) for role, party in parties.items()}
    reports = {role: json.loads((results / f"{role}.report.json").read_text()) for role in parties}
    sizes = {doc["intersection_size"] for doc in documents.values()}
    sessions = {doc["session"] for doc in documents.values()}
    assert len(sizes) == 1 and sizes.pop() >= 10
    assert len(sessions) == 1
    # the same revealed numbers, bit for bit, at every recipient; the TTP's result file holds no model
    revealed = [doc["result"] for role, doc in documents.items() if role != "ttp"]
    assert revealed[0] is not None and all(r == revealed[0] for r in revealed)
    if "ttp" in documents:
        assert documents["ttp"]["result"] is None and documents["ttp"]["outputs"] == {}
    for role, report in reports.items():
        assert report["outcome"] == "ok" and report["exit_code"] == 0
        assert report["session"] == documents[role]["session"]
        assert sorted(report["links"]) == sorted(r for r in parties if r != role)
        for link in report["links"].values():
            assert link["tls_version"] == "TLSv1.3" and link["sent"]["bytes"] > 0
    return documents


@pytest.mark.slow
async def test_three_party_processes_complete_the_protocol_and_agree(tmp_path: Path) -> None:
    deployment = make_deployment(tmp_path / "dep", rows=40)
    fast_protocol(deployment)
    documents = await run_to_the_end(deployment, tmp_path)
    assert documents["hospital"]["result"]["iterations"] == 15


@pytest.mark.slow
@pytest.mark.parametrize("parties", [3, 4])
async def test_k_party_processes_complete_the_protocol_and_agree_with_a_simulation(tmp_path: Path, parties: int) -> None:
    from mpcactors.sim import simulate

    deployment = make_deployment(tmp_path / "dep", rows=60, parties=parties)
    fast_protocol(deployment, max_iter=30)
    # the session's creator last: the others wait to learn the session before dialing each other
    documents = await run_to_the_end(deployment, tmp_path, last="hospital", seconds=180)
    result = documents["cbs"]["result"]
    assert set(result["owners"].values()) == set(default_names(parties))
    # the model of a simulation on the same inputs and parameters (the lasso rounds at random,
    # so within the project's tolerance: 1e-3 of the largest coefficient)
    configs = {role: load_party_config(path) for role, path in deployment.items()}
    run = configs["ttp"].run
    simulation = await simulate({party: load_input(configs[party]) for party in run.roster.data_parties}, run)
    expected = simulation.parties["hospital"].result_document()  # a recipient of the default plan
    assert documents["ttp"]["intersection_size"] == simulation.intersection_size >= 10
    assert expected is not None and expected["coefficients"].keys() == result["coefficients"].keys()
    largest = max(abs(c) for c in expected["coefficients"].values())
    differences = [abs(result["coefficients"][name] - c) for name, c in expected["coefficients"].items()]
    assert max(differences + [abs(result["intercept"] - expected["intercept"])]) <= 1e-3 * largest


@pytest.mark.slow
async def test_killing_one_party_mid_run_stops_the_others_with_a_clear_message_and_no_result(tmp_path: Path) -> None:
    deployment = make_deployment(tmp_path / "dep", rows=40)
    fast_protocol(deployment, max_iter=200, step_deadline=20)
    parties = {role: PartyProcess(role, path, tmp_path / f"{role}.json") for role, path in deployment.items()}
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            for party in parties.values():
                await nursery.start(party.run)
            await parties["hospital"].step8.wait()  # mid-run: the secure lasso has begun
            killed_at = time.monotonic()
            assert parties["ttp"].process is not None
            parties["ttp"].process.send_signal(signal.SIGKILL)
    stopped_after = time.monotonic() - killed_at
    assert parties["ttp"].returncode == -signal.SIGKILL
    assert stopped_after < 20  # within the step deadline: the broken links are noticed, not waited out
    for role in ("hospital", "insurer"):
        party = parties[role]
        assert party.returncode in (4, 6, 7), (role, party.returncode, party.lines[-3:])
        assert party.error_line.startswith(f"error: {role}"), party.lines[-3:]
        assert "ttp" in party.error_line  # it names the party that went away
        assert "Traceback" not in "\n".join(party.lines)
        report = json.loads((tmp_path / f"{role}.report.json").read_text())
        assert report["outcome"] == "failed" and report["exit_code"] == party.returncode
    for party in parties.values():
        assert not party.result.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
