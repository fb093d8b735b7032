"""``otf-spin generate`` on two ranks: ``mpirun -n 2 python -m pytest --with-mpi tests/mpi``."""
import json
import os

import pytest
import yaml
from mpi4py import MPI

from otf_spin.factory import load_generate
from otf_spin.learning.generate import generate
from otf_spin.learning.store import TrainingStore
from otf_spin.parallel import SerialComm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "input_examples", "bccFe_generate.yaml")
COMM = MPI.COMM_WORLD


def config(folder):
    """The example with 12 frames (rank 0 writes the file)."""
    path = os.path.join(folder, "gen.yaml")
    if COMM.rank == 0:
        data = yaml.safe_load(open(EXAMPLE))
        data["sampler"]["samples"] = 4
        data["select"]["count"] = 12
        data["output"] = {k: os.path.join(folder, v) for k, v in data["output"].items()}
        os.makedirs(folder, exist_ok=True)
        with open(path, "w") as handle:
            yaml.safe_dump(data, handle)
    COMM.barrier()
    return path


@pytest.mark.mpi(min_size=2)
def test_generate_over_ranks_equals_serial(mpi_tmp_path):
    """Sampling jobs and oracle jobs spread over the ranks; the training set is the serial
    one bit for bit, and both ranks labelled."""
    serial, parallel = config(str(mpi_tmp_path / "serial")), config(str(mpi_tmp_path / "par"))
    if COMM.rank == 0:
        generate(load_generate(serial), progress=False, log=open(os.devnull, "w"),
                 comm=SerialComm())
    COMM.barrier()
    generate(load_generate(parallel), progress=False)
    if COMM.rank == 0:
        one = TrainingStore(mpi_tmp_path / "serial" / "gen_store.h5").frames()
        two = TrainingStore(mpi_tmp_path / "par" / "gen_store.h5").frames()
        assert len(one) == len(two) == 12
        for a, b in zip(one, two):
            assert a.system.directions.tobytes() == b.system.directions.tobytes()
            assert a.energy == b.energy and (a.fields == b.fields).all()
        ranks = {f.info["provenance"]["rank"] for f in two}
        assert ranks == {0, 1}
        assert all(json.dumps(f.info["provenance"]["generate"]) for f in two)
    COMM.barrier()
