"""Pure-Python twin of cython_ext/gap.pyx (same class, same methods, same results).

:class:`GapEngine` evaluates a GAP-SOSO exchange model (dot-product kernels) for one
fixed structure. Everything radial is given once: a compressed pair list (self images
removed, periodic images of one (i, j) merged, equal radial rows shared) and the
per-structure constants. Descriptor layout inside the engine is (l, n) per atom
(index l·n_max + n), the sparse points arrive permuted to it.

Per evaluation, with c_p = e_i·e_j::

    d_i[l, n] = dfm_i[l, n] + Σ_{p in row i} w_l (P_l(c_p) - 1) rtab[rid_p, n]
    E_i       = (d_i - dfm_i)·v + Σ_k Σ_{m in k} α_m κ_k(d_i, s_m) - e_ref_i
    G_i       = ∂E_i/∂d_i
    g_a       = Σ_{p in row a} [Σ_{l,n} (G_a + G_j)[l, n] w_l P_l'(c_p) rtab[rid_p, n]] e_j

κ_k = (d·s̃)^ζ (s̃ = mask ∘ s), or with ``normalize`` (d̂·ŝ)^ζ of the masked vectors.
g_a = ∂E/∂e_a (unprojected); the field is scale_a (g_a - (g_a·e_a) e_a) + b_ext.

With ``angle`` (the exchange_2b_angle term) the descriptor gets a second block after
(l, n): (n, k) per atom, from the term's own pair list (same slot structure; θ and its
derivatives from :mod:`otf_spin.descriptors.angle2b`)::

    d_i[n, k] = dfm_i[n, k] + Σ_{p in row i} (g_k(θ_p) - 1) rtab_a[rid_p, n]
    g_a      += Σ_{p in row a} [Σ_{n,k} (G_a + G_j)[n, k] g_k'(θ_p) rtab_a[rid_p, n]] ∂θ_p/∂e_a

g_k(θ) = P_k(1 - 2θ/π); ∂θ/∂e_a = 0 where |e_a × e_j| < angle2b.PARALLEL (the
compiled engine gets the same threshold as ``angle["parallel"]``).

With ``kappa`` (U, L) (linear pair couplings per radial row that are not descriptor
components, e.g. a linear kernel on the B-spline exchange term folded onto these pairs)::

    E_i      += Σ_{p in row i} Σ_l kappa[rid_p, l] (P_l(c_p) - 1)
    g_a      += Σ_{p in row a} 2 Σ_l kappa[rid_p, l] P_l'(c_p) e_j

With :meth:`GapEngine.set_variance` (every kernel's sparse points Sv, unnormalised, and R⁻¹
of the posterior) an evaluation can also give the local-energy variances::

    v_i       = |r_i R⁻¹|²,  r_i[m] = (d_i·s_m)^ζ - (d_i^FM·s_m)^ζ
"""
from __future__ import annotations

import time

import numpy as np

from otf_spin.descriptors.angle2b import angle_basis, pair_angles
from otf_spin.kernels.soso_py import legendre

#: dy/dθ = -2/π of the angle block's power basis (y = -2θ/π)
TWO_OVER_PI = 2.0 / np.pi


class GapEngine:
    """Model evaluator for one structure.

    Pairs are grouped by atom, then by "slot" (the distinct radial rows among an
    atom's pairs; one per shell in a lattice): soff (N+1,) int64 slot ranges per atom,
    sp (S+1,) int64 pair ranges per slot, srid (S,) int32 radial row of each slot,
    neigh (P,) int32 the neighbour of each pair and jslot (P,) int32 the slot of the
    same radial row among the neighbour's slots (counted from soff[j]). rtab (U, n_max)
    radial rows (Å^-3/2, summed over merged images); w (L,) spin weights; d_fm
    (N, L·n_max) descriptors of the FM state (self images included); v (L·n_max,) the linear kernels' weight
    vector; S (M, L·n_max) the other kernels' sparse points (masked; unit rows where
    normalised); alpha (M,); kstart (K+1,) int64 row ranges of S per kernel; zeta (K,)
    int64; normalize (K,) int32; masks (K, L·n_max) 0/1; e_ref (N,) energies
    subtracted (eV; the FM reference). ``shell``: the compiled engine's choice of the
    shell basis for its products (None: automatic); the twin always evaluates the full
    descriptors (the shell basis regroups the same sums), so ``shell`` is False here.
    ``angle``: None, or the angle block's pair list as a dict (soff, sp, srid, neigh,
    jslot, rtab (Ua, n_a) as above, k_max, parallel); d_fm, v, S and masks then have
    L·n_max + n_a·k_max columns. ``kappa``: None, or (U, L) pair couplings per radial
    row (eV; module docstring), exactly 0 at FM like the descriptor's change (the
    compiled engine keeps rtab and kappa without a copy when they are the column blocks
    of one C-contiguous table, as :meth:`FastPredictor.pairs` gives them:
    ``gap.joint_table``).
    """

    def __init__(self, soff, sp, srid, neigh, jslot, rtab, w, d_fm, v, S, alpha,
                 kstart, zeta, normalize, masks, e_ref, shell=None, angle=None, kappa=None):
        if shell and np.any(normalize):
            raise ValueError("the shell basis needs unnormalised kernels")
        self.shell = False
        self.neigh = neigh
        self.n_atoms, self.n_max = len(soff) - 1, rtab.shape[1]
        self.rows, self.rid = self._pair_rows(soff, sp, srid)
        self.angle = angle
        self.a_slots = 0 if angle is None else len(angle["srid"])
        if angle is not None:
            self.arows, self.arid = self._pair_rows(angle["soff"], angle["sp"], angle["srid"])
        self.rtab, self.w, self.d_fm, self.v = rtab, w, d_fm, v
        self.kappa = None if kappa is None else np.asarray(kappa, float).reshape(len(rtab), len(w))
        self.S, self.alpha, self.kstart = S, alpha, kstart
        self.zeta, self.normalize = zeta, normalize
        self.masks = np.asarray(masks, float).reshape(len(zeta), len(v))
        self.e_ref = np.array(e_ref, float)
        self.L = len(w)
        self.Ds = self.L * self.n_max
        self.d_array = np.zeros((self.n_atoms, len(v)))
        self.G_array = np.zeros_like(self.d_array)
        self.energies = np.zeros(self.n_atoms)
        self.grad = np.zeros((self.n_atoms, 3))
        self.Mv, self._variance = 0, None
        self.reset_profile()

    @property
    def profile(self) -> dict:
        """Accumulated seconds per stage (descriptor, kernel, gradient, field) and the
        number of evaluations."""
        return dict(self._profile)

    @property
    def nbytes(self) -> int:
        """Bytes of every array the engine holds (structure data and buffers)."""
        return int(sum(a.nbytes for a in vars(self).values() if isinstance(a, np.ndarray)))

    def reset_profile(self, cpu: bool = False):
        """Zero the stage timers; ``cpu``: CPU seconds of the process, else wall."""
        self._clock = time.process_time if cpu else time.perf_counter
        self._profile = {"descriptor": 0.0, "kernel": 0.0, "gradient": 0.0, "field": 0.0,
                         "calls": 0}

    def _pair_rows(self, soff, sp, srid):
        """(atom, radial row) of every pair of a slot structure."""
        slot = np.repeat(np.arange(len(srid)), np.diff(sp))
        return np.repeat(np.arange(self.n_atoms), np.diff(soff))[slot], np.asarray(srid)[slot]

    def fm_energies(self):
        """Energies (N,) eV of the FM state (all e along z) into ``energies``, less the
        current reference, and returned (a copy): the kernels at d = d_fm, the linear
        change from FM 0 (P_l(1) = 1, g_k(0) = 1)."""
        self.d_array[:] = self.d_fm
        self.energies[:] = 0.0
        self._kernels(False)
        return self.energies.copy()

    def set_reference(self, e_ref):
        """Replace the energies subtracted per atom (N,) eV."""
        self.e_ref = np.array(e_ref, float)

    def _cos(self, e):
        return np.einsum("pk,pk->p", e[self.rows], e[self.neigh])

    def descriptors(self, e, out):
        """Write the descriptors (N, L·n_max) of directions ``e`` (N, 3) into ``out``;
        ``energies`` is left as the last evaluation made it."""
        self._descriptors(e, out)

    def _descriptors(self, e, out):
        """:meth:`descriptors`; returns the linear kernels' energies (N,) eV."""
        P, _ = legendre(self._cos(e), self.L - 1)
        pair_energy = 0.0 if self.kappa is None else \
            np.bincount(self.rows, np.einsum("pl,pl->p", P - 1.0, self.kappa[self.rid]),
                        minlength=self.n_atoms)
        contrib = ((P - 1.0) * self.w)[:, :, None] * self.rtab[self.rid][:, None, :]
        soso = np.zeros((self.n_atoms, self.L, self.n_max))
        np.add.at(soso, self.rows, contrib)
        out[:, :self.Ds] = soso.reshape(self.n_atoms, -1)
        if self.angle is not None:
            a = self.angle
            g = angle_basis(pair_angles(e, self.arows, a["neigh"], False), a["k_max"], False)
            block = np.zeros((self.n_atoms, a["rtab"].shape[1], a["k_max"]))
            np.add.at(block, self.arows, a["rtab"][self.arid][:, :, None] * (g - 1.0)[:, None, :])
            out[:, self.Ds:] = block.reshape(self.n_atoms, -1)
        linear = out @ self.v + pair_energy     # linear kernels: change from FM
        out += self.d_fm
        return linear

    def _kernels(self, need_grad):
        d = self.d_array
        E = self.energies.copy()
        G = np.broadcast_to(self.v, d.shape).copy() if need_grad else None
        for k in range(len(self.zeta)):
            lo, hi = self.kstart[k], self.kstart[k + 1]
            S, a, z = self.S[lo:hi], self.alpha[lo:hi], int(self.zeta[k])
            if self.normalize[k]:
                x = d * self.masks[k]
                norm = np.sqrt(np.einsum("ij,ij->i", x, x))
                nz = np.where(norm > 0, norm, 1.0)
                c = (d @ S.T) / nz[:, None]
            else:
                c = d @ S.T
            E += (c ** z) @ a
            if need_grad:
                coef = z * c ** (z - 1) * a[None, :]
                if self.normalize[k]:
                    G += (coef @ S) / norm[:, None] \
                        - ((coef * c).sum(axis=1) / norm**2)[:, None] * x
                else:
                    G += coef @ S
        self.energies[:] = E - self.e_ref
        if need_grad:
            self.G_array[:] = G

    def _contract(self, e):
        rows, js = self.rows, self.neigh
        _, dP = legendre(self._cos(e), self.L - 1)
        G = self.G_array[:, :self.Ds].reshape(self.n_atoms, self.L, self.n_max)
        s = np.einsum("pln,pl,pn->p", G[rows] + G[js], dP * self.w, self.rtab[self.rid])
        if self.kappa is not None:
            s += 2.0 * np.einsum("pl,pl->p", dP, self.kappa[self.rid])
        self.grad[:] = 0.0
        np.add.at(self.grad, rows, s[:, None] * e[js])
        if self.angle is not None:
            a, rows, js = self.angle, self.arows, self.angle["neigh"]
            theta, ti, _ = pair_angles(e, rows, js)
            _, dg = angle_basis(theta, a["k_max"])
            Ga = self.G_array[:, self.Ds:].reshape(self.n_atoms, -1, a["k_max"])
            s = np.einsum("pnk,pk,pn->p", Ga[rows] + Ga[js], dg, a["rtab"][self.arid])
            np.add.at(self.grad, rows, s[:, None] * ti)

    def set_variance(self, Sv, kvstart, kvzeta, Rinv, shared=None):
        """Install the posterior of the local energies for the ``variances`` of
        :meth:`compute` and :meth:`field`: Sv (Mv, D) every kernel's masked sparse points
        (unnormalised dot-product powers) in the posterior's column order, kvstart
        (Kv + 1,), kvzeta (Kv,), Rinv (Mv, Mv) R⁻¹ of the posterior factor (upper
        triangular). v_i = |r_i R⁻¹|² (eV²), r_i[m] = (d_i·s_m)^ζ - (d_i^FM·s_m)^ζ.
        ``shared`` (which of Sv's columns the compiled pipeline takes from the energy's
        own products) changes no number: not used here."""
        Sv = np.asarray(Sv, float)
        if Sv.ndim != 2 or Sv.shape[1] != self.d_array.shape[1] or len(Sv) == 0:
            raise ValueError(f"set_variance: Sv (Mv ≥ 1, {self.d_array.shape[1]}) expected")
        ks, kz = np.asarray(kvstart, np.int64), np.asarray(kvzeta, np.int64)
        if len(ks) != len(kz) + 1 or ks[0] != 0 or ks[-1] != len(Sv) or \
                np.any(np.diff(ks) < 0) or np.any(kz < 1):
            raise ValueError("set_variance: kvstart must partition Sv's rows, kvzeta ≥ 1")
        if np.shape(Rinv) != (len(Sv), len(Sv)):
            raise ValueError(f"set_variance: Rinv ({len(Sv)}, {len(Sv)}) expected")
        self.Mv = len(Sv)
        self._variance = (Sv, ks, kz, np.asarray(Rinv, float))

    def _variances(self, out):
        """v_i (N,) into out from the descriptors of the current evaluation."""
        Sv, ks, kz, Rinv = self._variance
        C, Cfm = self.d_array @ Sv.T, self.d_fm @ Sv.T
        for k in range(len(kz)):
            part = slice(ks[k], ks[k + 1])
            C[:, part] = C[:, part] ** int(kz[k]) - Cfm[:, part] ** int(kz[k])
        V = C @ Rinv
        out[:] = np.einsum("im,im->i", V, V)

    def _check_variances(self, variances):
        if variances is None:
            return
        if getattr(self, "_variance", None) is None:
            raise ValueError("variances asked for before set_variance")
        if not (isinstance(variances, np.ndarray) and variances.dtype == np.float64
                and variances.shape == (self.n_atoms,) and variances.flags.c_contiguous
                and variances.flags.writeable):
            raise ValueError("variances: a writeable C-contiguous float64 (N,) array expected")

    def compute(self, e, need_grad=True, variances=None) -> float:
        """Energies (N,) into ``self.energies`` and, with ``need_grad``, ∂E/∂e (N, 3)
        into ``self.grad``; returns the total energy (eV). ``variances``: None, or an
        (N,) float64 array for the local-energy variances (:meth:`set_variance`)."""
        self._check_variances(variances)
        clock = self._clock
        t0 = clock()
        self.energies[:] = self._descriptors(e, self.d_array)
        if variances is not None:
            self._variances(variances)
        t1 = clock()
        self._kernels(need_grad)
        t2 = clock()
        if need_grad:
            self._contract(e)
        prof = self._profile
        prof["descriptor"] += t1 - t0
        prof["kernel"] += t2 - t1          # the twin does products and gradient together
        prof["field"] += clock() - t2
        prof["calls"] += 1
        return float(self.energies.sum())

    def metropolis_sweep(self, e, beta, sigma, gauss, uniform, zeeman) -> int:
        """One sequential Metropolis sweep (as the compiled kernel; here ΔE from two
        total energies per move); e is updated in place, returns the number accepted."""
        accepted = 0
        for k in range(self.n_atoms):
            trial = e[k] + sigma * gauss[k]
            norm = np.sqrt(trial @ trial)
            if norm == 0.0:
                continue
            trial = trial / norm
            moved = e.copy()
            moved[k] = trial
            dE = self.compute(moved, False) - self.compute(e, False) \
                - zeeman[k] @ (trial - e[k])
            if dE <= 0.0 or uniform[k] < np.exp(-beta * dE):
                e[k] = trial
                accepted += 1
        return accepted

    def field(self, e, scale, b_ext, out, variances=None) -> float:
        """out = scale_a (g_a - (g_a·e_a) e_a) + b_ext (N, 3); returns the total energy.
        ``variances``: as :meth:`compute`'s."""
        total = self.compute(e, True, variances)
        self.project(e, scale, b_ext, out)
        return total

    def project(self, e, scale, b_ext, out) -> None:
        """out = scale_a (g_a - (g_a·e_a) e_a) + b_ext from the last compute's ∂E/∂e."""
        g = self.grad
        out[:] = scale[:, None] * (g - np.einsum("ak,ak->a", g, e)[:, None] * e) + b_ext


def angles(s, c, out) -> None:
    """out = atan2(s, c) (P,) for s ≥ 0 (the compiled engine's own atan2 of its pair
    angles, equal to numpy's to 2.5e-16 relative)."""
    np.arctan2(s, c, out=out)


def unordered_angles(e, ui, uj, par_tol, y, inv) -> None:
    """For the atom pairs (ui[q], uj[q]) (P,) of unit directions e (N, 3): y[q] =
    -2θ/π, θ = atan2(|e_i × e_j|, e_i·e_j), and inv[q] = 1/|e_i × e_j| (0 where
    |e_i × e_j| < par_tol) — the engine's per-pair angle values of the angle block."""
    ei, ej = e[ui], e[uj]
    n = np.stack([ei[:, 1] * ej[:, 2] - ei[:, 2] * ej[:, 1],
                  ei[:, 2] * ej[:, 0] - ei[:, 0] * ej[:, 2],
                  ei[:, 0] * ej[:, 1] - ei[:, 1] * ej[:, 0]], axis=1)
    sn = np.sqrt((n[:, 0] * n[:, 0] + n[:, 1] * n[:, 1]) + n[:, 2] * n[:, 2])
    c = (ei[:, 0] * ej[:, 0] + ei[:, 1] * ej[:, 1]) + ei[:, 2] * ej[:, 2]
    y[:] = -TWO_OVER_PI * np.arctan2(sn, c)
    keep = sn >= par_tol
    inv[:] = np.where(keep, 1.0 / np.where(keep, sn, 1.0), 0.0)


def compress_pairs(i, j, d, n_atoms, tol):
    """Slot structure of a pair list grouped by atom i (ascending); see the compiled
    kernel: (soff, sp, srid, neigh, jslot, rep, self_atom, self_group)."""
    i, j, d = np.asarray(i), np.asarray(j), np.asarray(d)
    if len(i) and (np.any(np.diff(i) < 0) or i.min() < 0 or i.max() >= n_atoms):
        raise ValueError("pairs must be grouped by atom i in ascending order")
    q = (d / tol + 0.5).astype(np.int64)
    _, first, inverse = np.unique(q, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    gid = rank[inverse.reshape(-1)]                 # groups numbered by first occurrence
    rep = d[np.sort(first)]
    is_self = j == i
    keep = ~is_self
    ii, jj, gg = i[keep], j[keep], gid[keep]
    order = np.lexsort((jj, gg, ii))
    ii, jj, gg = ii[order], jj[order], gg[order]
    new = np.ones(len(ii), bool)
    new[1:] = (ii[1:] != ii[:-1]) | (gg[1:] != gg[:-1])
    starts = np.flatnonzero(new)
    srid = gg[starts]
    soff = np.zeros(n_atoms + 1, np.int64)
    np.cumsum(np.bincount(ii[starts], minlength=n_atoms), out=soff[1:])
    slot_keys = ii[starts] * (len(rep) + 1) + srid
    where = np.searchsorted(slot_keys, jj * (len(rep) + 1) + gg)
    if len(where) and (where.max() >= len(slot_keys) or
                       np.any(slot_keys[np.minimum(where, len(slot_keys) - 1)]
                              != jj * (len(rep) + 1) + gg)):
        raise ValueError("pair list is not symmetric (no reverse pair)")
    return (soff, np.append(starts, len(ii)).astype(np.int64), srid.astype(np.int32),
            jj.astype(np.int32), (where - soff[jj]).astype(np.int32), rep,
            i[is_self].astype(np.int64), gid[is_self].astype(np.int64))


def slot_sums(soff, sp, srid, rtab, out):
    """out[a] = Σ_{slots s of atom a} (pairs in s) rtab[srid[s]] (N, K), summed in slot
    order from zero as the compiled kernel."""
    if out.shape != (len(soff) - 1, rtab.shape[1]):
        raise ValueError("slot_sums: out must be (atoms, rtab.shape[1])")
    counts = np.diff(sp).astype(float)
    out[:] = 0.0
    np.add.at(out, np.repeat(np.arange(len(soff) - 1), np.diff(soff)),
              counts[:, None] * rtab[srid])
