"""`otf-spin plot`: figures of runs, temperature scans, fits and training stores.

matplotlib is an optional dependency (``pip install 'otf-spin[plot]'``), used headless
(Agg); the file format follows the suffix of the output (.png, .svg, .pdf). Each
``figure_*`` function returns a matplotlib Figure (tests inspect it), :func:`save`
writes it.

- :func:`figure_run` — one H5MD run file: |M|(t), E(t), T_spin(t) with the set
  temperature, and for on-the-fly runs the largest field σ with the threshold and the
  oracle calls marked.
- :func:`figure_temperature` — several run files, one temperature each: M(T) and the
  Binder cumulant U_L(T) = 1 - <m⁴>/(3<m²>²), one curve per system size. The first
  half of every file's samples is discarded as equilibration; error bars are standard
  errors of ten blocks.
- :func:`figure_parity` — predict output against labelled reference data (extxyz):
  energy per atom and field components, σ error bars, RMSEs in the legend.
- :func:`figure_store` — a training store: its labels over wall-clock time.

Units on the axes: ps (MC: sweeps), eV, K, meV/atom, meV/μB.
"""
from __future__ import annotations

import json
import os

import numpy as np

from otf_spin.core import DataFileError, PlotError
from otf_spin.io.atomic import file_kind
from otf_spin.io.extxyz import read_frames

FORMATS = (".png", ".svg", ".pdf")
EQUILIBRATION = 0.5          # fraction of each file's samples discarded in M(T), U_L(T)
BLOCKS = 10                  # blocks for the standard errors of M(T)


def pyplot():
    """matplotlib.pyplot on the headless Agg backend; PlotError if not installed."""
    try:
        import matplotlib
    except ImportError:
        raise PlotError("otf-spin plot needs matplotlib: pip install 'otf-spin[plot]' "
                        "(or pip install matplotlib)") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def output_format(out) -> str:
    """The image format of ``out`` from its suffix; PlotError if not one of FORMATS."""
    suffix = os.path.splitext(os.fspath(out))[1].lower()
    if suffix not in FORMATS:
        raise PlotError(f"{out}: unknown image format {suffix or '(none)'!r}; use one of "
                        f"{', '.join(FORMATS)}")
    return suffix[1:]


def save(figure, out, dpi: float = 110) -> None:
    """Write ``figure`` to ``out`` (format from the suffix; ``dpi`` for PNG) and close it."""
    output_format(out)
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    figure.savefig(out, dpi=dpi, bbox_inches="tight")
    pyplot().close(figure)


# --- reading ----------------------------------------------------------------------------
def read_series(path) -> dict:
    """Observables of an H5MD run file: {name: (step, time, value)} plus "_time_unit"
    and "_atoms"."""
    import h5py

    try:
        h5 = h5py.File(path, "r", libver="latest", swmr=True)
    except OSError as exc:
        raise DataFileError(f"{path}: cannot open run file ({exc})") from None
    with h5:
        if "h5md" not in h5 or "observables" not in h5:
            raise DataFileError(f"{path}: not an H5MD run file (otf-spin run output)")
        out = {name: (g["step"][()], g["time"][()], g["value"][()])
               for name, g in h5["observables"].items()}
        units = [g["time"].attrs.get("unit", "") for g in h5["observables"].values()]
        out["_time_unit"] = str(units[0]) if units else ""
        out["_atoms"] = int(h5["particles/all/position"].shape[0])
    if "magnetization" not in out or not len(out["magnetization"][0]):
        raise DataFileError(f"{path}: no magnetization series to plot")
    return out


def _time_axis(series):
    unit = series["_time_unit"]
    return ("MC sweep", 0) if unit == "MC sweep" else (f"time ({unit or 'ps'})", 1)


# --- figures ----------------------------------------------------------------------------
def figure_run(path):
    """|M|, E, T_spin (and σ, threshold, oracle calls for on-the-fly runs) against time."""
    plt = pyplot()
    s = read_series(path)
    label, column = _time_axis(s)
    otf = "max_field_std" in s
    fig, axes = plt.subplots(3 + otf, 1, sharex=True, figsize=(6.4, 2.0 * (3 + otf)),
                             squeeze=False)
    axes = axes[:, 0]

    def x(name):
        return s[name][column]

    m = np.linalg.norm(np.atleast_2d(s["magnetization"][2]), axis=-1)
    axes[0].plot(x("magnetization"), m, "-", color="C0", label="|M|")
    axes[0].set_ylabel("|M| (per spin)")
    axes[1].plot(x("energy"), s["energy"][2], "-", color="C1", label="E")
    axes[1].set_ylabel("E (eV)")
    if "spin_temperature" in s and np.isfinite(s["spin_temperature"][2]).any():
        axes[2].plot(x("spin_temperature"), s["spin_temperature"][2], "-", color="C2",
                     label="T_spin")
    if "temperature" in s:
        axes[2].plot(x("temperature"), s["temperature"][2], "--", color="k", lw=1,
                     label="T (bath)")
    axes[2].set_ylabel("T (K)")
    if axes[2].lines:                   # (a run file without temperatures has none)
        axes[2].legend(loc="best", fontsize="small")
    if otf:
        ax = axes[3]
        ax.plot(x("max_field_std"), 1e3 * s["max_field_std"][2], "-", color="C3",
                label="max σ (field)")
        if "threshold" in s:
            ax.plot(x("threshold"), 1e3 * s["threshold"][2], "--", color="k", lw=1,
                    label="threshold")
        if "oracle_calls" in s:
            calls = s["oracle_calls"][2]
            new = np.flatnonzero(np.diff(calls) > 0) + 1
            for k, t in enumerate(x("oracle_calls")[new]):
                ax.axvline(t, color="C4", lw=0.8, alpha=0.6,
                           label="oracle call" if k == 0 else None)
        ax.set_ylabel("σ (meV/μB)")
        ax.legend(loc="best", fontsize="small")
    axes[-1].set_xlabel(label)
    axes[0].set_title(os.path.basename(os.fspath(path)), fontsize="medium")
    fig.tight_layout()
    return fig


def temperature_point(path) -> dict:
    """One run file's point of M(T), U_L(T): atoms, temperature (K), mean |m| and its
    block standard error, Binder cumulant, samples used."""
    s = read_series(path)
    if "temperature" not in s:
        raise DataFileError(f"{path}: no temperature series")
    temperatures = s["temperature"][2]
    if np.ptp(temperatures) > 1e-9 * max(1.0, abs(temperatures).max()):
        raise PlotError(f"{path}: the temperature ramps ({temperatures.min():g}-"
                        f"{temperatures.max():g} K); M(T) needs one temperature per file")
    m = np.linalg.norm(np.atleast_2d(s["magnetization"][2]), axis=-1)
    m = m[int(len(m) * EQUILIBRATION):]
    if len(m) < 2:
        raise PlotError(f"{path}: too few samples for M(T) ({len(m)} after equilibration)")
    blocks = np.array([b.mean() for b in np.array_split(m, min(BLOCKS, len(m)))])
    m2 = m**2
    return {"atoms": s["_atoms"], "temperature": float(temperatures[0]),
            "m": float(m.mean()), "m_err": float(blocks.std(ddof=1) / np.sqrt(len(blocks))),
            "binder": float(1.0 - np.mean(m2**2) / (3.0 * np.mean(m2) ** 2)),
            "samples": int(len(m))}


def figure_temperature(paths):
    """M(T) and U_L(T) from several run files (one curve per system size)."""
    plt = pyplot()
    points = [temperature_point(p) for p in paths]
    fig, (ax_m, ax_u) = plt.subplots(2, 1, sharex=True, figsize=(6.4, 6.0))
    for k, atoms in enumerate(sorted({p["atoms"] for p in points})):
        rows = sorted((p for p in points if p["atoms"] == atoms),
                      key=lambda p: p["temperature"])
        T = [p["temperature"] for p in rows]
        ax_m.errorbar(T, [p["m"] for p in rows], yerr=[p["m_err"] for p in rows],
                      fmt="o-", color=f"C{k}", capsize=2, label=f"N = {atoms}")
        ax_u.plot(T, [p["binder"] for p in rows], "o-", color=f"C{k}", label=f"N = {atoms}")
    ax_m.set_ylabel("M = <|m|>")
    ax_u.set_ylabel("U_L = 1 - <m⁴>/(3<m²>²)")
    ax_u.set_xlabel("T (K)")
    ax_m.legend(loc="best", fontsize="small")
    ax_u.axhline(2.0 / 3.0, color="k", lw=0.5, ls=":")
    fig.tight_layout()
    return fig


def parity_data(predicted, reference) -> dict:
    """Arrays of a parity plot: energies per atom (meV/atom) and field components
    (meV/μB), reference and predicted, with σ where predicted (NaN otherwise)."""
    pred, ref = read_frames(predicted), read_frames(reference)
    if len(pred) != len(ref):
        raise PlotError(f"{predicted}: {len(pred)} frames, but {reference} has {len(ref)}")
    out = {"energy": ([], [], []), "fields": ([], [], [])}
    for k, (p, r) in enumerate(zip(pred, ref)):
        if len(p.system) != len(r.system):
            raise PlotError(f"{predicted}: frame {k} has {len(p.system)} atoms, the "
                            f"reference {len(r.system)}")
        n = len(r.system)
        if r.energy is not None and p.energy is not None:
            out["energy"][0].append(1e3 * r.energy / n)
            out["energy"][1].append(1e3 * p.energy / n)
            out["energy"][2].append(1e3 * p.results.get("energy_std", np.nan) / n)
        if r.fields is not None and p.fields is not None:
            std = p.results.get("fields_std")
            std = np.full((n, 3), np.nan) if std is None else \
                np.broadcast_to(np.reshape(std, (n, -1)), (n, 3))
            out["fields"][0].append(1e3 * np.ravel(r.fields))
            out["fields"][1].append(1e3 * np.ravel(p.fields))
            out["fields"][2].append(1e3 * np.ravel(std))
    result = {}
    for key, (x, y, e) in out.items():
        if x:
            join = np.concatenate if key == "fields" else np.asarray
            result[key] = tuple(np.asarray(join(v), float) for v in (x, y, e))
    if not result:
        raise PlotError(f"{predicted} and {reference} share no energy or field labels")
    return result


def figure_parity(predicted, reference):
    """Predicted against reference energies and fields, σ error bars, RMSE in legend."""
    plt = pyplot()
    data = parity_data(predicted, reference)
    fig, axes = plt.subplots(1, len(data), figsize=(5.0 * len(data), 4.6), squeeze=False)
    units = {"energy": "meV/atom", "fields": "meV/μB"}
    for ax, (key, (x, y, e)) in zip(axes[0], data.items()):
        rmse = float(np.sqrt(np.mean((y - x) ** 2)))
        ax.errorbar(x, y, yerr=None if np.isnan(e).all() else np.nan_to_num(e), fmt="o",
                    ms=3, elinewidth=0.8, alpha=0.8,
                    label=f"RMSE {rmse:.3g} {units[key]} ({len(x)} values)")
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k-", lw=0.7)
        ax.set_xlabel(f"reference {key} ({units[key]})")
        ax.set_ylabel(f"predicted {key} ({units[key]})")
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig


def store_labels(path) -> dict:
    """Per stored frame: seconds since the first label, energy (meV/atom), largest
    field (meV/μB), oracle name."""
    import h5py

    with h5py.File(path, "r") as h5:
        if h5.attrs.get("format") != "otf-spin-store":
            raise DataFileError(f"{path}: not an otf-spin training store")
        f = h5["frames"]
        counts = f["n_atoms"][()]
        energy = f["energy"][()]
        prov = [json.loads(p.decode() if isinstance(p, bytes) else p)
                for p in f["provenance"][()]]
        fields = h5["atoms/fields"][()]
    ends = np.cumsum(counts)
    field_max = np.array([np.nan if np.isnan(fields[e - n:e]).all() else
                          np.nanmax(np.linalg.norm(fields[e - n:e], axis=1))
                          for n, e in zip(counts, ends)])
    stamps = np.array([p.get("stored_at", np.nan) for p in prov], float)
    return {"time": stamps - np.nanmin(stamps) if len(stamps) else stamps,
            "energy": 1e3 * energy / counts, "field_max": 1e3 * field_max,
            "oracle": [str(p.get("oracle", "?")) for p in prov]}


def figure_store(path):
    """Labels over time: running count, energy per atom and largest field per frame."""
    plt = pyplot()
    d = store_labels(path)
    if not len(d["time"]):
        raise PlotError(f"{path}: the store holds no frames")
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(6.4, 6.6))
    order = np.argsort(d["time"], kind="stable")
    t = d["time"][order]
    axes[0].step(t, np.arange(1, len(t) + 1), where="post", color="C0")
    axes[0].set_ylabel("labels")
    oracles = np.array(d["oracle"])[order]
    for k, name in enumerate(sorted(set(oracles))):
        mask = oracles == name
        axes[1].plot(t[mask], d["energy"][order][mask], "o", ms=3, color=f"C{k}",
                     label=name)
        axes[2].plot(t[mask], d["field_max"][order][mask], "o", ms=3, color=f"C{k}",
                     label=name)
    axes[1].set_ylabel("E (meV/atom)")
    axes[2].set_ylabel("max |B| (meV/μB)")
    axes[2].set_xlabel("wall time since the first label (s)")
    axes[1].legend(loc="best", fontsize="small", title="oracle")
    axes[0].set_title(os.path.basename(os.fspath(path)), fontsize="medium")
    fig.tight_layout()
    return fig


def detect(paths, reference=None) -> str:
    """"run", "temperature", "parity" or "store" for these files."""
    if reference:
        return "parity"
    if len(paths) > 1:
        return "temperature"
    path = paths[0]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    kind = file_kind(path)      # (a trajectory left open by a killed run: SWMR)
    if kind in ("extxyz", "file"):
        raise PlotError(f"{path}: extxyz predictions need --reference (labelled data) for "
                        "a parity plot")
    if kind in ("training store", "trajectory"):
        return {"training store": "store", "trajectory": "run"}[kind]
    raise PlotError(f"{path}: not a run file (H5MD) or a training store")


def plot_files(paths, out, kind: str = "auto", reference=None, dpi: float = 110) -> None:
    """Make the plot ``kind`` (auto: :func:`detect`) of ``paths`` and write ``out``."""
    output_format(out)
    pyplot()
    paths = [os.fspath(p) for p in paths]
    for p in paths + ([reference] if reference else []):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p}: no such file")
    kind = detect(paths, reference) if kind == "auto" else kind
    if kind == "parity":
        if not reference or len(paths) != 1:
            raise PlotError("parity plots take one predictions file and --reference")
        figure = figure_parity(paths[0], reference)
    elif kind == "temperature":
        figure = figure_temperature(paths)
    elif kind == "store":
        figure = figure_store(paths[0])
    else:
        if len(paths) != 1:
            raise PlotError("a run plot takes one run file (several: --kind temperature)")
        figure = figure_run(paths[0])
    save(figure, out, dpi)
