"""Exchange-3b and dipole-2b descriptor terms against the exchange-2b-only model: accuracy
on beyond-Heisenberg yardsticks, fit time and prediction speed.

    python benchmarks/descriptor_terms.py [--seeds 101 102 103] [--train 50] [--test 25]

Data: 16-atom bcc Fe (a = 2.83 Å), random-cone frames (cone axis uniform on the sphere,
half-angle uniform in [0.3, 1.2] rad), labelled by the example oracles
input_examples/oracle_bccFe_biquadratic_triangle.yaml (bilinear + biquadratic +
triangle three-spin) and oracle_bccFe_pseudo_dipolar.yaml (bilinear + pseudo-dipolar).
Models: the exchange-2b model of the defaults of `otf-spin train` ("2b",
``select_terms: false``), plus a linear kernel on the exchange-3b term ("2b+3b"), on the
dipole-2b term ("2b+dip"), or both — the candidates the default chooses among
(benchmarks/default_model.py). Prints per seed
and oracle: energy RMSE (meV/atom) and field RMSE (meV/μB, transverse components) on the
held-out frames, fit time (s, hyperparameters optimised); then (--speed-only: only) fit
time with fixed hyperparameters and prediction throughput (atoms/s, energy + fields,
no variance) on 16- and 432-atom cells. Timings on a shared machine are noisy.
"""
from __future__ import annotations

import argparse
import copy
import os
import time
import warnings

import numpy as np

from otf_spin.config.model import DEFAULT_KERNELS, MODEL, default_settings
from otf_spin.core import Frame
from otf_spin.kernels import refuse_twins
from otf_spin.model import build_model
from otf_spin.oracles import load_file
from otf_spin.system import bulk, random_cone, random_sphere

HERE = os.path.dirname(os.path.abspath(__file__))
ORACLES = {"triangle": "oracle_bccFe_biquadratic_triangle.yaml",
           "pseudo_dipolar": "oracle_bccFe_pseudo_dipolar.yaml"}
LINEAR = {"zeta": 1, "normalize": False, "orders": None, "n_sparse": None, "delta": 1.0}


def variants() -> dict:
    """Model settings by name: the exchange-2b defaults (no term selection), and the
    defaults with the extra terms (benchmarks/default_model.py measures the default that
    chooses among these by cross-validation)."""
    out = {"2b": dict(default_settings(), select_terms=False)}
    for name, terms in (("2b+3b", ["exchange_3b"]), ("2b+dip", ["dipole_2b"]),
                        ("2b+3b+dip", ["exchange_3b", "dipole_2b"])):
        out[name] = MODEL.validate({"descriptor": {term: {} for term in terms},
                                    "kernels": copy.deepcopy(DEFAULT_KERNELS)
                                    + [dict(LINEAR, term=term) for term in terms]})
    return out


def frames(oracle, n, rng):
    out = []
    for _ in range(n):
        system = bulk("bcc", 2.83, (2, 2, 2), moment=2.2)
        axis = random_sphere(1, rng)[0]
        system.set_directions(random_cone(len(system), axis, rng.uniform(0.3, 1.2), rng))
        r = oracle.compute(system)
        out.append(Frame(system, {"energy": r["energy"], "fields": r["fields"]}))
    return out


def transverse(fields, e):
    return fields - np.einsum("ik,ik->i", fields, e)[:, None] * e


def evaluate(settings, train, test):
    model = build_model(settings)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(train)
    fit = time.perf_counter() - start
    dE, dB = [], []
    for f in test:
        p = model.predict(f.system, stds=False)
        e = f.system.directions
        dE.append((p["energy"] - f.energy) / len(f.system))
        dB.append(transverse(p["fields"], e) - transverse(f.fields, e))
    return (1e3 * np.sqrt(np.mean(np.square(dE))), 1e3 * np.sqrt(np.mean(np.square(dB))),
            fit, model)


def throughput(model, repeat, rng, runs=3) -> float:
    system = bulk("bcc", 2.83, (repeat,) * 3, moment=2.2)
    system.set_directions(random_cone(len(system), [0, 0, 1], 0.8, rng))
    model.predict(system, stds=False)                 # geometry cache, warm-up
    best = np.inf
    for _ in range(runs):
        start = time.process_time()
        model.predict(system, stds=False)
        best = min(best, time.process_time() - start)
    return len(system) / best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    parser.add_argument("--train", type=int, default=50)
    parser.add_argument("--test", type=int, default=25)
    parser.add_argument("--models", nargs="+", default=list(variants()))
    parser.add_argument("--oracles", nargs="+", default=list(ORACLES), choices=list(ORACLES))
    parser.add_argument("--no-speed", action="store_true", help="skip the speed table")
    parser.add_argument("--speed-only", action="store_true", help="only the speed table")
    parser.add_argument("--allow-twins", action="store_true",
                        help="time the pure-Python twins of kernels that are not built")
    args = parser.parse_args(argv)
    refuse_twins(args.allow_twins)
    settings = {k: v for k, v in variants().items() if k in args.models}
    if args.speed_only:
        return speed(settings, load_file(os.path.join(HERE, "..", "input_examples",
                                                      ORACLES["triangle"])))
    print("# energy RMSE meV/atom | field RMSE meV/μB | fit s  (held-out frames)")
    print(f"{'oracle':15s} {'seed':>5s} " + " ".join(f"{m:>24s}" for m in settings))
    table = {}
    for name in args.oracles:
        oracle = load_file(os.path.join(HERE, "..", "input_examples", ORACLES[name]))
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            train, test = frames(oracle, args.train, rng), frames(oracle, args.test, rng)
            cells = []
            for m, s in settings.items():
                e, b, fit, _ = evaluate(s, train, test)
                table.setdefault((name, m), []).append((e, b))
                cells.append(f"{e:7.4f} {b:7.4f} {fit:6.1f}s")
            print(f"{name:15s} {seed:5d} " + " ".join(f"{c:>24s}" for c in cells), flush=True)
        worst = [f"{max(x[0] for x in table[name, m]):7.4f} "
                 f"{max(x[1] for x in table[name, m]):7.4f}        " for m in settings]
        print(f"{name:15s} {'worst':>5s} " + " ".join(f"{c:>24s}" for c in worst))
    if not args.no_speed:
        speed(settings, load_file(os.path.join(HERE, "..", "input_examples",
                                               ORACLES["triangle"])))


def speed(settings, oracle, n_frames=20):
    """Fit time (fixed hyperparameters: descriptors, sparse points, design rows, solve)
    on ``n_frames`` 16-atom frames and prediction throughput of each model, in CPU time
    of this process (less disturbed by a busy machine than wall time; run with
    OMP_NUM_THREADS=1 so that it equals the wall time of one core)."""
    print(f"\n# speed (CPU time): fit on {n_frames} frames with fixed hyperparameters (s); "
          "prediction atoms/s (energy + fields, no variance)")
    rng = np.random.default_rng(0)
    train = frames(oracle, n_frames, rng)
    for m, s in settings.items():
        start = time.process_time()
        _, _, _, model = evaluate(dict(s, optimise=False), train, train[:1])
        fit = time.process_time() - start
        print(f"{m:12s} fit {fit:6.2f} s   16 atoms: {throughput(model, 2, rng):9.0f}   "
              f"432 atoms: {throughput(model, 6, rng):9.0f}", flush=True)


if __name__ == "__main__":
    main()
