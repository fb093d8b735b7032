"""Sparse Bayesian GP regression of exchange energies and transverse fields (GAP-SOSO).

Model (subset of regressors, as GAP and VASP's MLFF)::

    E_i = Σ_m α_m k(d_i, s_m) - Σ_m α_m k(d_i^FM, s_m)        local energy rel. to FM
    E   = Σ_i E_i                                               total energy (eV)
    B_a = -(1/|m_a|)(1 - e_a e_aᵀ) ∂E/∂e_a                      field (eV/μB)

s_m: M sparse environments; d_i^FM: descriptor of atom i in the collinear FM state of
the same structure, so E(FM) = 0 exactly, as the data contract's energies. Prior
α ~ N(0, δ² K_SS⁻¹); noise: σ_e √N_atoms on a frame's energy (σ_e in eV/atom), σ_b on
each transverse field component (eV/μB). With design rows φ (one per energy, two
transverse dof per field) the posterior precision is

    Λ = K_SS/δ² + Φ_Eᵀ W Φ_E / σ_e² + Φ_Bᵀ Φ_B / σ_b²,  W = diag(1/N_atoms)

α = Λ⁻¹ (Φ_Eᵀ W y_E/σ_e² + Φ_Bᵀ y_B/σ_b²), and the std of any predicted quantity with
row φ is sqrt(φᵀ Λ⁻¹ φ). δ, σ_e, σ_b maximise the marginal likelihood within bounds
(only M×M algebra per evaluation: the Gram blocks are kept); the weights come from a QR
factorisation of the noise-scaled design (accurate for nearly noise-free reference
data, where normal equations fail). Design rows are kept per
frame, so adding frames computes only their rows, and adding sparse points only their
columns (incremental refit).
"""
from __future__ import annotations

import time
import warnings

import numpy as np
from scipy.linalg import solve_triangular
from scipy.optimize import minimize

from otf_spin.model.sparse import pivoted_cholesky

#: bounds of the fitted hyperparameters (internal units); the lower noise bounds keep
#: the noise from collapsing (and the on-the-fly loop from calling the oracle every step)
BOUNDS = {"delta": (1e-4, 1e2), "sigma_energy": (1e-6, 1.0), "sigma_field": (1e-5, 1.0)}
_CHUNK = 64   # sparse points per spin-gradient call (bounds memory to 64·N·D doubles)


class TrainingFrame:
    """A labelled frame with its descriptors and design rows (kept for incremental fits)."""

    def __init__(self, system, energy=None, fields=None, info=None):
        self.system = system.copy()
        self.energy = None if energy is None else float(energy)
        self.info = dict(info or {})
        e = self.system.directions
        if fields is not None:
            fields = np.asarray(fields, float)
            fields = fields - np.einsum("ik,ik->i", fields, e)[:, None] * e   # transverse part
        self.fields = fields
        self.d = None
        self.d_fm = None
        self.phi_E = None     # (M,)
        self.phi_B = None     # (3N, M)

    @property
    def n_atoms(self) -> int:
        return len(self.system)


class SparseGPR:
    """GAP-SOSO exchange model: fit, incremental refit, predict with uncertainty."""

    implemented_properties = ("energy", "energies", "fields", "energy_std", "fields_std")

    def __init__(self, descriptor, kernel, n_sparse: int = 150, delta: float = 1.0,
                 sigma_energy: float = 1e-3, sigma_field: float = 5e-3,
                 optimise: bool = True):
        self.descriptor, self.kernel = descriptor, kernel
        self.n_sparse = int(n_sparse)
        self.hyper = {"delta": float(delta), "sigma_energy": float(sigma_energy),
                      "sigma_field": float(sigma_field)}
        self.optimise = bool(optimise)
        self.frames: list[TrainingFrame] = []
        self.sparse = np.zeros((0, descriptor.size))
        self.alpha = np.zeros(0)
        self._R = None
        self.timings = {}

    # --- design rows ------------------------------------------------------------------
    def _descriptors(self, frame: TrainingFrame):
        if frame.d is None:
            frame.d = self.descriptor.compute(frame.system)
            frame.d_fm = self.descriptor.compute_fm(frame.system)

    def _design_columns(self, system, d, d_fm, S, need_fields=True):
        """Energy row (M,) and transverse field rows (N, 3, M) for sparse points S."""
        phi_E = self.kernel(d, S).sum(axis=0) - self.kernel(d_fm, S).sum(axis=0)
        if not need_fields:
            return phi_E, None
        e = system.directions
        phi_B = np.empty((len(system), 3, len(S)))
        for start in range(0, len(S), _CHUNK):
            block = S[start:start + _CHUNK]
            grad = self.descriptor.spin_gradient(system, self.kernel.gradient(d, block))
            grad -= np.einsum("mak,ak->ma", grad, e)[:, :, None] * e[None]
            phi_B[:, :, start:start + len(block)] = np.moveaxis(grad, 0, -1)
        phi_B *= -1.0 / system.magnitudes[:, None, None]
        return phi_E, phi_B

    def _extend_rows(self, frame: TrainingFrame, S_new):
        self._descriptors(frame)
        phi_E, phi_B = self._design_columns(frame.system, frame.d, frame.d_fm, S_new,
                                            frame.fields is not None)
        phi_B = None if phi_B is None else phi_B.reshape(-1, len(S_new))
        if frame.phi_E is None:
            frame.phi_E, frame.phi_B = phi_E, phi_B
        else:
            frame.phi_E = np.concatenate([frame.phi_E, phi_E])
            if phi_B is not None:
                frame.phi_B = np.concatenate([frame.phi_B, phi_B], axis=1)

    # --- training ---------------------------------------------------------------------
    def fit(self, frames) -> "SparseGPR":
        """Fit from scratch on ``frames`` (objects with system/energy/fields or Frame)."""
        self.frames, self.sparse = [], np.zeros((0, self.descriptor.size))
        return self.add_frames(frames, n_new_sparse=self.n_sparse, optimise=self.optimise)

    def add_frames(self, frames, n_new_sparse: int | None = None, candidates=None,
                   optimise: bool = False) -> "SparseGPR":
        """Add labelled frames, choose up to ``n_new_sparse`` new sparse environments
        among their atoms (``candidates``: list of atom-index arrays per frame, default
        all), compute only the new design rows/columns, and re-solve."""
        t0 = time.perf_counter()
        new = [self._as_training(f) for f in frames]
        for f in new:
            self._descriptors(f)
        if n_new_sparse is None:
            n_new_sparse = max(1, self.n_sparse // 50) * len(new)
        pool = []
        for k, f in enumerate(new):
            idx = np.arange(f.n_atoms) if candidates is None else np.asarray(candidates[k])
            pool.append(f.d[idx])
        pool = np.concatenate(pool) if pool else np.zeros((0, self.descriptor.size))
        picked = pivoted_cholesky(pool, self.kernel, n_new_sparse,
                                  chosen=self.sparse if len(self.sparse) else None)
        S_new = pool[picked]
        t1 = time.perf_counter()
        for f in self.frames:               # old frames: only the new columns
            if len(S_new):
                self._extend_rows(f, S_new)
        self.sparse = np.concatenate([self.sparse, S_new])
        for f in new:                       # new frames: all columns
            self._extend_rows(f, self.sparse)
        self.frames.extend(new)
        t2 = time.perf_counter()
        self._gram()
        if optimise:
            self.optimise_hyperparameters()
        self._solve()
        self.timings = {"select": t1 - t0, "design": t2 - t1,
                        "solve": time.perf_counter() - t2, "total": time.perf_counter() - t0}
        return self

    def _as_training(self, frame) -> TrainingFrame:
        if isinstance(frame, TrainingFrame):
            return frame
        results = getattr(frame, "results", {})
        return TrainingFrame(frame.system, results.get("energy"), results.get("fields"),
                             getattr(frame, "info", None))

    def _gram(self):
        """Gram blocks of the design (everything the likelihood and solve need)."""
        M = len(self.sparse)
        self._K = self.kernel(self.sparse, self.sparse)
        GE, GB = np.zeros((M, M)), np.zeros((M, M))
        cE, cB = np.zeros(M), np.zeros(M)
        yyE = yyB = 0.0
        nE = nB = 0
        logN = 0.0
        for f in self.frames:
            if f.energy is not None:
                w = 1.0 / f.n_atoms
                GE += w * np.outer(f.phi_E, f.phi_E)
                cE += w * f.energy * f.phi_E
                yyE += w * f.energy**2
                nE += 1
                logN += np.log(f.n_atoms)
            if f.fields is not None:
                y = f.fields.reshape(-1)
                GB += f.phi_B.T @ f.phi_B
                cB += f.phi_B.T @ y
                yyB += y @ y
                nB += 2 * f.n_atoms          # two transverse components per atom
        if nE + nB == 0:
            raise ValueError("no labels: training frames carry neither energies nor fields")
        self._blocks = dict(GE=GE, GB=GB, cE=cE, cB=cB, yyE=yyE, yyB=yyB, nE=nE, nB=nB,
                            logN=logN)

    def _whitened(self):
        """Cholesky factor of K_SS (with jitter) and the Gram blocks in whitened form."""
        M = len(self._K)
        K = self._K + 1e-10 * np.trace(self._K) / max(M, 1) * np.eye(M)
        LK = np.linalg.cholesky(K)
        b = self._blocks

        def whiten(G):
            return solve_triangular(LK, solve_triangular(LK, G, lower=True).T, lower=True)

        return LK, whiten(b["GE"]), whiten(b["GB"]), solve_triangular(LK, b["cE"], lower=True),\
            solve_triangular(LK, b["cB"], lower=True)

    def log_marginal_likelihood(self, delta=None, sigma_energy=None, sigma_field=None,
                                _whitened=None):
        """log p(y | δ, σ_e, σ_b) of the training labels (nats).

        Evaluated in the basis whitened by K_SS: Λ' = I/δ² + B', B' = L⁻¹(Φᵀ Σ⁻¹ Φ)L⁻ᵀ,
        with the eigenvalues of B' clipped at zero (it is a Gram matrix), so that the
        evaluation cannot fail for ill-conditioned designs."""
        h = self.hyper
        delta = h["delta"] if delta is None else delta
        sigma_e = h["sigma_energy"] if sigma_energy is None else sigma_energy
        sigma_b = h["sigma_field"] if sigma_field is None else sigma_field
        b = self._blocks
        _, GE, GB, cE, cB = _whitened or self._whitened()
        s, U = np.linalg.eigh(GE / sigma_e**2 + GB / sigma_b**2)
        s = np.clip(s, 0.0, None) + 1.0 / delta**2
        v = U.T @ (cE / sigma_e**2 + cB / sigma_b**2)
        quad = b["yyE"] / sigma_e**2 + b["yyB"] / sigma_b**2 - np.sum(v**2 / s)
        logdet = (np.log(s).sum() + len(s) * np.log(delta**2) + b["nE"] * np.log(sigma_e**2)
                  + b["logN"] + b["nB"] * np.log(sigma_b**2))
        n = b["nE"] + b["nB"]
        return float(-0.5 * (quad + logdet + n * np.log(2 * np.pi)))

    def optimise_hyperparameters(self):
        """Maximise the marginal likelihood over log δ, log σ_e, log σ_b within BOUNDS.

        A noise level that has no data (no energies, or no fields) is left unchanged."""
        names = ["delta"]
        if self._blocks["nE"]:
            names.append("sigma_energy")
        if self._blocks["nB"]:
            names.append("sigma_field")
        whitened = self._whitened()

        def objective(x):
            lml = self.log_marginal_likelihood(**dict(zip(names, np.exp(x))),
                                               _whitened=whitened)
            return 1e300 if not np.isfinite(lml) else -lml

        x0 = np.log([np.clip(self.hyper[k], *BOUNDS[k]) for k in names])
        bounds = [tuple(np.log(BOUNDS[k])) for k in names]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            best = minimize(objective, x0, method="L-BFGS-B", bounds=bounds)
        if np.isfinite(best.fun) and best.fun <= objective(x0):
            self.hyper.update(zip(names, map(float, np.exp(best.x))))
        return self.hyper

    def _solve(self):
        """Weights by QR of the stacked, noise-scaled design (no normal equations):
        [W½Φ_E/σ_e; Φ_B/σ_b; L_Kᵀ/δ] = Q R, α = R⁻¹ Qᵀ y; R is kept for variances
        (φᵀΛ⁻¹φ = |R⁻ᵀφ|²)."""
        h = self.hyper
        M = len(self.sparse)
        K = self._K + 1e-10 * np.trace(self._K) / max(M, 1) * np.eye(M)
        rows, targets = [], []
        for f in self.frames:
            if f.energy is not None:
                scale = 1.0 / (h["sigma_energy"] * np.sqrt(f.n_atoms))
                rows.append(f.phi_E[None] * scale)
                targets.append([f.energy * scale])
            if f.fields is not None:
                rows.append(f.phi_B / h["sigma_field"])
                targets.append(f.fields.reshape(-1) / h["sigma_field"])
        rows.append(np.linalg.cholesky(K).T / h["delta"])
        targets.append(np.zeros(M))
        Q, R = np.linalg.qr(np.concatenate(rows))
        self._R = R
        self.alpha = solve_triangular(R, Q.T @ np.concatenate(targets))

    # --- prediction -------------------------------------------------------------------
    def predict(self, system, stds: bool = True) -> dict:
        """energy (eV, rel. FM), energies (N,), fields (N, 3) eV/μB, and with ``stds``
        energy_std (eV) and fields_std (N, 3) eV/μB."""
        if self._R is None:
            raise RuntimeError("model is not fitted")
        d = self.descriptor.compute(system)
        d_fm = self.descriptor.compute_fm(system)
        k, k_fm = self.kernel(d, self.sparse), self.kernel(d_fm, self.sparse)
        energies = (k - k_fm) @ self.alpha
        G = self.kernel.weighted_gradient(d, self.sparse, self.alpha)
        grad = self.descriptor.spin_gradient(system, G[None])[0]
        e = system.directions
        grad -= np.einsum("ak,ak->a", grad, e)[:, None] * e
        out = {"energy": float(energies.sum()), "energies": energies,
               "fields": -grad / system.magnitudes[:, None]}
        if stds:
            phi_E, phi_B = self._design_columns(system, d, d_fm, self.sparse)
            R = self._R
            vE = solve_triangular(R, phi_E, trans="T")
            out["energy_std"] = float(np.sqrt(vE @ vE))
            vB = solve_triangular(R, phi_B.reshape(-1, len(self.sparse)).T, trans="T")
            out["fields_std"] = np.sqrt(np.einsum("mr,mr->r", vB, vB)).reshape(-1, 3)
        return out

    def compute(self, system) -> dict:
        """Field-provider / oracle-style interface: predict with uncertainties."""
        return self.predict(system, stds=True)

    @property
    def n_frames(self) -> int:
        return len(self.frames)
