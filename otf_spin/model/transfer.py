"""Per-structure transfer of the field-variance conversion κ² (docs/uncertainty.md,
ninth session).

The predictive field variance of :class:`otf_spin.model.gpr.SparseGPR` uses the
posterior variance v_i of atom i's local energy, converted to the field's by κ² =
Σ (exact posterior field variance) / Σ v_i over the held-out training atoms. That ratio
is a property of the structure as much as of the model: in a 16-atom (2×2×2) bcc cell
the shells beyond the second alias onto the first ones and the posterior cancels v
between kernel blocks, so κ² there is ~4× that of a 54-atom cell (d54's field stds were
2× too wide). The model therefore measures the same ratio on each structure it
predicts, over a fixed set of synthetic spin configurations (:func:`cone_directions`
from :func:`draws`, the same for every structure of a size: no dependence on call order),
and scales κ² by it relative to the training structures'. This module holds the pieces
that know nothing of the model: the draws, the cones and the bounded sub-structure.
"""
from __future__ import annotations

import numpy as np

from otf_spin.system import SpinSystem

#: synthetic spin configurations per structure: enough for SAMPLES centre atoms, at
#: least one, at most MAX_CONFIGS
SAMPLES = 128
MAX_CONFIGS = 8
#: configurations of a cluster (one centre atom; each costs the design columns of
#: ~1000 atoms at r_cut 7 Å, ~5 s)
CLUSTER_CONFIGS = 1
#: seed of the draws (fixed: a structure of N atoms always gets the same configurations)
SEED = 20261203
#: quantile of the held-out training frames' spin disorder that the synthetic
#: configurations match (their cone half-angle is chosen for it)
QUANTILE = 0.5
#: periodic cells up to this many atoms: every atom; larger structures: an open cluster
#: of the atoms (periodic images included) within 2 r_cut of atom 0, that atom alone
MAX_ATOMS = 128
#: training structures (distinct positions, evenly spaced over the frames) pooled into
#: the reference ratio
STRUCTURES = 4


def n_configs(centres: int, cluster: bool = False) -> int:
    """Synthetic configurations for ``centres`` centre atoms (see SAMPLES), of a
    cluster (:func:`sub_structure`) CLUSTER_CONFIGS."""
    if cluster:
        return CLUSTER_CONFIGS
    return int(min(MAX_CONFIGS, max(1, -(-SAMPLES // max(centres, 1)))))


def draws(n: int, configs: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform draws (u, w), each (configs, n) in [0, 1), from the fixed SEED."""
    rng = np.random.default_rng([SEED, n, configs])
    return rng.random((configs, n)), rng.random((configs, n))


def cone_directions(theta: float, u, w) -> np.ndarray:
    """Unit vectors (..., 3) uniform in area on the cap of half-angle ``theta`` (rad)
    about z: cos(polar angle) = 1 - u (1 - cos θ), azimuth 2π w (``u``, ``w`` of
    :func:`draws`): continuous and monotone in θ at fixed draws."""
    c = 1.0 - np.asarray(u) * (1.0 - np.cos(theta))
    s = np.sqrt(np.maximum(1.0 - c * c, 0.0))
    phi = 2.0 * np.pi * np.asarray(w)
    return np.stack([s * np.cos(phi), s * np.sin(phi), c], axis=-1)


def sub_structure(system, r_cut: float, max_atoms: int = MAX_ATOMS):
    """(structure, centres) on which the transfer ratio of ``system`` is measured: the
    system itself (unit moments: the ratio is one of geometry, the magnitudes of a
    frame, e.g. slaved ones, are not the structure's) and every atom (``slice(None)``)
    up to ``max_atoms`` atoms; else an open cluster (no periodicity) of the atoms within 2 ``r_cut`` (Å) of atom 0,
    periodic images included, atom 0 first, and centres [0] (its field and local
    energy see complete environments: the cost is bounded whatever the size)."""
    if len(system) <= max_atoms:
        return SpinSystem(system.cell, system.positions, system.species, None, 1.0,
                          system.pbc), slice(None)
    reach = 2.0 * r_cut
    delta = system.positions - system.positions[0]
    ranges = []
    widths = system.cell_widths() if abs(np.linalg.det(system.cell)) > 1e-12 else None
    for k in range(3):
        n = int(np.ceil(reach / widths[k])) if system.pbc[k] and widths is not None else 0
        ranges.append(np.arange(-n, n + 1))
    shifts = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, 3)
    vectors = delta[None, :, :] + (shifts @ system.cell)[:, None, :]      # (S, N, 3)
    distance = np.linalg.norm(vectors, axis=-1)
    s, j = np.nonzero(distance <= reach)
    order = np.lexsort((j, distance[s, j]))          # atom 0 (distance 0) first
    s, j = s[order], j[order]
    cluster = SpinSystem(np.zeros((3, 3)), vectors[s, j], system.species[j],
                         None, 1.0, pbc=False)
    return cluster, np.array([0])
