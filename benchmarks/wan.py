"""The daemon workload on loopback and through an emulated wide-area network, same session.

Usage::

    python benchmarks/wan.py --rtt-ms 20 --mbit 100                  # the pilot, 2048 bits, two data parties
    python benchmarks/wan.py --rtt-ms 30 --mbit 100 --parties 3      # the three-party pilot
    python benchmarks/wan.py --rtt-ms 10 --mbit 100 --rows 1000 --bits 1024 --repeat 2   # smaller

Runs the parties as deployed (one ``mpcactors party`` process each, mutual TLS on
loopback TCP, ``benchmarks/_common.py``) twice on the same inputs: once directly
(``lan``), once with every link going through :mod:`mpcactors.testing.netem`, a
user-space relay that adds ``rtt_ms / 2`` of delay and an ``mbit`` cap to each direction
of each link (the kernel here has no ``tc netem``). TLS passes through the relay
untouched: each dialling party's ``peers.<name>.address`` is rewritten to its relay's
port, and the relay forwards the bytes to the peer's real listening address. With
``--repeat N`` the runs alternate (lan, wan, lan, wan, ...), so a change in the machine's
load hits both alike; the reported seconds are the medians.

Checks that both runs fit the same model: equal feature lists, every coefficient and
the intercept within ``1e-4`` of each other relative to the largest coefficient and
R^2 within ``1e-6`` (two secure runs differ only by their random truncation errors and
output noise, each documented below ``1e-5`` of scikit-learn's result: docs/lasso.md).

Prints one JSON line: ``lan_seconds`` and ``wan_seconds`` (steps 1 to 8, the slowest
party's summed step times, as ``pilot.py``), ``rounds`` (step 8's MPC rounds; every
party takes the same sequence), per step the slowest party's seconds and all parties'
bytes sent, for each run; the load (``uptime``) before each run, the commit, the relay's
byte counts. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402

from mpcactors.testing.netem import LinkShape, RelayThread  # noqa: E402

STEPS = range(1, 9)
#: relative to the largest coefficient (coefficients, intercept); absolute for R^2
MODEL_TOLERANCE = 1e-4
R2_TOLERANCE = 1e-6


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return f"load average {common.load_average():.2f}"


def route_through_relays(deployment: common.Deployment, shape: LinkShape) -> dict[str, tuple[tuple[str, int], LinkShape, LinkShape]]:
    """Rewrite every dialled peer address of ``deployment`` to a relay; return the links to serve.

    Ports are chosen by the relays, so this is done in two passes by the caller: first
    the links (targets), then :func:`point_at` once the ports are known.
    """
    links = {}
    for role, path in deployment.configs.items():
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        for peer, entry in data.get("peers", {}).items():
            if entry.get("dial") and entry.get("address"):
                host, _, port = entry["address"].rpartition(":")
                links[f"{role}->{peer}"] = ((host, int(port)), shape, shape)
    return links


def point_at(deployment: common.Deployment, ports: dict[str, int]) -> None:
    """Make each dialling party dial its relay (``ports`` by link name) and allow the
    slower handshake of a long round trip."""
    for role, path in deployment.configs.items():
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        for peer, entry in data.get("peers", {}).items():
            name = f"{role}->{peer}"
            if name in ports:
                entry["address"] = f"127.0.0.1:{ports[name]}"
        data.setdefault("deadlines", {})["handshake"] = 60.0
        path.write_text(f"# Written by benchmarks/wan.py: every dialled link goes through a relay.\n\n"
                        f"{common.toml_dumps(data)}", encoding="utf-8")


def summarise(run: common.DeploymentRun, load: str) -> dict[str, Any]:
    if not run.ok:
        raise SystemExit(f"a run failed: {run.failure()}")
    by_role = run.steps_by_role()
    seconds = {s: max(float(steps[s]["seconds"]) for steps in by_role.values() if s in steps) for s in STEPS}
    sent = {s: sum(int(steps[s]["bytes_sent"]) for steps in by_role.values() if s in steps) for s in STEPS}
    rounds = {s: max(int(steps[s].get("rounds", 0)) for steps in by_role.values() if s in steps) for s in (7, 8)}
    result = (run.parties["hospital"].result or {}).get("result") or {}
    return {
        "seconds": run.protocol_seconds(STEPS),
        "wall_seconds": round(run.wall_seconds, 2),
        "step_seconds": {str(s): round(v, 3) for s, v in seconds.items()},
        "step_bytes": {str(s): v for s, v in sent.items()},
        "rounds": rounds,
        "result": result,
        "uptime": load,
        "cpu_seconds": round(run.cpu_seconds, 1),
    }


def same_model(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """None when the two result documents fit the same model, else what differs."""
    if not a or not b:
        return "a run has no lasso result"
    if list(a["coefficients"]) != list(b["coefficients"]):
        return "the feature lists differ"
    scale = max(1e-12, max(abs(v) for v in a["coefficients"].values()))
    for name in a["coefficients"]:
        gap = abs(a["coefficients"][name] - b["coefficients"][name]) / scale
        if gap > MODEL_TOLERANCE:
            return f"coefficient {name} differs by {gap:.2e} of the largest coefficient"
    if abs(a["intercept"] - b["intercept"]) / scale > MODEL_TOLERANCE:
        return "the intercepts differ"
    if abs(a["r2"] - b["r2"]) > R2_TOLERANCE:
        return f"R^2 differs: {a['r2']} vs {b['r2']}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt-ms", type=float, required=True, help="round-trip time of every link, ms")
    parser.add_argument("--mbit", type=float, default=100.0, help="cap per direction of every link, Mbit/s")
    parser.add_argument("--rows", type=int, default=5000, help="rows per party (the pilot: 5,000)")
    parser.add_argument("--bits", type=int, default=2048, help="Paillier modulus size")
    parser.add_argument("--parties", type=int, default=2, help="data parties (3 adds the CBS-like table)")
    parser.add_argument("--hospital-attributes", type=int, default=15)
    parser.add_argument("--insurer-attributes", type=int, default=15, help="including the target")
    parser.add_argument("--executor", choices=common.EXECUTOR_POLICIES, default="process")
    parser.add_argument("--repeat", type=int, default=1, help="lan/wan pairs, alternating")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep inputs, configs and reports here")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds per run before it is stopped")
    args = parser.parse_args()
    if args.rtt_ms < 0 or args.mbit <= 0 or args.repeat < 1:
        parser.error("--rtt-ms must be >= 0, --mbit > 0 and --repeat >= 1")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="wan-"))
    log(f"# WAN benchmark {common.now()}: rtt {args.rtt_ms} ms, {args.mbit} Mbit/s, {args.rows} rows, "
        f"{args.bits} bits, {args.parties} data parties; commit {common.git_commit()}; work directory {workdir}")
    inputs = common.write_inputs(
        workdir / "data", rows=args.rows, seed=args.seed, parties=args.parties,
        hospital_attributes=args.hospital_attributes, insurer_attributes=args.insurer_attributes,
    )
    shape = LinkShape.wan(args.rtt_ms, args.mbit)
    runs: dict[str, list[dict[str, Any]]] = {"lan": [], "wan": []}
    relay_bytes: list[dict[str, dict[str, int]]] = []
    for i in range(args.repeat):
        for kind in ("lan", "wan"):
            deployment = common.prepare_deployment(
                workdir / f"{kind}-{i}", inputs, key_bits=args.bits, lasso=True, executor=args.executor
            )
            load = uptime()
            log(f"## {kind} run {i + 1}: {load}")
            if kind == "lan":
                run = common.run_deployment(deployment, timeout=args.timeout)
            else:
                with RelayThread(route_through_relays(deployment, shape)) as relays:
                    point_at(deployment, relays.ports)
                    run = common.run_deployment(deployment, timeout=args.timeout)
                relay_bytes.append(relays.totals())
            summary = summarise(run, load)
            runs[kind].append(summary)
            log(f"   steps 1-8 {summary['seconds']:.2f} s, step 8 {summary['step_seconds']['8']} s, "
                f"rounds {summary['rounds']}")

    reference = runs["lan"][0]["result"]
    for kind, summaries in runs.items():
        for summary in summaries:
            problem = same_model(reference, summary["result"])
            if problem:
                raise SystemExit(f"the {kind} run fitted another model than the first lan run: {problem}")

    def median_steps(kind: str, key: str) -> dict[str, float]:
        return {s: statistics.median(r[key][s] for r in runs[kind]) for s in runs[kind][0][key]}

    lan = statistics.median(r["seconds"] for r in runs["lan"])
    wan = statistics.median(r["seconds"] for r in runs["wan"])
    line = {
        "rtt_ms": args.rtt_ms,
        "mbit": args.mbit,
        "rows": args.rows,
        "bits": args.bits,
        "parties": args.parties,
        "lan_seconds": round(lan, 2),
        "wan_seconds": round(wan, 2),
        "ratio": round(wan / lan, 3),
        "rounds": runs["wan"][0]["rounds"][8],
        "rounds_step7": runs["wan"][0]["rounds"][7],
        "iterations": [r["result"]["iterations"] for r in runs["lan"] + runs["wan"]],
        "lan_step_seconds": median_steps("lan", "step_seconds"),
        "wan_step_seconds": median_steps("wan", "step_seconds"),
        "lan_step_bytes": runs["lan"][0]["step_bytes"],
        "wan_step_bytes": runs["wan"][0]["step_bytes"],
        "relay_bytes": relay_bytes[0],
        "lan_runs_seconds": [r["seconds"] for r in runs["lan"]],
        "wan_runs_seconds": [r["seconds"] for r in runs["wan"]],
        "uptime": [r["uptime"] for pair in zip(runs["lan"], runs["wan"]) for r in pair],
        "commit": common.git_commit(),
        "machine": common.machine_line(),
    }
    print(json.dumps(line), flush=True)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
