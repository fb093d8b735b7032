"""SpinSystem: atoms with classical moment vectors, builders, spin initialisers, neighbours.

Shapes and units: cell (3, 3) Å (rows are lattice vectors), positions (N, 3) Å,
directions (N, 3) unit vectors, magnitudes (N,) μB. Moments = directions × magnitudes.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from otf_spin.core import InvalidSystemError, MemoryLimitError
from otf_spin.kernels import load as _load_kernel

LATTICES = ("bcc", "fcc", "sc", "hcp")
#: atoms in the cell :func:`bulk` repeats: (conventional, primitive)
ATOMS_PER_CELL = {"bcc": (2, 1), "fcc": (4, 1), "sc": (1, 1), "hcp": (4, 2)}
#: conventional cubic cells, fractional positions, and primitive cell vectors in units of
#: a: ase.build.bulk's (``cubic=True`` / default) bit for bit (tested), without importing
#: ase.build, whose import (scipy.integrate, ase.db, ...) costs more than a short run
CUBIC_BASES = {"sc": [[0.0, 0.0, 0.0]], "bcc": [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]],
               "fcc": [[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]]}
PRIMITIVE_CELLS = {"sc": np.eye(3),
                   "bcc": 0.5 * np.array([[-1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, -1.0]]),
                   "fcc": 0.5 * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])}

# --- sane ranges of any structure entering otf-spin (files, YAML, builders) -----
#: closest approach of two atoms, Å (the shortest bond, H₂, is 0.74 Å; metals > 2 Å)
MIN_DISTANCE = 0.5
#: largest magnitude of a coordinate or cell-vector component, Å (10 μm)
MAX_COORDINATE = 1e5
#: largest moment magnitude, μB (atomic moments stay below ~11 μB)
MAX_MOMENT = 100.0
#: memory :func:`bulk` needs per atom while building (ASE Atoms, repeat copies), bytes
BUILD_BYTES_PER_ATOM = 512


def available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable, else free pages)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):   # pragma: no cover - exotic platforms
        return 2**62


def require_memory(n_bytes: float, what: str) -> None:
    """Raise :class:`MemoryLimitError` if ``n_bytes`` exceed the available memory."""
    free = available_memory()
    if n_bytes > free:
        raise MemoryLimitError(f"{what} needs about {_size(n_bytes)} of memory, "
                               f"{_size(free)} available")


def _size(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n_bytes < 1024 or unit == "PiB":
            return f"{n_bytes:.3g} {unit}"
        n_bytes /= 1024
    return ""  # pragma: no cover


def check_system(system, where: str = "structure") -> None:
    """Refuse unphysical input structures before anything is computed on them.

    At least one atom; finite cell, positions and moments; coordinates and cell
    components within ±MAX_COORDINATE Å; moment magnitudes in (0, MAX_MOMENT] μB; a
    periodic cell with volume and every periodic width ≥ MIN_DISTANCE; no two atoms
    (periodic images included) closer than MIN_DISTANCE Å. Raises
    :class:`InvalidSystemError` as "<where>: atom k: ...".
    """
    n = system.n_atoms
    if n == 0:
        raise InvalidSystemError(f"{where}: no atoms")
    for name, array in (("cell", system.cell), ("positions", system.positions)):
        bad = ~np.isfinite(array).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            place = f"cell vector {row + 1}" if name == "cell" else f"atom {row}: position"
            raise InvalidSystemError(f"{where}: {place} is not finite ({array[row].tolist()})")
        big = np.abs(array).max(axis=1) > MAX_COORDINATE
        if big.any():
            row = int(np.flatnonzero(big)[0])
            place = f"cell vector {row + 1}" if name == "cell" else f"atom {row}: position"
            raise InvalidSystemError(f"{where}: {place} {array[row].tolist()} Å lies beyond "
                                     f"±{MAX_COORDINATE:g} Å")
    m = system.magnitudes
    ok = np.isfinite(m) & (m > 0) & (m <= MAX_MOMENT) & np.isfinite(system.directions).all(1)
    if not ok.all():
        k = int(np.flatnonzero(~ok)[0])
        raise InvalidSystemError(f"{where}: atom {k}: moment {system.moments[k].tolist()} μB "
                                 f"(magnitude must lie in (0, {MAX_MOMENT:g}] μB)")
    if system.pbc.any():
        volume = abs(np.linalg.det(system.cell))
        if volume < MIN_DISTANCE**3 * 1e-6:
            raise InvalidSystemError(f"{where}: periodic cell has no volume ({volume:.3g} Å³)")
        widths = 1.0 / np.linalg.norm(np.linalg.inv(system.cell), axis=0)
        for k in np.flatnonzero(system.pbc):
            if widths[k] < MIN_DISTANCE:
                raise InvalidSystemError(
                    f"{where}: periodic cell is {widths[k]:.3g} Å wide along a{k + 1}, below "
                    f"the minimum distance between atoms {MIN_DISTANCE:g} Å")
    nl = system.neighbours(MIN_DISTANCE)
    if len(nl):
        p = int(np.argmin(nl.distances))
        i, j = int(nl.i[p]), int(nl.j[p])
        image = " (periodic image)" if nl.shifts[p].any() else ""
        raise InvalidSystemError(f"{where}: atoms {min(i, j)} and {max(i, j)}{image} are "
                                 f"{nl.distances[p]:.3g} Å apart, closer than the minimum "
                                 f"distance {MIN_DISTANCE:g} Å")


@dataclass(frozen=True)
class NeighbourList:
    """Directed pairs within a cutoff, in CSR form (rows = central atom i).

    Every bond appears twice (i->j and j->i); periodic images of the same atom j
    appear as separate entries with different shifts. Order: by i, then j, then shift.

    offsets (N+1,) int64; j (P,) int64; shifts (P, 3) int64 (lattice vectors added
    to r_j); vectors (P, 3) Å = r_j + shifts·cell - r_i; distances (P,) Å.
    """

    cutoff: float
    offsets: np.ndarray
    j: np.ndarray
    shifts: np.ndarray
    vectors: np.ndarray
    distances: np.ndarray

    @property
    def i(self) -> np.ndarray:
        """Central atom of every pair (P,)."""
        return np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))

    def __len__(self) -> int:
        return len(self.j)


def neighbour_list(cell, pbc, positions, cutoff: float, kernel=None) -> NeighbourList:
    """Build the :class:`NeighbourList` of ``positions`` for ``cutoff`` (Å).

    ``kernel`` selects an implementation module (default: compiled, else twin).
    """
    i, j, S, D, d = neighbour_pairs(cell, pbc, positions, cutoff, kernel)
    order = np.lexsort((S[:, 2], S[:, 1], S[:, 0], j, i))
    i = i[order]
    offsets = np.zeros(len(positions) + 1, dtype=np.int64)
    np.cumsum(np.bincount(i, minlength=len(positions)), out=offsets[1:])
    return NeighbourList(float(cutoff), offsets, np.ascontiguousarray(j[order]),
                         np.ascontiguousarray(S[order]), np.ascontiguousarray(D[order]),
                         np.ascontiguousarray(d[order]))


def neighbour_pairs(cell, pbc, positions, cutoff: float, kernel=None):
    """The pairs of :func:`neighbour_list` unsorted (grouped by i in ascending order, j
    in no particular order): (i, j, shifts, vectors, distances) as in
    :class:`NeighbourList`."""
    kernel = kernel or _load_kernel("neighbours")
    return kernel.neighbour_pairs(*_search_arguments(cell, pbc, positions, cutoff))


def neighbour_distances(cell, pbc, positions, cutoff: float, kernel=None):
    """(i, j, distances) of :func:`neighbour_pairs`, the same pairs in the same order,
    without the shifts and vectors (P, 3) (the fast engine's setup needs only these)."""
    kernel = kernel or _load_kernel("neighbours")
    return kernel.neighbour_distances(*_search_arguments(cell, pbc, positions, cutoff))


def _search_arguments(cell, pbc, positions, cutoff: float):
    """(cell, pbc, positions, cutoff) as the neighbour kernels take them; an open cluster
    (singular cell, no periodic direction) gets a box enclosing its atoms."""
    if cutoff <= 0:
        raise ValueError(f"neighbour cutoff must be positive, got {cutoff} Å")
    positions = np.ascontiguousarray(positions, dtype=float)
    cell = np.ascontiguousarray(cell, dtype=float)
    pbc = np.asarray(pbc, dtype=bool)
    if abs(np.linalg.det(cell)) < 1e-12:
        if pbc.any():
            raise ValueError("periodic system with a singular cell")
        # open cluster: any box enclosing the atoms will do
        span = np.ptp(positions, axis=0) if len(positions) else np.zeros(3)
        cell = np.diag(span + 2 * cutoff + 1.0)
    return cell, pbc, positions, float(cutoff)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    if np.any(n == 0):
        raise ValueError("zero-length vector cannot be normalised to a spin direction")
    return v / n


class SpinSystem:
    """Atoms (cell, pbc, positions, species) carrying classical moments.

    Directions (unit vectors) and magnitudes (μB) are stored separately so that
    dynamics can move directions while magnitudes stay fixed or are slaved.
    """

    def __init__(self, cell, positions, species, directions=None, magnitudes=2.2,
                 pbc=(True, True, True)):
        self.cell = np.array(cell, dtype=float).reshape(3, 3)
        self.positions = np.array(positions, dtype=float).reshape(-1, 3)
        n = len(self.positions)
        if isinstance(species, str):
            species = [species] * n
        self.species = np.array(species, dtype=str)
        if self.species.shape != (n,):
            raise ValueError(f"species has {self.species.size} entries for {n} atoms")
        self.pbc = np.array(np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)))
        if directions is None:
            directions = np.tile([0.0, 0.0, 1.0], (n, 1))
        self.directions = _unit(np.array(directions, dtype=float).reshape(n, 3))
        self.magnitudes = np.array(np.broadcast_to(np.asarray(magnitudes, float), (n,)))

    # --- basic properties -----------------------------------------------------
    def __len__(self) -> int:
        return len(self.positions)

    @property
    def n_atoms(self) -> int:
        return len(self.positions)

    @property
    def moments(self) -> np.ndarray:
        """Moment vectors (N, 3) in μB."""
        return self.directions * self.magnitudes[:, None]

    @moments.setter
    def moments(self, value):
        value = np.asarray(value, dtype=float).reshape(self.n_atoms, 3)
        self.magnitudes = np.linalg.norm(value, axis=1)
        self.directions = _unit(value)

    def set_directions(self, directions) -> None:
        """Replace the spin directions (normalised on the way in)."""
        self.directions = _unit(np.asarray(directions, dtype=float).reshape(self.n_atoms, 3))

    @classmethod
    def from_arrays(cls, cell, positions, species, directions, magnitudes,
                    pbc) -> "SpinSystem":
        """A system from stored arrays, the directions kept bit for bit (not renormalised)."""
        system = cls(cell, positions, species, directions, magnitudes, pbc)
        system.directions = np.array(directions)
        return system

    def copy(self) -> "SpinSystem":
        """An independent copy with the directions bit for bit (not renormalised)."""
        new = SpinSystem(self.cell, self.positions, self.species, None, self.magnitudes,
                         self.pbc)
        new.directions = self.directions.copy()
        return new

    def digest(self, parts, h=None):
        """sha256 (a ``hashlib`` object, ``h`` updated if given) over the float64 bytes of
        the named arrays, in order: e.g. ("cell", "pbc", "positions", "directions")."""
        h = hashlib.sha256() if h is None else h
        for name in parts:
            h.update(np.ascontiguousarray(getattr(self, name), float).tobytes())
        return h

    def __repr__(self) -> str:
        return (f"SpinSystem(n_atoms={self.n_atoms}, species={sorted(set(self.species))}, "
                f"cell_lengths={np.round(np.linalg.norm(self.cell, axis=1), 4).tolist()} Å, "
                f"pbc={self.pbc.tolist()})")

    def cell_widths(self) -> np.ndarray:
        """Perpendicular widths (3,) in Å between opposite cell faces."""
        inv = np.linalg.inv(self.cell)
        return 1.0 / np.linalg.norm(inv, axis=0)

    def neighbours(self, cutoff: float, kernel=None) -> NeighbourList:
        """Neighbour list with periodic images (see :func:`neighbour_list`)."""
        return neighbour_list(self.cell, self.pbc, self.positions, cutoff, kernel=kernel)

    # --- ASE interop ----------------------------------------------------------
    @classmethod
    def from_ase(cls, atoms, moment: float | None = None) -> "SpinSystem":
        """From ``ase.Atoms``; moments from N×3 ``initial_magmoms`` (μB).

        Collinear (N,) initial magmoms are taken as moments along +z (sign kept).
        Atoms without moments get magnitude ``moment`` along +z.
        """
        magmoms = atoms.get_initial_magnetic_moments() if atoms.has("initial_magmoms") else None
        n = len(atoms)
        if magmoms is None or not np.any(magmoms):
            if moment is None:
                raise ValueError("structure has no magnetic moments and no default moment "
                                 "was given")
            moments = np.tile([0.0, 0.0, float(moment)], (n, 1))
        elif magmoms.ndim == 1:
            moments = np.zeros((n, 3))
            moments[:, 2] = magmoms
        else:
            moments = np.asarray(magmoms, float)
        system = cls(atoms.cell.array, atoms.positions, atoms.get_chemical_symbols(),
                     pbc=atoms.pbc)
        zero = np.linalg.norm(moments, axis=1) == 0
        if np.any(zero):
            raise ValueError(f"atoms {np.flatnonzero(zero).tolist()} have zero moment; a spin "
                             "direction is undefined")
        system.moments = moments
        return system

    def to_ase(self):
        """``ase.Atoms`` with N×3 ``initial_magmoms`` (μB)."""
        from ase import Atoms

        atoms = Atoms(symbols=list(self.species), positions=self.positions, cell=self.cell,
                      pbc=self.pbc)
        atoms.set_initial_magnetic_moments(self.moments)
        return atoms


# --- builders ----------------------------------------------------------------
def bulk(lattice: str, a: float, repeat=(1, 1, 1), species: str = "Fe", moment: float = 2.2,
         c: float | None = None, primitive: bool = False) -> SpinSystem:
    """Supercell of a cubic (bcc, fcc, sc) or hcp crystal; ferromagnetic along +z.

    Cubic lattices use the conventional cubic cell (bcc: 2 atoms, fcc: 4), so
    ``bulk('bcc', 2.83, (2, 2, 2))`` is the paper's 16-atom Fe cell. hcp uses the
    orthorhombic 4-atom cell with ``c`` (Å; default ideal c/a). ``primitive``: the
    primitive cell instead (cubic lattices: 1 atom; hcp: 2). a, c in Å, moment in μB.
    """
    from ase import Atoms

    lattice = lattice.lower()
    if lattice not in LATTICES:
        raise ValueError(f"unknown lattice {lattice!r}; choose one of {', '.join(LATTICES)}")
    if a <= 0:
        raise ValueError(f"lattice constant must be positive, got {a} Å")
    repeat = tuple(int(r) for r in np.broadcast_to(repeat, (3,)))
    if min(repeat) < 1:
        raise ValueError(f"repeat must be positive integers, got {repeat}")
    n_atoms = ATOMS_PER_CELL[lattice][primitive] * float(np.prod(repeat, dtype=float))
    require_memory(n_atoms * BUILD_BYTES_PER_ATOM, f"a {lattice} cell repeated {list(repeat)} "
                   f"({n_atoms:.3g} atoms)")
    if lattice == "hcp":
        from ase.build import bulk as ase_bulk

        atoms = ase_bulk(species, "hcp", a=a, c=c if c else a * np.sqrt(8.0 / 3.0),
                         orthorhombic=not primitive)
    elif primitive:
        atoms = Atoms([species], positions=[[0.0, 0.0, 0.0]], cell=a * PRIMITIVE_CELLS[lattice],
                      pbc=True)
    else:
        basis = CUBIC_BASES[lattice]
        atoms = Atoms([species] * len(basis), scaled_positions=basis, cell=a * np.eye(3),
                      pbc=True)
    atoms = atoms.repeat(repeat)
    return SpinSystem(atoms.cell.array, atoms.positions, species, magnitudes=moment)


# --- spin initialisers (directions only; magnitudes untouched) ------------------
def ferromagnetic(n: int, axis=(0.0, 0.0, 1.0)) -> np.ndarray:
    """(n, 3) directions all along ``axis``."""
    return np.tile(_unit(axis), (n, 1))


def random_sphere(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) directions uniform on the unit sphere."""
    return random_cone(n, (0.0, 0.0, 1.0), np.pi, rng)


def cross_rows(a, b) -> np.ndarray:
    """Row-wise a × b of (N, 3) arrays: numpy.cross's arithmetic without its per-call
    overhead, which dominates for the few spins of a DFT cell or short pair lists."""
    return a[:, _Y] * b[:, _Z] - a[:, _Z] * b[:, _Y]


_Y, _Z = np.array([1, 2, 0]), np.array([2, 0, 1])


def transverse(vectors, directions) -> np.ndarray:
    """``vectors`` without their components along the unit ``directions`` (N, 3):
    v - (v·e) e, i.e. (1 - e eᵀ) v per atom; ``vectors`` (N, 3) or (M, N, 3), a new array."""
    e = directions
    if np.ndim(vectors) == 3:
        return vectors - np.einsum("mak,ak->ma", vectors, e)[:, :, None] * e[None]
    return vectors - np.einsum("ik,ik->i", vectors, e)[:, None] * e


def random_cone(n: int, axis, half_angle: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) directions uniform on the spherical cap of ``half_angle`` (rad) around ``axis``."""
    if not 0.0 <= half_angle <= np.pi:
        raise ValueError(f"cone half-angle must lie in [0, π] rad, got {half_angle}")
    cos_t = 1.0 - rng.random(n) * (1.0 - np.cos(half_angle))
    sin_t = np.sqrt(np.clip(1.0 - cos_t**2, 0.0, None))
    phi = 2.0 * np.pi * rng.random(n)
    local = np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t], axis=1)
    return local @ rotation_to(axis).T


def rotation_to(axis) -> np.ndarray:
    """Rotation matrix (3, 3) taking +z onto the unit vector along ``axis``."""
    z = _unit(axis)
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = _unit(np.cross(helper, z))
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)
