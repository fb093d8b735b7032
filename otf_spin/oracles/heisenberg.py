"""Embedded Heisenberg reference oracle: the "DFT" that needs nothing installed.

Energy (both conventions name the same physics with different J's)::

    double_counted (Pajda, UppASD):  E = -Σ_{i≠j} J_ij s_i s_j e_i·e_j   (each bond twice)
    per_pair     (Spirit, VAMPIRE):  E = -Σ_{i<j} J_ij s_i s_j e_i·e_j   (each bond once)

so J_per_pair = 2 J_double_counted. Sums run over periodic images (r_ij may
exceed half the cell). s_i = M_i/M0 when moments are slaved to the spin angles
(paper Eq. 41: M_i = m0 - dm Σ_{j≠i} θ_ij/(n_i π), n_i neighbours of i within
the exchange range), else s_i = 1 and the moment magnitudes are the system's.
Exchange J(r) comes from shells, explicit pairs, a formula (paper Eq. 43:
J = c/r³ exp(-r/r0) for r ≤ r_c) or UppASD files. Returned energies are
relative to the collinear FM state of the same structure (paper Eq. 37);
``energy_fm`` is that reference (eV) and forces are -∂(energy + energy_fm)/∂r,
the physical forces a DFT code reports.
"""
from __future__ import annotations

import numpy as np

from otf_spin.calculator import Calculator
from otf_spin.config.engine import Key, Section
from otf_spin.config.oracles import MOMENT_KEY
from otf_spin.core import ConfigError
from otf_spin.io.uppasd import read_jfile_shells
from otf_spin.kernels import load as load_kernel
from otf_spin.oracles import terms
from otf_spin.oracles.base import Oracle

CONVENTIONS = ("double_counted", "per_pair")
#: factor turning J of a convention into the weight of one directed pair entry
DIRECTED_WEIGHT = {"double_counted": 1.0, "per_pair": 0.5}


def convert_convention(J, source: str, target: str):
    """Convert exchange constants between conventions (same energies)."""
    return np.asarray(J, float) * DIRECTED_WEIGHT[source] / DIRECTED_WEIGHT[target]


# --- exchange laws: pair list -> J (eV, in the oracle's convention) and dJ/dr ----------
class ShellExchange:
    """J constant on shells: pairs whose distance is within ``tolerance`` of a shell.

    ``name`` is the YAML key the shells came from (for errors); ``lattice_constant``
    (Å): the a the distances were scaled by (shells given in units of a), None for
    shells given in Å. A shell with a nonzero value that matches no pair of a periodic
    structure is an error, whose hint names the likely cause: shells in Å written in
    units of a (``distance_unit``), or a ``lattice_constant`` that is not the
    structure's (then the a of the structure's nearest-neighbour distance is given); in
    an open cluster only a term none of whose shells matches any pair is.
    """

    def __init__(self, distances, J, tolerance, name: str = "shells",
                 lattice_constant: float | None = None):
        self.lattice_constant = None if lattice_constant is None else float(lattice_constant)
        order = np.argsort(distances)
        self.distances = np.asarray(distances, float)[order]
        self.J = np.asarray(J, float)[order]
        self.tolerance = float(tolerance)
        self.name = name
        gaps = np.diff(self.distances)
        if np.any(gaps <= 2 * self.tolerance):
            k = int(np.argmin(gaps))
            raise ConfigError(f"{name}: shells at {self.distances[k]:.4f} and "
                              f"{self.distances[k + 1]:.4f} Å overlap within shell_tolerance "
                              f"{self.tolerance} Å")
        self.cutoff = self.distances[-1] + self.tolerance

    def _nearest(self, distances):
        """Index of the nearest shell (P,) and whether the distance lies on it (P,)."""
        d = self.distances
        k = np.clip(np.searchsorted(d, distances), 1, len(d) - 1) if len(d) > 1 \
            else np.zeros(len(distances), int)
        if len(d) > 1:
            k = np.where(np.abs(d[k - 1] - distances) < np.abs(d[k] - distances), k - 1, k)
        return k, np.abs(d[k] - distances) <= self.tolerance

    def _hint(self, nl) -> str:
        """The likely cause of a shell that matches no pair (see the class doc)."""
        a = self.lattice_constant
        if a is None:
            return "distances in units of a need distance_unit: lattice"
        hint = f"the shells are in units of lattice_constant {a:.4f} Å"
        if len(nl.distances):
            # the first shell taken as the nearest neighbours: a = r_nn / (d_1 / a), said
            # only if every shell then meets a pair (else the first shell is another)
            r_nn = float(nl.distances.min())
            scaled = self.distances[self.J != 0.0] * (r_nn / self.distances[0])
            gap = np.abs(nl.distances[None, :] - scaled[:, None]).min(axis=1)
            if np.all(gap <= self.tolerance):
                hint += (f", while the structure's nearest-neighbour distance {r_nn:.4f} Å "
                         f"gives a = {r_nn * a / self.distances[0]:.4f} Å")
        return hint + " (lattice_constant must be the structure's)"

    def membership(self, distances):
        """Whether each distance (Å) lies on one of the shells (bool array)."""
        return self._nearest(np.asarray(distances, float))[1]

    def __call__(self, nl, system):
        k, inside = self._nearest(nl.distances)
        matched = np.bincount(k[inside], minlength=len(self.distances)) > 0
        missing = (~matched) & (self.J != 0.0)
        if missing.any() and (system.pbc.any() or matched.sum() == 0) and len(system) > 0:
            d = self.distances[np.flatnonzero(missing)[0]]
            near = nl.distances[np.argmin(np.abs(nl.distances - d))] if len(nl.distances) \
                else None
            closest = f"closest pair {near:.4f} Å" if near is not None else \
                f"no pair within {self.cutoff:.4f} Å"
            raise ConfigError(f"{self.name}: the shell at {d:.4f} Å matches no pair of the "
                              f"structure ({closest}, shell_tolerance {self.tolerance} Å); "
                              + self._hint(nl))
        return np.where(inside, self.J[k], 0.0), np.zeros(len(nl.distances))


class FormulaExchange:
    """Paper Eq. 43: J(r) = c/r³ exp(-r/r0) for r ≤ cutoff, else 0 (c in eV·Å³)."""

    def __init__(self, c, r0, cutoff):
        self.c, self.r0, self.cutoff = float(c), float(r0), float(cutoff)

    def __call__(self, nl, system):
        r = nl.distances
        J = np.where(r <= self.cutoff, self.c / r**3 * np.exp(-r / self.r0), 0.0)
        dJ = -J * (3.0 / r + 1.0 / self.r0)
        return J, dJ


class PairExchange:
    """Explicit couplings (i, j, shift) -> J; the reverse pair gets the same J."""

    def __init__(self, pairs, J):
        self.table = {}
        for (i, j, s0, s1, s2), value in zip(pairs, J):
            self.table[(int(i), int(j), int(s0), int(s1), int(s2))] = float(value)
            self.table.setdefault((int(j), int(i), -int(s0), -int(s1), -int(s2)), float(value))
        self.cutoff = None  # set from the structure in __call__

    def reach(self, system):
        """Largest coupled distance (Å) in ``system``."""
        best = 0.0
        for (i, j, *shift) in self.table:
            if max(i, j) >= len(system):
                raise ConfigError(f"pairs: atom index {max(i, j)} out of range for "
                                  f"{len(system)} atoms")
            d = system.positions[j] + np.asarray(shift) @ system.cell - system.positions[i]
            best = max(best, float(np.linalg.norm(d)))
        return best

    def __call__(self, nl, system):
        rows = nl.i
        J = np.array([self.table.get((int(i), int(j), *map(int, s)), 0.0)
                      for i, j, s in zip(rows, nl.j, nl.shifts)])
        return J, np.zeros(len(J))


def _slaving_check(block):
    if block["m0"] <= block["dm"]:
        return "m0 must exceed dm so that moments stay positive"
    return None


SLAVING = Section({
    "m0": Key("quantity", "moment of the collinear FM state (M0 of the energy scaling)",
              2.2, unit="μB", dimension="moment", minimum=0.0),
    "dm": Key("quantity", "moment reduction at full antiparallel disorder", 0.6,
              unit="μB", dimension="moment", minimum=0.0),
}, "Moments slaved to spin angles, paper Eq. 41", _slaving_check)

FORMULA = Section({
    "form": Key("str", "J(r) law; exp_r3: J = c/r³ exp(-r/r0) (paper Eq. 43)", "exp_r3",
                choices=("exp_r3",)),
    "c": Key("quantity", "prefactor c", unit="eV*Å^3", dimension="energy_volume"),
    "r0": Key("quantity", "decay length r0", unit="angstrom", dimension="length",
              minimum=1e-6),
    "cutoff": Key("float", "exchange range r_c, in distance_unit (Å, or units of a)",
                  minimum=0.0),
})

UPPASD = Section({
    "jfile": Key("path", "UppASD jfile: i_type j_type rx ry rz J (J in mRy)"),
    "maptype": Key("int", "UppASD maptype: 1 = (rx, ry, rz) Cartesian in units of a; "
                   "2 = in basis-vector coordinates (needs posfile and cell)", 1,
                   choices=(1, 2)),
    "posfile": Key("path", "UppASD posfile (needed for maptype 2)", None),
    "cell": Key("list", "UppASD cell vectors in units of a (for maptype 2)", None,
                item=Key("list", "cell vector", item=Key("float", "component"), length=3),
                length=3),
})


#: keys whose values are distances in ``distance_unit``
DISTANCE_KEYS = ("shells", "formula", "biquadratic", "pseudo_dipolar", "three_spin",
                 "triangle", "dipolar")


def _check_block(block):
    given = [k for k in ("shells", "pairs", "formula", "uppasd") if block.get(k) is not None]
    if len(given) != 1:
        return (f"give exactly one exchange source of shells, pairs, formula, uppasd "
                f"(got {', '.join(given) or 'none'})")
    uses = [k for k in DISTANCE_KEYS if block.get(k) is not None]
    if uses and block.get("distance_unit") is None:
        return (f"distance_unit: required with {', '.join(uses)} (angstrom: distances in Å; "
                f"lattice: in units of the lattice constant a); there is no default")
    if not np.linalg.norm(block["fm_direction"]) > 0:
        return "fm_direction: must be a nonzero vector"
    axis = (block.get("uniaxial_anisotropy") or {}).get("axis")
    if axis is not None and not np.linalg.norm(axis) > 0:
        return "uniaxial_anisotropy.axis: must be a nonzero vector"
    return None


def _shell_rows(doc, symbol):
    return Key("list", doc, None, item=Key("row", f"[distance, {symbol}]", columns=(
        Key("float", "distance (distance_unit)", minimum=1e-6),
        Key("quantity", symbol, unit="meV", dimension="energy"))))


def _multi_spin(doc):
    return Key("section", doc, None, section=Section({
        "K": Key("quantity", "coupling K", unit="meV", dimension="energy"),
        "shells": Key("list", "neighbour shells (distance_unit) that carry the term",
                      item=Key("float", "distance (distance_unit)", minimum=1e-6)),
    }))


_VECTOR = dict(item=Key("float", "component"), length=3)

SCHEMA = Section({
    "convention": Key("str", "exchange convention: double_counted H = -Σ_{i≠j} J e_i·e_j "
                      "(Pajda, UppASD); per_pair H = -Σ_{i<j} J e_i·e_j (Spirit, VAMPIRE); "
                      "applies to biquadratic and pseudo_dipolar too",
                      choices=CONVENTIONS),
    "distance_unit": Key("str", "unit of every shell distance and cutoff: angstrom, or "
                         "lattice = units of the lattice constant a; required with shells, "
                         "formula or any shell term (no default)", None,
                         choices=("angstrom", "lattice")),
    "lattice_constant": Key("quantity", "lattice constant a for distance_unit: lattice when "
                            "no system section provides it", None, unit="angstrom",
                            dimension="length", minimum=1e-6),
    "shell_tolerance": Key("quantity", "a pair belongs to a shell within this distance", 0.05,
                           unit="angstrom", dimension="length", minimum=0.0),
    "shells": _shell_rows("exchange shells [distance (distance_unit), J (meV)]", "J"),
    "pairs": Key("list", "explicit couplings [i, j, n1, n2, n3, J (meV)]: atom j shifted by "
                 "n·cell", None, item=Key("row", "[i, j, n1, n2, n3, J]", columns=(
                     Key("int", "i", minimum=0), Key("int", "j", minimum=0), Key("int", "n1"),
                     Key("int", "n2"), Key("int", "n3"),
                     Key("quantity", "J", unit="meV", dimension="energy")))),
    "formula": Key("section", "J(r) formula (paper Eq. 43)", None, section=FORMULA),
    "uppasd": Key("section", "exchange from UppASD files (J in mRy; UppASD counts each "
                  "bond twice: use convention double_counted)", None, section=UPPASD),
    "moment": MOMENT_KEY,
    "moment_slaving": Key("section", "slave moments to spin angles (paper Eq. 41); energies "
                          "scale by M_i M_j / m0²", None, section=SLAVING),
    "biquadratic": _shell_rows("biquadratic shells [distance, B (meV)]: E = -Σ B (e_i·e_j)², "
                               "pairs counted as convention", "B"),
    "pseudo_dipolar": _shell_rows("pseudo-dipolar shells [distance, D (meV)]: E = -Σ D "
                                  "[3(e_i·r̂)(e_j·r̂) - e_i·e_j], pairs counted as convention",
                                  "D"),
    "three_spin": _multi_spin("E = -K Σ_i Σ_{j<k} (e_i·e_j)(e_i·e_k), j, k neighbours of i "
                              "on the shells; once per centre i and unordered pair {j, k}"),
    "triangle": _multi_spin("E = -K Σ (e_i·e_j)(e_j·e_k)(e_k·e_i) over triangles whose three "
                            "edges lie on the shells; each triangle once"),
    "dipolar": Key("section", "magnetic dipole-dipole energy -(μ0/4π) μB² M_i M_j / r³ "
                   "[3(e_i·r̂)(e_j·r̂) - e_i·e_j], each pair once, real-space sum to cutoff "
                   "(no Ewald)", None, section=Section({
                       "cutoff": Key("float", "real-space cutoff r_c (distance_unit)",
                                     minimum=1e-6)})),
    "uniaxial_anisotropy": Key("section", "E = -K Σ_i (e_i·n)² (K > 0: easy axis n)", None,
                               section=Section({
                                   "K": Key("quantity", "K_u per atom", unit="meV",
                                            dimension="energy"),
                                   "axis": Key("list", "axis n (normalised)", **_VECTOR)})),
    "cubic_anisotropy": Key("section", "E = +K Σ_i (e_x²e_y² + e_y²e_z² + e_z²e_x²), "
                            "Cartesian axes (K > 0: easy axes ⟨100⟩)", None,
                            section=Section({"K": Key("quantity", "K_c per atom", unit="meV",
                                                      dimension="energy")})),
    "fm_direction": Key("list", "spin direction of the collinear FM reference state "
                        "(energy = E - E_FM along it); matters for anisotropic terms only",
                        [0.0, 0.0, 1.0], **_VECTOR),
}, "Heisenberg exchange oracle", _check_block)


class HeisenbergHamiltonian(Calculator):
    """The classical Heisenberg Hamiltonian: exchange J(r) with optional moment slaving
    (paper Sec. III B) and optional beyond-Heisenberg ``terms``
    (:mod:`otf_spin.oracles.terms`). A :class:`~otf_spin.calculator.Calculator`; the
    dynamics run on it directly (:func:`otf_spin.dynamics.providers.make_provider`),
    :class:`HeisenbergOracle` labels with it."""

    implemented_properties = ("energy", "fields", "magmoms", "forces")
    default_properties = implemented_properties

    def __init__(self, exchange, convention: str = "double_counted", moment: float = 2.2,
                 slaving: dict | None = None, terms=(), fm_direction=(0.0, 0.0, 1.0)):
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
        self.exchange = exchange
        self.convention = convention
        self.moment = float(moment)
        self.slaving = slaving
        self.terms = tuple(terms)
        fm = np.asarray(fm_direction, float)
        self.fm_direction = fm / np.linalg.norm(fm)
        self._cache_key = None
        self._cache = None
        self._fm_key = None
        self._kernel = load_kernel("exchange")

    @property
    def bilinear(self) -> bool:
        """True when :meth:`couplings` describe this Hamiltonian completely (fixed
        moments, no terms beyond bilinear exchange): the compiled LLG provider and the
        Heisenberg Monte Carlo sampler run on it."""
        return not self.slaving and not self.terms

    # --- pair list for a structure (cached while positions stay fixed) -------------
    def couplings(self, system):
        """(offsets, neigh, J_dir, dJ_dir, vectors, distances) for ``system``.

        J_dir (eV) is the weight of one directed pair entry: E = -Σ_p J_dir s_i s_j c_ij.
        Only for a purely bilinear oracle: compiled consumers (LLG provider, Monte Carlo,
        Curie estimates) would silently drop any other term.
        """
        pair_hamiltonian(self)              # refuses terms beyond bilinear exchange
        return self._pair_couplings(system)

    def _pair_couplings(self, system):
        key = (system.positions.tobytes(), system.cell.tobytes(), system.pbc.tobytes())
        if key == self._cache_key:
            return self._cache
        cutoff = self.exchange.cutoff
        if cutoff is None:
            cutoff = self.exchange.reach(system)
        nl = system.neighbours(cutoff * (1 + 1e-9) + 1e-9)
        J, dJ = self.exchange(nl, system)
        keep = J != 0.0
        w = DIRECTED_WEIGHT[self.convention]
        rows = nl.i[keep]
        offsets = np.zeros(len(system) + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=len(system)), out=offsets[1:])
        self._cache = (offsets, np.ascontiguousarray(nl.j[keep]), np.ascontiguousarray(J[keep] * w),
                       dJ[keep] * w, nl.vectors[keep], nl.distances[keep])
        self._cache_key = key
        return self._cache

    # --- the calculation --------------------------------------------------------
    def _terms_fm_energy(self, system, M_fm):
        """Σ of the terms' energies (eV) with every spin along ``fm_direction``."""
        key = (system.positions.tobytes(), system.cell.tobytes(), system.pbc.tobytes(),
               M_fm.tobytes())
        if self._fm_key != key:
            fm = np.tile(self.fm_direction, (len(system), 1))
            self._fm_energy = sum(term(system, fm, M_fm)[0] for term in self.terms)
            self._fm_key = key
        return self._fm_energy

    def slaved_moments(self, system, couplings=None):
        """Moments M_i (N,) of paper Eq. 41 and the per-pair data needed for gradients."""
        offsets, neigh, J, _, _, _ = couplings or self._pair_couplings(system)
        rows = np.repeat(np.arange(len(system)), np.diff(offsets))
        other = neigh != rows
        i, j = rows[other], neigh[other]
        e = system.directions
        c = np.clip(np.einsum("pk,pk->p", e[i], e[j]), -1.0, 1.0)
        n_i = np.bincount(i, minlength=len(system)).astype(float)
        coef = np.where(n_i > 0, self.slaving["dm"] / (np.maximum(n_i, 1) * np.pi), 0.0)
        theta_sum = np.bincount(i, weights=np.arccos(c), minlength=len(system))
        return self.slaving["m0"] - coef * theta_sum, (i, j, c, coef)

    def compute(self, system, properties=None):
        """energy (eV, rel. FM), fields (N, 3) eV/μB, magmoms (N, 3) μB, forces (N, 3)
        eV/Å, and ``energy_fm`` (eV), whatever ``properties`` asks for."""
        self.check_properties(properties)
        couplings = self._pair_couplings(system)
        offsets, neigh, J, dJ, vectors, distances = couplings
        n = len(system)
        e = np.ascontiguousarray(system.directions)
        if self.slaving:
            M, (pi, pj, pc, coef) = self.slaved_moments(system, couplings)
            s = M / self.slaving["m0"]
            M_fm = np.full(n, float(self.slaving["m0"]))
        else:
            M = system.magnitudes.copy()
            s = np.ones(n)
            M_fm = M
        h = np.empty((n, 3))
        self._kernel.exchange_field(e, s, offsets, neigh, J, h)
        e_dot_h = np.einsum("ik,ik->i", e, h)
        energy_fm = -float(J.sum())                      # E_FM = -Σ J_dir (s = 1)
        energy = -float(np.dot(s, e_dot_h)) - energy_fm
        # gradient of E w.r.t. e_i (each bond appears in both rows)
        grad = -2.0 * s[:, None] * h
        dE_dM = -2.0 * e_dot_h / self.slaving["m0"] if self.slaving else np.zeros(n)
        # forces: E = -Σ_p J(r_p) s_i s_j c_p with r_p = |r_j + S - r_i|
        rows = np.repeat(np.arange(n), np.diff(offsets))
        c_all = np.einsum("pk,pk->p", e[rows], e[neigh])
        g = (-dJ * s[rows] * s[neigh] * c_all / distances)[:, None] * vectors  # ∂E/∂D_p
        forces = np.zeros((n, 3))
        np.add.at(forces, rows, g)
        np.add.at(forces, neigh, -g)
        if self.terms:
            e_fm_terms = self._terms_fm_energy(system, M_fm)
            energy -= e_fm_terms
            energy_fm += e_fm_terms
            for term in self.terms:
                e_t, grad_t, forces_t, dE_dM_t = term(system, e, M)
                energy += e_t
                grad += grad_t
                forces += forces_t
                dE_dM += dE_dM_t
        grad -= np.einsum("ik,ik->i", grad, e)[:, None] * e      # transverse part
        if self.slaving:
            sin = np.sqrt(np.clip(1.0 - pc**2, 0.0, None))
            inv_sin = np.divide(1.0, sin, out=np.zeros_like(sin), where=sin > 1e-12)
            # θ_ij enters M_i with weight -coef_i: ∂E/∂θ_ij = -coef_i dE/dM_i
            t = (-coef[pi] * dE_dM[pi]) * (-inv_sin)   # times ∂θ/∂c · (transverse part)
            np.add.at(grad, pi, t[:, None] * (e[pj] - pc[:, None] * e[pi]))
            np.add.at(grad, pj, t[:, None] * (e[pi] - pc[:, None] * e[pj]))
        fields = -grad / M[:, None]
        return {"energy": energy, "fields": fields, "magmoms": e * M[:, None],
                "forces": forces, "energy_fm": energy_fm}




class HeisenbergOracle(Oracle):
    """The embedded labeller: labels are the results of its :attr:`hamiltonian`
    (a :class:`HeisenbergHamiltonian`), so the dynamics can run on the very Hamiltonian
    that labels."""

    name = "heisenberg"
    implemented_properties = HeisenbergHamiltonian.implemented_properties
    schema = SCHEMA

    def __init__(self, exchange, convention: str = "double_counted", moment: float = 2.2,
                 slaving: dict | None = None, settings: dict | None = None, terms=(),
                 fm_direction=(0.0, 0.0, 1.0)):
        self.hamiltonian = HeisenbergHamiltonian(exchange, convention, moment, slaving,
                                                 terms, fm_direction)
        self.moment = self.hamiltonian.moment
        self._settings = settings or {}

    # --- construction from YAML -------------------------------------------------
    @classmethod
    def from_config(cls, block, context=None):
        context = context or {}
        a = block.get("lattice_constant") or context.get("a")
        scale = 1.0
        if block["distance_unit"] == "lattice":
            if not a:
                raise ConfigError("lattice_constant: required with distance_unit: lattice when "
                                  "no system section gives a")
            scale = float(a)
        lattice = scale if block["distance_unit"] == "lattice" else None
        tolerance = block["shell_tolerance"]
        if block["shells"] is not None:
            rows = np.array(block["shells"], float)
            exchange = ShellExchange(rows[:, 0] * scale, rows[:, 1], tolerance,
                                     lattice_constant=lattice)
        elif block["pairs"] is not None:
            rows = block["pairs"]
            exchange = PairExchange([r[:5] for r in rows], [r[5] for r in rows])
        elif block["formula"] is not None:
            f = block["formula"]
            exchange = FormulaExchange(f["c"], f["r0"], f["cutoff"] * scale)
        else:
            u = block["uppasd"]
            if not a:
                raise ConfigError("lattice_constant: required with uppasd exchange when no "
                                  "system section gives a")
            distances, J = read_jfile_shells(u["jfile"], float(a), u["maptype"], u["posfile"],
                                             u["cell"], tolerance)
            exchange = ShellExchange(distances, J, tolerance, name="uppasd",
                                     lattice_constant=float(a))
        settings = {k: v for k, v in block.items() if v is not None}
        return cls(exchange, block["convention"], block["moment"], block["moment_slaving"],
                   settings, build_terms(block, scale), block["fm_direction"])

    def settings(self):
        return {"type": self.name, **self._settings}

    def compute(self, system, properties=None):
        self.check_properties(properties)
        return self.hamiltonian.compute(system)


def pair_hamiltonian(calculator) -> HeisenbergHamiltonian:
    """The Heisenberg Hamiltonian whose pair couplings describe ``calculator``: the
    calculator itself, or the declared :attr:`~otf_spin.oracles.base.Oracle.hamiltonian`
    of an oracle. ValueError when there is none or when it has terms beyond bilinear
    exchange (compiled pair consumers would silently drop them)."""
    hamiltonian = calculator.hamiltonian if isinstance(calculator, Oracle) else calculator
    if not isinstance(hamiltonian, HeisenbergHamiltonian):
        raise ValueError(f"{type(calculator).__name__} has no Heisenberg pair couplings")
    if hamiltonian.terms:
        raise ValueError("this Heisenberg hamiltonian has terms beyond bilinear exchange ("
                         + ", ".join(t.key for t in hamiltonian.terms) + "): pair couplings "
                         "do not describe it; only compute() (ComputeProvider) does")
    return hamiltonian


def build_terms(block, scale: float = 1.0) -> list:
    """Beyond-Heisenberg terms of a validated oracle block; distances times ``scale`` (Å)."""
    weight = DIRECTED_WEIGHT[block["convention"]]
    tolerance = block["shell_tolerance"]
    lattice = scale if block.get("distance_unit") == "lattice" else None
    out = []
    for key, cls in (("biquadratic", terms.BiquadraticTerm),
                     ("pseudo_dipolar", terms.PseudoDipolarTerm)):
        if block.get(key) is not None:
            rows = np.array(block[key], float)
            out.append(cls(ShellExchange(rows[:, 0] * scale, rows[:, 1], tolerance, key,
                                         lattice), weight))
    for key, cls in (("three_spin", terms.ThreeSpinTerm), ("triangle", terms.TriangleTerm)):
        if block.get(key) is not None:
            d = np.array(block[key]["shells"], float) * scale
            out.append(cls(block[key]["K"], ShellExchange(d, np.ones(len(d)), tolerance, key,
                                                          lattice)))
    if block.get("dipolar") is not None:
        out.append(terms.DipolarTerm(block["dipolar"]["cutoff"] * scale))
    if block.get("uniaxial_anisotropy") is not None:
        u = block["uniaxial_anisotropy"]
        out.append(terms.UniaxialTerm(u["K"], u["axis"]))
    if block.get("cubic_anisotropy") is not None:
        out.append(terms.CubicTerm(block["cubic_anisotropy"]["K"]))
    return out
