"""`otf-spin info FILE`: what an otf-spin file is and what it holds.

Recognised (HDF5): H5MD trajectories (``/h5md``), training stores, model files and
checkpoints (root attribute ``format``; checkpoints written before the marker by their
``/replicas`` + ``/model`` layout); extended XYZ data files as a fallback. The summary
is a dict of plain values (``--json``) with, for each kind: format and version, the
contents (atoms, frames, series, labels), the provenance (writer version, oracle,
settings) and the size on disk.
"""
from __future__ import annotations

import collections
import json
import os

import numpy as np

from otf_spin.core import DataFileError
from otf_spin.io.atomic import hdf5_kind
from otf_spin.io.extxyz import read_frames


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _json_attr(h5, key, default=None):
    raw = h5.attrs.get(key)
    if raw is None or _text(raw) == "":
        return default
    return json.loads(_text(raw))


#: the model settings' noise keys (internal units, :data:`otf_spin.config.model.NOISE`)
#: under names that carry their unit: σ_e per atom (eV), σ_b per transverse field
#: component (eV/μB)
NOISE_NAMES = {"energy": "energy_eV_per_atom", "field": "field_eV_per_muB"}


def _model_summary(g) -> dict:
    settings = _json_attr(g, "settings", {})
    noise = settings.get("noise")
    if isinstance(noise, dict):
        noise = {NOISE_NAMES.get(k, k): v for k, v in noise.items()}
    sparse = [int(g["sparse"][k].shape[0]) for k in sorted(g["sparse"], key=int)]
    return {"format_version": int(g.attrs.get("format_version", 0)),
            "written_by": f"otf-spin {_text(g.attrs.get('package_version', '?'))}",
            "training_frames": int(g.attrs.get("n_frames", 0)),
            "training_atoms": int(np.sum(g["training/n_atoms"][()])) if "training" in g
            else 0,
            "sparse_points": sparse,
            "descriptor": settings.get("descriptor"),
            "kernels": settings.get("kernels"),
            "species": _json_attr(g, "species"),
            "noise": noise,
            "hyperparameters": _json_attr(g, "hyper"),
            "training_fingerprint": _text(g.attrs.get("fingerprint", "")),
            "design_rows": "rows" in g}


def _trajectory(h5) -> dict:
    part = h5["particles/all"]
    creator = h5["h5md/creator"].attrs
    species = part["species"]
    names = [_text(n) for n in species.attrs.get("names", [])]
    out = {"format_version": ".".join(str(v) for v in h5["h5md"].attrs["version"]),
           "written_by": f"{_text(creator.get('name', '?'))} {_text(creator.get('version', '?'))}",
           "atoms": int(part["position"].shape[0]),
           "species": dict(collections.Counter(names[i] for i in species[()]))
           if names else {},
           "cell_angstrom": np.round(part["box/edges"][()], 6).tolist()}
    if "spin" in part:
        steps = part["spin/step"][()]
        out["spin_frames"] = int(len(steps))
    series = {}
    for name, g in h5["observables"].items():
        steps, time = g["step"][()], g["time"][()]
        entry = {"points": int(len(steps)), "unit": _text(g["value"].attrs.get("unit", ""))}
        if len(steps):
            entry["steps"] = [int(steps[0]), int(steps[-1])]
            last = g["value"][-1]
            entry["last"] = float(np.linalg.norm(last)) if np.ndim(last) else float(last)
        series[name] = entry
        out.setdefault("time_unit", _text(g["time"].attrs.get("unit", "")))
    out["observables"] = series
    out["on_the_fly"] = "oracle_calls" in series
    return out


def _store(h5) -> dict:
    frames = h5["frames"]
    provenance = [json.loads(_text(p)) for p in frames["provenance"][()]]
    energy = frames["energy"][()]
    fields = h5["atoms/fields"][()]
    counts = frames["n_atoms"][()]
    ends = np.cumsum(counts)
    with_fields = sum(bool(np.isfinite(fields[e - n:e]).all()) for n, e in zip(counts, ends))
    stored = [p["stored_at"] for p in provenance if "stored_at" in p]
    oracles = collections.Counter(str(p.get("oracle", "?")) for p in provenance)
    settings = {json.dumps(p["settings"], sort_keys=True, default=str)
                for p in provenance if "settings" in p}
    out = {"format_version": int(h5.attrs.get("format_version", 0)),
           "written_by": f"otf-spin {_text(h5.attrs.get('package_version', '?'))}",
           "frames": int(len(counts)), "atoms": int(np.sum(counts)),
           "atoms_per_frame": sorted({int(n) for n in counts}),
           "labels": {"energy": int(np.isfinite(energy).sum()), "fields": int(with_fields)},
           "oracles": dict(oracles),
           "oracle_settings": [json.loads(s) for s in sorted(settings)],
           "package_versions": sorted({str(p.get("package_version", "?"))
                                       for p in provenance})}
    if stored:
        import datetime

        stamp = lambda t: datetime.datetime.fromtimestamp(  # noqa: E731
            t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        out["stored"] = [stamp(min(stored)), stamp(max(stored))]
    wall = [p["wall_time"] for p in provenance if isinstance(p.get("wall_time"), (int, float))]
    if wall:
        out["oracle_wall_time_s"] = round(float(np.sum(wall)), 3)
    return out


def _checkpoint(h5) -> dict:
    learner = _json_attr(h5, "learner", {})
    replicas = {name: {"step": int(g.attrs["step"]), "time": float(g.attrs["time"]),
                       "spins": int(g["directions"].shape[0])}
                for name, g in h5["replicas"].items()}
    threshold = learner.get("threshold", {})
    out = {"format_version": int(h5.attrs.get("format_version", 1)),
           "written_by": f"otf-spin {_text(h5.attrs.get('package_version', '?'))}",
           "replicas": replicas,
           "store_frames": int(h5.attrs.get("store_frames", 0)),
           "learner": {k: learner[k] for k in ("calls", "reused", "failures", "oracle_time")
                       if k in learner},
           "threshold_eV_per_muB": threshold.get("value") if isinstance(threshold, dict)
           else threshold,
           "tempering": bool(_text(h5.attrs.get("tempering", ""))),
           "input_fingerprint": _json_attr(h5, "input", {}),
           "model": _model_summary(h5["model"])}
    return out


def describe(path) -> dict:
    """Summary of the otf-spin file at ``path`` (DataFileError if it is none)."""
    import h5py

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    head = {"file": path, "size_bytes": os.path.getsize(path)}
    if h5py.is_hdf5(path):
        try:
            h5 = h5py.File(path, "r", libver="latest", swmr=True)
        except OSError:
            h5 = h5py.File(path, "r")
        with h5:
            kind = hdf5_kind(h5)
            reader = {"trajectory": _trajectory, "training store": _store,
                      "model": _model_summary, "checkpoint": _checkpoint}.get(kind)
            if reader is None:
                raise DataFileError(f"{path}: HDF5 file but not an otf-spin trajectory, "
                                    "store, model or checkpoint")
            try:
                body = reader(h5)
            except KeyError as exc:
                raise DataFileError(f"{path}: {kind} without {exc}") from None
        return {"kind": kind, **head, **body}

    try:
        frames = read_frames(path)
    except DataFileError:
        raise DataFileError(f"{path}: neither an otf-spin HDF5 file nor extended XYZ "
                            "with magmoms") from None
    return {"kind": "extxyz data", **head, "frames": len(frames),
            "atoms": int(sum(len(f.system) for f in frames)),
            "labels": {"energy": sum(f.energy is not None for f in frames),
                       "fields": sum(f.fields is not None for f in frames)}}


def _lines(value, indent=0):
    pad = "  " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict) and item:
                yield f"{pad}{key}:"
                yield from _lines(item, indent + 1)
            else:
                yield f"{pad}{key}: {_scalar(item)}"
    else:
        yield f"{pad}{_scalar(value)}"


def _scalar(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def format_info(summary: dict) -> str:
    """The summary as indented ``key: value`` lines; sizes in human units."""
    summary = dict(summary)
    size = summary.pop("size_bytes")
    unit = next(u for u, s in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1))
                if size >= s or u == "B")
    scale = {"GB": 1e9, "MB": 1e6, "kB": 1e3, "B": 1}[unit]
    summary = {"kind": summary.pop("kind"), "file": summary.pop("file"),
               "size": f"{size / scale:.3g} {unit} ({size} bytes)", **summary}
    return "\n".join(_lines(summary))
