"""Commands for deployed parties: ``party``, ``check``, ``certs`` and ``deploy-example``.

Each item of ``__all__`` is a :class:`click.Command` that the main ``mpcactors`` group
registers. Errors end the process with the error class's exit code (config 2, input 3,
peer protocol or transport 4, TLS 5, timeout 6, aborted by another party 7) and one
readable line on stderr; no traceback unless ``--log-level debug``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import click

from ..errors import ConfigError, MpcactorsError
from ..protocol.roster import DEFAULT_DATA_PARTIES, TTP, Roster, parse_parties
from ._options import KEY_BITS, print_plan

__all__ = ["certs", "check", "deploy_example", "party"]

ROLES = Roster().members


def _fail(exc: BaseException, *, prefix: str = "") -> NoReturn:
    if isinstance(exc, MpcactorsError):
        message, code = str(exc), exc.exit_code
    else:  # a bug: say so briefly; the traceback is in the debug log
        import structlog

        from ..logs import describe_exception

        structlog.get_logger(__name__).debug("internal error", exc_info=exc)
        message, code = f"internal error ({describe_exception(exc)}); run with --log-level debug for the traceback", 1
    click.echo(f"error: {prefix}{message}", err=True)
    sys.exit(code)


def _root_cause(exc: BaseException) -> BaseException:
    if isinstance(exc, BaseExceptionGroup):
        from ..actors.failures import first_cause

        return first_cause(exc)
    return exc


def _atomic_write(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename: never a partial file."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def _log_level_option(f: Any) -> Any:
    return click.option(
        "--log-level",
        default="info",
        show_default=True,
        type=click.Choice(["debug", "info", "warning", "error"]),
        help="Log events at this level and above go to stderr (JSON lines when stderr is not a terminal).",
    )(f)


def _configure_logging(level: str) -> None:
    from ..logs import configure_logging

    configure_logging(level=level)


# ---- party ------------------------------------------------------------------------------------


def _result_document(result: Any, config: Any, session: str | None) -> dict[str, Any]:
    document = dict(result.document())
    run = config.run
    document["session"] = session
    document["parameters"] = {
        "key_bits": run.key_bits,
        "alpha": run.alpha,
        "target": run.target,
        "frac_bits": run.params.frac_bits,
        "sigma": run.params.sigma,
        "min_intersection": run.min_intersection,
        "chunk_rows": run.chunk_rows,
    }
    return document


def _append_audit(config: Any, report: Any, result: Any, failure: BaseException | None) -> None:
    """This run's signed record at the end of ``[audit] path``, success or failure (docs/audit.md)."""
    from ..audit import append_daemon_record

    try:
        append_daemon_record(config, report, result, failure)
    except MpcactorsError as exc:
        click.echo(f"warning: {config.role}: no audit record was written: {exc}", err=True)


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), help="This party's TOML file.")
@click.option(
    "--result",
    "result_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the result JSON here (only on success, atomically). Default: stdout.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the run report JSON here, also on failure. Default: RESULT.report.json when --result is given.",
)
@_log_level_option
def party(config_path: Path, result_path: Path | None, report_path: Path | None, log_level: str) -> None:
    """Run one party of the protocol, as configured in --config, until the protocol ends.

    Connects to every other member (dialing or accepting as configured), runs the
    eight steps, and writes the result. Exit codes: 0 success, 2 configuration, 3 input,
    4 peer protocol or connection, 5 TLS, 6 timeout, 7 aborted by another party.
    """
    import trio

    from ..daemon import RunReport, load_party_config, run_configured_party

    _configure_logging(log_level)
    try:
        config = load_party_config(config_path)
    except MpcactorsError as exc:
        _fail(exc)
    if report_path is None and result_path is not None:
        report_path = result_path.with_name(result_path.name.removesuffix(".json") + ".report.json")
    if result_path is not None and result_path.exists() and result_path.is_dir():
        _fail(ConfigError(f"--result {result_path} is a directory"))
    report = RunReport(config.role, str(config.path))
    failure: BaseException | None = None
    result: Any = None
    try:
        result = trio.run(partial(run_configured_party, config, report=report))
    except KeyboardInterrupt:
        report.outcome, report.error, report.exit_code = "interrupted", "interrupted (Ctrl-C)", 130
        failure = KeyboardInterrupt()
    except BaseException as exc:  # noqa: BLE001 - classified below
        failure = _root_cause(exc)
        if report.outcome == "running":
            report.outcome = "failed"
            report.error = f"{type(failure).__name__}: {failure}"
            report.exit_code = getattr(failure, "exit_code", 1)
    if report_path is not None:
        try:
            _atomic_write(report_path, json.dumps(report.document(), indent=2) + "\n")
        except OSError as exc:
            click.echo(f"warning: could not write the run report {report_path}: {exc.strerror}", err=True)
    if config.audit is not None:
        _append_audit(config, report, result, failure)
    if failure is not None:
        if isinstance(failure, KeyboardInterrupt):
            click.echo(f"error: {config.role}: interrupted", err=True)
            sys.exit(130)
        _fail(failure, prefix="" if str(failure).startswith(config.role) else f"{config.role}: ")
    text = json.dumps(_result_document(result, config, report.session), indent=2) + "\n"
    if result_path is None:
        click.echo(text, nl=False)
    else:
        try:
            _atomic_write(result_path, text)
        except OSError as exc:
            _fail(ConfigError(f"--result {result_path}: cannot write the result ({exc.strerror})"))
        click.echo(f"{config.role}: done in {report.seconds:.1f} s; result written to {result_path}", err=True)


# ---- check -------------------------------------------------------------------------------------


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), help="This party's TOML file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
@_log_level_option
def check(config_path: Path, as_json: bool, log_level: str) -> None:
    """Check this party's config and its connection to every peer, then exit.

    Validates the config (files, permissions, certificate validity), then dials the
    peers it dials and waits for the peers that dial it (they must be running
    `mpcactors check` or `mpcactors party` meanwhile), running the TLS handshake and
    hello on each link. Reports per peer what worked; exits non-zero if anything failed.
    """
    import trio

    from ..certs import inspect_certificate
    from ..daemon import check_peers, load_party_config

    _configure_logging("warning" if log_level == "info" else log_level)
    try:
        config = load_party_config(config_path)
        own = inspect_certificate(config.tls.certificate)[0]
        reports = trio.run(check_peers, config)
    except BaseException as exc:  # noqa: BLE001
        _fail(_root_cause(exc))
    failed = [r for r in reports if not r.ok]
    plan_digest = None if config.run.plan_digest is None else config.run.plan_digest.hex()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "party": config.role,
                    "config": str(config.path),
                    "certificate": own.document(),
                    "plan": {"title": config.run.study_plan.title, "digest": plan_digest,
                             "warnings": list(config.run.study_plan.warnings)},
                    "peers": [r.document() for r in reports],
                    "ok": not failed,
                },
                indent=2,
            )
        )
    else:
        click.echo(f"{config.role}: config {config.path} is valid")
        if config.run.plan is not None:
            click.echo(f"  plan {config.run.plan.title!r}: digest {plan_digest} (every party's must be the same)")
            for warning in config.run.plan.warnings:
                click.echo(f"  warning: {warning}")
        else:
            click.echo("  plan: the default plan (no [plan] file)")
        click.echo(f"  our certificate: SAN {', '.join(own.sans)}; {own.status()}; SHA-256 {own.fingerprint}")
        if config.listen:
            click.echo(f"  listening on {config.listen[0]}:{config.listen[1]}")
        for r in reports:
            direction = f"we dial {r.address}" if r.dial else "it dials us"
            if r.ok:
                click.echo(
                    f"  {r.role}: OK ({direction}; {r.tls_version}; peer SAN {', '.join(r.peer_sans)}; "
                    f"certificate expires {r.peer_not_after}; SHA-256 {r.peer_fingerprint})"
                )
            else:
                click.echo(f"  {r.role}: FAILED ({direction}): {r.error}")
    if failed:
        sys.exit(max(r.exit_code for r in failed))


# ---- certs -------------------------------------------------------------------------------------


@click.group()
def certs() -> None:
    """Make a test CA and per-party certificates, and inspect certificates."""


@certs.command("init")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory for ca.crt and ca.key.")
@click.option("--name", default="mpcactors test CA", show_default=True, help="The CA's common name.")
@click.option("--days", default=365, show_default=True, type=click.IntRange(1), help="Validity in days.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def certs_init(out: Path, name: str, days: int, force: bool) -> None:
    """Create a CA: OUT/ca.crt (give to every party) and OUT/ca.key (keep it secret)."""
    from ..certs import init_ca, inspect_certificate

    try:
        cert, key = init_ca(out, name=name, days=days, overwrite=force)
        info = inspect_certificate(cert)[0]
    except MpcactorsError as exc:
        _fail(exc)
    click.echo(f"wrote {cert} and {key} (mode 0600)")
    click.echo(f"CA SHA-256 fingerprint: {info.fingerprint}; valid until {info.not_after:%Y-%m-%d}")


@certs.command("issue")
@click.argument("name")
@click.option("--identity", "identities", multiple=True, help="SAN (DNS name or IP address); repeat for several. Default for a role: <role>.mpcactors.test.")
@click.option("--ca-dir", type=click.Path(file_okay=False, path_type=Path), help="Directory holding ca.crt and ca.key (default: --out).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory for NAME.crt and NAME.key.")
@click.option("--days", default=90, show_default=True, type=click.IntRange(1), help="Validity in days.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def certs_issue(name: str, identities: tuple[str, ...], ca_dir: Path | None, out: Path, days: int, force: bool) -> None:
    """Issue NAME.crt and NAME.key (0600) for one party, signed by the CA.

    NAME is usually a role (hospital, insurer, ttp). The other parties' configs must
    list one of the certificate's identities as [peers.NAME] identity.
    """
    from ..certs import default_identity, inspect_certificate, issue_certificate

    if not identities:
        if name not in ROLES:
            _fail(ConfigError(f"give --identity for {name!r} (only the roles {', '.join(ROLES)} have a default)"))
        identities = (default_identity(name),)
    ca_dir = ca_dir or out
    try:
        cert, key = issue_certificate(
            out, name=name, identities=identities, ca_certificate=ca_dir / "ca.crt", ca_key=ca_dir / "ca.key",
            days=days, overwrite=force,
        )
        info = inspect_certificate(cert)[0]
    except MpcactorsError as exc:
        _fail(exc)
    click.echo(f"wrote {cert} and {key} (mode 0600)")
    click.echo(f"SAN {', '.join(info.sans)}; valid until {info.not_after:%Y-%m-%d}; SHA-256 {info.fingerprint}")


@certs.command("inspect")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def certs_inspect(files: tuple[Path, ...], as_json: bool) -> None:
    """Show SAN, validity, fingerprint and issuer of each certificate in FILES."""
    from ..certs import inspect_certificate

    documents: list[dict[str, Any]] = []
    for file in files:
        try:
            infos = inspect_certificate(file)
        except MpcactorsError as exc:
            _fail(exc)
        for index, info in enumerate(infos):
            if as_json:
                documents.append({"file": str(file), **info.document()})
            else:
                suffix = f" (certificate {index + 1} of {len(infos)})" if len(infos) > 1 else ""
                click.echo(f"{file}{suffix}")
                click.echo("  " + info.describe().replace("\n", "\n  "))
    if as_json:
        click.echo(json.dumps(documents, indent=2))


# ---- deploy-example ------------------------------------------------------------------------------


def _free_ports(names: list[str], host: str = "127.0.0.1") -> dict[str, int]:
    """A free port for each name, all bound at once so that none repeats."""
    sockets = {name: socket.socket(socket.AF_INET, socket.SOCK_STREAM) for name in names}
    try:
        for s in sockets.values():
            s.bind((host, 0))
        return {name: int(s.getsockname()[1]) for name, s in sockets.items()}
    finally:
        for s in sockets.values():
            s.close()


def _count_word(count: int) -> str:
    return {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}.get(count, str(count))


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _toml_list(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(_toml_string(v) for v in values) + "]"


def example_config(
    role: str,
    *,
    roster: Roster,
    ports: dict[str, int],
    columns: dict[str, tuple[str, ...]],
    key_bits: int,
    insecure: bool,
    min_intersection: int,
    csv: str | None,
    plan: str | None = None,
) -> str:
    """The TOML text of one member of the loopback example (paths relative to the file).

    The default two data parties get ``hospital_columns`` and ``insurer_columns`` (as
    before k parties); any other roster gets ``parties`` and ``[protocol.columns]``.
    """
    from ..daemon import default_dials

    dials = default_dials(roster)
    two_default = roster.data_parties == DEFAULT_DATA_PARTIES
    lines = [
        f"# mpcactors party configuration: the {role}.",
        "# Generated by `mpcactors deploy-example`; see docs/deploy.md for every key.",
        "",
        "[party]",
        f"role = {_toml_string(role)}",
    ]
    if role in ports:
        lines.append(f"listen = \"127.0.0.1:{ports[role]}\"")
    lines += [
        "",
        "[tls]",
        f"certificate = \"certs/{role}.crt\"",
        f"key = \"certs/{role}.key\"",
        "ca = \"certs/ca.crt\"",
    ]
    for peer in roster.peers(role):
        dial = (role, peer) in dials
        lines += ["", f"[peers.{peer}]", f"identity = \"{peer}.mpcactors.test\""]
        if dial:
            lines += [f"address = \"127.0.0.1:{ports[peer]}\"", "dial = true"]
        else:
            lines += ["dial = false  # it dials us"]
    if csv is not None:
        lines += ["", "[input]", f"csv = {_toml_string(csv)}", "id_column = \"id\""]
    lines += ["", f"[protocol]  # must be identical in all {_count_word(len(roster.members))} files"]
    if two_default:
        lines += [f"{party}_columns = {_toml_list(columns[party])}" for party in roster.data_parties]
    else:
        lines.append(f"parties = {_toml_list(roster.data_parties)}  # the data parties, in roster order")
    lines += [
        "target = \"hospital_days\"",
        f"key_bits = {key_bits}",
    ]
    if insecure:
        lines.append("insecure_test_key_bits = true  # allows 1024-bit keys: for tests only")
    lines += [
        f"min_intersection = {min_intersection}",
        "alpha = 0.1",
    ]
    if not two_default:
        lines += ["", "[protocol.columns]  # each data party's columns, in order"]
        lines += [f"{party} = {_toml_list(columns[party])}" for party in roster.data_parties]
    if plan is not None:
        lines += ["", "[plan]  # the study plan every party signed off (docs/plan.md)", f"file = {_toml_string(plan)}"]
    lines += [
        "",
        "[deadlines]  # seconds",
        "connect = 120",
        "handshake = 15",
        "",
    ]
    return "\n".join(lines)


@click.command("deploy-example")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory to write.")
@click.option("--rows", default=1000, show_default=True, type=click.IntRange(10), help="Synthetic rows per party.")
@click.option("--overlap", default=0.5, show_default=True, type=click.FloatRange(0, 1))
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the synthetic data.")
@click.option("--key-bits", default="2048", show_default=True, type=KEY_BITS, help="Paillier modulus size.")
@click.option(
    "--parties", default="2", show_default=True,
    help="Data parties: a count (hospital, insurer, cbs, party4, ...) or comma-separated names, in roster order.",
)
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A study plan to copy to OUT/plan.toml and name in every config ([plan] file).")
@click.option("--insecure-test-keys", is_flag=True, hidden=True, help="1024-bit keys (tests only).")
@click.option("--force", is_flag=True, help="Write into a directory that is not empty.")
def deploy_example(
    out: Path, rows: int, overlap: float, seed: int, key_bits: str, parties: str, plan_path: Path | None,
    insecure_test_keys: bool, force: bool,
) -> None:
    """Write a ready deployment on 127.0.0.1 into OUT: the data parties and the TTP.

    OUT/certs holds a CA and one certificate per member, OUT/data the synthetic input
    CSVs (one per data party), and OUT/<member>.toml the configs (hospital.toml,
    insurer.toml and ttp.toml by default), with free ports chosen now for every member
    that accepts connections. Run the printed commands, one per terminal. With --plan,
    the plan is validated against the example's columns first, copied to OUT/plan.toml and
    named in every config.
    """
    from ..certs import default_identity, init_ca, issue_certificate
    from ..daemon import default_dials
    from ..plan import load_plan
    from ..synth import make_cohort, write_cohort_by_party

    try:
        roster = Roster(parse_parties(parties))
    except ConfigError as exc:
        _fail(exc)
    members = roster.members
    if out.exists() and any(out.iterdir()) and not force:
        _fail(ConfigError(f"--out {out} is not empty (use --force to write into it anyway)"))
    try:
        cohort = make_cohort(rows, overlap, seed, parties=roster.data_parties)
        columns = {party: tuple(table.header[1:]) for party, table in cohort.tables.items()}
        plan = None if plan_path is None else load_plan(plan_path, roster=roster, columns=columns)
        certs_dir = out / "certs"
        init_ca(certs_dir, name="mpcactors deploy-example CA", days=30, overwrite=force)
        for role in members:
            issue_certificate(
                certs_dir, name=role, identities=[default_identity(role)],
                ca_certificate=certs_dir / "ca.crt", ca_key=certs_dir / "ca.key", days=30, overwrite=force,
            )
        inputs = write_cohort_by_party(cohort, out / "data")
    except MpcactorsError as exc:
        _fail(exc)
    if plan_path is not None:
        _atomic_write(out / "plan.toml", plan_path.read_text(encoding="utf-8"))
    # by default the TTP and every data party but the last listen (later ones dial earlier ones)
    listeners = {listener for _dialer, listener in default_dials(roster)}
    ports = _free_ports([TTP, *(party for party in roster.data_parties if party in listeners)])
    bits = 1024 if insecure_test_keys else int(key_bits)
    for role in members:
        text = example_config(
            role,
            roster=roster,
            ports=ports,
            columns=columns,
            key_bits=bits,
            insecure=insecure_test_keys,
            min_intersection=10,
            csv=None if role == TTP else "data/" + inputs[role].name,
            plan=None if plan is None else "plan.toml",
        )
        _atomic_write(out / f"{role}.toml", text)
    *first_inputs, last_input = map(str, inputs.values())
    click.echo(f"wrote a {_count_word(len(members))}-party deployment on 127.0.0.1 to {out}:")
    click.echo(f"  certificates in {certs_dir} (CA + {', '.join(members)}; SAN <role>.mpcactors.test)")
    click.echo(f"  inputs {', '.join(first_inputs)} and {last_input} ({rows} rows each)")
    listening = [f"the {role} on 127.0.0.1:{port}" for role, port in ports.items() if role != TTP]
    click.echo(f"  the TTP listens on 127.0.0.1:{ports[TTP]}, {', '.join(listening)}")
    if plan is not None:
        click.echo(f"  the study plan in {out / 'plan.toml'}, named in every config ([plan] file):")
        print_plan(plan)
    click.echo(f"run these {_count_word(len(members))} commands, one per terminal (any order):")
    for role in members:
        click.echo(f"  mpcactors party --config {out / (role + '.toml')} --result {out / (role + '-result.json')}")
