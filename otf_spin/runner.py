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


def _setup_otf(cfg, system, dyn, log, fresh):
    """Learner, provider and (possibly resumed) state of an on-the-fly run."""
    import os

    from otf_spin.dynamics.providers import ComputeProvider
    from otf_spin.learning import checkpoint
    from otf_spin.learning.otf import OnTheFly
    from otf_spin.learning.store import TrainingStore

    otf = cfg["otf"]
    if fresh and os.path.exists(otf["checkpoint"]):
        os.remove(otf["checkpoint"])
    store = TrainingStore(otf["store"])
    resume = os.path.exists(otf["checkpoint"])
    if resume:
        state, model, learner_state, _ = checkpoint.read(otf["checkpoint"])
        learner = OnTheFly(otf, cfg["oracle"], store, model, log)
        learner.restore(learner_state)
        print(f"# resuming from {otf['checkpoint']} at step {state.step}", file=log)
    else:
        model = None
        if otf["model"]:
            from otf_spin.model import load

            model = load(otf["model"])
        learner = OnTheFly(otf, cfg["oracle"], store, model, log)
        state = new_state(system.directions, dyn["seed"])
        learner.initial(system, np.random.default_rng([dyn["seed"], 0x0F1]))
    provider = ComputeProvider(learner.model, system, dyn["field"])

    def refit():
        provider.calculator = learner.model
        provider._last = (None, None)

    learner.on_refit = refit
    return learner, provider, state, resume


def run(cfg: dict, progress: bool = True, log=None, fresh: bool = False,
        monitor=None) -> dict:
    """Run a validated run configuration (see :func:`otf_spin.io.runconfig.load_run`);
    log lines go to ``log`` (default: standard output). On-the-fly runs resume from
    their checkpoint unless ``fresh``. ``monitor(step, state, provider, observables)``
    is called at every output step (benchmarks, analysis)."""
    log = log or sys.stdout
    dyn, out = cfg["dynamics"], cfg["output"]
    system = build_system(cfg["system"], dyn["seed"])
    steps = dyn["steps"]
    t0, t1 = dyn["temperature"]

    def temperature(step):
        return t0 + (t1 - t0) * step / max(steps, 1)

    log_every = out["log_every"] or max(1, steps // 10)
    is_mc = dyn["integrator"] == "mc"
    learner, resume = None, False
    if cfg.get("otf"):
        learner, provider, state, resume = _setup_otf(cfg, system, dyn, log, fresh)
        integrator = LLGIntegrator(dyn["integrator"], dyn["timestep"], dyn["damping"])
    else:
        provider = build_provider(cfg["hamiltonian"], system, dyn["field"])
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
    elif learner is None:
        integrator = LLGIntegrator(dyn["integrator"], dyn["timestep"], dyn["damping"])
        state = new_state(system.directions, dyn["seed"])
    first = state.step if resume else 0
    print(f"# otf-spin run: {len(system)} spins, {dyn['integrator']}, {steps} "
          f"{'sweeps' if is_mc else 'steps'}, T {t0:g}->{t1:g} K"
          + (", on the fly" if learner else ""), file=log)
    print(f"# {'step':>8s} {'time/ps':>10s} {'E/eV':>14s} {'|M|':>8s} {'T_spin/K':>9s}"
          + (f" {'maxσ meV/μB':>11s} {'calls':>5s}" if learner else ""), file=log)
    start = time.perf_counter()
    with H5MDWriter(out["trajectory"], system, "MC sweep" if is_mc else "ps", out["spins"],
                    resume_step=first if resume else None) as writer:
        def observe(step):
            obs = observables(provider, state.directions, temperature(step))
            if learner:
                obs.update(max_field_std=learner.last_max_std, oracle_calls=learner.calls,
                           threshold=learner.threshold.value,
                           training_frames=learner.model.n_frames)
            return obs

        def record(step):
            t = float(step) if is_mc else state.time
            obs = observe(step)
            writer.write(step, t, state.directions if step % out["every"] == 0 else None, obs)
            if monitor:
                monitor(step, state, provider, obs)
            return obs

        if not resume:
            if learner:
                system.directions = state.directions
                learner.check(system, 0)
            obs = record(0)
        for step in progress_bar(range(first + 1, steps + 1), "run", enabled=progress):
            T = temperature(step - 1)
            if is_mc:
                sampler.sweep(state, T)
            else:
                if learner and step > 1:
                    system.directions = state.directions
                    learner.check(system, step - 1)
                integrator.step(state, provider, T)
            if step % out["every"] == 0 or step == steps:
                obs = record(step)
            if step % log_every == 0 or step == steps:
                if step % out["every"] and step != steps:
                    obs = observe(step)
                extra = (f" {1e3 * obs['max_field_std']:11.3f} {obs['oracle_calls']:5d}"
                         if learner else "")
                print(f"  {step:8d} {(step if is_mc else state.time):10.4f} "
                      f"{obs['energy']:14.6f} {np.linalg.norm(obs['magnetization']):8.5f} "
                      f"{obs['spin_temperature']:9.2f}{extra}", file=log, flush=True)
            if learner and (step % cfg["otf"]["checkpoint_every"] == 0 or step == steps):
                from otf_spin.learning import checkpoint

                checkpoint.write(cfg["otf"]["checkpoint"], state, learner, len(learner.store))
    elapsed = time.perf_counter() - start
    rate = len(system) * (steps - first) / elapsed if elapsed > 0 else float("nan")
    print(f"# done: {elapsed:.2f} s, {rate:.3g} spin-updates/s -> {out['trajectory']}",
          file=log)
    if learner:
        learner.model.save(cfg["otf"]["save_model"])
        print(f"# on the fly: {learner.calls} labels ({learner.reused} reused from the store), "
              f"{learner.failures} failed jobs, oracle time {learner.oracle_time:.1f} s, model "
              f"-> {cfg['otf']['save_model']}", file=log)
    return {"system": system, "state": state, "elapsed": elapsed, "learner": learner,
            "final": observables(provider, state.directions, t1)}
