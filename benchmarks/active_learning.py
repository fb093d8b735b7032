"""Active learning against random and generated training sets: labels vs field error.

    python benchmarks/active_learning.py [--quick] [--seeds 201 202 203] [--cells 3]

The task: bcc Fe (16 atoms; ``--cells 3``: 54) heated 300 -> 1000 K by stochastic LLG,
the paper's Eq. 43 Heisenberg oracle with moments slaved to the angles (Eq. 41), ideal
lattice (the spin-dynamics runner moves spins only: thermal displacements are not part
of an on-the-fly run, so they are not part of this task). For every seed:

- reference: an LLG run on the oracle itself (seed s), frames every ``--every`` steps,
  labelled by the oracle — the fixed trajectory every model is scored on;
- otf: ``input_examples/bccFe_otf_heisenberg.yaml`` run by the real runner (thresholds
  as in the README example; dynamics seed s + 2000), the model in use saved after
  each label; its learning curve is that model against the number of labels taken;
- random: N frames drawn uniformly from another oracle LLG run of the same protocol
  (seed s + 1000), fitted up front with the default model (nested draws);
- generate: ``otf-spin generate`` on ``input_examples/bccFe_generate.yaml`` (sampler
  seed s; select.count = largest N): its first N selected frames, fitted up front
  (farthest-point selection is greedy, so its first N are what count: N would give).

Field RMSE: over all components of all atoms of the reference frames (meV/μB), as
benchmarks/otf_heisenberg.py. "otf needs": the fewest labels after which the loop's model
is at least as accurate as N random frames (target ≤ N/2).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

import numpy as np
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "input_examples")


def _yaml(name):
    with open(os.path.join(EXAMPLES, name)) as handle:
        return yaml.safe_load(handle)


def _run(folder, name, data, monitor):
    """Run the run-file ``data`` (a dict) in ``folder`` with the real runner (log:
    ``<folder>/<name>.log``)."""
    from otf_spin.io.runconfig import load_run
    from otf_spin.runner import run

    path = os.path.join(folder, f"{name}.yaml")
    with open(path, "w") as handle:
        yaml.safe_dump(data, handle)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with open(f"{name}.log", "w") as log:
            return run(load_run(path), progress=False, log=log, fresh=True, monitor=monitor)
    finally:
        os.chdir(cwd)


def oracle_trajectory(folder, name, seed, steps, every, repeat):
    """Labelled frames (Frame list) every ``every`` steps of an LLG run on the oracle."""
    from otf_spin.io.runconfig import load_run
    from otf_spin.learning.labelling import label_with_retries
    from otf_spin.runner import build_system

    otf = _yaml("bccFe_otf_heisenberg.yaml")
    data = {"system": dict(otf["system"], repeat=[repeat] * 3),
            "hamiltonian": otf["oracle"],
            "dynamics": dict(otf["dynamics"], steps=steps, seed=seed),
            "output": {"trajectory": f"{name}.h5", "every": every}}
    directions = []

    def monitor(step, state, provider, obs):
        if step % every == 0 and step > 0:
            directions.append(state.directions.copy())

    _run(folder, name, data, monitor)
    cfg = load_run(os.path.join(folder, f"{name}.yaml"))
    system, oracle = build_system(cfg["system"], seed), cfg["hamiltonian"]["oracle"]
    frames = []
    for d in directions:
        probe = system.copy()
        probe.directions = d
        frames.append(label_with_retries(oracle, probe, 0).labelled[0])
    return frames


def otf_curve(folder, seed, steps, repeat):
    """({labels: model bytes} of the loop's models in use, learner, wall s, max σ at each
    call in meV/μB)."""
    from otf_spin.model import storage

    data = _yaml("bccFe_otf_heisenberg.yaml")
    data["system"]["repeat"] = [repeat] * 3
    data["dynamics"].update(steps=steps, seed=seed)
    data["output"]["every"] = 5          # = check_every: one record per possible refit
    snapshots = {}

    def monitor(step, state, provider, obs):
        if obs["oracle_calls"] not in snapshots:
            snapshots[obs["oracle_calls"]] = storage.to_bytes(provider.calculator)

    start = time.perf_counter()
    result = _run(folder, "otf", data, monitor)
    learner = result["learner"]
    snapshots[learner.calls] = storage.to_bytes(learner.model)
    with open(os.path.join(folder, "otf.log")) as handle:
        sigmas = [float(line.split("max σ")[1].split()[0]) for line in handle
                  if line.startswith("# step") and "max σ" in line]
    return snapshots, learner, time.perf_counter() - start, sigmas


def generated_frames(folder, seed, count):
    """The frames ``otf-spin generate`` selects and labels, in selection order."""
    from otf_spin.io.extxyz import read_frames
    from otf_spin.learning.generate import generate, load_generate

    data = _yaml("bccFe_generate.yaml")
    data["sampler"]["seed"] = seed
    data["select"]["count"] = count
    data["output"] = {k: os.path.join(folder, os.path.basename(v))
                      for k, v in data["output"].items()}
    path = os.path.join(folder, "generate.yaml")
    with open(path, "w") as handle:
        yaml.safe_dump(data, handle)
    with open(os.devnull, "w") as log:
        generate(load_generate(path), progress=False, log=log)
    return read_frames(data["output"]["extxyz"])


def field_rmse(model, reference) -> float:
    """RMSE (eV/μB) of the model's fields on the reference frames, all components."""
    errors = [model.predict(f.system, stds=False)["fields"] - f.fields for f in reference]
    return float(np.sqrt(np.mean(np.square(errors))))


def fit(frames):
    from otf_spin.model import build_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_model().fit(frames)


def needed(curve: dict, target: float):
    """Fewest labels after which the loop's RMSE is ≤ target (None if never)."""
    hits = [n for n in sorted(curve) if curve[n] <= target]
    return hits[0] if hits else None


def one_seed(seed, args):
    from otf_spin.model import storage

    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        reference = oracle_trajectory(folder, "reference", seed, args.steps, args.every,
                                      args.cells)
        pool = oracle_trajectory(folder, "pool", seed + 1000, args.steps, args.every,
                                 args.cells)
        t_ref = time.perf_counter() - t0
        snapshots, learner, t_otf, sigmas = otf_curve(folder, seed + 2000, args.steps,
                                                      args.cells)
        otf = {n: field_rmse(storage.from_bytes(b), reference) for n, b in snapshots.items()}
        t0 = time.perf_counter()
        generated = generated_frames(folder, seed, max(args.labels))
        t_gen = time.perf_counter() - t0
        steps_called = [int(f.info["provenance"]["step"]) for f in learner.store.frames()
                        if f.info["provenance"].get("origin") == "run"]
    order = np.random.default_rng(seed).permutation(len(pool))
    t0 = time.perf_counter()
    random = {n: field_rmse(fit([pool[k] for k in order[:n]]), reference) for n in args.labels}
    gen = {n: field_rmse(fit(generated[:n]), reference) for n in args.labels
           if n <= len(generated)}
    t_fit = time.perf_counter() - t0
    return {"otf": otf, "random": random, "generate": gen, "calls": learner.calls,
            "steps": steps_called, "sigmas": sigmas,
            "last_sigma": 1e3 * learner.last_max_std, "n_gen_atoms": sorted({len(f.system) for f in generated}),
            "times": (t_ref, t_otf, t_gen, t_fit), "n_ref": len(reference)}


def loop_at(curve: dict, n: int):
    """(RMSE of the loop's model with n labels — its last model if it stopped earlier —,
    labels it had)."""
    have = max(k for k in curve if k <= n) if any(k <= n for k in curve) else min(curve)
    return curve[have], have


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one seed, 300 steps, N = 4, 8")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--cells", type=int, default=2, choices=(2, 3),
                        help="repeats of the conventional cell (2: 16 atoms, 3: 54)")
    parser.add_argument("--steps", type=int, default=None, help="LLG steps of every run")
    parser.add_argument("--every", type=int, default=20, help="reference frame interval")
    parser.add_argument("--labels", type=int, nargs="+", default=None, help="N values")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    args.seeds = args.seeds or ([201] if args.quick else [201, 202, 203])
    args.steps = args.steps or (300 if args.quick else 2000)
    args.labels = sorted(args.labels or ([4, 8] if args.quick else [4, 8, 16, 24]))
    otf_cfg = _yaml("bccFe_otf_heisenberg.yaml")["otf"]
    print(f"bcc Fe, {2 * args.cells**3} atoms, LLG {args.steps} steps "
          f"(0.5 fs), T 300 -> 1000 K, Eq. 43 oracle with Eq. 41 moments, ideal lattice; "
          f"otf threshold {otf_cfg['threshold']} meV/μB ({otf_cfg['mode']}), check every "
          f"{otf_cfg['check_every']}, {otf_cfg['initial_frames']} initial frames + the start")
    print("field RMSE (meV/μB) on the reference trajectory (oracle LLG, frames every "
          f"{args.every} steps)\n")
    print(f"{'seed':>4s} {'N':>4s} {'otf (labels)':>14s} {'random':>8s} {'generate':>9s}"
          f"  {'otf needs for random(N)':>24s}")
    summary = []
    for seed in args.seeds:
        r = one_seed(seed, args)
        for n in args.labels:
            value, have = loop_at(r["otf"], n)
            need = needed(r["otf"], r["random"][n])
            gen = r["generate"].get(n, float("nan"))
            verdict = "never" if need is None else (
                f"{need} ({'ok' if need <= n / 2 else 'MISS'}: ≤ {n / 2:g})")
            print(f"{seed:4d} {n:4d} {1e3 * value:8.3f} ({have:3d}) {1e3 * r['random'][n]:8.3f}"
                  f" {1e3 * gen:9.3f}  {verdict:>24s}")
            summary.append((seed, n, value, r["random"][n], gen, need))
        curve = ", ".join(f"{n}: {1e3 * v:.2f}" for n, v in sorted(r["otf"].items()))
        t = r["times"]
        print(f"     loop: {r['calls']} labels, curve {{labels: RMSE}} {{{curve}}}")
        print(f"     loop calls at steps {r['steps']}, max σ at the calls "
              f"{min(r['sigmas'], default=0):.2f}-{max(r['sigmas'], default=0):.2f} meV/μB, "
              f"at the last check {r['last_sigma']:.2f}")
        print(f"     generate cells of "
              f"{r['n_gen_atoms']} atoms; {r['n_ref']} reference frames; wall s: oracle "
              f"runs {t[0]:.0f}, otf {t[1]:.0f}, generate {t[2]:.0f}, fits {t[3]:.0f}\n")
    rows = np.array([(s[2], s[3], s[4]) for s in summary])
    best = ["otf", "random", "generate"]
    wins = {b: int(np.sum(np.nanargmin(rows, axis=1) == k)) for k, b in enumerate(best)}
    met = sum(1 for s in summary if s[5] is not None and s[5] <= s[1] / 2)
    print(f"best at equal labels (rows): {wins}; otf within N/2 labels of random(N): "
          f"{met} of {len(summary)} rows (timings on a loaded machine are noisy)")


if __name__ == "__main__":
    main()
