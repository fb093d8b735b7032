"""Extended XYZ through ASE, with the data contract of docs/formats.md.

Per atom: ``magmoms`` (N×3, μB), ``fields`` (N×3, eV/μB, transverse effective
field), optional ``forces`` (N×3, eV/Å), ``fields_std`` (N×3 or N). Per frame
(info): ``energy`` (eV, relative to the collinear FM state), optional
``energy_std``. Frames may carry energies only, fields only, or both.

Reading refuses, with the file and frame/atom/line named: rows whose column count
differs from the frame's ``Properties`` header, files that are not UTF-8, empty files,
frames without atoms, non-finite numbers, labels beyond :data:`LABEL_BOUNDS` and the
structures :func:`otf_spin.system.check_system` refuses (atoms closer than 0.5 Å, ...).
Writing refuses non-finite labels (nothing is written).
"""
from __future__ import annotations

import os
import re

import numpy as np

from otf_spin.config.engine import read_text
from otf_spin.core import DataFileError, Frame, InvalidSystemError, NonFiniteError
from otf_spin.io.atomic import atomic_path, describe_file, file_kind
from otf_spin.system import MAX_MOMENT, SpinSystem, check_system

#: label keys a frame may carry: name -> per-atom?
LABELS = {"energy": False, "energy_std": False, "fields": True, "fields_std": True,
          "forces": True}
#: largest magnitude of a label: energy per atom (eV), fields and their std (eV/μB),
#: forces (eV/Å); beyond these a value is an overflow or a unit error, not physics
LABEL_BOUNDS = {"energy": 1e3, "energy_std": 1e3, "fields": 1e3, "fields_std": 1e3,
                "forces": 1e4}
_LABEL_UNITS = {"energy": "eV/atom", "energy_std": "eV/atom", "fields": "eV/μB",
                "fields_std": "eV/μB", "forces": "eV/Å"}


def _frame_from_atoms(atoms, path: str, index: int, moment: float | None) -> Frame:
    arrays = dict(atoms.arrays)
    info = dict(atoms.info)
    if atoms.calc is not None:  # ASE moves known properties into a SinglePointCalculator
        for key, value in atoms.calc.results.items():
            (arrays if np.ndim(value) >= 1 and len(np.atleast_1d(value)) == len(atoms)
             and key != "energy" else info)[key] = value
    where = f"{path}: frame {index}"
    n = len(atoms)
    if n == 0:
        raise DataFileError(f"{where}: no atoms")
    moments = arrays.pop("magmoms", None)
    initial = arrays.pop("initial_magmoms", None)
    if moments is None and initial is not None:
        moments = initial
    if moments is not None and np.ndim(moments) == 1 and len(moments) == n:
        moments = np.outer(np.asarray(moments, dtype=float), [0.0, 0.0, 1.0])  # collinear:
    directions = arrays.pop("directions", None)              # ±z, as SpinSystem.from_ase
    system = SpinSystem(atoms.cell.array, atoms.positions, atoms.get_chemical_symbols(),
                        pbc=atoms.pbc)
    if moments is not None:
        moments = np.asarray(moments, dtype=float)
        if moments.shape != (n, 3):
            raise DataFileError(f"{where}: 'magmoms' must be N×3 moment vectors (μB), got "
                                f"shape {moments.shape}")
        _check_finite(moments, "magmoms", where)
        big = np.abs(moments).max(axis=1) > MAX_MOMENT
        if big.any():
            atom = int(np.flatnonzero(big)[0])
            raise DataFileError(f"{where}: atom {atom}: 'magmoms' {moments[atom].tolist()} "
                                f"beyond ±{MAX_MOMENT:g} μB")
        if np.any(np.linalg.norm(moments, axis=1) == 0):
            raise DataFileError(f"{where}: 'magmoms' has zero vectors; spin direction undefined")
        system.moments = moments
    elif directions is not None:
        if moment is None:
            raise DataFileError(f"{where}: has 'directions' but no 'magmoms' magnitudes and "
                                "no default moment (μB) was given")
        directions = np.asarray(directions, dtype=float)
        _check_finite(directions, "directions", where)
        if np.any(np.linalg.norm(directions, axis=1) == 0):
            raise DataFileError(f"{where}: 'directions' has zero vectors")
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
    check_labels(results, n, where)
    try:
        check_system(system, where)
    except ValueError as exc:
        raise DataFileError(str(exc)) from None
    return Frame(system, results, info)


def _check_finite(array, name: str, where: str) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        atom = int(np.flatnonzero(bad.reshape(len(array), -1).any(axis=1))[0])
        raise NonFiniteError(f"{where}: atom {atom}: '{name}' is not finite "
                             f"({np.asarray(array)[atom].tolist()})")


def check_labels(results: dict, n_atoms: int, where: str) -> None:
    """Labels finite and within :data:`LABEL_BOUNDS`; :class:`NonFiniteError` otherwise."""
    for key, bound in LABEL_BOUNDS.items():
        if results.get(key) is None:
            continue
        value = np.asarray(results[key], dtype=float)
        scale = n_atoms if key in ("energy", "energy_std") else 1
        if value.ndim == 0:
            if not np.isfinite(value):
                raise NonFiniteError(f"{where}: '{key}' is not finite ({float(value)})")
            if abs(value) > bound * scale:
                raise DataFileError(f"{where}: '{key}' {float(value):.6g} is beyond "
                                    f"±{bound:g} {_LABEL_UNITS[key]}")
            continue
        _check_finite(value, key, where)
        big = np.abs(value).reshape(len(value), -1).max(axis=1) > bound
        if big.any():
            atom = int(np.flatnonzero(big)[0])
            raise DataFileError(f"{where}: atom {atom}: '{key}' {value[atom].tolist()} is "
                                f"beyond ±{bound:g} {_LABEL_UNITS[key]}")


#: |E|/N (eV/atom) beyond which energies relative to FM are not credible (exchange
#: energies of 3d magnets are ~0.01-0.5 eV/atom; DFT total energies are -3 to -10)
TOTAL_ENERGY_PER_ATOM = 2.0
#: |E|/N (eV/atom) of an all-parallel frame beyond which it is not relative to FM: an FM
#: state along another axis differs from the reference by its anisotropy energy (µeV to a
#: few meV/atom), a wrong reference by 0.1 eV/atom or more
FM_ENERGY_PER_ATOM = 0.05


def check_energy_reference(frames, where: str) -> None:
    """Raise :class:`DataFileError` (one line naming ``where``) if the energies of
    ``frames`` are not relative to the FM state of the same structure (the data contract,
    docs/formats.md): their mean |E|/N beyond :data:`TOTAL_ENERGY_PER_ATOM` (total
    energies, e.g. VASP's TOTEN), or an all-parallel frame whose |E|/N exceeds
    :data:`FM_ENERGY_PER_ATOM`."""
    energies = [(k, f.energy / len(f.system)) for k, f in enumerate(frames)
                if f.energy is not None]
    if not energies:
        return
    mean = float(np.mean([abs(e) for _, e in energies]))
    if mean > TOTAL_ENERGY_PER_ATOM:
        raise DataFileError(f"{where}: energies average {mean:.3g} eV/atom in magnitude: "
                            "total energies? Labels are E - E_FM, relative to the "
                            "ferromagnetic state of the same structure (docs/formats.md)")
    for k, e in energies:
        d = frames[k].system.directions
        if np.all(d @ d[0] > 1.0 - 1e-9) and abs(e) > FM_ENERGY_PER_ATOM:
            raise DataFileError(f"{where}: frame {k}: all spins parallel, yet energy "
                                f"{e:.4g} eV/atom; labels are E - E_FM, relative to the "
                                "ferromagnetic state of the same structure, so 0 here "
                                "(docs/formats.md)")


_PROPERTIES = re.compile(r'(?:^|\s)Properties=("?)([A-Za-z0-9_:]+)\1(?:\s|$)')


def _check_rows(path: str, convert: bool = False) -> None:
    """Every frame of an extxyz file is complete and every atom row has exactly the
    columns its ``Properties`` header declares (ASE ignores extra columns silently);
    ``convert``: also that every cell reads as its column's type (to name the line of
    a value ASE could not read)."""
    from ase.io.extxyz import key_val_str_to_dict, parse_properties

    lines = read_text(path, DataFileError).splitlines()
    k, frame, parsed = 0, 0, {}
    while k < len(lines) and lines[k].strip():
        try:
            natoms = int(lines[k])
        except ValueError:
            raise DataFileError(f"{path}: line {k + 1}: expected the atom count of frame "
                                f"{frame}, got {lines[k].strip()[:40]!r}") from None
        if natoms < 0 or k + 1 >= len(lines):
            raise DataFileError(f"{path}: line {k + 1}: frame {frame} has no valid header")
        try:
            match = _PROPERTIES.search(lines[k + 1])    # ASE's full parser is slow
            spec = match.group(2) if match else key_val_str_to_dict(
                lines[k + 1].strip()).get("Properties", "species:S:1:pos:R:3")
            if spec not in parsed:
                parsed[spec] = parse_properties(spec)[2:]
            dtype, convs = parsed[spec]
            columns = len(convs)
        except Exception as exc:  # ASE raises many types for malformed headers
            raise DataFileError(f"{path}: line {k + 2}: frame {frame}: unreadable header "
                                f"({exc})") from None
        for atom in range(natoms):
            row = k + 2 + atom
            if row >= len(lines):
                raise DataFileError(f"{path}: frame {frame}: ends after {atom} of {natoms} "
                                    "atom rows (truncated file?)")
            values = lines[row].split()
            if len(values) != columns:
                raise DataFileError(f"{path}: line {row + 1}: frame {frame}, atom {atom}: "
                                    f"{len(values)} columns, the header declares {columns}")
            for column, (to_type, value) in enumerate(zip(convs, values) if convert else ()):
                try:
                    to_type(value)
                except Exception:  # ASE's converters raise ValueError, KeyError, ...
                    raise DataFileError(
                        f"{path}: line {row + 1}: frame {frame}, atom {atom}: column "
                        f"{column + 1} ({dtype.names[column]}): cannot read {value[:20]!r}"
                    ) from None
        k += 2 + natoms
        while k < len(lines) and lines[k].lstrip().startswith("VEC"):
            k += 1
        frame += 1
    rest = next((j for j in range(k, len(lines)) if lines[j].strip()), None)
    if rest is not None:
        raise DataFileError(f"{path}: line {rest + 1}: text after a blank line (extxyz "
                            "readers stop at the first blank line)")
    if frame == 0:
        raise DataFileError(f"{path}: no frames (empty file)")


def read_frames(path, index=":", moment: float | None = None) -> list[Frame]:
    """Read all frames (or ``index``) of an extxyz file into :class:`Frame` objects.

    ``moment`` (μB) is used for frames giving unit ``directions`` instead of ``magmoms``.
    """
    import ase.io

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataFileError(f"{path}: no such file")
    if os.path.getsize(path) and file_kind(path) != "extxyz":
        what = describe_file(path)
        convert = "; convert with ASE: atoms = ase.io.read(file); atoms.arrays['magmoms'] " \
            "= moments; ase.io.write('frames.xyz', atoms, format='extxyz')" \
            if what.endswith("(as ASE reads it)") else ""
        raise DataFileError(f"{path}: {what}, not extended XYZ: otf-spin reads frames as "
                            "extxyz with per-atom magmoms (N, 3) in μB (docs/formats.md)"
                            + convert)
    _check_rows(path)
    try:
        images = ase.io.read(path, index=index, format="extxyz", parallel=False)
    except Exception as exc:  # ASE raises many types for malformed files
        _check_rows(path, convert=True)         # names the line where it can
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

    path = os.fspath(path)
    for k, frame in enumerate(frames):
        if isinstance(frame, Frame):
            check_labels(frame.results, frame.system.n_atoms,
                         f"{path}: frame {k} (not written)")
    images = [frame_to_atoms(f) for f in frames]
    if append and os.path.exists(path):
        with atomic_path(path) as tmp:
            with open(path, "rb") as src, open(tmp, "wb") as dst:
                dst.write(src.read())
            ase.io.write(tmp, images, format="extxyz", append=True, parallel=False)
        return
    with atomic_path(path) as tmp:
        ase.io.write(tmp, images, format="extxyz", parallel=False)


def directions_from_file(path, n: int) -> np.ndarray:
    """(n, 3) directions from an extxyz frame (``magmoms``) or a plain N×3 text table."""
    path = str(path)
    try:
        table = np.loadtxt(path, ndmin=2)
    except (ValueError, UnicodeDecodeError):
        table = None
    if table is None or table.shape[1] != 3:
        frames = read_frames(path)
        table = frames[0].system.moments
    if table.shape != (n, 3):
        raise ValueError(f"{path}: expected {n} spin vectors, found an array of shape "
                         f"{table.shape}")
    norms = np.linalg.norm(table, axis=1)
    bad = ~(np.isfinite(norms) & (norms > 0))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InvalidSystemError(f"{path}: row {k + 1}: spin vector {table[k].tolist()} is "
                                 "zero or not finite")
    return table / norms[:, None]
