"""Field providers: what the integrators and samplers run on — spin directions in,
LLG fields (T) and energies out — over a :class:`~otf_spin.calculator.Calculator`.

Interface used by the integrators (directions (N, 3) unit vectors in, arrays out)::

    provider.field(directions, out)   -> writes B_eff (N, 3) in T (incl. external field)
    provider.energy(directions)       -> total energy (eV, rel. to FM, incl. Zeeman)
    provider.spin_temperature(directions) -> K (Nurdin et al. 2000)
    provider.compute(directions, properties) -> results dict of the calculator contract
                                         (model σ included when asked), cached: a
                                         following field() at the same directions reuses it
    provider.moments                  -> (N,) μB
    provider.calculator               -> what it computes with (set_calculator replaces it)

B_i[T] = fields_i[eV/μB] / μB[eV/T] (+ external field). :func:`make_provider` picks the
compiled Heisenberg provider for a bilinear
:class:`~otf_spin.oracles.heisenberg.HeisenbergHamiltonian` (sparse pair lists), else
:class:`ComputeProvider` over the calculator's ``compute``.
"""
from __future__ import annotations

import numpy as np

from otf_spin.calculator import (ENERGIES, ENERGY, FIELDS, FIELDS_STD_EPISTEMIC, MAGMOMS,
                                 STD_PROPERTIES)
from otf_spin.dynamics.spin_temperature import spin_temperature
from otf_spin.kernels import load as load_kernel
from otf_spin.model.fast import fast_predictor
from otf_spin.model.gpr import SparseGPR
from otf_spin.oracles.base import Oracle
from otf_spin.oracles.heisenberg import HeisenbergHamiltonian, pair_hamiltonian
from otf_spin.units import K_B, MU_B


class HeisenbergProvider:
    """Compiled Heisenberg fields for fixed positions and fixed moment magnitudes.

    B_i = (2/(μ_i μB)) Σ_p J_p e_j + B_ext (T), from E = -Σ_p J_p e_i·e_j (full pair list).
    ``hamiltonian``: a bilinear :class:`~otf_spin.oracles.heisenberg.HeisenbergHamiltonian`
    (or an oracle that declares one, :func:`~otf_spin.oracles.heisenberg.pair_hamiltonian`).
    """

    def __init__(self, hamiltonian, system, field_tesla=(0.0, 0.0, 0.0)):
        self.calculator = hamiltonian = pair_hamiltonian(hamiltonian)
        if hamiltonian.slaving:
            raise ValueError("the compiled Heisenberg provider needs fixed moments; moment "
                             "slaving (Eq. 41) runs through ComputeProvider")
        self.offsets, self.neigh, self.J, *_ = hamiltonian.couplings(system)
        self.moments = system.magnitudes.copy()
        rows = np.repeat(np.arange(len(system)), np.diff(self.offsets))
        self.J_tesla = np.ascontiguousarray(2.0 * self.J / (self.moments[rows] * MU_B))
        if len(self.neigh) >= 2**31:
            raise ValueError("more than 2^31 pairs: beyond the int32 LLG field kernel")
        self.offsets32 = self.offsets.astype(np.int32)     # hot path: 4-byte indices
        self.neigh32 = self.neigh.astype(np.int32)
        self.b_ext = np.asarray(field_tesla, float)
        self.ones = np.ones(len(system))
        self.zeeman = self.moments[:, None] * MU_B * self.b_ext[None, :]   # eV
        self.e_fm = -float(self.J.sum())
        self._kernel = load_kernel("exchange")
        self._h = np.empty((len(system), 3))

    def field_bound(self) -> float:
        """Upper bound (T) of |B_eff| over the atoms for any spins (exact):
        Σ_j |J_ij|·2/(μ_i μB) + |B_ext|."""
        n = len(self.moments)
        rows = np.repeat(np.arange(n), np.diff(self.offsets))
        return float(np.bincount(rows, np.abs(self.J_tesla), n).max(initial=0.0)) + \
            float(np.linalg.norm(self.b_ext))

    def field(self, directions, out):
        self._kernel.exchange_field_plain(directions, self.offsets32, self.neigh32,
                                          self.J_tesla, self.b_ext, out)

    def _local(self, directions):
        self._kernel.exchange_field(directions, self.ones, self.offsets, self.neigh, self.J,
                                    self._h)
        return self._h

    def energy(self, directions) -> float:
        h = self._local(directions)
        return float(-np.einsum("ik,ik->", directions, h) - self.e_fm
                     - np.einsum("ik,ik->", directions, self.zeeman))

    def spin_temperature(self, directions) -> float:
        """Nurdin et al. (2000): T_s = Σ|e_i × H_i|² / (2 k_B Σ e_i·H_i), H_i = -∂E/∂e_i."""
        H = 2.0 * self._local(directions) + self.zeeman
        num = np.sum(np.cross(directions, H) ** 2)
        den = 2.0 * K_B * np.einsum("ik,ik->", directions, H)
        return float(num / den) if den > 0 else float("nan")


class ComputeProvider:
    """Runs any :class:`~otf_spin.calculator.Calculator` (energy, fields in eV/μB; the
    model, a Hamiltonian, or an oracle whose jobs label every step).

    A fitted :class:`~otf_spin.model.gpr.SparseGPR` that :mod:`otf_spin.model.fast`
    supports runs on its compiled engine (radial data prepared once for the fixed
    positions, no per-step allocation). :meth:`compute` returns the results dict of one
    configuration — the model's σ included when asked, then computed from the engine's
    descriptors of the same directions (:meth:`FastPredictor.stds`) — and keeps it: the field of the
    following step at the same directions is that prediction, not a second one.
    :meth:`set_calculator` replaces the calculator (a refit model) and forgets the
    cached results."""

    def __init__(self, calculator, system, field_tesla=(0.0, 0.0, 0.0)):
        self.system = system.copy()
        self.b_ext = np.asarray(field_tesla, float)
        self.moments = system.magnitudes.copy()
        self._tesla = -1.0 / (self.moments * MU_B)     # eV/μB per unit ∂E/∂e -> T
        self._ev = -1.0 / self.moments
        self._zero = np.zeros(3)
        self.set_calculator(calculator)

    def set_calculator(self, calculator) -> None:
        """Compute with ``calculator`` from now on (cached results are dropped)."""
        self.calculator = calculator
        self._model = isinstance(calculator, SparseGPR)
        self._properties = (ENERGY, FIELDS) + ((ENERGIES,) if self._model else ()) + \
            ((MAGMOMS,) if MAGMOMS in calculator.implemented_properties else ())
        self._last = (None, None)       # (directions bytes, results) of the last compute
        self._fast = (None, None, None)                # (calculator, FastPredictor, engine)

    def _engine(self):
        """The fast engine of the current calculator, or None (not a supported model)."""
        calc, fp, engine = self._fast
        if calc is self.calculator and (fp is None or fp.current()):
            return engine

        fp = fast_predictor(self.calculator) if self._model else None
        engine = None if fp is None else fp.engine(self.system)
        self._fast = (self.calculator, fp, engine)
        return engine

    def field_bound(self) -> float:
        """Upper bound (T) of |B_eff| before any step: for a fitted model the largest
        training field (eV/μB → T) + |B_ext|; for other calculators |B_ext| only (their
        fields are unknown before a step)."""
        frames = self.calculator.frames if self._model else []
        fields = [np.abs(f.fields).max() for f in frames if f.fields is not None]
        return float(max(fields, default=0.0)) / MU_B * np.sqrt(3.0) + \
            float(np.linalg.norm(self.b_ext))

    def compute(self, directions, properties=None) -> dict:
        """Results dict (:mod:`otf_spin.calculator`) at ``directions`` (N, 3) with at least
        ``properties`` (default: energy and fields). With the fast engine the fields are
        also kept in tesla, B_ext included (``fields_tesla``), for the next :meth:`field`."""
        wanted = self._properties if properties is None else tuple(properties)
        key = directions.tobytes()
        if self._last[0] == key:
            missing = tuple(p for p in wanted if p not in self._last[1])
            if not missing:
                return self._last[1]
            before = self._fast
            if self._engine() is not None and self._fast is before and \
                    all(p in STD_PROPERTIES for p in missing):
                # stds of the prediction already made: no second energy and field (the
                # check after an output step: the epistemic std by an energy-only pass
                # with the variances where the model allows it)
                fast, last = self._fast[1], self._last[1]
                if FIELDS_STD_EPISTEMIC in missing and fast.fused_variances:
                    v = fast.variances(self.system, np.ascontiguousarray(directions,
                                                                         dtype=float))
                    last[FIELDS_STD_EPISTEMIC] = fast.epistemic(self.system, v)
                    missing = tuple(p for p in missing if p != FIELDS_STD_EPISTEMIC)
                if missing:
                    last.update(fast.stds(self.system, missing))
                return last
        self.system.directions = np.array(directions)
        engine = self._engine()
        extra = tuple(p for p in wanted if p not in self._properties)
        if engine is not None:
            fast = self._fast[1]
            e = np.ascontiguousarray(directions, dtype=float)
            tesla = np.empty((len(self.moments), 3))
            stds = tuple(p for p in STD_PROPERTIES if p in extra)
            if FIELDS_STD_EPISTEMIC in stds and fast.fused_variances:
                # the check's σ from the evaluation's own pass (its products' rows)
                energy, v = fast.field_and_variances(self.system, e, self._tesla,
                                                     self.b_ext, tesla)
                stds = tuple(p for p in stds if p != FIELDS_STD_EPISTEMIC)
            else:
                energy, v = engine.field(e, self._tesla, self.b_ext, tesla), None
            fields = np.empty((len(self.moments), 3))
            engine.project(e, self._ev, self._zero, fields)     # same evaluation, eV/μB
            results = {"energy": energy, "energies": np.array(engine.energies),
                       "fields": fields, "fields_tesla": tesla}
            if v is not None:
                results[FIELDS_STD_EPISTEMIC] = fast.epistemic(self.system, v)
            if stds:        # the model's σ of these directions from the engine's
                results.update(fast.stds(self.system, stds))     # descriptors
            rest = tuple(p for p in extra if p not in results)
            if rest:
                results.update(self.calculator.compute(self.system, rest))
        else:
            results = dict(self.calculator.compute(self.system, self._properties + extra))
        self._last = (key, results)
        return results

    def field(self, directions, out):
        last_key, last = self._last
        if last_key is not None and "fields_tesla" in last and last_key == directions.tobytes():
            out[:] = last["fields_tesla"]           # the prediction compute() just made
            return
        engine = self._engine()
        if engine is not None:      # hot path: straight into out, in tesla, B_ext added
            engine.field(np.ascontiguousarray(directions, dtype=float), self._tesla,
                         self.b_ext, out)
            return
        out[:] = self._results(directions)["fields"] / MU_B + self.b_ext

    def _results(self, directions):
        return self.compute(directions, self._properties)

    def energy(self, directions) -> float:
        engine = self._engine()
        if engine is not None:
            last_key, last = self._last
            if last_key is not None and "fields_tesla" in last and \
                    last_key == directions.tobytes():
                total = last["energy"]      # the engine's energy of these directions
            else:
                total = engine.compute(np.ascontiguousarray(directions, dtype=float), False)
            return float(total - MU_B * np.einsum("i,ik,k->", self.moments, directions,
                                                  self.b_ext))
        r = self._results(directions)
        moments = np.linalg.norm(r["magmoms"], axis=1) if "magmoms" in r else self.moments
        return float(r["energy"] - MU_B * np.einsum("i,ik,k->", moments, directions,
                                                      self.b_ext))

    def spin_temperature(self, directions) -> float:
        """Nurdin et al. (2000), the Laplacian of E estimated from field differences
        (:mod:`otf_spin.dynamics.spin_temperature`). The results at ``directions`` stay
        cached afterwards (not those of the probes): the next step's first field at
        these directions is the one computed here."""
        self._results(directions)
        here = self._last
        try:
            return spin_temperature(self._torque, directions)
        finally:
            self._last = here

    def _torque(self, directions):
        """-(1 - e eᵀ) ∂E/∂e (N, 3) in eV (Zeeman included)."""
        r = self._results(directions)
        moments = np.linalg.norm(r["magmoms"], axis=1) if "magmoms" in r else self.moments
        b = r["fields"] + MU_B * self.b_ext
        b = b - np.einsum("ik,ik->i", b, directions)[:, None] * directions
        return moments[:, None] * b


def make_provider(calculator, system, field_tesla=(0.0, 0.0, 0.0)):
    """The fastest provider for ``calculator``: compiled Heisenberg for a bilinear
    Heisenberg Hamiltonian (an oracle runs on the Hamiltonian it declares, if any), else
    :class:`ComputeProvider`."""
    if isinstance(calculator, Oracle) and calculator.hamiltonian is not None:
        calculator = calculator.hamiltonian
    if isinstance(calculator, HeisenbergHamiltonian) and calculator.bilinear:
        return HeisenbergProvider(calculator, system, field_tesla)
    return ComputeProvider(calculator, system, field_tesla)
