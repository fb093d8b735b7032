"""Field providers: anything that maps spin directions to LLG fields (T) and energies.

Interface used by the integrators (directions (N, 3) unit vectors in, arrays out)::

    provider.field(directions, out)   -> writes B_eff (N, 3) in T (incl. external field)
    provider.energy(directions)       -> total energy (eV, rel. to FM, incl. Zeeman)
    provider.spin_temperature(directions) -> K (Nurdin et al. 2000)
    provider.moments                  -> (N,) μB

B_i[T] = fields_i[eV/μB] / μB[eV/T] (+ external field). The compiled Heisenberg
provider uses sparse pair lists; any oracle or model with ``compute``/``predict``
plugs in through :class:`ComputeProvider`.
"""
from __future__ import annotations

import numpy as np

from otf_spin.kernels import load as load_kernel
from otf_spin.units import K_B, MU_B


class HeisenbergProvider:
    """Compiled Heisenberg fields for fixed positions and fixed moment magnitudes.

    B_i = (2/(μ_i μB)) Σ_p J_p e_j + B_ext (T), from E = -Σ_p J_p e_i·e_j (full pair list).
    """

    def __init__(self, oracle, system, field_tesla=(0.0, 0.0, 0.0)):
        if getattr(oracle, "slaving", None):
            raise ValueError("the compiled Heisenberg provider needs fixed moments; moment "
                             "slaving (Eq. 41) runs through ComputeProvider")
        self.offsets, self.neigh, self.J, *_ = oracle.couplings(system)
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
    """Wraps any oracle or model with ``compute(system)`` (energy, fields in eV/μB).

    A fitted GAP-SOSO model that :mod:`otf_spin.model.fast` supports runs on its
    compiled engine (radial data prepared once for the fixed positions, no per-step
    allocation); a refit (or a new ``calculator``) is picked up at the next call."""

    def __init__(self, calculator, system, field_tesla=(0.0, 0.0, 0.0)):
        self.calculator, self.system = calculator, system.copy()
        self.b_ext = np.asarray(field_tesla, float)
        self.moments = system.magnitudes.copy()
        self._last = (None, None)
        self._tesla = -1.0 / (self.moments * MU_B)     # eV/μB per unit ∂E/∂e -> T
        self._ev = -1.0 / self.moments
        self._zero = np.zeros(3)
        self._fast = (None, None, None)                # (calculator, FastPredictor, engine)

    def _engine(self):
        """The fast engine of the current calculator, or None (not a supported model)."""
        calc, fp, engine = self._fast
        if calc is self.calculator and (fp is None or fp.current()):
            return engine
        from otf_spin.model.fast import fast_predictor

        fp = fast_predictor(self.calculator) if hasattr(self.calculator, "predict") else None
        engine = None if fp is None else fp.engine(self.system)
        self._fast = (self.calculator, fp, engine)
        return engine

    def _results(self, directions):
        key = directions.tobytes()
        if self._last[0] != key:
            self.system.directions = np.array(directions)
            engine = self._engine()
            if engine is not None:
                fields = np.empty((len(self.moments), 3))
                energy = engine.field(np.ascontiguousarray(directions, dtype=float), self._ev,
                                      self._zero, fields)
                results = {"energy": energy, "energies": np.array(engine.energies),
                           "fields": fields}
            elif hasattr(self.calculator, "predict"):
                results = self.calculator.predict(self.system, stds=False)
            else:
                results = self.calculator.compute(self.system)
            self._last = (key, results)
        return self._last[1]

    def field(self, directions, out):
        engine = self._engine()
        if engine is not None:      # hot path: straight into out, in tesla, B_ext added
            engine.field(np.ascontiguousarray(directions, dtype=float), self._tesla,
                         self.b_ext, out)
            return
        out[:] = self._results(directions)["fields"] / MU_B + self.b_ext

    def energy(self, directions) -> float:
        engine = self._engine()
        if engine is not None:
            return float(engine.compute(np.ascontiguousarray(directions, dtype=float), False)
                         - MU_B * np.einsum("i,ik,k->", self.moments, directions, self.b_ext))
        r = self._results(directions)
        moments = np.linalg.norm(r["magmoms"], axis=1) if "magmoms" in r else self.moments
        return float(r["energy"] - MU_B * np.einsum("i,ik,k->", moments, directions,
                                                      self.b_ext))

    def spin_temperature(self, directions) -> float:
        """Nurdin et al. (2000), the Laplacian of E estimated from field differences
        (:mod:`otf_spin.dynamics.spin_temperature`); the current fields stay cached."""
        from otf_spin.dynamics.spin_temperature import spin_temperature

        last = self._last
        try:
            return spin_temperature(self._torque, directions)
        finally:
            self._last = last

    def _torque(self, directions):
        """-(1 - e eᵀ) ∂E/∂e (N, 3) in eV (Zeeman included)."""
        r = self._results(directions)
        moments = np.linalg.norm(r["magmoms"], axis=1) if "magmoms" in r else self.moments
        b = r["fields"] + MU_B * self.b_ext
        b = b - np.einsum("ik,ik->i", b, directions)[:, None] * directions
        return moments[:, None] * b


def make_provider(calculator, system, field_tesla=(0.0, 0.0, 0.0)):
    """The fastest provider for ``calculator``: compiled Heisenberg when possible."""
    from otf_spin.oracles.heisenberg import HeisenbergOracle

    if isinstance(calculator, HeisenbergOracle) and not calculator.slaving \
            and not calculator.terms:             # beyond-bilinear terms: compute() only
        return HeisenbergProvider(calculator, system, field_tesla)
    return ComputeProvider(calculator, system, field_tesla)
