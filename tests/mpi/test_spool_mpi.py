"""The spool of the other rank groups' labels (otf_spin.learning.store.spool_label): a label
that rank 1 made in a batch that was interrupted before the gather is taken from the
spool when the batch is labelled again, not made again; one of another oracle is not.
``mpirun -n 2 python -m pytest --with-mpi tests/mpi``."""
import os

import numpy as np
import pytest
from mpi4py import MPI

from otf_spin import oracles
from otf_spin.learning.labelling import label_collective, label_with_retries
from otf_spin.learning.store import TrainingStore, spool_folder, spool_label
from otf_spin.parallel.jobs import JobGroups
from otf_spin.system import bulk, random_sphere

COMM = MPI.COMM_WORLD


JOBS = [0]                             # oracle jobs run on this rank


def oracle(j1=0.01):
    """The embedded Heisenberg oracle (nearest shell, J1 in eV), counting its jobs."""
    built = oracles.from_block({"type": "heisenberg", "convention": "double_counted",
                                "distance_unit": "lattice",
                                "shells": [[float(np.sqrt(3) / 2), j1]]}, context={"a": 2.83})
    compute = built.compute

    def counted(system, properties=None):
        JOBS[0] += 1
        return compute(system, properties)

    built.compute = counted
    return built


def probes(n=4):
    rng = np.random.default_rng(7)
    out = []
    for _ in range(n):
        system = bulk("bcc", 2.83, (2, 1, 1), moment=2.2)
        system.set_directions(random_sphere(len(system), rng))
        out.append(system)
    return out


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("same_oracle", [True, False])
def test_a_spooled_label_is_kept_not_made_again(mpi_tmp_path, same_oracle):
    path = str(COMM.bcast(str(mpi_tmp_path / f"store_{same_oracle}.h5")))
    jobs, systems = JobGroups(COMM), probes()
    assert jobs.n_groups == 2          # job k on group k mod 2: rank 1 runs jobs 1 and 3
    if COMM.rank == 1:                 # the interrupted batch: job 1 labelled, not gathered
        made = label_with_retries(oracle(0.01 if same_oracle else 0.02), systems[1], 0, 1)
        spool_label(spool_folder(path), *made.labelled)
    COMM.barrier()
    JOBS[0] = 0
    store = TrainingStore(path) if COMM.rank == 0 else None
    kept = []
    outcomes = label_collective(systems, oracle(), store, jobs, 0,
                                lambda k, o: (kept.append(k), store.append([o.labelled[0]])))
    counts = COMM.gather(JOBS[0])
    if COMM.rank == 0:
        assert kept == [0, 1, 2, 3] and counts == ([2, 1] if same_oracle else [2, 2])
        assert [o.spooled for o in outcomes] == [False, same_oracle, False, False]
        assert not os.path.exists(spool_folder(path))
        direct = oracle().compute(systems[1].copy())
        stored = TrainingStore(path).frames()
        assert [f.system.directions.tobytes() for f in stored] == \
            [s.directions.tobytes() for s in systems]
        assert stored[1].energy == direct["energy"]
        assert (stored[1].fields == direct["fields"]).all()
    COMM.barrier()
