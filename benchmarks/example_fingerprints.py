"""Bit-for-bit fingerprints of the runnable examples: one sha256 per HDF5 dataset (and
attribute) and per extxyz file, and a total per example.

Each example runs in a fresh temporary folder with the ``otf-spin`` of this interpreter's
environment. What is left out, because it records when, where or with which version a
file was written rather than what was computed: the attributes ``package_version`` and
``/h5md/creator`` ``version``; in JSON (store provenance, checkpoint learner state,
extxyz info) the keys ``stored_at``, ``wall_time``, ``job_directory``, ``oracle_time``,
``refit_time``, ``package_version``; and the temporary folder's path anywhere in a string.

    python benchmarks/example_fingerprints.py                 # all examples
    python benchmarks/example_fingerprints.py --only otf mc   # some
    python benchmarks/example_fingerprints.py --summary       # totals only

Compare two trees: run it in each and ``diff`` the outputs. Examples run with
OMP_NUM_THREADS=1 (deterministic reductions); ``ensemble_mpi`` needs the environment's
``mpiexec`` (the mpich wheel of the test extra).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "input_examples")
BIN = os.path.dirname(sys.executable)
VOLATILE_KEYS = {"stored_at", "wall_time", "job_directory", "oracle_time", "refit_time",
                 "package_version"}
VOLATILE_ATTRS = {"package_version"}


def _load(name):
    with open(os.path.join(EXAMPLES, name)) as handle:
        return yaml.safe_load(handle)


def _write(folder, name, data):
    with open(os.path.join(folder, name), "w") as handle:
        yaml.safe_dump(data, handle, sort_keys=False)
    return name


def _otf_spin(folder, *args, env=None, mpi=0):
    command = [os.path.join(BIN, "otf-spin"), *args, "--quiet"] if args[0] in (
        "run", "generate", "predict") else [os.path.join(BIN, "otf-spin"), *args]
    if mpi:
        from otf_spin.parallel.comm import launcher_command

        command = launcher_command(mpi) + command
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1",
                                     OMPI_ALLOW_RUN_AS_ROOT="1",
                                     OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", **(env or {})))
    if result.returncode:
        raise RuntimeError(f"{' '.join(args)} in {folder}: exit {result.returncode}\n"
                           + result.stdout[-2000:] + result.stderr[-2000:])
    return result.stdout


# --- the examples: (name, function(folder) -> files to fingerprint) -----------------------
def ex_otf(folder, steps=None, env=None):
    """The README example: on-the-fly LLG of 16 spins, Heisenberg oracle, 300 -> 1000 K."""
    cfg = _load("bccFe_otf_heisenberg.yaml")
    if steps:
        cfg["dynamics"]["steps"] = steps
    _otf_spin(folder, "run", _write(folder, "otf.yaml", cfg), env=env)
    return ["otf_run.h5", "otf_store.h5", "otf_model.h5", "otf_checkpoint.h5"]


def ex_otf_reference_path(folder):
    """The README example's first 300 steps with the fast model engine off
    (OTF_SPIN_FAST_MODEL=0: the provider runs model.predict)."""
    return ex_otf(folder, steps=300, env={"OTF_SPIN_FAST_MODEL": "0"})


def ex_llg(folder):
    """The plain LLG example: 2000 spins, J1 + J2, 300 K, 2000 steps (compiled provider)."""
    _otf_spin(folder, "run", os.path.join(EXAMPLES, "bccFe_llg_heisenberg.yaml"))
    return ["run.h5"]


def _llg_variant(folder, name, hamiltonian, integrator, steps, repeat=(2, 2, 2),
                 temperature=300.0, field=(0.0, 0.0, 0.0), replicas=None, env=None):
    cfg = _load("bccFe_llg_heisenberg.yaml")
    cfg["system"]["repeat"] = list(repeat)
    cfg["hamiltonian"] = hamiltonian
    cfg["dynamics"].update(integrator=integrator, steps=steps, temperature=temperature,
                           field=list(field))
    if integrator != "mc":
        cfg["dynamics"]["timestep"] = 0.5
    cfg["output"] = {"trajectory": f"{name}.h5", "every": 5}
    if replicas:
        del cfg["dynamics"]["temperature"]
        cfg["replicas"] = replicas
    _otf_spin(folder, "run", _write(folder, f"{name}.yaml", cfg), env=env)
    if replicas:
        n = max(len(replicas.get(k) or ()) for k in ("temperatures", "seeds"))
        return [f"{name}.r{k:03d}.h5" for k in range(n)]
    return [f"{name}.h5"]


def _model_file(folder):
    """A small fitted model (the README example's, 200 steps) in ``folder``."""
    ex_otf(folder, steps=200)
    return os.path.join(folder, "otf_model.h5")


def ex_mc(folder):
    """Metropolis MC of the LLG example's Hamiltonian: 432 spins, 800 K, 300 sweeps."""
    cfg = _load("bccFe_llg_heisenberg.yaml")["hamiltonian"]
    return _llg_variant(folder, "mc", cfg, "mc", 300, repeat=(6, 6, 6), temperature=800.0,
                        field=(0.0, 0.0, 0.5))


def ex_model_dynamics(folder):
    """A fitted model as the hamiltonian: LLG (heun, 1 T field) and MC (fast engine), and
    MC with the reference path (OTF_SPIN_FAST_MODEL=0) under parallel tempering."""
    model = {"type": "model", "file": _model_file(folder)}
    files = _llg_variant(folder, "llg_model", model, "heun", 300, field=(0.0, 0.0, 1.0))
    files += _llg_variant(folder, "mc_model", model, "mc", 100, temperature=600.0)
    files += _llg_variant(folder, "mc_model_ref", model, "mc", 30,
                          replicas={"temperatures": [300.0, 900.0], "exchange_every": 5},
                          env={"OTF_SPIN_FAST_MODEL": "0"})
    return files


def ex_oracle_dynamics(folder):
    """Oracles through the generic provider: moments slaved (Eq. 41, sib) and
    beyond-Heisenberg terms (biquadratic + triangle, depondt)."""
    eq43 = _load("oracle_paper_eq43.yaml")
    files = _llg_variant(folder, "llg_slaved", eq43, "sib", 200)
    terms = _load("oracle_bccFe_biquadratic_triangle.yaml")
    files += _llg_variant(folder, "llg_terms", terms, "depondt", 100)
    return files


def ex_tempering_mc(folder):
    """A serial MC ensemble with parallel tempering (Heisenberg, 4 temperatures)."""
    cfg = _load("bccFe_llg_heisenberg.yaml")["hamiltonian"]
    return _llg_variant(folder, "pt", cfg, "mc", 200, repeat=(3, 3, 3),
                        replicas={"temperatures": [600.0, 800.0, 1000.0, 1200.0],
                                  "exchange_every": 10})


def ex_ensemble_mpi(folder):
    """The MPI ensemble example under ``mpiexec -n 2``: 4 on-the-fly replicas, tempering."""
    _otf_spin(folder, "run", os.path.join(EXAMPLES, "bccFe_ensemble_otf.yaml"), mpi=2)
    return [f"ensemble_run.r{k:03d}.h5" for k in range(4)] + [
        "ensemble_store.h5", "ensemble_model.h5", "ensemble_checkpoint.h5"]


def ex_generate(folder):
    """The generate example, then ``train`` on its extxyz and ``predict`` its candidates."""
    _otf_spin(folder, "generate", os.path.join(EXAMPLES, "bccFe_generate.yaml"))
    _otf_spin(folder, "train", "--data", "gen_train.xyz", "--out", "gen_model.h5")
    _otf_spin(folder, "predict", "--model", "gen_model.h5", "--data", "gen_candidates.xyz",
              "--out", "gen_pred.xyz")
    return ["gen_candidates.xyz", "gen_store.h5", "gen_train.xyz", "gen_model.h5",
            "gen_pred.xyz"]


EXAMPLE_FUNCTIONS = {"otf": ex_otf, "otf_reference_path": ex_otf_reference_path,
                     "llg": ex_llg, "mc": ex_mc, "model_dynamics": ex_model_dynamics,
                     "oracle_dynamics": ex_oracle_dynamics, "tempering_mc": ex_tempering_mc,
                     "ensemble_mpi": ex_ensemble_mpi, "generate": ex_generate}


# --- fingerprints -------------------------------------------------------------------------
def _clean(value, tmp):
    """``value`` with volatile JSON keys dropped and the temporary path replaced."""
    if isinstance(value, dict):
        return {k: _clean(v, tmp) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_clean(v, tmp) for v in value]
    if isinstance(value, str):
        return value.replace(tmp, "<tmp>")
    return value


def _text(value, tmp) -> bytes:
    """A string value: parsed as JSON and cleaned if it is JSON, else path-cleaned."""
    if isinstance(value, bytes):
        value = value.decode()
    try:
        parsed = json.loads(value)
    except (ValueError, TypeError):
        return value.replace(tmp, "<tmp>").encode()
    return json.dumps(_clean(parsed, tmp), sort_keys=True).encode()


def _digest_array(data, tmp) -> str:
    h = hashlib.sha256()
    array = np.asarray(data)
    if array.dtype.kind in "OSU":
        for item in array.ravel():
            h.update(_text(item, tmp) + b"\0")
        h.update(str(array.shape).encode())
    else:
        h.update(str((array.shape, array.dtype.str)).encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def h5_fingerprints(path, tmp) -> dict:
    """{object path (datasets; '<group>@attr' for attributes): sha256}."""
    out = {}

    def attrs(name, obj):
        for key, value in obj.attrs.items():
            if key in VOLATILE_ATTRS or (key == "version" and name.endswith("creator")):
                continue
            if isinstance(value, (str, bytes)):
                out[f"{name}@{key}"] = hashlib.sha256(_text(value, tmp)).hexdigest()
            else:
                out[f"{name}@{key}"] = _digest_array(value, tmp)

    with h5py.File(path, "r") as h5:
        attrs("/", h5)

        def visit(name, obj):
            attrs(name, obj)
            if isinstance(obj, h5py.Dataset):
                out[name] = _digest_array(obj[()], tmp)

        h5.visititems(visit)
    return out


_JSON_FIELD = re.compile(r'(?<![\w"])(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def xyz_fingerprint(path, tmp) -> str:
    """sha256 of an extxyz file, volatile keys removed from JSON-valued info fields."""
    h = hashlib.sha256()
    with open(path) as handle:
        for line in handle:
            for key, value in _JSON_FIELD.findall(line):
                if value.startswith('"_JSON '):       # otf_spin.io.extxyz's JSON info
                    try:
                        parsed = json.loads(json.loads(value)[len("_JSON "):])
                    except ValueError:
                        continue
                    line = line.replace(value, json.dumps(
                        "_JSON " + json.dumps(_clean(parsed, tmp), sort_keys=True)))
            h.update(line.replace(tmp, "<tmp>").encode())
    return h.hexdigest()


def fingerprint(name, function, keep=None) -> tuple[list, str, float]:
    tmp = tempfile.mkdtemp(prefix=f"fp_{name}_")
    start = time.perf_counter()
    try:
        files = function(tmp)
        rows = []
        for f in files:
            path = os.path.join(tmp, f)
            if f.endswith(".xyz"):
                rows.append((f, xyz_fingerprint(path, tmp)))
            else:
                rows += [(f"{f}:{k}", v) for k, v in sorted(h5_fingerprints(path, tmp).items())]
    finally:
        if keep:
            shutil.copytree(tmp, os.path.join(keep, name), dirs_exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    total = hashlib.sha256("".join(f"{k}={v}\n" for k, v in rows).encode()).hexdigest()
    return rows, total, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(EXAMPLE_FUNCTIONS),
                        help="examples to run (default: all)")
    parser.add_argument("--summary", action="store_true", help="print the totals only")
    parser.add_argument("--keep", help="copy each example's folder here")
    args = parser.parse_args(argv)
    names = args.only or list(EXAMPLE_FUNCTIONS)
    print(f"# otf-spin example fingerprints ({ROOT}); sha256, first 16 hex digits",
          flush=True)
    totals = []
    for name in names:
        rows, total, seconds = fingerprint(name, EXAMPLE_FUNCTIONS[name], args.keep)
        if not args.summary:
            for key, value in rows:
                print(f"{name:20s} {key:60s} {value[:16]}", flush=True)
        totals.append((name, total, seconds, len(rows)))
        print(f"{name:20s} {'TOTAL (' + str(len(rows)) + ' items)':60s} {total[:16]}"
              f"   # {seconds:.0f} s wall", flush=True)
    print("# totals", flush=True)
    for name, total, seconds, count in totals:
        print(f"{name:20s} {total[:16]}  ({count} items)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
