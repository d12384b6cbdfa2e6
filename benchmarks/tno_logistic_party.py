"""TNO's secure logistic regression (``tno.mpc.mpyc.secure_learning`` 1.1.1), for ``logistic_race.py``.

Runs inside the reference's own virtual environment (``benchmarks/.venv-tno-logistic``),
never in the project's: it imports only the standard library and the TNO/MPyC packages.
Started as MPyC runs locally: ``python tno_logistic_party.py -M3 --no-log``; party 0
spawns parties 1 and 2 as separate processes talking over loopback, as MPyC does.

The model is TNO's ``Logistic(solver_type=GD, exponentiation=EXACT, penalty=NONE,
class_weights_type=EQUAL)``: the unpenalised mean log-likelihood (labels -1/+1), exact
sigmoid through ``secure_pow(e, ...)``, TNO's gradient-descent solver (full batch,
Nesterov-accelerated), intercept as the first coefficient, no internal scaling. The
solver's epochs are those of ``Solver._get_coefficients``: this script calls the same
``preprocessing`` and ``inner_loop_calculation`` of the same solver object, but instead of
TNO's convergence bit it opens the coefficients after every epoch (one opening per epoch,
as TNO's own loop opens one bit per epoch) and appends them with the elapsed time to the
output file, so the race can read TNO's path while it runs and stop it at its time cap.
Only the ``tolerance`` stop is skipped (the race stops TNO from outside).

Input (environment, as MPyC owns the command line):

* ``TNO_LOGISTIC_DATA``: JSON ``{"x": rows, "y": labels in {-1, 1}, "epochs": cap,
  "eta0": step or null (TNO's default: 1 / max_i ||x_i||^2, computed securely)}``;
* ``TNO_LOGISTIC_OUT``: JSON lines written by party 0: one ``{"event": "ready", ...}`` when
  the data are shared, then one ``{"epoch", "seconds", "coef"}`` per epoch (``seconds``
  from the start of the fit, after input sharing; ``coef`` = intercept first).

Party 0 inputs all the data (``mpc.input(..., senders=0)``), as in TNO's README examples.
"""

from __future__ import annotations

import time

PROCESS_START = time.time()

import json  # noqa: E402 - the start time is taken before imports on purpose
import os  # noqa: E402

from mpyc.runtime import mpc  # noqa: E402
from tno.mpc.mpyc.secure_learning import (  # noqa: E402
    ClassWeightsTypes,
    ExponentiationTypes,
    Logistic,
    PenaltyTypes,
    SolverTypes,
)

#: TNO's README examples: 64-bit secure fixed point with 32 fractional bits
SECNUM = mpc.SecFxp(l=64, f=32)


def emit(handle, record: dict) -> None:
    if mpc.pid == 0:
        handle.write(json.dumps(record) + "\n")
        handle.flush()


async def main() -> None:
    with open(os.environ["TNO_LOGISTIC_DATA"], encoding="utf-8") as fh:
        data = json.load(fh)
    out = open(os.environ["TNO_LOGISTIC_OUT"], "a", encoding="utf-8") if mpc.pid == 0 else None
    x_mpc = [[SECNUM(v, integral=False) for v in row] for row in data["x"]]
    y_mpc = [SECNUM(v, integral=False) for v in data["y"]]
    model = Logistic(
        solver_type=SolverTypes.GD,
        exponentiation=ExponentiationTypes.EXACT,
        penalty=PenaltyTypes.NONE,
        class_weights_type=ClassWeightsTypes.EQUAL,
    )
    solver = model.solver
    async with mpc:
        x_shared = [mpc.input(row, senders=0) for row in x_mpc]
        y_shared = mpc.input(y_mpc, senders=0)
        await mpc.barrier()
        emit(out, {"event": "ready", "process_start": PROCESS_START, "time": time.time(),
                   "rows": len(x_shared), "features": len(x_shared[0])})
        start = time.perf_counter()
        # what Model.compute_coef_mpc and Solver._get_coefficients do before the epochs
        solver.init_solver(total_size=len(x_shared), num_features=len(x_shared[0]), tolerance=0.0,
                           sectype=SECNUM, eta0=data["eta0"])
        X, y = solver.preprocessing(list(x_shared), list(y_shared))
        coef = solver.coef_init.copy()
        for epoch in range(1, data["epochs"] + 1):
            coef = solver.inner_loop_calculation(X, y, coef, epoch=epoch)
            opened = [float(v) for v in await mpc.output(coef)]
            emit(out, {"epoch": epoch, "seconds": time.perf_counter() - start, "time": time.time(), "coef": opened})
    if out is not None:
        out.close()


if __name__ == "__main__":
    mpc.run(main())
