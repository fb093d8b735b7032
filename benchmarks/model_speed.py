"""Speed of the GAP-SOSO model with the defaults of `otf-spin train` (r_cut 7 Å,
n_max 20, l_max 6; linear l = 1 and l ≥ 2 kernels and the ζ = 4 kernel, 150 sparse points;
the term selection on, which adds the angle exchange term on this thermal set: the
chosen terms are printed), or with --no-select exchange-2b alone.

    python benchmarks/model_speed.py [--large 20] [--no-select]

Prints: fit time for 50 × 16-atom frames, incremental refit (one 16-atom frame added
to the 50-frame model) against a full refit, and prediction throughput (atoms/s) for
energy + fields with and without the variance, for 16, 54 and 16 000 atoms (bcc Fe),
and the compiled fast path (energies + fields) with its per-structure setup time.
Times are CPU seconds of this process (time.process_time: all its threads; on a shared
machine wall time is stretched by other jobs), with the load average; run it with
OMP_NUM_THREADS=1 for one-thread figures.
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

from otf_spin.kernels import refuse_twins
from otf_spin.learning.paper_sets import generate_set
from otf_spin.model import build_model, default_settings
from otf_spin.model import fast
from otf_spin.system import bulk, random_cone


def timed(fn, repeat=1):
    """Best CPU seconds of ``repeat`` calls of ``fn``."""
    best = np.inf
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def load() -> str:
    return f"load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else ""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=20,
                        help="repeat of the large cell (20 -> 16 000 atoms)")
    parser.add_argument("--allow-twins", action="store_true",
                        help="time the pure-Python twins of kernels that are not built")
    parser.add_argument("--no-select", action="store_true",
                        help="exchange-2b alone (select_terms: false)")
    args = parser.parse_args(argv)
    refuse_twins(args.allow_twins)
    warnings.simplefilter("ignore")
    train, test = generate_set("thermal_1000K", 2024)
    frames = train + test                       # 50 frames of 16 atoms
    settings = default_settings()
    settings["select_terms"] = not args.no_select
    model = build_model(settings)
    fit = timed(lambda: model.fit(frames))
    print(f"fit, 50 × 16-atom frames (energies + fields): {fit:.2f} CPU-s "
          f"(terms {getattr(model.descriptor, 'kinds', ['exchange_2b'])}; sparse "
          f"{[len(S) for S in model.sparse]}; {load()}; OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')})", flush=True)
    extra = generate_set("thermal_300K", 2024)[0][0]
    base = build_model(settings).fit(frames)
    inc = timed(lambda: base.add_frames([extra]))
    full = timed(lambda: build_model(settings).fit(frames + [extra]))
    print(f"add 1 frame to the 50-frame model: incremental {inc:.3f} CPU-s, full refit "
          f"{full:.3f} CPU-s ({full / inc:.0f}× faster)", flush=True)
    print(f"\n{'atoms':>7s} {'E+B atoms/s':>12s} {'E+B+σ atoms/s':>14s} {'E+B ms':>8s} "
          f"{'E+B+σ ms':>9s} {'fast atoms/s':>12s} {'fast ms':>8s} {'setup s':>8s} "
          f"{'ref. 1st s':>10s}")
    rng = np.random.default_rng(0)
    fp = fast.fast_predictor(model)
    if fp is None:
        raise SystemExit("the fitted model has no compiled path (terms "
                         f"{getattr(model.descriptor, 'kinds', None)})")
    for repeat in (2, 3, args.large):
        system = bulk("bcc", 2.83, (repeat,) * 3)
        system.set_directions(random_cone(len(system), [0, 0, 1], 0.6, rng))
        setup = timed(lambda: fp.engine(system.copy()))     # neighbours, radial, FM
        first = timed(lambda: model.predict(system, stds=False))  # builds its own caches
        reps = 20 if len(system) < 1000 else 1
        t_plain = timed(lambda: model.predict(system, stds=False), reps)
        t_std = timed(lambda: model.predict(system, stds=True), 3 if len(system) < 1000 else 1)
        t_fast = timed(lambda: fp.predict(system), 200 if len(system) < 1000 else 5)
        n = len(system)
        print(f"{n:7d} {n / t_plain:12.3g} {n / t_std:14.3g} {1e3 * t_plain:8.2f} "
              f"{1e3 * t_std:9.1f} {n / t_fast:12.3g} {1e3 * t_fast:8.3f} {setup:8.3f} "
              f"{first:10.3f}  {load()}", flush=True)
    print("\nCPU times; fast: otf_spin.model.fast (energies and fields, no σ), one thread unless "
          "OMP_NUM_THREADS says otherwise; setup: its per-structure preparation "
          "(neighbours, radial rows, FM reference); ref. 1st: the first model.predict "
          "of the structure (builds the descriptor's pair cache)")

if __name__ == "__main__":
    main()
