"""On-the-fly learning (settings: :mod:`otf_spin.config.otf`): the model drives the spins; where it is unsure, the oracle labels.

At every ``check_every``-th step (and not sooner than ``min_steps_between_calls`` after
the last call — a wait that grows by ``call_backoff`` while calls come at the first
check it allows) the model predicts the per-atom field uncertainties σ_a of the current
configuration (:func:`field_uncertainty`: the calibrated expected field error beyond the
noise floor, norm of the three components, eV/μB). If max σ_a exceeds the threshold
(and the model was not fitted on this configuration), the oracle labels the
configuration (spins constrained to the current directions), the frame joins the
training store, atoms with σ_a above
``lower_ratio`` × threshold become candidates for new sparse environments, the model
is refit (incrementally, stds recalibrated; hyperparameters re-optimised every
``reoptimise_every`` calls within noise floors, as for the initial model), and the step
is taken with the new model.

Threshold: ``absolute`` (fixed), or ``adaptive`` in the manner of VASP's ML_CTIFOR:
after each call the triggering max σ joins a history of ``history`` values; once full,
and if the history is quiet (relative std < ``noise_guard`` and relative slope per
entry < ``slope_guard``), the threshold becomes mean(history)·(1 + ``scale``).

A failing oracle job (exit, timeout, NaN, parse) is retried ``retries`` times, then
skipped with a logged reason; the run continues with the current model.
"""
from __future__ import annotations

import time

import numpy as np

from otf_spin.io.atomic import kill_point
from otf_spin.learning.labelling import label_collective
from otf_spin.learning.store import frame_uid
from otf_spin.core import Frame, OracleFailure
from otf_spin.model import build_model, storage
from otf_spin.model.selection import MIN_FRAMES, names_extra_terms, selects, terms_of
from otf_spin.parallel.comm import SerialComm
from otf_spin.parallel.jobs import JobGroups
from otf_spin.system import random_cone, rotation_to

#: training frames from which the loop chooses its descriptor terms again: as ``otf-spin
#: train`` (``selection.MIN_FRAMES``), so that the loop's models of 5-9 labels get the terms
#: random sets of that size get (docs/otf.md)
RESELECT_FROM = MIN_FRAMES


class Threshold:
    """Absolute or adaptive threshold (eV/μB) with its history (checkpointable)."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.value = float(cfg["threshold"])
        self.history: list[float] = []

    def record(self, max_std: float) -> None:
        if self.cfg["mode"] != "adaptive":
            return
        self.history = (self.history + [float(max_std)])[-self.cfg["history"]:]
        if len(self.history) < self.cfg["history"]:
            return
        h = np.array(self.history)
        mean = h.mean()
        slope = np.polyfit(np.arange(len(h)), h, 1)[0]
        if h.std() / mean < self.cfg["noise_guard"] and abs(slope) / mean < self.cfg["slope_guard"]:
            self.value = float(mean * (1.0 + self.cfg["scale"]))

    def state(self) -> dict:
        return {"value": self.value, "history": self.history}

    def restore(self, state: dict) -> None:
        self.value, self.history = float(state["value"]), list(state["history"])


class OnTheFly:
    """The learner: model, oracle, store and threshold, shared by all replicas.

    Collective methods (``initial``, ``sync``) are called on every rank of ``comm`` with
    identical arguments; the store is read and written on rank 0 only (``store`` is None
    elsewhere), the model is refit there and broadcast, and oracle jobs run on the rank
    groups of :class:`~otf_spin.parallel.jobs.JobGroups`."""

    def __init__(self, cfg: dict, oracle, store, model, log, comm=None, ranks_per_job: int = 1,
                 input_id: str | None = None):
        self.cfg, self.oracle, self.store, self.model, self.log = cfg, oracle, store, model, log
        self.comm = comm or SerialComm()
        self.jobs = JobGroups(self.comm, ranks_per_job, oracle)
        self.threshold = Threshold(cfg)
        self.input_id = input_id    # identifies the run's input in the store's provenance
        self.calls = 0              # oracle labels taken (fresh or reused from the store)
        self.failures = 0          # failed oracle jobs (attempts, retries included)
        self.skipped = 0           # configurations left unlabelled after their retries
        self.reused = 0
        self.last_call = -10**9
        self.wait = cfg["min_steps_between_calls"]     # steps: the pace (call_backoff)
        self.last_max_std = float("nan")    # largest over all replicas at the last check
        self.oracle_time = 0.0
        self.refit_time = 0.0       # s: fits and refits (rank 0), model reloads (this rank)
        self.queue = []     # (step, directions, sparse candidates, max σ, replica) to label
        # training frames at the last choice of terms (_reselect); a starting model
        # (otf.model) counts as chosen on its frames, as `otf-spin train` and a run's
        # final model choose: no new choice, and no refit at the end, without new labels
        self.selected_at = 0 if model is None else model.n_frames
        self.choices = []       # one dict per choice of terms in this process (_choose_again)

    # --- labelling ------------------------------------------------------------------
    def _label_all(self, probes, provenance) -> list | None:
        """Collective: label ``probes`` and store each new label as soon as rank 0 has it
        (its provenance merged with ``provenance[k]``, a dict per probe), so that an
        interrupted or killed run keeps every label it paid for. On rank 0: one
        :class:`~otf_spin.learning.labelling.Outcome` per probe (``labelled`` is
        (Frame, None) for a configuration already in the store, None where the oracle
        failed); None elsewhere."""
        def keep(k, outcome):
            for line in outcome.messages:
                print(line, file=self.log, flush=True)
            self.failures += outcome.failures
            self.oracle_time += outcome.seconds
            self.skipped += outcome.labelled is None
            if outcome.labelled is not None:
                kill_point("label")
                frame, origin = outcome.labelled
                self.store.append([frame], [dict(origin, **provenance[k])])

        outcomes = label_collective(probes, self.oracle, self.store, self.jobs,
                                    self.cfg["retries"], keep)
        if outcomes is not None:
            self.reused += sum(o.labelled is not None
                               and (o.labelled[1] is None or o.spooled) for o in outcomes)
        return outcomes

    def _share(self, refit: bool) -> None:
        """Collective: rank 0's model (if ``refit``) and counters to every rank. The model
        travels as an HDF5 image that every rank, rank 0 included, loads: all ranks predict
        bit for bit alike, whatever their number; on one rank the same model is rebuilt
        in memory (:func:`~otf_spin.model.storage.clone`), without the image."""
        start = time.perf_counter()
        alone = self.comm.size == 1
        payload = self.comm.bcast((storage.to_bytes(self.model) if refit and not alone
                                   else None, self.state()) if self.comm.rank == 0 else None)
        if refit:
            self.model = storage.clone(self.model) if alone else \
                storage.from_bytes(payload[0])
        self.restore(payload[1])
        if refit:
            self.refit_time += time.perf_counter() - start

    def initial(self, system, rng) -> None:
        """Collective. Make sure a model exists: fit on the store's frames, or label the
        initial frames and fit on them.

        Frames this same input labelled (provenance ``input`` equal to ``self.input_id``:
        left by a run killed before its first checkpoint, or by the same run before
        ``--fresh``) are not fitted on here: the initial ones among them are reused when
        the initial frames are labelled, the in-run ones when the run reaches them again,
        so the run replays exactly. If the store holds other frames (other inputs,
        ``otf-spin generate``), the model is fitted on those and no initial frames are
        labelled."""
        if self.model is not None:
            return
        root, frames = self.comm.rank == 0, None
        if root:
            frames = [f for f in self.store.frames() if self.input_id is None
                      or f.info["provenance"].get("input") != self.input_id]
        if not self.comm.bcast(bool(frames) if root else None):
            probes = [system.copy()]
            n = self.cfg["initial_frames"]
            for k in range(n):
                probe = system.copy()
                cone = random_cone(len(system), [0, 0, 1],
                                   self.cfg["initial_cone"] * (k + 1) / n, rng)
                # each spin drawn in a cone around its own initial direction
                probe.set_directions([_tilt(a, c) for a, c in zip(probe.directions, cone)])
                probes.append(probe)
            outcomes = self._label_all(probes, [dict(origin="initial", frame=k,
                                                     input=self.input_id)
                                                for k in range(len(probes))])
            frames = [f for f in map(self.store.lookup, probes) if f is not None] \
                if root else None
            failure = None
            if root and not frames:
                last = next(o.error for o in reversed(outcomes) if o.error is not None)
                failure = (last.job, last.kind,
                           f"{last.reason}; the oracle failed on all {len(probes)} initial "
                           f"frames ({sum(o.failures for o in outcomes)} jobs): no training "
                           f"data")
            failure = self.comm.bcast(failure)
            if failure is not None:
                raise OracleFailure(*failure)
        if root:
            self.calls = len(frames)        # labels taken before the run
            start = time.perf_counter()
            self._fit_from_scratch(frames)
            self.refit_time += time.perf_counter() - start
            print(f"# initial model: {len(frames)} frames, sparse "
                  f"{[len(S) for S in self.model.sparse]}", file=self.log, flush=True)
        self._share(refit=True)

    #: the prediction properties :meth:`assess` reads (asked of the provider in the same
    #: call as the dynamics' prediction, :meth:`ComputeProvider.compute
    #: <otf_spin.dynamics.providers.ComputeProvider.compute>`)
    properties = ("fields_std_epistemic",)

    def assess(self, results) -> tuple[float, np.ndarray]:
        """(largest per-atom field σ, indices of the atoms above the candidate level) of
        one prediction of the current model: ``results`` is the results dict of a
        :meth:`~otf_spin.model.gpr.SparseGPR.compute` that asked for :attr:`properties`
        (σ in eV/μB).

        σ here is the epistemic part of the predictive field std (``fields_std_epistemic``:
        the posterior variance without the learned noise): a label reduces it, whereas
        the noise part (the misfit the model cannot express) stays whatever is labelled,
        and a threshold below it would call the oracle at every check."""
        sigma = field_uncertainty(results)
        return float(sigma.max()), np.flatnonzero(
            sigma > self.cfg["lower_ratio"] * self.threshold.value)

    def sync(self, step: int, reports, system) -> bool:
        """Collective, at a check step: maybe label and refit. Returns True if the model
        changed. ``reports`` (the same on every rank) is one (max σ, directions, candidate
        atoms) per replica in replica order, from :meth:`assess`; ``system`` the structure.

        Configurations above threshold are queued in replica order (within
        ``max_oracle_calls``); once ``batch_size`` are queued they are labelled together,
        spread over the rank groups, with one refit on rank 0."""
        cfg = self.cfg
        self.last_max_std = max(r[0] for r in reports)
        if step - self.last_call < self.wait:
            return False
        queued = False
        for replica, (max_std, directions, pool) in enumerate(reports):
            if max_std > self.threshold.value and \
                    self.calls + len(self.queue) < cfg["max_oracle_calls"] and \
                    not self._fitted_on(system, directions):
                self.queue.append((step, directions.copy(), pool, max_std, replica))
                queued = True
        if not queued:
            return False
        self.wait = self._next_wait(step)
        self.last_call = step
        if len(self.queue) < cfg["batch_size"]:
            return False
        probes = []
        for _, directions, _, _, _ in self.queue:
            probe = system.copy()
            probe.directions = directions
            probes.append(probe)
        outcomes = self._label_all(probes, [dict(origin="run", step=q[0], replica=q[4],
                                                 input=self.input_id) for q in self.queue])
        frames, pools = [], []
        if self.comm.rank == 0:
            for (_, _, pool, max_std, _), outcome in zip(self.queue, outcomes):
                self.threshold.record(max_std)
                if outcome.labelled is None:
                    continue
                self.calls += 1
                frames.append(outcome.labelled[0])
                pools.append(pool)
            if frames:
                self._refit(frames, pools, step)
        self.queue = []
        refit = self.comm.bcast(bool(frames))
        self._share(refit)
        return refit

    def _next_wait(self, step: int) -> int:
        """The wait (steps) before the call after one queued at ``step``: ``wait`` ×
        ``call_backoff`` if this call came at the first check the current wait allowed
        (the model stayed unsure all through it: labels of the same stretch of the run,
        one after another — at low thresholds the loop otherwise spent most labels on the
        cold start, docs/otf.md), else ``min_steps_between_calls``."""
        cfg = self.cfg
        first = step - self.last_call < self.wait + cfg["check_every"]
        if first and cfg["call_backoff"] > 1:
            return int(np.ceil(self.wait * cfg["call_backoff"]))
        return cfg["min_steps_between_calls"]

    def _fitted_on(self, system, directions) -> bool:
        """Whether the model was fitted on this configuration (the start frame at step
        0): its label adds nothing, and fitting it twice would count it twice."""
        probe = system.copy()
        probe.directions = directions
        uid = frame_uid(probe)
        return any(frame_uid(f.system) == uid for f in self.model.frames)

    def _fit_from_scratch(self, frames, current=None) -> None:
        """Rank 0: a new model of ``model_settings`` fitted on ``frames`` as ``otf-spin
        train`` would (descriptor terms chosen by cross-validation where the settings
        select them and there are enough frames; ``current``: the terms in use, kept
        unless a candidate wins by ``selection.MARGIN``), its hyperparameters within the
        noise floors (:meth:`_floors`) — each candidate's, so that the candidates are
        scored as the loop uses them and the chosen one is not optimised twice —, every
        candidate after exchange-2b alone started from its optimum
        (:func:`~otf_spin.model.selection.warm_start`)."""
        import warnings

        self.model = build_model(self.cfg["model_settings"])
        choice = {"current": current, "warm": True} \
            if selects(self.cfg["model_settings"]) else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.fit(frames, bounds=self._floors(), **choice)

    def _can_choose(self) -> bool:
        """Rank 0: whether the model settings select terms and the model holds enough
        frames for the loop to choose them (``RESELECT_FROM``)."""
        return selects(self.cfg["model_settings"]) and self.model.n_frames >= RESELECT_FROM

    def _choose_again(self) -> None:
        """Rank 0: :meth:`_fit_from_scratch` on the model's own frames (terms chosen
        again on all labels); the choice is logged and appended to :attr:`choices`
        (frames, the terms before and after, the candidates' scores: a record of this
        process, not checkpointed)."""
        before = terms_of(self.model.settings)
        self._fit_from_scratch([Frame(f.system, {"energy": f.energy, "fields": f.fields},
                                      f.info) for f in self.model.frames],
                               before if self.selected_at else None)
        self.selected_at = self.model.n_frames
        table = getattr(self.model, "selection", None) or []
        after = terms_of(self.model.settings)
        self.choices.append({"frames": self.model.n_frames, "before": before, "terms": after,
                             "scores": {r["terms"]: r["score"] for r in table}})
        print(f"# terms chosen on {self.model.n_frames} frames: {' + '.join(('exchange_2b',) + after)}"
              f" (before: {' + '.join(('exchange_2b',) + before)}; CV scores "
              + ", ".join(f"{'+'.join(r['terms']) or 'alone'} {r['score']:.3f}" for r in table)
              + ")", file=self.log, flush=True)

    def _reselect(self) -> bool:
        """Rank 0, at a re-optimisation: whether the model is refitted from scratch on its
        frames (:meth:`_fit_from_scratch`) so that its descriptor terms are chosen again —
        only where ``model_settings`` select terms and the frames are enough for a choice
        (a model built on the first few labels keeps exchange-2b alone; uniformly random
        or generated sets of the same size would be fitted with the chosen terms), and
        the frames have grown by half since the last choice (a choice costs a fit per
        candidate and cross-validation; between choices the chosen model is refitted
        incrementally; a choice on few frames often keeps exchange-2b alone where 15 take
        the spline term, so a choice that kept exchange-2b alone is made again at
        every re-optimisation until another term is chosen)."""
        n = self.model.n_frames
        if not self._can_choose():
            return False
        plain = self.selected_at and not names_extra_terms(self.model.settings)
        if n < 1.5 * self.selected_at and not (plain and n > self.selected_at):
            return False
        self._choose_again()
        return True

    def finish(self) -> bool:
        """Collective, at the end of a run: the model becomes the one ``otf-spin train``
        would fit on all the labels (:meth:`_choose_again`, on rank 0, then shared) when
        ``reselect_terms`` is on and frames came since the last choice of terms (between
        choices the model is refitted incrementally; the run's trajectory and checkpoints
        are those of the model in use). Returns whether it refitted."""
        refit = False
        if self.comm.rank == 0:
            refit = bool(self.cfg["reselect_terms"] and self._can_choose()
                         and self.model.n_frames > self.selected_at)
            if refit:
                start = time.perf_counter()
                self._choose_again()
                self.refit_time += time.perf_counter() - start
        refit = self.comm.bcast(refit)
        if refit:
            self._share(refit=True)
        return refit

    def _floors(self) -> dict:
        """Bounds of the noise hyperparameters (eV/atom, eV/μB): the noise floors."""
        return {"sigma_energy": (self.cfg["noise_floor_energy"], 1.0),
                "sigma_field": (self.cfg["noise_floor_field"], 1.0)}

    def _reoptimise(self) -> None:
        """Hyperparameters by maximum likelihood with the noise floors (a model of a few
        nearby frames would otherwise interpolate them noise-free and extrapolate
        wildly), calibration, weights."""
        self.model.optimise_hyperparameters(self._floors())
        self.model.solve()

    def _refit(self, frames, pools, step) -> None:
        cfg, start = self.cfg, time.perf_counter()
        n_new = min(cfg["new_sparse_per_call"] * len(frames), sum(len(p) for p in pools))
        self.model.add_frames(frames, n_new_sparse=n_new, candidates=pools)
        kill_point("refit")
        if cfg["reoptimise_every"] and self.calls % cfg["reoptimise_every"] < len(frames):
            if not (cfg["reselect_terms"] and self._reselect()):
                self._reoptimise()
        self.refit_time += time.perf_counter() - start
        print(f"# step {step}: max σ {1e3 * self.last_max_std:.3f} meV/μB > threshold "
              f"{1e3 * self.threshold.value:.3f}: {len(frames)} label(s) "
              f"({self.oracle_time:.1f} s oracle so far), training set {self.model.n_frames} "
              f"frames, sparse {[len(S) for S in self.model.sparse]}", file=self.log, flush=True)

    # --- checkpoint state -------------------------------------------------------------
    def state(self) -> dict:
        """JSON-serialisable learner state (directions of queued frames as exact hex)."""
        return {"threshold": self.threshold.state(), "calls": self.calls,
                "failures": self.failures, "skipped": self.skipped, "reused": self.reused,
                "oracle_time": self.oracle_time, "refit_time": self.refit_time,
                "last_call": self.last_call, "wait": self.wait,
                "last_max_std": self.last_max_std, "selected_at": self.selected_at,
                "queue": [[s, d.tobytes().hex(), list(map(int, c)), m, r]
                          for s, d, c, m, r in self.queue]}

    def restore(self, state: dict) -> None:
        self.threshold.restore(state["threshold"])
        self.calls, self.failures = int(state["calls"]), int(state["failures"])
        self.reused = int(state.get("reused", 0))
        self.skipped = int(state.get("skipped", 0))
        self.oracle_time = float(state.get("oracle_time", 0.0))
        self.refit_time = float(state.get("refit_time", 0.0))
        self.last_call, self.last_max_std = int(state["last_call"]), float(state["last_max_std"])
        self.selected_at = int(state.get("selected_at", 0))
        self.wait = int(state.get("wait", self.cfg["min_steps_between_calls"]))
        self.queue = [(q[0], np.frombuffer(bytes.fromhex(q[1])).reshape(-1, 3).copy(),
                       np.array(q[2], dtype=int), q[3], q[4] if len(q) > 4 else None)
                      for q in state.get("queue", [])]


def field_uncertainty(results) -> np.ndarray:
    """Per-atom field uncertainty (N,) eV/μB that a threshold is compared with, from a
    prediction's results dict (:mod:`otf_spin.calculator`; ask the model for
    :attr:`OnTheFly.properties`): the norm of ``fields_std_epistemic``, the calibrated
    expected field error of the atom without its noise floor — sqrt(|fields_std|² -
    noise²), the part a label can remove (the on-the-fly trigger and ``otf-spin
    generate``'s variance ranking)."""
    return np.linalg.norm(results["fields_std_epistemic"], axis=1)


def _tilt(axis, local):
    """Rotate ``local`` (a direction around +z) so that +z goes to ``axis``."""
    return rotation_to(axis) @ local
