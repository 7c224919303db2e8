"""What spawned test processes run. A spawned child imports the module its target lives in; kept
here, the target costs the child bayescale.data's imports only, not a test module's (a test module
importing torch and transformers took 5.5 s against 2 s per child)."""

from __future__ import annotations

from bayescale.data import append_run


def append_after_barrier(path: str, worker: int, n_rows: int, start) -> None:
    """Append ``n_rows`` runs ``w<worker>-<i>``, one call each, once every worker is at the barrier ``start``,
    each followed by the run ``shared``, which every worker appends and the table keeps once (``if_exists="skip"``,
    as a pilot run again does)."""
    start.wait(300)  # every worker starts appending at the same moment
    for i in range(n_rows):
        append_run(path, {"run_id": f"w{worker}-{i:02d}", "N": 1e7 * (worker + 1), "D": 1e9 + i, "loss": 3.0})
        append_run(path, {"run_id": "shared", "N": 1e6, "D": 2e7, "loss": 3.0}, if_exists="skip")
