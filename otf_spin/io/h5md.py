"""H5MD 1.1 trajectory writer (https://www.nongnu.org/h5md/h5md.html).

    /h5md                          version [1, 1]; author, creator (name, version)
    /particles/all/box             dimension 3, boundary; edges (3, 3) cell rows, Å
    /particles/all/position        (N, 3) Å (fixed positions)
    /particles/all/species         (N,) int, attribute ``names``
    /particles/all/magnetic_moment (N,) μB
    /particles/all/spin/{step,time,value}   moment directions (T, N, 3), unit vectors
    /observables/<name>/{step,time,value}   energy (eV), magnetization (3-vector, mean
                                   of unit vectors), spin_temperature (K), ...

Every value dataset carries a ``unit`` attribute; time is in ps ("MC sweep" for Monte
Carlo). The file is written in HDF5's SWMR mode: others can read it while it grows, and
a killed run leaves a readable file (until its first frame is written the file is built
beside its path and renamed onto it, so a run killed earlier leaves none). Frames are kept in memory and appended in one
write per dataset (:meth:`H5MDWriter.flush`) at most ``flush_seconds`` after the first
of them (default 1 s of wall time), when they reach ``flush_bytes``, on :meth:`flush`
(the run calls it before every checkpoint, so a checkpointed step is always in the file)
and on close; per-frame HDF5 calls cost more than the dynamics of a small cell.
"""
from __future__ import annotations

import time as clock

import h5py
import numpy as np

from otf_spin import __version__
from otf_spin.io.atomic import atomic_path

UNITS = {"energy": "eV", "magnetization": "1", "spin_temperature": "K",
         "temperature": "K", "max_field_std": "eV/mu_B", "oracle_calls": "1",
         "threshold": "eV/mu_B", "training_frames": "1", "swap_acceptance": "1",
         "walker": "1"}


def _append(dataset, rows) -> None:
    """Append ``rows`` (k, ...) to the extendible ``dataset`` along its first axis: one
    extent change and one write of the new hyperslab through h5py's low-level API (a
    third of the time of ``resize`` and a slice assignment, whose selection parsing
    dominates for the few rows of a flush)."""
    dsid = dataset.id
    start = dsid.shape[0]
    dsid.set_extent((start + len(rows),) + rows.shape[1:])
    space = dsid.get_space()
    space.select_hyperslab((start,) + (0,) * (rows.ndim - 1), rows.shape)
    dsid.write(h5py.h5s.create_simple(rows.shape), space, rows)


class H5MDWriter:
    def __init__(self, path, system, time_unit: str = "ps", write_spins: bool = True,
                 author: str = "otf-spin user", resume_step: int | None = None,
                 flush_seconds: float = 1.0, flush_bytes: int = 2**26):
        """New file, or with ``resume_step`` the existing file cut back to the frames
        with step ≤ resume_step (a restarted run continues it). Buffered frames are
        written at most ``flush_seconds`` (s, wall) after the first of them or once they
        hold ``flush_bytes`` (0: every frame is written at once)."""
        self.flush_seconds, self.flush_bytes = float(flush_seconds), int(flush_bytes)
        self._pending = {}        # series name -> [(step, time, value), ...] not written
        self._pending_bytes, self._since = 0, None
        self.path, self._creating = path, None
        if resume_step is not None:
            self._reopen(path, resume_step, time_unit)
            return
        # built in a temporary file that the first flush renames onto ``path``: a run
        # killed before it leaves no half-made (unreadable, non-SWMR) trajectory behind
        self._creating = atomic_path(path)
        self.file = h5py.File(self._creating.__enter__(), "w", libver="latest")
        self.time_unit = time_unit
        h5md = self.file.create_group("h5md")
        h5md.attrs["version"] = np.array([1, 1], dtype=np.int32)
        h5md.create_group("author").attrs["name"] = author
        creator = h5md.create_group("creator")
        creator.attrs.update(name="otf-spin", version=__version__)
        part = self.file.create_group("particles/all")
        box = part.create_group("box")
        box.attrs["dimension"] = np.int32(3)
        box.attrs["boundary"] = np.array(["periodic" if p else "none" for p in system.pbc],
                                         dtype=h5py.string_dtype())
        edges = box.create_dataset("edges", data=system.cell)
        edges.attrs["unit"] = "angstrom"
        part.create_dataset("position", data=system.positions).attrs["unit"] = "angstrom"
        names = sorted(set(system.species))
        species = part.create_dataset("species", data=np.array(
            [names.index(s) for s in system.species], dtype=np.int32))
        species.attrs["names"] = np.array(names, dtype=h5py.string_dtype())
        part.create_dataset("magnetic_moment", data=system.magnitudes).attrs["unit"] = "mu_B"
        self._series = {}
        if write_spins:
            self._series["spin"] = self._group(part, "spin", (len(system), 3), "1")
        self.file.create_group("observables")

    def _group(self, parent, name, shape, unit):
        group = parent.create_group(name)
        step = group.create_dataset("step", shape=(0,), maxshape=(None,), dtype=np.int64,
                                    chunks=(256,))
        time = group.create_dataset("time", shape=(0,), maxshape=(None,), dtype=np.float64,
                                    chunks=(256,))
        time.attrs["unit"] = self.time_unit
        chunk = (max(1, min(64, 2**20 // max(1, int(np.prod(shape)) * 8))),) + shape
        value = group.create_dataset("value", shape=(0,) + shape, maxshape=(None,) + shape,
                                     dtype=np.float64, chunks=chunk)
        value.attrs["unit"] = unit
        return step, time, value

    def _reopen(self, path, resume_step, time_unit):
        # a writer killed in SWMR mode leaves the file readable by SWMR readers only:
        # copy it (atomically) into a fresh file, then cut it back and append
        import os

        with atomic_path(path) as tmp:
            with h5py.File(path, "r", libver="latest", swmr=True) as old, \
                    h5py.File(tmp, "w", libver="latest") as new:
                for key in old:
                    old.copy(old[key], new, name=key)
                new.attrs.update(dict(old.attrs))
        assert os.path.exists(path)
        self.time_unit = time_unit
        self._attach(resume_step)

    def _attach(self, resume_step=None):
        """Open the file at ``self.path`` for appending in SWMR mode, its series cut back
        to the frames with step ≤ ``resume_step`` (None: all kept)."""
        self.file = h5py.File(self.path, "a", libver="latest")
        self._series = {}
        groups = [("spin", self.file["particles/all"])] if "spin" in self.file["particles/all"] \
            else []
        groups += [(name, self.file["observables"]) for name in self.file["observables"]]
        for name, parent in groups:
            g = parent[name]
            if resume_step is not None:
                keep = int(np.searchsorted(g["step"][()], resume_step, side="right"))
                for key in ("step", "time", "value"):
                    g[key].resize(keep, axis=0)
            self._series[name] = (g["step"], g["time"], g["value"])
        self.file.flush()
        self.file.swmr_mode = True

    def _queue(self, name, step, time, value):
        value = np.array(value, dtype=float)        # a copy: the caller's array moves on
        self._pending.setdefault(name, []).append((step, time, value))
        self._pending_bytes += value.nbytes + 16

    def write(self, step: int, time: float, directions=None, observables=None):
        """Append one frame: spin directions (N, 3) and scalar/vector observables (in
        the file by the next :meth:`flush`; the first frame at once)."""
        if directions is not None and "spin" in self._series:
            self._queue("spin", step, time, directions)
        for name, value in (observables or {}).items():
            value = np.asarray(value, dtype=float)
            if name not in self._series:
                if self.file.swmr_mode:
                    raise ValueError(f"observable {name!r} first appears after the first frame")
                self._series[name] = self._group(self.file["observables"], name, value.shape,
                                                 UNITS.get(name, "1"))
            self._queue(name, step, time, value)
        if self._since is None:
            self._since = clock.monotonic()
        if not self.file.swmr_mode or self._pending_bytes >= self.flush_bytes or \
                clock.monotonic() - self._since >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the buffered frames (one resize and one write per dataset) and flush
        the file; the first call switches the file to SWMR mode."""
        for name, frames in self._pending.items():
            for dataset, items in zip(self._series[name], zip(*frames)):
                _append(dataset, np.array(items, dtype=dataset.dtype))
        self._pending, self._pending_bytes, self._since = {}, 0, None
        self.file.flush()
        if self._creating is not None:
            # all datasets exist now: the complete file takes its place, then
            # single-writer/multiple-reader mode keeps it readable by others while it
            # grows, and consistent if the writer is killed
            self.file.close()
            creating, self._creating = self._creating, None
            creating.__exit__(None, None, None)
            self._attach()

    def close(self):
        if self.file.id.valid:
            self.flush()
            self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
