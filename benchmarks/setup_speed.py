"""CPU time to set up the compiled engine for a 16 000-atom structure, by stage.

    python benchmarks/setup_speed.py [--cells 20] [--repeats 5] [--models DIR]
                                     [--only MODEL POSITIONS]

The models are those of `llg_speed.py --ml-spline-only`: what `otf-spin train` fits on
the displaced set c1 (exchange-2b + the B-spline term, "2b + spline") and exchange-2b
alone fitted on the same frames ("2b only"); they are fitted once into DIR (default: a
temporary folder; an existing DIR with both files is reused). Each runs on the perfect
bcc lattice (20³ cells, a 2.83 Å) and on the same lattice displaced as c1's frames
(Eq. 42, σ 0.07 Å, seed 7: every pair its own distance). Setup = a fresh
``FastPredictor(model).engine(system)``: neighbour search, pair compression, radial
tables (+ the spline couplings), FM radial sums, engine construction and the FM
reference evaluation. Each row runs in its own process (one thread): "first" is the
first setup there (what a run pays, as `llg_speed.py` times it), "best" the best of
``--repeats`` more; the stages are timed by calling the same pieces one by one on the
same structure (best of ``--repeats``). CPU seconds (process time). To time another
tree (e.g. before a change), put it first on PYTHONPATH, its extensions built.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def best(fn, repeats: int) -> tuple[float, object]:
    """Smallest CPU time (s) of ``repeats`` calls of fn(), and the last result."""
    t, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.process_time()
        out = fn()
        t = min(t, time.process_time() - t0)
    return t, out


def stages(model, system, repeats: int) -> dict:
    """CPU s per setup stage of ``model`` on ``system`` (see the module docstring)."""
    from otf_spin import system as system_module
    from otf_spin.model.fast import DISTANCE_TOL, FastPredictor

    search = getattr(system_module, "neighbour_distances", None)
    if search is None:            # an older tree (PYTHONPATH): the full pair search
        def search(*args):
            i, j, _, _, d = system_module.neighbour_pairs(*args)
            return i, j, d
    row = {}
    rss, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, os.times()
    row["first"], _ = best(lambda: FastPredictor(model).engine(system), 1)
    row["first_sys"] = os.times().system - t0.system
    row["peak_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    fp = FastPredictor(model)
    n, rc = len(system), fp.desc.r_cut
    row["neighbours"], (i, j, d) = best(
        lambda: search(system.cell, system.pbc, system.positions, rc), repeats)
    row["compress"], packed = best(
        lambda: fp._kernel.compress_pairs(i, j, d, n, DISTANCE_TOL), repeats)
    rep = packed[5]
    row["radial"], _ = best(lambda: fp.desc.radial_values(rep), repeats)
    row["spline"] = best(lambda: fp.couplings(rep), repeats)[0] if fp.spline else 0.0
    couplings = fp.couplings if fp.spline else None
    row["structure"], _ = best(lambda: fp.structure(system, couplings=couplings), repeats)
    row["best"], _ = best(lambda: FastPredictor(model).engine(system), repeats)
    row["pairs"], row["groups"] = len(i), len(rep)
    return row


def row(path: str, cells: int, sigma: float, repeats: int) -> dict:
    """:func:`stages` of the model file on the lattice displaced by ``sigma`` (Å)."""
    import warnings

    from otf_spin.learning.paper_sets import displacements
    from otf_spin.model import load
    from otf_spin.system import bulk

    warnings.simplefilter("ignore")
    model = load(path)
    system = bulk("bcc", 2.83, (cells,) * 3, moment=2.2)
    if sigma:
        system.positions += displacements(len(system), sigma, np.random.default_rng(7))
    return stages(model, system, repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default=None,
                        help="folder for the fitted models (reused if both are there)")
    parser.add_argument("--only", nargs=2, metavar=("MODEL", "POSITIONS"),
                        help="one row: MODEL 'spline' or '2b', POSITIONS 'lattice' or "
                             "'displaced'")
    parser.add_argument("--row", nargs=2, metavar=("MODEL_FILE", "SIGMA"),
                        help=argparse.SUPPRESS)       # one row, in the child process
    args = parser.parse_args(argv)
    if args.row:
        print(json.dumps(row(args.row[0], args.cells, float(args.row[1]), args.repeats)))
        return
    from otf_spin.kernels import refuse_twins

    refuse_twins(False)
    sys.path.insert(0, HERE)
    from llg_speed import SPLINE_DISPLACED, load_average, spline_models

    folder = args.models or tempfile.mkdtemp()
    names = {"2b + spline": "model_spline.h5", "2b only": "model_c1_2b.h5"}
    if not all(os.path.exists(os.path.join(folder, f)) for f in names.values()):
        import warnings

        warnings.simplefilter("ignore")
        spline_models(folder)
    import otf_spin

    print(f"setup of bcc {args.cells}³ cells ({2 * args.cells**3} atoms), CPU s, one thread, "
          f"stages and best of {args.repeats}; load average {load_average()}; otf_spin from "
          f"{os.path.dirname(otf_spin.__file__)}")
    header = (f"{'model':12s} {'positions':>9s} {'pairs':>8s} {'groups':>8s} "
              f"{'neighb':>7s} {'compress':>8s} {'radial':>7s} {'spline':>7s} "
              f"{'structure':>9s} {'first':>7s} {'(sys)':>6s} {'best':>7s} {'peak MB':>7s}")
    print(header)
    print("-" * len(header))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for label, name in names.items():
        for where, sigma in (("lattice", 0.0), ("displaced", SPLINE_DISPLACED)):
            if args.only and (args.only[0] != ("spline" if "spline" in label else "2b")
                              or args.only[1] != where):
                continue
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--cells",
                                  str(args.cells), "--repeats", str(args.repeats), "--row",
                                  os.path.join(folder, name), str(sigma)],
                                 env=env, capture_output=True, text=True)
            if out.returncode:
                raise SystemExit((out.stderr.strip().splitlines() or ["row failed"])[-1])
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{label:12s} {where:>9s} {r['pairs']:8d} {r['groups']:8d} "
                  f"{r['neighbours']:7.3f} {r['compress']:8.3f} {r['radial']:7.3f} "
                  f"{r['spline']:7.3f} {r['structure']:9.3f} {r['first']:7.3f} "
                  f"{r['first_sys']:6.2f} {r['best']:7.3f} {r['peak_mb']:7.0f}", flush=True)
    print("neighb: system.neighbour_distances at r_c; compress: gap.compress_pairs; radial: "
          "the exchange-2b radial table of the groups; spline: the spline couplings "
          "(spline2b.radial_dot) of the groups; structure: FastPredictor.structure (the "
          "stages before + FM radial sums); first / best: FastPredictor(model).engine "
          "(structure + engine construction + FM reference evaluation), the first call in "
          "the process (sys: its system CPU, mostly first touches of fresh memory) / the best "
          "of the repeats; peak MB: growth of the process's peak resident memory in the first "
          "call")


if __name__ == "__main__":
    main()
