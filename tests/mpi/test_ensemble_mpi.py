"""The ensemble under a real MPI: ``mpirun -n 2 python -m pytest --with-mpi tests/mpi``.

Every test runs on every rank in folders shared through pytest-mpi's ``mpi_tmp_path``;
serial references are computed on rank 0 alone with a one-rank communicator."""
import os
import sys

import h5py
import numpy as np
import pytest
import yaml
from mpi4py import MPI

from otf_spin.factory import load_run
from otf_spin.learning.store import TrainingStore
from otf_spin.parallel import SerialComm
from otf_spin.runner import run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENSEMBLE = os.path.join(ROOT, "input_examples", "bccFe_ensemble_otf.yaml")
FAKE_DFT = os.path.join(ROOT, "tests", "fixtures", "fake_dft", "heisenberg_dft.py")
COMM = MPI.COMM_WORLD


def write_ensemble(folder, oracle=None, **otf):
    """Three replicas (uneven over two ranks), parallel tempering, on the fly (rank 0
    writes the file)."""
    path = os.path.join(folder, "ensemble.yaml")
    if COMM.rank == 0:
        data = yaml.safe_load(open(ENSEMBLE))
        data["dynamics"]["steps"] = 160
        data["replicas"].update(temperatures=[300, 600, 900], exchange_every=10)
        data["otf"].update({"threshold": 2.0, "max_oracle_calls": 12,
                            "checkpoint_every": 40}, **otf)
        if oracle:
            data["oracle"] = oracle
        os.makedirs(folder, exist_ok=True)
        with open(path, "w") as handle:
            yaml.safe_dump(data, handle)
    COMM.barrier()
    return path


def run_in(folder, comm=None, log=None, **kwargs):
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return run(load_run("ensemble.yaml"), progress=False,
                   log=log or open(os.devnull, "w"), comm=comm, **kwargs)
    finally:
        os.chdir(cwd)


def spins(path):
    with h5py.File(path, "r") as h5:
        return h5["particles/all/spin/value"][()]


def agree(ok) -> bool:
    """True on every rank if ``ok`` is true on every rank."""
    return all(COMM.allgather(bool(ok)))


def serial_reference(folder):
    write_ensemble(folder)
    if COMM.rank == 0:
        run_in(folder, comm=SerialComm())
    COMM.barrier()


@pytest.mark.mpi(min_size=2)
def test_results_do_not_depend_on_the_number_of_ranks(mpi_tmp_path, fe16):
    """Shared on-the-fly learning with parallel tempering: 3 replicas on 2 ranks give the
    trajectories, labels and model of 3 replicas on 1 rank, bit for bit; oracle jobs ran on
    both ranks; every rank holds the same model."""
    serial, parallel = mpi_tmp_path / "serial", mpi_tmp_path / "parallel"
    serial_reference(serial)
    write_ensemble(parallel)
    result = run_in(parallel)
    learner = result["learner"]
    energies = COMM.allgather(learner.model.predict(fe16)["energy"])
    assert agree(len(set(energies)) == 1)
    ok = True
    if COMM.rank == 0:
        for r in range(3):
            ok &= np.array_equal(spins(serial / f"ensemble_run.r{r:03d}.h5"),
                                 spins(parallel / f"ensemble_run.r{r:03d}.h5"))
        a, b = TrainingStore(serial / "ensemble_store.h5"), TrainingStore(parallel /
                                                                           "ensemble_store.h5")
        ok &= len(a) == len(b) == learner.calls > 3
        ok &= all(x.results["energy"] == y.results["energy"]
                  for x, y in zip(a.frames(), b.frames()))
        ranks = {f.info["provenance"].get("rank") for f in b.frames()}
        ok &= ranks == {0, 1}
    assert agree(ok)


@pytest.mark.mpi(min_size=2)
def test_ensemble_restarts_under_mpi_bit_for_bit(mpi_tmp_path):
    """Stopped on every rank after the checkpoint of step 80, restarted: the same
    trajectories as the uninterrupted serial ensemble."""
    serial, restarted = mpi_tmp_path / "serial", mpi_tmp_path / "restarted"
    serial_reference(serial)
    write_ensemble(restarted)

    def stop(step, *_):
        if step == 90:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run_in(restarted, monitor=stop)
    COMM.barrier()
    run_in(restarted)
    ok = True
    if COMM.rank == 0:
        for r in range(3):
            ok &= np.array_equal(spins(serial / f"ensemble_run.r{r:03d}.h5"),
                                 spins(restarted / f"ensemble_run.r{r:03d}.h5"))
    assert agree(ok)


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("fault", ["hang", "fail"])
def test_oracle_fault_on_one_rank_is_reported_without_deadlock(mpi_tmp_path, fault):
    """The command oracle hangs (killed at its 8 s timeout: a good job takes 1-3 s on a
    loaded two-core machine) or fails on rank 1 only: the
    ensemble finishes, rank 0's log names each failed job and rank, and the store holds
    exactly the labels rank 0 made."""
    import time

    folder = mpi_tmp_path / fault
    oracle = {"type": "command", "command": f"{sys.executable} {FAKE_DFT} rank1:{fault}",
              "timeout": 8.0, "workdir": "jobs"}
    write_ensemble(folder, oracle=oracle, retries=0, initial_frames=3, max_oracle_calls=6)
    log = open(folder / "log.txt", "w") if COMM.rank == 0 else None
    start = time.perf_counter()
    result = run_in(folder, log=log)
    elapsed = time.perf_counter() - start
    problems = [] if elapsed < 120 else [f"took {elapsed:.0f} s"]
    if COMM.rank == 0:
        log.close()
        text = open(folder / "log.txt").read()
        reason = "timeout" if fault == "hang" else "exit"
        if "rank 1): oracle job command-" not in text or reason not in text:
            problems.append(f"log does not report the failure: {text[:500]}")
        if result["learner"].failures < 2:
            problems.append(f"{result['learner'].failures} failures counted")
        store = TrainingStore(folder / "ensemble_store.h5")
        if {f.info["provenance"]["rank"] for f in store.frames()} != {0} or \
                len(store) != result["learner"].calls:
            problems.append("store does not hold exactly rank 0's labels")
        if sorted(os.listdir(folder / "jobs")) != ["group000", "group001"]:
            problems.append(f"job folders {os.listdir(folder / 'jobs')}")
    assert agree(not problems), problems


@pytest.mark.mpi(min_size=2)
def test_structure_files_are_rank_local(mpi_tmp_path, fe16):
    """ASE's file I/O is MPI-aware by default (writes on rank 0 only, broadcasts reads);
    otf-spin's must not be: rank 1 alone writes and reads an extxyz file."""
    from otf_spin.core import Frame
    from otf_spin.io.extxyz import read_frames, write_frames

    ok = True
    if COMM.rank == 1:
        path = mpi_tmp_path / "rank1.xyz"
        write_frames(path, [Frame(fe16, {"energy": 1.5})])
        back = read_frames(path)[0]
        ok = np.allclose(back.system.directions, fe16.directions, atol=1e-9) and \
            back.results["energy"] == 1.5
    assert agree(ok)
