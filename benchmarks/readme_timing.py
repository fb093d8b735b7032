"""Wall time of the README's main example, and the machine it ran on.

    python benchmarks/readme_timing.py [--repeat 3] [--allow-twins] [--against TREE]

Runs ``otf-spin run --fresh input_examples/bccFe_otf_heisenberg.yaml`` (on-the-fly LLG of
16 bcc Fe spins, 300 -> 1000 K, learning from the embedded Heisenberg oracle) in a fresh
temporary folder each time, exactly as the README's command does (a new process: the
import of the package is included), and prints every wall time and the CPU time the run
used (user + system, all its threads), their best and median, the run's own final
lines (its time split into dynamics, uncertainty checks, oracle, refits and output, and
the fit and refit time), and the machine: CPU model, logical cores available to this
process, load average before and after the runs.
Other work on the machine stretches the wall time but hardly the CPU time: on a busy
machine quote the CPU time, on an idle one the wall time. ``--against TREE`` (another
checkout of otf-spin with its extensions built in place, e.g. a ``git worktree`` of an
older commit) alternates its runs with this checkout's, run by run, so that both see
the same machine, and prints both summaries (the same input file for both).
The runs keep Python's bytecode cache on, as a user's shell does (the package's modules
compiled once, not at every start; an untimed warm-up run fills the cache), also where
this environment sets PYTHONDONTWRITEBYTECODE; ``--no-bytecode-cache`` runs with this
environment's setting instead.
``--choice N`` times, in this process and in CPU seconds, the loop's choice of descriptor
terms on the example's labels (the store of one run): every candidate after exchange-2b
alone started from exchange-2b's optimum without the coarse grid of starts
(:func:`otf_spin.model.selection.warm_start`, since 2026-12-03, eighth session), against
the rule before (every candidate from the default hyperparameters and the grid),
alternated N times; best and median of each and the terms both chose.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "input_examples", "bccFe_otf_heisenberg.yaml")


def cpu_model() -> str:
    """The CPU model name (Linux: /proc/cpuinfo; else platform's)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


#: where the runs keep their compiled bytecode (``--bytecode-cache``): a folder of its
#: own (PYTHONPYCACHEPREFIX), so that no ``__pycache__`` appears in the checkout
PYCACHE = os.path.join(tempfile.gettempdir(), "otf-spin-readme-timing-pycache")


def child_env(tree: str | None, bytecode_cache: bool) -> dict:
    """The environment of a run: this one, with PYTHONPATH set to ``tree`` (another
    checkout) and, with ``bytecode_cache``, Python's bytecode cache on (PYTHONDONTWRITEBYTECODE
    dropped, PYTHONPYCACHEPREFIX = PYCACHE) as in a user's shell, where the package's
    modules are compiled once, at their first import; without it, as this environment
    has it (where PYTHONDONTWRITEBYTECODE is set, otf_spin's ~70 modules of an editable
    install are compiled from source at every start: ~0.15 CPU s on a 2-core VM)."""
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = os.path.abspath(tree)
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = PYCACHE
    return env


def run_once(tree: str | None = None, bytecode_cache: bool = True) -> tuple[float, float, list]:
    """(wall, CPU) seconds of one fresh run of the example in a temporary folder, and
    the run's final lines (``# done`` and ``# on the fly``); ``tree``: run the package
    of that checkout instead (PYTHONPATH); ``bytecode_cache``: :func:`child_env`."""
    env = child_env(tree, bytecode_cache)
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(EXAMPLE, folder)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "otf_spin", "run", "--quiet", "--fresh",
                              os.path.basename(EXAMPLE)], cwd=folder, check=True,
                             stdout=subprocess.PIPE, text=True, env=env)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        lines = [line for line in out.stdout.splitlines()
                 if line.startswith(("# done", "# on the fly"))]
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), \
            lines


def time_choice(repeat: int) -> None:
    """Print the CPU time of the loop's choice of terms on the example's labels, now
    against before (module doc), alternated ``repeat`` times."""
    import warnings

    from otf_spin.factory import load_run
    from otf_spin.learning.store import TrainingStore
    from otf_spin.model.factory import build_gpr
    from otf_spin.model import selection

    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(EXAMPLE, folder)
        subprocess.run([sys.executable, "-m", "otf_spin", "run", "--quiet", "--fresh",
                        os.path.basename(EXAMPLE)], cwd=folder, check=True,
                       stdout=subprocess.DEVNULL)
        cfg = load_run(os.path.join(folder, os.path.basename(EXAMPLE)))
        frames = list(TrainingStore(os.path.join(folder, cfg["otf"]["store"])).frames())
    otf = cfg["otf"]
    settings = otf["model_settings"]
    floors = {"sigma_energy": (otf["noise_floor_energy"], 1.0),
              "sigma_field": (otf["noise_floor_field"], 1.0)}

    warm = selection.warm_start

    def choose(label):
        selection.warm_start = warm if label == "now" else (lambda model, start: None)
        try:
            return selection.select(settings, frames, build_gpr, bounds=floors, warm=True)[0]
        finally:
            selection.warm_start = warm

    times, chosen = {"before": [], "now": []}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(repeat):
            for label in ("before", "now"):
                start = time.process_time()
                chosen[label] = selection.terms_of(choose(label).settings)
                times[label].append(time.process_time() - start)
    for label, values in times.items():
        values.sort()
        print(f"choice of terms on {len(frames)} labels, {label}: CPU best {values[0]:.3f} s, "
              f"median {values[len(values) // 2]:.3f} s of {repeat}; terms: "
              + " + ".join(("exchange_2b",) + chosen[label]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs (default 3)")
    parser.add_argument("--allow-twins", action="store_true",
                        help="time the pure-Python twins of kernels that are not built")
    parser.add_argument("--against", metavar="TREE",
                        help="another otf-spin checkout (extensions built in place) whose "
                             "runs alternate with this checkout's")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="run with this environment's bytecode setting (default: the "
                        "cache on, as in a user's shell, after one untimed warm-up run)")
    parser.add_argument("--choice", type=int, metavar="N", default=0,
                        help="also time the loop's choice of terms, now against before, "
                        "N times alternated in this process (CPU s)")
    args = parser.parse_args(argv)
    from otf_spin import __version__
    from otf_spin.kernels import refuse_twins

    refuse_twins(args.allow_twins)
    print(f"machine: {cpu_model()}, {cores()} logical core(s) for this process, "
          f"Python {platform.python_version()}, otf-spin {__version__}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    cache = not args.no_bytecode_cache
    trees = {"this checkout": None}
    if args.against:
        trees[f"against {args.against}"] = args.against
    if cache:
        print(f"bytecode cache on, as in a user's shell (PYTHONPYCACHEPREFIX={PYCACHE}, "
              "PYTHONDONTWRITEBYTECODE dropped), filled by one untimed warm-up run per "
              "checkout", flush=True)
        for tree in trees.values():
            run_once(tree)
    else:
        print("bytecode as in this environment: PYTHONDONTWRITEBYTECODE="
              f"{os.environ.get('PYTHONDONTWRITEBYTECODE', 'unset')}", flush=True)
    print(f"load average before the runs: {load_average()}")
    times = {label: ([], []) for label in trees}
    for k in range(args.repeat):
        for label, tree in trees.items():
            wall, cpu, lines = run_once(tree, cache)
            times[label][0].append(wall)
            times[label][1].append(cpu)
            print(f"run {k + 1}" + (f" ({label})" if args.against else "") + f": wall "
                  f"{wall:.2f} s, CPU {cpu:.2f} s, load {load_average()}", flush=True)
            for line in lines:
                print(f"    {line}", flush=True)
    print(f"load average after the runs: {load_average()}")
    for label, (walls, cpus) in times.items():
        walls.sort()
        cpus.sort()
        print(f"README main example (otf-spin run input_examples/bccFe_otf_heisenberg.yaml)"
              + (f", {label}" if args.against else "") + f", {len(walls)} run(s): wall best "
              f"{walls[0]:.2f} s, median {walls[len(walls) // 2]:.2f} s; CPU best "
              f"{cpus[0]:.2f} s, median {cpus[len(cpus) // 2]:.2f} s")
    if args.choice:
        time_choice(args.choice)


def load_average() -> str:
    if not hasattr(os, "getloadavg"):
        return "unknown"
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


if __name__ == "__main__":
    main()
