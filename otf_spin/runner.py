"""The run loop: YAML -> system -> provider -> integrator -> observers (H5MD, log).

One place orchestrates a run; integrators are pure steps over a state, providers know
nothing of files, writers nothing of physics.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from otf_spin.dynamics.llg import LLGIntegrator, new_state
from otf_spin.io.h5md import H5MDWriter
from otf_spin.progress import progress_bar
from otf_spin.system import (bulk, directions_from_file, ferromagnetic, random_cone,
                             random_sphere)


def build_system(cfg: dict, seed: int):
    """SpinSystem of a validated ``system`` section."""
    system = bulk(cfg["lattice"], cfg["a"], cfg["repeat"], cfg["species"], cfg["moment"],
                  cfg["c"])
    n = len(system)
    rng = np.random.default_rng([seed, 0x5317])       # spin initialisation stream
    if cfg["spins"] == "ferromagnetic":
        system.set_directions(ferromagnetic(n, cfg["axis"]))
    elif cfg["spins"] == "random":
        system.set_directions(random_sphere(n, rng))
    elif cfg["spins"] == "cone":
        system.set_directions(random_cone(n, cfg["axis"], cfg["cone_angle"], rng))
    else:
        system.set_directions(directions_from_file(cfg["spins_file"], n))
    return system


def build_provider(hamiltonian: dict, system, field):
    from otf_spin.dynamics.providers import make_provider

    if hamiltonian["kind"] == "model":
        from otf_spin.model import load

        return make_provider(load(hamiltonian["file"]), system, field)
    return make_provider(hamiltonian["oracle"], system, field)


def observables(provider, directions, temperature) -> dict:
    return {"energy": provider.energy(directions),
            "magnetization": directions.mean(axis=0),
            "spin_temperature": provider.spin_temperature(directions),
            "temperature": temperature}


def run(cfg: dict, progress: bool = True, log=None) -> dict:
    """Run a validated run configuration (see :func:`otf_spin.io.runconfig.load_run`);
    log lines go to ``log`` (default: standard output)."""
    log = log or sys.stdout
    dyn, out = cfg["dynamics"], cfg["output"]
    system = build_system(cfg["system"], dyn["seed"])
    provider = build_provider(cfg["hamiltonian"], system, dyn["field"])
    steps = dyn["steps"]
    t0, t1 = dyn["temperature"]

    def temperature(step):
        return t0 + (t1 - t0) * step / max(steps, 1)

    log_every = out["log_every"] or max(1, steps // 10)
    is_mc = dyn["integrator"] == "mc"
    if is_mc:
        from otf_spin.dynamics import montecarlo

        calculator = getattr(provider, "calculator", None)
        if hasattr(calculator, "sparse"):                      # a fitted model
            sampler = montecarlo.ModelMonteCarlo(calculator, system, dyn["field"])
        elif cfg["hamiltonian"]["kind"] == "oracle" and \
                not getattr(cfg["hamiltonian"]["oracle"], "slaving", None):
            sampler = montecarlo.HeisenbergMonteCarlo(cfg["hamiltonian"]["oracle"], system,
                                                      dyn["field"])
        else:
            raise ValueError("integrator mc runs on fixed-moment Heisenberg hamiltonians and "
                             "fitted models")
        state = montecarlo.new_state(system, np.random.default_rng(dyn["seed"]))
    else:
        integrator = LLGIntegrator(dyn["integrator"], dyn["timestep"], dyn["damping"])
        state = new_state(system.directions, dyn["seed"])
    print(f"# otf-spin run: {len(system)} spins, {dyn['integrator']}, {steps} "
          f"{'sweeps' if is_mc else 'steps'}, T {t0:g}->{t1:g} K", file=log)
    print(f"# {'step':>8s} {'time/ps':>10s} {'E/eV':>14s} {'|M|':>8s} {'T_spin/K':>9s}",
          file=log)
    start = time.perf_counter()
    with H5MDWriter(out["trajectory"], system, "MC sweep" if is_mc else "ps",
                    out["spins"]) as writer:
        def record(step):
            t = float(step) if is_mc else state.time
            obs = observables(provider, state.directions, temperature(step))
            writer.write(step, t, state.directions if step % out["every"] == 0 else None, obs)
            return obs

        obs = record(0)
        for step in progress_bar(range(1, steps + 1), "run", enabled=progress):
            T = temperature(step - 1)
            if is_mc:
                sampler.sweep(state, T)
            else:
                integrator.step(state, provider, T)
            if step % out["every"] == 0 or step == steps:
                obs = record(step)
            if step % log_every == 0 or step == steps:
                if step % out["every"] and step != steps:
                    obs = observables(provider, state.directions, T)
                print(f"  {step:8d} {(step if is_mc else state.time):10.4f} "
                      f"{obs['energy']:14.6f} {np.linalg.norm(obs['magnetization']):8.5f} "
                      f"{obs['spin_temperature']:9.2f}", file=log, flush=True)
    elapsed = time.perf_counter() - start
    rate = len(system) * steps / elapsed
    print(f"# done: {elapsed:.2f} s, {rate:.3g} spin-updates/s -> {out['trajectory']}",
          file=log)
    return {"system": system, "state": state, "elapsed": elapsed,
            "final": observables(provider, state.directions, t1)}
