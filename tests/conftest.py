import numpy as np
import pytest

from otf_spin.system import bulk, random_sphere


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)


@pytest.fixture
def fe16(rng):
    """The paper's 16-atom bcc Fe cell with random noncollinear spins."""
    system = bulk("bcc", 2.83, (2, 2, 2), moment=2.2)
    system.set_directions(random_sphere(len(system), rng))
    return system


def pytest_ignore_collect(collection_path, config):
    """tests/mpi/ runs under MPI only: ``mpirun -n 2 python -m pytest --with-mpi tests/mpi``
    (pytest-mpi); the serial suite does not collect it (nothing there is skipped)."""
    if collection_path.name == "mpi" and collection_path.is_dir():
        try:
            return not config.getoption("--with-mpi")
        except ValueError:                      # pytest-mpi not installed
            return True
    return None
