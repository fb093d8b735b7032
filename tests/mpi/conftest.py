"""A failure on one rank ends the whole MPI job instead of leaving the other ranks
waiting forever in a collective (pytest-mpi runs each rank's tests independently): the
failing rank prints its report and calls ``MPI.COMM_WORLD.Abort``, so the launcher
returns non-zero with the traceback in its output."""
import sys

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        if comm.size > 1:
            print(f"\n[rank {comm.rank}] {item.nodeid} failed ({report.when}); aborting "
                  f"all ranks:\n{report.longreprtext}", file=sys.stderr, flush=True)
            comm.Abort(1)
