"""Calibration of the predictive stds (energy_std, fields_std) of the default model.

    python benchmarks/uncertainty.py [--seeds 201-203] [--cases b50,b10,...] [--plot f.png]
    python benchmarks/uncertainty.py --timing [--displacement 0.07]
    python benchmarks/uncertainty.py --diagnose [--seeds 301-303] [--cases cone,d54]

For each case (training set → held-out test frames, generated afresh per seed by
otf_spin.learning.paper_sets) the default model of `otf-spin train` is fitted and one
row printed: field RMSE (meV/μB), ratio RMS per-atom |field error| / RMS per-atom
|fields_std| (target 0.7-1.5), Spearman rank correlation of per-atom |fields_std| with
per-atom |field error| (target ≥ 0.5), the same ratio and rank correlation for frame
energies, and the extra cost of the stds: predict(stds=True) / predict(stds=False) - 1
(16-atom frames, noisy; ``--timing`` measures it at 16, 54 and 16 000 atoms), and
epi/std: RMS of the epistemic part (``fields_std_epistemic``, what the on-the-fly
trigger sees) over RMS of the total.

cases: b50 Eq. 41 set, 50 frames (in domain); b10 the same with 10 training frames;
cone Eq. 41 training frames with cone angle < 90° only, tested on cones > 90°; T
300 K training (25 frames), tested at 1000 K; c1 displaced σ = 0.07 Å (in domain); c2
trained on σ = 0.07 Å, tested on σ = 0.25 Å; d54 300 K 16-atom training, the 50
54-atom test cells of thermal_300K_54; tri, pd the beyond-Heisenberg references of
benchmarks/default_model.py (bilinear + biquadratic + triangle three-spin; bilinear +
pseudo-dipolar; 50 random-cone training frames, 100 test frames); b54 b50's model
tested on 50 54-atom cells of Eq. 41 frames (not in the default list; since the ninth
session); p07 displaced atoms out of domain: trained on the perfect-lattice random set
(fixed 2.2 μB moments), tested on the displaced σ = 0.07 Å set (not in the default list;
since the thirteenth session). The column "flagged" is the fraction of test frames the
model's training-domain check (otf_spin/model/domain.py, the warning of `otf-spin
predict`) flags. A calibration plot
(|error| against |std| per atom, every case) is drawn with matplotlib (Agg) if
installed.

``--transfer-column`` adds a column "B no-tr": the field err/std of the same fit with
the structure transfer of κ² off (factor 1; it differs from "B err/std" only where a
test cell is not a training cell, d54 here). ``--ideal-rank`` adds a column "B ideal":
the field rank a perfectly calibrated std would get (errors drawn from the stds
themselves; below 0.5 the stds vary too little from atom to atom for any calibration to
reach the rank target). ``--exact`` adds a column "B exact": the field err/std the stds would give with the
exact posterior field variance in place of the proxy κ²v (the same noise profile,
c² = Σ error² / Σ variance over the same held-out atoms; slow: the (N, 3, M) gradient
block per test frame). ``--radial-scaling R_S,M`` (or ``none``) fits every model with
that descriptor radial prior u(r) = 1/(1 + (r/R_S)^M) instead of the default.
``--variance-sparse N`` (or ``none``: every sparse point) fits every model with that
variance posterior (the model setting ``variance_sparse``: the local-energy variances of
the field stds from each kernel's first N sparse points; default 24).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import default_model   # noqa: E402  (the beyond-Heisenberg sets tri, pd)
from otf_spin.learning.paper_sets import generate_set   # noqa: E402
from otf_spin.model import build_model   # noqa: E402

N_TEST = 100     # test frames per case
SETTINGS = None  # model settings of every fit (None: the defaults; see --radial-scaling,
#                 --variance-sparse)


def settings_with(radial_scaling: str | None = None, variance_sparse: str | None = None):
    """Default model settings with the exchange-2b radial prior ``radial_scaling``
    ("R_S,M" or "none") and the variance posterior ``variance_sparse`` ("N" or "none"),
    each where given."""
    from otf_spin.config.model import default_settings

    s = default_settings()
    if radial_scaling:
        s["descriptor"]["radial_scaling"] = None if radial_scaling.lower() == "none" else \
            [float(x) for x in radial_scaling.split(",")]
    if variance_sparse:
        s["variance_sparse"] = None if variance_sparse.lower() == "none" else \
            int(variance_sparse)
    return s


def _cone(frames, low: bool):
    return [f for f in frames if (f.info["cone_angle"] < np.pi / 2) == low]


def eq41_frames(repeat: int, n: int, rng):
    """``n`` Eq. 41 frames (random configurations of the paper set generator, moments
    slaved) of a bcc cell of ``repeat``³ × 2 atoms."""
    from otf_spin.core import Frame
    from otf_spin.learning.paper_sets import MOMENT, A, paper_oracle, random_configuration
    from otf_spin.system import bulk

    oracle = paper_oracle(slaving=True)
    frames = []
    for _ in range(n):
        system = bulk("bcc", A, (repeat,) * 3, moment=MOMENT)
        system.set_directions(random_configuration(system, rng)[0])
        r = oracle.compute(system)
        system.moments = r["magmoms"]
        frames.append(Frame(system, {"energy": r["energy"], "fields": r["fields"]}))
    return frames


def case_data(case: str, seed: int):
    """(train, test) frame lists of ``case``."""
    def load(name):
        return generate_set(name, seed, 0.04)
    if case == "b50":
        train, test = load("eq41")
    elif case == "b10":
        train, test = load("eq41")
        train = train[:10]
    elif case == "cone":
        train, test = load("eq41")
        train, test = _cone(train, True), _cone(test, False)
    elif case == "T":
        train = generate_set("thermal_300K", seed)[0]
        test = sum(generate_set("thermal_1000K", seed), [])
    elif case == "c1":
        train, test = load("displaced_0.07")
    elif case == "c2":
        train, test = load("displaced_0.07")[0], load("displaced_0.25")[1]
    elif case in ("tri", "pd"):     # beyond-Heisenberg references (issue 15's sets)
        train, test = default_model.data(case, seed, 1.0)
    elif case == "d54":     # the set's 50 test cells (scale 0.04 would leave 2)
        train = generate_set("thermal_300K", seed)[0]
        test = generate_set("thermal_300K_54", seed)[1]
    elif case == "p07":     # perfect-lattice training, displaced test atoms
        train, test = load("random")[0], load("displaced_0.07")[1]
    elif case == "b54":     # b50's model on 50 54-atom cells of Eq. 41 frames
        train = load("eq41")[0]
        test = eq41_frames(3, 50, np.random.default_rng([seed, 54]))
    else:
        raise SystemExit(f"unknown case {case!r}")
    return train, test[:N_TEST]


def evaluate(model, test):
    """Per-atom field errors and stds (|·| of the 3-vectors), frame energy errors and
    stds, and the time ratio of predict with and without stds."""
    for f in test:                      # warm-up: per-structure caches (FM rows, the
        model.predict(f.system, stds=True)   # κ² transfer: timed only where every test
    t0 = time.perf_counter()                 # frame is its own structure, c1 and c2)
    for f in test:
        model.predict(f.system, stds=False)
    t1 = time.perf_counter()
    predictions = [model.predict(f.system, stds=True) for f in test]
    t2 = time.perf_counter()
    err_b = np.concatenate([np.linalg.norm(p["fields"] - f.fields, axis=1)
                            for p, f in zip(predictions, test)])
    std_b = np.concatenate([np.linalg.norm(p["fields_std"], axis=1) for p in predictions])
    evaluate.epistemic = np.concatenate([np.linalg.norm(p["fields_std_epistemic"], axis=1)
                                         for p in predictions])
    evaluate.components = np.concatenate([p["fields_std"] for p in predictions])
    err_e = np.array([abs(p["energy"] - f.energy) for p, f in zip(predictions, test)])
    std_e = np.array([p["energy_std"] for p in predictions])
    return err_b, std_b, err_e, std_e, (t2 - t1) / (t1 - t0) - 1


def _components(model, system, R, alpha, fields) -> dict:
    """Per atom of ``system`` under the posterior (R, α) (R: upper factor of Λ): |field
    error| (eV/μB), the noise profile h, the local-energy posterior variance v =
    k_iᵀΛ⁻¹k_i (eV², the proxy the stds use: the model's variance posterior,
    :meth:`SparseGPR.local_variances`), the exact posterior variance of the
    field (summed over components, (eV/μB)², from the (N, 3, M) gradient block the
    stds avoid) and the Nyström residual ρ = Σ_k δ_k² (k(d,d) - k_dS K_SS⁻¹ k_Sd) of
    the atom's descriptor (eV²)."""
    from scipy.linalg import solve_triangular

    d, d_fm = model.descriptor.compute(system), model.descriptor.compute_fm(system)
    _, phi_B = model._design_columns(system, d, d_fm, model.sparse)
    B = phi_B.reshape(-1, model.n_sparse_total)
    exact = solve_triangular(R, B.T, trans="T")
    e = system.directions
    true = fields - np.einsum("ik,ik->i", fields, e)[:, None] * e
    return {"err": np.linalg.norm((B @ alpha).reshape(-1, 3) - true, axis=1),
            "h": model._hardness(d), "v": model.local_variances(model._local_rows(d, d_fm)),
            "exact": np.sum(exact**2, axis=0).reshape(-1, 3).sum(axis=1),
            "rho": _nystrom(model, d)}


def _nystrom(model, d):
    """Nyström residual ρ = Σ_k δ_k² (k(d,d) - k_dS K_SS⁻¹ k_Sd) (N,) (eV²) of
    descriptors ``d`` (N, D): the distance of each environment from the sparse sets."""
    from scipy.linalg import solve_triangular

    rho = np.zeros(len(d))
    for k, (kernel, S, K) in enumerate(zip(model.kernels, model.sparse,
                                           model._prior_blocks())):
        A = solve_triangular(np.linalg.cholesky(K), kernel(d, S).T, lower=True)
        kdd = np.array([kernel(x[None], x[None])[0, 0] for x in d])
        rho += model.hyper[f"delta_{k}"] ** 2 * np.maximum(kdd - np.sum(A * A, axis=0), 0)
    return rho


def diagnose(case: str, seed: int) -> None:
    """What the field std is made of, on the test atoms and on the held-out training
    atoms (each frame predicted without it, the data the calibration sees): RMS of each part (noise c√2σ_b h,
    local c κ √v, exact posterior √(Σ var), Nyström √ρ) and its growth test/held-out
    against the error's, and the Spearman rank of each against the test errors; then
    the test err/std of the stds and with the exact field variance in place of κ²v,
    and the growth of v with one kernel block's row at a time (:func:`_block_growth`)."""
    train, test = case_data(case, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(SETTINGS).fit(train)
    parts = {"test": [], "held-out": []}
    for f in test:
        parts["test"].append(_components(model, f.system, model._R, model.alpha, f.fields))
    for (_, _, error2, local, exact), f in zip(model.held_out_frames(), model.frames):
        if error2 is not None:          # each frame by the posterior without it
            parts["held-out"].append({"err": np.sqrt(error2), "h": model._hardness(f.d),
                                      "v": local, "exact": exact, "rho": _nystrom(model, f.d)})
    h = model.hyper
    scale = {"err": 1.0, "h": h.get("std_field_noise", 0.0), "v": h.get("std_field_local", 0.0),
             "exact": 1.0, "rho": 1.0}
    rms = {}
    for where, rows in parts.items():
        joined = {key: np.concatenate([r[key] for r in rows]) for key in scale}
        rms[where] = {key: scale[key] * np.sqrt(np.mean(x if key in ("v", "exact", "rho")
                                                        else x**2))
                      for key, x in joined.items()}
        if where == "test":
            ranks = {key: rank(x, joined["err"]) for key, x in joined.items() if key != "err"}
    growth = {key: rms["test"][key] / rms["held-out"][key] if rms["held-out"][key] else np.nan
              for key in scale}
    print(f"{case:5s} {seed:4d} " + " ".join(
        f"{key}:{1e3 * rms['test'][key]:.3g}/x{growth[key]:.2g}" for key in scale) +
        " | rank " + " ".join(f"{key}:{r:+.2f}" for key, r in ranks.items()), flush=True)
    # the test err/std the stds give, and what they would give with the exact posterior
    # field variance in place of κ²v (same c² = std_field_noise² / 2σ_b²)
    atoms = {key: np.concatenate([r[key] for r in parts["test"]]) for key in scale}
    noise2 = (h.get("std_field_noise", 0.0) * atoms["h"]) ** 2
    c2 = h.get("std_field_noise", 0.0) ** 2 / (2 * h["sigma_field"] ** 2)
    with_v = ratio(atoms["err"], np.sqrt(noise2 + h.get("std_field_local", 0.0) ** 2 * atoms["v"]))
    with_exact = ratio(atoms["err"], np.sqrt(noise2 + c2 * atoms["exact"]))
    blocks = _block_growth(model, [f.system for f in model.frames], [f.system for f in test])
    print(f"      err/std {with_v:.2f}, with the exact field variance {with_exact:.2f} | "
          "v of each kernel block alone (growth test ÷ training) " +
          " ".join(f"{g:.2g}" for g in blocks[:-1]) + f", all blocks together {blocks[-1]:.2g}",
          flush=True)


def _block_growth(model, train, test) -> np.ndarray:
    """Growth (test ÷ training, mean per atom) of the local-energy variance v of the full
    posterior (not the variance posterior of the stds)
    with the kernel row of one kernel block at a time (its columns of R⁻ᵀ), then of v
    itself (all blocks): blocks whose descriptors are nearly collinear on the training
    cells cancel in v, and their cancellation can fail on new cells."""
    Rinv = model.posterior_inverse()
    ends = np.cumsum([len(S) for S in model.sparse])

    def mean_v(systems):
        total, n = np.zeros(len(ends) + 1), 0
        for system in systems:
            d, d_fm = model.descriptor.compute(system), model.descriptor.compute_fm(system)
            rows = model._local_rows(d, d_fm)
            for b, (lo, hi) in enumerate(zip(np.append(0, ends[:-1]), ends)):
                total[b] += np.sum((rows[:, lo:hi] @ Rinv[lo:hi]) ** 2)
            total[-1] += np.sum((rows @ Rinv) ** 2)
            n += len(system)
        return total / n
    return mean_v(test) / mean_v(train)


def exact_ratio(model, test) -> float:
    """Test field err/std with the exact posterior field variance in place of κ²v: per
    atom c² (2 σ_b² h_i² + Σ_c b_icᵀΛ⁻¹b_ic), c² = Σ error² / Σ variance over the held-out
    training atoms the calibration uses (leave-one-frame-out, less the isolated outlier
    frame), as :meth:`SparseGPR.calibrate` does for κ²v."""
    from otf_spin.model.gpr import isolated_outlier

    held = [(x, f) for x, f in zip(model.held_out_frames(), model.frames)
            if x[2] is not None]
    outlier = isolated_outlier([np.mean(x[2]) for x, _ in held])
    held = [item for j, item in enumerate(held) if j != outlier]
    noise2 = 2 * model.hyper["sigma_field"] ** 2
    error2 = np.concatenate([x[2] for x, _ in held])
    variance = np.concatenate([noise2 * model._hardness(f.d) ** 2 + x[4] for x, f in held])
    c2 = error2.sum() / variance.sum()
    err, var = [], []
    for f in test:
        parts = _components(model, f.system, model._R, model.alpha, f.fields)
        err.append(parts["err"])
        var.append(c2 * (noise2 * parts["h"] ** 2 + parts["exact"]))
    return ratio(np.concatenate(err), np.sqrt(np.concatenate(var)))


def without_transfer(model, test, err_b) -> float:
    """Field err/std of ``model`` on ``test`` with the structure transfer of κ² off
    (hyper std_transfer_disorder removed for the call; ``err_b`` the per-atom errors)."""
    ref = model.hyper.pop("std_transfer_disorder", None)
    try:
        std = np.concatenate([np.linalg.norm(model.predict(f.system)["fields_std"], axis=1)
                              for f in test])
    finally:
        if ref is not None:
            model.hyper["std_transfer_disorder"] = ref
    return ratio(err_b, std)


def ratio(err, std) -> float:
    return float(np.sqrt(np.mean(err**2) / np.mean(std**2)))


def rank(a, b) -> float:
    return float(spearmanr(a, b)[0]) if len(a) > 2 else np.nan


def ideal_rank(components, draws: int = 50) -> float:
    """The field rank a perfectly calibrated std would get: the median over ``draws``
    (seeded) of the Spearman rank of the per-atom |std| against errors drawn from the
    stds themselves, |s_i ⊙ ξ_i| with ξ_i standard normal (``components`` (N, 3): the
    per-component fields_std). Below 0.5 the stds vary too little from atom to atom for
    any calibration to reach the rank target."""
    rng = np.random.default_rng(0)
    std = np.linalg.norm(components, axis=1)
    return float(np.median([rank(std, np.linalg.norm(
        components * rng.standard_normal(components.shape), axis=1)) for _ in range(draws)]))


def timing(repeats: int = 5, sizes=(16, 54, 16000), displacement: float = 0.0):
    """Cost of the stds: median time of predict(stds=True) and predict(stds=False) of
    the default model (Eq. 41 set, 50 frames, seed 1) on bcc Fe cells of ``sizes``
    atoms, every coordinate displaced by N(0, ``displacement``²) Å (a frozen thermal
    lattice: the engine's full-descriptor path; 0: the perfect lattice, its shell
    basis); prints the extra fraction (target ≤ 0.2). Then the same on the dynamics' path
    (:class:`~otf_spin.dynamics.providers.ComputeProvider`, the compiled engine): energy
    and fields alone against with ``fields_std_epistemic``, the on-the-fly loop's check."""
    from otf_spin.calculator import ENERGY, FIELDS, FIELDS_STD_EPISTEMIC
    from otf_spin.dynamics.providers import ComputeProvider
    from otf_spin.learning.paper_sets import A, random_configuration
    from otf_spin.system import bulk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(SETTINGS).fit(generate_set("eq41", 1, 0.001)[0])
    rng = np.random.default_rng(0)
    stages = []
    print(f"{'atoms':>6s} {'E+B s':>9s} {'E+B+σ s':>9s} {'σ extra':>8s}   "
          f"{'engine E+B s':>12s} {'check E+B+σ s':>13s} {'σ extra':>8s}")
    for n in sizes:
        repeat = round((n / 2) ** (1 / 3))
        system = bulk("bcc", A, (repeat,) * 3, moment=2.2)
        system.positions += rng.normal(0.0, displacement, system.positions.shape)
        system.set_directions(random_configuration(system, rng)[0])
        times = {}
        model.predict(system, stds=True)          # warm-up (neighbour lists, caches)
        for stds in (False, True, False, True):
            runs = []
            for _ in range(repeats if n < 1000 else 2):
                t0 = time.perf_counter()
                model.predict(system, stds=stds)
                runs.append(time.perf_counter() - t0)
            times.setdefault(stds, []).extend(runs)
        plain, with_std = np.median(times[False]), np.median(times[True])
        # the provider keeps its last prediction: alternate two configurations
        provider = ComputeProvider(model, system)
        configs = [random_configuration(system, rng)[0] for _ in range(2)]
        calls = 50 * repeats if n < 1000 else 2
        engine = {}
        for props in ((ENERGY, FIELDS), (ENERGY, FIELDS, FIELDS_STD_EPISTEMIC)) * 2:
            provider.compute(configs[1], props)       # warm-up
            t0 = time.perf_counter()
            for k in range(calls):
                provider.compute(configs[k % 2], props)
            engine.setdefault(len(props), []).append((time.perf_counter() - t0) / calls)
        e_plain, e_std = min(engine[2]), min(engine[3])
        print(f"{len(system):6d} {plain:9.4f} {with_std:9.4f} {with_std / plain - 1:8.2f}   "
              f"{e_plain:12.3e} {e_std:13.3e} {e_std / e_plain - 1:8.2f}", flush=True)
        stages.append((len(system), e_plain, _std_stages(provider, system, calls)))
    print("left: model.predict (the reference path) without / with the stds; right: the "
          "dynamics' path (the compiled engine for energy and fields; the check's σ "
          "from the local-energy variances made in the engine's own pass where the model "
          "allows it, FastPredictor.fused_variances, else by the model's formulas on the "
          "engine's descriptors, FastPredictor.stds), best of two passes")
    names = list(stages[0][2]) if stages else []
    print(f"\nσ of a check by stage, in units of the engine's E+B (each stage timed alone, "
          f"best of 3):\n{'atoms':>6s} " + " ".join(f"{n:>13s}" for n in names))
    for n, e_plain, times in stages:
        print(f"{n:6d} " + " ".join(f"{times[k] / e_plain:13.2f}" for k in names))


def _std_stages(provider, system, calls) -> dict:
    """Seconds per call of the stages of a check on ``system`` (the provider's engine,
    its last structure). Where the model's σ comes from the engine's own pass
    (:attr:`FastPredictor.fused_variances`: calibrated, unnormalised kernels, no spline
    block): the evaluation with the local-energy variances less the one without, and
    the std from them (:meth:`FastPredictor.epistemic`). Otherwise
    (:meth:`FastPredictor.stds`): the engine's descriptors (after an evaluation at the
    same directions, as in a check: the copy of its full descriptors; on the shell path
    a pass), the gather into the model's layout, the kernel rows k(d, S), the FM rows,
    rows·R⁻¹ and the sums of squares with the κ² transfer."""
    from otf_spin.kernels.blas_threads import SERIAL_BELOW, one_thread
    from otf_spin.model.gpr import _times_upper

    fast = provider._fast[1]
    model = fast.model
    engine = fast.engine(system)
    e = np.ascontiguousarray(system.directions)
    if fast.fused_variances:
        scale, zero = -1.0 / system.magnitudes, np.zeros(3)
        fields, v = np.empty((len(system), 3)), np.empty(len(system))
        fast.field_and_variances(system, e, scale, zero, fields)   # installs the posterior
        steps = {"E+B": lambda: engine.field(e, scale, zero, fields),
                 "E+B+v": lambda: engine.field(e, scale, zero, fields, v),
                 "std from v": lambda: fast.epistemic(system, v)}
    else:
        engine.compute(e, False)    # a check follows the evaluation at its directions: the
        raw = np.empty((len(system), len(fast.perm)))       # descriptor stage copies its d
        engine.descriptors(e, raw)
        d, d_fm = fast.descriptors(system), fast.fm_descriptors(system)
        rows = model._local_rows(d, d_fm)
        V = _times_upper(rows, model.posterior_inverse())
        steps = {"descriptors": lambda: engine.descriptors(e, raw),
                 "layout": lambda: fast._model_layout(raw),
                 "kernel rows": lambda: model._kernel_rows(d),
                 "FM rows": lambda: model._fm_rows(d_fm),
                 "rows·R⁻¹": lambda: _times_upper(rows, model.posterior_inverse()),
                 "sums,transfer": lambda: (np.einsum("im,im->i", V, V),
                                           model._transfer(system, d_fm))}
    out = {}
    with one_thread(len(system) < SERIAL_BELOW):
        for name, step in steps.items():
            best = np.inf
            for _ in range(3):
                t0 = time.perf_counter()
                for _ in range(calls):
                    step()
                best = min(best, (time.perf_counter() - t0) / calls)
            out[name] = best
    if fast.fused_variances:
        out = {"v in the pass": out["E+B+v"] - out["E+B"], "std from v": out["std from v"]}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="201-203", help="e.g. 201-203 or 1,2")
    parser.add_argument("--cases", default="b50,b10,cone,T,c1,c2,d54,tri,pd")
    parser.add_argument("--plot", default="uncertainty_calibration.png",
                        help="calibration plot file ('' = none)")
    parser.add_argument("--timing", action="store_true",
                        help="only the cost table of the stds (16, 54, 16000 atoms)")
    parser.add_argument("--displacement", type=float, default=0.0, metavar="Å",
                        help="--timing on cells with every coordinate displaced by "
                             "N(0, σ²) Å (the engine's full-descriptor path; 0: the perfect "
                             "lattice and its shell basis)")
    parser.add_argument("--diagnose", action="store_true",
                        help="what the field std is made of, per case (slow: exact "
                             "posterior field variances)")
    parser.add_argument("--exact", action="store_true",
                        help="add the field err/std with the exact posterior field variance "
                             "in place of the proxy (slow)")
    parser.add_argument("--transfer-column", action="store_true",
                        help="add the field err/std with the structure transfer of κ² off")
    parser.add_argument("--ideal-rank", action="store_true",
                        help="add the field rank a perfectly calibrated std would get "
                             "(errors drawn from the stds themselves, ideal_rank)")
    parser.add_argument("--radial-scaling", default=None, metavar="R_S,M",
                        help="descriptor radial prior of every fit (default: the model "
                             "default; 'none' = off)")
    parser.add_argument("--variance-sparse", default=None, metavar="N",
                        help="sparse points per kernel of the variance posterior of every "
                             "fit (default: the model default, 24; 'none' = all)")
    args = parser.parse_args(argv)
    global SETTINGS
    if args.radial_scaling or args.variance_sparse:
        SETTINGS = settings_with(args.radial_scaling, args.variance_sparse)
    if args.timing:
        timing(displacement=args.displacement)
        return
    if "-" in args.seeds:
        first, last = map(int, args.seeds.split("-"))
        seeds = range(first, last + 1)
    else:
        seeds = [int(s) for s in args.seeds.split(",")]
    if args.diagnose:
        print("per part: RMS on the test atoms (meV/μB; v as c κ √v; ρ as √ρ, meV of "
              "local energy) / growth test ÷ held-out; rank: Spearman with the test errors")
        for case in args.cases.split(","):
            for seed in seeds:
                diagnose(case, seed)
        return
    header = (f"{'case':5s} {'seed':>4s} {'n_tr':>4s} {'B meV/μB':>9s} {'B err/std':>9s} "
              f"{'B rank':>6s} {'E meV/at':>9s} {'E err/std':>9s} {'E rank':>6s} "
              f"{'σ extra':>7s} {'epi/std':>7s} {'flagged':>7s}"
              + (f" {'B exact':>7s}" if args.exact else "")
              + (f" {'B no-tr':>7s}" if args.transfer_column else "")
              + (f" {'B ideal':>7s}" if args.ideal_rank else ""))
    print(header)
    print("-" * len(header))
    points = {}
    summary = []
    for case in args.cases.split(","):
        for seed in seeds:
            train, test = case_data(case, seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = build_model(SETTINGS).fit(train)
            err_b, std_b, err_e, std_e, cost = evaluate(model, test)
            n = len(test[0].system)
            row = (ratio(err_b, std_b), rank(std_b, err_b), ratio(err_e, std_e),
                   rank(std_e, err_e))
            summary.append((case, seed) + row)
            ok = 0.7 <= row[0] <= 1.5 and row[1] >= 0.5 and 0.7 <= row[2] <= 1.5
            print(f"{case:5s} {seed:4d} {len(train):4d} "
                  f"{1e3 * np.sqrt(np.mean(err_b**2) / 3):9.3g} {row[0]:9.2f} {row[1]:6.2f} "
                  f"{1e3 * np.sqrt(np.mean(err_e**2)) / n:9.3g} {row[2]:9.2f} {row[3]:6.2f} "
                  f"{cost:7.2f} {np.sqrt(np.mean(evaluate.epistemic**2) / np.mean(std_b**2)):7.2f}"
                  f" {np.mean([model.domain().outside(f.system) is not None for f in test]):7.2f}"
                  + (f" {exact_ratio(model, test):7.2f}" if args.exact else "")
                  + (f" {without_transfer(model, test, err_b):7.2f}"
                     if args.transfer_column else "")
                  + (f" {ideal_rank(evaluate.components):7.2f}" if args.ideal_rank else "")
                  + f"{'' if ok else '  (outside a target)'}", flush=True)
            points.setdefault(case, []).append((std_b, err_b))
    rows = np.array([s[2:] for s in summary], float)
    print(f"field err/std {rows[:, 0].min():.2f}-{rows[:, 0].max():.2f} (target 0.7-1.5), "
          f"worst field rank {np.nanmin(rows[:, 1]):.2f} (≥ 0.5), "
          f"energy err/std {rows[:, 2].min():.2f}-{rows[:, 2].max():.2f}")
    if args.plot:
        plot(points, args.plot)


def plot(points, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no calibration plot")
        return
    fig, ax = plt.subplots(figsize=(6, 5))
    for case, pairs in points.items():
        std = 1e3 * np.concatenate([p[0] for p in pairs])
        err = 1e3 * np.concatenate([p[1] for p in pairs])
        ax.loglog(std, err, ".", ms=2, alpha=0.4, label=case)
    lo, hi = ax.get_xlim()
    ax.plot([lo, hi], [lo, hi], "k-", lw=1, label="error = σ")
    ax.set_xlabel("per-atom |fields_std| (meV/μB)")
    ax.set_ylabel("per-atom |field error| (meV/μB)")
    ax.legend(markerscale=5, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"calibration plot: {path}")


if __name__ == "__main__":
    main()
