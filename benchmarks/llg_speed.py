"""Spin-updates per second of the LLG integrators (and MC), against Spirit in the same run.

    python benchmarks/llg_speed.py [--cells 20] [--steps 200] [--threads 1 2] [--no-spirit]
                                   [--ml-steps 10 [--ml-reference] [--ml-only [--ml-small-only]]
                                    [--ml-angle-only | --ml-spline-only] [--ml-small-repeats 7]
                                    [--thread-pairs K] [--alternate K]
                                    [--ceiling K [--ceiling-only]]]

The benchmark: bcc Fe, 20×20×20 conventional cells (16 000 spins), J1 + J2
(19.48, 11.09 meV, double counted), 300 K, α = 0.1, dt = 1 fs. One spin update = one
spin advanced by one time step (two field evaluations for every scheme here). Spirit
2.2.0 is installed into benchmarks/.spirit-venv (PyPI) and timed by
benchmarks/spirit_harness.py with the same settings and one thread (SIB); the ratio is
printed. With --ml-steps the GAP-SOSO provider is timed too (its compiled path, and with
--ml-reference the model.predict path), at the paper's settings (r_c 7 Å, n_max 12,
l_max 6, ζ = 4, 150 sparse points), with the defaults of `otf-spin train` (n_max 20),
both exchange-2b only, and with what `otf-spin train` fits on the 300 K set (the term
selection adds the angle exchange term: "defaults + angle"; --ml-angle-only: that model
alone): spin-updates/s per thread count, setup time of the structure, seconds per step
in each stage, engine memory per atom, and on 16 and 54 atoms the ML step against the
compiled Heisenberg step (timed in turn with it, block by block: the ratio does not mix
minutes of a drifting machine). --ml-spline-only: instead, what `otf-spin train` fits on the
displaced set c1 (displaced_0.07: the selection adds the B-spline exchange term,
"2b + spline"; the defaults otherwise), timed on a lattice displaced as those frames
(Eq. 42: lengths |N(0, 0.07²)| Å, random directions; every pair distance differs) and
on the perfect lattice,
and exchange-2b alone fitted on the same frames, on the displaced lattice.
--alternate K: the two-thread ratio from K rounds of a one-thread and a two-thread window
in turn in one process (the ratio of neighbouring windows, and of the best windows).
--ceiling K: what the machine allows two threads (two one-thread copies pinned to their
own CPUs at once against one alone) beside the two-thread ratio, in K rounds.
"""
from __future__ import annotations

import argparse
import json
import statistics
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


ML_CODE = """
import json, os, sys, time, warnings, numpy as np
if {cpu} is not None:
    os.sched_setaffinity(0, {{{cpu}}})      # the ceiling's copies: one CPU each
from otf_spin.kernels import refuse_twins
refuse_twins({allow_twins})
from otf_spin.dynamics.llg import LLGIntegrator, new_state
from otf_spin.dynamics.providers import ComputeProvider, HeisenbergProvider
from otf_spin.learning.paper_sets import displacements
from otf_spin.model import load
from otf_spin.oracles.heisenberg import HeisenbergOracle, ShellExchange
from otf_spin.system import bulk, random_cone
from otf_spin.units import MEV
warnings.simplefilter("ignore")
model = load({model!r})
a = 2.83
system = bulk("bcc", a, ({cells},) * 3, moment=2.2)
system.positions += displacements(len(system), {displaced}, np.random.default_rng(7))
system.set_directions(random_cone(len(system), [0, 0, 1], 0.5, np.random.default_rng(1)))
stages = dict(descriptor=0.0, kernel=0.0, gradient=0.0, field=0.0)
if {reference}:
    # the reference path (model.predict per evaluation), its stages timed by wrappers
    from otf_spin.model.covariance import DotProductKernel
    def timed(cls, name, stage):
        inner = getattr(cls, name)
        def wrapper(*args, **kwargs):
            t0 = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                stages[stage] += time.process_time() - t0
        setattr(cls, name, wrapper)
    for name, stage in (("compute", "descriptor"), ("compute_fm", "descriptor"),
                        ("spin_gradient", "field")):
        timed(type(model.descriptor), name, stage)
    timed(DotProductKernel, "__call__", "kernel")
    timed(DotProductKernel, "weighted_gradient", "gradient")
    provider = ComputeProvider(model, system)
    provider._engine = lambda: None
else:
    provider = ComputeProvider(model, system)
t0 = time.process_time()
engine = provider._engine()
setup = time.process_time() - t0
integrator = LLGIntegrator("depondt", 1e-3, 0.1)
state = new_state(system.directions, 1)
integrator.step(state, provider, 300.0)
heisenberg = ratios = None
if {heisenberg}:
    # the compiled Heisenberg step on the same cell, timed in turn with the ML step
    # (each repeat: the ML block, then the Heisenberg block): the ratio is taken between
    # neighbouring blocks, not between minutes apart on a machine whose speed drifts
    oracle = HeisenbergOracle(ShellExchange([a * 3**0.5 / 2, a], [19.48 * MEV, 11.09 * MEV],
                                            0.05), "double_counted")
    hp = HeisenbergProvider(oracle, system)
    hstate = new_state(system.directions, 1)
    integrator.step(hstate, hp, 300.0)
    heisenberg, ratios = float("inf"), []
if engine is not None:
    # timed with the engine's default stage clock (wall, clock_gettime through the vDSO:
    # ~20 ns a call); the CPU-time profile below is a separate pass, because its clock is
    # a system call (~0.5 µs, ~10 per evaluation: 5-10 % of a 54-atom step)
    engine.reset_profile(cpu=False)
for k in stages:
    stages[k] = 0.0
if {barrier}:
    # the ceiling's concurrent copies: set up, then start timing together
    print("ready", flush=True)
    sys.stdin.readline()
if {alternate}:
    # --alternate: in this one process, rounds of one window per thread count in turn
    # (OpenMP's omp_set_num_threads between windows; the engine's buffers were made for
    # the most, OMP_NUM_THREADS): neighbouring windows see the same machine
    import ctypes
    gomp = next((ctypes.CDLL(line.split()[-1]) for line in open("/proc/self/maps")
                 if "libgomp" in line), None)
    if gomp is None:
        raise SystemExit("--alternate needs the GNU OpenMP runtime (libgomp) loaded")
    rounds = []
    for _ in range({alternate}):
        row = []
        for nt in {alt_threads}:
            gomp.omp_set_num_threads(nt)
            integrator.step(state, provider, 300.0)     # the team of nt threads started
            start = time.perf_counter()
            for _ in range({steps}):
                integrator.step(state, provider, 300.0)
            row.append((time.perf_counter() - start) / {steps})
        rounds.append(row)
    print(json.dumps(dict(alternate=rounds, n=len(system))))
    sys.exit(0)
best = cpu = float("inf")
for _ in range({repeats}):
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range({steps}):
        integrator.step(state, provider, 300.0)
    best = min(best, time.perf_counter() - start)
    block = time.process_time() - start_cpu
    cpu = min(cpu, block)
    if {heisenberg}:
        start = time.process_time()
        for _ in range({steps}):
            integrator.step(hstate, hp, 300.0)
        h = time.process_time() - start
        heisenberg = min(heisenberg, h / {steps})
        ratios.append(block / h)
step = best / {steps}
stages_wall = step_wall = None
if engine is not None:
    # wall seconds per stage (the stages' speed-up with threads), then CPU seconds
    engine.reset_profile(cpu=False)
    start = time.perf_counter()
    for _ in range({steps}):
        integrator.step(state, provider, 300.0)
    step_wall = (time.perf_counter() - start) / {steps}
    profile = engine.profile
    stages_wall = {{k: profile[k] / profile["calls"] * 2 for k in stages}}
    engine.reset_profile(cpu=True)
    for _ in range({steps}):
        integrator.step(state, provider, 300.0)
    profile = engine.profile
    stages = {{k: profile[k] / profile["calls"] * 2 for k in stages}}
else:
    stages = {{k: v / ({steps} * {repeats}) for k, v in stages.items()}}
print(json.dumps(dict(rate=len(system) / step, step=step, setup=setup, stages=stages,
                      stages_wall=stages_wall, step_wall=step_wall,
                      step_cpu=cpu / {steps},
                      rate_cpu=len(system) * {steps} / cpu,
                      bytes_per_atom=None if engine is None else engine.nbytes / len(system),
                      heisenberg_step=heisenberg,
                      ratio_median=None if ratios is None else float(np.median(ratios)))))
"""


def ml_speed(model_file: str, cells: int, steps: int, threads: int, reference: bool = False,
             heisenberg: bool = False, repeats: int = 2, allow_twins: bool = False,
             displaced: float = 0.0) -> dict:
    """Depondt LLG on the GAP-SOSO provider in a subprocess with OMP_NUM_THREADS:
    spin-updates/s, step and setup time (s), per-stage seconds per step, engine bytes
    per atom; ``reference``: the model.predict path instead of the compiled one;
    ``heisenberg``: also the compiled Heisenberg step (s) on the same cell;
    ``displaced``: σ (Å) of the atoms' displacements (paper_sets.displacements, Eq. 42
    law, fixed seed)."""
    return run_timing(ml_code(model_file, cells, steps, reference=reference,
                              heisenberg=heisenberg, repeats=repeats,
                              allow_twins=allow_twins, displaced=displaced), threads)


def run_timing(code: str, threads: int) -> dict:
    """The JSON of the last output line of the timing program ``code`` (:func:`ml_code`)
    run in a subprocess with OMP_NUM_THREADS = ``threads``; SystemExit with its last
    error line if it fails."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit((out.stderr.strip().splitlines() or ["timing run failed"])[-1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def ml_code(model_file: str, cells: int, steps: int, reference: bool = False,
            heisenberg: bool = False, repeats: int = 2, allow_twins: bool = False,
            displaced: float = 0.0, cpu: int | None = None, barrier: bool = False,
            alternate: int = 0, alt_threads: tuple = (1, 2)) -> str:
    """The timing program of :func:`ml_speed`; ``cpu``: pinned to that CPU
    (os.sched_setaffinity); ``barrier``: after the setup it prints "ready" and waits for
    a line on its standard input before timing; ``alternate``: instead, that many rounds
    of one window of ``steps`` steps per thread count of ``alt_threads`` in turn, in this
    process (prints {{"alternate": [[s per step, …] per round]}})."""
    return ML_CODE.format(model=model_file, cells=cells, steps=steps, reference=reference,
                          heisenberg=heisenberg, repeats=repeats, allow_twins=allow_twins,
                          displaced=displaced, cpu=cpu, barrier=barrier, alternate=alternate,
                          alt_threads=tuple(alt_threads))


def ml_copies(model_file: str, cells: int, steps: int, cpus, allow_twins: bool = False,
              displaced: float = 0.0) -> list:
    """Spin-update rates of one-thread copies of the ML LLG run, one per CPU in
    ``cpus``, each pinned to its CPU, set up apart and then timed at the same moment
    (a line on their standard input starts them all)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c",
                               ml_code(model_file, cells, steps, allow_twins=allow_twins,
                                       displaced=displaced, cpu=cpu, barrier=True)],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for cpu in cpus]
    for p in procs:
        line = p.stdout.readline()
        if line.strip() != "ready":
            raise SystemExit("ceiling copy failed: " + (p.stderr.read().strip().splitlines()
                                                        or ["no output"])[-1])
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    rates = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode:
            raise SystemExit((err.strip().splitlines() or ["timing run failed"])[-1])
        rates.append(json.loads(out.strip().splitlines()[-1])["rate"])
    return rates


def dgemm_rate() -> float:
    """One-thread dgemm rate (GFMA/s) of the polynomial kernel's product at 16 000 atoms
    and the paper's settings: how busy the machine is while the ML rows were timed."""
    code = ("import numpy as np, time\n"
            "a, b = np.random.rand(16000, 84), np.random.rand(150, 84)\n"
            "c = np.empty((16000, 150)); best = 1e9\n"
            "for _ in range(5):\n"
            "    t = time.perf_counter(); np.matmul(a, b.T, out=c)\n"
            "    best = min(best, time.perf_counter() - t)\n"
            "print(16000 * 84 * 150 / best / 1e9)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"), check=True)
    return float(out.stdout.strip())


ANGLE_LABEL = "defaults + angle"
SPLINE_LABEL = "2b + spline"
#: σ (Å, Eq. 42 lengths) of the displaced lattices the spline rows run on: the set c1's
SPLINE_DISPLACED = 0.07


def spline_models(folder: str) -> dict:
    """label -> (model file, displacement σ in Å) of the --ml-spline-only rows: what
    `otf-spin train` fits on the displaced set c1 (displaced_0.07, seed 2024: the term
    selection adds the spline term; SystemExit if it chose otherwise) on displaced and
    perfect lattices, and exchange-2b alone (the defaults, no selection) fitted on the
    same frames, on the displaced lattice."""
    import warnings

    from otf_spin.learning.paper_sets import generate_set
    from otf_spin.model import build_model, default_settings, save
    from otf_spin.model.fast import supports

    warnings.simplefilter("ignore")
    frames = generate_set("displaced_0.07", 2024)[0]
    model = build_model().fit(frames)
    kinds = getattr(model.descriptor, "kinds", ["exchange_2b"])
    if "exchange_2b_spline" not in kinds:
        raise SystemExit(f"the term selection chose {kinds}, not the spline term")
    path = os.path.join(folder, "model_spline.h5")
    save(model, path)
    files = {SPLINE_LABEL + ", displaced": (path, SPLINE_DISPLACED),
             SPLINE_LABEL + ", lattice": (path, 0.0)}
    settings = default_settings()
    settings["select_terms"] = False
    path = os.path.join(folder, "model_c1_2b.h5")
    save(build_model(settings).fit(frames), path)
    files["2b only, displaced"] = (path, SPLINE_DISPLACED)
    print(f"# term selection on c1: {', '.join(kinds)} (compiled engine supports it: "
          f"{supports(model)})")
    return files


def ml_models(folder: str, which: str = "all") -> dict:
    """Model files fitted on the 300 K paper set: paper settings (n_max 12) and the
    defaults of `otf-spin train` (n_max 20), both the exchange-2b model of the paper (no
    term selection), and ANGLE_LABEL: the defaults with the term selection, i.e. what
    `otf-spin train` fits on this set (it adds the angle exchange term; SystemExit if it
    chose otherwise). ``which``: "all", "angle" for that model alone, or "spline" for
    :func:`spline_models`. label -> (file, displacement σ Å: 0, the perfect lattice)."""
    import warnings

    from otf_spin.learning.paper_sets import generate_set
    from otf_spin.model import build_model, default_settings, save

    if which == "spline":
        return spline_models(folder)
    warnings.simplefilter("ignore")
    frames = generate_set("thermal_300K", 2024)[0]
    files = {}
    plain = (("n_max 12 (paper)", 12), ("n_max 20 (defaults)", 20)) if which == "all" else ()
    for label, n_max in plain:
        settings = default_settings()
        settings["descriptor"]["n_max"] = n_max
        settings["select_terms"] = False
        path = os.path.join(folder, f"model_{n_max}.h5")
        save(build_model(settings).fit(frames), path)
        files[label] = (path, 0.0)
    model = build_model().fit(frames)
    kinds = getattr(model.descriptor, "kinds", ["exchange_2b"])
    if kinds != ["exchange_2b", "exchange_2b_angle"]:
        raise SystemExit(f"the term selection chose {kinds}, not the angle term")
    path = os.path.join(folder, "model_angle.h5")
    save(model, path)
    files[ANGLE_LABEL] = (path, 0.0)
    return files


def ml_tables(args) -> None:
    """The ML rows: 16 000 spins (fast path per thread count, the reference path once,
    per-stage profile and memory), then 16 and 54 atoms against the Heisenberg step."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        files = ml_models(folder, "angle" if args.ml_angle_only else
                          "spline" if args.ml_spline_only else "all")
        if args.ceiling_only:
            if args.alternate:
                ml_alternate(args, files)
            if args.ceiling:
                ml_ceiling(args, files)
            return
        if not args.ml_small_only:
            ml_large(args, files)
            if args.thread_pairs:
                ml_thread_pairs(args, files)
            if args.alternate:
                ml_alternate(args, files)
            if args.ceiling:
                ml_ceiling(args, files)
        ml_small(args, files)


def ml_thread_pairs(args, files: dict) -> None:
    """The thread speed-up as alternated pairs: K times a run on the fewest then on the
    most of --threads (separate processes, --ml-steps steps each, best of 2), the ratio
    of each pair's spin-update rates, their median and the worst: on a shared machine
    one pair of 1-s windows can land in a busy second, and neighbouring runs see the
    same load."""
    low, high = min(args.threads), max(args.threads)
    print(f"\n{high} threads over {low}, {args.thread_pairs} alternated pairs of runs "
          f"(--ml-steps {args.ml_steps}); load average {load_average()}")
    for label, (path, displaced) in files.items():
        ratios = []
        for _ in range(args.thread_pairs):
            rate = [ml_speed(path, args.cells, args.ml_steps, t, allow_twins=args.allow_twins,
                             displaced=displaced)["rate"] for t in (low, high)]
            ratios.append(rate[1] / rate[0])
        print(f"{label:22s} pairs " + " ".join(f"{r:5.2f}" for r in ratios)
              + f"  median {statistics.median(ratios):5.2f}  worst {min(ratios):5.2f}",
              flush=True)


def ml_alternate(args, files: dict) -> None:
    """The thread speed-up with the thread counts alternated in one process (K rounds,
    each a window of --ml-steps steps on the fewest, then on the most of --threads): per
    round the ratio of the two neighbouring windows' rates, their median and worst, and
    the ratio of the two best windows. Separate processes (--thread-pairs, --ceiling)
    compare windows seconds apart; on a VM whose speed changes from one second to the
    next, neighbouring windows in one process see the most similar machine."""
    low, high = min(args.threads), max(args.threads)
    print(f"\n{high} threads over {low}, alternated in one process: {args.alternate} rounds "
          f"of a {args.ml_steps}-step window on each; load average {load_average()}")
    for label, (path, displaced) in files.items():
        rounds = run_timing(ml_code(path, args.cells, args.ml_steps,
                                    allow_twins=args.allow_twins, displaced=displaced,
                                    alternate=args.alternate, alt_threads=(low, high)),
                            high)["alternate"]
        ratios = [a / b for a, b in rounds]
        best = min(a for a, _ in rounds) / min(b for _, b in rounds)
        n = 2 * args.cells**3
        print(f"{label:22s} rounds " + " ".join(f"{r:4.2f}" for r in ratios)
              + f"  median {statistics.median(ratios):4.2f} worst {min(ratios):4.2f}"
              f"  best windows {best:4.2f} ({n / min(a for a, _ in rounds):.3e} / "
              f"{n / min(b for _, b in rounds):.3e} spin-upd/s)", flush=True)


def ml_ceiling(args, files: dict) -> None:
    """What the machine allows two threads: K rounds, each of four runs in turn — the
    ML LLG run on one thread and on two (separate processes, as --thread-pairs), then
    one one-thread copy alone pinned to CPU 0 and two one-thread copies at once, pinned
    to CPUs 0 and 1 (:func:`ml_copies`). ceiling = the two copies' summed rate ÷ the
    copy alone: the most any two-thread code can reach here (shared caches, memory
    bandwidth, SMT siblings or a busy host all lower it); efficiency = the round's
    thread ratio ÷ its ceiling. Medians over the rounds, and the worst."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2:
        print("\nceiling: needs two CPUs")
        return
    print(f"\nceiling of two threads, {args.ceiling} rounds (--ml-steps {args.ml_steps}, "
          f"best of 2 windows per run; copies pinned to CPUs {cpus[0]} and {cpus[1]}); "
          f"load average {load_average()}")
    header = (f"{'model':22s} {'round':>5s} {'1 thr':>9s} {'2 thr':>9s} {'ratio':>6s} "
              f"{'alone':>9s} {'copy 0':>9s} {'copy 1':>9s} {'ceiling':>7s} {'effic.':>6s}")
    print(header)
    print("-" * len(header))
    for label, (path, displaced) in files.items():
        ratios, ceilings, effs = [], [], []
        for k in range(args.ceiling):
            rate = [ml_speed(path, args.cells, args.ml_steps, t, allow_twins=args.allow_twins,
                             displaced=displaced)["rate"] for t in (1, 2)]
            alone = ml_copies(path, args.cells, args.ml_steps, cpus[:1], args.allow_twins,
                              displaced)[0]
            both = ml_copies(path, args.cells, args.ml_steps, cpus[:2], args.allow_twins,
                             displaced)
            ratio, ceiling = rate[1] / rate[0], sum(both) / alone
            ratios.append(ratio)
            ceilings.append(ceiling)
            effs.append(ratio / ceiling)
            print(f"{label:22s} {k + 1:5d} {rate[0]:9.3e} {rate[1]:9.3e} {ratio:6.2f} "
                  f"{alone:9.3e} {both[0]:9.3e} {both[1]:9.3e} {ceiling:7.2f} "
                  f"{ratio / ceiling:6.2f}", flush=True)
        med = statistics.median
        print(f"{label:22s} median: ratio {med(ratios):.2f} (worst {min(ratios):.2f}), "
              f"ceiling {med(ceilings):.2f} (worst {min(ceilings):.2f}), efficiency "
              f"{med(effs):.2f} (worst {min(effs):.2f})", flush=True)
    print("rates: spin-updates/s (wall); ratio: 2 threads ÷ 1 thread; ceiling: the two "
          "pinned one-thread copies' summed rate ÷ one copy alone; effic.: ratio ÷ ceiling")


def ml_large(args, files: dict) -> None:
    """The 16 000-spin rows (fast path per thread count, optionally the reference)."""
    print(f"\nGAP-SOSO provider, Depondt, {2 * args.cells**3} spins (best of 2 × "
          f"{args.ml_steps} steps; reference path: model.predict per evaluation); "
          f"load average {load_average()}")
    header = (f"{'model':22s} {'path':>9s} {'thr':>3s} {'spin-upd/s':>10s} {'per cpu-s':>10s} "
              f"{'step s':>8s} "
              f"{'setup s':>7s} {'descr':>7s} {'kernel':>7s} {'grad':>7s} {'field':>7s} "
              f"{'integ+':>7s} {'kB/atom':>7s}")
    print(header)
    print("-" * len(header))
    walls = {}
    for label, (path, displaced) in files.items():
        runs = [("fast", t, False) for t in args.threads]
        if args.ml_reference:
            runs.append(("reference", 1, True))
        for name, threads, reference in runs:
            steps = 1 if reference else args.ml_steps
            r = ml_speed(path, args.cells, steps, threads, reference,
                         allow_twins=args.allow_twins, displaced=displaced)
            if r["stages_wall"]:
                walls[label, threads] = r
            st = r["stages"]
            rest = r["step_cpu"] - sum(st.values())
            mem = f"{r['bytes_per_atom'] / 1e3:7.2f}" if r["bytes_per_atom"] else f"{'-':>7s}"
            ms = [1e3 * x for x in (st["descriptor"], st["kernel"], st["gradient"],
                                     st["field"], rest)]
            print(f"{label:22s} {name:>9s} {threads:3d} {r['rate']:10.3e} "
                  f"{r['rate_cpu']:10.3e} {r['step']:8.4f} "
                  f"{r['setup']:7.3f} " + " ".join(f"{x:7.1f}" for x in ms) + f" {mem}",
                  flush=True)
    print("\nper cpu-s: spin updates per CPU second of the process (all threads; on a "
          "busy machine the one-thread figure to quote); setup: CPU s of the structure's "
          "preparation; stage columns: CPU ms per Depondt step (two evaluations); "
          "integ+ = CPU per step minus stages: integrator, noise, provider bookkeeping")
    if any(d for _, d in files.values()):
        print(f"displaced: atoms moved as in the set c1 (Eq. 42, σ {SPLINE_DISPLACED} Å; "
              "every pair distance differs)")
    low, high = min(args.threads), max(args.threads)
    if high > low and walls:
        print(f"\nstage wall ms per step on {low} and {high} threads (a separate pass of "
              f"--ml-steps steps each) and the speed-up; rest = the step's wall time "
              "minus the stages (integrator stage kernels, noise, Python)")
        names = ("descriptor", "kernel", "gradient", "field", "rest", "step")
        print(f"{'model':22s} " + " ".join(f"{n:>16s}" for n in names))
        for label in files:
            if (label, low) not in walls or (label, high) not in walls:
                continue
            cells = []
            for n in names:
                a, b = (_wall_stage(walls[label, t], n) for t in (low, high))
                cells.append(f"{1e3 * a:6.1f}/{1e3 * b:5.1f} {a / b:4.2f}")
            print(f"{label:22s} " + " ".join(f"{c:>16s}" for c in cells))
    print(f"machine state: one-thread dgemm (16000×84 by 84×150) at {dgemm_rate():.1f} "
          "GFMA/s now")


def _wall_stage(r: dict, name: str) -> float:
    """Wall seconds per step of one stage of an ml_speed result (or "rest", "step")."""
    if name == "step":
        return r["step_wall"]
    if name == "rest":
        return r["step_wall"] - sum(r["stages_wall"].values())
    return r["stages_wall"][name]


def ml_small(args, files: dict) -> None:
    """16 and 54 atoms: the ML step against the compiled Heisenberg step, per stage."""
    repeats = args.ml_small_repeats
    print(f"\nsmall cells, one thread: ML step against the compiled Heisenberg step "
          f"(J1+J2) on the same cell, CPU ms per Depondt step; {repeats} repeats of 400 ML "
          f"steps, each followed by 400 Heisenberg steps: best block of each, ratio of "
          f"the bests, median of the {repeats} neighbouring-block ratios; load average "
          f"{load_average()}")
    header = (f"{'model':22s} {'path':>9s} {'atoms':>6s} {'ML step ms':>10s} {'Heis. ms':>9s} "
              f"{'ratio':>6s} {'median':>6s} {'descr':>7s} {'kernel':>7s} {'grad':>7s} "
              f"{'field':>7s}")
    print(header)
    print("-" * len(header))
    paths = ("fast", "reference") if args.ml_reference else ("fast",)
    for label, (path, displaced) in files.items():
        for cells, name in ((c, p) for c in (2, 3) for p in paths):
            r = ml_speed(path, cells, 400 if name == "fast" else 40, 1,
                         reference=name == "reference", heisenberg=True, repeats=repeats,
                         allow_twins=args.allow_twins, displaced=displaced)
            st = r["stages"]
            print(f"{label:22s} {name:>9s} {2 * cells**3:6d} {1e3 * r['step_cpu']:10.4f} "
                  f"{1e3 * r['heisenberg_step']:9.4f} "
                  f"{r['step_cpu'] / r['heisenberg_step']:6.1f} {r['ratio_median']:6.1f} "
                  + " ".join(f"{1e3 * st[k]:7.4f}"
                             for k in ("descriptor", "kernel", "gradient", "field")),
                  flush=True)
    print("stage columns: CPU ms per Depondt step (two evaluations); reference: "
          "model.predict per evaluation (40 steps)")


def load_average() -> str:
    """1-minute load average (the machine's business while the rows were timed)."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "unknown"


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
    parser.add_argument("--thread-pairs", type=int, default=0, metavar="K",
                        help="ML rows: also K alternated runs on the fewest and the most "
                             "--threads, the median and worst ratio of their rates")
    parser.add_argument("--alternate", type=int, default=0, metavar="K",
                        help="the thread speed-up alternated in one process, K rounds "
                             "(ml_alternate)")
    parser.add_argument("--ceiling", type=int, default=0, metavar="K",
                        help="ML rows: also K rounds of the two-thread ceiling (two pinned "
                             "one-thread copies at once against one alone) beside the "
                             "thread ratio, and their quotient (parallel efficiency)")
    parser.add_argument("--ceiling-only", action="store_true",
                        help="only the thread-ratio sections asked for (--alternate, --ceiling): "
                             "no 16 000-spin table, no small cells")
    parser.add_argument("--no-spirit", action="store_true")
    parser.add_argument("--ml-steps", type=int, default=0,
                        help="also time the GAP-SOSO provider for this many steps")
    parser.add_argument("--ml-reference", action="store_true",
                        help="with --ml-steps: also time the model.predict path (slow)")
    parser.add_argument("--ml-only", action="store_true",
                        help="skip the Heisenberg and Spirit rows")
    parser.add_argument("--ml-small-only", action="store_true",
                        help="with --ml-only: only the 16- and 54-atom rows")
    parser.add_argument("--ml-angle-only", action="store_true",
                        help="ML rows of the model with the angle term only (what `otf-spin "
                             "train` fits on the 300 K set)")
    parser.add_argument("--ml-spline-only", action="store_true",
                        help="ML rows of what `otf-spin train` fits on the displaced set c1 "
                             "(the spline term) and of exchange-2b alone on it, on "
                             "displaced lattices")
    parser.add_argument("--ml-small-repeats", type=int, default=7,
                        help="small cells: repeats of 400 ML steps, each followed by 400 "
                             "Heisenberg steps (default 7)")
    parser.add_argument("--allow-twins", action="store_true",
                        help="time the pure-Python twins of kernels that are not built")
    args = parser.parse_args(argv)
    from otf_spin.kernels import refuse_twins

    refuse_twins(args.allow_twins)
    n = 2 * args.cells**3
    print(f"bcc Fe {args.cells}³ cells = {n} spins, J1+J2, 300 K, α 0.1, dt 1 fs, "
          f"{args.steps} steps")
    if args.ml_only:
        ml_tables(args)
        return
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
        ml_tables(args)


if __name__ == "__main__":
    main()
