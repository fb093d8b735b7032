"""Parallel tempering across ranks: ``mpirun -n 2 python -m pytest --with-mpi tests/mpi``."""
import os
import sys

import h5py
import numpy as np
import pytest
from mpi4py import MPI

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers import run_in  # noqa: E402
from test_parallel import FIELD, MOMENT, free_spins_tempering, write  # noqa: E402

from otf_spin.parallel import SerialComm  # noqa: E402
from otf_spin.units import K_B, MU_B  # noqa: E402

COMM = MPI.COMM_WORLD


@pytest.mark.mpi(min_size=2)
def test_tempering_over_ranks_samples_langevin_and_equals_serial(mpi_tmp_path):
    """Three tempered replicas of free spins in a field on two ranks (swaps cross the rank
    boundary): every temperature samples the Langevin function, and the trajectories and
    swap statistics are those of the one-rank run, bit for bit."""
    temperatures = [40.0, 80.0, 160.0]
    data = free_spins_tempering(temperatures, 2000)
    serial, parallel = mpi_tmp_path / "serial", mpi_tmp_path / "parallel"
    if COMM.rank == 0:
        serial.mkdir()
        parallel.mkdir()
        reference = run_in(serial, write(serial, data), comm=SerialComm())
        write(parallel, data)
    COMM.barrier()
    result = run_in(parallel, str(parallel / "run.yaml"), comm=COMM)
    if COMM.rank == 0:
        np.testing.assert_array_equal(result["tempering"].acceptance(),
                                      reference["tempering"].acceptance())
        for r, T in enumerate(temperatures):
            values = []
            for folder in (serial, parallel):
                with h5py.File(folder / f"pt.r{r:03d}.h5", "r") as h5:
                    values.append(h5["observables/magnetization/value"][()])
            np.testing.assert_array_equal(values[0], values[1])
            mz = values[1][500:, 2]
            x = MOMENT * MU_B * FIELD / (K_B * T)
            blocks = mz[: len(mz) // 50 * 50].reshape(50, -1).mean(axis=1)
            assert mz.mean() == pytest.approx(1.0 / np.tanh(x) - 1.0 / x,
                                              abs=4 * blocks.std() / np.sqrt(50) + 2e-3)
    COMM.barrier()
