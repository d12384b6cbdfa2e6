"""One party of TNO's ``secure_inner_join`` (2.0.2), for ``benchmarks/join_race.py``.

Runs inside the reference's own virtual environment (``benchmarks/.venv-tno-join``),
never in the project's: it imports only the standard library, numpy and the TNO
packages. ``join_race.py`` starts three of these (``alice`` = the hospital's table,
``bob`` = the insurer's, ``henri`` = the helper) on loopback ports it chose, as the
package's README shows (``Pool.add_http_server`` / ``add_http_client``, plain HTTP).

Input: a CSV with an ``id`` column first and numeric feature columns (the same file
our hospital or insurer daemon reads). Values are turned into TNO fixed-point numbers
from their decimal text (``fxp(text, precision)``), so they are encoded exactly.

Output (``--out``, JSON): wall-clock timestamps (``time.time()``, comparable across
the three processes on one machine) at process start, when the party is ready to
start (imports done, data loaded; key generation comes after), when the protocol
starts and when it ends; the key generation time; bytes and messages sent; the
intersection size; and with ``--shares`` the party's additive shares of the joined
table as decimal strings (for the sanity check against the plaintext join).

Usage (normally only via join_race.py)::

    benchmarks/.venv-tno-join/bin/python benchmarks/tno_join_party.py --role alice \\
        --ports alice=PORT,bob=PORT,henri=PORT --csv hospital.csv --out alice.json
"""

from __future__ import annotations

import time

PROCESS_START = time.time()

import argparse  # noqa: E402 - the start time is taken before imports on purpose
import asyncio  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from tno.mpc.communication import Pool  # noqa: E402
from tno.mpc.encryption_schemes.paillier import Paillier  # noqa: E402
from tno.mpc.encryption_schemes.utils.fixed_point import FixedPoint  # noqa: E402
from tno.mpc.protocols.secure_inner_join import DatabaseOwner, Helper  # noqa: E402

DATA_PARTIES = ("alice", "bob")
HELPER = "henri"


def read_table(path: Path, precision: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(identifiers as an (n, 1) str array, features as an (n, k) object array of FixedPoint, names)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    identifiers = np.array([[row[0]] for row in rows], dtype=str)
    data = np.empty((len(rows), len(header) - 1), dtype=object)
    for i, row in enumerate(rows):
        for j, text in enumerate(row[1:]):
            if text == "":
                raise SystemExit(f"{path}: row {i + 2} has an empty cell; the race uses complete rows")
            data[i, j] = FixedPoint.fxp(text, precision)
    return identifiers, data, tuple(header[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=(*DATA_PARTIES, HELPER), required=True)
    parser.add_argument("--ports", required=True, help="alice=PORT,bob=PORT,henri=PORT")
    parser.add_argument("--csv", type=Path, help="this data owner's table (id first)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--key-bits", type=int, default=2048)
    parser.add_argument("--precision", type=int, default=8, help="decimal digits of TNO's fixed point")
    parser.add_argument("--shares", action="store_true", help="write this party's shares to --out")
    args = parser.parse_args()
    ports = {name: int(port) for name, port in (item.split("=") for item in args.ports.split(","))}

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # Pool() takes the current loop, as in TNO's README
    pool = Pool()
    pool.add_http_server(port=ports[args.role], addr="127.0.0.1")
    for name, port in ports.items():
        if name != args.role:
            pool.add_http_client(name, "127.0.0.1", port=port)

    record: dict[str, object] = {"role": args.role, "process_start": PROCESS_START}
    if args.role == HELPER:
        record["ready"] = time.time()
        player: DatabaseOwner | Helper = Helper(data_parties=DATA_PARTIES, identifier=HELPER, pool=pool)
        record["keygen_seconds"] = 0.0
    else:
        if args.csv is None:
            parser.error("--csv is required for a data owner")
        identifiers, data, names = read_table(args.csv, args.precision)
        record["rows"] = int(len(identifiers))
        record["features"] = list(names)
        record["ready"] = time.time()
        started = time.perf_counter()
        scheme = Paillier.from_security_parameter(key_length=args.key_bits, precision=args.precision)
        record["keygen_seconds"] = time.perf_counter() - started
        # The constructor starts TNO's randomness precomputation (a process pool).
        player = DatabaseOwner(
            data_parties=DATA_PARTIES,
            identifier=args.role,
            paillier_scheme=scheme,
            identifiers=identifiers,
            data=data,
            feature_names=names,
            pool=pool,
        )

    record["protocol_start"] = time.time()
    loop.run_until_complete(player.run_protocol())
    record["end"] = time.time()
    record["bytes_sent"] = sum(h.total_bytes_sent for h in pool.pool_handlers.values())
    record["messages_sent"] = sum(h.msg_send_counter for h in pool.pool_handlers.values())
    if isinstance(player, DatabaseOwner):
        record["intersection_size"] = int(player.intersection_size)
        record["feature_names"] = list(player.feature_names)
        if args.shares:
            record["shares"] = [[str(value) for value in row] for row in player.shares]
    else:
        record["intersection_size"] = int(player.intersection_size)
    args.out.write_text(json.dumps(record) + "\n", encoding="utf-8")

    player.shutdown_received_schemes()
    if isinstance(player, DatabaseOwner):
        player.paillier_scheme.shut_down()
    loop.run_until_complete(pool.shutdown())
    loop.close()


if __name__ == "__main__":
    main()
