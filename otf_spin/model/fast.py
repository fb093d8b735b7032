"""Fast energies and transverse fields of a fitted GAP-SOSO model, and its stds on the
engine's descriptors.

Same numbers as :meth:`SparseGPR.predict` with ``stds=False`` (to rounding; parity is
tested to 1e-10), for models whose descriptor is the plain exchange-2b SOSO descriptor,
or the composite of exchange-2b with the B-spline exchange term
(:class:`~otf_spin.descriptors.spline2b.SplineExchangeDescriptor`), the angle exchange
term (:class:`~otf_spin.descriptors.angle2b.AngleExchangeDescriptor`) or both — what
the term selection of ``otf-spin train`` adds on displaced, thermal and Eq. 41 sets —
and whose kernels are :class:`~otf_spin.model.covariance.DotProductKernel` with 0/1
masks (``with_terms`` kernels over exchange-2b and the angle block included); the
spline block may be seen by linear kernels only (ζ = 1, unnormalised: as the selection
adds it), its r_max within exchange-2b's r_c and its l_max at most exchange-2b's.
:func:`fast_predictor` returns None for any other model (exchange-3b, dipole-2b, a
spline block in a nonlinear kernel); callers then use ``model.predict``.

For fixed positions everything radial is constant, so it is prepared once per structure
(:meth:`FastPredictor.engine`, cached on positions, cell, pbc and species):

- the neighbour list, compressed: pairs whose distances agree to ``DISTANCE_TOL``
  share one radial row, and each atom's pairs are grouped in "slots" of equal radial
  row (one per shell in a lattice: 9 within 7 Å in bcc Fe), so the radial part costs
  O(slots·n_max·l_max) per atom and the per-pair work is O(l_max); memory per pair is
  two int32. Self images (e_i·e_i = 1) are constant and go into the FM descriptor;
  in cells narrower than 2 r_c the periodic images of one (i, j) are merged (they share
  e_i·e_j) into one pair whose radial row is the sum of theirs;
- the FM reference: descriptors of the collinear state and their energies (computed by
  the same engine, so the FM state gives exactly 0: ``fm_energies``, from the FM
  descriptors without a pass over the pairs where their sums are exactly 0 at FM);
- with the angle term, its own compressed pair list (its r_c) and radial rows, built the
  same way; its block follows the exchange-2b block in the engine's descriptor;
- with the spline term: its linear kernels' weights v_s fold into pair couplings on the
  exchange-2b pairs, κ_l(r) = w^s_l Σ_n B_n(r) v_s[n, l] (its energy is
  Σ_ij Σ_l κ_l(r_ij) (P_l(e_i·e_j) - 1), relative to FM), one row κ per radial row
  (summed over merged images like the radial rows): the engine's ``kappa``; the spline
  block itself is never formed.

The model's predictive stds (:meth:`FastPredictor.stds`, what an on-the-fly check asks
for) are computed from the engine's compiled descriptors of the directions just
evaluated and the structure's FM descriptors kept with the engine, by the model's own
formulas (:meth:`SparseGPR.stds_of_descriptors`): no descriptor pass of the model (but
for a spline term's block, which the engine never forms: the term computes it). The
engine keeps the structures of several providers of one model (``STRUCTURES``).

Per model: the linear, unnormalised kernels (ζ = 1) collapse into one weight vector
v = Σ_m α_m mask∘s_m, so their local energy is d_i·v, i.e. per-pair Legendre couplings
Σ_l c_l(r_ij) P_l(e_i·e_j) with c_l(r) = w_l Σ_n R_n(r) v[n, l]; the other kernels keep
their (masked, or unit) sparse points. The compiled :mod:`otf_spin._ext.gap` engine (twin
:mod:`otf_spin.kernels.gap_py`) then evaluates descriptor → kernel → weighted gradient →
field with preallocated buffers (OpenMP over atoms, BLAS for the kernel products).
"""
from __future__ import annotations

import collections
import operator
import os
import weakref

import numpy as np

from otf_spin.calculator import STD_PROPERTIES
from otf_spin.descriptors.angle2b import PARALLEL, AngleExchangeDescriptor
from otf_spin.descriptors.composite import CompositeDescriptor
from otf_spin.descriptors.soso import SOSODescriptor
from otf_spin.descriptors.spline2b import SplineExchangeDescriptor
from otf_spin.kernels import load as load_kernel
from otf_spin.kernels.blas_threads import SERIAL_BELOW, one_thread
from otf_spin.model.covariance import DotProductKernel
from otf_spin.model.gpr import field_variance
from otf_spin.system import neighbour_distances

#: pairs whose distances differ by less than this (Å) share one radial row: far below
#: any physical length; the radial functions then differ by < 1e-11 relative
DISTANCE_TOL = 1e-12
#: rows of the radial and coupling tables computed per block when :meth:`FastPredictor.pairs`
#: writes them into the engine's joint table (a block's 2.6 MB at n_max 20 is reused)
CHUNK = 16384
#: structures whose engines a FastPredictor keeps (several providers, one model), the
#: most recent first; older ones only while all kept hold at most STRUCTURE_ATOMS atoms
#: (an engine takes 3-7 kB per atom: a spin-lattice run on 16 000 atoms, a new structure
#: every step, keeps one)
STRUCTURES = 4
STRUCTURE_ATOMS = 20000
_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


#: term layouts of the descriptors the engine evaluates (composite term order)
LAYOUTS = ((SOSODescriptor,), (SOSODescriptor, SplineExchangeDescriptor),
           (SOSODescriptor, AngleExchangeDescriptor),
           (SOSODescriptor, SplineExchangeDescriptor, AngleExchangeDescriptor))


def terms(descriptor):
    """(exchange-2b term, spline term or None, angle term or None) of a descriptor the
    engine evaluates, or None: the plain SOSO descriptor, or a composite of it with the
    spline and/or the angle term (l_max, k_max ≤ 32; the spline's r_max ≤ exchange-2b's
    r_c and its l_max ≤ exchange-2b's: its couplings ride on exchange-2b's pairs)."""
    if type(descriptor) is SOSODescriptor:
        parts = [descriptor]
    elif type(descriptor) is CompositeDescriptor:
        parts = list(descriptor.terms)
    else:
        return None
    if tuple(type(t) for t in parts) not in LAYOUTS:
        return None
    soso = parts[0]
    spline = next((t for t in parts if type(t) is SplineExchangeDescriptor), None)
    angle = next((t for t in parts if type(t) is AngleExchangeDescriptor), None)
    if soso.l_max > 32 or (angle is not None and angle.k_max > 32):
        return None
    if spline is not None and (spline.r_max > soso.r_cut or spline.l_max > soso.l_max):
        return None
    return soso, spline, angle


def term_slice(descriptor, kind) -> slice:
    """Columns of term ``kind`` in ``descriptor``'s layout (the whole vector for a plain
    SOSO descriptor and exchange-2b)."""
    if type(descriptor) is CompositeDescriptor:
        return descriptor.term(kind)[1]
    return slice(0, descriptor.size)


def supports(model) -> bool:
    """True when the fast path reproduces ``model.predict`` (energies and fields)."""
    found = terms(model.descriptor)
    if found is None:
        return False
    if not getattr(model, "kernels", None) or len(model.kernels) != len(model.sparse):
        return False
    spline = None if found[1] is None else term_slice(model.descriptor, found[1].kind)
    for kernel in model.kernels:
        if type(kernel) is not DotProductKernel:
            return False
        if kernel.mask is not None and not np.all((kernel.mask == 0) | (kernel.mask == 1)):
            return False
        linear = kernel.zeta == 1 and not kernel.normalize
        if spline is not None and not linear and \
                (kernel.mask is None or np.any(kernel.mask[spline])):
            return False            # the spline block in a nonlinear kernel: not folded
    total = sum(len(S) for S in model.sparse)           # fitted: weights for every point
    return total > 0 and len(getattr(model, "alpha", ())) == total


def fast_predictor(model) -> "FastPredictor | None":
    """The (cached) :class:`FastPredictor` of ``model``, or None if not supported.

    Refits replace ``model.alpha`` and the sparse arrays; the cache then rebuilds.
    ``OTF_SPIN_FAST_MODEL=0`` in the environment turns the fast path off (timings of
    the reference path)."""
    if os.environ.get("OTF_SPIN_FAST_MODEL", "1") == "0" or not supports(model):
        return None
    fp = _CACHE.get(model)
    if fp is None or not fp.current():
        fp = FastPredictor(model)
        _CACHE[model] = fp
    return fp


def predict(model, system) -> dict:
    """energy (eV), energies (N,), fields (N, 3) eV/μB: fast path, else model.predict."""
    fp = fast_predictor(model)
    return model.predict(system, stds=False) if fp is None else fp.predict(system)


class FastPredictor:
    """Model-side constants of the fast path, and per-structure engines."""

    def __init__(self, model, kernel=None):
        """``kernel``: the engine module (default: compiled, else the twin)."""
        self.model = model
        desc, self.spline, self.angle = terms(model.descriptor)
        self.desc = desc
        self.n_max, self.L = desc.n_max, desc.l_max + 1
        D = model.descriptor.size            # the model's layout
        # engine column -> model column: exchange-2b (model n·L + l, engine l·n_max + n),
        # then the angle block (n·k_max + k) unchanged; the spline block is not a column
        # of the engine (its weights become the pair couplings kappa)
        blocks = [(np.arange(self.n_max)[None, :] * self.L
                   + np.arange(self.L)[:, None]).ravel()]
        if self.angle is not None:
            part = term_slice(model.descriptor, self.angle.kind)
            blocks.append(np.arange(part.start, part.stop))
        self.perm = np.concatenate(blocks)
        # model column -> engine column where the engine has every column (no spline)
        self._gather = np.argsort(self.perm) if len(self.perm) == D else None
        self._alpha = model.alpha
        self._sparse = list(model.sparse)
        v = np.zeros(D)
        S, alpha, kstart, zeta, normalize, masks = [], [], [0], [], [], []
        engine_kernels = []     # per kernel of the engine, the model's kernel it is
        start = 0
        for j, (k, Sk) in enumerate(zip(model.kernels, model.sparse)):
            a = model.alpha[start:start + len(Sk)]
            start += len(Sk)
            mask = np.ones(D) if k.mask is None else k.mask
            Sm = Sk * mask
            if k.zeta == 1 and not k.normalize:
                v += a @ Sm
                continue
            engine_kernels.append(j)
            if k.normalize:
                norm = np.linalg.norm(Sm, axis=1, keepdims=True)
                Sm = Sm / np.where(norm > 0, norm, 1.0)
            S.append(Sm[:, self.perm])
            alpha.append(a)
            kstart.append(kstart[-1] + len(Sk))
            zeta.append(k.zeta)
            normalize.append(k.normalize)
            masks.append(mask[self.perm])
        self.v = np.ascontiguousarray(v[self.perm])
        # the spline block's linear weights v_s (n_basis, l_max_s) as pair-coupling
        # weights (n_basis, L): κ_l(r) = Σ_n B_n(r) kweights[n, l] = w^s_l Σ_n B_n v_s[n, l]
        self.kweights = None
        if self.spline is not None:
            sp = self.spline
            vs = v[term_slice(model.descriptor, sp.kind)].reshape(sp.n_max, sp.n_orders)
            self.kweights = np.zeros((sp.n_max, self.L))
            self.kweights[:, sp.l_min:sp.l_max + 1] = vs * sp.w[None, sp.l_min:]
        Dn = len(self.perm)
        self.S = np.ascontiguousarray(np.concatenate(S) if S else np.zeros((0, Dn)))
        self.alpha = np.ascontiguousarray(np.concatenate(alpha) if alpha else np.zeros(0))
        self.kstart = np.array(kstart, dtype=np.int64)
        self.zeta = np.array(zeta, dtype=np.int64)
        self.normalize = np.array(normalize, dtype=np.int32)
        self.masks = np.ascontiguousarray(np.array(masks).reshape(len(zeta), Dn))
        self._kernel = kernel or load_kernel("gap")
        # every kernel's masked sparse points (engine columns), powers and which engine
        # kernel is which model kernel, for the engine's local-energy variances
        # (fields_std_epistemic in the evaluation's own pass, :meth:`field_and_variances`):
        # unnormalised dot-product powers over the columns the engine has (no spline
        # block), a calibrated model
        self._variance_set = None
        if self._gather is not None and model.local_variance_proxy and all(
                isinstance(k, DotProductKernel) and k.plain_rows for k in model.kernels):
            self._variance_set = ([k.masked_sparse(Sk)[:, self.perm] for k, Sk in
                                   zip(model.kernels, model.sparse)],
                                  np.array([k.zeta for k in model.kernels], dtype=np.int64),
                                  engine_kernels)
        # per structure (key: positions, cell, pbc), most recent last: [engine, its FM
        # descriptors (engine layout), the same in the model's layout once a std is
        # asked (read-only)]; several providers of one model on different structures
        # (each keeps its engine) then share this predictor without rebuilding
        self._structures: "collections.OrderedDict" = collections.OrderedDict()
        self.timings: dict = {}

    def current(self) -> bool:
        """False once the model was refit (new weights or sparse points)."""
        m = self.model      # (map over operator.is_: no generator per call, the hot path)
        return m.alpha is self._alpha and len(m.sparse) == len(self._sparse) and \
            all(map(operator.is_, m.sparse, self._sparse))

    # --- per structure ----------------------------------------------------------------
    def pairs(self, system, term=None, found=None, couplings=None):
        """Compressed pair list of ``system`` as the engine's arguments (soff, sp, srid,
        neigh, jslot, rtab; see :class:`otf_spin.kernels.gap_py.GapEngine`)
        and self_rows (N, n_max), the radial sum of each atom's self images; for the
        radial basis and cutoff of ``term`` (default: the exchange-2b term). ``found``:
        (i, j, distances) of :func:`neighbour_distances` at a cutoff ≥ the term's, reused
        (filtered) in cells wider than 2 r_c. ``couplings``: None, or a function of the
        distances r (P,) -> (P, K) whose values per radial row come as ``kappa`` (U, K),
        through the same merging (sums over images; self images left out); ``rtab`` and
        ``kappa`` are then the column blocks of one (U, n_max + K) table, ``joint``
        (for :meth:`structure`, not an engine argument), which the engine keeps as its
        joint rows without a copy."""
        term = self.desc if term is None else term

        def radial(r):
            R = term.radial_values(r)
            return R if couplings is None else np.hstack([R, couplings(r)])

        n_max = term.n_max if couplings is None else term.n_max + couplings(np.zeros(0)).shape[1]
        n = len(system)
        rc = term.r_cut
        if self.wide(system, rc):
            # no atom sees two images of another: the compiled compression, unsorted pairs
            if found is None:
                i, j, dist = neighbour_distances(system.cell, system.pbc, system.positions,
                                                 rc)
            else:
                i, j, dist = found
                if dist.max(initial=0.0) >= rc:
                    keep = dist < rc
                    i, j, dist = i[keep], j[keep], dist[keep]
            soff, sp, srid, neigh, jslot, rep, self_atom, self_group = \
                self._kernel.compress_pairs(i, j, dist, n, DISTANCE_TOL)
            del i, j, dist, found     # freed first: their pages serve the radial table
            if couplings is None:
                rtab = term.radial_values(rep)
            else:
                # the engine's joint rows (radial values, then couplings) written in
                # blocks of CHUNK rows: no separate tables of both to copy from
                table = np.empty((len(rep), n_max))
                for a in range(0, len(rep), CHUNK):
                    part = rep[a:a + CHUNK]
                    table[a:a + CHUNK, :term.n_max] = term.radial_values(part)
                    table[a:a + CHUNK, term.n_max:] = couplings(part)
                rtab = table[:, :term.n_max]
            self_rows = np.zeros((n, term.n_max))
            np.add.at(self_rows, self_atom, rtab[self_group])
            out = {"soff": soff, "sp": sp, "srid": srid, "neigh": neigh, "jslot": jslot,
                   "rtab": rtab, "self_rows": self_rows}
            if couplings is not None:
                out["kappa"], out["joint"] = table[:, term.n_max:], table
            return out
        # small cells: the periodic images of one (i, j) are merged below
        nl = system.neighbours(rc)
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(nl.offsets))
        dist = nl.distances
        # one radial row per group of equal distances (sorted, consecutive within tol)
        order = np.argsort(dist, kind="stable")
        new = np.empty(len(dist), bool)
        new[:1] = True
        np.greater(np.diff(dist[order]), DISTANCE_TOL, out=new[1:])
        gid = np.empty(len(dist), np.int64)
        gid[order] = np.cumsum(new) - 1
        rg = radial(dist[order][new])                    # (groups, n_max)
        is_self = nl.j == rows
        self_rows = np.zeros((n, n_max))
        if is_self.any():
            np.add.at(self_rows, rows[is_self], rg[gid[is_self]])
        keep = ~is_self
        rows, js, gid = rows[keep], nl.j[keep], gid[keep]
        # merge the periodic images of one (i, j): pairs are sorted by i, then j
        key = rows * n + js
        first = np.empty(len(key), bool)
        first[:1] = True
        np.not_equal(key[1:], key[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        counts = np.diff(np.append(starts, len(key)))
        if np.all(counts == 1):
            rid, rtab = gid, rg
        else:
            table = {(g,): g for g in range(len(rg))}
            extra = []
            rid = gid[starts].copy()
            for index in np.flatnonzero(counts > 1):
                images = tuple(sorted(gid[starts[index]:starts[index] + counts[index]]))
                row = table.get(images)
                if row is None:
                    row = table[images] = len(rg) + len(extra)
                    extra.append(rg[list(images)].sum(axis=0))
                rid[index] = row
            rtab = np.concatenate([rg, np.array(extra).reshape(-1, n_max)])
        rows, js = rows[starts], js[starts]
        if len(rows) >= 2**31:
            raise ValueError("more than 2^31 pairs: beyond the int32 pair indices of the "
                             "fast predictor")
        # slots: the distinct radial rows among each atom's pairs (one per shell); pairs
        # sorted by atom, then slot
        U = len(rtab)
        key = rows * U + rid
        order = np.argsort(key, kind="stable")
        key, js = key[order], js[order]
        first = np.empty(len(key), bool)
        first[:1] = True
        np.not_equal(key[1:], key[:-1], out=first[1:])
        slots = key[first]
        sp = np.append(np.flatnonzero(first), len(key)).astype(np.int64)
        soff = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(slots // U, minlength=n), out=soff[1:])
        partner = js * U + key % U
        where = np.searchsorted(slots, partner)
        if len(where) and (where.max() >= len(slots) or
                           np.any(slots[np.minimum(where, len(slots) - 1)] != partner)):
            raise RuntimeError("pair list is not symmetric in its radial rows")
        rtab = np.ascontiguousarray(rtab)
        out = {"soff": soff, "sp": sp, "srid": (slots % U).astype(np.int32),
               "neigh": js.astype(np.int32), "jslot": (where - soff[js]).astype(np.int32),
               "rtab": rtab[:, :term.n_max], "self_rows": self_rows[:, :term.n_max]}
        if couplings is not None:
            out["kappa"], out["joint"] = rtab[:, term.n_max:], rtab
        return out

    @staticmethod
    def wide(system, rc) -> bool:
        """True if no atom of ``system`` sees two periodic images of another within
        ``rc`` (Å): every periodic cell width above 2 rc."""
        periodic = np.asarray(system.pbc, bool)
        return not periodic.any() or bool(np.all(system.cell_widths()[periodic] > 2 * rc))

    def structure(self, system, term=None, found=None, couplings=None):
        """:meth:`pairs` of ``term`` with only the radial rows some slot uses (the
        engine's shell basis has one column block per row; self images and unmerged
        image rows are not needed), and ``fm`` (N, n_max): each atom's radial sum over
        all its pairs and self images (the FM descriptor's radial part). With
        ``couplings`` (see :meth:`pairs`) ``kappa`` of the used rows."""
        term = self.desc if term is None else term
        pairs = self.pairs(system, term, found, couplings)
        used = np.zeros(len(pairs["rtab"]), bool)
        used[pairs["srid"]] = True
        # the radial rows, with the couplings after them (one table, see pairs())
        table = pairs.pop("joint", pairs["rtab"])
        if not used.all():       # (every row is used in wide cells without self images)
            index = np.cumsum(used, dtype=np.int64) - 1
            pairs["srid"] = index[pairs["srid"]].astype(np.int32)
            table = np.ascontiguousarray(table[used])
            pairs["rtab"] = table[:, :term.n_max]
            if "kappa" in pairs:
                pairs["kappa"] = table[:, term.n_max:]
        n = len(system)
        fm = pairs.pop("self_rows").copy()
        # fm += Σ over each atom's slots of (pairs in the slot) × the slot's radial row
        # (summed over the whole table's columns: the couplings' sums are not used)
        sums = np.empty((n, table.shape[1]))
        self._kernel.slot_sums(pairs["soff"], pairs["sp"], pairs["srid"], table, sums)
        fm += sums[:, :term.n_max]
        return pairs, fm

    def engine(self, system):
        """The compiled engine for ``system``'s structure (positions, cell, pbc and
        species; the most recent structures' engines are kept: STRUCTURES,
        STRUCTURE_ATOMS)."""
        return self._structure(system)[0]

    def _structure(self, system) -> list:
        """[engine, FM descriptors (engine layout), FM descriptors in the model's layout
        or None, (the posterior factor R, hyper std_variance_sparse) whose variance
        posterior the engine has installed or None
        (:meth:`field_and_variances`), (key, scale) of :meth:`epistemic` or None] of
        ``system``'s structure (positions, cell, pbc and species), built on
        first use (a species the model was not trained on: ValueError,
        :meth:`SparseGPR.check_species`); the most recent are kept (STRUCTURES,
        STRUCTURE_ATOMS)."""
        key = (system.positions.tobytes(), system.cell.tobytes(), system.pbc.tobytes(),
               system.species.tobytes())
        found = self._structures.get(key)
        if found is not None:
            self._structures.move_to_end(key)
            return found
        self.model.check_species(system)        # once per structure, not per step
        import time

        t0 = time.perf_counter()
        found = None
        if self.angle is not None and self.wide(system, max(self.desc.r_cut,
                                                            self.angle.r_cut)):
            # one neighbour search for both terms, at the larger cutoff
            i, j, dist = neighbour_distances(system.cell, system.pbc, system.positions,
                                             max(self.desc.r_cut, self.angle.r_cut))
            found = (i, j, dist)
        couplings = None if self.spline is None else self.couplings
        pairs, radial = self.structure(system, found=found, couplings=couplings)
        angle = None
        if self.angle is not None:
            angle, radial_a = self.structure(system, self.angle, found)
            angle.update(k_max=self.angle.k_max, parallel=PARALLEL)
        t1 = time.perf_counter()
        n = len(system)
        w = np.ascontiguousarray(self.desc.w)
        # FM descriptors: every pair (and self image) with P_l(1) = 1, g_k(0) = 1
        d_fm = (w[None, :, None] * radial[:, None, :]).reshape(n, -1)
        if angle is not None:
            d_fm = np.concatenate([d_fm, np.repeat(radial_a, self.angle.k_max, axis=1)], axis=1)
        engine = self._kernel.GapEngine(**pairs, w=w, d_fm=np.ascontiguousarray(d_fm),
                                        v=self.v, S=self.S, alpha=self.alpha,
                                        kstart=self.kstart, zeta=self.zeta,
                                        normalize=self.normalize, masks=self.masks,
                                        e_ref=np.zeros(n), angle=angle)
        # FM reference energies by the engine itself: the FM state then gives 0 exactly
        engine.set_reference(engine.fm_energies())
        self.timings = {"neighbours+radial": t1 - t0, "fm_reference": time.perf_counter() - t1}
        found = self._structures[key] = [engine, d_fm, None, None, None]
        while len(self._structures) > STRUCTURES or (len(self._structures) > 1 and sum(
                len(kept[1]) for kept in self._structures.values()) > STRUCTURE_ATOMS):
            self._structures.popitem(last=False)
        return found

    def couplings(self, r) -> np.ndarray:
        """Pair couplings κ_l(r) (P, L) eV of the spline term's linear kernels at
        distances r (P,) Å (zero outside its [r_min, r_max))."""
        return self.spline.radial_dot(r, self.kweights)

    def predict(self, system) -> dict:
        """energy (eV, rel. FM), energies (N,), fields (N, 3) eV/μB, as
        ``model.predict(system, stds=False)``."""
        engine = self.engine(system)
        e = np.ascontiguousarray(system.directions, dtype=float)
        fields = np.empty((len(system), 3))
        total = engine.field(e, -1.0 / system.magnitudes, np.zeros(3), fields)
        return {"energy": total, "energies": np.array(engine.energies), "fields": fields}

    def fm_descriptors(self, system) -> np.ndarray:
        """(N, D) FM descriptors of ``system``'s structure in the model's layout (the
        spline block by its term), made once per structure and read-only: the model
        keeps its FM kernel rows for this very array."""
        found = self._structure(system)
        if found[2] is None:
            fm = self._model_layout(found[1])
            if self.spline is not None:
                part, block = self._spline_block(system, fm=True)
                fm[:, part] = block
            fm.flags.writeable = False
            found[2] = fm
        return found[2]

    def descriptors(self, system) -> np.ndarray:
        """(N, D) descriptors of ``system``'s directions in the model's layout, by the
        compiled engine; the spline block, which the engine folds into pair couplings
        and never forms, is NaN."""
        engine = self.engine(system)
        out = np.empty((len(system), len(self.perm)))
        engine.descriptors(np.ascontiguousarray(system.directions, dtype=float), out)
        return self._model_layout(out)

    def _model_layout(self, d) -> np.ndarray:
        """Engine-layout descriptors ``d`` (N, D_engine) in the model's layout (N, D),
        the spline block NaN."""
        if self._gather is not None:
            return np.take(d, self._gather, axis=1)
        full = np.full((len(d), self.model.descriptor.size), np.nan)
        full[:, self.perm] = d
        return full

    def _spline_block(self, system, fm: bool) -> tuple[slice, np.ndarray]:
        """The spline term's columns and block (N, D_s) of ``system`` (its FM block with
        ``fm``): computed by the term itself, as the model does."""
        part = term_slice(self.model.descriptor, self.spline.kind)
        return part, self.spline.compute_fm(system) if fm else self.spline.compute(system)

    @property
    def fused_variances(self) -> bool:
        """Whether :meth:`field_and_variances` can give ``fields_std_epistemic`` from the
        evaluation's own pass (else :meth:`stds`)."""
        return self._variance_set is not None

    def field_and_variances(self, system, e, scale, b_ext, out) -> tuple[float, np.ndarray]:
        """The engine's ``field`` (arguments and return as
        :meth:`GapEngine.field`) with the local-energy posterior variances v (N,) eV²
        of the same directions made in the same pass (:meth:`GapEngine.set_variance`,
        installed per structure on first use): (total energy, v). Needs
        :attr:`fused_variances`."""
        v = np.empty(len(system))
        return self._variance_engine(system).field(e, scale, b_ext, out, v), v

    def variances(self, system, e) -> np.ndarray:
        """The local-energy posterior variances v (N,) eV² of directions ``e`` (N, 3),
        by an energy-only pass of the engine (no field pass): for a check at directions
        whose energy and fields were already evaluated without them. Needs
        :attr:`fused_variances`."""
        v = np.empty(len(system))
        self._variance_engine(system).compute(e, False, v)
        return v

    def _variance_engine(self, system):
        """The engine of ``system``'s structure with the model's current posterior
        installed (:meth:`GapEngine.set_variance`, once per structure and posterior)."""
        found = self._structure(system)
        engine = found[0]
        n = self.model.hyper.get("std_variance_sparse")
        if found[3] is None or found[3][0] is not self.model.posterior_factor or \
                found[3][1] != n:
            with one_thread(len(system) < SERIAL_BELOW):    # (no BLAS threads spinning)
                engine.set_variance(*self._variance_posterior())
            found[3] = (self.model.posterior_factor, n)
        return engine

    def _variance_posterior(self) -> tuple:
        """The arguments of :meth:`GapEngine.set_variance` for the model's variance
        posterior (:meth:`SparseGPR.variance_basis`: the first sparse points of each
        kernel): (Sv, kvstart, kvzeta, R_v⁻¹, shared) — the engine's kernels take those
        columns from the energy's own products."""
        blocks, zeta, engine_kernels = self._variance_set
        _, Rinv = self.model.variance_basis()
        counts = self.model.variance_counts()
        kvstart = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        Sv = np.ascontiguousarray(np.concatenate([S[:m] for S, m in zip(blocks, counts)]))
        return Sv, kvstart, zeta, Rinv, kvstart[engine_kernels]

    def epistemic(self, system, v) -> np.ndarray:
        """``fields_std_epistemic`` (N, 3) eV/μB of ``system``'s directions from their
        local-energy variances ``v`` (N,) (:meth:`field_and_variances`): the square root
        of the model's :meth:`SparseGPR.field_variance`, its scale kept per structure
        while the posterior, the calibration and the moments are the same."""
        found = self._structure(system)
        h = self.model.hyper
        key = (self.model.posterior_factor, h.get("std_field_local"), h.get("std_field_scale"),
               h.get("std_transfer_disorder"), system.magnitudes.tobytes())
        if found[4] is None or found[4][0] is not key[0] or found[4][1:-1] != key[1:]:
            found[4] = key + (self.model.field_variance_scale(
                system, self.fm_descriptors(system)),)
        return np.sqrt(field_variance(found[4][-1], v, system.directions))

    def stds(self, system, properties=STD_PROPERTIES) -> dict:
        """The stds of ``properties`` (energy_std eV, fields_std, fields_std_epistemic
        (N, 3) eV/μB) of ``system``'s directions, as ``model.compute(system,
        properties)`` (to rounding), from the engine's compiled descriptors and the structure's FM
        descriptors kept with the engine (the model's FM kernel rows and structure
        transfer are cached per structure by the model); the spline block, if any, by
        its term."""
        d = self.descriptors(system)                    # (builds the engine if needed)
        d_fm = self.fm_descriptors(system)
        if self.spline is not None:
            part, block = self._spline_block(system, fm=False)
            d[:, part] = block
        with one_thread(len(system) < SERIAL_BELOW):    # as model.compute
            return self.model.stds_of_descriptors(system, d, d_fm, properties)
