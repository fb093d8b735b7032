"""Communicators: mpi4py's COMM_WORLD under an MPI launcher, else a serial stand-in.

Only mpi4py's pickle-based (lower-case) collectives are used, so :class:`SerialComm`
implements the same few methods for one process.
"""
from __future__ import annotations

import os

# variables set by Open MPI, MPICH/Hydra, PMIx and Slurm's PMI for every launched rank
_LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")


class SerialComm:
    """One rank: the subset of mpi4py's ``Comm`` interface otf-spin uses."""

    rank, size = 0, 1

    def Get_rank(self) -> int:
        return 0

    def Get_size(self) -> int:
        return 1

    def bcast(self, obj, root=0):
        return obj

    def gather(self, obj, root=0):
        return [obj]

    def allgather(self, obj):
        return [obj]

    def barrier(self):
        pass

    def Split(self, color=0, key=0):
        return self

    def Abort(self, errorcode=1):
        raise SystemExit(errorcode)


def world():
    """COMM_WORLD when launched by mpirun/srun (``OTF_SPIN_MPI=0`` forces serial,
    ``=1`` forces mpi4py), else :class:`SerialComm`. mpi4py is imported only then, so
    serial runs never initialise MPI."""
    wanted = os.environ.get("OTF_SPIN_MPI")
    if wanted == "0" or (wanted != "1" and not any(v in os.environ
                                                   for v in _LAUNCHER_VARIABLES)):
        return SerialComm()
    try:
        from mpi4py import MPI
    except Exception as exc:        # ImportError, or RuntimeError: no MPI library found
        raise RuntimeError(f"launched under MPI but mpi4py is not usable ({exc}); install "
                           "it with: pip install 'otf-spin[mpi]'") from None
    return MPI.COMM_WORLD


# ranks on this node, as the launchers tell each rank (MPICH/Hydra, Open MPI)
_LOCAL_RANK_COUNTS = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")


def share_cores(environ=os.environ) -> int | None:
    """Give each MPI rank on this node its share of the cores for OpenMP: sets
    ``OMP_NUM_THREADS`` in ``environ`` (to the rank's CPU affinity if the launcher bound it
    to fewer than all cores, else cores // ranks on the node, at least 1) and returns it.
    Does nothing (None) if ``OMP_NUM_THREADS`` is already set or no launcher reports more
    than one rank here. Must run before the first OpenMP library is loaded (the runtime
    reads the variable once): :mod:`otf_spin` calls it on import. Without it each rank
    starts one thread per core and, on a machine with as many cores as ranks, those
    threads spin against the other ranks' waits (docs/parallel.md: 136 s against 1.8 s)."""
    if environ.get("OMP_NUM_THREADS"):
        return None
    local = next((environ[v] for v in _LOCAL_RANK_COUNTS if environ.get(v)), None)
    if local is None or not local.isdigit() or int(local) < 2:
        return None
    cores = os.cpu_count() or 1
    mine = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    threads = mine if mine < cores else max(1, cores // int(local))
    environ["OMP_NUM_THREADS"] = str(threads)
    return threads


def owned(n_items: int, comm) -> range:
    """The contiguous block of ``n_items`` (replicas, jobs) that ``comm.rank`` owns."""
    return range(comm.rank * n_items // comm.size, (comm.rank + 1) * n_items // comm.size)


def owner(item: int, n_items: int, size: int) -> int:
    """The rank owning ``item`` under :func:`owned`'s block layout."""
    return next(r for r in range(size) if r * n_items // size <= item < (r + 1) * n_items // size)


def launcher_command(n: int) -> list[str]:
    """``mpiexec -n N`` of the MPI that belongs to this Python: the virtual environment's
    own launcher (the mpich wheel puts ``mpiexec`` next to ``sys.executable``) first, else
    the first ``mpiexec``/``mpirun`` on PATH (Open MPI's gets --oversubscribe, for more
    ranks than cores). Raises RuntimeError if there is none."""
    import shutil
    import subprocess
    import sys

    here = os.path.dirname(sys.executable)
    found = next((os.path.join(here, name) for name in ("mpiexec", "mpirun")
                  if os.access(os.path.join(here, name), os.X_OK)), None) \
        or shutil.which("mpiexec") or shutil.which("mpirun")
    if found is None:
        raise RuntimeError("no MPI launcher: pip install mpich (PyPI's MPICH, mpiexec in "
                           "the environment's bin) or put your MPI's mpiexec on PATH")
    version = subprocess.run([found, "--version"], capture_output=True, text=True)
    extra = ["--oversubscribe"] if "Open MPI" in version.stdout + version.stderr else []
    return [found, "-n", str(n), *extra]
