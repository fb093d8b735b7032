"""Safe output files: atomic replacement, a kind check before any overwrite, and the
kill points that crash tests use.

Every otf-spin output that may be overwritten carries a format marker (an HDF5 root
attribute ``format``, or the ``/h5md`` group of a trajectory); :func:`check_overwrite`
refuses to replace a file of another kind, so a path mix-up cannot destroy a training
store, a checkpoint, a model or a trajectory.

Kill points: with ``OTF_SPIN_KILL_AT="phase:k[,phase:k ...]"`` in the environment the
process SIGKILLs itself at the k-th occurrence (from 1, counted per process) of a phase
(:data:`PHASES`). Without the variable :func:`kill_point` only counts.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import signal
import tempfile

#: phases of an on-the-fly run at which a crash test may kill the process
PHASES = {
    "label": "an oracle label came back, before it is stored",
    "store": "mid store append: the new store written beside the old, not yet renamed",
    "stored": "right after a store append (label stored, model not yet refit)",
    "spool": "mid spool write (MPI: another group's label, written beside, not yet renamed)",
    "spooled": "right after a spool write (MPI: another group's label, not yet gathered)",
    "refit": "mid refit: new frames added to the model, hyperparameters not yet re-optimised",
    "checkpoint": "mid checkpoint write: written beside the old one, not yet renamed",
    "step": "after a dynamics step, before its output and checkpoint",
    "done": "after the last step and checkpoint, before the final model is written",
}
#: occurrences of each phase in this process so far
KILL_COUNTS: collections.Counter = collections.Counter()


def _kill_plan() -> dict:
    plan = {}
    for item in filter(None, os.environ.get("OTF_SPIN_KILL_AT", "").split(",")):
        phase, _, k = item.strip().partition(":")
        if phase not in PHASES or not k.isdigit():
            raise ValueError(f"OTF_SPIN_KILL_AT: {item!r} is not phase:k with phase one of "
                             f"{', '.join(PHASES)}")
        plan[phase] = int(k)
    return plan


def kill_point(phase: str) -> None:
    """Count one occurrence of ``phase``; SIGKILL this process if OTF_SPIN_KILL_AT asks
    for this occurrence."""
    KILL_COUNTS[phase] += 1
    if _kill_plan().get(phase) == KILL_COUNTS[phase]:
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def atomic_path(path, phase: str | None = None):
    """Yield a temporary path in the target's folder; on success rename it onto ``path``.

    A crash or exception leaves ``path`` untouched (old content or absent) and
    removes the temporary file. The rename is atomic on POSIX file systems. ``phase``
    names the kill point between the complete temporary file and the rename.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    _remove_stale(folder, os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        if phase:
            kill_point(phase)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _remove_stale(folder: str, name: str) -> None:
    """Remove temporary files of ``name`` that a killed writer left behind (one writer
    per file: rank 0)."""
    import re

    pattern = re.compile(r"\." + re.escape(name) + r"\.[A-Za-z0-9_]{8}\.tmp")
    for entry in os.listdir(folder):
        if pattern.fullmatch(entry):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, entry))


# --- kinds of files -------------------------------------------------------------------
#: HDF5 ``format`` attribute of each otf-spin file kind (trajectories: the /h5md group)
MARKERS = {"otf-spin-store": "training store", "otf-spin-checkpoint": "checkpoint",
           "otf-spin-model": "model"}


def hdf5_kind(h5) -> str:
    """What an open HDF5 file is: "training store", "checkpoint", "model", "trajectory"
    (H5MD) or "HDF5 file" (other). Checkpoints of otf-spin 0.x before the marker are
    recognised by their layout."""
    marker = h5.attrs.get("format")
    marker = marker.decode() if isinstance(marker, bytes) else marker
    if marker in MARKERS:
        return MARKERS[marker]
    if "h5md" in h5:
        return "trajectory"
    if "replicas" in h5 and ("learner" in h5.attrs or "model" in h5):
        return "checkpoint"
    return "HDF5 file"


def _looks_extxyz(path) -> bool:
    """Whether the (non-HDF5) file at ``path`` begins as an (ext)xyz file: an atom count,
    then a comment line (extxyz: ``Lattice=``/``Properties=``)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096).split(b"\n")
    except OSError:
        return False
    return len(head) > 1 and head[0].strip().isdigit()


def file_kind(path) -> str | None:
    """What the file at ``path`` is: "training store", "checkpoint", "model",
    "trajectory" (H5MD), "HDF5 file" (other), "folder", "extxyz" (an xyz or extxyz file),
    "file" (anything else: YAML, text, an empty file); None if absent. Checkpoints of otf-spin 0.x before the marker are recognised by their
    layout."""
    import h5py

    path = os.fspath(path)
    if not os.path.lexists(path):
        return None
    if os.path.isdir(path):
        return "folder"
    if not h5py.is_hdf5(path):
        return "extxyz" if _looks_extxyz(path) else "file"
    try:
        with h5py.File(path, "r") as h5:
            return hdf5_kind(h5)
    except OSError:
        # a trajectory left open by a killed SWMR writer opens in SWMR mode only
        try:
            with h5py.File(path, "r", libver="latest", swmr=True) as h5:
                return "trajectory" if "h5md" in h5 else "HDF5 file"
        except OSError:
            pass
    return "HDF5 file"


#: what each kind of :func:`file_kind` is, as a user reads it
KIND_NAMES = {"training store": "an otf-spin training store", "checkpoint":
              "an otf-spin checkpoint", "model": "an otf-spin model file", "trajectory":
              "an H5MD trajectory", "HDF5 file": "an HDF5 file", "folder": "a folder",
              "extxyz": "an extxyz file"}


def is_hdf5_signature(path) -> bool:
    """Whether the file at ``path`` begins with the HDF5 signature (also a damaged or
    truncated HDF5 file that h5py cannot open)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def describe_file(path) -> str:
    """What the file at ``path`` is, as a noun phrase for a one-line error ("an otf-spin
    model file", "a YAML file", "a vasp file (as ASE reads it)", "an empty file", ...)."""
    kind = file_kind(path)
    if kind is None:
        return "absent"
    if kind != "file":
        return KIND_NAMES[kind]
    if is_hdf5_signature(path):
        return "a damaged HDF5 file"
    if os.path.getsize(path) == 0:
        return "an empty file"
    if os.path.splitext(path)[1].lower() in (".yaml", ".yml"):
        return "a YAML file"
    try:
        from ase.io.formats import filetype

        return f"a {filetype(path, guess=False)} file (as ASE reads it)"
    except Exception:           # ASE raises several types for files it does not know
        return "a file of a format ASE does not know"


def check_overwrite(path, kind: str, key: str) -> None:
    """Raise ValueError unless ``path`` (the value of ``key``) is absent or already a
    file of ``kind``: an output never replaces a file of another kind."""
    found = file_kind(path)
    if found == "file" and os.path.getsize(path) == 0:
        return                          # an empty file holds nothing to lose
    if found is not None and found != kind:
        article = "an" if found.startswith(("HDF5", "extxyz")) else "a"
        raise ValueError(f"{key}: {os.fspath(path)} is {article} {found}, not "
                         f"{'an' if kind == 'extxyz' else 'a'} {kind}; "
                         "refusing to overwrite it (choose another path)")


def check_outputs(entries) -> None:
    """Raise ValueError (one line naming the keys) before anything is written if two
    outputs, or an output and an input, are the same path, or if an existing file at an
    output path is of another kind than would be written there. ``entries``: (key, path,
    kind) — kind as :func:`file_kind` names it for an output, None for an input that no
    output may replace; paths None are skipped."""
    entries = [(key, os.fspath(path), kind) for key, path, kind in entries if path is not None]
    for key, path, kind in entries:
        if not path.strip():
            raise ValueError(f"{key}: empty path")
    seen = []
    for key, path, kind in entries:
        real = os.path.realpath(path)
        for other_key, other_path, other_real, other_kind in seen:
            same = real == other_real or (os.path.exists(path) and os.path.exists(other_path)
                                          and os.path.samefile(path, other_path))
            if same and (kind or other_kind):
                raise ValueError(f"{other_key} and {key} are the same path ({other_path}); "
                                 "give each its own")
        seen.append((key, path, real, kind))
    for key, path, kind in entries:
        if kind == "folder":
            if file_kind(path) not in (None, "folder"):
                raise ValueError(f"{key}: {path} exists and is not a folder")
        elif kind:
            check_overwrite(path, kind, key)


def file_digest(path) -> str:
    """SHA-256 hex digest of the bytes of the file at ``path``."""
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()
