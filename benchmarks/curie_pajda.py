"""Curie temperature of bcc Fe with Pajda's eight exchange shells: otf-spin MC beside Spirit.

    python benchmarks/curie_pajda.py [--sizes 6 10] [--sweeps 7000] [--no-spirit]

The classical Heisenberg model of input_examples/oracle_bccFe_pajda.yaml (Pajda et al.,
PRB 64, 174402 (2001), shells 1-8) is sampled by otf-spin's Metropolis MC and — in its
own virtual environment, benchmarks/.spirit-venv, installed on first use — by Spirit
2.2.0's Metropolis MC on the same cells, temperatures and sweep counts; T_c is the
crossing of the Binder cumulants of the two sizes. Printed beside them: the mean-field
and RPA values of the same eight shells (otf_spin.dynamics.curie), Pajda's own values
from all shells, and experiment.
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
from otf_spin.dynamics.curie import binder_crossing, binder_scan, mean_field_curie, rpa_curie
from otf_spin.system import SpinSystem, bulk
from otf_spin.units import MEV

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "input_examples", "oracle_bccFe_pajda.yaml")
sys.path.insert(0, HERE)
from llg_speed import ensure_spirit  # noqa: E402


def pajda():
    """(oracle, lattice constant Å, [(r²/a², J meV double-counted)]) of the example file."""
    oracle = oracles.load_file(EXAMPLE)
    a = oracle.settings()["lattice_constant"]
    shells = [(float(np.round((r / a) ** 2, 4)), float(J / MEV))
              for r, J in zip(oracle.exchange.distances, oracle.exchange.J)]
    return oracle, a, shells


def primitive_bcc(a: float) -> SpinSystem:
    from ase.build import bulk as ase_bulk

    atoms = ase_bulk("Fe", "bcc", a=a)
    return SpinSystem(atoms.cell.array, atoms.positions, "Fe")


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
    parser.add_argument("--sizes", type=int, nargs=2, default=[6, 10],
                        help="two sizes L (L³ cubic cells, 2L³ spins)")
    parser.add_argument("--temperatures", type=float, nargs="+",
                        default=[840, 860, 880, 900, 920, 940, 960])
    parser.add_argument("--sweeps", type=int, default=7000)
    parser.add_argument("--equilibration", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-spirit", action="store_true")
    args = parser.parse_args(argv)
    oracle, a, shells = pajda()
    T = np.array(args.temperatures, float)
    print(f"bcc Fe, Pajda et al. 2001 shells 1-{len(shells)} (J_0 = "
          f"{sum(J * n for (_, J), n in zip(shells, [8, 6, 12, 24, 8, 6, 24, 24])):.2f} meV), "
          f"sizes {args.sizes}, {args.sweeps} sweeps (+{args.equilibration}) per temperature")
    ours, rates = {}, {}
    for L in args.sizes:
        start = time.perf_counter()
        ours[L] = binder_scan(oracle, bulk("bcc", a, (L,) * 3), T, args.sweeps,
                              args.equilibration, seed=[args.seed, L])
        rates[L] = 2 * L**3 * len(T) * (args.sweeps + args.equilibration) / (
            time.perf_counter() - start)
    spirit = None if args.no_spirit else spirit_binder(args.sizes, shells, T, args.sweeps,
                                                       args.equilibration, a)
    header = f"{'T (K)':>7s}" + "".join(f" {'otf-spin U_' + str(L):>14s}" for L in args.sizes)
    if spirit:
        header += "".join(f" {'Spirit U_' + str(L):>12s}" for L in args.sizes)
    print(header)
    print("-" * len(header))
    for k, t in enumerate(T):
        row = f"{t:7.0f}" + "".join(f" {ours[L][k]:14.4f}" for L in args.sizes)
        if spirit:
            row += "".join(f" {spirit[L]['U'][k]:12.4f}" for L in args.sizes)
        print(row)
    small, large = args.sizes

    def crossing(u_small, u_large):
        try:
            return f"{binder_crossing(T, u_small, u_large):8.1f}"
        except ValueError as exc:          # not bracketed: say so, keep the table
            return f"{'-':>8s}  {exc}"
    print()
    print(f"{'estimate':44s} {'T_c (K)':>8s}")
    print("-" * 53)
    print(f"{'otf-spin MC, Binder crossing ' + str(small) + '/' + str(large):44s} "
          f"{crossing(ours[small], ours[large])}   "
          f"({np.mean(list(rates.values())):.3g} spin-updates/s)")
    if spirit:
        print(f"{'Spirit ' + spirit[small]['version'].split()[0] + ' MC, Binder crossing':44s} "
              f"{crossing(spirit[small]['U'], spirit[large]['U'])}   "
              f"({spirit[large]['spin_updates_per_s']:.3g} spin-updates/s, "
              f"E_FM {spirit[large]['e_fm_mev_per_spin']:.2f} meV/spin)")
    primitive = primitive_bcc(a)
    print(f"{'mean field, same 8 shells':44s} {mean_field_curie(oracle, primitive):8.1f}")
    print(f"{'RPA (Tyablikov), same 8 shells':44s} {rpa_curie(oracle, primitive, (48, 96)):8.1f}")
    print(f"{'Pajda et al. 2001, all shells: MFA / RPA':44s} {'1414 / 950':>8s}")
    print(f"{'experiment':44s} {'1044':>8s}")


if __name__ == "__main__":
    main()
