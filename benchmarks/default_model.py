"""The default model of `otf-spin train` against the linear generalised-Heisenberg fit, per
generator seed, on every set of issue 15 item 4 (the measurement behind the defaults).

    python benchmarks/default_model.py [--seeds 401-410] [--sets a,d,b,c1,tri,pd]
                                       [--scale 0.2] [--cli-seeds 401] [--settings x.yaml]

Sets (16-atom bcc Fe unless said; 50 training frames unless said; energies rel. FM):
  a    paper Sec. III B, fixed moments, Heisenberg Eq. 43        target E ≤ 0.01
  d    300 K Monte Carlo, 25 × 16 atoms → 50 × 54 atoms          target E ≤ 0.5
  b    Eq. 41 (moments slaved to the angles)                     target median E ≤ 0.4
  c1   displaced atoms, Eq. 42, σ = 0.07 Å                       target E ≤ 0.5, B ≤ 0.6
  tri  bilinear + biquadratic + triangle three-spin (K 0.3 meV),
       input_examples/oracle_bccFe_biquadratic_triangle.yaml     target E ≤ 0.02, B ≤ 0.1
  pd   bilinear + pseudo-dipolar (D 0.4/0.2 meV, shells 1-2),
       input_examples/oracle_bccFe_pseudo_dipolar.yaml           target E ≤ 0.05, B ≤ 0.2
  c1m  (diagnosis, not in the default list) c1's frames relabelled with Eq. 43's cutoff
       moved from 3.962 Å (inside the third shell) to 4.3 Å: the c1 floor is that step
a, b, c1: 2500 × scale test frames (generate_set, as `otf-spin paper-sets`); tri, pd:
random-cone frames (cone axis uniform, half-angle U[0.3, 1.2] rad, as
benchmarks/descriptor_terms.py), 100 test frames, drawn from the seed after the
training frames.

Models: "default" = build_model(default_settings()) (or --settings), fitted as `otf-spin
train` does; every candidate of its term selection is evaluated too (same fit, no
extra cost: "2b" is the exchange-only model, "2b+dip", "2b+3b", …); "linear" = the
generalised-Heisenberg baseline of benchmarks/paper_heisenberg.py (linear kernel on all
Legendre orders of the same descriptor, fixed noise). Columns: energy RMSE (meV/atom),
field RMSE (meV/μB, Cartesian components of the transverse fields), largest field
angle error (degrees, atoms with |B| > 1 meV/μB), terms chosen, fit CPU s (the whole
selection), prediction atoms/s (CPU time, energy + fields, no stds). With --cli-seeds,
the same seed is also run through `otf-spin train` / `otf-spin predict` (subprocess, on
the frames written to extxyz) next to the library on the frames read back from those
files: the two rows must agree. Summary: median and worst per set and model, targets.
Tune on seeds 301-305; report seeds never looked at (401-410; 411-420 for the default
with the spline exchange term, whose spacing was tuned on 301-303).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paper_heisenberg import variants as paper_variants   # noqa: E402
from descriptor_terms import ORACLES, frames as cone_frames   # noqa: E402
from otf_spin.learning.paper_sets import generate_set   # noqa: E402
from otf_spin.model import build_model, default_settings   # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
SETS = {"a": "fixed moment (Eq. 43)", "d": "300 K 16 → 54 atoms", "b": "Eq. 41 moments",
        "c1": "displaced σ=0.07 Å", "tri": "bilin+biquad+triangle", "pd": "bilin+pseudo-dipolar",
        "c1m": "c1, Eq. 43 cut at 4.3 Å"}
#: targets (E meV/atom, B meV/μB or None); b: median over seeds; c1m: a diagnosis, the
#: frames of c1 relabelled with Eq. 43's cutoff moved from 1.4 a = 3.962 Å (0.04 Å inside
#: the third shell, so displaced third-shell pairs cross it: a step of J = 2.1 meV in
#: J(r)) to 4.3 Å (between shells 3 and 4, crossed by no pair)
TARGETS = {"a": (0.01, None), "d": (0.5, None), "b": (0.4, None), "c1": (0.5, 0.6),
           "tri": (0.02, 0.1), "pd": (0.05, 0.2), "c1m": (0.5, 0.6)}
MOVED_CUTOFF = 4.3   # Å
N_CONE_TEST = 100


def seed_list(text: str) -> list[int]:
    """'401-410' or '1,3,5' -> list of ints."""
    if "-" in text:
        first, last = map(int, text.split("-"))
        return list(range(first, last + 1))
    return [int(s) for s in text.split(",")]


def data(name: str, seed: int, scale: float):
    """(train, test) frames of set ``name`` for generator ``seed``."""
    from otf_spin.oracles import load_file

    if name == "a":
        return generate_set("random", seed, scale)
    if name == "b":
        return generate_set("eq41", seed, scale)
    if name == "c1":
        return generate_set("displaced_0.07", seed, scale)
    if name == "c1m":
        from otf_spin.core import Frame
        from otf_spin.learning import paper_sets
        from otf_spin.oracles.heisenberg import FormulaExchange, HeisenbergOracle

        eq43 = dict(paper_sets.EQ43, cutoff=MOVED_CUTOFF)
        oracle = HeisenbergOracle(FormulaExchange(**eq43), "double_counted", paper_sets.MOMENT,
                                  None, {"type": "heisenberg"})
        relabel = [[Frame(f.system, {k: oracle.compute(f.system)[k] for k in ("energy", "fields")})
                    for f in part] for part in generate_set("displaced_0.07", seed, scale)]
        return relabel[0], relabel[1]
    if name == "d":
        return generate_set("thermal_300K", seed)[0], generate_set("thermal_300K_54", seed)[1]
    oracle = load_file(os.path.join(ROOT, "input_examples",
                                    ORACLES["triangle" if name == "tri" else "pseudo_dipolar"]))
    rng = np.random.default_rng([seed, list(SETS).index(name)])
    return cone_frames(oracle, 50, rng), cone_frames(oracle, N_CONE_TEST, rng)


def transverse(fields, e):
    return fields - np.einsum("ik,ik->i", fields, e)[:, None] * e


def errors(predictions, test) -> dict:
    """E (meV/atom), B (meV/μB) RMSE and largest field angle error (degrees)."""
    dE = [(p["energy"] - f.energy) / len(f.system) for p, f in zip(predictions, test)]
    true = np.concatenate([transverse(f.fields, f.system.directions) for f in test])
    pred = np.concatenate([transverse(p["fields"], f.system.directions)
                           for p, f in zip(predictions, test)])
    big = np.linalg.norm(true, axis=1) > 1e-3
    cos = np.einsum("ik,ik->i", true[big], pred[big]) / (
        np.linalg.norm(true[big], axis=1) * np.linalg.norm(pred[big], axis=1) + 1e-300)
    angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    return {"E": 1e3 * np.sqrt(np.mean(np.square(dE))),
            "B": 1e3 * np.sqrt(np.mean(np.square(true - pred))),
            "ang": float(angle.max()) if len(angle) else 0.0}


def predict_all(model, test) -> tuple[list, float]:
    """Predictions and throughput (atoms per CPU second, energy + fields, no stds)."""
    start = time.process_time()
    out = [model.predict(f.system, stds=False) for f in test]
    cpu = time.process_time() - start
    return out, sum(len(f.system) for f in test) / max(cpu, 1e-9)


def fit(settings, train):
    """(fitted model, fit CPU s); warnings silenced (aliasing of the 16-atom cell)."""
    model = build_model(settings)
    start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(train)
    return model, time.process_time() - start


def term_name(terms) -> str:
    return "2b" + "".join({"exchange_3b": "+3b", "dipole_2b": "+dip",
                           "exchange_2b_spline": "+spl", "exchange_2b_angle": "+ang"}[t]
                           for t in terms)


def library_rows(settings, train, test) -> list[dict]:
    """Rows for the default model (and each candidate of its selection) and the linear
    baseline on one data set."""
    from otf_spin.model import selection
    from otf_spin.model.factory import build_gpr

    rows = []
    if selection.selects(settings):
        start = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            chosen, table = selection.select(settings, train, build_gpr, keep_models=True)
        fit_cpu = time.process_time() - start
        for r in table:
            pred, speed = predict_all(r["model"], test)
            rows.append(dict(errors(pred, test), model=term_name(r["terms"]),
                             chosen="*" if r["chosen"] else "", fit=r["fit_cpu_s"],
                             speed=speed))
            if r["chosen"]:
                rows.insert(0, dict(rows[-1], model="default", chosen=term_name(r["terms"]),
                                    fit=fit_cpu))
    else:
        model, fit_cpu = fit(settings, train)
        pred, speed = predict_all(model, test)
        rows.append(dict(errors(pred, test), model="default", chosen="(fixed)", fit=fit_cpu,
                         speed=speed))
    model, fit_cpu = fit(paper_variants()["generalised Heisenberg (linear)"], train)
    pred, speed = predict_all(model, test)
    rows.append(dict(errors(pred, test), model="linear", chosen="", fit=fit_cpu, speed=speed))
    return rows


def cli_rows(settings_file, train, test) -> list[dict]:
    """The default model through `otf-spin train` / `otf-spin predict` (subprocesses) and
    the library on the same extxyz files read back."""
    from otf_spin.io.extxyz import read_frames, write_frames

    with tempfile.TemporaryDirectory() as tmp:
        paths = {k: os.path.join(tmp, f"{k}.xyz") for k in ("train", "test", "pred")}
        write_frames(paths["train"], train)
        write_frames(paths["test"], test)
        model_path = os.path.join(tmp, "model.h5")
        cmd = [sys.executable, "-m", "otf_spin", "train", "--data", paths["train"],
               "--out", model_path] + (["--config", settings_file] if settings_file else [])
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        fit_wall = time.perf_counter() - start
        subprocess.run([sys.executable, "-m", "otf_spin", "predict", "--model", model_path,
                        "--data", paths["test"], "--out", paths["pred"], "--no-std",
                        "--quiet"], check=True, capture_output=True, text=True)
        test_back, train_back = read_frames(paths["test"]), read_frames(paths["train"])
        pred = [{"energy": f.energy, "fields": f.fields} for f in read_frames(paths["pred"])]
        from otf_spin.model import load
        from otf_spin.model.selection import EXTRA_TERMS

        terms = [t for t in EXTRA_TERMS
                 if load(model_path).settings["descriptor"].get(t) is not None]
        cli = dict(errors(pred, test_back), model="default CLI", chosen=term_name(terms),
                   fit=float("nan"), speed=float("nan"), fit_wall=fit_wall)
        lib = library_rows(load_settings(settings_file), train_back, test_back)[0]
        lib["model"] = "default lib (same files)"
    return [cli, lib]


def load_settings(path):
    if not path:
        return default_settings()
    from otf_spin.config.engine import validate_file
    from otf_spin.config.model import MODEL

    return validate_file(path, MODEL)


def num(v) -> str:
    """9 characters: 4 decimals, or 2 significant digits below 0.001 (exact references)."""
    return f"{v:9.2e}" if 0 < v < 1e-3 else f"{v:9.4f}"


def fmt(name, seed, r) -> str:
    return (f"{name:4s} {seed:5d} {r['model']:26s} {num(r['E'])} {num(r['B'])} {r['ang']:8.2f} "
            f"{r['chosen']:>9s} {r['fit']:7.2f} {r['speed']:9.0f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="401-410", help="e.g. 401-410 or 301,302")
    parser.add_argument("--sets", default="a,d,b,c1,tri,pd", help="comma-separated, of " +
                        ", ".join(SETS))
    parser.add_argument("--cli-only", action="store_true",
                        help="with --cli-seeds: only the CLI rows and the library on the same "
                             "files (not the in-memory library rows)")
    parser.add_argument("--scale", type=float, default=0.2,
                        help="scale the 2500 test frames of sets a, b, c1 (default 0.2)")
    parser.add_argument("--cli-seeds", default="", help="seeds also run through the CLI")
    parser.add_argument("--settings", default=None, help="model YAML instead of the defaults")
    args = parser.parse_args(argv)
    settings = load_settings(args.settings)
    seeds, cli = seed_list(args.seeds), seed_list(args.cli_seeds) if args.cli_seeds else []
    header = (f"{'set':4s} {'seed':>5s} {'model':26s} {'E meV/at':>9s} {'B meV/μB':>9s} "
              f"{'ang max°':>8s} {'terms':>9s} {'fit CPUs':>7s} {'pred at/s':>9s}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", flush=True)
    print(header, flush=True)
    print("-" * len(header), flush=True)
    table = {}
    for name in args.sets.split(","):
        for seed in seeds:
            train, test = data(name, seed, args.scale)
            rows = [] if args.cli_only else library_rows(settings, train, test)
            if seed in cli:
                rows += cli_rows(args.settings, train, test)
            for r in rows:
                table.setdefault((name, r["model"]), []).append(r)
                print(fmt(name, seed, r), flush=True)
        summary(name, table)


def summary(name, table):
    e_t, b_t = TARGETS[name]
    for (s, model), rows in table.items():
        if s != name or "CLI" in model or "same files" in model:
            continue
        E, B = np.array([r["E"] for r in rows]), np.array([r["B"] for r in rows])
        flag = ""
        if model == "default" and (name, "linear") in table:
            lin = np.array([r["E"] for r in table[name, "linear"]])
            e_ok = (np.median(E) if name == "b" else E.max()) <= e_t
            b_ok = b_t is None or B.max() <= b_t
            flag = (f"  target E ≤ {e_t}{' (median)' if name == 'b' else ''}"
                    + (f", B ≤ {b_t}" if b_t else "") + (": ok" if e_ok and b_ok else ": MISS")
                    + f"; beats linear on {int(np.sum(E < lin))}/{len(E)} seeds")
        print(f"{name:4s} {'med':>5s} {model:26s} {num(np.median(E))} {num(np.median(B))}"
              f"{flag}", flush=True)
        print(f"{name:4s} {'worst':>5s} {model:26s} {num(E.max())} {num(B.max())}", flush=True)


if __name__ == "__main__":
    main()
