"""Checkpoints of an on-the-fly run (one replica or an ensemble): one HDF5 file, written
atomically by rank 0.

    /replicas/rNNN  directions (N,3); attrs step, time, rng (JSON), bit_generator
    /model          the model with its design rows (model.storage.write_group, with_rows)
    /               attrs format "otf-spin-checkpoint", learner (JSON: threshold value and
                    history, call counters, queue), tempering (JSON or ""), store_frames
                    (frames in the store at checkpoint time), replicas, package_version,
                    input (JSON: sha256 of each physics-relevant section of the run file,
                    :func:`input_fingerprint`)

Everything the run needs to continue exactly as if it had not stopped. A run refuses a
checkpoint whose input fingerprint differs from its own (:func:`check_input`).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import h5py
import numpy as np

from otf_spin import __version__
from otf_spin.dynamics.llg import read_state, write_state
from otf_spin.io.atomic import atomic_path, check_overwrite, file_digest
from otf_spin.model import storage
from otf_spin.oracles.base import Oracle, physics_settings

FORMAT = "otf-spin-checkpoint"

# keys that name files or pace bookkeeping, not physics: changing them keeps a checkpoint
# (the oracle's: otf_spin.oracles.base.physics_settings)
_NOT_PHYSICS = {"otf": ("store", "checkpoint", "checkpoint_every", "save_model",
                        "model_config"),
                "replicas": ("ranks_per_oracle_job",)}


def _digest_file(path) -> str | None:
    if not path:
        return None
    return "sha256:" + file_digest(path)


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Oracle):
        return value.settings()
    return repr(value)


def input_fingerprint(cfg: dict) -> dict:
    """sha256 of each physics-relevant section of a validated on-the-fly run
    configuration: system, dynamics, replicas, oracle, otf (file names, checkpoint pace,
    output settings and the rank layout left out; input files by their content)."""
    system = dict(cfg["system"], spins_file=_digest_file(cfg["system"].get("spins_file")))
    sections = {
        "system": system,
        "dynamics": cfg["dynamics"],
        "replicas": {k: v for k, v in (cfg.get("replicas") or {}).items()
                     if k not in _NOT_PHYSICS["replicas"]},
        "oracle": physics_settings(cfg["oracle"].settings()),
        "otf": dict({k: v for k, v in cfg["otf"].items() if k not in _NOT_PHYSICS["otf"]},
                    model=_digest_file(cfg["otf"].get("model"))),
    }
    return {name: hashlib.sha256(json.dumps(value, sort_keys=True, default=_plain)
                                 .encode()).hexdigest()
            for name, value in sections.items()}


def input_id(fingerprint: dict) -> str:
    """One short identifier of a whole input fingerprint (store provenance)."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Checkpoint:
    """What :func:`read` returns: replica states {index: SpinState}, the model, the
    learner state, frames in the store when written, tempering state (or None) and the
    input fingerprint of the run that wrote it ({} for checkpoints without one)."""

    states: dict
    model: object
    learner: dict
    store_frames: int
    tempering: dict | None
    input: dict


#: the last checkpoint this process wrote: its path, the identity of the file there and
#: the state of the model in it (:func:`_model_state`)
_LAST: dict = {}


def _model_state(model) -> tuple:
    """What a checkpoint's model group is made of. Fits, refits and solves replace these
    arrays and lists rather than change them in place, so the same objects (and equal
    hyperparameters and settings) mean the same group."""
    return ((model, model.alpha, model.posterior_factor, model.noise_model,
             *model.sparse, *model.frames, *(f.blocks for f in model.frames)),
            json.dumps([model.hyper, model.settings], sort_keys=True, default=repr))


def _file_identity(path) -> tuple:
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def _ours(path) -> bool:
    """True if the file at ``path`` is the last checkpoint this process wrote,
    unchanged since."""
    try:
        return _LAST.get("path") == os.path.abspath(path) and \
            _LAST.get("file") == _file_identity(path)
    except OSError:
        return False


def _same_model(state) -> bool:
    """True if the last checkpoint this process wrote holds the model ``state``: if that
    file is still there unchanged (:func:`_ours`), its model group can be copied as it
    is."""
    objects, text = _LAST["state"]
    return text == state[1] and len(objects) == len(state[0]) and \
        all(a is b for a, b in zip(objects, state[0]))


def write(path, states: dict, learner, store_frames: int, tempering=None,
          fingerprint: dict | None = None) -> None:
    """``states``: replica index -> SpinState (all replicas of the run). When the model
    is the one of the previous checkpoint this process wrote, its group is copied from
    that file (HDF5's object copy: the same bytes, without writing every frame's design
    rows again through h5py)."""
    ours = _ours(path)
    if not ours:                # a file this process did not just write: check its kind
        check_overwrite(path, "checkpoint", "otf.checkpoint")
    model_state = _model_state(learner.model)
    reuse = ours and _same_model(model_state)
    _LAST.clear()
    with atomic_path(path, phase="checkpoint") as tmp, h5py.File(tmp, "w") as h5:
        for index, state in sorted(states.items()):
            write_state(h5.create_group(f"replicas/r{index:03d}"), state)
        if reuse:
            with h5py.File(path, "r") as old:
                old.copy(old["model"], h5, "model")
        else:
            storage.write_group(h5.create_group("model"), learner.model,
                                learner.model.settings, with_rows=True)
        h5.attrs.update(format=FORMAT, learner=json.dumps(learner.state()),
                        store_frames=store_frames, replicas=len(states),
                        package_version=__version__,
                        tempering=json.dumps(tempering.state()) if tempering else "",
                        input=json.dumps(fingerprint or {}))
    _LAST.update(path=os.path.abspath(path), file=_file_identity(path), state=model_state)


def read(path) -> Checkpoint:
    with h5py.File(path, "r") as h5:
        states = {int(name[1:]): read_state(g) for name, g in h5["replicas"].items()}
        model, _ = storage.read_group(h5["model"], f"{path}:/model")
        tempering = h5.attrs.get("tempering", "")
        return Checkpoint(states, model, json.loads(h5.attrs["learner"]),
                          int(h5.attrs["store_frames"]),
                          json.loads(tempering) if tempering else None,
                          json.loads(h5.attrs.get("input", "{}") or "{}"))


def check_input(path, saved: dict, current: dict) -> None:
    """Raise ValueError (one line) if the checkpoint at ``path`` was made by a different
    input: its fingerprint ``saved`` differs from ``current``."""
    if saved == current:
        return
    changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    what = (f"its sections {', '.join(changed)} differ from this run file's" if saved
            else "it carries no input fingerprint")
    raise ValueError(f"otf.checkpoint: {os.fspath(path)} was made by a different input "
                     f"({what}); rerun with --fresh to discard it and start over")
