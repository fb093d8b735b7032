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


def owned(n_items: int, comm) -> range:
    """The contiguous block of ``n_items`` (replicas, jobs) that ``comm.rank`` owns."""
    return range(comm.rank * n_items // comm.size, (comm.rank + 1) * n_items // comm.size)


def owner(item: int, n_items: int, size: int) -> int:
    """The rank owning ``item`` under :func:`owned`'s block layout."""
    return next(r for r in range(size) if r * n_items // size <= item < (r + 1) * n_items // size)
