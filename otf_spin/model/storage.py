"""Model files (HDF5): everything needed to predict bit for bit, and to refit.

Layout::

    /                attrs: format "otf-spin-model", format_version, package_version,
                     settings (JSON: descriptor with its optional exchange_3b /
                     dipole_2b / exchange_2b_spline / exchange_2b_angle terms,
                     kernels with the term each sees (and with_terms), noise,
                     optimise; settings without terms: an exchange-2b model),
                     hyper (JSON), fingerprint (sha256 of the training data), n_frames,
                     species (JSON list of the training species; files without it, written
                     before it was stored, are read and predict on any species)
    /sparse/<k>      (M_k, D) sparse environments of kernel k
    /alpha           (M,) weights
    /posterior_R     (M, M) upper-triangular factor, Λ = RᵀR (posterior precision)
    /noise_model     (D + 3,) noise profile of the predictive stds (calibrated models)
    /training/...    the training frames: cell (F,3,3), pbc (F,3), n_atoms (F,),
                     positions, directions (ΣN,3), magnitudes (ΣN,), energy (F, NaN =
                     none), fields (ΣN,3, NaN = none), species (ΣN,)
"""
from __future__ import annotations

import hashlib
import json
import os

import h5py
import numpy as np

from otf_spin import __version__
from otf_spin.core import DataFileError
from otf_spin.io import ragged
from otf_spin.io.atomic import atomic_path, describe_file, file_kind, is_hdf5_signature
from otf_spin.model.factory import build_model
from otf_spin.model.gpr import TrainingFrame
from otf_spin.system import SpinSystem, require_memory

FORMAT = "otf-spin-model"
FORMAT_VERSION = 1


def fingerprint(frames) -> str:
    """sha256 of the training data (structures, spins and labels)."""
    h = hashlib.sha256()
    for f in frames:
        f.system.digest(("cell", "positions", "directions", "magnitudes"), h)
        h.update(np.float64(np.nan if f.energy is None else f.energy).tobytes())
        if f.fields is not None:
            h.update(np.ascontiguousarray(f.fields, float).tobytes())
    return h.hexdigest()


def save(model, path) -> None:
    """Write ``model`` (a fitted SparseGPR built by :func:`otf_spin.model.factory.build_model`,
    which records its settings) atomically; a model with non-finite weights is refused
    (DataFileError, nothing written)."""
    if model.settings is None:
        raise ValueError("model has no settings; build it with model.factory.build_model")
    for name, array in (("alpha", model.alpha), ("posterior_R", model.posterior_factor)):
        if array is None or not np.all(np.isfinite(array)):
            raise DataFileError(f"{path}: the fitted model's {name} is not finite; not "
                                "written")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        write_group(h5, model, model.settings)


def write_group(h5, model, settings: dict, with_rows: bool = False) -> None:
    """Write the model into an open HDF5 file or group. ``with_rows`` also stores every
    frame's descriptors and design rows, so that a model read back continues (refits
    included) bit for bit — what checkpoints need."""
    frames = model.frames
    h5.attrs.update(format=FORMAT, format_version=FORMAT_VERSION,
                    package_version=__version__, settings=json.dumps(settings),
                    hyper=json.dumps(model.hyper), fingerprint=fingerprint(frames),
                    n_frames=len(frames))
    if model.species is not None:
        h5.attrs["species"] = json.dumps(list(model.species))
    group = h5.create_group("sparse")
    for k, S in enumerate(model.sparse):
        group.create_dataset(str(k), data=S)
    h5.create_dataset("alpha", data=model.alpha)
    h5.create_dataset("posterior_R", data=model.posterior_factor)
    if getattr(model, "noise_model", None) is not None:
        h5.create_dataset("noise_model", data=model.noise_model)
    t = h5.create_group("training")
    t.create_dataset("cell", data=np.array([f.system.cell for f in frames]))
    t.create_dataset("pbc", data=np.array([f.system.pbc for f in frames]))
    t.create_dataset("n_atoms", data=np.array([f.n_atoms for f in frames]))
    for name in ("positions", "directions", "magnitudes"):
        t.create_dataset(name, data=ragged.stack(getattr(f.system, name) for f in frames))
    t.create_dataset("species", data=ragged.stack(f.system.species for f in frames)
                     .astype("S"))
    t.create_dataset("energy", data=np.array([np.nan if f.energy is None else f.energy
                                              for f in frames]))
    t.create_dataset("fields", data=ragged.stack(
        np.full((f.n_atoms, 3), np.nan) if f.fields is None else f.fields for f in frames))
    if with_rows:
        model.ensure_rows()     # (a model read from a file without them: made here)
        rows = h5.create_group("rows")
        for k, f in enumerate(frames):
            g = rows.create_group(str(k))
            g.create_dataset("d", data=f.d)
            g.create_dataset("d_fm", data=f.d_fm)
            for j, (phi_E, phi_B) in enumerate(f.blocks):
                g.create_dataset(f"phi_E_{j}", data=phi_E)
                if phi_B is not None:
                    g.create_dataset(f"phi_B_{j}", data=phi_B)


def load(path):
    """(model, settings) from a model file; predictions reproduce the saved model's."""
    if not os.path.isfile(path):
        raise DataFileError(f"{path}: no such model file")
    kind = file_kind(path)
    if kind in ("training store", "checkpoint", "trajectory", "extxyz") or \
            (kind == "file" and not is_hdf5_signature(path)):   # (not a damaged HDF5 file)
        raise DataFileError(f"{path}: {describe_file(path)}, not a model file (otf-spin "
                            "train writes one; otf-spin info tells what a file holds)")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise DataFileError(f"{path}: cannot open model file ({exc})") from None
    with h5:
        try:
            return read_group(h5, path)
        except (OSError, KeyError) as exc:        # h5py on damaged files
            raise DataFileError(f"{path}: damaged model file ({exc})") from None


def to_bytes(model) -> bytes:
    """The model with its design rows as an in-memory HDF5 image (for MPI broadcasts)."""
    import io

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        write_group(h5, model, model.settings, with_rows=True)
    return buffer.getvalue()


def from_bytes(data: bytes):
    """Inverse of :func:`to_bytes`: the model, predicting bit for bit as the original."""
    import io

    with h5py.File(io.BytesIO(data), "r") as h5:
        return read_group(h5, "broadcast model")[0]


def _dataset(h5, name: str, path, shape=None, nan_ok: bool = False, kinds: str = "fiu"):
    """``h5[name]`` as an array; DataFileError naming the file and dataset when it is
    missing, of another shape (``None`` entries: any length), of a dtype kind not in
    ``kinds`` (numbers by default) or not finite (NaN allowed where it marks "no
    label")."""
    node = h5.get(name)
    if not isinstance(node, h5py.Dataset):
        raise DataFileError(f"{path}: dataset '{name}' is missing")
    try:
        require_memory(node.size * node.dtype.itemsize, f"dataset '{name}' {node.shape}")
        data = node[()]
    except (OSError, ValueError, TypeError) as exc:    # MemoryLimitError is a ValueError
        raise DataFileError(f"{path}: dataset '{name}' is unreadable ({exc})") from None
    data = np.asarray(data)
    if shape is not None and (data.ndim != len(shape) or any(
            want is not None and want != got for want, got in zip(shape, data.shape))):
        raise DataFileError(f"{path}: dataset '{name}' has shape {data.shape}, expected "
                            f"{tuple('any' if w is None else w for w in shape)}")
    if data.dtype.kind not in kinds:
        raise DataFileError(f"{path}: dataset '{name}' has type {data.dtype}, expected "
                            + {"fiu": "numbers", "iu": "integers", "b": "booleans",
                               "S": "strings"}.get(kinds, kinds))
    if data.dtype.kind == "f":
        bad = np.isinf(data) if nan_ok else ~np.isfinite(data)
        if bad.any():
            raise DataFileError(f"{path}: dataset '{name}' contains NaN or infinite values "
                                f"(first at index {np.argwhere(bad)[0].tolist()})")
    return data


def _header(h5, path):
    """(settings, hyper) from the file's attributes; DataFileError naming a bad one."""
    for name in ("format_version", "settings", "hyper"):
        if name not in h5.attrs:
            raise DataFileError(f"{path}: attribute '{name}' is missing")
    try:
        version = int(h5.attrs["format_version"])
        settings, hyper = json.loads(h5.attrs["settings"]), json.loads(h5.attrs["hyper"])
    except (TypeError, ValueError) as exc:
        raise DataFileError(f"{path}: unreadable header attribute ({exc})") from None
    if version > FORMAT_VERSION:
        raise DataFileError(f"{path}: model format {version} is newer than this otf-spin "
                            f"({__version__}) reads")
    if not isinstance(settings, dict) or not isinstance(hyper, dict) or not all(
            isinstance(v, (int, float)) and np.isfinite(v) and v >= 0 for v in hyper.values()):
        raise DataFileError(f"{path}: attribute 'settings' or 'hyper' is malformed "
                            "(hyperparameters must be finite non-negative numbers)")
    return settings, hyper


def _species(h5, path) -> tuple | None:
    """The training species (sorted tuple) of the file's attribute 'species'; None for a
    file written before it was stored (its structures are then not checked)."""
    if "species" not in h5.attrs:
        return None
    try:
        species = json.loads(h5.attrs["species"])
    except (TypeError, ValueError) as exc:
        raise DataFileError(f"{path}: unreadable attribute 'species' ({exc})") from None
    if not isinstance(species, list) or not all(isinstance(s, str) for s in species):
        raise DataFileError(f"{path}: attribute 'species' is not a list of symbols")
    return tuple(sorted(species))


def read_group(h5, path="model"):
    """(model, settings) from an open HDF5 file or group written by :func:`write_group`.

    Every dataset is checked (present, shape, finite; NaN only as "no label" in the
    training energies and fields): a broken file is a DataFileError naming the dataset."""
    if h5.attrs.get("format") != FORMAT:
        raise DataFileError(f"{path}: not an otf-spin model file")
    settings, hyper = _header(h5, path)
    try:
        model = build_model(settings)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataFileError(f"{path}: attribute 'settings' does not describe a model "
                            f"({type(exc).__name__}: {exc})") from None
    model.hyper = hyper
    model.species = _species(h5, path)
    D = model.descriptor.size
    model.sparse = [_dataset(h5, f"sparse/{k}", path, (None, D))
                    for k in range(len(model.kernels))]
    M = sum(len(S) for S in model.sparse)
    model.alpha = _dataset(h5, "alpha", path, (M,))
    model.posterior_factor = _dataset(h5, "posterior_R", path, (M, M))
    if "noise_model" in h5 or "std_field_noise" in hyper:   # profile of calibrated stds
        model.noise_model = _dataset(h5, "noise_model", path, (D + 3,))
    n_atoms = _dataset(h5, "training/n_atoms", path, (None,), kinds="iu")
    if (n_atoms < 1).any():
        raise DataFileError(f"{path}: dataset 'training/n_atoms' must hold positive integers")
    F, N = len(n_atoms), int(n_atoms.sum())
    t = {"cell": _dataset(h5, "training/cell", path, (F, 3, 3)),
         "pbc": _dataset(h5, "training/pbc", path, (F, 3), kinds="b"),
         "energy": _dataset(h5, "training/energy", path, (F,), nan_ok=True)}
    arrays = {k: _dataset(h5, f"training/{k}", path, shape, nan_ok=k == "fields",
                          kinds="S" if k == "species" else "fiu")
              for k, shape in (("positions", (N, 3)), ("directions", (N, 3)),
                               ("magnitudes", (N,)), ("fields", (N, 3)), ("species", (N,)))}
    pieces = {key: ragged.split(value, n_atoms) for key, value in arrays.items()}
    for k in range(F):
        p = {key: value[k] for key, value in pieces.items()}
        rows = None
        if "rows" in h5:
            g = f"rows/{k}"
            rows = (_dataset(h5, f"{g}/d", path), _dataset(h5, f"{g}/d_fm", path),
                    [(_dataset(h5, f"{g}/phi_E_{j}", path),
                      _dataset(h5, f"{g}/phi_B_{j}", path) if f"phi_B_{j}" in h5[g] else None)
                     for j in range(len(model.kernels))])
        model.frames.append(_frame(t["cell"][k], p["positions"], p["species"].astype(str),
                                   p["directions"], p["magnitudes"], t["pbc"][k],
                                   t["energy"][k], p["fields"], rows))
    if "rows" in h5:
        model.compress()
    if "std_scale_energy" in hyper:
        # written before the energy std had one scale on posterior and noise (hyper
        # std_energy_scale): its stds are calibrated again; the stored weights and
        # posterior factor are kept, so energies and fields are the file's bit for bit
        alpha, factor = model.alpha, model.posterior_factor
        model.refit_from_scratch()
        model.alpha, model.posterior_factor = alpha, factor
    return model, settings


def _frame(cell, positions, species, directions, magnitudes, pbc, energy, fields,
           rows=None) -> TrainingFrame:
    """A training frame as :func:`read_group` rebuilds it: ``energy`` NaN and ``fields``
    (N, 3) all NaN mean "no label"; ``rows`` (d, d_fm, [(phi_E, phi_B or None) per
    kernel]) or None. Labels and rows keep their exact bits."""
    system = SpinSystem.from_arrays(cell, positions, species, directions, magnitudes, pbc)
    labelled = not np.isnan(fields).all()
    frame = TrainingFrame(system, None if np.isnan(energy) else energy,
                          fields if labelled else None)
    if labelled:
        frame.fields = np.array(fields)                           # exact bits
    if rows is not None:
        frame.d, frame.d_fm, frame.blocks = rows
        frame.phi_E = np.concatenate([b[0] for b in frame.blocks])
        if frame.fields is not None:
            frame.phi_B = np.concatenate([b[1] for b in frame.blocks], axis=1)
    return frame


def clone(model):
    """The model exactly as :func:`from_bytes` ``(to_bytes(model))`` returns it —
    predicting and refitting bit for bit alike — without the HDF5 image (a one-rank
    on-the-fly run's refits; the stored arrays are copied, and the compressed data
    rebuilt from the design rows as after any read)."""
    new = build_model(json.loads(json.dumps(model.settings)))
    new.hyper = json.loads(json.dumps(model.hyper))
    new.species = model.species
    new.sparse = [np.array(S) for S in model.sparse]
    new.alpha = np.array(model.alpha)
    new.posterior_factor = np.array(model.posterior_factor)
    if getattr(model, "noise_model", None) is not None:
        new.noise_model = np.array(model.noise_model)
    for f in model.frames:
        s = f.system
        new.frames.append(_frame(
            s.cell, s.positions, np.array(s.species).astype("S").astype(str), s.directions,
            s.magnitudes, s.pbc, np.nan if f.energy is None else f.energy,
            np.full((f.n_atoms, 3), np.nan) if f.fields is None else f.fields,
            (np.array(f.d), np.array(f.d_fm),
             [(np.array(E), None if B is None else np.array(B)) for E, B in f.blocks])))
    new.compress()
    return new
