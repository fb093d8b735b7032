"""Training store: every labelled frame with its provenance, in one HDF5 file.

Append-only at the level of frames: a frame, once stored, is never changed or removed,
and a frame already present (same cell, positions and spin directions) is not stored
twice. Every append writes a complete new file beside the old one and renames it over
it (atomic on POSIX), so a crash at any moment leaves either the old or the new store,
both readable — never a half-written one.

Under MPI with several oracle groups, each other group's label is also written, as soon
as it is made, to a one-frame store in the spool folder ``<store>.spool/`` (a SIGTERM or
crash before the gather then loses no label that was paid for); rank 0 takes a spooled
label instead of running its job again when the same configuration is labelled again
by the same oracle, and empties the spool once a batch is stored
(:func:`otf_spin.learning.labelling.label_collective`).

Layout::

    /            attrs: format "otf-spin-store", format_version, package_version
    /frames      cell (F,3,3) Å, pbc (F,3), n_atoms (F,), energy (F,) eV (NaN = none),
                 uid (F,) sha256, provenance (F,) JSON (oracle, settings, job directory,
                 wall time, package version, time stamp)
    /atoms       positions (ΣN,3) Å, directions (ΣN,3), magnitudes (ΣN,) μB, species
                 (ΣN,), fields (ΣN,3) eV/μB (NaN = none), forces (ΣN,3) eV/Å (NaN = none)
"""
from __future__ import annotations

import json
import os
import shutil
import time

import h5py
import numpy as np

from otf_spin import __version__
from otf_spin.core import DataFileError, Frame
from otf_spin.io import ragged
from otf_spin.io.atomic import atomic_path, check_overwrite, kill_point
from otf_spin.oracles import file_digests, files_difference, settings_difference
from otf_spin.system import SpinSystem

FORMAT = "otf-spin-store"
FORMAT_VERSION = 1
_FRAME_KEYS = ("cell", "pbc", "n_atoms", "energy", "uid", "provenance")
_ATOM_KEYS = ("positions", "directions", "magnitudes", "species", "fields", "forces")


def frame_uid(system) -> str:
    """Identity of a configuration: sha256 of cell, pbc, positions and directions."""
    return system.digest(("cell", "pbc", "positions", "directions")).hexdigest()


def spool_folder(path) -> str:
    """The spool folder of the training store at ``path``."""
    return os.fspath(path) + ".spool"


def _spooled_path(folder: str, system) -> str:
    """The spool file of ``system``'s configuration in the spool ``folder``."""
    return os.path.join(folder, frame_uid(system) + ".h5")


def spool_label(folder: str, frame, provenance: dict) -> None:
    """Write one labelled frame (and its oracle provenance) to the spool ``folder``, as a
    one-frame store named by the configuration's uid (atomic; kill points "spool" and
    "spooled")."""
    path = _spooled_path(folder, frame.system)
    if os.path.exists(path):        # another oracle's label of it, which was not taken
        os.remove(path)
    TrainingStore(path, phases=("spool", "spooled")).append([frame], [provenance])


class TrainingStore:
    """The training store at ``path`` (created on the first append). ``phases``: the
    kill points of a write (between the complete temporary file and its rename; after
    it)."""

    def __init__(self, path, phases=("store", "stored")):
        self.path = os.fspath(path)
        self.phases = phases
        self._frames = {k: [] for k in _FRAME_KEYS}
        self._atoms = {k: [] for k in _ATOM_KEYS}
        if os.path.exists(self.path):
            self._load()

    def _load(self):
        try:
            with h5py.File(self.path, "r") as h5:
                if h5.attrs.get("format") != FORMAT:
                    raise DataFileError(f"{self.path}: not an otf-spin training store")
                for k in _FRAME_KEYS:
                    self._frames[k] = list(h5["frames"][k][()])
                for k in _ATOM_KEYS:
                    self._atoms[k] = ragged.split(h5["atoms"][k][()], self._frames["n_atoms"])
        except OSError as exc:
            raise DataFileError(f"{self.path}: cannot read training store ({exc})") from None
        self._frames["uid"] = [u.decode() if isinstance(u, bytes) else u
                               for u in self._frames["uid"]]

    def __len__(self) -> int:
        return len(self._frames["uid"])

    def __contains__(self, system) -> bool:
        return frame_uid(system) in set(self._frames["uid"])

    def append(self, frames, provenance=None) -> int:
        """Store labelled frames (``Frame`` objects); returns how many were new."""
        provenance = provenance or [{} for _ in frames]
        known = set(self._frames["uid"])
        added = 0
        for frame, prov in zip(frames, provenance):
            s, r = frame.system, frame.results
            uid = frame_uid(s)
            if uid in known:
                continue
            known.add(uid)
            n = len(s)
            prov = {"package_version": __version__, "stored_at": time.time(), **prov}
            values = {"cell": s.cell, "pbc": s.pbc, "n_atoms": n,
                      "energy": r.get("energy", np.nan), "uid": uid,
                      "provenance": json.dumps(prov, default=str)}
            for k in _FRAME_KEYS:
                self._frames[k].append(values[k])
            nan3 = np.full((n, 3), np.nan)
            for k, v in (("positions", s.positions), ("directions", s.directions),
                         ("magnitudes", s.magnitudes), ("species", s.species.astype("S")),
                         ("fields", r.get("fields", nan3)), ("forces", r.get("forces", nan3))):
                self._atoms[k].append(np.asarray(v))
            added += 1
        if added:
            self._write()
            kill_point(self.phases[1])
        return added

    def _write(self):
        check_overwrite(self.path, "training store", "store")
        with atomic_path(self.path, phase=self.phases[0]) as tmp, h5py.File(tmp, "w") as h5:
            h5.attrs.update(format=FORMAT, format_version=FORMAT_VERSION,
                            package_version=__version__)
            g = h5.create_group("frames")
            g.create_dataset("cell", data=np.array(self._frames["cell"], float))
            g.create_dataset("pbc", data=np.array(self._frames["pbc"], bool))
            g.create_dataset("n_atoms", data=np.array(self._frames["n_atoms"], np.int64))
            g.create_dataset("energy", data=np.array(self._frames["energy"], float))
            g.create_dataset("uid", data=np.array(self._frames["uid"], dtype="S64"))
            g.create_dataset("provenance", data=np.array(self._frames["provenance"],
                                                         dtype=h5py.string_dtype()))
            a = h5.create_group("atoms")
            for k in _ATOM_KEYS:
                a.create_dataset(k, data=ragged.stack(self._atoms[k]))

    def other_oracle(self, settings: dict) -> str | None:
        """None if every stored frame was labelled by an oracle with the physics of
        ``settings`` (an :meth:`~otf_spin.oracles.base.Oracle.settings` dict; see
        :func:`~otf_spin.oracles.settings_difference`: job folders, time limits and
        launch commands may differ; the contents of its input files where the frame
        recorded them, :func:`~otf_spin.oracles.file_digests`), else one line naming
        the store, how many frames differ and the first differing setting. Frames stored without oracle settings
        are not judged. A store is read as the labels of one oracle: a frame of another
        would stand, unrelabelled, for this oracle's label of its configuration."""
        other, first, seen, files = 0, None, {}, file_digests(settings)
        for prov in self._frames["provenance"]:
            stored = json.loads(prov.decode() if isinstance(prov, bytes) else prov)
            if "settings" not in stored:
                continue
            text = json.dumps([stored["settings"], stored.get("files", {})], sort_keys=True)
            if text not in seen:        # (frames of one oracle share it: compared once)
                seen[text] = settings_difference(stored["settings"], settings) or \
                    files_difference(stored.get("files", {}), files)
            difference = seen[text]
            if difference:
                other += 1
                first = first or difference
        if not other:
            return None
        return (f"{self.path} holds {other} of {len(self)} frames labelled by another "
                f"oracle ({first}); give this input its own store")

    def spooled(self, system, settings: dict) -> tuple | None:
        """(Frame, oracle provenance) of this configuration from the spool folder, if an
        interrupted batch left it there labelled by an oracle with the physics of
        ``settings`` (as :meth:`other_oracle` judges), else None."""
        path = _spooled_path(spool_folder(self.path), system)
        if not os.path.exists(path):
            return None
        try:
            spooled = TrainingStore(path)
        except DataFileError:       # (not a store: not taken; the batch's end removes it)
            return None
        if spooled.other_oracle(settings) is not None or len(spooled) != 1:
            return None
        frame = spooled.frames()[0]
        return frame, frame.info["provenance"]

    def clear_spool(self) -> None:
        """Remove the spool folder and the labels in it (once they are stored)."""
        shutil.rmtree(spool_folder(self.path), ignore_errors=True)

    def lookup(self, system) -> Frame | None:
        """The stored frame of this configuration (same uid), or None."""
        uid = frame_uid(system)
        if uid not in self._frames["uid"]:
            return None
        return self._frame(self._frames["uid"].index(uid))

    def frames(self) -> list[Frame]:
        """All stored frames as :class:`Frame` (labels that are NaN are absent)."""
        return [self._frame(k) for k in range(len(self))]

    def _frame(self, k: int) -> Frame:
        species = np.asarray(self._atoms["species"][k]).astype(str)
        system = SpinSystem.from_arrays(self._frames["cell"][k], self._atoms["positions"][k],
                                        species, self._atoms["directions"][k],
                                        self._atoms["magnitudes"][k], self._frames["pbc"][k])
        results = {}
        if np.isfinite(self._frames["energy"][k]):
            results["energy"] = float(self._frames["energy"][k])
        for key in ("fields", "forces"):
            value = np.asarray(self._atoms[key][k])
            if np.isfinite(value).all():
                results[key] = value
        prov = self._frames["provenance"][k]
        return Frame(system, results, {"provenance": json.loads(
            prov.decode() if isinstance(prov, bytes) else prov)})
