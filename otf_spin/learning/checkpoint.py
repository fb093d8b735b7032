"""Checkpoints of an on-the-fly run (one replica or an ensemble): one HDF5 file, written
atomically by rank 0.

    /replicas/rNNN  directions (N,3); attrs step, time, rng (JSON), bit_generator
    /model          the model with its design rows (model.storage.write_group, with_rows)
    /               attrs learner (JSON: threshold value and history, call counters,
                    queue), tempering (JSON or ""), store_frames (frames in the store at
                    checkpoint time), replicas, package_version

Everything the run needs to continue exactly as if it had not stopped.
"""
from __future__ import annotations

import json

import h5py
import numpy as np

from otf_spin import __version__
from otf_spin.dynamics.llg import SpinState
from otf_spin.io.atomic import atomic_path
from otf_spin.model import storage


def write(path, states: dict, learner, store_frames: int, tempering=None) -> None:
    """``states``: replica index -> SpinState (all replicas of the run)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        for index, state in sorted(states.items()):
            g = h5.create_group(f"replicas/r{index:03d}")
            g.create_dataset("directions", data=state.directions)
            g.attrs.update(step=state.step, time=state.time,
                           rng=json.dumps(state.rng.bit_generator.state),
                           bit_generator=type(state.rng.bit_generator).__name__)
        storage.write_group(h5.create_group("model"), learner.model, learner.model.settings,
                            with_rows=True)
        h5.attrs.update(learner=json.dumps(learner.state()), store_frames=store_frames,
                        replicas=len(states), package_version=__version__,
                        tempering=json.dumps(tempering.state()) if tempering else "")


def read(path):
    """(states {replica index: SpinState}, model, learner state, store_frames, tempering
    state or None)."""
    with h5py.File(path, "r") as h5:
        states = {}
        for name, g in h5["replicas"].items():
            bit_generator = getattr(np.random, str(g.attrs["bit_generator"]))()
            bit_generator.state = json.loads(g.attrs["rng"])
            states[int(name[1:])] = SpinState(g["directions"][()], int(g.attrs["step"]),
                                              float(g.attrs["time"]),
                                              np.random.Generator(bit_generator))
        model, _ = storage.read_group(h5["model"], f"{path}:/model")
        tempering = h5.attrs.get("tempering", "")
        return (states, model, json.loads(h5.attrs["learner"]), int(h5.attrs["store_frames"]),
                json.loads(tempering) if tempering else None)
