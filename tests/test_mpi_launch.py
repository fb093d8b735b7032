"""The MPI suite (tests/mpi) under a real ``mpirun -n 2``, launched from the serial suite so
that the README's one test command runs it (``.ci/run`` installs Open MPI)."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mpirun_command(n):
    """``mpirun -n N`` for this machine's MPI (Open MPI needs --oversubscribe on 2 cores)."""
    mpirun = shutil.which("mpirun") or shutil.which("mpiexec")
    assert mpirun, ("no mpirun on PATH: install an MPI (Debian: apt-get install "
                    "openmpi-bin) to run the MPI tests")
    version = subprocess.run([mpirun, "--version"], capture_output=True, text=True)
    extra = ["--oversubscribe"] if "Open MPI" in version.stdout + version.stderr else []
    return [mpirun, "-n", str(n), *extra]


def test_mpi_suite_on_two_ranks():
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1")
    command = mpirun_command(2) + [sys.executable, "-m", "pytest", "--with-mpi", "-q",
                                   "-p", "no:cacheprovider", os.path.join(ROOT, "tests", "mpi")]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
