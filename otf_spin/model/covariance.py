"""Dot-product kernels on descriptors: k(d, s) and its gradient with respect to d.

``DotProductKernel(zeta, normalize, mask)``: k = (d·s)^ζ, or (d̂·ŝ)^ζ with unit-normalised
descriptors (SOAP practice), of the descriptor components selected by ``mask`` (0/1
weights, e.g. one Legendre order of the SOSO descriptor; None = all). zeta = 1,
normalize = False is the linear kernel (a generalised Heisenberg model in the
descriptor); the paper's fit used ζ = 4. The amplitude δ² is a hyperparameter of the
regression, not of the kernel.
"""
from __future__ import annotations

import numpy as np


class DotProductKernel:
    def __init__(self, zeta: int = 4, normalize: bool = True, mask=None):
        if zeta < 1 or int(zeta) != zeta:
            raise ValueError(f"kernel power zeta must be a positive integer, got {zeta}")
        self.zeta, self.normalize = int(zeta), bool(normalize)
        self.mask = None if mask is None else np.asarray(mask, float)
        # 0/1 masks on unnormalised kernels: (x∘m)·(s∘m) = x·(s∘m) term by term, so the
        # descriptors need no masked copy (the sparse rows are masked once, _sparse)
        self._plain_rows = not self.normalize and (
            self.mask is None or bool(np.all((self.mask == 0) | (self.mask == 1))))
        self._kept = None       # (S, its masked (unit) rows, their norms): see _sparse

    def __getstate__(self):
        return {**self.__dict__, "_kept": None}

    def settings(self) -> dict:
        return {"type": "dot_product", "zeta": self.zeta, "normalize": self.normalize,
                "mask": None if self.mask is None else self.mask.tolist()}

    def _masked(self, *arrays):
        return arrays if self.mask is None else tuple(A * self.mask for A in arrays)

    def _unit(self, X):
        norm = np.linalg.norm(X, axis=-1, keepdims=True)
        return X / np.where(norm > 0, norm, 1.0), norm

    def _sparse(self, S):
        """S (M, D) masked and, with ``normalize``, unit rows: the same arrays as
        masking and normalising on the spot, kept for the last S given (the model
        passes its sparse arrays, which a refit replaces and nothing edits in place)."""
        kept = self._kept
        if kept is not None and kept[0] is S:
            return kept[1]
        Sm = S if self.mask is None else S * self.mask
        if self.normalize:
            Sm, _ = self._unit(Sm)
        self._kept = (S, Sm)
        return Sm

    def __call__(self, X, S) -> np.ndarray:
        """k(X_i, S_m), (N, M)."""
        S = self._sparse(S)
        if not self._plain_rows:
            (X,) = self._masked(X)
            if self.normalize:
                X, _ = self._unit(X)
        return self.power(X @ S.T)

    def power(self, c) -> np.ndarray:
        """c**ζ of dot products c (any shape), in place (repeated squaring: a few
        multiplications per element instead of pow); returns c."""
        z = self.zeta
        while z % 2 == 0:                   # the factors of two by squaring, no copy
            np.multiply(c, c, out=c)
            z //= 2
        if z > 1:                           # then the odd rest: c^z = c·c·…
            base = c.copy()
            for _ in range(z - 1):
                np.multiply(c, base, out=c)
        return c

    @property
    def plain_rows(self) -> bool:
        """True if k(X, S) = (X·S_masked)^ζ with the descriptors X as they are (an
        unnormalised kernel with a 0/1 mask or none): rows of several such kernels can
        come from one product with their stacked masked sparse points."""
        return self._plain_rows

    def masked_sparse(self, S) -> np.ndarray:
        """S (M, D) as the kernel uses it (masked and, with ``normalize``, unit rows)."""
        return self._sparse(S)

    def gradient(self, X, S) -> np.ndarray:
        """∇_x k(X_i, S_m), shape (M, N, D)."""
        (X,) = self._masked(X)      # ∇ of k(x·m) is m·∇k: S is masked, so is every term
        S = self._sparse(S)
        if self.normalize:
            Xu, norm = self._unit(X)
            Su = S
            c = Xu @ Su.T                                              # (N, M)
            coef = self.zeta * c ** (self.zeta - 1)                    # (N, M)
            out = (coef.T[:, :, None] * (Su[:, None, :] - c.T[:, :, None] * Xu[None]))
            return out / norm[None]
        if self.zeta == 1:
            return np.broadcast_to(S[:, None, :], (len(S), len(X), X.shape[1])).copy()
        c = X @ S.T
        return (self.zeta * c ** (self.zeta - 1)).T[:, :, None] * S[:, None, :]

    def weighted_gradient(self, X, S, alpha) -> np.ndarray:
        """Σ_m alpha_m ∇_x k(X_i, S_m), shape (N, D) (no (M, N, D) intermediate)."""
        (X,) = self._masked(X)
        S = self._sparse(S)
        if self.normalize:
            Xu, norm = self._unit(X)
            Su = S
            c = Xu @ Su.T
            coef = self.zeta * c ** (self.zeta - 1) * alpha[None, :]   # (N, M)
            return (coef @ Su - (coef * c).sum(axis=1, keepdims=True) * Xu) / norm
        c = X @ S.T
        return (self.zeta * c ** (self.zeta - 1) * alpha[None, :]) @ S
