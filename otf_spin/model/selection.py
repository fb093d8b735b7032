"""Choice of the descriptor terms by cross-validation: the default of ``otf-spin train``.

The exchange-2b model is exact for any Heisenberg J(r) on a lattice and runs on the
compiled LLG/MC path; exchange-3b (three-spin physics, e.g. the triangle term), dipole-2b
(anisotropic pair exchange), the B-spline exchange term (a J(r) finer than
exchange-2b's radial basis: a sharp change that displaced pairs cross) and the angle
exchange term (energies that change with the angle θ_ij itself, with its cusp at
parallel spins: moments slaved to the angles, paper Eq. 41) pay only where the
data hold such physics, and cost prediction time (models with exchange-3b or dipole-2b
use ``model.predict``; the angle and spline terms run on the compiled engine,
:mod:`otf_spin.model.fast`). So, with ``select_terms: true`` (the default) and a descriptor that
names no further term, :meth:`TermSelectingGPR.fit` fits the candidates

    exchange-2b alone, + dipole-2b, + exchange_2b_angle, + exchange-3b, +
    exchange_2b_spline (in this order; the spline only where pair distances vary between
    frames: :func:`distances_vary`), + all the single terms that beat exchange-2b,
    when more than one did, and + the spline with the best other single term (the
    spline refines exchange-2b's J(r): where another term carries the larger misfit the
    spline alone does not beat exchange-2b, but the pair does — displaced Eq. 41 sets,
    tuning seeds 711-713, docs/otf.md: spline + angle 2.2× better than the angle alone on
    15 frames, the spline alone worse than exchange-2b alone on 10),

each added term with its default settings and one linear kernel (``n_sparse: null``;
the angle term also joins the nonlinear exchange-2b kernel: ``JOINED_TERMS``),
every candidate with its own hyperparameters (marginal likelihood, then σ_e by
cross-validation, as any fit); it scores each by its leave-one-frame-out RMSEs with
its worst fifth of the frames left out per observable (:func:`trimmed_cv`),
score = geometric mean of CV-RMSE(energy per atom) and CV-RMSE(field components)
(an observable without data is left out), and keeps the cheapest candidate (fewer added
terms first: :func:`cost_order`) whose score is within ``TOLERANCE`` (10 %, about the
sampling error of an RMSE over 50 frames) of the best — among the candidates that the
compiled engine runs (:func:`otf_spin.model.fast.supports`) unless one it cannot run
beats them all by ``ENGINE_MARGIN`` (:func:`choose`). With fewer than ``MIN_FRAMES`` frames cross-validation cannot tell the terms
apart, and where exchange-2b's CV errors are already at the noise floor (exact
Heisenberg data) no term can improve them: exchange-2b alone is fitted then. The fitted model is a plain
:class:`~otf_spin.model.gpr.SparseGPR` whose settings name the chosen terms
(``select_terms: false``), so the model file reloads and refits exactly that model;
``model.selection`` holds the table of candidates (not stored in the file).
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from otf_spin.config.engine import thaw
from otf_spin.config.model import (DIPOLE_2B, EXCHANGE_2B_ANGLE, EXCHANGE_2B_SPLINE,
                                   EXCHANGE_3B, SELECTION_MIN_FRAMES)
from otf_spin.model import fast
from otf_spin.model.gpr import BOUNDS, SparseGPR

#: further descriptor terms the selection may add (exchange-2b is always there)
EXTRA_TERMS = ("exchange_3b", "dipole_2b", "exchange_2b_spline", "exchange_2b_angle")
SECTIONS = {"exchange_3b": EXCHANGE_3B, "dipole_2b": DIPOLE_2B,
            "exchange_2b_spline": EXCHANGE_2B_SPLINE, "exchange_2b_angle": EXCHANGE_2B_ANGLE}
#: terms that also join the nonlinear (ζ > 1) exchange-2b kernels of the model
#: (``with_terms``): the angle features matter in products with the exchange-2b ones
#: (Eq. 41: M_i M_j e_i·e_j with M_i linear in Σ_k θ_ik)
JOINED_TERMS = ("exchange_2b_angle",)
#: candidates tried first, cheapest first (prediction cost; exchange-3b and dipole-2b
#: also leave the compiled engine, which runs the angle and spline terms); the spline
#: term only where pair distances vary (:func:`distances_vary`)
SINGLE_CANDIDATES = ((), ("dipole_2b",), ("exchange_2b_angle",), ("exchange_3b",),
                     ("exchange_2b_spline",))
#: the B-spline exchange term: a finer J(r) than exchange-2b's radial basis, also tried
#: with the best other single term (:func:`select`)
SPLINE = "exchange_2b_spline"
#: pair distances closer than this (Å) count as one distance in :func:`distances_vary`
DISTANCE_RESOLUTION = 1e-6
#: share of the training frames left out of each candidate's leave-one-frame-out
#: errors, its worst held-out frames per observable (:func:`trimmed_cv`; rounded up: one
#: frame of 5, two of 10; 5-fold scores left out their worst fold, a fifth of the frames)
DROP_SHARE = 0.2
#: a candidate whose CV score is within this factor of the best counts as equally good
TOLERANCE = 1.10
#: a choice made again (the on-the-fly loop's) keeps the terms of the model in use while
#: their score is within this factor of the best (:func:`choose`): on 5-18 frames the
#: 5-fold scores of the candidates scatter by more than TOLERANCE from one label to the
#: next, and a choice that flips the terms at one label swung the loop's models by up
#: to 2x (docs/otf.md)
MARGIN = 1.25
#: a candidate the compiled engine cannot run (:func:`otf_spin.model.fast.supports`:
#: exchange-3b, dipole-2b) is chosen only if its score beats every engine candidate by
#: this factor (:func:`choose`): such a model leaves the compiled LLG/MC path (the README
#: example's dynamics ~17x slower with exchange-3b, docs/otf.md), and on 5-18 frames the
#: scores scatter by more than MARGIN
ENGINE_MARGIN = 1.5
#: fewest frames for a selection (5-fold CV, one frame per fold from 5 frames; with 10
#: instead, random sets of 5-8 frames of the issue-16 task fitted 1.3-2x worse, fresh
#: seeds 641-643, docs/otf.md: below it every model is exchange-2b alone); set where the
#: model settings are documented (config.model.SELECTION_MIN_FRAMES), so that their text
#: gives this number
MIN_FRAMES = SELECTION_MIN_FRAMES
#: kernel given to an added term: linear (its features are the physics: the triangle
#: product and the pseudo-dipolar pair form are linear in them), whole weight space
TERM_KERNEL = {"zeta": 1, "normalize": False, "orders": None, "n_sparse": None,
               "delta": 1.0, "with_terms": None}


def names_extra_terms(settings: dict) -> bool:
    """True if validated ``settings`` name a descriptor term beyond exchange-2b (in the
    descriptor or as a kernel's ``term``): then the model is used as written."""
    d = settings["descriptor"]
    return (any(d.get(t) is not None for t in EXTRA_TERMS)
            or any(k.get("term", "exchange_2b") != "exchange_2b" for k in settings["kernels"]))


def terms_of(settings: dict) -> tuple:
    """The descriptor terms beyond exchange-2b that validated ``settings`` name (in the
    descriptor or as a kernel's ``term``), in EXTRA_TERMS order: () for exchange-2b alone."""
    named = {k.get("term", "exchange_2b") for k in settings["kernels"]}
    return tuple(t for t in EXTRA_TERMS
                 if settings["descriptor"].get(t) is not None or t in named)


def selects(settings: dict) -> bool:
    """Whether a model of validated ``settings`` chooses its terms when fitted."""
    return bool(settings.get("select_terms")) and not names_extra_terms(settings)


def candidate_settings(settings: dict, terms) -> dict:
    """Validated settings of the candidate with the extra ``terms`` (iterable of names in
    EXTRA_TERMS) added to the exchange-2b model of ``settings``: each with its default
    section and a TERM_KERNEL; a term in JOINED_TERMS also joins every nonlinear
    exchange-2b kernel (``with_terms``); ``select_terms`` false (a fixed model)."""
    s = thaw(settings)
    for term in EXTRA_TERMS:
        s["descriptor"][term] = SECTIONS[term].validate({}) if term in terms else None
    joined = [t for t in JOINED_TERMS if t in terms]
    s["kernels"] = ([dict(k, with_terms=(joined or None) if k["zeta"] > 1 else None)
                     for k in s["kernels"] if k.get("term", "exchange_2b") == "exchange_2b"]
                    + [dict(TERM_KERNEL, term=term) for term in EXTRA_TERMS if term in terms])
    s["select_terms"] = False
    return s


def score(cv: dict, keys=("energy", "field")) -> float:
    """log of the geometric mean of the CV RMSEs ``keys`` of ``cv``
    (:meth:`SparseGPR.cross_validate`); +inf if there are none."""
    logs = [np.log(max(cv[k], 1e-300)) for k in keys]
    return float(np.mean(logs)) if logs else np.inf


def scores(rows: list[dict]) -> list[float]:
    """Scores of candidate ``rows`` (dicts with ``cv``) over the observables that every
    row measured (an RMSE of exact data can come out NaN from round-off in one candidate
    and not in another; an observable without data is NaN in all)."""
    keys = [k for k in ("energy", "field") if all(np.isfinite(r["cv"][k]) for r in rows)]
    return [score(r["cv"], keys) for r in rows]


def choose(rows: list[dict], tolerance: float = TOLERANCE, current=None,
           margin: float | None = None, engine_margin: float | None = None) -> int:
    """Index of the chosen row: the first (cheapest) whose score (:func:`scores`) is
    within the factor ``tolerance`` of the best. ``rows`` in order of cost. Rows that
    the compiled engine cannot run (``engine`` False: exchange-3b, dipole-2b) are
    passed over unless the best of them beats every engine row by more than the factor
    ``engine_margin`` (default ENGINE_MARGIN); the tolerance stays measured from the
    best of all rows (an engine row within it of the best is chosen, the cheapest such;
    if none is, the best engine row), so that leaving out the best row does not admit
    cheaper rows that were not within the tolerance of it (held-out seed 911: the spline
    alone, 1.7× worse on the reference, chosen within 10 % of spline + angle once the
    three-term row that beat both was passed over). With ``current`` (the terms of the
    model in use, a tuple), the row with those terms is kept while it is allowed and its
    score is within the factor ``margin`` of the best (hysteresis: a choice made again
    changes the terms only for a candidate that wins by more than the scatter of a
    cross-validation on few frames; ``margin`` ≤ 1: no hysteresis)."""
    values = scores(rows)
    best = min(values)
    engine_margin = ENGINE_MARGIN if engine_margin is None else engine_margin
    engine = [v for r, v in zip(rows, values) if r.get("engine", True)]
    allowed = [True] * len(rows)
    if engine and best >= min(engine) - np.log(engine_margin):
        allowed = [r.get("engine", True) for r in rows]
    margin = MARGIN if margin is None else margin
    if current is not None and margin > 1:
        for k, (r, v) in enumerate(zip(rows, values)):
            if allowed[k] and set(r["terms"]) == set(current) and v <= best + np.log(margin):
                return k
    within = [k for k, v in enumerate(values) if allowed[k] and v <= best + np.log(tolerance)]
    return within[0] if within else min((v, k) for k, v in enumerate(values) if allowed[k])[1]


def cost_order(rows: list[dict]) -> list[dict]:
    """``rows`` in order of cost for :func:`choose`: fewer added terms first, then in
    the order they were fitted (SINGLE_CANDIDATES order, the combinations after). A
    two-term candidate comes before a three-term one whichever was fitted first (seed
    841, threshold 4: exchange-3b + spline + angle, fitted first, was kept within 10 %
    over the better spline + angle, docs/otf.md)."""
    return sorted(rows, key=lambda r: len(r["terms"]))


def at_noise_floor(row: dict) -> bool:
    """True if the CV RMSEs of ``row`` are at the lower bounds of the noise (BOUNDS:
    1e-6 eV/atom, 1e-5 eV/μB; exact data such as a Heisenberg reference): no term can
    improve on them, so the others are not fitted."""
    return all(not np.isfinite(v) or v <= BOUNDS[key][0] for v, key in
               ((row["cv_energy"], "sigma_energy"), (row["cv_field"], "sigma_field")))


def distances_vary(settings: dict, frames) -> bool:
    """True if the ``frames`` hold more distinct pair distances within the spline term's
    range [r_min, r_max) (its defaults; distances within DISTANCE_RESOLUTION count once)
    than exchange-2b of ``settings`` has radial functions (n_max). Only then can the
    spline term matter: at fewer distances (atoms on one lattice, whatever the cell or
    the spins) exchange-2b's radial basis already holds a J(r) through every one of them,
    so the spline candidate is not fitted (Heisenberg and lattice sets keep their speed)."""
    term = SECTIONS["exchange_2b_spline"].validate({})
    found = set()
    for f in frames:
        r = f.system.neighbours(term["r_max"]).distances
        r = r[r >= term["r_min"]]
        found.update(np.round(r / DISTANCE_RESOLUTION).astype(np.int64).tolist())
        if len(found) > settings["descriptor"]["n_max"]:
            return True
    return False


def trimmed_cv(model, share: float = DROP_SHARE) -> dict:
    """Leave-one-frame-out RMSEs of a fitted :class:`SparseGPR` at its hyperparameters
    (:meth:`SparseGPR.left_out_errors`: every frame predicted by the posterior without
    it; energy per atom in eV/atom, field components in eV/μB; NaN for an observable
    without data), with the worst ⌈``share`` × frames⌉ held-out frames left out per
    observable (at least 3 kept). Why leave-one-frame-out: the 5-fold scores of the
    candidates (frames round-robin, so one label more reassigns every fold) scattered
    by more than 25 % from one label to the next on 8-18 frames, and a re-choice then
    made the loop's model worse with more labels (docs/otf.md, seed 841); every frame
    is held out once here, by the same Woodbury downdate as the calibration, and no
    assignment of folds enters the score. Why trimmed: a training frame unlike all
    others (Eq. 41 seed 449: the one frame near the antiparallel state, held out 6-7
    meV/atom off for every candidate) is extrapolated when held out, the more so by the
    more flexible model, and that one frame decided the score though the model fitted on
    all frames, that frame included, was 20× better on test frames — the reason the
    energy noise is scored on the frames with the smallest held-out errors
    (gpr.CV_ENERGY_KEEP)."""
    out = {}
    for key, items in model.left_out_errors().items():
        items = sorted((t for t in items if t[1]), key=lambda t: t[0] / t[1])
        drop = int(np.ceil(share * len(items) - 1e-9))
        items = items[:max(len(items) - drop, min(3, len(items)))]
        out[key] = (float(np.sqrt(sum(t[0] for t in items) / sum(t[1] for t in items)))
                    if items else np.nan)
    return out


def fit_candidate(settings: dict, terms, frames, build, bounds: dict | None = None,
                  start: dict | None = None) -> dict:
    """Fit the candidate with ``terms`` (``build``: settings -> unfitted SparseGPR, e.g.
    :func:`otf_spin.model.factory.build_gpr`); a row with terms, model, cv (and cv_energy
    in eV/atom, cv_field in eV/μB: :func:`trimmed_cv`), fit time (CPU s) and the warnings
    the fit raised. ``bounds``: hyperparameter bounds of the optimisation (as
    :meth:`SparseGPR.optimise_hyperparameters`, e.g. the on-the-fly loop's noise floors:
    the candidates are then scored as the loop will use them). ``start``: hyperparameters
    of a fitted exchange-2b model of the same settings (:func:`warm_start`) that the
    optimisation starts from, without the screen of a coarse grid."""
    model = build(candidate_settings(settings, terms))
    if start is not None:
        warm_start(model, start)
    clock = time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(frames, bounds=bounds, screen=start is None)
    cv = trimmed_cv(model)
    return {"terms": tuple(terms), "model": model, "cv": cv, "engine": fast.supports(model),
            "cv_energy": float(cv["energy"]), "cv_field": float(cv["field"]),
            "fit_cpu_s": time.process_time() - clock, "warnings": caught}


def warm_start(model, start: dict) -> None:
    """Start the hyperparameter optimisation of the unfitted candidate ``model`` from
    ``start`` (the hyperparameters of the fitted exchange-2b model alone, whose kernels
    come first in every candidate, :func:`candidate_settings`): its δ_k, σ_e and σ_b; an
    added term's δ keeps its default (TERM_KERNEL). :func:`fit_candidate` then fits it
    with ``screen=False``, so that the optimisation searches from there alone, without
    the coarse grid of starts (:meth:`SparseGPR.optimise_hyperparameters`): the
    exchange-2b fit screened that grid for the shared hyperparameters. (Only that fit:
    the model chosen keeps no mark of it, so its later re-optimisations screen as a
    model loaded from a checkpoint does.) On the README example's 5 labels the choice's
    likelihood evaluations fall from 378 to 171 (docs/otf.md). Used by the on-the-fly
    loop (``select(..., warm=True)``); ``otf-spin train`` keeps the screened start of
    every candidate (on exact labels the optima of two candidates differ by round-off,
    10⁻⁹ against 10⁻¹⁰ eV/μB, and which one a local search finds decides a choice)."""
    model.hyper.update({k: float(v) for k, v in start.items() if k in model.hyper})


def select(settings: dict, frames, build, tolerance: float = TOLERANCE,
           keep_models: bool = False, bounds: dict | None = None, current=None,
           margin: float | None = None, warm: bool = False) -> tuple[SparseGPR, list]:
    """(fitted model, table) of the term selection on ``frames`` (see module doc).
    The table lists every candidate tried: terms, cv_energy (eV/atom), cv_field (eV/μB),
    score, fit_cpu_s, chosen (and its fitted model with ``keep_models``). ``bounds``:
    of every candidate's hyperparameters (:func:`fit_candidate`); ``current``: the terms
    of the model in use when a choice is made again (a tuple; fitted as a candidate if
    the usual ones do not hold it), kept unless a candidate wins by ``margin``
    (:func:`choose`; default MARGIN); ``warm``: every candidate after exchange-2b alone
    starts from its optimum (:func:`warm_start`; the on-the-fly loop's choice)."""
    frames = list(frames)
    rows = [fit_candidate(settings, (), frames, build, bounds)]
    if len(frames) >= MIN_FRAMES and not at_noise_floor(rows[0]):
        def fit(terms):
            return fit_candidate(settings, terms, frames, build, bounds,
                                 start=rows[0]["model"].hyper if warm else None)

        rows += [fit(terms) for terms in SINGLE_CANDIDATES[1:]
                 if terms != ("exchange_2b_spline",) or distances_vary(settings, frames)]
        values = scores(rows)
        gains = [t for r, v in zip(rows[1:], values[1:]) for t in r["terms"]
                 if v < values[0] - np.log(tolerance)]
        if len(gains) > 1:
            rows.append(fit([t for t in EXTRA_TERMS if t in gains]))
        if any(r["terms"] == (SPLINE,) for r in rows):     # the spline with the best other
            values = scores(rows)
            single = min((v, r["terms"][0]) for r, v in zip(rows, values)
                         if len(r["terms"]) == 1 and r["terms"] != (SPLINE,))[1]
            both = [t for t in EXTRA_TERMS if t in (single, SPLINE)]
            if not any(set(r["terms"]) == set(both) for r in rows):
                rows.append(fit(both))
        if current is not None and not any(set(r["terms"]) == set(current) for r in rows):
            rows.append(fit([t for t in EXTRA_TERMS if t in current]))
    else:
        current = None          # too few frames, or exact data: exchange-2b alone
    rows = cost_order(rows)
    chosen = choose(rows, tolerance, current, margin)
    for w in rows[chosen]["warnings"]:          # the chosen fit's warnings, once
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    table = [{k: v for k, v in r.items() if k not in ("warnings", "cv")
              and (keep_models or k != "model")} for r in rows]
    for k, (r, value) in enumerate(zip(table, scores(rows))):
        r["score"], r["chosen"] = value, k == chosen
        r["current"] = current is not None and set(r["terms"]) == set(current)
    return rows[chosen]["model"], table


class TermSelectingGPR(SparseGPR):
    """The exchange-2b model of ``settings`` until fitted; :meth:`fit` chooses the terms
    (:func:`select`) and turns this object into the chosen plain SparseGPR (its settings
    name the chosen terms), with ``selection`` the table of candidates. ``build_candidate``
    (settings -> unfitted SparseGPR) is set by :func:`otf_spin.model.factory.build_model`."""

    build_candidate = None

    def fit(self, frames, bounds: dict | None = None, current=None,
            warm: bool = False) -> SparseGPR:
        """Choose the terms on ``frames`` and fit (:func:`select`; ``bounds`` of the
        hyperparameters, ``current`` terms and ``warm`` as there)."""
        model, table = select(self.settings, frames, self.build_candidate, bounds=bounds,
                              current=current, warm=warm)
        self.__dict__.update(model.__dict__)
        self.__class__ = SparseGPR
        self.selection = table
        return self


def _milli(value: float, unit: str) -> str:
    """A CV error (eV or eV/μB) in milli-units, or "n/a" where the frames have no labels
    of that kind (NaN)."""
    return f"{1e3 * value:.4f} {unit}" if np.isfinite(value) else "n/a"


def describe(table: list[dict]) -> str:
    """Lines for a log: the candidates of a selection table with their CV errors."""
    if len(table) == 1:
        return ("descriptor terms: exchange-2b alone (fewer than "
                f"{MIN_FRAMES} frames, or its CV errors at the noise floor)")
    out = ["descriptor terms chosen by leave-one-frame-out cross-validation (each "
           f"candidate's worst {100 * DROP_SHARE:.0f} % of frames left out; * = kept: the "
           f"cheapest within {100 * (TOLERANCE - 1):.0f} % of the best, or the terms in use "
           f"within {100 * (MARGIN - 1):.0f} %; off the compiled engine (†) only by "
           f"{ENGINE_MARGIN:g}×):"]
    names = ["exchange_2b" + "".join(f" + {t}" for t in r["terms"]) for r in table]
    width = max(len(n) for n in names)
    for r, name in zip(table, names):
        out.append(f"  {'*' if r['chosen'] else ' '}{' ' if r.get('engine', True) else '†'}"
                   f"{name:{width}s} CV energy {_milli(r['cv_energy'], 'meV/atom')}, "
                   f"field {_milli(r['cv_field'], 'meV/μB')}, fit {r['fit_cpu_s']:.1f} CPU s"
                   + (" (in use)" if r.get("current") else ""))
    return "\n".join(out)
