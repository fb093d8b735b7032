"""Extended XYZ through ASE, with the data contract of DESIGN.md.

Per atom: ``magmoms`` (N×3, μB), ``fields`` (N×3, eV/μB, transverse effective
field), optional ``forces`` (N×3, eV/Å), ``fields_std`` (N×3 or N). Per frame
(info): ``energy`` (eV, relative to the collinear FM state), optional
``energy_std``. Frames may carry energies only, fields only, or both.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from otf_spin.io.atomic import atomic_path
from otf_spin.system import SpinSystem

#: label keys a frame may carry: name -> per-atom?
LABELS = {"energy": False, "energy_std": False, "fields": True, "fields_std": True,
          "forces": True}


class DataFileError(ValueError):
    """A data file is missing, unreadable or breaks the data contract."""


class NonFiniteError(DataFileError):
    """A label (energy, fields, forces) is NaN or infinite."""


@dataclass
class Frame:
    """One configuration and its labels (``results``: energy, fields, ... in internal units)."""

    system: SpinSystem
    results: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def energy(self):
        return self.results.get("energy")

    @property
    def fields(self):
        return self.results.get("fields")


def _frame_from_atoms(atoms, path: str, index: int, moment: float | None) -> Frame:
    arrays = dict(atoms.arrays)
    info = dict(atoms.info)
    if atoms.calc is not None:  # ASE moves known properties into a SinglePointCalculator
        for key, value in atoms.calc.results.items():
            (arrays if np.ndim(value) >= 1 and len(np.atleast_1d(value)) == len(atoms)
             and key != "energy" else info)[key] = value
    where = f"{path}: frame {index}"
    n = len(atoms)
    moments = arrays.pop("magmoms", None)
    initial = arrays.pop("initial_magmoms", None)
    if moments is None and initial is not None and np.ndim(initial) == 2:
        moments = initial
    directions = arrays.pop("directions", None)
    system = SpinSystem(atoms.cell.array, atoms.positions, atoms.get_chemical_symbols(),
                        pbc=atoms.pbc)
    if moments is not None:
        moments = np.asarray(moments, dtype=float)
        if moments.shape != (n, 3):
            raise DataFileError(f"{where}: 'magmoms' must be N×3 moment vectors (μB), got "
                                f"shape {moments.shape}")
        if np.any(np.linalg.norm(moments, axis=1) == 0):
            raise DataFileError(f"{where}: 'magmoms' has zero vectors; spin direction undefined")
        system.moments = moments
    elif directions is not None:
        if moment is None:
            raise DataFileError(f"{where}: has 'directions' but no 'magmoms' magnitudes and "
                                "no default moment (μB) was given")
        system.set_directions(directions)
        system.magnitudes[:] = moment
    else:
        raise DataFileError(f"{where}: no 'magmoms' (N×3, μB) per-atom array")
    results = {}
    for key, per_atom in LABELS.items():
        source = arrays if per_atom else info
        if key in source:
            value = source.pop(key)
            results[key] = np.array(value, dtype=float) if per_atom else float(value)
            if per_atom and results[key].shape[0] != n:
                raise DataFileError(f"{where}: '{key}' has {results[key].shape[0]} rows for "
                                    f"{n} atoms")
    if "fields" in results and results["fields"].shape != (n, 3):
        raise DataFileError(f"{where}: 'fields' must be N×3 (eV/μB), got "
                            f"{results['fields'].shape}")
    for key in ("energy", "fields", "forces"):
        if key in results and not np.all(np.isfinite(results[key])):
            raise NonFiniteError(f"{where}: '{key}' contains NaN or infinite values")
    return Frame(system, results, info)


def read_frames(path, index=":", moment: float | None = None) -> list[Frame]:
    """Read all frames (or ``index``) of an extxyz file into :class:`Frame` objects.

    ``moment`` (μB) is used for frames giving unit ``directions`` instead of ``magmoms``.
    """
    import ase.io

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataFileError(f"{path}: no such file")
    try:
        images = ase.io.read(path, index=index, format="extxyz", parallel=False)
    except Exception as exc:  # ASE raises many types for malformed files
        raise DataFileError(f"{path}: not a readable extxyz file ({exc})") from None
    if not isinstance(images, list):
        images = [images]
    return [_frame_from_atoms(atoms, path, k, moment) for k, atoms in enumerate(images)]


def frame_to_atoms(frame: Frame):
    """``ase.Atoms`` carrying the frame's moments, labels and info in contract names."""
    from ase import Atoms

    system = frame.system
    atoms = Atoms(symbols=list(system.species), positions=system.positions, cell=system.cell,
                  pbc=system.pbc)
    atoms.arrays["magmoms"] = system.moments
    for key, per_atom in LABELS.items():
        value = frame.results.get(key)
        if value is None:
            continue
        if per_atom:
            atoms.arrays[key] = np.asarray(value, dtype=float)
        else:
            atoms.info[key] = float(value)
    for key, value in frame.info.items():
        if key not in LABELS:
            atoms.info[key] = value
    return atoms


def write_frames(path, frames, append: bool = False) -> None:
    """Write frames to extxyz; the file is replaced atomically (or appended to)."""
    import ase.io

    images = [frame_to_atoms(f) for f in frames]
    path = os.fspath(path)
    if append and os.path.exists(path):
        with atomic_path(path) as tmp:
            with open(path, "rb") as src, open(tmp, "wb") as dst:
                dst.write(src.read())
            ase.io.write(tmp, images, format="extxyz", append=True, parallel=False)
        return
    with atomic_path(path) as tmp:
        ase.io.write(tmp, images, format="extxyz", parallel=False)
