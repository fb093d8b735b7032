"""Curie temperature of bcc Fe with Pajda's eight exchange shells: otf-spin MC beside Spirit.

    python benchmarks/curie_pajda.py [--model pajda|nn|uppasd] [--sizes 6 10]
                                     [--sweeps 7000] [--seeds 1] [--no-spirit]

``--model pajda`` (default): the classical Heisenberg model of
input_examples/oracle_bccFe_pajda.yaml (Pajda et al., PRB 64, 174402 (2001), shells 1-8);
``--model nn``: bcc nearest neighbours, J = 10 meV per pair, whose T_c is known from the
literature (k_B T_c = 2.054 J); ``--model uppasd``: the four shells of UppASD's own example
examples/PhaseDiagrams/bccFe-Tsweep (input_examples/oracle_bccFe_uppasd.yaml), whose T_c
and M(T) UppASD 6.1's heat-bath MC gives (printed beside ours, with M(300 K) and M(700 K)
of UppASD's 2000-spin cell). otf-spin's Metropolis MC samples it with ``--seeds``
independent seeds (mean ± standard error printed) and — in its own virtual environment,
benchmarks/.spirit-venv, installed on first use — Spirit 2.2.0's Metropolis MC on the
same cells, temperatures and sweep counts; T_c is the crossing of the Binder cumulants of
the two sizes. Printed beside them: the mean-field and RPA values of the same couplings
(otf_spin.dynamics.curie) and the literature values.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from otf_spin import oracles
from otf_spin.dynamics.curie import (binder_crossing, binder_scan, magnetisation,
                                     mean_field_curie, rpa_curie)
from otf_spin.kernels import refuse_twins
from otf_spin.oracles.heisenberg import HeisenbergOracle, ShellExchange
from otf_spin.system import bulk
from otf_spin.units import K_B, MEV

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "input_examples", "oracle_bccFe_pajda.yaml")
UPPASD = os.path.join(HERE, "..", "input_examples", "oracle_bccFe_uppasd.yaml")
# UppASD 6.1 heat-bath MC, bccFe-Tsweep exchange: Binder crossings of L = 8/10/16 and
# M = <|m|> of its L = 10 cell
UPPASD_TC, UPPASD_M = "918 (915-925)", {300.0: 0.8770, 700.0: 0.6474}
sys.path.insert(0, HERE)
from llg_speed import ensure_spirit  # noqa: E402

NN_J = 10.0            # meV per pair (Spirit's and VAMPIRE's convention)
TEMPERATURES = {"pajda": [840, 860, 880, 900, 920, 940, 960],
                "uppasd": [880, 900, 920, 940, 960],
                "nn": list(np.round(2.054 * NN_J * MEV / K_B * np.array(
                    [0.96, 0.98, 1.0, 1.02, 1.04]), 1))}


def model(name):
    """(oracle, lattice constant Å, [(r²/a², J meV double-counted)], literature rows)."""
    if name == "pajda":
        oracle = oracles.load_file(EXAMPLE)
        a = oracle.settings()["lattice_constant"]
        literature = [("Pajda et al. 2001, all shells: MFA / RPA", "1414 / 950"),
                      ("experiment", "1044")]
    elif name == "uppasd":
        oracle = oracles.load_file(UPPASD)
        a = oracle.settings()["lattice_constant"]
        literature = [("UppASD 6.1 heat-bath MC, Binder 8/10/16", UPPASD_TC)]
    else:
        a = 2.83
        oracle = HeisenbergOracle(ShellExchange([a * np.sqrt(3) / 2], [NN_J * MEV], 0.05),
                                  "per_pair")
        literature = [("literature, k_B T_c = 2.054 J", f"{2.054 * NN_J * MEV / K_B:.1f}")]
    offsets, _, J, _, vectors, distances = oracle.hamiltonian.couplings(bulk("bcc", a, primitive=True))
    shells = sorted({(float(np.round((r / a) ** 2, 4)), float(j / MEV))
                     for r, j in zip(distances, J)})
    return oracle, a, shells, literature


def spirit_binder(sizes, shells, temperatures, sweeps, equilibration, a):
    python = ensure_spirit()
    if python is None:
        return None
    out = {}
    for L in sizes:
        job = dict(cells=L, shells=shells, temperatures=[float(t) for t in temperatures],
                   sweeps=sweeps, equilibration=equilibration, a=a)
        run = subprocess.run([python, os.path.join(HERE, "spirit_harness.py"), "--binder",
                              json.dumps(job)], env=dict(os.environ, OMP_NUM_THREADS="1"),
                             capture_output=True, text=True, check=True)
        out[L] = json.loads(run.stdout.strip().splitlines()[-1])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(TEMPERATURES), default="pajda")
    parser.add_argument("--sizes", type=int, nargs=2, default=[6, 10],
                        help="two sizes L (L³ cubic cells, 2L³ spins)")
    parser.add_argument("--temperatures", type=float, nargs="+",
                        help="K (default: around T_c of the model)")
    parser.add_argument("--sweeps", type=int, default=7000)
    parser.add_argument("--equilibration", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--seeds", type=int, default=1, help="otf-spin runs (seeds)")
    parser.add_argument("--no-spirit", action="store_true")
    parser.add_argument("--allow-twins", action="store_true",
                        help="run (and time) the pure-Python twins of kernels not built")
    args = parser.parse_args(argv)
    refuse_twins(args.allow_twins)
    oracle, a, shells, literature = model(args.model)
    primitive = bulk("bcc", a, primitive=True)
    T = np.array(args.temperatures or TEMPERATURES[args.model], float)
    small, large = args.sizes
    print(f"bcc {args.model}: {len(shells)} shell(s), J_0 = "
          f"{1.5 * K_B * mean_field_curie(oracle, primitive) / MEV:.2f} meV, sizes "
          f"{args.sizes}, {args.sweeps} sweeps (+{args.equilibration}) per temperature")

    def crossing(u_small, u_large):
        try:
            return binder_crossing(T, u_small, u_large)
        except ValueError as exc:          # not bracketed: say so, keep the table
            print(f"# {exc}")
            return np.nan

    runs, seconds = [], 0.0
    for seed in range(args.seed, args.seed + args.seeds):
        start = time.perf_counter()
        runs.append({L: binder_scan(oracle, bulk("bcc", a, (L,) * 3), T, args.sweeps,
                                    args.equilibration, seed=[seed, L]) for L in args.sizes})
        seconds += time.perf_counter() - start
    rate = args.seeds * 2 * (small**3 + large**3) * len(T) * (
        args.sweeps + args.equilibration) / seconds
    spirit = None if args.no_spirit else spirit_binder(args.sizes, shells, T, args.sweeps,
                                                       args.equilibration, a)
    header = f"{'T (K)':>7s}" + "".join(f" {'otf-spin U_' + str(L):>14s}" for L in args.sizes)
    if spirit:
        header += "".join(f" {'Spirit U_' + str(L):>12s}" for L in args.sizes)
    print(f"(first seed, {args.seed})")
    print(header)
    print("-" * len(header))
    for k, t in enumerate(T):
        row = f"{t:7.1f}" + "".join(f" {runs[0][L][k]:14.4f}" for L in args.sizes)
        if spirit:
            row += "".join(f" {spirit[L]['U'][k]:12.4f}" for L in args.sizes)
        print(row)
    tc = np.array([crossing(r[small], r[large]) for r in runs])
    print()
    print(f"{'estimate':44s} {'T_c (K)':>8s}")
    print("-" * 53)
    label = f"otf-spin MC, Binder crossing {small}/{large}"
    if args.seeds > 1:
        print(f"{label + f', {args.seeds} seeds':44s} {np.nanmean(tc):8.1f} ± "
              f"{np.nanstd(tc, ddof=1) / np.sqrt(np.sum(np.isfinite(tc))):.1f}   "
              f"(runs: {', '.join(f'{x:.1f}' for x in tc)})")
    else:
        print(f"{label:44s} {tc[0]:8.1f}   ({rate:.3g} spin-updates/s)")
    if spirit:
        print(f"{'Spirit ' + spirit[small]['version'].split()[0] + ' MC, Binder crossing':44s} "
              f"{crossing(spirit[small]['U'], spirit[large]['U']):8.1f}   "
              f"({spirit[large]['spin_updates_per_s']:.3g} spin-updates/s, "
              f"E_FM {spirit[large]['e_fm_mev_per_spin']:.2f} meV/spin)")
    print(f"{'mean field, same couplings':44s} {mean_field_curie(oracle, primitive):8.1f}")
    print(f"{'RPA (Tyablikov), same couplings':44s} {rpa_curie(oracle, primitive, (48, 96)):8.1f}")
    for text, value in literature:
        print(f"{text:44s} {value:>8s}")
    if args.model == "uppasd":
        print()
        print(f"{'M = <|m|>, 2000 spins':28s} {'otf-spin':>16s} {'UppASD 6.1':>10s}")
        for temperature, reference in UPPASD_M.items():
            m, error = magnetisation(oracle, bulk("bcc", a, (10,) * 3), temperature,
                                     args.sweeps, seed=args.seed)
            print(f"{f'T = {temperature:g} K':28s} {m:9.4f} ± {error:.4f} {reference:10.4f}")


if __name__ == "__main__":
    main()
