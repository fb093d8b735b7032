"""Oracle jobs spread over rank groups.

The ranks are split (``comm.Split``) into groups of ``ranks_per_job`` (leftover ranks join
the last group). Job k goes to group k mod n_groups; the group's first rank runs it, with
``{ranks}`` in the oracle's launch command set to the group size, so a VASP job can take
``srun -n {ranks} vasp_ncl`` (or ``mpirun -np {ranks}``, where nested launches are allowed)
while the other ranks of the group wait. File-based oracles get one job folder per group.
A job that fails or hangs is bounded by the oracle's own timeout and returns a failure;
an unexpected error on any rank is raised on every rank, so no rank waits forever.
"""
from __future__ import annotations

import os
import traceback
import warnings


class JobGroups:
    """Rank groups of ``comm`` running oracle jobs (a number of ranks that is not a
    multiple of ``ranks_per_job``: a warning on rank 0 naming the group sizes used)."""

    def __init__(self, comm, ranks_per_job: int = 1, oracle=None):
        self.comm = comm
        self.n_groups = max(1, comm.size // ranks_per_job)
        if comm.size % ranks_per_job and comm.rank == 0:
            full = self.n_groups - 1            # groups of ranks_per_job, then the last
            last = comm.size - ranks_per_job * full
            used = (f"{full} group{'s' * (full > 1)} of {ranks_per_job} ranks and "
                    if full else "") + f"one group of {last} rank{'s' * (last > 1)}"
            warnings.warn(f"ranks_per_oracle_job: {ranks_per_job} requested, but the "
                          f"{comm.size} ranks are not a multiple of it; oracle jobs run on "
                          f"{used}", stacklevel=2)
        self.color = min(comm.rank // ranks_per_job, self.n_groups - 1)
        self.group = comm.Split(self.color, comm.rank) if comm.size > 1 else comm
        self.leader = self.group.rank == 0
        if oracle is not None:
            oracle.ranks = self.group.size
            if self.n_groups > 1 and oracle.workdir is not None:
                oracle.workdir = os.path.join(oracle.workdir, f"group{self.color:03d}")

    def map(self, function, jobs: list) -> list | None:
        """``function(job)`` for every job, on the group leaders; the results in job order
        on rank 0 (None elsewhere)."""
        mine, error = [], None
        if self.leader:
            for k in range(self.color, len(jobs), self.n_groups):
                try:
                    mine.append((k, function(jobs[k])))
                except Exception as exc:              # not an oracle failure: a bug or I/O
                    error = f"rank {self.comm.rank}, job {k}: {type(exc).__name__}: {exc}"
                    traceback.print_exc()
                    break
        errors = [e for e in self.comm.allgather(error) if e]
        if errors:
            raise RuntimeError(f"oracle job failed unexpectedly ({errors[0]})")
        parts = self.comm.gather(mine, root=0)
        if self.comm.rank != 0:
            return None
        results = [None] * len(jobs)
        for part in parts:
            for k, result in part:
                results[k] = result
        return results
