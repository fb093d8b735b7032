"""The run: YAML settings -> system -> provider -> propagator -> observers (H5MD, log).

:func:`run` builds the replicas of this rank (system, field provider, propagator, state),
the observers (on-the-fly learner, parallel tempering, trajectory writer, logger,
checkpointer) and hands them to the driver (:func:`otf_spin.driver.drive`). Propagators
are pure steps over a state, providers know nothing of files, writers nothing of physics.
"""
from __future__ import annotations

import contextlib
import os
import time

import numpy as np

from otf_spin.config.run import check_timestep
from otf_spin.driver import Observer, Replica, Session, drive
from otf_spin.dynamics import montecarlo
from otf_spin.dynamics.llg import LLGIntegrator
from otf_spin.dynamics.providers import make_provider
from otf_spin.io.atomic import check_outputs, kill_point
from otf_spin.io.extxyz import directions_from_file
from otf_spin.io.h5md import H5MDWriter
from otf_spin.learning import checkpoint
from otf_spin.learning.checkpoint import input_fingerprint
from otf_spin.learning.otf import OnTheFly
from otf_spin.learning.store import TrainingStore, spool_folder
from otf_spin.model.domain import extrapolation_warning
from otf_spin.model import load, storage
from otf_spin.parallel import owned
from otf_spin.parallel.replicas import layout
from otf_spin.parallel.tempering import Tempering
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
    if hamiltonian["kind"] == "model":
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
        workdir = cfg["oracle"].workdir
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
    output path is of another kind than the run would write there
    (:func:`otf_spin.io.atomic.check_outputs`)."""
    check_outputs(_paths(cfg, specs))


def _setup_learner(cfg, specs, comm, log, fresh, fingerprint, reached):
    """Collective: the learner and, when resuming, the checkpointed replica states and
    tempering state. ``fingerprint``: the run's input fingerprint
    (:func:`otf_spin.learning.checkpoint.input_fingerprint`); ``reached`` (the run's
    progress, :func:`interrupt_hint`) gets the learner before the initial labels."""
    otf, dyn = cfg["otf"], cfg["dynamics"]
    root = comm.rank == 0
    input_id = checkpoint.input_id(fingerprint)
    store = TrainingStore(otf["store"]) if root else None
    other = comm.bcast(store.other_oracle(cfg["oracle"].settings()) if root else None)
    if other:                               # before --fresh deletes anything
        raise ValueError(f"otf.store: {other}")
    if fresh and root and os.path.exists(otf["checkpoint"]):
        os.remove(otf["checkpoint"])        # check_paths made sure it is a checkpoint
    comm.barrier()
    ranks_per_job = (cfg.get("replicas") or {}).get("ranks_per_oracle_job", 1)
    if os.path.exists(otf["checkpoint"]):
        saved = checkpoint.read(otf["checkpoint"])
        checkpoint.check_input(otf["checkpoint"], saved.input, fingerprint)
        learner = OnTheFly(otf, cfg["oracle"], store, saved.model, log, comm, ranks_per_job,
                           input_id)
        learner.restore(saved.learner)
        step = saved.states[0].step
        reached.update(learner=learner, checkpointed=step)
        done = " — the run is complete: nothing left to do (--fresh starts over)" \
            if step >= dyn["steps"] else ""
        print(f"# resuming from {otf['checkpoint']} at step {step}{done}", file=log)
        return learner, saved.states, saved.tempering
    system = build_system(cfg["system"], specs[0].seed)
    model = None
    if otf["model"]:
        model = load(otf["model"])
        try:
            model.check_species(system)     # before any label or output
        except ValueError as exc:
            raise ValueError(f"otf.model: {exc}") from None
    learner = OnTheFly(otf, cfg["oracle"], store, model, log, comm, ranks_per_job, input_id)
    reached["learner"] = learner
    learner.initial(system, np.random.default_rng([dyn["seed"], 0x0F1]))
    return learner, None, None


# --- observers ---------------------------------------------------------------------------
class Observation:
    """The observables of a replica at a step (:func:`observables`, plus the learner's and
    the tempering's when there are): what the writer records and the logger prints."""

    def __init__(self, steps: int, learner=None, tempering=None):
        self.steps, self.learner, self.tempering = steps, learner, tempering

    def __call__(self, rep, step: int) -> dict:
        obs = observables(rep.provider, rep.state.directions, rep.temperature(step, self.steps))
        if self.learner:
            obs.update(max_field_std=rep.max_std, oracle_calls=self.learner.calls,
                       threshold=self.learner.threshold.value,
                       training_frames=self.learner.model.n_frames)
        if self.tempering:
            k = rep.spec.index
            rates = self.tempering.acceptance()
            obs.update(swap_acceptance=rates[k] if k < len(rates) else float("nan"),
                       walker=self.tempering.walkers[k])
        return obs


class LearnerCheck(Observer):
    """Collective, before a step, every ``check_every`` steps: the σ of the prediction each
    replica's provider makes for that step (:meth:`ComputeProvider.compute
    <otf_spin.dynamics.providers.ComputeProvider.compute>` with the learner's
    properties) to every rank, then the learner labels and refits if it must; a refit
    model goes to every provider."""

    before_step = True
    timing = "checks"

    def __init__(self, learner, session, replicas, check_every: int, structure):
        self.learner, self.comm, self.replicas = learner, session.comm, replicas
        self.every, self.structure = check_every, structure

    def notify(self, step: int) -> None:
        if step % self.every:
            return
        local = []
        for rep in self.replicas:
            results = rep.provider.compute(rep.state.directions, self.learner.properties)
            rep.max_std, pool = self.learner.assess(results)
            above = rep.max_std > self.learner.threshold.value
            local.append((rep.spec.index, rep.max_std,
                          rep.state.directions if above else None, pool))
        reports = sorted((r for part in self.comm.allgather(local) for r in part),
                         key=lambda r: r[0])
        if self.learner.sync(step, [r[1:] for r in reports], self.structure):
            for rep in self.replicas:
                rep.provider.set_calculator(self.learner.model)


class TemperingExchange(Observer):
    """Collective, every ``exchange_every`` steps: parallel-tempering swaps of
    configurations between neighbouring temperatures (:mod:`otf_spin.parallel.tempering`)."""

    def __init__(self, tempering, session, replicas, n_replicas: int, every: int):
        self.tempering, self.comm, self.replicas = tempering, session.comm, replicas
        self.n, self.every = n_replicas, every

    def notify(self, step: int) -> None:
        if step == 0 or step % self.every:
            return
        comm = self.comm
        energies = dict(r for part in comm.allgather(
            [(rep.spec.index, rep.provider.energy(rep.state.directions))
             for rep in self.replicas]) for r in part)
        accepted = self.tempering.swaps([energies[k] for k in range(self.n)])
        partner = {}
        for i in accepted:
            partner[i], partner[i + 1] = i + 1, i
        wanted = set(partner.values())
        moved = dict(r for part in comm.allgather(
            [(rep.spec.index, rep.state.directions) for rep in self.replicas
             if rep.spec.index in wanted]) for r in part)
        for rep in self.replicas:
            if rep.spec.index in partner:        # a new array: samplers recompute what
                rep.state.directions = np.array(moved[partner[rep.spec.index]])  # they kept


class TrajectoryWriter(Observer):
    """Every ``every`` steps and at the last: each replica's observables (and spins, on
    the ``every`` steps) to its H5MD file; ``monitor(step, state, provider, obs)`` too."""

    timing = "output"

    def __init__(self, replicas, observe, every: int, steps: int, monitor=None):
        self.replicas, self.observe, self.every, self.steps = replicas, observe, every, steps
        self.monitor = monitor

    def notify(self, step: int) -> None:
        if step % self.every and step != self.steps:
            return
        for rep in self.replicas:
            obs = self.observe(rep, step)
            rep.writer.write(step, rep.time(), rep.state.directions if step % self.every == 0
                             else None, obs)
            if self.monitor:
                self.monitor(step, rep.state, rep.provider, obs)


class Logger(Observer):
    """Collective, every ``every`` steps and at the last: one log line per replica (rank 0
    prints them in replica order) and the swap acceptance."""

    timing = "output"

    def __init__(self, session, replicas, observe, every: int, steps: int, ensemble: bool,
                 learner=None, tempering=None, time_label: str = "time/ps"):
        self.session, self.replicas, self.observe = session, replicas, observe
        self.time_label = time_label        # the time column's heading (MC: sweeps)
        self.every, self.steps, self.ensemble = every, steps, ensemble
        self.learner, self.tempering = learner, tempering

    def header(self) -> str:
        return (f"# {'step':>8s} " + ("rep " if self.ensemble else "")
                + f"{self.time_label:>10s} {'E/eV':>14s} {'|M|':>8s} {'T_spin/K':>9s}"
                + (f" {'maxσ meV/μB':>11s} {'calls':>5s}" if self.learner else ""))

    def notify(self, step: int) -> None:
        if step == 0 or (step % self.every and step != self.steps):
            return
        log = self.session.log
        lines = self.session.comm.gather([(rep.spec.index, rep.time(), self.observe(rep, step))
                                          for rep in self.replicas], root=0)
        if not self.session.root:
            return
        for index, t, obs in sorted((r for part in lines for r in part), key=lambda r: r[0]):
            extra = (f" {_finite(1e3 * obs['max_field_std'], 11, 3)} {obs['oracle_calls']:5d}"
                     if self.learner else "")
            print(f"  {step:8d} " + (f"{index:3d} " if self.ensemble else "")
                  + f"{t:10.4f} {obs['energy']:14.6f} "
                  f"{np.linalg.norm(obs['magnetization']):8.5f} "
                  f"{_finite(obs['spin_temperature'], 9, 2)}{extra}", file=log, flush=True)
        if self.tempering:
            rates = " ".join(f"{r:.3f}" for r in self.tempering.acceptance())
            print(f"# swap acceptance (T_i, T_i+1): {rates}", file=log, flush=True)


class Checkpointer(Observer):
    """Collective, every ``every`` steps and at the last: every replica state, the learner,
    the tempering and the input fingerprint to the checkpoint (rank 0, atomically), after
    each replica's trajectory writer flushed its buffered frames (a restart cuts the
    trajectory back to the checkpointed step, so every frame up to it must be there)."""

    timing = "output"

    def __init__(self, session, replicas, path, every: int, steps: int, learner,
                 tempering, fingerprint, reached):
        self.session, self.replicas, self.path, self.reached = session, replicas, path, reached
        self.every, self.steps = every, steps
        self.learner, self.tempering, self.fingerprint = learner, tempering, fingerprint

    def notify(self, step: int) -> None:
        if step == 0 or (step % self.every and step != self.steps):
            return

        for rep in self.replicas:   # every frame up to the checkpointed step is in the file
            rep.writer.flush()
        comm = self.session.comm
        states = comm.gather({rep.spec.index: rep.state for rep in self.replicas}, root=0)
        if self.session.root:
            checkpoint.write(self.path, {k: v for part in states for k, v in part.items()},
                             self.learner, len(self.learner.store), self.tempering,
                             self.fingerprint)
        comm.barrier()
        self.reached["checkpointed"] = step


# --- the run -----------------------------------------------------------------------------
def build_replicas(cfg: dict, specs, comm, learner=None, saved=None) -> list:
    """The replicas of this rank: system, provider (the learner's model in on-the-fly
    runs), propagator (one LLG integrator shared by all, or each replica's Metropolis
    sampler) and state (fresh, or ``saved[index]`` when resuming)."""
    dyn = cfg["dynamics"]
    integrator = None if dyn["integrator"] == "mc" else \
        LLGIntegrator(dyn["integrator"], dyn["timestep"], dyn["damping"])
    replicas = []
    for spec in (specs[r] for r in owned(len(specs), comm)):
        rep = Replica(spec, build_system(cfg["system"], spec.seed))
        rep.provider = make_provider(learner.model, rep.system, dyn["field"]) if learner \
            else build_provider(cfg["hamiltonian"], rep.system, dyn["field"])
        rep.propagator = integrator or montecarlo.sampler(rep.provider.calculator,
                                                          rep.system, dyn["field"])
        rep.state = saved[spec.index] if saved is not None else \
            rep.propagator.init(rep.system, spec.seed)
        replicas.append(rep)
    return replicas


def interrupt_hint(cfg: dict, reached: dict) -> str:
    """One line on what an interrupted run (Ctrl-C, SIGTERM) leaves and how to go on;
    ``reached``: the run's progress (``learner``, ``checkpointed``: the step of the last
    checkpoint written or resumed from)."""
    if not cfg.get("otf"):
        return (f"plain runs keep no checkpoint: the same command starts over and replaces "
                f"{cfg['output']['trajectory']}")
    otf, learner = cfg["otf"], reached.get("learner")
    store = getattr(learner, "store", None)
    labels = f"{len(store)} labels kept in {otf['store']}" if store is not None else \
        f"labels kept in {otf['store']}"
    spool = spool_folder(otf["store"])
    spooled = sum(not name.startswith(".") for name in os.listdir(spool)) \
        if os.path.isdir(spool) else 0
    if spooled:                             # (MPI: other groups' labels, not yet gathered)
        labels += f" and {spooled} in {spool}"
    if reached.get("checkpointed") is None:
        return f"no checkpoint yet; {labels}: the same command starts again and reuses them"
    return (f"{labels}; the same command resumes from the checkpoint {otf['checkpoint']} "
            f"(step {reached['checkpointed']})")


def run(cfg: dict, progress: bool = True, log=None, fresh: bool = False,
        monitor=None, comm=None) -> dict:
    """Run a validated run configuration (see :func:`otf_spin.factory.load_run`):
    one replica, or the ``replicas`` ensemble spread over the ranks of ``comm`` (default:
    :func:`otf_spin.parallel.world`). Log lines go to ``log`` (default: standard output)
    on rank 0. On-the-fly runs resume from their checkpoint unless ``fresh``.
    ``monitor(step, state, provider, observables)`` is called at every output step of
    every replica on this rank (benchmarks, analysis). A KeyboardInterrupt (Ctrl-C; the
    command line turns SIGTERM into one) comes out with :func:`interrupt_hint` as its
    message."""
    reached = {}
    try:
        return run_configuration(cfg, progress, log, fresh, monitor, comm, reached)
    except KeyboardInterrupt as exc:
        exc.args = (interrupt_hint(cfg, reached),)
        raise


def run_configuration(cfg, progress, log, fresh, monitor, comm, reached) -> dict:
    """:func:`run`, with its progress in ``reached`` (:func:`interrupt_hint`)."""
    session = Session.open(comm, log)
    comm, root, log = session.comm, session.root, session.log
    dyn, out = cfg["dynamics"], cfg["output"]
    specs = layout(cfg)
    ensemble = "replicas" in cfg
    steps, is_mc = dyn["steps"], dyn["integrator"] == "mc"
    # rank 0 checks and tells the others: a rank checking on its own could find a
    # trajectory that rank 0 has begun to write (and not yet marked as one)
    problem = None
    if root:
        try:
            check_paths(cfg, specs)
        except ValueError as exc:
            problem = str(exc)
    problem = comm.bcast(problem)
    if problem:
        raise ValueError(problem)
    learner, saved, tempering_state, fingerprint = None, None, None, None
    if cfg.get("otf"):
        fingerprint = input_fingerprint(cfg)
        learner, saved, tempering_state = _setup_learner(cfg, specs, comm, log, fresh,
                                                         fingerprint, reached)
    resume = saved is not None
    replicas = build_replicas(cfg, specs, comm, learner, saved)
    model = replicas[0].provider.calculator if replicas and \
        cfg.get("hamiltonian", {}).get("kind") == "model" else None   # a fitted model file
    if model is not None:
        model.check_species(replicas[0].system)     # before any output
    if not is_mc and replicas:          # the step must resolve the precession in B_eff

        check_timestep(dyn, max(rep.provider.field_bound() for rep in replicas))
    tempering = None
    if ensemble and cfg["replicas"]["exchange_every"]:
        tempering = Tempering([s.temperature[0] for s in specs], dyn["seed"])
        if tempering_state:
            tempering.restore(tempering_state)
    first = saved[0].step if resume else 0
    t0, t1 = dyn["temperature"] if not (ensemble and cfg["replicas"]["temperatures"]) \
        else (specs[0].temperature[0], specs[-1].temperature[0])
    structure = replicas[0].system if replicas else build_system(cfg["system"],
                                                                  specs[0].seed)
    observe = Observation(steps, learner, tempering)
    logger = Logger(session, replicas, observe, out["log_every"] or max(1, steps // 10),
                    steps, ensemble, learner, tempering, "sweeps" if is_mc else "time/ps")
    observers = []
    if learner:
        observers.append(LearnerCheck(learner, session, replicas, cfg["otf"]["check_every"],
                                      structure))
    if tempering:
        observers.append(TemperingExchange(tempering, session, replicas, len(specs),
                                           cfg["replicas"]["exchange_every"]))
    observers += [TrajectoryWriter(replicas, observe, out["every"], steps, monitor), logger]
    if learner:
        observers.append(Checkpointer(session, replicas, cfg["otf"]["checkpoint"],
                                      cfg["otf"]["checkpoint_every"], steps, learner,
                                      tempering, fingerprint, reached))
    print(f"# otf-spin run: {len(structure)} spins, "
          f"{dyn['integrator']}, {steps} {'sweeps' if is_mc else 'steps'}, "
          f"T {t0:g}{f'->{t1:g}' if t1 != t0 else ''} K"
          + (f", {len(specs)} replicas on {comm.size} rank(s)" if ensemble else "")
          + (f", parallel tempering every {cfg['replicas']['exchange_every']}" if tempering
             else "") + (", on the fly" if learner else ""), file=log)
    if model is not None and root:
        phrase = model.domain().outside(structure)
        if phrase:
            print(f"# warning: {extrapolation_warning('the structure lies', phrase)}",
                  file=log)
    if not resume:
        for rep in replicas:
            if os.path.exists(rep.spec.trajectory):  # (check_paths: it is a trajectory)
                print(f"# replacing the earlier trajectory {rep.spec.trajectory}", file=log)
    print(logger.header(), file=log)

    before = (learner.oracle_time, learner.refit_time) if learner else (0.0, 0.0)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        for rep in replicas:
            rep.writer = stack.enter_context(H5MDWriter(
                rep.spec.trajectory, rep.system, rep.propagator.time_unit, out["spins"],
                resume_step=first if resume else None))
        spent = drive(replicas, observers, first, steps, initial=not resume,
                      progress=progress and root)
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
        checks, output = spent.get("checks", 0.0), spent.get("output", 0.0)
        split = (f" ({'rank 0: ' if comm.size > 1 else ''}"     # (its waits at the
                 f"dynamics {elapsed - checks - output:.2f} s, "     # collectives included)
                 f"uncertainty checks {checks - oracle - refits:.2f} s, oracle "
                 f"{oracle:.2f} s, refits {refits:.2f} s, output and checkpoints "
                 f"{output:.2f} s)")
    print(f"# done: {elapsed:.2f} s{split}, {rate:.3g} spin-updates/s -> {where}", file=log)
    if learner:
        kill_point("done")
        if learner.finish():
            print("# final model: fitted from scratch on all labels, descriptor terms "
                  f"chosen again ({learner.model.n_frames} frames)", file=log)
        if root:
            storage.save(learner.model, cfg["otf"]["save_model"])
        print(f"# on the fly: {learner.calls} labels ({learner.reused} reused from the store), "
              f"{learner.failures} failed jobs; oracle {learner.oracle_time:.1f} s and fits "
              f"{learner.refit_time:.1f} s in all (initial labels and earlier runs of this "
              f"input included), model -> {cfg['otf']['save_model']}", file=log)
        if learner.skipped:
            jobs = getattr(cfg["oracle"], "workdir", None)
            print(f"# warning: the oracle failed on {learner.skipped} of "
                  f"{learner.calls + learner.skipped} configurations after "
                  f"{cfg['otf']['retries']} retries each; the model was not refitted on them "
                  f"(reasons in the log above{f', job folders in {jobs}' if jobs else ''})",
                  file=log)
    results = [{"spec": rep.spec, "state": rep.state, "system": rep.system,
                "final": observables(rep.provider, rep.state.directions,
                                     rep.temperature(steps, steps))} for rep in replicas]
    head = results[0] if results else {}
    return {"system": head.get("system"), "state": head.get("state"), "elapsed": elapsed,
            "learner": learner, "final": head.get("final"), "replicas": results,
            "tempering": tempering}
