"""The bcc Fe test sets of the paper's Sec. III B, generated and labelled reproducibly.

All sets use bcc Fe, a = 2.83 Å, and the paper's Eq. 43 exchange
(J = c/r³ exp(-r/r0), c = 0.94 eV·Å³, r0 = 2.0 Å, r_c = 1.4 a; double-counted
convention as the paper's Eq. 40), energies relative to the collinear FM state.

==================  =====  =====  ==============================================
set                 train  test   configurations / labels
==================  =====  =====  ==============================================
random              50     2500   16 atoms, random noncollinear, fixed 2.2 μB
eq41                50     2500   same spins, moments slaved by Eq. 41
displaced_0.07      50     2500   random spins, Eq. 42 displacements σ=0.07 Å
displaced_0.25      50     2500   same with σ = 0.25 Å
thermal_300K        25     25     16 atoms, Metropolis MC at 300 K, Eq. 41 labels
thermal_1000K       25     25     same at 1000 K
thermal_300K_54     0      50     54 atoms (3×3×3), MC at 300 K, Eq. 41 labels
==================  =====  =====  ==============================================

Random configurations: a base pattern (ferromagnetic, or the B2 antiferromagnet
with the body-centre sublattice reversed, each with probability 1/2) around a
random axis, every spin then drawn uniformly in a cone of half-angle θ_c ~
U[0, π] around its base direction, so that the mean nearest-neighbour angle
spans 0…π as in the paper (stored per frame as ``mean_nn_angle``, rad).

Displacements follow Eq. 42 as written: the Gaussian P(Δr) of width σ is the
distribution of each atom's displacement *length* Δr (|N(0, σ²)|), along a direction
uniform on the sphere (``displacement_law="eq42"``). ``"cartesian"`` draws every
Cartesian coordinate from N(0, σ²) instead (ASE's ``rattle``; lengths √3 σ rms with a
Maxwell distribution), the law of these sets until 2026-12-01, kept for comparison.
"""
from __future__ import annotations

import json
import os

import numpy as np

from otf_spin import __version__
from otf_spin.core import ConfigError, Frame
from otf_spin.dynamics.montecarlo import HeisenbergMonteCarlo, new_state
from otf_spin.io.extxyz import write_frames
from otf_spin.oracles.heisenberg import FormulaExchange, HeisenbergOracle
from otf_spin.progress import progress_bar
from otf_spin.system import bulk, random_cone, random_sphere, rotation_to

A = 2.83          # Å
MOMENT = 2.2      # μB
EQ43 = {"c": 0.94, "r0": 2.0, "cutoff": 1.4 * A}   # eV·Å³, Å, Å
SLAVING = {"m0": 2.2, "dm": 0.6}                   # μB

#: name -> (kind, n_train, n_test, options)
SETS = {
    "random": ("random", 50, 2500, {}),
    "eq41": ("random", 50, 2500, {"slaving": True}),
    "displaced_0.07": ("random", 50, 2500, {"displacement": 0.07}),
    "displaced_0.25": ("random", 50, 2500, {"displacement": 0.25}),
    "thermal_300K": ("thermal", 25, 25, {"temperature": 300.0, "slaving": True}),
    "thermal_1000K": ("thermal", 25, 25, {"temperature": 1000.0, "slaving": True}),
    "thermal_300K_54": ("thermal", 0, 50, {"temperature": 300.0, "slaving": True,
                                           "repeat": 3}),
}
PAPER_SETS = tuple(SETS)
DISPLACEMENT_LAWS = ("eq42", "cartesian")


def displacements(n: int, sigma: float, rng, law: str = "eq42") -> np.ndarray:
    """(n, 3) atomic displacements (Å) of width ``sigma`` (Å).

    ``eq42``: lengths |N(0, σ²)| (the paper's Eq. 42 is the distribution of the
    displacement length) along directions uniform on the sphere; ``cartesian``: every
    coordinate from N(0, σ²)."""
    if law == "eq42":
        return np.abs(rng.normal(scale=sigma, size=n))[:, None] * random_sphere(n, rng)
    if law == "cartesian":
        return rng.normal(scale=sigma, size=(n, 3))
    raise ValueError(f"displacement law {law!r}: expected one of {DISPLACEMENT_LAWS}")


def paper_oracle(slaving: bool = False) -> HeisenbergOracle:
    """The Eq. 43 Heisenberg oracle of the paper sets (optionally with Eq. 41 moments)."""
    settings = {"type": "heisenberg", "convention": "double_counted",
                "formula": dict(form="exp_r3", **EQ43), "moment": MOMENT}
    if slaving:
        settings["moment_slaving"] = dict(SLAVING)
    return HeisenbergOracle(FormulaExchange(**EQ43), "double_counted", MOMENT,
                            dict(SLAVING) if slaving else None, settings)


def b2_sublattice(system) -> np.ndarray:
    """+1 on the cube-corner sublattice of a bcc cell, -1 on the body centres (N,)."""
    index = np.round(system.positions / (A / 2)).astype(int).sum(axis=1) % 2
    return np.where(index == 0, 1.0, -1.0)


def mean_nn_angle(system) -> float:
    """Mean angle (rad) between nearest-neighbour spins (bcc: r < 0.9 a)."""
    nl = system.neighbours(0.9 * A)
    c = np.einsum("pk,pk->p", system.directions[nl.i], system.directions[nl.j])
    return float(np.mean(np.arccos(np.clip(c, -1, 1))))


def random_configuration(system, rng) -> tuple[np.ndarray, float]:
    """Directions (N, 3) of one random configuration and its cone half-angle (rad)."""
    n = len(system)
    axis = random_sphere(1, rng)[0]
    sign = b2_sublattice(system) if rng.random() < 0.5 else np.ones(n)
    cone = rng.uniform(0.0, np.pi)
    local = random_cone(n, [0, 0, 1], cone, rng)
    local[:, 2] *= sign       # reflect through the xy plane on the reversed sublattice
    return local @ rotation_to(axis).T, cone


def generate_set(name: str, seed: int = 2024, scale: float = 1.0, progress: bool = False,
                 displacement_law: str = "eq42"):
    """(train, test) lists of labelled :class:`Frame` for set ``name`` (displaced sets:
    ``displacement_law`` as :func:`displacements`)."""
    kind, n_train, n_test, options = SETS[name]
    n_test = max(1, int(round(n_test * scale))) if n_test else 0
    rng = np.random.default_rng([seed, PAPER_SETS.index(name)])
    oracle = paper_oracle(options.get("slaving", False))
    repeat = options.get("repeat", 2)
    base = bulk("bcc", A, (repeat,) * 3, moment=MOMENT)
    frames = []
    if kind == "random":
        for _ in progress_bar(range(n_train + n_test), name, enabled=progress):
            system = base.copy()
            directions, cone = random_configuration(system, rng)
            system.set_directions(directions)
            if "displacement" in options:
                system.positions += displacements(len(system), options["displacement"], rng,
                                                  displacement_law)
            frames.append(_label(oracle, system, {"set": name, "cone_angle": cone}))
    else:
        temperature = options["temperature"]
        mc = HeisenbergMonteCarlo(paper_oracle(False), base)
        state = new_state(base, rng)
        mc.equilibrate(state, temperature, 2000)
        samples = mc.sample(state, temperature, n_train + n_test, interval=50)
        for directions in progress_bar(samples, name, enabled=progress, total=n_train + n_test):
            system = base.copy()
            system.set_directions(directions)
            frames.append(_label(oracle, system, {"set": name, "temperature": temperature}))
    return frames[:n_train], frames[n_train:]


def _label(oracle, system, info) -> Frame:
    results = oracle.compute(system)
    system.moments = results["magmoms"]
    info = dict(info, mean_nn_angle=mean_nn_angle(system))
    labels = {k: results[k] for k in ("energy", "fields", "forces")}
    return Frame(system, labels, info)


def write_paper_sets(folder, names=PAPER_SETS, seed: int = 2024, scale: float = 1.0,
                     progress: bool = False) -> dict:
    """Write ``<folder>/<set>_{train,test}.xyz`` and ``manifest.json``; returns the manifest."""
    unknown = [n for n in names if n not in SETS]
    if unknown:
        raise ConfigError(f"--sets: unknown set {unknown[0]!r} (known: {', '.join(SETS)})")
    os.makedirs(folder, exist_ok=True)
    manifest = {"package_version": __version__, "seed": seed, "scale": scale,
                "lattice_constant_angstrom": A, "exchange": "eq43", **EQ43,
                "convention": "double_counted", "displacement_law": "eq42", "sets": {}}
    for name in names:
        train, test = generate_set(name, seed, scale, progress)
        entry = {"kind": SETS[name][0], "options": SETS[name][3]}
        for part, frames in (("train", train), ("test", test)):
            if frames:
                path = os.path.join(folder, f"{name}_{part}.xyz")
                write_frames(path, frames)
                entry[part] = {"file": os.path.basename(path), "frames": len(frames),
                               "atoms": len(frames[0].system)}
        manifest["sets"][name] = entry
        print(f"{name:16s} train {len(train):4d}  test {len(test):5d}  "
              f"atoms {len((train or test)[0].system):3d}  "
              f"E range {min(f.energy for f in train + test):8.4f} … "
              f"{max(f.energy for f in train + test):8.4f} eV")
    with open(os.path.join(folder, "manifest.json"), "w") as handle:
        json.dump(manifest, handle, indent=2)
    return manifest
