"""Spin-updates per second of the LLG integrators (and MC), against Spirit in the same run.

    python benchmarks/llg_speed.py [--cells 20] [--steps 200] [--threads 1 2] [--no-spirit]
                                   [--ml-steps 2]

The benchmark: bcc Fe, 20×20×20 conventional cells (16 000 spins), J1 + J2
(19.48, 11.09 meV, double counted), 300 K, α = 0.1, dt = 1 fs. One spin update = one
spin advanced by one time step (two field evaluations for every scheme here). Spirit
2.2.0 is installed into benchmarks/.spirit-venv (PyPI) and timed by
benchmarks/spirit_harness.py with the same settings and one thread (SIB); the ratio is
printed. With --ml-steps the GAP-SOSO provider is timed too, at the paper's settings
(r_c 7 Å, n_max 12, l_max 6, ζ = 4, 150 sparse points) and with the defaults of
`otf-spin train` (n_max 20).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SPIRIT_VENV = os.path.join(HERE, ".spirit-venv")


def ours(integrator: str, cells: int, steps: int, threads: int,
         allow_twins: bool = False) -> float:
    """Spin-updates/s of one integrator, measured in a subprocess with OMP_NUM_THREADS
    (which refuses to time pure-Python twins unless ``allow_twins``)."""
    code = f"""
import time, numpy as np
from otf_spin.kernels import refuse_twins
refuse_twins({allow_twins})
from otf_spin.system import bulk
from otf_spin.oracles.heisenberg import HeisenbergOracle, ShellExchange
from otf_spin.dynamics.providers import HeisenbergProvider
from otf_spin.dynamics.llg import LLGIntegrator, new_state
from otf_spin.dynamics.montecarlo import HeisenbergMonteCarlo, new_state as mc_state
from otf_spin.units import MEV
a = 2.83
system = bulk("bcc", a, ({cells},) * 3, moment=2.2)
oracle = HeisenbergOracle(ShellExchange([a * 3**0.5 / 2, a], [19.48 * MEV, 11.09 * MEV], 0.05),
                          "double_counted")
if "{integrator}" == "mc":
    mc = HeisenbergMonteCarlo(oracle, system)
    state = mc_state(system, 1)
    mc.sweep(state, 300.0)
else:
    provider = HeisenbergProvider(oracle, system)
    integrator = LLGIntegrator("{integrator}", 1e-3, 0.1)
    state = new_state(system.directions, 1)
    integrator.step(state, provider, 300.0)
best = float("inf")
for _ in range(3):                               # best of three, as for Spirit
    start = time.perf_counter()
    for _ in range({steps}):
        if "{integrator}" == "mc":
            mc.sweep(state, 300.0)
        else:
            integrator.step(state, provider, 300.0)
    best = min(best, time.perf_counter() - start)
print(len(system) * {steps} / best)
"""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit((out.stderr.strip().splitlines() or ["timing run failed"])[-1])
    return float(out.stdout.strip().splitlines()[-1])


def ml_provider_speed(cells: int, steps: int, n_max: int) -> float:
    """Spin-updates/s of Depondt LLG on the GAP-SOSO provider (defaults, radial basis
    size ``n_max``)."""
    import warnings

    from otf_spin.dynamics.llg import LLGIntegrator, new_state
    from otf_spin.dynamics.providers import ComputeProvider
    from otf_spin.learning.paper_sets import generate_set
    from otf_spin.model import build_model, default_settings
    from otf_spin.system import bulk

    warnings.simplefilter("ignore")
    settings = default_settings()
    settings["descriptor"]["n_max"] = n_max
    model = build_model(settings).fit(generate_set("thermal_300K", 2024)[0])
    system = bulk("bcc", 2.83, (cells,) * 3, moment=2.2)
    provider = ComputeProvider(model, system)
    integrator = LLGIntegrator("depondt", 1e-3, 0.1)
    state = new_state(system.directions, 1)
    integrator.step(state, provider, 300.0)
    start = time.perf_counter()
    for _ in range(steps):
        integrator.step(state, provider, 300.0)
    return len(system) * steps / (time.perf_counter() - start)


def ensure_spirit() -> str | None:
    """Python of benchmarks/.spirit-venv with Spirit 2.2.0 (installed once from PyPI);
    None if it cannot be installed."""
    python = os.path.join(SPIRIT_VENV, "bin", "python")
    try:
        if not os.path.exists(python):
            subprocess.run([sys.executable, "-m", "venv", SPIRIT_VENV], check=True)
            subprocess.run([python, "-m", "pip", "install", "--quiet", "spirit==2.2.0", "numpy"],
                           check=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"# Spirit could not be installed: {exc}", file=sys.stderr)
        return None
    return python


def spirit(cells: int, steps: int) -> dict | None:
    """Time Spirit beside us; None if it cannot be installed or run."""
    python = ensure_spirit()
    if python is None:
        return None
    try:
        out = subprocess.run([python, os.path.join(HERE, "spirit_harness.py"), "--cells",
                              str(cells), "--steps", str(steps), "--json"],
                             env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True,
                             text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.CalledProcessError, OSError, ValueError) as exc:
        print(f"# Spirit could not be run: {exc}", file=sys.stderr)
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-spirit", action="store_true")
    parser.add_argument("--ml-steps", type=int, default=0,
                        help="also time the GAP-SOSO provider for this many steps")
    parser.add_argument("--allow-twins", action="store_true",
                        help="time the pure-Python twins of kernels that are not built")
    args = parser.parse_args(argv)
    from otf_spin.kernels import refuse_twins

    refuse_twins(args.allow_twins)
    n = 2 * args.cells**3
    print(f"bcc Fe {args.cells}³ cells = {n} spins, J1+J2, 300 K, α 0.1, dt 1 fs, "
          f"{args.steps} steps")
    reference = spirit(args.cells, args.steps) if not args.no_spirit else None
    header = f"{'code':28s} {'threads':>7s} {'spin-updates/s':>15s} {'vs Spirit':>9s}"
    print(header)
    print("-" * len(header))
    if reference:
        print(f"{'Spirit ' + reference['version'] + ' ' + reference['solver']:28s} "
              f"{1:7d} {reference['spin_updates_per_s']:15.3e} {1.0:9.2f}")
    for integrator in ("depondt", "sib", "heun", "mc"):
        for threads in args.threads:
            rate = ours(integrator, args.cells, args.steps, threads, args.allow_twins)
            ratio = f"{rate / reference['spin_updates_per_s']:9.2f}" if reference else f"{'-':>9s}"
            label = f"otf-spin {integrator}" + (" (sweeps)" if integrator == "mc" else "")
            print(f"{label:28s} {threads:7d} {rate:15.3e} {ratio}", flush=True)
    if args.ml_steps:
        for label, n_max in (("n_max 12 (paper)", 12), ("n_max 20 (defaults)", 20)):
            rate = ml_provider_speed(args.cells, args.ml_steps, n_max)
            print(f"{'GAP-SOSO ' + label:28s} "
                  f"{os.environ.get('OMP_NUM_THREADS', '-'):>7s} {rate:15.3e}", flush=True)


if __name__ == "__main__":
    main()
