"""Cost of the on-the-fly σ checks on the user's path: `otf-spin run` of a trained model.

    python benchmarks/check_cost.py [--sizes 3:2000 20:100] [--repeat 2] [--against TREE]
                                    [--model FILE]

First runs the README example (``input_examples/bccFe_otf_heisenberg.yaml``) in a
temporary folder for its model (``otf_model.h5``, the model a user continues from), then
per size ``R:S`` a run of R³ × 2 bcc Fe spins for S steps that starts from that model
(``otf.model``), with a threshold no check passes (no label: the run is the model's
dynamics with a σ check at every step, ``check_every: 1``), Depondt at 1000 K, and
prints each run's own ``# done`` line (dynamics, uncertainty checks, output) and a table
of the best check and run times. ``--against TREE`` (another checkout with its
extensions built in place, e.g. a ``git worktree`` of an older commit) alternates its
runs with this checkout's, on the same model file. The checks' time includes the
once-per-structure costs of a new cell (the κ² structure transfer, the engine's
posterior), a few seconds at 16 000 atoms. ``--model FILE`` starts every run from that
model file instead (e.g. ``otf-spin train``'s default model of the 50-frame Eq. 41 set,
150 sparse points in its ζ = 4 kernel where the README example's run ends with 65).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

from readme_timing import EXAMPLE, child_env, cores, cpu_model, load_average

DONE = re.compile(r"# done: ([\d.]+) s \((?:rank 0: )?dynamics ([\d.]+) s, uncertainty "
                  r"checks ([\d.]+) s")


def run_file(folder: str, repeat: int, steps: int) -> str:
    """Write the run file of a ``repeat``³ × 2-atom cell and ``steps`` steps from the
    README example's model into ``folder``; returns its name."""
    data = yaml.safe_load(open(EXAMPLE))
    data["system"]["repeat"] = [repeat] * 3
    data["otf"] = {"mode": "absolute", "threshold": 1e5, "check_every": 1,
                   "initial_frames": 0, "model": "otf_model.h5",
                   "store": f"store_{repeat}.h5", "checkpoint": f"checkpoint_{repeat}.h5",
                   "checkpoint_every": steps, "save_model": f"final_{repeat}.h5"}
    data["dynamics"].update(temperature=1000, steps=steps)
    data["output"] = {"trajectory": f"run_{repeat}.h5", "every": steps}
    name = f"check_{repeat}.yaml"
    with open(os.path.join(folder, name), "w") as handle:
        yaml.safe_dump(data, handle)
    return name


def run(folder: str, name: str, tree: str | None) -> tuple[float, float, float, str]:
    """(run, dynamics, checks) seconds of one fresh run of ``name`` in ``folder`` and its
    ``# done`` line; ``tree``: that checkout's package (PYTHONPATH)."""
    out = subprocess.run([sys.executable, "-m", "otf_spin", "run", "--quiet", "--fresh",
                          name], cwd=folder, check=True, stdout=subprocess.PIPE, text=True,
                         env=child_env(tree, True))
    line = next(x for x in out.stdout.splitlines() if x.startswith("# done"))
    total, dynamics, checks = map(float, DONE.match(line).groups())
    return total, dynamics, checks, line


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["3:2000", "20:100"],
                        help="R:S — R³ × 2 atoms, S steps (default 3:2000 20:100)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per size (default 2)")
    parser.add_argument("--against", metavar="TREE",
                        help="another otf-spin checkout (extensions built in place)")
    parser.add_argument("--model", metavar="FILE",
                        help="start every run from this model file (default: the model "
                             "of a README example run)")
    parser.add_argument("--allow-twins", action="store_true",
                        help="time the pure-Python twins of kernels that are not built")
    args = parser.parse_args(argv)
    from otf_spin import __version__
    from otf_spin.kernels import refuse_twins

    refuse_twins(args.allow_twins)
    sizes = [tuple(int(x) for x in s.split(":")) for s in args.sizes]
    trees = {"this checkout": None}
    if args.against:
        trees[f"against {args.against}"] = args.against
    print(f"machine: {cpu_model()}, {cores()} logical core(s), otf-spin {__version__}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; load "
          f"{load_average()}", flush=True)
    best = {}
    with tempfile.TemporaryDirectory() as folder:
        if args.model:
            shutil.copy(args.model, os.path.join(folder, "otf_model.h5"))
        else:
            shutil.copy(EXAMPLE, folder)
            subprocess.run([sys.executable, "-m", "otf_spin", "run", "--quiet", "--fresh",
                            os.path.basename(EXAMPLE)], cwd=folder, check=True,
                           stdout=subprocess.DEVNULL, env=child_env(None, True))
        for repeat, steps in sizes:
            name = run_file(folder, repeat, steps)
            for _ in range(args.repeat):
                for label, tree in trees.items():
                    total, dynamics, checks, line = run(folder, name, tree)
                    print(f"{2 * repeat ** 3:6d} atoms, {steps} steps ({label}): {line}",
                          flush=True)
                    kept = best.setdefault((repeat, steps, label), [total, checks])
                    kept[:] = [min(kept[0], total), min(kept[1], checks)]
    print(f"load after the runs: {load_average()}")
    print(f"\n{'atoms':>6s} {'steps':>6s} {'tree':>30s} {'checks s':>9s} {'run s':>8s} "
          f"{'checks/step ms':>14s}")
    for (repeat, steps, label), (total, checks) in best.items():
        print(f"{2 * repeat ** 3:6d} {steps:6d} {label:>30s} {checks:9.2f} {total:8.2f} "
              f"{1e3 * checks / steps:14.3f}")
    print("best of the runs; checks: the run's own 'uncertainty checks' time (its "
          "once-per-structure costs included)")


if __name__ == "__main__":
    main()
