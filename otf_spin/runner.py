"""The run loop: YAML -> system -> provider -> integrator -> observers (H5MD, log).

One place orchestrates a run; integrators are pure steps over a state, providers know
nothing of files, writers nothing of physics.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from otf_spin.dynamics.llg import LLGIntegrator, new_state
from otf_spin.io.atomic import kill_point
from otf_spin.io.extxyz import directions_from_file
from otf_spin.io.h5md import H5MDWriter
from otf_spin.model import storage
from otf_spin.progress import progress_bar
from otf_spin.system import bulk, ferromagnetic, random_cone, random_sphere


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


def _finite(value: float, width: int, digits: int) -> str:
    """A log cell: the number, or '-' where it is undefined (never 'nan')."""
    return f"{value:{width}.{digits}f}" if np.isfinite(value) else f"{'-':>{width}s}"


def observables(provider, directions, temperature) -> dict:
    return {"energy": provider.energy(directions),
            "magnetization": directions.mean(axis=0),
            "spin_temperature": provider.spin_temperature(directions),
            "temperature": temperature}


@dataclass
class Replica:
    """One replica on this rank: its spec, system, field provider, state (LLG SpinState or
    MCState), MC sampler (MC runs), trajectory writer and last field σ (eV/μB)."""

    spec: object
    system: object
    provider: object = None
    state: object = None
    sampler: object = None
    writer: object = None
    max_std: float = float("nan")

    def temperature(self, step: int, steps: int) -> float:
        t0, t1 = self.spec.temperature
        return t0 + (t1 - t0) * step / max(steps, 1)


def _mc_sampler(cfg, provider, system, field):
    from otf_spin.dynamics import montecarlo

    calculator = getattr(provider, "calculator", None)
    if hasattr(calculator, "sparse"):                      # a fitted model
        return montecarlo.ModelMonteCarlo(calculator, system, field)
    if cfg["hamiltonian"]["kind"] == "oracle" and \
            not getattr(cfg["hamiltonian"]["oracle"], "slaving", None):
        return montecarlo.HeisenbergMonteCarlo(cfg["hamiltonian"]["oracle"], system, field)
    raise ValueError("integrator mc runs on fixed-moment Heisenberg hamiltonians and "
                     "fitted models")


def _paths(cfg: dict, specs) -> list[tuple[str, str, str | None]]:
    """(key, path, kind) of every file or folder a run writes — kind as
    :func:`otf_spin.io.atomic.file_kind` names it — and, with kind None, of the input
    files that no output may replace."""
    many = len(specs) > 1
    entries = [(f"output.trajectory (replica {s.index})" if many else "output.trajectory",
                s.trajectory, "trajectory") for s in specs]
    if cfg.get("otf"):
        otf = cfg["otf"]
        entries += [("otf.store", otf["store"], "training store"),
                    ("otf.checkpoint", otf["checkpoint"], "checkpoint"),
                    ("otf.save_model", otf["save_model"], "model"),
                    ("otf.model", otf["model"], None),
                    ("otf.model_config", otf["model_config"], None)]
        workdir = getattr(cfg["oracle"], "workdir", None)
        if workdir is not None:
            entries.append(("oracle.workdir", workdir, "folder"))
    elif cfg["hamiltonian"]["kind"] == "model":
        entries.append(("hamiltonian.file", cfg["hamiltonian"]["file"], None))
    entries.append(("system.spins_file", cfg["system"].get("spins_file"), None))
    return [(key, os.fspath(path), kind) for key, path, kind in entries
            if path is not None]


def check_paths(cfg: dict, specs) -> None:
    """Raise ValueError (one line naming the keys) before anything is written if two
    outputs, or an output and an input, are the same path, or if an existing file at an
    output path is of another kind than the run would write there."""
    from otf_spin.io.atomic import check_overwrite, file_kind

    entries = _paths(cfg, specs)
    for key, path, kind in entries:
        if not path.strip():
            raise ValueError(f"{key}: empty path")
    seen = []
    for key, path, kind in entries:
        real = os.path.realpath(path)
        for other_key, other_path, other_real, other_kind in seen:
            same = real == other_real or (os.path.exists(path) and os.path.exists(other_path)
                                          and os.path.samefile(path, other_path))
            if same and (kind or other_kind):
                raise ValueError(f"{other_key} and {key} are the same path ({other_path}); "
                                 "give each its own")
        seen.append((key, path, real, kind))
    for key, path, kind in entries:
        if kind == "folder":
            if file_kind(path) not in (None, "folder"):
                raise ValueError(f"{key}: {path} exists and is not a folder")
        elif kind:
            check_overwrite(path, kind, key)


def _setup_learner(cfg, specs, comm, log, fresh, fingerprint):
    """Collective: the learner and, when resuming, the checkpointed replica states and
    tempering state. ``fingerprint``: the run's input fingerprint
    (:func:`otf_spin.learning.checkpoint.input_fingerprint`)."""
    from otf_spin.learning import checkpoint
    from otf_spin.learning.otf import OnTheFly
    from otf_spin.learning.store import TrainingStore

    otf, dyn = cfg["otf"], cfg["dynamics"]
    root = comm.rank == 0
    input_id = checkpoint.input_id(fingerprint)
    if fresh and root and os.path.exists(otf["checkpoint"]):
        os.remove(otf["checkpoint"])        # check_paths made sure it is a checkpoint
    comm.barrier()
    store = TrainingStore(otf["store"]) if root else None
    ranks_per_job = (cfg.get("replicas") or {}).get("ranks_per_oracle_job", 1)
    if os.path.exists(otf["checkpoint"]):
        saved = checkpoint.read(otf["checkpoint"])
        checkpoint.check_input(otf["checkpoint"], saved.input, fingerprint)
        learner = OnTheFly(otf, cfg["oracle"], store, saved.model, log, comm, ranks_per_job,
                           input_id)
        learner.restore(saved.learner)
        print(f"# resuming from {otf['checkpoint']} at step {saved.states[0].step}", file=log)
        return learner, saved.states, saved.tempering
    model = None
    if otf["model"]:
        from otf_spin.model import load

        model = load(otf["model"])
    learner = OnTheFly(otf, cfg["oracle"], store, model, log, comm, ranks_per_job, input_id)
    learner.initial(build_system(cfg["system"], specs[0].seed),
                    np.random.default_rng([dyn["seed"], 0x0F1]))
    return learner, None, None


def run(cfg: dict, progress: bool = True, log=None, fresh: bool = False,
        monitor=None, comm=None) -> dict:
    """Run a validated run configuration (see :func:`otf_spin.factory.load_run`):
    one replica, or the ``replicas`` ensemble spread over the ranks of ``comm`` (default:
    :func:`otf_spin.parallel.world`). Log lines go to ``log`` (default: standard output)
    on rank 0. On-the-fly runs resume from their checkpoint unless ``fresh``.
    ``monitor(step, state, provider, observables)`` is called at every output step of
    every replica on this rank (benchmarks, analysis)."""
    from otf_spin.parallel import owned, world
    from otf_spin.parallel.replicas import layout

    comm = comm or world()
    root = comm.rank == 0
    log = (log or sys.stdout) if root else open(os.devnull, "w")
    dyn, out = cfg["dynamics"], cfg["output"]
    specs = layout(cfg)
    ensemble = "replicas" in cfg
    steps, is_mc = dyn["steps"], dyn["integrator"] == "mc"
    log_every = out["log_every"] or max(1, steps // 10)
    check_paths(cfg, specs)
    learner, saved, tempering_state, fingerprint = None, None, None, None
    if cfg.get("otf"):
        from otf_spin.learning.checkpoint import input_fingerprint

        fingerprint = input_fingerprint(cfg)
        learner, saved, tempering_state = _setup_learner(cfg, specs, comm, log, fresh,
                                                         fingerprint)
    resume = saved is not None
    integrator = None if is_mc else LLGIntegrator(dyn["integrator"], dyn["timestep"],
                                                  dyn["damping"])
    replicas = []
    for spec in (specs[r] for r in owned(len(specs), comm)):
        rep = Replica(spec, build_system(cfg["system"], spec.seed))
        if learner:
            from otf_spin.dynamics.providers import ComputeProvider

            rep.provider = ComputeProvider(learner.model, rep.system, dyn["field"])
            rep.state = saved[spec.index] if resume else new_state(rep.system.directions,
                                                                   spec.seed)
        else:
            rep.provider = build_provider(cfg["hamiltonian"], rep.system, dyn["field"])
            if is_mc:
                from otf_spin.dynamics import montecarlo

                rep.sampler = _mc_sampler(cfg, rep.provider, rep.system, dyn["field"])
                rep.state = montecarlo.new_state(rep.system, np.random.default_rng(spec.seed))
            else:
                rep.state = new_state(rep.system.directions, spec.seed)
        replicas.append(rep)
    if not is_mc and replicas:          # the step must resolve the precession in B_eff
        from otf_spin.config.run import check_timestep
        from otf_spin.dynamics.llg import field_bound

        check_timestep(dyn, max(field_bound(rep.provider, rep.system) for rep in replicas))
    if learner:
        def refit():
            for rep in replicas:
                rep.provider.calculator = learner.model
                rep.provider._last = (None, None)

        learner.on_refit = refit
    tempering = None
    if ensemble and cfg["replicas"]["exchange_every"]:
        from otf_spin.parallel.tempering import Tempering

        tempering = Tempering([s.temperature[0] for s in specs], dyn["seed"])
        if tempering_state:
            tempering.restore(tempering_state)
    first = saved[0].step if resume else 0
    t0, t1 = dyn["temperature"] if not (ensemble and cfg["replicas"]["temperatures"]) \
        else (specs[0].temperature[0], specs[-1].temperature[0])
    n_atoms = len(replicas[0].system) if replicas else len(build_system(cfg["system"], 0))
    print(f"# otf-spin run: {n_atoms} spins, "
          f"{dyn['integrator']}, {steps} {'sweeps' if is_mc else 'steps'}, T {t0:g}->{t1:g} K"
          + (f", {len(specs)} replicas on {comm.size} rank(s)" if ensemble else "")
          + (f", parallel tempering every {cfg['replicas']['exchange_every']}" if tempering
             else "") + (", on the fly" if learner else ""), file=log)
    print(f"# {'step':>8s} " + ("rep " if ensemble else "")
          + f"{'time/ps':>10s} {'E/eV':>14s} {'|M|':>8s} {'T_spin/K':>9s}"
          + (f" {'maxσ meV/μB':>11s} {'calls':>5s}" if learner else ""), file=log)

    def check(step):
        """Collective: every replica's uncertainty to every rank, then the learner."""
        if step % cfg["otf"]["check_every"]:
            return
        local = []
        for rep in replicas:
            rep.system.directions = rep.state.directions
            rep.max_std, pool = learner.assess(rep.system)
            above = rep.max_std > learner.threshold.value
            local.append((rep.spec.index, rep.max_std,
                          rep.state.directions if above else None, pool))
        reports = sorted((r for part in comm.allgather(local) for r in part),
                         key=lambda r: r[0])
        learner.sync(step, [r[1:] for r in reports], replicas[0].system if replicas
                     else build_system(cfg["system"], specs[0].seed))

    def exchange():
        """Collective: parallel-tempering swaps of configurations between temperatures."""
        energies = dict(r for part in comm.allgather(
            [(rep.spec.index, rep.provider.energy(rep.state.directions)) for rep in replicas])
            for r in part)
        accepted = tempering.swaps([energies[k] for k in range(len(specs))])
        partner = {}
        for i in accepted:
            partner[i], partner[i + 1] = i + 1, i
        wanted = set(partner.values())
        moved = dict(r for part in comm.allgather(
            [(rep.spec.index, rep.state.directions) for rep in replicas
             if rep.spec.index in wanted]) for r in part)
        for rep in replicas:
            if rep.spec.index in partner:
                rep.state.directions = np.array(moved[partner[rep.spec.index]])
                if hasattr(rep.state, "_model_cache"):
                    rep.state._model_cache = None

    def observe(rep, step):
        obs = observables(rep.provider, rep.state.directions, rep.temperature(step, steps))
        if learner:
            obs.update(max_field_std=rep.max_std, oracle_calls=learner.calls,
                       threshold=learner.threshold.value,
                       training_frames=learner.model.n_frames)
        if tempering:
            k = rep.spec.index
            rates = tempering.acceptance()
            obs.update(swap_acceptance=rates[k] if k < len(rates) else float("nan"),
                       walker=tempering.walkers[k])
        return obs

    def record(step):
        for rep in replicas:
            obs = observe(rep, step)
            t = float(step) if is_mc else rep.state.time
            rep.writer.write(step, t, rep.state.directions if step % out["every"] == 0
                             else None, obs)
            if monitor:
                monitor(step, rep.state, rep.provider, obs)

    def log_lines(step):
        lines = comm.gather([(rep.spec.index, step if is_mc else rep.state.time,
                              observe(rep, step)) for rep in replicas], root=0)
        if not root:
            return
        for index, t, obs in sorted((r for part in lines for r in part), key=lambda r: r[0]):
            extra = (f" {_finite(1e3 * obs['max_field_std'], 11, 3)} {obs['oracle_calls']:5d}"
                     if learner else "")
            print(f"  {step:8d} " + (f"{index:3d} " if ensemble else "")
                  + f"{t:10.4f} {obs['energy']:14.6f} "
                  f"{np.linalg.norm(obs['magnetization']):8.5f} "
                  f"{_finite(obs['spin_temperature'], 9, 2)}{extra}", file=log, flush=True)
        if tempering:
            rates = " ".join(f"{r:.3f}" for r in tempering.acceptance())
            print(f"# swap acceptance (T_i, T_i+1): {rates}", file=log, flush=True)

    def save_checkpoint():
        from otf_spin.learning import checkpoint

        states = comm.gather({rep.spec.index: rep.state for rep in replicas}, root=0)
        if root:
            checkpoint.write(cfg["otf"]["checkpoint"], {k: v for part in states
                                                       for k, v in part.items()},
                             learner, len(learner.store), tempering, fingerprint)
        comm.barrier()

    spent = {"checks": 0.0, "output": 0.0}      # s: uncertainty checks (with labels and
    before = (learner.oracle_time, learner.refit_time) if learner else (0.0, 0.0)  # refits)

    def timed(kind, fn, *args):
        t = time.perf_counter()
        fn(*args)
        spent[kind] += time.perf_counter() - t

    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        for rep in replicas:
            rep.writer = stack.enter_context(H5MDWriter(
                rep.spec.trajectory, rep.system, "MC sweep" if is_mc else "ps", out["spins"],
                resume_step=first if resume else None))
        if not resume:
            if learner:
                timed("checks", check, 0)
            timed("output", record, 0)
        for step in progress_bar(range(first + 1, steps + 1), "run",
                                 enabled=progress and root):
            if learner and step > 1:
                timed("checks", check, step - 1)
            for rep in replicas:
                T = rep.temperature(step - 1, steps)
                if is_mc:
                    rep.sampler.sweep(rep.state, T)
                else:
                    integrator.step(rep.state, rep.provider, T)
            kill_point("step")
            if tempering and step % cfg["replicas"]["exchange_every"] == 0:
                exchange()
            if step % out["every"] == 0 or step == steps:
                timed("output", record, step)
            if step % log_every == 0 or step == steps:
                timed("output", log_lines, step)
            if learner and (step % cfg["otf"]["checkpoint_every"] == 0 or step == steps):
                timed("output", save_checkpoint)
    elapsed = time.perf_counter() - start
    n_spins = sum(len(rep.system) for rep in replicas)
    updates = sum(comm.allgather(n_spins * (steps - first)))
    rate = updates / elapsed if elapsed > 0 else float("nan")
    where = out["trajectory"] if not ensemble else \
        f"{specs[0].trajectory} ... {specs[-1].trajectory}"
    split = ""
    if learner:     # the learner's parts apart from the dynamics (this run's steps)
        oracle, refits = (now - then for now, then in
                          zip((learner.oracle_time, learner.refit_time), before))
        split = (f" (dynamics {elapsed - spent['checks'] - spent['output']:.2f} s, "
                 f"uncertainty checks {spent['checks'] - oracle - refits:.2f} s, oracle "
                 f"{oracle:.2f} s, refits {refits:.2f} s, output and checkpoints "
                 f"{spent['output']:.2f} s)")
    print(f"# done: {elapsed:.2f} s{split}, {rate:.3g} spin-updates/s -> {where}", file=log)
    if learner:
        kill_point("done")
        if root:
            storage.save(learner.model, cfg["otf"]["save_model"])
        print(f"# on the fly: {learner.calls} labels ({learner.reused} reused from the store), "
              f"{learner.failures} failed jobs, oracle time {learner.oracle_time:.1f} s, fit and "
              f"refit time {learner.refit_time:.1f} s, model "
              f"-> {cfg['otf']['save_model']}", file=log)
    results = [{"spec": rep.spec, "state": rep.state, "system": rep.system,
                "final": observables(rep.provider, rep.state.directions,
                                     rep.temperature(steps, steps))} for rep in replicas]
    head = results[0] if results else {}
    return {"system": head.get("system"), "state": head.get("state"), "elapsed": elapsed,
            "learner": learner, "final": head.get("final"), "replicas": results,
            "tempering": tempering}
