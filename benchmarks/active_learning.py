"""Active learning against random and generated training sets: labels vs field error.

    python benchmarks/active_learning.py [--quick] [--seeds 201 202 203] [--cells 3]

The task: bcc Fe (16 atoms; ``--cells 3``: 54) heated 300 -> 1000 K by stochastic LLG,
the paper's Eq. 43 Heisenberg oracle with moments slaved to the angles (Eq. 41), atoms
thermally displaced: every coordinate of every atom moved by N(0, σ²), σ =
``--displacement`` (0.07 Å, about the rms thermal displacement of bcc Fe at 1000 K), one
such lattice per seed, frozen (the spin-dynamics runner moves spins only), shared by the
reference, the random pool and the loop. For every seed:

- reference: an LLG run on the oracle itself (seed s), frames every ``--every`` steps,
  labelled by the oracle — the fixed trajectory every model is scored on;
- otf: ``input_examples/bccFe_otf_heisenberg.yaml`` run by the real runner (dynamics
  seed s + 2000) once per ``--thresholds`` value (default 0.5, 0.625, 0.75 and 1 × the
  README threshold; its other settings as in the README example): a run with threshold
  t takes L(t) labels and ends with a model scored on the reference — the loop's
  learning curve is (L(t), RMSE(t)), compared with random and generated sets of the
  same L. For the README threshold and the lowest one the model in use after each
  label is scored too (chronological: the curve of one run, compared at N = ``--labels``);
- random: N frames drawn uniformly from another oracle LLG run of the same protocol
  (seed s + 1000), fitted up front with the default model (nested draws; RMSE averaged
  over ``--draws`` independent draws);
- generate: ``otf-spin generate`` on ``input_examples/bccFe_generate.yaml`` (sampler
  seed s, the same σ of Gaussian displacements of every sample — it cannot know the
  frozen lattice; select.count = largest N): its first N selected frames, fitted up front
  (farthest-point selection is greedy, so its first N are what count: N would give).

Field RMSE: over all components of all atoms of the reference frames (meV/μB), as
benchmarks/otf_heisenberg.py. Per N: the fewest labels of a loop model (final, or in
use after a label) at least as accurate as N random frames (target ≤ N/2). ``--save``
pickles the per-seed results (to reprint or analyse them).

``--bound``: what frame *selection* alone can buy on this task, without the loop. From
the random pool (100 frames of the oracle run), greedy selection one frame at a time,
every model fitted from scratch as ``otf-spin train`` fits: "error" adds the pool frame
whose field RMSE under the current model is largest (known only to an oracle: no
uncertainty measure can pick better frames by this rule), "sigma" the frame whose largest
per-atom |fields_std| is largest (pool-based active learning); both start from the
pool's frames 0 and 50 and are scored on the reference at N = ``--labels``, against
random(N) (mean of ``--draws``). If even "error" needs more than N/2 frames to reach
random(N), the ≤ N/2 target cannot be met by choosing which configurations to label.
``--random-only`` prints the random rows alone; ``--min-frames K`` sets the fewest frames
of the term choice for every fit, the loop's too (the comparison of docs/otf.md: 10 against 5).
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


def displace_lattice(sigma: float, seed: int) -> None:
    """Make every system the runner builds (``otf_spin.runner.build_system``) carry one
    frozen set of thermal displacements: N(0, σ²) per coordinate (Å), drawn once per
    seed and number of atoms."""
    from otf_spin import runner

    build = getattr(runner.build_system, "ideal", runner.build_system)

    def displaced(cfg, spin_seed):
        system = build(cfg, spin_seed)
        rng = np.random.default_rng([seed, len(system), 0xD15])
        system.positions += rng.normal(scale=sigma, size=system.positions.shape)
        return system

    displaced.ideal = build
    runner.build_system = displaced


def _run(folder, name, data, monitor):
    """Run the run-file ``data`` (a dict) in ``folder`` with the real runner (log:
    ``<folder>/<name>.log``)."""
    from otf_spin.factory import load_run
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
    from otf_spin.factory import load_run
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


def otf_curve(folder, seed, steps, repeat, threshold=None, overrides=None):
    """({labels: model bytes} of the loop's models in use, learner, wall s, max σ at each
    call in meV/μB) of the README example's loop (``threshold`` in meV/μB: else its own;
    ``overrides``: further ``otf`` keys, e.g. {"call_backoff": 2})."""
    from otf_spin.model import storage

    data = _yaml("bccFe_otf_heisenberg.yaml")
    data["system"]["repeat"] = [repeat] * 3
    data["dynamics"].update(steps=steps, seed=seed)
    data["otf"].update(overrides or {})
    if threshold is not None:
        data["otf"]["threshold"] = float(threshold)
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


def generated_frames(folder, seed, count, displacement):
    """The frames ``otf-spin generate`` selects and labels, in selection order."""
    from otf_spin.io.extxyz import read_frames
    from otf_spin.factory import load_generate
    from otf_spin.learning.generate import generate

    data = _yaml("bccFe_generate.yaml")
    data["sampler"].update(seed=seed, displacement=displacement)
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


def at_calls(frames, snapshots) -> dict:
    """How the σ that called the oracle compares with the error it found: for every
    in-run label (the k-th label overall), the model in use before it (``snapshots[k -
    1]``) predicts the labelled configuration. Per atom: |transverse field error|,
    |fields_std| (total) and the trigger σ (epistemic). Returns RMS error / RMS total,
    the mean over calls of (largest atom error, largest trigger σ, largest total σ) in
    meV/μB, and the Spearman rank correlation of total σ and error over the atoms."""
    from scipy.stats import spearmanr

    from otf_spin.model import storage

    err, tot, epi, worst = [], [], [], []
    for k, frame in enumerate(frames, start=1):
        if frame.info["provenance"].get("origin") != "run" or k - 1 not in snapshots:
            continue
        model = storage.from_bytes(snapshots[k - 1])
        p = model.predict(frame.system, stds=True)
        e = frame.system.directions
        diff = p["fields"] - frame.results["fields"]
        diff -= np.einsum("ik,ik->i", diff, e)[:, None] * e
        a = np.linalg.norm(diff, axis=1)
        t = np.linalg.norm(p["fields_std"], axis=1)
        u = np.linalg.norm(p["fields_std_epistemic"], axis=1)
        err.append(a), tot.append(t), epi.append(u)
        worst.append((a.max(), u.max(), t.max()))
    if not err:
        return {}
    a, t = np.concatenate(err), np.concatenate(tot)
    return {"ratio": float(np.sqrt(np.mean(a**2) / np.mean(t**2))),
            "worst": 1e3 * np.mean(worst, axis=0), "rank": float(spearmanr(t, a)[0]),
            "calls": len(err)}


def one_seed(seed, args):
    from otf_spin.model import storage

    cpu = time.process_time()
    displace_lattice(args.displacement, seed)
    runs = {}
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        reference = oracle_trajectory(folder, "reference", seed, args.steps, args.every,
                                      args.cells)
        pool = oracle_trajectory(folder, "pool", seed + 1000, args.steps, args.every,
                                 args.cells)
        t_ref = time.perf_counter() - t0
        t0 = time.perf_counter()
        for threshold in args.thresholds:
            own = os.path.join(folder, f"otf-{threshold:g}")    # its own store
            os.makedirs(own)
            snapshots, learner, _, sigmas = otf_curve(own, seed + 2000, args.steps,
                                                      args.cells, threshold, args.otf_set)
            steps = [int(f.info["provenance"]["step"]) for f in learner.store.frames()
                     if f.info["provenance"].get("origin") == "run"]
            final = field_rmse(storage.from_bytes(snapshots[learner.calls]), reference)
            readme = threshold == args.readme
            in_use = {n: field_rmse(storage.from_bytes(b), reference)
                      for n, b in snapshots.items()} \
                if readme or threshold == min(args.thresholds) else None
            runs[threshold] = {"labels": learner.calls, "rmse": final, "steps": steps,
                               "choices": learner.choices,
                               "sigmas": sigmas, "in_use": in_use,
                               "last_sigma": 1e3 * learner.last_max_std,
                               "at_calls": at_calls(learner.store.frames(), snapshots)
                               if readme else None}
        t_otf = time.perf_counter() - t0
        t0 = time.perf_counter()
        longest = runs[min(args.thresholds)]["in_use"]
        sizes = sorted(set(args.labels) | {r["labels"] for r in runs.values()}
                       | {n for n in args.labels if n in longest})
        old = reused(args.reuse, seed)
        generated = [] if old else \
            generated_frames(folder, seed, max(sizes), args.displacement)
        t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(len(pool)) for _ in range(args.draws)]
    random = {n: old["random"][n] if old and n in old["random"] else
              float(np.mean([field_rmse(fit([pool[k] for k in order[:n]]), reference)
                             for order in orders])) for n in sizes}
    gen = dict(old["generate"]) if old else \
        {n: field_rmse(fit(generated[:n]), reference) for n in sizes if n <= len(generated)}
    t_fit = time.perf_counter() - t0
    return {"runs": runs, "random": random, "generate": gen,
            "n_gen_atoms": old["n_gen_atoms"] if old else
            sorted({len(f.system) for f in generated}),
            "times": (t_ref, t_otf, t_gen, t_fit), "n_ref": len(reference),
            "cpu": time.process_time() - cpu}


def reused(path, seed) -> dict | None:
    """The results of ``seed`` in a ``--save`` pickle at ``path`` (None: no path, or no
    such seed): its random rows (the same pool and draws: the same numbers) and
    generated rows are reused, so that two loop rules compare on the same sets at the
    cost of the loop runs alone."""
    if not path:
        return None
    import pickle

    with open(path, "rb") as handle:
        return dict(pickle.load(handle)).get(seed)


def selection_bound(seed, args) -> dict:
    """{rule: {N: field RMSE}} of greedy pool selection (``--bound``; module doc) and
    random(N), for one seed (eV/μB)."""
    displace_lattice(args.displacement, seed)
    with tempfile.TemporaryDirectory() as folder:
        reference = oracle_trajectory(folder, "reference", seed, args.steps, args.every,
                                      args.cells)
        pool = oracle_trajectory(folder, "pool", seed + 1000, args.steps, args.every,
                                 args.cells)
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(len(pool)) for _ in range(args.draws)]
    out = {"random": {n: float(np.mean([field_rmse(fit([pool[k] for k in order[:n]]),
                                                  reference) for order in orders]))
                      for n in args.labels}}
    if args.random_only:
        return out
    rules = {"error": lambda model, f: field_rmse(model, [f]),
             "sigma": lambda model, f: float(np.max(np.linalg.norm(
                 model.predict(f.system, stds=True)["fields_std"], axis=1)))}
    for rule, score in rules.items():
        chosen, out[rule] = [0, len(pool) // 2], {}
        while True:
            model = fit([pool[k] for k in chosen])
            if len(chosen) in args.labels:
                out[rule][len(chosen)] = field_rmse(model, reference)
            if len(chosen) >= max(args.labels):
                break
            values = [-np.inf if k in chosen else score(model, f) for k, f in enumerate(pool)]
            chosen.append(int(np.argmax(values)))
    return out


def print_bound(seed, out, labels) -> list:
    """Print one seed's ``--bound`` rows; (seed, rule, N, fewest frames of the rule as
    accurate as random(N)) per row."""
    if len(out) == 1:                                   # --random-only
        print(f"seed {seed}: random(N), field RMSE meV/μB (mean of the draws): " + ", ".join(
            f"{n}: {1e3 * v:.3f}" for n, v in out["random"].items()), flush=True)
        return []
    print(f"{'seed':>4s} {'N':>4s} {'random':>7s} {'error':>7s} {'sigma':>7s}   (field RMSE "
          "meV/μB, greedy pool selection; fewest frames as accurate as random(N))", flush=True)
    rows = []
    for n in labels:
        need = {rule: min((m for m, v in out[rule].items() if v <= out["random"][n]),
                          default=None) for rule in ("error", "sigma")}
        verdict = ", ".join(f"{rule} {'never' if m is None else m}"
                            f" ({'ok' if m is not None and m <= n / 2 else 'MISS'})"
                            for rule, m in need.items())
        print(f"{seed:4d} {n:4d} {1e3 * out['random'][n]:7.3f} {1e3 * out['error'][n]:7.3f} "
              f"{1e3 * out['sigma'][n]:7.3f}   {verdict}", flush=True)
        rows += [(seed, rule, n, m) for rule, m in need.items()]
    return rows


def needed(runs: dict, target: float):
    """Fewest labels of a loop model with RMSE ≤ target (None if none): the final model
    of every run, and the models in use after each label of the runs whose were scored."""
    hits = [r["labels"] for r in runs.values() if r["rmse"] <= target]
    hits += [n for r in runs.values() for n, v in (r["in_use"] or {}).items() if v <= target]
    return min(hits) if hits else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one seed, 600 steps, thresholds 0.75 and 1 × the README's, "
                        "N = 4, 8")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--cells", type=int, default=2, choices=(2, 3),
                        help="repeats of the conventional cell (2: 16 atoms, 3: 54)")
    parser.add_argument("--steps", type=int, default=None, help="LLG steps of every run")
    parser.add_argument("--every", type=int, default=20, help="reference frame interval")
    parser.add_argument("--labels", type=int, nargs="+", default=None, help="N values")
    parser.add_argument("--thresholds", type=float, nargs="+", default=None,
                        help="loop thresholds (meV/μB), one run each")
    parser.add_argument("--draws", type=int, default=3,
                        help="random sets per N (their RMSEs averaged)")
    parser.add_argument("--displacement", type=float, default=0.07,
                        help="σ of the frozen thermal displacements (Å per coordinate)")
    parser.add_argument("--bound", action="store_true",
                        help="greedy pool selection by true error and by σ against "
                        "random (no loop runs; see the module doc)")
    parser.add_argument("--random-only", action="store_true",
                        help="with --bound: the random rows only (no greedy selection)")
    parser.add_argument("--min-frames", type=int, default=None,
                        help="fewest frames for the term choice of every fit, the loop's "
                        "re-choice included (otf_spin.model.selection.MIN_FRAMES and "
                        "otf_spin.learning.otf.RESELECT_FROM; default: the package's)")
    parser.add_argument("--margin", type=float, default=None,
                        help="hysteresis of the loop's choice of terms (otf_spin.model."
                        "selection.MARGIN; 1: none, the cheapest within the tolerance)")
    parser.add_argument("--reuse", default=None, metavar="PICKLE",
                        help="take the random and generate rows of each seed from this "
                        "--save pickle of a run with the same seeds, cells, steps and "
                        "draws (only the loop runs again: compare two loop rules)")
    parser.add_argument("--otf-set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override keys of the loop's otf section (YAML values, e.g. "
                        "call_backoff=2 min_steps_between_calls=20)")
    parser.add_argument("--save", default=None,
                        help="pickle every seed's results here (a list, rewritten per seed)")
    args = parser.parse_args(argv)
    args.otf_set = {k: yaml.safe_load(v) for k, v in
                    (item.split("=", 1) for item in args.otf_set)}
    warnings.simplefilter("ignore")
    if args.min_frames is not None:
        from otf_spin.learning import otf
        from otf_spin.model import selection

        # the loop's gate is bound at import (otf.RESELECT_FROM = selection.MIN_FRAMES)
        selection.MIN_FRAMES = otf.RESELECT_FROM = args.min_frames
    if args.margin is not None:
        from otf_spin.model import selection

        selection.MARGIN = args.margin      # read at every call of select
    otf_cfg = _yaml("bccFe_otf_heisenberg.yaml")["otf"]
    args.readme = float(otf_cfg["threshold"])
    args.seeds = args.seeds or ([201] if args.quick else [201, 202, 203])
    args.steps = args.steps or (600 if args.quick else 2000)
    args.labels = sorted(args.labels or ([4, 8] if args.quick else [4, 8, 16, 24]))
    if args.bound:
        halves = set() if args.random_only else {n // 2 for n in args.labels if n >= 4}
        labels = sorted(set(args.labels) | halves)
        args.labels, rows = labels, []
        print(f"bcc Fe, {2 * args.cells**3} atoms, LLG {args.steps} steps, 300 -> 1000 K, "
              f"displacements σ = {args.displacement} Å: greedy selection from a "
              f"random pool against random sets (mean of {args.draws} draws)\n", flush=True)
        for seed in args.seeds:
            rows += print_bound(seed, selection_bound(seed, args), labels)
        if args.random_only:
            return
        met = {rule: sum(1 for r in rows if r[1] == rule and r[3] is not None
                         and r[3] <= r[2] / 2) for rule in ("error", "sigma")}
        print(f"as accurate as random(N) with ≤ N/2 frames, of {len(rows) // 2} (seed, N): "
              f"{met}", flush=True)
        return
    args.thresholds = sorted(args.thresholds or [f * args.readme for f in (
        (0.75, 1.0) if args.quick else (0.5, 0.625, 0.75, 1.0))])
    print(f"bcc Fe, {2 * args.cells**3} atoms, LLG {args.steps} steps "
          f"(0.5 fs), T 300 -> 1000 K, Eq. 43 oracle with Eq. 41 moments, frozen thermal "
          f"displacements σ = {args.displacement} Å; otf as the README example ({otf_cfg['mode']},"
          f" check every {otf_cfg['check_every']}, {otf_cfg['initial_frames']} initial "
          f"frames + the start) at thresholds {args.thresholds} meV/μB"
          + (f"; otf keys set: {args.otf_set}" if args.otf_set else ""), flush=True)
    print(f"field RMSE (meV/μB, all components) on the reference trajectory (oracle LLG, "
          f"frames every {args.every} steps); random: mean of {args.draws} draws\n",
          flush=True)
    summary, equal, saved = [], [], []
    for seed in args.seeds:
        r = one_seed(seed, args)
        if args.save:
            import pickle

            saved.append((seed, {k: v for k, v in r.items()}))
            with open(args.save, "wb") as handle:
                pickle.dump(saved, handle)
        print(f"{'seed':>4s} {'threshold':>9s} {'labels':>6s} {'otf':>7s} {'random':>7s} "
              f"{'generate':>8s}   (same number of labels; otf: the run's final model)",
              flush=True)
        for threshold, run in sorted(r["runs"].items()):
            n = run["labels"]
            row = (run["rmse"], r["random"][n], r["generate"].get(n, float("nan")))
            equal.append(row)
            print(f"{seed:4d} {threshold:9.2f} {n:6d} {1e3 * row[0]:7.3f} {1e3 * row[1]:7.3f} "
                  f"{1e3 * row[2]:8.3f}", flush=True)
        print(f"{'seed':>4s} {'N':>9s} {'':6s} {'otf':>7s} {'random':>7s} {'generate':>8s}   "
              f"(otf: the model in use after N labels, threshold {min(args.thresholds):g}); "
              f"fewest loop labels as accurate as random(N)", flush=True)
        longest = r["runs"][min(args.thresholds)]["in_use"]
        for n in args.labels:
            need = needed(r["runs"], r["random"][n])
            verdict = "never" if need is None else (
                f"{need} ({'ok' if need <= n / 2 else 'MISS'}: ≤ {n / 2:g})")
            row = (longest.get(n, float("nan")), r["random"][n],
                   r["generate"].get(n, float("nan")))
            if n in longest:
                equal.append(row)
            print(f"{seed:4d} {n:9d} {'':6s} {1e3 * row[0]:7.3f} {1e3 * row[1]:7.3f} "
                  f"{1e3 * row[2]:8.3f}   {verdict}", flush=True)
            summary.append((seed, n, need))
        readme = r["runs"].get(args.readme)
        if readme:
            curve = ", ".join(f"{n}: {1e3 * v:.2f}" for n, v in sorted(readme["in_use"].items()))
            print(f"     threshold {args.readme:g}: model in use after each label "
                  f"{{labels: RMSE}} {{{curve}}}", flush=True)
            print(f"     its calls at steps {readme['steps']}, max σ at the calls "
                  f"{min(readme['sigmas'], default=0):.2f}-{max(readme['sigmas'], default=0):.2f}"
                  f" meV/μB, at the last check {readme['last_sigma']:.2f}", flush=True)
            c = readme["at_calls"]
            if c:
                print(f"     at its {c['calls']} in-run calls (model before the label): RMS "
                      f"atom error / RMS total σ {c['ratio']:.2f}, rank {c['rank']:.2f}; "
                      f"mean largest atom error {c['worst'][0]:.2f}, trigger σ "
                      f"{c['worst'][1]:.2f}, total σ {c['worst'][2]:.2f} meV/μB", flush=True)
        t = r["times"]
        print(f"     generate cells of {r['n_gen_atoms']} atoms; {r['n_ref']} reference frames;"
              f" wall s: oracle runs {t[0]:.0f}, otf {t[1]:.0f}, generate {t[2]:.0f}, fits "
              f"{t[3]:.0f}; CPU s {r['cpu']:.0f}\n", flush=True)
    rows = np.array(equal)
    wins = {b: int(np.sum(np.nanargmin(rows, axis=1) == k))
            for k, b in enumerate(["otf", "random", "generate"])}
    met = sum(1 for s in summary if s[2] is not None and s[2] <= s[1] / 2)
    print(f"best at equal labels (all rows above): {wins}; loop as accurate as random(N) with "
          f"≤ N/2 labels: {met} of {len(summary)} (seed, N)", flush=True)


if __name__ == "__main__":
    main()
