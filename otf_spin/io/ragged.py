"""Per-atom arrays of many frames in one HDF5 dataset: stacked frame after frame (ΣN, ...)
beside ``n_atoms`` (F,); used by the training store and by model files."""
from __future__ import annotations

import numpy as np


def stack(per_frame) -> np.ndarray:
    """(ΣN, ...) array of the frames' (N_f, ...) arrays, in order."""
    return np.concatenate([np.asarray(a) for a in per_frame])


def split(data, n_atoms) -> list:
    """The frames' pieces (views, in order) of a stacked (ΣN, ...) array; [] for no frames."""
    counts = np.asarray(n_atoms, int)
    return np.split(data, np.cumsum(counts)[:-1]) if len(counts) else []
