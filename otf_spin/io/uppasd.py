"""UppASD input files: ``jfile`` exchange (mRy), ``posfile`` and ``momfile``.

UppASD's Hamiltonian is H = -Σ_{i≠j} J_ij e_i·e_j with J in mRy (each bond counted
twice: otf-spin's ``double_counted`` convention). A jfile lists one coupling per
line, ``i j x y z J``:

- maptype 1: i, j are chemical types; (x, y, z) the coupling vector in Cartesian
  coordinates in units of the lattice constant; UppASD adds the symmetry-equivalent
  vectors (``Sym``), so one line stands for a whole shell.
- maptype 2: i, j are basis sites of the posfile; (x, y, z) the cell offset in
  units of the cell vectors, vector = pos_j - pos_i + x a1 + y a2 + z a3.

otf-spin reads a jfile as shells (distance -> J): every coupling vector is turned
into a distance, lines at the same distance must carry the same J.
"""
from __future__ import annotations

import numpy as np

from otf_spin.config.engine import MAX_NUMBER, read_text
from otf_spin.core import ConfigError
from otf_spin.units import MRY


def _table(path, columns: int, what: str) -> np.ndarray:
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        text = line.split("#")[0].strip()
        if not text:
            continue
        fields = text.split()
        if len(fields) < columns:
            raise ConfigError(f"{path}: line {number}: a {what} line needs {columns} "
                              f"columns, got {len(fields)}")
        try:
            rows.append([float(x) for x in fields[:columns]])
        except ValueError:
            raise ConfigError(f"{path}: line {number}: not a number in {text!r}") from None
        if not all(abs(x) <= MAX_NUMBER for x in rows[-1]):     # NaN fails too
            raise ConfigError(f"{path}: line {number}: a number is not finite or beyond "
                              f"±{MAX_NUMBER:g} in {text!r}")
    if not rows:
        raise ConfigError(f"{path}: empty {what}")
    return np.array(rows)


def read_posfile(path) -> tuple[np.ndarray, np.ndarray]:
    """(types (B,) int, positions (B, 3) in cell-vector coordinates) of a posfile
    (``site type x y z``)."""
    table = _table(path, 5, "posfile")
    return table[:, 1].astype(int), table[:, 2:5]


def read_momfile(path) -> tuple[np.ndarray, np.ndarray]:
    """(moments (B,) μB, directions (B, 3)) of a momfile (``site type |m| mx my mz``)."""
    table = _table(path, 6, "momfile")
    d = table[:, 3:6]
    norm = np.linalg.norm(d, axis=1, keepdims=True)
    return table[:, 2], np.divide(d, norm, out=np.tile([0, 0, 1.0], (len(d), 1)),
                                  where=norm > 0)


def read_jfile_shells(path, a: float, maptype: int = 1, posfile=None, cell=None,
                      tolerance: float = 0.05):
    """Shell distances (Å) and J (eV, double-counted) of a single-species jfile."""
    table = _table(path, 6, "jfile")
    types = table[:, :2].astype(int)
    if maptype == 1:
        if len(np.unique(types)) != 1:
            raise ConfigError(f"{path}: couplings between several types are not supported "
                              "yet (one magnetic species per jfile)")
        vectors = table[:, 2:5]
    else:
        if posfile is None or cell is None:
            raise ConfigError(f"{path}: maptype 2 needs posfile and cell")
        site_types, basis = read_posfile(posfile)
        if len(np.unique(site_types)) != 1:
            raise ConfigError(f"{posfile}: several types are not supported yet")
        if types.max() > len(basis) or types.min() < 1:
            raise ConfigError(f"{path}: site index out of range 1..{len(basis)}")
        cell = np.asarray(cell, float)
        vectors = (basis[types[:, 1] - 1] - basis[types[:, 0] - 1] + table[:, 2:5]) @ cell
    distances = np.linalg.norm(vectors, axis=1) * a
    if np.any(distances < 1e-6):
        raise ConfigError(f"{path}: a coupling vector of zero length")
    order = np.argsort(distances)
    shells_d, shells_J = [], []
    for d, J in zip(distances[order], table[order, 5] * MRY):
        if shells_d and d - shells_d[-1] <= tolerance:
            if not np.isclose(J, shells_J[-1], rtol=1e-6, atol=1e-12):
                raise ConfigError(f"{path}: two couplings at {d:.4f} Å carry different J "
                                  f"({shells_J[-1] / MRY:g} and {J / MRY:g} mRy); "
                                  "anisotropic shells are not supported")
            continue
        shells_d.append(d)
        shells_J.append(J)
    return np.array(shells_d), np.array(shells_J)
