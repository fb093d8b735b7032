"""Shared test helpers (imported by test modules; pytest puts tests/ on sys.path)."""
import json
import os
import subprocess
import sys
import warnings

import h5py
import numpy as np
import yaml

from otf_spin.config.model import MODEL
from otf_spin.factory import load_run
from otf_spin.model import build_model
from otf_spin.runner import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_in(folder, path, **kwargs):
    """Run the run file ``path`` with ``folder`` as working directory (quiet)."""
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        return run(load_run(path), progress=False, log=open(os.devnull, "w"), **kwargs)
    finally:
        os.chdir(cwd)


# --- MPI launcher ------------------------------------------------------------------------
def mpirun_command(n):
    """``mpiexec -n N``: the virtual environment's launcher first, then PATH
    (:func:`otf_spin.parallel.comm.launcher_command`)."""
    from otf_spin.parallel.comm import launcher_command

    return launcher_command(n)


def mpi_env():
    return dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                OMP_NUM_THREADS="1")


# --- kill points -------------------------------------------------------------------------
# `otf-spin run FILE --quiet` that reports its kill-point counts on its last stderr line
_RUN = ("import json, sys\n"
        "from otf_spin.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "from otf_spin.io.atomic import KILL_COUNTS\n"
        "print('KILL_COUNTS ' + json.dumps(KILL_COUNTS), file=sys.stderr)\n"
        "sys.exit(code)\n")


def small_otf_run(folder, steps=60, replicas=None, **otf):
    """A quick on-the-fly run file (8 atoms, a small model, several in-run labels and
    checkpoints) in ``folder``; returns its name."""
    with open(os.path.join(folder, "model.yaml"), "w") as handle:
        yaml.safe_dump({"descriptor": {"r_cut": 4.5, "n_max": 6, "l_max": 3},
                        "kernels": [{"zeta": 1, "normalize": False, "orders": [1],
                                     "n_sparse": None, "delta": 1.0},
                                    {"zeta": 4, "normalize": False, "orders": None,
                                     "n_sparse": 40, "delta": 1.0}]}, handle)
    data = yaml.safe_load(open(os.path.join(ROOT, "input_examples",
                                            "bccFe_otf_heisenberg.yaml")))
    data["system"]["repeat"] = [2, 2, 1]
    data["dynamics"]["steps"] = steps
    data["otf"].update({"threshold": 0.7, "check_every": 3, "min_steps_between_calls": 3,
                        "max_oracle_calls": 9, "checkpoint_every": 15, "reoptimise_every": 3,
                        "model_config": "model.yaml"}, **otf)
    if replicas:
        del data["dynamics"]["temperature"]
        data["replicas"] = replicas
    with open(os.path.join(folder, "otf.yaml"), "w") as handle:
        yaml.safe_dump(data, handle)
    return "otf.yaml"


def otf_process(folder, kill=None, launcher=(), serial=True):
    """Run ``otf.yaml`` in ``folder`` in a new process (``launcher``: e.g. mpiexec -n 2),
    SIGKILLed at ``kill`` ("phase:k", see otf_spin.io.atomic) if given. Returns (True if
    it finished, False if it was killed; its kill-point counts if it finished)."""
    env = mpi_env()
    env.pop("OTF_SPIN_KILL_AT", None)
    if serial:
        env["OTF_SPIN_MPI"] = "0"
    if kill:
        env["OTF_SPIN_KILL_AT"] = kill
    result = subprocess.run([*launcher, sys.executable, "-c", _RUN, "run", "otf.yaml",
                             "--quiet"], cwd=folder, env=env, capture_output=True, text=True,
                            timeout=600)
    counts = [json.loads(line.split(" ", 1)[1]) for line in result.stderr.splitlines()
              if line.startswith("KILL_COUNTS ")]
    killed = result.returncode != 0 and kill and (launcher or result.returncode == -9) \
        and "Traceback" not in result.stderr      # (not an error that ended the launch)
    if result.returncode != 0 and not killed:
        raise AssertionError(f"otf-spin run exited with {result.returncode}: "
                             f"{result.stderr[-2000:]}")
    return result.returncode == 0, counts[0] if counts else None


def _datasets(path):
    out = {}
    with h5py.File(path, "r") as h5:
        h5.visititems(lambda name, obj: out.__setitem__(name, obj[()])
                      if isinstance(obj, h5py.Dataset) else None)
        out["/attrs"] = {k: (v.tolist() if hasattr(v, "tolist") else v)
                         for k, v in h5.attrs.items() if k not in ("stored_at",)}
    return out


def differences(reference, other, files, volatile=("stored_at", "wall_time")):
    """Names of the datasets (or files) of ``files`` that differ between the folders
    ``reference`` and ``other``: every value bit for bit (NaN equal to NaN); in a
    training store's provenance the ``volatile`` keys (time stamps) are ignored."""
    found = []
    for name in files:
        a, b = _datasets(os.path.join(reference, name)), _datasets(os.path.join(other, name))
        if set(a) != set(b):
            found.append(f"{name}: datasets {sorted(set(a) ^ set(b))}")
            continue
        for key in a:
            x, y = a[key], b[key]
            if key == "frames/provenance":
                x, y = ([{k: v for k, v in json.loads(p).items() if k not in volatile}
                         for p in z] for z in (x, y))
            if key == "/attrs":
                same = x == y
            elif key == "frames/provenance":
                same = x == y
            else:
                x, y = np.asarray(x), np.asarray(y)
                same = x.shape == y.shape and x.dtype == y.dtype and (
                    np.array_equal(x, y, equal_nan=True) if x.dtype.kind in "fc"
                    else np.array_equal(x, y))
            if not same:
                found.append(f"{name}:{key}")
    return found


def linear_term_errors(base: dict, terms, train, test) -> tuple[dict, float]:
    """Fit one linear kernel on each descriptor term of ``terms`` alone (model settings
    ``base`` without kernels; noise and descriptor from it, no optimisation) to the
    energies of ``train``; returns ({term: test energy RMSE per atom (eV/atom)}, the
    test energies' std per atom): the contrast of a term that holds the physics with
    one that does not."""
    errors = {}
    for term in terms:
        settings = MODEL.validate(dict(base, optimise=False, kernels=[
            {"zeta": 1, "normalize": False, "term": term, "n_sparse": None}]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build_model(settings).fit(train)
        errors[term] = float(np.sqrt(np.mean([
            ((model.predict(f.system, False)["energy"] - f.energy) / len(f.system)) ** 2
            for f in test])))
    return errors, float(np.std([f.energy / len(f.system) for f in test]))


# --- the variance posterior, directly ----------------------------------------------------
def variance_posterior_v(model, rows):
    """(v (N,), columns S) of kernel rows ``rows`` (N, M) (r_i = k(d_i) - k(d_i^FM)):
    v_i = r_i[S] Λ[S, S]⁻¹ r_i[S]ᵀ with S each kernel's first hyper std_variance_sparse
    sparse points (all without it), solved directly by a QR of R[:, S] (Λ = RᵀR), not
    by the model's own variance_basis."""
    from scipy.linalg import qr, solve_triangular

    n = model.hyper.get("std_variance_sparse") or model.n_sparse_total
    start = np.cumsum([0] + [len(S) for S in model.sparse])
    S = np.concatenate([np.arange(a, min(b, a + n)) for a, b in zip(start[:-1], start[1:])])
    R_S = qr(model.posterior_factor[:, S], mode="economic")[1]
    V = solve_triangular(R_S, rows[:, S].T, trans="T")
    return np.einsum("mi,mi->i", V, V), S
