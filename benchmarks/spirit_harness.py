"""Spirit (PyPI `spirit` 2.2.0) beside otf-spin: LLG throughput and Monte Carlo Binder cumulants.

Run by benchmarks/llg_speed.py and benchmarks/curie_pajda.py inside its own virtual
environment (benchmarks/.spirit-venv) so that Spirit never becomes a dependency of otf-spin:
    .spirit-venv/bin/python spirit_harness.py --cells 20 --steps 200 [--solver SIB] [--json]
    .spirit-venv/bin/python spirit_harness.py --binder '{"cells": 8, "shells": [[0.75, 19.48]],
        "temperatures": [900, 950], "sweeps": 4000, "equilibration": 1000}'

Benchmark: bcc Fe as a simple-cubic lattice with a 2-atom basis (0,0,0), (1/2,1/2,1/2),
n_cells^3 conventional cells (20 -> 16 000 spins), a = 2.83 A, mu_s = 2.2 mu_B, periodic,
isotropic exchange on the first two shells (8 NN at a*sqrt(3)/2, 6 NNN at a), no field,
no anisotropy, no dipolar term; T = 300 K, alpha = 0.1, dt = 1 fs, FM start.

Exchange convention.  The benchmark J's are double-counted, H = -sum_{i!=j} J_ij e_i.e_j.
Spirit counts each unique pair once, H = -sum_<ij> J_ij m_i.m_j:
  * core/docs/Input.md (github.com/spirit-code/spirit): "Pairwise interactions are specified
    in meV per unique pair (not per neighbour)";
  * core/src/engine/Hamiltonian_Heisenberg.cpp, E_Exchange: each stored (unique) pair adds
    -0.5*J*s_i.s_j to both spins i and j, i.e. -J per pair.
Hence J_spirit = 2 * J_doublecounted.  Checked numerically with this wheel: the FM energy is
-(8*J1 + 6*J2) = -222.38 meV/spin and the (tangential) force on each spin equals
sum_j J_spirit s_j to 1e-7.

Geometry note: `hamiltonian heisenberg_neighbours` (shell input) is wrong for a multi-atom
basis in 2.2.0 -- here it finds 1 NN + 3 NNN per spin instead of 8 + 6 (FM energy
-52.75 instead of -222.38 meV/spin; cf. spirit-code/spirit issue #648).  We therefore list
the 14 unique pairs per cell explicitly with `hamiltonian heisenberg_pairs`.

The PyPI wheel is built without OpenMP/CUDA (spirit.version.openmp == "OFF"), so it runs
on one thread anyway; OMP_NUM_THREADS=1 is set for safety.
"""
import os

os.environ["OMP_NUM_THREADS"] = "1"  # must precede importing spirit

import itertools
import sys
import tempfile
import time

import numpy as np
from spirit import configuration, geometry, quantities, simulation, state, system, version
from spirit.parameters import mc

SOLVERS = {"SIB": simulation.SOLVER_SIB, "Depondt": simulation.SOLVER_DEPONDT,
           "Heun": simulation.SOLVER_HEUN, "RK4": simulation.SOLVER_RK4}


BASIS = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])    # bcc in the cubic cell


def bcc_pairs(shells):
    """Unique pairs (i, j, da, db, dc, J) of the 2-atom cubic bcc cell, each bond once.

    ``shells``: [(r²/a², J)] with J already in Spirit's once-per-pair convention.
    (NN: 8 bonds 0->1 to the translations {0,-1}^3 and their images 1->0, i.e. 4 per spin.)"""
    reach = int(np.ceil(np.sqrt(max(r2 for r2, _ in shells)))) + 1
    pairs, listed = [], set()
    for i, j in itertools.product((0, 1), repeat=2):
        for t in itertools.product(range(-reach, reach + 1), repeat=3):
            if (j, i, *(-x for x in t)) in listed:
                continue                                  # the reverse bond is listed
            d2 = float(np.sum((BASIS[j] + t - BASIS[i]) ** 2))
            for r2, J in shells:
                if abs(d2 - r2) < 1e-9:
                    pairs.append((i, j, *t, J))
                    listed.add((i, j, *t))
    return pairs


def _config_text(n_cells, temperature, damping, dt_fs, pairs, moment, a, folder):
    """Spirit input file; pairs (i, j, da, db, dc, J) in Spirit's once-per-pair convention."""
    pair_lines = "\n".join(" ".join(str(x) for x in p) for p in pairs)
    return f"""
log_output_folder {folder}
log_to_console 0
log_console_level 0
log_to_file 0
log_file_level 0
log_input_save_initial 0
log_input_save_final 0
log_positions_save_initial 0
log_positions_save_final 0
log_neighbours_save_initial 0
log_neighbours_save_final 0
bravais_vectors
1 0 0
0 1 0
0 0 1
lattice_constant {a}
basis
2
0.0 0.0 0.0
0.5 0.5 0.5
mu_s {moment} {moment}
n_basis_cells {n_cells} {n_cells} {n_cells}
hamiltonian heisenberg_pairs
boundary_conditions 1 1 1
external_field_magnitude 0.0
external_field_normal 0 0 1
anisotropy_magnitude 0.0
anisotropy_normal 0 0 1
ddi_method none
n_interaction_pairs {len(pairs)}
i j da db dc Jij
{pair_lines}
llg_output_folder {folder}
llg_output_any 0
llg_output_initial 0
llg_output_final 0
llg_seed 20006
llg_temperature {temperature}
llg_damping {damping}
llg_dt {dt_fs * 1e-3}
llg_force_convergence 0
llg_n_iterations 1000000000
llg_n_iterations_log 1000000000
mc_output_folder {folder}
mc_output_any 0
mc_output_initial 0
mc_output_final 0
mc_seed 20006
mc_temperature {temperature}
mc_n_iterations 1000000000
mc_n_iterations_log 1000000000
"""


def _quiet_setup(cfg):
    """state.setup(cfg, quiet=True), silencing the banner Spirit prints before 'quiet' applies."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        return state.setup(cfg, quiet=True)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def spirit_spin_updates_per_second(n_cells=20, steps=200, temperature=300.0, damping=0.1,
                                   dt_fs=1.0, j1_mev=19.48, j2_mev=11.09, moment=2.2,
                                   a=2.83, solver="SIB", warmup=20, repeats=3):
    """Best-of-`repeats` time of `steps` LLG iterations (setup and warm-up excluded)."""
    solver_id = SOLVERS[solver]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "input.cfg")
        with open(cfg, "w") as f:  # double-counted J -> Spirit's per-unique-pair J
            f.write(_config_text(n_cells, temperature, damping, dt_fs,
                                 bcc_pairs([(0.75, 2.0 * j1_mev), (1.0, 2.0 * j2_mev)]),
                                 moment, a, tmp))
        p = _quiet_setup(cfg)
        try:
            nos = system.get_nos(p)
            assert nos == 2 * n_cells**3 and geometry.get_n_cell_atoms(p) == 2
            configuration.plus_z(p)                     # ferromagnetic start
            system.update_data(p)
            e_fm = system.get_energy(p) / nos           # meV/spin, Spirit's H
            # Warm-up run (also builds caches), then the timed run.  Each start() builds
            # the method and does one initial force evaluation (~0.3% of 200 SIB steps).
            simulation.start(p, simulation.METHOD_LLG, solver_id,
                             n_iterations=warmup, n_iterations_log=warmup)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                info = simulation.start(p, simulation.METHOD_LLG, solver_id,
                                        n_iterations=steps, n_iterations_log=steps)
                times.append(time.perf_counter() - t0)
                assert info.total_iterations == steps, info.total_iterations
            seconds = min(times)                        # best of `repeats`
            m = float(np.linalg.norm(np.mean(system.get_spin_directions(p), axis=0)))
        finally:
            state.delete(p)
    return {"spin_updates_per_s": nos * steps / seconds, "n_spins": nos, "steps": steps,
            "seconds": seconds, "all_seconds": times, "version": version.version_full, "solver": solver,
            "openmp": version.openmp, "e_fm_mev_per_spin": e_fm,
            "e_fm_expected": -(8 * j1_mev + 6 * j2_mev), "m_final": m,
            "simulated_ps": (warmup + repeats * steps) * dt_fs * 1e-3}


def spirit_binder(cells, shells, temperatures, sweeps, equilibration, moment=2.2, a=2.83):
    """Binder cumulants U(T) from Spirit's Metropolis MC (adaptive cone, 50 % acceptance)
    on cells³ cubic bcc cells; ``shells`` [(r²/a², J meV double-counted)]; one sample of
    the magnetisation per MC iteration (one sweep), heating with warm starts."""
    pairs = bcc_pairs([(r2, 2.0 * J) for r2, J in shells])   # double-counted -> per pair
    out, rates = [], []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "input.cfg")
        with open(cfg, "w") as f:
            f.write(_config_text(cells, temperatures[0], 0.1, 1.0, pairs, moment, a, tmp))
        p = _quiet_setup(cfg)
        try:
            nos = system.get_nos(p)
            configuration.plus_z(p)
            system.update_data(p)
            e_fm = system.get_energy(p) / nos
            mc.set_metropolis_cone(p, True, 40.0, True, 0.5)
            for temperature in temperatures:
                mc.set_temperature(p, temperature)
                simulation.start(p, simulation.METHOD_MC, n_iterations=equilibration,
                                 n_iterations_log=equilibration)
                # a single-shot run stops after n_iterations (else the last start's)
                simulation.start(p, simulation.METHOD_MC, n_iterations=sweeps + 1,
                                 n_iterations_log=sweeps + 1, single_shot=True)
                m2 = np.empty(sweeps)
                t0 = time.perf_counter()
                for k in range(sweeps):
                    simulation.single_shot(p)
                    m2[k] = np.sum(np.asarray(quantities.get_magnetization(p)) ** 2)
                rates.append(nos * sweeps / (time.perf_counter() - t0))
                simulation.stop(p)
                out.append(1.0 - np.mean(m2**2) / (3.0 * np.mean(m2) ** 2))
        finally:
            state.delete(p)
    return {"U": out, "temperatures": list(temperatures), "n_spins": nos,
            "pairs_per_cell": len(pairs), "e_fm_mev_per_spin": e_fm,
            "e_fm_expected": -sum(J * n for (r2, J), n in zip(shells, _coordination(shells))),
            "spin_updates_per_s": float(np.mean(rates)), "version": version.version_full}


def _coordination(shells):
    """Neighbour count of each shell (r²/a²) in bcc."""
    rng = np.arange(-4, 5)
    pts = np.array([v for v in itertools.product(rng, repeat=3)], float)
    pts = np.concatenate([pts, pts + 0.5])
    d2 = np.sum(pts**2, axis=1)
    return [int(np.sum(np.abs(d2 - r2) < 1e-9)) for r2, _ in shells]


def main(argv=None):
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--solver", default="SIB", choices=sorted(SOLVERS))
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--binder", help="JSON {cells, shells, temperatures, sweeps, "
                        "equilibration}: MC Binder cumulants instead (prints one JSON line)")
    args = parser.parse_args(argv)
    if args.binder:
        print(json.dumps(spirit_binder(**json.loads(args.binder))))
        return
    r = spirit_spin_updates_per_second(n_cells=args.cells, steps=args.steps,
                                       solver=args.solver)
    if args.json:
        print(json.dumps(r))
    else:
        print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in r.items()))


if __name__ == "__main__":
    main()
