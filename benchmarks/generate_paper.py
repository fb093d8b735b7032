"""Training sets from ``otf-spin generate`` against the paper's bcc Fe test sets.

    python benchmarks/generate_paper.py [--count 50] [--method farthest_point] [--scale 1]

For the paper's Eq. 43 Heisenberg oracle with fixed moments and with Eq. 41 moments,
generates a training set with input_examples/bccFe_generate.yaml (count and selection
method replaceable), fits it with the defaults of ``otf-spin train`` and prints the
energy and field RMSE on the paper's test sets (otf_spin.learning.paper_sets; the same
sets as benchmarks/paper_heisenberg.py) beside the accuracy targets, plus the time spent
generating and fitting.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
import time
import warnings

import numpy as np
import yaml

from otf_spin.factory import load_generate
from otf_spin.io.extxyz import read_frames
from otf_spin.learning.generate import generate
from otf_spin.learning.paper_sets import generate_set
from otf_spin.model import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "input_examples", "bccFe_generate.yaml")
#: oracle variant -> [(case, paper test set, target energy RMSE meV/atom)]
CASES = {"fixed moment": [("a", "random", 0.01)],
         "Eq. 41 moments": [("b", "eq41", 0.4), ("d", "thermal_300K_54", 0.5),
                            ("e1", "thermal_300K", None), ("e2", "thermal_1000K", None)]}


def generated_set(folder, slaving: bool, args):
    data = yaml.safe_load(open(EXAMPLE))
    if not slaving:
        del data["oracle"]["moment_slaving"]
    data["select"].update(count=args.count, method=args.method)
    data["sampler"]["seed"] = args.sampler_seed
    if args.temperatures:
        data["sampler"]["temperatures"] = args.temperatures
    data["output"] = {"store": os.path.join(folder, "store.h5"),
                      "extxyz": os.path.join(folder, "train.xyz"),
                      "candidates": os.path.join(folder, "candidates.xyz")}
    path = os.path.join(folder, "gen.yaml")
    with open(path, "w") as handle:
        yaml.safe_dump(data, handle)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as log:
        generate(load_generate(path), progress=False)
    return read_frames(data["output"]["extxyz"]), time.perf_counter() - start, log.getvalue()


def rmse(values) -> float:
    return 1e3 * float(np.sqrt(np.mean(np.square(values))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--method", default="farthest_point")
    parser.add_argument("--temperatures", type=float, nargs="*")
    parser.add_argument("--sampler-seed", type=int, default=1, help="seed of the sampling")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the test sets")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the paper test sets")
    args = parser.parse_args()
    print(f"{'case':4s} {'oracle':15s} {'test set':16s} {'frames':>6s} {'E RMSE':>8s} "
          f"{'target':>7s} {'B RMSE':>8s} {'gen s':>6s} {'fit s':>6s}")
    print(f"{'':4s} {'':15s} {'':16s} {'':>6s} {'meV/at':>8s} {'meV/at':>7s} {'meV/μB':>8s}")
    for oracle, cases in CASES.items():
        with tempfile.TemporaryDirectory() as folder:
            train, gen_time, log = generated_set(folder, oracle != "fixed moment", args)
        model = build_model()
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(train)
        fit_time = time.perf_counter() - start
        for case, name, target in cases:
            _, test = generate_set(name, args.seed, args.scale)
            e, b = [], []
            for frame in test:
                p = model.predict(frame.system, stds=False)
                e.append((p["energy"] - frame.energy) / len(frame.system))
                b.append(p["fields"] - frame.fields)
            print(f"{case:4s} {oracle:15s} {name:16s} {len(test):6d} {rmse(e):8.4f} "
                  f"{'' if target is None else f'≤ {target}':>7s} "
                  f"{rmse(np.concatenate(b)):8.3f} {gen_time:6.1f} {fit_time:6.2f}")
    print("\ngeneration log (Eq. 41 oracle):\n" + log)


if __name__ == "__main__":
    main()
