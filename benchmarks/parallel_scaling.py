"""Replicas and oracle labelling over MPI ranks: wall time on 1 and 2 (or more) ranks.

    python benchmarks/parallel_scaling.py [--ranks 1 2] [--steps 3000]

Each case runs ``mpirun -n R otf-spin ...`` in a temporary folder (OMP_NUM_THREADS=1, so
ranks are the only parallelism) and prints wall time, throughput and speed-up over one
rank:
1. replicas: four bcc Fe replicas (10×10×10 cells, 2000 spins, J1+J2) with stochastic LLG
   (Depondt) at 300–900 K and parallel tempering every 20 steps — replica-steps/s and
   spin-updates/s;
2. on the fly: input_examples/bccFe_ensemble_otf.yaml (4 replicas, shared learning with
   the embedded Heisenberg oracle) — wall time;
3. oracle throughput: ``otf-spin generate`` labelling 8 frames with the ``command`` oracle
   running tests/fixtures/fake_dft/heisenberg_dft.py (one process per job, as a DFT code)
   — labels/s.
Open MPI needs --oversubscribe for more ranks than cores; it is added when the MPI is
Open MPI.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "input_examples")


def mpirun(ranks: int) -> list[str]:
    from otf_spin.parallel.comm import launcher_command

    try:
        return launcher_command(ranks)      # the venv's mpiexec first, then PATH
    except RuntimeError as exc:
        sys.exit(f"parallel_scaling: {exc}")


def timed(ranks: int, args: list[str], folder: str) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    start = time.perf_counter()
    result = subprocess.run(mpirun(ranks) + [sys.executable, "-m", "otf_spin", *args],
                            cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"parallel_scaling: {' '.join(args)} on {ranks} ranks failed:\n"
                 + result.stderr[-2000:])
    return wall


def write(folder: str, name: str, data: dict) -> str:
    path = os.path.join(folder, name)
    with open(path, "w") as handle:
        yaml.safe_dump(data, handle)
    return path


def replica_case(steps: int) -> dict:
    data = yaml.safe_load(open(os.path.join(EXAMPLES, "bccFe_llg_heisenberg.yaml")))
    data["system"]["repeat"] = [10, 10, 10]
    data["dynamics"].update(steps=steps, integrator="depondt")
    data["dynamics"].pop("temperature", None)
    data["replicas"] = {"temperatures": [300, 500, 700, 900], "exchange_every": 20}
    data["output"] = {"trajectory": "replicas.h5", "every": 50, "spins": False}
    return data


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=3000, help="LLG steps of case 1")
    parser.add_argument("--allow-twins", action="store_true",
                        help="time the pure-Python twins of kernels that are not built")
    args = parser.parse_args()
    from otf_spin.kernels import refuse_twins

    refuse_twins(args.allow_twins)
    cases = []
    with tempfile.TemporaryDirectory() as folder:
        replicas = write(folder, "replicas.yaml", replica_case(args.steps))
        otf = yaml.safe_load(open(os.path.join(EXAMPLES, "bccFe_ensemble_otf.yaml")))
        gen = yaml.safe_load(open(os.path.join(EXAMPLES, "bccFe_generate.yaml")))
        gen["sampler"]["hamiltonian"] = gen.pop("oracle")
        gen["oracle"] = {"type": "command", "timeout": 300, "workdir": "jobs",
                         "command": f"{sys.executable} "
                                    f"{ROOT}/tests/fixtures/fake_dft/heisenberg_dft.py ok"}
        gen["select"]["count"] = 8
        for ranks in args.ranks:
            for name in ("otf_store.h5", "ensemble_store.h5", "ensemble_checkpoint.h5",
                         "gen_store.h5"):
                if os.path.exists(os.path.join(folder, name)):
                    os.remove(os.path.join(folder, name))
            wall = timed(ranks, ["run", "--quiet", replicas], folder)
            updates = 4 * args.steps
            cases.append(("replicas (4 × 2000 spins, LLG + PT)", ranks, wall,
                          f"{updates / wall:8.1f} replica-steps/s, "
                          f"{2000 * updates / wall / 1e6:5.2f} M spin-updates/s"))
            wall = timed(ranks, ["run", "--quiet", "--fresh", write(folder, "otf.yaml", otf)],
                         folder)
            cases.append(("on the fly (ensemble example)", ranks, wall, ""))
            wall = timed(ranks, ["generate", "--quiet", write(folder, "gen.yaml", gen)], folder)
            cases.append(("generate: 8 command-oracle labels", ranks, wall,
                          f"{8 / wall:8.2f} labels/s (incl. sampling and selection)"))
    print(f"{'case':38s} {'ranks':>5s} {'wall s':>7s} {'speed-up':>8s}  throughput")
    base = {}
    for name, ranks, wall, rate in cases:
        base.setdefault(name, wall)
    for name, ranks, wall, rate in sorted(cases, key=lambda c: (c[0], c[1])):
        print(f"{name:38s} {ranks:5d} {wall:7.2f} {base[name] / wall:8.2f}  {rate}")


if __name__ == "__main__":
    main()
