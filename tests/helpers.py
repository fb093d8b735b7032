"""Shared test helpers (imported by test modules; pytest puts tests/ on sys.path)."""
import os

from otf_spin.io.runconfig import load_run
from otf_spin.runner import run


def run_in(folder, path, **kwargs):
    """Run the run file ``path`` with ``folder`` as working directory (quiet)."""
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return run(load_run(path), progress=False, log=open(os.devnull, "w"), **kwargs)
    finally:
        os.chdir(cwd)
