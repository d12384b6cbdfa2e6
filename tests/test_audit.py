"""The audit file: one signed, hash-chained record per party per run (docs/audit.md).

Simulated runs use 1024-bit test keys (:func:`mpcactors.testing.fast_config`); the
files are checked with the real ``mpcactors audit verify`` command. Tampering tests
change a copy of a file three runs long: any byte of any record, a record removed,
two swapped, the whole file re-signed with another key; each must fail naming the
first record that breaks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import trio
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from mpcactors.audit import GENESIS, Signer, canonical, digest_of, record_hash, seal, simulate_audited, simulation_signer, verify_lines
from mpcactors.audit import append as append_record
from mpcactors.certs import inspect_certificate
from mpcactors.cli import main
from mpcactors.cli.daemon import party as party_command
from mpcactors.data import load_table
from mpcactors.errors import ConfigError, IntersectionTooSmall
from mpcactors.testing import fast_config, tables_for

from test_daemon import append, fast_protocol, make_deployment, run_to_the_end, set_deadlines

RUNS = 3
PARTIES = ("hospital", "insurer", "ttp")
#: What the tampering tests flip in a record: its first byte, bytes within it, its last byte, its newline.
POSITIONS = {"first": 0, "third": 1 / 3, "middle": 1 / 2, "two-thirds": 2 / 3, "last": -2, "newline": -1}


def verify(file: Path, *options: str) -> Any:
    return CliRunner().invoke(main, ["audit", "verify", str(file), *options])


def error_of(result: Any) -> str:
    """stderr as one line: the console wraps long messages at its width."""
    return " ".join(result.stderr.split())


def lines_of(file: Path) -> list[bytes]:
    return file.read_bytes().splitlines(keepends=True)


def records_of(file: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines_of(file)]


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An audit directory after three simulated runs of the same study."""
    directory = tmp_path_factory.mktemp("audit")
    hospital, insurer = tables_for(30, 0.8, seed=3)
    config = fast_config(hospital, insurer, max_iter=10)
    for _ in range(RUNS):
        trio.run(simulate_audited, (hospital, insurer), config, directory)
    return directory


@pytest.fixture
def hospital_file(audited: Path, tmp_path: Path) -> Path:
    """A copy of the hospital's audit file to tamper with."""
    return Path(shutil.copy(audited / "hospital.jsonl", tmp_path / "hospital.jsonl"))


def assert_breaks_at(file: Path, number: int, why: str, *options: str) -> None:
    result = verify(file, *options)
    assert result.exit_code == 3, result.output
    assert error_of(result).startswith(f"error: {file}: record {number}: {why}"), result.stderr


# ---- an intact file ---------------------------------------------------------------------------


@pytest.mark.parametrize("party", PARTIES)
def test_the_chain_verifies_after_several_runs_against_each_partys_key(audited: Path, party: str) -> None:
    file = audited / f"{party}.jsonl"
    result = verify(file, "--cert", str(audited / "keys" / f"{party}.pub"))
    assert result.exit_code == 0, result.output
    assert f"{RUNS} records, chain intact, every signature valid" in result.stdout
    records = records_of(file)
    assert [r["seq"] for r in records] == list(range(1, RUNS + 1))
    assert records[0]["previous"] == GENESIS
    assert [r["previous"] for r in records[1:]] == [record_hash(line[:-1]) for line in lines_of(file)[:-1]]
    assert f"head {record_hash(lines_of(file)[-1][:-1])}" in result.stdout
    assert (audited / "keys" / f"{party}.key").stat().st_mode & 0o777 == 0o600


def test_every_line_is_canonical_json_and_the_signature_covers_the_rest(audited: Path) -> None:
    for line in lines_of(audited / "insurer.jsonl"):
        record = json.loads(line)
        assert canonical(record) + b"\n" == line
        assert record["signer"]["algorithm"] == "ed25519" and record["signer"]["certificate"] is None


def test_each_run_has_one_record_per_party_and_the_parties_records_agree(audited: Path) -> None:
    by_party = {party: records_of(audited / f"{party}.jsonl") for party in PARTIES}
    for run in range(RUNS):
        records = [by_party[party][run] for party in PARTIES]
        assert [r["party"] for r in records] == list(PARTIES)
        for field in ("session", "parameters_digest", "roster", "plan"):
            assert all(r[field] == records[0][field] for r in records), field
        # the data parties received the default plan's outputs, the TTP none: each record
        # digests what its party received, and two records agree on every output both hold
        data = [r for r in records if r["party"] != "ttp"]
        for field in ("outcome", "outputs"):
            assert all(r[field] == data[0][field] for r in data), field
        first = records[0]
        assert first["outcome"]["status"] == "ok" and len(first["outcome"]["digest"]) == 64
        assert [o["name"] for o in first["outputs"]] == ["intersection_size", "cohort", "lasso"]
        ttp = by_party["ttp"][run]
        assert ttp["outputs"] == first["outputs"][:1] and ttp["outcome"]["digest"] != first["outcome"]["digest"]
        assert first["roster"] == [{"party": p, "fingerprint": None} for p in PARTIES]  # no certificates in a simulation
        assert first["plan"] == {"title": None, "digest": None}
        assert first["mode"] == "simulation" and first["time"].endswith("Z")
    assert len({by_party["ttp"][run]["session"] for run in range(RUNS)}) == RUNS
    # what a party sent a peer at a step is what the peer received from it
    sent = {(r["peer"], r["step"]): r["bytes_sent"] for r in by_party["hospital"][0]["traffic"]}
    received = {(r["peer"], r["step"]): r["bytes_received"] for r in by_party["ttp"][0]["traffic"] if r["peer"] == "hospital"}
    assert {step: n for (peer, step), n in sent.items() if peer == "ttp" and n} == {step: n for (_, step), n in received.items() if n}
    assert by_party["ttp"][0]["input"] is None
    assert by_party["hospital"][0]["input"]["rows_read"] == 30


def test_show_lists_time_party_session_outcome_and_outputs(audited: Path) -> None:
    result = CliRunner().invoke(main, ["audit", "show", str(audited / "hospital.jsonl")])
    assert result.exit_code == 0, result.output
    record = records_of(audited / "hospital.jsonl")[-1]
    for text in ("3 records", record["time"], record["session"][:8], f"ok {record['outcome']['digest'][:16]}", "lasso"):
        assert text in result.stdout


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519", "rsa"])
def test_whatever_key_a_pki_issues_signs_and_only_its_own_records_verify(kind: str) -> None:
    def key() -> Any:
        if kind == "ecdsa":
            return ec.generate_private_key(ec.SECP256R1())
        return ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else rsa.generate_private_key(65537, 2048)

    signer, other = Signer(key()), key()
    first = seal({"party": "hospital"}, seq=1, previous=GENESIS, signer=signer)
    second = seal({"party": "hospital"}, seq=2, previous=record_hash(first), signer=signer)
    lines = [first + b"\n", second + b"\n"]
    assert verify_lines(lines, [signer.private_key.public_key()]).records == 2
    broken = verify_lines(lines, [other.public_key()]).broken
    assert broken is not None and broken.number == 1 and "signed with key" in broken.reason


# ---- tampering ------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", list(POSITIONS))
@pytest.mark.parametrize("number", range(1, RUNS + 1))
def test_flipping_any_byte_of_any_record_breaks_the_chain_at_that_record(hospital_file: Path, number: int, where: str) -> None:
    lines = lines_of(hospital_file)
    line = bytearray(lines[number - 1])
    position = POSITIONS[where]
    index = int(position * len(line)) if isinstance(position, float) else position
    line[index] ^= 0x01
    lines[number - 1] = bytes(line)
    hospital_file.write_bytes(b"".join(lines))
    result = verify(hospital_file)
    assert result.exit_code == 3, result.output
    assert error_of(result).startswith(f"error: {hospital_file}: record {number}: "), result.stderr


@pytest.mark.parametrize("number", range(1, RUNS))
def test_removing_a_record_breaks_the_chain_at_the_one_that_took_its_place(hospital_file: Path, number: int) -> None:
    lines = lines_of(hospital_file)
    del lines[number - 1]
    hospital_file.write_bytes(b"".join(lines))
    assert_breaks_at(hospital_file, number, "wrong previous hash")


def test_removing_the_last_record_is_caught_by_the_head_an_earlier_check_printed(hospital_file: Path) -> None:
    head = verify(hospital_file).stdout.split("head ")[1].strip()
    hospital_file.write_bytes(b"".join(lines_of(hospital_file)[:-1]))
    assert verify(hospital_file).exit_code == 0  # the chain alone cannot tell a file cut at its end
    result = verify(hospital_file, "--head", head)
    assert result.exit_code == 3 and "records were cut from the end" in error_of(result)


@pytest.mark.parametrize("number", range(1, RUNS))
def test_swapping_two_records_breaks_the_chain_at_the_first_of_them(hospital_file: Path, number: int) -> None:
    lines = lines_of(hospital_file)
    lines[number - 1], lines[number] = lines[number], lines[number - 1]
    hospital_file.write_bytes(b"".join(lines))
    assert_breaks_at(hospital_file, number, "wrong previous hash")


def test_a_file_rewritten_and_re_signed_with_another_key_fails_against_the_partys_key(audited: Path, hospital_file: Path) -> None:
    forger = Signer(ed25519.Ed25519PrivateKey.generate())
    previous, lines = GENESIS, []
    for record in records_of(hospital_file):
        fields = {k: v for k, v in record.items() if k not in ("version", "seq", "previous", "signer", "signature")}
        fields["outcome"] = {"status": "ok", "digest": "0" * 64}  # the forger's version of events
        line = seal(fields, seq=record["seq"], previous=previous, signer=forger)
        lines.append(line + b"\n")
        previous = record_hash(line)
    hospital_file.write_bytes(b"".join(lines))
    assert verify(hospital_file).exit_code == 0  # consistent in itself
    assert_breaks_at(hospital_file, 1, "bad signature: signed with key sha256:", "--cert", str(audited / "keys" / "hospital.pub"))


def test_a_record_cut_short_and_a_missing_file_are_told_apart(hospital_file: Path, tmp_path: Path) -> None:
    hospital_file.write_bytes(hospital_file.read_bytes()[:-100])
    assert_breaks_at(hospital_file, RUNS, "incomplete")
    missing = verify(tmp_path / "nothing.jsonl")
    assert missing.exit_code == 2 and "does not exist" in error_of(missing)
    wrong = verify(hospital_file, "--cert", str(hospital_file))
    assert wrong.exit_code == 2 and "neither a PEM certificate nor a PEM public key" in error_of(wrong)


def test_nothing_is_appended_after_a_damaged_last_record(audited: Path, hospital_file: Path) -> None:
    hospital_file.write_bytes(hospital_file.read_bytes()[:-1])  # the last newline is gone
    before = hospital_file.read_bytes()
    with pytest.raises(ConfigError, match="the last record is damaged"):
        append_record(hospital_file, {"party": "hospital"}, simulation_signer(audited, "hospital"))
    assert hospital_file.read_bytes() == before


# ---- what a record never holds, and failed runs -----------------------------------------------------

CANARY_ID = "canary-id-zq"
CANARY_VALUE = "4242.4242"


def test_no_value_or_id_of_the_input_reaches_the_audit_file(tmp_path: Path) -> None:
    hospital = ["id,age,creatinine"] + [f"p{n:03d}zq,{40 + n % 30},{60 + n}" for n in range(24)]
    insurer = ["id,gp_visits,hospital_days"] + [f"p{n:03d}zq,{n % 7},{n % 5 + 1}" for n in range(24)]
    hospital[5] = f"{CANARY_ID},{CANARY_VALUE},71"
    insurer[5] = f"{CANARY_ID},3,{CANARY_VALUE}"
    for name, lines in (("hospital", hospital), ("insurer", insurer)):
        (tmp_path / f"{name}.csv").write_text("\n".join(lines) + "\n")
    tables = {name: load_table(tmp_path / f"{name}.csv", min_rows=2) for name in ("hospital", "insurer")}
    trio.run(simulate_audited, tables, fast_config(tables, max_iter=5), tmp_path / "audit")
    ids = {line.split(",")[0] for line in hospital[1:] + insurer[1:]}
    files = list((tmp_path / "audit").glob("*.jsonl"))
    assert len(files) == 3
    for file in files:
        text = file.read_text()
        assert CANARY_ID not in text and CANARY_VALUE not in text and "4242" not in text
        assert not [i for i in ids if i in text]


def test_a_failed_simulation_records_the_error_and_the_step_at_every_party(tmp_path: Path) -> None:
    hospital, insurer = tables_for(20, 0.5, seed=1)
    config = fast_config(hospital, insurer, min_intersection=19)
    with pytest.raises(IntersectionTooSmall):
        trio.run(simulate_audited, (hospital, insurer), config, tmp_path)
    for party in PARTIES:
        [record] = records_of(tmp_path / f"{party}.jsonl")
        assert record["outcome"] == {"status": "failed", "error": "IntersectionTooSmall", "step": 4, "exit_code": 3}
        assert record["outputs"] == [] and record["traffic"]
        assert verify(tmp_path / f"{party}.jsonl", "--cert", str(tmp_path / "keys" / f"{party}.pub")).exit_code == 0


@pytest.mark.slow
def test_simulate_audit_writes_through_the_command_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["simulate", "--rows", "30", "--overlap", "0.8", "--key-bits", "2048", "--json", "--audit", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("*.jsonl")) == [f"{p}.jsonl" for p in PARTIES]
    assert verify(tmp_path / "ttp.jsonl", "--cert", str(tmp_path / "keys" / "ttp.pub")).exit_code == 0


# ---- a deployed party ----------------------------------------------------------------------------------


def with_audit(deployment: dict[str, Path]) -> None:
    for role, path in deployment.items():
        append(path, f'\n[audit]\npath = "{role}-audit.jsonl"\n')


def test_a_party_that_fails_before_connecting_still_appends_its_record(tmp_path: Path) -> None:
    deployment = make_deployment(tmp_path / "dep", rows=20)
    with_audit(deployment)
    csv = deployment["insurer"].parent / "data" / "insurer.csv"
    csv.write_text(csv.read_text().replace("\n", "\nbroken,row\n", 1))
    set_deadlines(deployment["insurer"], connect=0.5)
    result = CliRunner().invoke(party_command, ["--config", str(deployment["insurer"])])
    assert result.exit_code == 3, result.output
    file = tmp_path / "dep" / "insurer-audit.jsonl"
    [record] = records_of(file)
    assert record["outcome"] == {"status": "failed", "error": "InputError", "step": None, "exit_code": 3}
    assert record["session"] is None and record["mode"] == "daemon"
    assert record["input"]["rows_read"] is None and record["input"]["columns"]
    own = inspect_certificate(tmp_path / "dep" / "certs" / "insurer.crt")[0].pin
    assert record["signer"]["certificate"] == own and record["signer"]["algorithm"] == "ecdsa-sha256"
    assert {m["party"]: m["fingerprint"] for m in record["roster"]} == {"hospital": None, "insurer": own, "ttp": None}
    assert verify(file, "--cert", str(tmp_path / "dep" / "certs" / "insurer.crt")).exit_code == 0
    assert verify(file, "--cert", str(tmp_path / "dep" / "certs" / "hospital.crt")).exit_code == 3


@pytest.mark.slow
async def test_deployed_parties_append_records_that_name_each_others_certificates_and_agree(tmp_path: Path) -> None:
    deployment = make_deployment(tmp_path / "dep", rows=40)
    fast_protocol(deployment)
    with_audit(deployment)
    documents = await run_to_the_end(deployment, tmp_path)
    certs = tmp_path / "dep" / "certs"
    pins = {role: inspect_certificate(certs / f"{role}.crt")[0].pin for role in deployment}
    records = {}
    for role in deployment:
        file = tmp_path / "dep" / f"{role}-audit.jsonl"
        result = verify(file, "--cert", str(certs / f"{role}.crt"))
        assert result.exit_code == 0, result.output
        [records[role]] = records_of(file)
    for role, record in records.items():
        assert record["session"] == documents[role]["session"]
        assert {m["party"]: m["fingerprint"] for m in record["roster"]} == pins
        assert {r["peer"] for r in record["traffic"]} == set(deployment) - {role}
    data = [r for role, r in records.items() if role != "ttp"]  # the default plan's recipients
    assert len({json.dumps(r["outcome"]) for r in data}) == 1
    assert len({json.dumps(r["outputs"]) for r in data}) == 1
    lasso = next(o for o in records["hospital"]["outputs"] if o["name"] == "lasso")
    assert lasso["sha256"] == digest_of(documents["hospital"]["outputs"]["lasso"])  # checkable from the result file
